"""BitcoindClient: ldk-sample's funding flow works as written, and its wallet keeps the books straight."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from coincurve import PublicKey as Point
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Address, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ldkkit.bitcoind_client import BitcoindClient, BitcoindError, FundedTx, RawTx
from ldkkit.chain.chaininterface import FEERATE_FLOOR_SATS_PER_KW, ConfirmationTarget, fee_for_weight, tx_weight
from ldkkit.logger import Level
from ldkkit.sign import p2wpkh_script_code, segwit_sighashes
from ldkkit.sim.chain import Chain, ChainError
from ldkkit.sim.clock import VirtualClock
from ldkkit.sim.world import World
from ldkkit.types import Txid

CHANNEL_SCRIPT = ScriptBuf.new_p2wsh(b"\x52\x53\xae")  # stands in for a 2-of-2 funding script


def funded_client(*amounts: int) -> tuple[Chain, BitcoindClient]:
    """A client whose wallet holds one confirmed coin per amount (1 BTC if none given)."""
    chain = Chain(VirtualClock())
    client = BitcoindClient(chain, Network.Regtest, b"\x01" * 32)
    chain.fund({client.get_new_address().script_pubkey: sats for sats in amounts or (100_000_000,)})
    chain.mine(1)
    return chain, client


def ldk_sample_funding(client: BitcoindClient, output_script: ScriptBuf, channel_value_satoshis: int,
                       network: Network = Network.Regtest) -> Transaction:
    """ldk-sample's FundingGenerationReady arm, as a learner writes it."""
    addr = Address.from_script(output_script, network)
    raw_tx = client.create_raw_transaction([{str(addr): channel_value_satoshis / 100_000_000}])
    funded_tx = client.fund_raw_transaction(raw_tx)
    signed_tx = client.sign_raw_transaction_with_wallet(funded_tx.hex)
    assert signed_tx.complete
    return Transaction(bytes.fromhex(signed_tx.hex))


def input_values(chain: Chain, tx: Transaction) -> list[int]:
    return [chain.get_transaction(i.previous_output.txid).output[i.previous_output.vout].value for i in tx.input]


def test_ldk_sample_funding_flow_builds_a_valid_funding_transaction():
    chain, client = funded_client()
    final_tx = ldk_sample_funding(client, CHANNEL_SCRIPT, 1_000_000)
    assert [o for o in final_tx.output if o.script_pubkey == CHANNEL_SCRIPT] == [TxOut(1_000_000, CHANNEL_SCRIPT)]
    assert len(final_tx.output) == 2 and client.is_mine(final_tx.output[1].script_pubkey)
    assert all(len(i.witness) == 2 for i in final_tx.input)  # every input is SegWit, as LDK requires
    client.broadcast_transactions([final_tx])
    assert client.rejected == []
    fee = 100_000_000 - sum(o.value for o in final_tx.output)
    assert client.get_balance() == 100_000_000 - 1_000_000 - fee  # our own change counts at once
    chain.mine(1)
    assert chain.confirmations(final_tx.compute_txid()) == 1
    assert client.get_balance() == 100_000_000 - 1_000_000 - fee


@given(st.integers(1_000, 50_000_000), st.integers(253, 20_000), st.lists(st.integers(10_000, 40_000_000),
                                                                          min_size=1, max_size=4, unique=True))
def test_funded_and_signed_transactions_balance_and_are_accepted(value, feerate, coins):
    chain, client = funded_client(*coins)
    client.set_fee_estimate(ConfirmationTarget.NonAnchorChannelFee, feerate)
    try:
        tx = ldk_sample_funding(client, CHANNEL_SCRIPT, value)
    except BitcoindError as e:
        assert str(e) == "Insufficient funds"
        all_coins_weight = 4 * (10 + 43 + 41 * len(coins)) + 2 + 109 * len(coins)  # every coin, no change
        assert sum(coins) < value + fee_for_weight(feerate, all_coins_weight)
        return
    assert [o for o in tx.output if o.script_pubkey == CHANNEL_SCRIPT] == [TxOut(value, CHANNEL_SCRIPT)]
    fee = sum(input_values(chain, tx)) - sum(o.value for o in tx.output)
    assert fee >= fee_for_weight(feerate, tx_weight(tx))  # inputs = outputs + fee, at least the feerate
    change = [o for o in tx.output if client.is_mine(o.script_pubkey)]
    if change:  # with change the fee is exactly the estimate, which may only over-count signature bytes
        assert fee <= fee_for_weight(feerate, tx_weight(tx) + 3 * len(tx.input))
    chain.broadcast(tx)
    for i, txin in enumerate(tx.input):  # real signatures over BIP 143 digests
        pubkey = txin.witness[1]
        (digest,) = segwit_sighashes(tx, [(i, p2wpkh_script_code(pubkey), input_values(chain, tx)[i])])
        assert Point(pubkey).verify(txin.witness[0][:-1], digest, hasher=None)


def test_raw_transaction_has_no_inputs_and_the_amount_rounds_exactly():
    _, client = funded_client()
    addr = str(Address.from_script(CHANNEL_SCRIPT, Network.Regtest))
    raw = client.create_raw_transaction([{addr: 0.00123457}])
    assert isinstance(raw, RawTx)
    assert raw.hex.startswith("02000000" + "00" + "01")  # version 2, no inputs, one output
    assert int.from_bytes(bytes.fromhex(raw.hex)[6:14], "little") == 123_457


def test_an_amount_as_text_and_one_dict_for_the_list_are_taken_as_bitcoind_takes_them():
    _, client = funded_client()
    addr = str(Address.from_script(CHANNEL_SCRIPT, Network.Regtest))
    expected = client.create_raw_transaction([{addr: 0.001}])
    assert client.create_raw_transaction([{addr: "0.00100000"}]) == expected
    assert client.create_raw_transaction({addr: 0.001}) == expected
    with pytest.raises(BitcoindError, match="^Invalid amount: 'lots'$"):
        client.create_raw_transaction([{addr: "lots"}])


@pytest.mark.parametrize("addr", ["not-an-address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                                  "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"])
def test_bad_or_wrong_network_addresses_get_bitcoinds_message(addr):
    _, client = funded_client()
    with pytest.raises(BitcoindError, match=f"^Invalid Bitcoin address: {addr}$"):
        client.create_raw_transaction([{addr: 0.01}])


def test_insufficient_funds():
    _, client = funded_client(50_000)
    raw = client.create_raw_transaction([{str(Address.from_script(CHANNEL_SCRIPT, Network.Regtest)): 0.001}])
    with pytest.raises(BitcoindError, match="^Insufficient funds$"):
        client.fund_raw_transaction(raw)


def test_no_change_output_when_change_would_be_dust():
    _, client = funded_client(100_000)
    fee = fee_for_weight(2_000, 4 * (10 + 41 + 43) + 2 + 109)  # one P2WPKH input, one P2WSH output
    raw = client.create_raw_transaction([{str(Address.from_script(CHANNEL_SCRIPT, Network.Regtest)):
                                          (100_000 - fee - 100) / 1e8}])
    funded = client.fund_raw_transaction(raw)
    assert funded.changepos == -1
    assert len(Transaction(bytes.fromhex(client.sign_raw_transaction_with_wallet(funded.hex).hex)).output) == 1


@pytest.mark.parametrize("change, kept", [(1, False), (293, False), (294, True)])
def test_change_below_the_dust_limit_is_left_to_the_fee(change, kept):
    """bitcoind drops a change output worth less than its dust limit (294 sat for P2WPKH, at 3 sat/vB)."""
    _, client = funded_client(100_000)
    weight = 4 * (10 + 41 + 43 + 31) + 2 + 109  # one P2WPKH input; a P2WSH output and a P2WPKH change output
    amount = 100_000 - fee_for_weight(2_000, weight) - change
    funded = client.fund_raw_transaction(
        client.create_raw_transaction([{str(Address.from_script(CHANNEL_SCRIPT, Network.Regtest)): amount / 1e8}]))
    outputs = Transaction(bytes.fromhex(funded.hex)).output
    assert outputs[0].value == amount
    if kept:
        assert funded.changepos == 1 and [o.value for o in outputs[1:]] == [change]
    else:
        assert funded.changepos == -1 and len(outputs) == 1


def test_change_is_appended_and_changepos_says_where():
    _, client = funded_client()
    addr = str(Address.from_script(CHANNEL_SCRIPT, Network.Regtest))
    other = str(client.get_new_address())
    funded = client.fund_raw_transaction(client.create_raw_transaction([{addr: 0.01}, {other: 0.02}]))
    assert isinstance(funded, FundedTx) and funded.changepos == 2


def test_two_fundings_before_broadcast_use_different_coins_when_they_can():
    chain, client = funded_client(30_000_000, 20_000_000)
    first = ldk_sample_funding(client, CHANNEL_SCRIPT, 1_000_000)
    second = ldk_sample_funding(client, ScriptBuf.new_p2wsh(b"\x54"), 1_000_000)
    assert {i.previous_output for i in first.input}.isdisjoint(i.previous_output for i in second.input)
    client.broadcast_transactions([first, second])
    assert client.rejected == []


def test_unconfirmed_foreign_coins_do_not_count_but_own_change_does():
    chain, client = funded_client(1_000_000)
    chain.fund({client.get_new_address().script_pubkey: 5_000})  # unconfirmed, from outside
    assert client.get_balance() == 1_000_000
    assert [u.amount for u in client.list_unspent()] == [1_000_000]
    assert sorted(u.confirmations for u in client.list_unspent(minconf=0)) == [0, 1]
    chain.mine(1)
    assert client.get_balance() == 1_005_000


def test_signing_a_foreign_input_is_incomplete():
    chain, client = funded_client()
    foreign = chain.fund({ScriptBuf.new_p2wsh(b"\x51"): 10_000})
    tx = Transaction.new(2, 0, [TxIn(OutPoint(foreign.compute_txid(), 0), ScriptBuf(b""), 0, ())],
                         [TxOut(9_000, CHANNEL_SCRIPT)])
    signed = client.sign_raw_transaction_with_wallet(tx.serialize().hex())
    assert signed.complete is False


def test_send_raw_transaction_reports_chain_refusals_as_bitcoind_errors():
    chain, client = funded_client()
    tx = ldk_sample_funding(client, CHANNEL_SCRIPT, 1_000_000)
    assert client.send_raw_transaction(RawTx(tx.serialize().hex())) == tx.compute_txid()
    assert client.send_raw_transaction(tx) == tx.compute_txid()  # already known is fine
    double_spend = Transaction.new(2, 0, [TxIn(tx.input[0].previous_output, ScriptBuf(b""), 0, (b"\x01",))],
                                   [TxOut(1_000, CHANNEL_SCRIPT)])
    with pytest.raises(BitcoindError, match="^txn-mempool-conflict"):
        client.send_raw_transaction(double_spend.serialize().hex())
    with pytest.raises(BitcoindError, match="TX decode failed"):
        client.send_raw_transaction("zz")


@pytest.mark.parametrize("lock_time, sequence, final", [
    (0, 0, True), (1, 0, True),  # (the chain is at block 1: the next is 2)
    (2, 0, False), (2, 0xFFFFFFFF, True), (1_000, 0xFFFFFFFE, False),
    (500_000_000, 0, True), (4_000_000_000, 0, False), (4_000_000_000, 0xFFFFFFFF, True),  # (times: 1985, 2096)
])
def test_a_transaction_whose_lock_time_is_not_reached_is_refused_as_non_final(lock_time, sequence, final):
    """Bitcoin Core's IsFinalTx for the next block: an nLockTime below 500,000,000 is a height, from it a time (the
    median of the last eleven blocks'); an input whose nSequence is 0xffffffff opts out of it, all of them the tx."""
    chain, client = funded_client()
    coin = client.list_unspent()[0]
    tx = Transaction.new(2, lock_time, [TxIn(coin.outpoint, ScriptBuf(b""), sequence, ())],
                         [TxOut(coin.amount - 1_000, CHANNEL_SCRIPT)])
    if final:
        assert chain.broadcast(tx) == tx.compute_txid()
        return
    with pytest.raises(ChainError, match=f"^non-final: its nLockTime \\({lock_time:,}\\) is not yet reached"):
        chain.broadcast(tx)
    assert chain.get_transaction(tx.compute_txid()) is None


def test_rejected_broadcasts_are_logged_and_kept_never_dropped():
    chain, client = funded_client()
    bogus = Transaction.new(2, 0, [TxIn(OutPoint(Txid(b"\x07" * 32), 0), ScriptBuf(b""), 0, (b"\x01",))],
                            [TxOut(1_000, CHANNEL_SCRIPT)])
    client.broadcast_transactions([bogus])
    assert [r.tx for r in client.rejected] == [bogus]
    assert "bad-txns-inputs-missingorspent" in client.rejected[0].reason
    errors = client.logger.records(Level.Error)
    assert len(errors) == 1 and str(bogus.compute_txid()) in errors[0].args


def test_fee_estimates_are_fixed_and_never_below_the_floor():
    _, client = funded_client()
    rates = {t: client.get_est_sat_per_1000_weight(t) for t in ConfirmationTarget}
    assert all(r >= FEERATE_FLOOR_SATS_PER_KW for r in rates.values())
    assert rates[ConfirmationTarget.NonAnchorChannelFee] == 2_000
    assert rates[ConfirmationTarget.MaximumFeeEstimate] >= rates[ConfirmationTarget.UrgentOnChainSweep]
    client.set_fee_estimate(ConfirmationTarget.OutputSpendingFee, 1)
    assert client.get_est_sat_per_1000_weight(ConfirmationTarget.OutputSpendingFee) == FEERATE_FLOOR_SATS_PER_KW
    with pytest.raises(TypeError):
        client.get_est_sat_per_1000_weight("normal")


def test_blockchain_info_and_mining():
    chain, client = funded_client()
    hashes = client.mine_blocks(3)
    info = client.get_blockchain_info()
    assert info.chain == "regtest" and info.latest_height == client.get_block_height() == 4
    assert info.latest_blockhash == hashes[-1] == chain.tip().block_hash.hex()
    assert client.get_balance() == 100_000_000  # block rewards go to the world's miner


def test_addresses_are_fresh_bech32_and_unique_across_threads():
    _, client = funded_client()
    seen: list[str] = []

    def take():
        for _ in range(25):
            seen.append(str(client.get_new_address()))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 100 and all(a.startswith("bcrt1q") for a in seen)


def test_same_wallet_seed_rebuilt_finds_its_coins_and_does_not_reuse_addresses():
    chain, client = funded_client()
    for _ in range(30):  # hand out addresses that stay unused, within the gap limit
        client.get_new_address()
    late = client.get_new_address()
    chain.fund({late.script_pubkey: 7_000})
    chain.mine(1)
    again = BitcoindClient(chain, Network.Regtest, b"\x01" * 32)
    assert again.get_balance() == client.get_balance() == 100_007_000
    assert again.get_new_address() != late


def test_a_new_wallet_derives_its_keys_as_it_hands_them_out_and_its_rebuilt_self_finds_its_coins():
    """A new wallet (a node the world adds) has nothing on the chain to look for: it derives each key as it hands it
    out, none ahead. Rebuilt from its seed (the node restarted), it derives ``GAP_LIMIT`` ahead and finds its coins."""
    chain = Chain(VirtualClock())
    new = BitcoindClient(chain, Network.Regtest, b"\x03" * 32, new=True)
    rebuilt_first = BitcoindClient(chain, Network.Regtest, b"\x03" * 32)
    handed_out = [new.get_new_address() for _ in range(3)]
    assert [rebuilt_first.get_new_address() for _ in range(3)] == handed_out  # (the same keys, in the same order)
    next_one, ahead = rebuilt_first.get_new_address(), rebuilt_first.get_new_address()
    assert all(new.is_mine(a.script_pubkey) for a in handed_out) and not new.is_mine(ahead.script_pubkey)
    assert new.is_mine(new.get_change_script())
    chain.fund({handed_out[0].script_pubkey: 4_000, handed_out[2].script_pubkey: 6_000})
    chain.mine(1)
    assert new.get_balance() == 10_000
    again = BitcoindClient(chain, Network.Regtest, b"\x03" * 32)  # (a restart: the seed was used)
    assert again.get_balance() == 10_000 and again.get_new_address() == next_one


def test_the_world_adds_nodes_with_new_wallets_and_restarts_them_with_rebuilt_ones():
    with World(seed=4) as world:
        node = world.add_node("amy")
        assert node.bitcoind_client._ahead == 1
        restarted = world.restart_node(node)
        assert restarted.bitcoind_client._ahead > 1
        assert restarted.bitcoind_client.get_balance() == node.bitcoind_client.get_balance() > 0


def test_clients_from_one_seed_keep_their_own_books():
    """Every client starts from the same first keys (derived once per process), but each keeps its own: one
    handing out addresses past the gap limit changes nothing for another."""
    chain = Chain(VirtualClock())
    first, second = (BitcoindClient(chain, Network.Regtest, b"\x02" * 32) for _ in range(2))
    handed_out = [first.get_new_address() for _ in range(60)] + [Address.from_script(first.get_change_script(),
                                                                                         Network.Regtest)]
    assert all(first.is_mine(a.script_pubkey) for a in handed_out)
    assert not second.is_mine(handed_out[59].script_pubkey)  # (not derived: beyond its own gap limit)
    assert second.get_new_address() == handed_out[0]
    assert Address.from_script(second.get_change_script(), Network.Regtest) == handed_out[-1]
    chain.fund({handed_out[59].script_pubkey: 5_000})
    chain.mine(1)
    third = BitcoindClient(chain, Network.Regtest, b"\x02" * 32)  # (a coin past the gap limit: not looked for)
    assert not third.is_mine(handed_out[59].script_pubkey) and third.get_new_address() == handed_out[0]
    assert third.get_balance() == 0 and first.get_balance() == 5_000


def test_wallet_source_lists_confirmed_utxos_and_signs_its_inputs():
    chain, client = funded_client(40_000, 60_000)
    utxos = client.list_confirmed_utxos()
    assert [u.output.value for u in utxos] == [60_000, 40_000]
    assert all(u.satisfaction_weight == 4 + 109 for u in utxos)
    change = client.get_change_script()
    assert client.is_mine(change) and change != client.get_change_script()
    tx = Transaction.new(2, 0, [TxIn(utxos[0].outpoint, ScriptBuf(b""), 0, ())], [TxOut(59_000, change)])
    signed = client.sign_tx(tx)
    assert signed.compute_txid() == tx.compute_txid() and len(signed.input[0].witness) == 2
    chain.broadcast(signed)
    assert client.get_change_destination_script().is_p2wpkh()


def test_wallet_keys_are_bip84_keys_of_the_seed():
    """The wallet derives its keys itself (for speed); they are the BIP 32 keys embit derives, m/84'/1'/0'/b/i."""
    from embit.bip32 import HDKey

    from ldkkit.bitcoind_client import _derive

    seed = bytes(range(32))
    account = HDKey.from_seed(seed).derive("m/84h/1h/0h")
    for branch, index in ((0, 0), (0, 1), (0, 49), (1, 0), (1, 7)):
        key = account.derive([branch, index])
        secret, public, script = _derive(seed, 1, branch, index)
        assert (secret, public) == (key.key.secret, key.get_public_key().sec())
        assert script == ScriptBuf.new_p2wpkh(public)


def test_an_amount_with_more_than_eight_decimal_places_is_refused_as_bitcoind_refuses_it():
    """bitcoind reads an amount with ParseFixedPoint(value, 8): ``sats * 1e-8`` (0.060000000000000005 for 6,000,000
    sats) is an "Invalid amount"; ``sats / 100_000_000`` (0.06) and its text are what it takes."""
    with World(seed=3) as world:
        client = world.add_node("a").bitcoind_client
        address = str(client.get_new_address())
        with pytest.raises(BitcoindError, match="Invalid amount: 0.060000000000000005"):
            client.create_raw_transaction([{address: 6_000_000 * 1e-8}])
        with pytest.raises(BitcoindError, match="Invalid amount"):
            client.create_raw_transaction([{address: "0.123456789"}])
        for amount in (6_000_000 / 100_000_000, "0.06", Decimal("0.06000000")):
            assert client.create_raw_transaction([{address: amount}]) == client.create_raw_transaction(
                [{address: 0.06}])
