#!/usr/bin/env python3
"""The background processor's throughput and latency.

Prints one `name value unit` line per figure:
- events per second through a BackgroundProcessor with a trivial handler, next to a bare
  loop calling the same handler on the same events in the same run, and their ratio; and what the
  processor adds per event over the bare loop (queueing, logging, timing, waking), in nanoseconds;
- on real time, the delay from an event being queued to the handler being called
  (median and p99), next to LDK's 100 ms poll;
- how long two simulated hours of an idle node take on the virtual clock.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

# The checkout this file is in, not whichever one the environment installed (as bench/payments.py does).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldkkit.background_processor import BackgroundProcessor, GossipSync  # noqa: E402
from ldkkit.events import Event  # noqa: E402
from ldkkit.sim.world import World  # noqa: E402

N_EVENTS = 20_000
ROUNDS = 5


def trivial(event: Event) -> None:
    match event:
        case Event.PendingHTLCsForwardable():
            pass
        case _:
            pass


def start(node, handler) -> BackgroundProcessor:
    return BackgroundProcessor.start(node.fs_store, handler, node.chain_monitor, node.channel_manager, None,
                                     GossipSync.p2p(node.network_graph), node.peer_manager, node.logger, node.scorer)


def throughput() -> tuple[float, float]:
    """Events per second through the processor and through the bare loop: each the best of ``ROUNDS`` runs, so that
    one run slowed by the machine's other work (the bare loop takes a couple of milliseconds) moves neither."""
    events = [Event.PendingHTLCsForwardable(timedelta(milliseconds=100)) for _ in range(N_EVENTS)]
    bare = max(bare_rate(events) for _ in range(ROUNDS))
    with World(seed=1) as world:
        node = world.add_node("n", persist=False)
        processor = start(node, trivial)
        through = max(processor_rate(processor, node.channel_manager._events, events) for _ in range(ROUNDS))
        processor.stop()
    return through, bare


def bare_rate(events: list[Event]) -> float:
    began = time.perf_counter()
    for event in events:
        trivial(event)
    return len(events) / (time.perf_counter() - began)


def processor_rate(processor: BackgroundProcessor, queue: Any, events: list[Event]) -> float:
    """Queue ``events`` as the manager would, and wait until the processor has handed them all to the handler."""
    target = processor.events_handled + len(events)
    began = time.perf_counter()
    for event in events:
        queue.push(event)
    while processor.events_handled < target:
        time.sleep(0.001)
    return len(events) / (time.perf_counter() - began)


def latency(samples: int = 200) -> list[float]:
    delays: list[float] = []
    called = []

    def handler(event: Event) -> None:
        called.append(time.perf_counter())

    with World(seed=2, real_time=True) as world:
        node = world.add_node("n", persist=False)
        processor = start(node, handler)
        time.sleep(0.2)
        for _ in range(samples):
            before = len(called)
            queued = time.perf_counter()
            node.channel_manager._events.push(Event.PendingHTLCsForwardable(timedelta(milliseconds=100)))
            while len(called) == before:
                time.sleep(0.0002)
            delays.append((called[-1] - queued) * 1000)
            time.sleep(0.01)
        processor.stop()
    return delays


def two_hours() -> float:
    with World(seed=3) as world:
        node = world.add_node("n", persist=False)
        processor = start(node, trivial)
        began = time.perf_counter()
        world.advance(7200)
        elapsed = time.perf_counter() - began
        processor.stop()
    return elapsed


def main() -> None:
    through, bare = throughput()
    print(f"processor_events_per_s {through:.0f} events/s")
    print(f"bare_loop_events_per_s {bare:.0f} events/s")
    print(f"processor_vs_bare_ratio {through / bare:.3f} x")
    print(f"processor_cost_over_bare_per_event {(1 / through - 1 / bare) * 1e9:.0f} ns")
    delays = sorted(latency())
    print(f"queue_to_handler_median {statistics.median(delays):.2f} ms")
    print(f"queue_to_handler_p99 {delays[int(len(delays) * 0.99) - 1]:.2f} ms")
    print("ldk_poll_interval 100 ms")
    print(f"two_simulated_hours_idle {two_hours() * 1000:.0f} ms")


if __name__ == "__main__":
    main()
