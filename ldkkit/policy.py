"""The workshop node's policy: the choices its operator makes, which LDK leaves to you.

``TRUSTED_ZERO_CONF_PEERS`` holds the node ids of the peers you trust enough to accept a
zero-conf channel from (an LSP you have an agreement with, say). It starts empty: a real
node's operator fills it from their configuration before the node starts. In the kit, a
scenario with a trusted LSP adds the LSP's node id while it plays, and removes it after.
"""

from __future__ import annotations

from typing import Any

#: The workshop's policy, "we don't have time for small channels!": accept strictly more than this.
MIN_FUNDING_SATOSHIS_EXCLUSIVE = 5_000_000

#: Peers trusted to open zero-conf channels to us. Empty unless your configuration says otherwise.
TRUSTED_ZERO_CONF_PEERS: set[Any] = set()
