"""Opening a channel: from ``open_channel`` to ``ChannelReady``.

Mirrors the channel-establishment half of ``lightning::ln::channelmanager`` in LDK 0.1
(BOLT 2's "Channel Establishment"), which LDK keeps in channelmanager.rs and channel.rs:
proposing a channel (``create_channel``) and answering one (``internal_open_channel``,
``OpenChannelRequest``, ``do_accept_inbound_channel``), the funding transaction
(``FundingGenerationReady``, ``funding_transaction_generated_intern``,
``internal_funding_created``, ``internal_funding_signed``, ``ChannelPending``), then
``channel_ready`` once the funding is deep enough (``ChannelReady``), and the timer that
drops what was never accepted or funded.

Each function takes the ChannelManager; its caller holds the manager's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction
from ..chain.chaininterface import FEERATE_FLOOR_SATS_PER_KW, ConfirmationTarget
from ..config import UserConfig
from ..errors import APIError
from ..events import ClosureReason, Event, InboundChannelFunds
from ..ln import channel_gossip, msgs
from ..ln.chan_utils import make_funding_redeemscript
from ..ln.channel import (
    ANCHOR_OUTPUT_VALUE_SATOSHI,
    BREAKDOWN_TIMEOUT,
    COMMITMENT_TX_BASE_ANCHOR_WEIGHT,
    COMMITMENT_TX_BASE_WEIGHT,
    COMMITMENT_TX_WEIGHT_PER_HTLC,
    FUNDING_CONF_DEADLINE_BLOCKS,
    MAX_FUNDING_SATOSHIS_NO_WUMBO,
    MIN_CHAN_DUST_LIMIT_SATOSHIS,
    TOTAL_BITCOIN_SUPPLY_SATOSHIS,
    UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS,
    UNFUNDED_CHANNEL_AGE_LIMIT_TICKS,
    Channel,
    ChannelPhase,
    HTLCUpdateAwaitingACK,
    holder_selected_channel_reserve_satoshis,
)
from ..types import ChannelId, ChannelTypeFeatures, PublicKey, Txid
from .channel_close import close_batch_member, close_unfunded, force_close_channel

if TYPE_CHECKING:
    from .channelmanager import ChannelManager

#: LDK's ``MAX_UNFUNDED_CHANNEL_PEERS``.
MAX_UNFUNDED_CHANNEL_PEERS = 50
#: What LDK tells a peer it refuses for that limit.
TOO_MANY_UNFUNDED_PEERS = "Have too many peers with unfunded channels, not accepting new ones"


#: LDK's ``MIN_AFFORDABLE_HTLC_COUNT``: the HTLCs an opener's balance must pay the commitment's fee for, at the least.
MIN_AFFORDABLE_HTLC_COUNT = 4


# --- proposing and accepting ------------------------------------------------------------------------


def _check_affordable(cm: ChannelManager, value_to_self_msat: int, channel_type: ChannelTypeFeatures) -> None:
    """``OutboundV1Channel::new``'s last check: what the opener keeps, less its anchors, pays the first commitment's
    fee with room for ``MIN_AFFORDABLE_HTLC_COUNT`` HTLCs (``commit_tx_fee_sat``, at the bounded feerate)."""
    anchors = channel_type.supports_anchors_zero_fee_htlc_tx()
    target = ConfirmationTarget.AnchorChannelFee if anchors else ConfirmationTarget.NonAnchorChannelFee
    weight = (COMMITMENT_TX_BASE_ANCHOR_WEIGHT if anchors else COMMITMENT_TX_BASE_WEIGHT) \
        + MIN_AFFORDABLE_HTLC_COUNT * COMMITMENT_TX_WEIGHT_PER_HTLC
    fee_msat = max(cm._feerate(target), FEERATE_FLOOR_SATS_PER_KW) * weight // 1000 * 1000
    anchors_msat = 2 * ANCHOR_OUTPUT_VALUE_SATOSHI * 1000 if anchors else 0
    if max(0, value_to_self_msat - anchors_msat) < fee_msat:
        raise APIError.APIMisuseError(f"Funding amount ({value_to_self_msat // 1000}) can't even pay fee for initial "
                                      f"commitment transaction fee of {fee_msat // 1000}.")


def create_channel(
    cm: ChannelManager, their_network_key: PublicKey, channel_value_satoshis: int, push_msat: int,
    user_channel_id: int, temporary_channel_id: Optional[ChannelId], override_config: Optional[UserConfig],
) -> ChannelId:
    """Check the proposal, then send ``open_channel``; returns the temporary channel id. LDK's checks, in its order:
    ``create_channel``'s, then ``OutboundV1Channel::new``'s (no wumbo limit: every peer here is an LDK node, which
    supports large channels)."""
    if channel_value_satoshis < 1000:
        raise APIError.APIMisuseError(f"Channel value must be at least 1000 satoshis. It was {channel_value_satoshis}")
    if their_network_key not in cm.peers:
        raise APIError.APIMisuseError(f"Not connected to node: {their_network_key}")
    config = override_config or cm.config
    tcid = temporary_channel_id or ChannelId(cm._random_bytes())
    if tcid in cm.channels:
        raise APIError.APIMisuseError(f"Channel with temporary channel ID {tcid} already exists!")
    if channel_value_satoshis >= TOTAL_BITCOIN_SUPPLY_SATOSHIS:
        raise APIError.APIMisuseError(
            f"funding_value must be smaller than the total bitcoin supply, it was {channel_value_satoshis}")
    if push_msat > channel_value_satoshis * 1000:
        raise APIError.APIMisuseError(
            f"Push value ({push_msat}) was larger than channel_value ({channel_value_satoshis * 1000})"
        )
    handshake = config.channel_handshake_config
    if handshake.our_to_self_delay < BREAKDOWN_TIMEOUT:
        raise APIError.APIMisuseError(f"Configured with an unreasonable our_to_self_delay "
                                      f"({handshake.our_to_self_delay}) putting user funds at risks")
    channel_type = (
        ChannelTypeFeatures.anchors_zero_htlc_fee_and_dependencies()
        if handshake.negotiate_anchors_zero_fee_htlc_tx
        else ChannelTypeFeatures.only_static_remote_key()
    )
    _check_affordable(cm, channel_value_satoshis * 1000 - push_msat, channel_type)
    chan = _new_channel(
        cm, tcid, their_network_key, True, user_channel_id, channel_value_satoshis, push_msat,
        channel_type, handshake.announce_for_forwarding, config,
    )
    chan.value_to_self_msat = channel_value_satoshis * 1000 - push_msat
    chan.phase = ChannelPhase.OutboundAwaitingAccept
    cm.channels[tcid] = chan
    keys = cm.keys_manager.derive_channel_keys(channel_value_satoshis, chan.channel_keys_id)
    open_channel = msgs.OpenChannel(
        tcid, channel_value_satoshis, push_msat, MIN_CHAN_DUST_LIMIT_SATOSHIS,
        chan.max_htlc_value_in_flight_msat, chan.holder_selected_channel_reserve_satoshis,
        handshake.our_htlc_minimum_msat, cm._feerate(ConfirmationTarget.AnchorChannelFee),
        handshake.our_to_self_delay, handshake.our_max_accepted_htlcs, keys.funding_pubkey,
        channel_type, handshake.announce_for_forwarding,
    )
    cm._open_channel_msgs[tcid] = open_channel  # sent again, downgraded, if the peer refuses it
    cm._send(their_network_key, open_channel)
    cm._log(f"Created outbound channel {tcid} with {their_network_key} for {channel_value_satoshis} sat")
    cm._changed()
    return tcid


def _new_channel(
    cm: ChannelManager, tcid: ChannelId, peer: PublicKey, outbound: bool, user_channel_id: int, value_sat: int,
    push_msat: int, channel_type: ChannelTypeFeatures, announced: bool, config: UserConfig,
) -> Channel:
    """LDK's ``ChannelContext::new_for_{outbound,inbound}_channel``: our side's parameters, from the config."""
    handshake = config.channel_handshake_config
    return Channel(
        temporary_channel_id=tcid, channel_id=tcid, counterparty_node_id=peer, is_outbound=outbound,
        user_channel_id=user_channel_id, channel_value_satoshis=value_sat, value_to_self_msat=0,
        push_msat=push_msat, channel_type=channel_type, is_announced=announced,
        phase=ChannelPhase.UnacceptedInbound,
        holder_selected_channel_reserve_satoshis=holder_selected_channel_reserve_satoshis(value_sat),
        counterparty_selected_channel_reserve_satoshis=0,
        holder_selected_contest_delay=handshake.our_to_self_delay,
        counterparty_selected_contest_delay=0,
        minimum_depth=handshake.minimum_depth,
        dust_limit_satoshis=MIN_CHAN_DUST_LIMIT_SATOSHIS,
        max_htlc_value_in_flight_msat=value_sat * 1000
        * handshake.max_inbound_htlc_value_in_flight_percent_of_channel // 100,
        counterparty_max_htlc_value_in_flight_msat=0,
        htlc_minimum_msat=handshake.our_htlc_minimum_msat,
        max_accepted_htlcs=handshake.our_max_accepted_htlcs,
        channel_keys_id=cm.keys_manager.generate_channel_keys_id(not outbound, value_sat, user_channel_id),
        counterparty_funding_pubkey=None, funding_output_script=None, funding_transaction=None,
        funding_txo=None, funding_height=None, short_channel_id=None, sent_channel_ready=False,
        received_channel_ready=False, pending_inbound_htlcs={}, pending_outbound_htlcs={},
        next_outbound_htlc_id=0, next_counterparty_htlc_id=0, shutdown_scriptpubkey=None,
        counterparty_shutdown_scriptpubkey=None, locally_initiated_shutdown=False, ticks_waiting=0,
        outbound_scid_alias=int.from_bytes(cm._random_bytes()[:8], "big") >> 16,
        forwarding_fee_base_msat=config.channel_config.forwarding_fee_base_msat,
        forwarding_fee_proportional_millionths=config.channel_config.forwarding_fee_proportional_millionths,
        cltv_expiry_delta=config.channel_config.cltv_expiry_delta,
    )


def internal_open_channel(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.OpenChannel) -> None:
    """A peer proposes a channel: accept it at once, or raise OpenChannelRequest if the config says to ask."""
    # Accepting at once, LDK refuses a peer with no channel yet while too many peers have only unfunded ones;
    # asked to accept, it checks in accept_inbound_channel instead.
    if (
        not cm.config.manually_accept_inbound_channels
        and not any(c.counterparty_node_id == counterparty_node_id for c in _open_channels(cm))
        and len(_peers_without_funded_channels(cm)) >= MAX_UNFUNDED_CHANNEL_PEERS
    ):
        cm._send(counterparty_node_id, msgs.ErrorMessage(msg.temporary_channel_id, TOO_MANY_UNFUNDED_PEERS))
        return
    if not cm.config.manually_accept_inbound_channels and _refused_funding(cm, counterparty_node_id, msg) is not None:
        return
    no_user_channel_id_yet = 0  # accepting sets it; a request is never seen with one  # pragma: no mutate
    chan = _new_channel(
        cm, msg.temporary_channel_id, counterparty_node_id, False, no_user_channel_id_yet, msg.funding_satoshis,
        msg.push_msat, msg.channel_type, msg.announce_channel, cm.config,
    )
    chan.value_to_self_msat = msg.push_msat
    chan.counterparty_selected_channel_reserve_satoshis = msg.channel_reserve_satoshis
    chan.counterparty_selected_contest_delay = msg.to_self_delay
    chan.counterparty_funding_pubkey = msg.funding_pubkey
    chan.counterparty_max_htlc_value_in_flight_msat = msg.max_htlc_value_in_flight_msat
    cm.channels[msg.temporary_channel_id] = chan
    if not cm.config.manually_accept_inbound_channels:
        user_channel_id = int.from_bytes(cm._random_bytes()[:16], "big")
        _accept(cm, chan, user_channel_id, zero_conf=False)
        return
    cm._queue_event(Event.OpenChannelRequest(
        temporary_channel_id=msg.temporary_channel_id,
        counterparty_node_id=counterparty_node_id,
        funding_satoshis=msg.funding_satoshis,
        channel_negotiation_type=InboundChannelFunds.PushMsat(msg.push_msat),
        channel_type=msg.channel_type,
        is_announced=msg.announce_channel,
        params=msgs.ChannelParameters(
            msg.dust_limit_satoshis, msg.max_htlc_value_in_flight_msat, msg.htlc_minimum_msat,
            msg.feerate_per_kw, msg.to_self_delay, msg.max_accepted_htlcs,
        ),
    ))


def do_accept_inbound_channel(
    cm: ChannelManager, tcid: ChannelId, peer: PublicKey, user_channel_id: int, zero_conf: bool
) -> None:
    """Accept a channel an OpenChannelRequest asked about; a zero-conf one only if trusted (``zero_conf``)."""
    cm._peer_or_raise(peer)
    chan = cm.channels.get(tcid)
    if chan is None or chan.counterparty_node_id != peer or chan.phase is not ChannelPhase.UnacceptedInbound:
        raise APIError.APIMisuseError("No such channel awaiting to be accepted.")
    refused = _refused_funding(cm, peer, chan)
    if refused is not None:  # (LDK's InboundV1Channel::new fails: the request is gone, the peer told why)
        del cm.channels[tcid]
        raise APIError.ChannelUnavailable(refused)
    if chan.channel_type.requires_zero_conf() and not zero_conf:
        del cm.channels[tcid]
        cm._send(peer, msgs.ErrorMessage(tcid, "No zero confirmation channels accepted"))
        raise APIError.APIMisuseError(
            "Please use accept_inbound_channel_from_trusted_peer_0conf to accept channels with zero confirmations."
        )
    unfunded = _peers_without_funded_channels(cm)  # this peer among them, its request counting
    if not zero_conf and peer in unfunded and len(unfunded) > MAX_UNFUNDED_CHANNEL_PEERS:
        del cm.channels[tcid]
        cm._send(peer, msgs.ErrorMessage(tcid, TOO_MANY_UNFUNDED_PEERS))
        raise APIError.APIMisuseError("Too many peers with unfunded channels, refusing to accept new ones")
    _accept(cm, chan, user_channel_id, zero_conf)


def _open_channels(cm: ChannelManager) -> list[Channel]:
    """LDK's channels and requests of each peer (a closed channel is gone from them)."""
    return [c for c in cm.channels.values() if c.phase is not ChannelPhase.Closed]


def _refused_funding(cm: ChannelManager, peer: PublicKey, proposal: msgs.OpenChannel | Channel) -> Optional[str]:
    """``InboundV1Channel::new``'s funding limit (``ChannelHandshakeLimits::max_funding_satoshis``, by default
    ``MAX_FUNDING_SATOSHIS_NO_WUMBO``), checked as a channel is accepted: why it refuses, told to the peer, or None."""
    funding = proposal.funding_satoshis if isinstance(proposal, msgs.OpenChannel) else proposal.channel_value_satoshis
    if funding <= MAX_FUNDING_SATOSHIS_NO_WUMBO:
        return None
    tcid = proposal.temporary_channel_id
    why = (f"Per our config, funding must be at most {MAX_FUNDING_SATOSHIS_NO_WUMBO}. It was {funding}. "
           f"Peer contribution: {funding}. Our contribution: 0")
    cm._send(peer, msgs.ErrorMessage(tcid, why))
    return why


def _peers_without_funded_channels(cm: ChannelManager) -> set[PublicKey]:
    """LDK's ``peers_without_funded_channels`` of the peers with a channel: those whose every channel counts in
    ``unfunded_channel_count``, an inbound one (or a request) not zero-conf whose funding has no confirmation."""
    by_peer: dict[PublicKey, list[Channel]] = {}
    for chan in _open_channels(cm):
        by_peer.setdefault(chan.counterparty_node_id, []).append(chan)
    return {
        peer for peer, chans in by_peer.items()
        if all(not c.is_outbound and not c.is_zero_conf() and c.funding_height is None for c in chans)
    }


def _accept(cm: ChannelManager, chan: Channel, user_channel_id: int, zero_conf: bool) -> None:
    chan.user_channel_id = user_channel_id
    chan.channel_keys_id = cm.keys_manager.generate_channel_keys_id(True, chan.channel_value_satoshis, user_channel_id)
    if zero_conf:
        chan.minimum_depth = 0
    chan.phase = ChannelPhase.InboundAwaitingFunding
    chan.ticks_waiting = 0
    keys = cm.keys_manager.derive_channel_keys(chan.channel_value_satoshis, chan.channel_keys_id)
    cm._send(chan.counterparty_node_id, msgs.AcceptChannel(
        chan.temporary_channel_id, chan.minimum_depth, chan.max_htlc_value_in_flight_msat,
        chan.holder_selected_channel_reserve_satoshis,
        chan.holder_selected_contest_delay, keys.funding_pubkey,
    ))
    cm._log(f"Accepted inbound channel {chan.temporary_channel_id} from {chan.counterparty_node_id}")
    cm._changed()


def internal_accept_channel(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.AcceptChannel) -> None:
    """The peer accepted our proposal: ask the handler for a funding transaction (FundingGenerationReady)."""
    chan = cm._find_channel(counterparty_node_id, msg.temporary_channel_id)
    if chan is None or chan.phase is not ChannelPhase.OutboundAwaitingAccept:
        return
    del cm._open_channel_msgs[chan.channel_id]  # kept from create_channel until now: accepted, never proposed again
    chan.counterparty_selected_channel_reserve_satoshis = msg.channel_reserve_satoshis
    chan.counterparty_selected_contest_delay = msg.to_self_delay
    chan.counterparty_funding_pubkey = msg.funding_pubkey
    chan.counterparty_max_htlc_value_in_flight_msat = msg.max_htlc_value_in_flight_msat
    chan.minimum_depth = msg.minimum_depth
    chan.funding_output_script = _funding_script(cm, chan)
    chan.phase = ChannelPhase.AwaitingFundingTx  # its age still counts from create_channel, as LDK's
    cm._queue_event(Event.FundingGenerationReady(
        temporary_channel_id=chan.temporary_channel_id,
        counterparty_node_id=counterparty_node_id,
        channel_value_satoshis=chan.channel_value_satoshis,
        output_script=chan.funding_output_script,
        user_channel_id=chan.user_channel_id,
    ))


def _funding_script(cm: ChannelManager, chan: Channel) -> ScriptBuf:
    """P2WSH of the 2-of-2 multisig of both funding keys, sorted as BOLT 3 says."""
    ours = cm.keys_manager.derive_channel_keys(chan.channel_value_satoshis, chan.channel_keys_id).funding_pubkey
    return ScriptBuf.new_p2wsh(make_funding_redeemscript(ours, chan.counterparty_funding_pubkey))


# --- funding --------------------------------------------------------------------------------------


def batch_funding_transaction_generated_intern(
    cm: ChannelManager, temporary_channels: Sequence[tuple[ChannelId, PublicKey]], funding_transaction: Transaction,
) -> None:
    """LDK's ``batch_funding_transaction_generated_intern``: check the transaction, then hand it to each channel in
    turn (``funding_transaction_generated_intern``). On the first error every channel of the batch closes
    (``ProcessingError``, the peer told "Failed to fund channel") and the error is raised. A batch of several is
    broadcast only once every peer has signed (``funding_batch_states``); an empty list does nothing."""
    if not isinstance(funding_transaction, Transaction):
        raise APIError.APIMisuseError(
            f"funding_transaction must be a Transaction, got {type(funding_transaction).__name__}; "
            "build one with Transaction(bytes.fromhex(signed_tx.hex))"
        )
    error = _funding_refusal(cm, funding_transaction)
    txid = funding_transaction.compute_txid()
    batch: Optional[list[Channel]] = None
    if len(temporary_channels) > 1:
        if txid in cm.funding_batches:
            error = error or APIError.APIMisuseError("Batch funding transaction with the same txid already exists")
        else:
            batch = cm.funding_batches[txid] = []
    for temporary_channel_id, counterparty_node_id in temporary_channels:
        if error is not None:
            break
        try:
            chan = _funding_transaction_generated(cm, temporary_channel_id, counterparty_node_id, funding_transaction)
        except APIError as e:
            error = e
        else:
            if batch is not None:
                batch.append(chan)
    if error is None:
        return
    # (LDK removes the batch state of this txid, even an earlier batch's, and each channel still under its id)
    doomed = cm.funding_batches.pop(txid, []) if len(temporary_channels) > 1 else []
    for tcid, peer in temporary_channels:
        chan = cm.channels.get(tcid)
        if chan is not None and chan.counterparty_node_id == peer and chan.phase in _TEMPORARY_ID_PHASES:
            doomed.append(chan)
    reason = ClosureReason.ProcessingError(f"Error in transaction funding: {error}")
    for chan in doomed:
        if chan.phase is not ChannelPhase.Closed and cm.channels.get(chan.channel_id) is chan:
            cm._send(chan.counterparty_node_id, msgs.ErrorMessage(_current_id(chan), "Failed to fund channel"))
            close_batch_member(cm, chan, reason)
    raise error


def _funding_transaction_generated(
    cm: ChannelManager, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey,
    funding_transaction: Transaction,
) -> Channel:
    """LDK's ``funding_transaction_generated_intern``: find the channel's output, send ``funding_created``."""
    chan = cm._channel_for_peer(temporary_channel_id, counterparty_node_id)
    if chan.phase is not ChannelPhase.AwaitingFundingTx:
        if chan.is_outbound or chan.phase is ChannelPhase.UnacceptedInbound:  # (LDK keeps requests apart)
            raise APIError.ChannelUnavailable(
                f"Channel with id {temporary_channel_id} not found for the passed counterparty node_id "
                f"{counterparty_node_id}"
            )
        raise APIError.APIMisuseError(f"Channel with id {temporary_channel_id} for the passed counterparty node_id "
                                      f"{counterparty_node_id} is not an unfunded, outbound V1 channel")
    matches = [
        i for i, out in enumerate(funding_transaction.output)
        if out.script_pubkey == chan.funding_output_script and out.value == chan.channel_value_satoshis
    ]
    if len(matches) != 1:
        err = (
            "No output matched the script_pubkey and value in the FundingGenerationReady event"
            if not matches
            else "Multiple outputs matched the expected script and value"
        )
        cm._send(counterparty_node_id, msgs.ErrorMessage(temporary_channel_id, err))
        close_unfunded(cm, chan, ClosureReason.ProcessingError(err))  # not handed over: no DiscardFunding
        raise APIError.APIMisuseError(err)
    txid = funding_transaction.compute_txid()
    chan.funding_transaction = funding_transaction
    chan.funding_txo = OutPoint(txid, matches[0])
    chan.phase = ChannelPhase.FundingCreatedSent
    cm._send(counterparty_node_id, msgs.FundingCreated(temporary_channel_id, txid, matches[0]))
    cm._changed()
    return chan


#: The phases in which LDK's ``channel_by_id`` still holds a channel under its temporary id.
_TEMPORARY_ID_PHASES = (ChannelPhase.OutboundAwaitingAccept, ChannelPhase.AwaitingFundingTx,
                        ChannelPhase.InboundAwaitingFunding)


def _current_id(chan: Channel) -> ChannelId:
    """The id LDK knows the channel by: its real one once the funding outpoint is known."""
    txo = chan.funding_txo
    return ChannelId.v1_from_funding_outpoint(txo.txid, txo.vout) if txo is not None else chan.channel_id


def _funding_refusal(cm: ChannelManager, tx: Transaction) -> Optional[APIError]:
    """The checks of LDK's ``batch_funding_transaction_generated_intern``, before any output is looked at."""
    if any(not txin.witness for txin in tx.input):
        return APIError.APIMisuseError("Funding transaction must be fully signed and spend Segwit outputs")
    if len(tx.output) > 0xFFFF:
        return APIError.APIMisuseError("Transaction had more than 2^16 outputs, which is not supported")
    # Final for mempools if its height lock is below the next block; one block of headroom, as LDK allows.
    if (not all(txin.sequence == 0xFFFFFFFF for txin in tx.input) and tx.lock_time < 500_000_000
            and tx.lock_time > cm.best_block_height + 1):
        return APIError.APIMisuseError("Funding transaction absolute timelock is non-final")
    return None


def internal_funding_created(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.FundingCreated) -> None:
    """The opener funded the channel we accepted: it is funded now (ChannelPending)."""
    chan = cm._find_channel(counterparty_node_id, msg.temporary_channel_id)
    if chan is None or chan.phase is not ChannelPhase.InboundAwaitingFunding:
        return
    chan.funding_txo = OutPoint(msg.funding_txid, msg.funding_output_index)
    chan.funding_output_script = _funding_script(cm, chan)
    _mark_funded(cm, chan)
    cm._awaiting_funding_since[chan.channel_id] = cm.best_block_height
    cm._send(counterparty_node_id, msgs.FundingSigned(chan.channel_id))
    _channel_pending(cm, chan)


def internal_funding_signed(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.FundingSigned) -> None:
    """The peer signed for our funding transaction: broadcast it (ChannelPending)."""
    chan = next(
        (c for c in cm.channels.values()
         if c.phase is ChannelPhase.FundingCreatedSent and c.counterparty_node_id == counterparty_node_id
         and ChannelId.v1_from_funding_outpoint(c.funding_txo.txid, c.funding_txo.vout) == msg.channel_id),
        None,
    )
    if chan is None:
        return
    _mark_funded(cm, chan)
    batch = cm.funding_batches.get(chan.funding_txo.txid) if cm.funding_batches else None
    if batch is None:
        cm.tx_broadcaster.broadcast_transactions([chan.funding_transaction])
        _channel_pending(cm, chan)
    elif all(c.is_funded() for c in batch):  # LDK's batch_completed: broadcast once, then each ChannelPending
        del cm.funding_batches[chan.funding_txo.txid]
        cm.tx_broadcaster.broadcast_transactions([chan.funding_transaction])
        for c in batch:
            _channel_pending(cm, c)


def _mark_funded(cm: ChannelManager, chan: Channel) -> None:
    """Re-key the channel by its real id and hand its monitor to the ChainMonitor."""
    del cm.channels[chan.temporary_channel_id]
    chan.channel_id = ChannelId.v1_from_funding_outpoint(chan.funding_txo.txid, chan.funding_txo.vout)
    chan.phase = ChannelPhase.AwaitingChannelReady
    chan.ticks_waiting = 0
    cm.channels[chan.channel_id] = chan
    cm.chain_monitor.watch_channel(chan)


def _channel_pending(cm: ChannelManager, chan: Channel) -> None:
    cm._queue_event(Event.ChannelPending(
        channel_id=chan.channel_id,
        user_channel_id=chan.user_channel_id,
        former_temporary_channel_id=chan.temporary_channel_id,
        counterparty_node_id=chan.counterparty_node_id,
        funding_txo=chan.funding_txo,
        channel_type=chan.channel_type,
    ))
    if chan.is_zero_conf():
        _send_channel_ready(cm, chan)


# --- channel_ready --------------------------------------------------------------------------------


def best_block_updated(cm: ChannelManager, chan: Channel, txids: dict[Txid, int], height: int) -> None:
    """LDK's ``Channel::transactions_confirmed`` and ``best_block_updated``: a new block at ``height``
    (``txids``: its transactions' positions). The funding's position in it makes the channel's scid."""
    if chan.funding_height is None and chan.funding_txo.txid in txids:
        chan.funding_height = height
        tx_index = txids[chan.funding_txo.txid]
        chan.short_channel_id = (height << 40) | (tx_index << 16) | chan.funding_txo.vout
        cm._changed()
    if chan.phase is _AWAITING_CHANNEL_READY:  # (a global: see channel._FUNDED_PHASES)
        _check_funding_depth(cm, chan, height)


def _check_funding_depth(cm: ChannelManager, chan: Channel, height: int) -> None:
    """Send ``channel_ready`` once the funding is deep enough; give up on a funding that never confirms."""
    if chan.funding_height is not None and height - chan.funding_height + 1 >= max(1, chan.minimum_depth):
        _send_channel_ready(cm, chan)
    elif chan.funding_height is None and not chan.is_outbound and not chan.is_zero_conf():
        since = cm._awaiting_funding_since.setdefault(chan.channel_id, height)
        if height - since >= FUNDING_CONF_DEADLINE_BLOCKS:
            force_close_channel(cm, chan, ClosureReason.FundingTimedOut(), broadcast=True)  # force_shutdown(true, ..)


def _send_channel_ready(cm: ChannelManager, chan: Channel) -> None:
    if chan.sent_channel_ready:
        return
    chan.sent_channel_ready = True
    cm._send(chan.counterparty_node_id, msgs.ChannelReady(chan.channel_id, chan.outbound_scid_alias))
    _maybe_ready(cm, chan)


def reestablish(cm: ChannelManager, counterparty_node_id: PublicKey) -> None:
    """On reconnection, what LDK's ``peer_connected`` and ``Channel::channel_reestablish`` lead to, channel by channel
    (the kit does not exchange the ``channel_reestablish`` messages themselves, only what they lead to):
    - a channel we proposed and the peer had not answered (LDK's ``is_resumable``): our ``open_channel`` again;
    - a channel the peer may not know is ready: our ``channel_ready`` again, if we sent it, while we await theirs or
      while the channel is still at its first commitment. Sent to a peer that was away (or lost with a restarted
      node's unpersisted state), it was lost, and without it the channel never becomes usable on their side;
    - the HTLC updates held for the peer while it was away (:func:`free_holding_cells`)."""
    for chan in cm.channels.values():
        if chan.counterparty_node_id != counterparty_node_id:
            continue
        if chan.phase is ChannelPhase.OutboundAwaitingAccept and chan.channel_id in cm._open_channel_msgs:
            cm._send(counterparty_node_id, cm._open_channel_msgs[chan.channel_id])
        elif chan.sent_channel_ready and (chan.phase is ChannelPhase.AwaitingChannelReady or (
                chan.phase is ChannelPhase.Ready and chan.at_first_commitment())):
            cm._send(counterparty_node_id, msgs.ChannelReady(chan.channel_id, chan.outbound_scid_alias))
    free_holding_cells(cm, counterparty_node_id)


#: The messages that change a channel's HTLCs, each with how its channel's holding cell keeps it: LDK commits them
#: again after ``channel_reestablish`` when the peer never got them, so a claim made while the payer is away still
#: reaches it.
_HELD_AS = {msgs.UpdateAddHTLC: HTLCUpdateAwaitingACK.AddHTLC, msgs.UpdateFulfillHTLC: HTLCUpdateAwaitingACK.ClaimHTLC,
            msgs.UpdateFailHTLC: HTLCUpdateAwaitingACK.FailHTLC}
HTLC_UPDATES = tuple(_HELD_AS)


def hold(cm: ChannelManager, msg: msgs.UpdateAddHTLC | msgs.UpdateFulfillHTLC | msgs.UpdateFailHTLC) -> None:
    """An HTLC update the counterparty cannot get now (it is away, or went away as it was sent) waits in the channel's
    holding cell (LDK's ``Channel::queue_update_fulfill_htlc`` / ``queue_fail_htlc`` with ``force_holding_cell``)."""
    chan = cm.channels.get(msg.channel_id)
    if chan is not None and chan.phase is not ChannelPhase.Closed:
        chan.holding_cell_htlc_updates = (*chan.holding_cell_htlc_updates, _HELD_AS[type(msg)](msg))
        cm._changed()


def free_holding_cells(cm: ChannelManager, counterparty_node_id: PublicKey) -> None:
    """On reconnection, what LDK's ``check_free_holding_cells`` sends after ``channel_reestablish``: the HTLC updates
    each channel with the peer held while it was away."""
    for chan in cm.channels.values():
        if chan.counterparty_node_id == counterparty_node_id and chan.holding_cell_htlc_updates:
            held, chan.holding_cell_htlc_updates = chan.holding_cell_htlc_updates, ()
            if chan.phase is not ChannelPhase.Closed:
                for update in held:
                    cm._send(counterparty_node_id, update.msg)
            cm._changed()


def internal_channel_ready(cm: ChannelManager, counterparty_node_id: PublicKey, msg: msgs.ChannelReady) -> None:
    chan = cm._find_channel(counterparty_node_id, msg.channel_id)
    if chan is None or chan.phase is not ChannelPhase.AwaitingChannelReady:
        return
    chan.received_channel_ready = True
    if msg.short_channel_id is not None:  # (the alias they gave the channel: LDK keeps the latest)
        chan.latest_inbound_scid_alias = msg.short_channel_id
    _maybe_ready(cm, chan)


def _maybe_ready(cm: ChannelManager, chan: Channel) -> None:
    """Both sides sent ``channel_ready``: the channel is usable (ChannelReady)."""
    if chan.sent_channel_ready and chan.received_channel_ready and chan.phase is ChannelPhase.AwaitingChannelReady:
        chan.phase = ChannelPhase.Ready
        channel_gossip.announce(cm, chan)
        cm._queue_event(Event.ChannelReady(
            channel_id=chan.channel_id,
            user_channel_id=chan.user_channel_id,
            counterparty_node_id=chan.counterparty_node_id,
            channel_type=chan.channel_type,
        ))


# --- dropping what was never funded ----------------------------------------------------------------


def drop_unfunded_channels(cm: ChannelManager, counterparty_node_id: PublicKey) -> None:
    """The peer disconnected: its channels not yet funded are forgotten, as BOLT 2 requires, but for those we
    proposed that it never answered, which LDK keeps to propose again (``is_resumable``: see :func:`reestablish`)."""
    for chan in list(cm.channels.values()):
        if chan.counterparty_node_id != counterparty_node_id or chan.is_funded():
            continue
        if chan.phase in (ChannelPhase.Closed, ChannelPhase.OutboundAwaitingAccept):
            continue
        if chan.phase is ChannelPhase.UnacceptedInbound:
            del cm.channels[chan.channel_id]
        else:
            close_unfunded(cm, chan, ClosureReason.DisconnectedPeer())



#: The phases of a channel not yet funded, aged by each tick until UNFUNDED_CHANNEL_AGE_LIMIT_TICKS.
_UNFUNDED_PHASES = (ChannelPhase.OutboundAwaitingAccept, ChannelPhase.AwaitingFundingTx,
                    ChannelPhase.InboundAwaitingFunding, ChannelPhase.FundingCreatedSent)
_AGING_PHASES = (ChannelPhase.UnacceptedInbound, *_UNFUNDED_PHASES)  # what timer_tick ages
_AWAITING_CHANNEL_READY = ChannelPhase.AwaitingChannelReady


def nothing_to_age(cm: ChannelManager) -> bool:
    """Whether :func:`timer_tick` would change nothing: no request waiting for an answer, no channel unfunded."""
    return not any(c.phase in _AGING_PHASES for c in cm.channels.values())


def timer_tick(cm: ChannelManager) -> bool:
    """Drop requests not accepted within 2 ticks; close channels not funded within 60. True if a request was
    dropped (a closed channel's ChannelClosed asks for the persist itself)."""
    changed = False  # pragma: no mutate (None would read the same)
    for chan in list(cm.channels.values()):
        if chan.phase is ChannelPhase.UnacceptedInbound:
            chan.ticks_waiting += 1
            if chan.ticks_waiting >= UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS:
                del cm.channels[chan.channel_id]
                cm._send(chan.counterparty_node_id, msgs.ErrorMessage(chan.channel_id, "Channel force-closed"))
                cm.logger.error(  # LDK's words and level (timer_tick_occurred)
                    "ldkkit::ln::channelmanager",
                    f"Force-closing unaccepted inbound channel {chan.channel_id} for not accepting in a timely manner",
                )
                changed = True
        elif chan.phase in _UNFUNDED_PHASES:
            chan.ticks_waiting += 1
            if chan.ticks_waiting >= UNFUNDED_CHANNEL_AGE_LIMIT_TICKS:
                timeout = "Force-closing pending channel due to timeout awaiting establishment handshake"
                cm._send(chan.counterparty_node_id, msgs.ErrorMessage(chan.channel_id, timeout))
                close_unfunded(cm, chan, ClosureReason.HolderForceClosed(False))  # as LDK's tick; its event persists
    return changed
