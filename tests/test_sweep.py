"""OutputSweeper: tracked outputs reach the wallet, survive a restart, and are forgotten once safely swept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ldkkit.bitcoind_client import BitcoindClient
from ldkkit.chain.chaininterface import ConfirmationTarget, fee_for_weight
from ldkkit.fs_store import FilesystemStore
from ldkkit.logger import Level, Logger
from ldkkit.sign import KeysManager, SpendableOutputDescriptor, StaticPaymentOutputDescriptor
from ldkkit.sim.chain import Chain
from ldkkit.sim.clock import VirtualClock
from ldkkit.sweep import ANTI_REORG_DELAY, PRUNE_DELAY_BLOCKS, OutputSpendStatus, OutputSweeper, SweeperState
from ldkkit.types import ChannelId

CHANNEL = ChannelId(b"\x11" * 32)


class MemoryStore:
    """A KVStore in a dict, counting writes."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str, str], bytes] = {}
        self.writes = 0

    def write(self, primary: str, secondary: str, key: str, buf: bytes) -> None:
        self.data[(primary, secondary, key)] = buf
        self.writes += 1

    def read(self, primary: str, secondary: str, key: str) -> bytes:
        return self.data[(primary, secondary, key)]


class Node:
    """The on-chain parts of a node, wired as ldk-sample wires them."""

    def __init__(self, store=None) -> None:
        self.chain = Chain(VirtualClock())
        self.wallet = BitcoindClient(self.chain, Network.Regtest, b"\x01" * 32)
        self.keys = KeysManager(b"\x02" * 32, 0, 0)
        self.store = store if store is not None else MemoryStore()
        self.logger = Logger("sweeper")
        self.sweeper = self.new_sweeper()

    def new_sweeper(self, data: bytes | None = None) -> OutputSweeper:
        args = (self.chain, self.wallet, self.wallet, self.keys, self.wallet, self.store, self.logger)
        return OutputSweeper(*args) if data is None else OutputSweeper.read(data, *args)

    def static_outputs(self, *values: int) -> list[SpendableOutputDescriptor]:
        """Cooperative-close style outputs paying our shutdown script, confirmed."""
        script = self.keys.get_shutdown_scriptpubkey()
        descriptors = []
        for value in values:
            tx = self.chain.fund({script: value})
            outpoint = OutPoint(tx.compute_txid(), 0)
            descriptors.append(SpendableOutputDescriptor.StaticOutput(outpoint, tx.output[0], None))
        self.chain.mine(1)
        return descriptors

    def to_remote_output(self, value: int) -> SpendableOutputDescriptor:
        kid = self.keys.generate_channel_keys_id(False, 1_000_000, 1)
        script = ScriptBuf.new_p2wpkh(bytes(self.keys.derive_channel_keys(1_000_000, kid).payment_point))
        tx = self.chain.fund({script: value})
        self.chain.mine(1)
        d = StaticPaymentOutputDescriptor(OutPoint(tx.compute_txid(), 0), tx.output[0], kid, 1_000_000)
        return SpendableOutputDescriptor.StaticPaymentOutput(d)


def statuses(sweeper: OutputSweeper) -> list[str]:
    return [type(o.status).__name__ for o in sweeper.tracked_spendable_outputs()]


def test_ldk_sample_flow_sweeps_to_the_wallet_and_forgets_after_prune_delay_blocks():
    node = Node()
    descriptors = [*node.static_outputs(50_000, 60_000), node.to_remote_output(70_000)]
    before = node.wallet.get_balance()
    node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, None)
    assert statuses(node.sweeper) == ["PendingFirstConfirmation"] * 3  # swept at once, in one transaction
    (sweep,) = node.chain.mempool.values()
    assert len(sweep.input) == 3 and len(sweep.output) == 1 and node.wallet.is_mine(sweep.output[0].script_pubkey)
    node.chain.mine(1)
    assert statuses(node.sweeper) == ["PendingThresholdConfirmations"] * 3
    node.chain.mine(PRUNE_DELAY_BLOCKS - 2)
    assert len(node.sweeper.tracked_spendable_outputs()) == 3  # 4,037 confirmations: still watching
    node.chain.mine(1)
    assert node.sweeper.tracked_spendable_outputs() == []
    fee = 180_000 - sweep.output[0].value
    assert node.wallet.get_balance() == before + 180_000 - fee and 0 < fee < 1_000
    assert node.wallet.rejected == [] and node.logger.records(Level.Error) == []


@given(st.lists(st.integers(2_000, 10**7), min_size=1, max_size=4, unique=True), st.integers(253, 5_000))
def test_sweeps_conserve_value(values, feerate):
    node = Node()
    node.wallet.set_fee_estimate(ConfirmationTarget.OutputSpendingFee, feerate)
    descriptors = node.static_outputs(*values)
    before, fees_before = node.wallet.get_balance(), node.chain.fees_paid_sat
    node.sweeper.track_spendable_outputs(descriptors, None, False, None)
    node.chain.mine(ANTI_REORG_DELAY)
    paid = node.chain.fees_paid_sat - fees_before
    pending = [o for o in node.sweeper.tracked_spendable_outputs()
               if isinstance(o.status, OutputSpendStatus.PendingInitialBroadcast)]
    if pending:  # too small to pay for their own sweep at this feerate
        assert paid == 0 and node.logger.records(Level.Error)
        return
    assert node.wallet.get_balance() == before + sum(values) - paid
    assert paid <= fee_for_weight(feerate, 170 + 280 * len(values))  # n P2WPKH inputs, one P2WPKH output


def test_retracking_is_idempotent():
    node = Node()
    descriptors = node.static_outputs(40_000)
    node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, None)
    node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, None)
    assert len(node.sweeper.tracked_spendable_outputs()) == 1 and len(node.chain.mempool) == 1


def test_outputs_handed_over_as_any_iterable_are_all_tracked_and_spent():
    """LDK takes a Vec: a generator (or map, filter) handed over is read once, whole, not used up by a type check."""
    node = Node()
    descriptors = node.static_outputs(40_000, 50_000)
    node.sweeper.track_spendable_outputs((d for d in descriptors), CHANNEL, False, None)
    assert [o.descriptor for o in node.sweeper.tracked_spendable_outputs()] == descriptors
    tx = node.keys.spend_spendable_outputs((d for d in descriptors), iter(()), node.wallet.get_change_script(), 253)
    assert {i.previous_output for i in tx.input} == {d.outpoint for d in descriptors}


def test_a_failed_persist_is_made_good_by_calling_again():
    """LDK 0.1: track_spendable_outputs "returns Err on persistence failure, in which case the call may be safely
    retried": the retry persists the state, though its outputs are already tracked in memory."""

    class FailingOnce(MemoryStore):
        failed = False

        def write(self, primary: str, secondary: str, key: str, buf: bytes) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("disk full")
            super().write(primary, secondary, key, buf)

    node = Node(FailingOnce())
    descriptors = node.static_outputs(40_000)
    with pytest.raises(OSError):
        node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, None)
    node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, None)  # (a handler's retry, or a replay)
    (stored,) = node.store.data.values()
    assert [o.descriptor for o in node.new_sweeper(stored).tracked_spendable_outputs()] == descriptors


def test_static_outputs_can_be_excluded():
    node = Node()
    node.sweeper.track_spendable_outputs(node.static_outputs(40_000), CHANNEL, True, None)
    assert node.sweeper.tracked_spendable_outputs() == [] and node.store.writes == 0
    node.sweeper.track_spendable_outputs([node.to_remote_output(30_000)], CHANNEL, True, None)
    assert len(node.sweeper.tracked_spendable_outputs()) == 1


def test_delay_until_height_holds_the_sweep_back():
    node = Node()
    descriptors = node.static_outputs(40_000)
    node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, node.chain.height() + 2)
    assert statuses(node.sweeper) == ["PendingInitialBroadcast"] and not node.chain.mempool
    node.chain.mine(1)
    assert statuses(node.sweeper) == ["PendingInitialBroadcast"]
    node.chain.mine(1)
    assert statuses(node.sweeper) == ["PendingFirstConfirmation"] and len(node.chain.mempool) == 1


def test_state_is_persisted_on_every_change_and_read_back_after_a_restart(tmp_path):
    node = Node(FilesystemStore(tmp_path))
    node.sweeper.track_spendable_outputs(node.static_outputs(40_000), CHANNEL, False, None)
    saved = SweeperState.decode((tmp_path / "output_sweeper").read_bytes())
    assert [o.channel_id for o in saved.outputs] == [CHANNEL]
    assert isinstance(saved.outputs[0].status, OutputSpendStatus.PendingFirstConfirmation)
    # the node stops; two blocks are mined while it is down; it restarts from disk
    node.sweeper.stop()
    node.chain.mine(2)
    restarted = node.new_sweeper(node.store.read("", "", "output_sweeper"))
    assert restarted.current_best_block().height == node.chain.height()
    assert statuses(restarted) == ["PendingThresholdConfirmations"]
    node.chain.mine(PRUNE_DELAY_BLOCKS - 2)
    assert restarted.tracked_spendable_outputs() == []
    assert SweeperState.decode(node.store.read("", "", "output_sweeper")).outputs == ()
    assert restarted.encode() == node.store.read("", "", "output_sweeper")


def test_persists_whenever_outputs_change():
    node = Node()
    node.sweeper.track_spendable_outputs(node.static_outputs(40_000), CHANNEL, False, None)
    assert node.store.writes == 1
    node.chain.mine(1)  # confirmed
    assert node.store.writes == 2
    node.chain.mine(PRUNE_DELAY_BLOCKS - 2)  # nothing changes
    assert node.store.writes == 2
    node.chain.mine(1)  # forgotten
    assert node.store.writes == 3


class DroppingBroadcaster:
    """Loses the first broadcast, as a flaky connection to bitcoind might."""

    def __init__(self, wallet: BitcoindClient) -> None:
        self.wallet = wallet
        self.calls: list[list[Transaction]] = []

    def broadcast_transactions(self, txs) -> None:
        self.calls.append(list(txs))
        if len(self.calls) > 1:
            self.wallet.broadcast_transactions(txs)


def test_unconfirmed_sweeps_are_rebroadcast_each_block():
    node = Node()
    broadcaster = DroppingBroadcaster(node.wallet)
    node.sweeper.stop()
    sweeper = OutputSweeper(node.chain, broadcaster, node.wallet, node.keys, node.wallet, node.store, node.logger)
    sweeper.track_spendable_outputs(node.static_outputs(40_000), CHANNEL, False, None)
    assert not node.chain.mempool
    node.chain.mine(1)  # the sweep is not in it, so the sweeper sends it again
    assert len(broadcaster.calls) == 2 and broadcaster.calls[0] == broadcaster.calls[1]
    node.chain.mine(1)
    assert statuses(sweeper) == ["PendingThresholdConfirmations"]


def test_unspendable_outputs_are_logged_as_errors_and_retried():
    node = Node()
    foreign = ScriptBuf.new_p2wpkh(b"\x02" + b"\x55" * 32)
    tx = node.chain.fund({foreign: 40_000})
    node.chain.mine(1)
    descriptor = SpendableOutputDescriptor.StaticOutput(OutPoint(tx.compute_txid(), 0), tx.output[0], None)
    node.sweeper.track_spendable_outputs([descriptor], CHANNEL, False, None)
    errors = node.logger.records(Level.Error)
    assert len(errors) == 1 and "Failed to sweep" in errors[0].args and "shutdown script" in errors[0].args
    node.chain.mine(1)
    assert len(node.logger.records(Level.Error)) == 2
    assert statuses(node.sweeper) == ["PendingInitialBroadcast"]


def test_an_output_spent_by_someone_else_is_forgotten_too():
    node = Node()
    descriptors = node.static_outputs(40_000)
    node.sweeper.track_spendable_outputs(descriptors, CHANNEL, False, 10_000)  # far in the future
    other = Transaction.new(2, 0, [TxIn(descriptors[0].outpoint, ScriptBuf(b""), 0, (b"\x01",))],
                            [TxOut(39_000, ScriptBuf.new_p2wsh(b"\x51"))])
    node.chain.broadcast(other)
    node.chain.mine(1)
    (tracked,) = node.sweeper.tracked_spendable_outputs()
    assert tracked.spending_txid() == other.compute_txid()
    node.chain.mine(PRUNE_DELAY_BLOCKS - 1)
    assert node.sweeper.tracked_spendable_outputs() == []


def test_ldks_prune_delay():
    assert (ANTI_REORG_DELAY, PRUNE_DELAY_BLOCKS) == (6, 4038)
