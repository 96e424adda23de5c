"""`sms-stats serve`: the function behind a real WSGI server (waitress), for a laptop or a VM.

Each request becomes the event a Function URL would send (method, path, headers, query string
with repeated names as lists, the body base64-encoded when it is not UTF-8 text), goes through
`main_handler` exactly as on SCF, and its answer is written back. So curl, a browser (the
dashboard) and a Prometheus scrape work against the same settings as the function.

Why waitress and not the standard library's `http.server`: what a server must refuse is the
server's job, and `http.server` refuses none of it. It read a `Content-Length: -1` body until
the client hung up, ignored `Transfer-Encoding: chunked` (a chunked body whose Content-Length
ended where a second request began got two answers on one connection: request smuggling behind
any proxy that honours chunked), took two different Content-Lengths, gave each connection a
thread with no idle timeout (800 half-sent requests held 801 threads) and announced
`Python/3.10.13`. waitress frames bodies by the HTTP rules (chunked read, one numeric length,
400 otherwise), caps the body, serves from a bounded pool of threads while its event loop holds
slow clients, closes idle ones, and is pure Python (no C build). It is an optional dependency
(`pip install 'sms-stats[serve]'`): the function's zip never carries it nor this module.

The handler is given by the caller (`sms-stats serve` passes `sms_stats.handler.main_handler`,
never `index.py`, which exists only at the root of a checkout or of the zip, so the console
script starts from any directory): the web stage does not import the handler above it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 6 * 1024 * 1024  # SCF's own limit on a synchronous request
THREADS = 8  # requests handled at once; slow or idle clients wait in the event loop, not here
IDLE_TIMEOUT_S = 30  # a connection silent this long is closed (a half-sent request included)
CONNECTION_LIMIT = 1000  # open connections at once; more wait in the listen backlog
INSTALL_HINT = (
    "sms-stats serve needs waitress, a pure-Python WSGI server: "
    "pip install 'sms-stats[serve]' (or pip install waitress)"
)

Handler = Callable[[Any, Any], dict[str, Any]]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers as WSGI passes them (`HTTP_X_Y` -> `x-y`; a repeated header is one
    comma-joined value). The scheme is said as `x-forwarded-proto`, from the server itself:
    waitress drops a client's own forwarding headers, so this one cannot be forged."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    headers["x-forwarded-proto"] = str(environ.get("wsgi.url_scheme", "http"))
    return headers


def wsgi_app(handler: Handler) -> WsgiApp:
    """A WSGI application that answers each request with `handler` (the function's
    `main_handler`) as SCF would call it."""
    call: Handler = handler

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        target = str(environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/")
        # The server has read the whole body by now, by its framing: a chunked one is decoded
        # and its length is CONTENT_LENGTH; a length over MAX_BODY was refused with 413.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        event = to_event(method, target, request_headers(environ), body)
        context = {
            "request_id": f"serve-{uuid.uuid4()}",
            "function_name": "sms-stats",
            "time_limit_in_ms": 60_000,
        }
        try:
            answer = call(event, context)
            status = int(answer.get("statusCode", 200))
            data = answer.get("body") or ""
            raw = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
            headers = [
                (str(name), str(value))
                for name, value in (answer.get("headers") or {}).items()
                if str(name).lower() not in ("content-length", "connection", "transfer-encoding")
            ]
        except Exception as exc:  # a bug: the handler answers every HTTP event itself
            print(
                json.dumps({"event": "serve.error", "error_type": type(exc).__name__}),
                file=sys.stderr,
                flush=True,
            )
            status, raw = 500, b'{"error":{"code":"InternalError","message":"serve failed"}}'
            headers = [("Content-Type", "application/json; charset=utf-8")]
        headers.append(("Content-Length", str(len(raw))))
        start_response(_status_line(status), headers)
        return [b"" if method == "HEAD" else raw]

    return app


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class Server:
    """A waitress server bound to its port, not yet serving: `serve_forever` in one thread,
    `shutdown` from another (tests, embedding), like the standard library's servers."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        return str(self._inner.effective_host), int(self._inner.effective_port)

    def serve_forever(self) -> None:
        try:
            self._inner.run()
        finally:
            self._inner.task_dispatcher.shutdown()
            self._stopped.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Close every connection and the listening socket from inside the event loop (its
        own thread owns them), then wait for `serve_forever` to return."""
        from waitress import wasyncore  # noqa: PLC0415

        inner = self._inner
        try:
            inner.trigger.pull_trigger(lambda: wasyncore.close_all(inner._map, ignore_all=True))
        except OSError:
            # The trigger is already closed (the loop closes a dispatcher whose descriptor
            # polls as invalid; once seen in CI, 1 run in ~30). Close the rest from here: the
            # loop's next poll finds the map empty and returns.
            wasyncore.close_all(inner._map, ignore_all=True)
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        """Nothing left after `shutdown`; kept so callers treat it as any server."""


def make_server(
    host: str,
    port: int,
    handler: Handler,
    *,
    threads: int = THREADS,
    idle_timeout: float = IDLE_TIMEOUT_S,
) -> Server:
    """A server bound to (host, port), not yet serving; port 0 picks a free one. ImportError
    when waitress is not installed; OSError when the port cannot be bound."""
    from waitress.server import create_server  # noqa: PLC0415 - optional: `[serve]`

    inner = create_server(
        wsgi_app(handler),
        host=host,
        port=port,
        ident="sms-stats",  # not `waitress`, and never the Python version
        threads=threads,
        channel_timeout=idle_timeout,
        # How often idle connections are looked for: a silent client is closed within
        # idle_timeout plus this.
        cleanup_interval=max(1, min(30, int(idle_timeout // 4) or 1)),
        connection_limit=CONNECTION_LIMIT,
        asyncore_use_poll=True,  # select() stops at descriptor 1024
        max_request_body_size=MAX_BODY,
        expose_tracebacks=False,
    )
    return Server(inner)


def serve(
    host: str,
    port: int,
    handler: Handler,
    *,
    note: str | None = None,
    threads: int = THREADS,
    idle_timeout: float = IDLE_TIMEOUT_S,
) -> int:
    """Serve until interrupted; 1 with a one-line reason when it cannot start. `note` is
    printed once the server listens: what a person starting it should know first."""
    try:
        server = make_server(host, port, handler, threads=threads, idle_timeout=idle_timeout)
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    bound_host, bound_port = server.server_address
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        json.dumps({"event": "serve.listening", "url": f"http://{shown}:{bound_port}"}),
        file=sys.stderr,
        flush=True,
    )
    if note:
        print(note, file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the usual way to stop it
        server.serve_forever()
    return 0


def start_in_thread(server: Server) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding); `server.shutdown()` stops it."""
    thread = threading.Thread(target=server.serve_forever, name="sms-stats-serve", daemon=True)
    thread.start()
    return thread
