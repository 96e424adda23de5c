"""`file:` sink: the local store, laid out like the COS sink so a directory can be synced to COS."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sms_stats.core.notices import STORE_TOPICS, Notice
from sms_stats.core.records import AnyRecord
from sms_stats.core.settings import Settings
from sms_stats.store.base import ObjectRefused, SinkError, one_per_record

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
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
        self._root = str(root)
        self._resolved: str | None = None  # the root with its links resolved, once

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return one_per_record(records)

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        for record in batch:
            self.put(record.key, encode(record))

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        self.put(notice_key(notice, self.name), encode_notice(notice, self.name), deadline)

    def _path(self, key: str) -> str:
        """The file of `key` (plain strings: pathlib costs ~5 us a key, and a timer run over
        thousands of apps touches hundreds of thousands of keys)."""
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise SinkError(f"{self.name}: not a store key: {key[:120]!r}")
        return os.path.join(self._root, key)

    def exists(self, key: str, deadline: float | None = None) -> bool:
        return os.path.isfile(self._path(key))

    def get(self, key: str, deadline: float | None = None) -> bytes | None:
        """The object's bytes. A symbolic link is never followed out of the store (a link put
        there would show an outside file's text as a record), and an object far larger than
        anything we write is not read whole; errors name the key, not the server's path."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ObjectRefused(f"{key} is a symbolic link: not read") from None
            raise SinkError(f"could not read {key}: {exc.strerror or exc}") from None
        try:
            if os.path.dirname(os.path.realpath(path)) != os.path.dirname(
                os.path.join(self._real_root(), key)
            ):
                raise ObjectRefused(f"{key} is reached through a symbolic link: not read")
            with os.fdopen(fd, "rb") as handle:
                fd = -1
                data = handle.read(MAX_OBJECT_BYTES + 1)
        except OSError as exc:
            raise SinkError(f"could not read {key}: {exc.strerror or exc}") from None
        finally:
            if fd >= 0:
                os.close(fd)
        if len(data) > MAX_OBJECT_BYTES:
            raise ObjectRefused(f"{key} is larger than {MAX_OBJECT_BYTES} bytes: not ours")
        return data

    def _real_root(self) -> str:
        real = self._resolved
        if real is None:
            real = self._resolved = os.path.realpath(self._root)
        return real

    def put(self, key: str, data: bytes, deadline: float | None = None) -> None:
        write_atomic(self._path(key), data, shown=key)

    def delete(self, key: str, deadline: float | None = None) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SinkError(f"could not delete {key}: {exc.strerror or exc}") from None

    def keys(self, prefix: str, deadline: float | None = None) -> list[str]:
        return sorted(key for key, _ in self._walk(prefix))

    def listing(self, prefix: str, deadline: float | None = None) -> dict[str, str]:
        """Each file's version is its inode, size and modification time in ns: `put` replaces
        a file by renaming a new one over it, so a rewrite is a new inode even within one
        tick of a coarse clock, and a file cut or changed in place changes size or time."""
        found: dict[str, str] = {}
        for key, entry in self._walk(prefix):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted since its folder was read
                continue
            except OSError as exc:
                raise SinkError(f"could not list {key}: {exc.strerror or exc}") from None
            found[key] = f"{info.st_ino}-{info.st_size}-{info.st_mtime_ns}"
        return found

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(key, entry) of every file under `prefix`, half-written temporaries and symbolic
        links left out (as os.walk, a link to a folder is not followed; nor is one to a file,
        which `get` would refuse)."""
        top = prefix.strip("/")
        base = self._path(top) if top else self._root
        if top and os.path.realpath(base) != os.path.join(self._real_root(), top):
            return  # the folder (or one above it) is a link: what it points at is not ours
        folders = [(base, f"{top}/" if top else "")]
        while folders:
            folder, under = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = list(entries)
            except FileNotFoundError:
                continue  # nothing stored under it (yet), or removed meanwhile
            except OSError as exc:
                shown = under.rstrip("/") or "the store's root"
                raise SinkError(f"could not list {shown}: {exc.strerror or exc}") from None
            for entry in listed:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, f"{under}{name}/"))
                elif not name.startswith(".tmp-") and not entry.is_symlink():
                    yield under + name, entry


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


def write_atomic(path: str | Path, data: bytes, shown: str | None = None) -> None:
    """Write then rename: a reader (or a re-run) never sees half a record. The folder is made
    only when the write finds it missing (most writes go to one that exists). An error names
    `shown` (a store's key) rather than the path: it may reach an HTTP answer, and the
    server's directories are none of its caller's business."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
    try:
        try:
            # mode 0o666 through the umask, like any plain write (mkstemp forces 0600)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise SinkError(f"could not write {shown or path}: {exc.strerror or exc}") from None
