"""Events: what LDK tells your node, and what your ``handle_ldk_events`` must act on.

Mirrors ``lightning::events`` in LDK 0.1. Every variant of LDK's ``Event`` enum is here,
with LDK's field names in LDK's order, so the Rust ``match`` carries straight over::

    match event:
        case Event.OpenChannelRequest(temporary_channel_id=tcid,
                                      counterparty_node_id=peer,
                                      funding_satoshis=sats):
            ...
        case _:
            pass

Each variant is an immutable dataclass and an instance of ``Event``, so
``isinstance(event, Event.PaymentClaimable)`` works too. Each one also says how LDK
treats it after a failure: ``ldk_type_id`` is its serialization type byte, ``replayable``
whether it comes back after the handler returns ``ReplayEvent``, and ``persisted``
whether it survives a restart.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import ClassVar, Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction
from ..errors import APIError
from ..ln.msgs import ChannelParameters, OnionMessage, SocketAddress
from ..ln.outbound_payment import RecipientOnionFields
from ..offers import Bolt12Invoice, Bolt12OfferContext, Bolt12RefundContext, OffersContext, Responder
from ..routing.gossip import NetworkUpdate
from ..routing.router import Path, RouteHop
from ..ser import U32, U64, U128, Record, RustEnum, register
from ..sign import SpendableOutputDescriptor
from ..types import (
    ChannelId,
    ChannelTypeFeatures,
    InterceptId,
    PaymentHash,
    PaymentId,
    PaymentPreimage,
    PaymentSecret,
    PublicKey,
)
from .bump_transaction import BumpTransactionEvent

__all__ = [
    "BumpTransactionEvent",
    "ChannelParameters",
    "ChannelTypeFeatures",
    "ClaimedHTLC",
    "ClosureReason",
    "Event",
    "FundingInfo",
    "HTLCDestination",
    "InboundChannelFunds",
    "NetworkUpdate",
    "Path",
    "PathFailure",
    "PaymentFailureReason",
    "PaymentPurpose",
    "RecipientOnionFields",
    "ReplayEvent",
    "RouteHop",
    "SpendableOutputDescriptor",
]

#: LDK's ``FUNDING_CONF_DEADLINE_BLOCKS``: an inbound channel's funding must confirm within this.
FUNDING_CONF_DEADLINE_BLOCKS = 2016


class ReplayEvent(Exception):
    """Mirrors ``lightning::events::ReplayEvent``: "I could not handle this event yet".

    In Rust a handler returns ``Err(ReplayEvent())``. In ldkkit a handler may either
    ``return ReplayEvent()`` (the faithful spelling) or ``raise ReplayEvent()``; both stop
    event processing at this event, and it and every later event are handed over again
    on the next call. Handlers must therefore be idempotent.
    """


class FundingInfo(RustEnum):
    """Mirrors ``lightning::events::FundingInfo``: the funding of a channel that will not be used."""

    class Tx:
        """The full funding transaction."""

        transaction: Transaction

    class OutPoint:
        """Only its outpoint: used with manual funding broadcast."""

        outpoint: OutPoint


class PaymentPurpose(RustEnum):
    """Mirrors ``lightning::events::PaymentPurpose``: what an incoming payment pays for."""

    class Bolt11InvoicePayment:
        """A payment to a BOLT 11 invoice we created."""

        payment_preimage: Optional[PaymentPreimage]
        payment_secret: PaymentSecret

    class Bolt12OfferPayment:
        """A payment for a BOLT 12 offer."""

        payment_preimage: Optional[PaymentPreimage]
        payment_secret: PaymentSecret
        payment_context: Bolt12OfferContext

    class Bolt12RefundPayment:
        """A payment for a BOLT 12 refund."""

        payment_preimage: Optional[PaymentPreimage]
        payment_secret: PaymentSecret
        payment_context: Bolt12RefundContext

    class SpontaneousPayment:
        """A keysend payment: the payer chose the preimage and sent it to us."""

        payment_preimage: PaymentPreimage

    def preimage(self) -> Optional[PaymentPreimage]:
        """The preimage to claim this payment with, if we know it."""
        return self.payment_preimage  # type: ignore[attr-defined]


class ClaimedHTLC(Record):
    """Mirrors ``lightning::events::ClaimedHTLC``: one HTLC of a claimed payment."""

    channel_id: ChannelId
    user_channel_id: U128
    cltv_expiry: U32
    value_msat: U64
    counterparty_skimmed_fee_msat: U64


class PathFailure(RustEnum):
    """Mirrors ``lightning::events::PathFailure``: where a payment path failed."""

    class InitialSend:
        """We failed to send the payment at all; no HTLC was committed."""

        err: APIError

    class OnPath:
        """A hop on the path failed to forward it. Apply any update to the network graph."""

        network_update: Optional[NetworkUpdate]


class ClosureReason(RustEnum):
    """Mirrors ``lightning::events::ClosureReason``: why a channel closed.

    ``str(reason)`` gives LDK's text, e.g. "Channel closed because the channel was
    cooperatively closed by us".
    """

    class CounterpartyForceClosed:
        """The peer sent us an error; they may have broadcast their commitment transaction."""

        peer_msg: str

    class HolderForceClosed:
        """We force-closed: true if we broadcast our latest commitment transaction."""

        broadcasted_latest_txn: Optional[bool]

    class LegacyCooperativeClosure:
        """A cooperative close, as recorded by LDK before 0.0.122."""

    class CounterpartyInitiatedCooperativeClosure:
        """A cooperative close the peer started."""

    class LocallyInitiatedCooperativeClosure:
        """A cooperative close we started."""

    class CommitmentTxConfirmed:
        """A commitment transaction confirmed on chain, most likely the peer's."""

    class FundingTimedOut:
        """The funding transaction of an inbound channel did not confirm in time."""

    class ProcessingError:
        """LDK hit an error while processing, likely an HTLC."""

        err: str

    class DisconnectedPeer:
        """The peer disconnected, or we restarted, before the channel was funded."""

    class OutdatedChannelManager:
        """The ChannelMonitor on disk is newer than the ChannelManager read at start-up."""

    class CounterpartyCoopClosedUnfundedChannel:
        """The peer asked to close a channel that was not funded yet."""

    class FundingBatchClosure:
        """Another channel in the same funding batch closed."""

    class HTLCsTimedOut:
        """An HTLC was about to expire, so we force-closed to claim it on chain."""

    class PeerFeerateTooLow:
        """The peer's feerate is below our minimum."""

        peer_feerate_sat_per_kw: U32
        required_feerate_sat_per_kw: U32

    def __str__(self) -> str:
        match self:
            case ClosureReason.CounterpartyForceClosed(peer_msg=msg):
                why = f"counterparty force-closed with message: {msg}"
            case ClosureReason.HolderForceClosed(broadcasted_latest_txn=broadcast):
                why = "user force-closed the channel"
                if broadcast is not None:
                    why += f" and {'broadcasted' if broadcast else 'elected not to broadcast'} the latest transaction"
            case ClosureReason.ProcessingError(err=err):
                why = f"of an exception: {err}"
            case ClosureReason.PeerFeerateTooLow(peer_feerate_sat_per_kw=peer, required_feerate_sat_per_kw=ours):
                why = f"peer provided a feerate ({peer} sat/kw) which was below our lower bound ({ours} sat/kw)"
            case _:
                why = _CLOSURE_TEXT[type(self).__name__]
        return "Channel closed because " + why


_CLOSURE_TEXT = {
    "LegacyCooperativeClosure": "the channel was cooperatively closed",
    "CounterpartyInitiatedCooperativeClosure": "the channel was cooperatively closed by our peer",
    "LocallyInitiatedCooperativeClosure": "the channel was cooperatively closed by us",
    "CommitmentTxConfirmed": "commitment or closing transaction was confirmed on chain.",
    "FundingTimedOut": f"funding transaction failed to confirm within {FUNDING_CONF_DEADLINE_BLOCKS} blocks",
    "DisconnectedPeer": "the peer disconnected prior to the channel being funded",
    "OutdatedChannelManager": "the ChannelManager read from disk was stale compared to ChannelMonitor(s)",
    "CounterpartyCoopClosedUnfundedChannel": "the peer requested the unfunded channel be closed",
    "FundingBatchClosure": "another channel in the same funding batch closed",
    "HTLCsTimedOut": "htlcs on the channel timed out",
}


class HTLCDestination(RustEnum):
    """Mirrors ``lightning::events::HTLCDestination``: where a failed HTLC was headed."""

    class NextHopChannel:
        """We could not forward over this channel, e.g. it lacked outbound capacity."""

        node_id: Optional[PublicKey]
        channel_id: ChannelId

    class UnknownNextHop:
        """We do not know the channel the HTLC asked to be forwarded over."""

        requested_forward_scid: U64

    class InvalidForward:
        """We could not forward to this short channel id, e.g. a duplicate intercept."""

        requested_forward_scid: U64

    class InvalidOnion:
        """We could not decode the incoming onion."""

    class FailedPayment:
        """The HTLC was for us, but we rejected it (unknown, expired, overpaid MPP...)."""

        payment_hash: PaymentHash


class InboundChannelFunds(RustEnum):
    """Mirrors ``lightning::events::InboundChannelFunds``: how an inbound channel is funded."""

    class PushMsat:
        """A single-funded (v1) channel; the opener pushes this many msat to us."""

        push_msat: U64

    class DualFunded:
        """A dual-funded (v2) channel."""


@register
class PaymentFailureReason(enum.Enum):
    """Mirrors ``lightning::events::PaymentFailureReason``: why a payment failed for good."""

    RecipientRejected = "RecipientRejected"
    UserAbandoned = "UserAbandoned"
    RetriesExhausted = "RetriesExhausted"
    PaymentExpired = "PaymentExpired"
    RouteNotFound = "RouteNotFound"
    UnexpectedError = "UnexpectedError"
    UnknownRequiredFeatures = "UnknownRequiredFeatures"
    InvoiceRequestExpired = "InvoiceRequestExpired"
    InvoiceRequestRejected = "InvoiceRequestRejected"
    BlindedPathCreationFailed = "BlindedPathCreationFailed"


class Event(RustEnum):
    """Mirrors ``lightning::events::Event`` (LDK 0.1): something your node must act on."""

    ldk_type_id: ClassVar[int]
    replayable: ClassVar[bool]
    persisted: ClassVar[bool]

    class FundingGenerationReady:
        """Build the funding transaction for a channel we open, then call
        ``funding_transaction_generated``. All its inputs must be SegWit."""

        temporary_channel_id: ChannelId
        counterparty_node_id: PublicKey
        channel_value_satoshis: U64
        output_script: ScriptBuf
        user_channel_id: U128

    class FundingTxBroadcastSafe:
        """The peer has signed, so it is now safe to broadcast a manually funded transaction."""

        channel_id: ChannelId
        user_channel_id: U128
        funding_txo: OutPoint
        counterparty_node_id: PublicKey
        former_temporary_channel_id: ChannelId

    class PaymentClaimable:
        """A payment to us has fully arrived: claim it with ``claim_funds`` or fail it back."""

        receiver_node_id: Optional[PublicKey]
        payment_hash: PaymentHash
        onion_fields: Optional[RecipientOnionFields]
        amount_msat: U64
        counterparty_skimmed_fee_msat: U64
        purpose: PaymentPurpose
        via_channel_id: Optional[ChannelId]
        via_user_channel_id: Optional[U128]
        claim_deadline: Optional[U32]
        payment_id: Optional[PaymentId]

    class PaymentClaimed:
        """We claimed a payment and have the money."""

        receiver_node_id: Optional[PublicKey]
        payment_hash: PaymentHash
        amount_msat: U64
        purpose: PaymentPurpose
        htlcs: tuple[ClaimedHTLC, ...]
        sender_intended_total_msat: Optional[U64]
        onion_fields: Optional[RecipientOnionFields]
        payment_id: Optional[PaymentId]

    class ConnectionNeeded:
        """Connect to this node so buffered onion messages can be sent."""

        node_id: PublicKey
        addresses: tuple[SocketAddress, ...]

    class InvoiceReceived:
        """A BOLT 12 invoice arrived; pay it or abandon the payment."""

        payment_id: PaymentId
        invoice: Bolt12Invoice
        context: Optional[OffersContext]
        responder: Optional[Responder]

    class PaymentSent:
        """Our payment succeeded: ``payment_preimage`` is the receipt."""

        payment_id: Optional[PaymentId]
        payment_preimage: PaymentPreimage
        payment_hash: PaymentHash
        fee_paid_msat: Optional[U64]

    class PaymentFailed:
        """Our payment failed for good; no path is pending and no retry will follow."""

        payment_id: PaymentId
        payment_hash: Optional[PaymentHash]
        reason: Optional[PaymentFailureReason]

    class PaymentPathSuccessful:
        """One path of a successful payment; used for scoring."""

        payment_id: PaymentId
        payment_hash: Optional[PaymentHash]
        path: Path

    class PaymentPathFailed:
        """One path of a payment failed; the payment itself may still succeed."""

        payment_id: Optional[PaymentId]
        payment_hash: PaymentHash
        payment_failed_permanently: bool
        failure: PathFailure
        path: Path
        short_channel_id: Optional[U64]

    class ProbeSuccessful:
        """A probe reached its destination."""

        payment_id: PaymentId
        payment_hash: PaymentHash
        path: Path

    class ProbeFailed:
        """A probe failed at an intermediate hop."""

        payment_id: PaymentId
        payment_hash: PaymentHash
        path: Path
        short_channel_id: Optional[U64]

    class PendingHTLCsForwardable:
        """HTLCs are waiting: call ``process_pending_htlc_forwards`` after a random delay
        between ``time_forwardable`` and five times it."""

        time_forwardable: timedelta

    class HTLCIntercepted:
        """An HTLC for an intercept SCID arrived: forward it or fail it."""

        intercept_id: InterceptId
        requested_next_hop_scid: U64
        payment_hash: PaymentHash
        inbound_amount_msat: U64
        expected_outbound_amount_msat: U64

    class SpendableOutputs:
        """Outputs we can spend have confirmed; give them to the OutputSweeper."""

        outputs: tuple[SpendableOutputDescriptor, ...]
        channel_id: Optional[ChannelId]

    class PaymentForwarded:
        """We forwarded a payment and earned a fee."""

        prev_channel_id: Optional[ChannelId]
        next_channel_id: Optional[ChannelId]
        prev_user_channel_id: Optional[U128]
        next_user_channel_id: Optional[U128]
        prev_node_id: Optional[PublicKey]
        next_node_id: Optional[PublicKey]
        total_fee_earned_msat: Optional[U64]
        skimmed_fee_msat: Optional[U64]
        claim_from_onchain_tx: bool
        outbound_amount_forwarded_msat: Optional[U64]

    class ChannelPending:
        """A channel's funding transaction is broadcast and awaits confirmations."""

        channel_id: ChannelId
        user_channel_id: U128
        former_temporary_channel_id: Optional[ChannelId]
        counterparty_node_id: PublicKey
        funding_txo: OutPoint
        channel_type: Optional[ChannelTypeFeatures]

    class ChannelReady:
        """A channel is confirmed deeply enough (or is 0-conf) and can be used."""

        channel_id: ChannelId
        user_channel_id: U128
        counterparty_node_id: PublicKey
        channel_type: ChannelTypeFeatures

    class ChannelClosed:
        """A channel is closing; on-chain resolution may still be pending."""

        channel_id: ChannelId
        user_channel_id: U128
        reason: ClosureReason
        counterparty_node_id: Optional[PublicKey]
        channel_capacity_sats: Optional[U64]
        channel_funding_txo: Optional[OutPoint]
        last_local_balance_msat: Optional[U64]

    class DiscardFunding:
        """A funding transaction will never be used; its inputs may be spent again."""

        channel_id: ChannelId
        funding_info: FundingInfo

    class OpenChannelRequest:
        """A peer wants to open a channel to us: accept it, or reject it explicitly."""

        temporary_channel_id: ChannelId
        counterparty_node_id: PublicKey
        funding_satoshis: U64
        channel_negotiation_type: InboundChannelFunds
        channel_type: ChannelTypeFeatures
        is_announced: bool
        params: ChannelParameters

    class HTLCHandlingFailed:
        """An HTLC we accepted could not be forwarded or received."""

        prev_channel_id: ChannelId
        failed_next_destination: HTLCDestination

    class BumpTransaction:
        """An anchor-channel transaction needs a fee bump; pass it to the BumpTxEventHandler."""

        bump_event: BumpTransactionEvent

    class OnionMessageIntercepted:
        """An onion message arrived for an offline peer."""

        peer_node_id: PublicKey
        message: OnionMessage

    class OnionMessagePeerConnected:
        """A peer that takes onion messages came online."""

        peer_node_id: PublicKey


# LDK 0.1's serialization type byte and replay/persistence rules for each variant
# (the ``Writeable for Event`` implementation and each variant's doc comment).
# "Persisted" means it survives a restart; PendingHTLCsForwardable and BumpTransaction are
# regenerated on start-up instead, so they count as not persisted.
_LDK_RULES: dict[str, tuple[int, bool, bool]] = {
    "FundingGenerationReady": (0, True, False),
    "FundingTxBroadcastSafe": (43, True, True),
    "PaymentClaimable": (1, True, True),
    "PaymentClaimed": (19, True, True),
    "ConnectionNeeded": (35, False, False),
    "InvoiceReceived": (41, True, True),
    "PaymentSent": (2, True, True),
    "PaymentFailed": (15, True, True),
    "PaymentPathSuccessful": (13, True, True),
    "PaymentPathFailed": (3, True, True),
    "ProbeSuccessful": (21, True, True),
    "ProbeFailed": (23, True, True),
    "PendingHTLCsForwardable": (4, True, False),
    "HTLCIntercepted": (6, True, True),
    "SpendableOutputs": (5, True, True),
    "PaymentForwarded": (7, True, True),
    "ChannelPending": (31, True, True),
    "ChannelReady": (29, True, True),
    "ChannelClosed": (9, True, True),
    "DiscardFunding": (11, True, True),
    "OpenChannelRequest": (17, True, False),
    "HTLCHandlingFailed": (25, True, True),
    "BumpTransaction": (27, True, False),
    "OnionMessageIntercepted": (37, True, False),
    "OnionMessagePeerConnected": (39, True, False),
}

for _name, (_type_id, _replayable, _persisted) in _LDK_RULES.items():
    _variant = Event.VARIANTS[_name]
    _variant.ldk_type_id, _variant.replayable, _variant.persisted = _type_id, _replayable, _persisted
