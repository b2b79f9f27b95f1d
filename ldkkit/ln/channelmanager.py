"""The ChannelManager: a node's channels, payments and the events it raises about them.

Mirrors ``lightning::ln::channelmanager::ChannelManager`` in LDK 0.1: its method names,
arguments, ``APIError`` kinds and messages, its event order and its timer rules. The
wire protocol underneath is simplified (see :mod:`ldkkit.ln.msgs`), but what a handler
sees, and the balances, follow LDK.

Threading: every public method takes the manager's lock, so notebook cells, a background
processor and the simulated network can call in at once. Event handlers are called
without the lock held, so a handler may call back into the manager, as in LDK.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction
from ..chain.chaininterface import ConfirmationTarget
from ..config import UserConfig
from ..errors import APIError, ProbeSendFailure, RetryableSendFailure
from ..events import (
    ClaimedHTLC,
    ClosureReason,
    Event,
    FundingInfo,
    HTLCDestination,
    InboundChannelFunds,
    PathFailure,
    PaymentFailureReason,
    PaymentPurpose,
)
from ..events.queue import EventQueue
from ..invoice import MIN_FINAL_CLTV_EXPIRY_DELTA, Bolt11Invoice
from ..ln import msgs
from ..ln.channel import (
    FUNDING_CONF_DEADLINE_BLOCKS,
    MAX_FUNDING_SATOSHIS_NO_WUMBO,
    MIN_CHAN_DUST_LIMIT_SATOSHIS,
    UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS,
    UNFUNDED_CHANNEL_AGE_LIMIT_TICKS,
    Channel,
    ChannelPhase,
    HTLCOutboundRoute,
    HTLCPreviousHop,
    HTLCState,
    InboundHTLC,
    OutboundHTLC,
    holder_selected_channel_reserve_satoshis,
)
from ..ln.channel_state import ChannelCounterparty, ChannelDetails, ChannelShutdownState
from ..ln.outbound_payment import (
    IDEMPOTENCY_TIMEOUT_TICKS,
    PaymentState,
    PendingOutboundPayment,
    RecipientOnionFields,
    Retry,
)
from ..logger import Logger
from ..routing.gossip import NetworkUpdate
from ..routing.router import LightningError, Path, RouteParameters
from ..ser import U64, Record, decode, encode
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
from ..wakers import Future

#: LDK's ``MIN_HTLC_RELAY_HOLDING_CELL_MILLIS``: the ``time_forwardable`` of PendingHTLCsForwardable.
MIN_HTLC_RELAY_HOLDING_CELL_MILLIS = 100
#: LDK's ``MPP_TIMEOUT_TICKS``: an incomplete multi-part payment is failed after this many ticks.
MPP_TIMEOUT_TICKS = 3
#: LDK's ``CLTV_CLAIM_BUFFER``: blocks we allow ourselves to claim an HTLC on chain.
CLTV_CLAIM_BUFFER = 18
#: LDK's ``LATENCY_GRACE_PERIOD_BLOCKS``.
LATENCY_GRACE_PERIOD_BLOCKS = 3
#: LDK's ``HTLC_FAIL_BACK_BUFFER``: blocks before an HTLC's expiry at which an unclaimed payment is failed back.
HTLC_FAIL_BACK_BUFFER = CLTV_CLAIM_BUFFER + LATENCY_GRACE_PERIOD_BLOCKS
#: LDK's ``MAX_UNFUNDED_CHANNEL_PEERS``.
MAX_UNFUNDED_CHANNEL_PEERS = 50
#: LDK's ``ANTI_REORG_DELAY``.
ANTI_REORG_DELAY = 6

# BOLT 4 failure codes
PERM, NODE, UPDATE = 0x4000, 0x2000, 0x1000
INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15
UNKNOWN_NEXT_PEER = PERM | 10
TEMPORARY_CHANNEL_FAILURE = UPDATE | 7
FEE_INSUFFICIENT = UPDATE | 12
INCORRECT_CLTV_EXPIRY = UPDATE | 13
MPP_TIMEOUT = 23
PERMANENT_CHANNEL_FAILURE = PERM | 8


class InboundPayment(Record, frozen=False):
    """What we registered for a payment we expect: its secret, and its preimage if we made it."""

    payment_hash: PaymentHash
    payment_secret: PaymentSecret
    payment_preimage: Optional[PaymentPreimage]
    min_value_msat: Optional[U64]  # Option<u64>: a negative amount is refused
    expires_at: int


class ClaimableHTLC(Record):
    """An HTLC to us that has arrived and waits, alone or with the other parts of its payment."""

    channel_id: ChannelId
    htlc_id: int
    user_channel_id: int
    amount_msat: int
    cltv_expiry: int
    total_msat: int
    counterparty_node_id: PublicKey


class ClaimablePayment(Record, frozen=False):
    """The HTLCs of one payment to us, and what the handler was told about it."""

    payment_hash: PaymentHash
    purpose: PaymentPurpose
    onion_fields: Optional[RecipientOnionFields]
    htlcs: tuple[ClaimableHTLC, ...]
    ticks: int
    announced: bool  # PaymentClaimable was raised


class PendingForward(Record):
    """An HTLC that arrived and waits for ``process_pending_htlc_forwards``."""

    channel_id: ChannelId
    htlc_id: int


class PendingFailBack(Record):
    """An HTLC to fail back to the node that sent it, once forwards are processed."""

    channel_id: ChannelId
    htlc_id: int
    reason: msgs.FailureOnion
    destination: Optional[HTLCDestination]


def _sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


class ChannelManager:
    """Mirrors ``lightning::ln::channelmanager::ChannelManager``."""

    def __init__(
        self,
        *,
        fee_estimator: Any,
        chain_monitor: Any,
        tx_broadcaster: Any,
        router: Any,
        logger: Logger,
        keys_manager: Any,
        config: UserConfig,
        network: Any,
        best_block_height: int,
        clock: Any,
    ) -> None:
        self.fee_estimator = fee_estimator
        self.chain_monitor = chain_monitor
        self.tx_broadcaster = tx_broadcaster
        self.router = router
        self.logger = logger
        self.keys_manager = keys_manager
        self.config = config
        self.network = network
        self.clock = clock
        self.best_block_height = best_block_height
        self._our_node_id: PublicKey = keys_manager.get_node_id()
        self._lock = threading.RLock()
        self._events = EventQueue("ChannelManager")
        self._notifier = self._events.notifier  # wakes on events and on state to persist
        self._needs_persist = False
        self.channels: dict[ChannelId, Channel] = {}  # by channel_id (temporary until funded)
        self.peers: set[PublicKey] = set()
        self.pending_msg_events: list[tuple[PublicKey, Record]] = []
        self.inbound_payments: dict[PaymentHash, InboundPayment] = {}
        self.claimable: dict[PaymentHash, ClaimablePayment] = {}
        self.pending_outbound: dict[PaymentId, PendingOutboundPayment] = {}
        self.forward_htlcs: list[PendingForward] = []
        self.fail_backs: list[PendingFailBack] = []
        self._open_channel_msgs: dict[ChannelId, msgs.OpenChannel] = {}  # our proposals not yet accepted
        #: Intercepted HTLCs released by forward_intercepted_htlc: (the HTLC, its next channel, the amount).
        self._released_intercepts: list[tuple[PendingForward, ChannelId, int]] = []
        self.intercepted: dict[InterceptId, PendingForward] = {}
        self.intercept_scids: set[int] = set()
        self._pending_forwardable_event = False
        #: The async runtime the node's handler tasks run on (the world's; ldk-sample's tokio).
        self.runtime: Any = None
        #: True while a BackgroundProcessor drives this manager's events and timers.
        self.background_processor_attached = False
        self._route_params: dict[PaymentId, RouteParameters] = {}
        self._payment_paths: dict[PaymentId, list[Path]] = {}  # paths of the current attempt in flight
        self._awaiting_funding_since: dict[ChannelId, int] = {}  # inbound channels: height funding was promised

    def set_runner(self, runner: Callable[[Any], Any]) -> None:
        """Run async handlers given to the sync ``process_pending_events`` on this runtime."""
        self._events.runner = runner
        self.chain_monitor._events.runner = runner

    # --- small helpers ----------------------------------------------------------------------

    def _log(self, message: str) -> None:
        self.logger.info("ldkkit::ln::channelmanager", message)

    def _queue_event(self, event: Event) -> None:
        self._needs_persist = True
        self._events.push(event)

    def _send(self, node_id: PublicKey, msg: Record) -> None:
        self.pending_msg_events.append((node_id, msg))
        self._notifier.notify()

    def _changed(self) -> None:
        self._needs_persist = True
        self._notifier.notify()

    def _random_bytes(self) -> bytes:
        return self.keys_manager.get_secure_random_bytes()

    def _feerate(self, target: ConfirmationTarget) -> int:
        return self.fee_estimator.get_est_sat_per_1000_weight(target)

    def _peer_or_raise(self, counterparty_node_id: PublicKey) -> None:
        if counterparty_node_id not in self.peers and not any(
            c.counterparty_node_id == counterparty_node_id for c in self.channels.values()
        ):
            raise APIError.ChannelUnavailable(
                f"Can't find a peer matching the passed counterparty node_id {counterparty_node_id}"
            )

    def _channel_for_peer(self, channel_id: ChannelId, counterparty_node_id: PublicKey) -> Channel:
        self._peer_or_raise(counterparty_node_id)
        chan = self.channels.get(channel_id)
        if chan is None or chan.counterparty_node_id != counterparty_node_id or chan.phase is ChannelPhase.Closed:
            raise APIError.ChannelUnavailable(
                f"Channel with id {channel_id} not found for the passed counterparty node_id {counterparty_node_id}"
            )
        return chan

    def _channel_by_scid(self, scid: int) -> Optional[Channel]:
        for chan in self.channels.values():
            if chan.is_funded() and chan.get_outbound_payment_scid() == scid:
                return chan
        return None

    def _find_channel(self, counterparty_node_id: PublicKey, channel_id: ChannelId) -> Optional[Channel]:
        chan = self.channels.get(channel_id)
        if chan is not None and chan.counterparty_node_id == counterparty_node_id:
            return chan
        return None

    # --- reading -------------------------------------------------------------------------------

    def get_our_node_id(self) -> PublicKey:
        """Mirrors ``ChannelManager::get_our_node_id``."""
        return self._our_node_id

    def current_best_block(self) -> int:
        return self.best_block_height

    def list_channels(self) -> list[ChannelDetails]:
        """Mirrors ``ChannelManager::list_channels``: every channel that is not closed. A request not yet
        accepted is not a channel yet (LDK keeps those apart, in ``inbound_channel_request_by_id``)."""
        with self._lock:
            return [self._details(c) for c in self.channels.values()
                    if c.phase not in (ChannelPhase.Closed, ChannelPhase.UnacceptedInbound)]

    def list_usable_channels(self) -> list[ChannelDetails]:
        """Mirrors ``ChannelManager::list_usable_channels``: channels that can send now."""
        return [c for c in self.list_channels() if c.is_usable]

    def list_channels_with_counterparty(self, counterparty_node_id: PublicKey) -> list[ChannelDetails]:
        return [c for c in self.list_channels() if c.counterparty.node_id == counterparty_node_id]

    def _is_usable(self, chan: Channel) -> bool:
        return chan.is_usable() and chan.counterparty_node_id in self.peers

    def _details(self, chan: Channel) -> ChannelDetails:
        shutdown = {
            ChannelPhase.ShuttingDown: ChannelShutdownState.ShutdownInitiated,
            ChannelPhase.Closed: ChannelShutdownState.ShutdownComplete,
        }.get(chan.phase, ChannelShutdownState.NotShuttingDown)
        confirmations = None
        if chan.funding_height is not None:
            confirmations = max(0, self.best_block_height - chan.funding_height + 1)
        usable = self._is_usable(chan)
        return ChannelDetails(
            channel_id=chan.channel_id,
            counterparty=ChannelCounterparty(
                chan.counterparty_node_id, chan.holder_selected_channel_reserve_satoshis, chan.htlc_minimum_msat
            ),
            funding_txo=chan.funding_txo,
            channel_type=chan.channel_type,
            short_channel_id=chan.short_channel_id,
            outbound_scid_alias=chan.outbound_scid_alias,
            inbound_scid_alias=None,
            channel_value_satoshis=chan.channel_value_satoshis,
            unspendable_punishment_reserve=chan.counterparty_selected_channel_reserve_satoshis,
            user_channel_id=chan.user_channel_id,
            feerate_sat_per_1000_weight=self._feerate(ConfirmationTarget.AnchorChannelFee),
            outbound_capacity_msat=chan.outbound_capacity_msat(),
            next_outbound_htlc_limit_msat=chan.next_outbound_htlc_limit_msat() if usable else 0,
            next_outbound_htlc_minimum_msat=chan.htlc_minimum_msat,
            inbound_capacity_msat=chan.inbound_capacity_msat(),
            confirmations_required=chan.minimum_depth if chan.is_funded() or chan.minimum_depth else None,
            confirmations=confirmations,
            force_close_spend_delay=chan.counterparty_selected_contest_delay if chan.is_funded() else None,
            is_outbound=chan.is_outbound,
            is_channel_ready=chan.phase in (ChannelPhase.Ready, ChannelPhase.ShuttingDown),
            channel_shutdown_state=shutdown,
            is_usable=usable,
            is_announced=chan.is_announced,
            inbound_htlc_minimum_msat=chan.htlc_minimum_msat,
            inbound_htlc_maximum_msat=chan.max_htlc_value_in_flight_msat,
            pending_inbound_htlcs=len(chan.pending_inbound_htlcs),
            pending_outbound_htlcs=len(chan.pending_outbound_htlcs),
        )

    # --- events --------------------------------------------------------------------------------

    def get_event_or_persistence_needed_future(self) -> Future:
        """Mirrors the LDK method: completes when there are events or state to persist."""
        return self._notifier.get_future()

    def get_and_clear_needs_persistence(self) -> bool:
        """Mirrors the LDK method: reads and clears the "needs persisting" flag."""
        with self._lock:
            needed, self._needs_persist = self._needs_persist, False
            return needed

    def has_pending_events(self) -> bool:
        return bool(self._events)

    def pending_events(self) -> list[Event]:
        """The events waiting for the handler, oldest first (a copy, for inspection)."""
        return self._events.pending()

    def replay_requested(self) -> bool:
        """Whether the handler asked, last time, for an event to be handed over again."""
        return self._events.replay_requested

    def get_and_clear_pending_msg_events(self) -> list[tuple[PublicKey, Record]]:
        """Mirrors ``MessageSendEventsProvider``: the wire messages to send, in order."""
        with self._lock:
            out, self.pending_msg_events = self.pending_msg_events, []
            return out

    def process_pending_events(self, handler: Callable[[Event], Any]) -> None:
        """Mirrors ``EventsProvider::process_pending_events`` (see :mod:`ldkkit.events.queue`).

        Hands each queued event to ``handler`` in order. The handler may call back into
        the manager. ``ReplayEvent`` makes the event come back next time; any other
        exception leaves it queued and is raised as an ``EventHandlerError`` naming it.
        """
        if self._events.process(handler):
            self._changed()

    async def process_pending_events_async(self, handler: Callable[[Event], Any]) -> None:
        """Mirrors ``ChannelManager::process_pending_events_async``; ``handler`` may be async."""
        if await self._events.process_async(handler):
            self._changed()

    # --- channels: opening ---------------------------------------------------------------------

    def peer_connected(self, counterparty_node_id: PublicKey) -> None:
        """Called by the PeerManager when a peer connects (``ChannelMessageHandler``)."""
        with self._lock:
            self.peers.add(counterparty_node_id)
            self._changed()

    def peer_disconnected(self, counterparty_node_id: PublicKey) -> None:
        """Unfunded channels with the peer are forgotten, as BOLT 2 requires."""
        with self._lock:
            self.peers.discard(counterparty_node_id)
            for chan in list(self.channels.values()):
                if chan.counterparty_node_id != counterparty_node_id or chan.is_funded():
                    continue
                if chan.phase in (ChannelPhase.Closed,):
                    continue
                if chan.phase is ChannelPhase.UnacceptedInbound:
                    del self.channels[chan.channel_id]
                else:
                    self._close_unfunded(chan, ClosureReason.DisconnectedPeer())
            self._changed()

    def create_channel(
        self,
        their_network_key: PublicKey,
        channel_value_satoshis: int,
        push_msat: int,
        user_channel_id: int,
        temporary_channel_id: Optional[ChannelId] = None,
        override_config: Optional[UserConfig] = None,
    ) -> ChannelId:
        """Mirrors ``ChannelManager::create_channel``: propose a channel; returns its temporary id."""
        with self._lock:
            if channel_value_satoshis < 1000:
                raise APIError.APIMisuseError(
                    f"Channel value must be at least 1000 satoshis. It was {channel_value_satoshis}"
                )
            if channel_value_satoshis > MAX_FUNDING_SATOSHIS_NO_WUMBO:
                raise APIError.APIMisuseError(
                    f"funding_value must not exceed {MAX_FUNDING_SATOSHIS_NO_WUMBO}, it was {channel_value_satoshis}"
                )
            if push_msat > channel_value_satoshis * 1000:
                raise APIError.APIMisuseError(
                    f"Push value ({push_msat}) was larger than channel_value ({channel_value_satoshis * 1000})"
                )
            if their_network_key not in self.peers:
                raise APIError.APIMisuseError(f"Not connected to node: {their_network_key}")
            config = override_config or self.config
            tcid = temporary_channel_id or ChannelId(self._random_bytes())
            if tcid in self.channels:
                raise APIError.APIMisuseError(f"Channel with temporary channel ID {tcid} already exists!")
            handshake = config.channel_handshake_config
            channel_type = (
                ChannelTypeFeatures.anchors_zero_htlc_fee_and_dependencies()
                if handshake.negotiate_anchors_zero_fee_htlc_tx
                else ChannelTypeFeatures.only_static_remote_key()
            )
            chan = self._new_channel(
                tcid, their_network_key, True, user_channel_id, channel_value_satoshis, push_msat,
                channel_type, handshake.announce_for_forwarding, config,
            )
            chan.value_to_self_msat = channel_value_satoshis * 1000 - push_msat
            chan.phase = ChannelPhase.OutboundAwaitingAccept
            self.channels[tcid] = chan
            keys = self.keys_manager.derive_channel_keys(channel_value_satoshis, chan.channel_keys_id)
            open_channel = msgs.OpenChannel(
                tcid, channel_value_satoshis, push_msat, MIN_CHAN_DUST_LIMIT_SATOSHIS,
                chan.max_htlc_value_in_flight_msat, chan.holder_selected_channel_reserve_satoshis,
                handshake.our_htlc_minimum_msat, self._feerate(ConfirmationTarget.AnchorChannelFee),
                handshake.our_to_self_delay, handshake.our_max_accepted_htlcs, keys.funding_pubkey,
                channel_type, handshake.announce_for_forwarding,
            )
            self._open_channel_msgs[tcid] = open_channel  # sent again, downgraded, if the peer refuses it
            self._send(their_network_key, open_channel)
            self._log(f"Created outbound channel {tcid} with {their_network_key} for {channel_value_satoshis} sat")
            self._changed()
            return tcid

    def _new_channel(
        self, tcid: ChannelId, peer: PublicKey, outbound: bool, user_channel_id: int, value_sat: int,
        push_msat: int, channel_type: ChannelTypeFeatures, announced: bool, config: UserConfig,
    ) -> Channel:
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
            channel_keys_id=self.keys_manager.generate_channel_keys_id(not outbound, value_sat, user_channel_id),
            counterparty_funding_pubkey=None, funding_output_script=None, funding_transaction=None,
            funding_txo=None, funding_height=None, short_channel_id=None, sent_channel_ready=False,
            received_channel_ready=False, pending_inbound_htlcs={}, pending_outbound_htlcs={},
            next_outbound_htlc_id=0, shutdown_scriptpubkey=None, counterparty_shutdown_scriptpubkey=None,
            locally_initiated_shutdown=False, ticks_waiting=0,
            outbound_scid_alias=int.from_bytes(self._random_bytes()[:8], "big") >> 16,
            forwarding_fee_base_msat=config.channel_config.forwarding_fee_base_msat,
            forwarding_fee_proportional_millionths=config.channel_config.forwarding_fee_proportional_millionths,
            cltv_expiry_delta=config.channel_config.cltv_expiry_delta,
        )

    def handle_open_channel(self, counterparty_node_id: PublicKey, msg: msgs.OpenChannel) -> None:
        with self._lock:
            unfunded_peers = {
                c.counterparty_node_id for c in self.channels.values()
                if not c.is_outbound and not c.is_funded() and c.phase is not ChannelPhase.Closed
            }
            if counterparty_node_id not in unfunded_peers and len(unfunded_peers) >= MAX_UNFUNDED_CHANNEL_PEERS:
                refusal = "Have too many peers with unfunded channels, not accepting new ones"
                self._send(counterparty_node_id, msgs.ErrorMessage(msg.temporary_channel_id, refusal))
                return
            chan = self._new_channel(
                msg.temporary_channel_id, counterparty_node_id, False, 0, msg.funding_satoshis, msg.push_msat,
                msg.channel_type, msg.announce_channel, self.config,
            )
            chan.value_to_self_msat = msg.push_msat
            chan.counterparty_selected_channel_reserve_satoshis = msg.channel_reserve_satoshis
            chan.counterparty_selected_contest_delay = msg.to_self_delay
            chan.counterparty_funding_pubkey = msg.funding_pubkey
            chan.counterparty_max_htlc_value_in_flight_msat = msg.max_htlc_value_in_flight_msat
            self.channels[msg.temporary_channel_id] = chan
            if not self.config.manually_accept_inbound_channels:
                user_channel_id = int.from_bytes(self._random_bytes()[:16], "big")
                self._accept(chan, user_channel_id, zero_conf=False)
                return
            self._queue_event(Event.OpenChannelRequest(
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

    def accept_inbound_channel(
        self, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey, user_channel_id: int
    ) -> None:
        """Mirrors ``ChannelManager::accept_inbound_channel`` (LDK 0.1: three arguments)."""
        self._accept_request(temporary_channel_id, counterparty_node_id, user_channel_id, zero_conf=False)

    def accept_inbound_channel_from_trusted_peer_0conf(
        self, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey, user_channel_id: int
    ) -> None:
        """Mirrors the LDK method: accept, and use the channel before its funding confirms.

        Only for peers you trust completely: if they never confirm the funding, you lose.
        """
        self._accept_request(temporary_channel_id, counterparty_node_id, user_channel_id, zero_conf=True)

    def _accept_request(self, tcid: ChannelId, peer: PublicKey, user_channel_id: int, zero_conf: bool) -> None:
        if not isinstance(user_channel_id, int) or not 0 <= user_channel_id < 1 << 128:
            raise APIError.APIMisuseError(
                f"user_channel_id must be an int from 0 to 2**128 - 1 (a u128), got {user_channel_id!r}"
            )
        with self._lock:
            self._peer_or_raise(peer)
            chan = self.channels.get(tcid)
            if chan is None or chan.counterparty_node_id != peer or chan.phase is not ChannelPhase.UnacceptedInbound:
                raise APIError.APIMisuseError("No such channel awaiting to be accepted.")
            if chan.channel_type.requires_zero_conf() and not zero_conf:
                del self.channels[tcid]
                self._send(peer, msgs.ErrorMessage(tcid, "No zero confirmation channels accepted"))
                raise APIError.APIMisuseError(
                    "Please use accept_inbound_channel_from_trusted_peer_0conf to accept channels "
                    "with zero confirmations."
                )
            self._accept(chan, user_channel_id, zero_conf)

    def _accept(self, chan: Channel, user_channel_id: int, zero_conf: bool) -> None:
        chan.user_channel_id = user_channel_id
        chan.channel_keys_id = self.keys_manager.generate_channel_keys_id(
            True, chan.channel_value_satoshis, user_channel_id
        )
        if zero_conf:
            chan.minimum_depth = 0
        chan.phase = ChannelPhase.InboundAwaitingFunding
        chan.ticks_waiting = 0
        keys = self.keys_manager.derive_channel_keys(chan.channel_value_satoshis, chan.channel_keys_id)
        self._send(chan.counterparty_node_id, msgs.AcceptChannel(
            chan.temporary_channel_id, chan.minimum_depth, chan.max_htlc_value_in_flight_msat,
            chan.holder_selected_channel_reserve_satoshis,
            chan.holder_selected_contest_delay, keys.funding_pubkey,
        ))
        self._log(f"Accepted inbound channel {chan.temporary_channel_id} from {chan.counterparty_node_id}")
        self._changed()

    def handle_accept_channel(self, counterparty_node_id: PublicKey, msg: msgs.AcceptChannel) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.temporary_channel_id)
            if chan is None or chan.phase is not ChannelPhase.OutboundAwaitingAccept:
                return
            self._open_channel_msgs.pop(chan.channel_id, None)
            chan.counterparty_selected_channel_reserve_satoshis = msg.channel_reserve_satoshis
            chan.counterparty_selected_contest_delay = msg.to_self_delay
            chan.counterparty_funding_pubkey = msg.funding_pubkey
            chan.counterparty_max_htlc_value_in_flight_msat = msg.max_htlc_value_in_flight_msat
            chan.minimum_depth = msg.minimum_depth
            chan.funding_output_script = self._funding_script(chan)
            chan.phase = ChannelPhase.AwaitingFundingTx
            chan.ticks_waiting = 0
            self._queue_event(Event.FundingGenerationReady(
                temporary_channel_id=chan.temporary_channel_id,
                counterparty_node_id=counterparty_node_id,
                channel_value_satoshis=chan.channel_value_satoshis,
                output_script=chan.funding_output_script,
                user_channel_id=chan.user_channel_id,
            ))

    def _funding_script(self, chan: Channel) -> ScriptBuf:
        """P2WSH of the 2-of-2 multisig of both funding keys, sorted as BOLT 3 says."""
        ours = self.keys_manager.derive_channel_keys(chan.channel_value_satoshis, chan.channel_keys_id).funding_pubkey
        keys = sorted([bytes(ours), bytes(chan.counterparty_funding_pubkey)])
        witness_script = b"\x52" + b"".join(b"\x21" + k for k in keys) + b"\x52\xae"
        return ScriptBuf.new_p2wsh(witness_script)

    def funding_transaction_generated(
        self, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey, funding_transaction: Transaction
    ) -> None:
        """Mirrors ``ChannelManager::funding_transaction_generated``.

        Hands over the signed funding transaction. LDK broadcasts it once the peer has
        signed; do not broadcast it yourself.
        """
        with self._lock:
            chan = self._channel_for_peer(temporary_channel_id, counterparty_node_id)
            if not isinstance(funding_transaction, Transaction):
                raise APIError.APIMisuseError(
                    f"funding_transaction must be a Transaction, got {type(funding_transaction).__name__}; "
                    "build one with Transaction(bytes.fromhex(signed_tx.hex))"
                )
            if chan.phase is not ChannelPhase.AwaitingFundingTx:
                if chan.is_outbound:
                    raise APIError.ChannelUnavailable(
                        f"Channel with id {temporary_channel_id} not found for the passed counterparty node_id "
                        f"{counterparty_node_id}"
                    )
                raise APIError.APIMisuseError(f"Channel {temporary_channel_id} is not an unfunded, outbound V1 channel")
            refused = self._funding_refusal(funding_transaction)
            if refused is not None:  # LDK closes the channel: ProcessingError, and no DiscardFunding
                self._close_unfunded(chan, ClosureReason.ProcessingError(f"Error in transaction funding: {refused}"))
                raise refused
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
                self._close_unfunded(chan, ClosureReason.ProcessingError(err))  # not handed over: no DiscardFunding
                raise APIError.APIMisuseError(err)
            txid = funding_transaction.compute_txid()
            chan.funding_transaction = funding_transaction
            chan.funding_txo = OutPoint(txid, matches[0])
            chan.phase = ChannelPhase.FundingCreatedSent
            self._send(counterparty_node_id, msgs.FundingCreated(temporary_channel_id, txid, matches[0]))
            self._changed()

    def _funding_refusal(self, tx: Transaction) -> Optional[APIError]:
        """The checks of LDK's ``batch_funding_transaction_generated_intern``, before any output is looked at."""
        if any(not txin.witness for txin in tx.input):
            return APIError.APIMisuseError("Funding transaction must be fully signed and spend Segwit outputs")
        if len(tx.output) > 0xFFFF:
            return APIError.APIMisuseError("Transaction had more than 2^16 outputs, which is not supported")
        # Final for mempools if its height lock is below the next block; one block of headroom, as LDK allows.
        if (not all(txin.sequence == 0xFFFFFFFF for txin in tx.input) and tx.lock_time < 500_000_000
                and tx.lock_time > self.best_block_height + 1):
            return APIError.APIMisuseError("Funding transaction absolute timelock is non-final")
        return None

    def handle_funding_created(self, counterparty_node_id: PublicKey, msg: msgs.FundingCreated) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.temporary_channel_id)
            if chan is None or chan.phase is not ChannelPhase.InboundAwaitingFunding:
                return
            chan.funding_txo = OutPoint(msg.funding_txid, msg.funding_output_index)
            chan.funding_output_script = self._funding_script(chan)
            self._mark_funded(chan)
            self._awaiting_funding_since[chan.channel_id] = self.best_block_height
            self._send(counterparty_node_id, msgs.FundingSigned(chan.channel_id))
            self._channel_pending(chan)

    def handle_funding_signed(self, counterparty_node_id: PublicKey, msg: msgs.FundingSigned) -> None:
        with self._lock:
            chan = next(
                (c for c in self.channels.values()
                 if c.phase is ChannelPhase.FundingCreatedSent and c.counterparty_node_id == counterparty_node_id
                 and ChannelId.v1_from_funding_outpoint(c.funding_txo.txid, c.funding_txo.vout) == msg.channel_id),
                None,
            )
            if chan is None:
                return
            self._mark_funded(chan)
            self.tx_broadcaster.broadcast_transactions([chan.funding_transaction])
            self._channel_pending(chan)

    def _mark_funded(self, chan: Channel) -> None:
        """Re-key the channel by its real id and hand its monitor to the ChainMonitor."""
        del self.channels[chan.temporary_channel_id]
        chan.channel_id = ChannelId.v1_from_funding_outpoint(chan.funding_txo.txid, chan.funding_txo.vout)
        chan.phase = ChannelPhase.AwaitingChannelReady
        chan.ticks_waiting = 0
        self.channels[chan.channel_id] = chan
        self.chain_monitor.watch_channel(self, chan)

    def _channel_pending(self, chan: Channel) -> None:
        self._queue_event(Event.ChannelPending(
            channel_id=chan.channel_id,
            user_channel_id=chan.user_channel_id,
            former_temporary_channel_id=chan.temporary_channel_id,
            counterparty_node_id=chan.counterparty_node_id,
            funding_txo=chan.funding_txo,
            channel_type=chan.channel_type,
        ))
        if chan.is_zero_conf():
            self._send_channel_ready(chan)

    def _send_channel_ready(self, chan: Channel) -> None:
        if chan.sent_channel_ready:
            return
        chan.sent_channel_ready = True
        self._send(chan.counterparty_node_id, msgs.ChannelReady(chan.channel_id, chan.short_channel_id))
        self._maybe_ready(chan)

    def handle_channel_ready(self, counterparty_node_id: PublicKey, msg: msgs.ChannelReady) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or chan.phase is not ChannelPhase.AwaitingChannelReady:
                return
            chan.received_channel_ready = True
            self._maybe_ready(chan)

    def _maybe_ready(self, chan: Channel) -> None:
        if chan.sent_channel_ready and chan.received_channel_ready and chan.phase is ChannelPhase.AwaitingChannelReady:
            chan.phase = ChannelPhase.Ready
            self._announce(chan)
            self._queue_event(Event.ChannelReady(
                channel_id=chan.channel_id,
                user_channel_id=chan.user_channel_id,
                counterparty_node_id=chan.counterparty_node_id,
                channel_type=chan.channel_type,
            ))

    def _announce(self, chan: Channel, enabled: bool = True) -> None:
        """Gossip a public channel: its announcement (from the opener) and our policy for it.

        ``None`` as the destination means "broadcast to the network" (LDK's
        ``BroadcastChannelAnnouncement`` and ``BroadcastChannelUpdate``).
        """
        if not chan.is_announced or chan.short_channel_id is None:
            return
        if enabled and chan.is_outbound:
            self.pending_msg_events.append((None, msgs.ChannelAnnouncement(
                chan.short_channel_id, self._our_node_id, chan.counterparty_node_id, chan.channel_value_satoshis
            )))
        self.pending_msg_events.append((None, msgs.ChannelUpdate(
            chan.short_channel_id, self._our_node_id, self.clock.unix_time(), enabled, chan.cltv_expiry_delta,
            chan.htlc_minimum_msat, chan.channel_value_satoshis * 1000, chan.forwarding_fee_base_msat,
            chan.forwarding_fee_proportional_millionths,
        )))
        self._notifier.notify()

    # --- chain ---------------------------------------------------------------------------------

    def block_connected(self, block: Any, height: int) -> None:
        """Mirrors ``chain::Listen::block_connected``: watch funding confirm and HTLCs expire."""
        with self._lock:
            self.best_block_height = height
            txids = {tx.compute_txid(): i for i, tx in enumerate(block.txdata)}
            for chan in list(self.channels.values()):
                if chan.phase is ChannelPhase.Closed or chan.funding_txo is None:
                    continue
                if chan.funding_height is None and chan.funding_txo.txid in txids:
                    chan.funding_height = height
                    tx_index = txids[chan.funding_txo.txid]
                    chan.short_channel_id = (height << 40) | (tx_index << 16) | chan.funding_txo.vout
                    self._changed()
                if chan.phase is ChannelPhase.AwaitingChannelReady:
                    self._check_funding_depth(chan, height)
                self._check_htlc_timeouts(chan, height)
            self._fail_expired_claimables(height)
            self._handle_monitor_events()

    def _handle_monitor_events(self) -> None:
        """Act on what the ChainMonitor saw on chain (LDK's ``process_pending_monitor_events``)."""
        for event in self.chain_monitor.release_pending_monitor_events():
            chan = self.channels.get(event.channel_id)
            if chan is None:
                continue
            if event.kind == "CommitmentTxConfirmed" and chan.phase is not ChannelPhase.Closed:
                self._closed(chan, ClosureReason.CommitmentTxConfirmed())
            elif event.kind == "HTLCTimedOut":
                self._resolve_outbound_htlc_on_chain(chan, event.htlc_id, None)

    def _check_funding_depth(self, chan: Channel, height: int) -> None:
        if chan.funding_height is not None and height - chan.funding_height + 1 >= max(1, chan.minimum_depth):
            self._send_channel_ready(chan)
        elif chan.funding_height is None and not chan.is_outbound and not chan.is_zero_conf():
            since = self._awaiting_funding_since.setdefault(chan.channel_id, height)
            if height - since >= FUNDING_CONF_DEADLINE_BLOCKS:
                self._force_close(chan, ClosureReason.FundingTimedOut(), broadcast=False)

    def _check_htlc_timeouts(self, chan: Channel, height: int) -> None:
        """Force-close once an outbound HTLC is past its expiry by LDK's grace period, to claim it back
        on chain (``ChannelMonitor::should_broadcast_holder_commitment_txn``)."""
        if not chan.is_funded():
            return
        for htlc in chan.pending_outbound_htlcs.values():
            if htlc.cltv_expiry + LATENCY_GRACE_PERIOD_BLOCKS <= height:
                self._force_close(chan, ClosureReason.HTLCsTimedOut(), broadcast=True)
                return

    # --- closing -------------------------------------------------------------------------------

    def close_channel(self, channel_id: ChannelId, counterparty_node_id: PublicKey) -> None:
        """Mirrors ``ChannelManager::close_channel``: start a cooperative close."""
        with self._lock:
            chan = self._channel_for_peer(channel_id, counterparty_node_id)
            if not chan.is_funded():
                self._force_close(chan, ClosureReason.HolderForceClosed(False), broadcast=False)
                return
            if chan.phase is ChannelPhase.ShuttingDown:
                raise APIError.APIMisuseError("Shutdown already in progress")
            if counterparty_node_id not in self.peers:
                raise APIError.ChannelUnavailable(
                    "Cannot begin shutdown while peer is disconnected, maybe force-close instead?"
                )
            chan.locally_initiated_shutdown = True
            self._begin_shutdown(chan)

    def _begin_shutdown(self, chan: Channel) -> None:
        chan.phase = ChannelPhase.ShuttingDown
        chan.shutdown_scriptpubkey = self.keys_manager.get_shutdown_scriptpubkey()
        self._send(chan.counterparty_node_id, msgs.Shutdown(chan.channel_id, chan.shutdown_scriptpubkey))
        self._changed()

    def handle_shutdown(self, counterparty_node_id: PublicKey, msg: msgs.Shutdown) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or chan.phase is ChannelPhase.Closed:
                return
            chan.counterparty_shutdown_scriptpubkey = msg.scriptpubkey
            if chan.phase is not ChannelPhase.ShuttingDown:
                self._begin_shutdown(chan)
            self._maybe_closing_signed(chan)

    def _maybe_closing_signed(self, chan: Channel) -> None:
        """Once both shutdowns are exchanged and no HTLC is in flight, the opener proposes the fee."""
        if (
            chan.phase is ChannelPhase.ShuttingDown
            and chan.is_outbound
            and chan.shutdown_scriptpubkey is not None
            and chan.counterparty_shutdown_scriptpubkey is not None
            and not chan.pending_inbound_htlcs
            and not chan.pending_outbound_htlcs
        ):
            fee = self._feerate(ConfirmationTarget.ChannelCloseMinimum) * 672 // 1000
            self._send(chan.counterparty_node_id, msgs.ClosingSigned(chan.channel_id, fee))
            self._finish_coop_close(chan, fee)

    def handle_closing_signed(self, counterparty_node_id: PublicKey, msg: msgs.ClosingSigned) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or chan.phase is not ChannelPhase.ShuttingDown:
                return
            self._finish_coop_close(chan, msg.fee_satoshis)

    def _finish_coop_close(self, chan: Channel, fee_sat: int) -> None:
        """Build the closing transaction (the opener pays the fee); the opener broadcasts it."""
        ours = chan.value_to_self_msat // 1000
        theirs = chan.value_to_remote_msat() // 1000
        if chan.is_outbound:
            ours -= fee_sat
        else:
            theirs -= fee_sat
        outputs = [(chan.shutdown_scriptpubkey, ours), (chan.counterparty_shutdown_scriptpubkey, theirs)]
        closing_tx = self.chain_monitor.build_closing_tx(chan, outputs)
        if chan.is_outbound:
            self.tx_broadcaster.broadcast_transactions([closing_tx])
        reason = (
            ClosureReason.LocallyInitiatedCooperativeClosure()
            if chan.locally_initiated_shutdown
            else ClosureReason.CounterpartyInitiatedCooperativeClosure()
        )
        self._closed(chan, reason)

    def force_close_broadcasting_latest_txn(
        self, channel_id: ChannelId, counterparty_node_id: PublicKey, error_message: str
    ) -> None:
        """Mirrors the LDK method: close now, broadcasting our latest commitment transaction."""
        self._force_close_api(channel_id, counterparty_node_id, error_message, broadcast=True)

    def force_close_without_broadcasting_txn(
        self, channel_id: ChannelId, counterparty_node_id: PublicKey, error_message: str
    ) -> None:
        """Mirrors the LDK 0.1 method. This is how LDK 0.1 rejects an ``OpenChannelRequest``."""
        self._force_close_api(channel_id, counterparty_node_id, error_message, broadcast=False)

    def force_close_all_channels_broadcasting_latest_txn(self, error_message: str) -> None:
        for details in self.list_channels():
            self.force_close_broadcasting_latest_txn(details.channel_id, details.counterparty.node_id, error_message)

    def _force_close_api(self, channel_id: ChannelId, peer: PublicKey, message: str, broadcast: bool) -> None:
        with self._lock:
            chan = self._channel_for_peer(channel_id, peer)
            self._send(peer, msgs.ErrorMessage(chan.channel_id, message))
            if chan.phase is ChannelPhase.UnacceptedInbound:
                del self.channels[channel_id]  # a rejected request: no ChannelClosed, as in LDK
                self._log(f"Rejected inbound channel request {channel_id} from {peer}: {message}")
                self._changed()
                return
            self._force_close(chan, ClosureReason.HolderForceClosed(broadcast), broadcast)

    def _force_close(self, chan: Channel, reason: ClosureReason, broadcast: bool) -> None:
        if not chan.is_funded():
            self._close_unfunded(chan, reason)
            return
        if broadcast or not isinstance(reason, ClosureReason.HolderForceClosed):
            self.chain_monitor.broadcast_latest_holder_commitment(self, chan)
        self._closed(chan, reason)

    def handle_error(self, counterparty_node_id: PublicKey, msg: msgs.ErrorMessage) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or chan.phase is ChannelPhase.Closed:
                return
            if chan.phase is ChannelPhase.UnacceptedInbound:
                del self.channels[chan.channel_id]
                return
            if chan.phase is ChannelPhase.OutboundAwaitingAccept and self._downgrade_and_reopen(chan):
                return
            reason = ClosureReason.CounterpartyForceClosed(msg.data)
            if chan.is_funded():
                self.chain_monitor.broadcast_latest_holder_commitment(self, chan)
                self._closed(chan, reason)
            else:
                self._close_unfunded(chan, reason)

    def _downgrade_and_reopen(self, chan: Channel) -> bool:
        """LDK's ``maybe_downgrade_channel_features``: a refused ``open_channel`` is proposed again with
        one feature fewer (anchors first), until only ``static_remote_key`` is left. True if it was."""
        features = ChannelTypeFeatures
        kind = chan.channel_type
        if kind == features.only_static_remote_key() or chan.channel_id not in self._open_channel_msgs:
            return False
        feerate = self._open_channel_msgs[chan.channel_id].feerate_per_kw
        if kind.supports_anchors_zero_fee_htlc_tx():
            kind = features(kind.bits & ~(0b11 << features.ANCHORS_ZERO_FEE_HTLC_TX))
            feerate = self._feerate(ConfirmationTarget.NonAnchorChannelFee)
        elif kind.supports_scid_privacy():
            kind = features(kind.bits & ~(0b11 << features.SCID_PRIVACY))
        else:
            kind = features.only_static_remote_key()
        chan.channel_type = kind
        retry = dataclasses.replace(self._open_channel_msgs[chan.channel_id], channel_type=kind,
                                    feerate_per_kw=feerate)
        self._open_channel_msgs[chan.channel_id] = retry
        self._log(f"Peer refused channel {chan.channel_id}; proposing it again as {kind}")
        self._send(chan.counterparty_node_id, retry)
        return True

    def _close_unfunded(self, chan: Channel, reason: ClosureReason, funding_tx: Optional[Transaction] = None) -> None:
        """Close a channel that never got funded: ChannelClosed, and DiscardFunding if we built a tx."""
        unanswered = chan.phase is ChannelPhase.UnacceptedInbound
        self._open_channel_msgs.pop(chan.channel_id, None)
        chan.phase = ChannelPhase.Closed
        self.channels.pop(chan.channel_id, None)
        if unanswered:
            return  # never got past the handshake: LDK raises no ChannelClosed
        self._queue_event(Event.ChannelClosed(
            channel_id=chan.channel_id, user_channel_id=chan.user_channel_id, reason=reason,
            counterparty_node_id=chan.counterparty_node_id, channel_capacity_sats=chan.channel_value_satoshis,
            channel_funding_txo=None, last_local_balance_msat=chan.value_to_self_msat,
        ))
        tx = funding_tx or chan.funding_transaction
        if tx is not None:
            self._queue_event(Event.DiscardFunding(chan.channel_id, FundingInfo.Tx(tx)))

    def _closed(self, chan: Channel, reason: ClosureReason) -> None:
        """A funded channel is closing: raise ChannelClosed and settle its HTLCs."""
        self._announce(chan, enabled=False)
        chan.phase = ChannelPhase.Closed
        self._queue_event(Event.ChannelClosed(
            channel_id=chan.channel_id, user_channel_id=chan.user_channel_id, reason=reason,
            counterparty_node_id=chan.counterparty_node_id, channel_capacity_sats=chan.channel_value_satoshis,
            channel_funding_txo=chan.funding_txo, last_local_balance_msat=chan.value_to_self_msat,
        ))
        # Inbound HTLCs not yet forwarded or claimed fail back now; outbound ones resolve on chain.
        for htlc in list(chan.pending_inbound_htlcs.values()):
            self.claimable.pop(htlc.payment_hash, None)
        self._changed()

    def _resolve_outbound_htlc_on_chain(self, chan: Channel, htlc_id: int, preimage: Optional[PaymentPreimage]) -> None:
        """The ChainMonitor resolved one of our HTLCs on chain: settle it backwards."""
        with self._lock:
            htlc = chan.pending_outbound_htlcs.pop(htlc_id, None)
            if htlc is None:
                return
            if preimage is not None:
                self._outbound_fulfilled(chan, htlc, preimage, on_chain=True)
            else:
                chan.value_to_self_msat += htlc.amount_msat
                reason = msgs.FailureOnion(self._our_node_id, PERMANENT_CHANNEL_FAILURE, chan.short_channel_id, True)
                self._outbound_failed(chan, htlc, reason)

    # --- payments: receiving -------------------------------------------------------------------

    def create_inbound_payment(
        self, min_value_msat: Optional[int], invoice_expiry_delta_secs: int,
        min_final_cltv_expiry_delta: Optional[int] = None,
    ) -> tuple[PaymentHash, PaymentSecret]:
        """Mirrors ``ChannelManager::create_inbound_payment``: a fresh hash and secret to be paid to."""
        with self._lock:
            preimage = PaymentPreimage(self._random_bytes())
            secret = PaymentSecret(self._random_bytes())
            payment_hash = preimage.payment_hash()
            self.inbound_payments[payment_hash] = InboundPayment(
                payment_hash, secret, preimage, min_value_msat, self.clock.unix_time() + invoice_expiry_delta_secs
            )
            self._changed()
            return payment_hash, secret

    def create_inbound_payment_for_hash(
        self, payment_hash: PaymentHash, min_value_msat: Optional[int], invoice_expiry_delta_secs: int,
        min_final_cltv_expiry: Optional[int] = None,
    ) -> PaymentSecret:
        """Mirrors the LDK method: you keep the preimage; the PaymentClaimable will not carry it."""
        with self._lock:
            secret = PaymentSecret(self._random_bytes())
            self.inbound_payments[payment_hash] = InboundPayment(
                payment_hash, secret, None, min_value_msat, self.clock.unix_time() + invoice_expiry_delta_secs
            )
            self._changed()
            return secret

    def create_bolt11_invoice(
        self, amount_msats: Optional[int] = None, description: str = "", invoice_expiry_delta_secs: int = 3600,
        min_final_cltv_expiry_delta: Optional[int] = None,
    ) -> Bolt11Invoice:
        """Mirrors ``ChannelManager::create_bolt11_invoice`` (its ``Bolt11InvoiceParameters`` as arguments)."""
        payment_hash, secret = self.create_inbound_payment(amount_msats, invoice_expiry_delta_secs)
        return Bolt11Invoice.create(
            network=self.network, node_secret_key=self.keys_manager.get_node_secret_key(),
            payment_hash=payment_hash, payment_secret=secret, amount_msat=amount_msats, description=description,
            timestamp=self.clock.unix_time(), expiry_secs=invoice_expiry_delta_secs,
            min_final_cltv_expiry_delta=min_final_cltv_expiry_delta or MIN_FINAL_CLTV_EXPIRY_DELTA,
        )

    def handle_update_add_htlc(self, counterparty_node_id: PublicKey, msg: msgs.UpdateAddHTLC) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or chan.phase not in (ChannelPhase.Ready, ChannelPhase.ShuttingDown):
                return
            chan.pending_inbound_htlcs[msg.htlc_id] = InboundHTLC(
                msg.htlc_id, msg.amount_msat, msg.payment_hash, msg.cltv_expiry, msg.onion, HTLCState.Committed
            )
            self.forward_htlcs.append(PendingForward(chan.channel_id, msg.htlc_id))
            self._forwardable()

    def _forwardable(self) -> None:
        """Ask the handler to call process_pending_htlc_forwards, once per batch as LDK does."""
        if not self._pending_forwardable_event:
            self._pending_forwardable_event = True
            self._queue_event(Event.PendingHTLCsForwardable(timedelta(milliseconds=MIN_HTLC_RELAY_HOLDING_CELL_MILLIS)))
        self._changed()

    def process_pending_htlc_forwards(self) -> None:
        """Mirrors ``ChannelManager::process_pending_htlc_forwards``.

        Forwards waiting HTLCs, fails back those that cannot go on, turns HTLCs to us into
        ``PaymentClaimable``, and retries failed payment paths.
        """
        with self._lock:
            self._pending_forwardable_event = False
            forwards, self.forward_htlcs = self.forward_htlcs, []
            fail_backs, self.fail_backs = self.fail_backs, []
            released, self._released_intercepts = self._released_intercepts, []
            for fwd in forwards:
                self._process_one_forward(fwd)
            for fwd, out_channel_id, amount_msat in released:
                self._forward_released(fwd, out_channel_id, amount_msat)
            for fail in fail_backs:
                self._fail_back_now(fail)
            self._retry_payments()
            self._changed()

    def _process_one_forward(self, fwd: PendingForward) -> None:
        chan = self.channels.get(fwd.channel_id)
        if chan is None or fwd.htlc_id not in chan.pending_inbound_htlcs:
            return
        htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
        if not htlc.onion.hops:
            self._receive(chan, htlc)
            return
        hop = htlc.onion.hops[0]
        if hop.short_channel_id in self.intercept_scids and self.config.accept_intercept_htlcs:
            intercept_id = InterceptId(_sha256(bytes(chan.channel_id), fwd.htlc_id.to_bytes(8, "big")))
            self.intercepted[intercept_id] = fwd
            self._queue_event(Event.HTLCIntercepted(
                intercept_id, hop.short_channel_id, htlc.payment_hash, htlc.amount_msat, hop.amt_to_forward
            ))
            return
        out_chan = self._channel_by_scid(hop.short_channel_id)
        if out_chan is None:
            self._fail_inbound(chan, htlc, UNKNOWN_NEXT_PEER, None,
                               HTLCDestination.UnknownNextHop(hop.short_channel_id))
            return
        ppm = out_chan.forwarding_fee_proportional_millionths
        fee_needed = out_chan.forwarding_fee_base_msat + hop.amt_to_forward * ppm // 1_000_000
        if htlc.amount_msat - hop.amt_to_forward < fee_needed:
            self._fail_inbound(chan, htlc, FEE_INSUFFICIENT, out_chan.get_outbound_payment_scid(), None)
            return
        if htlc.cltv_expiry - hop.outgoing_cltv_value < out_chan.cltv_expiry_delta:
            self._fail_inbound(chan, htlc, INCORRECT_CLTV_EXPIRY, out_chan.get_outbound_payment_scid(), None)
            return
        if not self._is_usable(out_chan) or hop.amt_to_forward > out_chan.next_outbound_htlc_limit_msat():
            self._fail_inbound(
                chan, htlc, TEMPORARY_CHANNEL_FAILURE, out_chan.get_outbound_payment_scid(),
                HTLCDestination.NextHopChannel(out_chan.counterparty_node_id, out_chan.channel_id),
            )
            return
        previous = HTLCPreviousHop(chan.channel_id, htlc.htlc_id, htlc.amount_msat, chan.counterparty_node_id)
        next_onion = msgs.Onion(htlc.onion.hops[1:], htlc.onion.final)
        self._add_outbound_htlc(out_chan, hop.amt_to_forward, htlc.payment_hash, hop.outgoing_cltv_value,
                                next_onion, previous_hop=previous, route=None)

    def _add_outbound_htlc(
        self, chan: Channel, amount_msat: int, payment_hash: PaymentHash, cltv_expiry: int, onion: msgs.Onion,
        previous_hop: Optional[HTLCPreviousHop], route: Optional[HTLCOutboundRoute],
    ) -> None:
        htlc_id = chan.next_outbound_htlc_id
        chan.next_outbound_htlc_id += 1
        chan.value_to_self_msat -= amount_msat
        chan.pending_outbound_htlcs[htlc_id] = OutboundHTLC(
            htlc_id, amount_msat, payment_hash, cltv_expiry, previous_hop, route, HTLCState.Committed
        )
        self._send(chan.counterparty_node_id, msgs.UpdateAddHTLC(
            chan.channel_id, htlc_id, amount_msat, payment_hash, cltv_expiry, onion
        ))
        self.chain_monitor.channel_updated(self, chan)

    def _receive(self, chan: Channel, htlc: InboundHTLC) -> None:
        """The HTLC is for us: check it, collect the parts, raise PaymentClaimable when whole."""
        final = htlc.onion.final
        purpose: Optional[PaymentPurpose] = None
        if final.keysend_preimage is not None:
            if final.keysend_preimage.payment_hash() == htlc.payment_hash:
                purpose = PaymentPurpose.SpontaneousPayment(final.keysend_preimage)
        else:
            registered = self.inbound_payments.get(htlc.payment_hash)
            if (
                registered is not None
                and final.payment_secret == registered.payment_secret
                and final.total_msat >= (registered.min_value_msat or 0)
                and self.clock.unix_time() <= registered.expires_at
            ):
                purpose = PaymentPurpose.Bolt11InvoicePayment(registered.payment_preimage, registered.payment_secret)
        if purpose is None or final.amt_to_forward > htlc.amount_msat or final.outgoing_cltv_value > htlc.cltv_expiry:
            self._fail_inbound(chan, htlc, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, None,
                               HTLCDestination.FailedPayment(htlc.payment_hash))
            return
        part = ClaimableHTLC(chan.channel_id, htlc.htlc_id, chan.user_channel_id, htlc.amount_msat,
                             htlc.cltv_expiry, final.total_msat, chan.counterparty_node_id)
        onion_fields = RecipientOnionFields(final.payment_secret, final.payment_metadata)
        claimable = self.claimable.get(htlc.payment_hash)
        if claimable is None or claimable.announced:
            # A second payment for a hash already claimable: LDK raises it as its own payment.
            claimable = ClaimablePayment(htlc.payment_hash, purpose, onion_fields, (), 0, False)
            self.claimable[htlc.payment_hash] = claimable
        claimable.htlcs = claimable.htlcs + (part,)
        received = sum(h.amount_msat for h in claimable.htlcs)
        if received >= final.total_msat:
            claimable.announced = True
            first = claimable.htlcs[0]
            self._queue_event(Event.PaymentClaimable(
                receiver_node_id=self._our_node_id,
                payment_hash=htlc.payment_hash,
                onion_fields=onion_fields,
                amount_msat=received,
                counterparty_skimmed_fee_msat=0,
                purpose=purpose,
                via_channel_id=first.channel_id,
                via_user_channel_id=first.user_channel_id,
                claim_deadline=min(h.cltv_expiry for h in claimable.htlcs) - HTLC_FAIL_BACK_BUFFER,
                payment_id=self._inbound_payment_id(claimable),
            ))

    def _inbound_payment_id(self, claimable: ClaimablePayment) -> PaymentId:
        parts = b"".join(bytes(h.channel_id) + h.htlc_id.to_bytes(8, "big") for h in claimable.htlcs)
        return PaymentId(_sha256(b"inbound payment id", parts))

    def claim_funds(self, payment_preimage: PaymentPreimage) -> None:
        """Mirrors ``ChannelManager::claim_funds``: release the preimage and take the money.

        ``PaymentClaimed`` follows once the claim is done. Does nothing if no payment with
        this preimage's hash is claimable.
        """
        if not isinstance(payment_preimage, PaymentPreimage):
            raise TypeError(
                f"claim_funds takes a PaymentPreimage, got {type(payment_preimage).__name__}; "
                "take it from the event's purpose: purpose.preimage()"
            )
        with self._lock:
            payment_hash = payment_preimage.payment_hash()
            claimable = self.claimable.get(payment_hash)
            if claimable is None or not claimable.announced:
                self._log(f"claim_funds: no claimable payment with hash {payment_hash}")
                return
            del self.claimable[payment_hash]
            htlcs = []
            for part in claimable.htlcs:
                chan = self.channels.get(part.channel_id)
                if chan is None or part.htlc_id not in chan.pending_inbound_htlcs:
                    continue
                self._fulfill_inbound(chan, chan.pending_inbound_htlcs[part.htlc_id], payment_preimage)
                htlcs.append(ClaimedHTLC(part.channel_id, part.user_channel_id, part.cltv_expiry, part.amount_msat, 0))
            purpose = claimable.purpose
            if isinstance(purpose, PaymentPurpose.Bolt11InvoicePayment) and purpose.payment_preimage is None:
                purpose = PaymentPurpose.Bolt11InvoicePayment(payment_preimage, purpose.payment_secret)
            self._queue_event(Event.PaymentClaimed(
                receiver_node_id=self._our_node_id,
                payment_hash=payment_hash,
                amount_msat=sum(h.value_msat for h in htlcs),
                purpose=purpose,
                htlcs=tuple(htlcs),
                sender_intended_total_msat=claimable.htlcs[0].total_msat if claimable.htlcs else None,
                onion_fields=claimable.onion_fields,
                payment_id=self._inbound_payment_id(claimable),
            ))

    def claim_funds_with_known_custom_tlvs(self, payment_preimage: PaymentPreimage) -> None:
        """Mirrors the LDK method; custom TLVs are not modelled, so it is ``claim_funds``."""
        self.claim_funds(payment_preimage)

    def _fulfill_inbound(self, chan: Channel, htlc: InboundHTLC, preimage: PaymentPreimage) -> None:
        del chan.pending_inbound_htlcs[htlc.htlc_id]
        chan.value_to_self_msat += htlc.amount_msat
        self._send(chan.counterparty_node_id, msgs.UpdateFulfillHTLC(chan.channel_id, htlc.htlc_id, preimage))
        self.chain_monitor.channel_updated(self, chan, preimage=preimage)
        self._maybe_closing_signed(chan)

    def fail_htlc_backwards(self, payment_hash: PaymentHash) -> None:
        """Mirrors ``ChannelManager::fail_htlc_backwards``: refuse a claimable payment.

        The sender is told the payment details were wrong. Does nothing if the hash is
        not claimable.
        """
        with self._lock:
            claimable = self.claimable.pop(payment_hash, None)
            if claimable is None:
                return
            for part in claimable.htlcs:
                chan = self.channels.get(part.channel_id)
                if chan is None or part.htlc_id not in chan.pending_inbound_htlcs:
                    continue
                reason = msgs.FailureOnion(self._our_node_id, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, None, None)
                self._queue_fail_back(PendingFailBack(chan.channel_id, part.htlc_id, reason,
                                                      HTLCDestination.FailedPayment(payment_hash)))

    def _fail_inbound(
        self, chan: Channel, htlc: InboundHTLC, code: int, scid: Optional[int], destination: Optional[HTLCDestination]
    ) -> None:
        """Fail an inbound HTLC back: queued for the next process_pending_htlc_forwards, as LDK does."""
        permanent = bool(code & PERM) if scid is not None else None
        reason = msgs.FailureOnion(self._our_node_id, code, scid, permanent)
        self._queue_fail_back(PendingFailBack(chan.channel_id, htlc.htlc_id, reason, destination))

    def _queue_fail_back(self, fail: PendingFailBack) -> None:
        """LDK's ``fail_htlc_backwards_internal``: ``HTLCHandlingFailed`` now, then a new
        ``PendingHTLCsForwardable``; the ``update_fail_htlc`` goes out on the next processing."""
        self.fail_backs.append(fail)
        if fail.destination is not None:
            chan = self.channels.get(fail.channel_id)
            self._queue_event(Event.HTLCHandlingFailed(chan.channel_id if chan else fail.channel_id,
                                                       fail.destination))
        self._forwardable()

    def _fail_back_now(self, fail: PendingFailBack) -> None:
        chan = self.channels.get(fail.channel_id)
        if chan is None or fail.htlc_id not in chan.pending_inbound_htlcs:
            return
        del chan.pending_inbound_htlcs[fail.htlc_id]
        if chan.phase is not ChannelPhase.Closed:
            self._send(chan.counterparty_node_id, msgs.UpdateFailHTLC(chan.channel_id, fail.htlc_id, fail.reason))
            self.chain_monitor.channel_updated(self, chan)
        self._maybe_closing_signed(chan)

    def _fail_expired_claimables(self, height: int) -> None:
        """Payments left unclaimed until their claim deadline are failed back, as LDK does."""
        for payment_hash, claimable in list(self.claimable.items()):
            deadline = min(h.cltv_expiry for h in claimable.htlcs) - HTLC_FAIL_BACK_BUFFER
            if height >= deadline:
                self._log(f"Failing back unclaimed payment {payment_hash}: its claim deadline {deadline} passed")
                self.fail_htlc_backwards(payment_hash)

    # --- payments: settling backwards ---------------------------------------------------------------

    def handle_update_fulfill_htlc(self, counterparty_node_id: PublicKey, msg: msgs.UpdateFulfillHTLC) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or msg.htlc_id not in chan.pending_outbound_htlcs:
                return
            htlc = chan.pending_outbound_htlcs.pop(msg.htlc_id)
            if msg.payment_preimage.payment_hash() != htlc.payment_hash:
                return
            self._outbound_fulfilled(chan, htlc, msg.payment_preimage, on_chain=False)
            self.chain_monitor.channel_updated(self, chan)
            self._maybe_closing_signed(chan)

    def _outbound_fulfilled(self, chan: Channel, htlc: OutboundHTLC, preimage: PaymentPreimage, on_chain: bool) -> None:
        if htlc.previous_hop is not None:
            prev = htlc.previous_hop
            prev_chan = self.channels.get(prev.channel_id)
            if prev_chan is not None and prev.htlc_id in prev_chan.pending_inbound_htlcs:
                self._fulfill_inbound(prev_chan, prev_chan.pending_inbound_htlcs[prev.htlc_id], preimage)
            self._queue_event(Event.PaymentForwarded(
                prev_channel_id=prev.channel_id,
                next_channel_id=chan.channel_id,
                prev_user_channel_id=prev_chan.user_channel_id if prev_chan else None,
                next_user_channel_id=chan.user_channel_id,
                prev_node_id=prev.counterparty_node_id,
                next_node_id=chan.counterparty_node_id,
                total_fee_earned_msat=prev.amount_msat - htlc.amount_msat,
                skimmed_fee_msat=None,
                claim_from_onchain_tx=on_chain,
                outbound_amount_forwarded_msat=htlc.amount_msat,
            ))
            return
        route = htlc.route
        payment = self.pending_outbound.get(route.payment_id)
        if payment is None:
            return
        payment.inflight_htlcs -= 1
        if not payment.sent_event_emitted:
            payment.sent_event_emitted = True
            payment.state = PaymentState.Fulfilled
            payment.preimage = preimage
            fees = sum(p.fee_msat() for p in self._payment_paths.get(route.payment_id, [route.path]))
            self._queue_event(Event.PaymentSent(
                payment_id=route.payment_id, payment_preimage=preimage, payment_hash=htlc.payment_hash,
                fee_paid_msat=fees,
            ))
        self._queue_event(Event.PaymentPathSuccessful(route.payment_id, htlc.payment_hash, route.path))
        # Kept (not forgotten) for IDEMPOTENCY_TIMEOUT_TICKS: a repeat send_payment is a DuplicatePayment.

    def _remove_stale_payments(self) -> None:
        """LDK's ``remove_stale_payments``: forget a fulfilled payment IDEMPOTENCY_TIMEOUT_TICKS ticks
        after its last HTLC resolved."""
        for payment in list(self.pending_outbound.values()):
            if payment.state is not PaymentState.Fulfilled:
                continue
            if payment.inflight_htlcs:
                payment.timer_ticks_without_htlcs = 0
                continue
            payment.timer_ticks_without_htlcs += 1
            if payment.timer_ticks_without_htlcs > IDEMPOTENCY_TIMEOUT_TICKS:
                self._forget_payment(payment.payment_id)

    def _forget_payment(self, payment_id: PaymentId) -> None:
        self.pending_outbound.pop(payment_id, None)
        self._route_params.pop(payment_id, None)
        self._payment_paths.pop(payment_id, None)

    def handle_update_fail_htlc(self, counterparty_node_id: PublicKey, msg: msgs.UpdateFailHTLC) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or msg.htlc_id not in chan.pending_outbound_htlcs:
                return
            htlc = chan.pending_outbound_htlcs.pop(msg.htlc_id)
            chan.value_to_self_msat += htlc.amount_msat
            self.chain_monitor.channel_updated(self, chan)
            self._outbound_failed(chan, htlc, msg.reason)
            self._maybe_closing_signed(chan)

    def _outbound_failed(self, chan: Channel, htlc: OutboundHTLC, reason: msgs.FailureOnion) -> None:
        if htlc.previous_hop is not None:
            prev = htlc.previous_hop
            self._queue_fail_back(PendingFailBack(
                prev.channel_id, prev.htlc_id, reason,
                HTLCDestination.NextHopChannel(chan.counterparty_node_id, chan.channel_id),
            ))
            return
        route = htlc.route
        payment = self.pending_outbound.get(route.payment_id)
        if payment is None:
            return
        payment.inflight_htlcs -= 1
        paths = self._payment_paths.get(route.payment_id, [])
        if route.path in paths:
            paths.remove(route.path)
        at_payee = reason.origin == route.path.hops[-1].pubkey
        if route.is_probe:
            if at_payee:
                self._queue_event(Event.ProbeSuccessful(route.payment_id, htlc.payment_hash, route.path))
            else:
                self._queue_event(Event.ProbeFailed(route.payment_id, htlc.payment_hash, route.path,
                                                    reason.short_channel_id))
            self._forget_payment(route.payment_id)
            return
        network_update = None
        if reason.short_channel_id is not None and not at_payee:
            permanent_update = bool(reason.network_update_permanent)
            network_update = NetworkUpdate.ChannelFailure(reason.short_channel_id, permanent_update)
            payment.failed_scids = payment.failed_scids + (reason.short_channel_id,)
        permanent = at_payee
        if payment.state is PaymentState.Fulfilled:
            permanent = False  # a late failure of a part after success changes nothing
        retry_now = not permanent and payment.state is PaymentState.Retryable and payment.can_retry(self.clock.now_us())
        self._queue_event(Event.PaymentPathFailed(
            payment_id=route.payment_id, payment_hash=htlc.payment_hash, payment_failed_permanently=permanent,
            failure=PathFailure.OnPath(network_update), path=route.path,
            short_channel_id=None if at_payee else reason.short_channel_id,
        ))
        if payment.state is PaymentState.Fulfilled:
            return  # kept for IDEMPOTENCY_TIMEOUT_TICKS, like any fulfilled payment
        if permanent:
            self._payment_failed(payment, PaymentFailureReason.RecipientRejected)
        elif retry_now:
            payment.pending_retry = True
            self._forwardable()
        elif payment.inflight_htlcs == 0:
            reason_ = (
                PaymentFailureReason.UserAbandoned
                if payment.state is PaymentState.Abandoned
                else PaymentFailureReason.RetriesExhausted
            )
            self._payment_failed(payment, reason_)

    def _payment_failed(self, payment: PendingOutboundPayment, reason: PaymentFailureReason) -> None:
        if payment.payment_id not in self.pending_outbound:
            return
        self._forget_payment(payment.payment_id)
        self._queue_event(Event.PaymentFailed(payment.payment_id, payment.payment_hash, reason))

    # --- payments: sending ---------------------------------------------------------------------------

    def send_payment(
        self, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields, payment_id: PaymentId,
        route_params: RouteParameters, retry_strategy: Retry,
    ) -> None:
        """Mirrors ``ChannelManager::send_payment``: find a route and send, retrying as told.

        Raises ``RetryableSendFailure`` if the payment cannot start; otherwise its outcome
        arrives as events: ``PaymentSent`` or ``PaymentFailed``, and one path event per path.
        """
        with self._lock:
            self._start_payment(payment_hash, recipient_onion, payment_id, route_params, retry_strategy, None)

    def send_spontaneous_payment(
        self, payment_preimage: Optional[PaymentPreimage], recipient_onion: RecipientOnionFields,
        payment_id: PaymentId, route_params: RouteParameters, retry_strategy: Retry,
    ) -> PaymentHash:
        """Mirrors ``ChannelManager::send_spontaneous_payment``: a keysend payment."""
        with self._lock:
            preimage = payment_preimage or PaymentPreimage(self._random_bytes())
            payment_hash = preimage.payment_hash()
            self._start_payment(payment_hash, recipient_onion, payment_id, route_params, retry_strategy, preimage)
            return payment_hash

    def _start_payment(
        self, payment_hash: PaymentHash, onion: RecipientOnionFields, payment_id: PaymentId,
        route_params: RouteParameters, retry: Retry, keysend_preimage: Optional[PaymentPreimage],
    ) -> None:
        if payment_id in self.pending_outbound:
            raise RetryableSendFailure.DuplicatePayment()
        params = route_params.payment_params
        if params.expiry_time is not None and params.expiry_time < self.clock.unix_time():
            raise RetryableSendFailure.PaymentExpired()
        try:
            route = self.router.find_route(self._our_node_id, route_params, self.list_usable_channels(), None)
        except LightningError as e:
            self._log(f"Failed to find a route for payment {payment_id}: {e.err}")
            raise RetryableSendFailure.RouteNotFound() from None
        payment = PendingOutboundPayment(
            payment_id=payment_id, payment_hash=payment_hash, onion=onion, keysend_preimage=keysend_preimage,
            total_msat=route_params.final_value_msat, payee=bytes(params.payee_pubkey),
            final_cltv_expiry_delta=params.final_cltv_expiry_delta, retry=retry, attempts=1,
            started_at_us=self.clock.now_us(), failed_scids=(), state=PaymentState.Retryable, inflight_htlcs=0,
            preimage=None, is_probe=False, sent_event_emitted=False, pending_retry=False, failure_reason=None,
        )
        self.pending_outbound[payment_id] = payment
        self._route_params[payment_id] = route_params
        for path in route.paths:
            self._send_path(payment, path, route_params.final_value_msat)

    def send_payment_with_route(
        self, route: Any, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields, payment_id: PaymentId
    ) -> None:
        """Mirrors ``ChannelManager::send_payment_with_route``: pay along the given paths (MPP if several)."""
        with self._lock:
            if payment_id in self.pending_outbound:
                raise RetryableSendFailure.DuplicatePayment()
            total = sum(p.final_value_msat() for p in route.paths)
            payment = PendingOutboundPayment(
                payment_id=payment_id, payment_hash=payment_hash, onion=recipient_onion, keysend_preimage=None,
                total_msat=total, payee=bytes(route.paths[0].hops[-1].pubkey),
                final_cltv_expiry_delta=route.paths[0].hops[-1].cltv_expiry_delta, retry=None, attempts=1,
                started_at_us=self.clock.now_us(), failed_scids=(), state=PaymentState.Retryable, inflight_htlcs=0,
                preimage=None, is_probe=False, sent_event_emitted=False, pending_retry=False, failure_reason=None,
            )
            self.pending_outbound[payment_id] = payment
            for path in route.paths:
                self._send_path(payment, path, total)

    def _send_path(self, payment: PendingOutboundPayment, path: Path, total_msat: int) -> None:
        """Build the onion for one path and offer the first HTLC."""
        hops = path.hops
        first = self._channel_by_scid(hops[0].short_channel_id)
        if first is None or not self._is_usable(first):
            err = APIError.ChannelUnavailable("No channel available with first hop!")
            self._queue_event(Event.PaymentPathFailed(payment.payment_id, payment.payment_hash, False,
                                                      PathFailure.InitialSend(err), path, None))
            payment.pending_retry = True
            self._forwardable()
            return
        height = self.best_block_height
        final_cltv = height + hops[-1].cltv_expiry_delta
        final = msgs.FinalPayload(
            hops[-1].fee_msat, final_cltv, payment.onion.payment_secret, total_msat,
            payment.onion.payment_metadata, payment.keysend_preimage,
        )
        # Walk back from the recipient: each hop forwards what the next needs, plus its fee.
        payloads: list[msgs.HopPayload] = []
        amount, cltv = hops[-1].fee_msat, final_cltv
        for i in range(len(hops) - 1, 0, -1):
            payloads.insert(0, msgs.HopPayload(hops[i].short_channel_id, amount, cltv))
            amount += hops[i - 1].fee_msat
            cltv += hops[i - 1].cltv_expiry_delta
        payment.inflight_htlcs += 1
        self._payment_paths.setdefault(payment.payment_id, []).append(path)
        self._add_outbound_htlc(first, amount, payment.payment_hash, cltv, msgs.Onion(tuple(payloads), final),
                                previous_hop=None, route=HTLCOutboundRoute(payment.payment_id, path, payment.is_probe))

    def _retry_payments(self) -> None:
        for payment in list(self.pending_outbound.values()):
            if not payment.pending_retry:
                continue
            payment.pending_retry = False
            if payment.state is not PaymentState.Retryable:
                continue
            base = self._route_params.get(payment.payment_id)
            if base is None:
                continue
            params = base.payment_params
            for scid in payment.failed_scids:
                params = params.with_previously_failed_channel(scid)
            route_params = RouteParameters(params, base.final_value_msat, base.max_total_routing_fee_msat)
            try:
                route = self.router.find_route(self._our_node_id, route_params, self.list_usable_channels(), None)
            except LightningError:
                if payment.inflight_htlcs == 0:
                    self._payment_failed(payment, PaymentFailureReason.RouteNotFound)
                continue
            payment.attempts += 1
            for path in route.paths:
                self._send_path(payment, path, route_params.final_value_msat)

    def abandon_payment(self, payment_id: PaymentId) -> None:
        """Mirrors ``ChannelManager::abandon_payment``: stop retrying.

        ``PaymentFailed { reason: UserAbandoned }`` follows once no part is in flight.
        """
        with self._lock:
            payment = self.pending_outbound.get(payment_id)
            if payment is None or payment.state is PaymentState.Fulfilled:
                return
            payment.state = PaymentState.Abandoned
            if payment.inflight_htlcs == 0:
                self._payment_failed(payment, PaymentFailureReason.UserAbandoned)

    def send_probe(self, path: Path) -> tuple[PaymentHash, PaymentId]:
        """Mirrors ``ChannelManager::send_probe``: send an HTLC nobody can claim, to learn liquidity."""
        with self._lock:
            payment_id = PaymentId(self._random_bytes())
            if len(path.hops) < 2 and path.blinded_tail is None:  # the first hop's liquidity is known already
                raise ProbeSendFailure.ParameterError(
                    APIError.APIMisuseError("No need probing a path with less than two hops"))
            payment_hash = PaymentHash(_sha256(b"ldkkit probe", bytes(payment_id)))
            payment = PendingOutboundPayment(
                payment_id=payment_id, payment_hash=payment_hash, onion=RecipientOnionFields(None, None),
                keysend_preimage=None, total_msat=path.final_value_msat(), payee=bytes(path.hops[-1].pubkey),
                final_cltv_expiry_delta=path.hops[-1].cltv_expiry_delta, retry=None, attempts=1,
                started_at_us=self.clock.now_us(), failed_scids=(), state=PaymentState.Retryable, inflight_htlcs=0,
                preimage=None, is_probe=True, sent_event_emitted=False, pending_retry=False, failure_reason=None,
            )
            first = self._channel_by_scid(path.hops[0].short_channel_id)
            if first is None or not self._is_usable(first):
                err = APIError.ChannelUnavailable("No channel available with first hop!")
                raise ProbeSendFailure.ParameterError(err)
            self.pending_outbound[payment_id] = payment
            self._send_path(payment, path, path.final_value_msat())
            return payment_hash, payment_id

    # --- interception ---------------------------------------------------------------------------

    def get_intercept_scid(self) -> int:
        """Mirrors ``ChannelManager::get_intercept_scid``: a fake scid to put in route hints."""
        with self._lock:
            scid = int.from_bytes(self._random_bytes()[:5], "big")
            self.intercept_scids.add(scid)
            return scid

    def forward_intercepted_htlc(
        self, intercept_id: InterceptId, next_hop_channel_id: ChannelId, next_node_id: PublicKey,
        amt_to_forward_msat: int,
    ) -> None:
        """Mirrors ``ChannelManager::forward_intercepted_htlc``."""
        with self._lock:
            fwd = self.intercepted.get(intercept_id)
            if fwd is None:
                raise APIError.APIMisuseError(f"Payment with intercept id {intercept_id} not found")
            out_chan = self._channel_for_peer(next_hop_channel_id, next_node_id)
            if not self._is_usable(out_chan):
                raise APIError.ChannelUnavailable(f"Channel with id {next_hop_channel_id} not fully established")
            del self.intercepted[intercept_id]
            # LDK puts it in forward_htlcs: it goes out on the next process_pending_htlc_forwards.
            self._released_intercepts.append((fwd, out_chan.channel_id, amt_to_forward_msat))
            self._forwardable()

    def _forward_released(self, fwd: PendingForward, out_channel_id: ChannelId, amount_msat: int) -> None:
        chan = self.channels.get(fwd.channel_id)
        if chan is None or fwd.htlc_id not in chan.pending_inbound_htlcs:
            return
        htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
        out_chan = self.channels.get(out_channel_id)
        if out_chan is None or not self._is_usable(out_chan):
            self._fail_inbound(chan, htlc, TEMPORARY_CHANNEL_FAILURE, None,
                               HTLCDestination.UnknownNextHop(htlc.onion.hops[0].short_channel_id))
            return
        previous = HTLCPreviousHop(chan.channel_id, htlc.htlc_id, htlc.amount_msat, chan.counterparty_node_id)
        self._add_outbound_htlc(out_chan, amount_msat, htlc.payment_hash, htlc.onion.hops[0].outgoing_cltv_value,
                                msgs.Onion(htlc.onion.hops[1:], htlc.onion.final), previous, None)

    def fail_intercepted_htlc(self, intercept_id: InterceptId) -> None:
        """Mirrors ``ChannelManager::fail_intercepted_htlc``: fail it back as unknown_next_peer."""
        with self._lock:
            fwd = self.intercepted.pop(intercept_id, None)
            if fwd is None:
                raise APIError.APIMisuseError(f"Payment with intercept id {intercept_id} not found")
            chan = self.channels[fwd.channel_id]
            htlc = chan.pending_inbound_htlcs[fwd.htlc_id]
            scid = htlc.onion.hops[0].short_channel_id
            self._fail_inbound(chan, htlc, UNKNOWN_NEXT_PEER, None, HTLCDestination.UnknownNextHop(scid))

    # --- timers ------------------------------------------------------------------------------------

    def timer_tick_occurred(self) -> None:
        """Mirrors ``ChannelManager::timer_tick_occurred`` (call about once a minute).

        Expires unanswered OpenChannelRequests after 2 ticks, closes channels left unfunded
        for 60 ticks, and fails incomplete multi-part payments after 3 ticks.
        """
        with self._lock:
            changed = False
            self._remove_stale_payments()
            for chan in list(self.channels.values()):
                if chan.phase is ChannelPhase.UnacceptedInbound:
                    chan.ticks_waiting += 1
                    if chan.ticks_waiting >= UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS:
                        del self.channels[chan.channel_id]
                        expired = msgs.ErrorMessage(chan.channel_id, "Channel force-closed")
                        self._send(chan.counterparty_node_id, expired)
                        self._log(f"Dropped channel request {chan.channel_id}: not accepted within 2 ticks")
                        changed = True
                elif chan.phase in (ChannelPhase.OutboundAwaitingAccept, ChannelPhase.AwaitingFundingTx,
                                    ChannelPhase.InboundAwaitingFunding, ChannelPhase.FundingCreatedSent):
                    chan.ticks_waiting += 1
                    if chan.ticks_waiting >= UNFUNDED_CHANNEL_AGE_LIMIT_TICKS:
                        timeout = "Force-closing pending channel due to timeout awaiting establishment handshake"
                        self._send(chan.counterparty_node_id, msgs.ErrorMessage(chan.channel_id, timeout))
                        self._close_unfunded(chan, ClosureReason.HolderForceClosed(False))  # as LDK's tick
                        changed = True
            for payment_hash, claimable in list(self.claimable.items()):
                if claimable.announced:
                    continue
                claimable.ticks += 1
                if claimable.ticks >= MPP_TIMEOUT_TICKS:
                    del self.claimable[payment_hash]
                    for part in claimable.htlcs:
                        reason = msgs.FailureOnion(self._our_node_id, MPP_TIMEOUT, None, None)
                        self._queue_fail_back(PendingFailBack(part.channel_id, part.htlc_id, reason,
                                                              HTLCDestination.FailedPayment(payment_hash)))
                    changed = True
            if changed:
                self._changed()

    # --- persistence -----------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Mirrors ``ChannelManager::write``: channels, payments and the events LDK persists.

        Channels that never got funded are left out, as LDK drops them on write.
        """
        with self._lock:
            state = {
                "channels": tuple(c for c in self.channels.values() if c.is_funded() or c.phase is ChannelPhase.Closed),
                "events": tuple(e for e in self._events.pending() if type(e).persisted),
                "inbound_payments": tuple(self.inbound_payments.values()),
                "claimable": tuple(self.claimable.values()),
                "pending_outbound": tuple(self.pending_outbound.values()),
                "route_params": tuple(self._route_params.items()),
                "payment_paths": tuple((k, tuple(v)) for k, v in self._payment_paths.items()),
                "forward_htlcs": tuple(self.forward_htlcs),
                "fail_backs": tuple(self.fail_backs),
                "best_block_height": self.best_block_height,
            }
            return encode(state)

    def restore(self, data: bytes) -> None:
        """Load what :meth:`encode` wrote into this freshly built manager (``ChannelManager::read``)."""
        state = decode(data, dict)
        with self._lock:
            self.channels = {c.channel_id: c for c in state["channels"]}
            self._events.replace(list(state["events"]))
            self.inbound_payments = {p.payment_hash: p for p in state["inbound_payments"]}
            self.claimable = {c.payment_hash: c for c in state["claimable"]}
            self.pending_outbound = {p.payment_id: p for p in state["pending_outbound"]}
            self._route_params = dict(state["route_params"])
            self._payment_paths = {k: list(v) for k, v in state["payment_paths"]}
            self.forward_htlcs = list(state["forward_htlcs"])
            self.fail_backs = list(state["fail_backs"])
            self.best_block_height = state["best_block_height"]
            # LDK regenerates PendingHTLCsForwardable on start-up when forwards are pending.
            if self.forward_htlcs or self.fail_backs:
                self._pending_forwardable_event = False
                self._forwardable()
            for chan in self.channels.values():
                if chan.is_funded():
                    self.chain_monitor.watch_channel(self, chan)
            self._changed()

    # --- messages ------------------------------------------------------------------------------------

    def handle_message(self, counterparty_node_id: PublicKey, msg: Record) -> None:
        """Route a wire message from a peer to its handler (LDK's ``ChannelMessageHandler``)."""
        match msg:
            case msgs.OpenChannel():
                self.handle_open_channel(counterparty_node_id, msg)
            case msgs.AcceptChannel():
                self.handle_accept_channel(counterparty_node_id, msg)
            case msgs.FundingCreated():
                self.handle_funding_created(counterparty_node_id, msg)
            case msgs.FundingSigned():
                self.handle_funding_signed(counterparty_node_id, msg)
            case msgs.ChannelReady():
                self.handle_channel_ready(counterparty_node_id, msg)
            case msgs.UpdateAddHTLC():
                self.handle_update_add_htlc(counterparty_node_id, msg)
            case msgs.UpdateFulfillHTLC():
                self.handle_update_fulfill_htlc(counterparty_node_id, msg)
            case msgs.UpdateFailHTLC():
                self.handle_update_fail_htlc(counterparty_node_id, msg)
            case msgs.Shutdown():
                self.handle_shutdown(counterparty_node_id, msg)
            case msgs.ClosingSigned():
                self.handle_closing_signed(counterparty_node_id, msg)
            case msgs.ErrorMessage():
                self.handle_error(counterparty_node_id, msg)
            case _:
                raise TypeError(f"ChannelManager cannot handle a {type(msg).__name__} message")

