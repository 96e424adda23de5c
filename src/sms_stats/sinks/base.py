"""The one small protocol every sink follows, and the error a sink raises when it gives up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..records import Record


class SinkError(Exception):
    """A delivery failed for good (after the sink's own retries); the message holds no secret."""


@runtime_checkable
class Sink(Protocol):
    """Where records go. Deliveries must be idempotent: SCF retries a failed timer run whole.

    `name` is safe to log (no key, token or secret); `batches` groups records the way the
    destination wants them (one object per record, one message per window, ...).
    """

    name: str

    def batches(self, records: Sequence[Record]) -> list[Sequence[Record]]: ...

    def deliver(self, batch: Sequence[Record]) -> None: ...


def one_per_record(records: Sequence[Record]) -> list[Sequence[Record]]:
    return [[record] for record in records]
