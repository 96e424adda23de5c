"""Standard Webhooks signing (https://www.standardwebhooks.com/): the secret and the signature."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

WHSEC_PREFIX = "whsec_"


def decode_whsec(secret: str) -> bytes:
    """`whsec_` + base64 -> key bytes; ValueError (never echoing the secret) otherwise."""
    if not secret.startswith(WHSEC_PREFIX):
        raise ValueError("must be 'whsec_' followed by base64 (Standard Webhooks secret)")
    try:
        key = base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after 'whsec_' is not valid base64") from None
    if len(key) < 16:
        raise ValueError("the decoded secret is shorter than 16 bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
