"""ldk-sample's bookkeeping of the payments a node sends and receives.

Mirrors ``HTLCStatus``, ``PaymentInfo``, ``InboundPaymentInfoStorage`` and
``OutboundPaymentInfoStorage`` from ldk-sample's ``main.rs`` (these are the sample's
types, not LDK's). A handler updates them and persists them before returning::

    with inbound_payments.lock() as payments:        # Rust: inbound_payments.lock().unwrap()
        payments[payment_hash] = PaymentInfo(preimage, secret, HTLCStatus.Succeeded, amount_msat)
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())
"""

from __future__ import annotations

import enum
import threading
from typing import Any, ClassVar, Generic, Optional, TypeVar

from .ser import U64, DecodeError, Record, decode, encode_item, encode_tuple_of, register
from .types import HexBytes, PaymentHash, PaymentId, PaymentPreimage, PaymentSecret

#: The keys ldk-sample stores the two storages under (``disk.rs``).
INBOUND_PAYMENTS_FNAME = "inbound_payments"
OUTBOUND_PAYMENTS_FNAME = "outbound_payments"


@register
class HTLCStatus(enum.Enum):
    """Mirrors ldk-sample's ``HTLCStatus``: where a payment stands."""

    Pending = "Pending"
    Succeeded = "Succeeded"
    Failed = "Failed"


class PaymentInfo(Record, frozen=False):
    """Mirrors ldk-sample's ``PaymentInfo``. Mutable, as the sample updates it in place.

    ``amt_msat`` is ``None`` where ldk-sample's ``MillisatAmount`` shows "unknown".
    """

    preimage: Optional[PaymentPreimage]
    secret: Optional[PaymentSecret]
    status: HTLCStatus
    amt_msat: Optional[U64]

    def __setattr__(self, name: str, value: Any) -> None:
        # Counted, so that a storage re-encodes only the entries changed since it last encoded them.
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_changes", self.__dict__.get("_changes", 0) + 1)


_K = TypeVar("_K", bound=HexBytes)


class _PaymentInfoStorage(Generic[_K]):
    """A map of payments guarded by a lock, as ldk-sample's ``Arc<Mutex<...>>``."""

    KEY: ClassVar[type[HexBytes]]

    def __init__(self, payments: dict[_K, PaymentInfo] | None = None) -> None:
        self.payments: dict[_K, PaymentInfo] = dict(payments or {})
        self._lock = threading.RLock()
        self._encoded: list[tuple[Any, PaymentInfo, int, bytes]] = []  # each entry, its change count and its bytes

    def lock(self) -> _PaymentInfoStorage[_K]:
        """Use as ``with storage.lock() as payments:``; the map is yours inside the block."""
        return self

    def __enter__(self) -> dict[_K, PaymentInfo]:
        self._lock.acquire()
        return self.payments

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def encode(self) -> bytes:
        """``encode(tuple(payments.items()))``. ldk-sample re-encodes the whole map after every payment, so each
        entry's bytes are kept, and written again only for an entry added, replaced or changed since.

        Entries are matched by position and by identity (the same key and PaymentInfo objects, no field set since),
        with no hashing: the map only grows at its end, as ldk-sample's does, so all but the new ones match.
        """
        with self._lock:
            kept, fresh = self._encoded, []
            for i, (key, info) in enumerate(self.payments.items()):
                changes = info.__dict__["_changes"]  # (set by __init__, which sets every field)
                if i < len(kept) and kept[i][0] is key and kept[i][1] is info and kept[i][2] == changes:
                    fresh.append(kept[i])
                else:
                    fresh.append((key, info, changes, encode_item((key, info))))
            self._encoded = fresh
            return encode_tuple_of([entry[3] for entry in fresh])

    @classmethod
    def decode(cls, data: bytes) -> Any:
        entries = decode(data, tuple)
        for entry in entries:
            if not (
                isinstance(entry, tuple)
                and len(entry) == 2
                and isinstance(entry[0], cls.KEY)
                and isinstance(entry[1], PaymentInfo)
            ):
                raise DecodeError.InvalidValue(
                    f"{cls.__name__} holds ({cls.KEY.__name__}, PaymentInfo) pairs, but the data has {entry!r}"
                )
        return cls(dict(entries))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.payments == self.payments  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.payments)

    def __repr__(self) -> str:
        with self._lock:
            counts = {s: sum(1 for p in self.payments.values() if p.status is s) for s in HTLCStatus}
        summary = ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
        return f"{type(self).__name__}({len(self.payments)} payments{': ' + summary if summary else ''})"


class InboundPaymentInfoStorage(_PaymentInfoStorage[PaymentHash]):
    """Mirrors ldk-sample's ``InboundPaymentInfoStorage``: payments to us, by payment hash."""

    KEY = PaymentHash


class OutboundPaymentInfoStorage(_PaymentInfoStorage[PaymentId]):
    """Mirrors ldk-sample's ``OutboundPaymentInfoStorage``: payments we send, by payment id."""

    KEY = PaymentId

