"""The other half of embedding: a host application's *own* outgoing connections through
gostg's Router (hosts, bypass, resolver, chain, selectors, retries, timeouts).

- :mod:`.dial`: ``Gost.dial`` / ``Gost.create_connection``: one connection, a socket back.
- :mod:`.patch`: ``patch_socket`` / ``restore_socket`` / ``routed``: every TCP connect of the
  process, names resolved at the chain's far end (:mod:`.fakeip`).
- :mod:`.thread`: thread mode, gostg's own hub in a background thread for apps that never patch.
"""
