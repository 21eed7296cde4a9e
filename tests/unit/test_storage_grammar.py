"""storage/DESIGN.md is the one grammar of what raftkv writes to disk: every record
type the code knows is described there, with its number and payload, and the
snapshot file and data-directory marks it names are the ones the code writes."""

from __future__ import annotations

import re
from pathlib import Path

from raftkv.storage import log_store, records, snapshots

DESIGN = Path(records.__file__).with_name("DESIGN.md")


def described_record_types() -> dict[int, str]:
    """``type N NAME payload := ...`` lines of the grammar."""
    found = {}
    for match in re.finditer(r"^\s+type (\d+) (\w+)\s+payload :=", DESIGN.read_text(), re.M):
        found[int(match.group(1))] = match.group(2)
    return found


def test_every_record_type_is_in_the_grammar_under_its_name():
    described = described_record_types()
    in_code = {getattr(records, name): name for name in ("ENTRY", "STATE", "SNAP")}
    assert set(records.RECORD_TYPES) == set(described), (
        f"record types without a grammar line: {set(records.RECORD_TYPES) - set(described)}")
    assert described == in_code


def test_the_grammar_names_the_marks_the_code_writes():
    text = DESIGN.read_text()
    assert snapshots.MAGIC.decode() in text
    assert repr(log_store.FORMAT.decode()).strip("'") in text
    for directory in (log_store.LOG_DIR, log_store.SNAPSHOT_DIR, *log_store.LEGACY_DIRS):
        assert f"{directory}/" in text


def test_the_entry_kinds_are_the_ones_the_grammar_lists():
    text = " ".join(DESIGN.read_text().split())
    listed = re.search(r"`kind` 0 is a command .*?, 1 a new Raft leader's no-op, 2 a "
                       r"membership change\.", text)
    assert listed is not None
    assert [k.value for k in log_store.EntryKind] == [0, 1, 2]
