"""BOLT 11 invoices: real strings any Lightning wallet (and ``bolt11.decode``) can read.

Mirrors ``lightning_invoice::Bolt11Invoice``. Encoding, decoding and signing come from
the ``bolt11`` library (imported only when an invoice is made or read).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

from .bitcoin import Network
from .types import PaymentHash, PaymentSecret, PublicKey

#: BOLT 11's default expiry when an invoice does not say: one hour.
DEFAULT_EXPIRY_TIME = 3600
#: LDK's ``MIN_FINAL_CLTV_EXPIRY_DELTA``, the default final CLTV delta of LDK's invoices.
MIN_FINAL_CLTV_EXPIRY_DELTA = 24  # HTLC_FAIL_BACK_BUFFER (18 + 3) + 3, as in LDK 0.1

_CURRENCY = {Network.Bitcoin: "bc", Network.Testnet: "tb", Network.Signet: "tbs", Network.Regtest: "bcrt"}


@dataclasses.dataclass(frozen=True)
class _Fields:
    """What an invoice says, read once: the string is signed and immutable, so it never changes."""

    payment_hash: PaymentHash
    payment_secret: PaymentSecret
    amount_msat: Optional[int]
    payee: PublicKey
    min_final_cltv_expiry_delta: int
    expiry_secs: int
    timestamp: int
    description: str
    currency: str


@functools.lru_cache(maxsize=4096)
def _read(text: str) -> _Fields:
    """Decode and check an invoice string with the ``bolt11`` library (a few ms each, so each string once)."""
    import bolt11

    try:
        d = bolt11.decode(text)
    except Exception as e:  # bolt11 raises a family of its own exceptions
        raise ValueError(f"not a valid BOLT 11 invoice: {e}") from None
    return _Fields(
        PaymentHash.from_hex(d.payment_hash), PaymentSecret.from_hex(d.payment_secret),
        int(d.amount_msat) if d.amount_msat is not None else None, PublicKey.from_hex(d.payee),
        int(d.min_final_cltv_expiry), int(d.expiry or DEFAULT_EXPIRY_TIME), int(d.date), d.description or "",
        d.currency,
    )


@functools.lru_cache(maxsize=4096)
def _write(fields: _Fields, node_secret_key: bytes) -> str:
    """Encode and sign with the ``bolt11`` library. Signing is deterministic (RFC 6979), so the same
    fields and key always give the same string, and a scenario played again reuses it."""
    from bolt11 import Bolt11, Feature, Features, FeatureState, MilliSatoshi, TagChar, Tags, encode
    from bolt11.utils import amount_to_msat, msat_to_amount

    amount = fields.amount_msat
    if amount is not None and amount_to_msat(msat_to_amount(amount)) != amount:  # the library's own limit
        raise ValueError(f"the bolt11 library cannot write an invoice for {amount:,} msat: it writes whole "
                         "multiples of 1,000 BTC as a thousandth of themselves. Ask for less than 1,000 BTC.")
    tags = Tags()
    tags.add(TagChar.payment_hash, fields.payment_hash.hex())
    tags.add(TagChar.payment_secret, fields.payment_secret.hex())
    tags.add(TagChar.description, fields.description)
    tags.add(TagChar.expire_time, fields.expiry_secs)
    tags.add(TagChar.min_final_cltv_expiry, fields.min_final_cltv_expiry_delta)
    features = {Feature.var_onion_optin: FeatureState.required, Feature.payment_secret: FeatureState.required}
    tags.add(TagChar.features, Features.from_feature_list(features))
    invoice = Bolt11(currency=fields.currency, date=fields.timestamp, tags=tags,
                     amount_msat=MilliSatoshi(amount) if amount is not None else None)
    return encode(invoice, private_key=node_secret_key.hex())


class Bolt11Invoice:
    """Mirrors ``lightning_invoice::Bolt11Invoice``. ``str(invoice)`` is the invoice string."""

    def __init__(self, text: str) -> None:
        self._fields = _read(text)
        self._text = text

    @classmethod
    def from_str(cls, text: str) -> Bolt11Invoice:
        return cls(text)

    @classmethod
    def create(
        cls,
        *,
        network: Network,
        node_secret_key: bytes,
        payment_hash: PaymentHash,
        payment_secret: PaymentSecret,
        amount_msat: Optional[int],
        description: str,
        timestamp: int,
        expiry_secs: int = DEFAULT_EXPIRY_TIME,
        min_final_cltv_expiry_delta: int = MIN_FINAL_CLTV_EXPIRY_DELTA,
    ) -> Bolt11Invoice:
        """Build and sign an invoice, as ``ChannelManager::create_bolt11_invoice`` does."""
        fields = _Fields(payment_hash, payment_secret, amount_msat, PublicKey.from_secret_key(node_secret_key),
                         min_final_cltv_expiry_delta, expiry_secs, timestamp, description, _CURRENCY[network])
        invoice = cls.__new__(cls)
        invoice._text, invoice._fields = _write(fields, bytes(node_secret_key)), fields  # (what it says: no decode)
        return invoice

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        amount = self.amount_milli_satoshis()
        shown = f"{amount:,} msat" if amount is not None else "any amount"
        return f"Bolt11Invoice({self._text[:16]}…, {shown}, hash {self.payment_hash().short()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bolt11Invoice) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def payment_hash(self) -> PaymentHash:
        return self._fields.payment_hash

    def payment_secret(self) -> PaymentSecret:
        return self._fields.payment_secret

    def amount_milli_satoshis(self) -> Optional[int]:
        return self._fields.amount_msat

    def recover_payee_pub_key(self) -> PublicKey:
        return self._fields.payee

    def payee_pub_key(self) -> PublicKey:
        return self.recover_payee_pub_key()

    def min_final_cltv_expiry_delta(self) -> int:
        return self._fields.min_final_cltv_expiry_delta

    def expiry_time_secs(self) -> int:
        return self._fields.expiry_secs

    def duration_since_epoch_secs(self) -> int:
        return self._fields.timestamp

    def description(self) -> str:
        return self._fields.description

    def network(self) -> Network:
        return next(n for n, c in _CURRENCY.items() if c == self._fields.currency)
