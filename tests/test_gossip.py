"""NetworkGraph: LDK 0.1's gossip rules, failure handling, stale pruning and persistence."""

from __future__ import annotations

import contextlib
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Network
from ldkkit.errors import DecodeError
from ldkkit.routing.gossip import (
    ChannelInfo,
    ChannelUpdateInfo,
    NetworkGraph,
    NetworkUpdate,
    NodeId,
    NodeInfo,
    RoutingFees,
    _routing_row,
    _RoutingView,
)
from ldkkit.routing.router import LightningError
from ldkkit.ser import encode
from ldkkit.types import PublicKey

KEYS = [PublicKey.from_secret_key(bytes([i + 1]) * 32) for i in range(8)]
A, B, C, D = KEYS[:4]
T0 = 1_700_000_000
#: LDK 0.1's ``STALE_CHANNEL_UPDATE_AGE_LIMIT_SECS`` (routing/gossip.rs): BOLT 7's two weeks, in seconds.
TWO_WEEKS = 60 * 60 * 24 * 14


class Recorder:
    """A stand-in logger that keeps (level, message) pairs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda module, message: self.lines.append((level, message))


def add(graph: NetworkGraph, scid: int, a: PublicKey, b: PublicKey, *, capacity: int | None = 1_000_000,
        timestamp: int = T0, update: bool = True, fee: int = 1000, ppm: int = 100) -> None:
    graph.add_channel(scid, a, b, capacity, timestamp)
    if update:
        for node in (a, b):
            graph.update_channel(scid, node, timestamp, True, 40, 1, 500_000_000, fee, ppm)


@pytest.fixture
def graph() -> NetworkGraph:
    g = NetworkGraph(Network.Regtest, Recorder())
    add(g, 1, A, B)
    add(g, 2, B, C)
    add(g, 3, C, D)
    return g


def test_channels_are_keyed_by_scid_with_node_one_sorting_first(graph):
    assert graph.channel_count() == 3 and graph.node_count() == 4
    for info in graph.read_only().channels().values():
        assert bytes(info.node_one) < bytes(info.node_two)
    # (LDK's ReadOnlyNetworkGraph: nodes by NodeId, each a NodeInfo of its channels, as ldk-sample reads them)
    assert graph.nodes()[NodeId.from_pubkey(B)] == NodeInfo((1, 2), None)
    assert graph.node(NodeId.from_pubkey(A)) == NodeInfo((1,), None)
    assert graph.node(NodeId.from_pubkey(KEYS[7])) is None
    assert graph.nodes().get(B) is None  # (a PublicKey is no NodeId: asked for one, node() says so)
    with pytest.raises(TypeError, match=r"NodeId.from_pubkey"):
        graph.node(B)
    assert NodeId.from_pubkey(B).as_pubkey() == B
    assert graph.channel(99) is None


def test_a_channels_update_is_kept_for_the_direction_of_its_sender(graph):
    graph.update_channel(1, A, T0 + 1, False, 144, 10, 400_000_000, 7, 9)
    info = graph.channel(1)
    update, towards = info.as_directed_from(A)
    assert towards == B
    assert update == ChannelUpdateInfo(T0 + 1, False, 144, 10, 400_000_000, RoutingFees(7, 9))
    assert info.as_directed_to(B) == (update, A)
    assert info.as_directed_from(B)[0].fees == RoutingFees(1000, 100)  # the other direction is untouched
    assert info.as_directed_from(C) is None


def test_channels_snapshot_does_not_change_the_graph(graph):
    snapshot = graph.channels()
    snapshot.clear()
    assert graph.channel_count() == 3


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: g.add_channel(1, A, B, 5, T0), "Already have knowledge of channel"),
        (lambda g: g.add_channel(9, A, A, 5, T0), "Channel announcement node had a channel with itself"),
        (lambda g: g.update_channel(9, A, T0 + 1, True, 40, 1, 1000, 0, 0), "Couldn't find channel for update"),
        (lambda g: g.update_channel(1, A, T0 - 1, True, 40, 1, 1000, 0, 0), "Update older than last processed update"),
        (lambda g: g.update_channel(1, A, T0, True, 40, 1, 1000, 0, 0),
         "Update had same timestamp as last processed update"),
        (lambda g: g.update_channel(1, A, T0 + 1, True, 40, 1, 2_000_000_000, 0, 0),
         "htlc_maximum_msat is larger than channel capacity or capacity is bogus"),
        (lambda g: g.update_channel(1, C, T0 + 1, True, 40, 1, 1000, 0, 0), "is not a party to channel 1"),
    ],
)
def test_gossip_ldk_refuses_is_refused_with_ldks_message(graph, call, message):
    before = graph.channels()
    with pytest.raises(LightningError, match=message) as info:
        call(graph)
    assert message in info.value.err
    assert graph.channels() == before


def test_bad_field_values_fail_loudly(graph):
    with pytest.raises(TypeError, match="cltv_expiry_delta must be a u16"):
        graph.update_channel(1, A, T0 + 1, True, 70_000, 1, 1000, 0, 0)
    with pytest.raises(TypeError, match="short_channel_id must be a u64"):
        graph.add_channel(-1, A, C, 5, T0)


@pytest.mark.parametrize("permanent", [False, True])
def test_channel_failure_removes_the_channel_only_when_permanent(graph, permanent):
    graph.handle_network_update(NetworkUpdate.ChannelFailure(2, permanent))
    assert (graph.channel(2) is None) == permanent
    assert graph.node_count() == 4  # B and C still have other channels
    if permanent:
        assert graph.node(NodeId.from_pubkey(B)).channels == (1,) and graph.node(NodeId.from_pubkey(C)).channels == (3,)
    assert any("payment failure" in m for _, m in graph.logger.lines) == permanent


def test_removing_a_nodes_last_channel_forgets_the_node(graph):
    graph.handle_network_update(NetworkUpdate.ChannelFailure(1, True))
    assert graph.node(NodeId.from_pubkey(A)) is None and graph.node_count() == 3


@pytest.mark.parametrize("permanent", [False, True])
def test_node_failure_removes_the_node_and_its_channels_only_when_permanent(graph, permanent):
    graph.handle_network_update(NetworkUpdate.NodeFailure(B, permanent))
    if permanent:
        assert graph.node(NodeId.from_pubkey(B)) is None
        assert graph.node(NodeId.from_pubkey(A)) is None  # A is left with no channel
        assert set(graph.channels()) == {3}
    else:
        assert graph.channel_count() == 3 and graph.node_count() == 4
    assert any("Ignoring non-permanent" in m for _, m in graph.logger.lines) != permanent


def test_remove_channel_is_what_a_closed_channel_does(graph):
    graph.remove_channel(3)
    graph.remove_channel(3)  # unknown channels are ignored, as in LDK
    assert set(graph.channels()) == {1, 2} and graph.node(NodeId.from_pubkey(D)) is None


class TestStalePruning:
    def test_fresh_channels_are_kept(self, graph):
        graph.remove_stale_channels_and_tracking_with_time(T0 + TWO_WEEKS)
        assert graph.channel_count() == 3

    def test_channels_not_updated_for_two_weeks_are_removed_with_their_orphaned_nodes(self, graph):
        graph.remove_stale_channels_and_tracking_with_time(T0 + TWO_WEEKS + 1)
        assert graph.channel_count() == 0 and graph.node_count() == 0

    def test_a_recently_updated_channel_survives(self, graph):
        for node in (C, D):
            graph.update_channel(3, node, T0 + TWO_WEEKS, True, 40, 1, 1000, 0, 0)
        graph.remove_stale_channels_and_tracking_with_time(T0 + TWO_WEEKS + 1)
        assert set(graph.channels()) == {3}

    def test_a_channel_with_one_stale_direction_goes_once_its_announcement_is_old(self, graph):
        # LDK 0.1 drops the stale direction, then removes a channel missing either direction.
        graph.update_channel(3, C, T0 + TWO_WEEKS, True, 40, 1, 1000, 0, 0)
        graph.remove_stale_channels_and_tracking_with_time(T0 + TWO_WEEKS + 1)
        assert graph.channel(3) is None

    def test_a_new_announcement_waits_for_its_updates(self, graph):
        add(graph, 4, A, D, timestamp=T0 + TWO_WEEKS, update=False)
        graph.update_channel(1, A, T0 + TWO_WEEKS, True, 40, 1, 1000, 0, 0)  # its other direction goes stale
        graph.remove_stale_channels_and_tracking_with_time(T0 + TWO_WEEKS + 1)
        assert set(graph.channels()) == {4}
        graph.remove_stale_channels_and_tracking_with_time(T0 + 2 * TWO_WEEKS + 1)
        assert graph.channel_count() == 0

    def test_a_stale_direction_of_a_young_channel_is_dropped_but_the_channel_kept(self, graph):
        add(graph, 4, A, D, timestamp=T0 + TWO_WEEKS + 10, update=False)
        graph.update_channel(4, A, T0 + TWO_WEEKS + 10, True, 40, 1, 1000, 0, 0)
        graph.update_channel(4, D, T0, True, 40, 1, 1000, 0, 0)  # an old update, relayed late
        graph.remove_stale_channels_and_tracking_with_time(T0 + 2 * TWO_WEEKS + 1)
        info = graph.channel(4)
        assert info.as_directed_from(A) is not None and info.as_directed_from(D) is None
        assert_view_is_a_fresh_build(graph)

    def test_nothing_is_pruned_before_two_weeks_of_unix_time(self, graph):
        g = NetworkGraph(Network.Regtest)
        add(g, 1, A, B, timestamp=0)
        g.remove_stale_channels_and_tracking_with_time(TWO_WEEKS - 1)
        assert g.channel_count() == 1


# --- persistence -----------------------------------------------------------------------------------------

channel_specs = st.lists(
    st.tuples(
        st.integers(0, 2**64 - 1), st.sampled_from(KEYS), st.sampled_from(KEYS),
        st.none() | st.integers(1, 10**8), st.integers(0, 2**32 - 1), st.booleans(), st.integers(0, 5000),
    ),
    max_size=8,
)


def graph_from(specs) -> NetworkGraph:
    g = NetworkGraph(Network.Signet)
    for scid, a, b, capacity, timestamp, update, fee in specs:
        if a == b or g.channel(scid) is not None:
            continue
        g.add_channel(scid, a, b, capacity, timestamp)
        if update:
            g.update_channel(scid, a, timestamp, fee % 2 == 0, 40, 0, 1000, fee, fee)
    return g


@given(channel_specs)
def test_graphs_round_trip_through_bytes(specs):
    g = graph_from(specs)
    back = NetworkGraph.decode(g.encode())
    assert back == g and back.network is Network.Signet
    assert back.nodes() == g.nodes()


@given(channel_specs, st.data())
def test_corrupt_graph_bytes_raise_decode_error_or_decode_whole(specs, data):
    encoded = bytearray(graph_from(specs).encode())
    pos = data.draw(st.integers(3, len(encoded) - 1))
    encoded[pos] ^= data.draw(st.integers(1, 255))
    try:
        back = NetworkGraph.decode(bytes(encoded))
    except DecodeError:
        return
    assert NetworkGraph.decode(back.encode()) == back


@pytest.mark.parametrize(
    "value",
    [
        (Network.Regtest,),
        ("main", ()),
        (Network.Regtest, ((1, "not a channel"),)),
        (Network.Regtest, ((1, ChannelInfo(B, None, A, None, None, 0)),)) if bytes(A) < bytes(B)
        else (Network.Regtest, ((1, ChannelInfo(A, None, B, None, None, 0)),)),
    ],
)
def test_bytes_that_are_not_a_graph_raise_invalid_value(value):
    with pytest.raises(DecodeError.InvalidValue):
        NetworkGraph.decode(encode(value))


def test_truncated_graph_bytes_raise_short_read(graph):
    with pytest.raises(DecodeError.ShortRead):
        NetworkGraph.decode(graph.encode()[:-3])


def test_concurrent_gossip_keeps_the_graph_consistent():
    g = NetworkGraph(Network.Regtest)

    def worker(offset: int) -> None:
        for i in range(50):
            scid = offset * 1000 + i
            add(g, scid, KEYS[i % 4], KEYS[4 + i % 4])
            if i % 3 == 0:
                g.remove_channel(scid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channels = g.channels()
    assert len(channels) == 4 * 33
    assert {scid for info in g.nodes().values() for scid in info.channels} == set(channels)


# --- the router's view, shared by graphs holding the same channels -----------------------------------------


def assert_view_is_a_fresh_build(g: NetworkGraph) -> None:
    """The graph's view, shared or not, is what building one from its channels now gives; its rows match."""
    assert g._routing_rows == {scid: _routing_row(info) for scid, info in g.channels().items()}
    view, fresh = g._routing_view(), _RoutingView(g.channels())
    assert (view.keys, view.index, view.scids, view._edges, view._peers) == (
        fresh.keys, fresh.index, fresh.scids, fresh._edges, fresh._peers)
    assert view.adjacency(2, 500) == fresh.adjacency(2, 500)


def same_three_channels() -> NetworkGraph:
    g = NetworkGraph(Network.Regtest)
    for scid, a, b in ((3, C, D), (1, A, B), (2, B, C)):  # (another order: the view is by scid)
        add(g, scid, a, b)
    return g


def test_graphs_holding_the_same_channels_share_one_view(graph):
    assert same_three_channels()._routing_view() is graph._routing_view()


def test_a_change_the_router_reads_gives_the_graph_a_view_of_its_own(graph):
    other = same_three_channels()
    shared = graph._routing_view()
    other.update_channel(1, A, T0 + 1, True, 40, 1, 500_000_000, 999, 100)  # a new fee
    assert other._routing_view() is not shared and graph._routing_view() is shared
    assert_view_is_a_fresh_build(other)
    other.update_channel(1, A, T0 + 2, True, 40, 1, 500_000_000, 1000, 100)  # the fee back
    assert other._routing_view() is shared


def test_a_change_the_router_does_not_read_keeps_the_view_shared(graph):
    other = same_three_channels()
    other.update_channel(1, A, T0 + 1, True, 40, 1, 500_000_000, 1000, 100)  # only the timestamp is new
    assert other._routing_view() is graph._routing_view()


@given(channel_specs, st.lists(st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 2**32 - 1)), max_size=8))
def test_a_graphs_view_is_always_a_fresh_build_of_its_channels(specs, ops):
    g = graph_from(specs)
    assert_view_is_a_fresh_build(g)
    for op, i, t in ops:
        scids = sorted(g.channels())
        scid = scids[i % len(scids)] if scids else 0
        if op == 0 and scids:
            info = g.channel(scid)
            with contextlib.suppress(LightningError):  # (an update no newer than the one kept)
                g.update_channel(scid, (info.node_one, info.node_two)[i % 2], t, t % 3 != 0, 40, 0, 1000, t % 99, 1)
        elif op == 1:
            g.remove_channel(scid)
        elif op == 2:
            g.node_failed_permanent(KEYS[i])
        else:
            g.remove_stale_channels_and_tracking_with_time(min(t + TWO_WEEKS, 2**32 - 1))
        assert_view_is_a_fresh_build(g)
    assert_view_is_a_fresh_build(NetworkGraph.decode(g.encode()))


def _announcement(node, timestamp, alias=b"carol"):
    from ldkkit.ln.msgs import NodeAnnouncement

    return NodeAnnouncement(node, timestamp, b"\x01\x02\x03", alias.ljust(32, b"\0"))


def test_a_node_announcement_is_kept_if_newer_and_of_a_node_with_a_channel(graph):
    """LDK's update_node_from_unsigned_announcement: a node with no channel we know is refused, and so is an
    announcement no newer than the one kept, with LDK's words; the node's NodeInfo then carries it, read with LDK's
    getters (ldk-sample names a peer "node <alias>" from it), until the node's last channel goes."""
    with pytest.raises(LightningError, match="^No existing channels for node_announcement$"):
        graph.update_node_from_unsigned_announcement(_announcement(KEYS[7], 10))
    assert graph.node(NodeId.from_pubkey(C)).announcement_info is None
    graph.update_node_from_unsigned_announcement(_announcement(C, 10))
    for timestamp, words in ((9, "Update older than last processed update"),
                             (10, "Update had the same timestamp as last processed update")):
        with pytest.raises(LightningError, match=f"^{words}$"):
            graph.update_node_from_unsigned_announcement(_announcement(C, timestamp, b"mallory"))
    info = graph.read_only().nodes()[NodeId.from_pubkey(C)].announcement_info
    assert (str(info.alias()), info.last_update(), info.rgb(), info.addresses()) == ("carol", 10, b"\x01\x02\x03", [])
    back = NetworkGraph.decode(graph.encode())
    assert back == graph and back.node(NodeId.from_pubkey(C)).announcement_info == info
    graph.remove_channel(2)
    graph.remove_channel(3)  # (C's last channel: what it announced goes with it)
    assert graph.node(NodeId.from_pubkey(C)) is None
    graph.add_channel(3, C, D, 1_000_000, 0)
    assert graph.node(NodeId.from_pubkey(C)).announcement_info is None


def test_a_node_alias_shows_as_ldk_displays_it():
    """Up to the first zero byte; anything unprintable replaced (LDK's ``Display for NodeAlias``)."""
    from ldkkit.routing.gossip import NodeAlias

    assert [str(NodeAlias(a.ljust(32, b"\0"))) for a in (b"carol", b"a\x07b", "n\u00f8de".encode(), b"\xff\x41")] == [
        "carol", "a\ufffdb", "n\u00f8de", "\ufffdA"]
    assert str(NodeAlias(b"x" * 32)) == "x" * 32
