"""Every HTTP call the function makes ends on time and reads a bounded answer.

`requests` timeouts apply to each socket operation, not to the call: a server that drips one
byte every half second never trips a 5 s read timeout, and kept an API call 19.6 s past an
8 s invocation (SCF then kills the function: no answer, no `invocation.end` line). And
`response.content` reads whatever arrives: a receiver answering a 400 MB page took the
function from 31 MB to 843 MB.

So every session the function uses (the SMS SDK's, the HTTP sinks', COS's) gets a
`BoundedAdapter`. Its timeout is for the whole call, connect to last byte: when it runs out,
one reaper thread shuts the connection's socket down, which ends whatever read is blocked, and
the call fails as a timeout. That holds however the server answers: kept alive, with
`Connection: close` or HTTP/1.0 (where http.client hands the socket from the connection to the
response, so the reaper follows it there), chunked, dripping its status line, or silent. The
answer is read inside the call, at most `max_body` bytes
(after decompression, so a gzip bomb is cut too); the rest is never read and the connection is
dropped rather than returned to the pool. Callers start a call only when its timeout fits
before the invocation's deadline, so the deadline holds.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError

if TYPE_CHECKING:
    from urllib3.response import HTTPResponse

API_MAX_BODY = 1024 * 1024  # an SMS statistics answer is a few KB; 500 packages ~150 KB
RECEIVER_MAX_BODY = 64 * 1024  # a webhook's or bot's answer: we read a status and a code
DEFAULT_LIMIT_S = 60.0  # a call made without a timeout still ends
_CHUNK = 64 * 1024


class CallTimeout(requests.exceptions.ReadTimeout):
    """The whole call outlived its timeout (connect + every read, however slowly bytes came)."""


class _Watch:
    """One call in flight: the connection it uses, the socket its answer is read from once the
    connection has let go of it, whether its time ran out, and whether the reaper then cut an
    answer that ends at the close (so what was read may be short, though it ended like a whole
    answer)."""

    __slots__ = ("conn", "cut", "done", "fired", "sock")

    def __init__(self) -> None:
        self.conn: Any = None
        self.sock: socket.socket | None = None
        self.done = False
        self.fired = False
        self.cut = False


class _Reaper:
    """One daemon thread for every call: sleeps until the earliest deadline, then ends that
    call's socket. Cheaper on the warm path than a timer thread per call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> _Watch:
        watch = _Watch()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sms-stats-reaper")
                self._thread.daemon = True
                self._thread.start()
            if self._heap[0][2] is watch:  # sooner than the reaper's wake-up: wake it now
                self._cond.notify()
        return watch

    def done(self, watch: _Watch) -> None:
        with self._cond:  # under the lock: the reaper never shuts a finished call's socket
            watch.done = True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, _, watch = self._heap[0]
                if watch.done:
                    heapq.heappop(self._heap)
                    continue
                wait = when - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                watch.fired = True
                if not _shut(watch):
                    # Still connecting (another address of the host, a slow DNS answer): look
                    # again shortly; the connection checks `fired` once it is up, too.
                    heapq.heappush(
                        self._heap, (time.monotonic() + _RECHECK_S, next(self._order), watch)
                    )


_RECHECK_S = 0.05


def _shut(watch: _Watch) -> bool:
    """Shut the socket of the call `watch` stands for (called under the reaper's lock). Only a
    connection that call still owns: urllib3 returns a connection to the pool when its body has
    been read, and the next call may hold it before this one says it is done.

    The socket is the connection's, or, once http.client has handed it to a response that ends
    at the close (`Connection: close`, HTTP/1.0), the one `_handed` kept: the connection's
    `sock` is None then, though the body is still being read from it. Cutting that one is
    remembered: a body without a length ends at the shutdown as if whole. Any other cut shows
    as an error (a short Content-Length body, a broken chunk), or came after the whole answer
    was read (a kept-alive socket back in the pool), which then stands."""
    conn = watch.conn
    if conn is None or getattr(conn, "_sms_watch", None) is not watch:
        return watch.conn is not None  # not ours any more: nothing of this call is left to end
    sock = getattr(conn, "sock", None)
    handed = sock is None
    if handed:
        sock = watch.sock
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed: by the other side, or the answer was read to its end
        return True
    watch.cut = handed
    return True


_reaper = _Reaper()
_current = threading.local()  # the watch of the call this thread is making


def _note(conn: Any) -> None:
    """This thread's call now uses `conn`: it, and only it, may have its socket shut."""
    watch = getattr(_current, "watch", None)
    if watch is not None:
        with _reaper.lock:
            watch.conn = conn
            conn._sms_watch = watch


def _handed(sock: socket.socket | None) -> None:
    """http.client gave the connection's socket to the response (the answer ends when the
    server closes) and cleared the connection's `sock`: the reaper must still reach it. Nothing
    else can own that socket: the connection opens a new one for its next request."""
    watch = getattr(_current, "watch", None)
    if watch is not None and sock is not None:
        with _reaper.lock:
            watch.sock = sock


def _connected(conn: Any) -> None:
    """The call's time ran out while it was connecting: end it now, not at its first read."""
    watch = getattr(_current, "watch", None)
    if watch is not None and watch.fired:
        conn.close()
        raise ConnectTimeoutError("the call's time ran out while connecting")


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        _note(self)
        super().connect()
        _connected(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self)  # a kept-alive connection is reused without connect()
        super().request(*args, **kwargs)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        sock = self.sock
        response = super().getresponse()
        if self.sock is None:  # `will_close`: the answer now owns the socket
            _handed(sock)
        return response


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _note(self)
        super().connect()
        _connected(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self)
        super().request(*args, **kwargs)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        sock = self.sock
        response = super().getresponse()
        if self.sock is None:
            _handed(sock)
        return response


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


def call_limit(timeout: Any) -> float:
    """A requests timeout (seconds, a (connect, read) pair, or None) as one whole-call limit."""
    if isinstance(timeout, tuple):
        parts = [float(part) for part in timeout if part is not None]
        return max(parts) if parts else DEFAULT_LIMIT_S
    if timeout is None:
        return DEFAULT_LIMIT_S
    return float(timeout)


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose calls end within their timeout and read at most `max_body` bytes.

    A longer answer is cut at `max_body`: what a caller parses from the cut (an API answer, a
    COS object it size-checks) fails as malformed, and a receiver's status still counts.
    """

    def __init__(self, max_body: int, **kwargs: Any) -> None:
        self.max_body = max_body
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        limit = call_limit(timeout)
        if limit <= 0:
            raise CallTimeout("no time left for the call", request=request)
        watch = _reaper.watch(limit)
        _current.watch = watch
        try:
            try:
                response = super().send(
                    request, stream=True, timeout=limit, verify=verify, cert=cert, proxies=proxies
                )
                _read_bounded(response, self.max_body)
            finally:
                _current.watch = None
                _reaper.done(watch)  # from here on, `fired` and `cut` stay as they are
        except requests.RequestException:
            if watch.fired:
                raise CallTimeout(
                    f"the call took longer than {limit:g} s in all", request=request
                ) from None
            raise
        if watch.cut:
            # An answer that ends at the close (HTTP/1.0, no length) reads as whole when the
            # reaper's shutdown ends it: whatever was read, the call ran out of time.
            response.close()
            raise CallTimeout(f"the call took longer than {limit:g} s in all", request=request)
        return response


def _read_bounded(response: requests.Response, max_body: int) -> None:
    """Read the answer now, within the call's time, keeping at most `max_body` bytes."""
    raw = response.raw
    kept = bytearray()
    try:
        length = response.headers.get("content-length", "")
        if (
            length.isdigit()
            and int(length) <= max_body
            and response.headers.get("content-encoding", "identity") == "identity"
        ):
            # The usual answer: its length is known and within the cap, and nothing inflates
            # it. One read of exactly that length (http.client never reads past it).
            kept += raw.read(decode_content=False)
        while True:
            chunk = raw.read(_CHUNK, decode_content=True)
            if not chunk:
                break
            kept += chunk
            if len(kept) > max_body:
                del kept[max_body:]
                response.close()  # drop the connection: the rest is never read
                break
    except ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc, request=response.request) from None
    except (HTTPError, OSError) as exc:  # ProtocolError, DecodeError, a reset
        raise requests.exceptions.ConnectionError(exc, request=response.request) from None
    # Handed over as requests' own read would (private names, pinned by
    # tests/test_library_pins.py): the SDK reads `.content`, never the capped stream again.
    response._content = bytes(kept)
    response._content_consumed = True  # type: ignore[attr-defined]


def bound(session: requests.Session, max_body: int) -> requests.Session:
    """Mount bounded adapters on `session` for http and https, keeping its pool size. No
    redirects: each hop would start a whole new limit, and neither the SMS API nor COS
    answers a valid request with one (a receiver's 3xx is its answer, never followed)."""
    session.max_redirects = 0
    old = session.get_adapter("https://")
    size = getattr(old, "_pool_maxsize", 10)
    connections = getattr(old, "_pool_connections", 10)
    for prefix in ("https://", "http://"):
        session.mount(
            prefix,
            BoundedAdapter(max_body, pool_connections=connections, pool_maxsize=size),
        )
    return session


def session(max_body: int) -> requests.Session:
    return bound(requests.Session(), max_body)


class ApiSession(requests.Session):
    """The SDK's session: each call sent straight to the bounded adapter.

    `Session.request` merges cookie jars, hooks, auth and settings through requests' general
    helpers on every call (~0.2 ms of a 2.5 ms warm call, most of it in `prepare_request`), and
    then walks redirects and stores the answer's cookies. None of that applies to a TC3-signed
    API call: it carries no cookie or auth of the session's, and the API never redirects a valid
    request. So a call here is prepared once from its own arguments and the session's default
    headers, and a 3xx comes back as the answer it is (the SDK then reports a non-200 status),
    never followed. Proxies and the CA bundle are the caller's, as the SDK passes them.
    """

    def request(  # type: ignore[override]  # the SDK's keywords; the rest is not ours to take
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: Any = None,
        proxies: Any = None,
        verify: Any = None,
        timeout: Any = None,
        stream: bool = False,
        **unsupported: Any,
    ) -> requests.Response:
        if unsupported:
            raise TypeError(f"ApiSession.request takes no {', '.join(sorted(unsupported))}")
        merged = requests.structures.CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, None)
        prepared.prepare_headers(merged)
        prepared.prepare_body(data, None)
        adapter = self.get_adapter(prepared.url or url)
        chosen = self.verify if verify is None else verify
        return adapter.send(
            prepared,
            stream=stream,
            timeout=timeout,
            verify=True if chosen is None else chosen,
            cert=self.cert,
            proxies=proxies or {},
        )


def api_session(max_body: int) -> ApiSession:
    api = ApiSession()
    api.trust_env = False  # its proxies are settled once, by `settle_environment`
    bound(api, max_body)
    return api


def settle_environment(conn: Any, url: str) -> None:
    """Read the proxy settings of the environment once, for the SDK's connection to `url`.

    The SDK already picks its proxy from HTTPS_PROXY / NO_PROXY when the client is made and
    passes it, with its CA bundle, on every call; requests then looked at the environment again
    on each call (proxies, NO_PROXY, ~/.netrc: ~0.1 ms of a 2 ms warm call). Resolved here the
    way requests would (its own NO_PROXY rules, ALL_PROXY), the SDK's choice first, and the
    session stops reading the environment. An SCF function's environment is fixed for its
    container; a netrc login never applies to a TC3-signed call.
    """
    if not conn.proxy:
        proxies = requests.utils.get_environ_proxies(url)
        conn.proxy = {k: v for k, v in proxies.items() if k != "no_proxy"} or None
    conn._session.trust_env = False
