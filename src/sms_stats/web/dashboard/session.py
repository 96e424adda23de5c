"""The browser's session: a cookie `<expiry>.<HMAC-SHA256(token, expiry)>`, no server state.

Why this shape: the function keeps no session store, and a Function URL has no login of its
own. Signing with the API token itself means rotating a token out (dropping it from
SMS_STATS_API_TOKEN) ends every session it opened, with nothing else to revoke; verification
tries each configured token, in constant time. The expiry is inside the signed text, so it cannot
be stretched. HttpOnly (no script reads it), Secure, SameSite=Strict (no other site's form can
post with it), Path=/ and 12 hours.

Logging out must end the session on the server's side too (a copied cookie would otherwise
open the page until it expires), without a session table: `POST /logout` writes one small
object to the store, `dashboard/session.json`, saying "sessions issued at or before T are
void" (the logout epoch), and a cookie's issue time is its expiry less the lifetime. Each
container reads the epoch at most every `EPOCH_TTL_S` (the page stays fast); a container learns
of a logout elsewhere within that. Without a store, sessions live until they expire.

Failed logins slow down (`FailedLogins`): a per-container count of recent failures adds a
growing, capped delay before a wrong token is answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence

from sms_stats.core.log import logger
from sms_stats.store.base import Store

COOKIE = "sms_stats_session"
LIFETIME_S = 12 * 3600
_CONTEXT = b"sms-stats-session/v1:"
EPOCH_KEY = "dashboard/session.json"
EPOCH_SCHEMA = "sms-stats-sessions/v1"
EPOCH_TTL_S = 10.0  # how long a container trusts the epoch it read


def clock() -> float:
    """Wall-clock seconds, in one place, so tests can move time on."""
    return time.time()


def _sign(token: str, expiry: int) -> str:
    message = _CONTEXT + str(expiry).encode()
    return hmac.new(token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def issue(token: str, not_before: int = 0) -> str:
    """A session cookie's value, issued now, or just after `not_before` (the logout epoch this
    container knows) when the clock is not past it yet: a login in the same second as a logout
    must not be voided by it."""
    issued = max(int(clock()), not_before + 1)
    expiry = issued + LIFETIME_S
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


def issued_at(value: str) -> int:
    """When a (valid) cookie was issued: its signed expiry less the lifetime."""
    return int(value.partition(".")[0]) - LIFETIME_S


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


# -- the logout epoch, in the store ------------------------------------------------------------

_epochs: dict[str, tuple[float, int]] = {}  # store name -> (read at, monotonic; epoch)
_epochs_lock = threading.Lock()


def clear_epochs() -> None:
    """Forget the epochs read (a test starts, or a store was rewritten by hand)."""
    with _epochs_lock:
        _epochs.clear()


def epoch(store: Store, deadline: float | None = None) -> int:
    """Sessions issued at or before this Unix second are void (0: none). Read from the store
    at most every EPOCH_TTL_S per container; SinkError when the store does not answer (the
    caller refuses the cookie rather than guess). An object that is not an epoch of ours voids
    nothing and is logged: the next logout rewrites it."""
    now = time.monotonic()
    with _epochs_lock:
        known = _epochs.get(store.name)
    if known is not None and now - known[0] < EPOCH_TTL_S:
        return known[1]
    data = store.get(EPOCH_KEY, deadline)
    value = 0
    if data is not None:
        try:
            payload = json.loads(data)
            found = payload["revoked_through"] if isinstance(payload, dict) else None
        except (ValueError, KeyError, RecursionError):
            found = None
        if isinstance(found, int) and not isinstance(found, bool) and 0 <= found < 2**40:
            value = found
        else:
            logger.warning("dashboard.session_epoch_unreadable", key=EPOCH_KEY)
    with _epochs_lock:
        _epochs[store.name] = (now, value)
    return value


def revoke(store: Store, deadline: float | None = None) -> int:
    """Void every session issued until now: write the epoch (never moving it back) and
    remember it here at once. SinkError when the store cannot write it."""
    before = epoch(store, deadline)
    through = max(int(clock()), before)
    body = {"schema": EPOCH_SCHEMA, "revoked_through": through}
    store.put(EPOCH_KEY, json.dumps(body).encode(), deadline)
    with _epochs_lock:
        _epochs[store.name] = (time.monotonic(), through)
    return through


def revoked(value: str, through: int) -> bool:
    return issued_at(value) <= through


# -- failed logins ------------------------------------------------------------------------------


class FailedLogins:
    """Recent failed logins in this container, and the delay the next one waits.

    The n-th failure within `window_s` waits min(cap_s, (n / ramp)^2) seconds before its
    answer: a person's typo costs nothing noticeable (the 10th failure in a row waits 0.1 ms),
    a guesser's 1,000th waits the cap (1 s), so each container answers at most about one wrong
    guess a second once it is under attack. The real defence is the token's length (at least 16
    characters, refused otherwise); this makes guessing slower still. A right token never waits.
    """

    def __init__(self, window_s: float = 900.0, ramp: float = 1000.0, cap_s: float = 1.0) -> None:
        self.window_s = window_s
        self.ramp = ramp
        self.cap_s = cap_s
        self._times: deque[float] = deque(maxlen=100_000)
        self._lock = threading.Lock()

    def delay(self, n: int) -> float:
        """The wait of the n-th recent failure (1-based)."""
        return min(self.cap_s, (n / self.ramp) ** 2)

    def note(self) -> float:
        """Count a failure now; the seconds to wait before answering it."""
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            self._times.append(now)
            count = len(self._times)
        return self.delay(count)

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


failed_logins = FailedLogins()
