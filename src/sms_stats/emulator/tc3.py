"""Server side of TC3-HMAC-SHA256, written from Tencent's signing rules rather than the SDK.

The emulator recomputes the signature from what actually arrived on the wire (method, path,
raw query, the signed headers' received values, the body bytes). That way a client that signs
one thing and sends another - a re-serialised body, a rewritten Host - fails here exactly as it
would against the real endpoint, instead of passing because both sides share the SDK's code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

ALGORITHM = "TC3-HMAC-SHA256"
TERMINATOR = "tc3_request"
REQUIRED_SIGNED_HEADERS = frozenset({"content-type", "host"})
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_HEX_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_HEADER_NAME = re.compile(r"^[a-z0-9-]+$")


class AuthorizationFormatError(ValueError):
    """The Authorization header is not a TC3 header at all (as opposed to a wrong signature)."""


@dataclass(frozen=True)
class Authorization:
    """A parsed TC3 Authorization header: the stand-in checks its signature as the cloud does."""

    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str

    @property
    def header_names(self) -> list[str]:
        return self.signed_headers.split(";")

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.service}/{TERMINATOR}"


def parse_authorization(value: str) -> Authorization:
    """Split ``TC3-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..``.

    Any structural problem raises ``AuthorizationFormatError`` so the caller can answer
    ``AuthFailure.InvalidAuthorization`` rather than a misleading ``SignatureFailure``.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthorizationFormatError(f"the algorithm must be {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, field_value = part.strip().partition("=")
        if not eq or not key:
            raise AuthorizationFormatError(f"malformed element {part.strip()!r}")
        fields[key] = field_value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AuthorizationFormatError(f"missing {', '.join(missing)}")
    credential = fields["Credential"].split("/")
    if len(credential) != 4 or not all(credential) or credential[3] != TERMINATOR:
        raise AuthorizationFormatError(
            f"Credential must be <SecretId>/<yyyy-mm-dd>/<service>/{TERMINATOR}"
        )
    signed_headers = fields["SignedHeaders"]
    names = signed_headers.split(";")
    if not all(_HEADER_NAME.match(name) for name in names):
        raise AuthorizationFormatError("SignedHeaders must be lower-case names joined by ';'")
    if not REQUIRED_SIGNED_HEADERS.issubset(names):
        raise AuthorizationFormatError("SignedHeaders must include content-type and host")
    signature = fields["Signature"]
    if not _HEX_SIGNATURE.match(signature):
        raise AuthorizationFormatError("Signature must be 64 lower-case hex digits")
    return Authorization(
        secret_id=credential[0],
        date=credential[1],
        service=credential[2],
        signed_headers=signed_headers,
        signature=signature,
    )


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    signed_headers: str,
    payload: bytes,
) -> str:
    """Header values are trimmed and lower-cased, as Tencent's signing guide prescribes."""
    canonical_headers = "".join(f"{name}:{value.strip().lower()}\n" for name, value in headers)
    payload_hash = hashlib.sha256(payload).hexdigest()
    return "\n".join(
        [method, path, query, canonical_headers, signed_headers, payload_hash],
    )


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    def _hmac(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

    signing_key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), TERMINATOR)
    return hmac.new(signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
