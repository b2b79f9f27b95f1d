"""Pieces of Lightning wire messages that reach events.

Mirrors ``lightning::ln::msgs``.
"""

from __future__ import annotations

import ipaddress

from ..ser import U16, U32, U64, Record, RustEnum
from ..types import PublicKey


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
