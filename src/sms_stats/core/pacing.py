"""Client-side pacing: never start more calls than a remote end accepts, across all threads.

Two remote ends count what we send. The SMS API allows 10 requests a second per API, region and
sub-account; chat robots allow a few messages a minute each (WeCom and DingTalk 20, DingTalk then
blocks the robot for ten minutes). Going over is not free: the call is refused, and a retry spends
the invocation's time. So each is paced here before it is sent, and the remote's own rate-limit
answer stays a retried fallback, for the calls other containers make at the same time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence


class RateLimiter:
    """At most `rate` call starts in any sliding `period` (1 s by default), shared by threads.

    A sliding log rather than a token bucket: a bucket lets a full burst plus the refill through
    in one period, which is exactly what a "10 per second" or "20 per minute" limit refuses.
    """

    def __init__(
        self,
        rate: float,
        period: float = 1.0,
        margin: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = max(1, int(rate * period + 1e-9))
        # Never shorter than the span asked for: 2.5/s is 2 per second, not 2 per 0.8 s.
        self.period = max(period, self.capacity / rate) + margin
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        # Told each start's time, under the lock, in order: what "at most `rate` starts in any
        # period" is judged by (a test; a stand-in's arrival times add the network's jitter).
        self.on_start: Callable[[float], None] | None = None

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for a slot; False (and no slot taken) if it would come after `deadline`."""
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.period - 1e-9:
                    self._starts.popleft()
                if len(self._starts) < self.capacity:
                    self._starts.append(now)
                    if self.on_start is not None:
                        self.on_start(now)
                    return True
                wait = max(self.period - (now - self._starts[0]), 1e-3)
            if deadline is not None and now + wait > deadline:
                return False
            self._sleep(wait)


Limit = tuple[int, float]  # (messages, seconds): at most so many in any such sliding span


MARGIN = 1.1


class Pace:
    """Several limits at once (Feishu: 5 a second and 100 a minute); a slot must fit them all.

    A slot taken from an earlier limit is not given back when a later one refuses for the
    deadline: pacing errs on the side of sending less.
    """

    def __init__(
        self,
        limits: Sequence[Limit],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not limits:
            raise ValueError("a pace needs at least one limit")
        self.limits = tuple(limits)
        # The longest span first: its wait is the one worth knowing before taking short slots.
        ordered = sorted(self.limits, key=lambda limit: -limit[1])
        # Each window a tenth longer than the platform's: a message that left first may arrive
        # after the ones behind it, and the platform counts arrivals.
        self._limiters = [
            RateLimiter(count / (span * MARGIN), span * MARGIN, clock=clock, sleep=sleep)
            for count, span in ordered
        ]

    def acquire(self, deadline: float | None = None) -> bool:
        return all(limiter.acquire(deadline) for limiter in self._limiters)

    def describe(self) -> str:
        """`at most 20 messages a minute`: for an error that says why a message was not sent."""
        return "at most " + " and ".join(_per(count, span) for count, span in self.limits)


def _per(count: int, span: float) -> str:
    unit = {1.0: "a second", 60.0: "a minute"}.get(float(span), f"in {span:g} s")
    return f"{count} message{'s' * (count != 1)} {unit}"


_lock = threading.Lock()
_paces: dict[tuple[str, tuple[Limit, ...]], Pace] = {}


def pace_for(key: str, limits: Sequence[Limit]) -> Pace:
    """One pace per remote end and process: every sink object for the same robot shares it."""
    ident = (key, tuple(limits))
    with _lock:
        pace = _paces.get(ident)
        if pace is None:
            pace = _paces[ident] = Pace(limits)
        return pace
