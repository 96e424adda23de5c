"""Notices: what the function tells people besides records (an alert firing or resolved, the
daily digest), in one shape every sink can take.

A notice's `id` is deterministic: the same transition judged by a retried or an overlapping run
gets the same id, so a webhook receiver that drops seen `webhook-id`s, and the chat bots' repeat
memory, drop the repeat. `timestamp` is the end of the hour (or day) judged, not the time of
sending, so the body of a repeat is the same bytes too.

Webhook body (the contract's): `{"type": ..., "timestamp": ..., "data": {...}}`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

from sms_stats.core.records import isoformat_utc

NoticeType = Literal["alert.firing", "alert.resolved", "digest.daily"]
NOTICE_TYPES: tuple[NoticeType, ...] = ("alert.firing", "alert.resolved", "digest.daily")
# What a sink takes, set per sink with `?notify=` (its `topics`); the contract's defaults:
NOTIFY = ("records", "alerts", "digest")
STORE_TOPICS = frozenset({"records"})
WEBHOOK_TOPICS = frozenset({"records", "alerts", "digest"})
CHAT_TOPICS = frozenset({"alerts", "digest"})


class Notice(NamedTuple):
    """An alert or the daily digest, the same for every sink: its `id` is deterministic so a
    receiver can drop the repeat of a retried delivery. (A NamedTuple, as records are: see
    `records`.)"""

    id: str
    type: NoticeType
    timestamp: datetime  # aware; UTC on the wire
    data: dict[str, Any]
    timezone: str = "Asia/Shanghai"  # the store's zone: chat messages show local times

    @property
    def topic(self) -> str:
        """`alerts` or `digest`: which `?notify=` value lets a sink hear it."""
        return "digest" if self.type == "digest.daily" else "alerts"

    @property
    def app_id(self) -> str:
        """The app an alert is about; empty for the digest (it covers every app)."""
        return str(self.data.get("app_id", ""))

    @property
    def repeat(self) -> bool:
        """A firing alert told again after `repeat_hours` (its id names the hour repeated)."""
        return "_repeat_" in self.id

    @property
    def label(self) -> str:
        """What a delivery outcome names in place of a window: the notice's id."""
        return self.id

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": isoformat_utc(self.timestamp), "data": self.data}

    def to_dict(self) -> dict[str, Any]:
        """The notice as kept in the alert state until every sink has it."""
        return {**self.body(), "id": self.id, "timezone": self.timezone}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        """ValueError when it is not a notice as `to_dict` wrote it."""
        kind = data.get("type")
        if kind not in NOTICE_TYPES:
            raise ValueError(f"not a notice type: {str(kind)[:40]!r}")
        if not isinstance(data.get("id"), str) or not isinstance(data.get("data"), dict):
            raise ValueError("a notice needs an id and a data object")
        return cls(
            id=data["id"],
            type=kind,
            timestamp=_instant(data.get("timestamp")),
            data=data["data"],
            timezone=str(data.get("timezone") or "Asia/Shanghai"),
        )


def _instant(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {str(text)[:40]!r} has no offset")
    return moment.astimezone(timezone.utc)
