"""Fee-bumping anchor-channel transactions with our own coins.

Mirrors ``lightning::events::bump_transaction``. ``Event.BumpTransaction`` carries a
``BumpTransactionEvent``; a handler passes it to ``BumpTxEventHandler.handle_event``.
Key derivation details (``ChannelDerivationParameters``) are simplified to what the
simulator needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Optional

from ..bitcoin import OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ..ser import U16, U32, U64, Record, RustEnum
from ..types import ChannelId, ClaimId, PaymentHash, PaymentPreimage, PublicKey, Txid


class ChannelTransactionParameters(Record):
    """Mirrors ``lightning::ln::chan_utils::ChannelTransactionParameters``, reduced to what a
    second-stage HTLC transaction needs: the delay on our own outputs, which the counterparty chose."""

    counterparty_selected_contest_delay: U16


class ChannelDerivationParameters(Record):
    """Mirrors ``lightning::sign::ChannelDerivationParameters``."""

    value_satoshis: U64
    keys_id: bytes
    transaction_parameters: ChannelTransactionParameters


class AnchorDescriptor(Record):
    """Mirrors ``AnchorDescriptor``: the anchor output a child transaction spends."""

    channel_derivation_parameters: ChannelDerivationParameters
    outpoint: OutPoint


class HTLCOutputInCommitment(Record):
    """Mirrors ``lightning::ln::chan_utils::HTLCOutputInCommitment``."""

    offered: bool
    amount_msat: U64
    cltv_expiry: U32
    payment_hash: PaymentHash
    transaction_output_index: Optional[U32]


class HTLCDescriptor(Record):
    """Mirrors ``lightning::sign::HTLCDescriptor``: an HTLC output of our commitment to claim with a
    second-stage transaction (the counterparty's signature is omitted: the simulated chain runs no scripts)."""

    channel_derivation_parameters: ChannelDerivationParameters
    commitment_txid: Txid
    per_commitment_number: U64
    per_commitment_point: PublicKey
    feerate_per_kw: U32
    htlc: HTLCOutputInCommitment
    preimage: Optional[PaymentPreimage]

    def outpoint(self) -> OutPoint:
        """The HTLC output on the commitment transaction (LDK's ``unsigned_tx_input``'s previous output)."""
        return OutPoint(self.commitment_txid, self.htlc.transaction_output_index)

    def tx_output(self, signer) -> TxOut:
        """Mirrors ``HTLCDescriptor::tx_output``: the HTLC's value, paid to our delayed (to_local) script."""
        from ..ln.chan_utils import to_local_script

        delay = self.channel_derivation_parameters.transaction_parameters.counterparty_selected_contest_delay
        script = to_local_script(signer.delayed_payment_basepoint, signer.revocation_basepoint, delay)
        return TxOut(self.htlc.amount_msat // 1000, script)

    def witness_script(self) -> bytes:
        """Mirrors ``HTLCDescriptor::witness_script``: the script of the HTLC output."""
        from ..ln.chan_utils import htlc_redeemscript

        return htlc_redeemscript(self.htlc.payment_hash, self.htlc.cltv_expiry)


class BumpTransactionEvent(RustEnum):
    """Mirrors ``lightning::events::bump_transaction::BumpTransactionEvent``."""

    class ChannelClose:
        """Our commitment transaction needs a child (CPFP) to reach the target feerate."""

        channel_id: ChannelId
        counterparty_node_id: PublicKey
        claim_id: ClaimId
        package_target_feerate_sat_per_1000_weight: U32
        commitment_tx: Transaction
        commitment_tx_fee_satoshis: U64
        anchor_descriptor: AnchorDescriptor
        pending_htlcs: tuple[HTLCOutputInCommitment, ...]

    class HTLCResolution:
        """HTLC outputs need claiming with our own coins paying the fee."""

        channel_id: ChannelId
        counterparty_node_id: PublicKey
        claim_id: ClaimId
        target_feerate_sat_per_1000_weight: U32
        htlc_descriptors: tuple[HTLCDescriptor, ...]
        tx_lock_time: U32


class Utxo(Record):
    """Mirrors ``lightning::events::bump_transaction::Utxo``: a confirmed wallet coin.

    ``satisfaction_weight`` is the weight of the scriptSig and witness that spend it.
    """

    outpoint: OutPoint
    output: TxOut
    satisfaction_weight: U64


#: Mirrors ``chan_utils::ANCHOR_OUTPUT_VALUE_SATOSHI``.
ANCHOR_OUTPUT_VALUE_SATOSHI = 330
_MODULE = "ldkkit::events::bump_transaction"
_MAX_SIG = b"\x30" + b"\x00" * 72  # as long as the longest signature, for weight estimates


class BumpTransactionEventHandler:
    """Mirrors ``lightning::events::bump_transaction::BumpTransactionEventHandler`` (ldk-sample's
    ``BumpTxEventHandler``): pays for fee bumps of anchor-channel transactions with wallet coins.

    ``utxo_source`` is the node's wallet (a ``BitcoindClient``: ``list_confirmed_utxos``,
    ``get_change_script``, ``sign_tx``) and ``signer_provider`` its ``KeysManager``.
    For ``ChannelClose`` it builds a real CPFP child spending the anchor and one confirmed
    coin; for ``HTLCResolution``, the HTLC transaction itself, with one confirmed coin for its fee.
    The simulated mempool has no replace-by-fee, so a claim is bumped once; when LDK asks
    again for the same claim, the same transactions are rebroadcast.
    """

    def __init__(self, broadcaster, utxo_source, signer_provider, logger) -> None:
        self.broadcaster = broadcaster
        self.utxo_source = utxo_source
        self.signer_provider = signer_provider
        self.logger = logger
        self._claims: dict[ClaimId, tuple[Transaction, ...]] = {}
        self._lock = threading.RLock()

    def handle_event(self, event: BumpTransactionEvent) -> None:
        """Handle one ``BumpTransactionEvent``, as ldk-sample does for ``Event.BumpTransaction``.

        Failures (e.g. no confirmed wallet coin big enough) are logged at Error level and nothing
        is broadcast, as in LDK; the monitor asks again on the next block and every 30 seconds.
        """
        if hasattr(event, "bump_event"):
            raise TypeError("handle_event takes the BumpTransactionEvent inside Event.BumpTransaction: "
                            "pass event.bump_event")
        if not isinstance(event, BumpTransactionEvent):
            raise TypeError(f"handle_event takes a BumpTransactionEvent, got {type(event).__name__}")
        with self._lock:
            if event.claim_id in self._claims:
                txs = self._claims[event.claim_id]
                self.logger.info(_MODULE, f"Claim {event.claim_id} was already bumped; rebroadcasting "
                                 f"{', '.join(str(tx.compute_txid()) for tx in txs)}")
                self.broadcaster.broadcast_transactions(list(txs))
                return
            try:
                match event:
                    case BumpTransactionEvent.ChannelClose():
                        txs = self._handle_channel_close(event)
                    case BumpTransactionEvent.HTLCResolution():
                        txs = self._handle_htlc_resolution(event)
            except _InsufficientFunds as e:
                # As LDK: nothing is broadcast, and the monitor asks again (every block, and every 30 s).
                self.logger.error(_MODULE, str(e))
                return
            if txs:
                self._claims[event.claim_id] = txs

    # --- ChannelClose: CPFP through the anchor ------------------------------------------------

    def _handle_channel_close(self, ev: BumpTransactionEvent.ChannelClose) -> tuple[Transaction, ...]:
        from ..chain.chaininterface import compute_feerate_sat_per_1000_weight, tx_weight

        commitment_txid = ev.commitment_tx.compute_txid()
        parent_weight = tx_weight(ev.commitment_tx)
        target = ev.package_target_feerate_sat_per_1000_weight
        parent_feerate = compute_feerate_sat_per_1000_weight(ev.commitment_tx_fee_satoshis, parent_weight)
        if parent_feerate >= target:
            self.logger.info(_MODULE, f"Pre-signed commitment {commitment_txid} already has feerate {parent_feerate} "
                             f"sat/kW above required {target} sat/kW, broadcasting.")
            self.broadcaster.broadcast_transactions([ev.commitment_tx])
            return (ev.commitment_tx,)
        child = self._build_anchor_child(ev, parent_weight)
        self.broadcaster.broadcast_transactions([ev.commitment_tx, child])
        return (ev.commitment_tx, child)

    def _build_anchor_child(self, ev: BumpTransactionEvent.ChannelClose, parent_weight: int) -> Transaction:
        from ..chain.chaininterface import (
            FEERATE_FLOOR_SATS_PER_KW,
            compute_feerate_sat_per_1000_weight,
            fee_for_weight,
            tx_weight,
        )
        from ..sign import get_anchor_redeemscript, with_witnesses

        params = ev.anchor_descriptor.channel_derivation_parameters
        signer = self.signer_provider.derive_channel_keys(params.value_satoshis, params.keys_id)
        anchor_script = get_anchor_redeemscript(signer.funding_pubkey)
        anchor_value = self._anchor_value(ev)
        change_script = self.utxo_source.get_change_script()
        target = ev.package_target_feerate_sat_per_1000_weight

        def child_fee(utxo: Utxo) -> int:
            """What the child must pay so parent and child together reach the target feerate."""
            weight = tx_weight(_draft(ev.anchor_descriptor.outpoint, anchor_script, utxo.outpoint, change_script))
            package_fee = fee_for_weight(target, parent_weight + weight)
            own_minimum = fee_for_weight(FEERATE_FLOOR_SATS_PER_KW, weight)  # the child must relay on its own too
            return max(package_fee - ev.commitment_tx_fee_satoshis, own_minimum)

        what = f"bump commitment transaction {ev.commitment_tx.compute_txid()} of channel {ev.channel_id}"
        utxo = self._select(lambda u: child_fee(u) - anchor_value, change_script, what)
        fee = child_fee(utxo)
        change = anchor_value + utxo.output.value - fee
        unsigned = Transaction.new(2, 0, [TxIn(ev.anchor_descriptor.outpoint, ScriptBuf(b""), 0, ()),
                                          TxIn(utxo.outpoint, ScriptBuf(b""), 0, ())], [TxOut(change, change_script)])
        signed = self.utxo_source.sign_tx(unsigned)
        anchor_sig = signer.sign_holder_anchor_input(signed, 0, anchor_value)
        child = with_witnesses(signed, {0: (anchor_sig, anchor_script)})
        package_rate = compute_feerate_sat_per_1000_weight(ev.commitment_tx_fee_satoshis + fee,
                                                           parent_weight + tx_weight(child))
        self.logger.info(_MODULE, f"Broadcasting commitment transaction {ev.commitment_tx.compute_txid()} with anchor "
                         f"child {child.compute_txid()} spending wallet coin {utxo.outpoint}: child fee {fee} sat, "
                         f"package feerate {package_rate} sat/kW (target {target} sat/kW)")
        return child

    @staticmethod
    def _anchor_value(ev: BumpTransactionEvent.ChannelClose) -> int:
        outpoint = ev.anchor_descriptor.outpoint
        outputs = ev.commitment_tx.output
        if outpoint.txid == ev.commitment_tx.compute_txid() and outpoint.vout < len(outputs):
            return outputs[outpoint.vout].value
        return ANCHOR_OUTPUT_VALUE_SATOSHI

    # --- HTLCResolution: second-stage HTLC transactions paid for by a wallet coin --------------

    def _handle_htlc_resolution(self, ev: BumpTransactionEvent.HTLCResolution) -> tuple[Transaction, ...]:
        """Spend each HTLC output to our delayed script in one transaction, with a wallet coin paying its fee.

        On anchor channels the HTLC transactions are pre-signed with no fee (and ``SIGHASH_SINGLE |
        ANYONECANPAY``), so LDK adds a wallet input and a change output, as here.
        """
        from ..chain.chaininterface import fee_for_weight, tx_weight
        from ..chain.chainmonitor import _fake_signature
        from ..sign import with_witnesses

        signers = [self.signer_provider.derive_channel_keys(d.channel_derivation_parameters.value_satoshis,
                                                            d.channel_derivation_parameters.keys_id)
                   for d in ev.htlc_descriptors]
        # sequence 1: the CSV of one block anchor channels put on every HTLC output
        htlc_inputs = [TxIn(d.outpoint(), ScriptBuf(b""), 1, ()) for d in ev.htlc_descriptors]
        htlc_outputs = [d.tx_output(signer) for d, signer in zip(ev.htlc_descriptors, signers, strict=True)]
        change_script = self.utxo_source.get_change_script()
        target = ev.target_feerate_sat_per_1000_weight

        def draft(utxo: Utxo) -> Transaction:
            witnesses = [TxIn(i.previous_output, ScriptBuf(b""), 1, (b"", _MAX_SIG, _MAX_SIG, b"", d.witness_script()))
                         for i, d in zip(htlc_inputs, ev.htlc_descriptors, strict=True)]
            coin = TxIn(utxo.outpoint, ScriptBuf(b""), 0xFFFFFFFD, (_MAX_SIG, b"\x02" * 33))
            return Transaction.new(2, ev.tx_lock_time, [*witnesses, coin], [*htlc_outputs, TxOut(0, change_script)])

        what = f"resolve {len(ev.htlc_descriptors)} HTLC(s) of channel {ev.channel_id}"
        utxo = self._select(lambda u: fee_for_weight(target, tx_weight(draft(u))), change_script, what)
        fee = fee_for_weight(target, tx_weight(draft(utxo)))
        unsigned = Transaction.new(2, ev.tx_lock_time,
                                   [*htlc_inputs, TxIn(utxo.outpoint, ScriptBuf(b""), 0xFFFFFFFD, ())],
                                   [*htlc_outputs, TxOut(utxo.output.value - fee, change_script)])
        signed = self.utxo_source.sign_tx(unsigned)
        # LDK's witness: [<empty>, counterparty's signature, ours, <empty> (a timeout), script]. The counterparty
        # signed when the commitment was made; the simulation stands in a placeholder of the same size.
        witnesses = {i: (b"", _fake_signature(b"htlc", d.witness_script()),
                         signer.sign_holder_htlc_transaction(signed, i, d), b"", d.witness_script())
                     for i, (d, signer) in enumerate(zip(ev.htlc_descriptors, signers, strict=True))}
        tx = with_witnesses(signed, witnesses)
        spent = ", ".join(str(i.previous_output) for i in htlc_inputs)
        self.logger.info(_MODULE, f"Broadcasting HTLC transaction {tx.compute_txid()} for claim {ev.claim_id}, "
                         f"spending {spent} and wallet coin {utxo.outpoint}: fee {fee} sat at {target} sat/kW")
        self.broadcaster.broadcast_transactions([tx])
        return (tx,)

    # --- coin selection -----------------------------------------------------------------------

    def _select(self, needed: Callable[[Utxo], int], change_script: ScriptBuf, what: str) -> Utxo:
        """The smallest confirmed coin covering ``needed(coin)`` sats plus a change output above dust."""
        from ..sign import min_non_dust_value

        dust = min_non_dust_value(change_script)
        coins = sorted(self.utxo_source.list_confirmed_utxos(),
                       key=lambda u: (u.output.value, bytes(u.outpoint.txid), u.outpoint.vout))
        for utxo in coins:
            if utxo.output.value >= needed(utxo) + dust:
                return utxo
        need = needed(Utxo(OutPoint(Txid(bytes(32)), 0), TxOut(0, change_script), 0)) + dust
        have = f"its largest holds {coins[-1].output.value:,} sat" if coins else "it has none"
        raise _InsufficientFunds(
            f"Insufficient funds to {what}: the wallet needs a confirmed coin of at least {need:,} sat, "
            f"but {have}. Fund the wallet and mine a block; LDK will ask again."
        )


#: ldk-sample's name for the handler type.
BumpTxEventHandler = BumpTransactionEventHandler


class _InsufficientFunds(Exception):
    """The wallet has no confirmed coin big enough to pay for a bump."""


def _draft(anchor: OutPoint, anchor_script: bytes, coin: OutPoint, change_script: ScriptBuf) -> Transaction:
    """The anchor child with maximum-size witnesses, to estimate its weight."""
    inputs = [TxIn(anchor, ScriptBuf(b""), 0, (_MAX_SIG, anchor_script)),
              TxIn(coin, ScriptBuf(b""), 0, (_MAX_SIG, b"\x02" * 33))]
    return Transaction.new(2, 0, inputs, [TxOut(0, change_script)])
