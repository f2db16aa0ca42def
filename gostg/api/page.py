"""The status page: ``{pathPrefix}/`` and ``{pathPrefix}/ui`` answer index.html, ``/ui/<file>``
its script and style sheet, all shipped in the package (gostg/api/ui/, package data in
setup.py): no build step, nothing fetched from elsewhere. The page reads ``api/status``
(gostg.api.status) once a second with the browser's own credentials for this origin.

index.html carries ``<base href="{pathPrefix}/">`` filled in here, so its relative links
(``ui/app.js``, ``api/status``) resolve under the prefix whichever of ``/``, ``/ui`` or
``/ui/`` the browser opened."""
import html
import os

UI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui")
#: the files served under /ui/ (nothing else is: no path from the request reaches open())
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
HEADERS = [("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
           ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
           ("X-Frame-Options", "DENY")]


def _read(name):
    with open(os.path.join(UI, name), "rb") as f:
        return f.read()


def index(prefix):
    """→ (status, content type, body, headers) of the page, its base the API's prefix."""
    body = _read("index.html").replace(b"{{BASE}}", html.escape(prefix + "/", quote=True).encode())
    return 200, "text/html; charset=utf-8", body, list(HEADERS)


def asset(name):
    """→ (status, content type, body, headers) of one shipped file, or None for any other name."""
    ctype = ASSETS.get(name)
    if ctype is None:
        return None
    return 200, ctype, _read(name), list(HEADERS)
