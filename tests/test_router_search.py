"""find_route's search loop against a plain Dijkstra, and the no-data penalty's step table.

The search keeps its labels in heap entries and looks the no-data penalty up by bisection; these
tests hold it to a straightforward reference that asks the scorer about every channel, and the
table to the formula it replaces (LDK's ``success_probability`` and ``log10_times_2048``).
"""

from __future__ import annotations

import bisect
import heapq
import math
from datetime import timedelta
from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from test_router import DEFAULT, T0, ZERO, K, first_hop

from ldkkit.bitcoin import Network
from ldkkit.routing.gossip import NetworkGraph
from ldkkit.routing.log_approx import negative_log10_times_2048
from ldkkit.routing.router import (
    MAX_PATH_LENGTH_ESTIMATE,
    LightningError,
    Path,
    PaymentParameters,
    RouteHop,
    RouteParameters,
    _find_path,
    _no_data_historical_steps,
    _no_data_neg_log,
    _no_data_steps,
)
from ldkkit.routing.scoring import (
    ProbabilisticScorer,
    ProbabilisticScoringFeeParameters,
    _combined_penalty_msat,
    success_probability,
)

U64_MAX = (1 << 64) - 1
NODES = 6

# Few distinct fees and deltas, so that equal costs (and so the tie rules) come up often.
policies = st.fixed_dictionaries({
    "enabled": st.integers(0, 9).map(bool),
    "cltv": st.sampled_from([0, 6, 40, 144, 600]),
    "hmin": st.sampled_from([1, 1, 1000, 1_000_000]),
    "hmax_pct": st.sampled_from([10, 50, 100, 100]),
    "fee": st.sampled_from([0, 0, 1000, 2000]),
    "ppm": st.sampled_from([0, 0, 100, 1000]),
})
# Up to two channels between each pair of nodes, in a random scid order: dense graphs, parallel channels.
PAIRS = [(a, b) for a in range(NODES) for b in range(a + 1, NODES)]
channel = st.tuples(st.sampled_from([2_000, 10_000, 50_000, 200_000]), policies, policies)
channel_specs = st.tuples(*[st.lists(channel, max_size=2) for _ in PAIRS]).map(
    lambda per_pair: [(a, b, *c) for (a, b), chans in zip(PAIRS, per_pair, strict=True) for c in chans]
).flatmap(st.permutations)


def graph_of(specs) -> NetworkGraph:
    g = NetworkGraph(Network.Regtest)
    for scid, (a, b, capacity, pa, pb) in enumerate(specs, start=1):
        if a == b:
            continue
        g.add_channel(scid, K[a], K[b], capacity, T0)
        for node, p in ((K[a], pa), (K[b], pb)):
            hmax = capacity * 1000 * p["hmax_pct"] // 100
            g.update_channel(scid, node, T0, p["enabled"], p["cltv"], p["hmin"], hmax, p["fee"], p["ppm"])
    return g


def reference_path(
    g: NetworkGraph, scorer: Any, score_params: Any, payer, payee, amount: int, final_cltv: int, max_fee: int,
    max_total_cltv: int = 1008, failed: frozenset = frozenset(),
) -> Optional[tuple[list[tuple], int]]:
    """Dijkstra from the payee back to the payer, written plainly: dict labels, every channel priced by
    ``channel_penalty_msat``. Ties: the lower node (by key) is expanded first, and the first channel (by scid)
    to reach a cost keeps it. Returns each hop's (node, scid, fee, cltv delta), and the cost."""
    channels = g.channels()
    order = {k: i for i, k in enumerate(sorted({n for c in channels.values() for n in (c.node_one, c.node_two)}))}
    for saturation in (2, 0):  # LDK relaxes the saturation limit when no path respects it
        into: dict = {}  # every usable channel direction into each node, by scid
        for scid in sorted(channels):
            info = channels[scid]
            for src, dst, update in ((info.node_one, info.node_two, info.one_to_two),
                                     (info.node_two, info.node_one, info.two_to_one)):
                capacity = None if update is None else info.effective_capacity_msat(update)
                if update is None or not update.enabled or capacity == 0:
                    continue
                limit = min(update.htlc_maximum_msat, capacity, capacity >> saturation)
                into.setdefault(dst, []).append((scid, src, update, capacity, limit))
        cost, label, nxt, done = {payee: 0}, {payee: (amount, 0, 0)}, {payee: None}, {payer}
        heap, best = [(0, order.get(payee, len(order)), payee)], None
        while heap:
            d, _, v = heapq.heappop(heap)
            if best is not None and d >= best[0]:
                break
            if v in done:
                continue
            done.add(v)
            recv, cltv, hops = label[v]
            for scid, src, update, capacity, limit in into.get(v, ()):
                if not update.htlc_minimum_msat <= recv <= limit or scid in failed:
                    continue
                pen = 0 if scorer is None else scorer.channel_penalty_msat(scid, src, v, recv, capacity, score_params)
                if src == payer:  # the payer pays no fee to itself
                    if pen < U64_MAX and (best is None or d + pen < best[0]):
                        best = (d + pen, v, scid)
                    continue
                if src in done or hops + 2 > MAX_PATH_LENGTH_ESTIMATE or pen >= U64_MAX:
                    continue
                fee = update.fees.base_msat + recv * update.fees.proportional_millionths // 1_000_000
                delta = update.cltv_expiry_delta
                if cltv + delta > max_total_cltv - final_cltv or recv + fee > amount + max_fee:
                    continue
                if d + fee + pen < cost.get(src, math.inf):
                    cost[src], label[src] = d + fee + pen, (recv + fee, cltv + delta, hops + 1)
                    nxt[src] = (v, scid, fee, delta)
                    heapq.heappush(heap, (d + fee + pen, order[src], src))
        if best is not None:
            total, v, scid = best
            hops_out = []
            while nxt[v] is not None:
                w, next_scid, fee, delta = nxt[v]
                hops_out.append((v, scid, fee, delta))
                v, scid = w, next_scid
            hops_out.append((v, scid, amount, final_cltv))
            return hops_out, total
    return None


def train(scorer: ProbabilisticScorer, g: NetworkGraph, data) -> None:
    """Teach the scorer about a few channels, in either direction, failed or succeeded."""
    for scid, info in sorted(g.channels().items()):
        if not data.draw(st.booleans()):
            continue
        src = data.draw(st.sampled_from([info.node_one, info.node_two]))
        d = info.as_directed_from(src)
        if d is None:
            continue
        amount = data.draw(st.integers(1, info.capacity_sats * 1000))
        p = Path((RouteHop(d[1], b"", scid, b"", amount, 18, True),), None)
        when = timedelta(seconds=T0 + data.draw(st.integers(0, 3600)))
        if data.draw(st.booleans()):
            scorer.payment_path_failed(p, scid, when)
        else:
            scorer.payment_path_successful(p, when)


class FlatScorer:
    """Any object with ``channel_penalty_msat`` may score: the router asks it about every channel."""

    def channel_penalty_msat(self, scid, source, target, amount_msat, capacity_msat, score_params) -> int:
        return U64_MAX if scid % 7 == 0 else (scid * 37 + amount_msat // 1000) % 500


@settings(max_examples=300, deadline=None)
@given(channel_specs, st.data())
def test_the_search_finds_exactly_the_route_a_plain_dijkstra_finds(specs, data):
    g = graph_of(specs)
    payer_i = data.draw(st.integers(0, NODES - 1))
    payer, payee = K[payer_i], K[(payer_i + data.draw(st.integers(1, NODES - 1))) % NODES]
    capacities = [c * 1000 for _, _, c, _, _ in specs] or [1000]
    small = st.integers(1, 1_000_000)
    amount = data.draw(st.one_of(small, small, small, st.integers(1, 60_000_000), st.sampled_from(capacities),
                                 st.sampled_from(capacities).map(lambda c: c // 4)))
    failed = frozenset(data.draw(st.lists(st.integers(1, len(specs) + 1), max_size=2)))
    kind = data.draw(st.sampled_from(["default", "zero", "live", "linear", "none", "flat"]))
    score_params = {"zero": ZERO, "live": ProbabilisticScoringFeeParameters(liquidity_penalty_multiplier_msat=30_000),
                    "linear": ProbabilisticScoringFeeParameters(linear_success_probability=True)}.get(kind, DEFAULT)
    scorer: Any = {"none": None, "flat": FlatScorer()}.get(kind, ProbabilisticScorer(None, g))
    if isinstance(scorer, ProbabilisticScorer):
        train(scorer, g, data)
    final_cltv, max_total = data.draw(st.sampled_from([(18, 1008), (40, 200)]))
    rp = RouteParameters.from_payment_params_and_value(
        PaymentParameters(payee, final_cltv, max_total_cltv_expiry_delta=max_total, previously_failed_channels=tuple(
            sorted(failed))), amount)
    expected = reference_path(g, scorer, score_params, payer, payee, amount, final_cltv,
                              rp.max_total_routing_fee_msat, max_total, failed)
    try:
        path, cost = _find_path(payer, rp, g, None, None, scorer, score_params)
    except LightningError as e:
        assert e.err == "Failed to find a path to the given destination" and expected is None
        return
    assert expected is not None
    got = [(h.pubkey, h.short_channel_id, h.fee_msat, h.cltv_expiry_delta) for h in path.hops]
    assert (got, cost) == expected
    assert all(h.maybe_announced_channel for h in path.hops)


def test_a_first_hop_outside_the_graph_reaches_the_payee_through_the_search():
    """First hops come from ``list_usable_channels``; the route through one takes the graph's labels after it."""
    g = NetworkGraph(Network.Regtest)
    g.add_channel(1, K[1], K[2], 100_000, T0)
    for node in (K[1], K[2]):
        g.update_channel(1, node, T0, True, 30, 1, 100_000_000, 1000, 100)
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(K[2], 40), 5_000_000)
    path, cost = _find_path(K[0], rp, g, [first_hop(9, K[1])], None, None, ZERO)
    assert [(h.pubkey, h.short_channel_id, h.fee_msat, h.cltv_expiry_delta, h.maybe_announced_channel)
            for h in path.hops] == [(K[1], 9, 1500, 30, False), (K[2], 1, 5_000_000, 40, True)]
    assert cost == 1500


# --- the no-data penalty as a step table -----------------------------------------------------------------------


def looked_up(ratio: float) -> int:
    bounds, values = _no_data_steps()
    return values[bisect.bisect_right(bounds, ratio)]


def test_the_no_data_penalty_steps_start_where_the_formula_rises():
    bounds, values = _no_data_steps()
    assert len(values) == len(bounds) + 1 > 300
    assert list(bounds) == sorted(set(bounds)) and 0.0 < bounds[0] and bounds[-1] <= 1.0
    assert list(values) == sorted(set(values))
    assert values[0] == _no_data_neg_log(0.0) and values[-1] == _no_data_neg_log(1.0) == 4096
    for i, b in enumerate(bounds):
        before = math.nextafter(b, 0.0)
        assert _no_data_neg_log(before) == values[i] == looked_up(before)
        assert _no_data_neg_log(b) == values[i + 1] == looked_up(b)


@given(st.floats(0.0, 1.0))
def test_the_step_table_gives_the_formulas_value_at_any_ratio(ratio):
    assert looked_up(ratio) == _no_data_neg_log(ratio)


@given(st.integers(1, 2_100_000_000_000_000_000), st.data())
def test_the_no_data_log_is_the_scorers_for_a_channel_it_knows_nothing_of(capacity, data):
    amount = data.draw(st.integers(0, capacity - 1))
    num, den = success_probability(amount, 0, capacity, capacity, False, True)
    assert _no_data_neg_log(amount / float(capacity)) == min(negative_log10_times_2048(num, den), 4096)
    assert looked_up(amount / float(capacity)) == _no_data_neg_log(amount / float(capacity))


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(1, 2_100_000_000_000_000_000), st.data())
def test_the_historical_steps_price_as_the_scorer_combines(hist, hist_amount, capacity, data):
    amount = data.draw(st.integers(0, capacity - 1))
    bounds, flat, per_msat = _no_data_historical_steps(hist, hist_amount)
    i = bisect.bisect_right(bounds, amount / float(capacity))
    nl = _no_data_neg_log(amount / float(capacity))
    assert flat[i] + min(per_msat[i] * amount, U64_MAX) // 2**31 == _combined_penalty_msat(amount, nl, hist,
                                                                                             hist_amount)
