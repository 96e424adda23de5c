"""Splitting one window's rows over as few messages as each platform's size limit allows.

When the apps of one window do not fit in one message, the rows are split over several
numbered parts; nothing is ever cut off. The limits are in bytes of what is sent, so a payload
is measured as `encode` writes it, the same bytes the bot then receives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sms_stats.deliver.chat.markup import clean
from sms_stats.deliver.chat.messages import Part, Row
from sms_stats.store.base import SinkError


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the size limits are in bytes, so measure what is actually sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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
