"""Redis and HTTP sources on a live gostg (GOST's "Data Source" sections): each object kind with
each Redis key type it reads, seen by a real client; an HTTP source served on loopback; the
order in which inline items, file, redis and http combine."""
import http.server
import threading
import time

import pytest
import yaml

from .helpers import Echo, Gost, HTTPServerThread, Origin, free_port
from .peers import curl_code, log_records
from .redisproc import redis_srv, socks5, socks_svc, until  # noqa: F401 (fixture)
from .test_limiter import svc as http_svc, tunnel


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


def run(tmp_path, cfg, ports):
    path = tmp_path / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Gost("-C", path, ports=ports)


def rds(srv, key, **extra):
    return {"addr": srv.addr, "key": key, **extra}


def test_bypass_and_admission_read_redis_sets(tmp_path, redis_srv):
    r = redis_srv.client()
    b, a = free_port(), free_port()
    cfg = {"services": [socks_svc("b", b, bypass="bp"), socks_svc("a", a, admission="adm")],
           "bypasses": [{"name": "bp", "reload": "200ms", "redis": rds(redis_srv, "gost:bypass")}],
           "admissions": [{"name": "adm", "reload": "200ms", "redis": rds(redis_srv, "gost:adm", type="set")}]}
    with Echo() as echo, run(tmp_path, cfg, [b, a]) as g:
        assert socks5(b, dport=echo.port) == 0 and socks5(a, dport=echo.port) == 0
        r.sadd("gost:bypass", "127.0.0.1", "example.com")
        assert until(lambda: socks5(b, dport=echo.port) not in (0, None)), g.log_text()[-2000:]
        r.sadd("gost:adm", "127.0.0.0/8")
        assert until(lambda: socks5(a, dport=echo.port) is None), "admission from Redis not applied"
        r.srem("gost:bypass", "127.0.0.1")
        r.delete("gost:adm")   # a missing key is an empty set
        assert until(lambda: socks5(b, dport=echo.port) == 0 and socks5(a, dport=echo.port) == 0)


def test_auther_reads_a_redis_hash(tmp_path, redis_srv, origin):
    r = redis_srv.client(db=3)
    r.hset("gost:auth", mapping={"alice": "s3cret", "bob": "pw with # and spaces"})
    redis_srv.client().hset("gost:auth", "alice", "db0")   # the same key in another database
    p = free_port()
    cfg = {"services": [socks_svc("s", p, handler={"type": "socks5", "auther": "au"})],
           "authers": [{"name": "au", "reload": "200ms", "redis": rds(redis_srv, "gost:auth", type="hash", db=3)}]}
    url = f"{origin.url}/"

    def get(user, pw):
        return curl_code("-x", f"socks5h://{user}:{pw}@127.0.0.1:{p}", url, timeout=5)[1]

    with run(tmp_path, cfg, [p]):
        assert get("alice", "s3cret") == 200
        assert socks5(p, dport=origin.port, user="bob", password="pw with # and spaces") == 0
        assert get("alice", "wrong") == 0 and get("mallory", "s3cret") == 0 and get("alice", "db0") == 0
        r.hset("gost:auth", "alice", "changed")
        assert until(lambda: get("alice", "changed") == 200)
        assert get("alice", "s3cret") == 0


def test_hosts_read_a_redis_set_and_a_list(tmp_path, redis_srv, origin):
    r = redis_srv.client()
    r.sadd("gost:hosts:set", "127.0.0.1 one.test", "not-an-ip ignored.test")
    r.rpush("gost:hosts:list", "127.0.0.1 two.test alias.test  # a comment")
    ps, pl = free_port(), free_port()
    cfg = {"services": [http_svc("s", ps, hosts="hs"), http_svc("l", pl, hosts="hl")],
           "hosts": [{"name": "hs", "reload": "200ms", "redis": rds(redis_srv, "gost:hosts:set")},
                     {"name": "hl", "redis": rds(redis_srv, "gost:hosts:list", type="list")}]}

    def get(port, name):
        return curl_code("-x", f"http://127.0.0.1:{port}", f"http://{name}:{origin.port}/", timeout=5)[1]

    with run(tmp_path, cfg, [ps, pl]):
        assert get(ps, "one.test") == 200
        assert get(pl, "alias.test") == 200 and get(pl, "two.test") == 200
        assert get(ps, "two.test") != 200 and get(ps, "ignored.test") != 200
        r.sadd("gost:hosts:set", "127.0.0.1 three.test")
        assert until(lambda: get(ps, "three.test") == 200)


def test_limiters_of_each_kind_read_a_redis_set_or_list(tmp_path, redis_srv, origin):
    r = redis_srv.client()
    for kind, rtype, line in (("limiters", "set", "$ 0 128KB"), ("limiters", "list", "$ 0 128KB"),
                              ("climiters", "set", "$ 1"), ("climiters", "list", "$ 1"),
                              ("rlimiters", "set", "$ 1"), ("rlimiters", "list", "$ 1")):
        (r.sadd if rtype == "set" else r.rpush)(f"gost:{kind}:{rtype}", line)
    ports = {}
    services, objects = [], {"limiters": [], "climiters": [], "rlimiters": []}
    for kind, key in (("limiters", "limiter"), ("climiters", "climiter"), ("rlimiters", "rlimiter")):
        for rtype in ("set", "list"):
            name = f"{kind}-{rtype}"
            ports[name] = free_port()
            services.append(http_svc(name, ports[name], **{key: name}))
            objects[kind].append({"name": name, "redis": rds(redis_srv, f"gost:{kind}:{rtype}", type=rtype)})
    with Echo() as echo, run(tmp_path, {"services": services, **objects}, list(ports.values())) as g:
        size = 128 << 10

        def download(port, out):
            t0 = time.monotonic()
            rc, status, body = curl_code("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}", timeout=10)
            out.append((status, len(body), time.monotonic() - t0))

        results = {n: [] for n in ("limiters-set", "limiters-list")}
        threads = [threading.Thread(target=download, args=(ports[n], results[n])) for n in results]
        for t in threads:
            t.start()
        for kind in ("climiters-set", "climiters-list"):
            first = tunnel(ports[kind], f"127.0.0.1:{echo.port}")
            assert first is not None, g.log_text()[-2000:]
            try:
                assert tunnel(ports[kind], f"127.0.0.1:{echo.port}") is None, f"{kind}: a second connection passed"
            finally:
                first.close()
        for kind in ("rlimiters-set", "rlimiters-list"):
            passed = 0
            for _ in range(4):
                s = tunnel(ports[kind], f"127.0.0.1:{echo.port}")
                passed += s is not None
                if s is not None:
                    s.close()
            assert 1 <= passed < 4, f"{kind}: {passed} of 4 requests in a burst passed at 1/s"
        for t in threads:
            t.join(15)
        for n, res in results.items():
            status, got, secs = res[0]
            # 128 KiB at 128 KiB/s: about a second (less any burst); unlimited takes ms
            assert status == 200 and got == size and secs > 0.5, (n, res)


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` {path: (status, body)}; counts requests."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.hits += 1
        status, body = self.server.files.get(self.path, (404, b""))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FileServer(HTTPServerThread):
    def __init__(self, files):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
        self.server.files = files
        self.server.hits = 0
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def test_inline_file_redis_http_combine_in_gosts_order(tmp_path, redis_srv, origin):
    """Auth: the same user in all four sources, a later source wins (inline < file < redis <
    http); bypass: the four sources' items add up. An http source that starts failing keeps its
    last good lines (logged once); one that answers again is read again (recovery logged)."""
    r = redis_srv.client()
    r.hset("gost", mapping={"u": "from-redis", "r": "r"})
    r.sadd("gost:bp", "127.0.0.3")
    af, bf = tmp_path / "auth.txt", tmp_path / "bypass.txt"
    af.write_text("u from-file\nf f\n")
    bf.write_text("127.0.0.2  # from the file\n")
    files = {"/auth": (200, b"u from-http\nh h\n"), "/bypass": (200, b"127.0.0.4\n")}
    p, q = free_port(), free_port()
    with FileServer(files) as fs:
        cfg = {"services": [socks_svc("s", p, handler={"type": "socks5", "auther": "au"}),
                            socks_svc("b", q, bypass="bp")],
               "authers": [{"name": "au", "reload": "200ms", "auths": [{"username": "u", "password": "inline"},
                                                                   {"username": "i", "password": "i"}],
                            "file": {"path": str(af)}, "redis": {"addr": redis_srv.addr},
                            "http": {"url": f"{fs.url}/auth", "timeout": "2s"}}],
               "bypasses": [{"name": "bp", "reload": "200ms", "matchers": ["127.0.0.5"], "file": {"path": str(bf)},
                             "redis": rds(redis_srv, "gost:bp"), "http": {"url": f"{fs.url}/bypass"}}]}

        def auth(user, pw):
            return socks5(p, dport=origin.port, user=user, password=pw)

        def refused(ip):
            return socks5(q, host=ip, dport=origin.port) not in (0, None)

        with run(tmp_path, cfg, [p, q]) as g:
            assert auth("u", "from-http") == 0
            for pw in ("inline", "from-file", "from-redis"):
                assert auth("u", pw) is None, pw
            for user in "ifrh":
                assert auth(user, user) == 0, user
            for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
                assert refused(ip), ip
            assert not refused("127.0.0.1")

            files["/auth"] = (500, b"")
            hits = fs.server.hits
            assert until(lambda: fs.server.hits >= hits + 2)   # failed polls (retried after 1 s, 2 s …)
            assert auth("u", "from-http") == 0                 # the last good lines stay
            warn = [x for x in log_records(g, loader="http") if x.get("level") == "warning"]
            assert len(warn) == 1 and "HTTP 500" in warn[0]["msg"], warn
            files["/auth"] = (200, b"h h\n")                   # u no longer in http: redis wins
            assert until(lambda: auth("u", "from-redis") == 0, timeout=10), g.log_text()[-2000:]
            assert [x["msg"] for x in log_records(g, loader="http", level="info")] == ["http loader recovered"]
