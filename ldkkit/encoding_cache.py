"""Keeping a value's encodings from one write to the next: not LDK's, the kit's own shortcut.

LDK writes a ChannelManager whole whenever it asks to be persisted, and every block asks. Re-encoding a
channel whose fields have not changed would write the same bytes again, so :class:`EncodingCache` keeps each
channel's bytes while every field is a value that cannot change in place (:func:`immutable` types, compared
by type and ``==``). What :mod:`.ser` writes is the same either way (a test compares every persisted manager
with a fresh encoding).
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import threading
import types
import typing
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, Optional, TypeVar

from .ser import _WRITERS, RustEnum, _field_values, encode, encode_item

_T = TypeVar("_T")


class Encoded:
    """Bytes that :func:`.ser.encode` writes as they stand: a value's encoding kept from an earlier write."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _write_encoded(out: bytearray, v: Encoded) -> None:
    out += v.data


_WRITERS[Encoded] = _write_encoded


class EncodingCache:
    """The encodings of mutable records (a manager's channels), kept from one write to the next.

    A record is encoded again only if one of its fields is no longer the same value, compared by type and
    ``==``. That comparison is only sound for values that cannot change in place, so a record is kept only
    while every field holds an immutable value (a number, text, bytes, an enum, an id, a frozen record of
    such) or an empty dict: a channel with HTLCs in flight is encoded at every write, a quiet one once.
    The manager is persisted after every block, and most blocks change nothing but its height.
    """

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Any, tuple[Any, ...], tuple[type, ...], Encoded]] = {}
        #: What :meth:`encoded_dict` last wrote of a quiet dict: its items but the last, and their bytes.
        self._quiet: tuple[tuple[tuple[str, Any], ...], bytes] | None = None

    def encoded(self, records: Iterable[Any]) -> tuple[Encoded, ...]:
        """Each record's encoding (as :func:`encode_item`), kept ones reused; only these records are kept on."""
        kept, self._kept = self._kept, {}
        out = []
        for record in records:
            fields = _field_values(type(record))(record)
            kinds = tuple(map(type, fields))
            entry = kept.get(id(record))
            if entry is not None and entry[0] is record and entry[2] == kinds and entry[1] == fields:
                item = entry[3]  # (the snapshot on the left: its empty dicts compare with the fields' contents)
            else:
                item = Encoded(encode_item(record))
                dicts = _empty_dicts_at(kinds, fields)
                if dicts is None:
                    entry = None
                elif dicts:  # (each of its dicts, empty now, kept as a dict of its own: the record's may fill up)
                    snapshot = list(fields)
                    for i in dicts:
                        snapshot[i] = {} if kinds[i] is dict else ()
                    entry = (record, tuple(snapshot), kinds, item)
                else:
                    entry = (record, fields, kinds, item)
            if entry is not None:
                self._kept[id(record)] = entry
            out.append(item)
        return tuple(out)

    def encoded_dict(self, head: dict[str, Any], key: str, value: Any) -> bytes:
        """``encode({**head, key: value})``. A quiet dict, each of ``head``'s values a tuple of this cache's kept
        encodings (or empty), as a manager is between blocks: when ``head`` holds the same encodings (the same
        objects) under the same keys as at the last call, the bytes written then up to ``value`` are reused, and
        only ``value`` (the manager's height) is written anew."""
        items = tuple(head.items())
        values = head.values()
        if set(map(type, values)) != {tuple} or not set(map(type, itertools.chain.from_iterable(values))) <= {Encoded}:
            return encode({**head, key: value})
        last = encode_item(value)
        if self._quiet is not None and self._quiet[0] == items:  # (Encoded compares by identity)
            return self._quiet[1] + last
        data = encode({**head, key: value})
        self._quiet = (items, data[:len(data) - len(last)])
        return data


_IMMUTABLE: dict[type, bool] = {t: True for t in (int, bool, str, bytes, type(None), timedelta)}
_IMMUTABLE_LOCK = threading.RLock()  # (re-entrant: a record's fields are looked at from within its own look)
#: For each tuple of field types met: None if one can change in place, else where the dicts are (kept while empty).
_DICTS_AT: dict[tuple[type, ...], tuple[int, ...] | None] = {}
_UNKNOWN: Any = object()


def _empty_dicts_at(kinds: tuple[type, ...], fields: tuple[Any, ...]) -> tuple[int, ...] | None:
    """Where a record with these fields' types and values has its dicts (and tuples), if it may be kept: each field
    immutable, or an empty dict or tuple (a tuple cannot change, but what it holds may); None if not. (Asked of every
    record encoded again: the types' answer is kept, and only their emptiness is looked at, not every field.)"""
    dicts = _DICTS_AT.get(kinds, _UNKNOWN)
    if dicts is _UNKNOWN:
        ok = all(_immutable(k) or k is dict or k is tuple for k in kinds)
        dicts = _DICTS_AT[kinds] = tuple(i for i, k in enumerate(kinds) if k is dict or k is tuple) if ok else None
    if dicts is not None:
        for i in dicts:
            if fields[i]:
                return None
    return dicts


def _immutable(cls: type) -> bool:
    """Whether a value of type ``cls`` can never change: numbers, text, bytes, enums, types declared
    :func:`immutable`, and frozen records whose fields' types are immutable too. A record that holds its own type, at
    any depth, is not kept: whichever type of such a cycle is asked about first (the answer once depended on it, and
    so on the order a process met them in)."""
    known = _IMMUTABLE.get(cls)
    if known is None:
        with _IMMUTABLE_LOCK:
            known = _IMMUTABLE[cls] = _looked_at(cls, set())
    return known


def _looked_at(cls: type, looking: set[type]) -> bool:
    known = _IMMUTABLE.get(cls)
    if known is not None:
        return known
    if cls in looking:
        return False
    looking.add(cls)
    try:
        if issubclass(cls, enum.Enum):
            return True
        if RustEnum in cls.__bases__:  # (an LDK enum: a value is one of its variants)
            return all(_looked_at(variant, looking) for variant in cls.VARIANTS.values())
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls, include_extras=True)
            return cls.__dataclass_params__.frozen and all(  # type: ignore[attr-defined]
                _immutable_hint(hints[f.name], looking) for f in dataclasses.fields(cls))
        # (a subclass of bytes, or of a type declared so: ids, scripts and transactions refuse to be set)
        return any(_IMMUTABLE.get(base) for base in cls.__mro__[1:])
    finally:
        looking.discard(cls)


def immutable(cls: type[_T]) -> type[_T]:
    """Declare that a value of ``cls``, or of a subclass, never changes once made (see :class:`EncodingCache`)."""
    _IMMUTABLE[cls] = True
    return cls


def _immutable_hint(hint: Any, looking: Optional[set[type]] = None) -> bool:
    looking = set() if looking is None else looking
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _immutable_hint(typing.get_args(hint)[0], looking)
    if origin in (typing.Union, types.UnionType, tuple):
        return all(_immutable_hint(a, looking) for a in typing.get_args(hint) if a is not Ellipsis)
    return origin is None and isinstance(hint, type) and _looked_at(hint, looking)
