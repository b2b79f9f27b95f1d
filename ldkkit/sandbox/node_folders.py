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

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

#: Where, in its scratch folder, the learner process sees each node's folder: one folder per node's, by number.
VIEWS = "ldk_data"
#: The largest file of a node's folder that crosses (a record is a few KiB).
MAX_FILE_BYTES = 1 << 20
#: The most bytes of files one message carries (the rest goes with the next).
MAX_MESSAGE_FILES = 4 << 20


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
