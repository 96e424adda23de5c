"""`GET /dashboard`, `GET`/`POST /login`, `POST /logout`: who may look, what they asked for, and
an HTML answer for every outcome (a page says what is wrong; never a traceback).

Access: a bearer token (scripts, as for /stats), else the signed session cookie of POST /login,
else SMS_STATS_ALLOW_ANONYMOUS with no token configured. The cookie opens /dashboard only: /stats
and /balance can call the API, and a browser session should not spend its rate budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from .. import http
from ..context import Invocation
from ..errors import AccessError, ConfigError, InputError, SmsStatsError
from ..jobs import check_app_ids
from ..log import logger
from ..settings import Settings
from ..sinks.base import SinkError, Store, find_store
from . import page, session

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
DEFAULT_DAYS, MAX_DAYS = 7, 31
READ_BUDGET_S = 20.0  # the page gives up on the store after this, and says what it lacks


def html(status: int, body: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": {**HTML_HEADERS, **(headers or {})},
        "body": body,
    }


def answer(
    request: http.HttpRequest,
    path: str,
    settings: Settings,
    invocation: Invocation,
    now: datetime,
) -> dict[str, Any]:
    base = settings.http_base_path
    if path == "/":  # a person who opens the function's address lands on the dashboard
        return html(303, "", {"Location": f"{base}/dashboard"})
    if path == "/login":
        return _login(request, settings, base)
    if path == "/logout":
        return html(303, "", {"Location": f"{base}/login", "Set-Cookie": session.clear_cookie()})
    if not _allowed(request, settings):
        if "text/html" in request.headers.get("accept", ""):
            return html(303, "", {"Location": f"{base}/login"})
        raise AccessError("send Authorization: Bearer <token>, or log in at /login")
    try:
        return _dashboard(request, settings, invocation, now)
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


def _tokens(settings: Settings) -> list[str]:
    return [t.get_secret_value() for t in settings.api_tokens]


def _allowed(request: http.HttpRequest, settings: Settings) -> bool:
    """A bearer header is judged as on /stats (a wrong one is 401, not a login page)."""
    if "authorization" in request.headers:
        http.authorize(request, settings)
        return True
    if not settings.api_tokens:
        return settings.allow_anonymous
    cookie = session.from_headers(request.headers)
    return cookie is not None and session.valid(cookie, _tokens(settings))


def _login(request: http.HttpRequest, settings: Settings, base: str) -> dict[str, Any]:
    if request.method == "GET":
        return html(200, page.login_form(base))
    form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    given = (form.get("token") or [""])[0].strip()
    tokens = _tokens(settings)
    if not given or not tokens or not http.token_matches(given, tokens):
        logger.warning("http.refused", status=401, code=AccessError.code, message="login")
        why = "that token is not valid" if tokens else "no SMS_STATS_API_TOKEN is configured"
        return html(401, page.login_form(base, error=why))
    # The cookie is signed with the token that matched, so dropping that token ends it.
    token = next(t for t in tokens if http.token_matches(given, [t]))
    return html(
        303,
        "",
        {"Location": f"{base}/dashboard", "Set-Cookie": session.set_cookie(session.issue(token))},
    )


def parse_days(values: Sequence[str | bool]) -> int:
    if not values:
        return DEFAULT_DAYS
    value = values[-1]
    text = "" if isinstance(value, bool) else value.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise InputError(f"days: a whole number from 1 to {MAX_DAYS}; got {str(value)[:20]!r}")
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
    request: http.HttpRequest, settings: Settings, invocation: Invocation, now: datetime
) -> dict[str, Any]:
    from ..alerts.rules import rules_in_force  # noqa: PLC0415 - their thresholds are drawn
    from ..handler import _built  # noqa: PLC0415 - the handler's cached sinks

    days = parse_days(request.query.get("days", []))
    app_ids = parse_apps(request.query.get("app_id", []), settings)
    tz = settings.zone
    end = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    end = end + timedelta(hours=1)  # the hour under way is shown as far as it is stored
    local_today = now.astimezone(tz).date()
    first = local_today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    sinks, problems = _built(settings)
    if problems:
        raise ConfigError.of(problems)
    store = find_store(sinks)
    view = page.View(
        app_ids=app_ids,
        days=days,
        start=start,
        end=end,
        tz=tz,
        timezone=settings.timezone,
        base=settings.http_base_path,
        now=now,
        rules=rules_in_force(settings.alerts),
    )
    if store is None:
        view.notes.append(
            "No store is configured: the dashboard reads the first file: or cos:// sink in "
            "SMS_STATS_SINKS."
        )
        return html(200, page.render(view))
    from . import data  # noqa: PLC0415

    deadline = time.monotonic() + READ_BUDGET_S
    if invocation.deadline is not None:
        deadline = min(deadline, invocation.deadline)
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


def _alerts(store: Store, deadline: float) -> tuple[list[dict[str, Any]], str | None]:
    """The alert state's firing alerts and fired log; its absence is no alerts."""
    from ..alerts import state  # noqa: PLC0415

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
