"""`GET /stats` answered from the store when the store already holds the answer.

Every query used to cost an API call against the 10 requests a second that the timer and
backfills share, even for hours the timer stored long ago. Here a query is answered from the
store when every hour of every requested window is stored and settled:

- a send hour is settled once stored: the timer stores an hour only after it ended, and
  SendStatusStatistics does not change an ended hour;
- receipts keep arriving for hours after the messages were sent, and the timer fetches each
  hour's receipts again for `SMS_STATS_SETTLE_HOURS`. A stored receipts hour is settled when it
  ended more than SETTLE_HOURS + 1 hours ago *and* its record was fetched at least SETTLE_HOURS
  after it ended: a re-fetch that failed leaves an early (low) count in the store, which is then
  not taken for the final one.

A range is answered as the sum of its stored hours, the same record shape the API path answers
(SendStatusStatistics and CallbackStatusStatistics count a range as the sum of its hours). Anything
short of that (an hour missing, a corrupt object, a store that does not answer) falls back to
the API, which is the answer's only other source: the read-through never answers less. The
answer says where it came from (`source`); `fresh=true` always asks the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sms_stats.core.errors import InputError
from sms_stats.core.log import logger
from sms_stats.core.records import CallbackRecord, Counts, Receipts, Record
from sms_stats.core.redact import short
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window
from sms_stats.events.jobs import Job
from sms_stats.store.base import Sink, find_store
from sms_stats.store.reading import StoreUnavailable, stored_hours

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def wants_fresh(query: Mapping[str, list[str | bool]]) -> bool:
    """`fresh=true` (or a bare `?fresh`): the caller wants the API's answer, not the store's."""
    values = query.get("fresh", [])
    if not values:
        return False
    if len(values) > 1:
        raise InputError(f"fresh: give it once; got {len(values)} values")
    value = values[0]
    if isinstance(value, bool):
        return value
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InputError(f"fresh: must be true or false; got {short(value)}")


def settled(record: Record | CallbackRecord, settle_hours: int, now: datetime) -> bool:
    """Whether a stored hour is final (see the module's docstring)."""
    if isinstance(record, Record):
        return True
    end = record.window.end
    last_refetch_due = end + timedelta(hours=settle_hours)
    ended_long_ago = now - end > timedelta(hours=settle_hours + 1)
    return ended_long_ago and record.fetched_at >= last_refetch_due


def from_store(
    job: Job,
    settings: Settings,
    sinks: Sequence[Sink],
    now: datetime,
    deadline: float | None = None,
) -> list[Record | CallbackRecord] | None:
    """The job's records from the store, in the API path's order (app by app), or None when
    the store cannot give all of them settled."""
    store = find_store(sinks)
    if store is None or len(job.kinds) != 1 or job.kinds[0] == "packages" or job.heal:
        return None
    kind = job.kinds[0]
    records: list[Record | CallbackRecord] = []
    for app_id in job.app_ids:
        for window in job.windows:
            try:
                stored = stored_hours(store, kind, app_id, window, deadline)
            except StoreUnavailable:
                return None  # logged by the reader; the API still answers
            late = [r for r in stored.records if not settled(r, settings.settle_hours, now)]
            if stored.missing or late:
                logger.info(
                    "http.store_miss",
                    app_id=app_id,
                    window=str(window),
                    missing=len(stored.missing),
                    unsettled=len(late),
                )
                return None
            records.append(summed(stored.records, window))
    return records


def summed(hours: Sequence[Record | CallbackRecord], window: Window) -> Record | CallbackRecord:
    """One record for `window` from its stored hours: the stored record itself for one hour,
    else the sums, fetched at the oldest hour's fetch time (the answer is at least that old)
    and with an empty request id (no one request answered it)."""
    if len(hours) == 1:
        return hours[0]
    first = hours[0]
    fetched = min(h.fetched_at for h in hours)
    if isinstance(first, Record):
        sends = [h for h in hours if isinstance(h, Record)]
        counts = Counts(**_sums([h.counts for h in sends], "request_id"), request_id="")
        return Record(first.sms_sdk_app_id, window, first.timezone, counts, fetched)
    receipts = [h.receipts for h in hours if isinstance(h, CallbackRecord)]
    total = Receipts(**_sums(receipts, "request_id"), request_id="")
    return CallbackRecord(first.sms_sdk_app_id, window, first.timezone, total, fetched)


def _sums(items: Sequence[Any], skip: str) -> dict[str, int]:
    names = [name for name in items[0]._fields if name != skip]
    return {name: sum(getattr(item, name) for item in items) for name in names}
