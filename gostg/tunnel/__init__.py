"""GOST's reverse proxy tunnel (x/handler/tunnel): the connection pool of each tunnel, the
dialer that picks a connection (or another node, through service discovery) and the public
entrypoint. The handler is :mod:`gostg.handlers.tunnel`, the client :mod:`gostg.connectors.tunnel`."""
