"""What the SMS API answered, read from its bytes and checked before anything is built from it.

The SDK's generated models accept whatever arrives: `int(Infinity)` raised OverflowError out of
a run, a negative count became a success rate of 2.0, `"12"` and `true` were stored as counts,
an object became a RequestId, and invalid UTF-8 or JSON nested 100,000 deep surfaced as
`UnicodeDecodeError` and `RecursionError`. Here every answer is decoded strictly, parsed so that
no number can overflow (a float, `1e400`, `Infinity` or a 20-digit integer is kept as its text,
which no count accepts), and validated by a strict pydantic model per action: a count is a JSON
integer from 0 to 2^63-1, `RequestId` a string. An object that names a key twice
(`{"RequestCount": 5, "RequestCount": 7}`) is refused too: a parser keeps one of the two and
nobody can say which the API meant. Anything else is a `BadAnswer`, one retryable failure of
that (app, window) naming the field, the rule and the raw value.

The API's error envelope (`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`) is
recognised whatever Content-Type came with it and raised as `ErrorAnswer`, for the client to map.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from sms_stats.core import redact
from sms_stats.core.errors import BAD_RESPONSE, UpstreamError

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


class _Repeated(Exception):
    """An object of the answer names a key twice; where, `_repeated` finds out."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Every JSON object of an answer: a dict, unless a key repeats (json keeps the last one
    silently). Only a dict and a length compared, since every answer pays for it."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Repeated
    return obj


# Built once: `json.loads(text, **hooks)` makes a decoder per call, which cost more than the
# repeated-key check costs (a SendStatusStatistics read went from about 10 us to 8.5 us).
# Shared between threads: the scanner's only state is a memo that interns keys.
_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=RawNumber, parse_constant=RawNumber, object_pairs_hook=_object
)


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
    if text.startswith("\ufeff"):  # what json.loads refuses before decoding
        raise BadAnswer(action, "", "the body must be JSON", "a UTF-8 BOM before it")
    try:
        data = _decode(action, text, _DECODER)
    except _Repeated:
        raise _repeated(action, text) from None
    response = data.get("Response") if isinstance(data, dict) else None
    if not isinstance(response, dict):
        raise BadAnswer(
            action, "Response", "must be a JSON object", _show(response if response else data)
        )
    request_id = response.get("RequestId")
    rid = request_id if isinstance(request_id, str) and _is_text(request_id) else None
    rid = rid if rid is None or len(rid) <= 128 else None
    # A UUID (what Tencent answers) holds no credential; anything else is scrubbed (~13 us).
    clean = rid if rid is None or _is_uuid(rid) else redact.scrub(rid)
    if "Error" in response:
        envelope = _validate(_ErrorEnvelope, response, action, clean)
        raise ErrorAnswer(
            envelope.Error.Code, envelope.Error.Message, redact.scrub(envelope.RequestId or "")
        )
    answer = _validate(model, response, action, clean)
    if clean != rid:
        # The RequestId is stored in the record and answered: an upstream (or a proxy) that
        # echoes a credential into it must not put it there. Masked, as in every quote.
        answer = answer.model_copy(update={"RequestId": clean})
    return answer


def _is_uuid(text: str) -> bool:
    """8-4-4-4-12 hex digits (no regex: this module is read on every cold start)."""
    if len(text) != 36 or not text[8] == text[13] == text[18] == text[23] == "-":
        return False
    digits = text.replace("-", "")
    if len(digits) != 32 or not (digits.isascii() and digits.isalnum()):
        return False
    try:
        int(digits, 16)
    except ValueError:
        return False
    return True


def _decode(action: str, text: str, decoder: json.JSONDecoder) -> Any:
    try:
        return decoder.decode(text)
    except RecursionError:
        raise BadAnswer(action, "", "the body must be JSON", "JSON nested too deep") from None
    except ValueError as exc:  # JSONDecodeError
        raise BadAnswer(action, "", "the body must be JSON", _clip(str(exc))) from None


def _repeated(action: str, text: str) -> BadAnswer:
    """The refusal of an answer with a repeated key, naming where it is and its values.

    Found by decoding again, every object kept as its list of pairs (an outer repeated key
    must not drop the inner object that held the first one), noting the first object that
    holds a key twice in the order the first decoding met it, then looking for that object
    from the root: the error path pays for this, never a good answer. A body that turns out
    not to be JSON after the repeated key is refused as that.
    """
    found: list[tuple[_Pairs, str]] = []

    def note(pairs: list[tuple[str, Any]]) -> _Pairs:
        obj = _Pairs(pairs)
        if not found and len(dict(pairs)) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:  # the first key named a second time
                    found.append((obj, key))
                    break
                seen.add(key)
        return obj

    decoder = json.JSONDecoder(
        parse_int=_parse_int,
        parse_float=RawNumber,
        parse_constant=RawNumber,
        object_pairs_hook=note,
    )
    root = _decode(action, text, decoder)
    obj, key = found[0]
    field = ".".join(_segment(part) for part in [*_path_to(root, obj), key])
    values = [value for name, value in obj if name == key]
    shown = _clip(", then ".join(_render(value, 1) for value in values))
    rule = "must appear once in its object (with a key twice, which value the API meant is unknown)"
    return BadAnswer(action, _clip(field), rule, shown, _request_id_in(root))


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as written, repeated keys and all (only while explaining a refusal)."""


def _only(obj: Any, key: str) -> Any:
    """The value of `key` in a `_Pairs` object when it is there once; else None."""
    values = [value for name, value in obj if name == key] if isinstance(obj, _Pairs) else []
    return values[0] if len(values) == 1 else None


def _request_id_in(root: Any) -> str | None:
    """Response.RequestId when it is there once and a RequestId; a repeated one is none."""
    rid = _only(_only(root, "Response"), "RequestId")
    return rid if isinstance(rid, str) and _is_text(rid) and 0 < len(rid) <= 128 else None


def _path_to(root: Any, target: _Pairs) -> list[str | int]:
    """The keys and indexes from `root` to `target` (found by identity), without recursion:
    a body may nest as deep as the decoder allows."""
    stack: list[tuple[Any, list[str | int]]] = [(root, [])]
    while stack:
        value, path = stack.pop()
        if value is target:
            return path
        if isinstance(value, _Pairs):
            stack.extend((item, [*path, k]) for k, item in value)
        elif isinstance(value, list):
            stack.extend((item, [*path, i]) for i, item in enumerate(value))
    return []  # unreachable: the object is in the tree the same decoding built


def _segment(part: str | int) -> str:
    """A key or index as a field path shows it: a plain name as itself, anything else as
    JSON text (escaped, so a lone surrogate or a dot cannot garble the path)."""
    if isinstance(part, int) or (part.isascii() and part.isidentifier() and len(part) <= 64):
        return str(part)
    return json.dumps(part[:_SHOWN])


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
    "less_than_equal": "must be at most {le}",  # a count's 2^63-1, or a package time's limit
    "greater_than": "must be above {gt} (a Unix time of 0 is no time: a field left unset)",
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
    rule = _RULES.get(error["type"])
    return str(error["msg"]) if rule is None else rule.format(**error.get("ctx", {}))


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
    if isinstance(value, _Pairs):  # an object as written, while explaining a repeated key
        value = dict(value)
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
