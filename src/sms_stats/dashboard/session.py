"""The browser's session: a cookie `<expiry>.<HMAC-SHA256(token, expiry)>`, no server state.

Why this shape: the function keeps no session store, and a Function URL has no login of its
own. Signing with the API token itself means rotating a token out (dropping it from
SMS_STATS_API_TOKEN) ends every session it opened, with nothing else to revoke; verification
tries each configured token, in constant time. The expiry is inside the signed text, so it cannot
be stretched. HttpOnly (no script reads it), Secure, SameSite=Strict (no other site's form can
post with it: that is the CSRF defence for POST /logout), Path=/ and 12 hours.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

COOKIE = "sms_stats_session"
LIFETIME_S = 12 * 3600
_CONTEXT = b"sms-stats-session/v1:"


def clock() -> float:
    """Wall-clock seconds, in one place, so tests can move time on."""
    return time.time()


def _sign(token: str, expiry: int) -> str:
    message = _CONTEXT + str(expiry).encode()
    return hmac.new(token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def issue(token: str) -> str:
    expiry = int(clock()) + LIFETIME_S
    return f"{expiry}.{_sign(token, expiry)}"


def valid(value: str, tokens: Sequence[str]) -> bool:
    """Signed by one of `tokens` and not expired; anything malformed is simply not valid."""
    expiry_text, dot, signature = value.partition(".")
    if not dot or not expiry_text.isdigit() or len(expiry_text) > 12 or len(signature) != 64:
        return False
    expiry = int(expiry_text)
    matched = False
    for token in tokens:  # every token is tried: the time taken says nothing about which
        matched |= hmac.compare_digest(_sign(token, expiry).encode(), signature.encode("utf-8"))
    return matched and clock() < expiry


def set_cookie(value: str) -> str:
    return f"{COOKIE}={value}; Max-Age={LIFETIME_S}; Path=/; HttpOnly; Secure; SameSite=Strict"


def clear_cookie() -> str:
    return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict"


def from_headers(headers: Mapping[str, str]) -> str | None:
    """Our cookie's value from a `Cookie` header (names are case-sensitive; first one wins)."""
    for part in headers.get("cookie", "").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name == COOKIE:
            return value.strip()
    return None
