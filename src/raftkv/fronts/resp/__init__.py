"""The Redis protocol (RESP2) front: codec, command table, server, pub/sub."""
