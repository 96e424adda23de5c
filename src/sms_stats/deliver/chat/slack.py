"""Slack incoming webhook: the window's summary as Block Kit, with a plain-text fallback.

`https://hooks.slack.com/services/T.../B.../SECRET`: the whole path is the credential. Slack
answers 200 with the body `ok`; a refusal is a 4xx with a short code as the body
(`invalid_payload`, `no_service`, `invalid_blocks`), final; 429 carries Retry-After, which the
transport honours. Block Kit limits: 50 blocks a message, 3000 characters a section, 150 a
header; rows are packed into sections, and sections into messages, within them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sms_stats.core.settings import Settings
from sms_stats.deliver.chat.answers import snippet
from sms_stats.deliver.chat.markup import SEP, SLACK, figures, head_lines, heading, row_line
from sms_stats.deliver.chat.messages import Part, Row, Summary
from sms_stats.deliver.chat.packing import chunk_lines, pack
from sms_stats.deliver.chat.sink import ChatSink
from sms_stats.deliver.chat.urls import split_url
from sms_stats.deliver.transport import OK, Transport, Verdict
from sms_stats.store.base import label

PLATFORM = "Slack incoming webhook"
PATH = re.compile(r"/services/([A-Za-z0-9]+)/([A-Za-z0-9]+)/([A-Za-z0-9]+)")
EXAMPLE = "https://hooks.slack.com/services/T000/B000/XXXX"
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
# Slack truncates a message past 40,000 characters; count every block's text against that.
MAX_MESSAGE_CHARS = 40_000


def build(url: str, settings: Settings, transport: Transport) -> SlackSink:
    parts = split_url(url, PLATFORM, EXAMPLE)
    match = PATH.fullmatch(parts.path)
    if match is None:
        raise ValueError(
            f"a {PLATFORM} URL must have the path /services/T.../B.../SECRET, like {EXAMPLE}"
        )
    secret_path = "/".join(match.groups())  # `/services/` is a word, not part of the key
    return SlackSink(url, label("slack", url), transport, (match.group(3), secret_path))


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def payload(summary: Summary, rows: Sequence[Row], part: Part) -> dict[str, Any]:
    head = head_lines(summary, SLACK)
    lines = [row_line(row, SLACK) for row in rows]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": heading(summary, part), "emoji": False},
        },
        section("\n".join(head)),
        {"type": "divider"},
        *(section(text) for text in chunk_lines(lines, MAX_SECTION_CHARS)),
    ]
    # `mrkdwn: false` makes the fallback plain text: notifications show it unformatted, and a
    # title holding an operator's `*` or `_` (an alert's rule name) must read as written.
    return {"text": fallback(summary, part), "mrkdwn": False, "blocks": blocks}


def fallback(summary: Summary, part: Part) -> str:
    """What notifications and old clients show: the headline figures, not every row. Plain
    text, but `&`, `<` and `>` stay escaped: Slack decodes them, and reads `<!channel>` as a
    mention whatever the formatting."""
    apps = len(summary.rows)
    who = f"{apps} apps" if apps > 1 else SLACK.escape(summary.rows[0].app_id)
    window = SLACK.escape(summary.window, None)  # ours, bounded: never clipped
    return f"{heading(summary, part, SLACK)}: {window}{SEP}{who}{SEP}{figures(summary.total)}"


def fits(message: dict[str, Any]) -> bool:
    blocks: list[dict[str, Any]] = message["blocks"]
    texts = [block["text"]["text"] for block in blocks if "text" in block]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    return (
        len(blocks) <= MAX_BLOCKS
        and all(len(text) <= MAX_SECTION_CHARS for text in sections)
        and len(blocks[0]["text"]["text"]) <= MAX_HEADER_CHARS
        and sum(map(len, texts)) + len(message["text"]) <= MAX_MESSAGE_CHARS
    )


def messages(summary: Summary) -> list[dict[str, Any]]:
    parts = pack(summary.rows, lambda rows, part: fits(payload(summary, rows, part)))
    return [payload(summary, rows, Part(i, len(parts))) for i, rows in enumerate(parts, 1)]


def check(status: int, body: bytes) -> Verdict:
    if body.strip() == b"ok":
        return OK
    return Verdict(f"unexpected answer: {snippet(body)}")


class SlackSink(ChatSink):
    LIMITS = ((1, 1.0),)  # 1 message a second per webhook ("short bursts" are not promised)

    def messages(self, summary: Summary) -> list[dict[str, Any]]:
        return messages(summary)

    def check(self, status: int, body: bytes) -> Verdict:
        return check(status, body)
