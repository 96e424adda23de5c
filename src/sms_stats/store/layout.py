"""The store as a whole: the one zone it holds, recorded in `_store.json`.

A store's hours are named `yyyymmddhh` in one zone. Two deployments (or one whose
`SMS_STATS_TIMEZONE` changed) writing into one store would put Shanghai and UTC hours under the
same keys, and `gaps` would count one for the other. So the first write records the zone in
`_store.json` at the store's root, and a run with another zone is refused before any write.
Moving an older store's records to their grain is `run.migrate`'s.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

from sms_stats.core.errors import ConfigError
from sms_stats.core.log import logger
from sms_stats.core.records import from_dict, isoformat_utc
from sms_stats.core.windows import changes_offset
from sms_stats.store.base import SinkError, Store

META_KEY = "_store.json"
LAYOUT = 2  # 1: before grains (no _store.json); 2: one grain per layout
_checked: set[tuple[str, str]] = set()  # (store, zone) known to agree, for this container
_lock = threading.Lock()


def meta(zone: str) -> bytes:
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
                store.put(META_KEY, meta(zone), deadline)
    except SinkError as exc:
        logger.warning("store.zone_unchecked", store=store.name, error=str(exc))
        return
    if found != zone:
        fix = f"set SMS_STATS_TIMEZONE={found}, or give this zone a store of its own"
        if refused_zone(found):
            fix = f"give {zone} a store of its own"
        raise ConfigError(
            f"{store.name} holds hours named in {named_zone(found)} (its {META_KEY}); this run's "
            f"SMS_STATS_TIMEZONE is {zone}. One store holds one zone: {fix} (another "
            "directory or COS prefix)"
        )
    with _lock:
        _checked.add((store.name, zone))


def refused_zone(name: str) -> bool:
    """A zone that SMS_STATS_TIMEZONE no longer accepts (its UTC offset changes): a store of
    its hours cannot be written to again, whatever the setting."""
    try:
        return changes_offset(name)
    except ValueError:  # not a zone here: the store's own business, said as it is
        return False


def named_zone(name: str) -> str:
    if refused_zone(name):
        return (
            f"{name}, a zone whose UTC offset changes, which SMS_STATS_TIMEZONE no longer "
            "accepts (the API names its hours in a zone without daylight saving, so hours "
            "around each change were fetched twice or not at all)"
        )
    return name


def _zone_of_a_record(store: Store, deadline: float | None) -> str | None:
    """A store from before `_store.json`: the zone its first record names, if any."""
    for key in hour_layout_keys(store, deadline)[:1]:
        data = store.get(key, deadline)
        try:
            return from_dict(json.loads(data or b"")).timezone
        except ValueError:
            return None
    return None


def hour_layout_keys(store: Store, deadline: float | None) -> list[str]:
    """The `.json` keys of the hour layout (`app=.../`): where earlier versions put everything.
    Listed from the root, since `app=` is not one folder."""
    return [k for k in store.keys("", deadline) if k.startswith("app=") and k.endswith(".json")]


def clear_cache() -> None:
    """Forget which stores were checked (tests; a container never needs to)."""
    with _lock:
        _checked.clear()
