"""Raft as a sans-IO library (etcd-raft's shape): see core.py and ../DESIGN.md."""
