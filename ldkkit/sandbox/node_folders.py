"""The nodes' folders (``FilesystemStore.get_data_dir()``) across the grading boundary.

The node's folder is the worker's, out of the learner process's reach. The learner process is given a folder of its
own standing for it, a view (``<scratch>/ldk_data/<n>``), as a ``Path``, as ``get_data_dir`` gives one in Jupyter.
Every open of a file there, by any means (``open()``, ``os.open``, a ``FilesystemStore`` of its own), is caught by an
audit hook and told to the worker first: the worker announces the same open on the node's file (an audit event, in the
context of the event the learner's code works for), so what watches the node's disk in the check (workbook 7's failing
disk) refuses or records it there, and hands back the node's file, which the view holds before the learner's open goes
on. What the learner writes there crosses with its next message as bytes, and is written in the node's folder, by plain
names only: the learner process writes nowhere else than it could before (its scratch folder).
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from . import wire

#: Where, in its scratch folder, the learner process sees each node's folder: one folder per node's, by number.
VIEWS = "ldk_data"
#: The largest file of a node's folder that crosses (a record is a few KiB).
MAX_FILE_BYTES = 1 << 20
#: The most bytes of files one message carries (the rest goes with the next).
MAX_MESSAGE_FILES = 4 << 20
#: The most bytes the files the learner writes in the nodes' folders may hold in all (one learner's files filled the
#: grader's scratch disk, and failed others' workbooks): a node's records are a few KiB.
MAX_FOLDER_BYTES = 64 << 20


def plain_name(name: Any) -> bool:
    """A file's name right in a folder: no folder of its own, no way up."""
    return (type(name) is str and 0 < len(name) <= 255 and name not in (".", "..") and "/" not in name
            and "\0" not in name)


def read_file(path: str) -> Optional[bytes]:
    """A file of a node's folder, as the learner may see it (None: none, or none it may read whole)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    return data if len(data) <= MAX_FILE_BYTES else None


def write_file(path: str, data: bytes) -> None:
    """Write a file in a folder (never through a link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


class Views:
    """The learner process's end: its views of the nodes' folders, and each file there as last handed over."""

    def __init__(self) -> None:
        self.root = ""
        self.files: dict[tuple[str, str], tuple[tuple[int, int, int], bytes]] = {}
        self.own = threading.local()  # ``own.now``: this thread opens the views' files for the kit, not the learner

    def watch(self, root: str, opened: Callable[[str, str, Any, int], Optional[bytes]]) -> None:
        """An audit hook: a file of a view opened by the learner's code is first told to the grader (``opened``, which
        raises its refusal, else gives the node's file, or None), and the view given the node's file."""
        self.root, own = root, self.own

        def opening(event: str, args: tuple[Any, ...]) -> None:
            if event != "open" or getattr(own, "now", False) or not isinstance(args[0], (str, bytes, os.PathLike)) \
                    or not isinstance(args[2], int):
                return
            folder, name = os.path.split(os.path.abspath(os.fsdecode(args[0])))
            view = os.path.basename(folder)
            if (os.path.dirname(folder) == root and view.isascii() and view.isdigit() and plain_name(name)
                    and os.path.isdir(folder)):
                with self.kits_own():
                    self.hold(view, name, opened(view, name, args[1], args[2]))

        sys.addaudithook(opening)

    def given(self, value: Any) -> Any:
        """A value the grader gave: a view's path is made a folder (empty until written)."""
        if isinstance(value, os.PathLike) and self.root and os.path.dirname(value) == self.root:
            os.makedirs(value, exist_ok=True)
        return value

    @contextmanager
    def kits_own(self) -> Iterator[None]:
        before, self.own.now = getattr(self.own, "now", False), True
        try:
            yield
        finally:
            self.own.now = before

    def hold(self, view: str, name: str, data: Optional[bytes]) -> None:
        """The view's file as the node's (None: the node has none), never handed back as the learner's."""
        path = os.path.join(self.root, view, name)
        if data is None:
            self.files.pop((view, name), None)
            if os.path.lexists(path):
                os.unlink(path)
            return
        write_file(path, data)
        stat = os.stat(path, follow_symlinks=False)
        self.files[(view, name)] = ((stat.st_mtime_ns, stat.st_size, stat.st_ino), data)

    def changed(self) -> dict[str, dict[str, bytes]]:
        """The files written in the views since the last message: the grader writes them in the nodes' folders."""
        changed: dict[str, dict[str, bytes]] = {}
        if not self.root or not os.path.isdir(self.root):
            return changed
        size = 0
        with self.kits_own():
            for view in os.scandir(self.root):
                if not (view.name.isascii() and view.name.isdigit() and view.is_dir(follow_symlinks=False)):
                    continue
                for entry in os.scandir(view.path):
                    if not (entry.is_file(follow_symlinks=False) and plain_name(entry.name)):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                    seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                    kept = self.files.get((view.name, entry.name))
                    if kept is not None and kept[0] == seen or stat.st_size > MAX_FILE_BYTES:
                        continue
                    data = read_file(entry.path)
                    if data is None or size + len(data) > MAX_MESSAGE_FILES:
                        continue  # (gone meanwhile, or the next message takes it)
                    self.files[(view.name, entry.name)] = (seen, data)
                    if kept is None or kept[1] != data:
                        changed.setdefault(view.name, {})[entry.name] = data
                        size += len(data)
        return changed


class BadFiles(Exception):
    """The learner process described a file it opens, or sent one, badly: it is stopped."""


class Folders:
    """The grader's end: the nodes' folders the learner process was given views of (``get_data_dir``), by number."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch  # the learner process's scratch folder
        self.folders: list[str] = []
        self._sizes: dict[str, int] = {}  # what each file the learner wrote holds now
        self._written = 0  # and all of them

    def view(self, folder: str) -> Path:
        """The learner process's own folder standing for the node's ``folder``: each open of a file there is seen here
        first (``opened``), and what is written there is written in ``folder`` (``apply``)."""
        if folder not in self.folders:
            self.folders.append(folder)
        return Path(self.scratch, VIEWS, str(self.folders.index(folder)))

    def opened(self, request: dict[str, Any], announce: Callable[..., None]) -> dict[str, Any]:
        """The learner's code opens a file of its view: the same open is announced here (``announce``: an audit event,
        as ``open()`` raises it, in the context of the event it works for), so whatever watches the node's disk
        (workbook 7's failing disk) refuses or records it as it does in the check. Nothing is opened for writing here:
        the reply carries the file's bytes as they are on the node's disk (None: no such file), for the view to hold
        them before the learner's own open reads, appends to or replaces them."""
        view, name, mode, flags = (request.get(k) for k in ("view", "name", "mode", "flags"))
        if (type(view) is not int or not 0 <= view < len(self.folders) or not plain_name(name)
                or mode is not None and (type(mode) is not str or len(mode) > 16) or type(flags) is not int):
            raise BadFiles("the learner process described a file it opens badly")
        path = os.path.join(self.folders[view], name)
        try:
            announce("open", path, mode, flags)
        except Exception as e:  # (the disk's refusal, raised again by the learner's open())
            return {"op": "reply", "error": wire.error_to_wire(e)}
        data = contextvars.Context().run(read_file, path)
        return {"op": "reply", "value": None if data is None else wire.to_wire(data)}

    def apply(self, files: Any) -> None:
        """The files the learner wrote in its views, written in the nodes' folders. Their opening was seen already
        (``opened``): this is no write of anyone's to judge (a fresh context: no event's, no story's)."""
        if files is None:
            return
        if type(files) is not dict or not all(type(v) is str and v.isascii() and v.isdigit()
                                              and int(v) < len(self.folders) and type(named) is dict
                                              and all(map(plain_name, named)) for v, named in files.items()):
            raise BadFiles("the learner process sent the files of a node's folder badly")
        for view, named in files.items():
            for name, data in named.items():
                try:
                    data = wire.from_wire(data)
                except wire.ProtocolError:
                    data = None
                if type(data) is not bytes or len(data) > MAX_FILE_BYTES:
                    raise BadFiles("the learner process sent the bytes of a file badly")
                path = os.path.join(self.folders[int(view)], name)
                self._written += len(data) - self._sizes.get(path, 0)
                self._sizes[path] = len(data)
                if self._written > MAX_FOLDER_BYTES:
                    raise BadFiles(f"the workbook's code wrote over {MAX_FOLDER_BYTES >> 20} MiB of files in its "
                                   "node's folder (fs_store.get_data_dir()), where a node's records take a few KiB: "
                                   "write there only the records the workbook asks for")
                try:
                    contextvars.Context().run(write_file, path, data)
                except OSError:  # (the folder of a play over, removed with its world: nothing left to judge there)
                    continue
