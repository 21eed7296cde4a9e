"""Storage: the only code that touches files. WAL, snapshots, recovery. See DESIGN.md."""
