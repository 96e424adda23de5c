"""A webhook receiver on 127.0.0.1 that checks signatures with `standardwebhooks`.

The verifier is the Standard Webhooks reference package, which no one here wrote: what it
accepts, a real receiver accepts. Faults (a status with Retry-After, latency, a hang) are
injected per call count, so retry behaviour can be driven from a test; a fault can echo the
request's path and query in its body, as common web frameworks do in their 404 pages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sms_stats.emulator.loopback import LoopbackHandler, LoopbackService


@dataclass
class Fault:
    status: int = 500
    retry_after: str | None = None
    times: int | None = None
    latency_s: float = 0.0
    hang: bool = False
    echo_path: bool = False  # answer like Express or n8n: "Cannot POST /hooks/<token>?..."


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None
    status: int
    peer_port: int = 0  # the client's source port: the same one means a kept-alive connection

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver(LoopbackService):
    """`start`, `stop` and the context manager come from `LoopbackService`."""

    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    fault: Fault | None = None
    # Called as each request arrives, before it is answered: a test looks at the world as the
    # sender left it at that moment (the store, say).
    on_request: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        super().__init__(_Handler, label="receiver")

    @property
    def url(self) -> str:
        return f"{self.endpoint}/hooks/sms-stats"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status < 300]

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes, peer_port: int = 0
    ) -> tuple[int, dict[str, str], bytes | None]:
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.on_request is not None:
            self.on_request()
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
                self._pause(30)
                return 0, {}, None
        verified: bool | None = None
        status = 200 if fault is None else fault.status
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, lowered)
                verified = True
            except WebhookVerificationError:
                verified, status = False, 401
        with self._lock:
            self.received.append(Received(path, lowered, body, verified, status, peer_port))
        extra = {"Retry-After": fault.retry_after} if fault and fault.retry_after else {}
        echoed = None
        if fault is not None and fault.echo_path:
            echoed = f"Cannot POST {path} (this webhook is not registered)".encode()
        return status, extra, echoed


class _Handler(LoopbackHandler[WebhookReceiver]):
    methods = ("POST",)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        status, headers, echoed = self.owner._answer(
            self.path, dict(self.headers.items()), body, self.client_address[1]
        )
        if status == 0:
            return
        payload = b"{}" if status < 300 else echoed or b'{"error":"injected"}'
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
