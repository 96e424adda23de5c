"""The one small protocol every sink follows, and the error a sink raises when it gives up."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from sms_stats.core.records import AnyRecord, read_back


class SinkError(Exception):
    """A delivery failed for good (after the sink's own retries); the message holds no secret."""


class ObjectRefused(SinkError):
    """One object the store holds but will not give as ours (a symbolic link out of a file
    store, an object far larger than any we write): that object is unreadable, while the store
    itself answers. Readers skip it as they skip a corrupt one."""


@runtime_checkable
class Sink(Protocol):
    """Where records go. Deliveries must be idempotent: SCF retries a failed timer run whole.

    `name` is safe to log (no key, token or secret); `batches` groups records the way the
    destination wants them (one object per record, one message per window, ...). `topics` is
    what it receives (`records`, `alerts`, `digest`): its URL's `?notify=`, else its kind's
    default (see `sinks.topics`).
    """

    name: str
    topics: frozenset[str]

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]: ...

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        """Deliver or raise SinkError; `deadline` (a time.monotonic() value) bounds retries."""
        ...


@runtime_checkable
class Store(Sink, Protocol):
    """A sink that keeps objects under stable keys: the records, and the little state the
    function keeps beside them (the outbox of deliveries still owed to other sinks).

    Keys are relative to the store's root (a directory, or a COS prefix) and use `/`. Every
    operation raises SinkError when the store cannot answer; `get` of an absent key is None.
    `deadline` (a time.monotonic() value) bounds the whole operation, retries included.
    """

    def exists(self, key: str, deadline: float | None = None) -> bool: ...

    def get(self, key: str, deadline: float | None = None) -> bytes | None: ...

    def put(self, key: str, data: bytes, deadline: float | None = None) -> None: ...

    def delete(self, key: str, deadline: float | None = None) -> None: ...

    def keys(self, prefix: str, deadline: float | None = None) -> list[str]:
        """Every key under `prefix` (a folder path ending in `/`), sorted."""
        ...

    def listing(self, prefix: str, deadline: float | None = None) -> dict[str, str]:
        """Every key under `prefix` with a version: text that changes when the object is
        written again (an ETag, a file's inode, size and time), so a copy made from it (the
        dashboard's rollups, its memory) can tell that it is stale without reading it."""
        ...


def one_per_record(records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
    return [[record] for record in records]


def label(kind: str, url: str) -> str:
    """A sink's name for logs and reports: kind, host and a short hash of the whole URL.

    Paths and queries of webhook and bot URLs hold keys and tokens, so they never appear; the
    hash tells two sinks on one host apart without revealing anything.
    """
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{kind}:{parts.hostname or ''}{port}#{digest}"


def stored_record(store: Store, key: str, deadline: float | None) -> AnyRecord | None:
    """The record `store` holds under `key`: None when there is none, or when what is there
    does not read back as the record that key names (unreadable, not ours, another app's
    copied there), which a write may then replace."""
    try:
        record = read_back(store.get(key, deadline))
    except SinkError:
        return None
    return record if record is not None and record.key == key else None


def public_name(name: str) -> str:
    """A sink's name as an HTTP answer shows it: a file store's absolute path is the server's
    business (`file:/srv/data/stats` -> `file:.../stats`); other names hide their secrets
    already (`label`)."""
    if name.startswith("file:") and "/" in name:
        return "file:.../" + name.rstrip("/").rsplit("/", 1)[-1]
    return name


def find_store(sinks: Sequence[Sink]) -> Store | None:
    """The first store among the sinks: where resumes look, and where the outbox lives."""
    for sink in sinks:
        if isinstance(sink, Store):
            return sink
    return None
