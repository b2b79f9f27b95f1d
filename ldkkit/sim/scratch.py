"""Where the simulation keeps what nobody asked to keep: the stores of a world's nodes, a grader's work.

Each world writes a few files per node and removes them when it is gone; a check builds dozens of
worlds. On a disk, creating and removing those folders costs milliseconds each (measured: 8.8 ms on
a virtual disk, 0.1 ms on tmpfs), so they go to memory-backed ``/dev/shm`` where it is a writable
folder with room to spare, and to the system's temporary folder otherwise (Windows, macOS, a full
``/dev/shm``). Nothing here is persistent by design: a node whose storage matters is given a
folder of its own (``World.add_node(storage_dir=...)``).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from typing import Optional

#: Below this much free space, ``/dev/shm`` is left alone (containers often give it 64 MB).
MIN_FREE_BYTES = 32 * 1024 * 1024
_MEMORY = "/dev/shm"


@functools.cache
def _memory_backed() -> Optional[str]:
    try:
        usable = os.path.isdir(_MEMORY) and os.access(_MEMORY, os.W_OK | os.X_OK)
        return _MEMORY if usable and shutil.disk_usage(_MEMORY).free >= MIN_FREE_BYTES else None
    except OSError:
        return None


#: Where a grader's worker keeps its checks' scratch folders, to remove them even if it has to kill the worker
#: (``sandbox.worker`` sets it). None: memory where there is room, else the system's temporary folder.
ROOT: Optional[str] = None
#: An environment variable naming the folder to use instead of memory or the temporary folder, in this process
#: and those it starts (a test that must tell its own grader's scratch from other processes' finds it there).
ENV = "LDKKIT_SCRATCH"


def root() -> str:
    """Where scratch folders are made: ``ROOT`` if set, else the folder ``LDKKIT_SCRATCH`` names, else ``/dev/shm``
    if it has room, else the system's temporary folder. Not ``tempfile.tempdir``: Python sets that itself the first
    time anything asks for a temporary folder (a kernel, a test runner), and a check's stores would then go to
    disk, five times slower."""
    named = os.environ.get(ENV)
    if named and not ROOT and not os.path.isdir(named):
        raise NotADirectoryError(f"{ENV} names {named!r}, which is not a folder: make it, or unset {ENV} to keep "
                                 "scratch in memory")
    return ROOT or named or _memory_backed() or tempfile.gettempdir()


def scratch_dir(prefix: str) -> str:
    """A new folder for throwaway files, in :func:`root`; the caller removes it."""
    return tempfile.mkdtemp(prefix=prefix, dir=root())
