"""Hypothesis strategies for every ldkkit record, built from the records' own type hints.

Because they are derived from the field annotations, a new event or field is covered by
the round-trip tests without anyone writing a strategy for it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from datetime import timedelta

from hypothesis import strategies as st

from ldkkit.bitcoin import OutPoint, ScriptBuf, Transaction, TxIn, TxOut
from ldkkit.errors import APIError
from ldkkit.ser import Record, RustEnum, _UInt
from ldkkit.types import HexBytes, PublicKey, Txid

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

public_keys = st.integers(1, SECP256K1_ORDER - 1).map(lambda n: PublicKey.from_secret_key(n.to_bytes(32, "big")))
scripts = st.binary(max_size=40).map(ScriptBuf)
tx_outs = st.builds(TxOut, st.integers(0, 21_000_000 * 10**8), scripts)
tx_ins = st.builds(
    TxIn,
    st.builds(OutPoint, st.binary(min_size=32, max_size=32).map(Txid), st.integers(0, 2**32 - 1)),
    st.just(ScriptBuf(b"")),
    st.integers(0, 2**32 - 1),
    st.lists(st.binary(min_size=1, max_size=72), min_size=1, max_size=2).map(tuple),
)
transactions = st.builds(
    Transaction.new, st.integers(1, 2), st.integers(0, 2**32 - 1),
    st.lists(tx_ins, min_size=1, max_size=2), st.lists(tx_outs, min_size=1, max_size=2),
)
api_errors = st.one_of(
    st.builds(APIError.APIMisuseError, st.text(max_size=30)),
    st.builds(APIError.FeeRateTooHigh, st.text(max_size=30), st.integers(0, 2**32 - 1)),
    st.builds(APIError.InvalidRoute, st.text(max_size=30)),
    st.builds(APIError.ChannelUnavailable, st.text(max_size=30)),
    st.builds(APIError.MonitorUpdateInProgress),
    st.builds(APIError.IncompatibleShutdownScript, scripts),
)


@functools.cache
def for_type(hint: typing.Any) -> st.SearchStrategy:
    """A strategy for any field type that ldkkit records use."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        width = next(a for a in typing.get_args(hint)[1:] if isinstance(a, _UInt))
        return st.integers(0, (1 << width.bits) - 1)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | for_type(inner)
    if origin is tuple and typing.get_args(hint)[-1] is not Ellipsis:  # a fixed tuple, (u64, bytes) say
        return st.tuples(*(for_type(a) for a in typing.get_args(hint)))
    if origin is tuple:
        return st.lists(for_type(typing.get_args(hint)[0]), max_size=3).map(tuple)
    if origin is dict:
        key, value = typing.get_args(hint)
        return st.dictionaries(for_type(key), for_type(value), max_size=2)
    simple = {
        int: st.integers(-(2**70), 2**70),
        bool: st.booleans(),
        str: st.text(max_size=20),
        bytes: st.binary(max_size=40),
        timedelta: st.integers(0, 10**12).map(lambda us: timedelta(microseconds=us)),
    }
    if hint in simple:
        return simple[hint]
    if hint is PublicKey:
        return public_keys
    if hint is Transaction:
        return transactions
    if isinstance(hint, type) and issubclass(hint, APIError):
        return api_errors
    if isinstance(hint, type) and issubclass(hint, HexBytes):
        n = hint.LENGTH
        return (st.binary(min_size=n, max_size=n) if n else st.binary(max_size=40)).map(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and issubclass(hint, RustEnum) and RustEnum in hint.__bases__:
        return st.one_of([for_type(v) for v in hint.VARIANTS.values()])
    if isinstance(hint, type) and issubclass(hint, Record):
        hints = typing.get_type_hints(hint, include_extras=True)
        return st.builds(hint, *[for_type(hints[f.name]) for f in dataclasses.fields(hint)])
    raise TypeError(f"no strategy for {hint!r}")
