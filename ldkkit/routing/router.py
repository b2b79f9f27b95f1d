"""Routes: the hops a payment takes.

Mirrors ``lightning::routing::router``. ``Path`` is what payment and probe events carry,
and what the scorer learns from.
"""

from __future__ import annotations

from typing import Optional

from ..ser import U32, U64, Record
from ..types import PublicKey


class RouteHop(Record):
    """Mirrors ``lightning::routing::router::RouteHop``: one hop of a path.

    ``fee_msat`` is the fee this hop's node charges, except on the last hop, where it is
    the amount the recipient receives. ``node_features`` and ``channel_features`` are the
    BOLT 9 feature bytes.
    """

    pubkey: PublicKey
    node_features: bytes
    short_channel_id: U64
    channel_features: bytes
    fee_msat: U64
    cltv_expiry_delta: U32
    maybe_announced_channel: bool


class BlindedTail(Record):
    """Mirrors ``lightning::routing::router::BlindedTail``: the blinded end of a path.

    Simplified: the blinded hops are opaque encrypted payloads.
    """

    hops: tuple[bytes, ...]
    blinding_point: PublicKey
    excess_final_cltv_expiry_delta: U32
    final_value_msat: U64


class Path(Record):
    """Mirrors ``lightning::routing::router::Path``: the hops of one part of a payment."""

    hops: tuple[RouteHop, ...]
    blinded_tail: Optional[BlindedTail]

    def fee_msat(self) -> int:
        """Total fees paid along this path."""
        if self.blinded_tail is not None:
            return sum(h.fee_msat for h in self.hops)
        return sum(h.fee_msat for h in self.hops[:-1])

    def final_value_msat(self) -> int:
        """The amount delivered to the recipient."""
        if self.blinded_tail is not None:
            return self.blinded_tail.final_value_msat
        return self.hops[-1].fee_msat if self.hops else 0

    def final_cltv_expiry_delta(self) -> int | None:
        return None if self.blinded_tail is not None or not self.hops else self.hops[-1].cltv_expiry_delta

    def __str__(self) -> str:
        route = " → ".join(f"{h.pubkey.short()} via {h.short_channel_id}" for h in self.hops)
        return f"{route} ({self.final_value_msat():,} msat, fee {self.fee_msat():,} msat)"

    def short(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Path({self})"
