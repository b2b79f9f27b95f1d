"""Corrupt bytes never crash a reader: 100,000 mutated encodings, and only DecodeError comes back."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldkkit.events import Event
from ldkkit.ser import DecodeError
from strategies import for_type

MUTANTS = 100_000


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One corruption: flip, replace, insert, delete or truncate, as a damaged file would be."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if len(buf) <= 3:
            break
        where = rng.randrange(3, len(buf))
        match rng.randrange(5):
            case 0:
                buf[where] ^= 1 << rng.randrange(8)
            case 1:
                buf[where] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            case 2:
                buf[where:where] = bytes([rng.randrange(256)] * rng.randint(1, 9))
            case 3:
                del buf[where:where + rng.randint(1, 4)]
            case 4:
                del buf[where:]
    return bytes(buf)


def _seeds() -> list[bytes]:
    """Encodings of every event variant, drawn once from the records' own strategies."""
    found: list[bytes] = []

    @settings(max_examples=200, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        variant = data.draw(st.sampled_from(sorted(Event.VARIANTS.values(), key=lambda c: c.__name__)))
        found.append(data.draw(for_type(variant)).encode())

    draw()
    return found


def test_mutated_event_encodings_raise_only_decode_error():
    rng = random.Random(20261204)
    seeds = _seeds()
    kinds: dict[str, int] = {}
    for _ in range(MUTANTS):
        data = _mutate(rng, rng.choice(seeds))
        try:
            Event.decode(data)
        except DecodeError as e:
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
    assert set(kinds) <= {"ShortRead", "InvalidValue", "UnknownVersion"}
    assert kinds.get("ShortRead") and kinds.get("InvalidValue")  # the corruptions really reach the reader
