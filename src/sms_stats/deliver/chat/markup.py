"""How a message is written on each platform: values cleaned and escaped, lines laid out.

Each platform has its own markup (common Markdown on WeCom and DingTalk, `lark_md` on Feishu,
mrkdwn on Slack); the lines themselves (window, total, one per app) are the same everywhere, so
a bot picks a `Markup` and these build its lines. A value shown (an app id, a zone name) is one
bounded line: a stray newline or a huge value must not break a message's layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sms_stats.deliver.chat.messages import Part, Row, Summary

SEP = " \u00b7 "  # middle dot between the figures of one line
ELLIPSIS = "\u2026"
MAX_VALUE_CHARS = 64  # an app id or zone name longer than this is shown clipped, with an ellipsis
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


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
    """A chat platform's escaping and emphasis, so one message text serves every bot."""

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


def heading(summary: Summary, part: Part, markup: Markup | None = None) -> str:
    """The message's title and part number; escaped where the platform reads the title as
    markup (`markup`), as it is shown where it is plain text. A title may hold the operator's
    text (an alert's rule name), which the wording has already made one bounded line."""
    title = summary.title if markup is None else markup.escape(summary.title, None)
    return title + part.suffix
