"""Import raftkv from its Python source, even where mypyc built extension modules
beside it (see setup.py). Coverage-guided fuzzing needs the bytecode to see which
branches an input reached; compiled modules run the same source without it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from pathlib import Path
from types import ModuleType

SRC = Path(__file__).resolve().parents[2] / "src"


class _SourceOnlyFinder:
    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None = None,
                  target: object = None) -> ModuleSpec | None:
        if name.partition(".")[0] != "raftkv":
            return None
        for entry in path if path is not None else sys.path:
            spec = FileFinder(entry or ".", (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name)
            if spec is not None:
                return spec
        return None


def use_source() -> None:
    """Call before the first import of raftkv."""
    if any(name.partition(".")[0] == "raftkv" for name in sys.modules):
        raise RuntimeError("raftkv is already imported")
    sys.meta_path.insert(0, _SourceOnlyFinder)


def reference(relative: str) -> ModuleType:
    """The plain-Python reference of a hand-written C module (``raftkv/core/table.py``
    beside ``table.c``), loaded from its source under another name, so a test can hold
    the two to the same behaviour."""
    path = SRC / relative
    spec = importlib.util.spec_from_file_location(f"{path.stem}_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
