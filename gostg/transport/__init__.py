"""Conns over conns: buffered (bytes pushed back), TLS, WebSocket, Shadowsocks, and the
multiplexing sessions in ``mux/``. Each behaves like a blocking socket (DESIGN.md "Conn interface")."""
