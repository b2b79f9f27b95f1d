"""A scenario played with every write to the learner's store recorded: what tests of persistence compare."""

from __future__ import annotations

from typing import Optional

import pytest

from ldkkit import scenarios
from ldkkit.fs_store import FilesystemStore


def played_with_every_write(name: str, processor: Optional[str] = None) -> tuple[list, list[tuple[str, bytes]]]:
    """What the learner's handler was given (with times and heights), and every write to its store, in order
    (key and bytes)."""
    writes: list[tuple[str, bytes]] = []
    write = FilesystemStore.write

    def recorded(self, primary, secondary, key, buf):
        if "learner" in str(self.data_dir):
            writes.append((key, bytes(buf)))
        write(self, primary, secondary, key, buf)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FilesystemStore, "write", recorded)
        result = scenarios.run(name, processor=processor)
    return list(result.node.event_log), writes
