"""How a node is configured: channel limits, forwarding fees, what to accept.

Mirrors ``lightning::util::config`` with LDK 0.1's defaults. ``UserConfig.ldk_sample()``
is the configuration ldk-sample runs with.
"""

from __future__ import annotations

import dataclasses

from .ser import U16, U32, U64, Record


class ChannelHandshakeConfig(Record):
    """Mirrors ``ChannelHandshakeConfig``: what we ask for when a channel opens."""

    minimum_depth: U32 = 6
    our_to_self_delay: U16 = 144
    our_htlc_minimum_msat: U64 = 1
    max_inbound_htlc_value_in_flight_percent_of_channel: U32 = 10
    negotiate_anchors_zero_fee_htlc_tx: bool = False
    announce_for_forwarding: bool = False
    their_channel_reserve_proportional_millionths: U32 = 10_000
    our_max_accepted_htlcs: U16 = 50


class ChannelConfig(Record):
    """Mirrors ``ChannelConfig``: how we forward over a channel."""

    forwarding_fee_proportional_millionths: U32 = 0
    forwarding_fee_base_msat: U32 = 1000
    cltv_expiry_delta: U16 = 72
    #: Let the counterparty skim a fee off our inbound HTLCs (an LSP forwarding an intercepted HTLC for less): an
    #: HTLC short of its onion's amount by at most its ``skimmed_fee_msat`` is accepted, and PaymentClaimable's
    #: ``counterparty_skimmed_fee_msat`` says how much was taken.
    accept_underpaying_htlcs: bool = False


class UserConfig(Record):
    """Mirrors ``lightning::util::config::UserConfig``."""

    channel_handshake_config: ChannelHandshakeConfig = dataclasses.field(default_factory=ChannelHandshakeConfig)
    channel_config: ChannelConfig = dataclasses.field(default_factory=ChannelConfig)
    manually_accept_inbound_channels: bool = False
    accept_intercept_htlcs: bool = False

    @classmethod
    def ldk_sample(cls) -> UserConfig:
        """ldk-sample's settings: every inbound channel raises an OpenChannelRequest, anchors on."""
        return cls(
            ChannelHandshakeConfig(negotiate_anchors_zero_fee_htlc_tx=True),
            ChannelConfig(),
            manually_accept_inbound_channels=True,
        )
