"""Coverage-guided fuzzing (atheris) of the RESP path, from bytes on a connection to
replies: a bounded run with a fixed seed finds nothing, and the same run finds a
planted bug (the negative control that shows the fuzzer reaches the parser)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def fuzz(tmp_path: Path, runs: int, mutant: str = "", compiled: bool = False
         ) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "corpus"
    work.mkdir()
    for seed in CORPUS.iterdir():  # libFuzzer adds to the first corpus dir: use a copy
        (work / seed.name).write_bytes(seed.read_bytes())
    env = {**os.environ, "RAFTKV_FUZZ_MUTANT": mutant, "PYTHONPATH": str(ROOT),
           "RAFTKV_FUZZ_COMPILED": "1" if compiled else ""}
    return subprocess.run(
        [sys.executable, "-m", "tests.fuzz.resp_target", f"-runs={runs}", "-seed=1",
         "-max_len=512", f"-artifact_prefix={tmp_path}/", str(work)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=240)


def test_fuzzing_the_resp_connection_finds_nothing(tmp_path):
    run = fuzz(tmp_path, 20_000)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Done 20000 runs" in run.stdout
    assert not list(tmp_path.glob("crash-*"))


def test_the_compiled_modules_survive_the_same_inputs(tmp_path):
    """The guided run above reads the Python source; the same target over the mypyc
    modules (no coverage to guide it) catches what only compiled code rejects: a value
    that does not match its declared type raises TypeError there."""
    run = fuzz(tmp_path, 10_000, compiled=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Done 10000 runs" in run.stdout and "compiled modules" in run.stdout


def test_negative_control_fuzzer_finds_a_planted_parser_bug(tmp_path):
    run = fuzz(tmp_path, 20_000, mutant="untranslated-errors")
    assert run.returncode != 0
    assert "Uncaught Python exception" in run.stdout and "ValueError" in run.stdout
    assert list(tmp_path.glob("crash-*"))
