"""The service layer: validation, TTLs made absolute, read consistency, expiry and
eviction cycles. Fronts call it; it calls the ``Replicator`` port (ports.py)."""
