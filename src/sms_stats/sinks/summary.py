"""The readable summary the chat-bot sinks post, and the little else the four bots share.

A chat message is read by people, so it carries one window's figures for every app at once
(one message per window, not per record), in local time, with a rate instead of raw ratios.
Each platform has its own markup and its own size limit; the layout (title, window, total,
one line per app) is decided here once, and each bot only says how a part is rendered and
whether a rendered part fits. When the apps of one window do not fit in one message, the rows
are split over several numbered parts; nothing is ever cut off.

Secrets: a bot's key, token or secret lives only in its URL; each sink registers them with
`redact`. Platform answers are quoted in errors, scrubbed of every registered secret before they
are cut to one line (a cut first could leave most of a key that no scrub then recognises).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Protocol
from urllib.parse import SplitResult, unquote, urlsplit

from .. import redact
from ..log import logger
from ..pacing import Limit, pace_for
from ..records import AnyRecord, BalanceRecord, CallbackRecord, Record
from ..windows import Window
from .base import SinkError
from .transport import OK, Transport, Verdict

TITLE = "SMS delivery stats"
RECEIPTS_TITLE = "SMS delivery receipts"
BALANCE_TITLE = "SMS balance"
NO_RATE = "\u2013"  # en dash: "no traffic, no rate", distinct from a 0 % rate
DASH = "\u2013"
SEP = " \u00b7 "  # middle dot between the figures of one line
ELLIPSIS = "\u2026"
MAX_VALUE_CHARS = 64  # an app id or zone name longer than this is shown clipped, with an ellipsis
_MAX_ERROR_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


# -- the figures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One app's figures for the window (or the window's total, with `app_id` empty), each
    already worded (`requests 1,880`), so every platform lays out every kind the same way."""

    app_id: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    title: str
    window: str
    rows: tuple[Row, ...]
    total: Row


@dataclass(frozen=True)
class Part:
    """Which message of a window this is; `count` 1 means the window fits in one message."""

    index: int
    count: int

    @property
    def suffix(self) -> str:
        return "" if self.count == 1 else f" ({self.index}/{self.count})"


def by_window(records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
    """One batch per kind and window (and zone), in the order they first appear, apps as
    given: one message says one thing."""
    groups: dict[tuple[str, Window, str], list[AnyRecord]] = {}
    for record in records:
        groups.setdefault((record.kind, record.window, record.timezone), []).append(record)
    return list(groups.values())


def summarize(batch: Sequence[AnyRecord]) -> Summary:
    if not batch:
        raise ValueError("a summary needs at least one record")
    first = batch[0]
    if isinstance(first, CallbackRecord):
        return _receipts([r for r in batch if isinstance(r, CallbackRecord)])
    if isinstance(first, BalanceRecord):
        return _balance([r for r in batch if isinstance(r, BalanceRecord)])
    return _sends([r for r in batch if isinstance(r, Record)])


def _sends(batch: Sequence[Record]) -> Summary:
    def cells(requests: int, successes: int, billed: int) -> tuple[str, ...]:
        rate = None if requests == 0 else successes / requests
        return (
            f"requests {number(requests)}",
            f"successes {number(successes)}",
            f"rate {percent(rate)}",
            f"billed parts {number(billed)}",
        )

    rows = tuple(Row(r.sms_sdk_app_id, cells(*_send_counts(r))) for r in batch)
    sums = [sum(column) for column in zip(*(_send_counts(r) for r in batch), strict=True)]
    first = batch[0]
    return Summary(TITLE, window_text(first.window, first.timezone), rows, Row("", cells(*sums)))


def _send_counts(record: Record) -> tuple[int, int, int]:
    c = record.counts
    return c.request_count, c.request_success_count, c.fee_count


# Why receipts failed, as an operator reads them (the API's names in brackets in the docs).
_REASONS = (
    ("black_list_count", "blocklisted"),
    ("frequency_limit_count", "frequency limit"),
    ("invalid_number_count", "invalid number"),
    ("shutdown_error_count", "phone off"),
    ("internal_error_count", "carrier error"),
)


def _receipts(batch: Sequence[CallbackRecord]) -> Summary:
    def cells(counts: dict[str, int]) -> tuple[str, ...]:
        total, ok = counts["callback_count"], counts["callback_success_count"]
        failed = counts["callback_fail_count"]
        reasons = ", ".join(
            f"{label} {number(counts[name])}" for name, label in _REASONS if counts[name]
        )
        return (
            f"receipts {number(total)}",
            f"delivered {number(ok)}",
            f"rate {percent(None if total == 0 else ok / total)}",
            f"failed {number(failed)}" + (f" ({reasons})" if reasons else ""),
            f"pending {number(counts['pending_count'])}",
        )

    def counts_of(record: CallbackRecord) -> dict[str, int]:
        data = record.to_dict()
        return {name: int(data[name]) for name in _RECEIPT_NAMES}

    rows = tuple(Row(r.sms_sdk_app_id, cells(counts_of(r))) for r in batch)
    totals = {name: sum(counts_of(r)[name] for r in batch) for name in _RECEIPT_NAMES}
    first = batch[0]
    return Summary(
        RECEIPTS_TITLE, window_text(first.window, first.timezone), rows, Row("", cells(totals))
    )


_RECEIPT_NAMES = (
    "callback_count",
    "callback_success_count",
    "callback_fail_count",
    "pending_count",
    *(name for name, _ in _REASONS),
)


def _balance(batch: Sequence[BalanceRecord]) -> Summary:
    def cells(record: BalanceRecord | None, remaining: int) -> tuple[str, ...]:
        out = [f"left {number(remaining)}"]
        expiry = None if record is None else record.next_expiry
        if expiry is not None:
            when = expiry[0].astimezone(record.as_of.tzinfo) if record else expiry[0]
            out.append(f"next expiry {when:%Y-%m-%d} ({number(expiry[1])} messages)")
        if record is not None:
            out.append(f"packages in effect {number(len(record.live))}")
        return tuple(out)

    rows = tuple(Row(r.sms_sdk_app_id, cells(r, r.remaining)) for r in batch)
    first = batch[0]
    as_of = f"as of {first.as_of:%Y-%m-%d %H:%M} {first.timezone} ({_offset(first.as_of)})"
    total = Row("", cells(None, sum(r.remaining for r in batch)))
    return Summary(BALANCE_TITLE, as_of, rows, total)


def window_text(window: Window, zone_name: str) -> str:
    """`2021-05-01 12:00\u201313:00 Asia/Shanghai (+08:00)`; whole local days read as days.

    The zone's name and offset are both shown: the hours are Beijing time by default, while
    readers of the chat may sit anywhere, and a name alone does not say the offset in effect.
    """
    start, end = window.start, window.end
    midnight = time(0, 0)
    if start.time() == midnight and end.time() == midnight:
        days = (end.date() - start.date()).days
        last = end.date() - timedelta(days=1)
        span = (
            f"{start:%Y-%m-%d}, whole day"
            if days == 1
            else f"{start:%Y-%m-%d} {DASH} {last:%Y-%m-%d}, {days} days"
        )
    elif start.date() == end.date():
        span = f"{start:%Y-%m-%d %H:%M}{DASH}{end:%H:%M}"
    elif end.time() == midnight and end.date() == start.date() + timedelta(days=1):
        span = f"{start:%Y-%m-%d %H:%M}{DASH}24:00"
    else:
        span = f"{start:%Y-%m-%d %H:%M} {DASH} {end:%Y-%m-%d %H:%M}"
    offsets = _offset(start)
    if _offset(end) != offsets:  # a daylight-saving change inside the window
        offsets += f"/{_offset(end)}"
    return f"{span} {zone_name} ({offsets})"


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def percent(rate: float | None) -> str:
    """Two decimals, but never "100.00%" unless every request succeeded (nor "0.00%" the
    other way): a rounded-up 100 % would hide exactly the failures someone is looking for."""
    if rate is None:
        return NO_RATE
    text = f"{rate * 100:.2f}%"
    if text == "100.00%" and rate < 1:
        return "99.99%"
    if text == "0.00%" and rate > 0:
        return "0.01%"
    return text


def number(value: int) -> str:
    return f"{value:,}"


# -- markup --------------------------------------------------------------------------------


def clean(text: str, limit: int | None = MAX_VALUE_CHARS) -> str:
    """One line, bounded: a stray newline or a huge value must not break a message's layout."""
    text = _CONTROL.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return text


_MD_SPECIAL = re.compile(r"[\\`*_\[\]<>#|~]")


def escape_markdown(text: str, limit: int | None = MAX_VALUE_CHARS) -> str:
    """Backslash-escape what common Markdown (WeCom, DingTalk) would read as markup.

    An underscore between two letters or digits is left alone (`Los_Angeles`): CommonMark does
    not emphasise inside words, and an escape there would show up if a renderer ignored it.
    """
    text = clean(text, limit)

    def escape(match: re.Match[str]) -> str:
        char, at = match.group(), match.start()
        if (
            char == "_"
            and 0 < at < len(text) - 1
            and text[at - 1].isalnum()
            and text[at + 1].isalnum()
        ):
            return char
        return "\\" + char

    return _MD_SPECIAL.sub(escape, text)


_LARK_SPECIAL = re.compile(r"[&<>*_~`\[\]\\]")


def escape_lark(text: str, limit: int | None = MAX_VALUE_CHARS) -> str:
    """Feishu's `lark_md` takes HTML entities, not backslashes, for its special characters.

    Only the characters that format mid-line are escaped: a value never starts a line here, so
    list, heading and quote markers cannot trigger.
    """
    return _LARK_SPECIAL.sub(lambda m: f"&#{ord(m.group())};", clean(text, limit))


def escape_slack(text: str, limit: int | None = MAX_VALUE_CHARS) -> str:
    """Slack mrkdwn: `&`, `<` and `>` are the only characters Slack lets you escape.

    `*`, `_`, `~` only format at word boundaries; the values shown (digit app ids, IANA zone
    names) never put them there.
    """
    text = clean(text, limit)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Escape(Protocol):
    def __call__(self, text: str, limit: int | None = MAX_VALUE_CHARS) -> str: ...


@dataclass(frozen=True)
class Markup:
    escape: Escape
    bold: Callable[[str], str]


MARKDOWN = Markup(escape_markdown, lambda s: f"**{s}**")
LARK = Markup(escape_lark, lambda s: f"**{s}**")
SLACK = Markup(escape_slack, lambda s: f"*{s}*")


def figures(row: Row) -> str:
    return SEP.join(row.cells)


def row_line(row: Row, markup: Markup) -> str:
    """`**1400006874** · requests 1,880 · successes 1,875 · rate 99.73% · billed parts 1,902`."""
    return f"{markup.bold(markup.escape(row.app_id))}{SEP}{figures(row)}"


def window_line(summary: Summary, markup: Markup) -> str:
    # Our own text, bounded by construction (`window_text`): escaped but never clipped.
    return f"{markup.bold('Window:')} {markup.escape(summary.window, None)}"


def total_line(summary: Summary, markup: Markup) -> str | None:
    """A total only when there is something to add up: with one app it repeats the row."""
    if len(summary.rows) < 2:
        return None
    return f"{markup.bold(f'All {len(summary.rows)} apps:')} {figures(summary.total)}"


def head_lines(summary: Summary, markup: Markup) -> list[str]:
    """The window line, then the total line when there is one."""
    head = [window_line(summary, markup)]
    total = total_line(summary, markup)
    if total:
        head.append(total)
    return head


def heading(summary: Summary, part: Part) -> str:
    return summary.title + part.suffix


# -- splitting -----------------------------------------------------------------------------


def pack(rows: Sequence[Row], fits: Callable[[Sequence[Row], Part], bool]) -> list[tuple[Row, ...]]:
    """Split rows into as few consecutive parts as fit, each checked by the platform's `fits`.

    `fits` is asked with the widest part label the split could need (`n/n` for n rows), so a
    part that fits while packing still fits once the real, never longer, label is written.
    The fit of a part only grows with its rows, so each part's size is found by galloping then
    bisecting: a few renders per part instead of one per row.
    """
    widest = Part(len(rows), len(rows)) if len(rows) > 1 else Part(1, 1)
    parts: list[tuple[Row, ...]] = []
    start = 0
    while start < len(rows):
        left = len(rows) - start
        if not fits(rows[start : start + 1], widest):
            raise SinkError(
                f"the line of app {clean(rows[start].app_id)} alone exceeds the message limit"
            )
        good, bad = 1, left + 1  # sizes known to fit / first known not to (left + 1: none)
        while good < left:
            probe = min(good * 2, left)
            if not fits(rows[start : start + probe], widest):
                bad = probe
                break
            good = probe
        while bad - good > 1:
            middle = (good + bad) // 2
            if fits(rows[start : start + middle], widest):
                good = middle
            else:
                bad = middle
        parts.append(tuple(rows[start : start + good]))
        start += good
    return parts


def chunk_lines(lines: Sequence[str], max_chars: int, joiner: str = "\n") -> list[str]:
    """Join lines into texts of at most `max_chars` each (Slack's per-section limit)."""
    texts: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        extra = len(line) + (len(joiner) if current else 0)
        if current and size + extra > max_chars:
            texts.append(joiner.join(current))
            current, size = [], 0
            extra = len(line)
        current.append(line)
        size += extra
    if current:
        texts.append(joiner.join(current))
    return texts


# -- shared by the bot sinks ---------------------------------------------------------------


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the size limits are in bytes, so measure what is actually sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def code_check(
    body: bytes,
    code_keys: Sequence[str],
    message_keys: Sequence[str],
    retryable: frozenset[int],
    hints: Mapping[int, str],
) -> Verdict:
    """Judge a bot's 2xx answer by its JSON error code (0 means delivered)."""
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Verdict(f"unexpected answer, not JSON: {snippet(body)}")
    if not isinstance(answer, dict):
        return Verdict(f"unexpected answer: {snippet(body)}")
    code = next((answer[k] for k in code_keys if k in answer), None)
    if code == 0:
        return OK
    if not isinstance(code, int) or isinstance(code, bool):
        return Verdict(f"unexpected answer without an error code: {snippet(body)}")
    message = next((answer[k] for k in message_keys if isinstance(answer.get(k), str)), "")
    text = f"errcode {code} {one_line(message)}".rstrip()
    hint = hints.get(code)
    if hint:
        text += f" ({hint})"
    return Verdict(text, retryable=code in retryable)


def one_line(text: str) -> str:
    """A platform's text as one bounded line: scrubbed of every secret first, then cut."""
    return redact.quote(text, _MAX_ERROR_TEXT, mark=ELLIPSIS)


def snippet(body: bytes) -> str:
    return redact.quote(body, _MAX_ERROR_TEXT, mark=ELLIPSIS) or "(empty body)"


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


class ChatSink:
    """What the four bots have in common: batches per window, parts sent in order, paced.

    A subclass renders a summary into payloads (`messages`) and judges the platform's answer
    (`check`); one that signs each attempt overrides `send`. `LIMITS` is the platform's
    documented rate per robot; every
    sink object for the same robot in this process shares one pace, so a timer's lookback or a
    backfill waits for a slot instead of being refused (or, on DingTalk, muted for ten minutes).
    Chat platforms keep no message ids: a message this process already posted (`posted`) is
    not posted again when SCF retries the run. The parts of one window are sent in order and a
    failure names how many of them had already arrived.
    """

    LIMITS: ClassVar[tuple[Limit, ...]]
    chat: ClassVar[bool] = True  # people read it: the pipeline keeps corrections from it

    def __init__(self, url: str, name: str, transport: Transport, secrets: Sequence[str]) -> None:
        self.url = url
        self.name = name
        self.transport = transport
        self._secrets = tuple(s for s in secrets if s)
        redact.register(*self._secrets)
        self.pace = pace_for(name, self.LIMITS)

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return by_window(records)

    def messages(self, summary: Summary) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check(self, status: int, body: bytes) -> Verdict:
        raise NotImplementedError

    def send(self, payload: dict[str, Any], deadline: float | None) -> None:
        self.post(encode(payload), deadline)

    def post(
        self,
        body: bytes,
        deadline: float | None,
        prepare: Callable[[], tuple[str, bytes, Mapping[str, str]]] | None = None,
    ) -> None:
        """One message, paced and retried; `prepare` rebuilds it per attempt (signing)."""
        self.transport.post(
            self.url,
            body,
            {},
            name=self.name,
            check=self.check,
            deadline=deadline,
            prepare=prepare,
            pace=self.pace,
        )

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        if not batch:
            return
        try:
            payloads = self.messages(summarize(batch))
            repeats = 0
            for index, payload in enumerate(payloads, 1):
                key = posted.key(self.name, payload)
                if posted.seen(key):  # a retried run: this very message is in the chat already
                    repeats += 1
                    continue
                try:
                    self.send(payload, deadline)
                except SinkError as exc:
                    if len(payloads) == 1:
                        raise
                    raise SinkError(
                        f"{exc} [part {index} of {len(payloads)}; {index - 1} delivered]"
                    ) from None
                posted.add(key)
            if repeats:
                logger.info(
                    "delivery.repeat_skipped",
                    sink=self.name,
                    window=str(batch[0].window),
                    messages=repeats,
                )
        except SinkError as exc:
            text = redact.scrub(str(exc), self._secrets)
            if not text.startswith(self.name):
                text = f"{self.name}: {text}"
            raise SinkError(text) from None


class SignedChatSink(ChatSink):
    """A bot whose URL may carry a signing secret (DingTalk, Feishu).

    `secret` is this project's URL convention, not the platform's: `url` comes without it, so
    it is never sent. A subclass signs each attempt afresh with the `clock`'s time, because
    both platforms refuse a timestamp more than an hour off and a retry may come later.
    """

    def __init__(
        self,
        url: str,
        name: str,
        transport: Transport,
        token: str,
        secret: str | None,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        super().__init__(url, name, transport, (token, secret or ""))  # url without the secret
        self.secret = secret
        self.clock = clock


# -- URL checks ----------------------------------------------------------------------------


def split_url(url: str, platform: str, example: str) -> SplitResult:
    """Scheme, host, port and no user: the checks every bot URL shares.

    Messages name the rule and the example shape, never a part of the URL given: the path and
    query of a bot URL are its credentials.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a {platform} URL must be http(s)://host/..., like {example}")
    if parts.username or parts.password:
        raise ValueError(f"a {platform} URL must not carry user:password; use {example}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"a {platform} URL has an invalid port") from None
    if parts.fragment:
        raise ValueError(f"a {platform} URL takes no #fragment; use {example}")
    from . import BOT_HOSTS  # noqa: PLC0415 - the package imports this module lazily

    if parts.scheme == "http" and (parts.hostname or "").lower() in BOT_HOSTS:
        raise ValueError(f"a {platform} URL must use https: the key would travel in clear text")
    return parts


def query_pairs(query: str) -> list[tuple[str, str]]:
    """`a=1&b=2` -> pairs, percent-decoded but with `+` kept: a pasted secret may hold one."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def one_param(pairs: Sequence[tuple[str, str]], name: str, platform: str) -> str | None:
    values = [value for key, value in pairs if key == name]
    if len(values) > 1:
        raise ValueError(f"a {platform} URL gives {name} more than once")
    if values and not values[0]:
        raise ValueError(f"a {platform} URL has an empty {name}")
    return values[0] if values else None


def without_params(query: str, names: Sequence[str]) -> str:
    """The raw query minus some parameters, the rest byte for byte as the user wrote it."""
    kept = [
        item for item in query.split("&") if item and unquote(item.partition("=")[0]) not in names
    ]
    return "&".join(kept)
