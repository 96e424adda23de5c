"""`GET /dashboard`, `GET`/`POST /login`, `POST /logout`: who may look, what they asked for, and
an HTML answer for every outcome (a page says what is wrong; never a traceback).

Access: a bearer token (scripts, as for /stats), else the signed session cookie of POST /login,
else SMS_STATS_ALLOW_ANONYMOUS with no token configured. The cookie opens /dashboard only: /stats
and /balance can call the API, and a browser session should not spend its rate budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sms_stats.core.context import Invocation
from sms_stats.core.errors import AccessError, ConfigError, InputError, SmsStatsError
from sms_stats.core.log import logger
from sms_stats.core.redact import short
from sms_stats.core.settings import Settings
from sms_stats.events.http_event import HttpRequest
from sms_stats.events.jobs import check_app_ids
from sms_stats.store.base import Sink, SinkError, Store, find_store
from sms_stats.web import http
from sms_stats.web.dashboard import money, page, session

# The sinks of the settings in force, built once per container; ConfigError if any is wrong.
SinksOf = Callable[[], Sequence[Sink]]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # Not `no-referrer`: under it a browser sends `Origin: null` with the page's own forms, and
    # POST /login and /logout refuse a null origin. `same-origin` still sends nothing elsewhere.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
DEFAULT_DAYS, MAX_DAYS = 7, 31
READ_BUDGET_S = 20.0  # the page gives up on the store after this, and says what it lacks
MONEY_BUDGET_S = 5.0  # of which the money summary (one object) may take this much


def html(status: int, body: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": {**HTML_HEADERS, **(headers or {})},
        "body": body,
    }


def answer(
    request: HttpRequest,
    path: str,
    settings: Settings,
    invocation: Invocation,
    now: datetime,
    sinks: SinksOf,
) -> dict[str, Any]:
    """`sinks` builds (once per container, by the handler) the sinks the store is found in:
    called only by a path that reads the store."""
    base = settings.http_base_path
    if path == "/":  # a person who opens the function's address lands on the dashboard
        return html(303, "", {"Location": f"{base}/dashboard"})
    if request.method == "POST":
        refused = cross_site(request.headers)
        if refused is not None:
            logger.warning("http.refused", status=403, code=CROSS_SITE, message=refused)
            title = "Cannot log in" if path == "/login" else "Cannot log out"
            return html(403, page.message(title, refused, base))
    try:
        if path == "/login":
            return _login(request, settings, base, invocation, sinks)
        if path == "/logout":
            return _logout(request, settings, base, invocation, sinks)
        allowed = _allowed(request, settings, invocation, sinks)
    except _SessionUnknown as exc:
        logger.warning("http.refused", status=503, code=SESSION_UNKNOWN, message=str(exc))
        text = f"the session cannot be checked now: {exc}; try again shortly"
        return html(503, page.message("Cannot show the dashboard", text, base))
    if not allowed:
        if "text/html" in request.headers.get("accept", ""):
            return html(303, "", {"Location": f"{base}/login"})
        raise AccessError("send Authorization: Bearer <token>, or log in at /login")
    try:
        return _dashboard(request, settings, invocation, now, sinks)
    except SmsStatsError as exc:
        logger.warning("http.refused", status=exc.status, code=exc.code, message=exc.message)
        shown = exc.message
        if isinstance(exc, ConfigError):  # the details are for the operator's logs
            shown = f"the function is misconfigured; its logs say how ({invocation.request_id})"
        return html(exc.status, page.message("Cannot show the dashboard", shown, base))
    except Exception as exc:  # a bug: a page, not a traceback; the type for the operator
        logger.error("internal.error", error_type=type(exc).__name__)
        text = f"unexpected internal error; quote request id {invocation.request_id}"
        return html(500, page.message("Cannot show the dashboard", text, base))


CROSS_SITE = "UnauthorizedOperation.CrossSite"
SESSION_UNKNOWN = "ResourceUnavailable.SessionUnknown"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def cross_site(headers: Mapping[str, str]) -> str | None:
    """Why a POST to /login or /logout comes from another site's page, or None.

    A login or logout form posted by another site (login CSRF; a forced logout) is told by what
    browsers send with every POST: `Sec-Fetch-Site` (`cross-site`, or `same-site`, which is
    still another origin), else `Origin` compared with the request's own origin: its `Host`
    header, and its scheme when the event names one (`X-Forwarded-Proto`). `Origin: null`
    (a sandboxed or file page) is never ours. A request with neither header is not a browser
    posting a form (curl, a script holding the token) and is let through. When the event has
    no `Host` (a front end that drops it), an `Origin` is accepted only with the browser's own
    word that it is `same-origin`.
    """
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"a page of another site cannot post here (Sec-Fetch-Site: {site})"
    origin = headers.get("origin")
    if origin is None:
        return None
    origin = origin.strip()
    if origin.lower() == "null":
        return "a page without an origin (Origin: null) cannot post here"
    host = headers.get("host", "").strip()
    if not host:
        if site == "same-origin":
            return None
        return (
            f"the request names no Host to compare its Origin {short(origin, 80)} with, and the "
            "browser did not say it is same-origin (Sec-Fetch-Site)"
        )
    if not _same_origin(origin, host, headers.get("x-forwarded-proto")):
        return f"Origin {short(origin, 80)} is not this site's ({short(host, 80)})"
    return None


def _same_origin(origin: str, host: str, scheme: str | None) -> bool:
    """Whether `origin` (`scheme://host[:port]`) is the origin of a request to `host` (the Host
    header, `name[:port]`) over `scheme` (when the event names it; else the Origin's own, as
    far as the default port goes)."""
    try:
        parts = urlsplit(origin)
        wanted = (scheme or parts.scheme).strip().lower()
        if parts.scheme not in _DEFAULT_PORTS or parts.scheme != wanted or not parts.hostname:
            return False
        if parts.path or parts.query or parts.fragment or parts.username is not None:
            return False
        ours = urlsplit(f"//{host}")
        if ours.path or ours.username is not None or not ours.hostname:
            return False
        default = _DEFAULT_PORTS[parts.scheme]
        return (parts.hostname, parts.port or default) == (ours.hostname, ours.port or default)
    except ValueError:  # a port that is no number, a bracket unclosed
        return False


class _SessionUnknown(Exception):
    """The store that holds the logout epoch did not answer: a cookie cannot be judged."""


def _tokens(settings: Settings) -> list[str]:
    return [t.get_secret_value() for t in settings.api_tokens]


def _allowed(
    request: HttpRequest, settings: Settings, invocation: Invocation, sinks: SinksOf
) -> bool:
    """A bearer header is judged as on /stats (a wrong one is 401, not a login page)."""
    if "authorization" in request.headers:
        http.authorize(request, settings)
        return True
    if not settings.api_tokens:
        return settings.allow_anonymous
    cookie = session.from_headers(request.headers)
    if cookie is None or not session.valid(cookie, _tokens(settings)):
        return False
    return not session.revoked(cookie, _epoch(invocation, sinks))


def _session_store(sinks: SinksOf) -> Store | None:
    """The store the logout epoch lives in (the first store sink), or None."""
    return find_store(sinks())


def _epoch(invocation: Invocation, sinks: SinksOf) -> int:
    """The logout epoch (0 without a store). `_SessionUnknown` when the store does not answer:
    a revoked cookie must not pass because the store was slow."""
    store = _session_store(sinks)
    if store is None:
        return 0
    try:
        return session.epoch(store, _deadline(invocation, 5.0))
    except SinkError as exc:
        logger.warning("store.unreachable", store=store.name, error=str(exc))
        raise _SessionUnknown("the store did not answer") from None


def _deadline(invocation: Invocation, budget_s: float) -> float:
    deadline = time.monotonic() + budget_s
    return deadline if invocation.deadline is None else min(deadline, invocation.deadline)


def _login(
    request: HttpRequest, settings: Settings, base: str, invocation: Invocation, sinks: SinksOf
) -> dict[str, Any]:
    if request.method == "GET":
        return html(200, page.login_form(base))
    form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    given = (form.get("token") or [""])[0].strip()
    tokens = _tokens(settings)
    if not given or not tokens or not http.token_matches(given, tokens):
        wait = session.failed_logins.note()
        logger.warning(
            "http.refused", status=401, code=AccessError.code, message="login", delay_s=wait
        )
        time.sleep(wait)  # a guesser's next try waits; a typo's wait is too short to notice
        why = "that token is not valid" if tokens else "no SMS_STATS_API_TOKEN is configured"
        return html(401, page.login_form(base, error=why))
    # The cookie is signed with the token that matched, so dropping that token ends it.
    token = next(t for t in tokens if http.token_matches(given, [t]))
    issued = session.issue(token, not_before=_epoch(invocation, sinks))
    return html(
        303,
        "",
        {"Location": f"{base}/dashboard", "Set-Cookie": session.set_cookie(issued)},
    )


def _logout(
    request: HttpRequest, settings: Settings, base: str, invocation: Invocation, sinks: SinksOf
) -> dict[str, Any]:
    """Clear the cookie; with a valid session and a store, void every session issued until now
    (the logout epoch), so a copy of the cookie stops working too. Without a valid session
    nothing is written: a stranger's POST must not log everyone out."""
    headers = {"Location": f"{base}/login", "Set-Cookie": session.clear_cookie()}
    cookie = session.from_headers(request.headers)
    if cookie is None or not session.valid(cookie, _tokens(settings)):
        return html(303, "", headers)
    store = _session_store(sinks)
    if store is None:
        return html(303, "", headers)  # README: without a store, a session lives until it ends
    try:
        through = session.revoke(store, _deadline(invocation, 5.0))
    except SinkError as exc:
        logger.warning("store.unreachable", store=store.name, error=str(exc))
        text = (
            "the cookie is cleared in this browser, but the store did not answer, so a copy "
            "of it would still open the dashboard until it expires; log out again shortly"
        )
        cleared = {"Set-Cookie": headers["Set-Cookie"]}
        return html(503, page.message("Logged out here only", text, base), cleared)
    logger.info("dashboard.logout", revoked_through=through)
    return html(303, "", headers)


def parse_days(values: Sequence[str | bool]) -> int:
    """`days`: ASCII digits from 1 to MAX_DAYS. `str.isdigit` alone is no check: it is true
    for a superscript two, which `int` refuses, and 5,000 nines make an int no one asked for."""
    if not values:
        return DEFAULT_DAYS
    value = values[-1]
    text = "" if isinstance(value, bool) else value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 2 and 1 <= int(text) <= MAX_DAYS):
        raise InputError(
            f"days: a whole number from 1 to {MAX_DAYS}; got "
            + ("nothing (a bare ?days)" if isinstance(value, bool) else short(value, 20))
        )
    return int(text)


def parse_apps(values: Sequence[str | bool], settings: Settings) -> tuple[str, ...]:
    asked: list[str] = []
    for value in values:
        if isinstance(value, bool):
            raise InputError("app_id: has no value (a bare ?app_id)")
        asked.extend(part.strip() for part in value.split(",") if part.strip())
    if not asked:
        allowed = [a for a in settings.http_allowlist if a != "*"] or list(settings.app_ids)
        if not allowed:
            raise InputError(
                "no apps to show: set SMS_STATS_APP_IDS (or SMS_STATS_HTTP_APP_IDS), or name "
                "them with ?app_id=",
                code="MissingParameter",
            )
        asked = allowed
    app_ids = check_app_ids(asked, "app_id", settings)
    http.check_allowed(app_ids, settings)
    return app_ids


def _dashboard(
    request: HttpRequest,
    settings: Settings,
    invocation: Invocation,
    now: datetime,
    sinks: SinksOf,
) -> dict[str, Any]:
    from sms_stats.core.rules import rules_in_force  # noqa: PLC0415 - their thresholds are drawn

    days = parse_days(request.query.get("days", []))
    app_ids = parse_apps(request.query.get("app_id", []), settings)
    tz = settings.zone
    end = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    end = end + timedelta(hours=1)  # the hour under way is shown as far as it is stored
    local_today = now.astimezone(tz).date()
    first = local_today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    store = find_store(sinks())
    view = page.View(
        app_ids=app_ids,
        days=days,
        start=start,
        end=end,
        tz=tz,
        timezone=settings.timezone,
        base=settings.http_base_path,
        now=now,
        rules=rules_in_force(settings.alerts, settings.budgets),
    )
    if store is None:
        view.notes.append(
            "No store is configured: the dashboard reads the first file: or cos:// sink in "
            "SMS_STATS_SINKS."
        )
        return html(200, page.render(view))
    from sms_stats.web.dashboard import data  # noqa: PLC0415

    deadline = time.monotonic() + READ_BUDGET_S
    if invocation.deadline is not None:
        deadline = min(deadline, invocation.deadline)
    view.months = _months(store, settings, app_ids, deadline)
    stats = data.Stats()
    view.series = data.read(
        store,
        app_ids,
        start,
        end,
        tz,
        deadline=deadline,
        stats=stats,
    )
    view.fired, note = _alerts(store, deadline)
    if note:
        view.notes.append(note)
    logger.info("dashboard.read", apps=len(app_ids), days=days, **stats.__dict__)
    return html(200, page.render(view))


def _months(
    store: Store, settings: Settings, app_ids: Sequence[str], deadline: float
) -> money.Months:
    """The month panel's figures: the money summary, read once for every app (before the hours,
    and within a few seconds, so a slow store leaves the charts their time), with the price and
    budgets in force."""
    apps, problem = money.read(store, min(deadline, time.monotonic() + MONEY_BUDGET_S))
    budgets = {a: b for a in app_ids if (b := settings.budget_of(a)) is not None}
    return money.Months(apps, problem, settings.price(), settings.currency, budgets)


def _alerts(store: Store, deadline: float) -> tuple[list[dict[str, Any]], str | None]:
    """The alert state's firing alerts and fired log; its absence is no alerts."""
    from sms_stats.alerts import state  # noqa: PLC0415

    try:
        loaded = state.load(store, deadline)
    except SinkError as exc:
        return [], f"The alert state could not be read: {exc}"
    rows: list[dict[str, Any]] = [
        {"alert": a.rule, "app_id": a.app_id, "since": a.since or a.hour, "firing": True}
        for a in loaded.alerts.values()
        if a.firing
    ]
    rows += [
        {**item, "firing": False}
        for item in loaded.fired
        if not any(
            r["alert"] == item.get("alert") and r["since"] == item.get("since") for r in rows
        )
    ]
    return rows, None
