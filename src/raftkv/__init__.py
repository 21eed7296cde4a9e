"""raftkv: a crash-safe, Raft-replicated key-value service.

Layers, top to bottom: ``fronts`` (HTTP, RESP, UDP) -> ``service`` ->
``replication`` (one local WAL or a Raft log) -> ``core`` (the deterministic
state machine) and ``storage`` (the only code that touches files).
See ``shared/ARCHITECTURE.md`` and each package's DESIGN.md.
"""

__version__ = "0.1.0"
