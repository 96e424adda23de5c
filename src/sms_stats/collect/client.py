"""SendStatusStatistics through the official SDK, with our own retry and a shared rate limit.

The SDK client is built once per container (lazily, keyed by what it is built from, so rotated
role credentials get a new one) and the SDK is imported only when a call is about to be made. We
do not use the SDK's StandardRetryer: it re-raises an old error after a successful retry and
sleeps after the last try. Ours is bounded by attempts and by the invocation's deadline, jittered,
and retries only what can succeed on a second try.

The SDK signs and sends (its `CommonClient`, TC3-HMAC-SHA256, transport errors as
`ClientNetworkError`, a non-200 as `ServerNetworkError`), but never reads the answer: its
`call`/`call_json` and the generated models `json.loads` the body and convert fields unchecked
(`int(Infinity)` raised OverflowError out of a run; invalid UTF-8 came back as the "code"
`UnicodeDecodeError`), and its error check only knows two exact Content-Types. So the raw body
goes to `answers.read`, which validates it, and a bad answer fails that (app, window) only.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from sms_stats.collect import answers
from sms_stats.core import redact
from sms_stats.core.errors import BAD_RESPONSE, UpstreamError
from sms_stats.core.log import logger
from sms_stats.core.pacing import RateLimiter
from sms_stats.core.records import Counts
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window

# Codes worth another try: the request may well succeed a moment later.
TRANSIENT_CODES = frozenset(
    {
        "ClientNetworkError",
        "ServerNetworkError",
        "InternalError",
        "InternalError.Timeout",
        "InternalError.SendAndRecvFail",
        "InternalError.BadUpstreamResponse",
    }
)
CLOCK_CODES = frozenset({"AuthFailure.SignatureExpire", "InternalError.RequestTimeException"})
OUT_OF_TIME = "FailedOperation.OutOfTime"  # ours: the invocation's time ran out before the call
_MAX_UPSTREAM_TEXT = 300
SERVICE, VERSION = "sms", "2021-01-11"
ACTION: Final = "SendStatusStatistics"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up per call, so a test can patch this module's time.sleep


def is_transient(code: str) -> bool:
    return code in TRANSIENT_CODES or code.startswith("RequestLimitExceeded")


class RetryPolicy(NamedTuple):
    """How often and how far apart a retryable API error is tried again; a value, so tests and
    settings pass their own without touching the client."""

    max_attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full jitter (AWS architecture blog): spreads retries of many apps apart."""
        return rng() * min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))


_cache_lock = threading.Lock()
_sdk_clients: dict[tuple[Any, ...], Any] = {}
_limiters: dict[tuple[str, str, float, str], RateLimiter] = {}


def limiter_for(settings: Settings, secret_id: str, action: str = ACTION) -> RateLimiter:
    """One limiter per (region, sub-account, rate, action): Tencent counts 10 requests a
    second per API, region and sub-account, so three APIs may each use their own 10."""
    key = (settings.region, secret_id, settings.rate_limit, action)
    with _cache_lock:
        if key not in _limiters:
            _limiters[key] = RateLimiter(settings.rate_limit)
        return _limiters[key]


def sdk_client(settings: Settings) -> Any:
    """The SDK's CommonClient for these settings, built once per container."""
    secret_id, secret_key, token = settings.credentials()
    key = (secret_id, secret_key, token, settings.region, settings.endpoint, settings.timeout)
    with _cache_lock:
        client = _sdk_clients.get(key)
        if client is None:
            client = _build_sdk_client(settings, secret_id, secret_key, token)
            _sdk_clients.clear()  # old credentials are of no more use
            _sdk_clients[key] = client
        return client


def _build_sdk_client(
    settings: Settings, secret_id: str, secret_key: str, token: str | None
) -> Any:
    # Imported here: a refused HTTP request or a bad event never pays for the SDK import.
    from tencentcloud.common.common_client import CommonClient  # noqa: PLC0415
    from tencentcloud.common.credential import Credential  # noqa: PLC0415
    from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: PLC0415
    from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: PLC0415

    if settings.endpoint:
        scheme, _, host = settings.endpoint.partition("://")
        http = HttpProfile(protocol=scheme, endpoint=host, reqTimeout=settings.timeout)
    else:
        http = HttpProfile(reqTimeout=settings.timeout)
    http.keepAlive = True
    profile = ClientProfile(httpProfile=http, language="en-US", disable_region_breaker=True)
    credential = Credential(secret_id, secret_key, token)
    client = CommonClient(SERVICE, VERSION, credential, settings.region, profile)
    client.request.set_keep_alive()
    from sms_stats.core import net  # noqa: PLC0415 - imports requests' adapters, as the SDK just did

    conn = client.request.conn
    # The SDK's private session, replaced (pinned by tests/test_library_pins.py): every call's
    # whole-call deadline and capped body are ours, and it skips requests' per-call merging
    # (~0.2 ms of a 2.5 ms warm call).
    conn._session = net.api_session(net.API_MAX_BODY)
    net.settle_environment(conn, client.request._handle_host(client.request.host))
    return client


class StatsClient:
    """One app and window -> Counts, or an UpstreamError after the retries it deserves."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = _sleep,
        rng: Callable[[], float] = random.random,
        on_attempt: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy(max_attempts=settings.max_attempts)
        self._client = sdk_client(settings)
        self._secret_id = settings.credentials()[0]
        self._limiters: dict[str, RateLimiter] = {}
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._on_attempt = on_attempt

    def fetch(self, app_id: str, window: Window, deadline: float | None = None) -> Counts:
        """SendStatusStatistics of one app and window, retried as it deserves."""
        answer = self.call(ACTION, window_params(app_id, window), app_id, str(window), deadline)
        assert isinstance(answer, answers.SendStatusStatisticsAnswer)
        stats = answer.SendStatusStatistics
        return Counts(
            request_count=stats.RequestCount,
            request_success_count=stats.RequestSuccessCount,
            fee_count=stats.FeeCount,
            request_id=answer.RequestId,
        )

    def call(
        self,
        action: str,
        params: dict[str, Any],
        app_id: str,
        window: str,
        deadline: float | None = None,
    ) -> answers.Answer:
        """One action's validated answer, after the retries it deserves, under that action's
        rate limit. `deadline` is a `clock()` time: no attempt starts that its timeout could
        overrun. `app_id` and `window` name the call in logs and errors."""
        limiter = self._limiters.get(action)
        if limiter is None:
            limiter = self._limiters[action] = limiter_for(self.settings, self._secret_id, action)
        attempt = 0
        while True:
            attempt += 1
            if deadline is not None and self._clock() + self.settings.timeout > deadline:
                raise _out_of_time(app_id, window, attempt - 1)
            latest = None if deadline is None else deadline - self.settings.timeout
            if not limiter.acquire(latest):
                raise _out_of_time(app_id, window, attempt - 1)
            started = self._clock()
            try:
                answer = self._call(action, params, app_id, window)
            except UpstreamError as exc:
                exc.attempts = attempt
                self._report(action, app_id, window, attempt, started, exc.code, exc.request_id)
                if not exc.retryable or attempt >= self.policy.max_attempts:
                    raise
                delay = self.policy.delay(attempt, self._rng)
                if (
                    deadline is not None
                    and self._clock() + delay + self.settings.timeout > deadline
                ):
                    raise
                self._sleep(delay)
                continue
            self._report(action, app_id, window, attempt, started, "OK", answer.RequestId)
            return answer

    def _report(
        self,
        action: str,
        app_id: str,
        window: str,
        attempt: int,
        started: float,
        code: str,
        rid: str | None,
    ) -> None:
        if self._on_attempt is not None:
            self._on_attempt(
                {
                    "action": action,
                    "app_id": app_id,
                    "window": window,
                    "attempt": attempt,
                    "code": code,
                    "upstream_request_id": rid,
                    "duration_ms": round((self._clock() - started) * 1000, 1),
                }
            )

    def _call(
        self, action: str, params: dict[str, Any], app_id: str, window: str
    ) -> answers.Answer:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: PLC0415
            TencentCloudSDKException,
        )

        from sms_stats.core import net  # noqa: PLC0415

        try:
            # `_call` signs and sends, and is all of `call` but the parsing (see the module
            # docstring); `_check_status` turns a non-200 into ServerNetworkError. Both are
            # the SDK's private names, pinned by tests/test_library_pins.py.
            response = self._client._call(action, params)
            self._client._check_status(response)
        except TencentCloudSDKException as exc:
            raise map_sdk_error(exc) from None
        body: bytes = response.content
        try:
            if len(body) >= net.API_MAX_BODY:  # the adapter cut it there: never half an answer
                raise answers.BadAnswer(
                    action, "", "the body must be under 1 MiB", f"{len(body)} bytes or more"
                )
            return answers.read(action, body)
        except answers.ErrorAnswer as exc:
            raise map_error(exc.code, exc.message, exc.request_id) from None
        except answers.BadAnswer as exc:
            logger.warning(
                "upstream.bad_answer",
                action=action,
                app_id=app_id,
                window=window,
                field=exc.field or "(body)",
                rule=exc.rule,
                value=exc.value,
                upstream_request_id=exc.request_id,
            )
            raise


def window_params(app_id: str, window: Window) -> dict[str, Any]:
    """The request of the windowed statistics APIs: both hours included, Limit/Offset fixed 0."""
    return {
        "SmsSdkAppId": app_id,
        "BeginTime": window.begin_time,
        "EndTime": window.end_time,
        "Limit": 0,
        "Offset": 0,
    }


def map_sdk_error(exc: Any) -> UpstreamError:
    """A TencentCloudSDKException as an UpstreamError with a message a user can act on."""
    return map_error(exc.code, exc.message, exc.requestId)


def map_error(code: Any, raw: Any, request_id: Any) -> UpstreamError:
    """An upstream code, message and RequestId (the SDK's exception or the API's own error
    envelope) as an UpstreamError with a message a user can act on.

    The message quotes what the endpoint said, and an endpoint (or a proxy before it) may echo
    the request's headers: the quote is scrubbed of every credential before it is cut.
    """
    code = str(code or "InternalError")
    message = redact.quote(raw, _MAX_UPSTREAM_TEXT)
    request_id = request_id or None
    if code == "ServerNetworkError":
        message = f"the API answered a non-200 HTTP status: {message or '(empty body)'}"
    elif code == "ClientNetworkError":
        message = f"could not reach the API: {message}"
    elif code in CLOCK_CODES:
        message += (
            " (the request's timestamp was too far from Tencent Cloud's time: check the clock"
            " of the machine running the function)"
        )
    elif ("." not in code and not code[:1].isupper()) or code in _PYTHON_ERRORS:
        message = f"the API answered with a body that is not a valid response ({code}: {message})"
        code = BAD_RESPONSE
    return UpstreamError(
        message or code, code=code, request_id=request_id, retryable=is_transient(code)
    )


# The SDK's product clients wrap a failure to read the answer in the exception's class name as
# the "code". We read answers ourselves now (answers.py); kept for any SDK path that still parses.
_PYTHON_ERRORS = frozenset(
    {"JSONDecodeError", "KeyError", "TypeError", "ValueError", "AttributeError", "IndexError"}
)


def _out_of_time(app_id: str, window: str, attempts: int) -> UpstreamError:
    return UpstreamError(
        f"no time left in this invocation to fetch app {app_id} window {window} "
        f"(after {attempts} attempt{'s' if attempts != 1 else ''}); it is left for the next run",
        code=OUT_OF_TIME,
        attempts=attempts,
        retryable=False,
    )
