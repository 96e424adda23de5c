"""The checks every chat bot's URL shares, and the query handling they need.

A bot URL's path and query are its credentials: no message here quotes any part of the URL
given, only the rule broken and the shape expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import SplitResult, unquote, urlsplit

from sms_stats.deliver.sinks import BOT_HOSTS


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
