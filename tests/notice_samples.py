"""Notices as the alert engine and the digest produce them (the contract's data fields), for the
tests of every sink that takes them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sms_stats.core.notices import Notice

from .conftest import APP_A, APP_B

APP_C = "1400006876"
RULE = "Delivery rate low"
# 13:00-14:00 Beijing time, bad since 11:00: what a firing delivery-rate alert carries.
HOUR_START = "2021-05-01T13:00:00+08:00"
HOUR_END = "2021-05-01T14:00:00+08:00"
SINCE = "2021-05-01T11:00:00+08:00"
JUDGED = datetime(2021, 5, 1, 6, tzinfo=timezone.utc)  # the end of the hour judged


def alert_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "alert": RULE,
        "metric": "delivery_rate",
        "app_id": APP_A,
        "value": 0.721,
        "threshold": 0.9,
        "window_start": HOUR_START,
        "window_end": HOUR_END,
        "since": HOUR_START,
        "condition": "below",
    }
    data.update(changes)
    return data


def firing(notice_id: str = "alert_fire_1", **changes: Any) -> Notice:
    data = alert_data(**changes)
    return Notice(notice_id, "alert.firing", JUDGED, data)


def resolved(notice_id: str = "alert_resolve_1", **changes: Any) -> Notice:
    """The first good hour, 13:00, of an alert that fired for the 11:00 hour: it lasted 2 h."""
    data = alert_data(**{"value": 0.952, "since": SINCE, **changes})
    return Notice(notice_id, "alert.resolved", JUDGED, data)


def app_day(
    app_id: str,
    requests: int,
    ok: int,
    fee: int,
    receipts: int,
    delivered: int,
    remaining: int | None,
    alerts: int,
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "request_count": requests,
        "request_success_count": ok,
        "fee_count": fee,
        "success_rate": ok / requests if requests else None,
        "callback_count": receipts,
        "callback_success_count": delivered,
        "delivery_rate": delivered / receipts if receipts else None,
        "remaining": remaining,
        "alerts_fired": alerts,
    }


DIGEST_APPS = [
    app_day(APP_A, 18800, 18750, 19020, 18700, 18326, 120_000, 2),
    app_day(APP_B, 1000, 990, 1000, 980, 970, 5_000, 0),
    app_day(APP_C, 0, 0, 0, 0, 0, None, 0),
]


def digest(notice_id: str = "digest_20210501", apps: list[dict[str, Any]] | None = None) -> Notice:
    data = {"date": "2021-05-01", "apps": DIGEST_APPS if apps is None else apps}
    return Notice(notice_id, "digest.daily", datetime(2021, 5, 1, 16, tzinfo=timezone.utc), data)
