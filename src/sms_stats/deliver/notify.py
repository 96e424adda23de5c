"""Telling every sink that wants it of each notice (an alert's transition, the daily digest).

The records' delivery (`deliver_all`) and this one follow the same rules: a failing sink never
stops the others, stores go first (a webhook that hangs until the deadline must not cost the
store its copy), and each (notice, sink) gets one outcome, so the caller can keep what did not
arrive and try it again. Which sink hears which notice is its `topics` (the kind's default, or
what `?notify=` set on it); a sink without `notify` hears none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sms_stats.core.notices import STORE_TOPICS, Notice
from sms_stats.deliver.sinks import Delivery, attempt
from sms_stats.store.base import Sink, Store


@runtime_checkable
class Notifiable(Protocol):
    """A sink that takes notices: every kind this project has (what it is told: `topics_of`)."""

    name: str

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        """Deliver or raise SinkError (no secret in it); `deadline` is a time.monotonic()."""
        ...


def topics_of(sink: Sink) -> frozenset[str]:
    """What `sink` is told: its own `topics` (the class default, or `?notify=`'s choice); a
    store that names none keeps only records, as the contract's default says."""
    topics = getattr(sink, "topics", None)
    if isinstance(topics, (set, frozenset)):
        return frozenset(topics)
    return STORE_TOPICS if isinstance(sink, Store) else frozenset()


def notify_all(
    notices: Sequence[Notice], sinks: Sequence[Sink], deadline: float | None = None
) -> list[Delivery]:
    """Each notice to each sink whose topics hold its topic; one `Delivery` per pair tried,
    its `window` and `key` the notice's id (what a caller strikes off once it arrived)."""
    outcomes: list[Delivery] = []
    for sink in sorted(sinks, key=lambda s: not isinstance(s, Store)):
        if not isinstance(sink, Notifiable):
            continue
        topics = topics_of(sink)
        for notice in notices:
            if notice.topic not in topics:
                continue
            error, took = attempt(sink.name, lambda: sink.notify(notice, deadline))  # noqa: B023
            outcomes.append(
                Delivery(notice.app_id, notice.id, sink.name, error is None, error, took, notice.id)
            )
    return outcomes
