"""Outputs our keys can spend.

Mirrors ``lightning::sign``. For now it holds ``SpendableOutputDescriptor``, which
``Event.SpendableOutputs`` carries and the ``OutputSweeper`` spends.
"""

from __future__ import annotations

from typing import Optional

from .bitcoin import OutPoint, TxOut
from .ser import U16, U64, Record, RustEnum
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
