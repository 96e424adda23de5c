"""Structured logs: one JSON line per event worth knowing, carrying the invocation's correlation.

SCF ships stdout lines to CLS as they are; one JSON object per line is what CLS indexes and what an
operator greps. The correlation fields (SCF request id, trigger kind, function) are set once per
invocation in a ContextVar, so threads started for that invocation copy them along.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TextIO

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
# One encoder for every line: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode
_correlation: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "sms_stats_correlation", default=None
)


class Logger:
    def __init__(self, stream: TextIO | None = None, level: str = "INFO") -> None:
        self._stream = stream
        self.level = LEVELS.get(level.upper(), 20)
        self._lock = threading.Lock()

    def set_stream(self, stream: TextIO | None) -> None:
        """None = stdout at the time of writing (what SCF collects)."""
        self._stream = stream

    def set_level(self, level: str) -> None:
        self.level = LEVELS.get(level.upper(), 20)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("DEBUG", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("INFO", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("WARNING", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("ERROR", event, fields)

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if LEVELS[level] < self.level:
            return
        line: dict[str, Any] = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
        }
        correlated = _correlation.get()
        if correlated:
            line.update(correlated)
        for name, value in fields.items():
            if value is not None:
                line[name] = value
        text = _encode(line)
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(text + "\n")
            stream.flush()


logger = Logger()


@contextmanager
def correlation(**fields: Any) -> Iterator[None]:
    """Fields added to every line logged inside the block (this thread and threads it copies to)."""
    merged = {**(_correlation.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _correlation.set(merged)
    try:
        yield
    finally:
        _correlation.reset(token)
