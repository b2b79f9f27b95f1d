"""Paying BOLT 11 invoices with ``send_payment``.

Mirrors ``lightning::ln::bolt11_payment`` in LDK 0.1: turn an invoice into the three
things ``ChannelManager::send_payment`` needs.
"""

from __future__ import annotations

import dataclasses

from ..invoice import Bolt11Invoice
from ..ln.outbound_payment import RecipientOnionFields
from ..routing.router import PaymentParameters, RouteParameters
from ..types import PaymentHash


def payment_parameters_from_invoice(
    invoice: Bolt11Invoice,
) -> tuple[PaymentHash, RecipientOnionFields, RouteParameters]:
    """Mirrors ``bolt11_payment::payment_parameters_from_invoice``, for invoices with an amount.

    Raises ValueError for an invoice without an amount: use
    :func:`payment_parameters_from_variable_amount_invoice` for those.
    """
    amount = invoice.amount_milli_satoshis()
    if amount is None:
        raise ValueError("this invoice has no amount: use payment_parameters_from_variable_amount_invoice")
    return _params(invoice, amount)


def payment_parameters_from_variable_amount_invoice(
    invoice: Bolt11Invoice, amount_msat: int
) -> tuple[PaymentHash, RecipientOnionFields, RouteParameters]:
    """Mirrors the LDK function: pay ``amount_msat`` to an invoice that names no amount."""
    if invoice.amount_milli_satoshis() is not None:
        raise ValueError("this invoice names its amount: use payment_parameters_from_invoice")
    return _params(invoice, amount_msat)


def _params(invoice: Bolt11Invoice, amount_msat: int) -> tuple[PaymentHash, RecipientOnionFields, RouteParameters]:
    payment_params = dataclasses.replace(
        PaymentParameters.from_node_id(invoice.recover_payee_pub_key(), invoice.min_final_cltv_expiry_delta()),
        expiry_time=invoice.duration_since_epoch_secs() + invoice.expiry_time_secs(),
    )
    return (
        invoice.payment_hash(),
        RecipientOnionFields.secret_only(invoice.payment_secret()),
        RouteParameters.from_payment_params_and_value(payment_params, amount_msat),
    )
