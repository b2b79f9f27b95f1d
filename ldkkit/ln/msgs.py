"""Lightning wire messages, and the pieces of them that reach events.

Mirrors ``lightning::ln::msgs``.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from ..bitcoin import ScriptBuf
from ..ser import U16, U32, U64, Record, RustEnum
from ..types import (
    ChannelId,
    ChannelTypeFeatures,
    PaymentHash,
    PaymentPreimage,
    PaymentSecret,
    PublicKey,
    Txid,
)


class ChannelParameters(Record):
    """Mirrors ``lightning::ln::msgs::ChannelParameters``.

    The limits a peer proposes in ``open_channel``; carried by ``OpenChannelRequest`` so a
    handler can judge them before accepting.
    """

    dust_limit_satoshis: U64
    max_htlc_value_in_flight_msat: U64
    htlc_minimum_msat: U64
    commitment_feerate_sat_per_1000_weight: U32
    to_self_delay: U16
    max_accepted_htlcs: U16


class SocketAddress(RustEnum):
    """Mirrors ``lightning::ln::msgs::SocketAddress`` (the IPv4 and hostname forms)."""

    class TcpIpV4:
        addr: bytes
        port: U16

        def __str__(self) -> str:
            return f"{ipaddress.IPv4Address(self.addr)}:{self.port}"

    class Hostname:
        hostname: str
        port: U16

        def __str__(self) -> str:
            return f"{self.hostname}:{self.port}"


class OnionMessage(Record):
    """Mirrors ``lightning::ln::msgs::OnionMessage``; the packet stays opaque bytes."""

    blinding_point: PublicKey
    onion_routing_packet: bytes


# --- Wire messages between nodes ------------------------------------------------------------
#
# BOLT 2's messages, carrying what the simulation needs. The commitment_signed and
# revoke_and_ack dance is folded into each update: an update counts as irrevocably
# committed when it arrives. Onions are not encrypted: each hop reads its own payload.


class OpenChannel(Record):
    """BOLT 2 ``open_channel``: the opener proposes a channel."""

    temporary_channel_id: ChannelId
    funding_satoshis: U64
    push_msat: U64
    dust_limit_satoshis: U64
    max_htlc_value_in_flight_msat: U64
    channel_reserve_satoshis: U64
    htlc_minimum_msat: U64
    feerate_per_kw: U32
    to_self_delay: U16
    max_accepted_htlcs: U16
    funding_pubkey: PublicKey
    channel_type: ChannelTypeFeatures
    announce_channel: bool


class AcceptChannel(Record):
    """BOLT 2 ``accept_channel``: the acceptor's parameters."""

    temporary_channel_id: ChannelId
    minimum_depth: U32
    max_htlc_value_in_flight_msat: U64
    channel_reserve_satoshis: U64
    to_self_delay: U16
    funding_pubkey: PublicKey


class FundingCreated(Record):
    """BOLT 2 ``funding_created``: the opener says which output funds the channel."""

    temporary_channel_id: ChannelId
    funding_txid: Txid
    funding_output_index: U16


class FundingSigned(Record):
    """BOLT 2 ``funding_signed``: the acceptor has signed; the opener may broadcast."""

    channel_id: ChannelId


class ChannelReady(Record):
    """BOLT 2 ``channel_ready``: the sender sees the funding deep enough. ``short_channel_id`` is its TLV of that name:
    the alias the sender gives the channel (its ``outbound_scid_alias``), which the receiver may route by."""

    channel_id: ChannelId
    short_channel_id: Optional[U64]


class HopPayload(Record):
    """One hop's part of an onion: forward this much over this channel, with this expiry."""

    short_channel_id: U64
    amt_to_forward: U64
    outgoing_cltv_value: U32


class FinalPayload(Record):
    """The recipient's part of an onion."""

    amt_to_forward: U64
    outgoing_cltv_value: U32
    payment_secret: Optional[PaymentSecret]
    total_msat: U64
    payment_metadata: Optional[bytes]
    keysend_preimage: Optional[PaymentPreimage]
    custom_tlvs: tuple[tuple[U64, bytes], ...] = ()  # the sender's own records (RecipientOnionFields)


class Onion(Record):
    """An unencrypted onion: the payloads of the hops still ahead, then the final one."""

    hops: tuple[HopPayload, ...]
    final: FinalPayload


class UpdateAddHTLC(Record):
    """BOLT 2 ``update_add_htlc``."""

    channel_id: ChannelId
    htlc_id: U64
    amount_msat: U64
    payment_hash: PaymentHash
    cltv_expiry: U32
    onion: Onion
    #: LDK's ``skimmed_fee_msat`` TLV: what the sender held back of what the onion asked it to forward (an
    #: intercepted HTLC forwarded for less); the recipient accepts the shortfall only with
    #: ``ChannelConfig.accept_underpaying_htlcs``.
    skimmed_fee_msat: Optional[U64] = None


class UpdateFulfillHTLC(Record):
    """BOLT 2 ``update_fulfill_htlc``: the preimage travels back."""

    channel_id: ChannelId
    htlc_id: U64
    payment_preimage: PaymentPreimage


class FailureOnion(Record):
    """What a failed HTLC reports back to the sender (BOLT 4, unencrypted).

    ``origin`` is the node that failed it; ``short_channel_id`` the channel it blames, if any.
    """

    origin: PublicKey
    failure_code: U16
    short_channel_id: Optional[U64]
    network_update_permanent: Optional[bool]


class UpdateFailHTLC(Record):
    """BOLT 2 ``update_fail_htlc``."""

    channel_id: ChannelId
    htlc_id: U64
    reason: FailureOnion


class Shutdown(Record):
    """BOLT 2 ``shutdown``: start a cooperative close."""

    channel_id: ChannelId
    scriptpubkey: ScriptBuf


class ClosingSigned(Record):
    """BOLT 2 ``closing_signed``, folded to one round: the fee both sides agree on."""

    channel_id: ChannelId
    fee_satoshis: U64


class ErrorMessage(Record):
    """BOLT 1 ``error``: the sender fails the channel."""

    channel_id: ChannelId
    data: str


class ChannelAnnouncement(Record):
    """BOLT 7 ``channel_announcement`` (unsigned): a public channel exists."""

    short_channel_id: U64
    node_id_1: PublicKey
    node_id_2: PublicKey
    capacity_satoshis: U64


class NodeAnnouncement(Record):
    """BOLT 7 ``node_announcement`` (unsigned): what a node with a public channel says of itself. ``rgb`` is 3 bytes,
    ``alias`` 32 (UTF-8, padded with zero bytes); ``timestamp`` orders a node's announcements."""

    node_id: PublicKey
    timestamp: U32
    rgb: bytes
    alias: bytes


class ChannelUpdate(Record):
    """BOLT 7 ``channel_update`` (unsigned): one side's forwarding policy, or that it is gone."""

    short_channel_id: U64
    node_id: PublicKey
    timestamp: U32
    enabled: bool
    cltv_expiry_delta: U16
    htlc_minimum_msat: U64
    htlc_maximum_msat: U64
    fee_base_msat: U32
    fee_proportional_millionths: U32
