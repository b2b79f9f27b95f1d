#!/usr/bin/env python3
"""How fast ``find_route`` is on a mainnet-sized graph, next to a bare Dijkstra in the same run.

Builds a seeded preferential-attachment graph of 15,000 nodes and 50,000 channels in a
``NetworkGraph`` (random fees, capacities and CLTV deltas), picks 50 routable (payer, payee)
pairs, and times ``find_route`` with a default ``ProbabilisticScorer`` over them: first
knowing nothing, then after learning from 2,000 probes along random walks. The
baseline is the bare pure-Python Dijkstra of the research notes (§7: payee to payer, weight
fee + 500 msat per hop, skipping channels where the amount exceeds half the capacity) over
the same adjacency lists. Prints one ``name value unit`` line per figure.
"""

from __future__ import annotations

import heapq
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldkkit.bitcoin import Network  # noqa: E402
from ldkkit.routing.gossip import NetworkGraph  # noqa: E402
from ldkkit.routing.router import (  # noqa: E402
    LightningError,
    PaymentParameters,
    RouteHop,
    RouteParameters,
    find_route,
)
from ldkkit.routing.router import Path as RoutePath  # noqa: E402
from ldkkit.routing.scoring import ProbabilisticScorer, ProbabilisticScoringFeeParameters  # noqa: E402
from ldkkit.types import PublicKey  # noqa: E402

NODES, CHANNELS, QUERIES, ROUNDS, PROBES, SEED = 15_000, 50_000, 50, 2, 2_000, 0xDEADBEEF


def build_graph(rng: random.Random) -> tuple[NetworkGraph, list[PublicKey]]:
    """Preferential attachment: each new node opens up to 3 channels, mostly to well-connected nodes."""
    keys = [PublicKey.from_secret_key((i + 1).to_bytes(32, "big")) for i in range(NODES)]
    pairs: list[tuple[int, int]] = []
    ends: list[int] = []  # every channel end once: sampling it picks nodes by degree
    for v in range(1, NODES):
        peers: set[int] = set()
        while len(peers) < min(3, v):
            u = rng.choice(ends) if ends and rng.random() < 0.8 else rng.randrange(v)
            peers.add(u)
        for u in sorted(peers):
            pairs.append((u, v))
            ends += (u, v)
    del pairs[CHANNELS:]
    while len(pairs) < CHANNELS:
        u, v = rng.choice(ends), rng.randrange(NODES)
        if u != v:
            pairs.append((u, v))
            ends += (u, v)
    graph = NetworkGraph(Network.Bitcoin)
    for scid, (a, b) in enumerate(pairs, start=1):
        capacity = int(10 ** rng.uniform(4.3, 7.7))  # 20k to 50M sat, log-uniform
        graph.add_channel(scid, keys[a], keys[b], capacity, 1_700_000_000)
        for node in (keys[a], keys[b]):
            htlc_max = capacity * 1000 if rng.random() < 0.7 else capacity * 1000 * rng.randint(1, 9) // 10
            graph.update_channel(
                scid, node, 1_700_000_001, rng.random() > 0.02, rng.choice((18, 40, 80, 144)),
                rng.choice((1, 1000)), htlc_max, rng.choice((0, 0, 1000, 1000, 2000)),
                rng.choice((1, 10, 100, 200, 500, 1000, 2500)),
            )
    return graph, keys


def bare_dijkstra(adjacency: list[list[tuple]], payer: int, payee: int, amount_msat: int) -> int | None:
    """§7's baseline: cheapest fee + 500 msat/hop from payee back to payer, no other rules."""
    n = len(adjacency)
    inf = 1 << 127
    dist, recv, done = [inf] * n, [0] * n, bytearray(n)
    dist[payee], recv[payee] = 0, amount_msat
    heap = [(0, payee)]
    while heap:
        d, v = heapq.heappop(heap)
        if done[v]:
            continue
        done[v] = 1
        if v == payer:
            return d
        a = recv[v]
        for u, _scid, base, ppm, _delta, _hmin, _limit, capacity, _capf, _anti in adjacency[v]:
            if done[u] or a > capacity >> 1:
                continue
            fee = base + a * ppm // 1_000_000
            nd = d + fee + 500
            if nd < dist[u]:
                dist[u], recv[u] = nd, a + fee
                heapq.heappush(heap, (nd, u))
    return None


def train(scorer: ProbabilisticScorer, graph: NetworkGraph, keys: list[PublicKey], rng: random.Random) -> None:
    """Teach the scorer: probes along random walks of 1-4 hops, each failing somewhere or succeeding."""
    nodes, now = graph.nodes(), timedelta(seconds=1_700_000_100)
    for _ in range(PROBES):
        node, hops = keys[rng.randrange(NODES)], []
        for _ in range(rng.randint(1, 4)):
            scids = sorted(nodes.get(node, ()))
            if not scids:
                break
            scid = rng.choice(scids)
            directed = graph.channel(scid).as_directed_from(node)
            if directed is None:
                break
            node = directed[1]
            hops.append(RouteHop(node, b"", scid, b"", 1000, 40, True))
        if not hops:
            continue
        amount = rng.randrange(1_000, 100_000_000)
        hops[-1] = RouteHop(node, b"", hops[-1].short_channel_id, b"", amount, 40, True)
        path = RoutePath(tuple(hops), None)
        if rng.random() < 0.5:
            scorer.probe_successful(path, now)
        else:
            scorer.probe_failed(path, rng.choice(hops).short_channel_id, now)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    rng = random.Random(SEED)
    start = time.perf_counter()
    graph, keys = build_graph(rng)
    build_s = time.perf_counter() - start
    scorer = ProbabilisticScorer(None, graph)
    params = ProbabilisticScoringFeeParameters()

    def route(payer: int, payee: int, amount: int):
        pay = PaymentParameters.from_node_id(keys[payee], 40)
        rp = RouteParameters.from_payment_params_and_value(pay, amount)
        return find_route(keys[payer], rp, graph, None, None, scorer, params, bytes(32))

    start = time.perf_counter()
    view = graph._routing_view()
    view.adjacency(2, params.anti_probing_penalty_msat)
    cache_ms = (time.perf_counter() - start) * 1000

    queries: list[tuple[int, int, int]] = []
    while len(queries) < QUERIES:
        payer, payee = rng.randrange(NODES), rng.randrange(NODES)
        amount = 1_000_000 + rng.randrange(10_000_000)
        if payer == payee:
            continue
        try:
            route(payer, payee, amount)
        except LightningError:
            continue
        queries.append((payer, payee, amount))

    adjacency = view.adjacency(2, params.anti_probing_penalty_msat)
    routed, bare, hops = [], [], []
    for _ in range(ROUNDS):
        for payer, payee, amount in queries:
            start = time.perf_counter()
            found = route(payer, payee, amount)
            routed.append((time.perf_counter() - start) * 1000)
            hops.append(len(found.paths[0].hops))
            p, q = view.index[keys[payer]], view.index[keys[payee]]
            bare.append(timed(bare_dijkstra, adjacency, p, q, amount))

    train(scorer, graph, keys, rng)
    trained = []
    for _ in range(ROUNDS):
        for payer, payee, amount in queries:
            try:
                trained.append(timed(route, payer, payee, amount))
            except LightningError:  # what the scorer learned cannot remove a route, but be safe
                pass

    print(f"graph_build_15k {build_s:.1f} s")
    print(f"routing_cache_build_15k {cache_ms:.0f} ms")
    print(f"find_route_median_15k {statistics.median(routed):.1f} ms")
    print(f"find_route_p90_15k {percentile(routed, 0.9):.1f} ms")
    print(f"bare_dijkstra_median_15k {statistics.median(bare):.1f} ms")
    print(f"bare_dijkstra_p90_15k {percentile(bare, 0.9):.1f} ms")
    print(f"find_route_vs_bare_ratio {statistics.median(routed) / statistics.median(bare):.2f} x")
    print(f"scorer_trained_channels_15k {len(scorer._liquidities)} channels")
    print(f"find_route_trained_median_15k {statistics.median(trained):.1f} ms")
    print(f"find_route_trained_p90_15k {percentile(trained, 0.9):.1f} ms")
    print(f"route_hops_median_15k {statistics.median(hops):.0f} hops")


if __name__ == "__main__":
    main()
