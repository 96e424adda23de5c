"""The store as a whole: the one zone it holds, and moving an older store's records to their grain.

A store's hours are named `yyyymmddhh` in one zone. Two deployments (or one whose
`SMS_STATS_TIMEZONE` changed) writing into one store would put Shanghai and UTC hours under the
same keys, and `gaps` would count one for the other. So the first write records the zone in
`_store.json` at the store's root, and a run with another zone is refused before any write.

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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sms_stats.core.errors import ConfigError
from sms_stats.core.log import logger
from sms_stats.core.records import from_dict, isoformat_utc
from sms_stats.core.windows import changes_offset
from sms_stats.deliver.outbox import PREFIX as OUTBOX_PREFIX
from sms_stats.deliver.outbox import decode
from sms_stats.store.base import SinkError, Store

META_KEY = "_store.json"
LAYOUT = 2  # 1: before grains (no _store.json); 2: one grain per layout
_checked: set[tuple[str, str]] = set()  # (store, zone) known to agree, for this container
_lock = threading.Lock()


def _meta(zone: str) -> bytes:
    body = {
        "timezone": zone,
        "layout": LAYOUT,
        "created_at": isoformat_utc(datetime.now(timezone.utc)),
    }
    return json.dumps(body, indent=2).encode() + b"\n"


def stored_zone(store: Store, deadline: float | None = None) -> str | None:
    """The zone `_store.json` names; None when there is none. ConfigError when it is unreadable:
    guessing would risk the mix the file is there to prevent."""
    data = store.get(META_KEY, deadline)
    if data is None:
        return None
    try:
        zone = json.loads(data)["timezone"]
    except (ValueError, KeyError, TypeError):
        zone = None
    if not isinstance(zone, str) or not zone:
        raise ConfigError(
            f"{store.name}: {META_KEY} is not ours or is damaged (it should be a JSON object "
            'with "timezone"); fix or remove it'
        )
    return zone


def ensure_zone(
    store: Store, zone: str, deadline: float | None = None, *, write: bool = True
) -> None:
    """Refuse (ConfigError) when the store holds another zone's hours; else, with `write`,
    record this zone if the store has none yet. Once per container and store: a warm run pays
    nothing. A store that cannot answer is not refused here: its own writes fail and are
    reported (and owed) like any other delivery."""
    with _lock:
        if (store.name, zone) in _checked:
            return
    try:
        found = stored_zone(store, deadline)
        if found is None:
            found = _zone_of_a_record(store, deadline) or zone
            if found == zone:
                if not write:
                    return  # nothing recorded yet: the first write will check again
                store.put(META_KEY, _meta(zone), deadline)
    except SinkError as exc:
        logger.warning("store.zone_unchecked", store=store.name, error=str(exc))
        return
    if found != zone:
        fix = f"set SMS_STATS_TIMEZONE={found}, or give this zone a store of its own"
        if _refused(found):
            fix = f"give {zone} a store of its own"
        raise ConfigError(
            f"{store.name} holds hours named in {_named(found)} (its {META_KEY}); this run's "
            f"SMS_STATS_TIMEZONE is {zone}. One store holds one zone: {fix} (another "
            "directory or COS prefix)"
        )
    with _lock:
        _checked.add((store.name, zone))


def _refused(name: str) -> bool:
    """A zone that SMS_STATS_TIMEZONE no longer accepts (its UTC offset changes): a store of
    its hours cannot be written to again, whatever the setting."""
    try:
        return changes_offset(name)
    except ValueError:  # not a zone here: the store's own business, said as it is
        return False


def _named(name: str) -> str:
    if _refused(name):
        return (
            f"{name}, a zone whose UTC offset changes, which SMS_STATS_TIMEZONE no longer "
            "accepts (the API names its hours in a zone without daylight saving, so hours "
            "around each change were fetched twice or not at all)"
        )
    return name


def _zone_of_a_record(store: Store, deadline: float | None) -> str | None:
    """A store from before `_store.json`: the zone its first record names, if any."""
    for key in _hour_layout(store, deadline)[:1]:
        data = store.get(key, deadline)
        try:
            return from_dict(json.loads(data or b"")).timezone
        except ValueError:
            return None
    return None


def _hour_layout(store: Store, deadline: float | None) -> list[str]:
    """The `.json` keys of the hour layout (`app=.../`): where earlier versions put everything.
    Listed from the root, since `app=` is not one folder."""
    return [k for k in store.keys("", deadline) if k.startswith("app=") and k.endswith(".json")]


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
        if _refused(stored):
            fix = "it cannot be migrated; give this zone a store of its own"
        raise ConfigError(
            f"{store.name} holds hours named in {_named(stored)} (its {META_KEY}); {fix}"
        )
    for key in _hour_layout(store, deadline):
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
        store.put(META_KEY, _meta(zone), deadline)
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
