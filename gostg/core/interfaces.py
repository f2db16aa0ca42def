"""The interfaces of GOST's model, one tiny protocol per concept (go-gost/core's
``handler.Handler``, ``listener.Listener``, ``connector.Connector``, ``dialer.Dialer``).

They are ``typing.Protocol``s: implementations do not inherit from them (the base classes in
``listeners/``, ``handlers/``, ``connectors/``, ``dialers/`` share code, not a contract), and a
host application can hand gostg its own conn as long as it has these methods. Type checkers and
``isinstance`` (the protocols are runtime-checkable) see whether an object fits. This module
imports nothing of gostg's and no gevent.
"""
from typing import Any, Optional, Protocol, Tuple, runtime_checkable


@runtime_checkable
class StreamConn(Protocol):
    """A byte stream that behaves like a blocking socket (DESIGN.md "Conn interface").
    ``fileno()`` exists only on real sockets: that is how the relay picks its fast path."""

    def recv(self, n: int) -> bytes: ...

    def recv_into(self, buf, nbytes: int = 0) -> int: ...

    def sendall(self, data) -> None: ...

    def shutdown(self, how: int) -> None: ...

    def close(self) -> None: ...

    def getpeername(self) -> Any: ...


@runtime_checkable
class PacketConn(Protocol):
    """Datagrams with addresses (``"host:port"`` strings); ``read_from`` raises EOFError once
    the conn is closed. A conn bound to one peer ignores the address it is given."""

    def read_from(self) -> Tuple[bytes, str]: ...

    def write_to(self, data: bytes, addr: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Listener(Protocol):
    """The data channel of a service: ``bind()`` when the service is built (so a port in use is
    a build error), ``server(handle, pool)`` the accept loop, ``wrap(sock)`` the transport
    (TLS handshake, WebSocket upgrade …) in the connection's own greenlet."""

    addr: str
    socket: Any

    def bind(self) -> None: ...

    def adopt(self, sock) -> None: ...

    def server(self, handle, pool) -> Any: ...

    def wrap(self, sock) -> Any: ...

    def close(self) -> None: ...


@runtime_checkable
class Handler(Protocol):
    """One protocol: authenticate, find the target (or take the forwarder's), dial through the
    router, answer the client, relay. Runs in the connection's greenlet, blocking style."""

    def handle(self, conn: StreamConn, ctx) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Connector(Protocol):
    """The client side of a handler: ask the node at the far end of ``conn`` to connect on to
    ``address``; → the conn that now leads there."""

    def handshake(self, conn: StreamConn) -> StreamConn: ...

    def connect(self, conn: StreamConn, network: str, address: str, ctx=None) -> Any: ...


@runtime_checkable
class Dialer(Protocol):
    """The client side of a listener: ``dial`` opens the real socket (hop 0 only); ``handshake``
    runs the transport over a stream and is all that later hops use."""

    multiplex: bool

    def dial(self, addr: str, timeout: Optional[float]) -> StreamConn: ...

    def handshake(self, conn: StreamConn) -> StreamConn: ...
