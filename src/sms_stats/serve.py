"""`sms-stats serve`: a local HTTP server in front of `main_handler`, for a laptop or a VM.

Each request becomes the event a Function URL would send (method, path, headers, query string
with repeated names as lists, the body base64-encoded when it is not UTF-8 text), goes through
`main_handler` exactly as on SCF, and its answer is written back. So curl, a browser (the
dashboard) and a Prometheus scrape work against the same settings as the function. The
standard library's threading server: one thread per request, nothing more to install.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 6 * 1024 * 1024  # SCF's own limit on a synchronous request

Handler = Callable[[Any, Any], dict[str, Any]]


def to_event(method: str, target: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A Function URL event for this request."""
    parts = urlsplit(target)
    query: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in query:
            held = query[name]
            query[name] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            query[name] = value
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "httpMethod": method,
        "path": parts.path or "/",
        "headers": {name.lower(): value for name, value in headers.items()},
        "queryString": query,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {"sourceIp": "127.0.0.1"},
    }


def make_server(host: str, port: int, handler: Handler | None = None) -> ThreadingHTTPServer:
    """A server bound to (host, port), not yet serving; port 0 picks a free one."""
    if handler is None:
        from index import main_handler  # noqa: PLC0415 - the function's own entry

        handler = main_handler
    call: Handler = handler

    class _Request(BaseHTTPRequestHandler):
        server_version = "sms-stats-serve"
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._write(413, {"Content-Type": "text/plain"}, b"request body too large\n")
                return
            body = self.rfile.read(length) if length else b""
            event = to_event(self.command, self.path, dict(self.headers.items()), body)
            context = {
                "request_id": f"serve-{uuid.uuid4()}",
                "function_name": "sms-stats",
                "time_limit_in_ms": 60_000,
            }
            answer = call(event, context)
            data = answer.get("body", "")
            raw = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
            headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
            self._write(int(answer.get("statusCode", 200)), headers, raw)

        def _write(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the function's own JSON log lines say what happened

    server = ThreadingHTTPServer((host, port), _Request)
    server.daemon_threads = True
    return server


def serve(host: str, port: int) -> int:
    try:
        server = make_server(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host!s}:{bound_port}"
    print(
        json.dumps({"event": "serve.listening", "url": url}),
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, the demo); `server.shutdown()` stops it."""
    thread = threading.Thread(target=server.serve_forever, name="sms-stats-serve", daemon=True)
    thread.start()
    return thread
