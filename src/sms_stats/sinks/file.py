"""`file:` sink: the local store, laid out like the COS sink so a directory can be synced to COS."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..notices import STORE_TOPICS, Notice
from ..records import AnyRecord
from ..settings import Settings
from .base import SinkError, one_per_record

# Records are a few hundred bytes and outbox entries a few hundred KB: anything far larger under
# our keys was not written by us, and is not read whole into memory.
MAX_OBJECT_BYTES = 8 * 1024 * 1024
NOTICES = "notices/"  # where a store told of notices (`?notify=alerts`) keeps them, by id
MAX_NOTICE_ID = 200


def build(url: str, settings: Settings, transport: object) -> FileSink:
    """`file:///abs/dir` or `file:rel/dir` (relative to the working directory)."""
    parts = urlsplit(url)
    # The messages quote only the path: a query or a user:password@ may be someone's secret.
    if parts.netloc:
        raise ValueError(
            "a file URL has a host part (file://HOST/...); use file:///absolute/dir or file:rel/dir"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"a file URL takes no ?query or #fragment; use file:{parts.path or '/absolute/dir'}"
        )
    if not parts.path:
        raise ValueError("a file URL names no directory; use file:///absolute/dir or file:rel/dir")
    path = Path(unquote(parts.path))
    return FileSink(path, name=f"file:{path}")


class FileSink:
    topics: frozenset[str] = STORE_TOPICS  # what it is told by default; `?notify=` sets its own

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return one_per_record(records)

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        for record in batch:
            self.put(record.key, encode(record))

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        self.put(notice_key(notice, self.name), encode_notice(notice, self.name), deadline)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise SinkError(f"{self.name}: not a store key: {key[:120]!r}")
        return self.root.joinpath(*parts)

    def exists(self, key: str, deadline: float | None = None) -> bool:
        return self._path(key).is_file()

    def get(self, key: str, deadline: float | None = None) -> bytes | None:
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_OBJECT_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SinkError(f"could not read {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_OBJECT_BYTES:
            raise SinkError(f"{path} is larger than {MAX_OBJECT_BYTES} bytes: not ours")
        return data

    def put(self, key: str, data: bytes, deadline: float | None = None) -> None:
        write_atomic(self._path(key), data)

    def delete(self, key: str, deadline: float | None = None) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise SinkError(f"could not delete {path}: {exc.strerror or exc}") from None

    def keys(self, prefix: str, deadline: float | None = None) -> list[str]:
        return sorted(key for key, _ in self._walk(prefix))

    def listing(self, prefix: str, deadline: float | None = None) -> dict[str, str]:
        """Each file's version is its inode, size and modification time in ns: `put` replaces
        a file by renaming a new one over it, so a rewrite is a new inode even within one
        tick of a coarse clock."""
        found: dict[str, str] = {}
        for key, entry in self._walk(prefix):
            try:
                info = entry.stat()
            except FileNotFoundError:  # deleted since its folder was read
                continue
            except OSError as exc:
                raise SinkError(f"could not list {entry.path}: {exc.strerror or exc}") from None
            found[key] = f"{entry.inode()}-{info.st_size}-{info.st_mtime_ns}"
        return found

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(key, entry) of every file under `prefix`, half-written temporaries left out."""
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        folders = [str(base)]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = list(entries)
            except FileNotFoundError:
                continue  # nothing stored under it (yet), or removed meanwhile
            except OSError as exc:
                raise SinkError(f"could not list {folder}: {exc.strerror or exc}") from None
            for entry in listed:
                if entry.is_dir():  # as os.walk: a link to a folder is not followed
                    if not entry.is_symlink():
                        folders.append(entry.path)
                elif not entry.name.startswith(".tmp-"):
                    yield Path(entry.path).relative_to(self.root).as_posix(), entry


def encode(record: AnyRecord) -> bytes:
    return (json.dumps(record.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def notice_key(notice: Notice, sink: str) -> str:
    """`notices/<id>.json`: one object per notice, so a repeat overwrites itself. The id is the
    engine's, but it becomes a key: one path segment of plain characters, or a SinkError."""
    if not _one_segment(notice.id):
        raise SinkError(f"{sink}: notice id {notice.id[:80]!r} cannot be a store key")
    return f"{NOTICES}{notice.id}.json"


def _one_segment(name: str) -> bool:
    """A file name that is visible, printable and stays in its folder."""
    return (
        0 < len(name) <= MAX_NOTICE_ID
        and not name.startswith(".")
        and all(c.isprintable() and not c.isspace() and c not in "/\\" for c in name)
    )


def encode_notice(notice: Notice, sink: str) -> bytes:
    """The notice as `Notice.to_dict` writes it (what `Notice.from_dict` reads back)."""
    try:
        text = json.dumps(notice.to_dict(), ensure_ascii=False, indent=2)
    except (TypeError, ValueError) as exc:  # data that is not JSON: the engine's bug
        raise SinkError(f"{sink}: notice {notice.id[:80]!r} is not JSON: {exc}") from None
    return (text + "\n").encode("utf-8")


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
