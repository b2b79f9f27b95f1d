"""Closing a channel: cooperatively, by force, or because the peer sent an error.

Mirrors the closing half of ``lightning::ln::channelmanager`` in LDK 0.1 (BOLT 2's "Channel
Close"), which LDK keeps in channelmanager.rs and channel.rs: ``close_channel_internal``,
``internal_shutdown`` and ``internal_closing_signed`` for a cooperative close,
``force_close_sending_error`` for a force-close, ``handle_error`` for a peer's ``error``
(including ``maybe_downgrade_channel_features`` when a peer refuses our ``open_channel``),
and the ``ChannelClosed`` and ``DiscardFunding`` events every close raises.

Each function takes the ChannelManager; its caller holds the manager's lock.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..chain.chaininterface import ConfirmationTarget
from ..errors import APIError
from ..events import ClosureReason, Event, FundingInfo
from ..ln import channel_gossip, msgs
from ..ln.channel import Channel, ChannelPhase
from ..types import ChannelId, ChannelTypeFeatures, PublicKey

if TYPE_CHECKING:
    from .channelmanager import ChannelManager


# --- cooperative close ------------------------------------------------------------------------------


def close_channel_internal(cm: ChannelManager, channel_id: ChannelId, counterparty_node_id: PublicKey) -> None:
    """Start a cooperative close; a channel not yet funded is simply dropped. A request not yet accepted is no channel
    (LDK keeps it apart, in ``inbound_channel_request_by_id``): only a force-close rejects it."""
    chan = cm._channel_for_peer(channel_id, counterparty_node_id)
    if chan.phase is ChannelPhase.UnacceptedInbound:
        raise APIError.ChannelUnavailable(
            f"Channel with id {channel_id} not found for the passed counterparty node_id {counterparty_node_id}")
    if not chan.is_funded():
        force_close_channel(cm, chan, ClosureReason.HolderForceClosed(False), broadcast=False)
        return
    if chan.phase is ChannelPhase.ShuttingDown:
        # LDK's Channel::get_shutdown: our shutdown is sent (we answer the peer's at once, as Channel::shutdown
        # does), so its first check is met whoever began; its "... by remote" is never reached here.
        raise APIError.APIMisuseError("Shutdown already in progress")
    if counterparty_node_id not in cm.peers:
        raise APIError.ChannelUnavailable("Cannot begin shutdown while peer is disconnected or we're waiting on a "
                                          "monitor update, maybe force-close instead?")
    chan.locally_initiated_shutdown = True
    _begin_shutdown(cm, chan)


def _begin_shutdown(cm: ChannelManager, chan: Channel) -> None:
    chan.phase = ChannelPhase.ShuttingDown
    chan.shutdown_scriptpubkey = cm.keys_manager.get_shutdown_scriptpubkey()
    cm._send(chan.counterparty_node_id, msgs.Shutdown(chan.channel_id, chan.shutdown_scriptpubkey))
    cm._changed()


def internal_shutdown(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.Shutdown) -> None:
    chan = cm._find_channel(counterparty_node_id, msg.channel_id)
    if chan is None or chan.phase is ChannelPhase.Closed:
        return
    chan.counterparty_shutdown_scriptpubkey = msg.scriptpubkey
    if chan.phase is not ChannelPhase.ShuttingDown:
        _begin_shutdown(cm, chan)
    maybe_closing_signed(cm, chan)


def maybe_closing_signed(cm: ChannelManager, chan: Channel) -> None:
    """Once both shutdowns are exchanged and no HTLC is in flight, the opener proposes the fee."""
    if (
        chan.phase is ChannelPhase.ShuttingDown
        and chan.is_outbound
        and chan.shutdown_scriptpubkey is not None
        and chan.counterparty_shutdown_scriptpubkey is not None
        and not chan.pending_inbound_htlcs
        and not chan.pending_outbound_htlcs
    ):
        fee = cm._feerate(ConfirmationTarget.ChannelCloseMinimum) * 672 // 1000
        cm._send(chan.counterparty_node_id, msgs.ClosingSigned(chan.channel_id, fee))
        _finish_coop_close(cm, chan, fee)


def internal_closing_signed(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.ClosingSigned) -> None:
    chan = cm._find_channel(counterparty_node_id, msg.channel_id)
    if chan is None or chan.phase is not ChannelPhase.ShuttingDown:
        return
    _finish_coop_close(cm, chan, msg.fee_satoshis)


def _finish_coop_close(cm: ChannelManager, chan: Channel, fee_sat: int) -> None:
    """Build the closing transaction (the opener pays the fee); the opener broadcasts it."""
    ours = chan.value_to_self_msat // 1000
    theirs = chan.value_to_remote_msat() // 1000
    if chan.is_outbound:
        ours -= fee_sat
    else:
        theirs -= fee_sat
    outputs = [(chan.shutdown_scriptpubkey, ours), (chan.counterparty_shutdown_scriptpubkey, theirs)]
    closing_tx = cm.chain_monitor.build_closing_tx(chan, outputs)
    if chan.is_outbound:
        cm.tx_broadcaster.broadcast_transactions([closing_tx])
    reason = (
        ClosureReason.LocallyInitiatedCooperativeClosure()
        if chan.locally_initiated_shutdown
        else ClosureReason.CounterpartyInitiatedCooperativeClosure()
    )
    closed(cm, chan, reason)


# --- force close ------------------------------------------------------------------------------------


def force_close_sending_error(
    cm: ChannelManager, channel_id: ChannelId, peer: PublicKey, message: str, broadcast: bool
) -> None:
    """LDK's ``force_close_sending_error``: tell the peer why, then close (or refuse a channel request)."""
    chan = cm._channel_for_peer(channel_id, peer)
    cm._send(peer, msgs.ErrorMessage(chan.channel_id, message))
    if chan.phase is ChannelPhase.UnacceptedInbound:
        del cm.channels[channel_id]  # a rejected request: no ChannelClosed, as in LDK
        cm._log(f"Rejected inbound channel request {channel_id} from {peer}: {message}")
        cm._changed()
        return
    force_close_channel(cm, chan, ClosureReason.HolderForceClosed(broadcast), broadcast)


def closed_on_chain(cm: ChannelManager, chan: Channel, block: Any) -> bool:
    """Mirrors ``Channel::transactions_confirmed``: a transaction in ``block`` spending the open channel's funding
    output ("Detected channel-closing tx") closes it, ``ClosureReason::CommitmentTxConfirmed``. The manager sees it
    itself: no ``MonitorEvent`` carries that news in LDK 0.1. True if it closed."""
    if not any(txin.previous_output == chan.funding_txo for tx in block.txdata for txin in tx.input):
        return False
    closed(cm, chan, ClosureReason.CommitmentTxConfirmed())
    return True


def force_close_channel(cm: ChannelManager, chan: Channel, reason: ClosureReason, broadcast: bool) -> None:
    """Close now; a funded channel's monitor broadcasts our commitment unless we chose not to (only
    ``force_close_without_broadcasting_txn`` does not)."""
    if not chan.is_funded():
        close_unfunded(cm, chan, reason)
        return
    if broadcast:
        cm.chain_monitor.broadcast_latest_holder_commitment(chan)
    closed(cm, chan, reason)


def handle_error(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.ErrorMessage) -> None:
    """LDK's ``handle_error``: the peer gave up on a channel, or on every channel with us (the zero channel id).
    A refused proposal of ours is first proposed again with fewer features."""
    if msg.channel_id == ChannelId(bytes(32)):
        for chan in [c for c in cm.channels.values() if c.counterparty_node_id == counterparty_node_id]:
            _closed_by_peer(cm, chan, msg.data)
        return
    chan = cm._find_channel(counterparty_node_id, msg.channel_id)
    if chan is None or _downgrade_and_reopen(cm, chan):
        return
    _closed_by_peer(cm, chan, msg.data)


def _closed_by_peer(cm: ChannelManager, chan: Channel, peer_msg: str) -> None:
    """LDK's ``force_close_channel_with_peer`` with the peer's message: a request not yet accepted is dropped
    (no event); a channel closes (``CounterpartyForceClosed``), a funded one broadcasting our commitment."""
    if chan.phase is ChannelPhase.Closed:
        return
    if chan.phase is ChannelPhase.UnacceptedInbound:
        del cm.channels[chan.channel_id]
        return
    force_close_channel(cm, chan, ClosureReason.CounterpartyForceClosed(peer_msg), broadcast=True)


def _downgrade_and_reopen(cm: ChannelManager, chan: Channel) -> bool:
    """LDK's ``maybe_downgrade_channel_features``: a refused ``open_channel`` is proposed again with
    one feature fewer (anchors first), until only ``static_remote_key`` is left. True if it was. (Only our
    proposals not yet accepted are kept in ``_open_channel_msgs``: any other channel is not downgraded.)"""
    features = ChannelTypeFeatures
    kind = chan.channel_type
    if kind == features.only_static_remote_key() or chan.channel_id not in cm._open_channel_msgs:
        return False
    feerate = cm._open_channel_msgs[chan.channel_id].feerate_per_kw
    if kind.supports_anchors_zero_fee_htlc_tx():
        kind = features(kind.bits & ~(0b11 << features.ANCHORS_ZERO_FEE_HTLC_TX))
        feerate = cm._feerate(ConfirmationTarget.NonAnchorChannelFee)
    elif kind.supports_scid_privacy():
        kind = features(kind.bits & ~(0b11 << features.SCID_PRIVACY))
    else:
        kind = features.only_static_remote_key()
    chan.channel_type = kind
    retry = dataclasses.replace(cm._open_channel_msgs[chan.channel_id], channel_type=kind, feerate_per_kw=feerate)
    cm._open_channel_msgs[chan.channel_id] = retry
    cm._log(f"Peer refused channel {chan.channel_id}; proposing it again as {kind}")
    cm._send(chan.counterparty_node_id, retry)
    return True


# --- the close itself -------------------------------------------------------------------------------


def close_unfunded(cm: ChannelManager, chan: Channel, reason: ClosureReason) -> None:
    """Close a channel that never got funded: ChannelClosed, and DiscardFunding if we built a tx.

    Once its funding transaction was generated, LDK's channel has its funding outpoint and its real id
    (``get_funding_created``): both events name that id, and ChannelClosed the outpoint."""
    # (A request never accepted is dropped by its callers, with no ChannelClosed, as in LDK.)
    # Our open_channel, kept to propose it again: forgetting it for a channel that is gone changes nothing seen.
    cm._open_channel_msgs.pop(chan.channel_id, None)  # pragma: no mutate
    del cm.channels[chan.channel_id]
    txo = chan.funding_txo
    channel_id = ChannelId.v1_from_funding_outpoint(txo.txid, txo.vout) if txo is not None else chan.channel_id
    cm._queue_event(Event.ChannelClosed(
        channel_id=channel_id, user_channel_id=chan.user_channel_id, reason=reason,
        counterparty_node_id=chan.counterparty_node_id, channel_capacity_sats=chan.channel_value_satoshis,
        channel_funding_txo=txo, last_local_balance_msat=chan.holder_balance_msat(),
    ))
    if chan.funding_transaction is not None:
        cm._queue_event(Event.DiscardFunding(channel_id, FundingInfo.Tx(chan.funding_transaction)))
    if cm.funding_batches:
        _close_rest_of_batch(cm, chan)


def close_batch_member(cm: ChannelManager, chan: Channel, reason: ClosureReason) -> None:
    """Close a channel whose funding transaction was never broadcast (LDK's ``force_shutdown(false, ..)``): its
    ChannelClosed, then DiscardFunding, signed by its peer or not."""
    if not chan.is_funded():
        close_unfunded(cm, chan, reason)
        return
    closed(cm, chan, reason)
    cm._queue_event(Event.DiscardFunding(chan.channel_id, FundingInfo.Tx(chan.funding_transaction)))


def _close_rest_of_batch(cm: ChannelManager, chan: Channel) -> None:
    """LDK's ``finish_close_channel``: a channel of a funding batch not yet broadcast closes the others too
    (``FundingBatchClosure``)."""
    txo = chan.funding_txo
    batch = cm.funding_batches.pop(txo.txid, None) if txo is not None else None
    for other in batch or ():
        if other is not chan and other.phase is not ChannelPhase.Closed and other.channel_id in cm.channels:
            close_batch_member(cm, other, ClosureReason.FundingBatchClosure())


def closed(cm: ChannelManager, chan: Channel, reason: ClosureReason) -> None:
    """A funded channel is closing: raise ChannelClosed and settle its HTLCs."""
    channel_gossip.announce(cm, chan, enabled=False)
    chan.phase = ChannelPhase.Closed
    cm._queue_event(Event.ChannelClosed(
        channel_id=chan.channel_id, user_channel_id=chan.user_channel_id, reason=reason,
        counterparty_node_id=chan.counterparty_node_id, channel_capacity_sats=chan.channel_value_satoshis,
        channel_funding_txo=chan.funding_txo, last_local_balance_msat=chan.holder_balance_msat(),
    ))
    # Inbound HTLCs not yet forwarded or claimed fail back now; outbound ones resolve on chain.
    for htlc in list(chan.pending_inbound_htlcs.values()):
        cm.claimable.pop(htlc.payment_hash, None)
    if cm.funding_batches:
        _close_rest_of_batch(cm, chan)
    cm._changed()
