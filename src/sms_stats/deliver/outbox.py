"""The outbox: deliveries still owed, kept in the store, so that no run forgets one.

A window's records go to several sinks, and any of them may be down when they are sent: a webhook
answering 503 through SCF's three tries, a bot over its rate. Before anything is delivered, an
entry naming the records and every sink they are owed to is written to the store
(`_outbox/<window>.<id>.json`); each sink that takes them is struck off, and the entry is deleted
once nothing is owed. Because it is written first, a run stopped at any point (the deadline, a
crash, Ctrl-C in a backfill) leaves the entry behind, and a later run (the timer's next hour,
SCF's retry, a resumed backfill) delivers what it still owes, to exactly the sinks that miss it.

The store is eventually consistent and COS has no compare-and-swap, so two runs may both deliver
an entry. That repeats a delivery (same content, so the same webhook id and the same chat
message, which receivers and the bots' repeat memory drop); it never loses one, because an entry
is only ever rewritten by the run that just read or wrote it, with fewer sinks owed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sms_stats.core.log import logger
from sms_stats.core.records import AnyRecord, from_dict, isoformat_utc, pre_grain_key
from sms_stats.deliver.sinks import Delivery, Sink, deliver_all
from sms_stats.deliver.topics import record_sinks
from sms_stats.store.base import SinkError, Store, stored_record

PREFIX = "_outbox/"
SCHEMA = "sms-stats-outbox/v1"


@dataclass
class Entry:
    """Records of one window, and for each sink (by name) the keys of those it still owes.

    `resolved`: read from a store where it owed a record by the key it had before
    `store migrate` moved it; `owed` names the record's key now, the stored entry does not yet.
    """

    key: str
    records: list[AnyRecord]
    owed: dict[str, list[str]] = field(default_factory=dict)
    resolved: bool = False

    def encode(self) -> bytes:
        payload = {
            "schema": SCHEMA,
            "written_at": isoformat_utc(datetime.now(timezone.utc)),
            "records": [r.to_dict() for r in self.records],
            "owed": self.owed,
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def records_owed_to(self, sink: str) -> list[AnyRecord]:
        keys = set(self.owed.get(sink, ()))
        return [r for r in self.records if r.key in keys]

    def strike(self, deliveries: Iterable[Delivery]) -> None:
        for delivery in deliveries:
            if delivery.ok and delivery.sink in self.owed:
                left = [k for k in self.owed[delivery.sink] if k != delivery.key]
                if left:
                    self.owed[delivery.sink] = left
                else:
                    del self.owed[delivery.sink]


def entry_key(records: Sequence[AnyRecord]) -> str:
    """One key per set of records: a retry of the same window and apps rewrites the same entry."""
    keys = sorted(r.key for r in records)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    return f"{PREFIX}{records[0].window.label}.{digest}.json"


def decode(key: str, data: bytes) -> Entry:
    """An entry as stored; ValueError when it is not one of ours."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise ValueError(f"not an {SCHEMA} entry")
    owed = payload.get("owed")
    if not isinstance(owed, dict) or not all(
        isinstance(keys, list) and all(isinstance(k, str) for k in keys) for keys in owed.values()
    ):
        raise ValueError("'owed' is not a map of sink to record keys")
    records = [from_dict(item) for item in payload.get("records") or []]
    entry = Entry(key, records, {str(sink): list(keys) for sink, keys in owed.items()})
    _resolve_moved(entry)
    return entry


def _resolve_moved(entry: Entry) -> None:
    """Owed keys that name one of the entry's records where it was before `store migrate`
    moved it to its grain now name the record's key.

    An entry written by an earlier version, or left owing the old key by a migrate that was
    cut off, would otherwise match none of its records, and `drain` would drop the debt as
    one for records it does not hold: the receiver would never get the record.
    """
    moved = {old: r.key for r in entry.records if (old := pre_grain_key(r)) != r.key}
    if not moved or not any(k in moved for keys in entry.owed.values() for k in keys):
        return
    for sink, keys in entry.owed.items():
        entry.owed[sink] = list(dict.fromkeys(moved.get(k, k) for k in keys))
    entry.resolved = True


class Outbox:
    """The outbox of one store (the first store sink: it holds the records too)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(
        self,
        records: Sequence[AnyRecord],
        sinks: Sequence[Sink],
        deadline: float | None,
        carry: Sequence[str] = (),
    ) -> Entry | None:
        """Write the entry before the first delivery; None (and a warning) when the store
        cannot take it, in which case the records are still delivered, just not remembered.

        `carry`: sinks left out of this delivery (chat bots, for a correction) whose debts in
        an earlier entry of the same records are kept: they are owed the newer records now.
        """
        keys = [r.key for r in records]
        owed = {sink.name: list(keys) for sink in record_sinks(sinks)}
        entry = Entry(entry_key(records), list(records), owed)
        try:
            if carry:
                earlier = self.store.get(entry.key, deadline)
                if earlier is not None:
                    before = decode(entry.key, earlier).owed
                    for name in carry:
                        debt = [k for k in before.get(name, ()) if k in keys]
                        if debt:
                            owed[name] = debt
            if not owed:  # an entry owing nothing would never be settled, so never deleted
                return None
            self.store.put(entry.key, entry.encode(), deadline)
        except (SinkError, ValueError) as exc:
            logger.warning("outbox.unavailable", store=self.store.name, error=str(exc))
            return None
        except Exception as exc:  # a record that cannot be written: delivered, or failed, alone
            logger.error("outbox.unavailable", store=self.store.name, error=type(exc).__name__)
            return None
        return entry

    def settle(
        self,
        entry: Entry,
        deliveries: Iterable[Delivery],
        deadline: float | None,
        *,
        changed: bool = False,
    ) -> None:
        """Strike off what arrived; delete the entry when nothing is owed, else rewrite it."""
        before = {sink: list(keys) for sink, keys in entry.owed.items()}
        entry.strike(deliveries)
        if entry.owed == before and not changed:
            return
        try:
            if entry.owed:
                self.store.put(entry.key, entry.encode(), deadline)
            else:
                self.store.delete(entry.key, deadline)
        except SinkError as exc:
            # The entry still owes more than it should: a later run repeats those deliveries
            # (the same content, the same ids), which is the safe side.
            logger.warning("outbox.unsettled", store=self.store.name, error=str(exc))

    def entries(self, deadline: float | None) -> list[Entry]:
        """Every readable entry; unreadable ones are logged and left for a person to look at."""
        found = []
        for key in self.store.keys(PREFIX, deadline):
            if not key.endswith(".json"):
                continue
            data = self.store.get(key, deadline)
            if data is None:  # settled by another run between the listing and the read
                continue
            try:
                found.append(decode(key, data))
            except ValueError as exc:
                logger.warning("outbox.unreadable", store=self.store.name, key=key, error=str(exc))
        return found

    def owed(self, deadline: float | None) -> dict[str, set[str]]:
        """Sink name -> keys of the records it is still owed (for `gaps --sink`, backfill)."""
        owed: dict[str, set[str]] = {}
        for entry in self.entries(deadline):
            for sink, keys in entry.owed.items():
                owed.setdefault(sink, set()).update(keys)
        return owed

    def drain(
        self,
        sinks: Sequence[Sink],
        deadline: float | None,
        *,
        skip_entries: Iterable[str] = (),
        skip_sinks: Iterable[str] = (),
        keep: Iterable[str] = (),
    ) -> list[Delivery]:
        """Deliver what earlier runs still owe, to the sinks that miss it.

        A sink that fails here is not tried again in this drain (it is down; its entries wait
        for the next run), nor is one in `skip_sinks` (it just failed in this run) or in `keep`
        (configured, but left out of this run, like chat bots in a backfill). Debts to sinks no
        longer configured at all, or no longer taking records (their `?notify=`, or a chat
        bot's default since bots hear alerts and the digest instead), are dropped, with a
        warning naming them.
        """
        try:
            entries = [e for e in self.entries(deadline) if e.key not in set(skip_entries)]
        except SinkError as exc:
            logger.warning("outbox.unavailable", store=self.store.name, error=str(exc))
            return []
        by_name = {sink.name: sink for sink in record_sinks(sinks)}
        refusing = {sink.name for sink in sinks} - set(by_name)
        kept = set(keep)
        down = set(skip_sinks) | kept
        outcomes: list[Delivery] = []
        newest: dict[str, AnyRecord] = {}  # record key -> the latest fetch any entry holds
        for entry in entries:
            for record in entry.records:
                held = newest.get(record.key)
                if held is None or record.fetched_at > held.fetched_at:
                    newest[record.key] = record
        for entry in entries:
            stale = self._superseded(entry, newest, deadline)
            if stale:
                # A sink that takes each record alone was given the newer one by the run that
                # fetched it (or is owed it there): its older debt is struck. A chat, which
                # reads a window's apps in one message and is left out of re-fetched windows,
                # keeps its debt and gets the newest content: every app, today's counts.
                entry.records = [stale.get(r.key, r) for r in entry.records]
                for name in list(entry.owed):
                    if name in kept or getattr(by_name.get(name), "chat", False):
                        continue
                    left = [k for k in entry.owed[name] if k not in stale]
                    if left:
                        entry.owed[name] = left
                    else:
                        entry.owed.pop(name)
                logger.info("outbox.superseded", entry=entry.key, records=len(stale))
            gone = [name for name in entry.owed if name not in by_name and name not in kept]
            for name in gone:
                logger.warning(
                    "outbox.sink_takes_no_records" if name in refusing else "outbox.sink_gone",
                    sink=name,
                    records=len(entry.owed.pop(name)),
                    entry=entry.key,
                )
            delivered: list[Delivery] = []
            for name in list(entry.owed):
                if name in down:
                    continue
                owed = entry.records_owed_to(name)
                if not owed:  # keys of records the entry does not hold: nothing to send
                    entry.owed.pop(name)
                    continue
                result = deliver_all(owed, [by_name[name]], deadline)
                delivered.extend(result)
                if not all(d.ok for d in result):
                    down.add(name)
            outcomes.extend(delivered)
            if gone or delivered or stale:
                self.settle(entry, delivered, deadline, changed=bool(gone or stale))
        if outcomes:
            logger.info(
                "outbox.drained",
                delivered=sum(d.ok for d in outcomes),
                failed=sum(not d.ok for d in outcomes),
            )
        return outcomes

    def _superseded(
        self, entry: Entry, newest: dict[str, AnyRecord], deadline: float | None
    ) -> dict[str, AnyRecord]:
        """This entry's owed records that a later fetch replaced (another entry holds a newer
        one, or the store does), each with its newest version: sending the older one after it
        would leave a receiver with stale counts, under an id it has not seen."""
        owed = {key for keys in entry.owed.values() for key in keys}
        stale: dict[str, AnyRecord] = {}
        for record in entry.records:
            if record.key not in owed:
                continue
            newer = newest.get(record.key, record)
            stored = stored_record(self.store, record.key, deadline)
            if stored is not None and stored.fetched_at > newer.fetched_at:
                newer = stored
            if newer.fetched_at > record.fetched_at:
                stale[record.key] = newer
        return stale


def describe(owed: dict[str, set[str]]) -> dict[str, Any]:
    """What is owed, per sink, for a report: counts only (keys hold no secret, but are many)."""
    return {sink: len(keys) for sink, keys in sorted(owed.items())}
