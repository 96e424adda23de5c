"""The HTTP trigger's event: Function URL and classic API Gateway events, as one request.

Only `httpMethod`, `path`, `headers`, `queryString` and `body` are read (plus the classic
trigger's `isBase64Encoded` when present), so both trigger kinds work. Header names are matched
case-insensitively; a repeated query key arrives as a list and a bare key as `true`. What a
request asks for (routes, jobs, answers) is the web stage's: this module knows none of it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, field_validator

from sms_stats.core.errors import InputError, PayloadTooLargeError
from sms_stats.core.redact import short


@dataclass(frozen=True)
class HttpRequest:
    """A request as both HTTP trigger shapes (Function URL, classic API Gateway) come down to:
    routes read this and never the event."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, list[str | bool]]
    body: bytes


_SCALARS = (str, bool, int, float)


class HttpEvent(BaseModel):
    """The five fields both HTTP triggers send (plus the classic one's base64 flag, when given)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    httpMethod: StrictStr
    path: StrictStr = "/"
    headers: dict[str, Any] | None = None
    queryString: dict[str, Any] | None = None
    body: StrictStr | None = None
    isBase64Encoded: bool = False

    @field_validator("isBase64Encoded", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        # The classic trigger sends the STRING "true"/"false"; others a bool. 1/0 and "1"/"0"
        # mean the same whichever way they come, so a body is decoded by value, not by type.
        if value is None or isinstance(value, bool):
            return bool(value)
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in ("true", "1"):
            return True
        if text in ("false", "0", ""):
            return False
        raise ValueError("must be true or false")


def normalize(event: HttpEvent, max_body_bytes: int) -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in (event.headers or {}).items():
        first = value[0] if isinstance(value, list) and value else value
        if first is not None and not isinstance(first, _SCALARS):
            # Never the value itself: a header may be a credential.
            raise InputError(
                f"header {short(str(name))}: must be a string; got a {type(first).__name__}"
            )
        headers[str(name).lower()] = "" if first is None else str(first)
    query: dict[str, list[str | bool]] = {}
    for name, value in (event.queryString or {}).items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, _SCALARS) for v in values):
            raise InputError(
                f"query parameter {short(str(name))}: must be a string or a list of strings"
            )
        query[str(name)] = [v if isinstance(v, bool) else str(v) for v in values]
    raw = event.body or ""
    if len(raw) > max_body_bytes * 4 // 3 + 4:
        raise PayloadTooLargeError(f"the body is larger than {max_body_bytes} bytes")
    if event.isBase64Encoded:
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(
                "the body is marked isBase64Encoded but is not valid base64",
                code="FailedOperation.JsonParseFail",
            ) from None
    else:
        body = raw.encode("utf-8", "surrogatepass")
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError(
            f"the body is {len(body)} bytes; at most {max_body_bytes} (SMS_STATS_MAX_BODY_BYTES)"
        )
    path = "/" + event.path.strip("/")
    return HttpRequest(event.httpMethod.upper(), path, headers, query, body)
