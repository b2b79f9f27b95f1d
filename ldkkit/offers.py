"""BOLT 12 pieces that appear in events, kept opaque.

Mirrors ``lightning::offers`` and the offer contexts of ``lightning::blinded_path``. The
workshop does not simulate BOLT 12; these exist so every LDK 0.1 event can be built,
matched and encoded.
"""

from __future__ import annotations

from .ser import Record, RustEnum
from .types import HexBytes, PaymentId


class Bolt12Invoice(HexBytes):
    """Mirrors ``lightning::offers::invoice::Bolt12Invoice``, as its encoded bytes."""

    LENGTH = None


class Responder(HexBytes):
    """Mirrors ``lightning::onion_message::messenger::Responder``, as its reply path bytes."""

    LENGTH = None


class OffersContext(RustEnum):
    """Mirrors ``lightning::blinded_path::message::OffersContext`` (simplified)."""

    class OutboundPayment:
        """The context of an invoice received for a payment we are making."""

        payment_id: PaymentId


class Bolt12OfferContext(Record):
    """Mirrors ``lightning::blinded_path::payment::Bolt12OfferContext`` (the offer id only)."""

    offer_id: bytes


class Bolt12RefundContext(Record):
    """Mirrors ``lightning::blinded_path::payment::Bolt12RefundContext``, which is empty."""
