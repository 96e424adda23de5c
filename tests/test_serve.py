"""`sms-stats serve`: a real local server turning requests into Function URL events."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from sms_stats.serve import make_server, start_in_thread, to_event

from .conftest import API_TOKEN, APP_A


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
def server(scf_env: dict[str, str]) -> Any:
    srv = make_server("127.0.0.1", 0)
    start_in_thread(srv)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def get(url: str, token: str | None = API_TOKEN) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class TestServer:
    def test_given_a_get_when_served_then_main_handler_answers_it(self, server: str) -> None:
        status, body = get(f"{server}/stats?app_id={APP_A}&begin=2021050113&end=2021050113")
        assert status == 200
        assert body["records"][0]["sms_sdk_app_id"] == APP_A

    def test_given_no_token_then_401_as_on_scf(self, server: str) -> None:
        status, body = get(f"{server}/stats?app_id={APP_A}&begin=2021050113&end=2021050113", None)
        assert status == 401
        assert body["error"]["code"].startswith("AuthFailure")

    def test_given_a_busy_port_then_a_clear_error_not_a_traceback(self, server: str) -> None:
        port = server.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "sms_stats.cli", "serve", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "cannot listen on 127.0.0.1:" in result.stderr
        assert "Traceback" not in result.stderr
