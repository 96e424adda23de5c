"""`file:` sink: the local store, laid out like the COS sink so a directory can be synced to COS."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..records import Record, store_key
from ..settings import Settings
from ..windows import Window
from .base import SinkError, one_per_record
from .transport import Transport


def build(url: str, settings: Settings, transport: Transport) -> FileSink:
    """`file:///abs/dir` or `file:rel/dir` (relative to the working directory)."""
    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError(f"file URL {url!r} has a host; use file:///absolute/dir or file:rel/dir")
    if parts.query or parts.fragment:
        raise ValueError(f"file URL {url!r} takes no query or fragment")
    if not parts.path:
        raise ValueError(f"file URL {url!r} names no directory")
    path = Path(unquote(parts.path))
    return FileSink(path, name=f"file:{path}")


class FileSink:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name

    def batches(self, records: Sequence[Record]) -> list[Sequence[Record]]:
        return one_per_record(records)

    def exists(self, app_id: str, window: Window) -> bool:
        return (self.root / store_key(app_id, window)).is_file()

    def deliver(self, batch: Sequence[Record], deadline: float | None = None) -> None:
        for record in batch:
            write_atomic(self.root / record.key, encode(record))


def encode(record: Record) -> bytes:
    return (json.dumps(record.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write then rename: a reader (or a re-run) never sees half a record."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(path.parent / f".tmp-{secrets.token_hex(8)}")
        # mode 0o666 through the umask, like any plain write (mkstemp forces 0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SinkError(f"could not write {path}: {exc.strerror or exc}") from None
