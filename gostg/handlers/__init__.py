"""Handlers: one protocol each; they authenticate, find the target and relay."""
