"""The daily digest: yesterday per app, once a day, at the first timer run at or after
`SMS_STATS_DIGEST_HOUR` (local).

Day totals come from one whole-day call per app and kind, not from adding up stored hours: an
hour missing from the store (a failed run, a gap before the deployment) must not skew them.
The balance is the newest one the alert state knows; the alerts are those that fired that day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..apis import api
from ..client import StatsClient
from ..notices import Notice
from ..records import CallbackRecord, Record
from ..windows import Window, last_full, zone
from .state import State


def due(state: State, now: datetime, zone_name: str, hour: int) -> Window | None:
    """Yesterday's whole local day, when its digest is due at `now` and not made yet."""
    local = now.astimezone(zone(zone_name))
    if local.hour < hour:
        return None
    (day,) = last_full(now, zone(zone_name), by="day")
    if state.digest >= day.local_date.isoformat():
        return None
    return day


def make(
    day: Window,
    app_ids: Sequence[str],
    kinds: Sequence[str],
    client: StatsClient,
    state: State,
    zone_name: str,
    now: datetime,
    deadline: float | None,
) -> Notice:
    """The digest of `day`; UpstreamError when a day total cannot be had (the digest is then
    made by a later run, whole, rather than now with holes)."""
    date = day.local_date.isoformat()
    apps: list[dict[str, Any]] = []
    for app_id in app_ids:
        sends = callbacks = None
        if "send" in kinds:
            sends = api("send").fetch(client, app_id, day, zone_name, now, deadline)
        if "callback" in kinds:
            callbacks = api("callback").fetch(client, app_id, day, zone_name, now, deadline)
        apps.append(_app(app_id, sends, callbacks, state, date))
    return Notice(
        id=f"digest_{date}",
        type="digest.daily",
        timestamp=day.end,
        data={"date": date, "apps": apps},
        timezone=zone_name,
    )


def _app(app_id: str, sends: Any, callbacks: Any, state: State, date: str) -> dict[str, Any]:
    assert sends is None or isinstance(sends, Record)
    assert callbacks is None or isinstance(callbacks, CallbackRecord)
    fired = [f for f in state.fired if f.get("app_id") == app_id and f.get("date") == date]
    return {
        "app_id": app_id,
        "request_count": sends.counts.request_count if sends else None,
        "request_success_count": sends.counts.request_success_count if sends else None,
        "fee_count": sends.counts.fee_count if sends else None,
        "success_rate": sends.success_rate if sends else None,
        "callback_count": callbacks.receipts.callback_count if callbacks else None,
        "callback_success_count": callbacks.receipts.callback_success_count if callbacks else None,
        "delivery_rate": callbacks.delivery_rate if callbacks else None,
        "remaining": state.balance.get(app_id),
        "alerts_fired": len(fired),
    }
