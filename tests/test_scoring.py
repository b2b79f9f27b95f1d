"""ProbabilisticScorer: LDK 0.1's update rules, decay, pricing and persistence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Network
from ldkkit.errors import DecodeError
from ldkkit.routing.gossip import NetworkGraph
from ldkkit.routing.log_approx import LOG10_TIMES_2048, negative_log10_times_2048
from ldkkit.routing.router import Path, RouteHop
from ldkkit.routing.scoring import (
    ChannelLiquidity,
    ProbabilisticScorer,
    ProbabilisticScoringDecayParameters,
    ProbabilisticScoringFeeParameters,
    success_probability,
)
from ldkkit.ser import encode
from ldkkit.types import PublicKey

A, B, C, D, E = (PublicKey.from_secret_key(bytes([i + 1]) * 32) for i in range(5))
CAP = 1_000_000_000  # msat: every channel holds 1M sat
AMOUNT = 100_000_000
T = timedelta(seconds=1_700_000_000)
HALF_LIFE = timedelta(minutes=30)
PARAMS = ProbabilisticScoringFeeParameters()


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda module, message: self.lines.append((level, message))


def make_graph() -> NetworkGraph:
    """A - B - C - D in a line (scids 1, 2, 3), every direction updated."""
    g = NetworkGraph(Network.Regtest)
    for scid, (x, y) in enumerate([(A, B), (B, C), (C, D)], start=1):
        g.add_channel(scid, x, y, CAP // 1000, 1)
        for node in (x, y):
            g.update_channel(scid, node, 2, True, 40, 1, CAP, 1000, 100)
    return g


def path(*hops: tuple[PublicKey, int], amount: int = AMOUNT) -> Path:
    """A path through (node, scid-into-node) hops, paying ``amount``; intermediate hops charge 1 sat."""
    route_hops = [RouteHop(node, b"", scid, b"", 1000, 40, True) for node, scid in hops[:-1]]
    node, scid = hops[-1]
    route_hops.append(RouteHop(node, b"", scid, b"", amount, 40, True))
    return Path(tuple(route_hops), None)


FORWARD = ((B, 1), (C, 2), (D, 3))  # A → D
BACKWARD = ((C, 3), (B, 2), (A, 1))  # D → A


@pytest.fixture
def scorer() -> ProbabilisticScorer:
    return ProbabilisticScorer(ProbabilisticScoringDecayParameters(), make_graph(), Recorder())


def bounds(scorer: ProbabilisticScorer, hops=FORWARD) -> list:
    return [scorer.estimated_channel_liquidity_range(scid, node) for node, scid in hops]


def test_ldk_0_1_default_parameters():
    assert ProbabilisticScoringDecayParameters() == ProbabilisticScoringDecayParameters(
        timedelta(days=14), timedelta(minutes=30))
    p = PARAMS
    assert (p.base_penalty_msat, p.base_penalty_amount_multiplier_msat) == (1024, 131_072)
    assert (p.liquidity_penalty_multiplier_msat, p.liquidity_penalty_amount_multiplier_msat) == (0, 0)
    assert (p.historical_liquidity_penalty_multiplier_msat,
            p.historical_liquidity_penalty_amount_multiplier_msat) == (10_000, 1_250)
    assert (p.anti_probing_penalty_msat, p.considered_impossible_penalty_msat) == (250, 100_000_000_000)
    assert p.linear_success_probability is False


def test_nothing_is_known_at_first(scorer):
    assert bounds(scorer) == [None, None, None]
    assert scorer.time_passed(T) is False


class TestUpdates:
    def test_a_failure_raises_lower_bounds_before_it_and_caps_the_failing_hop(self, scorer):
        assert scorer.payment_path_failed(path(*FORWARD), 3, T)
        assert bounds(scorer) == [(AMOUNT, CAP), (AMOUNT, CAP), (0, AMOUNT)]

    def test_hops_after_the_failure_learn_nothing(self, scorer):
        scorer.payment_path_failed(path(*FORWARD), 2, T)
        assert bounds(scorer) == [(AMOUNT, CAP), (0, AMOUNT), None]

    def test_the_final_amount_is_what_counts_not_the_amount_with_fees(self, scorer):
        scorer.payment_path_failed(path(*FORWARD, amount=12_345), 3, T)
        assert bounds(scorer)[0] == (12_345, CAP)

    def test_a_failure_at_the_first_hop_warns_but_still_scores(self, scorer):
        scorer.payment_path_failed(path(*FORWARD), 1, T)
        assert bounds(scorer) == [(0, AMOUNT), None, None]
        assert any(level == "warn" and "first hop" in m for level, m in scorer.logger.lines)

    def test_the_other_direction_sees_the_mirror_image(self, scorer):
        scorer.payment_path_failed(path(*FORWARD), 3, T)
        assert bounds(scorer, BACKWARD) == [(CAP - AMOUNT, CAP), (0, CAP - AMOUNT), (0, CAP - AMOUNT)]

    def test_success_moves_the_amount_out_of_reach_on_every_hop(self, scorer):
        assert scorer.payment_path_successful(path(*FORWARD), T)
        assert bounds(scorer) == [(0, CAP - AMOUNT)] * 3
        scorer.payment_path_successful(path(*FORWARD), T)
        assert bounds(scorer) == [(0, CAP - 2 * AMOUNT)] * 3

    def test_success_keeps_a_known_lower_bound(self, scorer):
        scorer.probe_successful(path(*FORWARD, amount=50_000_000), T)
        scorer.payment_path_successful(path(*FORWARD), T)
        assert bounds(scorer) == [(50_000_000, CAP - AMOUNT)] * 3

    def test_a_successful_probe_raises_every_lower_bound(self, scorer):
        assert scorer.probe_successful(path(*FORWARD), T)
        assert bounds(scorer) == [(AMOUNT, CAP)] * 3

    def test_a_failed_probe_learns_as_a_failed_payment(self, scorer):
        other = ProbabilisticScorer(None, scorer.network_graph)
        scorer.probe_failed(path(*FORWARD), 2, T)
        other.payment_path_failed(path(*FORWARD), 2, T)
        assert scorer.encode() == other.encode()

    def test_a_tighter_upper_bound_below_the_lower_bound_resets_the_lower_bound(self, scorer):
        scorer.probe_successful(path(*FORWARD), T)
        scorer.payment_path_failed(path(*FORWARD, amount=AMOUNT // 2), 1, T)
        assert bounds(scorer)[0] == (0, AMOUNT // 2)

    def test_channels_outside_the_graph_are_ignored(self, scorer):
        assert not scorer.payment_path_successful(path((E, 99)), T)
        assert not scorer.payment_path_failed(path((E, 99)), 99, T)
        assert scorer.estimated_channel_liquidity_range(99, E) is None
        assert any("do not have graph info" in m for _, m in scorer.logger.lines)

    def test_durations_may_be_given_in_seconds(self, scorer):
        scorer.probe_successful(path(*FORWARD), 1_700_000_000)
        scorer.time_passed(1_700_000_000 + HALF_LIFE.total_seconds())
        assert bounds(scorer)[0] == (AMOUNT // 2, CAP)


class TestDecay:
    def test_offsets_halve_after_one_half_life(self, scorer):
        scorer.payment_path_failed(path(*FORWARD), 3, T)
        assert scorer.time_passed(T + HALF_LIFE)
        half = AMOUNT // 2
        assert bounds(scorer) == [(half, CAP), (half, CAP), (0, CAP - (CAP - AMOUNT) // 2)]

    def test_two_half_lives_quarter_them(self, scorer):
        scorer.probe_successful(path(*FORWARD), T)
        scorer.time_passed(T + 2 * HALF_LIFE)
        assert bounds(scorer)[0] == (AMOUNT // 4, CAP)

    def test_decay_counts_from_the_last_update(self, scorer):
        scorer.probe_successful(path(*FORWARD), T)
        scorer.time_passed(T + HALF_LIFE)
        scorer.time_passed(T + 2 * HALF_LIFE)
        assert bounds(scorer)[0] == (AMOUNT // 4, CAP)

    def test_no_time_no_change(self, scorer):
        scorer.probe_successful(path(*FORWARD), T)
        assert not scorer.time_passed(T)
        assert bounds(scorer)[0] == (AMOUNT, CAP)

    def test_history_outlives_the_bounds_then_decays_away(self, scorer):
        scorer.probe_successful(path(*FORWARD), T)
        scorer.time_passed(T + timedelta(days=1))
        assert bounds(scorer)[0] == (0, CAP)  # the bounds have decayed, the history has not
        lower, upper = scorer.historical_estimated_channel_liquidity_probabilities(1, B)
        assert sum(lower) == sum(upper) == 32
        scorer.time_passed(T + timedelta(days=14, seconds=1))
        lower, upper = scorer.historical_estimated_channel_liquidity_probabilities(1, B)
        assert sum(lower) == sum(upper) == 16  # halved after 14 days without news
        scorer.time_passed(T + timedelta(days=400))
        assert bounds(scorer)[0] is None  # nothing left: the entry is dropped


class TestPricing:
    def penalty(self, scorer, amount, scid=2, source=B, target=C, params=PARAMS):
        return scorer.channel_penalty_msat(scid, source, target, amount, CAP, params)

    def test_with_no_data_the_price_is_base_anti_probing_and_the_no_history_estimate(self, scorer):
        amount = 10_000_000
        num, den = success_probability(amount, 0, CAP, CAP, False, True)
        nl = negative_log10_times_2048(num, den)  # LDK's table, not the exact logarithm
        expected = 1024 + 131_072 * amount // 2**30 + 250 + nl * 10_000 // 2048 + nl * 1250 * amount // 2**31
        assert self.penalty(scorer, amount) == expected

    def test_bigger_payments_cost_more(self, scorer):
        prices = [self.penalty(scorer, a) for a in (10**6, 10**7, 10**8, 5 * 10**8)]
        assert prices == sorted(prices) and len(set(prices)) == 4

    def test_more_than_the_upper_bound_is_considered_impossible(self, scorer):
        scorer.payment_path_failed(path(*FORWARD), 2, T)
        assert self.penalty(scorer, AMOUNT) >= PARAMS.considered_impossible_penalty_msat
        assert self.penalty(scorer, AMOUNT // 2) < PARAMS.considered_impossible_penalty_msat
        assert self.penalty(scorer, CAP) >= PARAMS.considered_impossible_penalty_msat

    def test_a_history_of_successes_makes_a_channel_cheaper(self, scorer):
        before = self.penalty(scorer, AMOUNT)
        for _ in range(5):
            scorer.probe_successful(path(*FORWARD, amount=2 * AMOUNT), T)
        scorer.time_passed(T + timedelta(days=1))  # the bounds are forgotten; the history remains
        assert bounds(scorer)[1] == (0, CAP)
        assert self.penalty(scorer, AMOUNT) < before

    def test_a_history_of_failures_makes_a_channel_dearer(self, scorer):
        before = self.penalty(scorer, AMOUNT)
        for _ in range(5):
            scorer.payment_path_failed(path(*FORWARD, amount=AMOUNT), 2, T)
        scorer.time_passed(T + timedelta(days=1))
        assert self.penalty(scorer, AMOUNT) > before

    def test_live_bounds_are_priced_when_their_multipliers_are_set(self, scorer):
        live = ProbabilisticScoringFeeParameters(liquidity_penalty_multiplier_msat=30_000,
                                                 historical_liquidity_penalty_multiplier_msat=0,
                                                 historical_liquidity_penalty_amount_multiplier_msat=0)
        unknown = self.penalty(scorer, AMOUNT, params=live)
        scorer.probe_successful(path(*FORWARD, amount=2 * AMOUNT), T)
        assert self.penalty(scorer, AMOUNT, params=live) < unknown  # below the lower bound: certain

    def test_the_direction_matters(self, scorer):
        scorer.payment_path_failed(path(*FORWARD), 2, T)
        assert self.penalty(scorer, AMOUNT, source=C, target=B) < PARAMS.considered_impossible_penalty_msat

    def test_channels_outside_the_graph_cost_nothing(self, scorer):
        assert self.penalty(scorer, AMOUNT, scid=99, source=A, target=E) == 0

    def test_zero_penalty_parameters_price_everything_at_zero(self, scorer):
        zero = ProbabilisticScoringFeeParameters.zero_penalty()
        assert self.penalty(scorer, AMOUNT, params=zero) == 0


# --- invariants ------------------------------------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["failed", "successful", "probe_ok", "probe_failed", "time"]),
        st.booleans(),  # forward or backward path
        st.integers(1, 3),  # path length
        st.integers(0, 2 * CAP),  # amount
        st.integers(0, 3),  # failing hop (3: none of them)
        st.integers(0, 10**6),  # seconds passing
    ),
    max_size=25,
)


@given(operations)
def test_bounds_always_satisfy_zero_le_lower_le_upper_le_capacity(ops):
    scorer = ProbabilisticScorer(None, make_graph())
    now = T
    for kind, forward, length, amount, fail_at, seconds in ops:
        hops = (FORWARD if forward else BACKWARD)[:length]
        p = path(*hops, amount=amount)
        scid = hops[fail_at][1] if fail_at < length else 12345
        now += timedelta(seconds=seconds)
        match kind:
            case "failed":
                scorer.payment_path_failed(p, scid, now)
            case "successful":
                scorer.payment_path_successful(p, now)
            case "probe_ok":
                scorer.probe_successful(p, now)
            case "probe_failed":
                scorer.probe_failed(p, scid, now)
            case "time":
                scorer.time_passed(now)
        for node, scid in FORWARD + BACKWARD:
            got = scorer.estimated_channel_liquidity_range(scid, node)
            assert got is None or 0 <= got[0] <= got[1] <= CAP
            assert 0 <= scorer.channel_penalty_msat(scid, C if node == B else B, node, amount, CAP, PARAMS) < 2**64
    back = ProbabilisticScorer.decode(scorer.encode(), scorer.network_graph)
    assert back.encode() == scorer.encode()


# --- persistence -----------------------------------------------------------------------------------------


def test_the_scorer_round_trips_through_bytes(scorer):
    scorer.payment_path_failed(path(*FORWARD), 3, T)
    scorer.payment_path_successful(path(*BACKWARD), T + timedelta(seconds=5))
    back = ProbabilisticScorer.decode(scorer.encode(), scorer.network_graph)
    assert bounds(back) == bounds(scorer) and bounds(back, BACKWARD) == bounds(scorer, BACKWARD)
    assert back.historical_estimated_channel_liquidity_probabilities(2, C) == \
        scorer.historical_estimated_channel_liquidity_probabilities(2, C)
    assert back.channel_penalty_msat(2, B, C, AMOUNT, CAP, PARAMS) == \
        scorer.channel_penalty_msat(2, B, C, AMOUNT, CAP, PARAMS)


@pytest.mark.parametrize(
    "value",
    [
        "not a scorer",
        ((1,),),
        ((1, "x"),),
        ((1, ChannelLiquidity(0, 0, (0,) * 3, (0,) * 32, T, T)),),
        ((-1, ChannelLiquidity.new(T)),),
        ((1, ChannelLiquidity.new(T)), (1, ChannelLiquidity.new(T))),
    ],
)
def test_bytes_that_are_not_a_scorer_raise_invalid_value(value):
    with pytest.raises(DecodeError.InvalidValue):
        ProbabilisticScorer.decode(encode(value), make_graph())


def test_truncated_scorer_bytes_raise_short_read(scorer):
    scorer.probe_successful(path(*FORWARD), T)
    with pytest.raises(DecodeError.ShortRead):
        ProbabilisticScorer.decode(scorer.encode()[:-2], scorer.network_graph)


class TestLog10Table:
    """The scorer takes -log10 from LDK's lookup table (``routing::log_approx``), so its penalties are LDK's."""

    def test_the_table_is_ldks(self):
        # Rows copied from rust-lightning v0.1.12, lightning/src/routing/log_approx.rs.
        assert LOG10_TIMES_2048[1] == (617,) * 32 + (977,) * 32
        assert LOG10_TIMES_2048[3][::8] == (1850, 1954, 2048, 2133, 2210, 2281, 2347, 2409)
        assert LOG10_TIMES_2048[63][:8] == (38840, 38854, 38867, 38881, 38894, 38907, 38920, 38932)

    def test_a_number_is_looked_up_by_its_highest_bit_and_the_six_after_it(self):
        assert negative_log10_times_2048(1 << 40, 1 << 50) == LOG10_TIMES_2048[50][0] - LOG10_TIMES_2048[40][0]
        x = 0b1011011 << 30  # highest bit 36, then 011011
        assert negative_log10_times_2048(x, 1 << 62) == LOG10_TIMES_2048[62][0] - LOG10_TIMES_2048[36][0b011011]
        # Below 64 the row is indexed by the number's own low bits, as in LDK: 1/10 gives 1954, not 2048.
        assert negative_log10_times_2048(1, 10) == 1954

    def test_a_certain_payment_costs_nothing(self):
        assert negative_log10_times_2048(5, 5) == 0 and negative_log10_times_2048(7, 5) == 0
