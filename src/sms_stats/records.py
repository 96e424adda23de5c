"""The `sms-stats/v1` record: one per app and window, the unit every sink stores or sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .windows import Window, isoformat, zone

SCHEMA = "sms-stats/v1"


@dataclass(frozen=True)
class Counts:
    """What SendStatusStatistics answered: submissions, accepted submissions, billed parts."""

    request_count: int
    request_success_count: int
    fee_count: int
    request_id: str


@dataclass(frozen=True)
class Record:
    sms_sdk_app_id: str
    window: Window
    timezone: str
    counts: Counts
    fetched_at: datetime

    @property
    def success_rate(self) -> float | None:
        if self.counts.request_count == 0:
            return None
        ok, total = self.counts.request_success_count, self.counts.request_count
        rate = round(ok / total, 6)
        # Never round a failure away (or a success into nothing), as the chat summary does.
        if rate == 1.0 and ok < total:
            return 0.999999
        if rate == 0.0 and ok > 0:
            return 0.000001
        return rate

    @property
    def key(self) -> str:
        return store_key(self.sms_sdk_app_id, self.window)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "sms_sdk_app_id": self.sms_sdk_app_id,
            "begin_time": self.window.begin_time,
            "end_time": self.window.end_time,
            "timezone": self.timezone,
            "window_start": isoformat(self.window.start),
            "window_end": isoformat(self.window.end),
            "request_count": self.counts.request_count,
            "request_success_count": self.counts.request_success_count,
            "fee_count": self.counts.fee_count,
            "success_rate": self.success_rate,
            "request_id": self.counts.request_id,
            "fetched_at": isoformat_utc(self.fetched_at),
        }


# One grain per layout: the hour layout holds only hours, so a SUM over it never counts an hour
# twice; a whole day fetched in one call and any other range live in layouts of their own.
GRAIN_PREFIXES = {"hour": "", "day": "daily/", "range": "ranges/"}


def store_key(app_id: str, window: Window) -> str:
    """Hive-style relative key, shared by the file and COS sinks, stable across re-runs."""
    return (
        f"{GRAIN_PREFIXES[window.grain]}app={app_id}/dt={window.local_date.isoformat()}/"
        f"{window.label}.json"
    )


def from_dict(data: Any) -> Record:
    """A stored `sms-stats/v1` record back into a Record; ValueError names what is wrong.

    The window comes from `window_start`/`window_end`, which carry their offsets, so the two
    hours of a fall-back night read back as the hours they were.
    """
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"not an {SCHEMA} record")
    try:
        tz = zone(str(data["timezone"]))
        start = datetime.fromisoformat(str(data["window_start"])).astimezone(tz)
        end = datetime.fromisoformat(str(data["window_end"])).astimezone(tz)
        fetched = datetime.fromisoformat(str(data["fetched_at"]).replace("Z", "+00:00"))
        counts = Counts(
            request_count=_count(data, "request_count"),
            request_success_count=_count(data, "request_success_count"),
            fee_count=_count(data, "fee_count"),
            request_id=str(data["request_id"]),
        )
        app_id = data["sms_sdk_app_id"]
    except KeyError as exc:
        raise ValueError(f"a {SCHEMA} record without {exc.args[0]}") from None
    if not isinstance(app_id, str):
        raise ValueError("sms_sdk_app_id is not a string")
    return Record(app_id, Window(start, end), str(data["timezone"]), counts, fetched)


def _count(data: dict[str, Any], name: str) -> int:
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} is not a count: {value!r:.40}")
    return value


def isoformat_utc(moment: datetime) -> str:
    return isoformat(moment.astimezone(timezone.utc)).replace("+00:00", "Z")
