"""Fronts: thin adapters (parse -> one service call -> render). HTTP, RESP, UDP."""
