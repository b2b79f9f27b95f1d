"""What ``list_channels`` tells you about each channel.

Mirrors ``lightning::ln::channel_state`` (``ChannelDetails``, ``ChannelCounterparty``,
``ChannelShutdownState``).
"""

from __future__ import annotations

import enum
from typing import Optional

from ..bitcoin import OutPoint
from ..ser import U16, U32, U64, U128, Record, register
from ..types import ChannelId, ChannelTypeFeatures, PublicKey


@register
class ChannelShutdownState(enum.Enum):
    """Mirrors ``lightning::ln::channel_state::ChannelShutdownState``."""

    NotShuttingDown = "NotShuttingDown"
    ShutdownInitiated = "ShutdownInitiated"
    ResolvingHTLCs = "ResolvingHTLCs"
    NegotiatingClosingFee = "NegotiatingClosingFee"
    ShutdownComplete = "ShutdownComplete"


class ChannelCounterparty(Record):
    """Mirrors ``lightning::ln::channel_state::ChannelCounterparty``."""

    node_id: PublicKey
    unspendable_punishment_reserve: U64
    outbound_htlc_minimum_msat: Optional[U64]


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
    pending_inbound_htlcs: U32
    pending_outbound_htlcs: U32

    def get_outbound_payment_scid(self) -> Optional[int]:
        """Mirrors ``ChannelDetails::get_outbound_payment_scid``: the scid to route over."""
        return self.short_channel_id if self.short_channel_id is not None else self.outbound_scid_alias

    def short(self) -> str:
        return f"{self.channel_id.short()} with {self.counterparty.node_id.short()}"
