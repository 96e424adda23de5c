"""Structured logs: one JSON line per event worth knowing, carrying the invocation's correlation.

SCF ships stdout lines to CLS as they are; one JSON object per line is what CLS indexes and what an
operator greps. The correlation fields (SCF request id, trigger kind, function) are set once per
invocation in a ContextVar, so threads started for that invocation copy them along.

Every value written is scrubbed (`redact.scrub`) first, whatever put it there. The libraries the
function calls through log too: with the root logger at DEBUG, the Tencent SDK logs the request
with its `X-TC-Token`, the COS SDK its signing key, urllib3 each URL with a bot's key; at ERROR
the COS SDK logs raw error bodies, which may echo headers. `hold_third_party_loggers` keeps those
at WARNING, and scrubs each record they still make as it is made, before any handler (the
user's, SCF's, Python's last resort on stderr) sees it, whatever level the root logger is at.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TextIO

from sms_stats.core import redact

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
        # For a person at a terminal (the CLI): one short readable line, and these events not
        # at all (the command says the outcome itself); None: JSON lines for machines.
        self._readable: frozenset[str] | None = None

    def set_readable(self, hidden: frozenset[str] | None) -> None:
        """Readable lines, leaving out the events in `hidden`; None: JSON lines again."""
        self._readable = hidden

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
        # Our own three fields hold no secret (and `ts` is new on every line: no use caching);
        # the rest may quote anything, so it is scrubbed.
        head = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
        }
        readable = self._readable
        if readable is not None:
            if event in readable:
                return
            shown = _scrubbed_fields({k: v for k, v in fields.items() if v is not None})
            parts = ", ".join(f"{k} {_short(v)}" for k, v in shown.items())
            text = f"{level.lower()}: {event}" + (f": {parts}" if parts else "")
        else:
            body = {
                **(_correlation.get() or _NONE),
                **{k: v for k, v in fields.items() if v is not None},
            }
            text = _encode({**head, **_scrubbed_fields(body)})
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(text + "\n")
            stream.flush()


_NONE: dict[str, Any] = {}
logger = Logger()


def _short(value: Any, most: int = 160) -> str:
    text = value if isinstance(value, str) else _encode(value)
    return text if len(text) <= most else text[: most - 3] + "..."


@contextmanager
def correlation(**fields: Any) -> Iterator[None]:
    """Fields added to every line logged inside the block (this thread and threads it copies to)."""
    merged = {**(_correlation.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _correlation.set(merged)
    try:
        yield
    finally:
        _correlation.reset(token)


_PLAIN = (int, float, bool, type(None))


def _scrubbed_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A line's fields scrubbed: the flat case (text and numbers, every line of a warm call)
    without the general walk."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        kind = type(value)
        if kind is str:
            short = len(value) < redact.MIN_LENGTH
            out[name] = value if short else redact.scrub_repeated(value)
        elif kind in _PLAIN:
            out[name] = value
        else:
            out[name] = _scrubbed(value)
    return out


def _scrubbed(value: Any) -> Any:
    """Strings scrubbed, containers walked; values are scrubbed before JSON escapes them, so
    the line stays valid JSON whatever was masked."""
    if isinstance(value, str):
        # Shorter than any registered secret and any credential shape: nothing to find.
        return value if len(value) < redact.MIN_LENGTH else redact.scrub_repeated(value)
    if isinstance(value, dict):
        return {str(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrubbed(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact.scrub(str(value))


# The loggers of the libraries the function calls through, and so their children.
THIRD_PARTY_LOGGERS = (
    "tencentcloud_sdk_common",
    "tencentcloud",
    "qcloud_cos",
    "urllib3",
    "requests",
    "charset_normalizer",  # requests' decoder
)
_CHILDREN = tuple(f"{name}." for name in THIRD_PARTY_LOGGERS)


def _third_party(name: str) -> bool:
    return name in THIRD_PARTY_LOGGERS or name.startswith(_CHILDREN)


def scrub_record(record: logging.LogRecord) -> None:
    """Message, arguments, traceback and stack of a record, scrubbed in place; the arguments
    are merged into the message (a handler formatting them again would undo the scrub)."""
    try:
        message = record.getMessage()
    except Exception:  # a library's broken format string: logging would print the arguments
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = redact.scrub(message), None
    if record.exc_info:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
    if record.exc_text:
        record.exc_text = redact.scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = redact.scrub(record.stack_info)


class ScrubbingRecordFactory:
    """Wraps the log record factory: a library's record is scrubbed as it is made, before any
    filter or handler sees it, wherever that handler is attached (the library's own logger,
    one of its children, the root). The wrapped factory still makes every record."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if _third_party(record.name):
            scrub_record(record)
        return record


@functools.cache
def _held() -> tuple[logging.Logger, ...]:
    return tuple(logging.getLogger(name) for name in THIRD_PARTY_LOGGERS)


def hold_third_party_loggers() -> None:
    """Hold each library's logger at WARNING (children that were set lower fall back to it)
    and scrub every record they make. Called at import, at every invocation (the user's code,
    or a `logging.basicConfig(level=DEBUG)`, may have changed them since) and when the COS SDK
    is loaded. Idempotent."""
    if not isinstance(logging.getLogRecordFactory(), ScrubbingRecordFactory):
        logging.setLogRecordFactory(ScrubbingRecordFactory(logging.getLogRecordFactory()))
    for held in _held():
        if held.level != logging.WARNING:  # setLevel clears every logger's cache: only if needed
            held.setLevel(logging.WARNING)
    for name, child in list(logging.root.manager.loggerDict.items()):
        if (
            isinstance(child, logging.Logger)
            and name.startswith(_CHILDREN)
            and logging.NOTSET < child.level < logging.WARNING
        ):
            child.setLevel(logging.NOTSET)


hold_third_party_loggers()
