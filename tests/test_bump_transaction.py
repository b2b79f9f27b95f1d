"""BumpTransactionEventHandler: anchor CPFP children reach the package feerate, paid by a wallet coin."""

from __future__ import annotations

import pytest
from coincurve import PublicKey as Point
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ldkkit.bitcoind_client import BitcoindClient
from ldkkit.chain.chaininterface import (
    FEERATE_FLOOR_SATS_PER_KW,
    compute_feerate_sat_per_1000_weight,
    fee_for_weight,
    tx_weight,
)
from ldkkit.events import Event
from ldkkit.events.bump_transaction import (
    AnchorDescriptor,
    BumpTransactionEvent,
    BumpTransactionEventHandler,
    BumpTxEventHandler,
    ChannelDerivationParameters,
    ChannelTransactionParameters,
    HTLCDescriptor,
    HTLCOutputInCommitment,
)
from ldkkit.logger import Level, Logger
from ldkkit.sign import KeysManager, get_anchor_redeemscript, p2wpkh_script_code, segwit_sighashes
from ldkkit.sim.chain import Chain
from ldkkit.sim.clock import VirtualClock
from ldkkit.types import ChannelId, ClaimId, PaymentHash, PublicKey

CHANNEL_VALUE = 1_000_000
PEER = PublicKey.from_secret_key(b"\x07" * 32)
CHANNEL = ChannelId(b"\x22" * 32)


class Node:
    def __init__(self, *wallet_coins: int) -> None:
        self.chain = Chain(VirtualClock())
        self.wallet = BitcoindClient(self.chain, Network.Regtest, b"\x01" * 32)
        self.keys = KeysManager(b"\x02" * 32, 0, 0)
        self.logger = Logger("bump")
        if wallet_coins:
            self.chain.fund({self.wallet.get_new_address().script_pubkey: v for v in wallet_coins})
        self.chain.mine(1)
        self.handler = BumpTransactionEventHandler(self.wallet, self.wallet, self.keys, self.logger)

    def channel_close(self, target: int = 5_000, commitment_fee: int = 300, claim: bytes = b"\x33" * 32):
        """A confirmed funding output, and an unbroadcast anchor commitment spending it."""
        kid = self.keys.generate_channel_keys_id(False, CHANNEL_VALUE, 1)
        signer = self.keys.derive_channel_keys(CHANNEL_VALUE, kid)
        funding = self.chain.fund({ScriptBuf.new_p2wsh(b"\x52" + bytes(signer.funding_pubkey) + b"\xae"):
                                   CHANNEL_VALUE})
        self.chain.mine(1)
        anchor = ScriptBuf.new_p2wsh(get_anchor_redeemscript(signer.funding_pubkey))
        outputs = [TxOut(600_000, ScriptBuf.new_p2wsh(b"\x51")),
                   TxOut(CHANNEL_VALUE - 600_000 - 660 - commitment_fee, ScriptBuf.new_p2wsh(b"\x52")),
                   TxOut(330, anchor), TxOut(330, ScriptBuf.new_p2wsh(b"\x53"))]
        witness = (b"", b"\x30" * 72, b"\x30" * 72, b"\x52" * 71)
        commitment = Transaction.new(2, 0x20000000, [TxIn(OutPoint(funding.compute_txid(), 0), ScriptBuf(b""),
                                                          0x80000000, witness)], outputs)
        return BumpTransactionEvent.ChannelClose(
            CHANNEL, PEER, ClaimId(claim), target, commitment, commitment_fee,
            AnchorDescriptor(ChannelDerivationParameters(CHANNEL_VALUE, kid, ChannelTransactionParameters(144)),
                             OutPoint(commitment.compute_txid(), 2)),
            (),
        ), signer


def prevout(chain: Chain, txin: TxIn) -> TxOut:
    return chain.get_transaction(txin.previous_output.txid).output[txin.previous_output.vout]


def child_of(chain: Chain, parent: Transaction) -> Transaction:
    parent_txid = parent.compute_txid()
    (child,) = [tx for tx in chain.mempool.values() if any(i.previous_output.txid == parent_txid for i in tx.input)]
    return child


def test_channel_close_broadcasts_the_commitment_and_a_cpfp_child():
    node = Node(100_000_000)
    event, signer = node.channel_close(target=5_000)
    before = node.wallet.get_balance()
    node.handler.handle_event(event)
    commitment = event.commitment_tx
    assert commitment.compute_txid() in node.chain.mempool
    child = child_of(node.chain, commitment)
    assert child.input[0].previous_output == event.anchor_descriptor.outpoint
    assert len(child.input) == 2 and len(child.output) == 1 and node.wallet.is_mine(child.output[0].script_pubkey)
    # the anchor is signed by the channel's funding key, the coin by the wallet: real signatures
    sig, script = child.input[0].witness
    assert script == get_anchor_redeemscript(signer.funding_pubkey)
    (digest,) = segwit_sighashes(child, [(0, script, 330)])
    assert Point(bytes(signer.funding_pubkey)).verify(sig[:-1], digest, hasher=None)
    coin_sig, coin_key = child.input[1].witness
    (digest,) = segwit_sighashes(child, [(1, p2wpkh_script_code(coin_key), prevout(node.chain, child.input[1]).value)])
    assert Point(coin_key).verify(coin_sig[:-1], digest, hasher=None)
    # the package reaches the target feerate
    child_fee = sum(prevout(node.chain, i).value for i in child.input) - child.output[0].value
    weight = tx_weight(commitment) + tx_weight(child)
    assert compute_feerate_sat_per_1000_weight(event.commitment_tx_fee_satoshis + child_fee, weight) >= 5_000
    assert node.wallet.rejected == [] and node.logger.records(Level.Error) == []
    assert "package feerate" in node.logger.lines()[-1]
    node.chain.mine(1)
    assert node.wallet.get_balance() == before + 330 - child_fee  # the anchor's 330 sat come back to us


@given(st.integers(300, 50_000), st.integers(0, 3_000))
def test_the_package_feerate_is_reached_without_overpaying(target, commitment_fee):
    node = Node(5_000_000)
    event, _ = node.channel_close(target=target, commitment_fee=commitment_fee)
    node.handler.handle_event(event)
    commitment = event.commitment_tx
    parent_weight = tx_weight(commitment)
    if compute_feerate_sat_per_1000_weight(commitment_fee, parent_weight) >= target:
        assert list(node.chain.mempool) == [commitment.compute_txid()]  # no child needed
        return
    child = child_of(node.chain, commitment)
    child_fee = sum(prevout(node.chain, i).value for i in child.input) - child.output[0].value
    weight = parent_weight + tx_weight(child)
    assert compute_feerate_sat_per_1000_weight(commitment_fee + child_fee, weight) >= target
    slack = 8  # the estimate may count a byte or two of each signature that the real one lacks
    assert child_fee <= max(fee_for_weight(target, weight + slack) - commitment_fee,
                            fee_for_weight(FEERATE_FLOOR_SATS_PER_KW, tx_weight(child) + slack))


def test_a_commitment_already_at_the_target_is_broadcast_alone():
    node = Node(100_000_000)
    event, _ = node.channel_close(target=253, commitment_fee=5_000)
    node.handler.handle_event(event)
    assert list(node.chain.mempool) == [event.commitment_tx.compute_txid()]
    assert "already has feerate" in node.logger.lines()[-1]


def test_no_confirmed_coins_logs_insufficient_funds_and_broadcasts_nothing():
    """As LDK's handler: a failed coin selection broadcasts nothing; the monitor asks again later."""
    node = Node()
    event, _ = node.channel_close()
    node.chain.fund({node.wallet.get_new_address().script_pubkey: 1_000_000})  # unconfirmed: not usable
    node.handler.handle_event(event)
    (error,) = node.logger.records(Level.Error)
    assert error.args.startswith("Insufficient funds to bump commitment transaction")
    assert "Fund the wallet and mine a block" in error.args
    assert event.commitment_tx.compute_txid() not in node.chain.mempool
    node.chain.mine(1)  # once the coin confirms, LDK's next request succeeds
    node.handler.handle_event(event)
    assert child_of(node.chain, event.commitment_tx)


def test_too_small_coins_are_not_enough():
    node = Node(600)
    event, _ = node.channel_close(target=50_000)
    node.handler.handle_event(event)
    assert "its largest holds 600 sat" in node.logger.records(Level.Error)[0].args


def test_repeated_requests_for_a_claim_rebroadcast_instead_of_double_spending():
    node = Node(100_000_000)
    event, _ = node.channel_close()
    node.handler.handle_event(event)
    node.handler.handle_event(event)
    assert len(node.chain.mempool) == 2 and node.wallet.rejected == []
    assert "already bumped" in node.logger.lines()[-1]


def test_handle_event_wants_the_bump_event_not_the_wrapper():
    node = Node(100_000_000)
    event, _ = node.channel_close()
    with pytest.raises(TypeError, match="pass event.bump_event"):
        node.handler.handle_event(Event.BumpTransaction(event))
    with pytest.raises(TypeError, match="takes a BumpTransactionEvent"):
        node.handler.handle_event("not an event")
    assert BumpTxEventHandler is BumpTransactionEventHandler


def test_htlc_resolution_spends_the_htlc_output_to_our_delayed_script_with_a_wallet_coin_paying():
    """LDK's ``handle_htlc_resolution``: input i spends HTLC output i to output i (our delayed script), at the
    claim's lock time; a wallet coin pays the whole transaction's fee at the target, change back to the wallet."""
    from ldkkit.ln.chan_utils import htlc_script, to_local_script

    EXPIRY = 20  # noqa: N806  (the HTLC's cltv_expiry, and the claim's lock time)

    node = Node(100_000_000)
    kid = node.keys.generate_channel_keys_id(False, CHANNEL_VALUE, 1)
    signer = node.keys.derive_channel_keys(CHANNEL_VALUE, kid)
    htlc = HTLCOutputInCommitment(True, 50_000_000, EXPIRY, PaymentHash(b"\x44" * 32), 1)
    commitment = node.chain.fund({ScriptBuf.new_p2wsh(b"\x51"): 1_000, htlc_script(htlc.payment_hash, EXPIRY): 50_000})
    node.chain.mine(EXPIRY - node.chain.height())  # (LDK asks once the HTLC has expired: its lock time is reached)
    descriptor = HTLCDescriptor(ChannelDerivationParameters(CHANNEL_VALUE, kid, ChannelTransactionParameters(144)),
                                commitment.compute_txid(), 0, PEER, 0, htlc, None)
    event = BumpTransactionEvent.HTLCResolution(CHANNEL, PEER, ClaimId(b"\x66" * 32), 2_000, (descriptor,), EXPIRY)
    before = node.wallet.get_balance()
    node.handler.handle_event(event)
    (tx,) = node.chain.mempool.values()
    assert tx.lock_time == EXPIRY
    assert tx.input[0].previous_output == OutPoint(commitment.compute_txid(), 1)
    assert tx.output[0] == TxOut(50_000, to_local_script(signer.delayed_payment_basepoint,
                                                         signer.revocation_basepoint, 144))
    assert node.wallet.is_mine(tx.output[1].script_pubkey)
    fee = sum(prevout(node.chain, i).value for i in tx.input) - sum(o.value for o in tx.output)
    # paid for at the target, with signatures estimated at their longest (a few weight units of slack)
    assert fee_for_weight(2_000, tx_weight(tx)) <= fee <= fee_for_weight(2_000, tx_weight(tx) + 12)
    node.handler.handle_event(event)  # asked again for the same claim: the same transaction, no double spend
    assert list(node.chain.mempool.values()) == [tx]
    node.chain.mine(1)
    assert node.wallet.get_balance() == before - fee


def test_a_child_for_a_commitment_that_lost_to_the_peers_keeps_its_wallet_coin():
    """In ``force_close_remote`` our commitment, urgent after the payment, loses to bob's, first in the mempool (the
    simulated chain keeps the first seen: no replacement, no reorganisation): it is refused, and so is the CPFP child
    the handler builds for it, again at every ask. The wallet coin the child would spend stays the wallet's."""
    from ldkkit import scenarios

    result = scenarios.run("force_close_remote")
    wallet, chain = result.node.bitcoind_client, result.world.chain
    refused = [r.tx for r in wallet.rejected]
    children = [tx for tx in refused if len(tx.input) == 2]
    assert children and all(chain.confirmations(tx.compute_txid()) is None for tx in refused)
    assert {tx.input[1].previous_output for tx in children} <= {u.outpoint for u in wallet.list_unspent()}
