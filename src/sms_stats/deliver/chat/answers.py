"""Judging a bot's answer, and quoting it safely when it is a refusal.

Platform answers are quoted in errors, scrubbed of every registered secret before they are cut
to one line (a cut first could leave most of a key that no scrub then recognises). A bot's key,
token or secret lives only in its URL; each sink registers them with `redact`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sms_stats.core import redact
from sms_stats.deliver.chat.markup import ELLIPSIS
from sms_stats.deliver.transport import OK, Verdict

_MAX_ERROR_TEXT = 200


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
