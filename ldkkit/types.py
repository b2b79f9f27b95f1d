"""Fixed-size byte primitives: ids, hashes and keys.

Mirrors ``lightning::types::payment`` (PaymentHash, PaymentPreimage, PaymentSecret),
``lightning::ln::types::ChannelId``, ``lightning::ln::channelmanager`` (PaymentId,
InterceptId), ``bitcoin::Txid`` and ``secp256k1::PublicKey``.

Every primitive is immutable and hashable, renders as hex, and refuses the wrong
length with a ValueError that says what it expected.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, TypeVar

from .encoding_cache import immutable
from .ser import Record, decode, encode, register

_T = TypeVar("_T", bound="HexBytes")

#: Bytes already found valid, by the class that checked them (``PublicKey``, ``Transaction``): a check is a pure
#: function of the bytes, and decoding a copy of every event handed over checked the same keys and transactions
#: again and again (a curve point parsed, a transaction parsed and written back). At most ``_MAX_KNOWN_VALID`` each.
_KNOWN_VALID: dict[type, set[bytes]] = {}
_MAX_KNOWN_VALID = 8_192


def known_valid(cls: type, data: bytes) -> bool:
    """Whether ``cls._validate`` already accepted ``data`` (see :func:`found_valid`)."""
    known = _KNOWN_VALID.get(cls)
    return known is not None and data in known


def found_valid(cls: type, data: bytes) -> None:
    """Remember that ``cls._validate`` accepted ``data``: it would accept it again."""
    known = _KNOWN_VALID.setdefault(cls, set())
    if len(known) >= _MAX_KNOWN_VALID:
        known.clear()
    known.add(data)


@immutable  # (it refuses to be set: see __setattr__)
class HexBytes:
    """Base for the newtypes LDK wraps around ``[u8; N]`` (or, with no LENGTH, ``Vec<u8>``)."""

    LENGTH: ClassVar[int | None] = 32
    #: Bitcoin shows some hashes (txids) byte-reversed; they set this.
    DISPLAY_REVERSED: ClassVar[bool] = False
    __slots__ = ("_data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, HexBytes):
            data = data._data
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{type(self).__name__} takes {self.LENGTH} bytes, got {type(data).__name__}; "
                f"use {type(self).__name__}.from_hex(...) for a hex string"
            )
        data = bytes(data)
        if self.LENGTH is not None and len(data) != self.LENGTH:
            raise ValueError(f"{type(self).__name__} must be exactly {self.LENGTH} bytes, got {len(data)}")
        self._validate(data)
        object.__setattr__(self, "_data", data)

    def _validate(self, data: bytes) -> None:
        """Subclasses check more than the length here."""

    @classmethod
    def from_hex(cls: type[_T], text: str) -> _T:
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"{cls.__name__}.from_hex needs hex digits, got {text!r}") from None
        return cls(data[::-1] if cls.DISPLAY_REVERSED else data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __bytes__(self) -> bytes:
        return self._data

    def hex(self) -> str:
        return (self._data[::-1] if self.DISPLAY_REVERSED else self._data).hex()

    def __str__(self) -> str:
        return self.hex()

    def short(self) -> str:
        """Abbreviated hex for one-line displays: first and last four digits."""
        h = self.hex()
        return h if len(h) <= 12 else f"{h[:4]}…{h[-4:]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.short()})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._data == self._data  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._data)  # (bytes keep their hash: ids of different kinds rarely collide, and never equal)

    def __lt__(self, other: HexBytes) -> bool:
        return self._data < other._data

    def __reduce__(self):
        return (type(self), (self._data,))

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        register(cls)

    def encode(self) -> bytes:
        """Serialise to bytes, like LDK's ``Writeable::encode``."""
        return encode(self)

    @classmethod
    def decode(cls: type[_T], data: bytes) -> _T:
        """Read back what :meth:`encode` wrote."""
        return decode(data, cls)


class ChannelId(HexBytes):
    """Mirrors ``lightning::ln::types::ChannelId``: 32 bytes naming a channel."""

    @classmethod
    def v1_from_funding_outpoint(cls, txid: Txid, index: int) -> ChannelId:
        """The BOLT 2 channel id: the funding txid XORed with the output index."""
        data = bytearray(bytes(txid))
        data[30] ^= (index >> 8) & 0xFF
        data[31] ^= index & 0xFF
        return cls(bytes(data))


class PaymentHash(HexBytes):
    """Mirrors ``lightning::types::payment::PaymentHash``: SHA-256 of the preimage."""

    @classmethod
    def from_preimage(cls, preimage: PaymentPreimage) -> PaymentHash:
        return cls(hashlib.sha256(bytes(preimage)).digest())


class PaymentPreimage(HexBytes):
    """Mirrors ``lightning::types::payment::PaymentPreimage``: the secret that proves payment."""

    def payment_hash(self) -> PaymentHash:
        return PaymentHash.from_preimage(self)


class PaymentSecret(HexBytes):
    """Mirrors ``lightning::types::payment::PaymentSecret``: authenticates the payer to us."""


class PaymentId(HexBytes):
    """Mirrors ``lightning::ln::channelmanager::PaymentId``: our own id for an outbound payment."""


class InterceptId(HexBytes):
    """Mirrors ``lightning::ln::channelmanager::InterceptId``: names an intercepted HTLC."""


class ClaimId(HexBytes):
    """Mirrors ``lightning::chain::ClaimId``: names an on-chain claim being fee-bumped."""


class BlockHash(HexBytes):
    """Mirrors ``bitcoin::BlockHash``: stored in internal byte order; shown, like bitcoind shows it, byte-reversed."""

    DISPLAY_REVERSED = True


class Txid(HexBytes):
    """Mirrors ``bitcoin::Txid``.

    Stored in internal byte order; shown, like bitcoind shows it, byte-reversed.
    """

    DISPLAY_REVERSED = True


class PublicKey(HexBytes):
    """Mirrors ``secp256k1::PublicKey``: a real, compressed 33-byte curve point."""

    LENGTH = 33

    def _validate(self, data: bytes) -> None:
        if known_valid(PublicKey, data):
            return
        from coincurve import PublicKey as _Point  # lazy: keeps `import ldkkit` light

        try:
            _Point(data)
        except ValueError:
            raise ValueError(f"PublicKey {data.hex()} is not a valid compressed secp256k1 point") from None
        found_valid(PublicKey, data)

    @classmethod
    def from_secret_key(cls, secret: bytes) -> PublicKey:
        from coincurve import PrivateKey

        return cls(PrivateKey(secret).public_key.format(compressed=True))


class ChannelTypeFeatures(Record):
    """Mirrors ``lightning::types::features::ChannelTypeFeatures``: a channel's type.

    ``bits`` holds BOLT 9 feature bits; a channel type sets the even ("required") bit of
    each feature it uses.
    """

    bits: int

    STATIC_REMOTE_KEY: ClassVar[int] = 12
    ANCHORS_ZERO_FEE_HTLC_TX: ClassVar[int] = 22
    SCID_PRIVACY: ClassVar[int] = 46
    ZERO_CONF: ClassVar[int] = 50

    @classmethod
    def only_static_remote_key(cls) -> ChannelTypeFeatures:
        """The default channel type LDK 0.1 proposes."""
        return cls(1 << cls.STATIC_REMOTE_KEY)

    @classmethod
    def anchors_zero_htlc_fee_and_dependencies(cls) -> ChannelTypeFeatures:
        """An anchor channel, as opened with ``negotiate_anchors_zero_fee_htlc_tx``."""
        return cls((1 << cls.STATIC_REMOTE_KEY) | (1 << cls.ANCHORS_ZERO_FEE_HTLC_TX))

    def with_zero_conf_required(self) -> ChannelTypeFeatures:
        """This type, also asking to use the channel before its funding confirms."""
        return ChannelTypeFeatures(self.bits | (1 << self.ZERO_CONF))

    def _has(self, bit: int) -> bool:
        return bool(self.bits & (0b11 << bit))

    def _requires(self, bit: int) -> bool:
        return bool(self.bits & (1 << bit))

    # LDK's two getters of each feature: supports_* (either bit set) and requires_* (the even bit set). A channel
    # type sets the even bit, so for a channel type they agree.

    def supports_zero_conf(self) -> bool:
        return self._has(self.ZERO_CONF)

    def requires_zero_conf(self) -> bool:
        return self._requires(self.ZERO_CONF)

    def supports_anchors_zero_fee_htlc_tx(self) -> bool:
        return self._has(self.ANCHORS_ZERO_FEE_HTLC_TX)

    def requires_anchors_zero_fee_htlc_tx(self) -> bool:
        return self._requires(self.ANCHORS_ZERO_FEE_HTLC_TX)

    def supports_static_remote_key(self) -> bool:
        return self._has(self.STATIC_REMOTE_KEY)

    def requires_static_remote_key(self) -> bool:
        return self._requires(self.STATIC_REMOTE_KEY)

    def supports_scid_privacy(self) -> bool:
        return self._has(self.SCID_PRIVACY)

    def requires_scid_privacy(self) -> bool:
        return self._requires(self.SCID_PRIVACY)

    def __str__(self) -> str:
        names = ("static_remote_key", "anchors_zero_fee_htlc_tx", "scid_privacy", "zero_conf")
        return "+".join(n for n in names if self._has(getattr(self, n.upper()))) or "none"

    def short(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"ChannelTypeFeatures({self})"
