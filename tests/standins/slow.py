"""A loopback HTTP server that misbehaves the way a slow or hostile receiver (or proxy) does.

Raw sockets, not http.server: the point is to control every byte's timing. Modes:
- `drip_body`: status and headers at once, then the body one byte every `drip_s`;
- `drip_headers`: the status line and headers one byte every `drip_s`, then the body so too;
- `silent`: accepts and reads the request, then never answers;
- `huge`: a 200 whose body is `huge_bytes` long, streamed in 64 KiB pieces (never built whole).

`framing` is how the answer says where its body ends, each a different path through
http.client (which hands the socket from the connection to the response when the answer ends
at the close):
- `keep-alive`: HTTP/1.1 with Content-Length, the connection kept open;
- `close`: HTTP/1.1 with Content-Length and `Connection: close`;
- `http10`: HTTP/1.0 without Content-Length: the body is whatever comes before the close;
- `chunked`: HTTP/1.1 chunked; each dripped byte is a chunk of its own (a 64 KiB piece when huge).

`sent` counts what the server managed to write before the client hung up: dripped pieces (a
byte, or a one-byte chunk), or a huge body's bytes.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

FRAMINGS = ("keep-alive", "close", "http10", "chunked")
_STATUS = {"http10": b"HTTP/1.0 200 OK\r\n"}
_FRAMING = {
    "keep-alive": b"Content-Length: %d\r\n",
    "close": b"Connection: close\r\nContent-Length: %d\r\n",
    "http10": b"",
    "chunked": b"Transfer-Encoding: chunked\r\n",
}


@dataclass
class SlowServer:
    mode: str = "drip_body"
    drip_s: float = 0.05
    huge_bytes: int = 200 * 1024 * 1024
    body: bytes = b'{"Response": {"RequestId": "slow"}}' + b" " * 4000
    framing: str = "keep-alive"
    sent: int = 0
    requests: int = 0
    _server: Any = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if self.framing not in _FRAMING:
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, not {self.framing!r}")

    @property
    def url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def __enter__(self) -> SlowServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def head(self, length: int) -> bytes:
        """The status line and headers of a 200 whose body is `length` bytes, in this framing."""
        framing = _FRAMING[self.framing]
        return (
            _STATUS.get(self.framing, b"HTTP/1.1 200 OK\r\n")
            + b"Content-Type: application/json\r\n"
            + (framing % length if b"%d" in framing else framing)
            + b"\r\n"
        )

    def pieces(self, body: bytes) -> list[bytes]:
        """`body` as written on the wire, one piece per byte: a chunk each when chunked."""
        if self.framing != "chunked":
            return [body[i : i + 1] for i in range(len(body))]
        return [b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body))] + [b"0\r\n\r\n"]

    def _serve(self, conn: socket.socket) -> None:
        """Answer requests on `conn`: one, or, kept alive (HTTP/1.1 without `close`), each
        that comes on it until the client closes it or is idle for 10 s."""
        conn.settimeout(10)
        pending = b""
        while True:
            try:
                pending = _read_request(conn, pending)
            except (OSError, ValueError):
                return
            self.requests += 1
            try:
                self._answer(conn)
            except OSError:
                return  # the client hung up: what we want to see
            if self.framing in ("close", "http10") or self.mode == "silent":
                return

    def _answer(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            self._stop.wait(60)  # until the test ends
            return
        if self.mode == "huge":
            self._huge(conn)
            return
        head = self.head(len(self.body))
        if self.mode == "drip_headers":
            self._drip(conn, [head[i : i + 1] for i in range(len(head))] + self.pieces(self.body))
        else:
            conn.sendall(head)
            self._drip(conn, self.pieces(self.body))

    def _huge(self, conn: socket.socket) -> None:
        conn.sendall(self.head(self.huge_bytes))
        chunk, left = b"x" * 65536, self.huge_bytes
        while left > 0 and not self._stop.is_set():
            piece = chunk[:left]
            if self.framing == "chunked":
                conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                conn.sendall(piece)
            left -= len(piece)
            self.sent += len(piece)
        if self.framing == "chunked":
            conn.sendall(b"0\r\n\r\n")

    def _drip(self, conn: socket.socket, pieces: list[bytes]) -> None:
        for piece in pieces:
            if self._stop.wait(self.drip_s):
                return
            conn.sendall(piece)
            self.sent += 1


def _read_request(conn: socket.socket, pending: bytes) -> bytes:
    """Read one request (head and Content-Length body) from `conn`, `pending` being what came
    after the last one; return what came after this one. ValueError at the client's close."""
    while b"\r\n\r\n" not in pending:
        piece = conn.recv(65536)
        if not piece:
            raise ValueError("closed")
        pending += piece
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        piece = conn.recv(65536)
        if not piece:
            raise ValueError("closed")
        rest += piece
    return rest[length:]
