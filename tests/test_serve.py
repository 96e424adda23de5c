"""`sms-stats serve`: the console script a user types, on a real WSGI server (waitress), turning
requests into Function URL events; and what a real server refuses, over real sockets."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sms_stats.handler import main_handler
from sms_stats.web.serve import make_server, start_in_thread, to_event

from .conftest import API_TOKEN, APP_A
from .serving import SMS_STATS, Served, serve_env, serving

STATS = f"/stats?app_id={APP_A}&begin=2021050113&end=2021050113"
IDLE_TIMEOUT_S = 2  # `--idle-timeout` of the slow-client test
THREADS = 4


class TestToEvent:
    def test_given_repeated_query_names_then_a_list_like_the_function_url(self) -> None:
        event = to_event("GET", "/stats?app_id=1&app_id=2&begin=x", {"Accept": "a"}, b"")
        assert event["queryString"] == {"app_id": ["1", "2"], "begin": "x"}
        assert event["headers"] == {"accept": "a"}
        assert event["isBase64Encoded"] is False

    def test_given_a_binary_body_then_base64(self) -> None:
        event = to_event("POST", "/stats", {}, b"\xff\x00")
        assert event["isBase64Encoded"] is True
        assert event["body"] == "/wA="


@pytest.fixture
def served(scf_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    """The console script, started from a temporary directory (not the repository's root)."""
    with serving(tmp_path) as server:
        yield server


def get(url: str, token: str | None = API_TOKEN) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def exchange(served: Served, raw: bytes, timeout: float = 20) -> bytes:
    """Send `raw` on one connection and read until the server closes it."""
    with socket.create_connection((served.host, served.port), timeout=timeout) as conn:
        conn.sendall(raw)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def statuses(raw: bytes) -> list[int]:
    """The status codes of every answer on a connection, in order, each framed by its
    Content-Length (an answer's body may quote a request line)."""
    found: list[int] = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:200]
        lines = head.split(b"\r\n")
        found.append(int(lines[0].split()[1]))
        length = next(
            (int(x.split(b":")[1]) for x in lines[1:] if x.lower().startswith(b"content-length:")),
            len(rest),
        )
        raw = rest[length:]
    return found


def push_until_refused(conn: socket.socket, total: int) -> int:
    """Bytes sent before the server closed the connection (`total` if it never did)."""
    sent = 0
    try:
        while sent < total:
            sent += conn.send(b"x" * 65536)
            if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return sent  # closed by the server
    except BlockingIOError:
        return push_until_refused(conn, total - sent) + sent
    except OSError:  # reset, or a broken pipe
        return sent
    return sent


def json_body(raw: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    return body


class TestConsoleScript:
    def test_given_the_console_script_started_outside_the_repository_when_a_get_arrives_then_main_handler_answers_it(  # noqa: E501
        self, served: Served, tmp_path: Path
    ) -> None:
        assert not (tmp_path / "index.py").exists()  # nothing of the repository's root here
        status, headers, body = get(served.url + STATS)
        assert status == 200
        assert body["records"][0]["sms_sdk_app_id"] == APP_A
        assert headers["Server"] == "sms-stats"
        assert headers["X-Content-Type-Options"] == "nosniff"

    def test_given_no_token_set_when_started_then_it_says_so_at_once(
        self, scf_env: dict[str, str], tmp_path: Path
    ) -> None:
        """Issue 25: it started silently, and only the login page said why nothing worked."""
        env = serve_env()
        env.pop("SMS_STATS_API_TOKEN")
        with serving(tmp_path, env=env) as server:
            log = server.log_text()
        assert "warning: SMS_STATS_API_TOKEN is not set" in log
        assert "/healthz" in log

    def test_given_a_token_set_when_started_then_no_warning(self, served: Served) -> None:
        assert "warning" not in served.log_text()

    def test_given_no_token_then_401_as_on_scf(self, served: Served) -> None:
        status, _, body = get(served.url + STATS, None)
        assert status == 401
        assert body["error"]["code"].startswith("AuthFailure")

    def test_given_a_busy_port_then_a_clear_error_not_a_traceback(
        self, served: Served, tmp_path: Path
    ) -> None:
        result = subprocess.run(
            [str(SMS_STATS), "serve", "--port", str(served.port)],
            cwd=tmp_path,
            env=serve_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "cannot listen on 127.0.0.1:" in result.stderr
        assert "Traceback" not in result.stderr

    def test_given_waitress_not_installed_when_serve_starts_then_it_says_how_to_install_it(
        self, scf_env: dict[str, str], tmp_path: Path
    ) -> None:
        # A module that fails to import as an absent one does, first on the path.
        blocker = tmp_path / "blocker"
        blocker.mkdir()
        (blocker / "waitress.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'waitress'\", name='waitress')\n",
            encoding="utf-8",
        )
        result = subprocess.run(
            [str(SMS_STATS), "serve", "--port", "0"],
            cwd=tmp_path,
            env=serve_env(None, blocker),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "pip install 'sms-stats[serve]'" in result.stderr
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("value", ["0", "65", "x"])
    def test_given_threads_out_of_range_then_the_rule_and_the_value(
        self, value: str, tmp_path: Path
    ) -> None:
        result = subprocess.run(
            [str(SMS_STATS), "serve", "--threads", value],
            cwd=tmp_path,
            env=serve_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "--threads: must be" in result.stderr
        assert "from 1 to 64" in result.stderr
        assert "Traceback" not in result.stderr


class TestFraming:
    """What a real server refuses, sent byte by byte as a client (or an attacker) would."""

    def test_given_a_chunked_post_stats_then_the_body_is_read_whole(self, served: Served) -> None:
        payload = json.dumps(
            {"SmsSdkAppId": APP_A, "BeginTime": "2021050113", "EndTime": "2021050113"}
        ).encode()
        chunks = [payload[:10], payload[10:25], payload[25:]]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        raw = exchange(
            served,
            b"POST /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer " + API_TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
        )
        assert statuses(raw) == [200]
        assert json_body(raw)["records"][0]["sms_sdk_app_id"] == APP_A

    @pytest.mark.parametrize("length", [b"-1", b"abc", b"1e3", b"+5"])
    def test_given_a_content_length_that_is_no_length_then_400_at_once_and_memory_flat(
        self, served: Served, length: bytes
    ) -> None:
        before = served.rss_kb()
        with socket.create_connection((served.host, served.port), timeout=20) as conn:
            conn.sendall(
                b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                + length
                + b"\r\n\r\n"
            )
            # The answer comes before any body is sent: the server does not wait to read one.
            answer = conn.recv(65536)
            assert statuses(answer) == [400]
            assert b"Traceback" not in answer
            # And it reads no more: of 64 MB pushed at it, it takes what the socket buffers
            # hold, then the connection is reset.
            taken = push_until_refused(conn, 64 * 1024 * 1024)
        assert taken < 16 * 1024 * 1024
        assert served.rss_kb() - before < 16 * 1024  # not the 300 MB http.server buffered
        assert b"Python/" not in answer

    def test_given_two_different_content_lengths_then_400(self, served: Served) -> None:
        raw = exchange(
            served,
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
            b"Content-Length: 4\r\n\r\nabcd",
        )
        assert statuses(raw) == [400]

    def test_given_a_smuggled_request_in_a_chunked_body_then_one_answer_for_one_request(
        self, served: Served
    ) -> None:
        # TE.CL smuggling: a front end that honours chunked sends one request whose body holds
        # a second one; a back end that frames by Content-Length (the chunk's size line alone)
        # would answer the POST and then the smuggled GET. Chunked wins, as RFC 9112 says. A
        # last, honest request closes the connection: two answers, not three.
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # 404 if answered
        size_line = b"%x\r\n" % len(smuggled)
        raw = exchange(
            served,
            b"POST /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + API_TOKEN.encode() + b"\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
            % len(size_line)
            + size_line
            + smuggled
            + b"\r\n0\r\n\r\n"
            + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        # The POST refuses a body that is not JSON (the smuggled GET was its body); then the
        # last request's answer, and nothing between them.
        assert statuses(raw) == [400, 200]
        assert b"FailedOperation.JsonParseFail" in raw
        assert b"GET /smuggled" in raw

    def test_given_a_body_over_scf_limit_then_413_before_it_is_sent(self, served: Served) -> None:
        with socket.create_connection((served.host, served.port), timeout=20) as conn:
            conn.sendall(
                b"POST /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 7000000\r\n\r\n"
            )
            answer = conn.recv(65536)
        assert statuses(answer) == [413]

    def test_given_any_answer_then_the_server_names_no_python_version(self, served: Served) -> None:
        for raw in (
            exchange(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            exchange(served, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            exchange(served, b"BOGUS\r\n\r\n"),
        ):
            head = raw.split(b"\r\n\r\n", 1)[0]
            assert b"Python/" not in head
            assert b"waitress" not in head.lower()
            assert b"\r\nServer: sms-stats" in head


class TestSlowClients:
    def test_given_800_half_sent_requests_then_few_threads_a_fresh_request_answered_and_idle_ones_closed(  # noqa: E501
        self, scf_env: dict[str, str], tmp_path: Path
    ) -> None:
        args = ("--idle-timeout", str(IDLE_TIMEOUT_S), "--threads", str(THREADS))
        with serving(tmp_path, *args) as served:
            baseline = served.threads()
            held: list[socket.socket] = []
            try:
                for _ in range(800):
                    conn = socket.create_connection((served.host, served.port), timeout=30)
                    conn.sendall(
                        b"POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab"
                    )
                    held.append(conn)
                # Half-sent requests wait in the event loop, not in a thread each.
                assert served.threads() <= max(baseline, THREADS + 2) + 2
                started = time.monotonic()
                status, _, body = get(served.url + "/healthz", None)
                assert status in (200, 500)  # answered (healthz checks the settings), not stuck
                assert "error" in body or body == {"status": "ok"}
                assert time.monotonic() - started < IDLE_TIMEOUT_S + 10
                # Every idle client is closed after the timeout (plus the cleanup's pace).
                for conn in held[::40]:
                    conn.settimeout(IDLE_TIMEOUT_S + 20)
                    assert conn.recv(1) == b""
            finally:
                for conn in held:
                    conn.close()


class TestInProcess:
    def test_given_make_server_in_a_thread_when_shut_down_then_the_thread_ends(
        self, scf_env: dict[str, str]
    ) -> None:
        server = make_server("127.0.0.1", 0, main_handler)
        thread = start_in_thread(server)
        status, _, _ = get(f"http://127.0.0.1:{server.server_address[1]}{STATS}")
        assert status == 200
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()

    def test_given_the_loops_trigger_already_closed_when_shut_down_then_the_thread_still_ends(
        self, scf_env: dict[str, str]
    ) -> None:
        """Seen once in CI: the loop had closed its trigger (a descriptor polled as invalid), so
        the wake-up write failed with EBADF and the server kept running."""
        server = make_server("127.0.0.1", 0, main_handler)
        thread = start_in_thread(server)
        status, _, _ = get(f"http://127.0.0.1:{server.server_address[1]}{STATS}")
        assert status == 200
        server._inner.trigger.close()  # what the loop does to a dispatcher it finds invalid
        server.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive()
