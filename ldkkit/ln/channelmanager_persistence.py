"""What a ChannelManager persists, and how it is read back.

Mirrors ``impl Writeable for ChannelManager`` and ``ReadableArgs for (BlockHash, ChannelManager)`` in LDK's
``ln::channelmanager``: the channels, the payments in every state, the HTLCs still to forward or fail back,
and the events LDK persists. The background processor writes it whenever the manager asks
(``get_and_clear_needs_persistence``); a node restarted from it goes on where it stopped.

Each function takes the ChannelManager; its caller holds the manager's lock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..events import Event
from ..ln.channel import ChannelPhase

if TYPE_CHECKING:
    from .channelmanager import ChannelManager


def write(cm: ChannelManager) -> bytes:
    """``ChannelManager::write``: channels that never got funded are left out, as LDK drops them on write."""
    outbound = cm._pending_outbound_payments
    channels = (c for c in cm.channels.values() if c.is_funded() or c.phase is ChannelPhase.Closed)
    return cm._encoded_channels.encoded_dict({
        "channels": cm._encoded_channels.encoded(channels),  # (quiet channels are not encoded at every block)
        "events": tuple(e for e in cm._events.pending() if type(e).persisted),
        "claimable": tuple(cm.claimable.values()),
        "pending_outbound": tuple(outbound.pending_outbound_payments.values()),
        "route_params": tuple(outbound.route_params.items()),
        "payment_paths": tuple((k, tuple(v)) for k, v in outbound.payment_paths.items()),
        "forward_htlcs": tuple(cm.forward_htlcs),
        "fail_backs": tuple(cm.fail_backs),
        # LDK's pending_intercepted_htlcs (a released one is back in forward_htlcs, to go out).
        "intercepted": tuple(cm.intercepted.items()),
        "released_intercepts": tuple(cm._released_intercepts),
        "intercept_scids": tuple(sorted(cm.intercept_scids)),
    }, "best_block_height", cm.best_block_height)  # (most blocks change only this: see encoded_dict)


def read(cm: ChannelManager, state: dict[str, Any]) -> None:
    """``ChannelManager::read``, into a freshly built manager: what :func:`write` wrote."""
    cm.channels = {c.channel_id: c for c in state["channels"]}
    cm._events.replace(list(state["events"]))
    cm.claimable = {c.payment_hash: c for c in state["claimable"]}
    outbound = cm._pending_outbound_payments
    outbound.pending_outbound_payments = {p.payment_id: p for p in state["pending_outbound"]}
    outbound.route_params = dict(state["route_params"])
    outbound.payment_paths = {k: list(v) for k, v in state["payment_paths"]}
    cm.forward_htlcs = list(state["forward_htlcs"])
    cm.fail_backs = list(state["fail_backs"])
    cm.intercepted = dict(state["intercepted"])
    cm._released_intercepts = list(state["released_intercepts"])
    cm.intercept_scids = set(state["intercept_scids"])
    cm.best_block_height = state["best_block_height"]
    # With HTLCs still to forward or fail back, a PendingHTLCsForwardable with time_forwardable 2 s follows the
    # persisted events (it was dropped, or never acted on).
    if cm.forward_htlcs or cm.fail_backs or cm._released_intercepts:
        cm._pending_forwardable_event = True
        cm._queue_event(Event.PendingHTLCsForwardable(timedelta(seconds=2)))
    for chan in cm.channels.values():
        if chan.is_funded():
            cm.chain_monitor.watch_channel(chan)
    cm._changed()
