"""The exceptions sms-stats raises, and the one table that gives each its HTTP answer.

Every failure a user can meet is one of these, carrying a code from the seed API's vocabulary
(or Tencent's common codes) and a message that names the field, the rule and the value. The HTTP
entry turns them into the contract's JSON body in `http.error_response`; timer and direct runs
raise them so SCF records the message and retries. Messages are built from redacted values only,
and are scrubbed once more as an error is made (`redact.scrub`): a secret that slipped into one
(an upstream's echo, say) never reaches an answer, a log line or SCF's record of a raise.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sms_stats.core import redact

_E = TypeVar("_E", bound=BaseException)

BAD_RESPONSE = "InternalError.BadUpstreamResponse"
"""Ours: the API answered something that is not an answer (retried: the next may be fine)."""


class SmsStatsError(Exception):
    """Base class: a code, a human message and the HTTP status the code maps to."""

    code: str = "InternalError"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        message = redact.scrub(message)
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class InputError(SmsStatsError):
    """The caller sent something we will not send upstream (400 unless a code says otherwise)."""

    code = "InvalidParameter"
    status = 400


class AccessError(SmsStatsError):
    """The HTTP caller is not let in (401) or may not see what it asked for (403)."""

    code = "AuthFailure.InvalidAuthorization"
    status = 401


class NotFoundError(SmsStatsError):
    code = "ResourceNotFound"
    status = 404


class MethodNotAllowedError(SmsStatsError):
    code = "UnsupportedOperation.MethodNotAllowed"
    status = 405

    def __init__(self, message: str, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLargeError(SmsStatsError):
    code = "InvalidParameter.BodyTooLarge"
    status = 413


class ConfigError(SmsStatsError):
    """The function is set up wrong; the message says which setting to fix and how."""

    code = "InternalError.Configuration"
    status = 500

    @classmethod
    def of(cls, problems: list[str], head: str = "") -> ConfigError:
        """One error for several problems: `message` joins them for a log line; `problems`
        keeps them apart for a terminal."""
        error = cls(head + "; ".join(problems))
        error.problems = [redact.scrub(problem) for problem in problems]
        return error

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.problems = [self.message]


class UpstreamError(SmsStatsError):
    """SendStatusStatistics failed after our retries; the upstream code passes through."""

    status = 502

    def __init__(
        self,
        message: str,
        *,
        code: str,
        request_id: str | None = None,
        attempts: int = 1,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, code=code, status=upstream_status(code))
        self.request_id = request_id
        self.attempts = attempts
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.request_id:
            body["upstream_request_id"] = self.request_id
        return body


def detached(exc: _E) -> _E:
    """`exc` without its traceback, nor those of the exceptions it chains. An error kept in a
    result would keep every frame it passed through (the client's holds the answer's body, up to
    a megabyte), tied in a cycle through the Future that re-raised it; the result needs only the
    code and the message."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        link = pending.pop()
        if link is not None and id(link) not in seen:
            seen.add(id(link))
            link.__traceback__ = None
            pending += (link.__cause__, link.__context__)
    return exc


class DeliveryError(SmsStatsError):
    """At least one record did not reach at least one sink, after retries."""

    code = "FailedOperation.DeliveryFailed"
    status = 502


# Upstream codes -> HTTP status of our answer. Exact codes first, then prefixes; 502 otherwise:
# the upstream refused or failed, which is neither the HTTP caller's fault nor ours to hide.
_EXACT_STATUS = {
    "MissingParameter": 400,
    "InvalidParameter": 400,
    "FailedOperation.JsonParseFail": 400,
    "FailedOperation.FailResolvePacket": 400,
    "InvalidParameterValue.SdkAppIdNotExist": 404,
    "InternalError.Timeout": 504,
    "InternalError.SendAndRecvFail": 504,
    "ClientNetworkError": 504,
    "FailedOperation.OutOfTime": 504,
    "UnsupportedOperation.": 400,
    "UnsupportedOperation": 400,
}
_PREFIX_STATUS = (
    ("RequestLimitExceeded", 429),
    ("InvalidParameterValue.", 400),
    ("InvalidParameter.", 400),
    ("MissingParameter.", 400),
    ("UnauthorizedOperation.", 403),
    ("AuthFailure.", 502),
)


def upstream_status(code: str) -> int:
    if code in _EXACT_STATUS:
        return _EXACT_STATUS[code]
    for prefix, status in _PREFIX_STATUS:
        if code.startswith(prefix):
            return status
    return 502
