#!/usr/bin/env python3
"""Payments settled end to end per second, in virtual time, on a 3-node line and a 100-node network.

Prints one `name value unit` line per figure, each the median of five runs after a warm-up (the first run in a
process is shown apart), with the spread of those runs beside it: on a shared machine one run of a third of a
second varies by a third from the next, and a single figure said more about the machine than the kit.
Baselines from the same run: a bare loop handing the same number of events to a trivial `match`
handler (the cost floor of any event-driven simulation in Python), and LDK's own in-memory benchmark figure,
about 350 payments per second (rust-lightning `bench_sends`, measured by criterion after its warm-up), as a
fixed reference.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

# The checkout this file is in, not whichever one the environment installed (as bench/pathfinding.py does).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldkkit.events import Event  # noqa: E402
from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice  # noqa: E402
from ldkkit.ln.outbound_payment import Retry  # noqa: E402
from ldkkit.scenarios import Stage  # noqa: E402
from ldkkit.sim.world import World  # noqa: E402
from ldkkit.types import PaymentId  # noqa: E402

LDK_BENCH_SENDS_PAYMENTS_PER_S = 350


def open_all(world: World, pairs: list[tuple], sats: int) -> None:
    for opener, acceptor in pairs:
        world.connect(opener, acceptor)
        opener.channel_manager.create_channel(acceptor.node_id, sats, sats * 500, 1, None, None)
        # Each funding goes out before the opener funds its next channel. ldk-sample's handler funds with
        # `fundrawtransaction`, which locks no coin: two fundings in one batch spend the same coin, and only
        # the first is broadcast (as with a real bitcoind), which left half of the network's channels unfunded.
        world.run()
    world.mine(6)
    world.advance(1)


def pay_many(world: World, stage: Stage, pairs: list[tuple], amount_msat: int) -> tuple[int, float]:
    """Send one payment per (payer, payee) pair, settle them all, return (settled, seconds)."""
    invoices = [(payer, stage.invoice(payee, amount_msat)) for payer, payee in pairs]
    start = time.perf_counter()
    for i, (payer, invoice) in enumerate(invoices):
        payment_hash, onion, params = payment_parameters_from_invoice(invoice)
        try:
            payer.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params,
                                               Retry.Timeout(timedelta(seconds=10)))
        except Exception:
            continue
        if i % 50 == 49:
            world.advance(1)
    world.advance(2)
    elapsed = time.perf_counter() - start
    settled = sum(isinstance(e, Event.PaymentSent) for node in world.nodes.values() for e in node.events_seen)
    return settled, elapsed


def line(n_payments: int) -> float:
    with World(seed=1) as world:
        stage = Stage(world, world.add_node("a", persist=False))
        a, b, c = stage.me, stage.peer("b"), stage.peer("c", connect=False)
        open_all(world, [(a, b), (b, c)], 10_000_000)
        settled, elapsed = pay_many(world, stage, [(a, c)] * n_payments, 10_000)
        return settled / elapsed


def network(n_nodes: int, n_payments: int) -> float:
    rng = random.Random(7)
    with World(seed=2) as world:
        stage = Stage(world, world.add_node("n0", persist=False))
        nodes = [stage.me] + [stage.peer(f"n{i}", connect=False) for i in range(1, n_nodes)]
        pairs = [(nodes[i], nodes[rng.randrange(i)]) for i in range(1, n_nodes)]
        pairs += [(nodes[rng.randrange(n_nodes)], nodes[rng.randrange(n_nodes)]) for _ in range(n_nodes)]
        open_all(world, [(a, b) for a, b in pairs if a is not b], 10_000_000)
        payments = []
        while len(payments) < n_payments:
            payer, payee = rng.sample(nodes, 2)
            payments.append((payer, payee))
        settled, elapsed = pay_many(world, stage, payments, 10_000)
        return settled / elapsed


def bare_dispatch(n_events: int) -> float:
    events = [Event.PendingHTLCsForwardable(timedelta(milliseconds=100))] * n_events
    count = 0

    def handler(event):
        nonlocal count
        match event:
            case Event.PendingHTLCsForwardable():
                count += 1
            case _:
                pass

    start = time.perf_counter()
    for event in events:
        handler(event)
    return n_events / (time.perf_counter() - start)


RUNS = 5


def median_and_spread(run) -> tuple[float, float, float]:
    rates = [run() for _ in range(RUNS)]
    return statistics.median(rates), min(rates), max(rates)


def main() -> None:
    # The first payments in a process also build what every later one reuses (the router's penalty table, the
    # records' compiled checks, cached keys): measured apart, as LDK's criterion bench warms up before it counts.
    cold_rate = line(300)
    line_rate, line_min, line_max = median_and_spread(lambda: line(300))
    net_rate, net_min, net_max = median_and_spread(lambda: network(100, 300))
    print(f"payments_per_s_3node_line_first_in_process {cold_rate:.0f} payments/s")
    print(f"payments_per_s_3node_line {line_rate:.0f} payments/s")
    print(f"payments_per_s_3node_line_slowest_of_{RUNS} {line_min:.0f} payments/s")
    print(f"payments_per_s_3node_line_fastest_of_{RUNS} {line_max:.0f} payments/s")
    print(f"payments_per_s_100node_network {net_rate:.0f} payments/s")
    print(f"payments_per_s_100node_network_slowest_of_{RUNS} {net_min:.0f} payments/s")
    print(f"payments_per_s_100node_network_fastest_of_{RUNS} {net_max:.0f} payments/s")
    print(f"ldk_bench_sends_reference {LDK_BENCH_SENDS_PAYMENTS_PER_S} payments/s")
    print(f"line_vs_ldk_reference {line_rate / LDK_BENCH_SENDS_PAYMENTS_PER_S:.2f} x")
    print(f"network_vs_ldk_reference {net_rate / LDK_BENCH_SENDS_PAYMENTS_PER_S:.2f} x")
    print(f"bare_event_dispatch {bare_dispatch(1_000_000):.0f} events/s")


if __name__ == "__main__":
    main()
