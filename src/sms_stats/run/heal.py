"""The hours before a timer's hour, made whole and settled: `SMS_STATS_SETTLE_HOURS` (72) of them.

Receipts keep arriving for days after their hour, and a run that ran out of time leaves hours
for "the next run". So after its own hour, each timer run heals the settle window of every app:

1. What the store holds: each kind's day folders of the window are listed with versions (one
   listing per kind and local day), and each hour's counts come from the app's ledger when the
   ledger saw the version listed, else from the object itself. An object that does not read
   back as that hour's record (truncated, foreign, another app's, unreadable) is missing. The
   ledger (`_heal/app=<id>.json`) is only a copy to skip reads: every entry is checked against
   the listing, so a stale or lost ledger costs reads, never a wrong count. A steady app costs
   one ledger read and write and a handful of listings, instead of 144 object reads an hour.
2. Each hour a kind lacks is fetched, one call each, newest first.
3. Receipts: one range call over the window is compared with the sum of its stored hours.
   Counts only grow as receipts arrive, so equal sums of every field mean no hour changed: a
   steady app costs one receipt call here. When they differ, the changes are looked for where
   receipts mostly arrive, among the newest hours: the window less its newest hour is asked,
   then less its newest 3, 9, 27..., until a remainder is unchanged; the blocks in between are
   known by subtraction. A block that differs is split in halves (the older one asked, the
   newer known by subtraction) until the changed hours are found. An hour that differs is
   written from an answer for exactly that hour (its own call, unless it was the part asked),
   so every stored hour holds one answer and that answer's RequestId. Simulated over 72 hours
   (calls after the first): one changed hour among the newest costs 2 (halving alone: 8), the
   newest six 10 (13), two hours anywhere 13 (11): late receipts land among the newest.

A call that finds no time left stops the app's healing, and healing starts no app once the
healer's deadline (set earlier than the invocation's, to leave time to write what it found)
has passed: what is left, the next run heals, starting with the apps this one did not reach
(`_heal/cursor.json`). A failed call stops that kind of that app for this run: it is logged
and counted, never raised, since the next run tries again anyway.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

from sms_stats.collect.apis import api
from sms_stats.collect.client import OUT_OF_TIME, StatsClient
from sms_stats.core.errors import UpstreamError
from sms_stats.core.log import logger
from sms_stats.core.records import (
    KIND_FOLDERS,
    RECEIPT_FIELDS,
    SEND_FIELDS,
    CallbackRecord,
    Kind,
    Record,
    figures,
    hour_label,
    hour_tail,
    read_back,
)
from sms_stats.core.windows import HOUR, Window
from sms_stats.store.base import SinkError, Store

LEDGER_PREFIX = "_heal/"
LEDGER_SCHEMA = "sms-stats-heal/v1"
CURSOR_KEY = f"{LEDGER_PREFIX}cursor.json"
KINDS: tuple[Kind, ...] = ("send", "callback")  # the windowed kinds; a balance is a snapshot
GROWTH = 3  # the newest-first search asks the window less its newest 1, 3, 9, 27... hours
Figures = tuple[int, ...]


class Held(NamedTuple):
    """An hour as the store holds it: the object's version (as listed) and its counts."""

    version: str
    figures: Figures


class Failure(NamedTuple):
    """A call healing made that failed (not for lack of time): logged and counted."""

    kind: Kind
    window: str
    code: str


class Healed(NamedTuple):
    """What healing one app came to: the records to write (missing hours, changed receipts),
    the calls that failed, the hours left unknown or unverified for the next run, and the API
    calls it made per kind (the figure the settle cost is judged by)."""

    app_id: str
    records: list[Record | CallbackRecord]
    failures: list[Failure]
    left: int
    calls: dict[Kind, int]


def ledger_key(app_id: str) -> str:
    return f"{LEDGER_PREFIX}app={app_id}.json"


def ledger_bytes(app_id: str, hours: dict[str, dict[str, list[Any]]]) -> bytes:
    """The ledger object: per kind, hour label -> [the object's version, its counts]."""
    payload = {"schema": LEDGER_SCHEMA, "app_id": app_id, "hours": hours}
    return json.dumps(payload, separators=(",", ":")).encode()


class Healer:
    """Heals apps one at a time (each call of `heal` is one app; calls may run in threads).

    `deadline` (a `time.monotonic()` value) is the healer's own: no app is started after it,
    and no call that would end after it."""

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
        # The window's hour starts (and its end), through UTC; Window objects are made only
        # for the hours a call asks about (72 of them cost a cold run ~1 ms).
        first = window.start.astimezone(timezone.utc)
        count = window.hours
        self._starts = [(first + n * HOUR).astimezone(window.tz) for n in range(count + 1)]
        self.count = count
        self.kinds = [kind for kind in KINDS if kind in kinds]
        self.zone_name = zone_name
        self.deadline = deadline
        self.clock = clock
        callback_span = api("callback").max_hours if "callback" in self.kinds else None
        self.max_span = callback_span or count
        # The same for every app: each hour's label and key below the app's folder, and the
        # day folders they are in.
        labels = [hour_label(start) for start in self._starts[:count]]
        self._slots = [
            (label, hour_tail(start, label))
            for label, start in zip(labels, self._starts, strict=False)
        ]
        self._days = sorted({tail.partition("/")[0] for _, tail in self._slots})

    def window(self, start: int, end: int) -> Window:
        """Hours `start` to `end` (excluded) of the healer's window."""
        return Window(self._starts[start], self._starts[end])

    def order(self, app_ids: Sequence[str]) -> list[str]:
        """The apps in the order to heal them: from the first app the last run did not reach
        (its cursor), else from one that turns with the hour, so that a run that runs out of
        time leaves different apps each hour and never the same ones for weeks."""
        if not app_ids:
            return []
        start = int(self._starts[-2].timestamp() // 3600) % len(app_ids)
        try:
            data = self.store.get(CURSOR_KEY, self.deadline)
            cursor = json.loads(data)["next"] if data is not None else None
        except (SinkError, ValueError, KeyError, TypeError):
            cursor = None
        if isinstance(cursor, str) and cursor in app_ids:
            start = app_ids.index(cursor)
        return [*app_ids[start:], *app_ids[:start]]

    def leave_cursor(self, order: Sequence[str], healed: dict[str, Healed]) -> None:
        """Where the next run starts: the first app of this run's order left unhealed (not
        reached, or with hours left), else the one after this run's first."""
        unhealed = [app for app in order if app not in healed or healed[app].left]
        if unhealed:
            following = unhealed[0]
        elif len(order) > 1:
            following = order[1]
        else:
            return
        body = json.dumps({"next": following}).encode()
        try:
            self.store.put(CURSOR_KEY, body, None)
        except SinkError as exc:
            logger.info("heal.cursor_unwritten", error=str(exc))

    def out_of_time(self) -> bool:
        """True when one more call would not end before the healer's deadline."""
        if self.deadline is None:
            return False
        return time.monotonic() + self.client.settings.timeout > self.deadline

    def heal(self, app_id: str) -> Healed:
        everything = self.count * len(self.kinds)
        if self.out_of_time():
            return Healed(app_id, [], [], everything, {})
        work = _AppHeal(self, app_id)
        try:
            held, ledger = self._held(app_id)
        except SinkError as exc:
            logger.warning("heal.store_unreadable", app_id=app_id, error=str(exc))
            return Healed(app_id, [], [], everything, {})
        kept: dict[str, dict[str, list[Any]]] = {}
        for kind in self.kinds:
            known: list[Figures | None] = [h.figures if h else None for h in held[kind]]
            work.fill(kind, known)
            if kind == "callback":
                work.settle(known)
            rewritten = {record.window.label for record in work.records if record.kind == kind}
            kept[kind] = {
                label: [h.version, list(h.figures)]
                for (label, _), h in zip(self._slots, held[kind], strict=True)
                if h is not None and label not in rewritten
            }
        if kept != ledger:
            self._write_ledger(app_id, kept)
        return Healed(app_id, work.records, work.failures, work.left, work.calls)

    def _held(self, app_id: str) -> tuple[dict[Kind, list[Held | None]], dict[str, Any]]:
        """Each kind's stored hours of the window, in order (None: not held), and the ledger
        as read. SinkError when the store cannot be listed."""
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
                found.append(self._read(app_id, kind, key, version))
            held[kind] = found
        return held, ledger

    def _read(self, app_id: str, kind: Kind, key: str, version: str) -> Held | None:
        """An object the ledger did not vouch for, read: None (missing) unless it reads back
        as the record its key names (another app's, copied by hand, is not this hour's)."""
        try:
            record = read_back(self.store.get(key, self.deadline))
        except SinkError as exc:  # one object the store will not give: fetch the hour again
            logger.info("heal.unreadable", app_id=app_id, kind=kind, key=key, error=str(exc))
            return None
        if isinstance(record, (Record, CallbackRecord)) and record.key == key:
            return Held(version, figures(record))
        logger.info("heal.unreadable", app_id=app_id, kind=kind, key=key)
        return None

    def _read_ledger(self, app_id: str) -> dict[str, Any]:
        """The ledger's hours per kind, as stored (each entry is checked where it is used);
        empty when there is none or it is not one: it is only a copy."""
        try:
            data = self.store.get(ledger_key(app_id), self.deadline)
        except SinkError:
            data = None  # the objects are read instead
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
        self.failures: list[Failure] = []
        self.left = 0
        self.calls: dict[Kind, int] = {}
        self.stopped = False  # out of time: nothing more is asked in this run
        self.failed: set[Kind] = set()  # a call failed: nothing more of that kind this run

    def ask(self, kind: Kind, window: Window) -> Record | CallbackRecord | None:
        """One call; None when it failed (recorded) or no time is left (noted)."""
        if self.stopped or kind in self.failed:
            return None
        healer = self.healer
        self.calls[kind] = self.calls.get(kind, 0) + 1
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
                self.failed.add(kind)
                self.failures.append(Failure(kind, str(window), exc.code))
                logger.warning(
                    "heal.failed",
                    app_id=self.app_id,
                    kind=kind,
                    window=str(window),
                    code=exc.code,
                    message=exc.message,
                )
            return None
        assert isinstance(record, (Record, CallbackRecord))
        return record

    def fill(self, kind: Kind, known: list[Figures | None]) -> None:
        """Fetch the hours `known` lacks, newest first, adding them to it; those it could not
        fetch stay None and are counted as left."""
        for i in reversed(range(len(known))):
            if known[i] is not None:
                continue
            record = self.ask(kind, self.healer.window(i, i + 1))
            if record is None:
                self.left += 1
                continue
            self.records.append(record)
            known[i] = figures(record)

    def settle(self, known: list[Figures | None]) -> None:
        """Find the receipt hours that changed since they were stored (see the module), in
        each stretch of hours whose counts are known (a hole a failed call left splits it)."""
        stretches: list[tuple[int, int]] = []
        start = None
        for i, counts in enumerate([*known, None]):
            if counts is not None and start is None:
                start = i
            elif counts is None and start is not None:
                stretches.append((start, i))
                start = None
        whole: list[Figures] = [counts or () for counts in known]
        span = self.healer.max_span
        for first, last in reversed(stretches):  # the newest first: receipts arrive there
            for end in range(last, first, -span):
                begin = max(first, end - span)
                if not self._search(begin, end, whole):
                    self.left += end - begin  # not verified in this run

    def _search(self, start: int, end: int, known: list[Figures]) -> bool:
        """Verify hours `start`..`end` (excluded) against the API, newest first; False when the
        search could not finish (no time, a failed call)."""
        asked = self._range(start, end)
        if asked is None:
            return False
        answer = figures(asked)
        if answer == _sum(known[start:end]):
            return True
        # The remainder less its newest 1, 3, 9... hours, until one is unchanged; each block in
        # between is known by subtraction.
        blocks: list[tuple[int, int, Figures, CallbackRecord | None]] = []
        upper, whole, width = end, answer, 1
        own: CallbackRecord | None = asked
        while True:
            cut = max(start, end - width)
            if cut == start:  # what is left is the last part asked: split it as it is
                blocks.append((start, upper, whole, own))
                break
            prefix = self._range(start, cut)
            if prefix is None:
                return False
            part = figures(prefix)
            blocks.append((cut, upper, _minus(whole, part), None))
            if part == _sum(known[start:cut]):
                break
            upper, whole, own, width = cut, part, prefix, width * GROWTH
        for begin, stop, sums, own in blocks:
            self._split(begin, stop, sums, own, known)
        return not self.stopped and "callback" not in self.failed

    def _range(self, start: int, end: int) -> CallbackRecord | None:
        """Receipts of hours `start` to `end` (excluded), in one call."""
        record = self.ask("callback", self.healer.window(start, end))
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
        if answer == _sum(known[start:end]) or self.stopped or "callback" in self.failed:
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
        self._split(start, middle, from_older, asked_older, known)
        self._split(middle, end, _minus(answer, from_older), None, known)


def _sum(items: Sequence[Figures]) -> Figures:
    """Field by field (C loops: a steady app sums 72 hours twice a run)."""
    return tuple(map(sum, zip(*items, strict=True)))


def _minus(whole: Figures, part: Figures) -> Figures:
    return tuple(a - b for a, b in zip(whole, part, strict=True))
