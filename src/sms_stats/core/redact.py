"""Every secret this process knows, and `scrub`, which takes them out of any text.

Why one process-wide registry: upstream bodies are quoted in errors, answers and logs, and a
receiver, a proxy or the API itself can echo what it was sent (the path with a webhook's token,
the request's headers with the session token and the SecretId's credential scope). Which
secret might come back is not known where the body is quoted, so every quote is scrubbed of
every credential: settings register the credentials, tokens and the webhook secret as they are
read, and sinks the secret pieces of their URLs.

A secret is searched for raw and in the forms an echo takes (percent-encoded, JSON-escaped,
HTML-escaped), and any run of 8 or more of its first characters counts: a body someone else cut
short may hold only the start of a token. `quote` scrubs BEFORE it cuts, because a cut through
a secret leaves a piece no search for the whole secret can find. Shapes of credentials that were
never registered (an `Authorization` or `X-TC-Token` header line, `Credential=AKID...`, a
`whsec_` secret, a `Bearer` token) are masked as well.

Values shorter than `MIN_LENGTH` are not registered: they would mask ordinary words. The
registry is a bounded set, emptied when the handler reads new settings, so warm invocations
never grow it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import cache
from typing import NamedTuple
from urllib.parse import parse_qsl, quote_plus, unquote, urlsplit
from urllib.parse import quote as percent

MASK = "***"
MIN_LENGTH = 6  # shorter values are words, not secrets
HEAD = 8  # this many leading characters of a secret are enough to mask it
MAX_SECRETS = 512  # a bound, not a target: one configuration registers a few dozen


# Credential shapes, whoever wrote them. Header lines keep their name so a reader sees what
# was there; a value runs to the end of its line or its closing quote. Compiled when a text
# first holds a hint of one (`_SHAPE_HINT`): eight patterns are ~3 ms of a cold start, and most
# processes only ever scrub windows, app ids and sink names.
@cache
def _shapes() -> tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...]:
    header_value = re.compile(
        r"""(?ix)
        (?P<name>\b(?:authorization|proxy-authorization|x-tc-token|x-cos-security-token|cookie)\b
          ["']?\s*[:=]\s*)
        (?!\s*(?:Bearer\s+)?<[\w-]+>)  # a placeholder, as in "send Authorization: Bearer <token>"
        (?P<value>"[^"\r\n]*"?|'[^'\r\n]*'?|[^\r\n]*)
        """
    )
    return (
        (header_value, lambda m: m.group("name") + MASK),
        # TC3's credential scope names the SecretId; COS's signature names it as q-ak.
        (re.compile(r"(?i)(\bCredential=)[^\s,;\"'&]+"), r"\1" + MASK),
        (re.compile(r"(?i)(\bq-ak=)[^\s&\"';,]+"), r"\1" + MASK),
        (re.compile(r"(?i)(\b(?:q-)?signature=)[0-9a-f]{16,}"), r"\1" + MASK),
        (re.compile(r"\bAKID[A-Za-z0-9]{28,}"), MASK),
        (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), MASK),
        (re.compile(r"(?i)(\bBearer\s+)(?!<[\w-]+>)[^\s\"',;]+"), r"\1" + MASK),
        (
            re.compile(
                r"(?i)([?&](?:access_token|token|key|secret|sign|signature|password)=)"
                r"(?-i:(?![A-Z]+(?:\.\.\.)?(?:[&\s\"'#<,;)]|$)))"  # a placeholder: KEY, TOKEN...
                r"[^&\s\"'#<,;)]+"
            ),
            r"\1" + MASK,
        ),
    )


def html_escape(text: str, quote: bool = True) -> str:
    """`html.escape`, without importing `html` and its table of 2,000 entities (~2 ms) on every
    cold start for five replacements."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote:
        text = text.replace('"', "&quot;").replace("'", "&#x27;")
    return text


def forms(secret: str) -> set[str]:
    """The ways `secret` shows up in an echo: raw, percent-encoded (either hex case, `+` for a
    space), JSON-escaped (with and without ASCII escapes) and HTML-escaped."""
    found = {secret}
    encoded = percent(secret, safe="")
    found |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)}
    found |= {percent(secret, safe="/:@"), quote_plus(secret)}
    for text in list(found):
        found.add(json.dumps(text)[1:-1])
        found.add(json.dumps(text, ensure_ascii=False)[1:-1])
    for text in list(found):
        found.add(html_escape(text))
        found.add(html_escape(text, quote=False))
    return {text for text in found if len(text) >= MIN_LENGTH}


class _Compiled(NamedTuple):
    """The secrets' search, built once per change of the registry and swapped in whole, so a log
    line can read it without taking the lock."""

    heads: re.Pattern[str] | None
    by_head: dict[str, tuple[str, ...]]


class _Registry:
    """The secrets, most recent last, and their search compiled once per change."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: OrderedDict[str, None] = OrderedDict()
        self.compiled: _Compiled | None = _Compiled(None, {})

    def compile(self) -> _Compiled:
        with self.lock:
            if self.compiled is None:
                by_head: dict[str, set[str]] = {}
                for secret in self.secrets:
                    for form in forms(secret):
                        # Lower-cased: a receiver may echo a path lower-cased (unless lower
                        # case changes the length, as for "İ": then as written).
                        low = form.lower()
                        key = low if len(low) == len(form) else form
                        by_head.setdefault(key[:HEAD], set()).add(key)
                self.compiled = _build(by_head)
            return self.compiled


_registry = _Registry()


def _build(by_head: dict[str, set[str]]) -> _Compiled:
    heads = sorted(by_head, key=len, reverse=True)  # at one place, the longest head wins
    pattern = re.compile("|".join(map(re.escape, heads)), re.IGNORECASE) if heads else None
    return _Compiled(pattern, {head: tuple(found) for head, found in by_head.items()})


def register(*values: object) -> None:
    """Remember secrets for every later `scrub`; short, empty and non-text values are ignored."""
    fresh = [v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_LENGTH]
    if not fresh:
        return
    with _registry.lock:
        known = _registry.secrets
        changed = False
        for value in fresh:
            changed = changed or value not in known
            known[value] = None
            known.move_to_end(value)
        while len(known) > MAX_SECRETS:
            known.popitem(last=False)
        if changed:
            _registry.compiled = None


def clear() -> None:
    """Forget every secret (new settings are being read, or a test starts)."""
    with _registry.lock:
        _registry.secrets.clear()
        _registry.compiled = _Compiled(None, {})


def registered() -> int:
    with _registry.lock:
        return len(_registry.secrets)


def url_secrets(url: str) -> list[str]:
    """The pieces of a URL that may be its credential, longest first: userinfo, query values
    and path segments, raw and percent-decoded.

    A webhook's token often is a path segment (n8n, Zapier) or a query value (`?token=`), and
    receivers echo the path in their errors ("Cannot POST /hooks/<token>"). Pieces shorter
    than 8 characters (`hooks`, `send`) are words, not secrets. Meant for scrubbing that URL's
    own errors; what is registered process-wide is `likely_url_secrets`.
    """
    parts = urlsplit(url)
    found = {parts.path, parts.query, *parts.path.split("/"), *parts.query.split("&")}
    found |= {value for _, value in parse_qsl(parts.query, keep_blank_values=True)}
    found |= {parts.username or "", parts.password or ""}
    found |= {unquote(piece) for piece in found}
    return sorted((piece for piece in found if len(piece) >= HEAD), key=len, reverse=True)


def likely_url_secrets(url: str) -> list[str]:
    """The URL pieces worth masking in every text: userinfo, and query values and path segments
    that look like keys (letters and digits mixed, or long). Words such as `sms-stats` or a
    region are left alone, since masking them everywhere would garble ordinary log lines."""
    parts = urlsplit(url)
    pieces = [unquote(p) for p in parts.path.split("/")]
    pieces += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    found = [piece for piece in pieces if _looks_secret(piece)]
    found += [p for p in (parts.username, parts.password) if p and len(p) >= MIN_LENGTH]
    return found


def _looks_secret(piece: str) -> bool:
    if len(piece) < HEAD:
        return False
    has_digit = any(c.isdigit() for c in piece)
    has_alpha = any(c.isalpha() for c in piece)
    return (has_digit and has_alpha) or len(piece) >= 20


def _common(text: str, at: int, form: str) -> int:
    """How many characters of `form` text holds from `at`."""
    count = 0
    for char, expected in zip(text[at : at + len(form)], form, strict=False):
        if char != expected:
            break
        count += 1
    return count


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every registered secret, in each of its forms, and every credential shape
    masked. A run of the first 8+ characters of a registered secret is masked as far as it
    matches, so a secret cut short elsewhere is masked too.

    `extra` (the pieces of one sink's URL, say) is masked only where a whole piece, in any of
    its forms, appears: these pieces include words (`integrations`), and masking everything
    that merely starts like one would garble the very error they are scrubbed from.
    """
    if not text:
        return text
    pieces = {form for piece in extra if len(piece) >= HEAD for form in forms(piece)}
    if pieces:
        ordered = sorted(pieces, key=len, reverse=True)
        text = re.sub("|".join(map(re.escape, ordered)), MASK, text)
    compiled = _registry.compile()
    if compiled.heads is not None:
        text = _mask_heads(text, compiled)
    return mask_shapes(text)


_seen: dict[str, str] = {}  # text -> scrubbed, for the registry of `_seen_for`
_seen_for: list[_Compiled | None] = [None]
_SEEN_MAX = 4096


def scrub_repeated(text: str) -> str:
    """`scrub`, remembered: log lines repeat the same values (function, trigger, app ids,
    windows, sink names) on every line of every invocation, and scrubbing each afresh was the
    largest cost of a warm invocation. Forgotten whenever the registry changes."""
    # A compiled registry is read without the lock (one attribute read); only a change
    # (which sets it to None) takes the lock to compile again.
    compiled = _registry.compiled or _registry.compile()
    if _seen_for[0] is not compiled or len(_seen) > _SEEN_MAX:
        _seen.clear()
        _seen_for[0] = compiled
    done = _seen.get(text)
    if done is None:
        done = _seen[text] = scrub(text)
    return done


def _mask_heads(text: str, compiled: _Compiled) -> str:
    assert compiled.heads is not None
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer ("İ") stays as written
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    out: list[str] = []
    pos = 0
    while True:
        match = compiled.heads.search(text, pos)
        if match is None:
            break
        start = match.start()
        group = match.group()
        rests = compiled.by_head.get(group.lower()) or compiled.by_head.get(group) or ()
        length = max((_common(low, start, form) for form in rests), default=0)
        out += (text[pos:start], MASK)
        pos = start + max(length, len(match.group()))
    out.append(text[pos:])
    return "".join(out)


# Every shape above needs one of these (a parameter's `=`, a header's name, a key's prefix):
# text with none of them (a request id, a window, an app id, `file:out`) skips the eight passes.
_SHAPE_HINT = re.compile(
    r"(?i)=|akid|whsec_|bearer|authorization|x-tc-token|x-cos-security-token|cookie"
)


def mask_shapes(text: str) -> str:
    """Credential-shaped text masked, whether or not the secret was ever registered."""
    return _mask_all(text) if _SHAPE_HINT.search(text) else text


def _mask_all(text: str) -> str:
    for pattern, replacement in _shapes():
        text = pattern.sub(replacement, text)
    return text


def quote(body: bytes | str | None, limit: int, extra: Iterable[str] = (), mark: str = "") -> str:
    """An upstream body as one line of at most `limit` characters (`mark` ends a cut one),
    scrubbed FIRST and cut after: a cut through a secret leaves a piece no scrub recognises."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(scrub(text, extra).split())
    if len(text) <= limit:
        return text
    return text[: max(limit - len(mark), 0)] + mark


SHORT = 40  # characters of a caller's value an error or log line quotes


def short(value: object, limit: int = SHORT) -> str:
    """A caller's value as an error or a log line quotes it: the repr of at most `limit` of its
    characters, scrubbed, and marked with its whole length when cut.

    Why one helper: a query parameter, a header name or a JSON field can be 60,000 characters,
    and quoting it whole made a 60 KB answer and a 60 KB log line. Only the head is scrubbed
    (with room for a secret that starts within it: any run of a secret's first characters is
    masked), so a huge value costs no more than a short one.
    """
    text = value if isinstance(value, str) else repr(value)
    head = scrub(text[: limit + 256])[:limit]
    shown = repr(head)
    if len(text) > limit:
        shown += f"... ({len(text):,} characters)"
    return shown
