"""Gossip of our own channels: what the ChannelManager tells the network of a public channel.

Mirrors what LDK's ``ChannelManager`` queues as ``MessageSendEvent::BroadcastChannelAnnouncement`` and
``BroadcastChannelUpdate`` (``get_channel_update_for_broadcast``): the announcement once the channel is ready, from
its opener, and our policy for it, enabled, or disabled as it closes.
"""

from __future__ import annotations

from typing import Any

from . import msgs
from .channel import Channel


def announce(cm: Any, chan: Channel, enabled: bool = True) -> None:
    """Gossip a public channel: its announcement (from the opener) and our policy for it.

    ``None`` as the destination means "broadcast to the network" (LDK's ``BroadcastChannelAnnouncement`` and
    ``BroadcastChannelUpdate``).
    """
    if not chan.is_announced or chan.short_channel_id is None:
        return
    if enabled and chan.is_outbound:
        cm.pending_msg_events.append((None, msgs.ChannelAnnouncement(
            chan.short_channel_id, cm.get_our_node_id(), chan.counterparty_node_id, chan.channel_value_satoshis
        )))
    cm.pending_msg_events.append((None, msgs.ChannelUpdate(
        chan.short_channel_id, cm.get_our_node_id(), cm.clock.unix_time(), enabled, chan.cltv_expiry_delta,
        chan.htlc_minimum_msat, chan.channel_value_satoshis * 1000, chan.forwarding_fee_base_msat,
        chan.forwarding_fee_proportional_millionths,
    )))
    cm._notifier.notify()
