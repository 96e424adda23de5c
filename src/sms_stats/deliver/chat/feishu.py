"""Feishu / Lark custom bot: the window's summary as an interactive card, signed in the body.

`https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN` (or open.larksuite.com), with an optional
`?secret=...`: this project's convention, taken out of the URL and never sent. With a secret,
the body carries `timestamp` (seconds, a string) and `sign` = base64(HMAC-SHA256 keyed with
"timestamp\\nsecret" over an empty message), fresh on every attempt since Feishu refuses a
timestamp more than an hour off. A card, not a `post`: its header and `lark_md` lines read as a
report, and the figures stay aligned in one block.

Feishu answers `{"code": 0, "msg": "success"}` (older deployments: `StatusCode: 0`); 11232 is its
rate limit and is retried. 9499 is Feishu's catch-all "Bad Request", also sent as "too many
request": it is retried only when its message speaks of a rate, since sending a bad request again
cannot help. 19021 means the signature or the clock is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlunsplit

from sms_stats.core.settings import Settings
from sms_stats.deliver.chat.answers import code_check
from sms_stats.deliver.chat.markup import LARK, head_lines, heading, row_line
from sms_stats.deliver.chat.messages import Part, Row, Summary
from sms_stats.deliver.chat.packing import encode, pack
from sms_stats.deliver.chat.sink import SignedChatSink
from sms_stats.deliver.chat.urls import one_param, query_pairs, split_url, without_params
from sms_stats.deliver.transport import Transport, Verdict
from sms_stats.store.base import label

PLATFORM = "Feishu bot"
PATH = re.compile(r"/open-apis/bot/v2/hook/([^/]+)")
EXAMPLE = "https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN?secret=SECRET"
# Feishu caps a bot request at 20 KB (a card at 30 KB); 20,000 bytes stays clear of both.
MAX_BODY_BYTES = 20_000
RETRYABLE = frozenset({11232})
CATCH_ALL = 9499  # "Bad Request", or a rate limit: the message tells which
_RATE_WORDS = re.compile(r"too many|frequen|rate limit|limited", re.IGNORECASE)
HINTS = {
    19021: (
        "Feishu refused the signature: check that ?secret= in the URL is the bot's current "
        "signing secret and that the function's clock is right (1 hour of skew at most)"
    ),
    19024: "Feishu's keyword check failed: use a keyword that appears in the message, e.g. 'SMS'",
    19022: "Feishu's IP allow-list refused the function's outbound IP",
    19001: "the token in the URL is not a live bot's; copy the webhook URL again",
    11232: "Feishu takes at most 100 messages a minute (5 a second) per bot",
}
_SIGN_PLACEHOLDER = "x" * 44  # a base64 SHA-256 digest: the size the real sign will take
_TIMESTAMP_PLACEHOLDER = "1" * 10


def build(url: str, settings: Settings, transport: Transport) -> FeishuSink:
    parts = split_url(url, PLATFORM, EXAMPLE)
    match = PATH.fullmatch(parts.path)
    if match is None:
        raise ValueError(f"a {PLATFORM} URL must have the path /open-apis/bot/v2/hook/TOKEN")
    secret = one_param(query_pairs(parts.query), "secret", PLATFORM)
    query = without_params(parts.query, ("secret",))
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return FeishuSink(target, label("feishu", url), transport, match.group(1), secret)


def sign(secret: str, timestamp: int) -> str:
    """Feishu's signature: the HMAC key is "timestamp\\nsecret", the message is empty."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def card(summary: Summary, rows: Sequence[Row], part: Part) -> dict[str, Any]:
    head = head_lines(summary, LARK)
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "template": "blue",
            "title": {"tag": "plain_text", "content": heading(summary, part)},
        },
        "elements": [
            {"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(head)}},
            {"tag": "hr"},
            {
                "tag": "div",
                "text": {"tag": "lark_md", "content": "\n".join(row_line(r, LARK) for r in rows)},
            },
        ],
    }


def body(card: dict[str, Any], timestamp: str | None, signature: str | None) -> dict[str, Any]:
    signed = {} if timestamp is None else {"timestamp": timestamp, "sign": signature}
    return {**signed, "msg_type": "interactive", "card": card}


def check(status: int, answer: bytes) -> Verdict:
    verdict = code_check(answer, ("code", "StatusCode"), ("msg", "StatusMessage"), RETRYABLE, HINTS)
    error = verdict.error or ""
    if error.startswith(f"errcode {CATCH_ALL} ") and _RATE_WORDS.search(error):
        return Verdict(error, retryable=True)
    return verdict


class FeishuSink(SignedChatSink):
    LIMITS = ((5, 1.0), (100, 60.0))  # per bot: 5 a second and 100 a minute

    def fits(self, summary: Summary, rows: Sequence[Row], part: Part) -> bool:
        stamp = None if self.secret is None else _TIMESTAMP_PLACEHOLDER
        shaped = body(card(summary, rows, part), stamp, _SIGN_PLACEHOLDER)
        return len(encode(shaped)) <= MAX_BODY_BYTES

    def messages(self, summary: Summary) -> list[dict[str, Any]]:
        parts = pack(summary.rows, lambda rows, part: self.fits(summary, rows, part))
        return [card(summary, rows, Part(i, len(parts))) for i, rows in enumerate(parts, 1)]

    def signed(self, card: dict[str, Any]) -> bytes:
        if self.secret is None:
            return encode(body(card, None, None))
        now = int(self.clock())
        return encode(body(card, str(now), sign(self.secret, now)))

    def send(self, payload: dict[str, Any], deadline: float | None) -> None:
        def prepare() -> tuple[str, bytes, Mapping[str, str]]:
            return self.url, self.signed(payload), {}

        # `prepare` signs every attempt, the first included; the body given here is never sent.
        self.post(b"", deadline, prepare)

    def check(self, status: int, body: bytes) -> Verdict:
        return check(status, body)
