"""Sinks: parse `SMS_STATS_SINKS` once, then hand every record to every sink.

A bad URL is a ConfigError at start, before any API call. A failing sink never stops the others;
each (app, window, sink) gets an outcome, so the caller can say exactly what did not arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..records import Record
from ..settings import Settings
from .base import Sink, SinkError

__all__ = ["Delivery", "Sink", "SinkError", "build_sinks", "deliver_all"]


@dataclass(frozen=True)
class Delivery:
    app_id: str
    window: str
    sink: str
    ok: bool
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sms_sdk_app_id": self.app_id,
            "window": self.window,
            "sink": self.sink,
            "ok": self.ok,
        }
        if self.error:
            out["error"] = self.error
        return out


def build_sinks(settings: Settings) -> list[Sink]:
    sinks = []
    for index, url in enumerate(settings.sinks):
        try:
            sinks.append(_build(url, settings))
        except ValueError as exc:
            raise ConfigError(f"SMS_STATS_SINKS item {index + 1}: {exc}") from None
    return sinks


def _build(url: str, settings: Settings) -> Sink:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        from .file import FileSink  # noqa: PLC0415

        raw = parts.path if not parts.netloc else None
        if raw is None:
            raise ValueError(
                f"file URL {url!r} has a host; use file:///absolute/dir or file:relative/dir"
            )
        if not raw:
            raise ValueError(f"file URL {url!r} names no directory")
        path = Path(unquote(raw))
        return FileSink(path, name=f"file:{path}")
    raise ValueError(
        f"unknown sink scheme in {_redact(url)!r}; use file:///dir, cos://bucket-appid/prefix, "
        "or an http(s) webhook or chat-bot URL"
    )


def _redact(url: str) -> str:
    """A URL with nothing after the host: what is safe to put in a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}/..." if parts.scheme else "<unparseable>"


def deliver_all(records: Sequence[Record], sinks: Sequence[Sink]) -> list[Delivery]:
    outcomes: list[Delivery] = []
    for sink in sinks:
        for batch in sink.batches(records):
            error: str | None = None
            try:
                sink.deliver(batch)
            except SinkError as exc:
                error = str(exc)
            outcomes.extend(
                Delivery(r.sms_sdk_app_id, str(r.window), sink.name, error is None, error)
                for r in batch
            )
    return outcomes
