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
import weakref
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
        # The maps holding this entry hear of it, so that their storage re-encodes only what changed.
        object.__setattr__(self, name, value)
        for held_by, key in self.__dict__.get("_held", ()):
            payments = held_by()
            if payments is not None and dict.get(payments, key) is self:
                payments.entry_changed(key)

    def __getstate__(self) -> dict[str, Any]:
        # A copy (or a pickle) is its fields: it is in no map, and weak references do not pickle.
        return {name: value for name, value in self.__dict__.items() if name != "_held"}


_K = TypeVar("_K", bound=HexBytes)


class _Payments(dict):  # type: ignore[type-arg]
    """A storage's map: a plain dict to the handler, that keeps each entry's encoded bytes beside it (``pieces``,
    same keys, same order; None once the entry changes, its key then in ``stale``), so that encoding the whole map
    again, as ldk-sample does after every payment, writes only the entries added or changed since, and finds them
    without looking at the others."""

    __slots__ = ("pieces", "stale", "__weakref__")

    def __init__(self, payments: dict[Any, PaymentInfo] | None = None) -> None:
        super().__init__()
        self.pieces: dict[Any, bytes | None] = {}
        self.stale: dict[Any, None] = {}  # (a set that keeps order: entries are written in the order they changed)
        self.update(payments or {})

    def entry_changed(self, key: Any) -> None:
        """The entry under ``key`` is new or changed: its bytes are written again at the next encoding."""
        self.stale[key] = None  # (first: whoever finds the piece None finds the key stale)
        self.pieces[key] = None

    def __setitem__(self, key: Any, info: PaymentInfo) -> None:
        super().__setitem__(key, info)
        self.entry_changed(key)  # (an equal key already there stays, in both: the same key objects, in order)
        if isinstance(info, PaymentInfo):
            held = info.__dict__.get("_held", [])  # (maps gone meanwhile are left out: a map made again and
            held = [(by, k) for by, k in held if by() is not None]  # again from the same entries leaves none)
            if not any(by() is self and k == key for by, k in held):
                held.append((weakref.ref(self), key))
            info.__dict__["_held"] = held

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        del self.pieces[key]
        self.stale.pop(key, None)

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)
        self.pieces.pop(key)
        self.stale.pop(key, None)
        return super().pop(key)

    def popitem(self) -> tuple[Any, PaymentInfo]:
        key, info = super().popitem()
        del self.pieces[key]
        self.stale.pop(key, None)
        return key, info

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, info in dict(*args, **kwargs).items():
            self[key] = info

    def __ior__(self, other: Any) -> _Payments:
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self.pieces.clear()
        self.stale.clear()

    def __reduce__(self) -> Any:  # (copied or pickled: a plain dict, as the handler sees it)
        return dict, (dict(self),)


class _PaymentInfoStorage(Generic[_K]):
    """A map of payments guarded by a lock, as ldk-sample's ``Arc<Mutex<...>>``."""

    KEY: ClassVar[type[HexBytes]]

    def __init__(self, payments: dict[_K, PaymentInfo] | None = None) -> None:
        self.payments = payments or {}
        self._lock = threading.RLock()

    @property
    def payments(self) -> dict[_K, PaymentInfo]:
        return self._payments

    @payments.setter
    def payments(self, payments: dict[_K, PaymentInfo]) -> None:
        self._payments = _Payments(payments)

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
        entry's bytes are kept, and written again only for an entry added, replaced or changed since (the map and
        its entries say which, see ``_Payments``)."""
        with self._lock:
            payments = self._payments
            pieces, stale = payments.pieces, payments.stale
            while True:
                while stale:  # (not a scan of every entry: ldk-sample's maps only grow)
                    for key in list(stale):
                        del stale[key]  # (before writing it: a change meanwhile marks it stale again)
                        pieces[key] = encode_item((key, dict.__getitem__(payments, key)))
                encoded = list(pieces.values())
                if not stale:  # (else an entry changed meanwhile, by code that did not take the lock)
                    return encode_tuple_of(encoded)  # type: ignore[arg-type]

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

