"""Embedding gostg in a host application: dialing, whole-app routing, thread mode."""
