"""Probe resistance on the ``http`` handler (tutorials/probe-resistance.md), driven by curl: a
client without (or with wrong) credentials sees the decoy (a status code, a web page fetched
from a loopback origin, the answer of a loopback web server, a file), a client asking for the
``knock`` host gets the real 407, a client with good credentials is proxied."""
from .helpers import Gost, Origin, free_port, run_gostg
from .peers import curl, curl_code


def _headers(*args):
    """curl's response head (``-D -``, body discarded) as lowercase text."""
    return curl("-s", "-o", "/dev/null", "-D", "-", *args).stdout.decode(errors="replace").lower()


def test_probe_resist_modes_and_knock(tmp_path):
    page = tmp_path / "decoy.html"
    page.write_bytes(b"<html>nothing to see</html>\n")
    a, b, c, d, e, f = (free_port() for _ in range(6))
    with Origin() as origin, Gost(
            # the docs' command line, on loopback ports
            "-L", f"http://gost:gost@127.0.0.1:{a}?probeResist=code:400&knock=www.example.com",
            "-L", f"http://gost:gost@127.0.0.1:{b}?probeResist=web:127.0.0.1:{origin.port}/page.html",
            "-L", f"http://gost:gost@127.0.0.1:{c}?probeResist=host:127.0.0.1:{origin.port}",
            "-L", f"http://gost:gost@127.0.0.1:{d}?probeResist=file:{page}",
            # the docs' https line: a TLS port that looks like a web server to a prober
            "-L", f"https://gost:gost@127.0.0.1:{e}?probeResist=host:127.0.0.1:{origin.port}",
            # the auto handler (a bare -L) answers HTTP clients with the same decoy
            "-L", f"gost:gost@127.0.0.1:{f}?probeResist=code:404",
            ports=[a, b, c, d, e, f]):
        target = f"{origin.url}/secret"
        # code: no auth, wrong auth, and a scanner talking to the port as a web server
        for args in (("-x", f"http://127.0.0.1:{a}", target), ("-x", f"http://x:y@127.0.0.1:{a}", target),
                     (f"http://127.0.0.1:{a}/",)):
            rc, status, body = curl_code(*args)
            assert (status, body) == (400, b""), args
        head = _headers("-x", f"http://127.0.0.1:{a}", target)
        assert "proxy-authenticate" not in head and "proxy-agent" not in head
        # knock: the secret host gets the real challenge (auth fails before any dial)
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{a}", "http://www.example.com/")
        assert status == 407
        assert 'proxy-authenticate: basic realm="gost"' in _headers("-x", f"http://127.0.0.1:{a}",
                                                                    "http://www.example.com/")
        # good credentials are proxied as ever
        rc, status, body = curl_code("-x", f"http://gost:gost@127.0.0.1:{a}", target)
        assert (rc, status) == (0, 200) and body.startswith(b"hello from origin /secret ")
        # web: the page fetched from the origin
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{b}", target)
        assert (status, body) == (200, f"hello from origin /page.html host=127.0.0.1:{origin.port}\n".encode())
        # host: the request itself goes to the web server, in origin form
        rc, status, body = curl_code(f"http://127.0.0.1:{c}/probe")
        assert (status, body) == (200, f"hello from origin /probe host=127.0.0.1:{c}\n".encode())
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{c}", target)
        assert (status, body) == (200, f"hello from origin /secret host=127.0.0.1:{origin.port}\n".encode())
        # file: its contents, 200
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{d}", target)
        assert (status, body) == (200, page.read_bytes())
        rc, status, body = curl_code("-k", f"https://127.0.0.1:{e}/tls")
        assert (status, body) == (200, f"hello from origin /tls host=127.0.0.1:{e}\n".encode())
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{f}", target)
        assert (status, body) == (404, b"")
        # CONNECT without credentials meets the decoy too
        p = curl("-p", "-w", "%{http_connect}", "-x", f"http://127.0.0.1:{a}", f"http://127.0.0.1:{origin.port}/")
        assert p.stdout.endswith(b"400")


def test_bad_probe_resist_is_a_config_error():
    """A typo would silently show GOST's 503 instead of the decoy asked for (more in test_probe)."""
    p = run_gostg("-L", f"http://gost:gost@127.0.0.1:{free_port()}?probeResist=cod:404")
    assert p.returncode != 0 and "services[0].handler.metadata.probeResist" in p.stderr + p.stdout
