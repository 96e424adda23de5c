"""What a chat message says: the figures of one window, worded for people, per kind of record.

One message says one thing: one kind, one window (and zone), every app at once, in local time,
with a rate instead of raw ratios. The layout (title, window, total, one line per app) is
decided here once for every platform; `markup` renders it and `packing` splits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sms_stats.core.records import AnyRecord, BalanceRecord, CallbackRecord, Record
from sms_stats.core.windows import Window

TITLE = "SMS delivery stats"
RECEIPTS_TITLE = "SMS delivery receipts"
BALANCE_TITLE = "SMS balance"
NO_RATE = "\u2013"  # en dash: "no traffic, no rate", distinct from a 0 % rate
DASH = "\u2013"


@dataclass(frozen=True)
class Row:
    """One app's figures for the window (or the window's total, with `app_id` empty), each
    already worded (`requests 1,880`), so every platform lays out every kind the same way."""

    app_id: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    """A table of records as a chat message says it, before any platform's markup: one wording,
    several renderings."""

    title: str
    window: str
    rows: tuple[Row, ...]
    total: Row


def by_window(records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
    """One batch per kind and window (and zone), in the order they first appear, apps as
    given: one message says one thing."""
    groups: dict[tuple[str, Window, str], list[AnyRecord]] = {}
    for record in records:
        groups.setdefault((record.kind, record.window, record.timezone), []).append(record)
    return list(groups.values())


def summarize(batch: Sequence[AnyRecord]) -> Summary:
    if not batch:
        raise ValueError("a summary needs at least one record")
    first = batch[0]
    if isinstance(first, CallbackRecord):
        return _receipts([r for r in batch if isinstance(r, CallbackRecord)])
    if isinstance(first, BalanceRecord):
        return _balance([r for r in batch if isinstance(r, BalanceRecord)])
    return _sends([r for r in batch if isinstance(r, Record)])


def _sends(batch: Sequence[Record]) -> Summary:
    def cells(requests: int, successes: int, billed: int) -> tuple[str, ...]:
        rate = None if requests == 0 else successes / requests
        return (
            f"requests {number(requests)}",
            f"successes {number(successes)}",
            f"rate {percent(rate)}",
            f"billed parts {number(billed)}",
        )

    rows = tuple(Row(r.sms_sdk_app_id, cells(*_send_counts(r))) for r in batch)
    sums = [sum(column) for column in zip(*(_send_counts(r) for r in batch), strict=True)]
    first = batch[0]
    return Summary(TITLE, window_text(first.window, first.timezone), rows, Row("", cells(*sums)))


def _send_counts(record: Record) -> tuple[int, int, int]:
    c = record.counts
    return c.request_count, c.request_success_count, c.fee_count


# Why receipts failed, as an operator reads them (the API's names in brackets in the docs).
_REASONS = (
    ("black_list_count", "blocklisted"),
    ("frequency_limit_count", "frequency limit"),
    ("invalid_number_count", "invalid number"),
    ("shutdown_error_count", "phone off"),
    ("internal_error_count", "carrier error"),
)


def _receipts(batch: Sequence[CallbackRecord]) -> Summary:
    def cells(counts: dict[str, int]) -> tuple[str, ...]:
        total, ok = counts["callback_count"], counts["callback_success_count"]
        failed = counts["callback_fail_count"]
        reasons = ", ".join(
            f"{label} {number(counts[name])}" for name, label in _REASONS if counts[name]
        )
        return (
            f"receipts {number(total)}",
            f"delivered {number(ok)}",
            f"rate {percent(None if total == 0 else ok / total)}",
            f"failed {number(failed)}" + (f" ({reasons})" if reasons else ""),
            f"pending {number(counts['pending_count'])}",
        )

    def counts_of(record: CallbackRecord) -> dict[str, int]:
        data = record.to_dict()
        return {name: int(data[name]) for name in _RECEIPT_NAMES}

    rows = tuple(Row(r.sms_sdk_app_id, cells(counts_of(r))) for r in batch)
    totals = {name: sum(counts_of(r)[name] for r in batch) for name in _RECEIPT_NAMES}
    first = batch[0]
    return Summary(
        RECEIPTS_TITLE, window_text(first.window, first.timezone), rows, Row("", cells(totals))
    )


_RECEIPT_NAMES = (
    "callback_count",
    "callback_success_count",
    "callback_fail_count",
    "pending_count",
    *(name for name, _ in _REASONS),
)


def _balance(batch: Sequence[BalanceRecord]) -> Summary:
    def cells(record: BalanceRecord | None, remaining: int) -> tuple[str, ...]:
        out = [f"left {number(remaining)}"]
        expiry = None if record is None else record.next_expiry
        if expiry is not None:
            when = expiry[0].astimezone(record.as_of.tzinfo) if record else expiry[0]
            out.append(f"next expiry {when:%Y-%m-%d} ({number(expiry[1])} messages)")
        if record is not None:
            out.append(f"packages in effect {number(len(record.live))}")
        return tuple(out)

    rows = tuple(Row(r.sms_sdk_app_id, cells(r, r.remaining)) for r in batch)
    first = batch[0]
    as_of = f"as of {first.as_of:%Y-%m-%d %H:%M} {first.timezone} ({_offset(first.as_of)})"
    total = Row("", cells(None, sum(r.remaining for r in batch)))
    return Summary(BALANCE_TITLE, as_of, rows, total)


def window_text(window: Window, zone_name: str) -> str:
    """`2021-05-01 12:00\u201313:00 Asia/Shanghai (+08:00)`; whole local days read as days.

    The zone's name and offset are both shown: the hours are Beijing time by default, while
    readers of the chat may sit anywhere, and a name alone does not say the offset in effect.
    """
    start, end = window.start, window.end
    midnight = time(0, 0)
    if start.time() == midnight and end.time() == midnight:
        days = (end.date() - start.date()).days
        last = end.date() - timedelta(days=1)
        span = (
            f"{start:%Y-%m-%d}, whole day"
            if days == 1
            else f"{start:%Y-%m-%d} {DASH} {last:%Y-%m-%d}, {days} days"
        )
    elif start.date() == end.date():
        span = f"{start:%Y-%m-%d %H:%M}{DASH}{end:%H:%M}"
    elif end.time() == midnight and end.date() == start.date() + timedelta(days=1):
        span = f"{start:%Y-%m-%d %H:%M}{DASH}24:00"
    else:
        span = f"{start:%Y-%m-%d %H:%M} {DASH} {end:%Y-%m-%d %H:%M}"
    offsets = _offset(start)
    if _offset(end) != offsets:  # a daylight-saving change inside the window
        offsets += f"/{_offset(end)}"
    return f"{span} {zone_name} ({offsets})"


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def percent(rate: float | None) -> str:
    """Two decimals, but never "100.00%" unless every request succeeded (nor "0.00%" the
    other way): a rounded-up 100 % would hide exactly the failures someone is looking for."""
    if rate is None:
        return NO_RATE
    text = f"{rate * 100:.2f}%"
    if text == "100.00%" and rate < 1:
        return "99.99%"
    if text == "0.00%" and rate > 0:
        return "0.01%"
    return text


def number(value: int) -> str:
    return f"{value:,}"


@dataclass(frozen=True)
class Part:
    """Which message of a window this is; `count` 1 means the window fits in one message."""

    index: int
    count: int

    @property
    def suffix(self) -> str:
        return "" if self.count == 1 else f" ({self.index}/{self.count})"
