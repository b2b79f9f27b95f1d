"""Transactions are real (real serialization, real txids) and addresses are real bech32."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Address, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ldkkit.sim import chain
from ldkkit.types import Txid
from strategies import scripts, transactions

GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d01044554"
    "68652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64"
    "206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b710"
    "5cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00"
    "000000"
)


def test_the_genesis_coinbase_has_its_famous_txid():
    tx = Transaction(GENESIS_COINBASE)
    assert str(tx.compute_txid()) == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    assert tx.output[0].value == 50 * 100_000_000
    assert tx.serialize() == GENESIS_COINBASE


@given(transactions)
def test_built_transactions_parse_back_to_their_parts(tx):
    again = Transaction.new(tx.version, tx.lock_time, list(tx.input), list(tx.output))
    assert again == tx and again.compute_txid() == tx.compute_txid()


@given(transactions)
def test_weight_counts_a_witness_byte_once_and_any_other_four_times(tx):
    bare = [TxIn(i.previous_output, i.script_sig, i.sequence, ()) for i in tx.input]  # (no witnesses: stripped)
    stripped = Transaction.new(tx.version, tx.lock_time, bare, list(tx.output))
    assert tx.weight() == 3 * len(stripped.serialize()) + len(tx.serialize())
    assert tx.vsize() == -(-tx.weight() // 4)


def test_the_genesis_coinbase_weighs_four_units_a_byte():
    assert Transaction(GENESIS_COINBASE).weight() == 4 * len(GENESIS_COINBASE) == 4 * 204


@given(st.lists(st.tuples(scripts | st.binary(min_size=253, max_size=300).map(ScriptBuf),
                          st.integers(0, 21_000_000 * 10**8)), min_size=1, max_size=3).map(tuple),
       st.binary(min_size=1, max_size=5))
def test_a_coinbase_from_the_chains_template_is_the_transaction_built_from_its_parts(outputs, tag):
    """The chain writes its coinbases' bytes itself: they are what ``Transaction.new`` writes (through embit)."""
    coinbase = chain._coinbase.__wrapped__(outputs, tag)
    txin = TxIn(OutPoint(Txid(bytes(32)), 0xFFFFFFFF), ScriptBuf(b"\x04" + tag[:4].ljust(4, b"\0")), 0xFFFFFFFF, ())
    built = Transaction.new(2, 0, [txin], [TxOut(value, script) for script, value in outputs])
    assert coinbase.serialize() == built.serialize() and coinbase.compute_txid() == built.compute_txid()
    assert (coinbase.input, coinbase.output, coinbase.version, coinbase.lock_time) == (
        built.input, built.output, 2, 0)


def test_garbage_is_not_a_transaction():
    with pytest.raises(ValueError, match="not a valid Bitcoin transaction"):
        Transaction(b"\x01\x02\x03")


# BIP 173's P2WPKH vector for the generator point's public key.
PUBKEY = bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")


@pytest.mark.parametrize(
    "network, text",
    [
        (Network.Bitcoin, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        (Network.Testnet, "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"),
        (Network.Regtest, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
    ],
)
def test_addresses_are_real_bech32(network, text):
    address = Address.from_script(ScriptBuf.new_p2wpkh(PUBKEY), network)
    assert str(address) == text
    assert Address.from_str(text, network) == address


def test_p2wsh_output_scripts_have_addresses():
    script = ScriptBuf.new_p2wsh(b"\x51")
    assert script.is_p2wsh()
    assert str(Address.from_script(script, Network.Regtest)).startswith("bcrt1q")


def test_address_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="is not a Regtest address"):  # noqa: PT012
        Address.from_str("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", Network.Regtest)
    with pytest.raises(ValueError, match="not a segwit v0 output script"):
        Address.from_script(ScriptBuf(b"\x6a"), Network.Regtest)


def test_outpoint_has_both_ldk_spellings():
    outpoint = OutPoint(Txid(bytes(32)), 3)
    assert outpoint.vout == outpoint.index == 3
    assert str(outpoint).endswith(":3")
