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
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .apis import api
from .client import OUT_OF_TIME, StatsClient
from .errors import UpstreamError, detached
from .log import logger
from .records import (
    KIND_FOLDERS,
    RECEIPT_FIELDS,
    SEND_FIELDS,
    CallbackRecord,
    Kind,
    Record,
    figures,
    key_tail,
    read_back,
)
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


def ledger_bytes(app_id: str, hours: dict[str, dict[str, list[Any]]]) -> bytes:
    """The ledger object: per kind, hour label -> [the object's version, its counts]."""
    payload = {"schema": LEDGER_SCHEMA, "app_id": app_id, "hours": hours}
    return json.dumps(payload, separators=(",", ":")).encode()


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
        # The same for every app: each hour's key below the app's folder, and the day folders.
        self._slots = [(hour.label, key_tail(hour)) for hour in self.hours]
        self._days = sorted({tail.partition("/")[0] for _, tail in self._slots})

    def heal(self, app_id: str) -> Healed:
        work = _AppHeal(self, app_id)
        try:
            held, ledger = self._held(app_id)
        except SinkError as exc:
            logger.warning("heal.store_unreadable", app_id=app_id, error=str(exc))
            return Healed(app_id, [], [], len(self.hours) * len(self.kinds), {})
        kept: dict[str, dict[str, list[Any]]] = {}
        for kind in self.kinds:
            known: list[Figures | None] = [h.figures if h else None for h in held[kind]]
            if work.fill(kind, known) and kind == "callback":
                work.settle(known)
            rewritten = {record.window.label for record in work.records if record.kind == kind}
            kept[kind] = {
                hour.label: [h.version, list(h.figures)]
                for hour, h in zip(self.hours, held[kind], strict=True)
                if h is not None and hour.label not in rewritten
            }
        if kept != ledger:
            self._write_ledger(app_id, kept)
        return Healed(app_id, work.records, work.failures, work.left, work.calls)

    def _held(self, app_id: str) -> tuple[dict[Kind, list[Held | None]], dict[str, Any]]:
        """Each kind's stored hours of the window, in order (None: not held), and the ledger
        as read."""
        ledger = self._read_ledger(app_id)
        held: dict[Kind, list[Held | None]] = {}
        for kind in self.kinds:
            folder = f"{KIND_FOLDERS[kind]}app={app_id}/"
            listed: dict[str, str] = {}
            for day in self._days:
                listed.update(self.store.listing(f"{folder}{day}/", self.deadline))
            copy = ledger.get(kind)
            if not isinstance(copy, dict):
                copy = {}
            width = _WIDTH[kind]
            found: list[Held | None] = []
            for label, tail in self._slots:
                key = folder + tail
                version = listed.get(key)
                if version is None:
                    found.append(None)
                    continue
                seen: Any = copy.get(label)
                if _entry_of(seen, version, width):
                    found.append(Held(version, tuple(seen[1])))
                    continue
                record = read_back(self.store.get(key, self.deadline))
                # The key names the kind, the app and the hour: a record that reads back
                # under another key (another app's, copied by hand) is not this hour's.
                if isinstance(record, (Record, CallbackRecord)) and record.key == key:
                    found.append(Held(version, figures(record)))
                else:
                    logger.info("heal.unreadable", app_id=app_id, kind=kind, key=key)
                    found.append(None)
            held[kind] = found
        return held, ledger

    def _read_ledger(self, app_id: str) -> dict[str, Any]:
        """The ledger's hours per kind, as stored (each entry is checked where it is used);
        empty when there is none or it is not one: it is only a copy."""
        data = self.store.get(ledger_key(app_id), self.deadline)
        if data is None:
            return {}
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            payload = None
        if (
            not isinstance(payload, dict)
            or payload.get("schema") != LEDGER_SCHEMA
            or payload.get("app_id") != app_id
            or not isinstance(payload.get("hours"), dict)
        ):
            logger.info("heal.ledger_unreadable", app_id=app_id)
            return {}
        hours: dict[str, Any] = payload["hours"]
        return hours

    def _write_ledger(self, app_id: str, kept: dict[str, dict[str, list[Any]]]) -> None:
        try:
            self.store.put(ledger_key(app_id), ledger_bytes(app_id, kept), self.deadline)
        except SinkError as exc:  # a copy: the next run reads the objects instead
            logger.info("heal.ledger_unwritten", app_id=app_id, error=str(exc))


_WIDTH: dict[Kind, int] = {"send": len(SEND_FIELDS), "callback": len(RECEIPT_FIELDS)}
_COUNT_TYPES = {int}  # JSON gives int, float, str, bool, None: a count is an int (not a bool)


def _entry_of(seen: Any, version: str, width: int) -> bool:
    """Whether a ledger entry is `[version, [width counts]]` for the version listed now."""
    if type(seen) is not list or len(seen) != 2 or seen[0] != version:
        return False
    counts = seen[1]
    return (
        type(counts) is list
        and len(counts) == width
        and set(map(type, counts)) == _COUNT_TYPES
        and min(counts) >= 0
    )


class _AppHeal:
    """One app's healing in progress: the calls it made, what it found, where it stopped.
    Hours are their positions in the healer's window: `known[i]` are hour i's counts."""

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

    def fill(self, kind: Kind, known: list[Figures | None]) -> bool:
        """Fetch the hours `known` lacks, newest first, adding them to it. False when the
        kind's healing stops here (a failure, or no time left)."""
        missing = [i for i in reversed(range(len(known))) if known[i] is None]
        for done, i in enumerate(missing):
            record = self.ask(kind, self.healer.hours[i])
            if record is None:
                self.left += len(missing) - done if self.stopped else 0
                return False
            self.records.append(record)
            known[i] = figures(record)
        return not self.stopped

    def settle(self, known: list[Figures | None]) -> None:
        """Find the receipt hours that changed since they were stored (see the module)."""
        whole = [counts for counts in known if counts is not None]
        if len(whole) != len(known):  # pragma: no cover - `fill` returns False then
            return
        span = self.healer.max_span
        for start in range(0, len(whole), span):
            end = min(start + span, len(whole))
            answer = self._range(start, end)
            if answer is None:
                return
            self._split(start, end, figures(answer), answer, whole)

    def _range(self, start: int, end: int) -> CallbackRecord | None:
        """Receipts of hours `start` to `end` (excluded), in one call."""
        hours = self.healer.hours
        record = self.ask("callback", Window(hours[start].start, hours[end - 1].end))
        assert record is None or isinstance(record, CallbackRecord)
        return record

    def _split(
        self,
        start: int,
        end: int,
        answer: Figures,
        asked: CallbackRecord | None,
        known: list[Figures],
    ) -> None:
        """`answer` is the API's sum over hours `start`..`end` (`asked`: its own answer, when
        the block was asked rather than derived); rewrite the hours in it that changed."""
        if answer == _sum(known[start:end]) or self.stopped:
            return
        if end - start == 1:
            record = asked if asked is not None else self._range(start, end)
            if record is not None and figures(record) != known[start]:
                label = record.window.label
                self.records = [
                    r for r in self.records if r.kind != "callback" or r.window.label != label
                ]
                self.records.append(record)
                known[start] = figures(record)
            return
        middle = (start + end) // 2
        asked_older = self._range(start, middle)
        if asked_older is None:
            return
        from_older = figures(asked_older)
        # Receipts that arrived between the two answers make this difference short of the
        # newer half's counts. It still only steers the search: an hour is written from an
        # answer for that hour alone, and what a short difference hid, the next run finds.
        rest = tuple(whole - part for whole, part in zip(answer, from_older, strict=True))
        self._split(start, middle, from_older, asked_older, known)
        self._split(middle, end, rest, None, known)


def _sum(items: Sequence[Figures]) -> Figures:
    """Field by field (C loops: a steady app sums 72 hours twice a run)."""
    return tuple(map(sum, zip(*items, strict=True)))
