"""Learning channel liquidity from payment outcomes, to price channels for the router.

Mirrors ``lightning::routing::scoring``. The :class:`ProbabilisticScorer` keeps, for each
public channel it has heard about, a lower and an upper bound on the liquidity available in
each direction, and a history of where those bounds have been. Failed and successful
payments and probes move the bounds (``payment_path_failed`` and friends); ``time_passed``
decays them back towards "no idea". The router asks ``channel_penalty_msat`` what it would
pay to avoid a channel: a price from the estimated probability that the payment gets through.
"""

from __future__ import annotations

import bisect
import threading
from datetime import timedelta
from typing import Any, Optional, Union

from ..ser import U16, U64, DecodeError, Record, decode, encode
from ..types import PublicKey
from .gossip import NetworkGraph
from .log_approx import negative_log10_times_2048
from .router import Path, _AllChannels, _log, _PenaltyModel

_MODULE = "lightning::routing::scoring"
_U64_MAX = (1 << 64) - 1

#: Bounds ``-log10`` of a success probability, so that no channel's penalty is unbounded.
NEGATIVE_LOG10_UPPER_BOUND = 2
#: Failure probabilities below 1/64 are rounded down to no penalty (LDK: the log gets noisy).
PRECISION_LOWER_BOUND_DENOMINATOR = 64
AMOUNT_PENALTY_DIVISOR = 1 << 20
BASE_AMOUNT_PENALTY_DIVISOR = 1 << 30
_BILLIONISH = 1024.0 * 1024.0 * 1024.0 * 64.0

# The liquidity history: 32 buckets over a channel's capacity in 16384ths, narrow at the edges
# (where liquidity usually sits) and wide in the middle.
POSITION_TICKS = 1 << 14
BUCKET_FIXED_POINT_ONE = 32
BUCKET_START_POS = (
    0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 10240, 12288,
    13312, 14336, 15360, 15872, 16128, 16256, 16320, 16352, 16368, 16376, 16380, 16382, 16383, 16384,
)
_NO_HISTORY = (0,) * 32

Duration = Union[timedelta, int, float]


class ProbabilisticScoringDecayParameters(Record):
    """Mirrors ``lightning::routing::scoring::ProbabilisticScoringDecayParameters`` (LDK 0.1 defaults).

    Every ``liquidity_offset_half_life`` without news, the bounds' distances from 0 and from
    the capacity halve. History buckets halve after ``historical_no_updates_half_life``
    without a new data point.
    """

    historical_no_updates_half_life: timedelta = timedelta(days=14)
    liquidity_offset_half_life: timedelta = timedelta(minutes=30)


class ProbabilisticScoringFeeParameters(Record):
    """Mirrors ``lightning::routing::scoring::ProbabilisticScoringFeeParameters`` (LDK 0.1 defaults).

    A channel's penalty is the sum of:

    - ``base_penalty_msat`` + ``base_penalty_amount_multiplier_msat`` × amount / 2^30;
    - the liquidity penalty from the live bounds: ``-log10(P)`` × ``liquidity_penalty_multiplier_msat``
      + ``-log10(P)`` × ``liquidity_penalty_amount_multiplier_msat`` × amount / 2^20 (both 0 in 0.1,
      which relies on the history instead);
    - the same from the bounds' history, with the ``historical_*`` multipliers;
    - ``anti_probing_penalty_msat`` if the channel's ``htlc_maximum_msat`` is at least half its capacity;
    - ``considered_impossible_penalty_msat`` if the amount is at or above the upper bound.

    ``-log10(P)`` is capped at 2 (P = 1%). Not modelled: ``manual_node_penalties``.
    """

    base_penalty_msat: U64 = 1024
    base_penalty_amount_multiplier_msat: U64 = 131_072
    liquidity_penalty_multiplier_msat: U64 = 0
    liquidity_penalty_amount_multiplier_msat: U64 = 0
    historical_liquidity_penalty_multiplier_msat: U64 = 10_000
    historical_liquidity_penalty_amount_multiplier_msat: U64 = 1_250
    anti_probing_penalty_msat: U64 = 250
    considered_impossible_penalty_msat: U64 = 100_000_000_000
    linear_success_probability: bool = False

    @classmethod
    def zero_penalty(cls) -> ProbabilisticScoringFeeParameters:
        """No penalties at all: the router then minimises fees alone (LDK's test helper)."""
        return cls(0, 0, 0, 0, 0, 0, 0, 0, True)


class ChannelLiquidity(Record, frozen=False):
    """Mirrors LDK's private ``ChannelLiquidity``: what the scorer knows of one channel.

    Oriented from ``node_one`` to ``node_two``: the lower bound that way is
    ``min_liquidity_offset_msat`` and the upper bound is the capacity less
    ``max_liquidity_offset_msat``. The other direction swaps the two offsets (whatever
    ``node_one`` can send, ``node_two`` cannot). The histories are 32 buckets each, in
    1/32nds of a data point.
    """

    min_liquidity_offset_msat: U64
    max_liquidity_offset_msat: U64
    min_liquidity_offset_history: tuple[U16, ...]
    max_liquidity_offset_history: tuple[U16, ...]
    last_updated: timedelta
    offset_history_last_updated: timedelta

    @classmethod
    def new(cls, last_updated: timedelta) -> ChannelLiquidity:
        return cls(0, 0, _NO_HISTORY, _NO_HISTORY, last_updated, last_updated)

    def has_datapoints(self) -> bool:
        return any(self.min_liquidity_offset_history) or any(self.max_liquidity_offset_history)


# --- Success probability -----------------------------------------------------------------------------


def _pow9(x: float) -> float:
    x2 = x * x
    x4 = x2 * x2
    return x * x4 * x4


def success_probability(
    amount_msat: int, min_liquidity_msat: int, max_liquidity_msat: int, capacity_msat: int,
    linear: bool, min_zero_implies_no_successes: bool,
) -> tuple[int, int]:
    """LDK's ``success_probability``: P(an HTLC of ``amount_msat`` gets through) as (num, den).

    Needs ``min <= amount < max <= capacity``. The non-linear model assumes liquidity is
    distributed with density ∝ 1/256 + 9·(x − 0.5)^8 over the capacity (usually near an
    edge). With ``min_zero_implies_no_successes`` and a lower bound of 0, P is scaled by
    64/78: we have never seen the channel succeed.
    """
    if linear:
        num, den = max_liquidity_msat - amount_msat, max_liquidity_msat - min_liquidity_msat + 1
    else:
        capacity = float(capacity_msat)
        max_norm = max_liquidity_msat / capacity - 0.5
        amt_norm = amount_msat / capacity - 0.5
        min_norm = min_liquidity_msat / capacity - 0.5
        max_v = _pow9(max_norm) + max_norm / 256.0
        amt_v = _pow9(amt_norm) + amt_norm / 256.0
        min_v = _pow9(min_norm) + min_norm / 256.0
        num = int((max_v - amt_v) * _BILLIONISH) + 1
        den = int((max_v - min_v) * _BILLIONISH) + 1
    if min_zero_implies_no_successes and min_liquidity_msat == 0 and den < _U64_MAX // 78:
        den = den * 78 // 64
    return num, den


def _combined_penalty_msat(amount_msat: int, negative_log10_times_2048: int, multiplier: int,
                           amount_multiplier: int) -> int:
    nl = min(negative_log10_times_2048, NEGATIVE_LOG10_UPPER_BOUND * 2048)
    liquidity_penalty = nl * multiplier // 2048
    amount_penalty = min(nl * amount_multiplier * amount_msat, _U64_MAX) // 2048 // AMOUNT_PENALTY_DIVISOR
    return liquidity_penalty + amount_penalty


# --- The liquidity history -----------------------------------------------------------------------------


def _amount_to_pos(amount_msat: int, capacity_msat: int) -> int:
    return min(amount_msat * POSITION_TICKS // (capacity_msat + 1), POSITION_TICKS)


def _track_datapoint(buckets: tuple[int, ...], offset_msat: int, capacity_msat: int) -> tuple[int, ...]:
    """Decay every bucket by 2047/2048 and add one point where the offset now lies."""
    pos = _amount_to_pos(offset_msat, capacity_msat)
    if pos >= POSITION_TICKS:
        return buckets
    out = [b * 2047 // 2048 for b in buckets]
    bucket = bisect.bisect_right(BUCKET_START_POS, pos) - 1
    out[bucket] = min(out[bucket] + BUCKET_FIXED_POINT_ONE, 0xFFFF)
    return tuple(out)


def _decay_buckets(buckets: tuple[int, ...], half_lives: float) -> tuple[int, ...]:
    if half_lives > 60:  # 2048**60 already zeroes every u16 bucket
        return _NO_HISTORY
    divisor = int(2048.0**half_lives)
    return tuple(b * 1024 // divisor for b in buckets)


def _valid_points(min_buckets: tuple[int, ...], max_buckets: tuple[int, ...]) -> int:
    """Weight of all (min, max) bucket pairs that do not cross (min below max)."""
    prefix = [0]
    for b in max_buckets:
        prefix.append(prefix[-1] + b)
    return sum(m * prefix[32 - i] for i, m in enumerate(min_buckets))


def _historical_success_probability_times_billion(
    min_buckets: tuple[int, ...], max_buckets: tuple[int, ...], amount_msat: int, capacity_msat: int, linear: bool,
) -> Optional[int]:
    """LDK's ``calculate_success_probability_times_billion``: P averaged over the history.

    Each (min bucket, max bucket) pair is treated as a pair of bounds, weighted by how much
    time the bounds spent there. None if there is less than one data point.
    """
    payment_pos = _amount_to_pos(amount_msat, capacity_msat)
    if payment_pos >= POSITION_TICKS:
        return None
    total = _valid_points(min_buckets, max_buckets)
    if total < BUCKET_FIXED_POINT_ONE * BUCKET_FIXED_POINT_ONE:
        return None
    billion = 1024 * 1024 * 1024
    cumulative = 0
    if min_buckets[0] != 0:
        # A lower bound of 0 usually means a failure: weigh it only against the highest upper bound seen.
        full = [i for i, b in enumerate(max_buckets) if b >= BUCKET_FIXED_POINT_ONE]
        any_points = [i for i, b in enumerate(max_buckets) if b != 0]
        selected = max(full) if full else max(any_points, default=0)
        max_end = BUCKET_START_POS[32 - selected] - 1
        if payment_pos < max_end:
            num, den = success_probability(payment_pos, 0, max_end, POSITION_TICKS - 1, linear, True)
            weight = min_buckets[0] * sum(max_buckets) * billion // total
            cumulative += weight * num // den
    # LDK walks all 32×32 pairs; empty buckets add nothing, so only the non-empty ones are visited.
    max_points = [(i, b) for i, b in enumerate(max_buckets) if b]
    for min_idx in range(1, 32):
        if not min_buckets[min_idx]:
            continue
        min_start = BUCKET_START_POS[min_idx]
        for max_idx, max_bucket in max_points:
            max_end = BUCKET_START_POS[32 - max_idx] - 1
            if max_idx >= 32 - min_idx or payment_pos >= max_end:
                break  # crossed bounds, or the amount may be above the upper bound: no chance
            weight = min_buckets[min_idx] * max_bucket * billion // total
            if payment_pos < min_start:
                cumulative += weight
            else:
                num, den = success_probability(payment_pos, min_start, max_end, POSITION_TICKS - 1, linear, True)
                cumulative += weight * num // den
    return cumulative


# --- One direction of a channel's liquidity ---------------------------------------------------------------


class _DirectedLiquidity:
    """Mirrors LDK's ``DirectedChannelLiquidity``: a channel's liquidity seen from ``source``.

    ``forward`` is whether the source is ``node_one`` (its key sorts first).
    """

    __slots__ = ("liq", "forward", "capacity_msat")

    def __init__(self, liq: ChannelLiquidity, forward: bool, capacity_msat: int) -> None:
        self.liq, self.forward, self.capacity_msat = liq, forward, capacity_msat

    @property
    def min_offset(self) -> int:
        return self.liq.min_liquidity_offset_msat if self.forward else self.liq.max_liquidity_offset_msat

    @property
    def max_offset(self) -> int:
        return self.liq.max_liquidity_offset_msat if self.forward else self.liq.min_liquidity_offset_msat

    def _set_offsets(self, min_offset: int, max_offset: int, now: timedelta) -> None:
        if not self.forward:
            min_offset, max_offset = max_offset, min_offset
        self.liq.min_liquidity_offset_msat, self.liq.max_liquidity_offset_msat = min_offset, max_offset
        self.liq.last_updated = now

    def max_liquidity_msat(self) -> int:
        return self.capacity_msat - min(self.max_offset, self.capacity_msat)

    def min_liquidity_msat(self) -> int:
        """The lower bound, never above the upper one (LDK clamps the same way when pricing)."""
        return min(self.min_offset, self.max_liquidity_msat())

    def histories(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(min-offset history, max-offset history), in this direction."""
        liq = self.liq
        if self.forward:
            return liq.min_liquidity_offset_history, liq.max_liquidity_offset_history
        return liq.max_liquidity_offset_history, liq.min_liquidity_offset_history

    # --- updates (LDK: failed_at_channel, failed_downstream, successful) ---

    def failed_at_channel(self, amount_msat: int, now: timedelta) -> None:
        """The HTLC failed here: less than ``amount_msat`` was available."""
        if amount_msat < self.max_liquidity_msat():
            self._set_max_liquidity(amount_msat, now)
        self._update_history(0, now)

    def failed_downstream(self, amount_msat: int, now: timedelta) -> None:
        """The HTLC got through here and failed further on: at least ``amount_msat`` was available."""
        if amount_msat > self.min_offset:
            self._set_min_liquidity(amount_msat, now)
        self._update_history(0, now)

    def successful(self, amount_msat: int, now: timedelta) -> None:
        """The payment went through: ``amount_msat`` has moved to the other side."""
        self._set_max_liquidity(max(self.max_liquidity_msat() - amount_msat, 0), now)
        self._update_history(amount_msat, now)

    def _set_min_liquidity(self, amount_msat: int, now: timedelta) -> None:
        max_offset = 0 if amount_msat > self.max_liquidity_msat() else self.max_offset
        self._set_offsets(amount_msat, max_offset, now)

    def _set_max_liquidity(self, amount_msat: int, now: timedelta) -> None:
        min_offset = 0 if amount_msat < self.min_offset else self.min_offset
        self._set_offsets(min_offset, max(self.capacity_msat - amount_msat, 0), now)

    def _update_history(self, bucket_offset_msat: int, now: timedelta) -> None:
        """Record the bounds as they stood before our payment moved them by ``bucket_offset_msat``."""
        min_hist, max_hist = self.histories()
        min_hist = _track_datapoint(min_hist, self.min_offset + bucket_offset_msat, self.capacity_msat)
        max_hist = _track_datapoint(max_hist, max(self.max_offset - bucket_offset_msat, 0), self.capacity_msat)
        if not self.forward:
            min_hist, max_hist = max_hist, min_hist
        self.liq.min_liquidity_offset_history, self.liq.max_liquidity_offset_history = min_hist, max_hist
        self.liq.offset_history_last_updated = now

    # --- pricing (LDK: DirectedChannelLiquidity::penalty_msat) ---

    def penalty_msat(self, amount_msat: int, inflight_htlc_msat: int, p: ProbabilisticScoringFeeParameters) -> int:
        total = amount_msat + inflight_htlc_msat
        capacity = self.capacity_msat
        max_liq = self.max_liquidity_msat()
        min_liq = self.min_liquidity_msat()
        res = 0
        if p.liquidity_penalty_multiplier_msat or p.liquidity_penalty_amount_multiplier_msat:
            res = self._live_penalty(amount_msat, total, min_liq, max_liq, capacity, p)
        if total >= max_liq:
            res += p.considered_impossible_penalty_msat
        if total >= capacity:
            return res + _combined_penalty_msat(
                amount_msat, NEGATIVE_LOG10_UPPER_BOUND * 2048, p.historical_liquidity_penalty_multiplier_msat,
                p.historical_liquidity_penalty_amount_multiplier_msat)
        if p.historical_liquidity_penalty_multiplier_msat or p.historical_liquidity_penalty_amount_multiplier_msat:
            prob = _historical_success_probability_times_billion(*self.histories(), total, capacity,
                                                                 p.linear_success_probability)
            if prob is not None:
                nl = negative_log10_times_2048(prob + 1, 1024 * 1024 * 1024)
            else:  # no usable history: price as if we knew nothing of this channel
                nl = negative_log10_times_2048(*success_probability(
                    total, 0, capacity, capacity, p.linear_success_probability, True))
            res += _combined_penalty_msat(amount_msat, nl, p.historical_liquidity_penalty_multiplier_msat,
                                          p.historical_liquidity_penalty_amount_multiplier_msat)
        return res

    @staticmethod
    def _live_penalty(amount: int, total: int, min_liq: int, max_liq: int, capacity: int,
                      p: ProbabilisticScoringFeeParameters) -> int:
        """The penalty from the live bounds (off by default in LDK 0.1)."""
        mult, amount_mult = p.liquidity_penalty_multiplier_msat, p.liquidity_penalty_amount_multiplier_msat
        if total <= min_liq:
            return 0  # certain to succeed
        if total >= max_liq:
            return _combined_penalty_msat(amount, NEGATIVE_LOG10_UPPER_BOUND * 2048, mult, amount_mult)
        num, den = success_probability(total, min_liq, max_liq, capacity, p.linear_success_probability, False)
        if den - num < den // PRECISION_LOWER_BOUND_DENOMINATOR:
            return 0  # failure under 1/64 likely: too small to price
        return _combined_penalty_msat(amount, negative_log10_times_2048(num, den), mult, amount_mult)


_EMPTY = ChannelLiquidity.new(timedelta(0))


def _as_duration(value: Duration) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise TypeError(f"duration_since_epoch must be a timedelta (or seconds), got {value!r}")


# --- The scorer ----------------------------------------------------------------------------------------


class ProbabilisticScorer:
    """Mirrors ``lightning::routing::scoring::ProbabilisticScorer``. Thread-safe.

    Learns from payment and probe outcomes on the paths of the network graph's public
    channels (others are ignored, as LDK ignores route-hint channels), and prices channels
    for the router with :meth:`channel_penalty_msat`.

    The update methods return whether anything changed, so a caller can persist only then.

    Simplified against LDK 0.1: no ``manual_node_penalties``.
    """

    def __init__(
        self, decay_params: Optional[ProbabilisticScoringDecayParameters], network_graph: NetworkGraph,
        logger: Any = None,
    ) -> None:
        self.decay_params = decay_params or ProbabilisticScoringDecayParameters()
        self.network_graph = network_graph
        self.logger = logger
        self._lock = threading.RLock()
        self._liquidities: dict[int, ChannelLiquidity] = {}

    def read_lock(self) -> threading.RLock:
        """LDK's ``LockableScore::read_lock``: hold it to price many channels consistently."""
        return self._lock

    write_lock = read_lock

    # --- looking up ---

    def _directed(self, short_channel_id: int, target: PublicKey,
                  create_at: Optional[timedelta] = None) -> Optional[_DirectedLiquidity]:
        """The liquidity of a public channel towards ``target``, creating an entry if asked."""
        info = self.network_graph.channel(short_channel_id)
        directed = None if info is None else info.as_directed_to(target)
        if directed is None:
            return None
        update, source = directed
        liq = self._liquidities.get(short_channel_id)
        if liq is None:
            if create_at is None:
                return None
            liq = self._liquidities[short_channel_id] = ChannelLiquidity.new(create_at)
        return _DirectedLiquidity(liq, source < target, info.effective_capacity_msat(update))

    def estimated_channel_liquidity_range(self, scid: int, target: PublicKey) -> Optional[tuple[int, int]]:
        """(lower, upper) bounds in msat on what the channel can send to ``target``; None if unknown.

        As of the last :meth:`time_passed`; the lower bound is clamped to the upper one.
        """
        with self._lock:
            directed = self._directed(scid, target)
            return None if directed is None else (directed.min_liquidity_msat(), directed.max_liquidity_msat())

    def historical_estimated_channel_liquidity_probabilities(
        self, scid: int, target: PublicKey,
    ) -> Optional[tuple[tuple[int, ...], tuple[int, ...]]]:
        """The 32 lower-bound and 32 upper-bound history buckets towards ``target``, both from 0 up."""
        with self._lock:
            directed = self._directed(scid, target)
            if directed is None:
                return None
            min_hist, max_hist = directed.histories()
            return min_hist, max_hist[::-1]

    # --- learning (LDK's ScoreUpdate) ---

    def payment_path_failed(self, path: Path, short_channel_id: int, duration_since_epoch: Duration) -> bool:
        """A payment failed at ``short_channel_id``: hops before it had the amount, that one did not."""
        now = _as_duration(duration_since_epoch)
        amount = path.final_value_msat()
        _log(self.logger, "trace", _MODULE,
             f"Scoring path through to SCID {short_channel_id} as having failed at {amount} msat")
        changed = False
        with self._lock:
            for i, hop in enumerate(path.hops):
                at_failed = hop.short_channel_id == short_channel_id
                if at_failed and i == 0:
                    _log(self.logger, "warn", _MODULE,
                         "Payment failed at the first hop - we do not attempt to learn channel info in such cases "
                         f"as we can directly observe local state. Your peer on channel {hop.short_channel_id} may "
                         "be broken.")
                directed = self._directed(hop.short_channel_id, hop.pubkey, create_at=now)
                if directed is None:
                    self._not_scored(hop.short_channel_id)
                elif at_failed:
                    directed.failed_at_channel(amount, now)
                    changed = True
                else:
                    directed.failed_downstream(amount, now)
                    changed = True
                if at_failed:
                    break
        return changed

    def payment_path_successful(self, path: Path, duration_since_epoch: Duration) -> bool:
        """A payment got through: every hop's upper bound drops by the amount, now on the other side."""
        now = _as_duration(duration_since_epoch)
        amount = path.final_value_msat()
        changed = False
        with self._lock:
            for hop in path.hops:
                directed = self._directed(hop.short_channel_id, hop.pubkey, create_at=now)
                if directed is None:
                    self._not_scored(hop.short_channel_id)
                    continue
                directed.successful(amount, now)
                changed = True
        return changed

    def probe_failed(self, path: Path, short_channel_id: int, duration_since_epoch: Duration) -> bool:
        """As :meth:`payment_path_failed`."""
        return self.payment_path_failed(path, short_channel_id, duration_since_epoch)

    def probe_successful(self, path: Path, duration_since_epoch: Duration) -> bool:
        """The probe reached the end: every hop had the amount (a failure at no channel)."""
        return self.payment_path_failed(path, _U64_MAX, duration_since_epoch)

    def time_passed(self, duration_since_epoch: Duration) -> bool:
        """Decay what we know: offsets halve per ``liquidity_offset_half_life`` since each update."""
        now = _as_duration(duration_since_epoch)
        half_life = self.decay_params.liquidity_offset_half_life.total_seconds()
        history_half_life = self.decay_params.historical_no_updates_half_life
        changed = False
        with self._lock:
            for scid, liq in list(self._liquidities.items()):
                before = (liq.min_liquidity_offset_msat, liq.max_liquidity_offset_msat,
                          liq.min_liquidity_offset_history, liq.max_liquidity_offset_history)
                elapsed = max(now - liq.last_updated, timedelta(0)).total_seconds()
                liq.min_liquidity_offset_msat = _decayed(liq.min_liquidity_offset_msat, elapsed, half_life)
                liq.max_liquidity_offset_msat = _decayed(liq.max_liquidity_offset_msat, elapsed, half_life)
                liq.last_updated = now
                history_elapsed = max(now - liq.offset_history_last_updated, timedelta(0))
                if history_elapsed > history_half_life and history_half_life:
                    half_lives = history_elapsed / history_half_life
                    liq.min_liquidity_offset_history = _decay_buckets(liq.min_liquidity_offset_history, half_lives)
                    liq.max_liquidity_offset_history = _decay_buckets(liq.max_liquidity_offset_history, half_lives)
                    liq.offset_history_last_updated = now
                after = (liq.min_liquidity_offset_msat, liq.max_liquidity_offset_msat,
                         liq.min_liquidity_offset_history, liq.max_liquidity_offset_history)
                changed |= after != before
                if not (liq.min_liquidity_offset_msat or liq.max_liquidity_offset_msat or liq.has_datapoints()):
                    del self._liquidities[scid]
                    changed = True
        return changed

    #: With nothing learned there is nothing to decay (see ``sim.quiet_loop.tick_changes_nothing``).
    time_passed.changes_nothing_when = lambda self: not self._liquidities  # type: ignore[attr-defined]

    def _not_scored(self, scid: int) -> None:
        _log(self.logger, "debug", _MODULE, f"Not able to learn for channel with SCID {scid} as we do not have "
             "graph info for it (likely a route-hint last-hop).")

    # --- pricing (LDK's ScoreLookUp) ---

    def channel_penalty_msat(
        self, scid: int, source: PublicKey, target: PublicKey, amount_msat: int, capacity_msat: int,
        score_params: ProbabilisticScoringFeeParameters, *, inflight_htlc_msat: int = 0,
    ) -> int:
        """What we would pay (msat) to avoid sending ``amount_msat`` from ``source`` to ``target``.

        0 for a channel not in the graph (LDK prices only public hops). The anti-probing
        penalty applies when the graph knows the channel's capacity and the direction's
        ``htlc_maximum_msat`` is at least half of it.
        """
        with self._lock:
            info = self.network_graph.channel(scid)
            if info is None or {source, target} != {info.node_one, info.node_two}:
                return 0
            directed = info.as_directed_to(target)
            anti = 0
            if directed is not None and info.capacity_sats is not None:
                if min(directed[0].htlc_maximum_msat, capacity_msat) >= capacity_msat // 2:
                    anti = score_params.anti_probing_penalty_msat
            return self._penalty(scid, source < target, amount_msat, inflight_htlc_msat, capacity_msat, anti,
                                 score_params)

    def _penalty(self, scid: int, forward: bool, amount_msat: int, inflight_htlc_msat: int, capacity_msat: int,
                 anti_probing_msat: int, p: ProbabilisticScoringFeeParameters) -> int:
        base = p.base_penalty_msat + min(p.base_penalty_amount_multiplier_msat * amount_msat, _U64_MAX) // (
            BASE_AMOUNT_PENALTY_DIVISOR)
        liq = self._liquidities.get(scid) or _EMPTY  # only read while pricing
        liquidity = _DirectedLiquidity(liq, forward, capacity_msat).penalty_msat(amount_msat, inflight_htlc_msat, p)
        return min(liquidity + anti_probing_msat + base, _U64_MAX)

    def _router_model(self, model: _PenaltyModel, p: ProbabilisticScoringFeeParameters) -> None:
        """Prepare ``model`` for the router, which inlines the no-data penalty in its search loop."""
        model.base, model.base_amount = p.base_penalty_msat, p.base_penalty_amount_multiplier_msat
        model.hist = p.historical_liquidity_penalty_multiplier_msat
        model.hist_amount = p.historical_liquidity_penalty_amount_multiplier_msat
        model.impossible, model.anti_probing = p.considered_impossible_penalty_msat, p.anti_probing_penalty_msat
        model.known = self._liquidities
        model.slow = lambda scid, source, target, amount, capacity, anti: self._penalty(
            scid, source < target, amount, 0, capacity, anti, p)
        live = p.liquidity_penalty_multiplier_msat or p.liquidity_penalty_amount_multiplier_msat
        if live or (p.linear_success_probability and (model.hist or model.hist_amount)):
            model.known = _AllChannels()  # the inline path models only LDK 0.1's default shape

    # --- persistence ---

    def encode(self) -> bytes:
        """Serialise what we have learned, like LDK's ``ProbabilisticScorer::write``."""
        with self._lock:
            return encode(tuple(sorted(self._liquidities.items())))

    @classmethod
    def decode(
        cls, data: bytes, network_graph: NetworkGraph,
        decay_params: Optional[ProbabilisticScoringDecayParameters] = None, logger: Any = None,
    ) -> ProbabilisticScorer:
        """Read back what :meth:`encode` wrote, over ``network_graph``; bad bytes raise ``DecodeError``."""
        value = decode(data)
        if not isinstance(value, tuple):
            raise DecodeError.InvalidValue("the data is not an encoded ProbabilisticScorer")
        scorer = cls(decay_params, network_graph, logger)
        for item in value:
            match item:
                case (int() as scid, ChannelLiquidity() as liq) if (
                    0 <= scid <= _U64_MAX and scid not in scorer._liquidities
                    and len(liq.min_liquidity_offset_history) == len(liq.max_liquidity_offset_history) == 32
                ):
                    scorer._liquidities[scid] = liq
                case _:
                    raise DecodeError.InvalidValue(f"bad channel entry in an encoded ProbabilisticScorer: {item!r}")
        return scorer

    def __repr__(self) -> str:
        return f"ProbabilisticScorer({len(self._liquidities)} channels with liquidity data)"


def _decayed(offset: int, elapsed_secs: float, half_life_secs: float) -> int:
    if not half_life_secs:
        return 0
    if not elapsed_secs:
        return offset
    return min(offset, int(offset * 0.5 ** (elapsed_secs / half_life_secs)))
