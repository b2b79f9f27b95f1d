"""The workshop node's policy: the choices its operator makes, which LDK leaves to you.

``TRUSTED_ZERO_CONF_PEERS`` holds the node ids of the peers you trust enough to accept a
zero-conf channel from (an LSP you have an agreement with, say). It starts empty: a real
node's operator fills it from their configuration before the node starts. In the kit, a
scenario with a trusted LSP adds the LSP's node id while it plays, and removes it after.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class PeerSet(set):  # type: ignore[type-arg]
    """A set of node ids, where an id added twice stays until it is removed twice: scenarios that
    play side by side (a class's checks, say) may each trust the same LSP for a while."""

    def __init__(self) -> None:
        super().__init__()
        self._counts: Counter[Any] = Counter()
        self._lock = threading.Lock()

    def add(self, node_id: Any) -> None:
        with self._lock:
            self._counts[node_id] += 1
            super().add(node_id)

    def discard(self, node_id: Any) -> None:
        with self._lock:
            self._counts[node_id] -= 1
            if self._counts[node_id] <= 0:
                del self._counts[node_id]
                super().discard(node_id)

    def remove(self, node_id: Any) -> None:
        if node_id not in self:
            raise KeyError(node_id)
        self.discard(node_id)


#: The workshop's policy, "we don't have time for small channels!": accept strictly more than this.
MIN_FUNDING_SATOSHIS_EXCLUSIVE = 5_000_000

#: Peers trusted to open zero-conf channels to us. Empty unless your configuration says otherwise.
TRUSTED_ZERO_CONF_PEERS: set[Any] = PeerSet()
