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

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_router import DEFAULT, T0, ZERO, K, first_hop, random_graph

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
    _historical_steps,
    _no_data_historical_steps,
    _no_data_neg_log,
    _no_data_steps,
    _steps,
)
from ldkkit.routing.scoring import (
    ProbabilisticScorer,
    ProbabilisticScoringFeeParameters,
    _combined_penalty_msat,
    success_probability,
)
from ldkkit.types import PublicKey

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
    g = random_graph(specs)
    payer_i = data.draw(st.integers(0, NODES - 1))
    payer, payee = K[payer_i], K[(payer_i + data.draw(st.integers(1, NODES - 1))) % NODES]
    capacities = [c * 1000 for _, _, c, _, _ in specs] or [1000]
    small = st.integers(1, 1_000_000)
    amount = data.draw(st.one_of(small, small, small, st.integers(1, 60_000_000), st.sampled_from(capacities),
                                 st.sampled_from(capacities).map(lambda c: c // 4)))
    failed = frozenset(data.draw(st.lists(st.integers(1, len(specs) + 1), max_size=2)))
    kind = data.draw(st.sampled_from(["default", "zero", "live", "linear", "flat only", "per msat only", "none",
                                      "flat"]))
    score_params = {
        "zero": ZERO, "live": ProbabilisticScoringFeeParameters(liquidity_penalty_multiplier_msat=30_000),
        "linear": ProbabilisticScoringFeeParameters(linear_success_probability=True),
        "flat only": ProbabilisticScoringFeeParameters(historical_liquidity_penalty_amount_multiplier_msat=0),
        "per msat only": ProbabilisticScoringFeeParameters(historical_liquidity_penalty_multiplier_msat=0),
    }.get(kind, DEFAULT)
    scorer: Any = {"none": None, "flat": FlatScorer()}.get(kind, ProbabilisticScorer(None, g))
    if isinstance(scorer, ProbabilisticScorer):
        train(scorer, g, data)
    # Budgets of 40 and 46 blocks: routes whose deltas add up to exactly the budget come up.
    final_cltv, max_total = data.draw(st.sampled_from([(18, 1008), (40, 200), (40, 80), (18, 64)]))
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
    assert all(h.maybe_announced_channel and h.node_features == h.channel_features == b"" for h in path.hops)


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


def test_a_payment_of_a_whole_channel_is_priced_as_impossible_on_the_first_hop_and_further_on():
    """Only with the saturation limit relaxed does a channel carry its whole capacity; the scorer then adds its
    considered-impossible penalty and the worst historical one, and the search prices it the same."""
    g = NetworkGraph(Network.Regtest)
    capacities = (10_000, 1_000)  # sat: K0 - K1, K1 - K2 (K1 charges 1,000 msat to forward)
    for scid, capacity in enumerate(capacities, start=1):
        g.add_channel(scid, K[scid - 1], K[scid], capacity, T0)
        for node in (K[scid - 1], K[scid]):
            g.update_channel(scid, node, T0, True, 40, 1, capacity * 1000, 1000 * (scid - 1), 0)
    scorer = ProbabilisticScorer(None, g)
    # Multipliers past a float's 53 bits, and odd ones: the worst penalty's arithmetic is exact.
    huge = ProbabilisticScoringFeeParameters(historical_liquidity_penalty_multiplier_msat=2**60 + 1,
                                             historical_liquidity_penalty_amount_multiplier_msat=3**25)
    for score_params in (DEFAULT, huge):
        # 2^19 msat: the base amount penalty (2^17 × amount / 2^30) is a whole 64, not a rounded one.
        for payee, amount, impossible in ((K[1], 10_000_000, True), (K[2], 1_000_000, True), (K[2], 500_000, False),
                                          (K[2], 2**19, False)):
            rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(payee, 40), amount)
            path, cost = _find_path(K[0], rp, g, None, None, scorer, score_params)
            carried = [amount + path.fee_msat(), amount][-len(path.hops):]
            penalties = [scorer.channel_penalty_msat(scid, K[scid - 1], K[scid], carried[scid - 1], capacity * 1000,
                                                     score_params)
                         for scid, capacity in enumerate(capacities[:len(path.hops)], start=1)]
            assert path.fee_msat() == 1000 * (len(path.hops) - 1)
            assert cost == path.fee_msat() + sum(penalties) == reference_path(
                g, scorer, score_params, K[0], payee, amount, 40, rp.max_total_routing_fee_msat)[1]
            assert type(cost) is int
            if score_params is DEFAULT:  # (the huge multipliers price any amount above it)
                assert (penalties[-1] >= score_params.considered_impossible_penalty_msat) == impossible


def chain(length: int) -> tuple[NetworkGraph, list[PublicKey]]:
    """Nodes 0 - 1 - ... - length in a line, every channel alike."""
    keys = [PublicKey.from_secret_key((i + 100).to_bytes(32, "big")) for i in range(length + 1)]
    g = NetworkGraph(Network.Regtest)
    for scid in range(1, length + 1):
        g.add_channel(scid, keys[scid - 1], keys[scid], 100_000, T0)
        for node in (keys[scid - 1], keys[scid]):
            g.update_channel(scid, node, T0, True, 6, 1, 100_000_000, 10, 0)
    return g, keys


def test_a_route_has_at_most_nineteen_hops():
    """LDK's MAX_PATH_LENGTH_ESTIMATE: what a 1300-byte onion carries."""
    for length in (MAX_PATH_LENGTH_ESTIMATE, MAX_PATH_LENGTH_ESTIMATE + 1):
        g, keys = chain(length)
        rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(keys[-1], 18), 1_000_000)
        if length > MAX_PATH_LENGTH_ESTIMATE:
            with pytest.raises(LightningError):
                _find_path(keys[0], rp, g, None, None, None, ZERO)
            continue
        path, cost = _find_path(keys[0], rp, g, None, None, None, ZERO)
        assert len(path.hops) == length and cost == path.fee_msat() == 10 * (length - 1)
        assert [h.cltv_expiry_delta for h in path.hops] == [6] * (length - 1) + [18]


def test_a_node_reached_again_more_cheaply_leaves_a_stale_entry_that_does_not_stop_the_search():
    """A is first priced at 5,000 (its own channel to Q), then at 0 through B: its first entry, popped after A was
    expanded, is skipped; the payer is reached only through D, at 6,000."""
    a, b, d, payer, payee = K[1], K[2], K[3], K[0], K[5]
    g = NetworkGraph(Network.Regtest)
    for scid, (x, y, fee) in enumerate([(a, payee, 5_000), (b, payee, 0), (a, b, 0), (d, payee, 6_000),
                                        (payer, d, 0)], start=1):
        g.add_channel(scid, x, y, 100_000, T0)
        for node in (x, y):
            g.update_channel(scid, node, T0, True, 6, 1, 100_000_000, fee, 0)
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(payee, 18), 1_000_000)
    path, cost = _find_path(payer, rp, g, None, None, None, ZERO)
    assert [h.short_channel_id for h in path.hops] == [5, 4] and cost == 6_000


def test_the_payer_is_never_a_hop_of_its_own_route():
    """With first hops that leave out the payer's graph channel to V (V - Q reaches the payee), the only way on
    from its one first hop, to X, is back through the payer itself: no route."""
    p, v, x, q = K[0], K[1], K[2], K[3]
    g = NetworkGraph(Network.Regtest)
    for scid, (a, b) in enumerate([(p, v), (v, q), (p, x)], start=1):
        g.add_channel(scid, a, b, 100_000, T0)
        for node in (a, b):
            g.update_channel(scid, node, T0, True, 6, 1, 100_000_000, 0, 0)
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(q, 18), 1_000_000)
    assert [h.short_channel_id for h in _find_path(p, rp, g, None, None, None, ZERO)[0].hops] == [1, 2]
    with pytest.raises(LightningError, match="Failed to find a path to the given destination"):
        _find_path(p, rp, g, [first_hop(3, x)], None, None, ZERO)


class Refusing:
    """A scorer that prices some channels at u64::MAX (never use them) and every other at nothing."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused

    def channel_penalty_msat(self, scid, source, target, amount_msat, capacity_msat, score_params) -> int:
        return U64_MAX if scid in self.refused else 0


def test_a_channel_priced_at_u64_max_is_never_used():
    """Q is reached from A (free) or from B (1,000 msat); the payer has a channel to each."""
    p, a, b, q = K[0], K[1], K[2], K[3]
    g = NetworkGraph(Network.Regtest)
    for scid, (x, y, fee) in enumerate([(a, q, 0), (b, q, 1000), (p, b, 0), (p, a, 0)], start=1):
        g.add_channel(scid, x, y, 100_000, T0)
        for node in (x, y):
            g.update_channel(scid, node, T0, True, 6, 1, 100_000_000, fee, 0)
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(q, 18), 1_000_000)
    for refused, scids in (({1}, [3, 2]), ({4}, [3, 2]), (set(), [4, 1]), ({1, 3}, None), ({2, 4}, None)):
        if scids is None:
            with pytest.raises(LightningError):
                _find_path(p, rp, g, None, None, Refusing(refused), ZERO)
            continue
        path, cost = _find_path(p, rp, g, None, None, Refusing(refused), ZERO)
        assert [h.short_channel_id for h in path.hops] == scids and cost == path.fee_msat()


def test_the_fee_budget_may_be_spent_to_the_last_msat():
    p, a, q = K[0], K[1], K[2]
    g = NetworkGraph(Network.Regtest)
    for scid, (x, y) in enumerate([(p, a), (a, q)], start=1):
        g.add_channel(scid, x, y, 100_000, T0)
        for node in (x, y):
            g.update_channel(scid, node, T0, True, 6, 1, 100_000_000, 1000, 100)  # 1,100 msat on 1,000,000
    pay = PaymentParameters.from_node_id(q, 18)
    path, cost = _find_path(p, RouteParameters(pay, 1_000_000, 1_100), g, None, None, None, ZERO)
    assert path.fee_msat() == cost == 1_100
    with pytest.raises(LightningError):
        _find_path(p, RouteParameters(pay, 1_000_000, 1_099), g, None, None, None, ZERO)


def test_a_dead_end_too_long_to_route_through_does_not_stop_the_search():
    """Free channels lead 19 hops away from the payee, to nothing; the payer's route costs 10 msat. The search
    pops the far end of the dead end first, too far to expand, and goes on."""
    g, keys = chain(MAX_PATH_LENGTH_ESTIMATE)
    for scid in range(1, MAX_PATH_LENGTH_ESTIMATE + 1):
        for node in (keys[scid - 1], keys[scid]):
            g.update_channel(scid, node, T0 + 1, True, 6, 1, 100_000_000, 0, 0)
    payer, mid, payee = K[0], K[1], keys[-1]
    for scid, (x, y) in enumerate([(payer, mid), (mid, payee)], start=100):
        g.add_channel(scid, x, y, 100_000, T0)
        for node in (x, y):
            g.update_channel(scid, node, T0, True, 6, 1, 100_000_000, 10, 0)
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(payee, 18), 1_000_000)
    path, cost = _find_path(payer, rp, g, None, None, None, ZERO)
    assert [h.short_channel_id for h in path.hops] == [100, 101] and cost == 10


def test_of_labels_at_the_same_cost_the_first_found_is_kept():
    """U is priced at 100 msat three times: straight to Q (first, found when Q is expanded), through B at 150, and
    through C at 100 again with fewer CLTV blocks. The first stays U's label, so the route goes U -> Q."""
    p, u, b, c, q = K[0], K[1], *sorted(K[2:4]), K[4]  # B is expanded before C: the lower key
    g = NetworkGraph(Network.Regtest)
    for scid, (x, y, fee, cltv) in enumerate([(u, q, 100, 144), (b, q, 0, 6), (c, q, 0, 6), (u, b, 150, 6),
                                              (u, c, 100, 6), (p, u, 0, 6)], start=1):
        g.add_channel(scid, x, y, 100_000, T0)
        for node in (x, y):
            g.update_channel(scid, node, T0, True, cltv, 1, 100_000_000, fee, 0)
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(q, 18), 1_000_000)
    path, cost = _find_path(p, rp, g, None, None, None, ZERO)
    assert [h.short_channel_id for h in path.hops] == [6, 1] and cost == 100


# --- the no-data penalty as a step table -----------------------------------------------------------------------


def looked_up(ratio: float) -> int:
    bounds, values = _no_data_steps()
    return values[bisect.bisect_right(bounds, ratio)]


def test_the_no_data_penalty_steps_start_where_the_formula_rises():
    bounds, values = _steps(_no_data_neg_log)  # built afresh: _no_data_steps keeps its first table
    assert (bounds, values) == _no_data_steps()
    assert len(values) == len(bounds) + 1 > 300
    assert list(bounds) == sorted(set(bounds)) and 0.0 < bounds[0] and bounds[-1] <= 1.0
    assert list(values) == sorted(set(values))
    assert values[0] == _no_data_neg_log(0.0) and values[-1] == _no_data_neg_log(1.0) == 4096
    for i, b in enumerate(bounds):
        before = math.nextafter(b, 0.0)
        assert _no_data_neg_log(before) == values[i] == looked_up(before)
        assert _no_data_neg_log(b) == values[i + 1] == looked_up(b)


def test_a_step_table_finds_steps_at_either_end_of_the_floats():
    """A step on the smallest float above 0, one on 1.0 itself, one at a half, and none at all."""
    smallest = math.nextafter(0.0, 1.0)
    assert _steps(lambda r: (r >= smallest) + (r >= 0.5) * 3 + (r == 1.0) * 5) == ((smallest, 0.5, 1.0), (0, 1, 4, 9))
    assert _steps(lambda r: 7) == ((), (7,))
    assert _steps(lambda r: int(r * 4)) == ((0.25, 0.5, 0.75, 1.0), (0, 1, 2, 3, 4))


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
    bounds, values = _no_data_steps()
    flat, per_msat = _historical_steps(values, hist, hist_amount)
    assert _no_data_historical_steps(hist, hist_amount) == (bounds, flat, per_msat)
    i = bisect.bisect_right(bounds, amount / float(capacity))
    nl = _no_data_neg_log(amount / float(capacity))
    assert flat[i] + min(per_msat[i] * amount, U64_MAX) // 2**31 == _combined_penalty_msat(amount, nl, hist,
                                                                                             hist_amount)
