"""``http2`` connector: CONNECT on a new stream of the node's HTTP/2 connection (as GOST's), with
Basic ``Proxy-Authorization`` when the node has credentials. GOST metadata: ``header`` (extra
request headers), ``timeout`` (bounds the CONNECT exchange). The node's dialer must be
``http2``: it is what holds the connection."""
import base64

import gevent

from ..dialers.http2 import extra_headers
from ..errors import DialError, ProtocolError
from ..transport.mux.h2 import SessionRef
from ..core.registry import connectors
from .base import Connector


@connectors.register("http2")
class HTTP2Connector(Connector):
    def __init__(self, md, auth=None):
        super().__init__(md, auth)
        self.header = extra_headers(md)
        self.timeout = md.duration("timeout")

    def connect(self, conn, network, address, ctx=None):
        if not isinstance(conn, SessionRef):
            raise DialError("http2: wrong connection type (the node's dialer must be http2)")
        session = conn.session
        headers = [(":method", "CONNECT"), (":authority", address), *self.header]
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1] or ''}".encode()).decode()
            headers.append(("proxy-authorization", f"Basic {token}"))
        st = None
        try:
            with gevent.Timeout(self.timeout or None, DialError(f"CONNECT {address}: timeout")):
                st = session.open(headers)
                status, _ = st.response()
        except (OSError, ProtocolError, DialError) as exc:
            if st is not None:
                st.close()
            raise DialError(f"CONNECT {address}: {exc}") from exc
        if status != 200:
            st.close()
            raise DialError(f"CONNECT {address}: {status}")
        st.owns_session = session.private
        return st
