"""A key-value store in a folder on disk.

Mirrors ``lightning_persister::fs_store::FilesystemStore``. A value lives at
``data_dir/primary/secondary/key`` (or ``data_dir/key`` when both namespaces are empty).
Writes are atomic: the bytes go to a temporary file, are flushed to disk, and the file is
renamed over the old one, so a crash mid-write leaves either the old value or the new
one, never a torn file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

from .persist import NotFound, check_namespace_key_validity, is_valid_kvstore_str

#: Temporary files being written now, by any store in this process: never "interrupted".
_IN_FLIGHT: set[str] = set()
_IN_FLIGHT_LOCK = threading.Lock()


class FilesystemStore:
    """Mirrors ``lightning_persister::fs_store::FilesystemStore``; implements ``KVStore``.

    ``durable=False`` is for the simulated world's scratch folders: nothing loses power or crashes mid-write in a
    simulation, and the folder is deleted afterwards. So a value is rewritten in place, with no ``fsync`` and no
    temporary file renamed over it (on a virtual machine those cost three times the write, and a node writes its
    manager at every block); the store's own reads take its lock, so they never see half a write. It also skips
    writing a value the file already holds, unchanged since this store wrote it: the background processor
    persists an unchanged scorer every five simulated minutes, and the disk would only see the same bytes.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.durable = durable
        self._lock = threading.Lock()  # one writer at a time, as LDK's per-path locks
        #: Not durable: what this store last wrote under each key, at which path, and the file's identity just after.
        self._written: dict[tuple[str, str, str], tuple[bytes, str, tuple[int, int, int]]] = {}
        self._files: dict[tuple[str, str, str], str] = {}  # each key's file (see _file)
        self._remove_interrupted_writes()

    def _remove_interrupted_writes(self) -> None:
        """A crash mid-write leaves a ``.tmp`` file (never a key: keys have no '.'); clear them on start,
        except those another store on this folder, in this process, is writing right now."""
        if self.data_dir.is_dir():
            for tmp in self.data_dir.rglob("*.tmp"):
                with _IN_FLIGHT_LOCK:
                    if str(tmp) not in _IN_FLIGHT:
                        tmp.unlink(missing_ok=True)

    def get_data_dir(self) -> Path:
        return self.data_dir

    def _file(self, primary_namespace: str, secondary_namespace: str, key: str) -> str:
        """A key's file, as a plain string: a node reads and writes on every change, and pathlib's objects doubled
        a write's time. Each key's is kept (the manager's is written at every block)."""
        name = (primary_namespace, secondary_namespace, key)
        path = self._files.get(name)
        if path is None:
            path = os.path.join(self.data_dir, *(p for p in name if p))
            if len(self._files) < 1024:
                self._files[name] = path
        return path

    def _path(self, primary_namespace: str, secondary_namespace: str, key: str = "") -> Path:
        return self.data_dir.joinpath(*(p for p in (primary_namespace, secondary_namespace, key) if p))

    def read(self, primary_namespace: str, secondary_namespace: str, key: str) -> bytes:
        check_namespace_key_validity(primary_namespace, secondary_namespace, key, "read")
        try:
            with self._lock, open(self._file(primary_namespace, secondary_namespace, key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            where = "/".join(p for p in (primary_namespace, secondary_namespace, key) if p)
            raise NotFound(f"Nothing is stored under {where!r} in {self.data_dir}") from None

    def write(self, primary_namespace: str, secondary_namespace: str, key: str, buf: bytes) -> None:
        check_namespace_key_validity(primary_namespace, secondary_namespace, key, "write")
        if not isinstance(buf, (bytes, bytearray, memoryview)):
            raise TypeError(f"FilesystemStore.write takes bytes, got {type(buf).__name__}; call .encode() first")
        name = (primary_namespace, secondary_namespace, key)
        with self._lock:
            if not self.durable:
                if not self._holds(name, buf):
                    self._rewrite(name, buf)
                return
            dest = self._file(*name)
            # Keys cannot contain '.', so the temporary name can never clash with a key.
            tmp = f"{dest}.{secrets.token_hex(6)}.tmp"  # pragma: no mutate  (any random suffix)
            with _IN_FLIGHT_LOCK:
                _IN_FLIGHT.add(tmp)
            try:
                self._write_new_file(tmp, buf)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            finally:
                with _IN_FLIGHT_LOCK:
                    _IN_FLIGHT.discard(tmp)
            _fsync_dir(os.path.dirname(dest))

    def _rewrite(self, name: tuple[str, str, str], buf: bytes | bytearray | memoryview) -> None:
        """Not durable: write ``buf`` over the key's file in place (see the class), and remember it."""
        dest = self._file(*name)
        fd = _open(dest, os.O_WRONLY | os.O_CREAT)
        try:
            if type(buf) is bytes:  # (the usual: one os.write takes it all, with no view of it to make)
                written = os.write(fd, buf)
                if written < len(buf):
                    _write_fully(fd, memoryview(buf)[written:])
            else:
                _write_fully(fd, buf)
            st = os.fstat(fd)
            if st.st_size != len(buf):  # a shorter value leaves no tail of the old one (a value that grows, or
                os.ftruncate(fd, len(buf))  # keeps its length, as a manager's at every block, needs no call)
                st = os.fstat(fd)
            identity = st.st_ino, st.st_size, st.st_mtime_ns  # (_identity_of, inline: a write at every block)
        finally:
            os.close(fd)
        self._written[name] = (bytes(buf), dest, identity)

    def _write_new_file(self, path: str, buf: bytes | bytearray | memoryview) -> None:
        """Write ``buf`` to a new file (its folder made if missing), flushed to disk."""
        fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            _write_fully(fd, buf)
            os.fsync(fd)
        finally:
            os.close(fd)

    #: A scratch store holding these bytes already writes nothing (``sim.quiet_loop.tick_changes_nothing``).
    write.changes_nothing_when = (  # type: ignore[attr-defined]
        lambda self, primary, secondary, key, buf: not self.durable and self._holds((primary, secondary, key), buf))

    def _holds(self, name: tuple[str, str, str], buf: bytes | bytearray | memoryview) -> bool:
        """Whether the file of key ``name`` is the one this store last wrote, untouched since, with these bytes."""
        last = self._written.get(name)
        if last is None or last[0] != buf:
            return False
        try:
            return _identity(last[1]) == last[2]
        except FileNotFoundError:
            return False

    def remove(self, primary_namespace: str, secondary_namespace: str, key: str, lazy: bool = False) -> None:
        """Delete a key. Removing a missing key is not an error, as in LDK."""
        check_namespace_key_validity(primary_namespace, secondary_namespace, key, "remove")
        path = self._path(primary_namespace, secondary_namespace, key)
        with self._lock:
            path.unlink(missing_ok=True)
            if not lazy and self.durable and path.parent.exists():
                _fsync_dir(path.parent)

    def list(self, primary_namespace: str, secondary_namespace: str) -> list[str]:
        """The keys stored directly in this namespace, sorted."""
        check_namespace_key_validity(primary_namespace, secondary_namespace, None, "list")
        folder = self._path(primary_namespace, secondary_namespace)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file() and is_valid_kvstore_str(p.name))

    def __repr__(self) -> str:
        return f"FilesystemStore({str(self.data_dir)!r})"


def _open(path: str, flags: int) -> int:
    """``os.open`` for writing, making the file's folder if missing (a namespace's first write, or a folder
    removed meanwhile)."""
    flags |= getattr(os, "O_BINARY", 0)
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o666)


def _write_fully(fd: int, buf: bytes | bytearray | memoryview) -> None:
    """Every byte of ``buf``: ``os.write`` may take fewer than it is given."""
    left = memoryview(buf).cast("B")
    while left:
        left = left[os.write(fd, left):]


def _identity(path: str | Path) -> tuple[int, int, int]:
    """A file's inode, size and modification time: any write or replacement changes one of them."""
    return _identity_of(os.stat(path))


def _identity_of(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _fsync_dir(folder: str | Path) -> None:
    """Make a rename durable. Not every platform lets a folder be opened, so skip if not."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
