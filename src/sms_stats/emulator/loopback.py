"""Loopback HTTP plumbing shared by the local stand-ins (this emulator, and the test suite's COS,
chat-bot and webhook receivers).

Why one module: each stand-in needs the same few things from `http.server`, and each is easy to
get subtly wrong on its own. Binding must not wait on reverse DNS; stopping must be prompt even
while a handler hangs on purpose or a keep-alive connection idles, so handlers wait on an Event
that `stop()` sets, and `stop()` cuts every connection still open instead of joining threads;
the per-request stderr log is noise next to the stand-ins' own request logs.

Standard library only: it ships with the emulator, which must import neither pydantic nor the
Tencent SDK, and like the rest of `sms_stats.emulator` it is left out of the deployment zip.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar, cast

_Owner = TypeVar("_Owner")
_Service = TypeVar("_Service", bound="LoopbackService")


def reason(status: int) -> str:
    """The reason phrase for a status line; an injected non-standard status reads "Unknown"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _cut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its handler
        connection.shutdown(socket.SHUT_RDWR)


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server that binds fast and can release all its connections at once.

    `owner` is the stand-in the handlers serve; `released` is the Event its handlers wait on
    (latency, hangs), set by `release()`.
    """

    daemon_threads = True
    # server_close() must not join handler threads: a connection accepted just before
    # shutdown could idle for the handler's timeout. release() cuts connections instead.
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: object,
        released: threading.Event,
    ) -> None:
        self.owner = owner
        self.released = released
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN of the host, which can stall for seconds
        # on a machine with slow reverse DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (after a cut answer, a drip it gave up on) is no server
        error: socketserver would print a traceback for each."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        """Called by handlers as a connection opens (`add`) and closes."""
        with self._connections_lock:
            if not add:
                self._connections.discard(connection)
                return
            self._connections.add(connection)
        if self.released.is_set():  # accepted while release() was running: release it now
            _cut(connection)

    def release(self) -> None:
        """Stop promptly: wake waiting handlers, cut open connections (idle keep-alive ones
        included), close the listening socket; never waits on a client."""
        self.released.set()
        self.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _cut(connection)
        self.server_close()


def _dispatch(method: str) -> Callable[[LoopbackHandler[Any]], None]:
    def do(self: LoopbackHandler[Any]) -> None:
        self._serve(method)

    do.__name__ = f"do_{method}"
    return do


class LoopbackHandler(BaseHTTPRequestHandler, Generic[_Owner]):
    """A handler for a `LoopbackServer`: tracks its connection, logs nothing to stderr, and
    sends each method named in `methods` to `_serve(method)`.

    Other methods get http.server's own 501, as a handler without their `do_*` would.
    """

    protocol_version = "HTTP/1.1"
    methods: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in cls.__dict__.get("methods", ()):
            setattr(cls, f"do_{method}", _dispatch(method))

    @property
    def owner(self) -> _Owner:
        """The stand-in this handler serves."""
        return cast(_Owner, self._loopback().owner)

    def _loopback(self) -> LoopbackServer:
        return cast(LoopbackServer, self.server)

    def setup(self) -> None:
        super().setup()
        self._loopback().track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._loopback().track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: each stand-in keeps its own request log."""

    def lowered_headers(self) -> dict[str, str]:
        """Header names lower-cased; of a repeated header, the first value."""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        return headers

    def _serve(self, method: str) -> None:
        raise NotImplementedError


class LoopbackService:
    """Start, stop, `port` and `endpoint` of a stand-in served by a `LoopbackServer`.

    A subclass passes its handler class to `__init__`; its handlers reach it as `owner` and
    wait with `_pause`, which `stop()` cuts short.
    """

    def __init__(
        self,
        handler: type[LoopbackHandler[Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        label: str = "stand-in",
        poll_interval_s: float = 0.05,
    ) -> None:
        self._handler = handler
        self._host = host
        self._requested_port = port
        self._label = label  # names the stand-in in "already started" / "not started"
        self._poll_interval_s = poll_interval_s  # how soon stop() is noticed by the server
        self._stopping = threading.Event()
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    def start(self: _Service) -> _Service:
        """Bind, then serve from a daemon thread; returns once the socket is listening."""
        if self._server is not None:
            raise RuntimeError(f"{self._label} already started")
        self._stopping.clear()
        server = LoopbackServer(
            (self._host, self._requested_port), self._handler, self, self._stopping
        )
        serving = threading.Event()

        def serve() -> None:
            serving.set()
            server.serve_forever(poll_interval=self._poll_interval_s)

        self._server = server
        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        serving.wait()
        return self

    def stop(self) -> None:
        """Stop promptly: wake hanging handlers, drop idle keep-alive connections, close."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.release()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self: _Service) -> _Service:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._label} not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def _pause(self, seconds: float) -> None:
        """Sleep that stop() can cut short, so injected latency or a hang never delays it."""
        if seconds > 0:
            self._stopping.wait(seconds)
