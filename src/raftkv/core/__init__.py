"""The deterministic core: commands, the keyspace, expiry, eviction, the state machine.

Pure code: no files, sockets, clock, randomness or asyncio. ``apply`` depends only
on the current state and the command, so every replica that applies the same log
holds the same keyspace. See DESIGN.md beside this file.
"""
