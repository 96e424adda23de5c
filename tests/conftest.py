"""Shared fixtures: the local SMS API stand-in on loopback, an SCF-like environment, events."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from sms_stats import handler
from sms_stats.collect import client
from sms_stats.core import redact
from sms_stats.core.records import Counts, Record
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.chat import repeats
from sms_stats.emulator import Emulator
from sms_stats.run import pipeline
from sms_stats.store import layout

EVENTS = Path(__file__).parent / "events"
SECRET_ID = "AKIDtestsecretid0000000000000000"
SECRET_KEY = "test-secret-key-5f8a1c3e9b"
SESSION_TOKEN = "test-session-token-77e2d0"
API_TOKEN = "test-api-token-4c9e2f71"
APP_A = "1400006874"
APP_B = "1400006875"

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def seed_record(app_id: str = APP_A, begin: str = "2021050112", end: str = "2021050112") -> Record:
    """A record as the API would give it for `begin`..`end` (Shanghai), fetched at a fixed time."""
    counts = Counts(1880, 1870, 1900, "req-0001")
    window = Window.from_api(begin, end, zone("Asia/Shanghai"))
    return Record(
        app_id, window, "Asia/Shanghai", counts, datetime(2021, 5, 10, tzinfo=timezone.utc)
    )


class Clock:
    """The handler's clock, pinned at `now`: a test moves it on to run the next hour."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pin_clock(mocker: Any, now: datetime) -> Clock:
    """`sms_stats.handler.utcnow`, pinned (the one clock the function reads)."""
    pinned = Clock(now)
    mocker.patch("sms_stats.handler.utcnow", side_effect=pinned)
    return pinned


class FakeClock:
    """A monotonic clock and its sleep, for limiters and retries: sleeping moves time on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(credentials={SECRET_ID: SECRET_KEY}).start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees another's environment, caches, injected faults or /tmp alert state."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tmp")))
    for name in list(os.environ):
        if name.startswith(("SMS_STATS_", "TENCENTCLOUD_", "SCF_")):
            monkeypatch.delenv(name)
    handler._settings_cache.clear()
    handler._sinks_cache.clear()
    client._sdk_clients.clear()
    client._limiters.clear()
    pipeline._clients.clear()
    repeats.posted.clear()
    layout.clear_cache()
    redact.clear()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def scf_env(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator, store: Path
) -> Iterator[dict[str, str]]:
    """The environment an SCF function with a bound role would have, pointed at the stand-in."""
    emulator.clear_faults()
    env = {
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": SESSION_TOKEN,
        "TENCENTCLOUD_REGION": "ap-guangzhou",
        "SCF_FUNCTIONNAME": "sms-stats",
        "SMS_STATS_ENDPOINT": emulator.endpoint,
        "SMS_STATS_APP_IDS": f"{APP_A},{APP_B}",
        "SMS_STATS_SINKS": f"file://{store}",
        "SMS_STATS_API_TOKEN": API_TOKEN,
        "SMS_STATS_TIMEOUT": "2",
        # The seed's API alone: most tests are about how one kind is fetched and delivered;
        # tests/test_kinds.py runs the default (all three kinds).
        "SMS_STATS_COLLECT": "send",
        # Alerts and the digest judge what these runs collect and add their own calls and
        # notices; tests/test_alerts*.py turn them on.
        "SMS_STATS_ALERTS": "[]",
        # A timer run heals the 72 hours before its own (missing hours fetched, receipts
        # verified): over an empty store that is 144 calls an app, at 10 a second. Most tests
        # are about the run's own hour; tests/test_heal.py turns healing on.
        "SMS_STATS_SETTLE_HOURS": "0",
        # The stand-in sets no pace of its own unless a test asks it to: the client's limit of
        # 10 a second per API only made runs wait (20 s of the suite). Tests of the pace set
        # their own (tests/test_pacing.py, test_client.py, test_faults.py).
        "SMS_STATS_RATE_LIMIT": "1000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    emulator.clear_faults()


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "request_id": "3f1c0a54-8a4b-11ef-9d2e-525400e3a1b0",
        "function_name": "sms-stats",
        "function_version": "$LATEST",
        "namespace": "default",
        "memory_limit_in_mb": 128,
        "time_limit_in_ms": 60_000,
        "tencentcloud_region": "ap-guangzhou",
        "tencentcloud_appid": "1250000000",
        "tencentcloud_uin": "100000000001",
    }


def record_files(store: Path) -> list[str]:
    """The records in a file store, as relative paths: not its `_store.json` or `_outbox/`."""
    paths = (str(p.relative_to(store)) for p in store.rglob("*.json"))
    return sorted(p for p in paths if not p.startswith("_"))
