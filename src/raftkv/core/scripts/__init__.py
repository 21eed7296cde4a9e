"""Lua scripting (DATA-MODEL.md section 4): the sandboxed, deterministic Lua runtime
(``lua.py``) and the libraries Redis gives scripts (``libraries.py``). The EVAL
family itself - what a script may call, and the replicated script cache - is a family
of ``core/typed`` (``scripts.py``)."""
