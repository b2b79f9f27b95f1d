"""The Bitcoin types LDK's API uses: networks, outpoints, scripts, transactions, addresses.

Mirrors the parts of the ``bitcoin`` crate (rust-bitcoin) that appear in LDK's events.
Transactions are real consensus-serialized transactions with real txids, and addresses
are real bech32 addresses for the chosen network; both come from the ``embit`` library,
imported only when first needed so that ``import ldkkit`` stays light.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from functools import cached_property
from typing import Any

from .ser import U32, U64, Record, register
from .types import HexBytes, Txid, found_valid, known_valid


@register
class Network(enum.Enum):
    """Mirrors ``bitcoin::Network``: which chain a node runs on."""

    Bitcoin = "main"
    Testnet = "test"
    Signet = "signet"
    Regtest = "regtest"

    def _embit(self):
        from embit.networks import NETWORKS

        return NETWORKS[self.value]


class OutPoint(Record):
    """A transaction output: ``txid`` and its output number.

    Stands for both ``bitcoin::OutPoint`` (fields ``txid``, ``vout``) and LDK's
    ``chain::transaction::OutPoint`` (fields ``txid``, ``index``): ``index`` reads ``vout``.
    """

    txid: Txid
    vout: U32

    @property
    def index(self) -> int:
        return self.vout

    def __str__(self) -> str:
        return f"{self.txid}:{self.vout}"

    def short(self) -> str:
        return f"{self.txid.short()}:{self.vout}"


class ScriptBuf(HexBytes):
    """Mirrors ``bitcoin::ScriptBuf``: a script, as raw bytes."""

    LENGTH = None

    @classmethod
    def new_p2wsh(cls, witness_script: bytes) -> ScriptBuf:
        """Pay to the SHA-256 of a witness script: how every channel is funded."""
        return cls(b"\x00\x20" + hashlib.sha256(bytes(witness_script)).digest())

    @classmethod
    def new_p2wpkh(cls, compressed_pubkey: bytes) -> ScriptBuf:
        """Pay to a public key's HASH160: an ordinary segwit wallet output."""
        sha = hashlib.sha256(bytes(compressed_pubkey)).digest()
        return cls(b"\x00\x14" + hashlib.new("ripemd160", sha).digest())

    def is_p2wsh(self) -> bool:
        return len(self._data) == 34 and self._data[:2] == b"\x00\x20"

    def is_p2wpkh(self) -> bool:
        return len(self._data) == 22 and self._data[:2] == b"\x00\x14"


class TxOut(Record):
    """Mirrors ``bitcoin::TxOut``: ``value`` satoshis locked by ``script_pubkey``."""

    value: U64
    script_pubkey: ScriptBuf


class TxIn(Record):
    """Mirrors ``bitcoin::TxIn``: spends ``previous_output``, with a script and witness."""

    previous_output: OutPoint
    script_sig: ScriptBuf
    sequence: U32
    witness: tuple[bytes, ...]


class Transaction(HexBytes):
    """Mirrors ``bitcoin::Transaction``, held in its consensus serialization.

    Build one with :meth:`new`; read its parts with ``input``, ``output`` and
    :meth:`compute_txid`. Bytes that are not a transaction are refused.
    """

    LENGTH = None

    def _validate(self, data: bytes) -> None:
        if known_valid(Transaction, data):
            return
        from embit.transaction import Transaction as _Tx

        try:
            parsed = _Tx.parse(data)
        except Exception as e:  # embit raises several kinds on malformed input
            raise ValueError(f"these {len(data)} bytes are not a valid Bitcoin transaction ({e})") from None
        if parsed.serialize() != data:
            raise ValueError("these bytes are not a canonically serialized Bitcoin transaction")
        found_valid(Transaction, data)

    @classmethod
    def new(cls, version: int, lock_time: int, input: list[TxIn], output: list[TxOut]) -> Transaction:
        from embit.script import Script, Witness
        from embit.transaction import Transaction as _Tx
        from embit.transaction import TransactionInput, TransactionOutput

        vin = [
            TransactionInput(
                bytes(i.previous_output.txid)[::-1],
                i.previous_output.vout,
                script_sig=Script(bytes(i.script_sig)),
                sequence=i.sequence,
                witness=Witness(list(i.witness)),
            )
            for i in input
        ]
        vout = [TransactionOutput(o.value, Script(bytes(o.script_pubkey))) for o in output]
        return cls._built(_Tx(version=version, vin=vin, vout=vout, locktime=lock_time))

    @classmethod
    def _built(cls, parsed: Any) -> Transaction:
        """A transaction just built here: its bytes need no checking, and its parsed form is kept."""
        tx = object.__new__(cls)
        object.__setattr__(tx, "_data", parsed.serialize())
        tx.__dict__["_parsed"] = parsed
        return tx

    @classmethod
    def _without_witness(cls, data: bytes, input: tuple[TxIn, ...], output: tuple[TxOut, ...]) -> Transaction:
        """A transaction with no witness, serialized here as ``data`` from these (immutable) parts, as the chain's
        coinbases are: no bytes to check, nothing to parse, and its txid is the hash of ``data`` itself."""
        tx = object.__new__(cls)
        object.__setattr__(tx, "_data", data)
        tx.__dict__.update(input=input, output=output,
                           _txid=Txid(hashlib.sha256(hashlib.sha256(data).digest()).digest()))
        return tx

    @cached_property
    def _parsed(self):
        from embit.transaction import Transaction as _Tx

        return _Tx.parse(self._data)

    @property
    def version(self) -> int:
        return self._parsed.version

    @property
    def lock_time(self) -> int:
        return self._parsed.locktime

    # A transaction never changes, so its parts and txid are worked out once (blocks and monitors ask often).
    @cached_property
    def input(self) -> tuple[TxIn, ...]:
        return tuple(
            TxIn(
                OutPoint(Txid(vin.txid[::-1]), vin.vout),
                ScriptBuf(vin.script_sig.data),
                vin.sequence,
                tuple(vin.witness.items),
            )
            for vin in self._parsed.vin
        )

    @cached_property
    def output(self) -> tuple[TxOut, ...]:
        return tuple(TxOut(out.value, ScriptBuf(out.script_pubkey.data)) for out in self._parsed.vout)

    def compute_txid(self) -> Txid:
        """The txid: double SHA-256 of the serialization without witnesses."""
        return self._txid

    @cached_property
    def _txid(self) -> Txid:
        return Txid(self._parsed.txid()[::-1])

    def serialize(self) -> bytes:
        return self._data

    def weight(self) -> int:
        """Mirrors rust-bitcoin's ``Transaction::weight``: four units a byte, one a witness byte."""
        from embit import compact

        witnesses = [i.witness for i in self.input]
        if not any(witnesses):
            return 4 * len(self._data)
        witness = 2 + sum(len(compact.to_bytes(len(w))) + sum(len(compact.to_bytes(len(item))) + len(item)
                                                               for item in w) for w in witnesses)
        return 4 * (len(self._data) - witness) + witness

    def vsize(self) -> int:
        """Mirrors rust-bitcoin's ``Transaction::vsize``: the weight over four, rounded up."""
        return -(-self.weight() // 4)

    def short(self) -> str:
        return f"tx {self.compute_txid().short()}"

    def __repr__(self) -> str:
        return f"Transaction(txid={self.compute_txid()}, {len(self.input)} in, {len(self.output)} out)"


class Address(Record):
    """Mirrors ``bitcoin::Address``: a script shown as a bech32 address for a network."""

    script_pubkey: ScriptBuf
    network: Network

    @classmethod
    def from_script(cls, script: ScriptBuf, network: Network) -> Address:
        if not (script.is_p2wsh() or script.is_p2wpkh()):
            raise ValueError(f"script {script.hex()} is not a segwit v0 output script, so it has no bech32 address")
        return cls(script, network)

    @classmethod
    def from_str(cls, text: str, network: Network) -> Address:
        hrp = network._embit()["bech32"]
        if not text.lower().startswith(hrp + "1"):
            raise ValueError(f"{text!r} is not a {network.name} address (those start with {hrp}1)")
        return cls.from_script(_script_of_address(text), network)

    def __str__(self) -> str:
        return _address_of_script(bytes(self.script_pubkey), self.network)


# An address and its script are worked out once each: ldk-sample's funding turns the script into an address for
# bitcoind, which turns it back, at every channel opened.
@functools.lru_cache(maxsize=4096)
def _address_of_script(script: bytes, network: Network) -> str:
    from embit.script import Script

    return Script(script).address(network._embit())


@functools.lru_cache(maxsize=4096)
def _script_of_address(text: str) -> ScriptBuf:
    from embit.script import address_to_scriptpubkey

    try:
        return ScriptBuf(address_to_scriptpubkey(text).data)
    except Exception:
        raise ValueError(f"{text!r} is not a valid bech32 address") from None

    def __repr__(self) -> str:
        return f"Address({self})"
