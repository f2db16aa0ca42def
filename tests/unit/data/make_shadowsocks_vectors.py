"""Regenerate shadowsocks_vectors.json from shadowsocks-libev (ss-local, ss-server on PATH).

Not run by the tests: it records what the real peers put on the wire, so the unit tests can check
our codec against bytes we did not produce. Run from the repository root:
    .venv/bin/python tests/unit/data/make_shadowsocks_vectors.py
"""
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.getcwd())
from gostg.protocols import shadowsocks as ss  # noqa: E402

PW = "gostg-test-password"
CIPHERS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]
PAYLOAD = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n" + bytes(i % 251 for i in range(16400))
REPLY = b"HTTP/1.1 200 OK\r\n\r\n" + bytes(i % 249 for i in range(16500))
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shadowsocks_vectors.json")


def compact(wire, plaintext):
    """A TCP vector: the wire in base64, the plaintext by length, head and digest (keeps the file small)."""
    return {"wire_b64": base64.b64encode(wire).decode(), "plaintext_len": len(plaintext),
            "plaintext_head": plaintext[:64].hex(), "plaintext_sha256": hashlib.sha256(plaintext).hexdigest()}


def free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port):
    for _ in range(100):
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


def read_all(s, idle=1.0):
    s.settimeout(idle)
    data = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            return data
        if not d:
            return data
        data += d


def socks5_greet(c):
    c.sendall(b"\x05\x01\x00")
    assert c.recv(2) == b"\x05\x00"


def tcp_client(m):
    lst = socket.create_server(("127.0.0.1", 0))
    lport = free()
    p = subprocess.Popen(["ss-local", "-s", "127.0.0.1", "-p", str(lst.getsockname()[1]), "-l", str(lport),
                          "-b", "127.0.0.1", "-k", PW, "-m", m], stderr=subprocess.DEVNULL)
    try:
        c = connect(lport)
        socks5_greet(c)
        c.sendall(b"\x05\x01\x00\x03\x0bexample.com\x00\x50")
        c.recv(10)
        c.sendall(PAYLOAD)
        lst.settimeout(5)
        a, _ = lst.accept()
        wire = read_all(a)
        c.close()
        a.close()
    finally:
        p.terminate()
        p.wait()
        lst.close()
    return compact(wire, b"\x03\x0bexample.com\x00\x50" + PAYLOAD)


def udp_client(m):
    fake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fake.bind(("127.0.0.1", 0))
    fake.settimeout(5)
    lport = free()
    p = subprocess.Popen(["ss-local", "-s", "127.0.0.1", "-p", str(fake.getsockname()[1]), "-l", str(lport),
                          "-b", "127.0.0.1", "-k", PW, "-m", m, "-u"], stderr=subprocess.DEVNULL)
    try:
        c = connect(lport)
        socks5_greet(c)
        c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
        rport = int.from_bytes(c.recv(10)[8:10], "big")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"\x00\x00\x00\x03\x0bexample.com\x00\x35udp payload", ("127.0.0.1", rport))
            pkt, _ = fake.recvfrom(65535)
        c.close()
    finally:
        p.terminate()
        p.wait()
        fake.close()
    return {"wire": pkt.hex(), "host": "example.com", "port": 53, "payload": b"udp payload".hex()}


def server_side(m):
    cipher = ss.Cipher.new(m, PW)
    org = socket.create_server(("127.0.0.1", 0))
    ue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ue.bind(("127.0.0.1", 0))

    def serve():
        a, _ = org.accept()
        a.recv(65536)
        a.sendall(REPLY)
        a.close()

    def uecho():
        d, addr = ue.recvfrom(65535)
        ue.sendto(b"pong:" + d, addr)

    threading.Thread(target=serve, daemon=True).start()
    threading.Thread(target=uecho, daemon=True).start()
    sport = free()
    p = subprocess.Popen(["ss-server", "-s", "127.0.0.1", "-p", str(sport), "-k", PW, "-m", m, "-u"],
                         stderr=subprocess.DEVNULL)
    try:
        c = connect(sport)
        c.sendall(ss.Encryptor(cipher).encrypt(ss.encode_target("127.0.0.1", org.getsockname()[1]) + b"GET /\r\n"))
        wire = read_all(c, 3)
        c.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(ss.pack_udp(cipher, "127.0.0.1", ue.getsockname()[1], b"ping"), ("127.0.0.1", sport))
            pkt, _ = u.recvfrom(65535)
    finally:
        p.terminate()
        p.wait()
        org.close()
        ue.close()
    return (compact(wire, REPLY),
            {"wire": pkt.hex(), "host": "127.0.0.1", "port": None,
             "payload": b"pong:ping".hex()})


def main():
    out = {"_about": "Captured from shadowsocks-libev with password 'gostg-test-password' by "
                     "make_shadowsocks_vectors.py: tcp_client = what ss-local sent for SOCKS5 CONNECT "
                     "example.com:80 plus a payload; tcp_server = what ss-server sent back carrying an "
                     "origin's reply; udp_client = ss-local's datagram for example.com:53; udp_server = "
                     "ss-server's reply datagram from a UDP echo on 127.0.0.1 (port not recorded). "
                     "TCP wires are base64; their plaintexts are given by length, first 64 bytes and sha256.",
           "password": PW, "ciphers": {}}
    for m in CIPHERS:
        tcp_server, udp_server = server_side(m)
        out["ciphers"][m] = {"tcp_client": tcp_client(m), "tcp_server": tcp_server,
                             "udp_client": udp_client(m), "udp_server": udp_server}
        print(m, "ok", file=sys.stderr)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
