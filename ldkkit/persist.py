"""Where a node keeps its state: LDK's key-value store interface and its keys.

Mirrors ``lightning::util::persist``: the ``KVStore`` trait, the persistence keys the
background processor writes under, and the rules every namespace and key must follow.
"""

from __future__ import annotations

import re
from typing import Protocol

#: Characters allowed in namespaces and keys (``KVSTORE_NAMESPACE_KEY_ALPHABET``).
KVSTORE_NAMESPACE_KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
#: The longest a namespace or key may be (``KVSTORE_NAMESPACE_KEY_MAX_LEN``).
KVSTORE_NAMESPACE_KEY_MAX_LEN = 120

# The keys LDK persists its components under. Each is (primary, secondary, key).
CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE = ""
CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE = ""
CHANNEL_MANAGER_PERSISTENCE_KEY = "manager"
NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE = ""
NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE = ""
NETWORK_GRAPH_PERSISTENCE_KEY = "network_graph"
SCORER_PERSISTENCE_PRIMARY_NAMESPACE = ""
SCORER_PERSISTENCE_SECONDARY_NAMESPACE = ""
SCORER_PERSISTENCE_KEY = "scorer"
OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE = ""
OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE = ""
OUTPUT_SWEEPER_PERSISTENCE_KEY = "output_sweeper"
CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE = "monitors"
CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE = ""
CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE = "monitor_updates"
ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE = "archived_monitors"

_VALID = re.compile(r"[A-Za-z0-9_-]*")

_RULE = (
    f"namespaces and keys may use only the characters a-z, A-Z, 0-9, '_' and '-', "
    f"and be at most {KVSTORE_NAMESPACE_KEY_MAX_LEN} characters long"
)


class KVStore(Protocol):
    """Mirrors ``lightning::util::persist::KVStore`` (synchronous, as in LDK 0.1)."""

    def read(self, primary_namespace: str, secondary_namespace: str, key: str) -> bytes: ...

    def write(self, primary_namespace: str, secondary_namespace: str, key: str, buf: bytes) -> None: ...

    def remove(self, primary_namespace: str, secondary_namespace: str, key: str, lazy: bool) -> None: ...

    def list(self, primary_namespace: str, secondary_namespace: str) -> list[str]: ...


class KVStoreError(OSError):
    """A namespace or key breaks LDK's rules (LDK returns an ``io::Error`` of kind Other)."""


class NotFound(KVStoreError, FileNotFoundError):
    """Nothing is stored under this key (LDK's ``io::ErrorKind::NotFound``)."""


class InMemoryStore:
    """A ``KVStore`` in memory, like LDK's ``TestStore``: for nodes that never restart.

    It follows the same key rules as :class:`~ldkkit.fs_store.FilesystemStore`.
    """

    def __init__(self) -> None:
        self._data: dict[tuple[str, str, str], bytes] = {}

    def read(self, primary_namespace: str, secondary_namespace: str, key: str) -> bytes:
        check_namespace_key_validity(primary_namespace, secondary_namespace, key, "read")
        try:
            return self._data[(primary_namespace, secondary_namespace, key)]
        except KeyError:
            raise NotFound(f"Nothing is stored under {primary_namespace}/{secondary_namespace}/{key}") from None

    def write(self, primary_namespace: str, secondary_namespace: str, key: str, buf: bytes) -> None:
        check_namespace_key_validity(primary_namespace, secondary_namespace, key, "write")
        self._data[(primary_namespace, secondary_namespace, key)] = bytes(buf)

    #: Writing the bytes already held changes nothing (see ``sim.quiet_loop.tick_changes_nothing``).
    write.changes_nothing_when = (  # type: ignore[attr-defined]
        lambda self, primary, secondary, key, buf: self._data.get((primary, secondary, key)) == buf)

    def remove(self, primary_namespace: str, secondary_namespace: str, key: str, lazy: bool = False) -> None:
        check_namespace_key_validity(primary_namespace, secondary_namespace, key, "remove")
        self._data.pop((primary_namespace, secondary_namespace, key), None)

    def list(self, primary_namespace: str, secondary_namespace: str) -> list[str]:
        check_namespace_key_validity(primary_namespace, secondary_namespace, None, "list")
        return sorted(k for p, s, k in self._data if (p, s) == (primary_namespace, secondary_namespace))


def is_valid_kvstore_str(s: str) -> bool:
    """Mirrors ``is_valid_kvstore_str``: allowed characters, and not too long."""
    return isinstance(s, str) and len(s) <= KVSTORE_NAMESPACE_KEY_MAX_LEN and bool(_VALID.fullmatch(s))


def check_namespace_key_validity(
    primary_namespace: str, secondary_namespace: str, key: str | None, operation: str
) -> None:
    """Mirrors LDK's ``check_namespace_key_validity``; raises :class:`KVStoreError`.

    The messages are LDK's, followed by the rule that was broken.
    """
    name = (primary_namespace, secondary_namespace, key)
    if (type(primary_namespace) is str and type(secondary_namespace) is str and type(key) is str
            and name in _VALID_NAMES):  # (a node writes the same few keys at every block)
        return
    if key is None and operation != "list":  # only list takes no key: a missing one would name a folder
        raise KVStoreError(f"Failed to {operation} {primary_namespace}/{secondary_namespace}: key may not be empty.")
    where = "/".join([primary_namespace, secondary_namespace] + ([key] if key is not None else []))
    if key is not None and key == "":
        raise KVStoreError(f"Failed to {operation} {where}: key may not be empty.")
    if primary_namespace == "" and secondary_namespace != "":
        raise KVStoreError(
            f"Failed to {operation} {where}: primary namespace may not be empty if a non-empty "
            "secondary namespace is given."
        )
    parts = [primary_namespace, secondary_namespace] + ([key] if key is not None else [])
    if not all(is_valid_kvstore_str(p) for p in parts):
        what = ("primary namespace, secondary namespace, and key" if key is not None
                else "primary namespace and secondary namespace")
        raise KVStoreError(f"Failed to {operation} {where}: {what} must be valid: {_RULE}.")
    if len(_VALID_NAMES) < 4096 and type(key) is str:
        _VALID_NAMES.add(name)


#: Namespaces and keys with a key found valid, for any operation: at most a few thousand.
_VALID_NAMES: set[tuple[str, str, str | None]] = set()
