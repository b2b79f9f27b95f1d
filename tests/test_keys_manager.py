"""KeysManager: real keys, deterministic per (seed, time), and sweeps that conserve value and really sign."""

from __future__ import annotations

import hashlib
import threading

import pytest
from coincurve import PublicKey as Point
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import OutPoint, ScriptBuf, Transaction, TxOut
from ldkkit.chain.chaininterface import fee_for_weight, tx_weight
from ldkkit.sign import (
    DelayedPaymentOutputDescriptor,
    InMemorySigner,
    KeysManager,
    Recipient,
    SpendableOutputDescriptor,
    StaticPaymentOutputDescriptor,
    _pubkey,
    _tweak_secret,
    add_secrets,
    get_revokeable_redeemscript,
    get_to_countersigner_keyed_anchor_redeemscript,
    p2wpkh_script_code,
    segwit_sighashes,
)
from ldkkit.sim.chain import Chain
from ldkkit.sim.clock import VirtualClock
from ldkkit.types import PublicKey

SEED = bytes(range(32))
WALLET = ScriptBuf.new_p2wpkh(PublicKey.from_secret_key(b"\x09" * 32).__bytes__())
seeds = st.binary(min_size=32, max_size=32)


def verify(tx: Transaction, index: int, script_code: bytes, value: int, pubkey: bytes) -> bool:
    """Check a witness signature against the BIP 143 digest, as a full node would."""
    sig = tx.input[index].witness[0]
    assert sig[-1] == 1  # SIGHASH_ALL
    (digest,) = segwit_sighashes(tx, [(index, script_code, value)])
    return Point(pubkey).verify(sig[:-1], digest, hasher=None)


def fund(chain: Chain, script: ScriptBuf, value: int) -> tuple[OutPoint, TxOut]:
    tx = chain.fund({script: value})
    chain.mine(1)
    return OutPoint(tx.compute_txid(), 0), tx.output[0]


# --- determinism and key material ----------------------------------------------------------------


@given(seeds, st.integers(0, 2**40), st.integers(0, 999_999_999))
def test_same_seed_and_time_give_the_same_node(seed, secs, nanos):
    a, b = KeysManager(seed, secs, nanos), KeysManager(seed, secs, nanos)
    assert a.get_node_id() == b.get_node_id() == PublicKey.from_secret_key(a.get_node_secret_key())
    assert [a.get_secure_random_bytes() for _ in range(3)] == [b.get_secure_random_bytes() for _ in range(3)]
    assert a.get_destination_script() == b.get_destination_script()
    assert a.get_shutdown_scriptpubkey() == b.get_shutdown_scriptpubkey()
    kid = a.generate_channel_keys_id(False, 10_000, 7)
    assert kid == b.generate_channel_keys_id(False, 10_000, 7)
    assert a.derive_channel_keys(10_000, kid).funding_pubkey == b.derive_channel_keys(10_000, kid).funding_pubkey


@given(seeds, seeds)
def test_different_seeds_give_different_keys(s1, s2):
    if s1 != s2:
        assert KeysManager(s1, 0, 0).get_node_id() != KeysManager(s2, 0, 0).get_node_id()


def test_node_id_depends_only_on_the_seed_but_random_bytes_on_the_time_too():
    a, b = KeysManager(SEED, 1, 0), KeysManager(SEED, 2, 0)
    assert a.get_node_id() == b.get_node_id()  # a restarted node keeps its identity
    assert a.get_secure_random_bytes() != b.get_secure_random_bytes()


def test_random_bytes_never_repeat_even_across_threads():
    km = KeysManager(SEED, 0, 0)
    out: list[bytes] = []

    def draw():
        for _ in range(50):
            out.append(km.get_secure_random_bytes())

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 200 and len(set(out)) == 200 and all(len(b) == 32 for b in out)


def test_phantom_node_id_is_refused_clearly():
    with pytest.raises(ValueError, match="no phantom node key"):
        KeysManager(SEED, 0, 0).get_node_id(Recipient.PhantomNode)


def test_bad_seed_is_refused():
    with pytest.raises(ValueError, match="32-byte seed"):
        KeysManager(b"short", 0, 0)


def test_channel_keys_ids_follow_ldks_layout_and_differ_per_channel():
    km = KeysManager(SEED, 0x0102030405060708, 0x0A0B0C0D)
    first, second = km.generate_channel_keys_id(False, 1, 42), km.generate_channel_keys_id(True, 1, 42)
    assert first[:4] == bytes(4) and second[:4] == b"\x00\x00\x00\x01"
    assert first[4:8] == bytes.fromhex("0a0b0c0d") and first[8:16] == bytes.fromhex("0102030405060708")
    assert int.from_bytes(first[16:], "big") == 42
    keys = [km.derive_channel_keys(1_000_000, kid) for kid in (first, second)]
    assert keys[0].funding_pubkey != keys[1].funding_pubkey


def test_channel_signer_has_five_distinct_real_public_keys():
    km = KeysManager(SEED, 0, 0)
    signer = km.derive_channel_keys(1_000_000, km.generate_channel_keys_id(False, 1_000_000, 1))
    points = [signer.funding_pubkey, signer.revocation_basepoint, signer.payment_point,
              signer.delayed_payment_basepoint, signer.htlc_basepoint]
    assert all(isinstance(p, PublicKey) for p in points) and len(set(points)) == 5
    assert "secret" not in repr(signer) and signer.channel_value_satoshis == 1_000_000


def test_commitment_secrets_follow_bolt3():
    # BOLT 3, "generate_from_seed 0 final node" and "generate_from_seed FF alternate bits 1"
    k = b"\x01" * 32
    assert InMemorySigner(k, k, k, k, k, bytes(32), 1, bytes(32)).release_commitment_secret(2**48 - 1).hex() == (
        "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148")
    signer = InMemorySigner(k, k, k, k, k, b"\xff" * 32, 1, bytes(32))
    assert signer.release_commitment_secret(0xAAAAAAAAAAA).hex() == (
        "56f4008fb007ca9acf0e15b054d5c9fd12ee06cea347914ddbaed70d1c13a528")


def test_per_commitment_keys_are_derived_as_bolt3_says():
    # BOLT 3, Appendix E, "derive_privkey": basepoint_secret + SHA256(per_commitment_point || basepoint)
    base_secret = bytes(range(32))
    assert _pubkey(base_secret).hex() == "036d6caac248af96f6afa7f904f550253a0f3ef3f5aa2fe6838a95b216691468e2"
    point = PublicKey(bytes.fromhex("025f7117a78150fe2ef97db7cfc83bd57b2e2c0d0dd25eaf467a4a1c2a45ce1486"))
    assert _tweak_secret(base_secret, point).hex() == (
        "cbced912d3b21bf196a766651e436aff192362621ce317704ea2f75d87e7be0f")


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_adding_secrets_is_adding_their_points(secret, tweak):
    """The scalar sum's public key is the sum of the two public keys (both taken as valid secp256k1 scalars)."""
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    a, b = int.from_bytes(secret, "big"), int.from_bytes(tweak, "big")
    if not (0 < a < order and 0 < b < order and (a + b) % order):
        return
    assert _pubkey(add_secrets(secret, tweak)) == Point.combine_keys(
        [Point.from_secret(secret), Point.from_secret(tweak)]).format()


def test_destination_and_shutdown_scripts_are_distinct_p2wpkh():
    km = KeysManager(SEED, 0, 0)
    assert km.get_destination_script().is_p2wpkh() and km.get_shutdown_scriptpubkey().is_p2wpkh()
    assert km.get_destination_script() != km.get_shutdown_scriptpubkey()
    assert km.get_destination_script(bytes(32)) == km.get_destination_script()


# --- spend_spendable_outputs ----------------------------------------------------------------------


@given(st.lists(st.integers(5_000, 10**8), min_size=1, max_size=3, unique=True), st.integers(0, 20_000), st.booleans())
def test_static_outputs_sweep_conserves_value_and_pays_the_fee_asked(values, feerate, to_shutdown):
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    script = km.get_shutdown_scriptpubkey() if to_shutdown else km.get_destination_script()
    descriptors = [SpendableOutputDescriptor.StaticOutput(*fund(chain, script, v), None) for v in values]
    try:
        tx = km.spend_spendable_outputs(descriptors, [], WALLET, feerate, None)
    except ValueError as e:
        assert "too little to pay" in str(e)
        return
    fee = sum(values) - sum(o.value for o in tx.output)
    rate = feerate  # (as given: LDK's KeysManager puts no floor under it)
    assert fee >= fee_for_weight(rate, tx_weight(tx))  # our estimate is never below the real weight
    assert fee <= fee_for_weight(rate, tx_weight(tx) + 4 * len(values))  # and over by at most a byte per signature
    assert [o.script_pubkey for o in tx.output] == [WALLET] and tx.version == 2
    chain.broadcast(tx)  # the chain accepts it
    for i, txin in enumerate(tx.input):
        assert txin.sequence == 0
        pubkey = txin.witness[1]
        assert ScriptBuf.new_p2wpkh(pubkey) == script
        assert verify(tx, i, p2wpkh_script_code(pubkey), values[i], pubkey)


def test_sweep_pays_requested_outputs_and_locktime():
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    desc = SpendableOutputDescriptor.StaticOutput(*fund(chain, km.get_destination_script(), 100_000), None)
    pay = TxOut(40_000, ScriptBuf.new_p2wsh(b"\x51"))
    tx = km.spend_spendable_outputs([desc], [pay], WALLET, 1000, 123)
    assert tx.output[0] == pay and tx.output[1].script_pubkey == WALLET and tx.lock_time == 123


def test_dust_change_goes_to_the_fee_when_outputs_are_paid():
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    desc = SpendableOutputDescriptor.StaticOutput(*fund(chain, km.get_destination_script(), 100_000), None)
    tx = km.spend_spendable_outputs([desc], [TxOut(99_800, WALLET)], WALLET, 253, None)
    assert [o.value for o in tx.output] == [99_800]


def test_foreign_static_output_is_refused():
    chain = Chain(VirtualClock())
    desc = SpendableOutputDescriptor.StaticOutput(*fund(chain, WALLET, 100_000), None)
    with pytest.raises(ValueError, match="neither this KeysManager's destination script nor its shutdown"):
        KeysManager(SEED, 0, 0).spend_spendable_outputs([desc], [], WALLET, 253, None)


def test_too_small_outputs_and_duplicates_are_refused_clearly():
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    desc = SpendableOutputDescriptor.StaticOutput(*fund(chain, km.get_destination_script(), 500), None)
    with pytest.raises(ValueError, match=r"hold 500 sat, too little to pay"):
        km.spend_spendable_outputs([desc], [], WALLET, 5000, None)
    with pytest.raises(ValueError, match="listed twice"):
        km.spend_spendable_outputs([desc, desc], [], WALLET, 253, None)
    with pytest.raises(ValueError, match="at least one descriptor"):
        km.spend_spendable_outputs([], [], WALLET, 253, None)


def delayed_descriptor(
    km: KeysManager, chain: Chain, value: int, delay: int
) -> tuple[DelayedPaymentOutputDescriptor, InMemorySigner]:
    kid = km.generate_channel_keys_id(False, 1_000_000, 5)
    signer = km.derive_channel_keys(1_000_000, kid)
    pcp = signer.get_per_commitment_point(2**48 - 1)
    revocation = PublicKey.from_secret_key(b"\x05" * 32)
    outpoint, out = fund(chain, ScriptBuf.new_p2wsh(b"\x51"), value)
    return DelayedPaymentOutputDescriptor(outpoint, pcp, delay, out, revocation, kid, 1_000_000), signer


def test_delayed_payment_output_is_signed_by_the_tweaked_delayed_key():
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    d, signer = delayed_descriptor(km, chain, 200_000, 144)
    tx = km.spend_spendable_outputs([SpendableOutputDescriptor.DelayedPaymentOutput(d)], [], WALLET, 253, None)
    txin = tx.input[0]
    assert txin.sequence == 144 and txin.witness[1] == b"" and len(txin.witness) == 3
    # the to_local script commits to the delayed key: basepoint + SHA256(pcp || basepoint)·G
    tweak = hashlib.sha256(bytes(d.per_commitment_point) + bytes(signer.delayed_payment_basepoint)).digest()
    delayed = Point(bytes(signer.delayed_payment_basepoint)).add(tweak).format()
    script = get_revokeable_redeemscript(d.revocation_pubkey, 144, delayed)
    assert txin.witness[2] == script
    assert verify(tx, 0, script, 200_000, delayed)
    chain.broadcast(tx)


@pytest.mark.parametrize("anchors", [False, True])
def test_static_payment_output_is_signed_by_the_payment_key(anchors):
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    kid = km.generate_channel_keys_id(True, 500_000, 9)
    signer = km.derive_channel_keys(500_000, kid)
    redeem = get_to_countersigner_keyed_anchor_redeemscript(signer.payment_point)
    script = ScriptBuf.new_p2wsh(redeem) if anchors else ScriptBuf.new_p2wpkh(bytes(signer.payment_point))
    outpoint, out = fund(chain, script, 80_000)
    d = StaticPaymentOutputDescriptor(outpoint, out, kid, 500_000)
    tx = km.spend_spendable_outputs([SpendableOutputDescriptor.StaticPaymentOutput(d)], [], WALLET, 253, None)
    txin = tx.input[0]
    payment = bytes(signer.payment_point)
    if anchors:
        assert txin.sequence == 1 and txin.witness[1] == redeem
        assert verify(tx, 0, redeem, 80_000, payment)
    else:
        assert txin.sequence == 0 and txin.witness[1] == payment
        assert verify(tx, 0, p2wpkh_script_code(payment), 80_000, payment)
    chain.broadcast(tx)


def test_mixed_descriptors_sweep_in_one_transaction():
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    d, _ = delayed_descriptor(km, chain, 30_000, 6)
    static = SpendableOutputDescriptor.StaticOutput(*fund(chain, km.get_destination_script(), 20_000), None)
    descriptors = [SpendableOutputDescriptor.DelayedPaymentOutput(d), static]
    tx = km.spend_spendable_outputs(descriptors, [], WALLET, 1_000, None)
    assert [i.sequence for i in tx.input] == [6, 0] and len(tx.output) == 1
    fee = 50_000 - tx.output[0].value
    assert fee_for_weight(1_000, tx_weight(tx)) <= fee <= fee_for_weight(1_000, tx_weight(tx) + 8)
    chain.broadcast(tx)


# --- simplified simulated commitments --------------------------------------------------------------


def test_outputs_paying_untweaked_channel_keys_are_signed_by_those_keys():
    """A simplified commitment may pay the delayed basepoint or the funding key directly; the
    signature is then made with that key, so it stays valid."""
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    kid = km.generate_channel_keys_id(False, 1_000_000, 5)
    signer = km.derive_channel_keys(1_000_000, kid)
    revocation = PublicKey.from_secret_key(b"\x05" * 32)
    to_local = get_revokeable_redeemscript(revocation, 144, bytes(signer.delayed_payment_basepoint))
    outpoint, out = fund(chain, ScriptBuf.new_p2wsh(to_local), 200_000)
    delayed = DelayedPaymentOutputDescriptor(outpoint, signer.delayed_payment_basepoint, 144, out, revocation, kid,
                                             1_000_000)
    outpoint, out = fund(chain, ScriptBuf.new_p2wpkh(bytes(signer.funding_pubkey)), 100_000)
    to_remote = StaticPaymentOutputDescriptor(outpoint, out, kid, 1_000_000)
    descriptors = [SpendableOutputDescriptor.DelayedPaymentOutput(delayed),
                   SpendableOutputDescriptor.StaticPaymentOutput(to_remote)]
    tx = km.spend_spendable_outputs(descriptors, [], WALLET, 253, None)
    assert tx.input[0].witness[2] == to_local
    assert verify(tx, 0, to_local, 200_000, bytes(signer.delayed_payment_basepoint))
    funding = bytes(signer.funding_pubkey)
    assert tx.input[1].witness[1] == funding and verify(tx, 1, p2wpkh_script_code(funding), 100_000, funding)


def test_a_channel_static_output_to_another_script_is_spent_on_the_simulators_word():
    chain = Chain(VirtualClock())
    km = KeysManager(SEED, 0, 0)
    kid = km.generate_channel_keys_id(False, 1_000_000, 5)
    htlc_output = ScriptBuf.new_p2wsh(b"\x02\xf4\x01\xb1\x75")
    desc = SpendableOutputDescriptor.StaticOutput(*fund(chain, htlc_output, 50_000), kid)
    tx = km.spend_spendable_outputs([desc], [], WALLET, 253, None)
    assert tx.input[0].witness[1] == b""
    chain.broadcast(tx)


def test_keys_follow_ldks_bip32_paths_whether_derived_now_or_remembered():
    """LDK's KeysManager: node secret at m/0', sweep key at m/1', shutdown key at m/2', each channel's keys from
    m/3'/child'. The kit derives them once per seed, so a second node from the same seed must get the same."""
    from embit.bip32 import HDKey

    seed = bytes(range(32))
    master = HDKey.from_seed(seed)
    expected = [master.derive(f"m/{i}h").key for i in range(3)]
    for _ in range(2):  # (the second node from the seed is built from what the first derived)
        keys = KeysManager(seed, 1, 2)
        assert keys.get_node_secret_key() == expected[0].secret
        assert keys.get_node_id() == PublicKey(expected[0].get_public_key().sec())
        assert keys.get_destination_script() == ScriptBuf.new_p2wpkh(expected[1].get_public_key().sec())
        assert keys.get_shutdown_scriptpubkey() == ScriptBuf.new_p2wpkh(expected[2].get_public_key().sec())
        keys_id = keys.generate_channel_keys_id(True, 100_000, 7)
        child = (int.from_bytes(keys_id[:8], "big") & 0xFFFFFFFF) % (1 << 31)
        child_key = master.derive(f"m/3h/{child}h").key.secret
        seed_of_channel = hashlib.sha256(keys_id + seed + child_key).digest()
        commitment_seed = hashlib.sha256(seed_of_channel + b"commitment seed").digest()
        funding_key = hashlib.sha256(seed_of_channel + commitment_seed + b"funding key").digest()
        signer = keys.derive_channel_keys(100_000, keys_id)
        assert signer.funding_pubkey == PublicKey(Point.from_secret(funding_key).format())
