"""`sms-stats store migrate`: an older store's records moved to the key their grain gives them.

Stores written before "one grain per layout" hold day and range records beside the hours, where a
SUM counts hours twice. `migrate` moves each record to the key its window's grain gives it: a dry
run lists the moves, `apply` makes them, and a second run finds nothing to do.

A move must never strand a delivery still owed: the outbox owes records by key, and a debt
naming a key where the record no longer is would be dropped. So `apply` goes in three passes,
each safe to cut off anywhere and to run again: write every record at its new key (the old one
stays, so a rerun still sees the move), then point the outbox's debts at the new keys, and only
then delete the old keys. (The outbox also reads a debt on a record's old key as one on its new
key, for entries left by earlier versions of this command.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sms_stats.core.errors import ConfigError
from sms_stats.core.records import from_dict
from sms_stats.deliver.outbox import PREFIX as OUTBOX_PREFIX
from sms_stats.deliver.outbox import decode
from sms_stats.store.base import Store
from sms_stats.store.layout import (
    META_KEY,
    hour_layout_keys,
    meta,
    named_zone,
    refused_zone,
    stored_zone,
)


@dataclass
class Migration:
    """What `migrate` found: the moves (old key -> new key), and what it leaves alone."""

    moves: list[tuple[str, str]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # not a record of ours: left in place
    other_zone: list[str] = field(default_factory=list)  # another zone's records: left in place
    outbox_entries: int = 0  # entries whose owed keys were (in a dry run: would be) rewritten
    zone: str | None = None
    applied: bool = False


def migrate(
    store: Store,
    zone: str,
    *,
    apply: bool = False,
    deadline: float | None = None,
    on_move: Callable[[str, str], None] | None = None,
) -> Migration:
    """Move every record of the hour layout whose window is not one hour to its grain's layout.

    Idempotent: the moves are found from what is stored, so a second run (or a run after an
    interrupted one) finds only what is left. The outbox's owed keys follow their records
    before any old key is deleted (see the module docstring), so deliveries still owed are not
    lost wherever a run stops. A dry run counts the entries it would rewrite. `_store.json` is
    written (with `apply`) when missing.
    """
    result = Migration(zone=zone, applied=apply)
    stored = stored_zone(store, deadline)
    if stored is not None and stored != zone:
        fix = f"run migrate with SMS_STATS_TIMEZONE={stored}"
        if refused_zone(stored):
            fix = "it cannot be migrated; give this zone a store of its own"
        raise ConfigError(
            f"{store.name} holds hours named in {named_zone(stored)} (its {META_KEY}); {fix}"
        )
    for key in hour_layout_keys(store, deadline):
        data = store.get(key, deadline)
        try:
            record = from_dict(json.loads(data or b""))
        except ValueError:  # JSONDecodeError included
            result.foreign.append(key)
            continue
        if record.timezone != zone:
            result.other_zone.append(key)
            continue
        if record.key != key:
            result.moves.append((key, record.key))
    moved = dict(result.moves)
    if not apply:
        result.outbox_entries = _follow_in_outbox(store, moved, deadline, write=False)
        return result
    for old, new in result.moves:  # 1: each record at its new key too
        _copy(store, old, new, deadline)
    result.outbox_entries = _follow_in_outbox(store, moved, deadline)  # 2: debts follow
    for old, new in result.moves:  # 3: only now, the old keys go
        store.delete(old, deadline)
        if on_move is not None:
            on_move(old, new)
    if stored is None and not result.other_zone:
        store.put(META_KEY, meta(zone), deadline)
    return result


def _copy(store: Store, old: str, new: str, deadline: float | None) -> None:
    """The record at `old` written at `new` too, unless `new` already holds it or a later
    fetch of it (a backfill since, or a run cut off after this step): never older over newer."""
    data = store.get(old, deadline)
    if data is None:  # moved by another run since the listing
        return
    there = store.get(new, deadline)
    if there is not None and _fetched_at(there) >= _fetched_at(data):
        return
    store.put(new, data, deadline)


def _fetched_at(data: bytes) -> datetime:
    """When a stored record was fetched (a time without an offset read as UTC, which is how
    records write it); the earliest time for what does not read as one."""
    try:
        fetched = from_dict(json.loads(data)).fetched_at
    except (ValueError, RecursionError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return fetched if fetched.tzinfo else fetched.replace(tzinfo=timezone.utc)


def _follow_in_outbox(
    store: Store, moved: dict[str, str], deadline: float | None, *, write: bool = True
) -> int:
    """Owed keys that name a moved record (or, read by `decode`, the old key of a record the
    entry holds) now name its new key; how many entries that changes. Idempotent."""
    rewritten = 0
    for key in store.keys(OUTBOX_PREFIX, deadline):
        data = store.get(key, deadline)
        if data is None:
            continue
        try:
            entry = decode(key, data)
        except ValueError:
            continue
        owed = {
            sink: list(dict.fromkeys(moved.get(k, k) for k in keys))
            for sink, keys in entry.owed.items()
        }
        if owed != entry.owed or entry.resolved:
            entry.owed = owed
            if write:
                store.put(key, entry.encode(), deadline)
            rewritten += 1
    return rewritten
