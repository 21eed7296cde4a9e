"""The instruction-count driver still runs every front end to end (callgrind itself
is not needed for that: the driver is what it measures)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from benchmarks.instructions import CASES

from tests.support.node import ROOT


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_driver_answers_every_request_of_each_case(case):
    run = subprocess.run([sys.executable, "-m", "benchmarks.instructions", "--drive", case,
                          "--rounds", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
