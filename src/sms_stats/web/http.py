"""HTTP requests into answers: routing on the whole path, the bearer check, `/stats` and
`/balance` queries into jobs, and the contract's JSON out. The request itself arrives already
normalized (`events.http_event`); `error_response` is the one place an exception becomes an
HTTP answer.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sms_stats.collect.apis import api
from sms_stats.core.errors import (
    AccessError,
    InputError,
    MethodNotAllowedError,
    NotFoundError,
    SmsStatsError,
)
from sms_stats.core.log import logger
from sms_stats.core.records import Kind
from sms_stats.core.redact import short
from sms_stats.core.settings import Settings
from sms_stats.core.windows import last_full
from sms_stats.events.direct import StatsRequest
from sms_stats.events.http_event import HttpRequest
from sms_stats.events.jobs import Job, check_app_ids, from_stats_request, window_between
from sms_stats.events.parse import parse_direct, parse_json_object

# nosniff: a browser must not read an answer that quotes a caller's text as HTML or script.
JSON_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
}
# One encoder for every answer: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
ROUTES: dict[str, tuple[str, ...]] = {
    "/stats": ("GET", "POST"),
    "/balance": ("GET",),
    "/healthz": ("GET",),
    "/metrics": ("GET",),
    "/dashboard": ("GET",),
    "/login": ("GET", "POST"),
    "/logout": ("POST",),
}
PAGES = ("/dashboard", "/login", "/logout", "/")  # HTML, answered by sms_stats.web.dashboard.web
QUERY_KINDS = ("send", "callback")  # /stats?kind=; the balance has a path of its own
# Query names, with the seed's names as aliases.
_QUERY_ALIASES = {
    "app_id": "app_id",
    "SmsSdkAppId": "app_id",
    "begin": "begin",
    "BeginTime": "begin",
    "end": "end",
    "EndTime": "end",
    "Limit": "Limit",
    "Offset": "Offset",
    "kind": "kind",
}


def route(request: HttpRequest, base_path: str = "") -> str:
    """The route, matched on the whole path: `/foo/healthz` and `/stats/../healthz` are not
    `/healthz`. Both triggers send the API's own path; a gateway API mounted under a prefix
    (`/sms-stats/stats`) names it in SMS_STATS_HTTP_BASE_PATH."""
    path = request.path
    if base_path:
        path = path[len(base_path) :] if path.startswith(base_path + "/") else ""
    for name, methods in ROUTES.items():
        if path == name:
            if request.method not in methods:
                raise MethodNotAllowedError(
                    f"{request.method} is not allowed on {name}; use {' or '.join(methods)}",
                    allow=methods,
                )
            return name
    if path == "/" and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return "/"  # a person opening the function's address: sent on to /dashboard
    hint = ""
    if any(request.path.endswith(name) for name in ROUTES):
        hint = " (if a gateway mounts the function under a prefix, set SMS_STATS_HTTP_BASE_PATH)"
    shown = ", ".join(f"{'/'.join(m)} {base_path}{n}" for n, m in ROUTES.items())
    raise NotFoundError(f"no such path {short(request.path, 100)}; the paths are {shown}{hint}")


def authorize(request: HttpRequest, settings: Settings) -> None:
    """Bearer token check in constant time; no token configured refuses everyone."""
    if not settings.api_tokens:
        if settings.allow_anonymous:
            return
        raise AccessError(
            "the HTTP entry is closed: no SMS_STATS_API_TOKEN is configured (set one, or "
            "SMS_STATS_ALLOW_ANONYMOUS=true to open it)"
        )
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise AccessError("send Authorization: Bearer <token>")
    tokens = [token.get_secret_value() for token in settings.api_tokens]
    if not token_matches(presented.strip(), tokens):
        raise AccessError("the bearer token is not valid")


def token_matches(given: str, tokens: Sequence[str]) -> bool:
    """`given` against every configured token, in constant time: every token is compared,
    so the time taken says nothing about which one (if any) matched."""
    raw = given.encode("utf-8", "surrogatepass")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(raw, token.encode("utf-8"))
    return matched


def check_allowed(app_ids: Sequence[str], settings: Settings) -> None:
    allowed = settings.http_allowlist
    if "*" in allowed:
        return
    for app_id in app_ids:
        if app_id not in allowed:
            raise AccessError(
                f"app {app_id} is not open to HTTP queries (SMS_STATS_HTTP_APP_IDS, "
                "default SMS_STATS_APP_IDS)",
                code="UnauthorizedOperation.RequestPermissionDeny",
                status=403,
            )


def job_from_request(
    request: HttpRequest, settings: Settings, now: datetime, path: str = "/stats"
) -> Job:
    if path == "/balance":
        job = _balance_job(request.query, settings, now)
    elif request.method == "GET":
        job = _job_from_query(request.query, settings, now)
    else:
        payload = parse_json_object(request.body, "body") if request.body.strip() else None
        if payload is None:
            raise InputError(
                "POST /stats needs a JSON body like "
                '{"SmsSdkAppId": "1400006874", "BeginTime": "2021050113", '
                '"EndTime": "2021050113", "Limit": 0, "Offset": 0}',
                code="MissingParameter",
            )
        direct = parse_direct(payload, "body")
        if isinstance(direct, StatsRequest):
            job = from_stats_request(direct, settings, now)
        else:
            raise InputError(
                "POST /stats takes the SendStatusStatistics request shape "
                "(SmsSdkAppId, BeginTime, EndTime, Limit, Offset), not a job"
            )
    check_allowed(job.app_ids, settings)
    return job


def _balance_job(query: Mapping[str, list[str | bool]], settings: Settings, now: datetime) -> Job:
    """`GET /balance?app_id=..`: a snapshot of each app's packages, now."""
    params = _known(query)
    app_ids = _app_ids(params)
    return Job(
        check_app_ids(app_ids, "app_id", settings),
        tuple(last_full(now, settings.zone)),
        kinds=("packages",),
    )


def _known(query: Mapping[str, list[str | bool]]) -> dict[str, list[str | bool]]:
    params: dict[str, list[str | bool]] = {}
    for name, values in query.items():
        canonical = _QUERY_ALIASES.get(name)
        if canonical is None:
            # Browsers and proxies add their own (`_=1712345678`, `utm_source`): not ours to
            # refuse. A misspelt one of ours still fails, as its real name is then missing.
            logger.debug("http.query_ignored", parameter=short(name))
            continue
        params.setdefault(canonical, []).extend(values)
    return params


def _app_ids(params: Mapping[str, list[str | bool]]) -> list[str]:
    app_ids: list[str] = []
    for value in params.get("app_id", []):
        app_ids.extend(part.strip() for part in _text(value, "app_id").split(",") if part.strip())
    return app_ids


def _job_from_query(
    query: Mapping[str, list[str | bool]], settings: Settings, now: datetime
) -> Job:
    params = _known(query)
    for name in ("Limit", "Offset"):
        if name in params and [str(v) for v in params[name]] != ["0"]:
            raise InputError(
                f"{name}: is fixed at 0 by the API; got {short(params[name])}",
                code=f"InvalidParameterValue.{name}VerifyFail",
            )
    kind = _single(params, "kind") if "kind" in params else "send"
    if kind not in QUERY_KINDS:
        raise InputError(
            f"kind: must be {' or '.join(QUERY_KINDS)} (the balance is GET /balance); "
            f"got {short(kind)}"
        )
    app_ids = _app_ids(params)
    begin = _single(params, "begin")
    end = _single(params, "end")
    window = window_between(begin, end, settings, now, names=("begin", "end"))
    limit = api("callback").max_hours if kind == "callback" else None
    if limit is not None and window.hours > limit:
        raise InputError(
            f"end: receipts are counted over at most 32 days per call; the span {begin}..{end} "
            f"is {window.hours} hours",
            code="InvalidParameterValue.EndTimeVerifyFail",
        )
    kinds: tuple[Kind, ...] = ("callback",) if kind == "callback" else ("send",)
    return Job(check_app_ids(app_ids, "app_id", settings), (window,), kinds=kinds)


def _single(params: Mapping[str, list[str | bool]], name: str) -> str:
    values = params.get(name)
    if not values:
        raise InputError(f"{name} is required (yyyymmddhh)", code="MissingParameter")
    if len(values) > 1:
        raise InputError(f"{name}: give it once; got {len(values)} values", code=_code(name))
    return _text(values[0], name)


def _text(value: str | bool, name: str) -> str:
    if isinstance(value, bool):
        raise InputError(f"{name}: has no value (a bare ?{name})", code=_code(name))
    return value


def _code(name: str) -> str:
    return {
        "begin": "InvalidParameterValue.BeginTimeVerifyFail",
        "end": "InvalidParameterValue.EndTimeVerifyFail",
    }.get(name, "InvalidParameter")


def response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": _encode(body),
    }


def error_response(exc: SmsStatsError, request_id: str, **extra: Any) -> dict[str, Any]:
    """The contract's error body, with the status the error's code maps to."""
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = ", ".join(exc.allow)
    if isinstance(exc, AccessError) and exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sms-stats"'
    body: dict[str, Any] = {"error": exc.to_dict(), "request_id": request_id, **extra}
    return response(exc.status, body, headers)
