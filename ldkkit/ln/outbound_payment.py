"""What the sender of a payment chooses: the onion fields and the retry strategy.

Mirrors ``lightning::ln::outbound_payment``. Its failures (``RetryableSendFailure``,
``ProbeSendFailure``) live with the other errors in :mod:`ldkkit.errors`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

from ..ser import U32, Record, RustEnum
from ..types import PaymentSecret


class RecipientOnionFields(Record):
    """Mirrors ``lightning::ln::outbound_payment::RecipientOnionFields``.

    What the sender tells the recipient in the onion. Custom TLVs are not modelled.
    """

    payment_secret: Optional[PaymentSecret]
    payment_metadata: Optional[bytes]

    @classmethod
    def secret_only(cls, payment_secret: PaymentSecret) -> RecipientOnionFields:
        """For paying a BOLT 11 invoice: just its payment secret."""
        return cls(payment_secret, None)

    @classmethod
    def spontaneous_empty(cls) -> RecipientOnionFields:
        """For a keysend payment, which has no invoice and so no secret."""
        return cls(None, None)


class Retry(RustEnum):
    """Mirrors ``lightning::ln::outbound_payment::Retry``: how long to keep retrying."""

    class Attempts:
        """Retry at most this many times after the first attempt."""

        max_retries: U32

    class Timeout:
        """Retry until this much time has passed since the first attempt."""

        timeout: timedelta
