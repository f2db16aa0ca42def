"""The plain-HTTP forward path on the wire: pipelined absolute-URI requests answered in order
on one kept-alive connection, the head and the body of each response whole, the upstream
connection reused, the last request's ``Connection: close`` honoured; and the per-connection
log lines (not per request) at the default level."""
import json
import socket
import time

from .helpers import Gost, free_port
from .peers import FastOrigin, recv_all


def _responses(data):
    """Split a byte stream of Content-Length framed responses → [(status line, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        lines = head.split(b"\r\n")
        n = next(int(v) for k, _, v in (h.partition(b":") for h in lines[1:]) if k.lower() == b"content-length")
        out.append((lines[0], rest[:n]))
        data = rest[n:]
    return out


def test_pipelined_requests_answered_in_order_on_one_upstream():
    port = free_port()
    with FastOrigin() as o, Gost("-L", f"http://127.0.0.1:{port}", ports=[port]) as g:
        reqs = b"".join(f"GET {o.url}/{i} HTTP/1.1\r\nHost: 127.0.0.1:{o.port}\r\n"
                        f"{'Connection: close' if i == 4 else 'Proxy-Connection: keep-alive'}\r\n\r\n".encode()
                        for i in range(5))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(reqs)                        # all five in one segment
            data, eof = recv_all(c, time.monotonic() + 10)
        assert eof, data
        got = _responses(data)
        assert [s for s, _ in got] == [b"HTTP/1.1 200 OK"] * 5
        assert [b for _, b in got] == [f"hello from origin /{i} host=127.0.0.1:{o.port}\n".encode() for i in range(5)]
        assert o.connections == 1
        g.stop()
        lines = [json.loads(line) for line in g.log_text().splitlines() if line.startswith("{")]
        msgs = [m["msg"] for m in lines if "<->" in m.get("msg", "") or ">-<" in m.get("msg", "")]
        # one line when the upstream is dialled and one when the connection ends, not one per request
        assert len(msgs) == 2, msgs
