"""Our keys, and the outputs they can spend.

Mirrors ``lightning::sign``: ``SpendableOutputDescriptor`` (which ``Event.SpendableOutputs``
carries and the ``OutputSweeper`` spends), ``KeysManager`` (every key of a node, from one
seed) and ``InMemorySigner`` (one channel's keys). Keys are real secp256k1 keys and
signatures real ECDSA signatures over BIP 143 digests; the simulated chain does not
check them, but a learner can.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import threading
from collections.abc import Sequence
from typing import Any, Optional

from .bitcoin import OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from .ser import U16, U64, Record, RustEnum, register
from .types import PublicKey


class DelayedPaymentOutputDescriptor(Record):
    """Mirrors ``lightning::sign::DelayedPaymentOutputDescriptor``.

    Our output on our own commitment transaction: spendable after ``to_self_delay``
    blocks. (LDK's ``channel_transaction_parameters`` is not modelled.)
    """

    outpoint: OutPoint
    per_commitment_point: PublicKey
    to_self_delay: U16
    output: TxOut
    revocation_pubkey: PublicKey
    channel_keys_id: bytes
    channel_value_satoshis: U64


class StaticPaymentOutputDescriptor(Record):
    """Mirrors ``lightning::sign::StaticPaymentOutputDescriptor``.

    Our output on the counterparty's commitment transaction: spendable at once.
    """

    outpoint: OutPoint
    output: TxOut
    channel_keys_id: bytes
    channel_value_satoshis: U64


class SpendableOutputDescriptor(RustEnum):
    """Mirrors ``lightning::sign::SpendableOutputDescriptor``."""

    class StaticOutput:
        """An output to a script of our wallet's, such as a cooperative close output."""

        outpoint: OutPoint
        output: TxOut
        channel_keys_id: Optional[bytes]

    class DelayedPaymentOutput:
        """A CSV-delayed output from our own force-close."""

        descriptor: DelayedPaymentOutputDescriptor

    class StaticPaymentOutput:
        """Our balance from the counterparty's force-close."""

        descriptor: StaticPaymentOutputDescriptor


# --- Keys -----------------------------------------------------------------------------------

#: Sweeps are version 2 transactions, as CSV-locked (to_self_delay) inputs require.
_SPEND_TX_VERSION = 2
#: The order of secp256k1's group: private keys are added modulo it.
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: A placeholder as long as the longest DER signature plus its sighash byte, for weight estimates.
_MAX_SIG = b"\x30" + b"\x00" * 72
SIGHASH_ALL = 1


@register
class Recipient(enum.Enum):
    """Mirrors ``lightning::sign::Recipient``: whose node key is meant."""

    Node = "Node"
    PhantomNode = "PhantomNode"


def _sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


@functools.lru_cache(maxsize=1024)
def _seed_keys(seed: bytes) -> tuple[bytes, bytes, bytes, PublicKey, ScriptBuf, ScriptBuf]:
    """A seed's node secret (``m/0'``), destination and shutdown keys (``m/1'``, ``m/2'``), node id and the two
    scripts. The same seed always gives the same keys, and every scenario builds its nodes again from the same
    seeds: derived once per process (BIP 32 with embit, which base58-encodes each key it makes)."""
    from embit.bip32 import HDKey

    master = HDKey.from_seed(seed)
    node, destination, shutdown = (master.derive(f"m/{i}h").key.secret for i in range(3))
    return (node, destination, shutdown, PublicKey(_pubkey(node)), ScriptBuf.new_p2wpkh(_pubkey(destination)),
            ScriptBuf.new_p2wpkh(_pubkey(shutdown)))


@functools.lru_cache(maxsize=4096)
def _channel_child_secret(seed: bytes, child: int) -> bytes:
    """The hardened child ``m/3'/child'`` a channel's keys are derived from (once per process, as above)."""
    from embit.bip32 import HDKey

    return HDKey.from_seed(seed).derive([3 + 0x80000000, child + 0x80000000]).key.secret


@functools.lru_cache(maxsize=4096)
def _inbound_payment_key_material(seed: bytes) -> bytes:
    """The hardened child ``m/5'``'s secret: LDK's KeysManager's ``inbound_payment_key`` (once per seed, as above)."""
    from embit.bip32 import HDKey

    return HDKey.from_seed(seed).derive("m/5h").key.secret


@functools.lru_cache(maxsize=65_536)
def _pubkey(secret: bytes) -> bytes:
    """The compressed public key of ``secret``: worked out once per process, since every world built from the same
    seed derives the same keys."""
    from coincurve import PublicKey as Key

    return Key.from_secret(secret).format(compressed=True)


def add_secrets(secret: bytes, tweak: bytes) -> bytes:
    """``secret + tweak`` modulo the curve's order: how BIP 32 and BOLT 3 derive a private key (coincurve's
    ``PrivateKey.add`` would also work out the result's public keys, which nobody asks for)."""
    total = (int.from_bytes(secret, "big") + int.from_bytes(tweak, "big")) % SECP256K1_ORDER
    return total.to_bytes(32, "big")


def _tweak_secret(base_secret: bytes, per_commitment_point: PublicKey) -> bytes:
    """BOLT 3 key derivation: ``base_secret + SHA256(per_commitment_point || basepoint)``."""
    return add_secrets(base_secret, _sha256(bytes(per_commitment_point), _pubkey(base_secret)))


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def p2wpkh_script_code(pubkey: bytes) -> bytes:
    """BIP 143's scriptCode for a P2WPKH input: the P2PKH script of the key."""
    return b"\x76\xa9\x14" + hash160(pubkey) + b"\x88\xac"


def _push_int(n: int) -> bytes:
    """A script number push, minimally encoded (for CSV delays)."""
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    data = n.to_bytes((n.bit_length() + 8) // 8, "little")  # the extra bit keeps the sign bit clear
    return bytes([len(data)]) + data


def get_revokeable_redeemscript(revocation_pubkey: PublicKey, to_self_delay: int, delayed_pubkey: bytes) -> bytes:
    """Mirrors ``chan_utils::get_revokeable_redeemscript``: BOLT 3's ``to_local`` script."""
    return (
        b"\x63\x21" + bytes(revocation_pubkey)  # OP_IF <revocationpubkey>
        + b"\x67" + _push_int(to_self_delay) + b"\xb2\x75"  # OP_ELSE <delay> OP_CSV OP_DROP
        + b"\x21" + delayed_pubkey + b"\x68\xac"  # <delayed_pubkey> OP_ENDIF OP_CHECKSIG
    )


def get_to_countersigner_keyed_anchor_redeemscript(payment_point: PublicKey) -> bytes:
    """BOLT 3's anchor-channel ``to_remote`` script: ``<key> OP_CHECKSIGVERIFY 1 OP_CSV``."""
    return b"\x21" + bytes(payment_point) + b"\xad\x51\xb2"


def get_anchor_redeemscript(funding_pubkey: PublicKey) -> bytes:
    """Mirrors ``chan_utils::get_anchor_redeemscript``: spendable by the funding key, or anyone after 16 blocks."""
    return b"\x21" + bytes(funding_pubkey) + b"\xac\x73\x64\x60\xb2\x68"


def segwit_sighashes(tx: Transaction, inputs: list[tuple[int, bytes, int]]) -> list[bytes]:
    """BIP 143 SIGHASH_ALL digests for ``(input_index, script_code, value)`` triples of ``tx``."""
    from embit.script import Script
    from embit.transaction import Transaction as _Tx

    parsed = _Tx.parse(tx.serialize())
    return [parsed.sighash_segwit(i, Script(code), value) for i, code, value in inputs]


def sign_digest(secret: bytes, digest: bytes) -> bytes:
    """A real ECDSA signature (DER, low-S, RFC 6979) with the SIGHASH_ALL byte appended."""
    return _signing_key(secret).sign(digest, hasher=None) + bytes([SIGHASH_ALL])


@functools.lru_cache(maxsize=4096)
def _signing_key(secret: bytes) -> Any:
    """coincurve's key for ``secret``, made once: making one works out its two public keys too, and a channel signs
    with its funding key at every update."""
    from coincurve import PrivateKey

    return PrivateKey(secret)


def with_witnesses(tx: Transaction, witnesses: dict[int, tuple[bytes, ...]]) -> Transaction:
    """``tx`` with the given inputs' witnesses replaced (the txid does not change)."""
    inputs = [
        TxIn(i.previous_output, i.script_sig, i.sequence, witnesses.get(n, i.witness)) for n, i in enumerate(tx.input)
    ]
    return Transaction.new(tx.version, tx.lock_time, inputs, list(tx.output))


def min_non_dust_value(script: ScriptBuf) -> int:
    """Mirrors ``Script::minimal_non_dust``: 294 sat for P2WPKH, 330 for P2WSH at 3 sat/vB."""
    data = bytes(script)
    is_witness = len(data) >= 4 and (data[0] == 0 or 0x51 <= data[0] <= 0x60) and data[1] + 2 == len(data)
    spend_size = 67 if is_witness else 148  # (input size, witness discounted) bitcoind assumes
    return (8 + 1 + len(data) + spend_size) * 3


class InMemorySigner:
    """Mirrors ``lightning::sign::InMemorySigner``: one channel's keys, held in memory.

    The public keys are real secp256k1 points; the secrets stay private and are only used
    to sign. Build one with :meth:`KeysManager.derive_channel_keys`.
    """

    def __init__(
        self, funding_key: bytes, revocation_base_key: bytes, payment_key: bytes, delayed_payment_base_key: bytes,
        htlc_base_key: bytes, commitment_seed: bytes, channel_value_satoshis: int, channel_keys_id: bytes,
    ) -> None:
        self._funding_key = funding_key
        self._revocation_base_key = revocation_base_key
        self._payment_key = payment_key
        self._delayed_payment_base_key = delayed_payment_base_key
        self._htlc_base_key = htlc_base_key
        self._commitment_seed = commitment_seed
        self.channel_value_satoshis = channel_value_satoshis
        self.channel_keys_id = channel_keys_id
        self.funding_pubkey = PublicKey(_pubkey(funding_key))
        self.revocation_basepoint = PublicKey(_pubkey(revocation_base_key))
        self.payment_point = PublicKey(_pubkey(payment_key))
        self.delayed_payment_basepoint = PublicKey(_pubkey(delayed_payment_base_key))
        self.htlc_basepoint = PublicKey(_pubkey(htlc_base_key))

    def release_commitment_secret(self, idx: int) -> bytes:
        """BOLT 3's per-commitment secret ``idx`` (LDK counts down from 2^48 - 1), from the commitment seed."""
        secret = bytearray(self._commitment_seed)
        for bit in range(47, -1, -1):
            if idx >> bit & 1:
                secret[bit // 8] ^= 1 << (bit % 8)
                secret = bytearray(hashlib.sha256(secret).digest())
        return bytes(secret)

    def get_per_commitment_point(self, idx: int) -> PublicKey:
        """Mirrors ``ChannelSigner::get_per_commitment_point``."""
        return PublicKey(_pubkey(self.release_commitment_secret(idx)))

    def sign_counterparty_payment_input(
        self, spend_tx: Transaction, input_idx: int, descriptor: StaticPaymentOutputDescriptor
    ) -> tuple[bytes, ...]:
        """Mirrors ``InMemorySigner::sign_counterparty_payment_input``: the witness for our
        ``to_remote`` output, P2WPKH or (anchor channels) P2WSH."""
        secret = self._to_remote_key(descriptor.output.script_pubkey)
        pubkey = PublicKey(_pubkey(secret))
        if descriptor.output.script_pubkey.is_p2wsh():
            script = get_to_countersigner_keyed_anchor_redeemscript(pubkey)
            (digest,) = segwit_sighashes(spend_tx, [(input_idx, script, descriptor.output.value)])
            return (sign_digest(secret, digest), script)
        code = p2wpkh_script_code(bytes(pubkey))
        (digest,) = segwit_sighashes(spend_tx, [(input_idx, code, descriptor.output.value)])
        return (sign_digest(secret, digest), bytes(pubkey))

    def _to_remote_key(self, script_pubkey: ScriptBuf) -> bytes:
        """LDK pays ``to_remote`` to the payment key; a simplified simulated commitment may use the
        funding key instead. Sign with whichever the script pays, so the signature is valid."""
        for secret in (self._payment_key, self._funding_key):
            pubkey = _pubkey(secret)
            anchor_script = get_to_countersigner_keyed_anchor_redeemscript(PublicKey(pubkey))
            if script_pubkey in (ScriptBuf.new_p2wpkh(pubkey), ScriptBuf.new_p2wsh(anchor_script)):
                return secret
        return self._payment_key

    def sign_dynamic_p2wsh_input(
        self, spend_tx: Transaction, input_idx: int, descriptor: DelayedPaymentOutputDescriptor
    ) -> tuple[bytes, ...]:
        """Mirrors ``InMemorySigner::sign_dynamic_p2wsh_input``: ``[sig, <empty>, to_local script]``,
        signed with the delayed payment key tweaked by the per-commitment point.

        A simplified simulated commitment may pay the untweaked basepoint instead; if the
        output's script says so, that key signs, so the signature is valid either way.
        """
        tweaked = _tweak_secret(self._delayed_payment_base_key, descriptor.per_commitment_point)
        for secret in (tweaked, self._delayed_payment_base_key):
            script = get_revokeable_redeemscript(descriptor.revocation_pubkey, descriptor.to_self_delay,
                                                 _pubkey(secret))
            if ScriptBuf.new_p2wsh(script) == descriptor.output.script_pubkey:
                break
        else:
            secret = tweaked
            script = get_revokeable_redeemscript(descriptor.revocation_pubkey, descriptor.to_self_delay,
                                                 _pubkey(secret))
        (digest,) = segwit_sighashes(spend_tx, [(input_idx, script, descriptor.output.value)])
        return (sign_digest(secret, digest), b"", script)

    def sign_simulated_output(self, spend_tx: Transaction, input_idx: int, output: TxOut) -> tuple[bytes, ...]:
        """Simulation only: a ``[sig, <empty>]`` witness for a channel output whose script LDK would
        never hand over as a StaticOutput (e.g. an HTLC output the simulator reports directly).
        The signature is real (funding key, over the BIP 143 digest with the output script),
        but no real script would accept it; the simulated chain does not run scripts."""
        (digest,) = segwit_sighashes(spend_tx, [(input_idx, bytes(output.script_pubkey), output.value)])
        return (sign_digest(self._funding_key, digest), b"")

    def sign_holder_htlc_transaction(self, htlc_tx: Transaction, input_idx: int, htlc_descriptor: Any) -> bytes:
        """Mirrors ``EcdsaChannelSigner::sign_holder_htlc_transaction``: our signature on a second-stage
        HTLC transaction's HTLC input, with the HTLC key (untweaked: the simulated commitment's scripts are)."""
        script = htlc_descriptor.witness_script()
        (digest,) = segwit_sighashes(htlc_tx, [(input_idx, script, htlc_descriptor.htlc.amount_msat // 1000)])
        return sign_digest(self._htlc_base_key, digest)

    def sign_holder_anchor_input(self, anchor_tx: Transaction, input_idx: int, anchor_value: int = 330) -> bytes:
        """Mirrors ``EcdsaChannelSigner::sign_holder_anchor_input``: a signature with the funding key."""
        script = get_anchor_redeemscript(self.funding_pubkey)
        (digest,) = segwit_sighashes(anchor_tx, [(input_idx, script, anchor_value)])
        return sign_digest(self._funding_key, digest)

    def __repr__(self) -> str:
        return f"InMemorySigner(keys_id={self.channel_keys_id.hex()[:8]}…, funding_pubkey={self.funding_pubkey})"


class KeysManager:
    """Mirrors ``lightning::sign::KeysManager``: every key a node has, from one 32-byte seed.

    Derivation follows LDK: a BIP 32 master key from the seed; the node secret at ``m/0'``,
    the destination (sweep) key at ``m/1'``, the shutdown key at ``m/2'`` and channel keys
    under ``m/3'``. ``starting_time_*`` only make random bytes and channel key ids unique,
    so the same (seed, time) always gives the same node. Random bytes are SHA-256 of a
    seeded start and a counter (LDK uses ChaCha20 here).
    """

    def __init__(self, seed: bytes, starting_time_secs: int, starting_time_nanos: int) -> None:
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise ValueError("KeysManager needs a 32-byte seed (ldk-sample keeps one in .ldk/keys_seed)")
        if not (isinstance(starting_time_secs, int) and isinstance(starting_time_nanos, int)):
            raise TypeError("KeysManager's starting_time_secs and starting_time_nanos must be ints")
        self._seed = bytes(seed)
        self.starting_time_secs = starting_time_secs
        self.starting_time_nanos = starting_time_nanos
        (self._node_secret, self._destination_key, self._shutdown_key, self._node_id, self._destination_script,
         self._shutdown_script) = _seed_keys(self._seed)
        self._rand_start = _sha256(
            starting_time_secs.to_bytes(8, "big"), (starting_time_nanos & 0xFFFFFFFF).to_bytes(4, "big"),
            self._seed, b"LDK PRNG Seed",
        )
        self._lock = threading.Lock()
        self._rand_index = 0
        self._channel_child_index = 0
        self._signers: dict[tuple[int, bytes], InMemorySigner] = {}

    # --- NodeSigner / EntropySource ---------------------------------------------------------

    def get_node_id(self, recipient: Recipient = Recipient.Node) -> PublicKey:
        if recipient is not Recipient.Node:
            raise ValueError("KeysManager has no phantom node key (LDK's PhantomKeysManager has one)")
        return self._node_id

    def get_node_secret_key(self) -> bytes:
        return self._node_secret

    def get_inbound_payment_key(self) -> Any:
        """Mirrors ``NodeSigner::get_inbound_payment_key``: the keys the node's payment secrets are made with
        (an ``ExpandedKey``), from the material at ``m/5'``, as LDK's KeysManager derives it."""
        from .ln.inbound_payment import ExpandedKey

        return ExpandedKey.new(_inbound_payment_key_material(self._seed))

    def get_secure_random_bytes(self) -> bytes:
        """32 bytes, different on every call and the same sequence for the same (seed, time)."""
        with self._lock:
            index = self._rand_index
            self._rand_index += 1
        return _sha256(self._rand_start, index.to_bytes(8, "big"))

    # --- SignerProvider -----------------------------------------------------------------------

    def generate_channel_keys_id(self, inbound: bool, channel_value_satoshis: int, user_channel_id: int) -> bytes:
        """LDK's layout: child index, start time nanos and secs, then the user channel id."""
        with self._lock:
            child_idx = self._channel_child_index
            self._channel_child_index += 1
        return (
            child_idx.to_bytes(4, "big")
            + (self.starting_time_nanos & 0xFFFFFFFF).to_bytes(4, "big")
            + (self.starting_time_secs & (2**64 - 1)).to_bytes(8, "big")
            + (user_channel_id % 2**128).to_bytes(16, "big")
        )

    def derive_channel_keys(self, channel_value_satoshis: int, channel_keys_id: bytes) -> InMemorySigner:
        """LDK's derivation: a per-channel seed from the id, our seed and a hardened child of ``m/3'``."""
        if len(channel_keys_id) != 32:
            raise ValueError(f"channel_keys_id must be 32 bytes, got {len(channel_keys_id)}")
        key = (channel_value_satoshis, bytes(channel_keys_id))
        signer = self._signers.get(key)
        if signer is None:  # the same answer every time: derived once (monitors ask on every block)
            signer = self._signers[key] = self._derive_channel_keys(channel_value_satoshis, bytes(channel_keys_id))
        return signer

    def _derive_channel_keys(self, channel_value_satoshis: int, channel_keys_id: bytes) -> InMemorySigner:
        child = (int.from_bytes(channel_keys_id[:8], "big") & 0xFFFFFFFF) % (1 << 31)
        child_key = _channel_child_secret(self._seed, child)
        seed = _sha256(channel_keys_id, self._seed, child_key)
        commitment_seed = _sha256(seed, b"commitment seed")
        keys = [commitment_seed]
        for info in (b"funding key", b"revocation base key", b"payment key", b"delayed payment base key",
                     b"HTLC base key"):
            keys.append(_sha256(seed, keys[-1], info))
        if any(not 0 < int.from_bytes(k, "big") < SECP256K1_ORDER for k in keys[1:]):
            raise ValueError("derived a key outside the curve order (SHA-256 would have to be broken)")
        return InMemorySigner(*keys[1:], commitment_seed, channel_value_satoshis, bytes(channel_keys_id))

    derive_channel_signer = derive_channel_keys  # the SignerProvider trait's name for it

    def get_destination_script(self, channel_keys_id: bytes | None = None) -> ScriptBuf:
        """Where our force-close and HTLC outputs are swept to: P2WPKH of ``m/1'``."""
        return self._destination_script

    def get_shutdown_scriptpubkey(self) -> ScriptBuf:
        """Where cooperative closes pay us: P2WPKH of ``m/2'``."""
        return self._shutdown_script

    # --- OutputSpender ------------------------------------------------------------------------

    def spend_spendable_outputs(
        self, descriptors: Sequence[SpendableOutputDescriptor], outputs: Sequence[TxOut],
        change_destination_script: ScriptBuf, feerate_sat_per_1000_weight: int, locktime: Optional[int] = None,
    ) -> Transaction:
        """Mirrors ``KeysManager::spend_spendable_outputs``: one signed transaction spending every
        descriptor, paying ``outputs`` and the rest, less the fee, to ``change_destination_script``.

        The feerate is used as given, as LDK's is (no floor): one below bitcoind's minimum relay fee (253 sat/kW)
        gives a transaction that is never relayed."""
        from .chain.chaininterface import fee_for_weight, tx_weight

        descriptors, outputs = list(descriptors), list(outputs)  # (LDK takes slices: a generator is read once, here)
        inputs = self._spending_inputs(descriptors)
        value_in = sum(value for _, value in inputs)
        value_out = sum(o.value for o in outputs)
        feerate = feerate_sat_per_1000_weight
        if isinstance(feerate, bool) or not isinstance(feerate, int) or feerate < 0:
            raise TypeError(f"feerate_sat_per_1000_weight must be an int of 0 or more (a u32), got {feerate!r}")
        txins = [txin for txin, _ in inputs]
        change = TxOut(0, change_destination_script)
        with_change = self._placeholder_tx(txins, [*outputs, change], locktime, descriptors)
        fee = fee_for_weight(feerate, tx_weight(with_change))
        change_value = value_in - value_out - fee
        if change_value >= min_non_dust_value(change_destination_script):
            final_outputs = [*outputs, TxOut(change_value, change_destination_script)]
        else:
            without = self._placeholder_tx(txins, list(outputs), locktime, descriptors)
            fee = fee_for_weight(feerate, tx_weight(without))
            if not outputs or value_in < value_out + fee:
                raise ValueError(
                    f"the {len(txins)} output(s) being spent hold {value_in:,} sat, too little to pay "
                    f"{value_out:,} sat of outputs plus a {fee:,} sat fee at {feerate} sat/kW and leave a change "
                    f"output above dust; wait for a lower feerate, or spend them together with other outputs"
                )
            final_outputs = list(outputs)
        unsigned = Transaction.new(_SPEND_TX_VERSION, locktime or 0, txins, final_outputs)
        return self._sign_spend(unsigned, descriptors)

    def _spending_inputs(self, descriptors: Sequence[SpendableOutputDescriptor]) -> list[tuple[TxIn, int]]:
        if not descriptors:
            raise ValueError("spend_spendable_outputs needs at least one descriptor to spend")
        seen: set[OutPoint] = set()
        inputs = []
        for descriptor in descriptors:
            outpoint, output = descriptor_outpoint(descriptor), descriptor_output(descriptor)
            if outpoint in seen:
                raise ValueError(f"output {outpoint} is listed twice; each output can be spent only once")
            seen.add(outpoint)
            inputs.append((TxIn(outpoint, ScriptBuf(b""), self._sequence(descriptor), ()), output.value))
        return inputs

    @staticmethod
    def _sequence(descriptor: SpendableOutputDescriptor) -> int:
        match descriptor:
            case SpendableOutputDescriptor.DelayedPaymentOutput(descriptor=d):
                return d.to_self_delay  # the CSV delay must have passed
            case SpendableOutputDescriptor.StaticPaymentOutput(descriptor=d) if d.output.script_pubkey.is_p2wsh():
                return 1  # anchor channels add a 1-block CSV to to_remote
        return 0

    def _placeholder_tx(self, txins, outputs, locktime, descriptors) -> Transaction:
        """The transaction with maximum-size witnesses, to estimate its weight."""
        filled = [
            TxIn(t.previous_output, t.script_sig, t.sequence, _witness_template(d))
            for t, d in zip(txins, descriptors, strict=True)
        ]
        return Transaction.new(_SPEND_TX_VERSION, locktime or 0, filled, outputs)

    def _sign_spend(self, tx: Transaction, descriptors: Sequence[SpendableOutputDescriptor]) -> Transaction:
        signers: dict[bytes, InMemorySigner] = {}

        def signer(keys_id: bytes, value: int) -> InMemorySigner:
            if keys_id not in signers:
                signers[keys_id] = self.derive_channel_keys(value, keys_id)
            return signers[keys_id]

        witnesses = {}
        for i, descriptor in enumerate(descriptors):
            match descriptor:
                case SpendableOutputDescriptor.StaticOutput(output=output, channel_keys_id=kid):
                    witnesses[i] = self._sign_static_output(tx, i, output, kid)
                case SpendableOutputDescriptor.DelayedPaymentOutput(descriptor=d):
                    s = signer(d.channel_keys_id, d.channel_value_satoshis)
                    witnesses[i] = s.sign_dynamic_p2wsh_input(tx, i, d)
                case SpendableOutputDescriptor.StaticPaymentOutput(descriptor=d):
                    s = signer(d.channel_keys_id, d.channel_value_satoshis)
                    witnesses[i] = s.sign_counterparty_payment_input(tx, i, d)
        return with_witnesses(tx, witnesses)

    def _sign_static_output(
        self, tx: Transaction, index: int, output: TxOut, channel_keys_id: Optional[bytes]
    ) -> tuple[bytes, ...]:
        """LDK spends a StaticOutput only if it pays our destination or shutdown script.

        Simulation only: one that names a channel (``channel_keys_id``) but pays another script
        is taken on the simulator's word, with :meth:`InMemorySigner.sign_simulated_output`.
        """
        for secret in (self._destination_key, self._shutdown_key):
            pubkey = _pubkey(secret)
            if output.script_pubkey == ScriptBuf.new_p2wpkh(pubkey):
                (digest,) = segwit_sighashes(tx, [(index, p2wpkh_script_code(pubkey), output.value)])
                return (sign_digest(secret, digest), pubkey)
        if channel_keys_id is not None and len(channel_keys_id) == 32:
            return self.derive_channel_keys(0, channel_keys_id).sign_simulated_output(tx, index, output)
        raise ValueError(
            f"a StaticOutput pays script {output.script_pubkey.hex()}, which is neither this KeysManager's "
            "destination script nor its shutdown script, so it cannot sign for it; only the wallet owning "
            "that script can spend it"
        )


def descriptor_outpoint(descriptor: SpendableOutputDescriptor) -> OutPoint:
    """The outpoint a descriptor spends, whatever its variant."""
    if isinstance(descriptor, SpendableOutputDescriptor.StaticOutput):
        return descriptor.outpoint
    if isinstance(descriptor, SpendableOutputDescriptor):
        return descriptor.descriptor.outpoint
    raise TypeError(f"expected a SpendableOutputDescriptor, got {type(descriptor).__name__}")


def descriptor_output(descriptor: SpendableOutputDescriptor) -> TxOut:
    """The output (value and script) a descriptor describes."""
    if isinstance(descriptor, SpendableOutputDescriptor.StaticOutput):
        return descriptor.output
    return descriptor.descriptor.output


def _witness_template(descriptor: SpendableOutputDescriptor) -> tuple[bytes, ...]:
    """The largest witness spending this descriptor could need (LDK's ``max_witness_length``)."""
    match descriptor:
        case SpendableOutputDescriptor.DelayedPaymentOutput(descriptor=d):
            script = get_revokeable_redeemscript(d.revocation_pubkey, d.to_self_delay, bytes(d.revocation_pubkey))
            return (_MAX_SIG, b"", script)
        case SpendableOutputDescriptor.StaticPaymentOutput(descriptor=d) if d.output.script_pubkey.is_p2wsh():
            return (_MAX_SIG, b"\x00" * 36)
    return (_MAX_SIG, b"\x02" * 33)
