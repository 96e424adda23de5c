"""Sinks: parse `SMS_STATS_SINKS` once, then hand every record to every sink that takes records.

A sink kind is a module with `build(url, settings, transport) -> Sink`; the factory picks it by
the URL's scheme, by a `kind+` prefix (`wecom+http://127.0.0.1:8080/...` reaches a bot through a
proxy or a test receiver), or, for plain http(s), by the well-known host of each chat platform.
Modules are imported only when configured: a COS sink's SDK costs nothing to those without one.
What a sink receives is its URL's `?notify=`, taken off the URL first (see `topics`).
A bad URL is a ConfigError at start, before any API call. A failing sink never stops the others;
each (app, window, sink) gets an outcome, so the caller can say exactly what did not arrive.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from sms_stats.core.errors import ConfigError
from sms_stats.core.records import AnyRecord
from sms_stats.core.settings import Settings
from sms_stats.deliver.topics import DEFAULTS, rejoin, split_notify
from sms_stats.store.base import Sink, SinkError, Store

if TYPE_CHECKING:  # loaded only when an HTTP sink is configured: a store-only run never needs it
    from sms_stats.deliver.transport import Transport

__all__ = [
    "Delivery",
    "Sink",
    "SinkError",
    "build_each",
    "build_sinks",
    "deliver_all",
    "sink_kind",
]

KINDS = ("file", "cos", "webhook", "wecom", "dingtalk", "feishu", "slack")
_OWN_HTTP = ("file", "cos")  # no HTTP, or the COS SDK's own: no shared Transport
# Chat platforms by the host their webhook URLs use.
BOT_HOSTS = {
    "qyapi.weixin.qq.com": "wecom",
    "oapi.dingtalk.com": "dingtalk",
    "open.feishu.cn": "feishu",
    "open.larksuite.com": "feishu",
    "hooks.slack.com": "slack",
}
_ALIASES = {"lark": "feishu", "http": "webhook", "https": "webhook"}
# The module that builds each kind, imported only when a sink of that kind is configured: the
# stores live in their own stage, the bots beside the chat code they share.
_MODULES = {
    "file": "sms_stats.store.file",
    "cos": "sms_stats.store.cos",
    "webhook": "sms_stats.deliver.webhook",
    "wecom": "sms_stats.deliver.chat.wecom",
    "dingtalk": "sms_stats.deliver.chat.dingtalk",
    "feishu": "sms_stats.deliver.chat.feishu",
    "slack": "sms_stats.deliver.chat.slack",
}


class Delivery(NamedTuple):
    """The outcome of one record at one sink: answered to the caller, logged, and struck off the
    outbox by `key` when it went through."""

    app_id: str
    window: str
    sink: str
    ok: bool
    error: str | None = None
    duration_ms: float = 0.0  # logged, not answered
    key: str = ""  # the record's store key: what the outbox strikes off

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


def sink_kind(url: str) -> tuple[str, str]:
    """(kind, the URL to use): `wecom+https://...` -> ('wecom', 'https://...')."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        slips = [name for name in ("https", "http", "file", "cos") if url.startswith(f"{name}//")]
        if slips:  # `https//host/...`: the colon is what is missing, not a file: prefix
            fixed = f"{slips[0]}:{url[len(slips[0]) :]}"
            raise ValueError(
                f"{redact(fixed)!r} lacks the ':' after {slips[0]}; write {slips[0]}://..."
            )
        if any(mark in url for mark in "?@#"):  # a bot or webhook URL without https://: a key
            raise ValueError("not a URL (no scheme); webhook and chat-bot URLs start with https://")
        # A path, then (`out`, `/var/sms`), which holds no secret: show it, and the fix.
        raise ValueError(f"{url[:80]!r} is not a URL (no scheme); for a directory write file:{url}")
    scheme = scheme.lower()
    if "+" in scheme:
        kind, _, inner = scheme.partition("+")
        kind = _ALIASES.get(kind, kind)
        if kind not in KINDS or inner not in ("http", "https"):
            raise ValueError(
                f"unknown sink kind {scheme!r}; use one of "
                + ", ".join(f"{k}+https://" for k in KINDS[2:])
            )
        return kind, url.partition("+")[2]
    if scheme in ("file", "cos"):
        return scheme, url
    if scheme in ("http", "https"):
        host = (urlsplit(url).hostname or "").lower()
        return BOT_HOSTS.get(host, "webhook"), url
    raise ValueError(
        f"unknown sink scheme {scheme!r} in {redact(url)!r}; use file:///dir, "
        "cos://bucket-appid/prefix, or an http(s) webhook or chat-bot URL"
    )


def build_sinks(settings: Settings, transport: Transport | None = None) -> list[Sink]:
    """Every sink of the settings, or one ConfigError naming every item that is wrong."""
    sinks, problems = build_each(settings, transport)
    if problems:
        raise ConfigError.of(problems)
    return sinks


def build_each(
    settings: Settings, transport: Transport | None = None
) -> tuple[list[Sink], list[str]]:
    """(the sinks that could be built, a problem per item that could not).

    Each sink's `topics` is set here, from its URL's `?notify=` or its kind's default: the
    sink module gets the URL without the parameter, and names the sink from it as before.
    """
    sinks: list[Sink] = []
    problems: list[str] = []
    for index, item in enumerate(rejoin(settings.sinks)):
        try:
            url, topics = split_notify(item)
            kind, target = sink_kind(url)
            module = importlib.import_module(_MODULES[kind])
            if transport is None and kind not in _OWN_HTTP:
                from sms_stats.deliver.transport import Transport  # noqa: PLC0415

                transport = Transport(timeout=settings.timeout, max_attempts=settings.max_attempts)
            sink: Sink = module.build(target, settings, transport)
            sink.topics = DEFAULTS[kind] if topics is None else topics
            sinks.append(sink)
        except ValueError as exc:
            problems.append(f"SMS_STATS_SINKS item {index + 1}: {exc}")
        except ConfigError as exc:  # a setting the sink needs (credentials): said once
            if exc.message not in problems:
                problems.append(exc.message)
    names = [sink.name for sink in sinks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"SMS_STATS_SINKS: the same sink is listed twice: {duplicates[0]}")
    return sinks, problems


def redact(url: str) -> str:
    """A URL cut after its host: what is safe to put in a message or a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if _port(url) else ""
    return f"{parts.scheme}://{host}{port}/..." if parts.scheme and host else parts.scheme + ":..."


def _port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def attempt(name: str, call: Callable[[], None]) -> tuple[str | None, float]:
    """One delivery to one sink: (the error, or None; milliseconds taken). A sink's bug or a
    library's surprise is an error too: the other sinks go on."""
    error: str | None = None
    started = time.monotonic()
    try:
        call()
    except SinkError as exc:
        error = str(exc)
    except Exception as exc:
        error = f"{name}: unexpected {type(exc).__name__}"
    return error, round((time.monotonic() - started) * 1000, 1)


def deliver_all(
    records: Sequence[AnyRecord], sinks: Sequence[Sink], deadline: float | None = None
) -> list[Delivery]:
    outcomes: list[Delivery] = []
    # Stores first: a webhook that hangs until the deadline must not cost the store its records.
    for sink in sorted(sinks, key=lambda s: not isinstance(s, Store)):
        for batch in sink.batches(records):
            error, took = attempt(sink.name, lambda: sink.deliver(batch, deadline))  # noqa: B023
            outcomes.extend(
                Delivery(
                    r.sms_sdk_app_id, str(r.window), sink.name, error is None, error, took, r.key
                )
                for r in batch
            )
    return outcomes
