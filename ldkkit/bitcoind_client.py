"""A bitcoind wallet and RPC client for one node, backed by the simulated chain.

Mirrors ldk-sample's ``BitcoindClient`` (``src/bitcoind_client.rs``): the same methods,
in snake_case, with the same results and error messages, so a learner's
``FundingGenerationReady`` arm reads exactly like ldk-sample's::

    addr = Address.from_script(output_script, network)
    raw_tx = bitcoind_client.create_raw_transaction([{str(addr): channel_value_satoshis / 100_000_000}])
    funded_tx = bitcoind_client.fund_raw_transaction(raw_tx)
    signed_tx = bitcoind_client.sign_raw_transaction_with_wallet(funded_tx.hex)
    assert signed_tx.complete
    final_tx = Transaction(bytes.fromhex(signed_tx.hex))

Instead of RPC it talks to the simulated :class:`~ldkkit.sim.chain.Chain`. Its wallet is a
BIP 84 wallet (P2WPKH keys at ``m/84'/1'/0'/0/i`` for receiving, ``.../1/i`` for change)
derived from ``wallet_seed``, and it signs with real ECDSA signatures over BIP 143 digests.
Like ldk-sample's client it is also the node's ``FeeEstimator``, ``BroadcasterInterface``,
``WalletSource`` (for fee bumping) and ``ChangeDestinationSource`` (for the sweeper).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .bitcoin import Address, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from .chain.chaininterface import FEERATE_FLOOR_SATS_PER_KW, ConfirmationTarget, fee_for_weight
from .events.bump_transaction import Utxo
from .logger import Logger
from .ser import U32, U64, Record
from .sign import add_secrets, min_non_dust_value, p2wpkh_script_code, segwit_sighashes, sign_digest, with_witnesses
from .sim.chain import Chain, ChainError
from .types import Txid

COIN = 100_000_000
#: The smallest amount bitcoind takes, in BTC: an amount with more decimal places is refused ("Invalid amount").
_SATOSHI = Decimal("0.00000001")
#: Keys derived ahead of the last used one, so a client rebuilt from the same seed (a restart) finds its
#: coins. Like BIP 44's gap limit (20), but larger: unbroadcast fundings leave unused change keys behind.
GAP_LIMIT = 50
#: The nSequence bitcoind gives the inputs it adds: final for locktime, but replaceable (BIP 125).
_RBF_SEQUENCE = 0xFFFFFFFD
#: An input's non-witness bytes (outpoint, empty scriptSig, sequence), in weight units.
_INPUT_BASE_WEIGHT = 41 * 4
#: LDK's ``P2WPKH_WITNESS_WEIGHT``: stack count, signature with sighash byte, public key.
P2WPKH_WITNESS_WEIGHT = 1 + 1 + 73 + 1 + 33
_MODULE = "ldkkit::bitcoind_client"

#: The feerates (sat/kW) ldk-sample's client starts with, and falls back to on regtest,
#: where bitcoind has too few blocks to estimate fees.
DEFAULT_FEERATES: dict[ConfirmationTarget, int] = {
    ConfirmationTarget.MaximumFeeEstimate: 50_000,
    ConfirmationTarget.UrgentOnChainSweep: 5_000,
    ConfirmationTarget.MinAllowedAnchorChannelRemoteFee: FEERATE_FLOOR_SATS_PER_KW,
    ConfirmationTarget.MinAllowedNonAnchorChannelRemoteFee: FEERATE_FLOOR_SATS_PER_KW,
    ConfirmationTarget.AnchorChannelFee: FEERATE_FLOOR_SATS_PER_KW,
    ConfirmationTarget.NonAnchorChannelFee: 2_000,
    ConfirmationTarget.ChannelCloseMinimum: FEERATE_FLOOR_SATS_PER_KW,
    ConfirmationTarget.OutputSpendingFee: FEERATE_FLOOR_SATS_PER_KW,
}


@functools.lru_cache(maxsize=1_024)
def _account(wallet_seed: bytes, coin_type: int) -> Any:
    """The BIP 84 account key ``m/84'/coin_type'/0'`` of a wallet seed."""
    from embit.bip32 import HDKey

    return HDKey.from_seed(wallet_seed).derive(f"m/84h/{coin_type}h/0h")


@functools.lru_cache(maxsize=4_096)
def _branch(wallet_seed: bytes, coin_type: int, branch: int) -> tuple[bytes, bytes, bytes]:
    """The receive (0) or change (1) branch key of the account: (chain code, secret, compressed public key)."""
    key = _account(wallet_seed, coin_type).child(branch)
    return key.chain_code, key.key.secret, key.get_public_key().sec()


@functools.lru_cache(maxsize=65_536)
def _derive(wallet_seed: bytes, coin_type: int, branch: int, index: int) -> tuple[bytes, bytes, ScriptBuf]:
    """The wallet key ``account/branch/index``: (secret, compressed public key, its P2WPKH script).

    BIP 32's non-hardened private derivation (CKDpriv), as embit's ``HDKey.child`` computes it, on coincurve's
    keys: an embit ``HDKey`` per key would base58-encode each one, and a node derives a hundred. Every node
    the simulation builds from the same seed derives the same keys, so they are derived once per process.
    """
    from coincurve import PublicKey

    chain_code, secret, public = _branch(wallet_seed, coin_type, branch)
    tweak = hmac.new(chain_code, public + index.to_bytes(4, "big"), hashlib.sha512).digest()[:32]
    child = add_secrets(secret, tweak)
    public_key = PublicKey.from_secret(child).format()
    return child, public_key, ScriptBuf.new_p2wpkh(public_key)


@functools.lru_cache(maxsize=1_024)
def _first_keys(wallet_seed: bytes, coin_type: int) -> tuple[dict[ScriptBuf, tuple[bytes, bytes]],
                                                             dict[ScriptBuf, tuple[int, int]],
                                                             tuple[tuple[ScriptBuf, ...], ...]]:
    """The keys a new wallet derives first, ``GAP_LIMIT`` on each chain, as ``BitcoindClient`` keeps them (by script,
    index by script, scripts by chain): every client copies them, and a check builds a hundred from a few seeds."""
    derived = [[_derive(wallet_seed, coin_type, branch, i) for i in range(GAP_LIMIT)] for branch in (0, 1)]
    keys = {script: (secret, pubkey) for chain in derived for secret, pubkey, script in chain}
    index = {script: (branch, i) for branch, chain in enumerate(derived) for i, (_, _, script) in enumerate(chain)}
    return keys, index, tuple(tuple(script for _, _, script in chain) for chain in derived)


class BitcoindError(Exception):
    """Stands for the JSON-RPC error bitcoind returns: the message is the one bitcoind would give."""


class ListUnspentUtxo(Record):
    """Mirrors ldk-sample's ``ListUnspentUtxo`` (one entry of ``listunspent``); ``amount`` in sats."""

    outpoint: OutPoint
    amount: U64
    address: str
    confirmations: U32


class RawTx(Record):
    """Mirrors ldk-sample's ``RawTx``: the hex of an unsigned transaction."""

    hex: str


class FundedTx(Record):
    """Mirrors ldk-sample's ``FundedTx``: ``fundrawtransaction``'s result (``changepos`` -1 if no change)."""

    hex: str
    changepos: int


class SignedTx(Record):
    """Mirrors ldk-sample's ``SignedTx``: ``signrawtransactionwithwallet``'s result."""

    hex: str
    complete: bool


class BlockchainInfo(Record):
    """Mirrors ldk-sample's ``BlockchainInfo``: ``getblockchaininfo``'s tip and chain name."""

    latest_height: U32
    latest_blockhash: str
    chain: str


class RejectedTx(Record):
    """A transaction the chain refused in ``broadcast_transactions``, with bitcoind's reason.

    ldkkit only: ldk-sample just logs these; here they are also kept, so a lesson can show them.
    """

    tx: Transaction
    reason: str


class BitcoindClient:
    """Mirrors ldk-sample's ``BitcoindClient``: bitcoind's wallet and RPC, over the simulated chain.

    Every method is safe to call from several threads (the background processor and
    notebook cells) at once.
    """

    def __init__(self, chain: Chain, network: Network, wallet_seed: bytes, logger: Logger | None = None, *,
                 new: bool = False) -> None:
        """``new``: a wallet nothing on ``chain`` can have paid yet (a node the world adds) derives each key as it
        hands it out, none ahead: ``GAP_LIMIT`` keys ahead are only for a client rebuilt from a used seed (a restart),
        to find the coins its earlier self was paid. (A check builds a hundred new wallets: a tenth of a second.)"""
        if not isinstance(wallet_seed, (bytes, bytearray)) or not 16 <= len(wallet_seed) <= 64:
            raise ValueError("BitcoindClient needs a wallet_seed of 16 to 64 bytes (BIP 32's limits)")
        self.chain = chain
        self.network = network
        self.logger = logger if logger is not None else Logger("bitcoind")
        #: Transactions ``broadcast_transactions`` could not get into the mempool, with the reason.
        self.rejected: list[RejectedTx] = []
        self._lock = threading.RLock()
        self._wallet = (bytes(wallet_seed), 0 if network is Network.Bitcoin else 1)  # what _derive is keyed by
        self._ahead = 1 if new else GAP_LIMIT  # keys derived past the next unused one (see _derive_ahead)
        keys, index, scripts = ({}, {}, ((), ())) if new else _first_keys(*self._wallet)
        self._keys: dict[ScriptBuf, tuple[bytes, bytes]] = dict(keys)  # script -> (secret, compressed pubkey)
        self._index: dict[ScriptBuf, tuple[int, int]] = dict(index)  # script -> (chain, index)
        #: The receive (0) and change (1) chains.
        self._scripts: tuple[list[ScriptBuf], list[ScriptBuf]] = (list(scripts[0]), list(scripts[1]))
        self._next = [0, 0]  # the next unused index on each chain
        self._reserved: set[OutPoint] = set()
        self._feerates = dict(DEFAULT_FEERATES)
        if new:  # (nothing on the chain is its yet)
            self._derive_ahead(0)
            self._derive_ahead(1)
        else:
            self._recover_used_keys()

    # --- keys -------------------------------------------------------------------------------

    def _derive_ahead(self, branch: int) -> None:
        """Keep ``_ahead`` keys derived past the next unused one, so coins paid to them are seen."""
        scripts = self._scripts[branch]
        while len(scripts) < self._next[branch] + self._ahead:
            secret, pubkey, script = _derive(*self._wallet, branch, len(scripts))
            self._keys[script] = (secret, pubkey)
            self._index[script] = (branch, len(scripts))
            scripts.append(script)

    def _recover_used_keys(self) -> None:
        """Skip keys the chain shows as used, so a client rebuilt from the same seed finds its coins."""
        paid = [out.script_pubkey for tx in list(self.chain.transactions.values()) for out in tx.output]
        moved = True
        while moved:
            moved = False
            for branch in (0, 1):
                self._derive_ahead(branch)
            for script in paid:
                branch, index = self._index.get(script, (0, -1))
                if index >= self._next[branch]:
                    self._next[branch] = index + 1
                    moved = True

    def _new_script(self, branch: int) -> ScriptBuf:
        with self._lock:
            script = self._scripts[branch][self._next[branch]]
            self._next[branch] += 1
            self._derive_ahead(branch)
            return script

    def get_new_address(self) -> Address:
        """``getnewaddress``: a fresh bech32 (P2WPKH) receive address."""
        return Address.from_script(self._new_script(0), self.network)

    def get_change_script(self) -> ScriptBuf:
        """``getrawchangeaddress`` as a script: LDK's ``WalletSource::get_change_script``."""
        return self._new_script(1)

    def get_change_destination_script(self) -> ScriptBuf:
        """LDK's ``ChangeDestinationSource``: where the OutputSweeper sends swept funds.

        ldk-sample answers with a new receive address, and so does this.
        """
        return self.get_new_address().script_pubkey

    def is_mine(self, script: ScriptBuf) -> bool:
        return script in self._keys

    # --- balance and coins -------------------------------------------------------------------

    def _coins(self, minconf: int, trusted_only: bool = True) -> list[tuple[OutPoint, TxOut, int]]:
        """Our unspent outputs with at least ``minconf`` confirmations, largest first.

        With ``trusted_only``, unconfirmed coins count only if all their transaction's inputs
        were ours (bitcoind's "trusted" coins, such as our own change): what the wallet spends.
        """
        with self._lock:
            coins = [
                (outpoint, out, conf)
                for outpoint, out, conf in self.chain.unspent_for(set(self._keys))
                if conf >= max(minconf, 1) or (minconf == 0 and (not trusted_only or self._is_trusted(outpoint.txid)))
            ]
        return sorted(coins, key=lambda c: (-c[1].value, bytes(c[0].txid), c[0].vout))

    def _is_trusted(self, txid: Txid) -> bool:
        tx = self.chain.get_transaction(txid)
        if tx is None:
            return False
        for txin in tx.input:
            prev = self.chain.get_transaction(txin.previous_output.txid)
            if prev is None or prev.output[txin.previous_output.vout].script_pubkey not in self._keys:
                return False
        return True

    def get_balance(self) -> int:
        """``getbalance`` in sats: confirmed coins plus our own unconfirmed change."""
        return sum(out.value for _, out, _ in self._coins(minconf=0))

    def list_unspent(self, minconf: int = 1) -> list[ListUnspentUtxo]:
        """``listunspent``: our coins with at least ``minconf`` confirmations (bitcoind's default 1)."""
        return [
            ListUnspentUtxo(outpoint, out.value, str(Address.from_script(out.script_pubkey, self.network)), conf)
            for outpoint, out, conf in self._coins(minconf, trusted_only=False)
        ]

    def list_confirmed_utxos(self) -> list[Utxo]:
        """LDK's ``WalletSource::list_confirmed_utxos``: coins the fee-bump handler may spend."""
        # satisfaction weight as LDK's Utxo::new_v0_p2wpkh: the empty scriptSig's length byte, and the witness
        return [Utxo(outpoint, out, 4 + P2WPKH_WITNESS_WEIGHT) for outpoint, out, _ in self._coins(minconf=1)]

    # --- building transactions ------------------------------------------------------------------

    def create_raw_transaction(self, outputs: Sequence[dict[str, float]] | dict[str, float]) -> RawTx:
        """``createrawtransaction`` with no inputs: each dict maps an address to an amount in BTC. As bitcoind, one dict
        alone is taken for the list, and an amount may be a number or its text (``"0.001"``)."""
        txouts = []
        seen: set[str] = set()
        for entry in [outputs] if isinstance(outputs, dict) else outputs:
            for addr, btc in entry.items():
                if isinstance(btc, str):
                    try:
                        btc = Decimal(btc)
                    except ArithmeticError:
                        raise BitcoindError(f"Invalid amount: {btc!r}") from None
                try:
                    script = Address.from_str(addr, self.network).script_pubkey
                except (ValueError, TypeError):
                    raise BitcoindError(f"Invalid Bitcoin address: {addr}") from None
                if addr in seen:
                    raise BitcoindError(f"Invalid parameter, duplicated address: {addr}")
                seen.add(addr)
                if isinstance(btc, bool) or not isinstance(btc, (int, float, Decimal)) or not 0 <= btc <= 21_000_000:
                    raise BitcoindError(f"Amount out of range: {btc!r} (amounts are in BTC, e.g. 0.001)")
                amount = Decimal(str(btc))  # (as the JSON text carries it: a float's shortest repr)
                if amount != amount.quantize(_SATOSHI):  # bitcoind's AmountFromValue: ParseFixedPoint(value, 8)
                    raise BitcoindError(f"Invalid amount: {btc!r} (bitcoind takes at most 8 decimal places: "
                                        "divide the satoshis by 100_000_000)")
                txouts.append(TxOut(int(amount * COIN), script))  # JSON-RPC takes a Decimal too
        return RawTx(_serialize(2, 0, [], txouts).hex())

    def fund_raw_transaction(self, raw_tx: RawTx) -> FundedTx:
        """``fundrawtransaction``: add our coins as inputs and a change output, at our NonAnchorChannelFee feerate.

        Coins are taken largest first, confirmed ones and our own unconfirmed change only.
        Like bitcoind (without ``lockUnspents``) the chosen coins are not locked, but later
        calls prefer other coins, so funding two channels before broadcasting either does
        not double-spend when the wallet has enough separate coins.
        """
        version, locktime, inputs, outputs = _deserialize(raw_tx.hex)
        feerate = self.get_est_sat_per_1000_weight(ConfirmationTarget.NonAnchorChannelFee)
        with self._lock:
            value_in = sum(self._prevout(txin.previous_output).value for txin in inputs)
            value_out = sum(o.value for o in outputs)
            change_script = ScriptBuf.new_p2wpkh(b"\x02" * 33)  # placeholder of the right size
            used = {txin.previous_output for txin in inputs}
            coins = self._coins(minconf=0)
            self._reserved &= {outpoint for outpoint, _, _ in coins}  # forget reservations of spent coins
            candidates = [c for c in coins if c[0] not in used]
            candidates.sort(key=lambda c: c[0] in self._reserved)  # stable: unreserved first, then largest
            inputs = list(inputs)

            def fee(outs: Sequence[TxOut]) -> int:
                return fee_for_weight(feerate, _estimate_weight(len(inputs), outs))

            for outpoint, out, _ in candidates:
                if inputs and value_in >= value_out + fee(outputs):
                    break
                inputs.append(TxIn(outpoint, ScriptBuf(b""), _RBF_SEQUENCE, ()))
                value_in += out.value
            if not inputs or value_in < value_out + fee(outputs):
                raise BitcoindError("Insufficient funds")
            change = value_in - value_out - fee([*outputs, TxOut(0, change_script)])
            changepos = -1
            if change >= min_non_dust_value(change_script):
                changepos = len(outputs)
                outputs = [*outputs, TxOut(change, self.get_change_script())]
            self._reserved.update(txin.previous_output for txin in inputs)
            return FundedTx(_serialize(version, locktime, inputs, outputs).hex(), changepos)

    def _prevout(self, outpoint: OutPoint) -> TxOut:
        out = self._known_prevout(outpoint)
        if out is None:
            raise BitcoindError(f"Unable to find UTXO for external input {outpoint}")
        return out

    def sign_raw_transaction_with_wallet(self, tx_hex: str) -> SignedTx:
        """``signrawtransactionwithwallet``: sign every input paying one of our keys.

        ``complete`` is False if some input is neither ours nor already signed.
        """
        version, locktime, inputs, outputs = _deserialize(tx_hex)
        if not inputs:  # nothing to sign: call fund_raw_transaction first
            return SignedTx(tx_hex, False)
        tx, complete = self._sign(Transaction.new(version, locktime, inputs, outputs))
        return SignedTx(tx.serialize().hex(), complete)

    def sign_tx(self, tx: Transaction) -> Transaction:
        """Sign our inputs of ``tx``, leaving the others as they are (LDK's ``WalletSource::sign_psbt``)."""
        return self._sign(tx)[0]

    def _sign(self, tx: Transaction) -> tuple[Transaction, bool]:
        ours, complete = [], True
        with self._lock:
            for i, txin in enumerate(tx.input):
                out = self._known_prevout(txin.previous_output)
                if out is not None and out.script_pubkey in self._keys:
                    ours.append((i, out.value, *self._keys[out.script_pubkey]))
                elif not (txin.witness or bytes(txin.script_sig)):
                    complete = False
        digests = segwit_sighashes(tx, [(i, p2wpkh_script_code(pub), value) for i, value, _, pub in ours])
        witnesses = {
            i: (sign_digest(secret, digest), pub) for (i, _, secret, pub), digest in zip(ours, digests, strict=True)
        }
        return with_witnesses(tx, witnesses), complete

    def _known_prevout(self, outpoint: OutPoint) -> TxOut | None:
        tx = self.chain.get_transaction(outpoint.txid)
        return tx.output[outpoint.vout] if tx is not None and outpoint.vout < len(tx.output) else None

    # --- sending ---------------------------------------------------------------------------------

    def send_raw_transaction(self, raw_tx: RawTx | SignedTx | Transaction | str) -> Txid:
        """``sendrawtransaction``: a chain refusal becomes a :class:`BitcoindError` with bitcoind's reason."""
        if not isinstance(raw_tx, Transaction):
            raw_tx = _parse_tx(raw_tx if isinstance(raw_tx, str) else raw_tx.hex)
        try:
            return self.chain.broadcast(raw_tx)
        except ChainError as e:
            raise BitcoindError(str(e)) from None

    def broadcast_transactions(self, txs: Sequence[Transaction]) -> None:
        """LDK's ``BroadcasterInterface``: send each transaction, parents first.

        A refused transaction is logged at Error level and kept in :attr:`rejected`;
        one the chain already knows is fine.
        """
        for tx in txs:
            try:
                txid = self.chain.broadcast(tx)
            except ChainError as e:
                with self._lock:
                    self.rejected.append(RejectedTx(tx, str(e)))
                self.logger.error(_MODULE, f"Failed to broadcast transaction {tx.compute_txid()}: {e}")
            else:
                self.logger.info(_MODULE, f"Broadcast transaction {txid}")

    # --- fees ---------------------------------------------------------------------------------

    def get_est_sat_per_1000_weight(self, confirmation_target: ConfirmationTarget) -> int:
        """LDK's ``FeeEstimator``: fixed regtest feerates (see :data:`DEFAULT_FEERATES`), never below 253."""
        if not isinstance(confirmation_target, ConfirmationTarget):
            raise TypeError(f"expected a ConfirmationTarget, got {confirmation_target!r}")
        with self._lock:
            return max(self._feerates[confirmation_target], FEERATE_FLOOR_SATS_PER_KW)

    def set_fee_estimate(self, confirmation_target: ConfirmationTarget, sat_per_1000_weight: int) -> None:
        """Change one feerate, e.g. to show a fee spike; values below 253 sat/kW are raised to it."""
        with self._lock:
            self._feerates[confirmation_target] = max(int(sat_per_1000_weight), FEERATE_FLOOR_SATS_PER_KW)

    # --- the chain -----------------------------------------------------------------------------

    def get_blockchain_info(self) -> BlockchainInfo:
        tip = self.chain.tip()
        return BlockchainInfo(tip.height, tip.block_hash.hex(), self.network.value)

    def get_block_height(self) -> int:
        return self.chain.height()

    def mine_blocks(self, count: int = 1) -> list[str]:
        """Regtest's ``generatetoaddress``: mine ``count`` blocks; returns their hashes.

        Unlike bitcoind, the block rewards go to the world's miner, not to this wallet, so
        the world's money stays constant.
        """
        return [block.block_hash.hex() for block in self.chain.mine(count)]

    def __repr__(self) -> str:
        return f"BitcoindClient({self.network.name}, height {self.chain.height()})"


# --- serialization helpers ------------------------------------------------------------------------


def _estimate_weight(n_inputs: int, outputs: Sequence[TxOut]) -> int:
    """The weight of a transaction with ``n_inputs`` signed P2WPKH inputs and these outputs."""
    outs = sum(8 + len(_compact(len(bytes(o.script_pubkey)))) + len(bytes(o.script_pubkey)) for o in outputs)
    base = 4 + 4 + len(_compact(n_inputs)) + len(_compact(len(outputs))) + outs
    return 4 * base + n_inputs * (_INPUT_BASE_WEIGHT + P2WPKH_WITNESS_WEIGHT) + 2


def _compact(n: int) -> bytes:
    from embit import compact

    return compact.to_bytes(n)


def _serialize(version: int, locktime: int, inputs: Sequence[TxIn], outputs: Sequence[TxOut]) -> bytes:
    """A transaction's bytes. With no inputs it is written in the legacy format, as bitcoind does."""
    if inputs:
        return Transaction.new(version, locktime, list(inputs), list(outputs)).serialize()
    from embit.script import Script
    from embit.transaction import TransactionOutput

    body = b"".join(TransactionOutput(o.value, Script(bytes(o.script_pubkey))).serialize() for o in outputs)
    return version.to_bytes(4, "little") + b"\x00" + _compact(len(outputs)) + body + locktime.to_bytes(4, "little")


def _deserialize(tx_hex: str) -> tuple[int, int, list[TxIn], list[TxOut]]:
    """Parse a raw transaction, which may have no inputs yet (as ``createrawtransaction`` makes)."""
    try:
        data = bytes.fromhex(tx_hex)
    except (ValueError, TypeError):
        raise BitcoindError("TX decode failed") from None
    no_inputs = _read_without_inputs(data) if len(data) > 4 and data[4] == 0 else None
    if no_inputs is not None:
        return no_inputs
    tx = _parse_tx(tx_hex)
    return tx.version, tx.lock_time, list(tx.input), list(tx.output)


def _read_without_inputs(data: bytes) -> tuple[int, int, list[TxIn], list[TxOut]] | None:
    from embit import compact
    from embit.transaction import TransactionOutput

    stream = io.BytesIO(data[5:])
    try:
        outputs = [TransactionOutput.read_from(stream) for _ in range(compact.read_from(stream))]
        locktime = stream.read(4)
    except Exception:  # embit raises several kinds on short or bad data
        return None
    if len(locktime) != 4 or stream.read(1):
        return None
    txouts = [TxOut(o.value, ScriptBuf(o.script_pubkey.data)) for o in outputs]
    return int.from_bytes(data[:4], "little"), int.from_bytes(locktime, "little"), [], txouts


def _parse_tx(tx_hex: str) -> Transaction:
    try:
        return Transaction(bytes.fromhex(tx_hex))
    except (ValueError, TypeError):
        raise BitcoindError("TX decode failed") from None
