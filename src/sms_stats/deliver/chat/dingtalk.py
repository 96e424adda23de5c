"""DingTalk (钉钉) custom robot: the window's summary as markdown, signed when a secret is set.

`https://oapi.dingtalk.com/robot/send?access_token=TOKEN&secret=SEC...`. `secret` is this
project's convention, not DingTalk's: it is taken out of the URL and never sent. With it, each
attempt appends `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256(secret,
"timestamp\\nsecret"))), computed afresh, because DingTalk refuses a timestamp more than an hour
old and a retry may come later. DingTalk answers `{"errcode": 0}`; 130101 (over 20 messages a
minute) is retried; 310000 (signature, keyword or IP check failed) is final and needs a person.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus, urlunsplit

from sms_stats.core.settings import Settings
from sms_stats.deliver.chat.answers import code_check
from sms_stats.deliver.chat.markup import MARKDOWN, clean, head_lines, heading, row_line
from sms_stats.deliver.chat.messages import Part, Row, Summary
from sms_stats.deliver.chat.packing import encode, pack
from sms_stats.deliver.chat.sink import SignedChatSink
from sms_stats.deliver.chat.urls import one_param, query_pairs, split_url, without_params
from sms_stats.deliver.transport import Transport, Verdict
from sms_stats.store.base import label

PLATFORM = "DingTalk robot"
PATH = "/robot/send"
EXAMPLE = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN&secret=SEC..."
MAX_BODY_BYTES = 20_000  # DingTalk: "message too long, exceed 20000 bytes" (errcode 460101)
RETRYABLE = frozenset({130101, 410100})  # both are DingTalk's "sending too fast"
HINTS = {
    310000: (
        "DingTalk's security check failed: with signing on, put the robot's secret in the URL "
        "as &secret=SEC... and keep the clock right (1 hour of skew at most); with custom "
        "keywords, use one that appears in the message, such as 'SMS'; with an IP allow-list, "
        "add the function's outbound IP"
    ),
    300001: "the access_token in the URL is not a live robot's; copy the webhook URL again",
    130101: "DingTalk takes at most 20 messages a minute per robot",
}


def build(url: str, settings: Settings, transport: Transport) -> DingTalkSink:
    parts = split_url(url, PLATFORM, EXAMPLE)
    if parts.path != PATH:
        raise ValueError(f"a {PLATFORM} URL must have the path {PATH}, like {EXAMPLE}")
    pairs = query_pairs(parts.query)
    token = one_param(pairs, "access_token", PLATFORM)
    if token is None:
        raise ValueError(f"a {PLATFORM} URL needs its ?access_token=TOKEN, like {EXAMPLE}")
    if any(name in ("timestamp", "sign") for name, _ in pairs):
        raise ValueError(
            f"a {PLATFORM} URL must not carry timestamp or sign: they expire within the hour; "
            "give &secret=SEC... instead and each message is signed when sent"
        )
    secret = one_param(pairs, "secret", PLATFORM)
    query = without_params(parts.query, ("secret",))
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return DingTalkSink(target, label("dingtalk", url), transport, token, secret)


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature, before URL-encoding."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    if secret is None:
        return url
    return f"{url}&timestamp={timestamp_ms}&sign={quote_plus(sign(secret, timestamp_ms))}"


def payload(summary: Summary, rows: Sequence[Row], part: Part) -> dict[str, Any]:
    head = [f"#### {heading(summary, part, MARKDOWN)}", *head_lines(summary, MARKDOWN)]
    # Blank lines between paragraphs: DingTalk's renderer ignores a single newline in places.
    text = "\n\n".join(head) + "\n\n" + "\n".join(f"- {row_line(r, MARKDOWN)}" for r in rows)
    title = (
        f"{heading(summary, part)}: {clean(summary.window, None)}"  # notifications show it: plain
    )
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def fits(summary: Summary, rows: Sequence[Row], part: Part) -> bool:
    return len(encode(payload(summary, rows, part))) <= MAX_BODY_BYTES


def messages(summary: Summary) -> list[dict[str, Any]]:
    parts = pack(summary.rows, lambda rows, part: fits(summary, rows, part))
    return [payload(summary, rows, Part(i, len(parts))) for i, rows in enumerate(parts, 1)]


def check(status: int, body: bytes) -> Verdict:
    return code_check(body, ("errcode",), ("errmsg",), RETRYABLE, HINTS)


class DingTalkSink(SignedChatSink):
    LIMITS = ((20, 60.0),)  # 20 a minute per robot; more mutes the robot for 10 minutes

    def messages(self, summary: Summary) -> list[dict[str, Any]]:
        return messages(summary)

    def send(self, payload: dict[str, Any], deadline: float | None) -> None:
        body = encode(payload)

        def prepare() -> tuple[str, bytes, Mapping[str, str]]:
            return signed_url(self.url, self.secret, int(self.clock() * 1000)), body, {}

        # `prepare` signs every attempt, the first included; the URL given here is never used.
        self.post(body, deadline, prepare)

    def check(self, status: int, body: bytes) -> Verdict:
        return check(status, body)
