"""A webhook receiver on 127.0.0.1 that checks signatures with `standardwebhooks`.

The verifier is the Standard Webhooks reference package, which no one here wrote: what it
accepts, a real receiver accepts. Faults (a status with Retry-After, latency, a hang) are
injected per call count, so retry behaviour can be driven from a test.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Fault:
    status: int = 500
    retry_after: str | None = None
    times: int | None = None
    latency_s: float = 0.0
    hang: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    fault: Fault | None = None
    _server: ThreadingHTTPServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status, headers = receiver._answer(self.path, dict(self.headers.items()), body)
                if status == 0:
                    return
                payload = b"{}" if status < 300 else b'{"error":"injected"}'
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/sms-stats"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status < 300]

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            fault = self.fault
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times < 0:
                    fault = self.fault = None
        if fault is not None:
            if fault.latency_s:
                time.sleep(fault.latency_s)
            if fault.hang:
                self._released.wait(30)
                return 0, {}
        verified: bool | None = None
        status = 200 if fault is None else fault.status
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, lowered)
                verified = True
            except WebhookVerificationError:
                verified, status = False, 401
        with self._lock:
            self.received.append(Received(path, lowered, body, verified, status))
        extra = {"Retry-After": fault.retry_after} if fault and fault.retry_after else {}
        return status, extra
