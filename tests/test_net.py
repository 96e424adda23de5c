"""The bounded adapter: a call ends within its timeout however slowly bytes come, and reads
at most what it keeps. Real sockets on loopback; the only clock is the real one, with bounds
wide enough for a loaded machine (a drip of the whole body would take 200 s)."""

from __future__ import annotations

import time

import pytest
import requests

from sms_stats import net

from .standins.slow import SlowServer


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


def test_given_a_plain_requests_session_when_dripping_then_it_outlives_the_timeout() -> None:
    """The failure this module exists for, shown on the library itself."""
    with SlowServer(mode="drip_body", drip_s=0.05, body=b"x" * 30) as server:
        started = time.monotonic()
        answer = requests.post(server.url, data=b"{}", timeout=0.5)
        took = time.monotonic() - started
    assert answer.content == b"x" * 30
    assert took > 1.0


def test_given_a_huge_answer_when_calling_then_only_max_body_is_read() -> None:
    with SlowServer(mode="huge", huge_bytes=200 * 1024 * 1024) as server:
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
