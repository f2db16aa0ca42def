"""Listeners: a bound socket plus the transport that turns an accepted socket into a conn."""
