"""`GET /metrics`: the newest stored hour of each app in Prometheus' text format (0.0.4).

Teams that already run Prometheus (or Tencent Cloud's managed one) want a scrape target, not
another tool. Every figure is a gauge labelled `app_id`: a stored hour is a value at a moment,
not a running total, so `rate()` has nothing to add, and a re-fetched hour that settled may go
down as well as up. Samples carry no timestamp: Prometheus refuses samples far in the past, and
the hour each one describes is `sms_window_end_timestamp_seconds{kind=...}`, which also shows
how stale the store is (`time() - sms_window_end_timestamp_seconds > 7200`). A rate that is
null (no message, no receipt) has no sample: 0 would read as "everything failed".

Written by hand rather than with prometheus-client: the format is a few lines of text, and the
function's zip (its cold start) stays free of a dependency it would load for one route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sms_stats.core.errors import ConfigError
from sms_stats.core.settings import Settings
from sms_stats.events.jobs import check_app_ids
from sms_stats.money import summary
from sms_stats.money.summary import AppMonth
from sms_stats.store.base import Sink
from sms_stats.store.layout import ensure_zone
from sms_stats.store.reading import Newest, Reading, newest, store_call, the_store
from sms_stats.web.http import check_allowed

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Gauge:
    """A metric's name and help text; the one list of them keeps /metrics and README agreeing."""

    name: str
    help: str


GAUGES = (
    Gauge("sms_request_count", "SMS submissions in the app's newest stored hour (RequestCount)."),
    Gauge(
        "sms_request_success_count",
        "Submissions the API accepted in the newest stored hour (RequestSuccessCount).",
    ),
    Gauge("sms_fee_count", "Billed message parts in the newest stored hour (FeeCount)."),
    Gauge(
        "sms_success_rate",
        "Accepted / submitted in the newest stored hour; no sample when nothing was submitted.",
    ),
    Gauge(
        "sms_callback_count",
        "Delivery receipts received for the newest stored receipts hour (CallbackCount).",
    ),
    Gauge(
        "sms_callback_success_count",
        "Receipts saying delivered, newest stored receipts hour (CallbackSuccessCount).",
    ),
    Gauge(
        "sms_delivery_rate",
        "Delivered / receipts received in the newest stored receipts hour; no sample when none.",
    ),
    Gauge(
        "sms_package_remaining",
        "Messages left in the packages in effect, at the newest stored balance.",
    ),
    Gauge(
        "sms_window_end_timestamp_seconds",
        "End of the stored hour the other gauges of this kind describe (Unix seconds).",
    ),
    Gauge(
        "sms_store_unreadable_objects",
        "Objects in the folders read that are not the record their key names (skipped).",
    ),
    Gauge(
        "sms_month_to_date_fee_count",
        "Billed parts from the local month's first hour through the newest run's, exactly.",
    ),
    Gauge(
        "sms_month_forecast_fee_count",
        "Billed parts the month will end with at this pace (the app's hour-of-week rhythm).",
    ),
    Gauge("sms_monthly_budget_fee_count", "The app's monthly budget (SMS_STATS_BUDGETS)."),
    Gauge(
        "sms_month_to_date_cost",
        "Month to date times SMS_STATS_PRICE_PER_PART, in the `currency` label's money.",
    ),
)


def samples(app: Newest) -> list[tuple[str, dict[str, str], float | int]]:
    """(metric, labels, value) of one app; a null rate, or a kind not stored, gives none."""
    labels = {"app_id": app.app_id}
    found: list[tuple[str, dict[str, str], float | int | None]] = []
    if app.send is not None:
        counts = app.send.counts
        found += [
            ("sms_request_count", labels, counts.request_count),
            ("sms_request_success_count", labels, counts.request_success_count),
            ("sms_fee_count", labels, counts.fee_count),
            ("sms_success_rate", labels, app.send.success_rate),
        ]
    if app.callback is not None:
        receipts = app.callback.receipts
        found += [
            ("sms_callback_count", labels, receipts.callback_count),
            ("sms_callback_success_count", labels, receipts.callback_success_count),
            ("sms_delivery_rate", labels, app.callback.delivery_rate),
        ]
    if app.balance is not None:
        found.append(("sms_package_remaining", labels, app.balance.remaining))
    for kind, record in (("send", app.send), ("callback", app.callback), ("packages", app.balance)):
        if record is not None:
            end = int(record.window.end.timestamp())
            found.append(("sms_window_end_timestamp_seconds", {**labels, "kind": kind}, end))
    return [(name, labels_, value) for name, labels_, value in found if value is not None]


def money_samples(
    months: Mapping[str, AppMonth], app_ids: Sequence[str], settings: Settings
) -> list[tuple[str, dict[str, str], float | int]]:
    """Each app's month as the newest timer run left it (`month` labels which month), its
    budget as configured now, and the cost when a price is set."""
    found: list[tuple[str, dict[str, str], float | int]] = []
    price = settings.price()
    for app_id in app_ids:
        budget = settings.budget_of(app_id)
        if budget is not None:
            found.append(("sms_monthly_budget_fee_count", {"app_id": app_id}, budget))
        month = months.get(app_id)
        if month is None:
            continue
        labels = {"app_id": app_id, "month": month.month}
        found.append(("sms_month_to_date_fee_count", labels, month.to_date))
        found.append(("sms_month_forecast_fee_count", labels, month.forecast))
        if price is not None:
            cost = float(price * month.to_date)
            found.append(
                ("sms_month_to_date_cost", {**labels, "currency": settings.currency}, cost)
            )
    return found


def render(
    reading: Reading,
    money: Sequence[tuple[str, dict[str, str], float | int]] = (),
) -> str:
    """The exposition text: every gauge's HELP and TYPE, then its samples, app by app."""
    by_metric: dict[str, list[str]] = {gauge.name: [] for gauge in GAUGES}
    for app in reading.apps:
        for name, labels, value in samples(app):
            by_metric[name].append(f"{name}{_labels(labels)} {_number(value)}")
    for name, labels, value in money:
        by_metric[name].append(f"{name}{_labels(labels)} {_number(value)}")
    by_metric["sms_store_unreadable_objects"].append(
        f"sms_store_unreadable_objects {len(reading.unreadable)}"
    )
    lines: list[str] = []
    for gauge in GAUGES:
        lines.append(f"# HELP {gauge.name} {_escape_help(gauge.help)}")
        lines.append(f"# TYPE {gauge.name} gauge")
        lines.extend(by_metric[gauge.name])
    return "\n".join(lines) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float | int) -> str:
    """Counts as integers, rates as Python's shortest repr (which Prometheus parses exactly)."""
    return str(value) if isinstance(value, int) else repr(float(value))


def app_ids_of(query: Mapping[str, list[str | bool]], settings: Settings) -> tuple[str, ...]:
    """`?app_id=` (each in the HTTP allowlist), or every app of the allowlist: the apps a
    token may see are the ones it may query (`*` opens the collected ones,
    SMS_STATS_APP_IDS)."""
    asked = [
        part.strip()
        for value in query.get("app_id", [])
        for part in str(value).split(",")
        if not isinstance(value, bool) and part.strip()
    ]
    if asked:
        app_ids = check_app_ids(asked, "app_id", settings)
        check_allowed(app_ids, settings)
        return app_ids
    allowed = settings.http_allowlist
    app_ids = tuple(a for a in (settings.app_ids if "*" in allowed else allowed) if a != "*")
    if not app_ids:
        raise ConfigError(
            "GET /metrics shows the apps of SMS_STATS_HTTP_APP_IDS (default SMS_STATS_APP_IDS), "
            "and no app id is set in either"
        )
    return app_ids


def answer(
    query: Mapping[str, list[str | bool]],
    settings: Settings,
    sinks: Sequence[Sink],
    now: datetime,
    deadline: float | None = None,
) -> dict[str, Any]:
    """The Function URL answer to `GET /metrics`: StoreUnavailable (503) when there is no store
    or it does not answer, ConfigError when it holds another zone's hours."""
    app_ids = app_ids_of(query, settings)
    store = the_store(sinks)
    ensure_zone(store, settings.timezone, deadline, write=False)
    today = now.astimezone(settings.zone).date()
    reading = newest(store, app_ids, today, deadline=deadline)
    months = store_call(store, lambda: summary.read(store, deadline))  # one read for all apps
    return {
        "isBase64Encoded": False,
        "statusCode": 200,
        "headers": {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"},
        "body": render(reading, money_samples(months, app_ids, settings)),
    }
