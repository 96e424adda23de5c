"""A real Prometheus scrapes `sms-stats serve`, and its query API returns the stored hour.

The store is written by a timer run through `main_handler` against the stand-in, at this
machine's time (the server reads its clock), `sms-stats serve` runs as a user starts it (the
console script, from a temporary directory) on a free loopback port, and the Debian package's
`prometheus` scrapes it with the bearer token every second. The test polls Prometheus' HTTP API
until the series are there (bounded by a timeout), never sleeping a fixed time for it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from sms_stats.core.records import store_key
from sms_stats.core.windows import last_full, zone
from sms_stats.emulator import Emulator

from .conftest import API_TOKEN, APP_A, APP_B, SECRET_ID, SECRET_KEY, Clock, pin_clock
from .serving import serving
from .test_metrics import NOW, collect

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus is not installed (Debian package `prometheus`; .ci/run installs it)",
)
SERIES_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture
def clock(mocker: MockerFixture) -> Clock:
    return pin_clock(mocker, NOW)


@pytest.fixture
def served(
    scf_env: dict[str, str],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    context: dict[str, Any],
    tmp_path: Path,
) -> Iterator[str]:
    """`sms-stats serve` on a free port, over a store one timer run has written just now."""
    with Emulator(credentials={SECRET_ID: SECRET_KEY}, clock=clock) as stand_in:
        monkeypatch.setenv("SMS_STATS_ENDPOINT", stand_in.endpoint)
        monkeypatch.delenv("SMS_STATS_COLLECT")  # all three kinds
        collect(clock, datetime.now(timezone.utc), context)
    with serving(tmp_path) as server:
        yield f"{server.host}:{server.port}"


@pytest.fixture
def prometheus(served: str, tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping `served` every second with the bearer token; its API's base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: sms-stats\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        f"      credentials: {API_TOKEN}\n"
        "    static_configs:\n"
        f"      - targets: ['{served}']\n",
        encoding="utf-8",
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    assert PROMETHEUS is not None
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


def wait_for_series(base: str, promql: str, count: int, log: Path) -> list[dict[str, Any]]:
    """Poll the query API until `count` series answer `promql`, or fail after the timeout
    with Prometheus' own log and the target's last scrape error."""
    deadline = time.monotonic() + SERIES_TIMEOUT_S
    while True:
        try:
            result = query(base, promql)
            if len(result) >= count:
                return result
        except (urllib.error.URLError, ConnectionError):
            result = []  # not listening yet
        if time.monotonic() > deadline:
            targets = ""
            try:
                with urllib.request.urlopen(f"{base}/api/v1/targets", timeout=5) as answer:
                    targets = answer.read().decode()[:2000]
            except OSError as exc:
                targets = str(exc)
            pytest.fail(
                f"no {promql} series after {SERIES_TIMEOUT_S:.0f}s: got {result}; targets: "
                f"{targets}; log: {log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.2)  # the next poll, not a wait for a known event


def test_given_a_stored_hour_when_prometheus_scrapes_serve_then_its_api_returns_the_series(
    prometheus: str, store: Path, tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "prometheus.log"
    requests = wait_for_series(prometheus, "sms_request_count", 2, log)
    got = {series["metric"]["app_id"]: float(series["value"][1]) for series in requests}
    (hour,) = last_full(clock.now, zone("Asia/Shanghai"))
    expected: dict[str, float] = {}
    for app in (APP_A, APP_B):
        key = store / store_key(app, hour)
        expected[app] = json.loads(key.read_text(encoding="utf-8"))["request_count"]
    assert got == expected
    for series in requests:
        assert series["metric"]["job"] == "sms-stats"

    remaining = wait_for_series(prometheus, "sms_package_remaining", 2, log)
    for series in remaining:
        app = series["metric"]["app_id"]
        (key,) = (store / "packages" / f"app={app}").glob("dt=*/*.json")
        assert float(series["value"][1]) == json.loads(key.read_text(encoding="utf-8"))["remaining"]
    (up,) = wait_for_series(prometheus, 'up{job="sms-stats"}', 1, log)
    assert up["value"][1] == "1"
