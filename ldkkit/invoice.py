"""BOLT 11 invoices: real strings any Lightning wallet (and ``bolt11.decode``) can read.

Mirrors ``lightning_invoice::Bolt11Invoice``. Encoding, decoding and signing come from
the ``bolt11`` library (imported only when an invoice is made or read).
"""

from __future__ import annotations

from typing import Optional

from .bitcoin import Network
from .types import PaymentHash, PaymentSecret, PublicKey

#: BOLT 11's default expiry when an invoice does not say: one hour.
DEFAULT_EXPIRY_TIME = 3600
#: LDK's ``MIN_FINAL_CLTV_EXPIRY_DELTA``, the default final CLTV delta of LDK's invoices.
MIN_FINAL_CLTV_EXPIRY_DELTA = 24  # HTLC_FAIL_BACK_BUFFER (18 + 3) + 3, as in LDK 0.1

_CURRENCY = {Network.Bitcoin: "bc", Network.Testnet: "tb", Network.Signet: "tbs", Network.Regtest: "bcrt"}


class Bolt11Invoice:
    """Mirrors ``lightning_invoice::Bolt11Invoice``. ``str(invoice)`` is the invoice string."""

    def __init__(self, text: str) -> None:
        import bolt11

        try:
            self._decoded = bolt11.decode(text)
        except Exception as e:  # bolt11 raises a family of its own exceptions
            raise ValueError(f"not a valid BOLT 11 invoice: {e}") from None
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
        from bolt11 import Bolt11, Feature, Features, FeatureState, MilliSatoshi, TagChar, Tags, encode

        tags = Tags()
        tags.add(TagChar.payment_hash, payment_hash.hex())
        tags.add(TagChar.payment_secret, payment_secret.hex())
        tags.add(TagChar.description, description)
        tags.add(TagChar.expire_time, expiry_secs)
        tags.add(TagChar.min_final_cltv_expiry, min_final_cltv_expiry_delta)
        features = {Feature.var_onion_optin: FeatureState.required, Feature.payment_secret: FeatureState.required}
        tags.add(TagChar.features, Features.from_feature_list(features))
        amount = MilliSatoshi(amount_msat) if amount_msat is not None else None
        invoice = Bolt11(currency=_CURRENCY[network], date=timestamp, tags=tags, amount_msat=amount)
        return cls(encode(invoice, private_key=node_secret_key.hex()))

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
        return PaymentHash.from_hex(self._decoded.payment_hash)

    def payment_secret(self) -> PaymentSecret:
        return PaymentSecret.from_hex(self._decoded.payment_secret)

    def amount_milli_satoshis(self) -> Optional[int]:
        amount = self._decoded.amount_msat
        return int(amount) if amount is not None else None

    def recover_payee_pub_key(self) -> PublicKey:
        return PublicKey.from_hex(self._decoded.payee)

    def payee_pub_key(self) -> PublicKey:
        return self.recover_payee_pub_key()

    def min_final_cltv_expiry_delta(self) -> int:
        return int(self._decoded.min_final_cltv_expiry)

    def expiry_time_secs(self) -> int:
        return int(self._decoded.expiry or DEFAULT_EXPIRY_TIME)

    def duration_since_epoch_secs(self) -> int:
        return int(self._decoded.date)

    def description(self) -> str:
        return self._decoded.description or ""

    def network(self) -> Network:
        currency = self._decoded.currency
        return next(n for n, c in _CURRENCY.items() if c == currency)
