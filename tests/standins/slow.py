"""A loopback HTTP server that misbehaves the way a slow or hostile receiver (or proxy) does.

Raw sockets, not http.server: the point is to control every byte's timing. Modes:
- `drip_body`: status and headers at once, then the body one byte every `drip_s`;
- `drip_headers`: the status line and headers one byte every `drip_s`;
- `huge`: a 200 whose body is `huge_bytes` long, streamed in 64 KiB chunks (never built whole).
`sent` counts the body bytes the server managed to write before the client hung up.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


@dataclass
class SlowServer:
    mode: str = "drip_body"
    drip_s: float = 0.05
    huge_bytes: int = 200 * 1024 * 1024
    body: bytes = b'{"Response": {"RequestId": "slow"}}' + b" " * 4000
    sent: int = 0
    requests: int = 0
    _server: Any = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

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

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return
            data += piece
        self.requests += 1
        try:
            if self.mode == "huge":
                conn.sendall(_HEAD % self.huge_bytes)
                chunk, left = b"x" * 65536, self.huge_bytes
                while left > 0 and not self._stop.is_set():
                    piece = chunk[:left]
                    conn.sendall(piece)
                    left -= len(piece)
                    self.sent += len(piece)
                return
            head = _HEAD % len(self.body)
            if self.mode == "drip_headers":
                self._drip(conn, head + self.body)
            else:
                conn.sendall(head)
                self._drip(conn, self.body)
        except OSError:
            return  # the client hung up: what we want to see

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for index in range(len(data)):
            if self._stop.wait(self.drip_s):
                return
            conn.sendall(data[index : index + 1])
            self.sent += 1
