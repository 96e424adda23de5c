"""WeCom (企业微信) group robot: the window's summary as one markdown message (or a few).

`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY`. The key is the robot's only
credential, so it appears in no name, error or log line. WeCom answers HTTP 200 with
`{"errcode": 0, "errmsg": "ok"}`; any other errcode means the message was not posted, and
45009 (more than 20 messages a minute for one robot) is worth another try.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sms_stats.core.settings import Settings
from sms_stats.deliver.chat.answers import code_check
from sms_stats.deliver.chat.markup import MARKDOWN, head_lines, heading, row_line
from sms_stats.deliver.chat.messages import Part, Row, Summary
from sms_stats.deliver.chat.packing import pack
from sms_stats.deliver.chat.sink import ChatSink
from sms_stats.deliver.chat.urls import one_param, query_pairs, split_url
from sms_stats.deliver.transport import Transport, Verdict
from sms_stats.store.base import label

PLATFORM = "WeCom robot"
PATH = "/cgi-bin/webhook/send"
EXAMPLE = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY"
MAX_CONTENT_BYTES = 4096  # markdown.content, UTF-8 bytes; more is errcode 40058
RATE_LIMITED = 45009
HINTS = {
    93000: "the key in the URL is not a live robot's; copy the robot's webhook URL again",
    45009: "WeCom takes at most 20 messages a minute per robot",
    40058: "the message is over WeCom's size limit",
}


def build(url: str, settings: Settings, transport: Transport) -> WeComSink:
    parts = split_url(url, PLATFORM, EXAMPLE)
    if parts.path != PATH:
        raise ValueError(f"a {PLATFORM} URL must have the path {PATH}, like {EXAMPLE}")
    key = one_param(query_pairs(parts.query), "key", PLATFORM)
    if key is None:
        raise ValueError(f"a {PLATFORM} URL needs its ?key=KEY, like {EXAMPLE}")
    return WeComSink(url, label("wecom", url), transport, (key,))


def content(summary: Summary, rows: Sequence[Row], part: Part) -> str:
    head = [f"**{heading(summary, part, MARKDOWN)}**", *head_lines(summary, MARKDOWN)]
    return "\n".join(head) + "\n\n" + "\n".join(row_line(row, MARKDOWN) for row in rows)


def fits(summary: Summary, rows: Sequence[Row], part: Part) -> bool:
    return len(content(summary, rows, part).encode("utf-8")) <= MAX_CONTENT_BYTES


def messages(summary: Summary) -> list[dict[str, Any]]:
    parts = pack(summary.rows, lambda rows, part: fits(summary, rows, part))
    return [
        {
            "msgtype": "markdown",
            "markdown": {"content": content(summary, rows, Part(i, len(parts)))},
        }
        for i, rows in enumerate(parts, 1)
    ]


def check(status: int, body: bytes) -> Verdict:
    return code_check(body, ("errcode",), ("errmsg",), frozenset({RATE_LIMITED}), HINTS)


class WeComSink(ChatSink):
    LIMITS = ((20, 60.0),)  # 20 messages a minute per robot; more is errcode 45009

    def messages(self, summary: Summary) -> list[dict[str, Any]]:
        return messages(summary)

    def check(self, status: int, body: bytes) -> Verdict:
        return check(status, body)
