"""A loopback server that answers every request with an error page echoing what it was sent.

Why: gateways, proxies and debug endpoints do this ("502 Bad Gateway" pages that list the
request's headers, 404 pages that quote the path), and an echo is how a credential sent in a
header or a URL comes back into a function's errors and logs. It stands in for the SMS API (or a
proxy before it) in the secrets tests: real HTTP on 127.0.0.1, the SDK's own request on the wire.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from sms_stats.emulator.loopback import LoopbackHandler, LoopbackService, reason


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class EchoServer(LoopbackService):
    """`status` for every request; the body lists the request line and headers, as `text`
    (a proxy's error page) or `json` (a debug endpoint)."""

    def __init__(self, status: int = 502, style: str = "text") -> None:
        super().__init__(_Handler, label="echo server")
        self.status = status
        self.style = style
        self._lock = threading.Lock()
        self._seen: list[Seen] = []

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def page(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        """The credentials first, as a gateway's auth-failure page shows them."""
        with self._lock:
            self._seen.append(Seen(method, path, dict(headers)))
        headers = dict(sorted(headers.items(), key=lambda h: not _credential(h[0])))
        if self.style == "json":
            echo = {"error": reason(self.status), "request": {"method": method, "path": path}}
            return json.dumps({**echo, "headers": headers}).encode()
        lines = [f"{self.status} {reason(self.status)}", "", f"{method} {path}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return "\n".join(lines).encode()


def _credential(name: str) -> bool:
    return name.lower() in ("authorization", "x-tc-token")


class _Handler(LoopbackHandler[EchoServer]):
    methods = ("GET", "POST", "PUT")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = self.owner.page(method, self.path, dict(self.headers.items()))
        status = self.owner.status
        head = (
            f"{self.protocol_version} {status} {reason(status)}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        self.wfile.write(head + body)  # one send, as a real front end answers
