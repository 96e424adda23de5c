"""`?notify=`: what a sink receives (records, alerts, the digest), taken off its URL.

The parameter is ours, not the destination's: the file sink refuses any query, a bot or webhook
must not receive it, and a COS URL's own parameters (region, endpoint) must reach the COS sink.
So it is cut from the URL before the sink's module sees it, the rest of the URL kept byte for
byte: a sink's name is a hash of its URL, the outbox owes records to sinks by name, and adding
`?notify=` to a deployed sink must not make the outbox forget what it owes that sink.

Problems name the parameter and its values, never the URL: the rest of it may hold a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote, unquote_plus

from sms_stats.core.notices import CHAT_TOPICS, NOTIFY, STORE_TOPICS, WEBHOOK_TOPICS
from sms_stats.store.base import Sink

PARAM = "notify"
RECORDS = "records"
DEFAULTS = {
    "file": STORE_TOPICS,
    "cos": STORE_TOPICS,
    "webhook": WEBHOOK_TOPICS,
    "wecom": CHAT_TOPICS,
    "dingtalk": CHAT_TOPICS,
    "feishu": CHAT_TOPICS,
    "slack": CHAT_TOPICS,
}
_CHOICES = ", ".join(NOTIFY)
_OPEN_VALUE = re.compile(r"[?&]notify=[^&#]*$", re.IGNORECASE)  # the item ends inside its value
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def rejoin(items: Sequence[str]) -> list[str]:
    """The sink URLs of SMS_STATS_SINKS, with `?notify=records,alerts` whole again.

    The environment's form of the list is comma-separated, so it cuts a notify value at its
    commas: `...?notify=records`, `alerts`. An item without a scheme is never a sink URL, so one
    that follows an item ending inside a notify value is the rest of that value.
    """
    urls: list[str] = []
    for item in items:
        if urls and _OPEN_VALUE.search(urls[-1]) and not _SCHEME.match(item):
            urls[-1] += "," + item
        else:
            urls.append(item)
    return urls


def split_notify(url: str) -> tuple[str, frozenset[str] | None]:
    """(the URL without `notify`, the topics it names, or None when it names none).

    ValueError when the parameter is given twice, names nothing, or names an unknown topic.
    A URL without the parameter comes back as it was, so its sink's name cannot change.
    """
    head, hash_mark, fragment = url.partition("#")
    base, question, query = head.partition("?")
    if not question:
        return url, None
    items = query.split("&")
    ours = [item for item in items if _is_ours(item)]
    if not ours:
        return url, None
    if len(ours) > 1:
        raise ValueError(f"{PARAM}: given more than once; give one, like {PARAM}=records,alerts")
    kept = "&".join(item for item in items if not _is_ours(item))
    rest = f"{base}?{kept}" if kept else base
    return rest + hash_mark + fragment, parse(unquote_plus(ours[0].partition("=")[2]))


def parse(value: str) -> frozenset[str]:
    """`records,alerts` -> the topics; case and repeats do not matter, empty items are skipped."""
    named = [item.strip().lower() for item in value.split(",") if item.strip()]
    if not named:
        raise ValueError(f"{PARAM}: names nothing; use any of {_CHOICES}")
    unknown = [item for item in dict.fromkeys(named) if item not in NOTIFY]
    if unknown:
        shown = ", ".join(repr(item[:40]) for item in unknown)
        raise ValueError(f"{PARAM}: unknown {shown}; use any of {_CHOICES}")
    return frozenset(named)


def takes_records(sink: Sink) -> bool:
    return RECORDS in sink.topics


def record_sinks(sinks: Iterable[Sink]) -> list[Sink]:
    """The sinks records go to (and are owed to): the others asked for notices only."""
    return [sink for sink in sinks if takes_records(sink)]


def _is_ours(item: str) -> bool:
    return unquote(item.partition("=")[0]).strip().lower() == PARAM
