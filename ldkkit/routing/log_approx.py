"""Mirrors ``lightning::routing::log_approx``: ``log10`` from a lookup table, as LDK's scorer takes it.

The scorer prices a channel by ``-log10`` of its success probability. LDK does not compute that
logarithm: it looks it up by the number's highest set bit and the six bits after it, so its
penalties are a table's values, and ours are the same.
"""

from __future__ import annotations

import math

_HIGHEST_BIT = 63
_LOWER_BITS = 6
_LOWER_BITS_BOUND = 1 << _LOWER_BITS


def _rounded(value: float) -> int:
    """Rust's ``f64::round``: halves away from zero (Python's ``round`` takes them to even)."""
    return math.floor(value + 0.5)


#: ``LOG10_TIMES_2048``: row ``msb`` for numbers whose highest set bit is ``msb``, built as LDK's own test
#: (``prints_negative_log10_times_2048_lookup_table``) prints it.
LOG10_TIMES_2048: tuple[tuple[int, ...], ...] = tuple(
    tuple(_rounded(math.log10(((_LOWER_BITS_BOUND + i) << (_HIGHEST_BIT - _LOWER_BITS)) >> (_HIGHEST_BIT - msb))
                   * 2048.0) for i in range(_LOWER_BITS_BOUND))
    for msb in range(_HIGHEST_BIT + 1)
)


def log10_times_2048(x: int) -> int:
    """LDK's ``log10_times_2048``: ``log10(x) × 2048`` for ``0 < x < 2^64``, from the table."""
    msb = x.bit_length() - 1
    return LOG10_TIMES_2048[msb][(x >> max(msb - _LOWER_BITS, 0)) & (_LOWER_BITS_BOUND - 1)]


def negative_log10_times_2048(numerator: int, denominator: int) -> int:
    """LDK's ``negative_log10_times_2048``: ``-log10(numerator / denominator) × 2048``, for a probability
    (``numerator <= denominator``; a numerator past it, which LDK never passes, gives 0)."""
    return max(0, log10_times_2048(denominator) - log10_times_2048(numerator))
