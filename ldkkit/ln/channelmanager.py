"""The ChannelManager: a node's channels, payments and the events it raises about them.

Mirrors ``lightning::ln::channelmanager::ChannelManager`` in LDK 0.1: its method names,
arguments, ``APIError`` kinds and messages, its event order and its timer rules. The
wire protocol underneath is simplified (see :mod:`ldkkit.ln.msgs`), but what a handler
sees, and the balances, follow LDK.

This module holds the manager's state, its public methods and what ties the parts
together; each part lives in its own module, as LDK splits its code:

- :mod:`ldkkit.ln.channel_establishment`: opening a channel, up to ``ChannelReady``
- :mod:`ldkkit.ln.channel_close`: cooperative and forced closes, ``ChannelClosed``
- :mod:`ldkkit.ln.inbound_payment`: the hash and secret of a payment we expect
- :mod:`ldkkit.ln.claimable_payments`: payments to us, until claimed or failed back
- :mod:`ldkkit.ln.outbound_payment`: ``OutboundPayments``, the payments and probes we send
  (:mod:`ldkkit.ln.onion_utils` builds each path's onion)
- :mod:`ldkkit.ln.forwarding`: forwarding HTLCs, intercepting them, failing them back

Threading: every public method takes the manager's lock, so notebook cells, a background
processor and the simulated network can call in at once. Event handlers are called
without the lock held, so a handler may call back into the manager, as in LDK.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Optional

from ..bitcoin import Transaction
from ..chain import BestBlock
from ..chain.chaininterface import ConfirmationTarget
from ..chain.chainmonitor import (
    ANTI_REORG_DELAY,
    CLTV_CLAIM_BUFFER,
    HTLC_FAIL_BACK_BUFFER,
    LATENCY_GRACE_PERIOD_BLOCKS,
)
from ..config import UserConfig
from ..encoding_cache import EncodingCache
from ..errors import APIError
from ..events import ClosureReason, Event, HTLCDestination
from ..events.queue import EventQueue
from ..invoice import Bolt11Invoice
from ..ln import msgs
from ..ln.channel import (
    Channel,
    ChannelPhase,
    HTLCOutboundRoute,
    HTLCPreviousHop,
    HTLCState,
    InboundHTLC,
    OutboundHTLC,
)
from ..ln.channel_state import ChannelDetails
from ..ln.outbound_payment import (
    OutboundPayments,
    PendingOutboundPayment,
    RecentPaymentDetails,
    RecipientOnionFields,
    Retry,
    SendAlongPathArgs,
)
from ..logger import Logger
from ..routing.router import Path, Route, RouteParameters
from ..ser import Record, decode
from ..types import (
    BlockHash,
    ChannelId,
    InterceptId,
    PaymentHash,
    PaymentId,
    PaymentPreimage,
    PaymentSecret,
    PublicKey,
    Txid,
)
from ..wakers import Future
from . import (
    channel_close,
    channel_establishment,
    channelmanager_persistence,
    claimable_payments,
    forwarding,
    inbound_payment,
    invoice_utils,
    onion_utils,
)
from .channel_establishment import MAX_UNFUNDED_CHANNEL_PEERS
from .claimable_payments import MPP_TIMEOUT_TICKS, ClaimableHTLC, ClaimablePayment, FailureCode
from .forwarding import MIN_HTLC_RELAY_HOLDING_CELL_MILLIS, PERMANENT_CHANNEL_FAILURE, PendingFailBack, PendingForward

# The names this module defined before its parts moved out stay importable from here.
__all__ = [
    "ANTI_REORG_DELAY", "CLTV_CLAIM_BUFFER", "HTLC_FAIL_BACK_BUFFER", "LATENCY_GRACE_PERIOD_BLOCKS",
    "MAX_UNFUNDED_CHANNEL_PEERS", "MIN_HTLC_RELAY_HOLDING_CELL_MILLIS", "MPP_TIMEOUT_TICKS", "ChannelManager",
    "ClaimableHTLC", "ClaimablePayment", "PendingFailBack", "PendingForward",
]


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
        self._encoded_channels = EncodingCache()  # (what the last persist wrote of each channel)
        #: LDK's ``inbound_payment_key``: the node's keys for the secrets of the payments it expects (nothing stored).
        self.inbound_payment_key = keys_manager.get_inbound_payment_key()
        self.claimable: dict[PaymentHash, ClaimablePayment] = {}
        #: LDK's ``pending_outbound_payments``: the payments we send (see :mod:`ldkkit.ln.outbound_payment`).
        self._pending_outbound_payments = OutboundPayments(
            clock=clock, pending_events=self._queue_event, forwardable=lambda: forwarding.forwardable(self),
            log=self._log,
        )
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
        self._awaiting_funding_since: dict[ChannelId, int] = {}  # inbound channels: height funding was promised
        #: LDK's ``funding_batch_states``: the channels of each batch funding transaction not yet broadcast.
        self.funding_batches: dict[Txid, list[Channel]] = {}

    @property
    def pending_outbound(self) -> dict[PaymentId, PendingOutboundPayment]:
        """The payments being sent, by id."""
        return self._pending_outbound_payments.pending_outbound_payments

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
        if node_id not in self.peers and isinstance(msg, channel_establishment.HTLC_UPDATES):
            return channel_establishment.hold(self, msg)  # (sent once the peer is back)
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

    def current_best_block(self) -> BestBlock:
        """Mirrors ``ChannelManager::current_best_block``: the last block connected (``.height``, ``.block_hash``)."""
        blocks = self.chain_monitor.chain.blocks
        height = self.best_block_height
        return BestBlock(BlockHash(blocks[height].block_hash if height < len(blocks) else bytes(32)), height)

    def list_channels(self) -> list[ChannelDetails]:
        """Mirrors ``ChannelManager::list_channels``: every channel not closed (a request not accepted is none yet)."""
        return self._details()

    def list_usable_channels(self) -> list[ChannelDetails]:
        """Mirrors ``ChannelManager::list_usable_channels``: channels that can send now."""
        return self._details(usable_only=True)

    def _details(self, usable_only: bool = False, htlcs: bool = True) -> list[ChannelDetails]:
        """The channels' details; for the router, which reads no HTLC's, without them (``htlcs=False``: faster)."""
        with self._lock:
            feerate = self._feerate(ConfirmationTarget.AnchorChannelFee)  # (asked once: the same for every channel)
            return [ChannelDetails.from_channel(c, self.best_block_height, feerate, usable, htlcs)
                    for c in self.channels.values()
                    if c.phase is not ChannelPhase.Closed and c.phase is not ChannelPhase.UnacceptedInbound
                    and ((usable := self._is_usable(c)) or not usable_only)]

    def list_channels_with_counterparty(self, counterparty_node_id: PublicKey) -> list[ChannelDetails]:
        return [c for c in self.list_channels() if c.counterparty.node_id == counterparty_node_id]

    def _is_usable(self, chan: Channel) -> bool:  # (ready, and its peer connected)
        return chan.is_usable() and chan.counterparty_node_id in self.peers

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
        """Mirrors ``EventsProvider::process_pending_events`` (see :mod:`ldkkit.events.queue`): each queued event to
        ``handler`` in order (it may call back into the manager). ``ReplayEvent`` makes the event come back next time;
        any other exception leaves it queued and is raised as an ``EventHandlerError`` naming it."""
        if self._events.process(handler):
            self._changed()

    async def process_pending_events_async(self, handler: Callable[[Event], Any]) -> None:
        """Mirrors ``ChannelManager::process_pending_events_async``; ``handler`` may be async."""
        if await self._events.process_async(handler):
            self._changed()

    # --- channels: opening (see channel_establishment) -------------------------------------------

    def peer_connected(self, counterparty_node_id: PublicKey) -> None:
        """``ChannelMessageHandler::peer_connected``: what answering ``channel_reestablish`` leads to in LDK."""
        with self._lock:
            self.peers.add(counterparty_node_id)
            channel_establishment.reestablish(self, counterparty_node_id)
            self._changed()

    def peer_disconnected(self, counterparty_node_id: PublicKey) -> None:
        """Unfunded channels with the peer are forgotten, as BOLT 2 requires."""
        with self._lock:
            self.peers.discard(counterparty_node_id)
            channel_establishment.drop_unfunded_channels(self, counterparty_node_id)
            self._changed()

    def create_channel(
        self, their_network_key: PublicKey, channel_value_satoshis: int, push_msat: int, user_channel_id: int,
        temporary_channel_id: Optional[ChannelId] = None, override_config: Optional[UserConfig] = None,
    ) -> ChannelId:
        """Mirrors ``ChannelManager::create_channel``: propose a channel; returns its temporary id."""
        with self._lock:
            return channel_establishment.create_channel(
                self, their_network_key, channel_value_satoshis, push_msat, user_channel_id, temporary_channel_id,
                override_config,
            )

    def handle_open_channel(self, counterparty_node_id: PublicKey, msg: msgs.OpenChannel) -> None:
        with self._lock:
            channel_establishment.internal_open_channel(self, counterparty_node_id, msg)

    def accept_inbound_channel(
        self, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey, user_channel_id: int
    ) -> None:
        """Mirrors ``ChannelManager::accept_inbound_channel`` (LDK 0.1: three arguments)."""
        self._accept_request(temporary_channel_id, counterparty_node_id, user_channel_id, zero_conf=False)

    def accept_inbound_channel_from_trusted_peer_0conf(
        self, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey, user_channel_id: int
    ) -> None:
        """Mirrors the LDK method: accept, and use the channel before its funding confirms. Only for peers you trust
        completely: if they never confirm the funding, you lose."""
        self._accept_request(temporary_channel_id, counterparty_node_id, user_channel_id, zero_conf=True)

    def _accept_request(self, tcid: ChannelId, peer: PublicKey, user_channel_id: int, zero_conf: bool) -> None:
        if not isinstance(user_channel_id, int) or not 0 <= user_channel_id < 1 << 128:
            raise APIError.APIMisuseError(
                f"user_channel_id must be an int from 0 to 2**128 - 1 (a u128), got {user_channel_id!r}"
            )
        with self._lock:
            channel_establishment.do_accept_inbound_channel(self, tcid, peer, user_channel_id, zero_conf)

    def handle_accept_channel(self, counterparty_node_id: PublicKey, msg: msgs.AcceptChannel) -> None:
        with self._lock:
            channel_establishment.internal_accept_channel(self, counterparty_node_id, msg)

    def funding_transaction_generated(self, temporary_channel_id: ChannelId, counterparty_node_id: PublicKey,
                                      funding_transaction: Transaction) -> None:
        """Mirrors ``ChannelManager::funding_transaction_generated`` (a batch of one, as in LDK): hands over the signed
        funding transaction, which LDK broadcasts once the peer has signed. Do not broadcast it yourself."""
        self.batch_funding_transaction_generated([(temporary_channel_id, counterparty_node_id)], funding_transaction)

    def batch_funding_transaction_generated(self, temporary_channels: list[tuple[ChannelId, PublicKey]],
                                            funding_transaction: Transaction) -> None:
        """Mirrors ``ChannelManager::batch_funding_transaction_generated``: one transaction funds each channel listed
        ``(temporary_channel_id, counterparty_node_id)``, broadcast once every peer has signed. The errors are those of
        ``funding_transaction_generated``; on the first, every channel of the batch closes."""
        with self._lock:
            channel_establishment.batch_funding_transaction_generated_intern(self, temporary_channels,
                                                                             funding_transaction)

    def handle_funding_created(self, counterparty_node_id: PublicKey, msg: msgs.FundingCreated) -> None:
        with self._lock:
            channel_establishment.internal_funding_created(self, counterparty_node_id, msg)

    def handle_funding_signed(self, counterparty_node_id: PublicKey, msg: msgs.FundingSigned) -> None:
        with self._lock:
            channel_establishment.internal_funding_signed(self, counterparty_node_id, msg)

    def handle_channel_ready(self, counterparty_node_id: PublicKey, msg: msgs.ChannelReady) -> None:
        with self._lock:
            channel_establishment.internal_channel_ready(self, counterparty_node_id, msg)

    # --- chain ---------------------------------------------------------------------------------

    def block_connected(self, block: Any, height: int) -> None:
        """Mirrors ``chain::Listen::block_connected``: watch funding confirm, funding spends (the manager sees those
        itself, ``channel_close.closed_on_chain``) and HTLCs expire.

        As LDK's ``transactions_confirmed`` and ``best_block_updated`` (both ``NotifyOption::DoPersist``),
        every block marks the manager for persisting and wakes the background processor, once the block is
        handled (their ``PersistenceNotifierGuard`` notifies as it drops): the best block is part of what a
        restarted node reads back."""
        with self._lock:
            self.best_block_height = height
            txids = {tx.compute_txid(): i for i, tx in enumerate(block.txdata)}
            closed = ChannelPhase.Closed  # (read once: see channel._FUNDED_PHASES)
            for chan in list(self.channels.values()):
                if chan.phase is closed or chan.funding_txo is None:
                    continue
                channel_establishment.best_block_updated(self, chan, txids, height)
                if channel_close.closed_on_chain(self, chan, block):
                    continue
                self._check_htlc_timeouts(chan, height)
            claimable_payments.fail_expired(self, height)
            forwarding.fail_expired_intercepts(self, height)
            self._handle_monitor_events()
            self._changed()

    def _handle_monitor_events(self) -> None:
        """Act on what the ChainMonitor saw on chain (LDK's ``process_pending_monitor_events``)."""
        for event in self.chain_monitor.release_pending_monitor_events():
            chan = self.channels.get(event.channel_id)
            if chan is None:  # a manager read back older than its monitors; LDK skips such news too
                continue
            if event.kind == "HTLCTimedOut":
                self._resolve_outbound_htlc_on_chain(chan, event.htlc_id, None)

    def _check_htlc_timeouts(self, chan: Channel, height: int) -> None:
        """Force-close once an outbound HTLC is past its expiry by LDK's grace period, to claim it back
        on chain (``ChannelMonitor::should_broadcast_holder_commitment_txn``)."""
        if not chan.is_funded():
            return
        for htlc in chan.pending_outbound_htlcs.values():
            if htlc.cltv_expiry + LATENCY_GRACE_PERIOD_BLOCKS <= height:
                channel_close.force_close_channel(self, chan, ClosureReason.HTLCsTimedOut(), broadcast=True)
                return

    # --- closing (see channel_close) -------------------------------------------------------------

    def close_channel(self, channel_id: ChannelId, counterparty_node_id: PublicKey) -> None:
        """Mirrors ``ChannelManager::close_channel``: start a cooperative close."""
        with self._lock:
            channel_close.close_channel_internal(self, channel_id, counterparty_node_id)

    def handle_shutdown(self, counterparty_node_id: PublicKey, msg: msgs.Shutdown) -> None:
        with self._lock:
            channel_close.internal_shutdown(self, counterparty_node_id, msg)

    def handle_closing_signed(self, counterparty_node_id: PublicKey, msg: msgs.ClosingSigned) -> None:
        with self._lock:
            channel_close.internal_closing_signed(self, counterparty_node_id, msg)

    def force_close_broadcasting_latest_txn(
        self, channel_id: ChannelId, counterparty_node_id: PublicKey, error_message: str
    ) -> None:
        """Mirrors the LDK method: close now, broadcasting our latest commitment transaction."""
        with self._lock:
            channel_close.force_close_sending_error(
                self, channel_id, counterparty_node_id, error_message, broadcast=True
            )

    def force_close_without_broadcasting_txn(
        self, channel_id: ChannelId, counterparty_node_id: PublicKey, error_message: str
    ) -> None:
        """Mirrors the LDK 0.1 method. This is how LDK 0.1 rejects an ``OpenChannelRequest``."""
        with self._lock:
            channel_close.force_close_sending_error(
                self, channel_id, counterparty_node_id, error_message, broadcast=False
            )

    def force_close_all_channels_broadcasting_latest_txn(self, error_message: str) -> None:
        """Mirrors the LDK method: each channel force-closed, as ``force_close_broadcasting_latest_txn`` does."""
        for details in self.list_channels():
            self.force_close_broadcasting_latest_txn(details.channel_id, details.counterparty.node_id, error_message)

    def force_close_all_channels_without_broadcasting_txn(self, error_message: str) -> None:
        """Mirrors the LDK method: each channel force-closed, as ``force_close_without_broadcasting_txn`` does."""
        for details in self.list_channels():
            self.force_close_without_broadcasting_txn(details.channel_id, details.counterparty.node_id, error_message)

    def handle_error(self, counterparty_node_id: PublicKey, msg: msgs.ErrorMessage) -> None:
        with self._lock:
            channel_close.handle_error(self, counterparty_node_id, msg)

    # --- payments: receiving (see inbound_payment and claimable_payments) ------------------------

    def create_inbound_payment(
        self, min_value_msat: Optional[int], invoice_expiry_delta_secs: int,
        min_final_cltv_expiry_delta: Optional[int] = None,
    ) -> tuple[PaymentHash, PaymentSecret]:
        """Mirrors ``ChannelManager::create_inbound_payment``: a fresh hash and secret to be paid to. Nothing is
        stored: the secret carries what the node needs to accept the payment (see :mod:`.inbound_payment`)."""
        return inbound_payment.create(self.inbound_payment_key, min_value_msat, invoice_expiry_delta_secs,
                                      self._random_bytes, self.clock.unix_time())

    def create_inbound_payment_for_hash(
        self, payment_hash: PaymentHash, min_value_msat: Optional[int], invoice_expiry_delta_secs: int,
        min_final_cltv_expiry: Optional[int] = None,
    ) -> PaymentSecret:
        """Mirrors the LDK method: you keep the preimage; the PaymentClaimable will not carry it."""
        return inbound_payment.create_from_hash(self.inbound_payment_key, min_value_msat, payment_hash,
                                                invoice_expiry_delta_secs, self.clock.unix_time())

    def get_payment_preimage(self, payment_hash: PaymentHash, payment_secret: PaymentSecret) -> PaymentPreimage:
        """Mirrors ``ChannelManager::get_payment_preimage``: the preimage of a payment hash this node made
        (``create_inbound_payment``), from its secret; ``APIMisuseError`` for any other."""
        return inbound_payment.get_payment_preimage(payment_hash, payment_secret, self.inbound_payment_key)

    def create_bolt11_invoice(
        self, amount_msats: Optional[int] = None, description: str = "", invoice_expiry_delta_secs: int = 3600,
        min_final_cltv_expiry_delta: Optional[int] = None, payment_hash: Optional[PaymentHash] = None,
    ) -> Bolt11Invoice:
        """Mirrors ``ChannelManager::create_bolt11_invoice`` (its ``Bolt11InvoiceParameters`` as arguments): see
        :func:`.invoice_utils.create_bolt11_invoice`."""
        return invoice_utils.create_bolt11_invoice(self, amount_msats, description, invoice_expiry_delta_secs,
                                                   min_final_cltv_expiry_delta, payment_hash)

    def claim_funds(self, payment_preimage: PaymentPreimage) -> None:
        """Mirrors ``ChannelManager::claim_funds``: release the preimage and take the money.

        ``PaymentClaimed`` follows once the claim is done. Does nothing if no payment with
        this preimage's hash is claimable. A payment carrying a custom TLV of an even type
        (``onion_fields.custom_tlvs()``) is failed back instead, as one your node does not understand.
        """
        self._claim(payment_preimage, False)

    def claim_funds_with_known_custom_tlvs(self, payment_preimage: PaymentPreimage) -> None:
        """Mirrors ``ChannelManager::claim_funds_with_known_custom_tlvs``: ``claim_funds``, even for a payment with
        custom TLVs of even types. LDK: "You MUST check you've understood all even TLVs before using this to claim,
        otherwise you may unintentionally agree to some protocol you do not understand"."""
        self._claim(payment_preimage, True)

    def _claim(self, payment_preimage: PaymentPreimage, custom_tlvs_known: bool) -> None:
        if not isinstance(payment_preimage, PaymentPreimage):
            raise TypeError(
                f"claim_funds takes a PaymentPreimage, got {type(payment_preimage).__name__}; "
                "take it from the event's purpose: purpose.preimage()"
            )
        with self._lock:
            claimable_payments.claim_funds(self, payment_preimage, custom_tlvs_known)

    def fail_htlc_backwards(self, payment_hash: PaymentHash) -> None:
        """Mirrors ``ChannelManager::fail_htlc_backwards``: refuse a claimable payment.

        The sender is told the payment details were wrong. Does nothing if the hash is
        not claimable.
        """
        with self._lock:
            claimable_payments.fail_htlc_backwards(self, payment_hash)

    def fail_htlc_backwards_with_reason(self, payment_hash: PaymentHash, failure_code: FailureCode) -> None:
        """Mirrors ``ChannelManager::fail_htlc_backwards_with_reason``: ``fail_htlc_backwards``, with a FailureCode."""
        if not isinstance(failure_code, FailureCode):
            raise TypeError("failure_code must be a FailureCode, such as FailureCode.TemporaryNodeFailure()")
        with self._lock:
            claimable_payments.fail_htlc_backwards(self, payment_hash, failure_code.code())

    # --- forwarding (see forwarding) --------------------------------------------------------------

    def handle_update_add_htlc(self, counterparty_node_id: PublicKey, msg: msgs.UpdateAddHTLC) -> None:
        with self._lock:
            forwarding.internal_update_add_htlc(self, counterparty_node_id, msg)

    def process_pending_htlc_forwards(self) -> None:
        """Mirrors ``ChannelManager::process_pending_htlc_forwards``: forwards waiting HTLCs, fails back those that
        cannot go on, turns HTLCs to us into ``PaymentClaimable``, and retries failed payment paths."""
        with self._lock:
            forwarding.process_pending_htlc_forwards(self)
            self._pending_outbound_payments.check_retry_payments(self._find_route, self._send_payment_along_path)
            self._changed()

    def get_intercept_scid(self) -> int:
        """Mirrors ``ChannelManager::get_intercept_scid``: a fake scid to put in route hints."""
        with self._lock:
            return forwarding.get_intercept_scid(self)

    def forward_intercepted_htlc(
        self, intercept_id: InterceptId, next_hop_channel_id: ChannelId, next_node_id: PublicKey,
        amt_to_forward_msat: int,
    ) -> None:
        """Mirrors ``ChannelManager::forward_intercepted_htlc``."""
        with self._lock:
            forwarding.forward_intercepted_htlc(self, intercept_id, next_hop_channel_id, next_node_id,
                                                amt_to_forward_msat)

    def fail_intercepted_htlc(self, intercept_id: InterceptId) -> None:
        """Mirrors ``ChannelManager::fail_intercepted_htlc``: fail it back as unknown_next_peer."""
        with self._lock:
            forwarding.fail_intercepted_htlc(self, intercept_id)

    # --- HTLCs on our channels: offering, settling --------------------------------------------------

    def _add_outbound_htlc(
        self, chan: Channel, amount_msat: int, payment_hash: PaymentHash, cltv_expiry: int, onion: msgs.Onion,
        previous_hop: Optional[HTLCPreviousHop], route: Optional[HTLCOutboundRoute],
        skimmed_fee_msat: Optional[int] = None,
    ) -> None:
        htlc_id = chan.next_outbound_htlc_id
        chan.next_outbound_htlc_id += 1
        chan.value_to_self_msat -= amount_msat
        chan.pending_outbound_htlcs[htlc_id] = OutboundHTLC(
            htlc_id, amount_msat, payment_hash, cltv_expiry, previous_hop, route, HTLCState.Committed, skimmed_fee_msat
        )
        self._send(chan.counterparty_node_id, msgs.UpdateAddHTLC(
            chan.channel_id, htlc_id, amount_msat, payment_hash, cltv_expiry, onion, skimmed_fee_msat
        ))
        self.chain_monitor.channel_updated(chan)

    def _fulfill_inbound(self, chan: Channel, htlc: InboundHTLC, preimage: PaymentPreimage) -> None:
        del chan.pending_inbound_htlcs[htlc.htlc_id]
        chan.value_to_self_msat += htlc.amount_msat
        self._send(chan.counterparty_node_id, msgs.UpdateFulfillHTLC(chan.channel_id, htlc.htlc_id, preimage))
        self.chain_monitor.channel_updated(chan, preimage=preimage)
        channel_close.maybe_closing_signed(self, chan)

    def handle_update_fulfill_htlc(self, counterparty_node_id: PublicKey, msg: msgs.UpdateFulfillHTLC) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or msg.htlc_id not in chan.pending_outbound_htlcs:
                return
            htlc = chan.pending_outbound_htlcs.pop(msg.htlc_id)
            if msg.payment_preimage.payment_hash() != htlc.payment_hash:
                return
            self._outbound_fulfilled(chan, htlc, msg.payment_preimage, on_chain=False)
            self.chain_monitor.channel_updated(chan)
            channel_close.maybe_closing_signed(self, chan)

    def _outbound_fulfilled(self, chan: Channel, htlc: OutboundHTLC, preimage: PaymentPreimage, on_chain: bool) -> None:
        """LDK's ``claim_funds_internal``: a forwarded HTLC claims the one it came in on; ours pays."""
        if htlc.previous_hop is not None:
            forwarding.claim_previous_hop(self, chan, htlc, preimage, on_chain)
        else:
            self._pending_outbound_payments.claim_htlc(htlc.route, htlc.payment_hash, preimage)

    def handle_update_fail_htlc(self, counterparty_node_id: PublicKey, msg: msgs.UpdateFailHTLC) -> None:
        with self._lock:
            chan = self._find_channel(counterparty_node_id, msg.channel_id)
            if chan is None or msg.htlc_id not in chan.pending_outbound_htlcs:
                return
            htlc = chan.pending_outbound_htlcs.pop(msg.htlc_id)
            chan.value_to_self_msat += htlc.amount_msat
            self.chain_monitor.channel_updated(chan)
            self._outbound_failed(chan, htlc, msg.reason)
            channel_close.maybe_closing_signed(self, chan)

    def _outbound_failed(self, chan: Channel, htlc: OutboundHTLC, reason: msgs.FailureOnion) -> None:
        """LDK's ``fail_htlc_backwards_internal``: a forwarded HTLC fails back; ours fails a path."""
        if htlc.previous_hop is not None:
            prev = htlc.previous_hop
            forwarding.queue_fail_back(self, PendingFailBack(
                prev.channel_id, prev.htlc_id, reason,
                HTLCDestination.NextHopChannel(chan.counterparty_node_id, chan.channel_id),
            ))
        else:
            self._pending_outbound_payments.fail_htlc(htlc.route, htlc.payment_hash, reason)

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

    # --- payments: sending (see outbound_payment) ---------------------------------------------------

    def send_payment(
        self, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields, payment_id: PaymentId,
        route_params: RouteParameters, retry_strategy: Retry,
    ) -> None:
        """Mirrors ``ChannelManager::send_payment``: find a route and send, retrying as told.

        Raises ``RetryableSendFailure`` if the payment cannot start; otherwise its outcome
        arrives as events: ``PaymentSent`` or ``PaymentFailed``, and one path event per path.
        """
        with self._lock:
            self._pending_outbound_payments.send_payment(
                payment_hash, recipient_onion, payment_id, retry_strategy, route_params, self._find_route,
                self._send_payment_along_path,
            )

    def send_spontaneous_payment(
        self, payment_preimage: Optional[PaymentPreimage], recipient_onion: RecipientOnionFields,
        payment_id: PaymentId, route_params: RouteParameters, retry_strategy: Retry,
    ) -> PaymentHash:
        """Mirrors ``ChannelManager::send_spontaneous_payment``: a keysend payment."""
        with self._lock:
            return self._pending_outbound_payments.send_spontaneous_payment(
                payment_preimage, recipient_onion, payment_id, retry_strategy, route_params, self._random_bytes,
                self._find_route, self._send_payment_along_path,
            )

    def send_payment_with_route(
        self, route: Any, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields, payment_id: PaymentId
    ) -> None:
        """Mirrors ``ChannelManager::send_payment_with_route``: pay along the given paths (MPP if several)."""
        with self._lock:
            self._pending_outbound_payments.send_payment_with_route(
                route, payment_hash, recipient_onion, payment_id, self._send_payment_along_path
            )

    def list_recent_payments(self) -> list[RecentPaymentDetails]:
        """Mirrors ``ChannelManager::list_recent_payments``: the payments sent still in flight or ended lately."""
        with self._lock:
            return self._pending_outbound_payments.recent_payments()

    def abandon_payment(self, payment_id: PaymentId) -> None:
        """Mirrors ``ChannelManager::abandon_payment``: stop retrying (``PaymentFailed { reason: UserAbandoned }``
        follows once no part is in flight)."""
        with self._lock:
            self._pending_outbound_payments.abandon_payment(payment_id)

    def send_probe(self, path: Path) -> tuple[PaymentHash, PaymentId]:
        """Mirrors ``ChannelManager::send_probe``: send an HTLC nobody can claim, to learn liquidity."""
        with self._lock:
            return self._pending_outbound_payments.send_probe(path, self._random_bytes, self._send_payment_along_path)

    def _find_route(self, route_params: RouteParameters) -> Route:
        return self.router.find_route(self._our_node_id, route_params, self._details(usable_only=True, htlcs=False),
                                      None)

    def _send_payment_along_path(self, args: SendAlongPathArgs) -> None:
        """LDK's ``send_payment_along_path``: build the onion for one path and offer its first HTLC."""
        first = self._channel_by_scid(args.path.hops[0].short_channel_id)
        if first is None:
            raise APIError.ChannelUnavailable("No channel available with first hop!")
        if not self._is_usable(first):  # (LDK's ``!chan.context.is_live()``)
            raise APIError.ChannelUnavailable("Peer for first hop currently disconnected")
        onion, amount, cltv = onion_utils.build_onion_payloads(  # (LDK's cur_height: the next block's, as it goes out)
            args.path, args.total_value, args.recipient_onion, self.best_block_height + 1, args.keysend_preimage
        )
        first.check_htlc_to_send(amount)
        route = HTLCOutboundRoute(args.payment_id, args.path, args.is_probe)
        self._add_outbound_htlc(first, amount, args.payment_hash, cltv, onion, previous_hop=None, route=route)

    # --- timers ------------------------------------------------------------------------------------

    def timer_tick_occurred(self) -> None:
        """Mirrors ``ChannelManager::timer_tick_occurred`` (call about once a minute).

        Expires unanswered OpenChannelRequests after 2 ticks, closes channels left unfunded
        for 60 ticks, and fails incomplete multi-part payments after 3 ticks.
        """
        with self._lock:
            self._pending_outbound_payments.remove_stale_payments(self._events.pending())
            channels_expired = channel_establishment.timer_tick(self)
            payments_timed_out = claimable_payments.timer_tick(self)
            if channels_expired or payments_timed_out:
                self._changed()

    def timer_tick_changes_nothing(self) -> bool:
        """Whether :meth:`timer_tick_occurred` would change nothing now (not LDK's: the kit's timers, the world's
        and a sleeping background processor's, only count such ticks; see ``tick_changes_nothing``)."""
        with self._lock:
            return (self._pending_outbound_payments.nothing_stale() and channel_establishment.nothing_to_age(self)
                    and claimable_payments.nothing_waiting(self))

    timer_tick_occurred.changes_nothing_when = timer_tick_changes_nothing  # type: ignore[attr-defined]

    # --- persistence -----------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Mirrors ``ChannelManager::write`` (see :mod:`.channelmanager_persistence`)."""
        with self._lock:
            return channelmanager_persistence.write(self)

    def restore(self, data: bytes) -> None:
        """Load what :meth:`encode` wrote into this freshly built manager (``ChannelManager::read``)."""
        state = decode(data, dict)
        with self._lock:
            channelmanager_persistence.read(self, state)

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

