"""A local stand-in for Tencent Cloud's SMS API 3.0 endpoint: the three statistics actions of
version 2021-01-11 (SendStatusStatistics, CallbackStatusStatistics, SmsPackagesStatistics).

Why it exists: the real endpoint cannot be called from CI, and mocking the SDK would hide the
traps that matter (signature drift, exact Content-Type, errors delivered as HTTP 200, transport
failures). So this speaks the wire protocol the official SDK speaks and verifies what it
receives the way the service does; tests drive the real SDK against it.

Standard library only, so starting it costs a socket and a thread.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, TextIO
from urllib.parse import SplitResult, parse_qsl, urlsplit

from sms_stats.emulator import counts as _counts
from sms_stats.emulator import packages as _packages
from sms_stats.emulator import tc3
from sms_stats.emulator.counts import Surge
from sms_stats.emulator.loopback import LoopbackHandler, LoopbackService, reason

SERVICE = "sms"
ACTION = "SendStatusStatistics"
CALLBACK_ACTION = "CallbackStatusStatistics"
PACKAGES_ACTION = "SmsPackagesStatistics"
ACTIONS = (ACTION, CALLBACK_ACTION, PACKAGES_ACTION)
KINDS: dict[str, str] = {"send": ACTION, "callback": CALLBACK_ACTION, "packages": PACKAGES_ACTION}
"""The short names of the actions, as ``SMS_STATS_COLLECT`` spells them."""
VERSION = "2021-01-11"
DEFAULT_CREDENTIALS: dict[str, str] = {"AKIDEMULATOR": "emulator-secret-key"}
UNAUTHORIZED_APP_ID = "1400000000"
"""A well-formed SmsSdkAppId that "belongs to another account", for permission-error tests."""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""TC3 POST bodies are capped at 10 MB by the API docs."""

HANG_CAP_S = 60.0
"""A hanging fault gives up after this long so a forgotten emulator cannot pin a thread forever."""

IDLE_TIMEOUT_S = 30.0
"""Keep-alive connections idle this long are closed, as a real front end would."""

_REGION = re.compile(r"^[a-z]+-[a-z]+(-[0-9]+)?$")
_APP_ID = re.compile(r"^1400[0-9]{6}$")
_PARAMETERS = ("SmsSdkAppId", "BeginTime", "EndTime", "Limit", "Offset")
_PACKAGE_PARAMETERS = ("SmsSdkAppId", "Limit", "Offset", "BeginTime", "EndTime")
_PAGING_FAULTS = ("repeat", "skip", "overlap")
_JSON = "application/json"

_MESSAGES: dict[str, str] = {
    "AuthFailure.SignatureFailure": (
        "The provided credentials could not be validated. Please check your signature is correct."
    ),
    "AuthFailure.SecretIdNotFound": (
        "The SecretId is not found, please ensure that your SecretId is correct."
    ),
    "AuthFailure.TokenFailure": "The session token is invalid or has expired.",
    "RequestLimitExceeded": "Your request rate exceeds the frequency limit. Please slow down.",
    "InternalError": "An internal error occurred. Please retry later.",
    "InternalError.Timeout": "The request timed out in the backend. Please retry later.",
    "InternalError.OtherError": "Other error. Please retry later or contact SMS Helper.",
    "InternalError.SendAndRecvFail": "The backend timed out sending or receiving the request.",
    "InternalError.UnknownError": "Unknown error.",
    "FailedOperation.JsonParseFail": "Failed to parse the request body as a JSON object.",
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": (
        "Failed to verify SmsSdkAppId: it does not belong to the account of this SecretId."
    ),
    "UnauthorizedOperation.RequestPermissionDeny": "The request does not have permission.",
    "UnauthorizedOperation.SdkAppIdIsDisabled": "This SdkAppId is disabled.",
    "UnauthorizedOperation.ServiceSuspendDueToArrears": "The service is suspended for arrears.",
}


@dataclass
class Fault:
    """Injected misbehaviour, matched by the request body's SmsSdkAppId or applied globally,
    for every action or only ``action`` (an action name, or its kind: send, callback, packages).

    Faults act after signature verification and the rate limit, like an upstream failure
    behind a healthy gateway. When several behaviours are set, ``latency_s`` always applies
    first, then the first of hang, http_status, html, no_response_key, raw_body, error_code
    wins; ``fields``, ``drip_s`` and ``huge_body`` change the answer that is given.
    A fault with only ``latency_s`` slows the request and then answers normally.

    Answers the SDK's models would take and no real API gives: ``raw_body`` is answered as-is
    (HTTP 200, ``content_type``); ``fields`` replaces fields of the normal answer with JSON
    text, which may be what Python cannot hold (``{"RequestCount": "1e400"}``, ``"Infinity"``,
    ``"-1"``, ``"true"``, ``'"12"'``; ``RequestId`` is the Response's, the rest are the
    statistics object's, or every package's in SmsPackagesStatistics). ``repeated`` writes
    fields a second time, as JSON text after the answer's own (the same places as ``fields``):
    a key named twice, ``{"RequestCount": 1880, "RequestCount": 7}``, which JSON parsers
    settle silently, most by keeping the last. ``drip_s`` writes the
    body one byte every ``drip_s`` seconds; ``huge_body`` pads the answer to that many bytes
    (a JSON string field that never ends before the last byte, so any cut of it is malformed).

    Answers that break the API's own rules, which a client must notice rather than store:
    ``overuse`` gives the first package of each page a CurrentUsage above its PackageAmount;
    ``overcount`` answers more receipts than successful submissions (CallbackCount and
    CallbackSuccessCount raised alike, so only that rule breaks); ``paging`` is ``"repeat"``
    (Offset ignored: every page is the first), ``"skip"`` (each page starts a page further on)
    or ``"overlap"`` (each page after the first starts one package early).
    """

    error_code: str | None = None
    http_status: int | None = None
    latency_s: float = 0.0
    hang: bool = False
    times: int | None = None
    html: bool = False
    no_response_key: bool = False
    raw_body: bytes | None = None
    content_type: str = "application/json"
    fields: dict[str, str] | None = None
    repeated: dict[str, str] | None = None
    drip_s: float = 0.0
    huge_body: int | None = None
    action: str | None = None
    overuse: bool = False
    overcount: bool = False
    paging: str | None = None
    after: int = 0  # requests it lets through first: a fault of the Nth call, not the first


class ApiError(Exception):
    """An answer in Tencent's error envelope: HTTP 200, ``Response.Error.{Code,Message}``."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or _MESSAGES.get(code, f"Error {code} (injected by the emulator).")


@dataclass
class _Reply:
    """An answer the stand-in will write, with how to misbehave while writing it (hang, drip,
    pad), so faults exercise the client's transport and not only its parsing."""

    status: int
    content_type: str
    body: bytes
    code: str
    hang: bool = False
    drip_s: float = 0.0  # seconds between the body's bytes
    pad_to: int | None = None  # the body is padded to this many bytes as it is written


@dataclass
class _Armed:
    """An injected fault, how many more requests it applies to (None: until cleared) and how
    many it still lets through before it does."""

    fault: Fault
    remaining: int | None
    waiting: int = 0


def _json_reply(payload: dict[str, Any], code: str) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _Reply(HTTPStatus.OK, _JSON, body, code)


def _error_reply(error: ApiError, request_id: str) -> _Reply:
    envelope = {"Error": {"Code": error.code, "Message": error.message}, "RequestId": request_id}
    return _json_reply({"Response": envelope}, error.code)


def _missing(name: str) -> ApiError:
    return ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")


class _SlidingWindow:
    """Per-key sliding-log limiter.

    A sliding log, not a token bucket: a bucket lets a full burst through on top of its refill,
    so a client could get 2x the documented rate inside one second and never learn to pace
    itself. Here no window of ``window_s`` ever holds more than ``capacity`` admissions.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate_limit must be positive")
        if rate >= 1:
            self.window_s, self.capacity = 1.0, int(rate)
        else:
            self.window_s, self.capacity = 1.0 / rate, 1
        self._admitted: dict[tuple[str, str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: tuple[str, str, str]) -> tuple[bool, float]:
        """Return (admitted, decision time); the time is read under the lock so logs agree."""
        with self._lock:
            now = time.monotonic()
            admitted = self._admitted.setdefault(key, deque())
            while admitted and admitted[0] <= now - self.window_s:
                admitted.popleft()
            if len(admitted) >= self.capacity:
                return False, now
            admitted.append(now)
            return True, now


PackageSpec = int | Sequence[Mapping[str, int]]
"""An app's packages: how many to generate (`generated_packages`), or the list itself."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Emulator(LoopbackService):
    """Serves the three statistics actions on a local port; see the module docstring for why.

    `start`, `stop`, `port`, `endpoint` and the context manager come from `LoopbackService`.
    ``clock`` is read for what depends on the time of the request (how far receipts have
    settled, which packages exist, whether SmsPackagesStatistics' EndTime is in the future);
    ``packages`` gives apps other packages than the default handful (see `set_packages`).
    Surges (`add_surge`) scale an app's sends, and the receipts that follow them, for some
    hours; they stay until `clear_surges`, whatever `clear_faults` does.
    """

    def __init__(
        self,
        credentials: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: float | None = None,
        latency_s: float = 0.0,
        max_skew_s: int = 300,
        log_stream: TextIO | None = None,
        clock: Callable[[], datetime] = _utc_now,
        packages: Mapping[str, PackageSpec] | None = None,
        settle_after: timedelta = _counts.SETTLE_AFTER,
    ) -> None:
        super().__init__(_Handler, host=host, port=port, label="emulator")
        self._credentials = dict(DEFAULT_CREDENTIALS if credentials is None else credentials)
        self._limiter = None if rate_limit is None else _SlidingWindow(rate_limit)
        self._latency_s = latency_s
        self._max_skew_s = max_skew_s
        self._log_stream = log_stream
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._faults: dict[tuple[str | None, str | None], _Armed] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=100_000)
        self._rejected = 0
        self._clock = clock
        self._packages: dict[str, PackageSpec] = {}
        if settle_after < timedelta(0):
            raise ValueError("settle_after must be >= 0")
        self.settle_after = settle_after
        self._late: dict[tuple[str, str], int] = {}
        self._surges: tuple[Surge, ...] = ()  # replaced whole under the lock, read as a snapshot
        for app_id, spec in (packages or {}).items():
            self.set_packages(app_id, spec)

    # -- control ---------------------------------------------------------------------------

    def set_fault(self, fault: Fault, app_id: str | None = None) -> None:
        """Replace the fault for ``app_id`` and ``fault.action`` (``None``: any).

        The most specific fault wins: this app and action, this app, this action, then the
        global one.
        """
        if fault.action is not None:
            if fault.action not in ACTIONS and fault.action not in KINDS:
                names = ", ".join((*ACTIONS, *KINDS))
                raise ValueError(f"Fault.action must be one of {names}; got {fault.action!r}")
            fault = replace(fault, action=KINDS.get(fault.action, fault.action))
        if fault.paging is not None and fault.paging not in _PAGING_FAULTS:
            raise ValueError(f"Fault.paging must be one of {', '.join(_PAGING_FAULTS)}")
        if fault.times is not None and fault.times < 0:
            raise ValueError("Fault.times must be >= 0 or None")
        if fault.after < 0:
            raise ValueError("Fault.after must be >= 0")
        if fault.latency_s < 0:
            raise ValueError("Fault.latency_s must be >= 0")
        if fault.http_status is not None and not 100 <= fault.http_status <= 599:
            raise ValueError("Fault.http_status must be an HTTP status code")
        if fault.drip_s < 0:
            raise ValueError("Fault.drip_s must be >= 0")
        if fault.huge_body is not None and fault.huge_body < 0:
            raise ValueError("Fault.huge_body must be >= 0")
        for attribute in ("fields", "repeated"):
            for name, text in (getattr(fault, attribute) or {}).items():
                try:
                    json.loads(text)  # Python's JSON: Infinity, NaN and 1e400 are accepted
                except ValueError:
                    message = f"Fault.{attribute}[{name!r}] must be JSON text, got {text!r}"
                    raise ValueError(message) from None
        with self._lock:
            self._faults[(app_id, fault.action)] = _Armed(fault, fault.times, fault.after)

    def clear_faults(self) -> None:
        """Remove every injected fault. Surges are traffic, not faults, and stay: tests clear
        faults between steps of one scenario whose surge must last (see `clear_surges`)."""
        with self._lock:
            self._faults.clear()

    def add_surge(self, app_id: str, begin_hour: str, hours: int, factor: float) -> Surge:
        """From now on, ``app_id`` sends ``factor`` times its usual figures for ``hours`` hours
        from ``begin_hour`` (``yyyymmddhh``): requests, successes and billed parts alike, and
        receipts follow. Returns the `Surge`, which a test passes to `expected(...,
        surges=...)`; surges that overlap multiply. Raises ValueError for a bad argument."""
        surge = Surge(app_id, begin_hour, hours, factor)
        with self._lock:
            self._surges = (*self._surges, surge)
        return surge

    def clear_surges(self) -> None:
        """Every app back to its usual figures (`clear_faults` leaves surges alone)."""
        with self._lock:
            self._surges = ()

    @property
    def surges(self) -> tuple[Surge, ...]:
        """The surges in effect, in the order they were added."""
        with self._lock:
            return self._surges

    def add_receipts(self, app_id: str, hour: str, count: int) -> None:
        """``count`` more delivered receipts for ``app_id``'s ``hour``, arriving now: what
        changes a stored hour long after it settled (receipts keep coming for days). At most
        as many as the hour still lacks (receipts never exceed accepted submissions)."""
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            late = self._late.get((app_id, hour), 0) + count
        final = _counts.hour_callback_counts(
            app_id,
            hour,
            _counts.hour_start(hour) + timedelta(days=365),
            self.settle_after,
            late,
            self.surges,
        )
        if final["CallbackCount"] > final["RequestSuccessCount"]:
            room = final["RequestSuccessCount"] - final["CallbackCount"] + late
            raise ValueError(
                f"hour {hour} of {app_id} lacks only {room - (late - count)} receipts; "
                f"cannot add {count}"
            )
        with self._lock:
            self._late[(app_id, hour)] = late

    def late_receipts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._late)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    @property
    def rejected_count(self) -> int:
        with self._lock:
            return self._rejected

    @staticmethod
    def counts(app_id: str, hour: str, surges: Sequence[Surge] = ()) -> dict[str, int]:
        """One hour's SendStatusStatistics; pass ``surges`` (e.g. ``emu.surges``) to predict
        an emulator that has them."""
        return _counts.hour_counts(app_id, hour, surges)

    @staticmethod
    def expected(app_id: str, begin: str, end: str, surges: Sequence[Surge] = ()) -> dict[str, int]:
        """A range's SendStatusStatistics, the sum of its hours, under ``surges``."""
        return _counts.range_counts(app_id, begin, end, surges)

    @staticmethod
    def callback_counts(
        app_id: str, hour: str, now: datetime | None = None, surges: Sequence[Surge] = ()
    ) -> dict[str, int]:
        """One hour's CallbackStatusStatistics as answered at ``now`` (default: now, UTC)."""
        return _counts.hour_callback_counts(
            app_id, hour, now or _utc_now(), _counts.SETTLE_AFTER, 0, surges
        )

    @staticmethod
    def expected_callback(
        app_id: str,
        begin: str,
        end: str,
        now: datetime | None = None,
        surges: Sequence[Surge] = (),
    ) -> dict[str, int]:
        """A range's CallbackStatusStatistics as answered at ``now`` (default: now, UTC)."""
        return _counts.range_callback_counts(
            app_id, begin, end, now or _utc_now(), _counts.SETTLE_AFTER, None, surges
        )

    def receipts_of(
        self, app_id: str, begin: str, end: str, now: datetime | None = None
    ) -> dict[str, int]:
        """What this stand-in answers CallbackStatusStatistics for the range at ``now``
        (default: its clock): its own `settle_after`, surges and the receipts added since."""
        return _counts.range_callback_counts(
            app_id,
            begin,
            end,
            now or self._clock(),
            self.settle_after,
            self.late_receipts(),
            self.surges,
        )

    @staticmethod
    def expected_packages(
        app_id: str, now: datetime | None = None, count: int | None = None
    ) -> list[dict[str, int]]:
        """Every package of an app, in the API's order, as they are at ``now``: the default
        handful, or ``count`` generated ones (`set_packages(app_id, count)`)."""
        moment = now or _utc_now()
        if count is None:
            return _packages.default_packages(app_id, moment)
        return _packages.generated_packages(app_id, count, moment)

    @staticmethod
    def remaining(packages: Sequence[Mapping[str, int]], now: datetime) -> int:
        """What is left to send at ``now``: amount less usage of the packages in effect and
        not expired (expired messages are lost; a package not yet in effect holds none; an
        over-used package counts 0, not less)."""
        return _packages.remaining(packages, now)

    def set_packages(self, app_id: str, packages: PackageSpec | None) -> None:
        """Give ``app_id`` ``packages`` generated packages, or this list of API-shaped
        packages (the seven fields, ints); ``None`` restores the default handful."""
        if packages is None:
            with self._lock:
                self._packages.pop(app_id, None)
            return
        if isinstance(packages, int):
            if type(packages) is not int or packages < 0:
                raise ValueError("a package count must be an int >= 0")
            spec: PackageSpec = packages
        else:
            spec = _packages.checked(packages)
        with self._lock:
            self._packages[app_id] = spec

    def packages_of(self, app_id: str, now: datetime | None = None) -> list[dict[str, int]]:
        """Every package the emulator serves for ``app_id`` (at ``now``, default its clock),
        in the API's order (creation time, then id), before any fault."""
        moment = now or self._clock()
        with self._lock:
            spec = self._packages.get(app_id)
        if spec is None:
            return _packages.default_packages(app_id, moment)
        if isinstance(spec, int):
            return _packages.generated_packages(app_id, spec, moment)
        return [dict(package) for package in spec]

    # -- request processing (called from handler threads) ----------------------------------

    def _respond(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        read_body: Callable[[], bytes],
    ) -> tuple[_Reply, dict[str, Any]]:
        request_id = str(uuid.uuid4())
        split = urlsplit(target)
        entry: dict[str, Any] = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "method": method,
            "path": split.path,
            "action": headers.get("x-tc-action"),
            "region": headers.get("x-tc-region"),
            "secret_id": None,
            "token": bool(headers.get("x-tc-token")),
            "app_id": None,
            "begin": None,
            "end": None,
            "status": None,
            "code": None,
            "request_id": request_id,
            "latency_ms": None,
            "t": time.monotonic(),
        }
        try:
            reply = self._process(method, split, headers, read_body, entry, request_id)
        except ApiError as error:
            reply = _error_reply(error, request_id)
        except Exception:  # an emulator bug must read as a server error, not a dead socket
            reply = _error_reply(ApiError("InternalError"), request_id)
        return reply, entry

    def _process(
        self,
        method: str,
        split: SplitResult,
        headers: Mapping[str, str],
        read_body: Callable[[], bytes],
        entry: dict[str, Any],
        request_id: str,
    ) -> _Reply:
        body = read_body()  # always drained, so a keep-alive connection stays in sync
        if split.path != "/":
            return _Reply(HTTPStatus.NOT_FOUND, "text/plain", b"404 page not found\n", "HTTP404")
        if method not in ("GET", "POST"):
            raise ApiError(
                "UnsupportedProtocol",
                f"The HTTP method {method} is not supported; use GET or POST.",
            )
        action = headers.get("x-tc-action")
        if not action:
            raise _missing("Action")
        version = headers.get("x-tc-version")
        if not version:
            raise _missing("Version")
        if action not in ACTIONS:
            raise ApiError("InvalidAction", f"The requested action `{action}` does not exist.")
        if version != VERSION:
            raise ApiError(
                "NoSuchVersion",
                f"The requested version `{version}` of action `{action}` does not exist.",
            )
        self._authenticate(method, split, headers, body, entry)
        region = headers.get("x-tc-region")
        if not region:
            raise _missing("Region")
        if not _REGION.match(region):
            raise ApiError(
                "UnsupportedRegion", f"The action does not support the region `{region}`."
            )
        self._admit(action, region, entry)

        params, parse_error = _parse_parameters(method, split.query, headers, body)
        for key, field in (("app_id", "SmsSdkAppId"), ("begin", "BeginTime"), ("end", "EndTime")):
            value = params.get(field)
            entry[key] = value if isinstance(value, str) else None
        fault = self._take_fault(entry["app_id"], action)
        if fault is not None:
            faulted = self._apply(fault, request_id)
            if faulted is not None:
                return faulted
        if parse_error is not None:
            raise parse_error
        name, answer = self._answer(action, params, fault)
        if fault is None:
            return _json_reply({"Response": {name: answer, "RequestId": request_id}}, "OK")
        return _shaped_reply(fault, name, answer, request_id)

    def _answer(
        self, action: str, params: Mapping[str, Any], fault: Fault | None
    ) -> tuple[str, dict[str, int] | list[dict[str, int]]]:
        """The validated action's answer: the Response key and its value."""
        if action == CALLBACK_ACTION:
            app_id, begin, end = _validate(params, callback=True)
            now = self._clock()
            figures = _counts.range_callback_counts(
                app_id, begin, end, now, self.settle_after, self.late_receipts(), self.surges
            )
            if fault is not None and fault.overcount:
                extra = figures["RequestSuccessCount"] - figures["CallbackCount"] + 1
                figures["CallbackCount"] += extra
                figures["CallbackSuccessCount"] += extra
            return "CallbackStatusStatistics", figures
        if action == PACKAGES_ACTION:
            now = self._clock()
            app_id, limit, offset, begin, end = _validate_packages(params, now)
            chosen = _packages.created_between(self.packages_of(app_id, now), begin, end)
            start = offset
            if fault is not None and fault.paging == "repeat":
                start = 0
            elif fault is not None and fault.paging == "skip" and offset > 0:
                start = offset + limit
            elif fault is not None and fault.paging == "overlap" and offset > 0:
                start = offset - 1
            page = chosen[start : start + limit]
            if fault is not None and fault.overuse and page:
                page[0]["CurrentUsage"] = page[0]["PackageAmount"] + 1 + page[0]["PackageId"] % 97
            return "SmsPackagesStatisticsSet", page
        app_id, begin, end = _validate(params)
        figures = _counts.range_counts(app_id, begin, end, self.surges)
        statistics = {
            "FeeCount": figures["FeeCount"],
            "RequestCount": figures["RequestCount"],
            "RequestSuccessCount": figures["RequestSuccessCount"],
        }
        return "SendStatusStatistics", statistics

    def _authenticate(
        self,
        method: str,
        split: SplitResult,
        headers: Mapping[str, str],
        body: bytes,
        entry: dict[str, Any],
    ) -> None:
        raw = headers.get("authorization")
        if not raw:
            raise ApiError(
                "AuthFailure.InvalidAuthorization", "The Authorization header is missing."
            )
        try:
            auth = tc3.parse_authorization(raw)
        except tc3.AuthorizationFormatError as exc:
            raise ApiError(
                "AuthFailure.InvalidAuthorization",
                f"The Authorization header does not follow the TC3-HMAC-SHA256 standard: {exc}.",
            ) from None
        entry["secret_id"] = auth.secret_id
        secret_key = self._credentials.get(auth.secret_id)
        if secret_key is None:
            raise ApiError("AuthFailure.SecretIdNotFound")
        stamp = headers.get("x-tc-timestamp")
        if not stamp:
            raise _missing("Timestamp")
        if not (stamp.isascii() and stamp.isdigit()):
            raise ApiError("InvalidParameter", "X-TC-Timestamp must be an integer Unix time.")
        timestamp = int(stamp)
        skew = abs(time.time() - timestamp)
        if skew > self._max_skew_s:
            raise ApiError(
                "AuthFailure.SignatureExpire",
                f"Signature expired: the timestamp {stamp} differs from server time by more "
                f"than {self._max_skew_s} seconds. Please check your local clock.",
            )
        if auth.service != SERVICE:
            raise ApiError(
                "AuthFailure.SignatureFailure",
                f"The credential scope service `{auth.service}` must be `{SERVICE}`.",
            )
        utc_date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
        if auth.date != utc_date:
            raise ApiError(
                "AuthFailure.SignatureFailure",
                f"The credential scope date `{auth.date}` must be the UTC date of "
                f"X-TC-Timestamp ({utc_date}).",
            )
        signed: list[tuple[str, str]] = []
        for name in auth.header_names:
            value = headers.get(name)
            if value is None:
                raise ApiError(
                    "AuthFailure.SignatureFailure", f"The signed header `{name}` is missing."
                )
            signed.append((name, value))
        payload = b"" if method == "GET" else body
        if headers.get("x-tc-content-sha256") == tc3.UNSIGNED_PAYLOAD:
            payload = tc3.UNSIGNED_PAYLOAD.encode()
        canonical = tc3.canonical_request(
            method, split.path, split.query, signed, auth.signed_headers, payload
        )
        expected = tc3.signature(
            secret_key, auth.date, auth.service, tc3.string_to_sign(stamp, auth.scope, canonical)
        )
        if not hmac.compare_digest(expected, auth.signature):
            raise ApiError("AuthFailure.SignatureFailure")

    def _admit(self, action: str, region: str, entry: dict[str, Any]) -> None:
        if self._limiter is None:
            entry["t"] = time.monotonic()
            return
        admitted, decided_at = self._limiter.admit((action, region, str(entry["secret_id"])))
        entry["t"] = decided_at
        if not admitted:
            with self._lock:
                self._rejected += 1
            limit = self._limiter
            raise ApiError(
                "RequestLimitExceeded",
                f"Your request rate exceeds the frequency limit of {limit.capacity} per "
                f"{limit.window_s:g} s for this action, region and SecretId. "
                "Please reduce the frequency of calls.",
            )

    def _take_fault(self, app_id: str | None, action: str) -> Fault | None:
        apps: tuple[str | None, ...] = (app_id, None) if app_id is not None else (None,)
        keys = [(app, scope) for app in apps for scope in (action, None)]
        with self._lock:
            for key in keys:
                armed = self._faults.get(key)
                if armed is None:
                    continue
                if armed.waiting > 0:
                    armed.waiting -= 1
                    return None
                if armed.remaining is not None:
                    if armed.remaining <= 0:
                        del self._faults[key]
                        continue
                    armed.remaining -= 1
                return armed.fault
        return None

    def _apply(self, fault: Fault, request_id: str) -> _Reply | None:
        self._pause(fault.latency_s)
        if fault.hang:
            return _Reply(0, "", b"", "Fault.Hang", hang=True)
        if fault.http_status is not None:
            text = f"{fault.http_status} {reason(fault.http_status)}\n".encode()
            return _Reply(fault.http_status, "text/plain", text, f"HTTP{fault.http_status}")
        if fault.html:
            page = (
                "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                "<body><h1>502 Bad Gateway</h1><hr><p>stgw</p></body></html>\n"
            )
            return _Reply(HTTPStatus.OK, "text/html", page.encode(), "Fault.Html")
        if fault.no_response_key:
            return _json_reply({"Unexpected": {}}, "Fault.NoResponseKey")
        if fault.raw_body is not None:
            return _Reply(HTTPStatus.OK, fault.content_type, fault.raw_body, "Fault.RawBody")
        if fault.error_code is not None:
            return _error_reply(ApiError(fault.error_code), request_id)
        return None

    def _record(self, entry: dict[str, Any], reply: _Reply, started: float) -> None:
        """Log before the reply is written, so a caller that just got its answer sees it."""
        entry["status"] = None if reply.hang else reply.status
        entry["code"] = reply.code
        entry["latency_ms"] = round((time.monotonic() - started) * 1000, 3)
        with self._lock:
            self._log.append(entry)
        if self._log_stream is None:
            return
        line = json.dumps({k: v for k, v in entry.items() if k != "t"}, separators=(",", ":"))
        with self._log_lock:
            try:
                self._log_stream.write(line + "\n")
                self._log_stream.flush()
            except (OSError, ValueError):
                pass  # a closed log stream must not take the server down


def _object_text(
    values: Mapping[str, int], overrides: Mapping[str, str], repeated: Mapping[str, str]
) -> str:
    texts = {name: json.dumps(value) for name, value in values.items()}
    texts.update(overrides)
    pairs = [*texts.items(), *repeated.items()]  # a repeated name comes again, after its own
    return "{" + ",".join(f"{json.dumps(name)}:{text}" for name, text in pairs) + "}"


def _shaped_reply(
    fault: Fault, key: str, value: dict[str, int] | list[dict[str, int]], request_id: str
) -> _Reply:
    """The normal answer, with ``fault.fields`` written in as raw JSON text (into the
    statistics object, or into every package of a set) and ``fault.repeated`` written again
    after them, then dripped or padded as the fault says."""
    overrides = dict(fault.fields or {})
    repeated = dict(fault.repeated or {})
    rid = overrides.pop("RequestId", json.dumps(request_id))
    rid_again = repeated.pop("RequestId", None)
    if isinstance(value, list):
        inner = "[" + ",".join(_object_text(item, overrides, repeated) for item in value) + "]"
    else:
        inner = _object_text(value, overrides, repeated)
    answer = f'{{"Response":{{{json.dumps(key)}:{inner},"RequestId":{rid}'
    if rid_again is not None:
        answer += f',"RequestId":{rid_again}'
    code = "Fault.Fields" if fault.fields or fault.repeated else "OK"
    if fault.overuse or fault.overcount or fault.paging:
        code = "Fault.BadData"
    pad_to = None
    if fault.huge_body is not None:
        answer += ',"Padding":"'  # the pad's closing quote and braces are its last bytes
        pad_to = fault.huge_body
        code = "Fault.HugeBody"
    else:
        answer += "}}"
    if fault.drip_s:
        code = "Fault.Drip"
    return _Reply(HTTPStatus.OK, _JSON, answer.encode(), code, drip_s=fault.drip_s, pad_to=pad_to)


def _parse_parameters(
    method: str, query: str, headers: Mapping[str, str], body: bytes
) -> tuple[dict[str, Any], ApiError | None]:
    """Return the action parameters, or an empty dict plus the error to raise later.

    The error is deferred so that a global fault still fires on an unparseable body.
    """
    if method == "GET":
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        for name in ("Limit", "Offset"):
            value = params.get(name)
            # GET carries everything as text; integers arrive as digit strings.
            if isinstance(value, str) and value.isascii() and value.isdigit():
                params[name] = int(value)
        return params, None
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _JSON:
        return {}, ApiError(
            "InvalidParameter",
            f"Content-Type `{media_type}` is not supported here; "
            "POST with TC3-HMAC-SHA256 must send application/json.",
        )
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}, ApiError("FailedOperation.JsonParseFail")
    if not isinstance(decoded, dict):
        return {}, ApiError("FailedOperation.JsonParseFail")
    return decoded, None


def _validate(params: Mapping[str, Any], *, callback: bool = False) -> tuple[str, str, str]:
    """Check the parameters in the order the seed documents them; first failure wins.

    SendStatusStatistics and CallbackStatusStatistics take the same parameters; receipts
    have the documented cap of 32 days between BeginTime and EndTime.
    """
    _check_names(params, _PARAMETERS)
    app_id = _check_app_id(params["SmsSdkAppId"])
    begin, end = _check_hours(params["BeginTime"], params["EndTime"])
    if end < begin:  # same-width digit strings order like the hours they name
        raise ApiError(
            "InvalidParameterValue.EndTimeVerifyFail", "EndTime must not be earlier than BeginTime."
        )
    if callback:
        if _counts.parse_hour(end) - _counts.parse_hour(begin) > _counts.CALLBACK_MAX_SPAN:
            raise ApiError(
                "InvalidParameterValue.EndTimeVerifyFail",
                "EndTime must not be more than 32 days after BeginTime.",
            )
    elif _counts.range_hours(begin, end) > _counts.MAX_RANGE_HOURS:
        raise ApiError(
            "InvalidParameterValue.EndTimeVerifyFail",
            "The range from BeginTime to EndTime must not exceed 31 days.",
        )
    for name, code in (
        ("Limit", "InvalidParameterValue.LimitVerifyFail"),
        ("Offset", "InvalidParameterValue.OffsetVerifyFail"),
    ):
        value = params[name]
        if type(value) is not int or value != 0:
            raise ApiError(code, f"{name} is currently fixed at 0.")
    _check_authorized(app_id)
    return app_id, begin, end


def _validate_packages(params: Mapping[str, Any], now: datetime) -> tuple[str, int, int, str, str]:
    """SmsPackagesStatistics: Limit 1..500, Offset >= 0, then the creation-time window,
    whose EndTime must be after BeginTime and before now."""
    _check_names(params, _PACKAGE_PARAMETERS)
    app_id = _check_app_id(params["SmsSdkAppId"])
    limit, offset = params["Limit"], params["Offset"]
    if type(limit) is not int or not 1 <= limit <= _packages.MAX_LIMIT:
        raise ApiError(
            "InvalidParameterValue.LimitVerifyFail",
            f"Limit must be an integer from 1 to {_packages.MAX_LIMIT}.",
        )
    if type(offset) is not int or offset < 0:
        raise ApiError("InvalidParameterValue.OffsetVerifyFail", "Offset must be an integer >= 0.")
    begin, end = _check_hours(params["BeginTime"], params["EndTime"])
    if end <= begin:
        raise ApiError(
            "InvalidParameterValue.EndTimeVerifyFail", "EndTime must be after BeginTime."
        )
    if _counts.hour_start(end) >= _counts.aware(now):
        raise ApiError(
            "InvalidParameterValue.EndTimeVerifyFail",
            "EndTime must be earlier than the current time (hours are Beijing time).",
        )
    _check_authorized(app_id)
    return app_id, limit, offset, begin, end


def _check_names(params: Mapping[str, Any], names: Sequence[str]) -> None:
    for name in params:
        if name not in names:
            raise ApiError("UnknownParameter", f"The parameter `{name}` is not recognized.")
    for name in names:
        if params.get(name) is None:
            raise _missing(name)


def _check_app_id(app_id: object) -> str:
    if not isinstance(app_id, str) or not _APP_ID.match(app_id):
        raise ApiError(
            "InvalidParameterValue.SdkAppIdNotExist", f"The SdkAppId `{app_id}` does not exist."
        )
    return app_id


def _check_hours(begin: object, end: object) -> tuple[str, str]:
    if not isinstance(begin, str) or not _is_hour(begin):
        raise ApiError(
            "InvalidParameterValue.BeginTimeVerifyFail",
            "BeginTime must be a real hour written as yyyymmddhh, e.g. 2021050113.",
        )
    if not isinstance(end, str) or not _is_hour(end):
        raise ApiError(
            "InvalidParameterValue.EndTimeVerifyFail",
            "EndTime must be a real hour written as yyyymmddhh, e.g. 2021050118.",
        )
    return begin, end


def _check_authorized(app_id: str) -> None:
    if app_id == UNAUTHORIZED_APP_ID:
        raise ApiError("UnauthorizedOperation.SmsSdkAppIdVerifyFail")


def _is_hour(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        _counts.parse_hour(value)
    except ValueError:
        return False
    return True


def _length(reply: _Reply) -> int:
    if reply.pad_to is None:
        return len(reply.body)
    return max(reply.pad_to, len(reply.body) + 3)  # see _Handler._write_padded


class _Handler(LoopbackHandler[Emulator]):
    methods = ("POST", "GET", "PUT", "DELETE", "PATCH")
    server_version = "sms-stats-emulator"
    timeout = IDLE_TIMEOUT_S

    def _serve(self, method: str) -> None:
        emulator = self.owner
        started = time.monotonic()
        reply, entry = emulator._respond(method, self.path, self.lowered_headers(), self._read_body)
        if reply.hang:
            emulator._record(entry, reply, started)
            emulator._pause(HANG_CAP_S)
            self.close_connection = True
            return
        emulator._pause(emulator._latency_s)
        emulator._record(entry, reply, started)
        self._write(reply)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError("InvalidParameter", "Chunked request bodies are not supported.")
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not (length.isascii() and length.isdigit()):
            self.close_connection = True
            raise ApiError("InvalidParameter", "Content-Length must be a non-negative integer.")
        size = int(length)
        if size > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError("RequestSizeLimitExceeded", "The request body exceeds 10 MB.")
        return self.rfile.read(size)

    def _write(self, reply: _Reply) -> None:
        """Write status line, headers and body in a single send.

        Some HTTP clients (and the SDK's expectations built on them) misbehave when a response
        arrives in fragments; one buffer, one sendall, mirrors a real front end.
        """
        lines = [
            f"{self.protocol_version} {reply.status} {reason(reply.status)}",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {_length(reply)}",
            f"Date: {formatdate(usegmt=True)}",
            f"Server: {self.server_version}",
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if reply.drip_s:
                self.wfile.write(head)
                for index in range(len(reply.body)):
                    self.owner._pause(reply.drip_s)
                    self.wfile.write(reply.body[index : index + 1])
                    self.wfile.flush()
            elif reply.pad_to is not None:
                self._write_padded(head, reply.body, reply.pad_to)
            else:
                self.wfile.write(head + reply.body)
        except OSError:
            self.close_connection = True  # the client went away; nothing left to tell it

    def _write_padded(self, head: bytes, start: bytes, size: int) -> None:
        """``start``, then ``x`` up to ``size`` bytes closed by ``"}}``, in 64 KiB pieces:
        a 400 MB answer never sits in memory."""
        end = b'"}}'
        pad = max(0, size - len(start) - len(end))
        self.wfile.write(head + start)
        chunk = b"x" * 65536
        while pad > 0:
            self.wfile.write(chunk[: min(pad, len(chunk))])
            pad -= min(pad, len(chunk))
        self.wfile.write(end)
