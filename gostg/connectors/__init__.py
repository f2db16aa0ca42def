"""Connectors: the client side of a handler (how a node is asked to connect onward)."""
