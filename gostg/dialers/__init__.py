"""Dialers: the client side of a listener (how a node's address is reached)."""
