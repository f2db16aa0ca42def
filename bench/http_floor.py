#!/usr/bin/env python3
"""The "gevent floor" for bench_http.py: the least a gevent forward HTTP proxy can do.

Run:  python bench/http_floor.py PORT

Absolute-URI requests without a body (the bench's GETs), keep-alive both ways, the upstream
connection reused while the host:port stays the same, responses framed by Content-Length only.
No auth, no logging, no limits, no error pages: what gevent and CPython cost per request, with
nothing of gostg's code. Not a proxy for real use.
"""
import socket
import sys

from gevent import socket as gsocket
from gevent.server import StreamServer


def read_head(sock, buf):
    """→ (head bytes, rest) or (None, b"") at EOF."""
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            return buf[:i + 4], buf[i + 4:]
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data


def handle(client, _addr):
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up, up_key, cbuf, ubuf = None, None, b"", b""
    try:
        while True:
            head, cbuf = read_head(client, cbuf)
            if head is None:
                return
            line, _, rest = head.partition(b"\r\n")
            method, url, version = line.split(b" ")
            hostport, _, path = url[7:].partition(b"/")   # "http://" + host:port + "/" + path
            if up_key != hostport:
                if up is not None:
                    up.close()
                host, _, port = hostport.partition(b":")
                up = gsocket.create_connection((host.decode(), int(port or 80)))
                up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                up_key, ubuf = hostport, b""
            lines = [h for h in rest.split(b"\r\n") if not h.lower().startswith(b"proxy-")]
            up.sendall(b"%s /%s %s\r\n%s" % (method, path, version, b"\r\n".join(lines)))
            rhead, ubuf = read_head(up, ubuf)
            if rhead is None:
                return
            n = 0
            for h in rhead.split(b"\r\n"):
                if h[:15].lower() == b"content-length:":
                    n = int(h[15:])
            while len(ubuf) < n:
                data = up.recv(65536)
                if not data:
                    return
                ubuf += data
            client.sendall(rhead + ubuf[:n])
            ubuf = ubuf[n:]
    except OSError:
        pass
    finally:
        if up is not None:
            up.close()
        client.close()


if __name__ == "__main__":
    server = StreamServer(("127.0.0.1", int(sys.argv[1])), handle, backlog=1024)
    server.serve_forever()
