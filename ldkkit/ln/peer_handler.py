"""Connections to other nodes, and the messages that flow over them.

Mirrors ``lightning::ln::peer_handler::PeerManager``. In the simulation a connection is
an entry in the world's message bus instead of a TCP socket with BOLT 8 encryption; the
PeerManager still drains the ChannelManager's outgoing messages in ``process_events`` and
hands incoming ones to it, as LDK's does.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from ..ln.msgs import NodeAnnouncement, SocketAddress
from ..ser import Record
from ..types import PublicKey


class PeerDetails(Record):
    """Mirrors ``lightning::ln::peer_handler::PeerDetails``."""

    counterparty_node_id: PublicKey
    socket_address: Optional[SocketAddress]
    is_inbound_connection: bool


class PeerManager:
    """Mirrors ``lightning::ln::peer_handler::PeerManager``."""

    def __init__(self, channel_manager: Any, logger: Any, bus: Any) -> None:
        self.channel_manager = channel_manager
        self.logger = logger
        self._bus = bus
        self._peers: dict[PublicKey, PeerDetails] = {}
        self._lock = threading.RLock()
        self.timer_ticks = 0
        self._last_node_announcement_serial: Optional[int] = None  # (LDK's: from the time, then one more each)

    @property
    def node_id(self) -> PublicKey:
        return self.channel_manager.get_our_node_id()

    def connect_peer(self, their_node_id: PublicKey) -> None:
        """Open a connection, as ``lightning_net_tokio::connect_outbound`` does for ldk-sample."""
        self._bus.bus_connect(self.node_id, their_node_id)

    def peer_connected(self, their_node_id: PublicKey, inbound: bool) -> None:
        """Called by the message bus once a connection is up on both sides."""
        with self._lock:
            address = SocketAddress.TcpIpV4(bytes([127, 0, 0, 1]), 9735)
            self._peers[their_node_id] = PeerDetails(their_node_id, address, inbound)
        self.channel_manager.peer_connected(their_node_id)

    def socket_disconnected(self, their_node_id: PublicKey) -> None:
        with self._lock:
            self._peers.pop(their_node_id, None)
        self.channel_manager.peer_disconnected(their_node_id)

    def disconnect_by_node_id(self, node_id: PublicKey) -> None:
        """Mirrors ``PeerManager::disconnect_by_node_id``."""
        self._bus.bus_disconnect(self.node_id, node_id)

    def disconnect_all_peers(self) -> None:
        """Mirrors ``PeerManager::disconnect_all_peers``."""
        for peer in list(self._peers):
            self.disconnect_by_node_id(peer)

    def list_peers(self) -> list[PeerDetails]:
        """Mirrors ``PeerManager::list_peers``."""
        with self._lock:
            return list(self._peers.values())

    def peer_by_node_id(self, their_node_id: PublicKey) -> Optional[PeerDetails]:
        with self._lock:
            return self._peers.get(their_node_id)

    def broadcast_node_announcement(self, rgb: bytes, alias: bytes, addresses: list[SocketAddress]) -> None:
        """Mirrors ``PeerManager::broadcast_node_announcement``: our ``node_announcement`` to the network (``rgb``, 3
        bytes, a colour; ``alias``, 32 bytes, a name for humans). Graphs take it only once we have a public channel:
        ldk-sample broadcasts it every minute."""
        if len(rgb) != 3 or len(alias) != 32:
            raise ValueError(f"rgb takes 3 bytes and alias 32 (pad it with zero bytes): got {len(rgb)}, {len(alias)}")
        if len(addresses) > 100:
            raise ValueError("More than half the message size was taken up by public addresses!")
        with self._lock:
            if self._last_node_announcement_serial is None:
                self._last_node_announcement_serial = self.channel_manager.clock.unix_time()
            serial = self._last_node_announcement_serial
            self._last_node_announcement_serial += 1
        self._bus.broadcast(self.node_id, NodeAnnouncement(self.node_id, serial, bytes(rgb), bytes(alias)))

    def process_events(self) -> None:
        """Mirrors ``PeerManager::process_events``: send what the ChannelManager queued.

        Messages to peers that are not connected are dropped, as LDK drops them.
        """
        for node_id, msg in self.channel_manager.get_and_clear_pending_msg_events():
            if node_id is None:
                self._bus.broadcast(self.node_id, msg)  # gossip
            elif node_id in self._peers:
                self._bus.send(self.node_id, node_id, msg)

    def handle_message(self, their_node_id: PublicKey, msg: Record) -> None:
        """A message arrived from a peer: hand it to the ChannelManager."""
        if their_node_id in self._peers:
            self.channel_manager.handle_message(their_node_id, msg)

    def timer_tick_occurred(self) -> None:
        """Mirrors ``PeerManager::timer_tick_occurred``: pings; the simulation only counts them."""
        self.timer_ticks += 1

    #: It only counts, whenever it is called: a sleeping background processor need not stop the clock for it,
    #: and the kit's timers count many at once (``ticks_occurred``).
    timer_tick_occurred.only_counts = True  # type: ignore[attr-defined]

    def ticks_occurred(self, count: int) -> None:
        """``count`` calls of :meth:`timer_tick_occurred` at once (not LDK's: the kit's timers count the pings of
        quiet time in one go)."""
        self.timer_ticks += count
