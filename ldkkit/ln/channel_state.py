"""What ``list_channels`` tells you about each channel.

Mirrors ``lightning::ln::channel_state`` (``ChannelDetails``, ``ChannelCounterparty``,
``ChannelShutdownState``, and the HTLC details: ``InboundHTLCDetails``, ``OutboundHTLCDetails``).
"""

from __future__ import annotations

import enum
from typing import Optional

from ..bitcoin import OutPoint
from ..ser import U16, U32, U64, U128, Record, register
from ..types import ChannelId, ChannelTypeFeatures, PaymentHash, PublicKey
from .channel import Channel, ChannelPhase, HTLCState

#: LDK's ``htlc_success_tx_weight`` for a channel without anchor outputs (``chan_utils``).
HTLC_SUCCESS_TX_WEIGHT = 703


@register
class ChannelShutdownState(enum.Enum):
    """Mirrors ``lightning::ln::channel_state::ChannelShutdownState``."""

    NotShuttingDown = "NotShuttingDown"
    ShutdownInitiated = "ShutdownInitiated"
    ResolvingHTLCs = "ResolvingHTLCs"
    NegotiatingClosingFee = "NegotiatingClosingFee"
    ShutdownComplete = "ShutdownComplete"


@register
class InboundHTLCStateDetails(enum.Enum):
    """Mirrors ``lightning::ln::channel_state::InboundHTLCStateDetails``."""

    AwaitingRemoteRevokeToAdd = "AwaitingRemoteRevokeToAdd"
    Committed = "Committed"
    AwaitingRemoteRevokeToRemoveFulfill = "AwaitingRemoteRevokeToRemoveFulfill"
    AwaitingRemoteRevokeToRemoveFail = "AwaitingRemoteRevokeToRemoveFail"


@register
class OutboundHTLCStateDetails(enum.Enum):
    """Mirrors ``lightning::ln::channel_state::OutboundHTLCStateDetails``."""

    AwaitingRemoteRevokeToAdd = "AwaitingRemoteRevokeToAdd"
    Committed = "Committed"
    AwaitingRemoteRevokeToRemoveSuccess = "AwaitingRemoteRevokeToRemoveSuccess"
    AwaitingRemoteRevokeToRemoveFailure = "AwaitingRemoteRevokeToRemoveFailure"


class InboundHTLCDetails(Record):
    """Mirrors ``lightning::ln::channel_state::InboundHTLCDetails``: an HTLC the counterparty offered us."""

    htlc_id: U64
    amount_msat: U64
    cltv_expiry: U32
    payment_hash: PaymentHash
    state: Optional[InboundHTLCStateDetails]
    is_dust: bool


class OutboundHTLCDetails(Record):
    """Mirrors ``lightning::ln::channel_state::OutboundHTLCDetails``: an HTLC we offered the counterparty."""

    htlc_id: Optional[U64]
    amount_msat: U64
    cltv_expiry: U32
    payment_hash: PaymentHash
    state: Optional[OutboundHTLCStateDetails]
    skimmed_fee_msat: Optional[U64]
    is_dust: bool


def _dust_limit_sat(chan: Channel, feerate_per_kw: int) -> int:
    """Under this many sats an HTLC is dust on our commitment (LDK's ``holder_dust_limit_success_sat``): the dust
    limit, plus, without zero-fee anchors, the fee of the second-stage transaction at LDK's dust buffer feerate
    (``get_dust_buffer_feerate``: 2,530 sat/kW or a quarter more than now, whichever is higher). LDK uses the
    HTLC-success weight for the HTLCs of both directions."""
    if chan.channel_type is not None and chan.channel_type.supports_anchors_zero_fee_htlc_tx():
        return chan.dust_limit_satoshis
    buffer_feerate = max(feerate_per_kw + 2530, feerate_per_kw * 1250 // 1000)
    return chan.dust_limit_satoshis + buffer_feerate * HTLC_SUCCESS_TX_WEIGHT // 1000


def _htlc_maximum_msat(chan: Channel, max_htlc_value_in_flight_msat: int) -> int:
    """The largest HTLC one side may offer (LDK's ``get_htlc_maximum_msat``): what is left of the channel once both
    reserves are set aside, at most what the other side lets be in flight."""
    left = chan.channel_value_satoshis - chan.counterparty_selected_channel_reserve_satoshis
    return min((left - chan.holder_selected_channel_reserve_satoshis) * 1000, max_htlc_value_in_flight_msat)


_INBOUND_STATE = {HTLCState.Committed: InboundHTLCStateDetails.Committed,
                  HTLCState.Fulfilled: InboundHTLCStateDetails.AwaitingRemoteRevokeToRemoveFulfill,
                  HTLCState.Failed: InboundHTLCStateDetails.AwaitingRemoteRevokeToRemoveFail}
_OUTBOUND_STATE = {HTLCState.Committed: OutboundHTLCStateDetails.Committed,
                   HTLCState.Fulfilled: OutboundHTLCStateDetails.AwaitingRemoteRevokeToRemoveSuccess,
                   HTLCState.Failed: OutboundHTLCStateDetails.AwaitingRemoteRevokeToRemoveFailure}


class ChannelCounterparty(Record):
    """Mirrors ``lightning::ln::channel_state::ChannelCounterparty`` (less its ``features`` and ``forwarding_info``)."""

    node_id: PublicKey
    unspendable_punishment_reserve: U64
    outbound_htlc_minimum_msat: Optional[U64]
    outbound_htlc_maximum_msat: Optional[U64] = None


class ChannelDetails(Record):
    """Mirrors ``lightning::ln::channel_state::ChannelDetails``: one channel, as ``list_channels`` sees it."""

    channel_id: ChannelId
    counterparty: ChannelCounterparty
    funding_txo: Optional[OutPoint]
    channel_type: Optional[ChannelTypeFeatures]
    short_channel_id: Optional[U64]
    outbound_scid_alias: Optional[U64]
    inbound_scid_alias: Optional[U64]
    channel_value_satoshis: U64
    unspendable_punishment_reserve: Optional[U64]
    user_channel_id: U128
    feerate_sat_per_1000_weight: Optional[U32]
    outbound_capacity_msat: U64
    next_outbound_htlc_limit_msat: U64
    next_outbound_htlc_minimum_msat: U64
    inbound_capacity_msat: U64
    confirmations_required: Optional[U32]
    confirmations: Optional[U32]
    force_close_spend_delay: Optional[U16]
    is_outbound: bool
    is_channel_ready: bool
    channel_shutdown_state: Optional[ChannelShutdownState]
    is_usable: bool
    is_announced: bool
    inbound_htlc_minimum_msat: Optional[U64]
    inbound_htlc_maximum_msat: Optional[U64]
    pending_inbound_htlcs: tuple[InboundHTLCDetails, ...]
    pending_outbound_htlcs: tuple[OutboundHTLCDetails, ...]

    @classmethod
    def from_channel(cls, chan: Channel, best_block_height: int, feerate_sat_per_1000_weight: int,
                     is_usable: bool, htlcs: bool = True) -> ChannelDetails:
        """Mirrors ``ChannelDetails::from_channel_context``: what the manager shows of one channel.

        ``is_usable`` is the manager's to say: the channel must be ready and its peer connected. Without ``htlcs``,
        the HTLCs in flight are left out (for the manager's own router, which reads none of them).
        """
        phase, funded = chan.phase, chan.is_funded()
        if phase is ChannelPhase.ShuttingDown:
            shutdown = ChannelShutdownState.ShutdownInitiated
        elif phase is ChannelPhase.Closed:
            shutdown = ChannelShutdownState.ShutdownComplete
        else:
            shutdown = ChannelShutdownState.NotShuttingDown
        # LDK's get_funding_tx_confirmations: 0 until the funding transaction confirms (Some, never None).
        confirmations = 0 if chan.funding_height is None else max(0, best_block_height - chan.funding_height + 1)
        ready = phase is ChannelPhase.Ready  # LDK's context.is_usable(): ready, and no shutdown begun
        dust = _dust_limit_sat(chan, feerate_sat_per_1000_weight) if htlcs else 0
        return cls(
            channel_id=chan.channel_id,
            counterparty=ChannelCounterparty(
                chan.counterparty_node_id, chan.holder_selected_channel_reserve_satoshis, chan.htlc_minimum_msat,
                _htlc_maximum_msat(chan, chan.counterparty_max_htlc_value_in_flight_msat),
            ),
            funding_txo=chan.funding_txo,
            channel_type=chan.channel_type,
            short_channel_id=chan.short_channel_id,
            outbound_scid_alias=chan.outbound_scid_alias if ready else None,
            inbound_scid_alias=chan.latest_inbound_scid_alias,
            channel_value_satoshis=chan.channel_value_satoshis,
            unspendable_punishment_reserve=chan.counterparty_selected_channel_reserve_satoshis,
            user_channel_id=chan.user_channel_id,
            feerate_sat_per_1000_weight=feerate_sat_per_1000_weight,
            outbound_capacity_msat=chan.outbound_capacity_msat(),
            next_outbound_htlc_limit_msat=chan.next_outbound_htlc_limit_msat() if is_usable else 0,
            next_outbound_htlc_minimum_msat=chan.htlc_minimum_msat,
            inbound_capacity_msat=chan.inbound_capacity_msat(),
            confirmations_required=chan.minimum_depth if funded or chan.minimum_depth else None,
            confirmations=confirmations,
            force_close_spend_delay=chan.counterparty_selected_contest_delay if funded else None,
            is_outbound=chan.is_outbound,
            is_channel_ready=ready,
            channel_shutdown_state=shutdown,
            is_usable=is_usable,
            is_announced=chan.is_announced,
            inbound_htlc_minimum_msat=chan.htlc_minimum_msat,
            inbound_htlc_maximum_msat=_htlc_maximum_msat(chan, chan.max_htlc_value_in_flight_msat),
            pending_inbound_htlcs=tuple(
                InboundHTLCDetails(h.htlc_id, h.amount_msat, h.cltv_expiry, h.payment_hash, _INBOUND_STATE[h.state],
                                   h.amount_msat // 1000 < dust) for h in chan.pending_inbound_htlcs.values() if htlcs),
            pending_outbound_htlcs=tuple(
                OutboundHTLCDetails(h.htlc_id, h.amount_msat, h.cltv_expiry, h.payment_hash, _OUTBOUND_STATE[h.state],
                                    h.skimmed_fee_msat, h.amount_msat // 1000 < dust)
                for h in chan.pending_outbound_htlcs.values() if htlcs),
        )

    def get_outbound_payment_scid(self) -> Optional[int]:
        """Mirrors ``ChannelDetails::get_outbound_payment_scid``: the scid to route over."""
        return self.short_channel_id if self.short_channel_id is not None else self.outbound_scid_alias

    def short(self) -> str:
        return f"{self.channel_id.short()} with {self.counterparty.node_id.short()}"
