"""Watching the chain for every channel: closes, outputs we can spend, fees to bump.

Mirrors ``lightning::chain::chainmonitor::ChainMonitor`` and the ``ChannelMonitor`` it
holds for each channel (``lightning::chain::channelmonitor``). The ChannelManager hands a
monitor over when a channel is funded and updates it as balances move; the monitor
builds and broadcasts the commitment transaction on a force-close, and raises
``SpendableOutputs`` once our outputs mature and ``BumpTransaction`` for anchor channels.

Scripts are simplified but real-looking (P2WSH and P2WPKH); nothing checks them, while
every amount is exact. HTLCs still in flight when a channel force-closes go back to the
side that offered them once they expire; claiming an HTLC on chain with its preimage is
not modelled.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ..chain.chaininterface import ConfirmationTarget
from ..events import Event
from ..events.bump_transaction import (
    AnchorDescriptor,
    BumpTransactionEvent,
    ChannelDerivationParameters,
    HTLCOutputInCommitment,
)
from ..events.queue import EventQueue
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
    #: so a SpendableOutputs queued when the node stops comes back after a restart.
    pending_events: tuple[Event, ...] = ()

    def storage_key(self) -> str:
        return f"{self.funding_txo.txid}_{self.funding_txo.vout}"


class MonitorEvent(Record):
    """Mirrors ``lightning::chain::channelmonitor::MonitorEvent``: news for the ChannelManager."""

    channel_id: ChannelId
    kind: str  # "CommitmentTxConfirmed" or "HTLCTimedOut"
    htlc_id: Optional[U64]


def _channel_of(event: Event) -> Optional[ChannelId]:
    """The channel a ChainMonitor event is about."""
    if isinstance(event, Event.BumpTransaction):
        return event.bump_event.channel_id
    return getattr(event, "channel_id", None)


def _p2wsh(*parts: bytes) -> ScriptBuf:
    return ScriptBuf.new_p2wsh(b"".join(parts))


def _push(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _push_int(n: int) -> bytes:
    return _push(n.to_bytes((n.bit_length() + 8) // 8, "little"))


def to_local_script(delayed_key: PublicKey, revocation_key: PublicKey, delay: int) -> ScriptBuf:
    """BOLT 3 to_local: the revocation key now, or the delayed key after ``delay`` blocks."""
    return _p2wsh(b"\x63", _push(bytes(revocation_key)), b"\x67", _push_int(delay), b"\xb2\x75",
                  _push(bytes(delayed_key)), b"\x68\xac")


def to_remote_script(key: PublicKey, anchors: bool) -> ScriptBuf:
    """BOLT 3 to_remote: the counterparty's key (after one block, on anchor channels)."""
    if anchors:
        return _p2wsh(_push(bytes(key)), b"\xad\x51\xb2")
    return ScriptBuf.new_p2wpkh(bytes(key))


def anchor_script(funding_key: PublicKey) -> ScriptBuf:
    """BOLT 3 anchor output, spendable by its owner at once or by anyone after 16 blocks."""
    return _p2wsh(_push(bytes(funding_key)), b"\xac\x73\x64\x60\xb2\x68")


def htlc_script(payment_hash: PaymentHash, cltv_expiry: int) -> ScriptBuf:
    """An HTLC output: the preimage claims it, or it times out at ``cltv_expiry``."""
    return _p2wsh(_push_int(cltv_expiry), b"\xb1\x75\xa8", _push(bytes(payment_hash)), b"\x87")


def _fake_signature(*parts: bytes) -> bytes:
    """A well-formed DER-length placeholder: the simulated chain does not check signatures."""
    return b"\x30\x44" + hashlib.sha256(b"".join(parts)).digest() * 2 + b"\x01"


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
        self._events = EventQueue("ChainMonitor")
        self._events.on_change = self._persist_pending_events
        self._monitor_events: list[MonitorEvent] = []
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

    def watch_channel(self, manager: Any, chan: Any) -> None:
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

    def channel_updated(self, manager: Any, chan: Any, preimage: Any = None) -> None:
        """Mirrors ``chain::Watch::update_channel``: record the channel's latest balances."""
        with self._lock:
            monitor = self.monitors.get(chan.channel_id)
            if monitor is not None and monitor.spend_txid is None:
                self._snapshot(monitor, chan)

    def _snapshot(self, monitor: ChannelMonitor, chan: Any) -> None:
        monitor.to_self_msat = chan.value_to_self_msat
        monitor.to_remote_msat = chan.value_to_remote_msat()
        monitor.htlcs = tuple(
            [MonitorHTLC(h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry, True)
             for h in chan.pending_outbound_htlcs.values()]
            + [MonitorHTLC(h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry, False)
               for h in chan.pending_inbound_htlcs.values()]
        )
        self._persist(monitor)

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

    def broadcast_latest_holder_commitment(self, manager: Any, chan: Any) -> None:
        """Broadcast our latest commitment transaction; on anchor channels, ask for a fee bump."""
        with self._lock:
            monitor = self.monitors[chan.channel_id]
            self._snapshot(monitor, chan)
            tx, fee = self._holder_commitment(monitor)
            monitor.holder_commitment_tx = tx
            self._persist(monitor)
        self.logger.info("ldkkit::chain::chainmonitor", f"Broadcasting commitment transaction {tx.compute_txid()}")
        self.broadcaster.broadcast_transactions([tx])
        if monitor.channel_type.supports_anchors_zero_fee_htlc_tx():
            self._queue_bump(monitor, tx, fee)

    # --- commitment transactions ---------------------------------------------------------------

    def _holder_commitment(self, monitor: ChannelMonitor) -> tuple[Transaction, int]:
        keys = self.keys_manager.derive_channel_keys(monitor.channel_value_satoshis, monitor.channel_keys_id)
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
        witness_script = b"\x52" + b"".join(_push(k) for k in keys) + b"\x52\xae"
        sigs = [_fake_signature(tag, bytes(monitor.channel_id), k) for k in keys]
        txin = TxIn(monitor.funding_txo, ScriptBuf(b""), sequence, (b"", *sigs, witness_script))
        return Transaction.new(2, 0, [txin], outs)

    def _queue_bump(self, monitor: ChannelMonitor, tx: Transaction, fee: int) -> None:
        txid = tx.compute_txid()
        ours = anchor_script(monitor.holder_funding_pubkey)
        vout = next(i for i, o in enumerate(tx.output) if o.script_pubkey == ours)
        self._events.push(Event.BumpTransaction(BumpTransactionEvent.ChannelClose(
            channel_id=monitor.channel_id,
            counterparty_node_id=monitor.counterparty_node_id,
            claim_id=ClaimId(hashlib.sha256(bytes(txid)).digest()),
            package_target_feerate_sat_per_1000_weight=self.fee_estimator.get_est_sat_per_1000_weight(
                ConfirmationTarget.UrgentOnChainSweep),
            commitment_tx=tx,
            commitment_tx_fee_satoshis=fee,
            anchor_descriptor=AnchorDescriptor(
                ChannelDerivationParameters(monitor.channel_value_satoshis, monitor.channel_keys_id),
                OutPoint(txid, vout),
            ),
            pending_htlcs=tuple(
                HTLCOutputInCommitment(h.offered, h.amount_msat, h.cltv_expiry, h.payment_hash, None)
                for h in monitor.htlcs
            ),
        )))

    def rebroadcast_pending_claims(self) -> None:
        """Mirrors ``ChainMonitor::rebroadcast_pending_claims``: rebroadcast unconfirmed commitments."""
        with self._lock:
            pending = [m.holder_commitment_tx for m in self.monitors.values()
                       if m.holder_commitment_tx is not None and m.spend_txid is None]
        if pending:
            self.broadcaster.broadcast_transactions(pending)

    # --- blocks --------------------------------------------------------------------------------

    def block_connected(self, block: Any, height: int) -> None:
        """Mirrors ``chain::Listen::block_connected``: find channel closes, raise spendable outputs."""
        with self._lock:
            for monitor in self.monitors.values():
                if monitor.spend_txid is None:
                    self._find_spend(monitor, block, height)
                if monitor.spend_txid is not None:
                    self._mature_outputs(monitor, height)

    def _find_spend(self, monitor: ChannelMonitor, block: Any, height: int) -> None:
        for tx in block.txdata:
            if any(txin.previous_output == monitor.funding_txo for txin in tx.input):
                monitor.spend_txid = tx.compute_txid()
                monitor.spend_height = height
                if monitor.spend_txid != monitor.closing_txid and monitor.holder_commitment_tx is None:
                    self._monitor_events.append(MonitorEvent(monitor.channel_id, "CommitmentTxConfirmed", None))
                self._persist(monitor)
                return

    def _mature_outputs(self, monitor: ChannelMonitor, height: int) -> None:
        """Raise SpendableOutputs for each of our outputs of the closing spend once it matures."""
        tx = self.chain.get_transaction(monitor.spend_txid)
        confirmations = height - monitor.spend_height + 1
        keys = self.keys_manager.derive_channel_keys(monitor.channel_value_satoshis, monitor.channel_keys_id)
        anchors = monitor.channel_type.supports_anchors_zero_fee_htlc_tx()
        holder_tx = monitor.holder_commitment_tx
        holder = holder_tx is not None and monitor.spend_txid == holder_tx.compute_txid()
        ready: list[SpendableOutputDescriptor] = []
        for vout, out in enumerate(tx.output):
            if vout in monitor.reported_outputs:
                continue
            outpoint = OutPoint(monitor.spend_txid, vout)
            descriptor = self._our_output(monitor, keys, anchors, holder, outpoint, out, confirmations, height)
            if descriptor is not None:
                ready.append(descriptor)
                monitor.reported_outputs = monitor.reported_outputs + (vout,)
        if ready:
            self._persist(monitor)
            self._events.push(Event.SpendableOutputs(tuple(ready), monitor.channel_id))

    def _our_output(
        self, monitor: ChannelMonitor, keys: Any, anchors: bool, holder: bool, outpoint: OutPoint, out: TxOut,
        confirmations: int, height: int,
    ) -> Optional[SpendableOutputDescriptor]:
        script = out.script_pubkey
        if monitor.spend_txid == monitor.closing_txid:
            if script == self.keys_manager.get_shutdown_scriptpubkey() and confirmations >= ANTI_REORG_DELAY:
                return SpendableOutputDescriptor.StaticOutput(outpoint, out, monitor.channel_keys_id)
            return None
        if holder and script == to_local_script(keys.delayed_payment_basepoint, keys.revocation_basepoint,
                                                monitor.to_self_delay):
            if confirmations >= monitor.to_self_delay:
                return SpendableOutputDescriptor.DelayedPaymentOutput(DelayedPaymentOutputDescriptor(
                    outpoint, keys.delayed_payment_basepoint, monitor.to_self_delay, out, keys.revocation_basepoint,
                    monitor.channel_keys_id, monitor.channel_value_satoshis,
                ))
            return None
        if not holder and script == to_remote_script(monitor.holder_funding_pubkey, anchors):
            if confirmations >= ANTI_REORG_DELAY:
                return SpendableOutputDescriptor.StaticPaymentOutput(StaticPaymentOutputDescriptor(
                    outpoint, out, monitor.channel_keys_id, monitor.channel_value_satoshis,
                ))
            return None
        for htlc in monitor.htlcs:
            if script == htlc_script(htlc.payment_hash, htlc.cltv_expiry) and htlc.offered:
                # Our HTLC timed out: it is ours again once it expires and the close is final.
                if height >= htlc.cltv_expiry and confirmations >= ANTI_REORG_DELAY:
                    if htlc.htlc_id not in monitor.resolved_htlcs:
                        monitor.resolved_htlcs = monitor.resolved_htlcs + (htlc.htlc_id,)
                        self._monitor_events.append(MonitorEvent(monitor.channel_id, "HTLCTimedOut", htlc.htlc_id))
                    return SpendableOutputDescriptor.StaticOutput(outpoint, out, monitor.channel_keys_id)
        return None

    def release_pending_monitor_events(self) -> list[MonitorEvent]:
        """Mirrors ``chain::Watch::release_pending_monitor_events``: news for the ChannelManager."""
        with self._lock:
            out, self._monitor_events = self._monitor_events, []
            return out

    # --- events ----------------------------------------------------------------------------------

    def process_pending_events(self, handler: Callable[[Event], Any]) -> None:
        """Mirrors ``EventsProvider::process_pending_events`` for SpendableOutputs and BumpTransaction."""
        self._events.process(handler)

    async def process_pending_events_async(self, handler: Callable[[Event], Any]) -> None:
        await self._events.process_async(handler)

    def has_pending_events(self) -> bool:
        return bool(self._events)

    def pending_events(self) -> list[Event]:
        return self._events.pending()

    def replay_requested(self) -> bool:
        return self._events.replay_requested

    def get_update_future(self) -> Future:
        """Mirrors ``ChainMonitor::get_update_future``: completes when there are new events."""
        return self._events.get_future()
