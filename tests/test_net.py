"""The bounded adapter: a call ends within its timeout however slowly bytes come, and reads
at most what it keeps. Real sockets on loopback; the only clock is the real one, with bounds
wide enough for a loaded machine (a drip of the whole body would take 200 s)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import requests
import urllib3.util.connection

from sms_stats.core import net

from .standins.slow import FRAMINGS, SlowServer


@pytest.mark.parametrize("mode", ["drip_body", "drip_headers"])
def test_given_a_dripping_server_when_calling_then_the_call_ends_at_its_timeout(
    mode: str,
) -> None:
    with SlowServer(mode=mode, drip_s=0.05) as server:
        session = net.session(net.RECEIVER_MAX_BODY)
        started = time.monotonic()
        with pytest.raises(requests.Timeout) as caught:
            session.post(server.url, data=b"{}", timeout=0.5)
        took = time.monotonic() - started

    assert isinstance(caught.value, net.CallTimeout)
    assert "longer than 0.5 s in all" in str(caught.value)
    assert 0.4 < took < 3.0  # a per-read timeout would have let this run 200 s
    assert 0 < server.sent < len(server.body)


# However the server frames its answer (issue 23, item 1): with `Connection: close` or HTTP/1.0,
# http.client hands the socket from the connection to the response, and the reaper found no
# socket to shut; the call then read the whole drip (59 s through the handler). A body of 160
# pieces at 0.05 s takes 8 s to drip: well past the bounds below, and short enough that running
# these against a broken adapter fails in seconds, not minutes.
_DRIPPED = b"x" * 160


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("mode", ["drip_body", "drip_headers"])
def test_given_a_dripping_server_in_each_framing_when_calling_then_the_call_ends_at_its_timeout(
    mode: str, framing: str
) -> None:
    with SlowServer(mode=mode, framing=framing, drip_s=0.05, body=_DRIPPED) as server:
        session = net.session(net.RECEIVER_MAX_BODY)
        started = time.monotonic()
        with pytest.raises(net.CallTimeout, match=r"longer than 0\.5 s in all"):
            session.post(server.url, data=b"{}", timeout=0.5)
        took = time.monotonic() - started

    assert 0.4 < took < 3.0
    assert 0 < server.sent < len(_DRIPPED)


def test_given_a_server_that_never_answers_when_calling_then_the_call_ends_at_its_timeout() -> None:
    """Silence has no framing: the socket is still the connection's while the status line is
    awaited."""
    with SlowServer(mode="silent") as server:
        started = time.monotonic()
        with pytest.raises(net.CallTimeout, match=r"longer than 0\.5 s in all"):
            net.session(net.RECEIVER_MAX_BODY).post(server.url, data=b"{}", timeout=0.5)
        took = time.monotonic() - started
    assert 0.4 < took < 3.0
    assert server.requests == 1


@pytest.mark.parametrize("framing", FRAMINGS)
def test_given_a_whole_answer_in_each_framing_when_calling_twice_then_both_arrive_intact(
    framing: str,
) -> None:
    """An HTTP/1.0 answer also ends at the close: one that simply ended is whole, not cut."""
    body = b'{"ok": true, "pad": "' + b"p" * 3000 + b'"}'
    with SlowServer(mode="drip_body", framing=framing, drip_s=0, body=body) as server:
        session = net.session(net.RECEIVER_MAX_BODY)
        answers = [session.post(server.url, data=b"{}", timeout=5) for _ in range(2)]

    assert [(a.status_code, a.content) for a in answers] == [(200, body), (200, body)]
    assert server.requests == 2


def test_given_a_plain_requests_session_when_dripping_then_it_outlives_the_timeout() -> None:
    """The failure this module exists for, shown on the library itself."""
    with SlowServer(mode="drip_body", drip_s=0.05, body=b"x" * 30) as server:
        started = time.monotonic()
        answer = requests.post(server.url, data=b"{}", timeout=0.5)
        took = time.monotonic() - started
    assert answer.content == b"x" * 30
    assert took > 1.0


@pytest.mark.parametrize("framing", FRAMINGS)
def test_given_a_huge_answer_when_calling_then_only_max_body_is_read(framing: str) -> None:
    with SlowServer(mode="huge", framing=framing, huge_bytes=200 * 1024 * 1024) as server:
        session = net.session(100_000)
        answer = session.post(server.url, data=b"{}", timeout=10)

    assert answer.status_code == 200
    assert len(answer.content) == 100_000
    assert server.sent < 50 * 1024 * 1024  # the rest was never read (nor sent)


def test_given_a_cut_answer_when_calling_again_then_a_fresh_connection_serves() -> None:
    with SlowServer(mode="huge", huge_bytes=1024 * 1024) as server:
        session = net.session(1000)
        first = session.post(server.url, data=b"{}", timeout=10)
        second = session.post(server.url, data=b"{}", timeout=10)

    assert len(first.content) == len(second.content) == 1000
    assert server.requests == 2


def test_given_a_normal_answer_when_streamed_then_content_and_iteration_both_work() -> None:
    with SlowServer(mode="drip_body", drip_s=0, body=b'{"ok": true}') as server:
        session = net.session(net.RECEIVER_MAX_BODY)
        answer = session.get(server.url, timeout=5, stream=True)
        assert b"".join(answer.iter_content(4)) == b'{"ok": true}'
        assert answer.json() == {"ok": True}


def test_given_no_time_left_when_calling_then_refused_before_connecting() -> None:
    session = net.session(1000)
    with pytest.raises(net.CallTimeout):
        session.get("http://127.0.0.1:9/", timeout=0)


@pytest.mark.parametrize(
    ("timeout", "limit"),
    [(3, 3.0), (2.5, 2.5), ((1, 4), 4.0), ((None, 2), 2.0), (None, net.DEFAULT_LIMIT_S)],
)
def test_given_a_requests_timeout_when_read_then_one_whole_call_limit(
    timeout: object, limit: float
) -> None:
    assert net.call_limit(timeout) == limit


# From a review: three ways a call still ran past its limit, each reproduced on loopback.


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/hop/"):
            hop = int(self.path.rsplit("/", 1)[1])
            time.sleep(0.3)
            if hop < 6:
                self.send_response(307)
                self.send_header("Location", f"/hop/{hop + 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if self.path == "/slow":
            time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        if self.path == "/fast-close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_server() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_given_redirects_when_calling_then_not_followed_each_with_a_fresh_limit(
    plain_server: str,
) -> None:
    session = net.session(net.API_MAX_BODY)
    started = time.monotonic()
    with pytest.raises(requests.TooManyRedirects):
        session.get(plain_server + "/hop/0", timeout=1.0)
    assert time.monotonic() - started < 1.0  # six hops of 0.3 s each were 1.8 s


@pytest.mark.parametrize("first", ["/fast", "/fast-close"])
def test_given_a_late_timer_when_the_next_call_reuses_the_connection_then_it_is_not_shut(
    plain_server: str, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """A's connection goes back to the pool when its body is read, before A says it is done:
    B may take it, and A's timer must then leave it alone. When A's answer came with
    `Connection: close`, B reconnects the same connection with a new socket: still B's alone.
    A's answer was whole before its timer fired and nothing of it was cut: it stands."""
    session = net.session(net.API_MAX_BODY)
    b_may_start = threading.Event()
    done = net._reaper.done

    def late_done(watch: Any) -> None:
        if threading.current_thread().name == "A":
            b_may_start.set()
            time.sleep(0.6)  # A descheduled between releasing the connection and saying done
        done(watch)

    monkeypatch.setattr(net._reaper, "done", late_done)
    answers: dict[str, object] = {}

    def call_b() -> None:
        b_may_start.wait(5)
        try:
            answers["b"] = session.get(plain_server + "/slow", timeout=5).status_code
        except requests.RequestException as exc:
            answers["b"] = repr(exc)

    def call_a() -> None:
        try:
            answers["a"] = session.get(plain_server + first, timeout=0.3).status_code
        except requests.RequestException as exc:
            answers["a"] = repr(exc)

    a = threading.Thread(target=call_a, name="A")
    b = threading.Thread(target=call_b, name="B")
    a.start()
    b.start()
    a.join()
    b.join()
    assert answers == {"a": 200, "b": 200}


@pytest.mark.parametrize("path", ["/fast", "/fast-close"])
def test_given_a_whole_answer_when_the_timer_fires_before_the_call_is_done_then_it_stands(
    plain_server: str, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The answer was read whole, then the call was descheduled past its limit before saying it
    was done. Kept alive, the reaper shuts the pooled socket (the pool then opens a new one);
    with `Connection: close`, the answer had already closed it. Neither cut anything: the
    answer is the call's, not a timeout."""
    session = net.session(net.API_MAX_BODY)
    done = net._reaper.done

    def late_done(watch: Any) -> None:
        time.sleep(0.6)
        done(watch)

    monkeypatch.setattr(net._reaper, "done", late_done)
    answer = session.get(plain_server + path, timeout=0.3)
    monkeypatch.setattr(net._reaper, "done", done)
    again = session.get(plain_server + path, timeout=5)

    assert (answer.status_code, answer.content) == (200, b"ok")
    assert (again.status_code, again.content) == (200, b"ok")


def test_given_an_address_that_never_answers_when_connecting_then_the_call_still_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host with two addresses: the first a black hole (a full accept queue), the second a
    server dripping its answer. The limit ran out while connecting; the call ended only by
    per-read timeouts, seconds later."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue: further SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    drip = socket.socket()
    drip.bind(("127.0.0.2", port))
    drip.listen(5)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = drip.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n")
            for char in b"drip drip ok!":
                time.sleep(0.3)
                conn.sendall(bytes([char]))

    threading.Thread(target=serve, daemon=True).start()
    real = socket.getaddrinfo

    def two_addresses(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host == "api.example":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection.socket, "getaddrinfo", two_addresses)
    started = time.monotonic()
    try:
        with pytest.raises(net.CallTimeout):
            net.session(net.API_MAX_BODY).get(f"http://api.example:{port}/", timeout=1.0)
        assert time.monotonic() - started < 2.0  # it took 4.9 s before
    finally:
        for sock in (hole, drip, *fillers):
            sock.close()


# The SDK's session (`ApiSession`): each call goes straight to the bounded adapter, without
# requests' per-call session work. What a server sees of it, on loopback.


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        type(self).seen.append({**headers, "client-port": str(self.client_address[1])})
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Set-Cookie", "tracker=1; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_given_the_api_session_when_calling_twice_then_headers_arrive_and_no_cookie_is_kept(
    recorder: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = recorder
    api = net.api_session(net.API_MAX_BODY)
    for _ in range(2):
        answer = api.request(
            "POST", url + "/", data=b'{"a":1}', headers={"X-TC-Action": "Probe"}, timeout=5
        )
        assert (answer.status_code, answer.content) == (200, b"{}")

    assert [s["x-tc-action"] for s in seen] == ["Probe", "Probe"]
    assert all(s["content-length"] == "7" for s in seen)
    assert "gzip" in seen[0]["accept-encoding"]  # requests' defaults still go along
    assert "cookie" not in seen[1]  # an API call carries no state from the last answer
    assert seen[0]["client-port"] == seen[1]["client-port"]  # one kept-alive connection


def test_given_a_redirect_when_the_api_session_calls_then_the_3xx_is_the_answer(
    recorder: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = recorder
    answer = net.api_session(net.API_MAX_BODY).request("POST", url + "/moved", data=b"", timeout=5)
    assert answer.status_code == 302
    assert len(seen) == 1  # never followed


@pytest.mark.parametrize("framing", FRAMINGS)
def test_given_a_dripping_server_when_the_api_session_calls_then_the_whole_call_limit_holds(
    framing: str,
) -> None:
    with SlowServer(mode="drip_body", framing=framing, drip_s=0.05, body=_DRIPPED) as server:
        started = time.monotonic()
        with pytest.raises(net.CallTimeout):
            net.api_session(net.API_MAX_BODY).request("POST", server.url, data=b"{}", timeout=0.5)
    assert time.monotonic() - started < 3.0


def test_given_an_argument_the_sdk_never_passes_when_calling_then_it_is_refused() -> None:
    with pytest.raises(TypeError, match="takes no cookies"):
        net.api_session(net.API_MAX_BODY).request("POST", "http://127.0.0.1:9/", cookies={})
