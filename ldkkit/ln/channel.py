"""One channel's state: its phase, its balances and the HTLCs in flight on it.

Mirrors ``lightning::ln::channel`` (LDK's ``Channel`` and its ``ChannelContext``), with
the commitment-transaction machinery reduced to the balances it protects. The constants
are LDK 0.1's.
"""

from __future__ import annotations

import enum
import operator
from typing import Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction
from ..errors import APIError
from ..ln.msgs import Onion, UpdateAddHTLC, UpdateFailHTLC, UpdateFulfillHTLC
from ..routing.router import Path
from ..ser import U16, U32, U64, U128, Record, RustEnum, register
from ..types import ChannelId, ChannelTypeFeatures, PaymentHash, PaymentId, PublicKey

#: LDK's ``MIN_CHAN_DUST_LIMIT_SATOSHIS``.
MIN_CHAN_DUST_LIMIT_SATOSHIS = 354
#: LDK's ``MIN_THEIR_CHAN_RESERVE_SATOSHIS``.
MIN_THEIR_CHAN_RESERVE_SATOSHIS = 1000
#: LDK's ``BREAKDOWN_TIMEOUT``: the CSV delay we ask of our counterparty's outputs.
BREAKDOWN_TIMEOUT = 144
#: LDK's ``FUNDING_CONF_DEADLINE_BLOCKS``.
FUNDING_CONF_DEADLINE_BLOCKS = 2016
#: LDK's ``UNFUNDED_CHANNEL_AGE_LIMIT_TICKS``.
UNFUNDED_CHANNEL_AGE_LIMIT_TICKS = 60
#: LDK's ``UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS``.
UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS = 2
#: Largest channel without ``option_support_large_channel`` ("wumbo"): 2^24 - 1 sat. LDK's nodes support wumbo
#: (``provided_init_features``), so an LDK opener is not held to it; an LDK acceptor is, by default
#: (``ChannelHandshakeLimits::max_funding_satoshis``).
MAX_FUNDING_SATOSHIS_NO_WUMBO = (1 << 24) - 1
#: LDK's ``TOTAL_BITCOIN_SUPPLY_SATOSHIS``.
TOTAL_BITCOIN_SUPPLY_SATOSHIS = 21_000_000 * 100_000_000
#: Value of each anchor output on an anchor channel's commitment transaction.
ANCHOR_OUTPUT_VALUE_SATOSHI = 330
#: Weights used for commitment transaction fees (BOLT 3).
COMMITMENT_TX_BASE_WEIGHT = 724
COMMITMENT_TX_BASE_ANCHOR_WEIGHT = 1124
COMMITMENT_TX_WEIGHT_PER_HTLC = 172

_AMOUNT_MSAT = operator.attrgetter("amount_msat")  # (summing HTLCs with it runs in C: balances are read often)


@register
class ChannelPhase(enum.Enum):
    """Where a channel is in its life (LDK keeps these as ``ChannelPhase`` and state flags)."""

    UnacceptedInbound = "UnacceptedInbound"  # OpenChannelRequest raised, no answer yet
    OutboundAwaitingAccept = "OutboundAwaitingAccept"  # open_channel sent
    InboundAwaitingFunding = "InboundAwaitingFunding"  # accepted, waiting for funding_created
    AwaitingFundingTx = "AwaitingFundingTx"  # FundingGenerationReady raised
    FundingCreatedSent = "FundingCreatedSent"  # waiting for funding_signed
    AwaitingChannelReady = "AwaitingChannelReady"  # funded, confirming
    Ready = "Ready"
    ShuttingDown = "ShuttingDown"  # shutdown exchanged, waiting for HTLCs to settle
    Closed = "Closed"


#: (A tuple of the members, made once: on Python 3.11 an enum member read off its class, ``ChannelPhase.Ready``, costs
#: ten times a global's read, and every block asks each channel.)
_FUNDED_PHASES = (ChannelPhase.AwaitingChannelReady, ChannelPhase.Ready, ChannelPhase.ShuttingDown)


@register
class HTLCState(enum.Enum):
    Committed = "Committed"
    Fulfilled = "Fulfilled"
    Failed = "Failed"


class HTLCPreviousHop(Record):
    """Where a forwarded HTLC came from, so it can be settled backwards."""

    channel_id: ChannelId
    htlc_id: U64
    amount_msat: U64
    counterparty_node_id: PublicKey


class HTLCOutboundRoute(Record):
    """An HTLC we originated: which payment and which path."""

    payment_id: PaymentId
    path: Path
    is_probe: bool


class InboundHTLC(Record, frozen=False):
    """An HTLC our counterparty offered us."""

    htlc_id: U64
    amount_msat: U64
    payment_hash: PaymentHash
    cltv_expiry: U32
    onion: Onion
    state: HTLCState
    skimmed_fee_msat: Optional[U64] = None  # its update_add_htlc's (LDK's PendingHTLCInfo.skimmed_fee_msat)


class OutboundHTLC(Record, frozen=False):
    """An HTLC we offered our counterparty. Exactly one of the two sources is set."""

    htlc_id: U64
    amount_msat: U64
    payment_hash: PaymentHash
    cltv_expiry: U32
    previous_hop: Optional[HTLCPreviousHop]
    route: Optional[HTLCOutboundRoute]
    state: HTLCState
    skimmed_fee_msat: Optional[U64] = None  # LDK's OutboundHTLCOutput.skimmed_fee_msat: sent in its update_add_htlc


class HTLCUpdateAwaitingACK(RustEnum):
    """Mirrors LDK's ``HTLCUpdateAwaitingACK``: an update of an HTLC waiting in a channel's holding cell until the
    counterparty can take it, kept as the message that will carry it (the kit's channel state moved already)."""

    class AddHTLC:
        msg: UpdateAddHTLC

    class ClaimHTLC:
        msg: UpdateFulfillHTLC

    class FailHTLC:
        msg: UpdateFailHTLC


class Channel(Record, frozen=False):
    """Mirrors LDK's ``Channel``: everything one side knows about one channel."""

    temporary_channel_id: ChannelId
    channel_id: ChannelId
    counterparty_node_id: PublicKey
    is_outbound: bool
    user_channel_id: U128
    channel_value_satoshis: U64
    value_to_self_msat: U64  # our balance, excluding HTLCs in flight
    push_msat: U64
    channel_type: ChannelTypeFeatures
    is_announced: bool
    phase: ChannelPhase
    # What each side asked of the other
    holder_selected_channel_reserve_satoshis: U64  # the counterparty must keep this much
    counterparty_selected_channel_reserve_satoshis: U64  # we must keep this much
    holder_selected_contest_delay: U16  # CSV on the counterparty's outputs
    counterparty_selected_contest_delay: U16  # CSV on our outputs
    minimum_depth: U32
    dust_limit_satoshis: U64
    max_htlc_value_in_flight_msat: U64  # what we allow in flight towards us
    counterparty_max_htlc_value_in_flight_msat: U64  # what they allow in flight towards them
    htlc_minimum_msat: U64
    max_accepted_htlcs: U16
    channel_keys_id: bytes
    counterparty_funding_pubkey: Optional[PublicKey]
    # Funding
    funding_output_script: Optional[ScriptBuf]
    funding_transaction: Optional[Transaction]
    funding_txo: Optional[OutPoint]
    funding_height: Optional[U32]
    short_channel_id: Optional[U64]
    sent_channel_ready: bool
    received_channel_ready: bool
    # HTLCs in flight
    pending_inbound_htlcs: dict[U64, InboundHTLC]
    pending_outbound_htlcs: dict[U64, OutboundHTLC]
    next_outbound_htlc_id: U64
    next_counterparty_htlc_id: U64  # the id their next HTLC will have: 0 until they first offer one
    # Closing
    shutdown_scriptpubkey: Optional[ScriptBuf]
    counterparty_shutdown_scriptpubkey: Optional[ScriptBuf]
    locally_initiated_shutdown: bool
    # Timer ticks spent waiting (to expire requests and unfunded channels)
    ticks_waiting: U32
    outbound_scid_alias: U64
    # Forwarding policy (ChannelConfig)
    forwarding_fee_base_msat: U32
    forwarding_fee_proportional_millionths: U32
    cltv_expiry_delta: U16
    #: The alias the counterparty gave the channel in its ``channel_ready`` (LDK's ``latest_inbound_scid_alias``).
    latest_inbound_scid_alias: Optional[U64] = None
    #: LDK's ``holding_cell_htlc_updates``: the HTLC updates for the counterparty (a claim, a failure, an offer) made
    #: while it was away, or lost on the way as it went, in order: sent once it is back (``channel_reestablish``).
    holding_cell_htlc_updates: tuple[HTLCUpdateAwaitingACK, ...] = ()

    # --- balances ---------------------------------------------------------------------------

    def pending_outbound_msat(self) -> int:
        return sum(map(_AMOUNT_MSAT, self.pending_outbound_htlcs.values()))

    def pending_inbound_msat(self) -> int:
        return sum(map(_AMOUNT_MSAT, self.pending_inbound_htlcs.values()))

    def holder_balance_msat(self) -> int:
        """LDK's ``ChannelContext::value_to_self_msat``, which ``ShutdownResult::last_local_balance_msat`` reports:
        LDK takes an HTLC we offered off it only once it is fulfilled (``revoke_and_ack``), so an HTLC still in
        flight counts as ours; one offered to us counts only once we fulfil it, as here."""
        return self.value_to_self_msat + self.pending_outbound_msat()

    def value_to_remote_msat(self) -> int:
        return (
            self.channel_value_satoshis * 1000
            - self.value_to_self_msat
            - self.pending_outbound_msat()
            - self.pending_inbound_msat()
        )

    def outbound_capacity_msat(self) -> int:
        """What we can still send: our balance above the reserve our counterparty asked for."""
        spendable = self.value_to_self_msat - self.counterparty_selected_channel_reserve_satoshis * 1000
        return max(0, spendable)

    def inbound_capacity_msat(self) -> int:
        """What we can still receive: their balance above the reserve we asked for."""
        return max(0, self.value_to_remote_msat() - self.holder_selected_channel_reserve_satoshis * 1000)

    def next_outbound_htlc_limit_msat(self) -> int:
        """The largest HTLC we could add now: capacity, capped by the in-flight limit."""
        in_flight_room = self.counterparty_max_htlc_value_in_flight_msat - self.pending_outbound_msat()
        return max(0, min(self.outbound_capacity_msat(), in_flight_room))

    def check_htlc_to_send(self, amount_msat: int) -> None:
        """``Channel::send_htlc``'s checks of an HTLC we would add (channel.rs:7875-7888), each refusal a
        ``ChannelUnavailable`` with LDK's words (``send_payment_along_path`` turns its ``ChannelError`` into one)."""
        if amount_msat == 0:
            raise APIError.ChannelUnavailable("Cannot send 0-msat HTLC")
        limit = self.next_outbound_htlc_limit_msat()
        if amount_msat > limit:
            raise APIError.ChannelUnavailable(f"Cannot send more than our next-HTLC maximum - {limit} msat")

    # --- phase --------------------------------------------------------------------------------

    def is_funded(self) -> bool:
        return self.phase in _FUNDED_PHASES

    def is_usable(self) -> bool:
        return self.phase is ChannelPhase.Ready

    def at_first_commitment(self) -> bool:
        """No HTLC was ever offered either way, so both commitments are still the first (LDK's commitment numbers
        at ``INITIAL_COMMITMENT_NUMBER``, the kit having no fee updates)."""
        return self.next_outbound_htlc_id == 0 and self.next_counterparty_htlc_id == 0

    def get_outbound_payment_scid(self) -> int:
        """The short channel id to route over: the real one once confirmed, else the alias."""
        return self.short_channel_id if self.short_channel_id is not None else self.outbound_scid_alias

    def is_zero_conf(self) -> bool:
        return self.minimum_depth == 0

    def commitment_fee_sat(self, feerate_per_kw: int) -> int:
        """The fee of our commitment transaction at this feerate (BOLT 3 weights)."""
        anchors = self.channel_type.supports_anchors_zero_fee_htlc_tx()
        weight = COMMITMENT_TX_BASE_ANCHOR_WEIGHT if anchors else COMMITMENT_TX_BASE_WEIGHT
        weight += COMMITMENT_TX_WEIGHT_PER_HTLC * (len(self.pending_inbound_htlcs) + len(self.pending_outbound_htlcs))
        return feerate_per_kw * weight // 1000


def holder_selected_channel_reserve_satoshis(channel_value_satoshis: int) -> int:
    """LDK's ``get_holder_selected_channel_reserve_satoshis``: 1% of the channel, at least 1000 sat."""
    return min(channel_value_satoshis, max(channel_value_satoshis // 100, MIN_THEIR_CHAN_RESERVE_SATOSHIS))

