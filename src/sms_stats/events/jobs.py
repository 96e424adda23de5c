"""Turn a validated request into a job: which apps, which windows. The checks live here once.

Whatever the entry (timer, HTTP, direct), the same rules apply: app ids look like SmsSdkAppIds,
hours are real `yyyymmddhh` hours in the settings' zone, EndTime is not before BeginTime, a span is
not longer than `SMS_STATS_MAX_SPAN_HOURS`, a window does not lie wholly in the future.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from functools import cached_property
from itertools import zip_longest
from typing import TYPE_CHECKING

from sms_stats.core.errors import ConfigError, InputError
from sms_stats.core.records import KINDS, Kind
from sms_stats.core.redact import short
from sms_stats.core.settings import Settings
from sms_stats.core.values import APP_ID_RE
from sms_stats.core.windows import HOUR, Window, last_full, parse_hour
from sms_stats.events.parse import FIELD_CODES

if TYPE_CHECKING:
    from sms_stats.events.direct import JobRequest, StatsRequest

BEGIN_CODE = FIELD_CODES["BeginTime"]
END_CODE = FIELD_CODES["EndTime"]


Task = tuple[Kind, str, Window]  # one call's worth of work: which API, which app, which window


@dataclass(frozen=True)
class Job:
    """Kinds x apps x windows, minus the tasks in `skip` (already stored: a backfill resumes).

    `heal` is the range of hours before the job's own that a timer run makes whole and settled
    in the store (see `heal`: missing hours fetched, changed receipts rewritten); what it finds
    never goes to chat, where a group would read corrections every hour. A balance
    (`packages`) is one snapshot per app, taken once per job; its task carries the job's last
    window, which names it in logs."""

    app_ids: tuple[str, ...]
    windows: tuple[Window, ...]
    skip: frozenset[Task] = frozenset()
    kinds: tuple[Kind, ...] = ("send",)
    heal: Window | None = None
    # Kinds chat bots hear of (None: every kind).
    chat_kinds: tuple[Kind, ...] | None = None

    def for_chat(self, kind: Kind) -> bool:
        return self.chat_kinds is None or kind in self.chat_kinds

    def tasks(self) -> tuple[Task, ...]:
        """Each kind's tasks (windows in order, apps as given), taken in turn: every API has a
        rate budget of its own, so the workers keep all of them busy at once, rather than wait
        for one API's budget while another's lies idle. Worked out once per job."""
        return self._tasks

    @cached_property
    def _tasks(self) -> tuple[Task, ...]:
        lanes = [self._lane(kind) for kind in self.kinds]
        return tuple(task for turn in zip_longest(*lanes) for task in turn if task is not None)

    def _lane(self, kind: Kind) -> Iterator[Task]:
        if kind == "packages":  # one snapshot per app
            if self.windows:
                yield from self._each_app(kind, self.windows[-1])
            return
        for window in self.windows:
            yield from self._each_app(kind, window)

    def _each_app(self, kind: Kind, window: Window) -> Iterator[Task]:
        for app_id in self.app_ids:
            if (kind, app_id, window) not in self.skip:
                yield kind, app_id, window

    def __len__(self) -> int:
        return len(self._tasks)


def check_app_ids(
    values: Sequence[str], field: str, settings: Settings, limit: int | None = None
) -> tuple[str, ...]:
    if not values:
        raise InputError(f"{field} is required", code="MissingParameter")
    most = settings.max_app_ids if limit is None else limit
    if len(values) > most:
        raise InputError(
            f"{field}: at most {most} app ids per request (SMS_STATS_MAX_APP_IDS); "
            f"got {len(values)}"
        )
    for value in values:
        if not APP_ID_RE.fullmatch(value):
            raise InputError(
                f"{field}: must be an SmsSdkAppId, '1400' followed by 6 digits "
                f"like 1400006874; got {short(value)}"
            )
    return tuple(dict.fromkeys(values))  # keep order, drop repeats


def window_between(
    begin: str,
    end: str,
    settings: Settings,
    now: datetime,
    names: tuple[str, str] = ("BeginTime", "EndTime"),
) -> Window:
    """The inclusive hours `begin`..`end`, checked; errors carry the seed's codes."""
    tz = settings.zone
    start = _hour(begin, names[0], BEGIN_CODE, tz)
    last = _hour(end, names[1], END_CODE, tz)
    if last < start:
        raise InputError(
            f"{names[1]}: must not be before {names[0]} (both hours are included: one hour "
            f"is {names[0]} = {names[1]}); got {names[0]}={short(begin)}, "
            f"{names[1]}={short(end)}",
            code=END_CODE,
        )
    window = Window.through(start, last)
    if window.hours > settings.max_span_hours:
        raise InputError(
            f"{names[1]}: the span {begin}..{end} is {window.hours} hours; at most "
            f"{settings.max_span_hours} (SMS_STATS_MAX_SPAN_HOURS)",
            code=END_CODE,
        )
    if window.start > now:
        raise InputError(
            f"{names[0]}: {begin} ({settings.timezone}) is in the future",
            code=BEGIN_CODE,
        )
    return window


def _hour(text: str, name: str, code: str, tz: tzinfo) -> datetime:
    try:
        return parse_hour(text, tz)
    except ValueError as exc:
        raise InputError(f"{name}: {exc}", code=code) from None


def from_stats_request(request: StatsRequest, settings: Settings, now: datetime) -> Job:
    app_ids = check_app_ids([request.SmsSdkAppId], "SmsSdkAppId", settings)
    return Job(app_ids, (window_between(request.BeginTime, request.EndTime, settings, now),))


def from_job_request(request: JobRequest | None, settings: Settings, now: datetime) -> Job:
    """Windows that ended at or before `now` (the timer's Time, or the clock when direct).

    `None` is the default job (every configured app, the last full hour): what a timer runs
    every hour, without building the job model it does not need."""
    if request is None:
        return default_job(settings, now)
    if request.app_ids is None:
        app_ids = _configured_app_ids(settings)
    else:
        app_ids = check_app_ids(request.app_ids, "app_ids", settings)
    hours = request.lookback * (24 if request.window == "day" else 1)
    if hours > settings.max_span_hours:
        span = (
            f"{hours} hours"
            if request.window == "hour"
            else f"{request.lookback} days, {hours} hours"
        )
        raise InputError(
            f"lookback: {span}; at most {settings.max_span_hours} hours (SMS_STATS_MAX_SPAN_HOURS)"
        )
    windows = last_full(now, settings.zone, request.window, request.lookback)
    return Job(app_ids, tuple(windows), kinds=collected(request.kinds or settings.collect))


def _configured_app_ids(settings: Settings) -> tuple[str, ...]:
    if not settings.app_ids:
        raise ConfigError(
            "no app ids to collect: set SMS_STATS_APP_IDS (comma-separated SmsSdkAppIds, "
            "e.g. 1400006874,1400006875) or give app_ids in the job"
        )
    return settings.app_ids


def default_job(settings: Settings, now: datetime) -> Job:
    """What the timer runs every hour: the last full hour of every configured app, for every
    collected kind, and one balance per app; then the `settle_hours` before it healed.
    Chat bots hear of the hour's sends and receipts only."""
    (hour,) = last_full(now, settings.zone, "hour")
    heal = None
    if settings.settle_hours:
        heal = Window(
            (hour.start.astimezone(timezone.utc) - settings.settle_hours * HOUR).astimezone(
                hour.tz
            ),
            hour.start,
        )
    return Job(
        _configured_app_ids(settings),
        (hour,),
        kinds=collected(settings.collect),
        heal=heal,
        chat_kinds=("send", "callback"),  # a balance an hour is noise; alerts say when it is low
    )


def collected(names: Sequence[str]) -> tuple[Kind, ...]:
    """Kind names (already checked by the settings or the job model) in the canonical order."""
    return tuple(kind for kind in KINDS if kind in names)
