"""Generic webhook: POST `{"kind": "send", "records": [record]}` signed per Standard Webhooks;
a notice (an alert, the digest) goes the same way as `{"type", "timestamp", "data"}`.

One message per record, so `webhook-id` can follow the record's content: the same on every
retry of it, across SCF's own retries too (a receiver that de-duplicates by id sees it once),
and new when a re-fetch changed the counts.
`webhook-timestamp` and the signature are fresh on every attempt, as the spec asks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sms_stats import __version__
from sms_stats.core import redact
from sms_stats.core.notices import WEBHOOK_TOPICS, Notice
from sms_stats.core.records import AnyRecord
from sms_stats.core.settings import Settings
from sms_stats.core.signing import decode_whsec, sign
from sms_stats.deliver.transport import Transport
from sms_stats.store.base import SinkError, label, one_per_record

USER_AGENT = f"sms-stats/{__version__}"


def build(url: str, settings: Settings, transport: Transport) -> WebhookSink:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a webhook URL must be http(s)://host/...")
    if parts.username or parts.password:
        raise ValueError("a webhook URL must not carry user:password; sign with a secret instead")
    _ = parts.port  # ValueError on a bad port
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    redact.register(*redact.likely_url_secrets(url))  # a token in the path or the query
    return WebhookSink(url, label("webhook", url), transport, secret)


def message_id(record: AnyRecord) -> str:
    """Names the app, the window and the content: a retry of the same record repeats the id
    (a receiver that drops seen ids drops the repeat), a correction (receipts that settled, a
    re-fetch with new counts) gets a new one, so no receiver ever drops a correction."""
    kind = "" if record.kind == "send" else f"{record.kind}_"
    window = record.window.label.replace("-", "_")
    return f"msg_{kind}{record.sms_sdk_app_id}_{window}_{record.content()}"


def encode(records: Sequence[AnyRecord]) -> bytes:
    """`{"kind": ..., "records": [...]}`: the body says which kind it carries."""
    payload = {
        "kind": records[0].kind if records else "send",
        "records": [r.to_dict() for r in records],
    }
    return compact(payload)


def compact(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the bytes signed are the bytes sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookSink:
    topics: frozenset[str] = WEBHOOK_TOPICS  # what it is told by default; `?notify=` sets its own

    def __init__(
        self,
        url: str,
        name: str,
        transport: Transport,
        secret: str | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self.transport = transport
        self._key = decode_whsec(secret) if secret else None

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return one_per_record(records)

    def headers(self, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        headers = {
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, msg_id, timestamp, body)
        return headers

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        self.post(message_id(batch[0]), encode(batch), deadline)

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        """The contract's `{"type", "timestamp", "data"}`, under the notice's own id: a notice
        judged again by a retried or overlapping run keeps its id, and a receiver that drops
        seen ids drops the repeat."""
        try:
            body = compact(notice.body())
        except (TypeError, ValueError) as exc:  # data that is not JSON: the engine's bug
            raise SinkError(f"{self.name}: notice {notice.id} is not JSON: {exc}") from None
        self.post(notice.id, body, deadline)

    def post(self, msg_id: str, body: bytes, deadline: float | None) -> None:
        """POST `body` as message `msg_id`, signed afresh (a new timestamp) on every attempt."""

        def prepare() -> tuple[str, bytes, Mapping[str, str]]:
            return self.url, body, self.headers(msg_id, body, int(time.time()))

        self.transport.post(self.url, body, {}, name=self.name, deadline=deadline, prepare=prepare)
