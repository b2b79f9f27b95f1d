"""Watching the chain for every channel: closes, outputs we can spend, fees to bump.

Mirrors ``lightning::chain::chainmonitor::ChainMonitor`` and the ``ChannelMonitor`` it
holds for each channel (``lightning::chain::channelmonitor``). The ChannelManager hands a
monitor over when a channel is funded and updates it as balances move; the monitor
builds and broadcasts the commitment transaction on a force-close, and raises
``SpendableOutputs`` once our outputs mature and ``BumpTransaction`` for anchor channels.

On a force-close the monitor presses claims until they confirm, as LDK's ``OnchainTxHandler``
does: our commitment transaction, then the second-stage transaction that takes back each HTLC
we offered once it expires. On an anchor channel both pay (almost) no fee of their own: unless
the commitment already pays the target feerate (urgent while an HTLC is on our latest or previous
commitment), the monitor does not broadcast it but raises
``BumpTransaction``, again on every block and every ``rebroadcast_pending_claims`` until it
confirms, so a handler that ignores the event leaves it unconfirmed.

Scripts are simplified but real-looking (P2WSH and P2WPKH); nothing checks them, while
every amount is exact. Claiming an HTLC on chain with its preimage is not modelled.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Callable
from typing import Any, Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ..chain.chaininterface import (
    ConfirmationTarget,
    compute_feerate_sat_per_1000_weight,
    fee_for_weight,
    tx_weight,
)
from ..events import Event
from ..events.bump_transaction import (
    AnchorDescriptor,
    BumpTransactionEvent,
    ChannelDerivationParameters,
    ChannelTransactionParameters,
    HTLCDescriptor,
    HTLCOutputInCommitment,
)
from ..ln.chan_utils import anchor_script, htlc_script, make_funding_redeemscript, to_local_script, to_remote_script
from ..logger import Logger
from ..persist import CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE
from ..ser import U16, U32, U64, Record
from ..sign import (
    DelayedPaymentOutputDescriptor,
    SpendableOutputDescriptor,
    StaticPaymentOutputDescriptor,
)
from ..types import ChannelId, ChannelTypeFeatures, ClaimId, PaymentHash, PublicKey, Txid
from ..wakers import Future
from .monitor_events import MonitorEvents

#: LDK's ``ANTI_REORG_DELAY``: confirmations before an output counts as ours to spend.
ANTI_REORG_DELAY = 6
#: LDK's ``CLTV_CLAIM_BUFFER``: blocks we allow ourselves to claim an HTLC on chain.
CLTV_CLAIM_BUFFER = 18
#: LDK's ``LATENCY_GRACE_PERIOD_BLOCKS``.
LATENCY_GRACE_PERIOD_BLOCKS = 3
#: LDK's ``HTLC_FAIL_BACK_BUFFER``: blocks before an HTLC's expiry at which an unclaimed payment is failed back.
HTLC_FAIL_BACK_BUFFER = CLTV_CLAIM_BUFFER + LATENCY_GRACE_PERIOD_BLOCKS
ANCHOR_OUTPUT_VALUE_SATOSHI = 330
MIN_DUST_SATOSHIS = 354
#: LDK's bump intervals (``chain::package``): blocks a pending claim waits before it is bumped again.
LOW_FREQUENCY_BUMP_INTERVAL = 15
MIDDLE_FREQUENCY_BUMP_INTERVAL = 3
HIGH_FREQUENCY_BUMP_INTERVAL = 1
#: LDK's ``channelmanager::MIN_CLTV_EXPIRY_DELTA``: the deadline of an HTLC timeout claim is its expiry plus this.
MIN_CLTV_EXPIRY_DELTA = 6 * 7
#: LDK's ``chan_utils::htlc_timeout_tx_weight`` without anchors (the fee comes out of the HTLC's value).
HTLC_TIMEOUT_TX_WEIGHT = 663
_MODULE = "ldkkit::chain::chainmonitor"


class FeerateStrategy(enum.Enum):
    """Mirrors ``chain::onchaintx::FeerateStrategy``: how a claim's feerate moves when it is made again."""

    HighestOfPreviousOrNew = "HighestOfPreviousOrNew"  # rebroadcast_pending_claims
    ForceBump = "ForceBump"  # a block passed the claim's timer


class PendingClaim(Record, frozen=False):
    """A claim the monitor presses until it confirms: a ``PackageTemplate`` of LDK's ``OnchainTxHandler``.

    ``htlc_id`` None: our commitment transaction (LDK's ``HolderFundingOutput``); otherwise the
    timeout of an HTLC we offered, on our confirmed commitment (``HolderHTLCOutput``).
    """

    claim_id: ClaimId
    htlc_id: Optional[U64]
    feerate_previous: U32
    timer: U32


class HTLCSpend(Record):
    """An HTLC output of our commitment, spent by our second-stage transaction ``txid`` at ``height``."""

    htlc_id: U64
    txid: Txid
    height: U32


class MonitorHTLC(Record):
    """An HTLC on the latest commitment, as the monitor sees it."""

    htlc_id: U64
    amount_msat: U64
    payment_hash: PaymentHash
    cltv_expiry: U32
    offered: bool  # offered by us


class ChannelMonitor(Record, frozen=False):
    """Mirrors ``lightning::chain::channelmonitor::ChannelMonitor`` for one channel."""

    channel_id: ChannelId
    funding_txo: OutPoint
    channel_value_satoshis: U64
    counterparty_node_id: PublicKey
    is_outbound: bool
    channel_type: ChannelTypeFeatures
    channel_keys_id: bytes
    holder_funding_pubkey: PublicKey
    counterparty_funding_pubkey: PublicKey
    to_self_delay: U16  # CSV on our own outputs, chosen by the counterparty
    to_self_msat: U64
    to_remote_msat: U64
    htlcs: tuple[MonitorHTLC, ...]
    closing_txid: Optional[Txid]
    holder_commitment_tx: Optional[Transaction]
    spend_txid: Optional[Txid]
    spend_height: Optional[U32]
    reported_outputs: tuple[U32, ...]  # output indices of the spend already raised as spendable
    resolved_htlcs: tuple[U64, ...]
    #: Events raised for this channel and not handled yet: persisted with the monitor, as LDK's are,
    #: so a SpendableOutputs queued when the node stops comes back after a restart. (BumpTransaction
    #: is not kept: the pending claims below raise it again.)
    pending_events: tuple[Event, ...] = ()
    pending_claims: tuple[PendingClaim, ...] = ()
    htlc_spends: tuple[HTLCSpend, ...] = ()
    swept_htlcs: tuple[U64, ...] = ()  # HTLCs whose second-stage output was raised as spendable
    #: The HTLCs of our previous commitment (LDK's ``prev_holder_signed_commitment_tx``; None before one was
    #: replaced). See ``ChainMonitor._commitment_signed``.
    prev_holder_htlcs: Optional[tuple[MonitorHTLC, ...]] = None

    def storage_key(self) -> str:
        return f"{self.funding_txo.txid}_{self.funding_txo.vout}"


class MonitorEvent(Record):
    """Mirrors ``lightning::chain::channelmonitor::MonitorEvent``: news for the ChannelManager."""

    channel_id: ChannelId
    kind: str  # "HTLCTimedOut" (LDK's HTLCEvent with no preimage); a peer's commitment confirming is
    # no MonitorEvent in LDK 0.1: the ChannelManager sees it itself (``Channel::transactions_confirmed``)
    htlc_id: Optional[U64]


def _channel_of(event: Event) -> Optional[ChannelId]:
    """The channel a ChainMonitor event is about."""
    if isinstance(event, Event.BumpTransaction):
        return event.bump_event.channel_id
    return getattr(event, "channel_id", None)


def _package_feerate(estimate: int, previous: int, strategy: FeerateStrategy) -> int:
    """Mirrors ``PackageTemplate::compute_package_feerate``."""
    if previous == 0:
        return estimate
    match strategy:
        case FeerateStrategy.HighestOfPreviousOrNew:
            return max(previous, estimate)
        case FeerateStrategy.ForceBump:
            if estimate > previous:
                return estimate
            # The estimate fell while the claim stayed unconfirmed: bump by 25 %, but not past 5x the estimate.
            bumped = previous + previous // 4
            return max(estimate * 5, previous) if bumped > estimate * 5 else bumped


def _height_timer(height: int, htlc: Optional[MonitorHTLC]) -> int:
    """Mirrors ``PackageTemplate::get_height_timer``: the block at which an unconfirmed claim is bumped."""
    if htlc is None:  # our commitment: bumped every block
        return height + HIGH_FREQUENCY_BUMP_INTERVAL
    deadline = htlc.cltv_expiry + MIN_CLTV_EXPIRY_DELTA
    if deadline <= height + MIDDLE_FREQUENCY_BUMP_INTERVAL:
        return height + HIGH_FREQUENCY_BUMP_INTERVAL
    if deadline <= height + LOW_FREQUENCY_BUMP_INTERVAL:
        return height + MIDDLE_FREQUENCY_BUMP_INTERVAL
    return height + LOW_FREQUENCY_BUMP_INTERVAL


def _fake_signature(*parts: bytes) -> bytes:
    """A well-formed DER-length placeholder: the simulated chain does not check signatures."""
    return b"\x30\x44" + hashlib.sha256(b"".join(parts)).digest() * 2 + b"\x01"


def _htlc_records(kept: dict[int, MonitorHTLC], htlcs: dict[int, Any], offered: bool) -> dict[int, MonitorHTLC]:
    """The monitor's record of each of a channel's pending HTLCs one way, in the channel's order, by htlc id.

    Records kept from the last update are reused (an HTLC's id, amount, hash and expiry never change while it is
    pending): the whole dict when no HTLC came or went that way, a copy of it (a C copy) when HTLCs were only
    added after those kept (ids only grow); otherwise they are looked up one by one.
    """
    ids, kept_ids = list(htlcs), list(kept)
    if ids == kept_ids:
        return kept
    n = len(kept_ids)
    if ids[:n] == kept_ids:
        records = dict(kept)
        for i in ids[n:]:
            h = htlcs[i]
            records[i] = MonitorHTLC(h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry, offered)
        return records
    return {
        i: kept[i] if i in kept else MonitorHTLC(h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry, offered)
        for i, h in htlcs.items()
    }


class ChainMonitor:
    """Mirrors ``lightning::chain::chainmonitor::ChainMonitor``."""

    def __init__(
        self, *, chain: Any, broadcaster: Any, fee_estimator: Any, logger: Logger, keys_manager: Any, kv_store: Any
    ) -> None:
        self.chain = chain
        self.broadcaster = broadcaster
        self.fee_estimator = fee_estimator
        self.logger = logger
        self.keys_manager = keys_manager
        self.kv_store = kv_store
        self.monitors: dict[ChannelId, ChannelMonitor] = {}
        #: Each channel's HTLC records at its last update, offered and received, by htlc id (see _htlc_records).
        self._htlc_records: dict[ChannelId, tuple[dict[int, MonitorHTLC], dict[int, MonitorHTLC]]] = {}
        self._vouts: dict[tuple[Transaction, tuple[MonitorHTLC, ...]], dict[int, int]] = {}  # see _htlc_vouts
        self._events = MonitorEvents(self._take_claim_events, self._has_claim_events)
        self._events.on_change = self._persist_pending_events
        self._monitor_events: list[MonitorEvent] = []
        #: Fee-bump requests made since events were last processed, at most one per claim (LDK's
        #: ``pending_claim_events``): handed over after their monitor's events, and forgotten (``MonitorEvents``).
        self._claim_events: dict[ClaimId, Event] = {}
        self._lock = threading.RLock()

    # --- persistence ------------------------------------------------------------------------

    def load_monitors(self) -> None:
        """Read every persisted ChannelMonitor back, as a restarting node does first."""
        if self.kv_store is None:
            return
        for key in self.kv_store.list(CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, ""):
            data = self.kv_store.read(CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, "", key)
            monitor = ChannelMonitor.decode(data)
            self.monitors[monitor.channel_id] = monitor
        for monitor in list(self.monitors.values()):
            for event in monitor.pending_events:  # handed over again, as LDK's reloaded monitors do
                self._events.push(event)

    def _persist_pending_events(self) -> None:
        """Each monitor keeps the events raised for its channel that are still waiting for the handler."""
        with self._lock:
            waiting = self._events.pending()
            for monitor in self.monitors.values():
                mine = tuple(e for e in waiting if _channel_of(e) == monitor.channel_id)
                if mine != monitor.pending_events:
                    monitor.pending_events = mine
                    self._persist(monitor)

    def _persist(self, monitor: ChannelMonitor) -> None:
        if self.kv_store is None:  # a node that never restarts need not pay for this
            return
        self.kv_store.write(CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, "", monitor.storage_key(), monitor.encode())

    # --- from the ChannelManager -------------------------------------------------------------

    def watch_channel(self, chan: Any) -> None:
        """Mirrors ``chain::Watch::watch_channel``: start watching a newly funded channel."""
        with self._lock:
            if chan.channel_id in self.monitors:
                return
            keys = self.keys_manager.derive_channel_keys(chan.channel_value_satoshis, chan.channel_keys_id)
            monitor = ChannelMonitor(
                channel_id=chan.channel_id, funding_txo=chan.funding_txo,
                channel_value_satoshis=chan.channel_value_satoshis, counterparty_node_id=chan.counterparty_node_id,
                is_outbound=chan.is_outbound, channel_type=chan.channel_type, channel_keys_id=chan.channel_keys_id,
                holder_funding_pubkey=keys.funding_pubkey, counterparty_funding_pubkey=chan.counterparty_funding_pubkey,
                to_self_delay=chan.counterparty_selected_contest_delay, to_self_msat=0, to_remote_msat=0, htlcs=(),
                closing_txid=None, holder_commitment_tx=None, spend_txid=None, spend_height=None,
                reported_outputs=(), resolved_htlcs=(),
            )
            self.monitors[chan.channel_id] = monitor
            self._snapshot(monitor, chan)

    def channel_updated(self, chan: Any, preimage: Any = None) -> None:
        """Mirrors ``chain::Watch::update_channel``: record the channel's latest balances."""
        with self._lock:
            monitor = self.monitors.get(chan.channel_id)
            if monitor is not None and monitor.spend_txid is None:
                self._snapshot(monitor, chan)

    def _snapshot(self, monitor: ChannelMonitor, chan: Any) -> None:
        monitor.to_self_msat = chan.value_to_self_msat
        monitor.to_remote_msat = chan.value_to_remote_msat()
        kept_offered, kept_received = self._htlc_records.get(chan.channel_id, ({}, {}))
        offered = _htlc_records(kept_offered, chan.pending_outbound_htlcs, True)
        received = _htlc_records(kept_received, chan.pending_inbound_htlcs, False)
        self._htlc_records[chan.channel_id] = (offered, received)
        htlcs = (*offered.values(), *received.values())
        if htlcs != monitor.htlcs:  # (records kept are the same objects: compared by identity first)
            self._commitment_signed(monitor, htlcs)
        self._persist(monitor)

    @staticmethod
    def _commitment_signed(monitor: ChannelMonitor, htlcs: tuple[MonitorHTLC, ...]) -> None:
        """A new commitment of ours carrying ``htlcs`` (LDK's ``provide_latest_holder_commitment_tx``): the one it
        replaces is kept as ``prev_holder_signed_commitment_tx`` until the next. The kit makes each HTLC change on
        both sides at once, so the counterparty's latest commitment carries these same HTLCs and its previous one
        is revoked at once: LDK's records of theirs would add nothing here."""
        monitor.prev_holder_htlcs, monitor.htlcs = monitor.htlcs, htlcs

    def build_closing_tx(self, chan: Any, outputs: list[tuple[ScriptBuf, int]]) -> Transaction:
        """The cooperative closing transaction both sides build identically."""
        with self._lock:
            monitor = self.monitors[chan.channel_id]
            self._snapshot(monitor, chan)
            outs = [TxOut(value, script) for script, value in sorted(outputs, key=lambda o: bytes(o[0]))
                    if value >= MIN_DUST_SATOSHIS]
            tx = self._spend_funding(monitor, outs, sequence=0xFFFFFFFF, tag=b"closing")
            monitor.closing_txid = tx.compute_txid()
            self._persist(monitor)
            return tx

    def broadcast_latest_holder_commitment(self, chan: Any) -> None:
        """Mirrors the monitor's force-close (``ChannelForceClosed { should_broadcast: true }``): claim our
        latest commitment. Without anchors it is broadcast as it is; on an anchor channel it is broadcast only
        if it already pays the target feerate, and otherwise handed to the handler as ``BumpTransaction``."""
        with self._lock:
            monitor = self.monitors[chan.channel_id]
            self._snapshot(monitor, chan)
            tx, _fee = self._holder_commitment(monitor)
            monitor.holder_commitment_tx = tx
            claim = PendingClaim(ClaimId(bytes(tx.compute_txid())), None, 0, 0)
            monitor.pending_claims = monitor.pending_claims + (claim,)
            broadcasts = self._press(monitor, claim, FeerateStrategy.ForceBump)
            self._persist(monitor)
        self._broadcast(broadcasts)

    # --- commitment transactions ---------------------------------------------------------------

    def _holder_commitment(self, monitor: ChannelMonitor) -> tuple[Transaction, int]:
        keys = self._keys(monitor)
        anchors = monitor.channel_type.supports_anchors_zero_fee_htlc_tx()
        target = ConfirmationTarget.AnchorChannelFee if anchors else ConfirmationTarget.NonAnchorChannelFee
        feerate = self.fee_estimator.get_est_sat_per_1000_weight(target)
        weight = (1124 if anchors else 724) + 172 * len(monitor.htlcs)
        fee = feerate * weight // 1000
        funder_cost = fee + (2 * ANCHOR_OUTPUT_VALUE_SATOSHI if anchors else 0)
        ours = monitor.to_self_msat // 1000 - (funder_cost if monitor.is_outbound else 0)
        theirs = monitor.to_remote_msat // 1000 - (0 if monitor.is_outbound else funder_cost)
        outs = [
            TxOut(ours, to_local_script(keys.delayed_payment_basepoint, keys.revocation_basepoint,
                                        monitor.to_self_delay)),
            TxOut(theirs, to_remote_script(monitor.counterparty_funding_pubkey, anchors)),
        ]
        outs += [TxOut(h.amount_msat // 1000, htlc_script(h.payment_hash, h.cltv_expiry)) for h in monitor.htlcs]
        if anchors:
            outs += [TxOut(ANCHOR_OUTPUT_VALUE_SATOSHI, anchor_script(monitor.holder_funding_pubkey)),
                     TxOut(ANCHOR_OUTPUT_VALUE_SATOSHI, anchor_script(monitor.counterparty_funding_pubkey))]
        outs = [o for o in outs if o.value >= MIN_DUST_SATOSHIS or o.value == ANCHOR_OUTPUT_VALUE_SATOSHI]
        tx = self._spend_funding(monitor, outs, sequence=0x80000000, tag=b"commitment")
        inputs = monitor.channel_value_satoshis
        return tx, inputs - sum(o.value for o in outs)

    def _spend_funding(self, monitor: ChannelMonitor, outs: list[TxOut], sequence: int, tag: bytes) -> Transaction:
        keys = sorted([bytes(monitor.holder_funding_pubkey), bytes(monitor.counterparty_funding_pubkey)])
        witness_script = make_funding_redeemscript(monitor.holder_funding_pubkey, monitor.counterparty_funding_pubkey)
        sigs = [_fake_signature(tag, bytes(monitor.channel_id), k) for k in keys]
        txin = TxIn(monitor.funding_txo, ScriptBuf(b""), sequence, (b"", *sigs, witness_script))
        return Transaction.new(2, 0, [txin], outs)

    # --- claims: what the monitor presses until it confirms -----------------------------------

    @staticmethod
    def _closure_conf_target(monitor: ChannelMonitor) -> ConfirmationTarget:
        """Mirrors ``ChannelMonitorImpl::closure_conf_target``: urgent while an HTLC is on our latest commitment or
        on our previous one (kept, though revoked, until the next replaces it), so also just after a payment: its
        HTLC stays on our previous commitment. (LDK also looks at the counterparty's latest and unrevoked previous
        commitments: in the kit they carry our latest's HTLCs, see ``_commitment_signed``.)"""
        if monitor.htlcs or monitor.prev_holder_htlcs:
            return ConfirmationTarget.UrgentOnChainSweep
        return ConfirmationTarget.OutputSpendingFee

    def _press(self, monitor: ChannelMonitor, claim: PendingClaim, strategy: FeerateStrategy) -> list[Transaction]:
        """Make ``claim`` again (LDK's ``OnchainTxHandler::generate_claim``): the transactions to broadcast,
        or none, with a ``BumpTransaction`` waiting for the handler instead."""
        height = self.chain.height()
        htlc = next((h for h in monitor.htlcs if h.htlc_id == claim.htlc_id), None)
        estimate = self.fee_estimator.get_est_sat_per_1000_weight(self._closure_conf_target(monitor))
        target = _package_feerate(estimate, claim.feerate_previous, strategy)
        if strategy is FeerateStrategy.ForceBump:  # as LDK, made or bumped on a block: a rebroadcast keeps the timer
            claim.timer = _height_timer(height, htlc)
        anchors = monitor.channel_type.supports_anchors_zero_fee_htlc_tx()
        tx = monitor.holder_commitment_tx
        if htlc is None:
            fee = monitor.channel_value_satoshis - sum(o.value for o in tx.output)
            feerate = compute_feerate_sat_per_1000_weight(fee, tx_weight(tx))
            if not anchors or feerate >= target:
                if anchors:
                    self.logger.debug(_MODULE, f"Pre-signed commitment {tx.compute_txid()} "
                                      f"already has feerate {feerate} sat/kW above required {target} sat/kW")
                # LDK's 0: no feerate asked yet. Any value under the estimator's floor (253) acts the same.
                claim.feerate_previous = 0  # pragma: no mutate
                self.logger.info(_MODULE, f"Broadcasting commitment transaction {tx.compute_txid()}")
                return [tx]
            bump = self._channel_close(monitor, claim.claim_id, tx, fee, target)
        elif not anchors:
            return self._htlc_timeout_tx(monitor, htlc)
        else:
            bump = BumpTransactionEvent.HTLCResolution(
                channel_id=monitor.channel_id, counterparty_node_id=monitor.counterparty_node_id,
                claim_id=claim.claim_id, target_feerate_sat_per_1000_weight=target,
                htlc_descriptors=(self._htlc_descriptor(monitor, htlc),), tx_lock_time=htlc.cltv_expiry,
            )
        claim.feerate_previous = target
        self.logger.info(_MODULE, f"Yielding onchain event {type(bump).__name__} for claim "
                         f"{claim.claim_id} of channel {monitor.channel_id} at {target} sat/kW")
        self._claim_events[claim.claim_id] = Event.BumpTransaction(bump)
        self._events.queue(monitor.channel_id)  # (its turn among the monitors: a request may come before any event)
        return []

    def _keys(self, m: ChannelMonitor) -> Any:
        """The channel's signer. Its keys come from the id alone (the value only labels it): no mutant of the
        value can change what is derived."""
        return self.keys_manager.derive_channel_keys(m.channel_value_satoshis, m.channel_keys_id)  # pragma: no mutate

    def _derivation(self, monitor: ChannelMonitor) -> ChannelDerivationParameters:
        return ChannelDerivationParameters(monitor.channel_value_satoshis, monitor.channel_keys_id,
                                           ChannelTransactionParameters(monitor.to_self_delay))

    def _channel_close(
        self, monitor: ChannelMonitor, claim_id: ClaimId, tx: Transaction, fee: int, target: int
    ) -> BumpTransactionEvent:
        """Mirrors ``ChannelMonitorImpl::get_repeated_events`` for ``ClaimEvent::BumpCommitment``."""
        txid = tx.compute_txid()
        ours = anchor_script(monitor.holder_funding_pubkey)
        vout = next(i for i, o in enumerate(tx.output) if o.script_pubkey == ours)
        vouts = self._htlc_vouts(monitor)
        return BumpTransactionEvent.ChannelClose(
            channel_id=monitor.channel_id, counterparty_node_id=monitor.counterparty_node_id, claim_id=claim_id,
            package_target_feerate_sat_per_1000_weight=target, commitment_tx=tx, commitment_tx_fee_satoshis=fee,
            anchor_descriptor=AnchorDescriptor(self._derivation(monitor), OutPoint(txid, vout)),
            pending_htlcs=tuple(
                HTLCOutputInCommitment(h.offered, h.amount_msat, h.cltv_expiry, h.payment_hash, vouts.get(h.htlc_id))
                for h in monitor.htlcs if h.htlc_id in vouts  # LDK's non_dust_htlcs
            ),
        )

    def _htlc_vouts(self, monitor: ChannelMonitor) -> dict[int, int]:
        """Which output of our commitment holds each (non-dust) HTLC; equal scripts are taken in order.
        (Asked at every block once the commitment confirms, so kept for each commitment and its HTLCs.)"""
        key = (monitor.holder_commitment_tx, monitor.htlcs)
        if key not in self._vouts:
            self._vouts[key] = self._find_htlc_vouts(monitor)
        return self._vouts[key]

    @staticmethod
    def _find_htlc_vouts(monitor: ChannelMonitor) -> dict[int, int]:
        outputs = monitor.holder_commitment_tx.output
        taken: set[int] = set()
        vouts = {}
        for htlc in monitor.htlcs:
            script = htlc_script(htlc.payment_hash, htlc.cltv_expiry)
            vout = next((i for i, o in enumerate(outputs) if o.script_pubkey == script and i not in taken), None)
            if vout is not None:
                taken.add(vout)
                vouts[htlc.htlc_id] = vout
        return vouts

    def _htlc_descriptor(self, monitor: ChannelMonitor, htlc: MonitorHTLC) -> HTLCDescriptor:
        keys = self._keys(monitor)
        vout = self._htlc_vouts(monitor)[htlc.htlc_id]
        return HTLCDescriptor(
            channel_derivation_parameters=self._derivation(monitor),
            commitment_txid=monitor.holder_commitment_tx.compute_txid(),
            per_commitment_number=0, per_commitment_point=keys.get_per_commitment_point(0), feerate_per_kw=0,
            htlc=HTLCOutputInCommitment(True, htlc.amount_msat, htlc.cltv_expiry, htlc.payment_hash, vout),
            preimage=None,
        )

    def _htlc_timeout_tx(self, monitor: ChannelMonitor, htlc: MonitorHTLC) -> list[Transaction]:
        """Without anchors, the pre-signed HTLC-timeout transaction pays its fee out of the HTLC itself."""
        descriptor = self._htlc_descriptor(monitor, htlc)
        keys = self._keys(monitor)
        feerate = self.fee_estimator.get_est_sat_per_1000_weight(ConfirmationTarget.NonAnchorChannelFee)
        out = descriptor.tx_output(keys)
        value = out.value - fee_for_weight(feerate, HTLC_TIMEOUT_TX_WEIGHT)
        if value < MIN_DUST_SATOSHIS:
            return []  # not worth claiming: LDK would not either
        script = descriptor.witness_script()
        witness = (b"", _fake_signature(b"htlc", script), _fake_signature(b"htlc-holder", script), b"", script)
        txin = TxIn(descriptor.outpoint(), ScriptBuf(b""), 0, witness)
        tx = Transaction.new(2, htlc.cltv_expiry, [txin], [TxOut(value, out.script_pubkey)])
        self.logger.info(_MODULE, f"Broadcasting HTLC-timeout transaction {tx.compute_txid()}")
        return [tx]

    def _drop_claim(self, monitor: ChannelMonitor, htlc_id: Optional[int]) -> None:
        """A claim's input was spent on chain: stop pressing it, and take back a request not yet handed over."""
        for claim in monitor.pending_claims:
            if claim.htlc_id == htlc_id:
                self._claim_events.pop(claim.claim_id, None)
        monitor.pending_claims = tuple(c for c in monitor.pending_claims if c.htlc_id != htlc_id)

    def _broadcast(self, txs: list[Transaction]) -> None:
        if self._claim_events:
            self._events.notifier.notify()  # a fee-bump request is waiting for the handler
        if txs:
            self.broadcaster.broadcast_transactions(txs)

    def has_pending_claims(self) -> bool:
        """Whether a claim waits to confirm (a fee-bump request waiting is always a pending claim's:
        ``_drop_claim`` takes back both). Without one, :meth:`rebroadcast_pending_claims` does nothing."""
        with self._lock:
            return any(m.pending_claims for m in self.monitors.values())

    def rebroadcast_pending_claims(self) -> None:
        """Mirrors ``ChainMonitor::rebroadcast_pending_claims``: every claim not yet confirmed is made again,
        at the higher of its last feerate and today's estimate; a fee-bump request comes to the handler again."""
        broadcasts: list[Transaction] = []
        with self._lock:
            if not self.has_pending_claims():
                return  # nothing waits to confirm, as for most of a node's life
            for monitor in self.monitors.values():
                before = [(c.feerate_previous, c.timer) for c in monitor.pending_claims]
                for claim in monitor.pending_claims:
                    broadcasts += self._press(monitor, claim, FeerateStrategy.HighestOfPreviousOrNew)
                if before != [(c.feerate_previous, c.timer) for c in monitor.pending_claims]:
                    self._persist(monitor)  # only what changed: a claim asked again as it was needs no write
        self._broadcast(broadcasts)

    #: With no claim waiting, a rebroadcast does nothing (see ``sim.quiet_loop.tick_changes_nothing``).
    rebroadcast_pending_claims.changes_nothing_when = (  # type: ignore[attr-defined]
        lambda self: not self.has_pending_claims())

    # --- blocks --------------------------------------------------------------------------------

    def block_connected(self, block: Any, height: int) -> None:
        """Mirrors ``chain::Listen::block_connected``: find channel closes and HTLC claims, raise spendable
        outputs, and bump the claims whose timer has come. Then, as LDK's ``filtered_block_connected``, wake
        the event processor whatever the block held ("assume we may have some new events")."""
        broadcasts: list[Transaction] = []
        with self._lock:
            for monitor in self.monitors.values():
                if monitor.spend_txid is None:
                    self._find_spend(monitor, block, height)
                if monitor.spend_txid is not None:
                    self._fail_unbroadcast_htlcs(monitor, height)
                    self._mature_outputs(monitor, height)
                if self._holder_confirmed(monitor):
                    self._find_htlc_spends(monitor, block, height)
                    self._mature_htlc_spends(monitor, height)
                    broadcasts += self._claim_expired_htlcs(monitor, height)
                for claim in monitor.pending_claims:
                    if height >= claim.timer and claim.timer:
                        broadcasts += self._press(monitor, claim, FeerateStrategy.ForceBump)
                        self._persist(monitor)
        self._broadcast(broadcasts)
        self._events.notifier.notify()

    @staticmethod
    def _holder_confirmed(monitor: ChannelMonitor) -> bool:
        tx = monitor.holder_commitment_tx
        return tx is not None and monitor.spend_txid == tx.compute_txid()

    def _find_spend(self, monitor: ChannelMonitor, block: Any, height: int) -> None:
        for tx in block.txdata:
            if any(txin.previous_output == monitor.funding_txo for txin in tx.input):
                monitor.spend_txid = tx.compute_txid()
                monitor.spend_height = height
                self._drop_claim(monitor, None)  # the funding output is spent: our commitment's claim is over
                self._persist(monitor)
                return

    def _fail_unbroadcast_htlcs(self, monitor: ChannelMonitor, height: int) -> None:
        """LDK's ``fail_unbroadcast_htlcs!``: an HTLC we offered that the confirmed commitment does not carry (a dust
        one, or one the other side's commitment no longer held) can never come back on chain, so once the close is
        final (``ANTI_REORG_DELAY`` confirmations) it is failed back (an ``HTLCUpdate`` with no preimage)."""
        if monitor.spend_txid == monitor.closing_txid or height - monitor.spend_height + 1 < ANTI_REORG_DELAY:
            return
        waiting = [h for h in monitor.htlcs if h.offered and h.htlc_id not in monitor.resolved_htlcs]
        if not waiting:
            return
        if self._holder_confirmed(monitor):
            carried = set(self._htlc_vouts(monitor))
        else:
            scripts = {out.script_pubkey for out in self.chain.get_transaction(monitor.spend_txid).output}
            carried = {h.htlc_id for h in waiting if htlc_script(h.payment_hash, h.cltv_expiry) in scripts}
        for htlc in waiting:
            if htlc.htlc_id not in carried:
                monitor.resolved_htlcs = monitor.resolved_htlcs + (htlc.htlc_id,)
                self._monitor_events.append(MonitorEvent(monitor.channel_id, "HTLCTimedOut", htlc.htlc_id))
                self._persist(monitor)

    def _claim_expired_htlcs(self, monitor: ChannelMonitor, height: int) -> list[Transaction]:
        """Once an HTLC we offered expires, claim it back from our confirmed commitment (second stage)."""
        claimed = {c.htlc_id for c in monitor.pending_claims} | {s.htlc_id for s in monitor.htlc_spends}
        commitment_txid = monitor.holder_commitment_tx.compute_txid()
        broadcasts: list[Transaction] = []
        for htlc_id, vout in self._htlc_vouts(monitor).items():
            htlc = next(h for h in monitor.htlcs if h.htlc_id == htlc_id)
            if htlc.offered and htlc_id not in claimed and height >= htlc.cltv_expiry:
                claim_id = ClaimId(hashlib.sha256(bytes(commitment_txid) + vout.to_bytes(4, "big")).digest())
                claim = PendingClaim(claim_id, htlc_id, 0, 0)
                monitor.pending_claims = monitor.pending_claims + (claim,)
                broadcasts += self._press(monitor, claim, FeerateStrategy.ForceBump)
                self._persist(monitor)
        return broadcasts

    def _find_htlc_spends(self, monitor: ChannelMonitor, block: Any, height: int) -> None:
        """Our second-stage transaction spends HTLC output ``vout`` as its input ``i`` and pays it to output ``i``."""
        vouts = self._htlc_vouts(monitor).items()
        by_outpoint = {OutPoint(monitor.spend_txid, vout): htlc_id for htlc_id, vout in vouts}
        for tx in block.txdata:
            for txin in tx.input:
                htlc_id = by_outpoint.get(txin.previous_output)
                if htlc_id is not None:
                    monitor.htlc_spends = monitor.htlc_spends + (HTLCSpend(htlc_id, tx.compute_txid(), height),)
                    self._drop_claim(monitor, htlc_id)
                    self._persist(monitor)

    def _mature_htlc_spends(self, monitor: ChannelMonitor, height: int) -> None:
        """An HTLC's timeout is final after six confirmations; its output is ours after ``to_self_delay``."""
        keys = self._keys(monitor)
        ours = to_local_script(keys.delayed_payment_basepoint, keys.revocation_basepoint, monitor.to_self_delay)
        vouts = self._htlc_vouts(monitor)
        for spend in monitor.htlc_spends:
            confirmations = height - spend.height + 1
            if confirmations >= ANTI_REORG_DELAY and spend.htlc_id not in monitor.resolved_htlcs:
                monitor.resolved_htlcs = monitor.resolved_htlcs + (spend.htlc_id,)
                self._monitor_events.append(MonitorEvent(monitor.channel_id, "HTLCTimedOut", spend.htlc_id))
                self._persist(monitor)
            if confirmations < monitor.to_self_delay or spend.htlc_id in monitor.swept_htlcs:
                continue
            tx = self.chain.get_transaction(spend.txid)
            index = next(i for i, txin in enumerate(tx.input)
                         if txin.previous_output == OutPoint(monitor.spend_txid, vouts[spend.htlc_id]))
            monitor.swept_htlcs = monitor.swept_htlcs + (spend.htlc_id,)
            self._persist(monitor)
            out = tx.output[index] if index < len(tx.output) else None
            if out is None or out.script_pubkey != ours:
                continue  # not our transaction (the counterparty's preimage claim is not modelled)
            self._events.push(Event.SpendableOutputs((SpendableOutputDescriptor.DelayedPaymentOutput(
                DelayedPaymentOutputDescriptor(
                    OutPoint(spend.txid, index), keys.delayed_payment_basepoint, monitor.to_self_delay, out,
                    keys.revocation_basepoint, monitor.channel_keys_id, monitor.channel_value_satoshis,
                )),), monitor.channel_id))

    def _mature_outputs(self, monitor: ChannelMonitor, height: int) -> None:
        """Raise a SpendableOutputs for each of our outputs of the closing spend once it matures (LDK 0.1's
        ``ChannelMonitorImpl``: one descriptor per event, channelmonitor.rs:4412-4417)."""
        tx = self.chain.get_transaction(monitor.spend_txid)
        confirmations = height - monitor.spend_height + 1
        keys = self._keys(monitor)
        holder_tx = monitor.holder_commitment_tx
        holder = holder_tx is not None and monitor.spend_txid == holder_tx.compute_txid()
        ours = self._our_scripts(monitor, keys, holder)
        ready: list[SpendableOutputDescriptor] = []
        for vout, out in enumerate(tx.output):
            kind = ours.get(out.script_pubkey)
            if kind is None or vout in monitor.reported_outputs:  # (theirs, or an anchor: looked at every block)
                continue
            descriptor = self._our_output(monitor, keys, kind, OutPoint(monitor.spend_txid, vout), out,
                                          confirmations, height)
            if descriptor is not None:
                ready.append(descriptor)
                monitor.reported_outputs = monitor.reported_outputs + (vout,)
        if ready:  # (one event per output, as LDK's monitor raises them: ``outputs: vec![descriptor]``)
            self._persist(monitor)
            for descriptor in ready:
                self._events.push(Event.SpendableOutputs((descriptor,), monitor.channel_id))

    def _our_scripts(self, monitor: ChannelMonitor, keys: Any, holder: bool) -> dict[ScriptBuf, Any]:
        """The scripts of the closing spend's outputs that can be ours, each with what it pays: ``"shutdown"`` on a
        cooperative close, ``"to_local"`` on our commitment, ``"to_remote"`` or an HTLC we offered (the first of
        those with that script) on theirs."""
        if monitor.spend_txid == monitor.closing_txid:
            return {self.keys_manager.get_shutdown_scriptpubkey(): "shutdown"}
        if holder:  # (its HTLCs are claimed by the second stage: see _claim_expired_htlcs)
            return {to_local_script(keys.delayed_payment_basepoint, keys.revocation_basepoint,
                                    monitor.to_self_delay): "to_local"}
        anchors = monitor.channel_type.supports_anchors_zero_fee_htlc_tx()
        ours: dict[ScriptBuf, Any] = {to_remote_script(monitor.holder_funding_pubkey, anchors): "to_remote"}
        for htlc in monitor.htlcs:
            if htlc.offered:
                ours.setdefault(htlc_script(htlc.payment_hash, htlc.cltv_expiry), htlc)
        return ours

    def _our_output(
        self, monitor: ChannelMonitor, keys: Any, kind: Any, outpoint: OutPoint, out: TxOut, confirmations: int,
        height: int,
    ) -> Optional[SpendableOutputDescriptor]:
        """The descriptor of our output ``kind`` (see ``_our_scripts``) once it can be spent, else None."""
        if kind == "shutdown":
            if confirmations >= ANTI_REORG_DELAY:
                return SpendableOutputDescriptor.StaticOutput(outpoint, out, monitor.channel_keys_id)
            return None
        if kind == "to_local":
            if confirmations >= monitor.to_self_delay:
                return SpendableOutputDescriptor.DelayedPaymentOutput(DelayedPaymentOutputDescriptor(
                    outpoint, keys.delayed_payment_basepoint, monitor.to_self_delay, out, keys.revocation_basepoint,
                    monitor.channel_keys_id, monitor.channel_value_satoshis,
                ))
            return None
        if kind == "to_remote":
            if confirmations >= ANTI_REORG_DELAY:
                return SpendableOutputDescriptor.StaticPaymentOutput(StaticPaymentOutputDescriptor(
                    outpoint, out, monitor.channel_keys_id, monitor.channel_value_satoshis,
                ))
            return None
        # Our HTLC on their commitment is ours again once it expires and the close is final (LDK claims it with a
        # transaction of its own; simplified to the output itself).
        if height >= kind.cltv_expiry and confirmations >= ANTI_REORG_DELAY:
            if kind.htlc_id not in monitor.resolved_htlcs:
                monitor.resolved_htlcs = monitor.resolved_htlcs + (kind.htlc_id,)
                self._monitor_events.append(MonitorEvent(monitor.channel_id, "HTLCTimedOut", kind.htlc_id))
            return SpendableOutputDescriptor.StaticOutput(outpoint, out, monitor.channel_keys_id)
        return None

    def release_pending_monitor_events(self) -> list[MonitorEvent]:
        """Mirrors ``chain::Watch::release_pending_monitor_events``: news for the ChannelManager."""
        with self._lock:
            out, self._monitor_events = self._monitor_events, []
            return out

    # --- events ----------------------------------------------------------------------------------

    def process_pending_events(self, handler: Callable[[Event], Any]) -> None:
        """Mirrors ``EventsProvider::process_pending_events`` for SpendableOutputs and BumpTransaction: each
        monitor's events in turn (see :mod:`.monitor_events`)."""
        self._events.process(handler)

    async def process_pending_events_async(self, handler: Callable[[Event], Any]) -> None:
        await self._events.process_async(handler)

    def _take_claim_events(self, channel_id: Optional[ChannelId]) -> list[Event]:
        """The channel's fee-bump requests, forgotten as they are handed over (LDK's ``get_repeated_events``)."""
        with self._lock:
            taken = [(claim_id, event) for claim_id, event in self._claim_events.items()
                     if event.bump_event.channel_id == channel_id]
            for claim_id, _ in taken:
                del self._claim_events[claim_id]
            return [event for _, event in taken]

    def _has_claim_events(self, channel_id: Optional[ChannelId]) -> bool:
        # (read without the lock, as most wake-ups find none: one added meanwhile wakes the processor again)
        return bool(self._claim_events) and any(e.bump_event.channel_id == channel_id
                                                for e in list(self._claim_events.values()))

    def has_pending_events(self) -> bool:
        return bool(self._events) or bool(self._claim_events)

    def pending_events(self) -> list[Event]:
        with self._lock:
            return self._events.pending() + list(self._claim_events.values())

    def replay_requested(self) -> bool:
        return self._events.replay_requested

    def get_update_future(self) -> Future:
        """Mirrors ``ChainMonitor::get_update_future``: completes when there are new events."""
        return self._events.get_future()
