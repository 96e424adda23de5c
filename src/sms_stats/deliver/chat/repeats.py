"""The memory of chat messages this process has already posted, so a retried run repeats none.

Chat platforms keep no message ids, and SCF retries a failed run whole: this memory is what
stands in for an id. It is one per process (`posted`), not one per sink object, so a sink built
again for the same robot still remembers what the warm container already posted.
"""

from __future__ import annotations

import hashlib
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from sms_stats.deliver.chat.packing import encode


class Posted:
    """The chat messages this process has posted lately, by robot and exact content.

    Chat platforms keep no message ids, and SCF retries a failed run whole (say the webhook was
    down): without this, every retry would post the same summary to the group again. A retry
    usually lands on the same warm container, whose memory this is; one that lands elsewhere
    can still repeat a message. A message whose figures changed is a new message and is posted.
    """

    def __init__(
        self,
        ttl_s: float = 86_400.0,
        size: int = 4096,
        clock: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._clock = clock
        self._sent: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(robot: str, payload: Mapping[str, Any]) -> str:
        return hashlib.sha256(robot.encode() + b"\0" + encode(payload)).hexdigest()

    def seen(self, key: str) -> bool:
        with self._lock:
            when = self._sent.get(key)
            if when is None:
                return False
            if self._clock() - when > self.ttl_s:
                del self._sent[key]
                return False
            return True

    def add(self, key: str) -> None:
        with self._lock:
            self._sent[key] = self._clock()
            self._sent.move_to_end(key)
            while len(self._sent) > self.size:
                self._sent.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()


posted = Posted()
