"""The hours before a timer's hour, made whole and settled: `SMS_STATS_SETTLE_HOURS` (72) of them.

Receipts keep arriving for days after their hour, and a run that ran out of time leaves hours
for "the next run". So after its own hour, each timer run heals the settle window of every app:

1. What the store holds: each kind's day folders of the window are listed with versions (one
   listing per kind and local day), and each hour's counts come from the app's ledger when the
   ledger saw the version listed, else from the object itself. An object that does not read
   back as that hour's record (truncated, foreign, another app's) is missing. The ledger
   (`_heal/app=<id>.json`) is only a copy to skip reads: every entry is checked against the
   listing, so a stale or lost ledger costs reads, never a wrong count. A steady app costs one
   ledger read and write and a handful of listings, instead of 144 object reads an hour.
2. Each hour a kind lacks is fetched, one call each, newest first.
3. Receipts: one range call over the window is compared with the sum of its stored hours.
   Counts only grow as receipts arrive, so equal sums of every field mean no hour changed: a
   steady app costs one receipt call here. A block whose sums differ is split: the older half
   is asked, the newer half is known by subtraction, and a half that differs is split again.
   An hour that differs is written from an answer for exactly that hour (its own call, unless
   it was the half asked), so every stored hour holds one answer and that answer's RequestId.
   Two changed hours among 72 cost about 15 calls; 24 changed hours would cost more than
   fetching them, which is why the window is split rather than scanned.

A call that finds no time left stops the app's healing: what is left, the next run heals (the
apps' order turns every hour, so no app is always last). Any other failure stops that kind of
that app and is reported like any failed fetch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from .apis import api
from .client import OUT_OF_TIME, StatsClient
from .errors import UpstreamError, detached
from .log import logger
from .records import CallbackRecord, Kind, Record, day_folder, figures, read_back, store_key
from .sinks.base import SinkError, Store
from .windows import Window

LEDGER_PREFIX = "_heal/"
LEDGER_SCHEMA = "sms-stats-heal/v1"
KINDS: tuple[Kind, ...] = ("send", "callback")  # the windowed kinds; a balance is a snapshot
Figures = tuple[int, ...]


class Held(NamedTuple):
    """An hour as the store holds it: the object's version (as listed) and its counts."""

    version: str
    figures: Figures


class Healed(NamedTuple):
    """What healing one app came to: the records to write (missing hours, changed receipts),
    the failures (kind, hour or range, error), the hours left for the next run, and the API
    calls it made per kind (the figure the settle cost is judged by)."""

    app_id: str
    records: list[Record | CallbackRecord]
    failures: list[tuple[Kind, Window, UpstreamError]]
    left: int
    calls: dict[Kind, int]


def ledger_key(app_id: str) -> str:
    return f"{LEDGER_PREFIX}app={app_id}.json"


def rotated(app_ids: Sequence[str], hour: Window) -> list[str]:
    """The apps starting at a different one every hour: a run that runs out of time leaves
    different apps for the next run, never the same ones every hour."""
    if not app_ids:
        return []
    turn = int(hour.start.timestamp() // 3600) % len(app_ids)
    return [*app_ids[turn:], *app_ids[:turn]]


class Healer:
    """Heals apps one at a time (each call of `heal` is one app; calls may run in threads)."""

    def __init__(
        self,
        store: Store,
        client: StatsClient,
        window: Window,
        kinds: Sequence[Kind],
        zone_name: str,
        deadline: float | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.client = client
        self.hours = list(window.iter_hours())
        self.kinds = [kind for kind in KINDS if kind in kinds]
        self.zone_name = zone_name
        self.deadline = deadline
        self.clock = clock
        callback_span = api("callback").max_hours if "callback" in self.kinds else None
        self.max_span = callback_span or len(self.hours)

    def heal(self, app_id: str) -> Healed:
        work = _AppHeal(self, app_id)
        try:
            held, ledger = self._held(app_id)
        except SinkError as exc:
            logger.warning("heal.store_unreadable", app_id=app_id, error=str(exc))
            return Healed(app_id, [], [], len(self.hours) * len(self.kinds), {})
        kept: dict[Kind, dict[str, Held]] = {kind: {} for kind in self.kinds}
        for kind in self.kinds:
            known = {hour: h.figures for hour, h in held[kind].items()}
            if work.fill(kind, known) and kind == "callback":
                work.settle(known)
            rewritten = {record.window for record in work.records if record.kind == kind}
            kept[kind] = {hour.label: h for hour, h in held[kind].items() if hour not in rewritten}
        if kept != ledger:
            self._write_ledger(app_id, kept)
        return Healed(app_id, work.records, work.failures, work.left, work.calls)

    def _held(
        self, app_id: str
    ) -> tuple[dict[Kind, dict[Window, Held]], dict[Kind, dict[str, Held]]]:
        """Each kind's stored hours of the window ({hour: Held}), and the ledger as read."""
        ledger = self._read_ledger(app_id)
        held: dict[Kind, dict[Window, Held]] = {}
        for kind in self.kinds:
            listed: dict[str, str] = {}
            for day in _dates(self.hours):
                listed.update(self.store.listing(day_folder(kind, app_id, day), self.deadline))
            copy = ledger.get(kind, {})
            found: dict[Window, Held] = {}
            for hour in self.hours:
                key = store_key(app_id, hour, kind)
                version = listed.get(key)
                if version is None:
                    continue
                seen = copy.get(hour.label)
                if seen is not None and seen.version == version:
                    found[hour] = seen
                    continue
                record = read_back(self.store.get(key, self.deadline))
                # The key names the kind, the app and the hour: a record that reads back
                # under another key (another app's, copied by hand) is not this hour's.
                if isinstance(record, (Record, CallbackRecord)) and record.key == key:
                    found[hour] = Held(version, figures(record))
                else:
                    logger.info("heal.unreadable", app_id=app_id, kind=kind, key=key)
            held[kind] = found
        return held, ledger

    def _read_ledger(self, app_id: str) -> dict[Kind, dict[str, Held]]:
        """The ledger's entries; empty when there is none or it is not one (it is a copy)."""
        data = self.store.get(ledger_key(app_id), self.deadline)
        if data is None:
            return {}
        try:
            payload = json.loads(data)
            if payload.get("schema") != LEDGER_SCHEMA or payload.get("app_id") != app_id:
                return {}
            return {
                kind: {
                    str(label): Held(str(entry[0]), tuple(int(n) for n in entry[1]))
                    for label, entry in payload["hours"].get(kind, {}).items()
                }
                for kind in self.kinds
            }
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            logger.info("heal.ledger_unreadable", app_id=app_id)
            return {}

    def _write_ledger(self, app_id: str, kept: dict[Kind, dict[str, Held]]) -> None:
        payload: dict[str, Any] = {
            "schema": LEDGER_SCHEMA,
            "app_id": app_id,
            "hours": {
                kind: {label: [h.version, list(h.figures)] for label, h in sorted(hours.items())}
                for kind, hours in kept.items()
            },
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.store.put(ledger_key(app_id), body, self.deadline)
        except SinkError as exc:  # a copy: the next run reads the objects instead
            logger.info("heal.ledger_unwritten", app_id=app_id, error=str(exc))


class _AppHeal:
    """One app's healing in progress: the calls it made, what it found, where it stopped."""

    def __init__(self, healer: Healer, app_id: str) -> None:
        self.healer = healer
        self.app_id = app_id
        self.records: list[Record | CallbackRecord] = []
        self.failures: list[tuple[Kind, Window, UpstreamError]] = []
        self.left = 0
        self.calls: dict[Kind, int] = {}
        self.stopped = False  # out of time: nothing more is asked in this run

    def ask(self, kind: Kind, window: Window) -> Record | CallbackRecord | None:
        """One call; None when it failed (recorded) or no time is left (counted)."""
        if self.stopped:
            return None
        self.calls[kind] = self.calls.get(kind, 0) + 1
        healer = self.healer
        try:
            record = api(kind).fetch(
                healer.client,
                self.app_id,
                window,
                healer.zone_name,
                healer.clock(),
                healer.deadline,
            )
        except UpstreamError as exc:
            if exc.code == OUT_OF_TIME:
                self.calls[kind] -= 1
                self.stopped = True
            else:
                self.failures.append((kind, window, detached(exc)))
            return None
        assert isinstance(record, (Record, CallbackRecord))
        return record

    def fill(self, kind: Kind, known: dict[Window, Figures]) -> bool:
        """Fetch the hours `known` lacks, newest first, adding them to it. False when the
        kind's healing stops here (a failure, or no time left)."""
        missing = [hour for hour in reversed(self.healer.hours) if hour not in known]
        for done, hour in enumerate(missing):
            record = self.ask(kind, hour)
            if record is None:
                self.left += len(missing) - done if self.stopped else 0
                return False
            self.records.append(record)
            known[hour] = figures(record)
        return not self.stopped

    def settle(self, known: dict[Window, Figures]) -> None:
        """Find the receipt hours that changed since they were stored (see the module)."""
        hours = self.healer.hours
        span = self.healer.max_span
        for start in range(0, len(hours), span):
            block = hours[start : start + span]
            answer = self._range(block)
            if answer is None:
                return
            self._split(block, figures(answer), answer, known)

    def _range(self, block: list[Window]) -> CallbackRecord | None:
        record = self.ask("callback", Window(block[0].start, block[-1].end))
        assert record is None or isinstance(record, CallbackRecord)
        return record

    def _split(
        self,
        block: list[Window],
        answer: Figures,
        asked: CallbackRecord | None,
        known: dict[Window, Figures],
    ) -> None:
        """`answer` is the API's sum over `block` (`asked`: its own answer, when the block was
        asked rather than derived); rewrite the hours in it that changed."""
        before = _sum(known[hour] for hour in block)
        if answer == before or self.stopped:
            return
        if len(block) == 1:
            (hour,) = block
            record = asked if asked is not None else self._range(block)
            if record is not None and figures(record) != known[hour]:
                self.records = [r for r in self.records if r.window != hour or r.kind != "callback"]
                self.records.append(record)
                known[hour] = figures(record)
            return
        older, newer = block[: len(block) // 2], block[len(block) // 2 :]
        asked_older = self._range(older)
        if asked_older is None:
            return
        from_older = figures(asked_older)
        # Receipts that arrived between the two answers make this difference short of the
        # newer half's counts. It still only steers the search: an hour is written from an
        # answer for that hour alone, and what a short difference hid, the next run finds.
        rest = tuple(whole - part for whole, part in zip(answer, from_older, strict=True))
        self._split(older, from_older, asked_older, known)
        self._split(newer, rest, None, known)


def _sum(items: Iterator[Figures] | Sequence[Figures]) -> Figures:
    total: list[int] = []
    for item in items:
        if not total:
            total = list(item)
        else:
            for i, value in enumerate(item):
                total[i] += value
    return tuple(total)


def _dates(hours: Sequence[Window]) -> list[date]:
    return sorted({hour.local_date for hour in hours})
