"""Making a BOLT 11 invoice for this node: the body of ``ChannelManager::create_bolt11_invoice`` (LDK 0.1 keeps it in
``channelmanager.rs``; ``lightning::ln::invoice_utils`` holds the older helpers that call it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..errors import CreationError, SignOrCreationError
from ..invoice import MIN_FINAL_CLTV_EXPIRY_DELTA, Bolt11Invoice
from ..types import PaymentHash

if TYPE_CHECKING:
    from .channelmanager import ChannelManager


def create_bolt11_invoice(cm: ChannelManager, amount_msats: Optional[int], description: str,
                          invoice_expiry_delta_secs: int, min_final_cltv_expiry_delta: Optional[int],
                          payment_hash: Optional[PaymentHash]) -> Bolt11Invoice:
    """An invoice paying this node. A ``min_final_cltv_expiry_delta`` you give is written 3 blocks longer (for blocks
    found while the payment is on its way), and must then be at least ``MIN_FINAL_CLTV_EXPIRY_DELTA``: otherwise
    ``SignOrCreationError.CreationError`` (``CreationError.MinFinalCltvExpiryDeltaTooShort``). With a ``payment_hash``,
    you keep its preimage (``create_inbound_payment_for_hash``)."""
    if min_final_cltv_expiry_delta is not None and min_final_cltv_expiry_delta + 3 < MIN_FINAL_CLTV_EXPIRY_DELTA:
        raise SignOrCreationError.CreationError(CreationError.MinFinalCltvExpiryDeltaTooShort())
    if payment_hash is None:
        payment_hash, secret = cm.create_inbound_payment(amount_msats, invoice_expiry_delta_secs,
                                                         min_final_cltv_expiry_delta)
    else:
        secret = cm.create_inbound_payment_for_hash(payment_hash, amount_msats, invoice_expiry_delta_secs,
                                                    min_final_cltv_expiry_delta)
    return Bolt11Invoice.create(
        network=cm.network, node_secret_key=cm.keys_manager.get_node_secret_key(),
        payment_hash=payment_hash, payment_secret=secret, amount_msat=amount_msats, description=description,
        timestamp=cm.clock.unix_time(), expiry_secs=invoice_expiry_delta_secs,
        min_final_cltv_expiry_delta=(MIN_FINAL_CLTV_EXPIRY_DELTA if min_final_cltv_expiry_delta is None
                                     else min(min_final_cltv_expiry_delta + 3, 0xFFFF)),  # (u16, saturating)
    )
