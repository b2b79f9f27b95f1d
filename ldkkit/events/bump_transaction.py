"""Fee-bumping anchor-channel transactions with our own coins.

Mirrors ``lightning::events::bump_transaction``. ``Event.BumpTransaction`` carries a
``BumpTransactionEvent``; a handler passes it to ``BumpTxEventHandler.handle_event``.
Key derivation details (``ChannelDerivationParameters``) are simplified to what the
simulator needs.
"""

from __future__ import annotations

from typing import Optional

from ..bitcoin import OutPoint, Transaction
from ..ser import U32, U64, Record, RustEnum
from ..types import ChannelId, ClaimId, PaymentHash, PaymentPreimage, PublicKey, Txid


class ChannelDerivationParameters(Record):
    """Mirrors ``lightning::sign::ChannelDerivationParameters`` (without the tx parameters)."""

    value_satoshis: U64
    keys_id: bytes


class AnchorDescriptor(Record):
    """Mirrors ``AnchorDescriptor``: the anchor output a child transaction spends."""

    channel_derivation_parameters: ChannelDerivationParameters
    outpoint: OutPoint


class HTLCOutputInCommitment(Record):
    """Mirrors ``lightning::ln::chan_utils::HTLCOutputInCommitment``."""

    offered: bool
    amount_msat: U64
    cltv_expiry: U32
    payment_hash: PaymentHash
    transaction_output_index: Optional[U32]


class HTLCDescriptor(Record):
    """Mirrors ``HTLCDescriptor``: an HTLC output to claim (signature omitted)."""

    channel_derivation_parameters: ChannelDerivationParameters
    commitment_txid: Txid
    per_commitment_number: U64
    per_commitment_point: PublicKey
    feerate_per_kw: U32
    htlc: HTLCOutputInCommitment
    preimage: Optional[PaymentPreimage]


class BumpTransactionEvent(RustEnum):
    """Mirrors ``lightning::events::bump_transaction::BumpTransactionEvent``."""

    class ChannelClose:
        """Our commitment transaction needs a child (CPFP) to reach the target feerate."""

        channel_id: ChannelId
        counterparty_node_id: PublicKey
        claim_id: ClaimId
        package_target_feerate_sat_per_1000_weight: U32
        commitment_tx: Transaction
        commitment_tx_fee_satoshis: U64
        anchor_descriptor: AnchorDescriptor
        pending_htlcs: tuple[HTLCOutputInCommitment, ...]

    class HTLCResolution:
        """HTLC outputs need claiming with our own coins paying the fee."""

        channel_id: ChannelId
        counterparty_node_id: PublicKey
        claim_id: ClaimId
        target_feerate_sat_per_1000_weight: U32
        htlc_descriptors: tuple[HTLCDescriptor, ...]
        tx_lock_time: U32
