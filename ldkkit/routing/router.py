"""Routes: the hops a payment takes, and finding them.

Mirrors ``lightning::routing::router``. ``Path`` is what payment and probe events carry,
and what the scorer learns from. :func:`find_route` (and :class:`DefaultRouter`, which the
ChannelManager calls) searches the ``NetworkGraph`` from the payee back to the payer, as
LDK does, pricing each channel at its fee plus the scorer's penalty.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import heapq
import struct
from collections.abc import Callable
from typing import Any, Optional

from ..logger import Lazy, Level, Logger
from ..ser import U8, U32, U64, Record
from ..types import PublicKey
from .log_approx import log10_times_2048


class RouteHop(Record):
    """Mirrors ``lightning::routing::router::RouteHop``: one hop of a path.

    ``fee_msat`` is the fee this hop's node charges, except on the last hop, where it is
    the amount the recipient receives. ``node_features`` and ``channel_features`` are the
    BOLT 9 feature bytes.
    """

    pubkey: PublicKey
    node_features: bytes
    short_channel_id: U64
    channel_features: bytes
    fee_msat: U64
    cltv_expiry_delta: U32
    maybe_announced_channel: bool


class BlindedTail(Record):
    """Mirrors ``lightning::routing::router::BlindedTail``: the blinded end of a path.

    Simplified: the blinded hops are opaque encrypted payloads.
    """

    hops: tuple[bytes, ...]
    blinding_point: PublicKey
    excess_final_cltv_expiry_delta: U32
    final_value_msat: U64


class Path(Record):
    """Mirrors ``lightning::routing::router::Path``: the hops of one part of a payment."""

    hops: tuple[RouteHop, ...]
    blinded_tail: Optional[BlindedTail]

    def fee_msat(self) -> int:
        """Total fees paid along this path."""
        if self.blinded_tail is not None:
            return sum(h.fee_msat for h in self.hops)
        return sum(h.fee_msat for h in self.hops[:-1])

    def final_value_msat(self) -> int:
        """The amount delivered to the recipient."""
        if self.blinded_tail is not None:
            return self.blinded_tail.final_value_msat
        return self.hops[-1].fee_msat if self.hops else 0

    def final_cltv_expiry_delta(self) -> int | None:
        return None if self.blinded_tail is not None or not self.hops else self.hops[-1].cltv_expiry_delta

    def __str__(self) -> str:
        route = " → ".join(f"{h.pubkey.short()} via {h.short_channel_id}" for h in self.hops)
        return f"{route} ({self.final_value_msat():,} msat, fee {self.fee_msat():,} msat)"

    def short(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Path({self})"


# --- Route parameters ------------------------------------------------------------------------------

#: LDK's ``DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA``: about a week of blocks.
DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA = 1008
#: LDK's ``DEFAULT_MAX_PATH_COUNT``: how many MPP parts a payment may be split into.
DEFAULT_MAX_PATH_COUNT = 10
#: LDK's ``MAX_PATH_LENGTH_ESTIMATE``: the most hops a 1300-byte onion carries.
MAX_PATH_LENGTH_ESTIMATE = 19
#: LDK's ``MAX_VALUE_MSAT``: every bitcoin there will ever be, in msat.
MAX_VALUE_MSAT = 21_000_000 * 100_000_000 * 1000


class PaymentParameters(Record):
    """Mirrors ``lightning::routing::router::PaymentParameters``: who to pay, and routing limits.

    Simplified: LDK's ``payee: Payee`` (a node id with route hints and features, or blinded
    paths) is flattened to ``payee_pubkey`` plus ``allow_mpp`` (the payee's ``basic_mpp``
    feature); route hints and blinded paths are not modelled.
    """

    payee_pubkey: PublicKey
    final_cltv_expiry_delta: U32
    expiry_time: Optional[U64] = None
    max_total_cltv_expiry_delta: U32 = DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA
    max_path_count: U8 = DEFAULT_MAX_PATH_COUNT
    max_channel_saturation_power_of_half: U8 = 2
    previously_failed_channels: tuple[U64, ...] = ()
    allow_mpp: bool = False

    @classmethod
    def from_node_id(cls, payee_pubkey: PublicKey, final_cltv_expiry_delta: int) -> PaymentParameters:
        """Pay a node with no invoice features known (so no MPP), like LDK's ``from_node_id``."""
        return cls(payee_pubkey, final_cltv_expiry_delta)

    @classmethod
    def for_keysend(cls, payee_pubkey: PublicKey, final_cltv_expiry_delta: int, allow_mpp: bool) -> PaymentParameters:
        """A spontaneous (keysend) payment, like LDK's ``for_keysend``."""
        return cls(payee_pubkey, final_cltv_expiry_delta, allow_mpp=allow_mpp)

    def with_previously_failed_channel(self, short_channel_id: int) -> PaymentParameters:
        """A copy that avoids ``short_channel_id``: what LDK records before a retry."""
        if short_channel_id in self.previously_failed_channels:
            return self
        return dataclasses.replace(
            self, previously_failed_channels=(*self.previously_failed_channels, short_channel_id)
        )

    def with_expiry_time(self, expiry_time: int) -> PaymentParameters:
        return dataclasses.replace(self, expiry_time=expiry_time)

    def with_max_total_cltv_expiry_delta(self, max_total_cltv_expiry_delta: int) -> PaymentParameters:
        return dataclasses.replace(self, max_total_cltv_expiry_delta=max_total_cltv_expiry_delta)

    def with_max_path_count(self, max_path_count: int) -> PaymentParameters:
        return dataclasses.replace(self, max_path_count=max_path_count)

    def with_max_channel_saturation_power_of_half(self, power: int) -> PaymentParameters:
        return dataclasses.replace(self, max_channel_saturation_power_of_half=power)


class RouteParameters(Record):
    """Mirrors ``lightning::routing::router::RouteParameters``: the payment and its amount."""

    payment_params: PaymentParameters
    final_value_msat: U64
    max_total_routing_fee_msat: Optional[U64]

    @classmethod
    def from_payment_params_and_value(cls, payment_params: PaymentParameters, final_value_msat: int) -> RouteParameters:
        """LDK's default fee budget: 1% of the amount plus 50 sat."""
        return cls(payment_params, final_value_msat, final_value_msat // 100 + 50_000)


class Route(Record):
    """Mirrors ``lightning::routing::router::Route``: the paths a payment is sent over."""

    paths: tuple[Path, ...]
    route_params: Optional[RouteParameters]

    def get_total_fees(self) -> int:
        """Fees paid over all paths (excluding the amount the recipient receives)."""
        return sum(p.fee_msat() for p in self.paths)

    def get_total_amount(self) -> int:
        """What the recipient receives over all paths."""
        return sum(p.final_value_msat() for p in self.paths)

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.paths) or "empty route"


class LightningError(Exception):
    """Mirrors ``lightning::ln::msgs::LightningError``: ``err`` is LDK's message.

    ``find_route`` raises it when there is no route, with LDK's wording (e.g. ``Failed to
    find a path to the given destination``); the graph raises it for gossip it refuses.
    """

    def __init__(self, err: str) -> None:
        super().__init__(err)
        self.err = err

    def __repr__(self) -> str:
        return f"LightningError({self.err!r})"


# --- Logging ---------------------------------------------------------------------------------------


def _log(logger: Any, level: str, module_path: str, message: str) -> None:
    """Log through an ldkkit ``Logger`` (or anything with ``trace``/``debug``/... methods)."""
    method = getattr(logger, level, None) if logger is not None else None
    if method is not None:
        method(module_path, message)


def _log_lazily(logger: Any, level: str, module_path: str, make: Callable[[], str]) -> None:
    """:func:`_log` with the words ``make`` returns: the kit's own Logger makes them only if the line is read (a
    route's words cost more than finding it on a small graph); any other logger is given them at once."""
    if type(logger) is Logger:
        logger.log(Level[level.capitalize()], module_path, Lazy(make))
    else:
        _log(logger, level, module_path, make())


_MODULE = "lightning::routing::router"


# --- Path finding ----------------------------------------------------------------------------------

_INF = 1 << 127
_U64_MAX = (1 << 64) - 1


class _AllChannels:
    """A container holding every scid: makes the router ask the scorer about each channel."""

    def __contains__(self, scid: object) -> bool:
        return True


class _PenaltyModel:
    """How the router prices channels, prepared once per search.

    ``ProbabilisticScorer`` channels without liquidity data are priced inline in the search
    loop from these constants (the hot path); channels in ``known`` are priced by ``slow``.
    Any other scorer is asked about every channel.
    """

    __slots__ = ("base", "base_amount", "hist", "hist_amount", "impossible", "anti_probing", "known", "slow")

    def __init__(self, scorer: Any, params: Any) -> None:
        self.base = self.base_amount = self.hist = self.hist_amount = self.impossible = self.anti_probing = 0
        self.known: Any = ()
        self.slow: Any = None
        if scorer is None:
            return
        router_model = getattr(scorer, "_router_model", None)
        if router_model is not None:
            router_model(self, params)
            return
        self.known = _AllChannels()
        self.slow = lambda scid, src, tgt, amount, capacity, anti: scorer.channel_penalty_msat(
            scid, src, tgt, amount, capacity, params
        )


def _pow9(x: float) -> float:
    x2 = x * x
    x4 = x2 * x2
    return x * x4 * x4


# The success probability of a channel we know nothing of (``scoring.success_probability`` with
# bounds 0 and the capacity), split into what does not depend on the amount and what does.
_MAX_V = _pow9(0.5) + 0.5 / 256.0
_BILLIONISH = 1024.0 * 1024.0 * 1024.0 * 64.0
_NO_DATA_DEN = (int((_MAX_V - (_pow9(-0.5) + -0.5 / 256.0)) * _BILLIONISH) + 1) * 78 // 64
_NO_DATA_DEN_LOG = log10_times_2048(_NO_DATA_DEN)


def _no_data_neg_log(ratio: float) -> int:
    """``-log10(P) × 2048`` for sending ``ratio`` of a channel the scorer has no data on, capped at 2 (1 %).

    P is ``scoring.success_probability`` with bounds 0 and the capacity (LDK's non-linear
    model, with ``min_zero_implies_no_successes``), as LDK's ``negative_log10_times_2048``.
    """
    t = ratio - 0.5
    t2 = t * t
    t4 = t2 * t2
    # Never below 0: the numerator is at most the denominator, which LDK scales by 78/64.
    return min(_NO_DATA_DEN_LOG - log10_times_2048(int((_MAX_V - (t * t4 * t4 + t / 256.0)) * _BILLIONISH) + 1), 4096)


def _float_bits(x: float) -> int:
    """A non-negative float's IEEE 754 bits as an int: they sort as the floats do."""
    return int.from_bytes(struct.pack("<d", x), "little")


def _bits_float(bits: int) -> float:
    return struct.unpack("<d", bits.to_bytes(8, "little"))[0]


def _steps(f: Callable[[float], int]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """A function of a float ``0 <= r <= 1`` that never falls as ``r`` grows, as a step table.

    Returns ``(bounds, values)`` with ``values[bisect_right(bounds, r)] == f(r)`` for every
    such float: each bound is the smallest float where ``f`` rises, found by bisecting the
    floats, which sort as their bit patterns do.
    """
    top = _float_bits(1.0)
    bounds: list[float] = []
    values = [f(0.0)]
    start, last = 0, f(1.0)
    while values[-1] != last:
        lo, hi = start, top  # f is values[-1] at lo, and higher at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if f(_bits_float(mid)) == values[-1]:
                lo = mid
            else:
                hi = mid
        bounds.append(_bits_float(hi))
        values.append(f(bounds[-1]))
        start = hi
    return tuple(bounds), tuple(values)


def _historical_steps(values: tuple[int, ...], hist: int, hist_amount: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The historical penalty for each ``-log10(P) × 2048`` in ``values``, as ``(flat, per_msat)``.

    A channel's penalty is ``flat[i] + min(per_msat[i] × amount, u64::MAX) / 2^31``, as LDK's
    ``_combined_penalty_msat`` computes it with the ``historical_*`` multipliers.
    """
    return tuple(nl * hist // 2048 for nl in values), tuple(nl * hist_amount for nl in values)


@functools.cache
def _no_data_steps() -> tuple[tuple[float, ...], tuple[int, ...]]:
    """:func:`_no_data_neg_log` as a step table (:func:`_steps`), so the search looks it up by bisection.

    Exact: the formula never falls as the share grows (each float operation in it rounds
    monotonically, and LDK's log table rises), in a few hundred steps. Built on first use (~30 ms).
    """
    return _steps(_no_data_neg_log)


@functools.lru_cache(maxsize=16)
def _no_data_historical_steps(
    hist: int, hist_amount: int,
) -> tuple[tuple[float, ...], tuple[int, ...], tuple[int, ...]]:
    """``(bounds, flat, per_msat)``: a no-data channel's historical penalty per step of :func:`_no_data_steps`."""
    bounds, values = _no_data_steps()
    return (bounds, *_historical_steps(values, hist, hist_amount))


def _no_data_penalty(model: _PenaltyModel, amount: int, capacity: int, capacity_f: float, anti: int) -> int:
    """The ProbabilisticScorer penalty for a channel it has no data on (the search inlines this)."""
    pen = model.base + min(model.base_amount * amount, _U64_MAX) // (1 << 30) + anti
    if amount >= capacity:  # more than the channel holds: impossible, plus the worst historical penalty
        worst = 4096 * model.hist // 2048 + min(4096 * model.hist_amount * amount, _U64_MAX) // (1 << 31)
        return pen + model.impossible + worst
    if model.hist or model.hist_amount:
        nl = _no_data_neg_log(amount / capacity_f)
        pen += nl * model.hist // 2048 + min(nl * model.hist_amount * amount, _U64_MAX) // (1 << 31)
    return pen


def _edge_penalty(model: _PenaltyModel, keys: Any, scid: int, u: int, v: int, amount: int, edge: tuple) -> int:
    capacity, capacity_f, anti = edge[7], edge[8], edge[9]
    if scid in model.known:
        return model.slow(scid, keys(u), keys(v), amount, capacity, anti)
    return _no_data_penalty(model, amount, capacity, capacity_f, anti)


class _Found:
    """The cheapest path the search found: its cost, the payer's first hop ``(node, edge)``, and
    each expanded node's label (see :func:`_search`)."""

    __slots__ = ("cost", "first", "labels")

    def __init__(self, cost: int, first: tuple, labels: list) -> None:
        self.cost, self.first, self.labels = cost, first, labels


def _search(
    view: Any, model: _PenaltyModel, payer: int, payee: int, node_count: int, key_of: Any, amount: int,
    max_fee: Optional[int], max_cltv: int, saturation: int, payer_edges: dict, failed: frozenset,
) -> Optional[_Found]:
    """Dijkstra from the payee back to the payer, as LDK's ``get_route`` searches.

    Each node's label is the cheapest (fees + penalties) way from it to the payee, with the
    amount that must reach it (the payment plus every downstream fee) and the CLTV deltas
    accumulated so far. Relaxing a channel u→v prices it at the amount that reached v, the
    amount flowing over it; u's fee for forwarding over it is added to u's amount.

    A label is the heap entry itself, ``(cost, node, amount, cltv, hops, next node, next scid)``,
    kept in ``labels`` when its node is expanded: one tuple per relaxation, nothing else stored.
    Entries compare by (cost, node) only: a node is pushed again only at a strictly lower cost.
    Nothing is pushed at or above the payer's best cost so far: the search stops before it
    would pop, and what it would have pruned later is pruned by that cost too.
    """
    radj = view.adjacency(saturation, model.anti_probing)
    cost = [_INF] * node_count
    labels: list = [None] * node_count
    done = bytearray(node_count)
    done[payer] = True  # the payer is reached only through payer_edges, never expanded
    max_recv = _INF if max_fee is None else amount + max_fee
    known, slow = model.known, model.slow
    base, base_amount, hist, hist_amount = model.base, model.base_amount, model.hist, model.hist_amount
    hist_on = bool(hist or hist_amount)
    if hist_on:
        bounds, flat, per_msat = _no_data_historical_steps(hist, hist_amount)
    step_of, u64_max, max_hops = bisect.bisect_right, _U64_MAX, MAX_PATH_LENGTH_ESTIMATE - 2
    n_graph = len(radj)
    best, first = _INF, None
    heap = [(0, payee, amount, 0, 0, None, None)]  # popped first: its cost is never compared
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, v, a, c0, h, _, _ = label = pop(heap)
        if d >= best:  # pragma: no mutate  (">" alike: a label at the best cost cannot beat it)
            break  # the payer's label can no longer improve
        if done[v]:
            continue  # a stale entry: v was expanded at a lower cost
        done[v] = True
        labels[v] = label
        for_payer = payer_edges.get(v)
        if for_payer is not None:
            for edge in for_payer:
                scid, hmin, lim, public = edge[1], edge[5], edge[6], edge[10]
                if a > lim or a < hmin or scid in failed:
                    continue
                pen = _edge_penalty(model, key_of, scid, payer, v, a, edge) if public else 0  # first hops: free
                if pen < u64_max and d + pen < best:
                    best, first = d + pen, (v, edge)
        if v >= n_graph or h > max_hops:
            continue
        h1, fee_room = h + 1, max_recv - a
        node_pen = base + min(base_amount * a, u64_max) // 1073741824
        for u, scid, fbase, prop, delta, hmin, lim, capacity, capacity_f, anti in radj[v]:
            if done[u] or a > lim or a < hmin:
                continue
            fee = fbase + a * prop // 1_000_000
            nd = d + fee + node_pen + anti
            # A lower bound that only saves work (the push below checks the full cost): no mutate.
            if nd >= cost[u] or nd >= best:  # pragma: no mutate
                continue  # cannot win even before the liquidity penalty
            c = c0 + delta
            if c > max_cltv or fee > fee_room or (failed and scid in failed):
                continue
            if known and scid in known:  # pragma: no mutate  (the scorer prices no data as below does)
                pen = slow(scid, key_of(u), key_of(v), a, capacity, anti)
                if pen >= u64_max:
                    continue
                nd = d + fee + pen
            elif a >= capacity:
                nd = d + fee + _no_data_penalty(model, a, capacity, capacity_f, anti)
            elif hist_on:
                # Inlined _no_data_penalty: LDK's no-history fallback with the historical multipliers,
                # its log looked up by the step the amount's share of the channel falls in.
                i = step_of(bounds, a / capacity_f)
                amount_pen = per_msat[i] * a
                if amount_pen > u64_max:
                    amount_pen = u64_max
                nd += flat[i] + amount_pen // 2147483648
            if nd < cost[u] and nd < best:
                cost[u] = nd
                push(heap, (nd, u, a + fee, c, h1, v, scid))
    return None if first is None else _Found(best, first, labels)


def _first_hop_edges(first_hops: list, payer_key: PublicKey, graph_scids: Any) -> dict[PublicKey, list[tuple]]:
    """The payer's usable channels, as search edges keyed by counterparty.

    A first hop charges no fee and is priced at zero penalty (LDK's scorer only prices
    public channels); its limits are the channel's next-HTLC limits.
    """
    edges: dict[PublicKey, list[tuple]] = {}
    for chan in first_hops:
        counterparty = chan.counterparty.node_id
        if counterparty == payer_key:
            raise LightningError("First hop cannot have our_node_pubkey as a destination.")
        get_scid = getattr(chan, "get_outbound_payment_scid", None)
        scid = get_scid() if get_scid is not None else chan.short_channel_id
        if scid is None or not chan.is_usable:
            continue
        limit = chan.next_outbound_htlc_limit_msat
        announced = getattr(chan, "is_announced", None)
        announced = scid in graph_scids if announced is None else announced
        edge = (None, scid, 0, 0, 0, chan.next_outbound_htlc_minimum_msat, limit, limit, float(limit or 1), 0,
                False, announced)
        edges.setdefault(counterparty, []).append(edge)
    for chans in edges.values():
        chans.sort(key=lambda e: e[1])
    return edges


def _check_params(payer: PublicKey, route_params: RouteParameters) -> None:
    """LDK's up-front refusals in ``get_route``, with its messages."""
    params = route_params.payment_params
    amount = route_params.final_value_msat
    if params.payee_pubkey == payer:
        raise LightningError("Cannot generate a route to ourselves")
    if amount > MAX_VALUE_MSAT:
        raise LightningError("Cannot generate a route of more value than all existing satoshis")
    if amount == 0:
        raise LightningError("Cannot send a payment of 0 msat")
    if params.max_total_cltv_expiry_delta <= params.final_cltv_expiry_delta:
        raise LightningError(
            "Can't find a route where the maximum total CLTV expiry delta is below the final CLTV expiry."
        )
    if params.max_path_count == 0:
        raise LightningError("Can't find a route with no paths allowed.")


def _build_path(found: _Found, key_of: Any, amount: int, final_cltv: int) -> Path:
    """Turn the search labels into LDK's RouteHops, walking from the payer to the payee.

    A node's fee and CLTV delta are what its label adds to its next node's.
    """
    v, edge = found.first
    scid, announced = edge[1], edge[11]
    labels = found.labels
    hops = []
    while True:
        _, _, recv, cltv, _, nxt_node, nxt_scid = labels[v]
        if nxt_node is None:  # v is the payee
            hops.append(RouteHop(key_of(v), b"", scid, b"", amount, final_cltv, announced))
            return Path(tuple(hops), None)
        _, _, nxt_recv, nxt_cltv, _, _, _ = labels[nxt_node]
        hops.append(RouteHop(key_of(v), b"", scid, b"", recv - nxt_recv, cltv - nxt_cltv, announced))
        v, scid, announced = nxt_node, nxt_scid, True


def find_route(
    our_node_pubkey: PublicKey, route_params: RouteParameters, network_graph: Any, first_hops: Optional[list],
    logger: Any, scorer: Any, score_params: Any, random_seed_bytes: Optional[bytes] = None,
) -> Route:
    """Mirrors ``lightning::routing::router::find_route``: the cheapest single path, or LightningError.

    Cost is fees plus the scorer's penalties. When ``first_hops`` is given (``ChannelDetails``
    from ``list_usable_channels``), the payer's channels come only from it.

    Simplified against LDK 0.1: one path only (no MPP splitting); no route hints or blinded
    paths; no shadow-route CLTV offset (so ``random_seed_bytes`` is unused and routes are
    deterministic); no overpaying to meet an ``htlc_minimum_msat``; ties go to the lower scid.
    """
    path, _cost = _find_path(our_node_pubkey, route_params, network_graph, first_hops, logger, scorer, score_params)
    route = Route((path,), route_params)
    _log_lazily(logger, "info", _MODULE, lambda: f"Got route: {route}")
    return route


def _find_path(
    our_node_pubkey: PublicKey, route_params: RouteParameters, network_graph: Any, first_hops: Optional[list],
    logger: Any, scorer: Any, score_params: Any,
) -> tuple[Path, int]:
    """The search behind :func:`find_route`: the path and its cost (fees + penalties, msat)."""
    _check_params(our_node_pubkey, route_params)
    params = route_params.payment_params
    amount, payee_key = route_params.final_value_msat, params.payee_pubkey
    _log(logger, "trace", _MODULE, f"Searching for a route from payer {our_node_pubkey} to {payee_key} "
         f"with amount {amount} msat")
    view = network_graph._routing_view()
    fh_edges = None if first_hops is None else _first_hop_edges(first_hops, our_node_pubkey, view.scids)
    if fh_edges is not None and not fh_edges:
        raise LightningError("Cannot route when there are no outbound routes away from us")
    n = len(view.keys)
    extra = list(dict.fromkeys(k for k in (our_node_pubkey, payee_key, *(fh_edges or ())) if k not in view.index))
    extra_index = {k: n + i for i, k in enumerate(extra)}

    def key_of(i: int) -> PublicKey:
        return view.keys[i] if i < n else extra[i - n]

    def idx(k: PublicKey) -> int:
        return view.index[k] if k in view.index else extra_index[k]

    payer, payee = idx(our_node_pubkey), idx(payee_key)
    model = _PenaltyModel(scorer, score_params)
    max_cltv = params.max_total_cltv_expiry_delta - params.final_cltv_expiry_delta
    failed = frozenset(params.previously_failed_channels)
    found = None
    with _read_lock(scorer):
        # LDK relaxes the saturation limit when no path respects it.
        for saturation in dict.fromkeys((params.max_channel_saturation_power_of_half, 0)):
            if fh_edges is not None:
                payer_edges = {idx(k): e for k, e in fh_edges.items()}
            else:
                payer_edges = view.payer_edges(payer, saturation, model.anti_probing) if payer < n else {}
            found = _search(view, model, payer, payee, n + len(extra), key_of, amount,
                            route_params.max_total_routing_fee_msat, max_cltv, saturation, payer_edges, failed)
            if found is not None:
                break
    if found is None:
        _log(logger, "debug", _MODULE, f"Failed to find a path to {payee_key} for {amount} msat")
        raise LightningError("Failed to find a path to the given destination")
    return _build_path(found, key_of, amount, params.final_cltv_expiry_delta), found.cost


def _read_lock(scorer: Any) -> Any:
    """The scorer's lock, held for the whole search as LDK holds ``LockableScore::read_lock``."""
    read_lock = getattr(scorer, "read_lock", None)
    return read_lock() if read_lock is not None else contextlib.nullcontext()


class DefaultRouter:
    """Mirrors ``lightning::routing::router::DefaultRouter``: ``find_route`` over a graph and scorer.

    ``entropy_source`` (anything with ``get_secure_random_bytes()``) is asked for 32 bytes per
    route, as LDK does; they are unused, because ldkkit adds no random shadow-route offset.
    """

    def __init__(self, network_graph: Any, logger: Any, entropy_source: Any, scorer: Any, score_params: Any) -> None:
        self.network_graph = network_graph
        self.logger = logger
        self.entropy_source = entropy_source
        self.scorer = scorer
        self.score_params = score_params

    def find_route(
        self, payer: PublicKey, route_params: RouteParameters, first_hops: Optional[list] = None,
        inflight_htlcs: Any = None,
    ) -> Route:
        """LDK's ``Router::find_route``. ``inflight_htlcs`` is accepted but not yet counted."""
        get_random = getattr(self.entropy_source, "get_secure_random_bytes", None)
        seed = get_random() if get_random is not None else None
        return find_route(payer, route_params, self.network_graph, first_hops, self.logger, self.scorer,
                          self.score_params, seed)
