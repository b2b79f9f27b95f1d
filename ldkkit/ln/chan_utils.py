"""The scripts of a channel's transactions, as BOLT 3 writes them.

Mirrors what the kit needs of ``lightning::ln::chan_utils``: the ``to_local``, ``to_remote``, anchor and HTLC output
scripts a monitor looks for on chain (the HTLC script simplified: a preimage claims it, or it times out).
"""

from __future__ import annotations

import functools

from ..bitcoin import ScriptBuf
from ..types import PaymentHash, PublicKey


def _p2wsh(*parts: bytes) -> ScriptBuf:
    return ScriptBuf.new_p2wsh(b"".join(parts))


def _push(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _push_int(n: int) -> bytes:
    return _push(n.to_bytes((n.bit_length() + 8) // 8, "little"))


@functools.lru_cache(maxsize=1024)  # (a closed channel's monitor looks for its outputs at every block)
def to_local_script(delayed_key: PublicKey, revocation_key: PublicKey, delay: int) -> ScriptBuf:
    """BOLT 3 to_local: the revocation key now, or the delayed key after ``delay`` blocks."""
    return _p2wsh(b"\x63", _push(bytes(revocation_key)), b"\x67", _push_int(delay), b"\xb2\x75",
                  _push(bytes(delayed_key)), b"\x68\xac")


@functools.lru_cache(maxsize=1024)
def to_remote_script(key: PublicKey, anchors: bool) -> ScriptBuf:
    """BOLT 3 to_remote: the counterparty's key (after one block, on anchor channels)."""
    if anchors:
        return _p2wsh(_push(bytes(key)), b"\xad\x51\xb2")
    return ScriptBuf.new_p2wpkh(bytes(key))


@functools.lru_cache(maxsize=1024)
def anchor_script(funding_key: PublicKey) -> ScriptBuf:
    """BOLT 3 anchor output, spendable by its owner at once or by anyone after 16 blocks."""
    return _p2wsh(_push(bytes(funding_key)), b"\xac\x73\x64\x60\xb2\x68")


def htlc_redeemscript(payment_hash: PaymentHash, cltv_expiry: int) -> bytes:
    """An HTLC output's script, simplified: the preimage claims it, or it times out at ``cltv_expiry``."""
    return _push_int(cltv_expiry) + b"\xb1\x75\xa8" + _push(bytes(payment_hash)) + b"\x87"


def htlc_script(payment_hash: PaymentHash, cltv_expiry: int) -> ScriptBuf:
    return ScriptBuf.new_p2wsh(htlc_redeemscript(payment_hash, cltv_expiry))


def make_funding_redeemscript(a: PublicKey, b: PublicKey) -> bytes:
    """Mirrors ``chan_utils::make_funding_redeemscript``: the 2-of-2 multisig of both funding keys, sorted as BOLT 3
    says (the funding output is its P2WSH)."""
    return b"\x52" + b"".join(_push(k) for k in sorted([bytes(a), bytes(b)])) + b"\x52\xae"
