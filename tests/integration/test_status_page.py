"""The status page in a real browser: headless Chromium (apt ``chromium``) opens
``{pathPrefix}/ui`` of a ``bin/gostg`` whose API has basic auth, answering the auth challenge
as a user would in the browser's prompt. The page must show the services, the chain node that
failed with its error, the error line from the log, and — read twice, seconds apart, while curl
pulls a download through the http service from an origin that sends it slowly (so that the
bytes cross gostg while the page watches, not all at once into socket buffers) — live counters
that move: one connection in flight, bytes growing before the download ends, then the whole
body counted.
A screenshot of the page is saved in the test's tmp dir (a non-empty PNG)."""
import http.server
import os
import threading
import time

import pytest

from .browser import CHROMIUM, Chromium
from .helpers import Gost, HTTPServerThread, _ThreadingHTTP, free_port
from .peers import curl_code

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="chromium is not installed (apt install chromium)")

USER, PASSWORD = "admin", "s3cret"
BODY = 6_000_000
CHUNK, PAUSE = 150_000, 0.1   # the origin's pace: the download takes about four seconds


class _Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        n = BODY if self.path == "/slow" else 10
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        chunk = b"x" * CHUNK
        while n > 0:
            self.wfile.write(chunk[:n])
            n -= CHUNK
            if n > 0:
                time.sleep(PAUSE)


class SlowOrigin(HTTPServerThread):
    """GET /slow: BODY bytes, CHUNK every PAUSE seconds; anything else: 10 bytes at once."""

    def __init__(self):
        self.server = _ThreadingHTTP(("127.0.0.1", 0), _Slow)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

READ_ROW = """(() => {
  const tr = document.querySelector('tr[data-service="%s"]');
  if (!tr) return null;
  const v = (c) => Number(tr.querySelector('.' + c).getAttribute('data-value'));
  return {conns: v('conns'), total: v('total'), errs: v('errs'), inp: v('in'), out: v('out'),
          rate: Number(tr.querySelector('.rate').getAttribute('data-value')), text: tr.innerText,
          updated: document.querySelector('#updated').textContent};
})()"""


def config(api, web, via, dead):
    return f"""
api:
  addr: 127.0.0.1:{api}
  pathPrefix: /gostg
  auth: {{username: {USER}, password: {PASSWORD}}}
services:
  - name: web
    addr: 127.0.0.1:{web}
    handler: {{type: http}}
    listener: {{type: tcp}}
  - name: via-dead
    addr: 127.0.0.1:{via}
    handler: {{type: http, chain: dead-chain}}
    listener: {{type: tcp}}
chains:
  - name: dead-chain
    hops:
      - name: hop-0
        nodes:
          - name: gone
            addr: 127.0.0.1:{dead}
            connector: {{type: http}}
"""


def test_status_page_in_chromium(tmp_path):
    api, web, via, dead = free_port(), free_port(), free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(config(api, web, via, dead))
    with SlowOrigin() as origin, Gost("-C", cfg, ports=(api, web, via), env={"GOSTG_STRICT_SCHEMA": "1"}) as g, \
            Chromium(tmp_path) as browser:
        # the chain's only node refuses: it is marked failed and an error line is logged
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{via}", f"{origin.url}/", timeout=5)
        assert rc == 0 and status in (502, 503), (rc, status)

        page = browser.page()
        try:
            page.answer_auth(USER, PASSWORD)
            page.call("Page.navigate", url=f"http://127.0.0.1:{api}/gostg/ui")
            first = page.wait_for(READ_ROW % "web")
            assert page.auth_challenges >= 1   # the page is behind the API's auth
            # from here on the page's once-a-second fetches ride on the browser's credentials
            page.call("Fetch.disable")
            assert "ready" in first["text"] and f"127.0.0.1:{web}" in first["text"] and "tcp / http" in first["text"]
            assert page.evaluate(READ_ROW % "via-dead")["text"].count("dead-chain") == 1
            node = page.wait_for("""(() => { const tr = document.querySelector('tr[data-node="dead-chain/hop-0/gone"]');
                                     return tr && tr.innerText; })()""")
            assert f"127.0.0.1:{dead}" in node and "1 / 1" in node and "refused" in node, node
            errors = page.wait_for("document.querySelector('#errors tbody').innerText")
            assert "via-dead" in errors and "refused" in errors, errors

            # a download in flight: the page's counters move before it ends
            result = {}
            pull = threading.Thread(target=lambda: result.update(r=curl_code(
                "-o", os.devnull, "-x", f"http://127.0.0.1:{web}", f"{origin.url}/slow", timeout=20)))
            pull.start()
            try:
                page.pump(1.5)
                one = page.evaluate(READ_ROW % "web")
                page.pump(1.5)
                two = page.evaluate(READ_ROW % "web")
                running = pull.is_alive()
                conns = page.evaluate("document.querySelector('#conns tbody').innerText")
            finally:
                pull.join(25)
            assert running, "the download ended before the second read: the test proves nothing"
            assert two["conns"] == 1, two
            moved = (two["inp"] + two["out"]) - (one["inp"] + one["out"])
            assert moved > 500_000, (one, two)
            assert two["rate"] > 100_000, two
            assert not two["updated"].startswith("not updating"), two
            assert "web" in conns and f"{origin.url[7:]}" in conns, conns   # the open download, listed

            # the download done: the whole body is counted, nothing in flight
            assert result["r"][:2] == (0, 200), result
            done = page.wait_for(f"""(() => {{ const r = {READ_ROW % "web"};
                                     return r && r.conns === 0 && r.out + r.inp >= {BODY} && r; }})()""")
            # (the start-up's port check was a connection too: count from the first read)
            assert done["total"] == first["total"] + 1 and done["errs"] == 0, (first, done)
            assert BODY <= done["inp"] + done["out"] <= BODY + 2000, done   # body + HTTP heads

            # the chart drew the download: pixels painted in the service's canvas
            painted = page.evaluate("""(() => {
              const c = document.querySelector('tr[data-service="web"] canvas');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0;
              for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
              return n; })()""")
            assert painted > 100, painted
            shot = page.screenshot()
        finally:
            page.close()
        png = tmp_path / "status-page.png"
        png.write_bytes(shot)
        assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert g.proc.poll() is None
