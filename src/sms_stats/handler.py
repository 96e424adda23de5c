"""`main_handler`: event in, job out, records fetched and delivered, an answer or a raise.

HTTP events always get an HTTP answer (errors included, never a traceback). Timer and direct
invocations return a summary, and raise when anything failed so that SCF retries them; every
write is idempotent, so the retry duplicates nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sms_stats import first_invocation_over, imported
from sms_stats.core import redact
from sms_stats.core.context import Invocation, RuntimeContext
from sms_stats.core.errors import ConfigError, InputError, SmsStatsError
from sms_stats.core.log import correlation, hold_third_party_loggers, logger
from sms_stats.core.settings import CONFIG_FILE_ENV, ENV_FIELDS, Settings
from sms_stats.deliver.sinks import Delivery, Sink, build_each
from sms_stats.events.jobs import Job, from_job_request, from_stats_request
from sms_stats.events.parse import TimerEvent, parse_direct, parse_event, parse_json_object
from sms_stats.run import preflight
from sms_stats.run.pipeline import RunResult, run_job

if TYPE_CHECKING:
    from sms_stats.events.direct import JobRequest, StatsRequest
    from sms_stats.events.http_event import HttpRequest

_ENV_KEYS = (*ENV_FIELDS, CONFIG_FILE_ENV, "TENCENTCLOUD_REGION")
# os.environ.get encodes each name and decodes each value: 49 us for 40 names on each warm
# call, against 1.6 us from the raw mapping behind it, where there is one (a private name,
# pinned by tests/test_library_pins.py).
_RAW_ENV: Mapping[Any, Any] = getattr(os.environ, "_data", os.environ)
_RAW_KEYS = tuple(map(os.fsencode, _ENV_KEYS)) if _RAW_ENV is not os.environ else _ENV_KEYS
_cache_lock = threading.Lock()
_settings_cache: dict[tuple[str | None, ...], Settings] = {}
_sinks_cache: dict[Settings, tuple[list[Sink], list[str]]] = {}


def utcnow() -> datetime:
    """The clock, in one place, so tests can pin it."""
    return datetime.now(timezone.utc)


def current_settings() -> Settings:
    """Settings for this container's environment, validated once per distinct environment."""
    key = tuple(map(_RAW_ENV.get, _RAW_KEYS))
    with _cache_lock:
        settings = _settings_cache.get(key)
    if settings is None:
        # New settings: the secrets registered for the old ones go (a warm container must not
        # collect every value it ever saw), and the sinks are rebuilt, registering theirs anew.
        with _cache_lock:
            redact.clear()
            _sinks_cache.clear()
        settings = preflight.load()
        with _cache_lock:
            _settings_cache.clear()
            _settings_cache[key] = settings
    logger.set_level(settings.log_level)
    return settings


def sinks_for(settings: Settings) -> list[Sink]:
    """The sinks of these settings, built once per container (ConfigError if any is wrong)."""
    sinks, problems = _built(settings)
    if problems:
        raise ConfigError.of(problems)
    return sinks


def _built(settings: Settings) -> tuple[list[Sink], list[str]]:
    with _cache_lock:
        built = _sinks_cache.get(settings)
    if built is None:
        built = build_each(settings)
        with _cache_lock:
            _sinks_cache.clear()
            _sinks_cache[settings] = built
    return built


def trigger_kind(event: Any) -> str:
    if isinstance(event, Mapping):
        if event.get("Type") in ("Timer", "timer"):
            return "timer"
        if "httpMethod" in event:
            return "http"
    return "direct"


def main_handler(event: Any, context: RuntimeContext | Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        answer = _invoke(event, context)
    except BaseException:
        first_invocation_over(failed=True)
        raise
    first_invocation_over()  # the cold path's garbage collection pace ends here
    return answer


def _invoke(event: Any, context: RuntimeContext | Mapping[str, Any] | None) -> dict[str, Any]:
    invocation = Invocation.begin(context)
    logger.set_level(os.environ.get("SMS_STATS_LOG_LEVEL", "INFO"))
    hold_third_party_loggers()  # the user's code may have reconfigured logging since
    kind = trigger_kind(event)
    with correlation(
        request_id=invocation.request_id, function=invocation.function_name, trigger=kind
    ):
        # SCF's own START line marks the beginning; ours is for local debugging only.
        logger.debug("invocation.start")
        if kind == "http":
            answer = handle_http(event, invocation)
            status = answer["statusCode"]
            logger.info(
                "invocation.end",
                outcome="ok" if status < 400 else "refused" if status < 500 else "error",
                status=status,
                **invocation.job,
                duration_ms=_since(invocation),
            )
            return answer
        try:
            result = handle_scheduled(event, invocation)
        except SmsStatsError as exc:
            logger.error(
                "invocation.end",
                outcome="error",
                code=exc.code,
                message=exc.message,
                **invocation.job,
                duration_ms=_since(invocation),
            )
            raise
        logger.info(
            "invocation.end", outcome="ok", **invocation.job, duration_ms=_since(invocation)
        )
        return result


def _since(invocation: Invocation) -> float:
    return round((time.monotonic() - invocation.started) * 1000, 1)


def handle_http(event: Any, invocation: Invocation) -> dict[str, Any]:
    from sms_stats.events.http_event import HttpEvent, normalize  # noqa: PLC0415 - HTTP only
    from sms_stats.web import http  # noqa: PLC0415 - a timer container never loads the HTTP layer

    request_id = invocation.request_id
    try:
        parsed = parse_event(event)
        if not isinstance(parsed, HttpEvent):  # pragma: no cover - trigger_kind saw httpMethod
            raise InputError("not an HTTP event")
        settings = current_settings()
        request = normalize(parsed, settings.max_body_bytes)
        path = http.route(request, settings.http_base_path)
        if path == "/healthz":
            ready_sinks(settings, scheduled=False)
            return http.response(200, {"status": "ok"})
        if path in http.PAGES:
            from sms_stats.web.dashboard import web  # noqa: PLC0415 - loaded only for its own paths

            return web.answer(
                request, path, settings, invocation, utcnow(), lambda: sinks_for(settings)
            )
        http.authorize(request, settings)
        now = utcnow()
        if path == "/metrics":
            from sms_stats.web import exposition  # noqa: PLC0415 - only a scrape loads it

            return exposition.answer(
                request.query, settings, sinks_for(settings), now, invocation.deadline
            )
        job = http.job_from_request(request, settings, now, path)
        if path == "/stats":
            stored = _from_store(job, request, settings, invocation, now)
            if stored is not None:
                return stored
        # A caller is waiting: earlier runs' debts are left to the timer (drain=False).
        result = _run(job, settings, invocation, scheduled=False, drain=False)
    except ConfigError as exc:
        # The details are for the operator's logs, not for whoever reached the Function URL.
        logger.error("http.refused", status=exc.status, code=exc.code, message=exc.message)
        public = ConfigError(
            f"the function is misconfigured; its logs say how (request id {request_id})"
        )
        return http.error_response(public, request_id)
    except SmsStatsError as exc:
        logger.warning("http.refused", status=exc.status, code=exc.code, message=exc.message)
        return http.error_response(exc, request_id)
    except Exception as exc:  # a bug: answer 500 without details, log the type for the operator
        logger.error("internal.error", error_type=type(exc).__name__)
        return http.error_response(
            SmsStatsError(f"unexpected internal error; quote request id {request_id}"), request_id
        )
    body = result.summary(public=True)
    records = {"records": body["records"]}
    extra = {k: body[k] for k in ("failures", "deliveries", "incomplete_windows") if body[k]}
    error = result.error(public=True)
    if error is not None and result.failures:
        logged = result.error() or error  # the logs keep the transport's detail
        logger.warning("http.refused", status=error.status, code=error.code, message=logged.message)
        return http.error_response(error, request_id, **records, **extra)
    if error is not None:
        extra["error"] = error.to_dict()
    return http.response(200, {**records, **extra, "source": "api", "request_id": request_id})


def _from_store(
    job: Job, request: HttpRequest, settings: Settings, invocation: Invocation, now: datetime
) -> dict[str, Any] | None:
    """`GET /stats` answered from the store when it holds every hour settled (no API call);
    None to ask the API (`fresh=true`, an hour missing or unsettled, no store)."""
    from sms_stats.web import http, readthrough  # noqa: PLC0415 - HTTP only

    if readthrough.wants_fresh(request.query):
        return None
    records = readthrough.from_store(job, settings, sinks_for(settings), now, invocation.deadline)
    if records is None:
        return None
    invocation.job.update(apps=len(job.app_ids), windows=len(job.windows), from_store=1)
    body = {"records": [r.to_dict() for r in records], "source": "store"}
    return http.response(200, {**body, "request_id": invocation.request_id})


def handle_scheduled(event: Any, invocation: Invocation) -> dict[str, Any]:
    parsed = parse_event(event)
    settings = current_settings()
    try:
        job = resolve_job(parsed, settings)
    except ConfigError as exc:  # no app ids: said together with what else is wrong
        ready_sinks(settings, scheduled=True, more=[exc.message])
        raise
    result = _run(job, settings, invocation, scheduled=True)
    if settings.alerts != ():  # SMS_STATS_ALERTS=[] turns alerts (and the digest) off
        now = parsed.Time if isinstance(parsed, TimerEvent) else utcnow()
        result.deliveries += _alerts(job, result, settings, invocation, now, parsed)
    error = result.error()
    if error is not None:
        raise error
    return result.summary()


def _alerts(
    job: Job,
    result: RunResult,
    settings: Settings,
    invocation: Invocation,
    now: datetime,
    parsed: Any,
) -> list[Delivery]:
    """Alerts and the digest: a room of their own, reading the run's records and the store.
    The digest is a timer's (a hand-run job is not "the first run after 9")."""
    from sms_stats.alerts.run import after_run  # noqa: PLC0415 - loaded only after a scheduled run
    from sms_stats.run.pipeline import client_for  # noqa: PLC0415

    sinks = ready_sinks(settings, scheduled=True)
    return after_run(
        [*result.records, *result.healed],  # healed send hours count as usage too
        settings,
        sinks,
        client_for(settings),
        now=now,
        app_ids=settings.app_ids or job.app_ids,
        kinds=[kind for kind in job.kinds if kind != "packages"],
        deadline=invocation.deadline,
        with_digest=isinstance(parsed, TimerEvent),
    )


def resolve_job(parsed: Any, settings: Settings) -> Job:
    if isinstance(parsed, TimerEvent):
        message = parsed.Message.strip()
        request: StatsRequest | JobRequest | None = None  # the default job
        # JSON structure means a job was meant: a broken one fails loudly, never falls back.
        if message.startswith(("{", "[")):
            request = parse_direct(parse_json_object(message, "Message"), "Message")
        now = parsed.Time
    else:
        from sms_stats.events import direct  # noqa: PLC0415 - loaded by parse_event already

        if not isinstance(parsed, (direct.StatsRequest, direct.JobRequest)):
            raise InputError("an HTTP event cannot be run as a scheduled job")
        request, now = parsed, utcnow()
    if request is not None:
        from sms_stats.events import direct  # noqa: PLC0415 - loaded with the request

        if isinstance(request, direct.StatsRequest):
            return from_stats_request(request, settings, now)
    job = from_job_request(request, settings, now)
    if isinstance(parsed, TimerEvent):
        refuse_unended(job, parsed.Time, utcnow())
    return job


def refuse_unended(job: Job, trigger_time: datetime, now: datetime) -> None:
    """A timer's windows end at or before its `Time`; a `Time` ahead of this clock (a hand-made
    event, a skewed host) would fetch hours that have not ended and store partial counts under
    their final keys. Refused before any call."""
    late = [window for window in job.windows if window.end > now]
    if late:
        raise InputError(
            f"Time: {trigger_time.isoformat()} is ahead of this machine's clock "
            f"({now.isoformat(timespec='seconds')}); window {late[0]} has not ended, and hours "
            "are fetched only once they have",
            code="InvalidParameterValue.BeginTimeVerifyFail",
        )


def ready_sinks(settings: Settings, *, scheduled: bool, more: Sequence[str] = ()) -> list[Sink]:
    """What a run needs before any API call: its sinks built, its credentials present and, for
    a scheduled run, somewhere to put the records. Every problem in one ConfigError (with
    `more` found by the caller); `/healthz` answers ok only when this passes."""
    sinks, problems = preflight.check(settings, scheduled=scheduled, built=_built(settings))
    problems.extend(more)
    if problems:
        raise ConfigError.of(problems)
    return sinks


def _run(
    job: Job, settings: Settings, invocation: Invocation, *, scheduled: bool, drain: bool = True
) -> RunResult:
    sinks = ready_sinks(settings, scheduled=scheduled)
    if not scheduled and any(window.grain == "range" for window in job.windows):
        # An HTTP question over several hours is answered, not stored: the store keeps hours
        # and days, and a range record beside them is one more thing to keep apart.
        logger.info("http.not_stored", reason="a range of hours is answered only")
        sinks = []
    elif not scheduled and "packages" in job.kinds:
        # GET /balance is a question: the timer keeps the snapshots; every query posting to
        # the chats would be noise.
        logger.info("http.not_stored", reason="a balance query is answered only")
        sinks = []
    result = run_job(job, settings, invocation, sinks, drain=drain, clock=utcnow)
    # What the job did goes on the invocation's one closing line (a line costs ~50 us warm).
    invocation.job.update(
        apps=len(job.app_ids),
        windows=len(job.windows),
        records=len(result.records),
        failures=len(result.failures),
        failed_deliveries=len(result.failed_deliveries),
        left_for_next_run=len(result.left_for_next_run),
        **{f"heal_{name}": value for name, value in sorted(result.heal.items())},
    )
    return result


imported()  # last: everything the handler needs at every call is loaded
