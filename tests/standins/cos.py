"""A local stand-in for COS (XML API, virtual-host style): PUT, GET, HEAD and DELETE Object, and
GET Bucket (list objects).

Why: the COS sink must be tested with the real COS SDK on the wire, and a mock of the SDK would
hide what matters (the signature over the virtual host, the session token header, error bodies
the SDK has to parse, timeouts, refused connections). So this is a real HTTP server on 127.0.0.1
that checks requests the way COS documents it ("Request Signature", XML API):

    SignKey      = HMAC-SHA1(SecretKey, q-key-time)
    HttpString   = method \\n UriPathname \\n HttpParameters \\n HttpHeaders \\n
    StringToSign = sha1 \\n q-sign-time \\n SHA1(HttpString) \\n
    Signature    = HMAC-SHA1(SignKey, StringToSign)

with the listed parameter and header names lower-cased, both names and values URL-encoded
(unreserved characters `-_.~` kept) and sorted, and UriPathname the decoded path.

Choices where the docs leave room (each one is the stricter reading):
- a credential registered with a session token requires `x-cos-security-token` equal to it; a
  missing or different token, or a token sent for a permanent key, is 403 InvalidAccessKeyId:
  COS resolves a temporary SecretId through its token, so without the right token the SecretId
  is unknown. (The COS code list has 400 ExpiredToken for an expired one; inject it as a fault.)
- q-sign-time and q-key-time must both cover the server's now; past the end is 403 AccessDenied
  "Request has expired", before the start 403 RequestTimeTooSkewed (the wording of COS's 403
  troubleshooting page).
- a malformed Authorization (missing fields, algorithm other than sha1) is 403 AccessDenied; a
  request without one is 403 AccessDenied too (an anonymous request to a private bucket).
- a Host that is not `<bucket>.cos.<region>.myqcloud.com` is 400 InvalidURI; a bucket that
  does not exist, or exists in another region, is 404 NoSuchBucket (checked before the
  signature, as COS routes by bucket first).
- a sent Content-MD5 is checked: 400 BadDigest when the body does not match.

Faults (per key substring, or global) act after authentication, like a backend failing behind a
healthy front end. Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from sms_stats.emulator.loopback import LoopbackHandler, LoopbackService, reason

HANG_CAP_S = 60.0
"""A hanging fault gives up after this long, so a forgotten stand-in cannot pin a thread."""

IDLE_TIMEOUT_S = 30.0
_CREDENTIAL_HEADERS = ("authorization", "x-cos-security-token")
MAX_BODY_BYTES = 16 * 1024 * 1024
_HOST_RE = re.compile(r"([a-z0-9-]+-[0-9]+)\.cos\.([a-z0-9-]+)\.myqcloud\.com")
_AUTH_FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)
# What PUT keeps with an object (never Authorization or the security token).
_KEPT_HEADERS = (
    "content-type",
    "content-md5",
    "content-encoding",
    "content-disposition",
    "cache-control",
    "expires",
)
_MESSAGES = {
    "AccessDenied": "Access Denied.",
    "InvalidAccessKeyId": "The Access Key Id you provided does not exist in our records.",
    "SignatureDoesNotMatch": (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    ),
    "RequestTimeTooSkewed": "The difference between the request time and the server's time is "
    "too large.",
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchKey": "The specified key does not exist.",
    "InternalError": "We encountered an internal error. Please try again.",
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Please reduce your request rate.",
    "TooManyRequests": "Too many requests.",
    "ExpiredToken": "The provided token has expired.",
    "BadDigest": "The Content-MD5 you specified did not match what we received.",
    "InvalidURI": "Could not parse the specified URI.",
    "MethodNotAllowed": "The specified method is not allowed against this resource.",
    "MissingContentLength": "You must provide the Content-Length HTTP header.",
    "EntityTooLarge": "Your proposed upload exceeds the maximum allowed object size.",
}


@dataclass
class CosFault:
    """Injected misbehaviour. `latency_s` applies first; then `hang` (never answer), `drop`
    (close the connection without an answer), else an error answer `status` + `code`.
    `times` = how many requests it hits (None: all). `methods` limits it to those HTTP
    methods (empty: any); `after` lets that many of its requests through first, so a store can
    fail at its Nth write (`methods=("PUT", "DELETE")`), as one does when a run is cut off."""

    status: int = 500
    code: str = "InternalError"
    message: str | None = None
    times: int | None = None
    latency_s: float = 0.0
    hang: bool = False
    drop: bool = False
    echo_headers: bool = False  # the message lists the request's headers, as a debug proxy does
    methods: tuple[str, ...] = ()
    after: int = 0


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the stand-in saw it; holds no signature and no token, only whether one
    was sent."""

    method: str
    host: str | None
    bucket: str | None
    key: str | None
    status: int | None
    code: str
    token_sent: bool
    signed_headers: tuple[str, ...]
    sdk_retry: bool
    request_id: str


@dataclass
class _Armed:
    fault: CosFault
    remaining: int | None
    passed: int = 0  # requests let through so far (see CosFault.after)


@dataclass
class _Reply:
    status: int
    code: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    drop: bool = False


class CosError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or _MESSAGES.get(code, f"{code} (injected by the stand-in).")


@dataclass
class _Credential:
    secret_key: str
    token: str | None


class CosStandIn(LoopbackService):
    """COS on a free loopback port; see the module docstring for what it checks and why.

    `start`, `stop`, `port`, `endpoint` and the context manager come from `LoopbackService`.
    """

    def __init__(
        self,
        *,
        credentials: Mapping[str, str | tuple[str, str | None]] | None = None,
        buckets: Iterable[str] = (),
        region: str = "ap-guangzhou",
        host: str = "127.0.0.1",
        latency_s: float = 0.0,
    ) -> None:
        super().__init__(_Handler, host=host)
        self.region = region
        # Added to every request before it is answered: COS is tens of milliseconds away from
        # a function, and a reader of many small objects must be measured at that distance.
        self.latency_s = latency_s
        self.buckets: set[str] = set(buckets)
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self._credentials: dict[str, _Credential] = {}
        for secret_id, value in (credentials or {}).items():
            key, token = value if isinstance(value, tuple) else (value, None)
            self.add_credential(secret_id, key, token)
        self._lock = threading.Lock()
        self._logged = threading.Condition(self._lock)
        self._faults: dict[str | None, _Armed] = {}
        self._log: list[LoggedRequest] = []

    # -- control ---------------------------------------------------------------------------

    def add_credential(self, secret_id: str, secret_key: str, token: str | None = None) -> None:
        self._credentials[secret_id] = _Credential(secret_key, token)

    def set_fault(self, fault: CosFault, key_contains: str | None = None) -> None:
        """Replace the fault for keys containing `key_contains` (None: every other request)."""
        if fault.times is not None and fault.times < 0:
            raise ValueError("CosFault.times must be >= 0 or None")
        if fault.after < 0:
            raise ValueError("CosFault.after must be >= 0")
        if not 400 <= fault.status <= 599:
            raise ValueError("CosFault.status must be a 4xx or 5xx status")
        with self._lock:
            self._faults[key_contains] = _Armed(fault, fault.times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget objects, requests and faults (buckets and credentials stay)."""
        with self._lock:
            self._faults.clear()
            self._log.clear()
            self.objects.clear()

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` requests are logged (e.g. one that now hangs); no polling."""
        with self._logged:
            return self._logged.wait_for(lambda: len(self._log) >= count, timeout)

    # -- request processing (handler threads) ----------------------------------------------

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[_Reply, LoggedRequest]:
        request_id = base64.b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        split = urlsplit(target)
        host = headers.get("host")
        seen: dict[str, Any] = {"bucket": None, "key": None, "signed": ()}
        failure: CosError | None = None
        try:
            reply = self._process(method, split.path, split.query, headers, body, seen)
        except CosError as error:
            failure = error
        except Exception:  # a stand-in bug must read as a server error, not a dead socket
            failure = CosError(500, "InternalError")
        if failure is not None:
            resource = f"{host}{split.path}"
            reply = _error_reply(failure, request_id, resource, head=method == "HEAD")
        reply.headers["x-cos-request-id"] = request_id
        entry = LoggedRequest(
            method=method,
            host=host,
            bucket=seen["bucket"],
            key=seen["key"],
            status=None if reply.hang or reply.drop else reply.status,
            code=reply.code,
            token_sent="x-cos-security-token" in headers,
            signed_headers=seen["signed"],
            sdk_retry="x-cos-sdk-retry" in headers,
            request_id=request_id,
        )
        with self._logged:  # logged before the answer is written: a caller that has its answer
            self._log.append(entry)  # sees its request in the log
            self._logged.notify_all()
        return reply, entry

    def _process(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        seen: dict[str, Any],
    ) -> _Reply:
        host = (headers.get("host") or "").rsplit(":", 1)[0] if headers.get("host") else ""
        match = _HOST_RE.fullmatch(host)
        if match is None:
            raise CosError(
                400,
                "InvalidURI",
                "The Host header must be the bucket's virtual host, "
                "<bucket>-<appid>.cos.<region>.myqcloud.com.",
            )
        bucket, region = match.group(1), match.group(2)
        seen["bucket"] = bucket
        if bucket not in self.buckets or region != self.region:
            raise CosError(404, "NoSuchBucket")
        pathname = unquote(path)
        key = pathname[1:]
        seen["key"] = key
        self._authenticate(method, pathname, query, headers, seen)
        content_md5 = headers.get("content-md5")
        if content_md5 is not None:
            digest = base64.b64encode(hashlib.md5(body).digest()).decode()
            if not hmac.compare_digest(content_md5.strip(), digest):
                raise CosError(400, "BadDigest")
        fault = self._take_fault(key, method)
        if fault is not None:
            self._pause(fault.latency_s)
            if fault.hang:
                return _Reply(0, "Fault.Hang", hang=True)
            if fault.drop:
                return _Reply(0, "Fault.Drop", drop=True)
            message = fault.message
            if fault.echo_headers:
                # credentials first, as a gateway's auth-failure page shows them
                first = sorted(headers.items(), key=lambda h: h[0] not in _CREDENTIAL_HEADERS)
                listed = "; ".join(f"{name}: {value}" for name, value in first)
                message = f"{message or fault.code} (request headers: {listed})"
            raise CosError(fault.status, fault.code, message)
        if not key:
            if method == "GET":
                return self._list(bucket, dict(parse_qsl(query, keep_blank_values=True)))
            raise CosError(405, "MethodNotAllowed", "Bucket operations other than GET (list).")
        return self._operate(method, bucket, key, headers, body)

    def _list(self, bucket: str, params: Mapping[str, str]) -> _Reply:
        """GET Bucket (List Objects, version 1): keys after `marker` under `prefix`, in byte order,
        at most `max-keys` (1000 by default and at most), with IsTruncated and NextMarker."""
        prefix = params.get("prefix", "")
        marker = params.get("marker", "")
        try:
            limit = min(int(params.get("max-keys") or 1000), 1000)
        except ValueError:
            raise CosError(400, "InvalidArgument", "max-keys must be an integer") from None
        with self._lock:
            names = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
            found = [(k, self.objects[(bucket, k)]) for k in names if k > marker]
        page, truncated = found[:limit], len(found) > limit
        items = "".join(
            f"<Contents><Key>{escape(k)}</Key><ETag>{escape(o.etag)}</ETag>"
            f"<Size>{len(o.body)}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            for k, o in page
        )
        next_marker = f"<NextMarker>{escape(page[-1][0])}</NextMarker>" if truncated else ""
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<Marker>{escape(marker)}</Marker><MaxKeys>{limit}</MaxKeys>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{next_marker}{items}"
            "</ListBucketResult>"
        )
        return _Reply(200, "OK", xml.encode(), {"Content-Type": "application/xml"})

    def _operate(
        self, method: str, bucket: str, key: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        if method == "PUT":
            kept = {name: headers[name] for name in _KEPT_HEADERS if name in headers}
            kept.update({n: v for n, v in headers.items() if n.startswith("x-cos-meta-")})
            stored = StoredObject(body, headers.get("content-type"), kept)
            with self._lock:
                self.objects[(bucket, key)] = stored
            return _Reply(200, "OK", headers={"ETag": stored.etag})
        if method in ("GET", "HEAD"):
            with self._lock:
                found = self.objects.get((bucket, key))
            if found is None:
                raise CosError(404, "NoSuchKey")
            answer = {
                "Content-Type": found.content_type or "application/octet-stream",
                "ETag": found.etag,
                "Last-Modified": formatdate(usegmt=True),
            }
            if method == "HEAD":
                answer["Content-Length"] = str(len(found.body))
                return _Reply(200, "OK", headers=answer)
            return _Reply(200, "OK", found.body, answer)
        if method == "DELETE":
            with self._lock:
                self.objects.pop((bucket, key), None)
            return _Reply(204, "OK")
        raise CosError(405, "MethodNotAllowed")

    def _authenticate(
        self,
        method: str,
        pathname: str,
        query: str,
        headers: Mapping[str, str],
        seen: dict[str, Any],
    ) -> None:
        raw = headers.get("authorization")
        if not raw:
            raise CosError(403, "AccessDenied", "Access Denied. (no Authorization header)")
        auth = dict(parse_qsl(raw, keep_blank_values=True))
        missing = [name for name in _AUTH_FIELDS if name not in auth]
        if missing or auth["q-sign-algorithm"] != "sha1":
            raise CosError(403, "AccessDenied", "The Authorization header is malformed.")
        credential = self._credentials.get(auth["q-ak"])
        if credential is None:
            raise CosError(403, "InvalidAccessKeyId")
        sent_token = headers.get("x-cos-security-token")
        if sent_token != credential.token:
            # No token value in the message: only whether one was there.
            state = "is missing" if sent_token is None else "does not match this SecretId"
            raise CosError(403, "InvalidAccessKeyId", f"The security token {state}.")
        now = time.time()
        for name in ("q-sign-time", "q-key-time"):
            start, end = _window(auth[name])
            if now > end:
                raise CosError(403, "AccessDenied", "Request has expired")
            if now < start:
                raise CosError(403, "RequestTimeTooSkewed")
        header_names = [n for n in auth["q-header-list"].split(";") if n]
        param_names = [n for n in auth["q-url-param-list"].split(";") if n]
        seen["signed"] = tuple(header_names)
        encoded_headers = {_enc(k).lower(): _enc(v) for k, v in headers.items()}
        params = {_enc(k).lower(): _enc(v) for k, v in parse_qsl(query, keep_blank_values=True)}
        try:
            http_headers = "&".join(f"{n}={encoded_headers[n]}" for n in sorted(header_names))
            http_params = "&".join(f"{n}={params[n]}" for n in sorted(param_names))
        except KeyError:
            raise CosError(403, "SignatureDoesNotMatch") from None
        http_string = f"{method.lower()}\n{pathname}\n{http_params}\n{http_headers}\n"
        string_to_sign = (
            f"sha1\n{auth['q-sign-time']}\n{hashlib.sha1(http_string.encode()).hexdigest()}\n"
        )
        sign_key = _hmac_hex(credential.secret_key, auth["q-key-time"])
        expected = _hmac_hex(sign_key, string_to_sign)
        if not hmac.compare_digest(expected, auth["q-signature"]):
            raise CosError(403, "SignatureDoesNotMatch")

    def _take_fault(self, key: str, method: str) -> CosFault | None:
        with self._lock:
            candidates = [k for k in self._faults if k is not None and k in key]
            for name in [*candidates, None]:
                armed = self._faults.get(name)
                if armed is None:
                    continue
                if armed.fault.methods and method not in armed.fault.methods:
                    continue
                if armed.passed < armed.fault.after:
                    armed.passed += 1
                    return None
                if armed.remaining is not None:
                    if armed.remaining <= 0:
                        del self._faults[name]
                        continue
                    armed.remaining -= 1
                return armed.fault
        return None


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _enc(text: str) -> str:
    return quote(text.encode("utf-8"), safe="-_.~")


def _hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha1).hexdigest()


def _window(value: str) -> tuple[int, int]:
    start, sep, end = value.partition(";")
    if not sep or not start.isdigit() or not end.isdigit():
        raise CosError(403, "AccessDenied", "The Authorization header is malformed.")
    return int(start), int(end)


def _error_reply(error: CosError, request_id: str, resource: str, *, head: bool) -> _Reply:
    """COS's XML error body; a HEAD answer carries none (HTTP forbids it)."""
    if head:
        return _Reply(error.status, error.code)
    xml = (
        "<?xml version='1.0' encoding='utf-8' ?>\n<Error>"
        f"<Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>"
        f"<RequestId>{escape(request_id)}</RequestId>"
        f"<TraceId>{escape(uuid.uuid4().hex)}</TraceId>"
        "</Error>"
    )
    return _Reply(error.status, error.code, xml.encode(), {"Content-Type": "application/xml"})


class _Handler(LoopbackHandler[CosStandIn]):
    methods = ("PUT", "GET", "HEAD", "DELETE", "POST")
    server_version = "tencent-cos"
    timeout = IDLE_TIMEOUT_S

    def _serve(self, method: str) -> None:
        stand_in = self.owner
        headers = self.lowered_headers()
        try:
            body = self._read_body()
        except CosError as error:
            self.close_connection = True
            reply = _error_reply(error, "-", self.path, head=method == "HEAD")
            self._write(reply, head=method == "HEAD")
            return
        stand_in._pause(stand_in.latency_s)
        reply, _ = stand_in._handle(method, self.path, headers, body)
        if reply.hang:
            stand_in._pause(HANG_CAP_S)
            self.close_connection = True
            return
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(reply, head=method == "HEAD")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise CosError(411, "MissingContentLength")
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not (length.isascii() and length.isdigit()):
            raise CosError(400, "InvalidArgument", "Content-Length must be an integer.")
        if int(length) > MAX_BODY_BYTES:
            raise CosError(400, "EntityTooLarge")
        return self.rfile.read(int(length))

    def _write(self, reply: _Reply, *, head: bool) -> None:
        """Status line, headers and body in one send, as a real front end answers."""
        lines = [
            f"{self.protocol_version} {reply.status} {reason(reply.status)}",
            f"Date: {formatdate(usegmt=True)}",
            f"Server: {self.server_version}",
        ]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        if "Content-Length" not in reply.headers:
            lines.append(f"Content-Length: {len(reply.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head:
            data += reply.body
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
