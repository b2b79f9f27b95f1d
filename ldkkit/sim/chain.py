"""A regtest block chain with no bitcoind: blocks, a mempool and the set of unspent outputs.

Transactions are real serialized Bitcoin transactions. The chain checks what bitcoind's
mempool would refuse and a learner could get wrong (missing or already-spent inputs,
outputs worth more than inputs, non-witness inputs in funding transactions), with
bitcoind's reject reasons. Scripts are not executed: signatures are real but not verified.

Block 1 funds the wallets the world asks for; later blocks pay their fees and the regtest
subsidy to a miner outside the world, so the world's own money stays constant.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..bitcoin import OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ..types import Txid
from .clock import VirtualClock

#: Where newly mined coins go: a script nobody in the world owns (OP_TRUE in P2WSH).
MINER_SCRIPT = ScriptBuf.new_p2wsh(b"\x51")
COIN = 100_000_000
_NULL_TXID = Txid(bytes(32))


class ChainError(ValueError):
    """bitcoind refused a transaction; the message starts with bitcoind's reject reason."""


@dataclass(frozen=True)
class Block:
    """A mined block: its height, hash, time and transactions (the coinbase first)."""

    height: int
    block_hash: bytes
    time: int
    txdata: tuple[Transaction, ...]

    def __repr__(self) -> str:
        return f"Block({self.height}, {len(self.txdata) - 1} transactions)"


class Chain:
    """The regtest chain every node in a world shares."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.blocks: list[Block] = []
        self.utxos: dict[OutPoint, TxOut] = {}
        self.mempool: dict[Txid, Transaction] = {}
        self.confirmed_at: dict[Txid, int] = {}  # txid -> height of the block holding it
        self.transactions: dict[Txid, Transaction] = {}
        self.spent_by: dict[OutPoint, Txid] = {}
        self.fees_paid_sat = 0  # to miners, by the world's transactions
        self._fees: dict[Txid, int] = {}
        self._funded = 0
        self._listeners: list[Callable[[Block], None]] = []
        #: Called just before a block is added (the world's: its nodes' event logs stamp what was handed until then,
        #: at the height it was handed at; a listener, told once the block is in, would let a reader in another
        #: thread stamp them with the new height meanwhile).
        self.before_block: Callable[[], None] | None = None
        self._lock = threading.RLock()
        self._mine_block([], {})

    # --- reading --------------------------------------------------------------------------

    def height(self) -> int:
        return len(self.blocks) - 1

    def tip(self) -> Block:
        return self.blocks[-1]

    def confirmations(self, txid: Txid) -> int | None:
        """Blocks on top of (and including) the one holding ``txid``; 0 if in the mempool."""
        with self._lock:
            if txid in self.confirmed_at:
                return self.height() - self.confirmed_at[txid] + 1
            return 0 if txid in self.mempool else None

    def get_transaction(self, txid: Txid) -> Transaction | None:
        return self.transactions.get(txid)

    def unspent_for(self, scripts: set[ScriptBuf]) -> list[tuple[OutPoint, TxOut, int]]:
        """Unspent outputs paying any of ``scripts``, mempool ones included, with confirmations."""
        with self._lock:
            out = []
            for outpoint, txout in self.utxos.items():
                if txout.script_pubkey in scripts and outpoint not in self.spent_by:
                    out.append((outpoint, txout, self.confirmations(outpoint.txid) or 0))
            return out

    def median_time_past(self) -> int:
        """The median time of the last eleven blocks: what a time-based nLockTime is compared with (BIP 113)."""
        times = sorted(block.time for block in self.blocks[-11:])
        return times[len(times) // 2] if times else 0

    def add_listener(self, listener: Callable[[Block], None]) -> None:
        """Call ``listener(block)`` for every block mined from now on (``chain::Listen``)."""
        self._listeners.append(listener)

    # --- writing --------------------------------------------------------------------------

    def broadcast(self, tx: Transaction) -> Txid:
        """Accept ``tx`` into the mempool, as ``sendrawtransaction`` does; returns its txid."""
        with self._lock:
            txid = tx.compute_txid()
            if txid in self.transactions:
                return txid  # already known: rebroadcasting is harmless
            if not is_final(tx, len(self.blocks), self.median_time_past()):
                raise ChainError(f"non-final: its nLockTime ({tx.lock_time:,}) is not yet reached (the next block is "
                                 f"{len(self.blocks):,}), and not every input's nSequence is final (0xffffffff)")
            inputs = tx.input
            value_in = 0
            for txin in inputs:
                prev = txin.previous_output
                if prev not in self.utxos:
                    raise ChainError(f"bad-txns-inputs-missingorspent: input {prev} does not exist")
                if prev in self.spent_by:
                    raise ChainError(f"txn-mempool-conflict: input {prev} is already spent by {self.spent_by[prev]}")
                value_in += self.utxos[prev].value
            value_out = sum(o.value for o in tx.output)
            if value_out > value_in:
                raise ChainError(f"bad-txns-in-belowout: outputs ({value_out} sat) exceed inputs ({value_in} sat)")
            for txin in inputs:
                self.spent_by[txin.previous_output] = txid
            for vout, txout in enumerate(tx.output):
                self.utxos[OutPoint(txid, vout)] = txout
            self.mempool[txid] = tx
            self.transactions[txid] = tx
            self._fees[txid] = value_in - value_out
            self.fees_paid_sat += value_in - value_out
            return txid

    def fund(self, outputs: dict[ScriptBuf, int]) -> Transaction:
        """Pay coins straight into the world (block 1 does this for the wallets)."""
        with self._lock:
            self._funded += 1
            tx = _coinbase(tuple(outputs.items()), tag=b"f" + self._funded.to_bytes(3, "little"))
            self._add_unchecked(tx)
            return tx

    def mine(self, count: int = 1) -> list[Block]:
        """Mine ``count`` blocks, the first holding the whole mempool; tell every listener."""
        blocks = []
        for _ in range(count):
            with self._lock:
                txs = list(self.mempool.values())
                self.mempool.clear()
                subsidy = (50 * COIN) >> (len(self.blocks) // 150)
                fees = sum(self._fees.get(tx.compute_txid(), 0) for tx in txs)
                coinbase = _coinbase(((MINER_SCRIPT, subsidy + fees),), tag=len(self.blocks).to_bytes(4, "little"))
                block = self._mine_block(txs, {coinbase.compute_txid(): coinbase})
            blocks.append(block)
            for listener in list(self._listeners):
                listener(block)
        return blocks

    # --- internals ------------------------------------------------------------------------

    def _add_unchecked(self, tx: Transaction) -> None:
        txid = tx.compute_txid()
        for vout, txout in enumerate(tx.output):
            self.utxos[OutPoint(txid, vout)] = txout
        self.mempool[txid] = tx
        self.transactions[txid] = tx

    def _mine_block(self, txs: list[Transaction], coinbase: dict[Txid, Transaction]) -> Block:
        height = len(self.blocks)
        for txid, tx in coinbase.items():
            self._add_unchecked(tx)
            self.mempool.pop(txid)
        all_txs = list(coinbase.values()) + txs
        for tx in all_txs:
            txid = tx.compute_txid()
            self.confirmed_at[txid] = height
            for txin in tx.input:  # spent outputs leave the UTXO set once confirmed
                self.utxos.pop(txin.previous_output, None)
                self.spent_by.pop(txin.previous_output, None)
        prev = self.blocks[-1].block_hash if self.blocks else bytes(32)
        header = prev + b"".join(bytes(tx.compute_txid()) for tx in all_txs) + height.to_bytes(4, "little")
        block_hash = hashlib.sha256(hashlib.sha256(header).digest()).digest()[::-1]
        block = Block(height, block_hash, self.clock.unix_time(), tuple(all_txs))
        if self.before_block is not None:
            self.before_block()
        self.blocks.append(block)
        return block


#: Below it, an nLockTime is a block height; from it on, a time (Bitcoin Core's ``LOCKTIME_THRESHOLD``).
LOCKTIME_THRESHOLD = 500_000_000
#: An input's nSequence that opts out of the nLockTime (``CTxIn::SEQUENCE_FINAL``).
SEQUENCE_FINAL = 0xFFFFFFFF


def is_final(tx: Transaction, next_height: int, median_time_past: int) -> bool:
    """Bitcoin Core's ``IsFinalTx``, as its mempool asks it for the next block: a transaction whose nLockTime is not yet
    reached may enter no block, unless every input's nSequence opts out of it. (bitcoind refuses it: "non-final".)"""
    lock_time = tx.lock_time
    if lock_time == 0 or lock_time < (next_height if lock_time < LOCKTIME_THRESHOLD else median_time_past):
        return True
    return all(txin.sequence == SEQUENCE_FINAL for txin in tx.input)


@functools.lru_cache(maxsize=4096)
def _coinbase(outputs: tuple[tuple[ScriptBuf, int], ...], tag: bytes) -> Transaction:
    """A coinbase paying ``outputs``, told apart by ``tag``. Every world mines the same ones at the same heights
    (a check mines a thousand blocks), so each is built once: a transaction never changes.

    Its bytes are written here from a template, the consensus serialization of a version-2 transaction with one
    input and no witness (what ``Transaction.new`` writes, through embit's objects: ten times slower)."""
    from embit import compact

    script_sig = b"\x04" + tag[:4].ljust(4, b"\0")
    txin = TxIn(OutPoint(_NULL_TXID, 0xFFFFFFFF), ScriptBuf(script_sig), 0xFFFFFFFF, ())
    txouts = tuple(TxOut(value, script) for script, value in outputs)
    data = b"".join((
        _COINBASE_HEAD, len(script_sig).to_bytes(1, "little"), script_sig, b"\xff\xff\xff\xff",
        compact.to_bytes(len(txouts)),
        *(value.to_bytes(8, "little") + compact.to_bytes(len(bytes(script))) + bytes(script)
          for script, value in outputs),
        bytes(4),  # lock_time 0
    ))
    return Transaction._without_witness(data, (txin,), txouts)


#: A coinbase's serialization up to its script_sig: version 2, one input, spending no output (the null outpoint).
_COINBASE_HEAD = (2).to_bytes(4, "little") + b"\x01" + bytes(32) + b"\xff\xff\xff\xff"
