"""`file:` sink: the local store, laid out like the COS sink so a directory can be synced to COS."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..records import Record
from .base import SinkError, one_per_record


class FileSink:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name

    def batches(self, records: Sequence[Record]) -> list[Sequence[Record]]:
        return one_per_record(records)

    def deliver(self, batch: Sequence[Record]) -> None:
        for record in batch:
            write_atomic(self.root / record.key, encode(record))

    def path_for(self, record: Record) -> Path:
        return self.root / record.key


def encode(record: Record) -> bytes:
    return (json.dumps(record.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write then rename: a reader (or a re-run) never sees half a record."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SinkError(f"could not write {path}: {exc.strerror or exc}") from None
