"""`cos://` sink: one object per record in a COS bucket, through the official COS SDK.

Why the SDK and not our own signer: it is what Tencent supports and keeps current (signing, the
session token header, domains); the stand-in in the tests verifies what it sends. Why our own
retry around it: `CosS3Client.send_request` retries network errors and 5xx by itself with an
unjittered `time.sleep(j)` and no notion of the invocation's deadline, and its attempts would
multiply ours. So the client is built with `retry=0` (one HTTP request per call) and this module
decides: bounded attempts, full-jitter backoff, no attempt started that could not finish before
the deadline, and only errors a second try can fix are retried.

Keys are `<prefix>/<AnyRecord.key>` (the file sink's layout), so a re-run overwrites the same object
and SCF's retries of a timer run never duplicate anything. The body is the file sink's bytes.

`qcloud_cos` (and the `requests` stack it pulls in) is imported in `build`, never when this
module or `sms_stats.deliver.sinks` is imported: cold start is measured, and functions without
a COS sink must not pay for it.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from sms_stats.core import redact
from sms_stats.core.errors import ConfigError
from sms_stats.core.log import hold_third_party_loggers
from sms_stats.core.notices import STORE_TOPICS, Notice
from sms_stats.core.records import AnyRecord
from sms_stats.core.settings import REGION_RE, Settings
from sms_stats.store.base import ObjectRefused, SinkError, one_per_record
from sms_stats.store.file import MAX_OBJECT_BYTES, encode, encode_notice, notice_key

T = TypeVar("T")

CONTENT_TYPE = "application/json"
QUERY_PARAMS = ("region", "endpoint")
# `<name>-<appid>`: lower-case letters, digits and hyphens, not starting or ending with a hyphen.
BUCKET_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+")
MAX_BUCKET_LEN = 63  # one DNS label: the bucket is the first label of its virtual host
# Error codes worth another try even when the status is not 5xx/429 (COS answers some as 4xx).
RETRY_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "TooManyRequests",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
    }
)
SDK_LOGGERS = ("qcloud_cos", "qcloud_cos.cos_client", "qcloud_cos.cos_auth")
_MAX_TEXT = 200


@dataclass(frozen=True)
class Endpoint:
    """Where requests go instead of `<bucket>.cos.<region>.myqcloud.com` (a local stand-in)."""

    scheme: str
    host: str
    port: int | None


@dataclass(frozen=True)
class CosTarget:
    """Where a `cos://` sink writes, parsed and checked once when the sink is built."""

    bucket: str
    prefix: str
    region: str
    endpoint: Endpoint | None = None

    @property
    def name(self) -> str:
        """`cos:<bucket>/<prefix>`: what logs and delivery reports call this sink; no secret."""
        return f"cos:{self.bucket}/{self.prefix}"

    @property
    def host(self) -> str:
        """The virtual host COS routes by, and signs; the same whether or not an endpoint is set."""
        return f"{self.bucket}.cos.{self.region}.myqcloud.com"

    def key(self, key: str) -> str:
        """`<prefix>/<key>`: the file sink's layout under the prefix."""
        return f"{self.prefix}/{key}" if self.prefix else key


def parse_url(url: str, default_region: str) -> CosTarget:
    """`cos://<bucket-appid>/<prefix>?region=..&endpoint=..` -> a target, or ValueError naming the
    rule broken. Messages name the rule and the part at fault, never the credentials (which
    never come from the URL anyway)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "cos":
        raise ValueError("a COS sink URL must start with cos://")
    if parts.fragment:
        raise ValueError("a COS sink URL takes no #fragment")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(
            "a COS sink URL must not carry user:password; credentials come from "
            "TENCENTCLOUD_SECRETID/SECRETKEY/SESSIONTOKEN (the function's role)"
        )
    if not netloc:
        raise ValueError("a COS sink URL names no bucket; use cos://<name>-<appid>/<prefix>")
    if len(netloc) > MAX_BUCKET_LEN or not BUCKET_RE.fullmatch(netloc):
        raise ValueError(
            f"bucket {netloc[:80]!r} is not <name>-<appid>: lower-case letters, digits and "
            "hyphens, not starting or ending with a hyphen, then -<appid digits> "
            f"(at most {MAX_BUCKET_LEN} characters), like stats-1250000000"
        )
    prefix = _prefix(parts.path)
    params = _query(parts.query)
    region = params.get("region", default_region)
    if not REGION_RE.fullmatch(region):
        raise ValueError(f"region {region[:40]!r} must be a region like ap-guangzhou")
    endpoint = _endpoint(params["endpoint"]) if "endpoint" in params else None
    return CosTarget(bucket=netloc, prefix=prefix, region=region, endpoint=endpoint)


def _prefix(path: str) -> str:
    prefix = unquote(path).strip("/")
    if not prefix:
        return ""
    segments = prefix.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(
            "the key prefix must not contain empty, '.' or '..' segments; use cos://bucket/a/b"
        )
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in prefix):
        raise ValueError("the key prefix must not contain control characters")
    return prefix


def _query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in QUERY_PARAMS:
            raise ValueError(
                f"unknown query parameter {name[:40]!r}; a COS sink URL takes only "
                + " and ".join(QUERY_PARAMS)
            )
        if name in params:
            raise ValueError(f"query parameter {name!r} is given twice")
        if not value:
            raise ValueError(f"query parameter {name!r} is empty")
        params[name] = value
    return params


def _endpoint(value: str) -> Endpoint:
    parts = urlsplit(value)
    rule = "endpoint must be http(s)://host[:port] with no path, query or user, like "
    example = "http://127.0.0.1:9000"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(rule + example)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(rule + example)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("endpoint has an invalid port; " + rule + example) from None
    if ":" in parts.hostname:
        raise ValueError("endpoint must be an IPv4 address or a host name (the SDK's IP option)")
    return Endpoint(parts.scheme, parts.hostname, port)


def build(
    url: str,
    settings: Settings,
    transport: object,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    rng: Callable[[], float] | None = None,
) -> CosSink:
    """Parse, check credentials, build the SDK client: all at start, so a bad setup fails the
    first invocation loudly. `transport` is unused: the SDK brings its own HTTP session."""
    target = parse_url(url, settings.region)
    secret_id, secret_key, token = settings.credentials()  # ConfigError when missing
    client = make_client(target, secret_id, secret_key, token, settings.timeout)
    return CosSink(
        target,
        client,
        timeout=settings.timeout,
        max_attempts=settings.max_attempts,
        secrets=tuple(s for s in (secret_id, secret_key, token) if s),
        clock=clock,
        sleep=sleep,
        rng=rng,
    )


def make_client(
    target: CosTarget, secret_id: str, secret_key: str, token: str | None, timeout: float
) -> Any:
    """A `CosS3Client` that makes exactly one HTTP request per call (`retry=0`).

    With an endpoint, the SDK's `IP`/`Port` options send the request to that address while its
    `Host` header, and so the signature, stay the bucket's virtual host. (`Endpoint=` would not
    do: the SDK prepends the bucket to it, giving `bucket.127.0.0.1:port`.)
    """
    try:
        from qcloud_cos import CosConfig, CosS3Client  # noqa: PLC0415 - only with a COS sink
        from qcloud_cos.cos_exception import CosClientError  # noqa: PLC0415
    except ImportError:
        raise ValueError(
            "a cos:// sink needs the COS SDK, which is not installed here: "
            "pip install 'sms-stats[cos]' (the deployment package carries it)"
        ) from None

    quiet_sdk_logging()
    options: dict[str, Any] = {}
    if target.endpoint is not None:
        options = {
            "Scheme": target.endpoint.scheme,
            "IP": target.endpoint.host,
            "Port": target.endpoint.port,
        }
    try:
        config = CosConfig(
            Region=target.region,
            SecretId=secret_id,
            SecretKey=secret_key,
            Token=token,
            Timeout=timeout,
            **options,
        )
    except CosClientError as exc:  # e.g. a secret with surrounding spaces; the text holds none
        said = redact.scrub(str(exc), (secret_id, secret_key, token or ""))
        raise ConfigError(f"{target.name}: the COS SDK refused its configuration: {said}") from None
    from sms_stats.core import net  # noqa: PLC0415

    # Our own session, not the SDK's shared one: every call ends within its timeout, whole,
    # and reads at most one object's worth (a larger one is refused by `get`).
    return CosS3Client(config, retry=0, session=net.session(MAX_OBJECT_BYTES + 1))


class _DropHeadMiss(logging.Filter):
    """The SDK logs a WARNING for every HEAD that finds nothing; for `exists` that is an answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg  # the SDK's dict, or its text once `log` has scrubbed the record
        if isinstance(msg, dict):
            return msg.get("code") != "NoSuchResource"
        return not str(msg).startswith("{'code': 'NoSuchResource'")


def quiet_sdk_logging() -> None:
    """The SDK logs every request at INFO and, at DEBUG, the session token, the signing key
    and the Authorization header; at ERROR it logs raw error bodies, which may echo them.
    Hold its loggers at WARNING behind our scrubbing handler (`log.hold_third_party_loggers`),
    and drop its warning for a HEAD that finds nothing."""
    hold_third_party_loggers()
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    client_logger = logging.getLogger("qcloud_cos.cos_client")
    if not any(isinstance(f, _DropHeadMiss) for f in client_logger.filters):
        client_logger.addFilter(_DropHeadMiss())


@dataclass(frozen=True)
class _Failure:
    """A COS error as the sink reports it: what to say, and whether trying again may help."""

    text: str
    retryable: bool


class CosSink:
    """Puts each record at its stable key; a `Store`: `exists` says whether a window is there."""

    list_page = 1000  # keys per GET Bucket page (COS's most)
    topics: frozenset[str] = STORE_TOPICS  # what it is told by default; `?notify=` sets its own

    def __init__(
        self,
        target: CosTarget,
        client: Any,
        *,
        timeout: float,
        max_attempts: int,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        secrets: Sequence[str] = (),
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.target = target
        self.name = target.name
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._client = client
        self._secrets = tuple(s for s in secrets if s)
        redact.register(*self._secrets)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._rng = rng or random.random

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return one_per_record(records)

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        for record in batch:
            self.put(record.key, encode(record), deadline)

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        """At the file store's key, `notices/<id>.json`, with its bytes."""
        self.put(notice_key(notice, self.name), encode_notice(notice, self.name), deadline)

    def put(self, key: str, data: bytes, deadline: float | None = None) -> None:
        put = functools.partial(
            self._client.put_object,
            Bucket=self.target.bucket,
            Key=self.target.key(key),
            Body=data,
            ContentType=CONTENT_TYPE,
            EnableMD5=True,  # COS checks Content-MD5: a body damaged on the way is refused
        )
        self._with_retry(put, deadline)

    def exists(self, key: str, deadline: float | None = None) -> bool:
        """Whether that object is stored (HEAD), so a resumable backfill skips what COS already
        holds. Raises SinkError when COS cannot say. A HEAD answer has no body, so a missing
        bucket is a 404 here too (False); the PUT names it."""
        from qcloud_cos.cos_exception import CosServiceError  # noqa: PLC0415

        def head() -> bool:
            try:
                self._client.head_object(Bucket=self.target.bucket, Key=self.target.key(key))
            except CosServiceError as exc:
                if exc.get_status_code() == 404:
                    return False
                raise
            return True

        return self._with_retry(head, deadline)

    def get(self, key: str, deadline: float | None = None) -> bytes | None:
        from qcloud_cos.cos_exception import CosServiceError  # noqa: PLC0415

        def get() -> bytes | None:
            try:
                answer = self._client.get_object(
                    Bucket=self.target.bucket, Key=self.target.key(key)
                )
            except CosServiceError as exc:
                if exc.get_status_code() == 404:
                    return None
                raise
            data = bytearray()
            for chunk in answer["Body"].get_stream(64 * 1024):
                data += chunk
                if len(data) > MAX_OBJECT_BYTES:
                    raise ObjectRefused(
                        f"{self.name}: {key[:120]} is over {MAX_OBJECT_BYTES} bytes: not ours"
                    )
            return bytes(data)

        return self._with_retry(get, deadline)

    def delete(self, key: str, deadline: float | None = None) -> None:
        """DELETE is idempotent on COS: an absent key answers 204 as well."""
        delete = functools.partial(
            self._client.delete_object, Bucket=self.target.bucket, Key=self.target.key(key)
        )
        self._with_retry(delete, deadline)

    def keys(self, prefix: str, deadline: float | None = None) -> list[str]:
        return sorted(self.listing(prefix, deadline))

    def listing(self, prefix: str, deadline: float | None = None) -> dict[str, str]:
        """GET Bucket with a prefix, page by page (the role needs `cos:GetBucket`); an
        object's version is its ETag (its content's MD5 for a plain PUT)."""
        full = self.target.key(prefix)
        strip = len(self.target.key(""))
        found: dict[str, str] = {}
        marker = ""
        while True:
            page = self._with_retry(
                functools.partial(
                    self._client.list_objects,
                    Bucket=self.target.bucket,
                    Prefix=full,
                    Marker=marker,
                    MaxKeys=self.list_page,
                ),
                deadline,
            )
            contents = page.get("Contents") or []
            found.update((str(item["Key"])[strip:], str(item.get("ETag", ""))) for item in contents)
            if str(page.get("IsTruncated", "false")).lower() != "true" or not contents:
                return found
            marker = str(page.get("NextMarker") or contents[-1]["Key"])

    def _with_retry(self, call: Callable[[], T], deadline: float | None) -> T:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError  # noqa: PLC0415

        attempt = 0
        while True:
            if deadline is not None and self._clock() + self.timeout > deadline:
                raise SinkError(
                    f"{self.name}: no time left in this invocation to start an attempt "
                    f"(after {attempt} attempt{'s' * (attempt != 1)})"
                )
            attempt += 1
            try:
                return call()
            except CosServiceError as exc:
                failure = self._service_failure(exc)
            except CosClientError as exc:
                failure = self._client_failure(exc)
            if not failure.retryable or attempt >= self.max_attempts:
                raise SinkError(
                    f"{self.name}: {failure.text} after {attempt} attempt{'s' * (attempt > 1)}"
                )
            delay = self._rng() * min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
            if deadline is not None and self._clock() + delay + self.timeout > deadline:
                raise SinkError(
                    f"{self.name}: {failure.text} after {attempt} attempt"
                    f"{'s' * (attempt > 1)}; no time left in this invocation to retry"
                )
            self._sleep(delay)

    def _service_failure(self, exc: Any) -> _Failure:
        status = _service_status(exc) or 0
        # Each scrubbed of this sink's credentials (and every registered secret), then cut.
        code, message, request_id = (v and self._quote(v) for v in _error_fields(exc))
        retryable = status >= 500 or status == 429 or code in RETRY_CODES
        rid = f"request id {request_id or 'unknown'}"
        if code is None:  # a HEAD answer, or a body that is not COS's XML
            return _Failure(self._scrub(f"HTTP {status} ({rid})"), retryable)
        said = f": {message}" if message else ""
        return _Failure(self._scrub(f"{code}{said} (HTTP {status}, {rid})"), retryable)

    def _client_failure(self, exc: BaseException) -> _Failure:
        import requests  # noqa: PLC0415 - loaded by the SDK already

        cause = exc.__context__
        if isinstance(cause, requests.Timeout):
            return _Failure(f"no answer within {self.timeout:g} s", True)
        if isinstance(cause, requests.RequestException):
            return _Failure(f"could not connect ({type(cause).__name__})", True)
        return _Failure(self._scrub(f"COS SDK error: {self._quote(str(exc))}"), False)

    def _quote(self, text: str) -> str:
        """Scrubbed, then cut: a cut first could leave most of a secret unrecognisable."""
        return redact.quote(text, _MAX_TEXT, self._secrets)

    def _scrub(self, text: str) -> str:
        """Defence in depth: whatever a server or the SDK said, no secret leaves in a message."""
        return redact.scrub(text, self._secrets)


def _service_status(exc: BaseException) -> int | None:
    getter = getattr(exc, "get_status_code", None)
    if getter is None:
        return None
    status = getter()
    return status if isinstance(status, int) else None


_XML_FIELDS = ("Code", "Message", "RequestId")


def _error_fields(exc: Any) -> tuple[str | None, str | None, str | None]:
    """(code, message, request id) from a CosServiceError, whatever shape the SDK left it in.

    The SDK's own parser gives up (and its getters then return 'Unknown' or raise KeyError)
    when the XML lacks any of Code, Message, Resource or RequestId, and for a body-less answer
    (every HEAD error) it keeps the response headers instead; so read what is there.
    """
    digest = exc.get_digest_msg()
    if isinstance(digest, dict) and "code" in digest:
        return (
            _text(digest.get("code")),
            _text(digest.get("message")),
            _text(digest.get("requestid")),
        )
    if hasattr(digest, "get") and digest.get("x-cos-request-id"):  # headers of a body-less answer
        return None, None, _text(digest.get("x-cos-request-id"))
    origin = exc.get_origin_msg()
    if isinstance(origin, str) and origin:
        code, message, request_id = (_xml_field(origin, name) for name in _XML_FIELDS)
        return code, message, request_id
    return None, None, None


def _xml_field(body: str, name: str) -> str | None:
    match = re.search(rf"<{name}>([^<]*)</{name}>", body)
    return _text(match.group(1)) if match else None


def _text(value: object) -> str | None:
    """As the server said it: the caller scrubs, then cuts (a cut first could go through a
    secret, leaving a piece no scrub recognises)."""
    return str(value) if value not in (None, "") else None
