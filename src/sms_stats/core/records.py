"""Records: the unit every sink stores or sends, one kind per statistics API.

- `Record` (`sms-stats/v1`): submissions of one app in one window (SendStatusStatistics);
- `CallbackRecord` (`sms-stats-callback/v1`): delivery receipts of one app in one window;
- `BalanceRecord` (`sms-stats-packages/v1`): one app's SMS packages, a snapshot per run.

Each has `kind`, `key` (where a store keeps it: one grain per layout, one folder per kind),
`window` (what outbox entries, chat summaries and ids group by) and `to_dict()`, exactly the
contract's fields. `content()` is what a correction changes: the fields without the request id
and fetch time, so a webhook id can follow the content (a retry repeats it, a settled re-fetch
with new counts gets a new one).

Records and their counts are `NamedTuple`s, not frozen dataclasses: as immutable, equal by
value, hashable and typed, but built without compiling six methods per class from source on
every cold start (~1 ms each on Python 3.10; the class statements here were ~2.6% of a cold
timer run's instructions). Nothing treats them as sequences: sinks write `to_dict()`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple

from sms_stats.core.windows import Window, format_hour, isoformat, zone

SCHEMA = "sms-stats/v1"
CALLBACK_SCHEMA = "sms-stats-callback/v1"
PACKAGES_SCHEMA = "sms-stats-packages/v1"
Kind = Literal["send", "callback", "packages"]
KINDS: tuple[Kind, ...] = ("send", "callback", "packages")
KIND_FOLDERS = {"send": "", "callback": "callback/", "packages": "packages/"}
_VOLATILE = frozenset({"request_id", "fetched_at"})
# A balance is taken at a moment, but what it says is the packages: an SCF retry a minute later
# with the same packages is the same message (the id names the hour already).
_BALANCE_VOLATILE = _VOLATILE | {"as_of"}


def _head(schema: str, app_id: str, window: Window, zone_name: str) -> dict[str, Any]:
    """The fields every windowed record opens with, in the contract's order."""
    return {
        "schema": schema,
        "sms_sdk_app_id": app_id,
        "begin_time": window.begin_time,
        "end_time": window.end_time,
        "timezone": zone_name,
        "window_start": isoformat(window.start),
        "window_end": isoformat(window.end),
    }


def _digest(data: dict[str, Any], volatile: frozenset[str] = _VOLATILE) -> str:
    stable = {k: v for k, v in data.items() if k not in volatile}
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class Counts(NamedTuple):
    """What SendStatusStatistics answered: submissions, accepted submissions, billed parts."""

    request_count: int
    request_success_count: int
    fee_count: int
    request_id: str


class Record(NamedTuple):
    """One app's send statistics for one window (`sms-stats/v1`): what is stored and sent, with
    the zone its window is read in."""

    sms_sdk_app_id: str
    window: Window
    timezone: str
    counts: Counts
    fetched_at: datetime
    kind: Literal["send"] = "send"

    @property
    def success_rate(self) -> float | None:
        # Never round a failure away (or a success into nothing), as the chat summary does.
        return _rate(self.counts.request_success_count, self.counts.request_count)

    @property
    def key(self) -> str:
        return store_key(self.sms_sdk_app_id, self.window)

    def content(self) -> str:
        return _digest(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            **_head(SCHEMA, self.sms_sdk_app_id, self.window, self.timezone),
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


def store_key(app_id: str, window: Window, kind: Kind = "send") -> str:
    """Hive-style relative key, shared by the file and COS sinks, stable across re-runs:
    `[daily/|ranges/][callback/]app=<id>/dt=<local date>/<BeginTime>-<EndTime>.json`."""
    return f"{GRAIN_PREFIXES[window.grain]}{KIND_FOLDERS[kind]}app={app_id}/{key_tail(window)}"


def key_tail(window: Window) -> str:
    """The part of a key below the app's folder: `dt=<local date>/<BeginTime>-<EndTime>.json`
    (the same for every app)."""
    return f"dt={window.local_date.isoformat()}/{window.label}.json"


def hour_label(start: datetime) -> str:
    """The label of the hour that starts at `start` (`Window.label` of it), without making the
    Window: a healer names 72 hours on every cold run."""
    name = format_hour(start)
    return f"{name}-{name}"


def hour_tail(start: datetime, label: str) -> str:
    """`key_tail` of the hour that starts at `start` and is named `label` (`hour_label`)."""
    return f"dt={start.date().isoformat()}/{label}.json"


def day_folder(kind: Kind, app_id: str, day: date) -> str:
    """The folder of one app's hours (or balances) of one local day: `[callback/|packages/]
    app=<id>/dt=<date>/`, as `store_key` and `BalanceRecord.key` name them."""
    return f"{KIND_FOLDERS[kind]}app={app_id}/dt={day.isoformat()}/"


def pre_grain_key(record: AnyRecord) -> str:
    """Where the version before grains (store layout 1) kept `record`: a send record in the hour
    layout whatever its window. Receipts and balances came later, always at `record.key`.

    `store migrate` moves such records; an outbox entry written before the move (or during a
    migrate that was cut off) may still owe the old key, and is read as owing the new one."""
    if record.kind != "send" or record.window.grain == "hour":
        return record.key
    return record.key.removeprefix(GRAIN_PREFIXES[record.window.grain])


class Receipts(NamedTuple):
    """What CallbackStatusStatistics answered for one app and window."""

    request_success_count: int
    callback_count: int
    callback_success_count: int
    callback_fail_count: int
    internal_error_count: int
    invalid_number_count: int
    shutdown_error_count: int
    black_list_count: int
    frequency_limit_count: int
    request_id: str

    @property
    def pending_count(self) -> int:
        """Accepted submissions whose receipt has not come back (yet): never below 0."""
        return max(0, self.request_success_count - self.callback_count)


SEND_FIELDS = ("request_count", "request_success_count", "fee_count")
RECEIPT_FIELDS = (
    "request_success_count",
    "callback_count",
    "callback_success_count",
    "callback_fail_count",
    "internal_error_count",
    "invalid_number_count",
    "shutdown_error_count",
    "black_list_count",
    "frequency_limit_count",
)


class CallbackRecord(NamedTuple):
    """Delivery receipts of one app in one window (`sms-stats-callback/v1`)."""

    sms_sdk_app_id: str
    window: Window
    timezone: str
    receipts: Receipts
    fetched_at: datetime
    kind: Literal["callback"] = "callback"

    @property
    def delivery_rate(self) -> float | None:
        """Delivered / receipts received; None before any receipt came back."""
        return _rate(self.receipts.callback_success_count, self.receipts.callback_count)

    @property
    def key(self) -> str:
        return store_key(self.sms_sdk_app_id, self.window, "callback")

    def content(self) -> str:
        return _digest(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        r = self.receipts
        return {
            **_head(CALLBACK_SCHEMA, self.sms_sdk_app_id, self.window, self.timezone),
            **{name: getattr(r, name) for name in RECEIPT_FIELDS},
            "pending_count": r.pending_count,
            "delivery_rate": self.delivery_rate,
            "request_id": r.request_id,
            "fetched_at": isoformat_utc(self.fetched_at),
        }


def figures(record: Record | CallbackRecord) -> tuple[int, ...]:
    """The counts of a windowed record, in `SEND_FIELDS` or `RECEIPT_FIELDS` order: what
    stored hours are summed by and compared with an API answer over the same range."""
    if isinstance(record, Record):
        return (
            record.counts.request_count,
            record.counts.request_success_count,
            record.counts.fee_count,
        )
    return tuple(getattr(record.receipts, name) for name in RECEIPT_FIELDS)


def _rate(part: int, whole: int) -> float | None:
    """`part / whole` to 6 places, never rounding a miss away (or a hit into nothing)."""
    if whole == 0:
        return None
    rate = round(part / whole, 6)
    if rate == 1.0 and part < whole:
        return 0.999999
    if rate == 0.0 and part > 0:
        return 0.000001
    return rate


class Package(NamedTuple):
    """One SMS package (套餐包) as SmsPackagesStatistics lists it; times are aware UTC."""

    package_id: int
    bought: bool  # PackageType 1; 0 is a gift
    amount: int
    used: int
    created_at: datetime
    effective_at: datetime
    expires_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.amount - self.used)

    def in_effect(self, moment: datetime) -> bool:
        return self.effective_at <= moment < self.expires_at

    def to_dict(self, tz: Any) -> dict[str, Any]:
        return {
            "package_id": self.package_id,
            "package_type": "bought" if self.bought else "gift",
            "amount": self.amount,
            "used": self.used,
            "remaining": self.remaining,
            "created_at": isoformat(self.created_at.astimezone(tz)),
            "effective_at": isoformat(self.effective_at.astimezone(tz)),
            "expires_at": isoformat(self.expires_at.astimezone(tz)),
        }


class BalanceRecord(NamedTuple):
    """One app's packages at `as_of` (`sms-stats-packages/v1`): what is left, and what expires
    first. Only packages in effect and not expired count; expired messages are lost."""

    sms_sdk_app_id: str
    as_of: datetime  # aware, in the store's zone
    packages: tuple[Package, ...]
    request_id: str
    fetched_at: datetime
    kind: Literal["packages"] = "packages"

    @property
    def window(self) -> Window:
        """The hour of the snapshot: its key, and what outbox entries and chats group by."""
        hour = self.as_of.replace(minute=0, second=0, microsecond=0)
        return Window(
            hour, (hour.astimezone(timezone.utc) + timedelta(hours=1)).astimezone(hour.tzinfo)
        )

    @property
    def timezone(self) -> str:
        return str(self.as_of.tzinfo)

    @property
    def live(self) -> list[Package]:
        return [p for p in self.packages if p.in_effect(self.as_of)]

    @property
    def remaining(self) -> int:
        return sum(p.remaining for p in self.live)

    @property
    def next_expiry(self) -> tuple[datetime, int] | None:
        """(the soonest expiry among live packages with messages left, what expires then)."""
        holding = [p for p in self.live if p.remaining > 0]
        if not holding:
            return None
        soonest = min(p.expires_at for p in holding)
        return soonest, sum(p.remaining for p in holding if p.expires_at == soonest)

    @property
    def key(self) -> str:
        window = self.window
        return (
            f"packages/app={self.sms_sdk_app_id}/dt={window.local_date.isoformat()}/"
            f"{format_hour(window.start)}.json"
        )

    def content(self) -> str:
        return _digest(self.to_dict(), _BALANCE_VOLATILE)

    def to_dict(self) -> dict[str, Any]:
        # Package times in as_of's offset as a fixed one: the text reads back the same from
        # the store or the outbox (a zone's rules would give each date its own offset).
        tz = timezone(self.as_of.utcoffset() or timedelta(0))
        expiry = self.next_expiry
        return {
            "schema": PACKAGES_SCHEMA,
            "sms_sdk_app_id": self.sms_sdk_app_id,
            "as_of": isoformat(self.as_of),
            "packages": [p.to_dict(tz) for p in self.packages],
            "remaining": self.remaining,
            "next_expiry": None if expiry is None else isoformat(expiry[0].astimezone(tz)),
            "next_expiry_remaining": None if expiry is None else expiry[1],
            "request_id": self.request_id,
            "fetched_at": isoformat_utc(self.fetched_at),
        }


AnyRecord = Record | CallbackRecord | BalanceRecord


def from_dict(data: Any) -> AnyRecord:
    """A stored record of any kind back into its class; ValueError names what is wrong.

    Windows come from `window_start`/`window_end`, which carry their offsets, so a window reads
    back as the instants it was, whatever zone the reader is in.
    """
    schema = data.get("schema") if isinstance(data, dict) else None
    reader = _READERS.get(schema) if isinstance(schema, str) else None
    if reader is None:
        raise ValueError(f"not a record of ours ({', '.join(_READERS)})")
    try:
        return reader(data)
    except KeyError as exc:
        raise ValueError(f"a {schema} record without {exc.args[0]}") from None
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"a {schema} record with a bad field: {exc}") from None


def _window_of(data: dict[str, Any]) -> tuple[Window, str, datetime]:
    tz = zone(str(data["timezone"]))
    start = datetime.fromisoformat(str(data["window_start"])).astimezone(tz)
    end = datetime.fromisoformat(str(data["window_end"])).astimezone(tz)
    return Window(start, end), str(data["timezone"]), _fetched_at(data)


def _app_id(data: dict[str, Any]) -> str:
    app_id = data["sms_sdk_app_id"]
    if not isinstance(app_id, str):
        raise ValueError("sms_sdk_app_id is not a string")
    return app_id


def _send(data: dict[str, Any]) -> Record:
    window, tz, fetched = _window_of(data)
    counts = Counts(
        request_count=_count(data, "request_count"),
        request_success_count=_count(data, "request_success_count"),
        fee_count=_count(data, "fee_count"),
        request_id=str(data["request_id"]),
    )
    if counts.request_success_count > counts.request_count:
        raise ValueError(
            f"request_success_count ({counts.request_success_count}) must not exceed "
            f"request_count ({counts.request_count})"
        )
    return Record(_app_id(data), window, tz, counts, fetched)


def _callback(data: dict[str, Any]) -> CallbackRecord:
    window, tz, fetched = _window_of(data)
    counts = {name: _count(data, name) for name in RECEIPT_FIELDS}
    # The API's own rules (apis/callback.py): the parts of the receipts cannot exceed them,
    # nor the failure reasons the failures. Receipts above submissions can happen and stay.
    parts = counts["callback_success_count"] + counts["callback_fail_count"]
    if parts > counts["callback_count"]:
        raise ValueError(
            f"callback_success_count + callback_fail_count ({parts}) must not exceed "
            f"callback_count ({counts['callback_count']})"
        )
    reasons = sum(counts[name] for name in RECEIPT_FIELDS[4:])
    if reasons > counts["callback_fail_count"]:
        raise ValueError(
            f"the failure reasons ({' + '.join(RECEIPT_FIELDS[4:])} = {reasons}) must not "
            f"exceed callback_fail_count ({counts['callback_fail_count']})"
        )
    receipts = Receipts(**counts, request_id=str(data["request_id"]))
    return CallbackRecord(_app_id(data), window, tz, receipts, fetched)


def _packages(data: dict[str, Any]) -> BalanceRecord:
    as_of = datetime.fromisoformat(str(data["as_of"]))
    if as_of.tzinfo is None:
        raise ValueError("as_of has no offset")
    items = data["packages"]
    if not isinstance(items, list):
        raise ValueError(f"packages is not a list: got a {type(items).__name__}")
    packages = tuple(_package(item, f"packages.{n}.") for n, item in enumerate(items))
    return BalanceRecord(_app_id(data), as_of, packages, str(data["request_id"]), _fetched_at(data))


def _package(item: Any, where: str) -> Package:
    if not isinstance(item, dict):
        raise ValueError(f"{where.rstrip('.')} is not an object")
    kind = item["package_type"]
    if kind not in ("bought", "gift"):
        raise ValueError(f"{where}package_type must be bought or gift")
    package = Package(
        package_id=_count(item, "package_id", where),
        bought=kind == "bought",
        amount=_count(item, "amount", where),
        used=_count(item, "used", where),
        created_at=_utc_time(item["created_at"]),
        effective_at=_utc_time(item["effective_at"]),
        expires_at=_utc_time(item["expires_at"]),
    )
    if package.expires_at <= package.effective_at:  # as the API's answers are checked
        raise ValueError(f"{where}expires_at must be after {where}effective_at")
    return package


def _fetched_at(data: dict[str, Any]) -> datetime:
    """`fetched_at` is UTC (`Z`); one written without an offset is read as UTC too, so that
    comparing it with another fetch (which is newer?) never meets a naive time."""
    moment = datetime.fromisoformat(str(data["fetched_at"]).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _utc_time(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return moment.astimezone(timezone.utc)


_READERS: dict[str, Callable[[dict[str, Any]], AnyRecord]] = {
    SCHEMA: _send,
    CALLBACK_SCHEMA: _callback,
    PACKAGES_SCHEMA: _packages,
}


MAX_COUNT = 2**63 - 1  # as an API answer's counts (answers.MAX_COUNT): more is no count


def _count(data: dict[str, Any], name: str, where: str = "") -> int:
    """A count as strictly as the API's answers are read: a JSON integer (not a bool, a
    string or a float) from 0 to 2^63-1. A value that is none is named, not quoted whole."""
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool):
        kind = type(value).__name__
        raise ValueError(f"{where}{name} is not a count (a JSON integer): got a {kind}")
    if not 0 <= value <= MAX_COUNT:
        shown = str(value) if -(10**20) < value < 10**20 else "a number of thousands of digits"
        raise ValueError(f"{where}{name} is not a count (0 to 2^63-1): got {shown}")
    return value


def _stored_int(text: str) -> int:
    """JSON integers of a stored object: a count has at most 19 digits, and `int` of thousands
    of digits is slow (past 4,300 Python refuses it), so a longer one is refused as such."""
    if len(text) > 20:
        raise ValueError(f"a {len(text)}-digit number is no count")
    return int(text)


_STORED = json.JSONDecoder(parse_int=_stored_int)


def loads(data: bytes | str) -> Any:
    """A stored object's JSON, its integers bounded (see `_stored_int`); ValueError (the
    JSONDecodeError and UnicodeDecodeError included) when it is not JSON or holds a huge one."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return _STORED.decode(text)


def read_back(data: bytes | None) -> AnyRecord | None:
    """A stored object's bytes as a record; None when absent or not a record of ours (not
    JSON, truncated, another schema, a bad field)."""
    if data is None:
        return None
    try:
        return from_dict(loads(data))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return None


def isoformat_utc(moment: datetime) -> str:
    return isoformat(moment.astimezone(timezone.utc)).replace("+00:00", "Z")
