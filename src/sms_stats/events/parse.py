"""Event models for the three ways in: timer, HTTP (Function URL or classic API Gateway), direct.

The timer's model is here; the HTTP event's is in `http`, the direct requests' in `direct`.

`parse_event` tells them apart by shape, validated: a timer event has `Type: "Timer"`, an HTTP event
`httpMethod`, a direct invocation is the seed's request (`SmsSdkAppId`, `BeginTime`, ...) or a
job (`app_ids`, `window`, `lookback`). Whatever fails validation becomes an `InputError` whose code
comes from the seed's vocabulary and whose message names the field, the rule and the value.
"""

from __future__ import annotations

import json
import reprlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError, field_validator

from sms_stats.core.errors import InputError

# Field (seed name or HTTP query name) -> the seed's error code for a bad value.
FIELD_CODES = {
    "BeginTime": "InvalidParameterValue.BeginTimeVerifyFail",
    "begin": "InvalidParameterValue.BeginTimeVerifyFail",
    "EndTime": "InvalidParameterValue.EndTimeVerifyFail",
    "end": "InvalidParameterValue.EndTimeVerifyFail",
    "Limit": "InvalidParameterValue.LimitVerifyFail",
    "Offset": "InvalidParameterValue.OffsetVerifyFail",
}
_MAX_SHOWN = 80


class TimerEvent(BaseModel):
    """SCF timer trigger: `Time` is UTC; `Message` is the trigger's argument (often empty)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    Type: Literal["Timer", "timer"]  # "timer" in older docs (and so in older captures)
    TriggerName: StrictStr = ""
    Time: datetime
    Message: StrictStr = ""

    @field_validator("Time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # SCF writes `...Z`; a time without an offset is read as the UTC it always is.
        if not 2000 <= value.year <= 2100:
            raise ValueError("must be a time between the years 2000 and 2100")
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


if TYPE_CHECKING:
    from typing import TypeAlias

    from sms_stats.events.direct import JobRequest, StatsRequest
    from sms_stats.events.http_event import HttpEvent

    Event: TypeAlias = TimerEvent | HttpEvent | StatsRequest | JobRequest
    DirectRequest: TypeAlias = StatsRequest | JobRequest


def _kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if "Type" in value:
        return "timer"
    if "httpMethod" in value:
        return "http"
    if {"SmsSdkAppId", "BeginTime", "EndTime"} & value.keys():
        return "stats"
    if not value or {"app_ids", "window", "lookback", "kinds"} & value.keys():
        return "job"
    return None


def _model(kind: str) -> type[BaseModel]:
    """The model of a kind of event. Only the timer's is here: the HTTP event's lives with the
    HTTP layer and the direct requests' in `direct`, each imported on its path's first event,
    so a timer container never creates (let alone builds) their classes."""
    if kind == "timer":
        return TimerEvent
    if kind == "http":
        from sms_stats.events.http_event import HttpEvent  # noqa: PLC0415 - the HTTP path's own

        return HttpEvent
    from sms_stats.events.direct import JobRequest, StatsRequest  # noqa: PLC0415 - a direct request's own

    return StatsRequest if kind == "stats" else JobRequest


def parse_event(event: Any) -> Event:
    """Validate whatever SCF handed the function into one of the four event models."""
    if isinstance(event, (str, bytes)):
        event = parse_json_object(event, "event")
    if not isinstance(event, dict):
        raise InputError(
            "the event must be a JSON object: a timer event, an HTTP event, a "
            "SendStatusStatistics request or a job; got " + _show(event),
            code="InvalidParameter",
        )
    return _validate(event, ("timer", "http", "stats", "job"))  # type: ignore[return-value]


def parse_direct(payload: Any, source: str) -> DirectRequest:
    """A seed request or a job, from a timer's Message or an HTTP body (`source` names which)."""
    if not isinstance(payload, dict):
        raise InputError(f"{source} must be a JSON object; got {_show(payload)}")
    return _validate(payload, ("stats", "job"), source)  # type: ignore[return-value]


def parse_json_object(text: str | bytes, source: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InputError(
            f"{source} is not valid JSON: {_show(text)}", code="FailedOperation.JsonParseFail"
        ) from None


def _validate(value: dict[str, Any], kinds: tuple[str, ...], source: str = "") -> BaseModel:
    """Pick the model by the event's shape, then validate it whole against that model."""
    kind = _kind(value)
    if kind not in kinds:
        raise InputError(_unknown_shape(value, kinds, source))
    try:
        return _model(kind).model_validate(value)
    except ValidationError as exc:
        raise validation_to_input_error(exc, source) from None
    except RecursionError:
        raise InputError(f"{source or 'event'} is nested too deeply") from None


def _unknown_shape(value: dict[str, Any], kinds: tuple[str, ...], source: str) -> str:
    shapes = {
        "timer": "a timer event (Type, Time)",
        "http": "an HTTP event (httpMethod, path, ...)",
        "stats": "a SendStatusStatistics request (SmsSdkAppId, BeginTime, EndTime, Limit, Offset)",
        "job": "a job (app_ids, window, lookback, kinds)",
    }
    listed = ", ".join(shapes[k] for k in kinds[:-1]) + f" or {shapes[kinds[-1]]}"
    return f"{source or 'the event'} has none of the known shapes: {listed}; got keys " + _show(
        sorted(value)[:10]
    )


def validation_to_input_error(exc: ValidationError, source: str = "") -> InputError:
    """The first problem, in the seed's vocabulary; the rest are summed up in the same message."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    field = loc[0] if loc else ""
    where = ".".join(loc) or "event"
    if source:
        where = f"{source}.{where}"
    if first["type"] == "missing":
        code = "MissingParameter"
        message = f"{where} is required"
    elif first["type"] == "extra_forbidden":
        code = "InvalidParameter"
        message = f"{where} is not a known field"
    elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        code = "InvalidParameter"
        message = (
            f"{source or 'the event'} has none of the known shapes: a timer event (Type, Time), "
            "an HTTP event (httpMethod, path, ...), a SendStatusStatistics request (SmsSdkAppId, "
            "BeginTime, EndTime, Limit, Offset) or a job (app_ids, window, lookback); got keys "
            + _show(
                sorted(first["input"])[:10] if isinstance(first["input"], dict) else first["input"]
            )
        )
    else:
        code = FIELD_CODES.get(field, "InvalidParameter")
        rule = first["msg"].removeprefix("Value error, ")
        # Header and query values may be credentials (Authorization, ?token=): their type only.
        shown = _kind_of(first["input"]) if field in _PRIVATE_FIELDS else _show(first["input"])
        message = f"{where}: {rule}; got {shown}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return InputError(message, code=code)


_PRIVATE_FIELDS = frozenset({"headers", "queryString"})


def _kind_of(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _show(value: Any) -> str:
    """A bounded repr, safe on anything an event may hold (5,000-deep lists included)."""
    text = _REPR.repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _make_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel = 3
    shown.maxstring = shown.maxother = _MAX_SHOWN
    return shown


_REPR = _make_repr()
