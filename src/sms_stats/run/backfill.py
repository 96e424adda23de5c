"""Backfill and gap checks: any range of hours or days, resumable, at the API's rate.

A backfill writes the same records to the same sinks as the timer, except chat bots that take
records (`?notify=records`): a month of hours would be 720 messages in a group chat, paced to
the platform's 20 a minute, so bots get them only when asked (`--notify`). It is resumable
because the store's keys are stable: windows already in the store (the first file or COS sink)
are skipped unless forced. Work goes in chunks of windows, so Ctrl-C waits only for the calls in
flight, and since every store write is atomic, an interrupted run leaves the store consistent for
the next.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TextIO

from sms_stats.core.context import Invocation
from sms_stats.core.errors import InputError
from sms_stats.core.records import Kind, store_key
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Granularity, Window, last_full, parse_hour
from sms_stats.deliver.chat.sink import ChatSink
from sms_stats.deliver.outbox import Outbox, describe
from sms_stats.deliver.sinks import Sink
from sms_stats.deliver.topics import record_sinks, takes_records
from sms_stats.events.jobs import BEGIN_CODE, END_CODE, Job, Task, check_app_ids
from sms_stats.run.pipeline import RunResult, run_job
from sms_stats.store.base import Store, find_store
from sms_stats.store.layout import ensure_zone
from sms_stats.store.reading import held_keys


@dataclass(frozen=True)
class Plan:
    """What a backfill will do before it does it: the job left once stored windows are skipped,
    and what the outbox owes, so `--dry-run` and the progress bar count the same thing."""

    job: Job
    store: Store | None
    stored: int  # (app, window) pairs not fetched because the store has them
    # Sink name -> records earlier runs still owe it (the outbox): delivered before fetching.
    owed: dict[str, int] = field(default_factory=dict)

    @property
    def todo(self) -> int:
        return len(self.job)


def without_chat(sinks: Sequence[Sink], notify: bool) -> tuple[list[Sink], list[ChatSink]]:
    """(the sinks a backfill hands records to, the chat bots it leaves out unless `notify`).

    Bots whose `?notify=` takes no records stay among the sinks (they get no records anyway,
    and a store among them keeps its place as the first store); only bots that do take
    records are left out, and their outbox debts kept for the timer's runs.
    """
    if notify:
        return list(sinks), []
    chats = record_chats(sinks)
    return [sink for sink in sinks if sink not in chats], chats


def record_chats(sinks: Sequence[Sink]) -> list[ChatSink]:
    """The chat bots among `sinks` that take records: what a backfill posts summaries to."""
    return [s for s in sinks if isinstance(s, ChatSink) and takes_records(s)]


def posting_time(messages: int, sink: ChatSink) -> float:
    """The least time `messages` posts take at the bot's pace, in seconds (one per window)."""
    slowest = 0.0
    for count, span in sink.pace.limits:
        slowest = max(slowest, max(0, -(-messages // count) - 1) * span)
    return slowest


def requested_range(begin: str, end: str, settings: Settings, now: datetime) -> Window:
    """`--from`..`--to` (both hours included), checked before any call."""
    tz = settings.zone
    try:
        first = parse_hour(begin, tz)
    except ValueError as exc:
        raise InputError(f"--from: {exc}", code=BEGIN_CODE) from None
    try:
        last = parse_hour(end, tz)
    except ValueError as exc:
        raise InputError(f"--to: {exc}", code=END_CODE) from None
    if last < first:
        raise InputError(f"--to {end} is before --from {begin}", code=END_CODE)
    window = Window.through(first, last)
    newest = last_full(now, tz)[0]
    if window.end > newest.end:
        raise InputError(
            f"--to {end} has not ended yet ({settings.timezone}); the last full hour is "
            f"{newest.begin_time}",
            code=END_CODE,
        )
    if window.hours > settings.max_backfill_hours:
        raise InputError(
            f"the range {begin}..{end} is {window.hours} hours; at most "
            f"{settings.max_backfill_hours} (SMS_STATS_MAX_BACKFILL_HOURS) per backfill",
            code=END_CODE,
        )
    return window


def plan(
    app_ids: Sequence[str],
    begin: str,
    end: str,
    by: Granularity,
    settings: Settings,
    sinks: Sequence[Sink],
    now: datetime,
    *,
    force: bool = False,
    kinds: Sequence[Kind] = ("send",),
) -> Plan:
    apps = check_app_ids(app_ids, "--app-id", settings, limit=1000)
    if "packages" in kinds:
        raise InputError(
            "--kind packages: a balance is a snapshot of now, with no past to backfill; "
            "backfill send and callback"
        )
    if by == "day":
        _whole_days(begin, end)
    windows = tuple(requested_range(begin, end, settings, now).split(by))
    store = find_store(sinks)
    skip: frozenset[Task] = frozenset()
    owed: dict[str, int] = {}
    if store is not None:
        ensure_zone(store, settings.timezone)  # another zone's store: refused before any call
        if not force:
            tasks = [(k, a, w) for w in windows for k in kinds for a in apps]
            held = held_keys(store, [(store_key(a, w, k), k, a) for k, a, w in tasks])
            skip = frozenset(task for task in tasks if store_key(task[1], task[2], task[0]) in held)
        owed = describe(Outbox(store).owed(None))
    return Plan(Job(apps, windows, skip, kinds=tuple(kinds)), store, len(skip), owed)


def _whole_days(begin: str, end: str) -> None:
    if not (begin.endswith("00") and end.endswith("23")):
        # A day record is always D00-D23: a clipped day would be a window that neither the
        # timer's day job nor `gaps` knows, and the store would keep it forever.
        raise InputError(
            f"--by day needs whole days: --from at hour 00 and --to at hour 23 "
            f"(got {begin}..{end})",
            code=BEGIN_CODE if not begin.endswith("00") else END_CODE,
        )


@dataclass
class Progress:
    """done/total, rate and ETA on one line (a terminal) or every tenth (a log file)."""

    total: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    failed: int = 0
    _started: float = 0.0
    _last_tenth: int = -1

    def __post_init__(self) -> None:
        self._started = self.clock()

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        tenth = self.done * 10 // max(self.total, 1)
        if self.stream.isatty():
            self.stream.write("\r" + self.line())
        elif tenth != self._last_tenth or self.done == self.total:
            self.stream.write(self.line() + "\n")
        self._last_tenth = tenth
        self.stream.flush()

    def line(self) -> str:
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = str(timedelta(seconds=round(left / rate))) if rate > 0 else "?"
        width = 24
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        failed = f"  {self.failed} failed" if self.failed else ""
        return f"[{bar}] {self.done}/{self.total}  {rate:.1f}/s  ETA {eta}{failed}"

    def finish(self) -> None:
        if self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()


def run(
    backfill: Plan,
    settings: Settings,
    sinks: Sequence[Sink],
    *,
    progress: Progress | None = None,
    chunk_windows: int | None = None,
    left_out: Sequence[Sink] = (),
) -> RunResult:
    """Deliver what earlier runs still owe (the outbox), then fetch and deliver in chunks of
    windows; KeyboardInterrupt stops after the current chunk's calls in flight, with what was
    done so far already stored. `left_out` are configured sinks this backfill does not deliver
    to (chat bots without --notify): what the outbox owes them stays owed."""
    job = backfill.job
    size = chunk_windows or max(1, settings.concurrency * 4 // max(len(job.app_ids), 1))
    total = RunResult()
    invocation = Invocation.begin(None)
    if backfill.store is not None and backfill.owed:
        total.deliveries.extend(
            Outbox(backfill.store).drain(sinks, None, keep=[s.name for s in left_out])
        )

    def fetched(app_id: str, window: Window, ok: bool) -> None:
        if progress is not None:
            progress.step(ok)

    try:
        for start in range(0, len(job.windows), size):
            part = Job(job.app_ids, job.windows[start : start + size], job.skip, job.kinds)
            if not len(part):
                continue
            result = run_job(part, settings, invocation, sinks, on_fetched=fetched, drain=False)
            total.records.extend(result.records)
            total.failures.extend(result.failures)
            total.deliveries.extend(result.deliveries)
    finally:
        if progress is not None:
            progress.finish()
    return total


def gaps(
    app_ids: Sequence[str],
    begin: str,
    end: str,
    settings: Settings,
    store: Store,
    now: datetime,
    sinks: Sequence[Sink] = (),
    by: Granularity = "hour",
    kind: Kind = "send",
) -> list[tuple[str, str, str]]:
    """(app, window, sink) for each hour (or whole day, `by`) a sink lacks: the store lacks a
    window it holds no record of at that grain (a day record does not fill an hour's gap, nor
    hours a day's); another sink also lacks the windows the outbox still owes it. `sinks`
    defaults to the store alone; one whose `?notify=` takes no records lacks nothing."""
    window = requested_range(begin, end, settings, now)
    apps = check_app_ids(app_ids, "--app-id", settings, limit=1000)
    if by == "day":
        _whole_days(begin, end)
    ensure_zone(store, settings.timezone, write=False)
    others = [sink for sink in record_sinks(sinks) if sink.name != store.name]
    owed = Outbox(store).owed(None) if others else {}
    parts = window.split(by)
    held = held_keys(store, [(store_key(a, p, kind), kind, a) for a in apps for p in parts])
    missing: list[tuple[str, str, str]] = []
    for app_id in apps:
        for part in parts:
            key = store_key(app_id, part, kind)
            stored = key in held
            label = part.begin_time if by == "hour" else part.local_date.isoformat()
            if not stored:
                missing.append((app_id, label, store.name))
            for sink in others:
                if not stored or key in owed.get(sink.name, set()):
                    missing.append((app_id, label, sink.name))
    return missing
