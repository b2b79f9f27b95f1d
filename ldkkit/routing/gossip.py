"""What the node knows of the public network.

Mirrors ``lightning::routing::gossip``: ``NetworkGraph``, the channels and policies the
router searches, and ``NetworkUpdate``, the change a failed payment path reports about it.
"""

from __future__ import annotations

import dataclasses
import threading
import unicodedata
import weakref
from typing import Any, Optional

from ..bitcoin import Network
from ..ln.msgs import NodeAnnouncement
from ..ser import U16, U32, U64, DecodeError, Record, RustEnum, decode, encode
from ..types import HexBytes, PublicKey
from .router import MAX_VALUE_MSAT, LightningError, _log


class NetworkUpdate(RustEnum):
    """Mirrors ``lightning::routing::gossip::NetworkUpdate``.

    Carried by ``PathFailure.OnPath``. ``NetworkGraph.handle_network_update`` removes the
    channel or node only when ``is_permanent`` is true.
    """

    class ChannelFailure:
        """A channel failed to forward our payment."""

        short_channel_id: U64
        is_permanent: bool

    class NodeFailure:
        """A node failed to forward our payment."""

        node_id: PublicKey
        is_permanent: bool


# --- The network graph -----------------------------------------------------------------------------

#: LDK's ``STALE_CHANNEL_UPDATE_AGE_LIMIT_SECS``: BOLT 7's two weeks.
STALE_CHANNEL_UPDATE_AGE_LIMIT_SECS = 60 * 60 * 24 * 14

_MODULE = "lightning::routing::gossip"


class RoutingFees(Record):
    """Mirrors ``lightning::routing::gossip::RoutingFees``: what a node charges to forward.

    The fee for forwarding ``amount_msat`` is ``base_msat + proportional_millionths *
    amount_msat // 1_000_000`` (BOLT 7).
    """

    base_msat: U32
    proportional_millionths: U32


class ChannelUpdateInfo(Record):
    """Mirrors ``lightning::routing::gossip::ChannelUpdateInfo``: one direction's latest policy.

    ``last_update`` is the ``channel_update``'s timestamp in unix seconds.
    """

    last_update: U32
    enabled: bool
    cltv_expiry_delta: U16
    htlc_minimum_msat: U64
    htlc_maximum_msat: U64
    fees: RoutingFees


class NodeId(HexBytes):
    """Mirrors ``lightning::routing::gossip::NodeId``: a node's public key as the graph keys its nodes (33 bytes).
    Look a node up by ``NodeId.from_pubkey(node_id)``: a ``PublicKey`` is not a ``NodeId``."""

    LENGTH = 33

    @classmethod
    def from_pubkey(cls, pubkey: PublicKey) -> NodeId:
        return cls(bytes(pubkey))

    def as_pubkey(self) -> PublicKey:
        return PublicKey(bytes(self))

    def as_slice(self) -> bytes:
        return bytes(self)


class NodeAlias(HexBytes):
    """Mirrors ``lightning::routing::gossip::NodeAlias``: 32 bytes a node calls itself by; ``str()`` gives the text,
    as LDK displays it (up to the first zero byte, with anything unprintable replaced)."""

    def __str__(self) -> str:
        text = bytes(self).split(b"\0", 1)[0]
        try:
            return "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in text.decode())
        except UnicodeDecodeError:
            return "".join(chr(b) if 0x20 <= b <= 0x7E else "\ufffd" for b in text)


class NodeAnnouncementInfo(Record):
    """Mirrors ``lightning::routing::gossip::NodeAnnouncementInfo`` (its ``Relayed`` form): the latest announcement a
    node gossiped of itself, read with LDK's getters."""

    message: NodeAnnouncement

    def last_update(self) -> int:
        return self.message.timestamp

    def rgb(self) -> bytes:
        return self.message.rgb

    def alias(self) -> NodeAlias:
        return NodeAlias(self.message.alias)

    def addresses(self) -> list[Any]:
        return []  # (the kit's nodes connect over the world's bus, not at addresses)

    def announcement_message(self) -> NodeAnnouncement:
        return self.message


class NodeInfo(Record):
    """Mirrors ``lightning::routing::gossip::NodeInfo``: the scids of a node's public channels, and what it announced
    of itself (``announcement_info``: None until it did; ldk-sample's handler then logs it as an "unnamed node")."""

    channels: tuple[U64, ...]
    announcement_info: Optional[NodeAnnouncementInfo]


class ChannelInfo(Record):
    """Mirrors ``lightning::routing::gossip::ChannelInfo``: a public channel, keyed by its scid.

    ``node_one`` sorts before ``node_two`` by their serialized keys, as in LDK;
    ``one_to_two`` is ``node_one``'s policy for forwarding to ``node_two``.
    ``announcement_received_time`` is in unix seconds.
    """

    node_one: PublicKey
    one_to_two: Optional[ChannelUpdateInfo]
    node_two: PublicKey
    two_to_one: Optional[ChannelUpdateInfo]
    capacity_sats: Optional[U64]
    announcement_received_time: U64

    def as_directed_from(self, source: PublicKey) -> Optional[tuple[ChannelUpdateInfo, PublicKey]]:
        """``source``'s policy on this channel and the node it forwards to, if it has one."""
        if source == self.node_one:
            return None if self.one_to_two is None else (self.one_to_two, self.node_two)
        if source == self.node_two:
            return None if self.two_to_one is None else (self.two_to_one, self.node_one)
        return None

    def as_directed_to(self, target: PublicKey) -> Optional[tuple[ChannelUpdateInfo, PublicKey]]:
        """The policy for forwarding to ``target`` over this channel, and who forwards."""
        if target == self.node_two:
            return None if self.one_to_two is None else (self.one_to_two, self.node_one)
        if target == self.node_one:
            return None if self.two_to_one is None else (self.two_to_one, self.node_two)
        return None

    def effective_capacity_msat(self, update: ChannelUpdateInfo) -> int:
        """LDK's ``DirectedChannelInfo::effective_capacity().as_msat()``.

        The channel's capacity when known, else the direction's ``htlc_maximum_msat``.
        """
        return update.htlc_maximum_msat if self.capacity_sats is None else self.capacity_sats * 1000

    def __str__(self) -> str:
        cap = "?" if self.capacity_sats is None else f"{self.capacity_sats:,}"
        return f"{self.node_one.short()} ↔ {self.node_two.short()} ({cap} sat)"


class NetworkGraph:
    """Mirrors ``lightning::routing::gossip::NetworkGraph``: the public channels we know of.

    Thread-safe. The simulated gossip calls :meth:`add_channel` and :meth:`update_channel`
    in place of LDK's signed ``channel_announcement``/``channel_update`` handling; the
    checks LDK makes on the contents (ordering of timestamps, ``htlc_maximum_msat``
    against capacity) are kept, with LDK's error messages.

    Simplified against LDK 0.1: node announcements (aliases, addresses, features) are not
    kept, so a node is just its channels (``NodeInfo.announcement_info`` is None); removed
    channels are not tracked to refuse their re-announcement.
    """

    def __init__(self, network: Network, logger: Any = None) -> None:
        if not isinstance(network, Network):
            raise TypeError(f"NetworkGraph needs a Network, got {network!r}")
        self.network = network
        self.logger = logger
        self._lock = threading.RLock()
        self._channels: dict[int, ChannelInfo] = {}  # written only by _put_channel and _drop_channel
        self._routing_rows: dict[int, tuple] = {}  # what the router reads of each channel (_routing_row)
        self._nodes: dict[PublicKey, set[int]] = {}
        self._announced: dict[PublicKey, NodeAnnouncementInfo] = {}  # nodes' latest node_announcement
        self._view: Optional[_RoutingView] = None  # the router's adjacency, dropped at any change

    # --- reading: LDK's ReadOnlyNetworkGraph ---

    def read_only(self) -> NetworkGraph:
        """LDK's ``read_only()``: here the graph itself, whose readers each take the lock."""
        return self

    def channels(self) -> dict[int, ChannelInfo]:
        """A snapshot of every channel, by short channel id."""
        with self._lock:
            return dict(self._channels)

    def channel(self, short_channel_id: int) -> Optional[ChannelInfo]:
        with self._lock:
            return self._channels.get(short_channel_id)

    def nodes(self) -> dict[NodeId, NodeInfo]:
        """LDK's ``ReadOnlyNetworkGraph::nodes``: a snapshot of every node with a public channel, by ``NodeId``."""
        with self._lock:
            return {NodeId.from_pubkey(node): self._node_info(node) for node in self._nodes}

    def node(self, node_id: NodeId) -> Optional[NodeInfo]:
        """LDK's ``ReadOnlyNetworkGraph::node``: what we know of the node, or None if we know no channel of it."""
        if not isinstance(node_id, NodeId):
            raise TypeError(f"node() takes a NodeId, as LDK's does (NodeId.from_pubkey(...)), not a "
                            f"{type(node_id).__name__}")
        with self._lock:
            return self._node_info(node_id.as_pubkey()) if node_id.as_pubkey() in self._nodes else None

    def _node_info(self, node: PublicKey) -> NodeInfo:
        return NodeInfo(tuple(sorted(self._nodes[node])), self._announced.get(node))

    def channel_count(self) -> int:
        with self._lock:
            return len(self._channels)

    def node_count(self) -> int:
        with self._lock:
            return len(self._nodes)

    # --- gossip ---

    def add_channel(
        self, short_channel_id: int, node_a: PublicKey, node_b: PublicKey, capacity_sats: Optional[int],
        timestamp: int,
    ) -> None:
        """Learn of a public channel (LDK: ``add_channel_from_partial_announcement``).

        ``timestamp`` (unix seconds) is when the announcement arrived. Raises
        ``LightningError`` for a channel we already know or one from a node to itself.
        """
        _check_u64("short_channel_id", short_channel_id)
        if node_a == node_b:
            raise LightningError("Channel announcement node had a channel with itself")
        one, two = (node_a, node_b) if node_a < node_b else (node_b, node_a)
        info = ChannelInfo(one, None, two, None, capacity_sats, timestamp)
        with self._lock:
            if short_channel_id in self._channels:
                raise LightningError("Already have knowledge of channel")
            self._put_channel(short_channel_id, info)
            for node in (one, two):
                self._nodes.setdefault(node, set()).add(short_channel_id)
        _log(self.logger, "trace", _MODULE, f"Added channel_announcement for {short_channel_id}")

    def update_channel(
        self, short_channel_id: int, from_node: PublicKey, timestamp: int, enabled: bool, cltv_expiry_delta: int,
        htlc_minimum_msat: int, htlc_maximum_msat: int, fee_base_msat: int, fee_proportional_millionths: int,
    ) -> None:
        """Apply ``from_node``'s ``channel_update`` for its direction of the channel.

        Raises ``LightningError`` with LDK's message for an unknown channel, an update no
        newer than the one we have, or an ``htlc_maximum_msat`` above the capacity.
        """
        update = ChannelUpdateInfo(timestamp, enabled, cltv_expiry_delta, htlc_minimum_msat, htlc_maximum_msat,
                                   RoutingFees(fee_base_msat, fee_proportional_millionths))
        with self._lock:
            info = self._channels.get(short_channel_id)
            if info is None:
                raise LightningError("Couldn't find channel for update")
            if from_node not in (info.node_one, info.node_two):
                raise LightningError(f"Node {from_node} is not a party to channel {short_channel_id}")
            _check_update(info, update)
            field = "one_to_two" if from_node == info.node_one else "two_to_one"
            existing = getattr(info, field)
            if existing is not None and existing.last_update > timestamp:
                raise LightningError("Update older than last processed update")
            if existing is not None and existing.last_update == timestamp:
                raise LightningError("Update had same timestamp as last processed update")
            self._put_channel(short_channel_id, dataclasses.replace(info, **{field: update}))
        _log(self.logger, "trace", _MODULE, f"Updated channel {short_channel_id} from {from_node.short()}: "
             f"{'enabled' if enabled else 'disabled'}, fee {fee_base_msat} msat + {fee_proportional_millionths} ppm")

    def channel_failed_permanent(self, short_channel_id: int) -> None:
        """Forget a channel, and any node left with no channel (LDK's ``channel_failed_permanent``)."""
        with self._lock:
            info = self._drop_channel(short_channel_id)
            if info is None:
                return
            for node in (info.node_one, info.node_two):
                self._forget_channel_of(node, short_channel_id)

    def remove_channel(self, short_channel_id: int) -> None:
        """Forget a channel (it closed): :meth:`channel_failed_permanent` under the simulation's name."""
        self.channel_failed_permanent(short_channel_id)

    def node_failed_permanent(self, node_id: PublicKey) -> None:
        """Forget a node and all its channels (LDK's ``node_failed_permanent``)."""
        with self._lock:
            for scid in sorted(self._nodes.get(node_id, ())):
                self.channel_failed_permanent(scid)

    def _put_channel(self, short_channel_id: int, info: ChannelInfo) -> None:
        """Every write of a channel comes here, so its routing row is never out of step with it."""
        self._channels[short_channel_id] = info
        self._routing_rows[short_channel_id] = _routing_row(info)
        self._view = None

    def _drop_channel(self, short_channel_id: int) -> Optional[ChannelInfo]:
        """Every removal of a channel comes here (see :meth:`_put_channel`); returns it, if it was known."""
        info = self._channels.pop(short_channel_id, None)
        if info is not None:
            del self._routing_rows[short_channel_id]
            self._view = None
        return info

    def _forget_channel_of(self, node: PublicKey, short_channel_id: int) -> None:
        scids = self._nodes.get(node)
        if scids is not None:
            scids.discard(short_channel_id)
            if not scids:  # (a node with no channel left is forgotten, and what it announced with it)
                del self._nodes[node]
                self._announced.pop(node, None)

    def update_node_from_unsigned_announcement(self, msg: NodeAnnouncement) -> None:
        """LDK's ``update_node_from_unsigned_announcement``: keep what a node announced of itself, if we know a channel
        of it and the announcement is newer than the one we have (``LightningError`` with LDK's words, if not)."""
        with self._lock:
            if msg.node_id not in self._nodes:
                raise LightningError("No existing channels for node_announcement")
            known = self._announced.get(msg.node_id)
            if known is not None and known.last_update() > msg.timestamp:
                raise LightningError("Update older than last processed update")
            if known is not None and known.last_update() == msg.timestamp:
                raise LightningError("Update had the same timestamp as last processed update")
            self._announced[msg.node_id] = NodeAnnouncementInfo(msg)

    def handle_network_update(self, update: NetworkUpdate) -> None:
        """Apply what a failed payment told us (LDK 0.1): only permanent failures change the graph."""
        match update:
            case NetworkUpdate.ChannelFailure(short_channel_id=scid, is_permanent=True):
                _log(self.logger, "debug", _MODULE,
                     f"Removing channel graph entry for {scid} due to a payment failure.")
                self.channel_failed_permanent(scid)
            case NetworkUpdate.NodeFailure(node_id=node_id, is_permanent=True):
                _log(self.logger, "debug", _MODULE,
                     f"Removed node graph entry for {node_id} due to a payment failure.")
                self.node_failed_permanent(node_id)
            case NetworkUpdate.ChannelFailure() | NetworkUpdate.NodeFailure():
                _log(self.logger, "trace", _MODULE, f"Ignoring non-permanent network update {update!r}")
            case _:
                raise TypeError(f"handle_network_update needs a NetworkUpdate, got {update!r}")

    def remove_stale_channels_and_tracking_with_time(self, current_time_unix: int) -> None:
        """Prune what gossip has not refreshed in two weeks (LDK 0.1's rules).

        A direction whose last update is older than ``STALE_CHANNEL_UPDATE_AGE_LIMIT_SECS``
        is dropped; then a channel missing either direction is removed if its announcement
        is older than that too (a fresh announcement may still be waiting for its updates).
        Nodes left with no channel go with it.
        """
        if current_time_unix < STALE_CHANNEL_UPDATE_AGE_LIMIT_SECS or current_time_unix > 0xFFFF_FFFF:
            return
        min_time = current_time_unix - STALE_CHANNEL_UPDATE_AGE_LIMIT_SECS
        with self._lock:
            stale = []
            for scid, info in self._channels.items():
                fresh = {f: u for f in ("one_to_two", "two_to_one")
                         if (u := getattr(info, f)) is not None and u.last_update >= min_time}
                if len(fresh) < 2 and info.announcement_received_time < min_time:
                    stale.append(scid)
                elif fresh.keys() != {f for f in ("one_to_two", "two_to_one") if getattr(info, f) is not None}:
                    self._put_channel(scid, dataclasses.replace(
                        info, one_to_two=fresh.get("one_to_two"), two_to_one=fresh.get("two_to_one")))
            for scid in stale:
                _log(self.logger, "trace", _MODULE, f"Removing stale channel {scid}: a direction is missing and "
                     f"its announcement is older than {min_time}")
                self.channel_failed_permanent(scid)

    # --- persistence ---

    def encode(self) -> bytes:
        """Serialise the graph, like LDK's ``NetworkGraph::write``."""
        with self._lock:
            return encode((self.network, tuple(sorted(self._channels.items())),
                           tuple(info.message for _, info in sorted(self._announced.items()))))

    @classmethod
    def decode(cls, data: bytes, logger: Any = None) -> NetworkGraph:
        """Read back what :meth:`encode` wrote; bad bytes raise ``DecodeError``."""
        value = decode(data)
        match value:
            case (Network() as network, tuple() as channels, tuple() as announcements):
                pass
            case (Network() as network, tuple() as channels):  # (written before the graph kept announcements)
                announcements = ()
            case _:
                raise DecodeError.InvalidValue("the data is not an encoded NetworkGraph")
        graph = cls(network, logger)
        for item in channels:
            match item:
                case (int() as scid, ChannelInfo() as info) if 0 <= scid <= 0xFFFF_FFFF_FFFF_FFFF:
                    pass
                case _:
                    raise DecodeError.InvalidValue(f"bad channel entry in an encoded NetworkGraph: {item!r}")
            if not info.node_one < info.node_two or scid in graph._channels:
                raise DecodeError.InvalidValue(f"channel {scid} in an encoded NetworkGraph is malformed or repeated")
            graph._put_channel(scid, info)
            for node in (info.node_one, info.node_two):
                graph._nodes.setdefault(node, set()).add(scid)
        for msg in announcements:
            if not isinstance(msg, NodeAnnouncement) or msg.node_id not in graph._nodes:
                raise DecodeError.InvalidValue(f"bad node announcement in an encoded NetworkGraph: {msg!r}")
            graph._announced[msg.node_id] = NodeAnnouncementInfo(msg)
        return graph

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NetworkGraph):
            return NotImplemented
        return (self.network == other.network and self.channels() == other.channels()
                and self._announced == other._announced)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NetworkGraph({self.network.name}, {self.node_count()} nodes, {self.channel_count()} channels)"

    # --- the router's view ---

    def _routing_view(self) -> _RoutingView:
        """The adjacency the router searches, kept until the graph next changes.

        Graphs holding the same channels share one view (see :func:`_shared_view`): in a simulated world
        every node's graph hears the same gossip, and each would otherwise build the same view again.
        """
        with self._lock:
            if self._view is None:
                self._view = _shared_view(self._channels, self._routing_rows)
            return self._view


def _check_u64(name: str, value: Any) -> None:
    if type(value) is not int or not 0 <= value <= 0xFFFF_FFFF_FFFF_FFFF:
        raise TypeError(f"{name} must be a u64 (an int from 0 to 18,446,744,073,709,551,615), got {value!r}")


def _check_update(info: ChannelInfo, update: ChannelUpdateInfo) -> None:
    if update.htlc_maximum_msat > MAX_VALUE_MSAT:
        raise LightningError("htlc_maximum_msat is larger than maximum possible msats")
    if info.capacity_sats is not None and update.htlc_maximum_msat > info.capacity_sats * 1000:
        raise LightningError("htlc_maximum_msat is larger than channel capacity or capacity is bogus")


def _direction_row(update: Optional[ChannelUpdateInfo]) -> Optional[tuple[int, ...]]:
    if update is None or not update.enabled:  # the router leaves the direction out either way
        return None
    fees = update.fees
    return (fees.base_msat, fees.proportional_millionths, update.cltv_expiry_delta, update.htlc_minimum_msat,
            update.htlc_maximum_msat)


def _routing_row(info: ChannelInfo) -> tuple:
    """Every field of a channel that :class:`_RoutingView` reads, as plain values (the keys as their bytes,
    whose hash Python keeps): channels with equal rows give the router the same edges."""
    return (bytes(info.node_one), bytes(info.node_two), info.capacity_sats, _direction_row(info.one_to_two),
            _direction_row(info.two_to_one))


#: The views in use, keyed by the rows of their channels sorted by scid. An entry lives only as long as
#: some graph holds its view (a graph drops its view at any change), so none outlives the graphs it serves.
_VIEWS: weakref.WeakValueDictionary[tuple, _RoutingView] = weakref.WeakValueDictionary()
_VIEWS_LOCK = threading.Lock()


def _shared_view(channels: dict[int, ChannelInfo], rows: dict[int, tuple]) -> _RoutingView:
    """The view of ``channels``, shared with every graph whose channels have the same rows.

    A view is a function of its channels' rows alone, and the key is all of them, so a shared view cannot
    go stale: graphs that differ in anything the router reads never share one (timestamps may differ).
    """
    key = tuple(sorted(rows.items()))
    with _VIEWS_LOCK:
        view = _VIEWS.get(key)
    if view is None:
        view = _RoutingView(channels)
        with _VIEWS_LOCK:
            view = _VIEWS.setdefault(key, view)  # (an equal view another thread stored first, if any)
    return view


class _RoutingView:
    """The graph as the router searches it: integer node ids and tuples, no objects.

    Nodes are numbered in the order of their serialized keys, so ``u < v`` says whether u
    is the channel's ``node_one``, as LDK's scorer orients its liquidity bounds. ``_edges[v]``
    lists every usable channel direction *into* v, sorted by scid, as
    ``(u, scid, fee_base, fee_ppm, cltv_delta, htlc_min, htlc_max, capacity_msat, anti_probing)``
    where ``anti_probing`` says whether LDK's anti-probing penalty applies (``htlc_max`` at
    least half the capacity). Disabled directions, and those never updated, are left out.
    """

    def __init__(self, channels: dict[int, ChannelInfo]) -> None:
        keys = sorted({n for info in channels.values() for n in (info.node_one, info.node_two)})
        self.keys: list[PublicKey] = keys
        self.index: dict[PublicKey, int] = {k: i for i, k in enumerate(keys)}
        self.scids = frozenset(channels)
        self._edges: list[list[tuple]] = [[] for _ in keys]
        self._peers: list[list[int]] = [[] for _ in keys]
        self._adjacency: dict[tuple[int, int], list[list[tuple]]] = {}
        index = self.index
        for scid in sorted(channels):
            info = channels[scid]
            one, two = index[info.node_one], index[info.node_two]
            self._peers[one].append(two)
            self._peers[two].append(one)
            for u, v, update in ((one, two, info.one_to_two), (two, one, info.two_to_one)):
                if update is None or not update.enabled:
                    continue
                capacity = info.effective_capacity_msat(update)
                htlc_max = min(update.htlc_maximum_msat, capacity)
                if capacity == 0:
                    continue
                anti = info.capacity_sats is not None and htlc_max >= capacity // 2
                fees = update.fees
                self._edges[v].append((u, scid, fees.base_msat, fees.proportional_millionths,
                                       update.cltv_expiry_delta, update.htlc_minimum_msat, htlc_max, capacity, anti))

    def adjacency(self, saturation: int, anti_probing_msat: int) -> list[list[tuple]]:
        """``_edges`` as the search loop reads them, for one saturation limit and penalty.

        Each entry is ``(u, scid, fee_base, fee_ppm, cltv_delta, htlc_min, limit, capacity_msat,
        float(capacity_msat), anti_probing_penalty_msat)``, where ``limit`` is the most that may
        flow: ``min(htlc_max, capacity >> saturation)`` (LDK's ``max_htlc_from_capacity``).
        """
        key = (saturation, anti_probing_msat)
        adjacency = self._adjacency.get(key)
        if adjacency is None:
            adjacency = [
                [(u, scid, base, ppm, delta, hmin, min(hmax, cap >> saturation), cap, float(cap),
                  anti_probing_msat if anti else 0)
                 for (u, scid, base, ppm, delta, hmin, hmax, cap, anti) in into]
                for into in self._edges
            ]
            self._adjacency[key] = adjacency
        return adjacency

    def payer_edges(self, payer: int, saturation: int, anti_probing_msat: int) -> dict[int, list[tuple]]:
        """The payer's own public channels, keyed by counterparty, as first-hop search edges."""
        adjacency = self.adjacency(saturation, anti_probing_msat)
        out: dict[int, list[tuple]] = {}
        for v in sorted(set(self._peers[payer])):
            edges = [(*e, True, True) for e in adjacency[v] if e[0] == payer]
            if edges:
                out[v] = edges
        return out
