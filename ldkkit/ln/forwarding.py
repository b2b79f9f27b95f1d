"""Forwarding HTLCs to the next hop, holding intercepted ones, and failing HTLCs back.

Mirrors the forwarding half of ``lightning::ln::channelmanager`` in LDK 0.1, which LDK
keeps in channelmanager.rs: ``internal_update_add_htlc``, ``process_pending_htlc_forwards``
(and the ``PendingHTLCsForwardable`` event that asks for it), intercepted HTLCs
(``get_intercept_scid``, ``forward_intercepted_htlc``, ``fail_intercepted_htlc``) and
``fail_htlc_backwards_internal`` with BOLT 4's failure codes.

The queues live on the ChannelManager (``forward_htlcs``, ``fail_backs``, ``intercepted``),
as in LDK. Each function takes the manager; its caller holds the manager's lock.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Optional

from ..chain.chainmonitor import HTLC_FAIL_BACK_BUFFER
from ..errors import APIError
from ..events import Event, HTLCDestination
from ..ln import msgs
from ..ln.channel import Channel, ChannelPhase, HTLCPreviousHop, HTLCState, InboundHTLC, OutboundHTLC
from ..ser import Record
from ..types import ChannelId, InterceptId, PaymentPreimage, PublicKey
from . import claimable_payments
from .channel_close import maybe_closing_signed

if TYPE_CHECKING:
    from .channelmanager import ChannelManager

#: LDK's ``MIN_HTLC_RELAY_HOLDING_CELL_MILLIS``: the ``time_forwardable`` of PendingHTLCsForwardable.
MIN_HTLC_RELAY_HOLDING_CELL_MILLIS = 100

# BOLT 4 failure codes
PERM, NODE, UPDATE = 0x4000, 0x2000, 0x1000
INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15
UNKNOWN_NEXT_PEER = PERM | 10
TEMPORARY_CHANNEL_FAILURE = UPDATE | 7
FEE_INSUFFICIENT = UPDATE | 12
INCORRECT_CLTV_EXPIRY = UPDATE | 13
FINAL_INCORRECT_CLTV_EXPIRY = 18
FINAL_INCORRECT_HTLC_AMOUNT = 19
MPP_TIMEOUT = 23
PERMANENT_CHANNEL_FAILURE = PERM | 8
REQUIRED_NODE_FEATURE_MISSING = PERM | NODE | 3


class PendingForward(Record):
    """An HTLC that arrived and waits for ``process_pending_htlc_forwards``."""

    channel_id: ChannelId
    htlc_id: int


class PendingFailBack(Record):
    """An HTLC to fail back to the node that sent it, once forwards are processed."""

    channel_id: ChannelId
    htlc_id: int
    reason: msgs.FailureOnion
    destination: HTLCDestination


# --- HTLCs arriving -------------------------------------------------------------------------------


def internal_update_add_htlc(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.UpdateAddHTLC) -> None:
    """LDK's ``internal_update_add_htlc``: take the HTLC in, and check its onion at once
    (``decode_update_add_htlc_onion``, ``construct_pending_htlc_status``). One that fails those checks is failed back
    with no event (LDK stores it resolved as failed, and sends the failure with its next commitment update); the rest
    wait for the next processing, which decides where they go."""
    chan = cm._find_channel(counterparty_node_id, msg.channel_id)
    if chan is None or chan.phase not in (ChannelPhase.Ready, ChannelPhase.ShuttingDown):
        return
    chan.next_counterparty_htlc_id = msg.htlc_id + 1
    htlc = InboundHTLC(msg.htlc_id, msg.amount_msat, msg.payment_hash, msg.cltv_expiry, msg.onion,
                       HTLCState.Committed, msg.skimmed_fee_msat)
    chan.pending_inbound_htlcs[msg.htlc_id] = htlc
    failure = _refused_on_arrival(cm, htlc)
    if failure is not None:
        code, scid = failure
        _fail_back_now(cm, chan.channel_id, htlc.htlc_id, msgs.FailureOnion(cm._our_node_id, code, scid,
                                                                            bool(code & PERM)))
        return
    cm.forward_htlcs.append(PendingForward(chan.channel_id, msg.htlc_id))
    forwardable(cm)


def _refused_on_arrival(cm: ChannelManager, htlc: InboundHTLC) -> Optional[tuple[int, Optional[int]]]:
    """The BOLT 4 code an HTLC is failed with as it arrives, and the channel blamed, or None. A forward: LDK's
    ``can_forward_htlc`` (a next channel we know, live, whose fee and CLTV delta it pays); a payment to us:
    ``create_recv_pending_htlc_info`` (its CLTV, an expiry too soon, its amount, a secret or a keysend preimage).
    Whether the next channel has room, and whether the payment is one of ours, are asked on processing."""
    if not htlc.onion.hops:
        return claimable_payments.refused_on_arrival(cm, htlc)
    hop = htlc.onion.hops[0]
    scid = hop.short_channel_id
    out_chan = cm._channel_by_scid(scid)
    if out_chan is None:
        intercepted = scid in cm.intercept_scids and cm.config.accept_intercept_htlcs
        return None if intercepted else (UNKNOWN_NEXT_PEER, scid)
    fee_needed = (out_chan.forwarding_fee_base_msat
                  + hop.amt_to_forward * out_chan.forwarding_fee_proportional_millionths // 1_000_000)
    if not cm._is_usable(out_chan):
        return TEMPORARY_CHANNEL_FAILURE, scid
    if htlc.amount_msat - hop.amt_to_forward < fee_needed:
        return FEE_INSUFFICIENT, scid
    if htlc.cltv_expiry - hop.outgoing_cltv_value < out_chan.cltv_expiry_delta:
        return INCORRECT_CLTV_EXPIRY, scid
    return None


def forwardable(cm: ChannelManager) -> None:
    """Ask the handler to call process_pending_htlc_forwards, once per batch as LDK does."""
    if not cm._pending_forwardable_event:
        cm._pending_forwardable_event = True
        cm._queue_event(Event.PendingHTLCsForwardable(timedelta(milliseconds=MIN_HTLC_RELAY_HOLDING_CELL_MILLIS)))
    cm._changed()


def process_pending_htlc_forwards(cm: ChannelManager) -> None:
    """Forward, receive or fail back every HTLC waiting since the last call, in the order they came."""
    cm._pending_forwardable_event = False
    forwards, cm.forward_htlcs = cm.forward_htlcs, []
    fail_backs, cm.fail_backs = cm.fail_backs, []
    released, cm._released_intercepts = cm._released_intercepts, []
    for fwd in forwards:
        _process_one_forward(cm, fwd)
    for fwd, out_channel_id, amount_msat in released:
        _forward_released(cm, fwd, out_channel_id, amount_msat)
    for fail in fail_backs:
        _fail_back_now(cm, fail.channel_id, fail.htlc_id, fail.reason)


def _process_one_forward(cm: ChannelManager, fwd: PendingForward) -> None:
    # A funded channel is kept, closed or not, and its HTLC stays until this processing settles it.
    chan = cm.channels[fwd.channel_id]
    htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
    if not htlc.onion.hops:
        claimable_payments.receive(cm, chan, htlc)
        return
    hop = htlc.onion.hops[0]
    # The scid the sender's route asked for: a failure blames it (LDK's sender reads the failing hop's next
    # channel from its route, onion_utils::process_onion_failure).
    scid = hop.short_channel_id
    if scid in cm.intercept_scids and cm.config.accept_intercept_htlcs:
        # Any id unique to the HTLC serves (LDK hashes the onion's shared secret, not modelled).
        htlc_key = bytes(chan.channel_id) + fwd.htlc_id.to_bytes(8, "big")  # pragma: no mutate
        intercept_id = InterceptId(hashlib.sha256(htlc_key).digest())
        cm.intercepted[intercept_id] = fwd
        cm._queue_event(Event.HTLCIntercepted(
            intercept_id, scid, htlc.payment_hash, htlc.amount_msat, hop.amt_to_forward
        ))
        return
    out_chan = cm._channel_by_scid(scid)
    if out_chan is None:  # (closed since the HTLC arrived)
        fail_inbound(cm, chan, htlc, UNKNOWN_NEXT_PEER, scid, HTLCDestination.UnknownNextHop(scid))
        return
    # Its fee and CLTV delta were checked as it arrived: now, whether the next channel can take it (LDK's
    # forward_htlcs processing). A failure raises HTLCHandlingFailed naming the next channel.
    if cm._is_usable(out_chan) and hop.amt_to_forward <= out_chan.next_outbound_htlc_limit_msat():
        _send_on(cm, chan, htlc, out_chan, hop.amt_to_forward)
        return
    next_hop = HTLCDestination.NextHopChannel(out_chan.counterparty_node_id, out_chan.channel_id)
    fail_inbound(cm, chan, htlc, TEMPORARY_CHANNEL_FAILURE, scid, next_hop)


def _send_on(
    cm: ChannelManager, chan: Channel, htlc: InboundHTLC, out_chan: Channel, amount_msat: int,
    skimmed_fee_msat: Optional[int] = None,
) -> None:
    """Offer the HTLC on ``out_chan``, its onion peeled of our hop, remembering where it came from."""
    previous = HTLCPreviousHop(chan.channel_id, htlc.htlc_id, htlc.amount_msat, chan.counterparty_node_id)
    cm._add_outbound_htlc(out_chan, amount_msat, htlc.payment_hash, htlc.onion.hops[0].outgoing_cltv_value,
                          msgs.Onion(htlc.onion.hops[1:], htlc.onion.final), previous_hop=previous, route=None,
                          skimmed_fee_msat=skimmed_fee_msat)


def claim_previous_hop(
    cm: ChannelManager, chan: Channel, htlc: OutboundHTLC, preimage: PaymentPreimage, on_chain: bool
) -> None:
    """LDK's ``claim_funds_internal`` for a forward (``claim_funds_from_hop``, ``claim_mpp_part``): a forwarded
    HTLC was fulfilled, so claim the one it came in on and raise ``PaymentForwarded``.

    As LDK: on a channel still open the claim earns ``total_fee_earned_msat`` (in - out), and claiming an HTLC no
    longer pending there (``DuplicateClaim``) raises nothing. On a channel closed meanwhile (gone from LDK's
    ``channel_by_id``) the preimage goes to its monitor and the event comes at once with the fee None: the on-chain
    fee is still unknown (LDK's doc: only then may the event be duplicated). ``skimmed_fee_msat`` is what the
    outbound HTLC held back (``update_fulfill_htlc`` returns it with the HTLC's source); a claim seen on chain
    (``MonitorEvent::HTLCEvent``) knows neither it nor the next channel's ``user_channel_id``, and its amount is
    in whole satoshis (``htlc_value_satoshis``)."""
    prev = htlc.previous_hop
    prev_chan = cm.channels[prev.channel_id]  # a funded channel is kept, closed or not
    inbound = prev_chan.pending_inbound_htlcs.get(prev.htlc_id)
    forwarded = htlc.amount_msat // 1000 * 1000 if on_chain else htlc.amount_msat
    if prev_chan.phase is ChannelPhase.Closed:
        fee = None
        if inbound is not None:  # (claiming it on chain by its preimage is not modelled)
            del prev_chan.pending_inbound_htlcs[prev.htlc_id]
    elif inbound is None:
        return
    else:
        cm._fulfill_inbound(prev_chan, inbound, preimage)
        fee = inbound.amount_msat - forwarded
    cm._queue_event(Event.PaymentForwarded(
        prev_channel_id=prev.channel_id,
        next_channel_id=chan.channel_id,
        prev_user_channel_id=prev_chan.user_channel_id,
        next_user_channel_id=None if on_chain else chan.user_channel_id,
        prev_node_id=prev.counterparty_node_id,
        next_node_id=chan.counterparty_node_id,
        total_fee_earned_msat=fee,
        skimmed_fee_msat=None if on_chain else htlc.skimmed_fee_msat,
        claim_from_onchain_tx=on_chain,
        outbound_amount_forwarded_msat=forwarded,
    ))


# --- interception ---------------------------------------------------------------------------------


def get_intercept_scid(cm: ChannelManager) -> int:
    """A fake scid: an HTLC sent over it raises HTLCIntercepted instead of failing (if the config allows)."""
    # Any fresh random scid serves (LDK encodes a namespace in it, not modelled).
    scid = int.from_bytes(cm._random_bytes()[:5], "big")  # pragma: no mutate
    cm.intercept_scids.add(scid)
    return scid


def forward_intercepted_htlc(
    cm: ChannelManager, intercept_id: InterceptId, next_hop_channel_id: ChannelId, next_node_id: PublicKey,
    amt_to_forward_msat: int,
) -> None:
    """Release an intercepted HTLC onto a real channel, for the next processing to send. As LDK, the channel is
    checked first (usable: ready and not shutting down, the peer online or not), then the intercept id."""
    out_chan = cm._channel_for_peer(next_hop_channel_id, next_node_id)
    if out_chan.phase is ChannelPhase.UnacceptedInbound:  # LDK keeps requests apart: not a channel yet
        raise APIError.ChannelUnavailable(
            f"Channel with id {next_hop_channel_id} not found for the passed counterparty node_id {next_node_id}")
    if not out_chan.is_funded():
        raise APIError.ChannelUnavailable(f"Channel with id {next_hop_channel_id} for the passed counterparty "
                                          f"node_id {next_node_id} is still opening.")
    if not out_chan.is_usable():
        raise APIError.ChannelUnavailable(f"Channel with id {next_hop_channel_id} not fully established")
    fwd = cm.intercepted.pop(intercept_id, None)
    if fwd is None:
        raise APIError.APIMisuseError(f"Payment with intercept id {intercept_id} not found")
    # LDK puts it in forward_htlcs: it goes out on the next process_pending_htlc_forwards.
    cm._released_intercepts.append((fwd, out_chan.channel_id, amt_to_forward_msat))
    forwardable(cm)


def _forward_released(cm: ChannelManager, fwd: PendingForward, out_channel_id: ChannelId, amount_msat: int) -> None:
    """Send a released HTLC on, or fail it back as LDK's ``process_pending_htlc_forwards`` does: a channel
    closed meanwhile is unknown (``UnknownNextHop``, its scid); one that cannot carry it now, a temporary
    failure (``NextHopChannel``)."""
    chan = cm.channels[fwd.channel_id]
    htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
    out_chan = cm.channels[out_channel_id]  # a funded channel is kept, closed or not
    requested = htlc.onion.hops[0].short_channel_id
    if out_chan.phase is ChannelPhase.Closed:
        unknown = HTLCDestination.UnknownNextHop(out_chan.get_outbound_payment_scid())
        fail_inbound(cm, chan, htlc, UNKNOWN_NEXT_PEER, requested, unknown)
        return
    if not cm._is_usable(out_chan) or amount_msat > out_chan.next_outbound_htlc_limit_msat():
        next_hop = HTLCDestination.NextHopChannel(out_chan.counterparty_node_id, out_chan.channel_id)
        fail_inbound(cm, chan, htlc, TEMPORARY_CHANNEL_FAILURE, requested, next_hop)
        return
    # LDK's forward_intercepted_htlc: what the onion asked to forward, less what is forwarded, is skimmed (None if
    # nothing); the next hop sees it in update_add_htlc and our PaymentForwarded reports it.
    skimmed = max(htlc.onion.hops[0].amt_to_forward - amount_msat, 0)
    _send_on(cm, chan, htlc, out_chan, amount_msat, skimmed or None)


def fail_expired_intercepts(cm: ChannelManager, height: int) -> None:
    """LDK's ``best_block_updated``: an intercepted HTLC still held ``HTLC_FAIL_BACK_BUFFER`` blocks before its
    outgoing expiry is failed back (temporary_node_failure, ``InvalidForward`` naming the intercept scid); a
    ``forward_intercepted_htlc`` for it then finds it no more ("was not handled in time")."""
    for intercept_id, fwd in list(cm.intercepted.items()):
        chan = cm.channels[fwd.channel_id]
        htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
        hop = htlc.onion.hops[0]
        if height >= hop.outgoing_cltv_value - HTLC_FAIL_BACK_BUFFER:
            del cm.intercepted[intercept_id]
            scid = hop.short_channel_id
            fail_inbound(cm, chan, htlc, NODE | 2, scid, HTLCDestination.InvalidForward(scid))


def fail_intercepted_htlc(cm: ChannelManager, intercept_id: InterceptId) -> None:
    """Fail an intercepted HTLC back as unknown_next_peer, as if the fake scid led nowhere."""
    fwd = cm.intercepted.pop(intercept_id, None)
    if fwd is None:
        raise APIError.APIMisuseError(f"Payment with intercept id {intercept_id} not found")
    chan = cm.channels[fwd.channel_id]
    htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
    scid = htlc.onion.hops[0].short_channel_id
    fail_inbound(cm, chan, htlc, UNKNOWN_NEXT_PEER, scid, HTLCDestination.UnknownNextHop(scid))


# --- failing back ---------------------------------------------------------------------------------


def fail_inbound(
    cm: ChannelManager, chan: Channel, htlc: InboundHTLC, code: int, scid: Optional[int],
    destination: HTLCDestination,
) -> None:
    """Fail an inbound HTLC back: queued for the next process_pending_htlc_forwards, as LDK does. ``scid``, the
    channel the sender's route asked for, is blamed: for good (the PERM bit) or for now."""
    reason = msgs.FailureOnion(cm._our_node_id, code, scid, bool(code & PERM))
    queue_fail_back(cm, PendingFailBack(chan.channel_id, htlc.htlc_id, reason, destination))


def queue_fail_back(cm: ChannelManager, fail: PendingFailBack) -> None:
    """LDK's ``fail_htlc_backwards_internal``: ``HTLCHandlingFailed`` now, then a new
    ``PendingHTLCsForwardable``; the ``update_fail_htlc`` goes out on the next processing."""
    cm.fail_backs.append(fail)
    cm._queue_event(Event.HTLCHandlingFailed(fail.channel_id, fail.destination))
    forwardable(cm)


def _fail_back_now(cm: ChannelManager, channel_id: ChannelId, htlc_id: int, reason: msgs.FailureOnion) -> None:
    """Send the ``update_fail_htlc``; on a closed channel the HTLC is only dropped."""
    chan = cm.channels.get(channel_id)
    if chan is None or htlc_id not in chan.pending_inbound_htlcs:
        return
    del chan.pending_inbound_htlcs[htlc_id]
    if chan.phase is not ChannelPhase.Closed:
        cm._send(chan.counterparty_node_id, msgs.UpdateFailHTLC(chan.channel_id, htlc_id, reason))
        cm.chain_monitor.channel_updated(chan)
    maybe_closing_signed(cm, chan)
