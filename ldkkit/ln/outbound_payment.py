"""What the sender of a payment chooses, and what the ChannelManager tracks while it is paid.

Mirrors ``lightning::ln::outbound_payment``: ``RecipientOnionFields``, ``Retry`` and the
bookkeeping of payments in flight. Its failures (``RetryableSendFailure``,
``ProbeSendFailure``) live with the other errors in :mod:`ldkkit.errors`.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Optional

from ..ser import U32, U64, Record, RustEnum, register
from ..types import PaymentHash, PaymentId, PaymentPreimage, PaymentSecret


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


#: LDK's ``IDEMPOTENCY_TIMEOUT_TICKS``: timer ticks a fulfilled payment is remembered after its last HTLC.
IDEMPOTENCY_TIMEOUT_TICKS = 7


@register
class PaymentState(enum.Enum):
    Retryable = "Retryable"
    Fulfilled = "Fulfilled"
    Abandoned = "Abandoned"


class PendingOutboundPayment(Record, frozen=False):
    """Mirrors LDK's ``PendingOutboundPayment``: one payment we are sending."""

    payment_id: PaymentId
    payment_hash: PaymentHash
    onion: RecipientOnionFields
    keysend_preimage: Optional[PaymentPreimage]
    total_msat: U64
    payee: bytes  # the payee's public key, serialized
    final_cltv_expiry_delta: U32
    retry: Optional[Retry]
    attempts: U32
    started_at_us: U64
    failed_scids: tuple[U64, ...]
    state: PaymentState
    inflight_htlcs: U32
    preimage: Optional[PaymentPreimage]
    is_probe: bool
    sent_event_emitted: bool
    pending_retry: bool
    failure_reason: Optional[str]
    #: LDK's ``timer_ticks_without_htlcs``: a fulfilled payment is kept this long, so a second
    #: ``send_payment`` with its id is refused as ``DuplicatePayment``.
    timer_ticks_without_htlcs: U32 = 0

    def can_retry(self, now_us: int) -> bool:
        """Whether the retry strategy allows another attempt now."""
        match self.retry:
            case Retry.Attempts(max_retries=n):
                return self.attempts <= n
            case Retry.Timeout(timeout=limit):
                return now_us - self.started_at_us < limit // timedelta(microseconds=1)
            case _:
                return False
