"""Sweeping the outputs LDK hands us on chain into our wallet.

Mirrors ``lightning::util::sweep``: the ``OutputSweeper``, the ``TrackedSpendableOutput``
records it keeps and their ``OutputSpendStatus``. ldk-sample's ``SpendableOutputs`` arm is
one line::

    output_sweeper.track_spendable_outputs(outputs, channel_id, False, None)

and the sweeper does the rest as blocks arrive: spend the outputs to our wallet, rebroadcast
until the spend confirms, and forget them once it is ``PRUNE_DELAY_BLOCKS`` (4,038) blocks deep.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Optional

from .bitcoin import OutPoint, ScriptBuf, Transaction
from .chain import BestBlock
from .chain.chaininterface import ConfirmationTarget
from .logger import Logger
from .persist import (
    OUTPUT_SWEEPER_PERSISTENCE_KEY,
    OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
    OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
)
from .ser import U32, Record, RustEnum
from .sign import SpendableOutputDescriptor, descriptor_outpoint
from .sim.chain import Block, Chain
from .types import BlockHash, ChannelId, Txid

#: Mirrors ``lightning::chain::channelmonitor::ANTI_REORG_DELAY``: confirmations after which
#: LDK treats a transaction as final.
ANTI_REORG_DELAY = 6
#: Mirrors ``lightning::chain::channelmonitor::ARCHIVAL_DELAY_BLOCKS``.
ARCHIVAL_DELAY_BLOCKS = 4032
#: Mirrors ``lightning::util::sweep::PRUNE_DELAY_BLOCKS``: confirmations after which a swept output is
#: forgotten. Long after it is final, so that a replayed ``SpendableOutputs`` is still recognised.
PRUNE_DELAY_BLOCKS = ARCHIVAL_DELAY_BLOCKS + ANTI_REORG_DELAY
_MODULE = "ldkkit::sweep"


class OutputSpendStatus(RustEnum):
    """Mirrors ``lightning::util::sweep::OutputSpendStatus``: where a tracked output's sweep stands."""

    class PendingInitialBroadcast:
        """Not swept yet; waiting for ``delayed_until_height`` (if set) or the next chance."""

        delayed_until_height: Optional[U32]

    class PendingFirstConfirmation:
        """Swept by ``latest_spending_tx``, which is waiting to confirm."""

        first_broadcast_hash: str
        latest_broadcast_height: U32
        latest_spending_tx: Transaction

    class PendingThresholdConfirmations:
        """The spend confirmed at ``confirmation_height``; forgotten after PRUNE_DELAY_BLOCKS confirmations."""

        first_broadcast_hash: str
        latest_broadcast_height: U32
        latest_spending_tx: Transaction
        confirmation_height: U32
        confirmation_hash: str


class TrackedSpendableOutput(Record):
    """Mirrors ``lightning::util::sweep::TrackedSpendableOutput``: one output the sweeper looks after."""

    descriptor: SpendableOutputDescriptor
    channel_id: Optional[ChannelId]
    status: OutputSpendStatus

    def outpoint(self) -> OutPoint:
        return descriptor_outpoint(self.descriptor)

    def spending_txid(self) -> Optional[Txid]:
        tx = getattr(self.status, "latest_spending_tx", None)
        return tx.compute_txid() if tx is not None else None

    def is_spent_in(self, tx: Transaction) -> bool:
        """Mirrors ``TrackedSpendableOutput::is_spent_in``: does ``tx`` spend this output?"""
        outpoint = self.outpoint()
        return any(txin.previous_output == outpoint for txin in tx.input)


class SweeperState(Record):
    """Mirrors LDK's (private) ``SweeperState``: what the OutputSweeper persists, its tracked
    outputs and the last block it saw.

    Block hashes here and in ``OutputSpendStatus`` are hex strings, as bitcoind shows them.
    """

    outputs: tuple[TrackedSpendableOutput, ...]
    best_block_height: U32
    best_block_hash: str


class OutputSweeper:
    """Mirrors ``lightning::util::sweep::OutputSweeper`` (LDK 0.1).

    ``output_spender`` is the node's ``KeysManager`` and ``change_destination_source`` its
    wallet (a ``BitcoindClient``), which says where swept funds go. The sweeper follows the
    chain as a block listener and persists itself to ``kv_store`` under
    ``("", "", "output_sweeper")`` whenever its outputs change.

    Simplification: LDK re-spends unconfirmed outputs at a fresh feerate every block
    (replace-by-fee). The simulated mempool has no replace-by-fee, so a sweep is built once
    and then rebroadcast unchanged until it confirms; outputs tracked later get their own sweep.
    """

    def __init__(
        self, chain: Chain, broadcaster: Any, fee_estimator: Any, output_spender: Any,
        change_destination_source: Any, kv_store: Any, logger: Logger, *, _state: SweeperState | None = None,
    ) -> None:
        self.chain = chain
        self.broadcaster = broadcaster
        self.fee_estimator = fee_estimator
        self.output_spender = output_spender
        self.change_destination_source = change_destination_source
        self.kv_store = kv_store
        self.logger = logger
        self._lock = threading.RLock()
        tip = chain.tip()
        self._state = _state if _state is not None else SweeperState((), tip.height, tip.block_hash.hex())
        self._stopped = False
        chain.add_listener(self._block_connected)
        self._sync()  # catch up with blocks mined while we were not running

    # --- the LDK API -------------------------------------------------------------------------

    def track_spendable_outputs(
        self, output_descriptors: Sequence[SpendableOutputDescriptor], channel_id: Optional[ChannelId] = None,
        exclude_static_outputs: bool = False, delay_until_height: Optional[int] = None,
    ) -> None:
        """Start sweeping these outputs (skipping ``StaticOutput`` ones if ``exclude_static_outputs``).

        Outputs already tracked are ignored, so handling the same ``SpendableOutputs`` event
        twice is harmless. Due outputs are swept at once, as in LDK 0.1. Raises ``OSError``
        if the state cannot be persisted (LDK returns ``Err(())``), "in which case the call may be
        safely retried": the state is persisted on every call, outputs new or not, as LDK does.
        """
        output_descriptors = list(output_descriptors)  # (LDK takes a Vec: a generator is read once, here)
        for d in output_descriptors:
            if not isinstance(d, SpendableOutputDescriptor):
                raise TypeError(f"track_spendable_outputs takes SpendableOutputDescriptors, got {type(d).__name__}")
        relevant = [d for d in output_descriptors
                    if not (exclude_static_outputs and isinstance(d, SpendableOutputDescriptor.StaticOutput))]
        if not relevant:
            return
        with self._lock:
            known = {o.outpoint() for o in self._state.outputs}
            added = []
            for descriptor in relevant:
                outpoint = descriptor_outpoint(descriptor)
                if outpoint in known:
                    continue
                known.add(outpoint)
                status = OutputSpendStatus.PendingInitialBroadcast(delay_until_height)
                added.append(TrackedSpendableOutput(descriptor, channel_id, status))
            if added:
                self._set_outputs(self._state.outputs + tuple(added))
                self.logger.info(_MODULE, f"Tracking {len(added)} spendable output(s) of channel {channel_id}: "
                                 f"{', '.join(str(o.outpoint()) for o in added)}")
            to_broadcast = self._regenerate_spend_if_necessary()
            self._persist()
        self._broadcast(to_broadcast)

    def tracked_spendable_outputs(self) -> list[TrackedSpendableOutput]:
        """Every output being tracked, with its status."""
        with self._lock:
            return list(self._state.outputs)

    def current_best_block(self) -> BestBlock:
        """Mirrors ``OutputSweeper::current_best_block``: the last block the sweeper has processed."""
        with self._lock:
            return BestBlock(BlockHash(bytes.fromhex(self._state.best_block_hash)), self._state.best_block_height)

    def encode(self) -> bytes:
        with self._lock:
            return self._state.encode()

    @classmethod
    def read(
        cls, data: bytes, chain: Chain, broadcaster: Any, fee_estimator: Any, output_spender: Any,
        change_destination_source: Any, kv_store: Any, logger: Logger,
    ) -> OutputSweeper:
        """Rebuild a sweeper from :meth:`encode`'s bytes, as a node does on restart."""
        state = SweeperState.decode(data)
        return cls(chain, broadcaster, fee_estimator, output_spender, change_destination_source, kv_store, logger,
                   _state=state)

    def stop(self) -> None:
        """Stop following the chain (the simulated chain cannot remove a listener), e.g. when the node stops."""
        self._stopped = True

    # --- following the chain ------------------------------------------------------------------

    def _block_connected(self, block: Block) -> None:
        if self._stopped:
            return
        try:
            self._sync()
        except Exception as e:  # never let a sweeper error stop the chain from mining
            self.logger.error(_MODULE, f"OutputSweeper failed while processing block {block.height}: {e!r}")

    def _sync(self) -> None:
        """Process every block after our best block, then sweep and rebroadcast what is due."""
        with self._lock:
            changed = False
            for block in self.chain.blocks[self._state.best_block_height + 1:]:
                changed |= self._process_block(block)
            to_broadcast = self._regenerate_spend_if_necessary()
            changed |= bool(to_broadcast)
            if changed:
                self._persist_logging_errors()
        self._broadcast(to_broadcast)

    def _process_block(self, block: Block) -> bool:
        """Note spends of our outputs in ``block`` and forget outputs swept deeply enough."""
        outputs = []
        changed = False
        for output in self._state.outputs:
            new = self._confirm_if_spent(output, block)
            if isinstance(new.status, OutputSpendStatus.PendingThresholdConfirmations) and (
                block.height >= new.status.confirmation_height + PRUNE_DELAY_BLOCKS - 1
            ):
                self.logger.info(_MODULE, f"Output {new.outpoint()} was swept by {new.spending_txid()}, now "
                                 f"{PRUNE_DELAY_BLOCKS} blocks deep; no longer tracking it")
                changed = True
                continue
            changed |= new is not output
            outputs.append(new)
        self._state = SweeperState(tuple(outputs), block.height, block.block_hash.hex())
        return changed

    def _confirm_if_spent(self, output: TrackedSpendableOutput, block: Block) -> TrackedSpendableOutput:
        if isinstance(output.status, OutputSpendStatus.PendingThresholdConfirmations):
            return output
        spender = next((tx for tx in block.txdata if output.is_spent_in(tx)), None)
        if spender is None:
            return output
        first_hash = getattr(output.status, "first_broadcast_hash", block.block_hash.hex())
        latest_height = getattr(output.status, "latest_broadcast_height", block.height)
        status = OutputSpendStatus.PendingThresholdConfirmations(
            first_hash, latest_height, spender, block.height, block.block_hash.hex())
        self.logger.info(_MODULE, f"Sweep {spender.compute_txid()} of output {output.outpoint()} confirmed in "
                         f"block {block.height}")
        return TrackedSpendableOutput(output.descriptor, output.channel_id, status)

    # --- sweeping ---------------------------------------------------------------------------

    def _regenerate_spend_if_necessary(self) -> list[Transaction]:
        """Build one sweep for the outputs that are due; list it and unconfirmed sweeps to (re)broadcast."""
        if not self._state.outputs:
            return []  # (nothing tracked, as for most of a node's life: no new state to make)
        height, block_hash = self._state.best_block_height, self._state.best_block_hash
        due = [o for o in self._state.outputs if isinstance(o.status, OutputSpendStatus.PendingInitialBroadcast)
               and (o.status.delayed_until_height is None or height >= o.status.delayed_until_height)]
        txs: dict[Txid, Transaction] = {}
        outputs = list(self._state.outputs)
        for i, o in enumerate(outputs):  # rebroadcast unconfirmed sweeps once per block
            if isinstance(o.status, OutputSpendStatus.PendingFirstConfirmation) and \
                    o.status.latest_broadcast_height < height:
                txs[o.spending_txid()] = o.status.latest_spending_tx
                status = OutputSpendStatus.PendingFirstConfirmation(
                    o.status.first_broadcast_hash, height, o.status.latest_spending_tx)
                outputs[i] = TrackedSpendableOutput(o.descriptor, o.channel_id, status)
        sweep = self._build_sweep(due) if due else None
        if sweep is not None:
            txs[sweep.compute_txid()] = sweep
            status = OutputSpendStatus.PendingFirstConfirmation(block_hash, height, sweep)
            swept = {o.outpoint() for o in due}
            outputs = [TrackedSpendableOutput(o.descriptor, o.channel_id, status) if o.outpoint() in swept else o
                       for o in outputs]
        self._set_outputs(tuple(outputs))
        return list(txs.values())

    def _build_sweep(self, due: list[TrackedSpendableOutput]) -> Transaction | None:
        try:
            feerate = self.fee_estimator.get_est_sat_per_1000_weight(ConfirmationTarget.OutputSpendingFee)
            change_script = self._change_destination_script()
            sweep = self.output_spender.spend_spendable_outputs(
                [o.descriptor for o in due], [], change_script, feerate, None)
        except Exception as e:
            self.logger.error(_MODULE, f"Failed to sweep {len(due)} output(s) "
                              f"({', '.join(str(o.outpoint()) for o in due)}): {e}. Will retry on the next block.")
            return None
        self.logger.info(_MODULE, f"Sweeping {len(due)} output(s) to our wallet in transaction "
                         f"{sweep.compute_txid()} at {feerate} sat/kW")
        return sweep

    def _change_destination_script(self) -> ScriptBuf:
        """Ask the wallet where swept funds go (LDK's ``ChangeDestinationSource``)."""
        source = self.change_destination_source
        for name in ("get_change_destination_script", "get_change_script"):
            if hasattr(source, name):
                return getattr(source, name)()
        return source.get_new_address().script_pubkey

    def _broadcast(self, txs: list[Transaction]) -> None:
        if not txs:
            return
        try:
            self.broadcaster.broadcast_transactions(txs)
        except Exception as e:
            self.logger.error(_MODULE, f"Broadcasting sweep(s) {', '.join(str(t.compute_txid()) for t in txs)} "
                              f"failed: {e}")

    # --- persistence --------------------------------------------------------------------------

    def _set_outputs(self, outputs: tuple[TrackedSpendableOutput, ...]) -> None:
        self._state = SweeperState(outputs, self._state.best_block_height, self._state.best_block_hash)

    def _persist(self) -> None:
        self.kv_store.write(
            OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
            OUTPUT_SWEEPER_PERSISTENCE_KEY, self._state.encode(),
        )

    def _persist_logging_errors(self) -> None:
        try:
            self._persist()
        except Exception as e:
            self.logger.error(_MODULE, f"Error persisting OutputSweeper: {e}")

    def __repr__(self) -> str:
        outputs, height = len(self._state.outputs), self._state.best_block_height
        return f"OutputSweeper({outputs} tracked output(s), best block {height})"
