"""The SCF runtime context, and the invocation facts we draw from it.

SCF passes `context` as a plain dict (`request_id`, `function_name`, `time_limit_in_ms`, ...);
tests and other hosts may pass an object with the same attributes. `time_limit_in_ms` is the
configured timeout, not the time left, so the deadline is the handler's start plus it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

# Stop starting upstream calls this long before SCF would kill the invocation: room to deliver
# what was collected and to answer.
SAFETY_MARGIN_S = 2.0
MAX_LIMIT_MS = 86_400_000


@runtime_checkable
class RuntimeContext(Protocol):
    request_id: str
    function_name: str
    time_limit_in_ms: int


def _get(context: Any, name: str) -> Any:
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None)


class Invocation(NamedTuple):
    """One invocation's identity and time budget, passed down instead of SCF's context, so every
    step reads the same deadline and every log line the same request id. (A NamedTuple rather
    than a frozen dataclass: see `records`.)"""

    request_id: str
    function_name: str | None
    started: float
    deadline: float | None
    # What the job did (apps, windows, records, failures, ...), for the closing log line: each
    # invocation's own dict (a NamedTuple default would be one dict shared by all).
    job: dict[str, int]

    @classmethod
    def begin(cls, context: RuntimeContext | Mapping[str, Any] | None) -> Invocation:
        started = time.monotonic()
        request_id = _get(context, "request_id")
        limit_ms = _get(context, "time_limit_in_ms")
        deadline = None
        if isinstance(limit_ms, (int, float)) and not isinstance(limit_ms, bool) and limit_ms > 0:
            # SCF's longest timeout is 900 s; anything past a day (10**400, inf) is "no limit
            # that matters" and must not overflow the float arithmetic below. (NaN > 0 is
            # False, so NaN never gets here.)
            limit = min(limit_ms, MAX_LIMIT_MS) / 1000
            deadline = started + max(limit - SAFETY_MARGIN_S, limit * 0.8)
        function_name = _get(context, "function_name")
        return cls(
            request_id=str(request_id) if request_id else f"local-{uuid.uuid4()}",
            function_name=str(function_name) if function_name else None,
            started=started,
            deadline=deadline,
            job={},
        )

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()
