"""Payments we expect: the hash and secret an invoice carries, and the check an HTLC to us must pass.

Mirrors ``lightning::ln::inbound_payment`` in LDK 0.1: ``create``, ``create_from_hash`` and
``verify``. LDK derives the payment secret from a key of the node, so it stores nothing;
ldkkit keeps an :class:`InboundPayment` per hash instead (the ChannelManager's
``inbound_payments``), which is easier to look at and persists with the manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from ..events import PaymentPurpose
from ..ln.msgs import FinalPayload
from ..ser import U64, Record
from ..types import PaymentHash, PaymentPreimage, PaymentSecret


class InboundPayment(Record, frozen=False):
    """What we registered for a payment we expect: its secret, and its preimage if we made it."""

    payment_hash: PaymentHash
    payment_secret: PaymentSecret
    payment_preimage: Optional[PaymentPreimage]
    min_value_msat: Optional[U64]  # Option<u64>: a negative amount is refused
    expires_at: int


#: LDK adds two hours to an inbound payment's expiry (``inbound_payment::create``): it is judged against the newest
#: block's header time, which may lag the clock by that much, and a payment must never be failed too early. A payment
#: made a little after its invoice expired is claimable (LDK: "If you need exact expiry semantics, you should enforce
#: them upon receipt of PaymentClaimable").
EXPIRY_MARGIN_SECS = 7200


def create(
    inbound_payments: dict[PaymentHash, InboundPayment], min_value_msat: Optional[int],
    invoice_expiry_delta_secs: int, entropy_source: Callable[[], bytes], current_time: int,
) -> tuple[PaymentHash, PaymentSecret]:
    """Mirrors ``inbound_payment::create``: a fresh preimage, and the hash and secret to be paid to."""
    preimage = PaymentPreimage(entropy_source())
    secret = PaymentSecret(entropy_source())
    payment_hash = preimage.payment_hash()
    inbound_payments[payment_hash] = InboundPayment(
        payment_hash, secret, preimage, min_value_msat, current_time + invoice_expiry_delta_secs + EXPIRY_MARGIN_SECS
    )
    return payment_hash, secret


def create_from_hash(
    inbound_payments: dict[PaymentHash, InboundPayment], min_value_msat: Optional[int], payment_hash: PaymentHash,
    invoice_expiry_delta_secs: int, entropy_source: Callable[[], bytes], current_time: int,
) -> PaymentSecret:
    """Mirrors ``inbound_payment::create_from_hash``: the caller keeps the preimage; we only know the hash."""
    secret = PaymentSecret(entropy_source())
    inbound_payments[payment_hash] = InboundPayment(
        payment_hash, secret, None, min_value_msat, current_time + invoice_expiry_delta_secs + EXPIRY_MARGIN_SECS
    )
    return secret


def verify(
    inbound_payments: dict[PaymentHash, InboundPayment], payment_hash: PaymentHash, payment_data: FinalPayload,
    highest_seen_timestamp: int,
) -> Optional[InboundPayment]:
    """Mirrors ``inbound_payment::verify``: the payment registered for this hash, if the onion's secret
    matches it, the sender meant to pay at least its minimum, and it has not expired; else None."""
    registered = inbound_payments.get(payment_hash)
    if (
        registered is not None
        and payment_data.payment_secret == registered.payment_secret
        and payment_data.total_msat >= (registered.min_value_msat or 0)
        and highest_seen_timestamp <= registered.expires_at
    ):
        return registered
    return None


def payment_purpose(
    inbound_payments: dict[PaymentHash, InboundPayment], payment_hash: PaymentHash, payment_data: FinalPayload,
    current_time: int,
) -> Optional[PaymentPurpose]:
    """What an HTLC to us pays for, or None if it must be failed back.

    A keysend payment proves itself: its preimage must hash to the payment hash (LDK checks
    this in ``create_recv_pending_htlc_info``). Any other payment must pass :func:`verify`.
    """
    if payment_data.keysend_preimage is not None:
        if payment_data.keysend_preimage.payment_hash() == payment_hash:
            return PaymentPurpose.SpontaneousPayment(payment_data.keysend_preimage)
        return None
    registered = verify(inbound_payments, payment_hash, payment_data, current_time)
    if registered is None:
        return None
    return PaymentPurpose.Bolt11InvoicePayment(registered.payment_preimage, registered.payment_secret)
