"""Each app's hour history in the store: requests and billed parts of its last five weeks of
hours, and the month to date it last knew. One small object per app
(`money/app=<id>/history.json`), read once per run and written when it changed, so the money
and surge rules read nothing else; a re-fetched hour replaces its figures, never adds to them.

The month to date is a checkpoint (`month`, `through`, `fee`): the next run adds the hours it
holds after `through`, and asks the API again only when one is missing. Two runs that overlap
each write the union of the hours they saw (the newer figure of an hour wins).
"""

from __future__ import annotations

import json
from typing import Any

from sms_stats.core.log import logger
from sms_stats.core.records import MAX_COUNT
from sms_stats.store.base import SinkError, Store

PREFIX = "money/"
SCHEMA = "sms-stats-history/v1"
KEEP_HOURS = 5 * 7 * 24  # the week under way and the four before it
_LABEL_DIGITS = 10


def key(app_id: str) -> str:
    return f"{PREFIX}app={app_id}/history.json"


class Checkpoint:
    """Billed parts from the month's first hour through the hour `through`, exactly."""

    __slots__ = ("fee", "month", "through")

    def __init__(self, month: str, through: str, fee: int) -> None:
        self.month = month  # yyyy-mm
        self.through = through  # yyyymmddhh
        self.fee = fee

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and (self.month, self.through, self.fee) == (
            other.month,
            other.through,
            other.fee,
        )

    def __hash__(self) -> int:
        return hash((self.month, self.through, self.fee))

    def __repr__(self) -> str:
        return f"Checkpoint({self.month!r}, {self.through!r}, {self.fee})"


class History:
    """One app's hours as the store holds them, changed in place by a run; `changed` says
    whether it must be written back (most runs add an hour, some re-read ones add nothing).
    A plain class: a dataclass's generated methods are compiled at every cold start."""

    __slots__ = ("app_id", "changed", "checkpoint", "hours", "seeded")

    def __init__(
        self,
        app_id: str,
        hours: dict[str, tuple[int, int]] | None = None,  # label -> (requests, fee)
        checkpoint: Checkpoint | None = None,
        changed: bool = False,
        seeded: bool = False,  # its first hours were read from the store's hour records, once
    ) -> None:
        self.app_id = app_id
        self.hours = {} if hours is None else hours
        self.checkpoint = checkpoint
        self.changed = changed
        self.seeded = seeded

    def note(self, label: str, requests: int, fee: int) -> None:
        if self.hours.get(label) != (requests, fee):
            self.hours[label] = (requests, fee)
            self.changed = True

    def prune(self) -> None:
        if len(self.hours) > KEEP_HOURS:
            self.hours = dict(sorted(self.hours.items())[-KEEP_HOURS:])
            self.changed = True

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "schema": SCHEMA,
            "sms_sdk_app_id": self.app_id,
            "hours": {label: list(v) for label, v in sorted(self.hours.items())},
            "seeded": self.seeded,
            "month_to_date": None
            if self.checkpoint is None
            else {
                "month": self.checkpoint.month,
                "through": self.checkpoint.through,
                "fee_count": self.checkpoint.fee,
            },
        }
        return json.dumps(body, separators=(",", ":")).encode()


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"not a count: {str(value)[:20]}")
    return value


def _label(value: Any) -> str:
    if not isinstance(value, str) or len(value) != _LABEL_DIGITS or not value.isdigit():
        raise ValueError(f"not an hour: {str(value)[:20]}")
    return value


def parse(app_id: str, data: bytes) -> History:
    """ValueError naming what is wrong: a history is checked as strictly as a record."""
    body = json.loads(data)
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise ValueError("not a history of this version")
    if body.get("sms_sdk_app_id") != app_id:
        raise ValueError("another app's history")
    hours = body.get("hours")
    if not isinstance(hours, dict):
        raise ValueError("hours: not an object")
    held: dict[str, tuple[int, int]] = {}
    for label, pair in hours.items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"{_label(label)}: not [requests, fee]")
        held[_label(label)] = (_count(pair[0]), _count(pair[1]))
    mark = body.get("month_to_date")
    checkpoint = None
    if mark is not None:
        if not isinstance(mark, dict) or not isinstance(mark.get("month"), str):
            raise ValueError("month_to_date: not a checkpoint")
        checkpoint = Checkpoint(
            str(mark["month"])[:7], _label(mark.get("through")), _count(mark.get("fee_count"))
        )
    return History(app_id, held, checkpoint, seeded=body.get("seeded") is True)


def load(store: Store, app_id: str, deadline: float | None) -> History:
    """The app's history; an empty one when there is none or it cannot be read (logged: the
    next write replaces it). SinkError when the store does not answer."""
    data = store.get(key(app_id), deadline)
    if data is None:
        return History(app_id)
    try:
        return parse(app_id, data)
    except (ValueError, RecursionError) as exc:
        logger.warning("money.history_unreadable", key=key(app_id), error=str(exc)[:200])
        return History(app_id, changed=True)


def save(store: Store, history: History, deadline: float | None) -> None:
    """Written when it changed, merged with what another run wrote since it was read (the
    union of hours; ours win where both hold one; the newer checkpoint)."""
    if not history.changed:
        return
    try:
        there = load(store, history.app_id, deadline)
    except SinkError:
        there = History(history.app_id)
    for label, pair in there.hours.items():
        history.hours.setdefault(label, pair)
    history.seeded = history.seeded or there.seeded
    mark, theirs = history.checkpoint, there.checkpoint
    if theirs is not None and (
        mark is None or (theirs.month, theirs.through) > (mark.month, mark.through)
    ):
        history.checkpoint = theirs
    history.prune()
    store.put(key(history.app_id), history.to_bytes(), deadline)
    history.changed = False
