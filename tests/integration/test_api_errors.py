"""The Web API refusing bad input, through a real HTTP client against ``bin/gostg -api``.

Every refused change must (a) answer the documented status and GOST code, (b) leave
``GET /config`` exactly as it was (ignoring the services' traffic counters and event logs),
and (c) leave the running services carrying traffic (curl through the socks5 service, and
through an http service whose chain goes through it).

Also: Basic auth on ``/config*`` only, CORS, ``pathPrefix``, and the three ways to enable the
API (``-api``, ``GOST_API``, a config file's ``api:``).
"""
import base64
import http.client
import json

import pytest

from .helpers import Gost, Origin, free_port
from .peers import curl_code

USER, PASSWORD = "admin", "pa55:word"


def _auth_header(user=USER, password=PASSWORD):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(port, method, path, body=None, headers=None, auth=True, raw=False):
    """→ (status, headers as a lower-cased dict, parsed JSON body or raw bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        h["Authorization"] = _auth_header()
    h.update(headers or {})
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()
    if raw:
        return r.status, hdrs, data
    try:
        return r.status, hdrs, json.loads(data) if data else None
    except ValueError:
        return r.status, hdrs, data


def config_state(port, auth=True):
    """GET /config minus what traffic changes: each service status' stats and events."""
    status, _, cfg = request(port, "GET", "/config", auth=auth)
    assert status == 200, cfg
    for s in cfg.get("services") or []:
        st = s.get("status")
        if isinstance(st, dict):
            st.pop("stats", None)
            st.pop("events", None)
    return cfg


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def gw(origin, tmp_path_factory):
    """gostg with an authenticated API, a socks5 service (CLI), and, created through the API, a
    hop + chain through that socks5 service and an http service using the chain."""
    tmp = tmp_path_factory.mktemp("api-errors")
    api, socks, http_port = free_port(), free_port(), free_port()
    g = Gost("-api", f"{USER}:{PASSWORD}@127.0.0.1:{api}", "-L", f"socks5://127.0.0.1:{socks}",
             ports=(api, socks), cwd=str(tmp))
    with g:
        assert request(api, "POST", "/config/hops", {"name": "hop-a", "nodes": [
            {"name": "n1", "addr": f"127.0.0.1:{socks}", "connector": {"type": "socks5"}}]})[0] == 200
        assert request(api, "POST", "/config/chains", {"name": "chain-a", "hops": [{"name": "hop-a"}]})[0] == 200
        assert request(api, "POST", "/config/services", {
            "name": "http-a", "addr": f"127.0.0.1:{http_port}",
            "handler": {"type": "http", "chain": "chain-a"}})[0] == 200
        gw = {"api": api, "socks": socks, "http": http_port, "tmp": tmp, "gost": g, "origin": origin}
        assert_traffic(gw)
        yield gw


def assert_traffic(gw):
    url = f"{gw['origin'].url}/after"
    rc, status, body = curl_code("--socks5-hostname", f"127.0.0.1:{gw['socks']}", url)
    assert (rc, status) == (0, 200) and b"hello from origin /after" in body, (rc, status, body)
    rc, status, body = curl_code("-x", f"http://127.0.0.1:{gw['http']}", url)
    assert (rc, status) == (0, 200) and b"hello from origin /after" in body, (rc, status, body)


def _big_body():
    return b'{"name": "big", "pad": "' + b"a" * (4 * 1024 * 1024) + b'"}'


#: (id, method, path, body (bytes are sent as they are), expected status, expected code,
#:  substring of msg or None). ``{socks}``/``{api}`` in the path/body are filled in.
CASES = [
    # malformed or not an object → 400/40001
    ("malformed-json", "POST", "/config/services", b'{"name": "x", "addr": ', 400, 40001, "JSON"),
    ("malformed-json-put", "PUT", "/config/services/service-0", b"{name: service-0}", 400, 40001, "JSON"),
    ("invalid-utf8", "POST", "/config/chains", b'{"name": "\xff\xfe"}', 400, 40001, None),
    ("empty-body", "POST", "/config/services", b"", 400, 40001, None),
    ("body-list", "POST", "/config/services", b'[{"name": "x", "addr": "127.0.0.1:0"}]', 400, 40001, "object"),
    ("body-string", "POST", "/config/services", b'"service-9"', 400, 40001, "object"),
    ("body-number", "POST", "/config/services", b"42", 400, 40001, "object"),
    ("body-null-put", "PUT", "/config/chains/chain-a", b"null", 400, 40001, "object"),
    ("body-list-put", "PUT", "/config/services/service-0", b"[]", 400, 40001, "object"),
    ("oversize", "POST", "/config/services", _big_body, 400, 40001, "larger"),
    # no usable name → 400/40001
    ("missing-name", "POST", "/config/services", {"addr": "127.0.0.1:0", "handler": {"type": "socks5"}}, 400, 40001, "name"),
    ("empty-name", "POST", "/config/chains", {"name": "", "hops": []}, 400, 40001, "name"),
    ("name-not-string", "POST", "/config/bypasses", {"name": 123, "matchers": []}, 400, 40001, "name"),
    # duplicates → 400/40002
    ("duplicate-service", "POST", "/config/services", {"name": "service-0", "addr": "127.0.0.1:0"}, 400, 40002, "service-0"),
    ("duplicate-chain", "POST", "/config/chains", {"name": "chain-a", "hops": []}, 400, 40002, "chain-a"),
    # unknown kind / name → 40004
    ("unknown-kind-get", "GET", "/config/nope", None, 404, 40004, "nope"),
    ("unknown-kind-post", "POST", "/config/nope", {"name": "x"}, 404, 40004, "nope"),
    ("unknown-kind-get-one", "GET", "/config/nope/x", None, 404, 40004, "nope"),
    ("unknown-kind-put", "PUT", "/config/nope/x", {"name": "x"}, 404, 40004, "nope"),
    ("unknown-kind-delete", "DELETE", "/config/nope/x", None, 404, 40004, "nope"),
    ("put-missing", "PUT", "/config/services/ghost", {"addr": "127.0.0.1:0"}, 400, 40004, "ghost"),
    ("put-missing-chain", "PUT", "/config/chains/ghost", {"hops": []}, 400, 40004, "ghost"),
    ("delete-missing", "DELETE", "/config/services/ghost", None, 400, 40004, "ghost"),
    ("delete-missing-hop", "DELETE", "/config/hops/ghost", None, 400, 40004, "ghost"),
    # wrong types / unknown types / build failures → 409/40003
    ("addr-list", "POST", "/config/services", {"name": "bad", "addr": ["127.0.0.1:0"]}, 409, 40003, "addr"),
    ("handler-string", "POST", "/config/services", {"name": "bad", "addr": "127.0.0.1:0", "handler": "socks5"}, 409, 40003, "handler"),
    ("retries-string", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:0", "handler": {"type": "socks5", "retries": "x"}}, 409, 40003, "retries"),
    ("unknown-handler", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:0", "handler": {"type": "nope"}}, 409, 40003, "nope"),
    ("unknown-listener", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:0", "listener": {"type": "nope"}}, 409, 40003, "nope"),
    ("unknown-handler-put", "PUT", "/config/services/service-0",
     {"addr": "127.0.0.1:{socks}", "handler": {"type": "nope"}}, 409, 40003, "nope"),
    ("hop-node-no-addr", "POST", "/config/hops", {"name": "bad", "nodes": [{"name": "n"}]}, 409, 40003, "addr"),
    ("chain-hop-number", "POST", "/config/chains", {"name": "bad", "hops": [5]}, 409, 40003, "hops"),
    ("chain-put-bad-hop", "PUT", "/config/chains/chain-a", {"hops": [{"name": "h", "nodes": [{"name": "n"}]}]},
     409, 40003, "addr"),
    ("bad-strategy", "POST", "/config/hops",
     {"name": "bad", "selector": {"strategy": "nope"}, "nodes": [{"name": "n", "addr": "127.0.0.1:1"}]}, 409, 40003, "nope"),
    # address in use → 409/40003 naming the address
    ("port-in-use", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:{socks}", "handler": {"type": "socks5"}}, 409, 40003, "127.0.0.1:{socks}"),
    ("port-in-use-api", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:{api}", "handler": {"type": "http"}}, 409, 40003, "127.0.0.1:{api}"),
    ("put-port-in-use", "PUT", "/config/services/service-0",
     {"addr": "127.0.0.1:{api}", "handler": {"type": "socks5"}}, 409, 40003, "127.0.0.1:{api}"),
    # references to missing objects are GOST's forward references: accepted (200 + warnings) and
    # refusing connections until created — tests/integration/test_failclosed.py
    # found by the schema fuzzing: wrong types that crash gostg (500) instead of 40003
    ("chain-ref-list", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:0", "handler": {"type": "http", "chain": ["chain-a"]}}, 409, 40003, "chain"),
    ("listener-chain-list", "PUT", "/config/services/service-0",
     {"addr": "127.0.0.1:{socks}", "handler": {"type": "socks5"}, "listener": {"chain": [None, None]}}, 409, 40003, "chain"),
    ("admission-dict", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:0", "admission": {"a": 1}}, 409, 40003, "admission"),
    ("authers-nested-list", "POST", "/config/services",
     {"name": "bad", "addr": "127.0.0.1:0", "handler": {"authers": [["x"]]}}, 409, 40003, "authers"),
    ("hosts-mappings-number", "POST", "/config/hosts", {"name": "bad", "mappings": 5}, 409, 40003, "mappings"),
    ("authers-auths-number", "POST", "/config/authers", {"name": "bad", "auths": 5}, 409, 40003, "auths"),
    ("resolvers-nameservers-number", "POST", "/config/resolvers", {"name": "bad", "nameservers": 5}, 409, 40003,
     "nameservers"),
    ("port-out-of-range", "POST", "/config/services", {"name": "bad", "addr": "127.0.0.1:99999"}, 409, 40003, "99999"),
    ("port-negative", "PUT", "/config/services/service-0", {"addr": "127.0.0.1:-1"}, 409, 40003, "-1"),
    ("addr-nul", "POST", "/config/services", {"name": "bad", "addr": "\u0000:0"}, 409, 40003, "addr"),
    # routing
    ("method-not-allowed", "PUT", "/config/services", {"name": "x"}, 405, 405, None),
    ("method-not-allowed-config", "DELETE", "/config", None, 405, 405, None),
    ("no-such-route", "GET", "/config/services/a/b", None, 404, 404, None),
    # saving to a directory that does not exist → 500/40005 (nothing written, nothing changed)
    ("save-failed", "POST", "/config?path=no/such/dir/gost.yaml", None, 500, 40005, "no/such/dir"),
]


def _fill(v, gw):
    if isinstance(v, str):
        return v.format(socks=gw["socks"], api=gw["api"], http=gw["http"])
    if isinstance(v, dict):
        return {k: _fill(x, gw) for k, x in v.items()}
    if isinstance(v, list):
        return [_fill(x, gw) for x in v]
    return v


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_change_changes_nothing(gw, case):
    _id, method, path, body, want_status, want_code, want_msg = case
    if callable(body):
        body = body()
    before = config_state(gw["api"])
    status, headers, reply = request(gw["api"], method, _fill(path, gw), _fill(body, gw))
    after = config_state(gw["api"])
    assert (status, reply.get("code") if isinstance(reply, dict) else reply) == (want_status, want_code), reply
    assert isinstance(reply.get("msg"), str) and reply["msg"]
    if want_msg:
        assert _fill(want_msg, gw) in reply["msg"], reply
    assert headers.get("content-type") == "application/json"
    assert headers.get("access-control-allow-origin") == "*"
    assert after == before
    assert gw["gost"].proc.poll() is None
    assert_traffic(gw)


def test_valid_changes_still_work_afterwards(gw):
    """The refusals above did not wedge anything: create, read, replace, delete a service."""
    port = free_port()
    svc = {"name": "extra", "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5"}}
    assert request(gw["api"], "POST", "/config/services", svc)[:3:2] == (200, {"msg": "OK"})
    status, _, got = request(gw["api"], "GET", "/config/services/extra")
    assert status == 200 and got["data"]["name"] == "extra" and got["data"]["addr"] == f"127.0.0.1:{port}"
    rc, code, _ = curl_code("--socks5-hostname", f"127.0.0.1:{port}", f"{gw['origin'].url}/x")
    assert (rc, code) == (0, 200)
    status, _, got = request(gw["api"], "PUT", "/config/services/extra", {**svc, "name": "ignored", "handler": {"type": "http"}})
    assert status == 200, got
    status, _, got = request(gw["api"], "GET", "/config/services/extra")
    assert got["data"]["handler"]["type"] == "http" and got["data"]["name"] == "extra"
    rc, code, _ = curl_code("-x", f"http://127.0.0.1:{port}", f"{gw['origin'].url}/y")
    assert (rc, code) == (0, 200)  # same port, now an HTTP proxy
    assert request(gw["api"], "DELETE", "/config/services/extra")[0] == 200
    status, _, got = request(gw["api"], "GET", "/config/services/extra")
    assert (status, got) == (200, {"data": {}})
    # the port was released: the same address can be created again, then removed
    assert request(gw["api"], "POST", "/config/services", svc)[0] == 200
    assert request(gw["api"], "DELETE", "/config/services/extra")[0] == 200
    assert_traffic(gw)


def test_save_writes_the_config_without_status(gw):
    before = config_state(gw["api"])
    status, _, body = request(gw["api"], "POST", "/config?format=json&path=saved.json")
    assert (status, body) == (200, {"msg": "OK"})
    with open(gw["tmp"] / "saved.json") as f:
        saved = json.load(f)
    for s in before["services"]:
        s.pop("status")
    assert saved == before


# -- Basic auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [("GET", "/config"), ("GET", "/config/services"),
                                         ("GET", "/config/services/service-0"), ("POST", "/config/reload"),
                                         ("DELETE", "/config/services/service-0"), ("POST", "/config")])
@pytest.mark.parametrize("cred", ["none", "wrong-password", "wrong-user", "bearer", "garbage"])
def test_config_needs_basic_auth(gw, method, path, cred):
    headers = {"none": {}, "wrong-password": {"Authorization": _auth_header(USER, "nope")},
               "wrong-user": {"Authorization": _auth_header("root", PASSWORD)},
               "bearer": {"Authorization": "Bearer " + PASSWORD},
               "garbage": {"Authorization": "Basic !!!not-base64"}}[cred]
    before = config_state(gw["api"])
    status, hdrs, body = request(gw["api"], method, path, headers=headers, auth=False)
    assert status == 401
    assert body == {"code": 401, "msg": "Unauthorized"}
    assert hdrs.get("www-authenticate", "").startswith("Basic")
    assert hdrs.get("access-control-allow-origin") == "*"
    assert config_state(gw["api"]) == before
    assert not any(p.name.startswith("gost.") for p in gw["tmp"].iterdir())  # POST /config saved nothing


def test_right_credentials_pass(gw):
    status, _, body = request(gw["api"], "GET", "/config/services")
    assert status == 200 and body["data"]["count"] == len(body["data"]["list"]) == 2


def test_swagger_needs_no_auth(gw):
    status, hdrs, body = request(gw["api"], "GET", "/docs/swagger.yaml", auth=False, raw=True)
    assert status == 200
    assert hdrs["content-type"].startswith("text/x-yaml")
    assert body.startswith(b"openapi: 3.0")
    assert hdrs.get("access-control-allow-origin") == "*"


# -- CORS ---------------------------------------------------------------------------------------


def test_cors_headers_on_responses(gw):
    for method, path, auth in (("GET", "/config", True), ("GET", "/config/nope", True),
                               ("GET", "/config", False), ("GET", "/elsewhere", True)):
        status, hdrs, _ = request(gw["api"], method, path, auth=auth, headers={"Origin": "http://ui.example"})
        assert hdrs.get("access-control-allow-origin") == "*", (method, path, status)
        methods = {m.strip() for m in hdrs.get("access-control-allow-methods", "").split(",")}
        assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods, (path, methods)
        assert hdrs.get("access-control-allow-headers") == "*"


@pytest.mark.parametrize("path", ["/config", "/config/services/service-0", "/docs/swagger.yaml"])
def test_cors_preflight(gw, path):
    before = config_state(gw["api"])
    status, hdrs, body = request(gw["api"], "OPTIONS", path, auth=False, raw=True, headers={
        "Origin": "http://ui.example", "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204 and body == b""
    assert hdrs.get("access-control-allow-origin") == "*"
    assert "DELETE" in hdrs.get("access-control-allow-methods", "")
    assert hdrs.get("access-control-allow-headers") == "*"
    assert config_state(gw["api"]) == before  # the preflight did not delete anything


# -- ways to enable the API ---------------------------------------------------------------------


def test_path_prefix(tmp_path):
    api, socks = free_port(), free_port()
    with Gost("-api", f"127.0.0.1:{api}?pathPrefix=/api", "-L", f"socks5://127.0.0.1:{socks}",
              ports=(api, socks), cwd=str(tmp_path)):
        status, _, body = request(api, "GET", "/api/config", auth=False)
        assert status == 200 and body["services"][0]["addr"] == f"127.0.0.1:{socks}"
        status, _, body = request(api, "GET", "/api/config/services", auth=False)
        assert status == 200 and body["data"]["count"] == 1
        assert request(api, "GET", "/api/docs/swagger.yaml", auth=False, raw=True)[0] == 200
        for path in ("/config", "/config/services", "/docs/swagger.yaml", "/apiconfig", "/"):
            status, hdrs, body = request(api, "GET", path, auth=False)
            assert status == 404, path
            assert isinstance(body, dict) and body.get("code") == 404, (path, body)
        # a change through the prefix works, and is refused the same way
        assert request(api, "POST", "/api/config/chains", {"name": "c1", "hops": []}, auth=False)[0] == 200
        status, _, body = request(api, "POST", "/api/config/chains", {"name": "c1", "hops": []}, auth=False)
        assert (status, body["code"]) == (400, 40002)
        assert request(api, "POST", "/config/chains", {"name": "c2", "hops": []}, auth=False)[0] == 404
        status, _, body = request(api, "GET", "/api/config/chains", auth=False)
        assert [c["name"] for c in body["data"]["list"]] == ["c1"]


def test_gost_api_env_enables_the_api(tmp_path):
    api, socks = free_port(), free_port()
    with Gost("-L", f"socks5://127.0.0.1:{socks}", ports=(api, socks), cwd=str(tmp_path),
              env={"GOST_API": f"127.0.0.1:{api}"}):
        status, _, body = request(api, "GET", "/config/services", auth=False)
        assert status == 200 and [s["name"] for s in body["data"]["list"]] == ["service-0"]
        assert request(api, "GET", "/docs/swagger.yaml", auth=False, raw=True)[0] == 200


def test_config_file_api_with_auth(tmp_path, origin):
    api, socks = free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(f"""
services:
- name: socks
  addr: 127.0.0.1:{socks}
  handler: {{type: socks5}}
api:
  addr: 127.0.0.1:{api}
  auth: {{username: {USER}, password: "{PASSWORD}"}}
""")
    with Gost("-C", cfg, ports=(api, socks), cwd=str(tmp_path)):
        status, hdrs, body = request(api, "GET", "/config", auth=False)
        assert (status, body) == (401, {"code": 401, "msg": "Unauthorized"})
        assert hdrs.get("www-authenticate", "").startswith("Basic")
        status, _, body = request(api, "GET", "/config", headers={"Authorization": _auth_header(USER, "x")}, auth=False)
        assert status == 401
        status, _, body = request(api, "GET", "/config")
        assert status == 200 and body["services"][0]["name"] == "socks"
        assert request(api, "GET", "/docs/swagger.yaml", auth=False, raw=True)[0] == 200
        # a refused change through this API leaves the file's service serving
        status, _, body = request(api, "POST", "/config/services", {"name": "x", "addr": f"127.0.0.1:{socks}"})
        assert (status, body["code"]) == (409, 40003) and f"127.0.0.1:{socks}" in body["msg"]
        rc, code, _ = curl_code("--socks5-hostname", f"127.0.0.1:{socks}", f"{origin.url}/file")
        assert (rc, code) == (0, 200)
        # a reload from a broken file is refused and keeps the running config
        good = cfg.read_text()
        before = config_state(api)
        for broken in ("services: [unclosed\n", good + "hosts:\n- name: h\n  mappings: 5\n"):
            cfg.write_text(broken)
            status, _, body = request(api, "POST", "/config/reload")
            assert (status, body.get("code")) == (409, 40003), (broken, body)
            assert config_state(api) == before
            rc, code, _ = curl_code("--socks5-hostname", f"127.0.0.1:{socks}", f"{origin.url}/file")
            assert (rc, code) == (0, 200)
