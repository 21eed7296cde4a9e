"""Replication: how a command becomes durable and ordered. See DESIGN.md."""
