"""What healing the 72 hours before a timer's hour costs (issue 23): calls and time.

- receipt calls per app per run: a steady account (every hour stored, nothing changed), two
  changed hours among the 72, and receipts settling over 6 hours as the stand-in models them;
  counted from the stand-in's own request log, as the API would bill them;
- a steady-state timer run over N apps (1,000 and 4,000) with 72 settle hours and all three
  kinds, against a stand-in in its own process enforcing a scaled rate (50 requests a second
  per API, with 30 ms latency: the real 10 a second and ~150 ms, five times faster), with
  `SMS_STATS_RATE_LIMIT` at the same rate: the run's time against what the busiest API's rate
  allows for the calls it made (target <= 1.10x). The store is a file directory (in memory
  where /dev/shm is) holding the 72 hours and each app's ledger as the last run left them;
  the next hour's run is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def app_ids(count: int) -> list[str]:
    return [f"14001{n:05d}" for n in range(count)]  # 1400000000 is the stand-in's unauthorized


def _env(endpoint: str, apps: list[str], sinks: str, rate: float | None) -> dict[str, str]:
    from sms_stats.emulator import DEFAULT_CREDENTIALS

    secret_id, secret_key = next(iter(DEFAULT_CREDENTIALS.items()))
    env = {
        "TENCENTCLOUD_SECRETID": secret_id,
        "TENCENTCLOUD_SECRETKEY": secret_key,
        "SMS_STATS_ENDPOINT": endpoint,
        "SMS_STATS_APP_IDS": ",".join(apps),
        "SMS_STATS_SINKS": sinks,
        "SMS_STATS_LOG_LEVEL": "ERROR",
        "SMS_STATS_ALERTS": "[]",
        "SMS_STATS_SETTLE_HOURS": "72",
        "SMS_STATS_COLLECT": "send,callback,packages",
    }
    if rate is not None:
        env["SMS_STATS_RATE_LIMIT"] = f"{rate:g}"
    return env


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    from sms_stats import handler
    from sms_stats.collect import client
    from sms_stats.run import pipeline
    from sms_stats.store import layout

    saved = {k: v for k, v in os.environ.items() if k.startswith(("SMS_STATS_", "TENCENTCLOUD_"))}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    for cache in (handler._settings_cache, handler._sinks_cache, pipeline._clients):
        cache.clear()
    client._sdk_clients.clear()
    client._limiters.clear()
    layout.clear_cache()
    try:
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)


def timer(at: datetime) -> dict[str, str]:
    return {
        "Type": "Timer",
        "TriggerName": "bench",
        "Time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Message": "",
    }


def run_timer(at: datetime, limit_s: int = 900) -> dict[str, Any]:
    from index import main_handler

    summary: dict[str, Any] = main_handler(
        timer(at), {"request_id": "bench", "time_limit_in_ms": limit_s * 1000}
    )
    return summary


def receipt_calls(requests: list[dict[str, Any]]) -> dict[str, int]:
    per_app: dict[str, int] = {}
    for r in requests:
        if r["action"] == "CallbackStatusStatistics" and r["code"] == "OK":
            per_app[r["app_id"]] = per_app.get(r["app_id"], 0) + 1
    return per_app


class Pinned:
    """The stand-in's and the handler's clock, moved by the bench an hour at a time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def cost_bench(apps: int = 20) -> dict[str, float]:
    """Receipt calls per app per run, read from the stand-in's log (max over the apps)."""
    from sms_stats.emulator import Emulator

    ids = app_ids(apps)
    start = datetime(2021, 5, 10, 5, 5, tzinfo=timezone.utc)
    figures: dict[str, float] = {}
    for name, settle in (("steady", timedelta(0)), ("settling", timedelta(hours=6))):
        clock = Pinned(start)
        with (
            Emulator(clock=clock, settle_after=settle) as emulator,
            tempfile.TemporaryDirectory() as store,
            environment(_env(emulator.endpoint, ids, f"file://{store}", 1000)),
        ):
            from sms_stats import handler

            original = handler.utcnow
            handler.utcnow = clock
            try:
                run_timer(start)  # the empty store's first run fills the 72 hours
                clock.now = start + timedelta(hours=1)
                run_timer(clock.now)  # the ledgers, made from what the first run wrote
                for n in (2, 3, 4):
                    clock.now = start + timedelta(hours=n)
                    seen = len(emulator.requests)
                    run_timer(clock.now)
                    calls = receipt_calls(emulator.requests[seen:])
                    figures[f"{name}_max"] = max(figures.get(f"{name}_max", 0), *calls.values())
                    total = sum(calls.values()) / apps
                    figures[f"{name}_mean"] = max(figures.get(f"{name}_mean", 0), total)
                if name == "steady":
                    clock.now = start + timedelta(hours=5)
                    last = clock.now.astimezone(SHANGHAI).replace(minute=0) - timedelta(hours=1)
                    window = [last - timedelta(hours=n) for n in range(72, 0, -1)]
                    for app in ids:
                        first = changeable(emulator, app, window, 9)
                        second = changeable(emulator, app, window, window.index(first) + 30)
                        for hour in (first, second):
                            emulator.add_receipts(app, hour.strftime("%Y%m%d%H"), 1)
                    seen = len(emulator.requests)
                    run_timer(clock.now)
                    calls = receipt_calls(emulator.requests[seen:])
                    figures["two_changed_max"] = max(calls.values())
                    figures["two_changed_mean"] = sum(calls.values()) / apps
            finally:
                handler.utcnow = original
    return figures


def changeable(emulator: Any, app: str, window: list[datetime], at: int) -> datetime:
    """The first hour from `at` on whose receipts are not all in (only those can change)."""
    for hour in window[at:]:
        label = hour.strftime("%Y%m%d%H")
        counts = emulator.receipts_of(app, label, label)
        if counts["RequestSuccessCount"] > counts["CallbackCount"]:
            return hour
    raise SystemExit(f"no hour of app {app} can change")


@contextlib.contextmanager
def standin_process(rate: float, latency: float) -> Iterator[str]:
    """The stand-in in a process of its own (as the real API is another machine): its work
    does not compete with ours for this interpreter's lock."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sms_stats.emulator",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--rate-limit",
                f"{rate:g}",
                "--latency",
                f"{latency:g}",
                "--settle-hours",
                "0",
                "--quiet",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists():  # polled: it writes the file once it listens
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the stand-in did not start")
                time.sleep(0.02)
            yield f"http://127.0.0.1:{port_file.read_text().strip()}"
        finally:
            process.terminate()
            process.wait(10)


def fill(store: Path, apps: list[str], hours: list[datetime], fetched: datetime) -> None:
    """The 72 hours of every app as runs would have written them (the stand-in's counts,
    settled), and each app's ledger as the last run would have left it (`heal.ledger_bytes`,
    the versions from the store's own listing): the state a deployment's store is in after
    its first days. Straight to files: a run would take an hour of calls per 1,000 apps."""
    from sms_stats.core.records import CallbackRecord, Counts, Receipts, Record, figures
    from sms_stats.core.windows import Window, zone
    from sms_stats.emulator import counts
    from sms_stats.run.heal import ledger_bytes, ledger_key
    from sms_stats.store.file import FileSink, encode

    tz = zone("Asia/Shanghai")
    (store / "_store.json").write_text(json.dumps({"timezone": "Asia/Shanghai", "layout": 2}))
    sink = FileSink(store, f"file:{store}")
    windows = [
        Window(start.astimezone(tz), (start + timedelta(hours=1)).astimezone(tz)) for start in hours
    ]
    for app in apps:
        written: dict[str, dict[str, tuple[str, Record | CallbackRecord]]] = {
            "send": {},
            "callback": {},
        }
        for window in windows:
            label = window.begin_time
            sent = counts.hour_counts(app, label)
            record = Record(
                app,
                window,
                "Asia/Shanghai",
                Counts(sent["RequestCount"], sent["RequestSuccessCount"], sent["FeeCount"], "fill"),
                fetched,
            )
            _write(store / record.key, encode(record))
            got = counts.hour_callback_counts(app, label, fetched, timedelta(0))
            receipts = Receipts(
                got["RequestSuccessCount"],
                got["CallbackCount"],
                got["CallbackSuccessCount"],
                got["CallbackFailCount"],
                got["InternalErrorCount"],
                got["InvalidNumberCount"],
                got["ShutdownErrorCount"],
                got["BlackListCount"],
                got["FrequencyLimitCount"],
                "fill",
            )
            callback = CallbackRecord(app, window, "Asia/Shanghai", receipts, fetched)
            _write(store / callback.key, encode(callback))
            written["send"][record.key] = (window.label, record)
            written["callback"][callback.key] = (window.label, callback)
        ledger: dict[str, dict[str, list[Any]]] = {}
        for kind, records in written.items():
            folder = "" if kind == "send" else f"{kind}/"
            versions: dict[str, str] = {}
            for day in {key.split("/")[-2] for key in records}:
                versions.update(sink.listing(f"{folder}app={app}/{day}/"))
            # The newest hour was the last run's own: written after that run's ledger, so
            # this run reads it, as every steady run reads the hour before its own.
            ledger[kind] = {
                label: [versions[key], list(figures(record))]
                for key, (label, record) in records.items()
                if label != windows[-1].label
            }
        _write(store / ledger_key(app), ledger_bytes(app, ledger))


def _write(path: Path, data: bytes) -> None:
    """A plain write: the bench's setup, which nothing reads while it runs."""
    try:
        path.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def scale_bench(apps: int, rate: float = 50.0, latency: float = 0.03) -> dict[str, float]:
    """A steady-state timer run over `apps` apps at a scaled rate (see the module)."""
    ids = app_ids(apps)
    now = datetime.now(timezone.utc)
    last = now.astimezone(SHANGHAI).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hours = [last - timedelta(hours=n) for n in range(72, 0, -1)]
    memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with (
        standin_process(rate, latency) as endpoint,
        tempfile.TemporaryDirectory(dir=memory) as tmp,
    ):
        store = Path(tmp)
        started = time.perf_counter()
        fill(store, ids, hours, last.astimezone(timezone.utc))
        filled = time.perf_counter() - started
        with environment(_env(endpoint, ids, f"file://{store}", rate)):
            at = (last + timedelta(hours=1, minutes=5)).astimezone(timezone.utc)
            started = time.perf_counter()
            cpu = time.process_time()
            summary = run_timer(at)
            took = time.perf_counter() - started
            cpu = time.process_time() - cpu
        assert summary["ok"], str(summary)[:2000]
        heal = summary["heal"]
        assert heal["hours_left"] == 0, heal
        assert heal["records"] == 0, heal
    calls = {
        "send": apps + heal.get("send_calls", 0),
        "callback": apps + heal.get("callback_calls", 0),
        "packages": apps,
    }
    busiest = max(calls.values())
    return {"took": took, "floor": busiest / rate, "calls": busiest, "filled": filled, "cpu": cpu}
