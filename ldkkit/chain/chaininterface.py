"""How LDK asks for feerates and hands transactions to the Bitcoin network.

Mirrors ``lightning::chain::chaininterface``: the ``ConfirmationTarget`` enum, the
``FeeEstimator`` and ``BroadcasterInterface`` traits, ``FEERATE_FLOOR_SATS_PER_KW`` and
the fee arithmetic LDK uses (feerates are in satoshis per 1000 weight units, "sat/kW").
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from ..bitcoin import Transaction
from ..ser import register

#: The lowest feerate LDK uses: 253 sat/kW, just above bitcoind's 1 sat/vbyte relay floor
#: (250 sat/kW would round down to slightly below it).
FEERATE_FLOOR_SATS_PER_KW = 253


@register
class ConfirmationTarget(enum.Enum):
    """Mirrors ``lightning::chain::chaininterface::ConfirmationTarget`` (LDK 0.1): what a feerate is for."""

    MaximumFeeEstimate = "MaximumFeeEstimate"
    UrgentOnChainSweep = "UrgentOnChainSweep"
    MinAllowedAnchorChannelRemoteFee = "MinAllowedAnchorChannelRemoteFee"
    MinAllowedNonAnchorChannelRemoteFee = "MinAllowedNonAnchorChannelRemoteFee"
    AnchorChannelFee = "AnchorChannelFee"
    NonAnchorChannelFee = "NonAnchorChannelFee"
    ChannelCloseMinimum = "ChannelCloseMinimum"
    OutputSpendingFee = "OutputSpendingFee"


class FeeEstimator(Protocol):
    """Mirrors the ``FeeEstimator`` trait. Answers must be at least ``FEERATE_FLOOR_SATS_PER_KW``."""

    def get_est_sat_per_1000_weight(self, confirmation_target: ConfirmationTarget) -> int: ...


class BroadcasterInterface(Protocol):
    """Mirrors the ``BroadcasterInterface`` trait: send transactions (parents first) to the network."""

    def broadcast_transactions(self, txs: Sequence[Transaction]) -> None: ...


def fee_for_weight(feerate_sat_per_1000_weight: int, weight: int) -> int:
    """Mirrors LDK's ``fee_for_weight``: the fee in sats for ``weight`` WU, rounded up."""
    return (feerate_sat_per_1000_weight * weight + 999) // 1000


def compute_feerate_sat_per_1000_weight(fee_sat: int, weight: int) -> int:
    """Mirrors LDK's ``compute_feerate_sat_per_1000_weight``: the feerate a fee pays, rounded down."""
    return fee_sat * 1000 // weight


def tx_weight(tx: Transaction) -> int:
    """BIP 141 weight: 4 WU per byte of the stripped transaction, 1 WU per witness byte."""
    from embit.transaction import Transaction as _Tx

    parsed = _Tx.parse(tx.serialize())
    full = len(tx.serialize())
    if not parsed.is_segwit:
        return 4 * full
    witness = 2 + sum(len(vin.witness.serialize()) for vin in parsed.vin)  # marker, flag, stacks
    return 4 * (full - witness) + witness
