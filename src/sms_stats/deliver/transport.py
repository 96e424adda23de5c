"""POST JSON to an HTTP receiver, with the retry rules every HTTP sink shares.

Retried: network errors, timeouts, 429 and 5xx, and answers a sink's `check` calls transient
(a chat bot's "too many messages" code in a 200). `Retry-After` is honoured (seconds or an HTTP
date), capped, and never past the deadline. Other 4xx are final: the receiver said the request
itself is wrong, and sending it again cannot help. A `pace` (a chat robot's messages a minute)
is waited for before every attempt, retries included, since the platform counts each one.
Error texts never include the URL's query or path, where bot keys and tokens live: a quoted
answer is scrubbed of the URL's pieces and every registered secret before it is cut.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sms_stats.core import redact
from sms_stats.core.pacing import Pace
from sms_stats.store.base import SinkError

MAX_RETRY_AFTER_S = 30.0
_MAX_BODY_SHOWN = 200


@dataclass(frozen=True)
class Verdict:
    """What a sink makes of a 2xx answer: fine, or an error that may be worth another try."""

    error: str | None = None
    retryable: bool = False


OK = Verdict()
Check = Callable[[int, bytes], Verdict]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up per call, so a test can patch this module's time.sleep


def accept_2xx(status: int, body: bytes) -> Verdict:
    return OK


@dataclass
class Transport:
    """The HTTP posting shared by webhooks and chat bots: one timeout and retry policy, with the
    clock, sleep and randomness as seams for tests."""

    timeout: float = 5.0
    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = _sleep
    rng: Callable[[], float] = random.random
    session: Any = None  # one for every thread when given; else one per thread, kept alive
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def _session(self) -> Any:
        """requests.Session is not documented as thread-safe, and deliveries run in threads:
        each thread keeps its own (and its own keep-alive connections)."""
        if self.session is not None:
            return self.session
        session = getattr(self._local, "session", None)
        if session is None:
            from sms_stats.core import net  # noqa: PLC0415 - requests is loaded by the SDK already

            session = self._local.session = net.session(net.RECEIVER_MAX_BODY)
        return session

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        name: str,
        check: Check = accept_2xx,
        deadline: float | None = None,
        prepare: Callable[[], tuple[str, bytes, Mapping[str, str]]] | None = None,
        pace: Pace | None = None,
    ) -> int:
        """POST until accepted; returns the attempts used, or raises SinkError saying why.

        `prepare`, when given, rebuilds url, body and headers for each attempt (signatures that
        embed a timestamp must be fresh on a retry).
        """
        import requests  # noqa: PLC0415

        attempt = 0
        while True:
            attempt += 1
            if deadline is not None and self.clock() + self.timeout > deadline:
                raise SinkError(f"{name}: no time left in this invocation to deliver")
            if pace is not None and not pace.acquire(
                None if deadline is None else deadline - self.timeout
            ):
                raise SinkError(
                    f"{name}: the platform takes {pace.describe()}; no slot is free before this "
                    "invocation's time runs out"
                )
            if prepare is not None:
                url, body, headers = prepare()
            private = redact.url_secrets(url)  # a receiver may echo the URL
            retry_after: float | None = None
            try:
                response = self._session().post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json; charset=utf-8", **headers},
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.Timeout:
                problem, retryable = f"no answer within {self.timeout:g} s", True
            except requests.RequestException as exc:
                problem, retryable = f"could not connect ({type(exc).__name__})", True
            else:
                status, content = response.status_code, response.content
                if 200 <= status < 300:
                    verdict = check(status, content)
                    if verdict.error is None:
                        return attempt
                    problem, retryable = verdict.error, verdict.retryable
                else:
                    shown = redact.quote(content, _MAX_BODY_SHOWN, private)
                    problem = f"HTTP {status}: {shown or '(empty body)'}"
                    retryable = status == 429 or status >= 500
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            problem = redact.scrub(problem, private)
            if not retryable or attempt >= self.max_attempts:
                raise SinkError(f"{name}: {problem} (after {attempt} attempt{'s' * (attempt > 1)})")
            delay = self._delay(attempt, retry_after)
            if deadline is not None and self.clock() + delay + self.timeout > deadline:
                raise SinkError(f"{name}: {problem} (no time left to retry)")
            self.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        return self.rng() * min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After: 3` or `Retry-After: <HTTP date>` -> seconds to wait (>= 0), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone takes '¹' and friends
        return float(value)
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare; kept off cold start

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
