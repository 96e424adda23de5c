"""What the SMS API answered, read from its bytes and checked before anything is built from it.

The SDK's generated models accept whatever arrives: `int(Infinity)` raised OverflowError out of
a run, a negative count became a success rate of 2.0, `"12"` and `true` were stored as counts,
an object became a RequestId, and invalid UTF-8 or JSON nested 100,000 deep surfaced as
`UnicodeDecodeError` and `RecursionError`. Here every answer is decoded strictly, parsed so that
no number can overflow (a float, `1e400`, `Infinity` or a 20-digit integer is kept as its text,
which no count accepts), and validated by a strict pydantic model per action: a count is a JSON
integer from 0 to 2^63-1, `RequestId` a string. Anything else is a `BadAnswer`, one retryable
failure of that (app, window) naming the field, the rule and the raw value.

The API's error envelope (`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`) is
recognised whatever Content-Type came with it and raised as `ErrorAnswer`, for the client to map.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import BAD_RESPONSE, UpstreamError

MAX_COUNT = 2**63 - 1  # what any store or receiver holds as an integer; more is not a count
_MAX_DIGITS = 19  # longer integers are kept as text: int() of 5,000 digits is slow or refused
_SHOWN = 80  # characters of a raw value quoted in a message or log line
M = TypeVar("M", bound=BaseModel)


class RawNumber:
    """A JSON number kept as its text: a float, an exponent, Infinity/NaN or a huge integer.

    No answer has a float field, so no model accepts one; keeping the text means `1e400` is
    refused as `1e400` (not as `inf`) and nothing converts it on the way.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _parse_int(text: str) -> int | RawNumber:
    return int(text) if len(text.lstrip("-")) <= _MAX_DIGITS else RawNumber(text)


Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
"""A count: a JSON integer, not a bool, float, string or Infinity (the models are strict)."""

RequestId = Annotated[str, Field(min_length=1, max_length=128)]
"""Tencent's RequestId is a UUID; a string of 128 characters is already no RequestId. (Strict
`str` also refuses JSON's lone surrogates, `"\\ud800"`, which no log line or store can write.)"""


class Strict(BaseModel):
    """Shared by every answer model: strict types, unknown fields ignored (Tencent adds
    fields over time), immutable."""

    # Built on the first answer read: a refused HTTP request never pays for them.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, defer_build=True)


class Answer(Strict):
    """What every successful answer carries."""

    RequestId: RequestId


class SendStatusCounts(Strict):
    FeeCount: Count
    RequestCount: Count
    RequestSuccessCount: Count

    @model_validator(mode="after")
    def _successes_within_requests(self) -> SendStatusCounts:
        if self.RequestSuccessCount > self.RequestCount:
            raise PydanticCustomError(
                "successes_above_requests",
                "RequestSuccessCount must not exceed RequestCount",
            )
        return self


class SendStatusStatisticsAnswer(Answer):
    SendStatusStatistics: SendStatusCounts


ANSWERS: dict[str, type[Answer]] = {"SendStatusStatistics": SendStatusStatisticsAnswer}
"""Action -> the model of its successful answer. The seed's is here; each other statistics API
registers its own from its module (`apis/`), so a run pays only for the models it reads."""


class _ErrorDetail(Strict):
    Code: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")]
    Message: str


_OptionalRequestId = RequestId | None  # named apart: the field below shadows `RequestId`


class _ErrorEnvelope(Strict):
    Error: _ErrorDetail
    RequestId: _OptionalRequestId = None  # an error without one is still that error, not "bad"


class ErrorAnswer(Exception):
    """The API answered its error envelope: a code of its own, passed through by the client."""

    def __init__(self, code: str, message: str, request_id: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class BadAnswer(UpstreamError):
    """An answer that is not one: unreadable, or holding an impossible value. Retried, since
    a front end's hiccup or a half-written answer may well be fine on the next try."""

    def __init__(
        self, action: str, field: str, rule: str, value: str, request_id: str | None = None
    ) -> None:
        where = f"{field}: " if field else ""
        super().__init__(
            f"the API's {action} answer is not valid: {where}{rule} (got {value})",
            code=BAD_RESPONSE,
            request_id=request_id,
            retryable=True,
        )
        self.field = field
        self.rule = rule
        self.value = value


@overload
def read(action: Literal["SendStatusStatistics"], body: bytes) -> SendStatusStatisticsAnswer: ...
@overload
def read(action: str, body: bytes) -> Answer: ...
def read(action: str, body: bytes) -> Answer:
    """The answer to `action` in `body`, or `ErrorAnswer` (the API's error), or `BadAnswer`."""
    model = ANSWERS[action]
    try:
        text = body.decode("utf-8")  # strict: what is not UTF-8 is not an answer
    except UnicodeDecodeError as exc:
        raise BadAnswer(
            action, "", "the body must be UTF-8", f"byte {body[exc.start]:#04x} at {exc.start}"
        ) from None
    try:
        data = json.loads(
            text, parse_int=_parse_int, parse_float=RawNumber, parse_constant=RawNumber
        )
    except RecursionError:
        raise BadAnswer(action, "", "the body must be JSON", "JSON nested too deep") from None
    except ValueError as exc:  # JSONDecodeError
        raise BadAnswer(action, "", "the body must be JSON", _clip(str(exc))) from None
    response = data.get("Response") if isinstance(data, dict) else None
    if not isinstance(response, dict):
        raise BadAnswer(
            action, "Response", "must be a JSON object", _show(response if response else data)
        )
    request_id = response.get("RequestId")
    rid = request_id if isinstance(request_id, str) and _is_text(request_id) else None
    rid = rid if rid is None or len(rid) <= 128 else None
    if "Error" in response:
        envelope = _validate(_ErrorEnvelope, response, action, rid)
        raise ErrorAnswer(envelope.Error.Code, envelope.Error.Message, envelope.RequestId or "")
    return _validate(model, response, action, rid)


def _validate(model: type[M], data: dict[str, Any], action: str, rid: str | None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(["Response", *(str(part) for part in first["loc"])])
        raise BadAnswer(action, field, _rule(first), _show(first["input"]), rid) from None


_RULES = {
    "int_type": "must be a JSON integer (not a float, an exponent, Infinity, a bool or a string)",
    "greater_than_equal": "must not be negative",
    "less_than_equal": f"must be at most {MAX_COUNT}",
    "string_type": "must be a string",
    "missing": "is missing",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_too_short": "must not be empty",
    "string_unicode": "must be text (it holds a lone surrogate)",
    "list_type": "must be a JSON array",
    "literal_error": "must be 0 (gift) or 1 (bought)",
}


def _rule(error: Any) -> str:
    return _RULES.get(error["type"], str(error["msg"]))


def _is_text(value: str) -> bool:
    """False for lone surrogates (JSON's `\\ud800`), which no log line or store can write."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: Any) -> str:
    """A raw value as JSON text, short, writable anywhere (lone surrogates escaped)."""
    return _clip(_render(value, 3))


def _render(value: Any, depth: int) -> str:
    if isinstance(value, RawNumber):
        return value.text
    if isinstance(value, dict):
        if depth <= 0:
            return "{...}"
        items = list(value.items())[:8]
        inner = ", ".join(f"{json.dumps(str(k))}: {_render(v, depth - 1)}" for k, v in items)
        return "{" + inner + (", ..." if len(value) > len(items) else "") + "}"
    if isinstance(value, list):
        if depth <= 0:
            return "[...]"
        shown = ", ".join(_render(v, depth - 1) for v in value[:8])
        return "[" + shown + (", ..." if len(value) > 8 else "") + "]"
    if isinstance(value, str) and len(value) > _SHOWN:
        value = value[:_SHOWN]
    return json.dumps(value, ensure_ascii=False)


def _clip(text: str) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
