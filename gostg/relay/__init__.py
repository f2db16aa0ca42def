"""Moving bytes: the TCP pipe, packet conns and the UDP relay (with its libev fast path), and the
serving side of BIND."""
