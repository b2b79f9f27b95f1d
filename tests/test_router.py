"""find_route and DefaultRouter: LDK's hop semantics, limits, errors, and cheapest paths."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ldkkit.bitcoin import Network
from ldkkit.routing.gossip import NetworkGraph
from ldkkit.routing.router import (
    DefaultRouter,
    LightningError,
    PaymentParameters,
    Route,
    RouteParameters,
    _find_path,
    find_route,
)
from ldkkit.routing.scoring import ProbabilisticScorer, ProbabilisticScoringFeeParameters
from ldkkit.types import PublicKey

K = [PublicKey.from_secret_key(bytes([i + 1]) * 32) for i in range(8)]
P, X, Y, Z, Q = K[:5]  # payer, three forwarders, payee
T0 = 1_700_000_000
AMOUNT = 10_000_000
DEFAULT = ProbabilisticScoringFeeParameters()
ZERO = ProbabilisticScoringFeeParameters.zero_penalty()


@dataclass
class Counterparty:
    node_id: PublicKey


@dataclass
class FirstHop:
    """A stand-in for ``ChannelDetails``: just what the router reads."""

    short_channel_id: Optional[int]
    counterparty: Counterparty
    next_outbound_htlc_limit_msat: int
    next_outbound_htlc_minimum_msat: int = 1
    is_usable: bool = True


def first_hop(scid: int, node: PublicKey, limit: int = 10**10, **kw) -> FirstHop:
    return FirstHop(scid, Counterparty(node), limit, **kw)


def chan(g: NetworkGraph, scid: int, a: PublicKey, b: PublicKey, *, capacity: int = 1_000_000, fee: int = 1000,
         ppm: int = 100, cltv: int = 40, hmin: int = 1, hmax: Optional[int] = None, enabled: bool = True,
         b_policy: Optional[dict] = None) -> None:
    """A channel whose two directions share a policy, unless ``b_policy`` overrides b's."""
    g.add_channel(scid, a, b, capacity, T0)
    policy = dict(enabled=enabled, cltv=cltv, hmin=hmin, hmax=capacity * 1000 if hmax is None else hmax,
                  fee=fee, ppm=ppm)
    for node, p in ((a, policy), (b, {**policy, **(b_policy or {})})):
        g.update_channel(scid, node, T0, p["enabled"], p["cltv"], p["hmin"], p["hmax"], p["fee"], p["ppm"])


def params(payee: PublicKey = Q, amount: int = AMOUNT, final_cltv: int = 40, **kw) -> RouteParameters:
    pay = PaymentParameters.from_node_id(payee, final_cltv)
    if kw:
        pay = PaymentParameters(payee, final_cltv, **kw)
    return RouteParameters.from_payment_params_and_value(pay, amount)


def route(g: NetworkGraph, rp: RouteParameters, first_hops=None, scorer=None, score_params=DEFAULT,
          payer: PublicKey = P) -> Route:
    scorer = ProbabilisticScorer(None, g) if scorer is None else scorer
    return find_route(payer, rp, g, first_hops, None, scorer, score_params, bytes(32))


def scids(r: Route) -> list[int]:
    return [h.short_channel_id for h in r.paths[0].hops]


# --- parameters ------------------------------------------------------------------------------------------


def test_payment_parameters_have_ldks_defaults():
    pp = PaymentParameters.from_node_id(Q, 40)
    assert (pp.final_cltv_expiry_delta, pp.expiry_time, pp.max_total_cltv_expiry_delta) == (40, None, 1008)
    assert (pp.max_path_count, pp.max_channel_saturation_power_of_half) == (10, 2)
    assert pp.previously_failed_channels == () and not pp.allow_mpp
    assert PaymentParameters.for_keysend(Q, 40, True).allow_mpp


def test_failed_channels_are_added_to_a_new_copy():
    pp = PaymentParameters.from_node_id(Q, 40)
    retry = pp.with_previously_failed_channel(7).with_previously_failed_channel(9).with_previously_failed_channel(7)
    assert retry.previously_failed_channels == (7, 9) and pp.previously_failed_channels == ()
    assert PaymentParameters.decode(retry.encode()) == retry


def test_route_parameters_budget_one_percent_plus_fifty_sat_in_fees():
    rp = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(Q, 40), 123_456_789)
    assert rp.max_total_routing_fee_msat == 1_234_567 + 50_000
    assert RouteParameters.decode(rp.encode()) == rp


# --- hops ------------------------------------------------------------------------------------------------


@pytest.fixture
def line() -> NetworkGraph:
    """P -1- X -2- Y -3- Q, where X and Y charge different fees and CLTV deltas."""
    g = NetworkGraph(Network.Regtest)
    chan(g, 1, P, X, fee=9999, ppm=9999, cltv=99)  # P's own policy: never charged
    chan(g, 2, X, Y, fee=1000, ppm=100, cltv=144)
    chan(g, 3, Y, Q, fee=2000, ppm=500, cltv=80)
    return g


def test_route_hops_follow_ldks_conventions(line):
    r = route(line, params(final_cltv=42))
    x, y, q = r.paths[0].hops
    y_fee = 2000 + AMOUNT * 500 // 1_000_000  # Y forwards AMOUNT over channel 3
    x_fee = 1000 + (AMOUNT + y_fee) * 100 // 1_000_000  # X forwards AMOUNT + Y's fee over channel 2
    assert [h.pubkey for h in (x, y, q)] == [X, Y, Q]  # hops start after the payer
    assert [h.short_channel_id for h in (x, y, q)] == [1, 2, 3]  # the channel into each hop's node
    assert [h.fee_msat for h in (x, y, q)] == [x_fee, y_fee, AMOUNT]  # fee for the next channel; last: the amount
    assert [h.cltv_expiry_delta for h in (x, y, q)] == [144, 80, 42]  # delta of the next channel; last: final
    assert all(h.maybe_announced_channel for h in (x, y, q))
    assert r.paths[0].fee_msat() == r.get_total_fees() == x_fee + y_fee
    assert r.paths[0].final_value_msat() == r.get_total_amount() == AMOUNT
    assert r.route_params == params(final_cltv=42)


def test_a_direct_channel_pays_no_fee():
    g = NetworkGraph(Network.Regtest)
    chan(g, 1, P, Q, fee=5000)
    r = route(g, params())
    assert len(r.paths[0].hops) == 1 and r.get_total_fees() == 0
    assert r.paths[0].hops[0].fee_msat == AMOUNT


def test_a_private_first_hop_to_the_payee_is_a_zero_fee_route_outside_the_graph():
    g = NetworkGraph(Network.Regtest)
    r = route(g, params(), first_hops=[first_hop(77, Q)])
    (hop,) = r.paths[0].hops
    assert (hop.pubkey, hop.short_channel_id, hop.fee_msat, hop.maybe_announced_channel) == (Q, 77, AMOUNT, False)
    assert r.get_total_fees() == 0


def test_first_hops_replace_the_payers_graph_channels(line):
    chan(line, 4, P, Y, fee=0, ppm=0)
    assert scids(route(line, params())) == [4, 3]
    r = route(line, params(), first_hops=[first_hop(1, X)])  # channel 4 is not (or no longer) usable
    assert scids(r) == [1, 2, 3] and r.paths[0].hops[0].maybe_announced_channel


def test_first_hops_too_small_or_unusable_are_skipped(line):
    hops = [first_hop(1, X, limit=AMOUNT), first_hop(5, Y, is_usable=False)]
    with pytest.raises(LightningError, match="Failed to find a path"):
        route(line, params(), first_hops=hops)  # AMOUNT plus X's and Y's fees does not fit
    assert scids(route(line, params(), first_hops=[first_hop(1, X, limit=AMOUNT + 10_000)])) == [1, 2, 3]


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_params, first_hops, message",
    [
        (lambda: params(payee=P), None, "Cannot generate a route to ourselves"),
        (lambda: params(payee=Z), None, "Failed to find a path to the given destination"),
        (lambda: params(payee=K[7]), None, "Failed to find a path to the given destination"),
        (lambda: params(amount=0), None, "Cannot send a payment of 0 msat"),
        (lambda: params(), [], "Cannot route when there are no outbound routes away from us"),
        (lambda: params(), [first_hop(1, P)], "First hop cannot have our_node_pubkey as a destination."),
        (lambda: params(final_cltv=40, max_total_cltv_expiry_delta=40), None,
         "Can't find a route where the maximum total CLTV expiry delta is below the final CLTV expiry."),
        (lambda: params(max_path_count=0), None, "Can't find a route with no paths allowed."),
    ],
)
def test_refusals_carry_ldks_message(line, make_params, first_hops, message):
    chan(line, 9, Z, K[6])  # a part of the graph the payer cannot reach
    with pytest.raises(LightningError) as info:
        route(line, make_params(), first_hops)
    assert info.value.err == message == str(info.value)


# --- limits ----------------------------------------------------------------------------------------------


@pytest.fixture
def diamond() -> NetworkGraph:
    """P to Q through X (cheap, channels 1 and 2) or through Y (dear, channels 3 and 4)."""
    g = NetworkGraph(Network.Regtest)
    chan(g, 1, P, X)
    chan(g, 2, X, Q, fee=1000)
    chan(g, 3, P, Y)
    chan(g, 4, Y, Q, fee=3000)
    return g


def test_the_cheapest_path_wins(diamond):
    assert scids(route(diamond, params())) == [1, 2]
    assert scids(route(diamond, params(), score_params=ZERO)) == [1, 2]


def test_previously_failed_channels_are_avoided(diamond):
    assert scids(route(diamond, params(previously_failed_channels=(2,)))) == [3, 4]
    with pytest.raises(LightningError, match="Failed to find a path"):
        route(diamond, params(previously_failed_channels=(2, 3)))


def test_a_disabled_direction_is_not_used(diamond):
    diamond.update_channel(2, X, T0 + 1, False, 40, 1, 10**9, 1000, 100)
    assert scids(route(diamond, params())) == [3, 4]
    assert scids(route(diamond, params(payee=X), payer=Q)) == [2]  # the other direction still works


def test_htlc_limits_are_respected(diamond):
    diamond.update_channel(2, X, T0 + 1, True, 40, 1, AMOUNT - 1, 1000, 100)
    assert scids(route(diamond, params())) == [3, 4]
    diamond.update_channel(2, X, T0 + 2, True, 40, AMOUNT + 1, 10**9, 1000, 100)
    assert scids(route(diamond, params())) == [3, 4]
    diamond.update_channel(2, X, T0 + 3, True, 40, AMOUNT, AMOUNT, 1000, 100)
    assert scids(route(diamond, params())) == [1, 2]


def test_the_cltv_budget_is_respected(diamond):
    diamond.update_channel(2, X, T0 + 1, True, 900, 1, 10**9, 1000, 100)  # X's delta for forwarding to Q
    diamond.update_channel(1, P, T0 + 1, True, 999, 1, 10**9, 1000, 100)  # the payer's own delta never counts
    r = route(diamond, params(final_cltv=40))
    assert scids(r) == [1, 2] and sum(h.cltv_expiry_delta for h in r.paths[0].hops) == 900 + 40
    assert scids(route(diamond, params(final_cltv=40, max_total_cltv_expiry_delta=939))) == [3, 4]
    with pytest.raises(LightningError, match="Failed to find a path"):
        route(diamond, params(final_cltv=40, max_total_cltv_expiry_delta=939, previously_failed_channels=(4,)))


def test_the_fee_budget_is_respected(diamond):
    rp = params()
    tight = RouteParameters(rp.payment_params, AMOUNT, 1000 + AMOUNT * 100 // 1_000_000 - 1)
    with pytest.raises(LightningError, match="Failed to find a path"):
        route(diamond, tight)
    assert route(diamond, RouteParameters(rp.payment_params, AMOUNT, None)).get_total_fees() == 2000


def test_channels_are_kept_below_a_quarter_of_capacity_when_possible():
    g = NetworkGraph(Network.Regtest)
    chan(g, 1, P, X, capacity=100_000)
    chan(g, 2, X, Q, capacity=100_000, fee=0)  # 40% of its capacity: saturated
    chan(g, 3, P, Y)
    chan(g, 4, Y, Q, fee=5000)
    rp = params(amount=40_000_000)
    assert scids(route(g, rp)) == [3, 4]
    g.remove_channel(4)
    assert scids(route(g, rp)) == [1, 2]  # no other way: the limit is relaxed, as LDK does
    with pytest.raises(LightningError):
        route(g, params(amount=100_000_001))  # more than the channel holds


def test_routes_are_deterministic_and_ties_go_to_the_lower_scid():
    g = NetworkGraph(Network.Regtest)
    chan(g, 20, P, X)
    chan(g, 10, P, X)
    chan(g, 31, X, Q)
    chan(g, 30, X, Q)
    first = route(g, params())
    assert scids(first) == [10, 30]
    assert all(route(g, params()) == first for _ in range(3))


def test_what_the_scorer_learned_steers_the_next_route(diamond):
    scorer = ProbabilisticScorer(None, diamond)
    r = route(diamond, params(), scorer=scorer)
    scorer.payment_path_failed(r.paths[0], 2, timedelta(seconds=T0))
    assert scids(route(diamond, params(), scorer=scorer)) == [3, 4]
    assert scids(route(diamond, params(amount=AMOUNT // 10), scorer=scorer)) == [1, 2]


def test_any_object_with_channel_penalty_msat_can_score():
    class AvoidChannelTwo:
        def channel_penalty_msat(self, scid, source, target, amount_msat, capacity_msat, params):
            assert isinstance(source, PublicKey) and isinstance(target, PublicKey)
            return 10**9 if scid == 2 else 0

    g = NetworkGraph(Network.Regtest)
    chan(g, 1, P, X)
    chan(g, 2, X, Q, fee=0)
    chan(g, 3, P, Y)
    chan(g, 4, Y, Q, fee=5000)
    assert scids(route(g, params(), scorer=AvoidChannelTwo(), score_params=None)) == [3, 4]
    assert scids(find_route(P, params(), g, None, None, None, None)) == [1, 2]  # no scorer: fees alone


def test_default_router_takes_entropy_and_finds_routes(diamond):
    class Entropy:
        calls = 0

        def get_secure_random_bytes(self) -> bytes:
            self.calls += 1
            return bytes(32)

    entropy = Entropy()
    router = DefaultRouter(diamond, None, entropy, ProbabilisticScorer(None, diamond), DEFAULT)
    r = router.find_route(P, params(), None, None)
    assert scids(r) == [1, 2] and entropy.calls == 1
    assert Route.decode(r.encode()) == r


# --- invariants on random graphs -------------------------------------------------------------------------

NODES = 6
policies = st.fixed_dictionaries({
    "enabled": st.integers(0, 9).map(bool),
    "cltv": st.integers(0, 60),
    "hmax_pct": st.integers(10, 100),
    "fee": st.integers(0, 3000),
    "ppm": st.integers(0, 20_000),
})
channels = st.lists(
    st.tuples(st.integers(0, NODES - 1), st.integers(0, NODES - 1), st.integers(1_000, 200_000), policies, policies),
    min_size=3, max_size=14,
)


def random_graph(specs) -> NetworkGraph:
    """A graph of ``(a, b, capacity sats, a's policy, b's policy)`` channels; a policy without ``hmin`` has 1 msat."""
    g = NetworkGraph(Network.Regtest)
    for scid, (a, b, capacity, pa, pb) in enumerate(specs, start=1):
        if a == b:
            continue
        g.add_channel(scid, K[a], K[b], capacity, T0)
        for node, p in ((K[a], pa), (K[b], pb)):
            hmax = capacity * 1000 * p["hmax_pct"] // 100
            g.update_channel(scid, node, T0, p["enabled"], p["cltv"], p.get("hmin", 1), hmax, p["fee"], p["ppm"])
    return g


def walk(g: NetworkGraph, payer: PublicKey, hops) -> list[tuple]:
    """Each hop's (channel, policy, amount over it) for a path given as (node, scid) pairs."""
    out, prev = [], payer
    for node, scid in hops:
        info = g.channel(scid)
        directed = info.as_directed_from(prev)
        assert directed is not None and directed[1] == node, "a hop must follow a channel of the previous node"
        out.append((info, directed[0]))
        prev = node
    return out


def best_fee_by_brute_force(g: NetworkGraph, payer, payee, amount: int, max_fee: int) -> Optional[int]:
    """The cheapest fee over every simple path, saturation limit first, as the router does."""
    adjacency: dict = {}
    for scid, info in g.channels().items():
        for src in (info.node_one, info.node_two):
            if (d := info.as_directed_from(src)) is not None:
                adjacency.setdefault(src, []).append((d[1], scid))
    for saturation in (2, 0):
        best = None
        for hops in simple_paths(adjacency, payer, payee):
            fee = path_fee(g, payer, hops, amount, saturation)
            if fee is not None and fee <= max_fee and (best is None or fee < best):
                best = fee
        if best is not None:
            return best
    return None


def simple_paths(adjacency, start, end, seen=()):
    for node, scid in adjacency.get(start, ()):
        if node == end:
            yield ((node, scid),)
        elif node not in seen and node != start:
            for rest in simple_paths(adjacency, node, end, (*seen, start)):
                if all(n != start for n, _ in rest):
                    yield ((node, scid), *rest)


def path_fee(g, payer, hops, amount, saturation) -> Optional[int]:
    steps = walk(g, payer, hops)
    carried, fee_total = amount, 0
    for i in range(len(steps) - 1, -1, -1):
        info, update = steps[i]
        limit = min(update.htlc_maximum_msat, info.capacity_sats * 1000 >> saturation)
        if not update.enabled or not update.htlc_minimum_msat <= carried <= limit:
            return None
        if i > 0:  # the node before this channel charges for it, unless it is the payer
            fee = update.fees.base_msat + carried * update.fees.proportional_millionths // 1_000_000
            carried += fee
            fee_total += fee
    return fee_total


@given(channels, st.integers(1, 5_000_000), st.integers(0, NODES - 1), st.integers(0, NODES - 1))
def test_routes_obey_every_policy_and_are_cheapest_without_penalties(specs, amount, payer_i, payee_i):
    assume(payer_i != payee_i)
    g, payer, payee = random_graph(specs), K[payer_i], K[payee_i]
    rp = params(payee=payee, amount=amount, final_cltv=18)
    expected = best_fee_by_brute_force(g, payer, payee, amount, rp.max_total_routing_fee_msat)
    try:
        r = route(g, rp, score_params=ZERO, payer=payer)
    except LightningError as e:
        assert e.err == "Failed to find a path to the given destination"
        assert expected is None
        return
    hops = r.paths[0].hops
    steps = walk(g, payer, [(h.pubkey, h.short_channel_id) for h in hops])
    carried = amount
    for i in range(len(hops) - 1, -1, -1):
        info, update = steps[i]
        assert update.enabled and update.htlc_minimum_msat <= carried <= min(update.htlc_maximum_msat,
                                                                             info.capacity_sats * 1000)
        if i > 0:
            assert hops[i - 1].fee_msat == update.fees.base_msat + carried * update.fees.proportional_millionths \
                // 1_000_000
            assert hops[i - 1].cltv_expiry_delta == update.cltv_expiry_delta
            carried += hops[i - 1].fee_msat
    assert hops[-1].fee_msat == amount and hops[-1].cltv_expiry_delta == 18
    assert sum(h.cltv_expiry_delta for h in hops) <= 1008
    assert r.paths[0].fee_msat() == carried - amount <= rp.max_total_routing_fee_msat
    assert len({h.pubkey for h in hops} | {payer}) == len(hops) + 1  # no node twice
    assert r.get_total_fees() == expected


def train(scorer: ProbabilisticScorer, g: NetworkGraph, data) -> None:
    """Feed the scorer some outcomes over random one- and two-hop paths of the graph."""
    from ldkkit.routing.router import Path, RouteHop

    for scid, info in sorted(g.channels().items())[: data.draw(st.integers(0, 6))]:
        d = info.as_directed_from(info.node_one)
        if d is None:
            continue
        amount = data.draw(st.integers(1, info.capacity_sats * 1000))
        p = Path((RouteHop(d[1], b"", scid, b"", amount, 18, True),), None)
        when = timedelta(seconds=T0 + data.draw(st.integers(0, 3600)))
        match data.draw(st.sampled_from(["failed", "ok", "probe"])):
            case "failed":
                scorer.payment_path_failed(p, scid, when)
            case "ok":
                scorer.payment_path_successful(p, when)
            case "probe":
                scorer.probe_successful(p, when)


@given(channels, st.integers(1, 5_000_000), st.data())
def test_the_search_prices_channels_exactly_as_the_scorer_does(specs, amount, data):
    g = random_graph(specs)
    scorer = ProbabilisticScorer(None, g)
    train(scorer, g, data)
    score_params = data.draw(st.sampled_from([
        DEFAULT, ZERO,
        ProbabilisticScoringFeeParameters(liquidity_penalty_multiplier_msat=30_000),
        ProbabilisticScoringFeeParameters(linear_success_probability=True),
        ProbabilisticScoringFeeParameters(historical_liquidity_penalty_amount_multiplier_msat=10**7),
    ]))
    payer, payee = K[0], K[data.draw(st.integers(1, NODES - 1))]
    try:
        path, cost = _find_path(payer, params(payee=payee, amount=amount), g, None, None, scorer, score_params)
    except LightningError:
        return
    steps = walk(g, payer, [(h.pubkey, h.short_channel_id) for h in path.hops])
    carried, expected, prev = amount, path.fee_msat(), [payer] + [h.pubkey for h in path.hops]
    for i in range(len(steps) - 1, -1, -1):
        info, update = steps[i]
        capacity = info.effective_capacity_msat(update)
        expected += scorer.channel_penalty_msat(path.hops[i].short_channel_id, prev[i], prev[i + 1], carried,
                                                capacity, score_params)
        if i > 0:
            carried += path.hops[i - 1].fee_msat
    assert cost == expected


@pytest.mark.parametrize("share", [1, 10, 100, 250, 400, 490, 499])
def test_a_channel_with_no_data_is_priced_by_the_search_as_the_scorer_prices_it(share):
    """The search inlines the scorer's no-data penalty (LDK's log table included): for amounts from 0.1 % to
    49.9 % of the channel, its cost is the fee plus exactly what ``channel_penalty_msat`` says."""
    g = NetworkGraph(Network.Bitcoin)
    chan(g, 1, P, X, capacity=10_000_000, fee=0, ppm=0)
    chan(g, 2, X, Q, capacity=1_000_000, fee=0, ppm=0)
    scorer = ProbabilisticScorer(None, g)
    amount = 1_000_000_000 * share // 1000
    path, cost = _find_path(P, params(amount=amount), g, [first_hop(1, X)], None, scorer, DEFAULT)
    assert [h.short_channel_id for h in path.hops] == [1, 2]
    assert cost == scorer.channel_penalty_msat(2, X, Q, amount, 1_000_000_000, DEFAULT) > 0


def test_a_route_is_put_in_words_only_when_its_log_line_is_read(monkeypatch):
    """find_route logs "Got route: ..." as LDK does; the kit's Logger makes those words only when the line is read
    (they cost more than the search on a small graph), and any other logger gets them at once, the same words."""
    from ldkkit.logger import Level, Logger
    from ldkkit.routing import router

    made = []
    monkeypatch.setattr(router.Route, "__str__", lambda self: made.append(self) or "the route")
    kit_logger, lines = Logger("payer"), []

    class OwnLogger:
        def info(self, module_path, message):
            lines.append(message)

    for logger in (kit_logger, OwnLogger()):
        router._log_lazily(logger, "info", "m", lambda: f"Got route: {router.Route((), None)}")
    assert len(made) == 1 and lines == ["Got route: the route"]  # the other logger's, at once
    assert kit_logger.lines(Level.Info) == ["     0.000 INFO  [m] Got route: the route"] and len(made) == 2
