"""The `sms-stats/v1` record: one per app and window, the unit every sink stores or sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .windows import Window, isoformat

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


def store_key(app_id: str, window: Window) -> str:
    """Hive-style relative key, shared by the file and COS sinks, stable across re-runs."""
    return (
        f"app={app_id}/dt={window.local_date.isoformat()}/"
        f"{window.begin_time}-{window.end_time}.json"
    )


def isoformat_utc(moment: datetime) -> str:
    return isoformat(moment.astimezone(timezone.utc)).replace("+00:00", "Z")
