#!/usr/bin/env python3
"""The background processor's throughput and latency.

Prints one `name value unit` line per figure:
- events per second through a BackgroundProcessor with a trivial handler, next to a bare
  loop calling the same handler on the same events in the same run, and their ratio (on real time,
  and on CPU time); what the processor adds per event over the bare loop (queueing, logging,
  timing, waking), in nanoseconds; and how many batches it took the events in (see ``throughput``);
- on real time, the delay from an event being queued to the handler being called
  (median and p99), next to LDK's 100 ms poll;
- how long two simulated hours of an idle node take on the virtual clock.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

# The checkout this file is in, not whichever one the environment installed (as bench/payments.py does).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldkkit.background_processor import BackgroundProcessor, GossipSync  # noqa: E402
from ldkkit.events import Event  # noqa: E402
from ldkkit.sim.cpus import one_cpu  # noqa: E402
from ldkkit.sim.world import World  # noqa: E402

N_EVENTS = 20_000
ROUNDS = 15


def trivial(event: Event) -> None:
    match event:
        case Event.PendingHTLCsForwardable():
            pass
        case _:  # the last event of a run: the moment the handler is given it is the run's end
            ended.append((time.perf_counter(), time.process_time()))
            finished.set()


ended: list[tuple[float, float]] = []  # (real time, the process's CPU time)
finished = threading.Event()


def start(node, handler) -> BackgroundProcessor:
    return BackgroundProcessor.start(node.fs_store, handler, node.chain_monitor, node.channel_manager, None,
                                     GossipSync.p2p(node.network_graph), node.peer_manager, node.logger, node.scorer)


@dataclass
class Throughput:
    """Events per second through the processor and the bare loop, and the ratios: the medians of the rounds'."""

    processor: float
    bare: float
    ratio: float  # on real time
    cpu_ratio: float  # on the process's CPU time
    batches: float  # how many batches the processor took per run


def throughput() -> Throughput:
    """The processor against the bare loop, in ``ROUNDS`` interleaved rounds.

    - A processor run is the manager queueing ``N_EVENTS`` events (``EventQueue.push``, in a step of the world, as
      the node's own work queues them: on the virtual clock a processor woken from outside the world's turn works at
      its next step) and the processor's thread waking, taking them in batches, logging each in the
      node's event log (the world's observer), handing it to the handler through LDK's wrapper (its updates first,
      the slow-handler timing), and persisting the manager after each batch; timed from the first push to the moment
      the handler is given the last event (stamped by the handler: this thread waits without polling, taking no
      turn from the processor's). The bare loop hands the same events to the same handler.
    - Each round times a processor run, then the bare loop over a window as long (the events again and again), once
      the processor is asleep: equal windows, in the same stretch of the machine's load. Each figure is the median of
      the rounds' (a round's ratio is of its own two windows).
    - Both on real time, and on the process's CPU time (its threads' together: what the other work on a loaded
      machine does not change; waits for a wake-up are not counted).
    - Both threads run on one CPU (``cpus.one_cpu``), as a check runs a play under a processor.
    """
    rounds: list[tuple[float, float, float, float, int]] = []
    with one_cpu(), World(seed=1) as world:
        node = world.add_node("n", persist=False)
        events = [Event.PendingHTLCsForwardable(timedelta(milliseconds=100)) for _ in range(N_EVENTS - 1)]
        events.append(Event.ConnectionNeeded(node.node_id, ()))  # (the last: see ``trivial``)
        processor = start(node, trivial)
        queue = node.channel_manager._events
        for _ in range(ROUNDS):
            batches = _count_batches(queue)
            through, through_cpu, window = processor_run(world.runtime.call, queue, events)
            while not processor._state.participant.idle:  # (its last batch's persist: not the bare loop's time)
                time.sleep(0.0005)
            rounds.append((through, through_cpu, *bare_rate(events, window), batches[0]))
        processor.stop()
    return Throughput(statistics.median(r[0] for r in rounds), statistics.median(r[2] for r in rounds),
                      statistics.median(r[0] / r[2] for r in rounds), statistics.median(r[1] / r[3] for r in rounds),
                      statistics.median(r[4] for r in rounds))


def _count_batches(queue: Any) -> list[int]:
    """Count the batches the processor takes from ``queue`` (``EventQueue.pending`` calls that find events)."""
    count = [0]
    pending = type(queue).pending

    def counted() -> list[Event]:
        batch = pending(queue)
        count[0] += bool(batch)
        return batch

    queue.pending = counted
    return count


def bare_rate(events: list[Event], window: float) -> tuple[float, float]:
    """The bare loop's events per second over at least ``window`` seconds: on real time, on CPU time."""
    handled = 0
    began, began_cpu = time.perf_counter(), time.process_time()
    while True:
        for event in events:
            trivial(event)
        handled += len(events)
        elapsed = time.perf_counter() - began
        if elapsed >= window:
            return handled / elapsed, handled / (time.process_time() - began_cpu)


def processor_run(step: Callable[[Callable[[], None]], None], queue: Any, events: list[Event]) -> tuple[float, ...]:
    """Queue ``events`` as the manager would, in a world's ``step``; the processor's events per second on real time
    and on CPU time, and the run's length."""
    ended.clear()
    finished.clear()
    began, began_cpu = time.perf_counter(), time.process_time()
    step(lambda: _push(queue, events))
    finished.wait()
    (end, end_cpu), = ended
    return len(events) / (end - began), len(events) / (end_cpu - began_cpu), end - began


def _push(queue: Any, events: list[Event]) -> None:
    for event in events:
        queue.push(event)


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
    t = throughput()
    print(f"processor_events_per_s {t.processor:.0f} events/s")
    print(f"bare_loop_events_per_s {t.bare:.0f} events/s")
    print(f"processor_vs_bare_ratio {t.ratio:.3f} x")
    print(f"processor_vs_bare_cpu_time_ratio {t.cpu_ratio:.3f} x")
    print(f"processor_cost_over_bare_per_event {(1 / t.processor - 1 / t.bare) * 1e9:.0f} ns")
    print(f"processor_batches_per_run {t.batches:.0f} batches")
    delays = sorted(latency())
    print(f"queue_to_handler_median {statistics.median(delays):.2f} ms")
    print(f"queue_to_handler_p99 {delays[int(len(delays) * 0.99) - 1]:.2f} ms")
    print("ldk_poll_interval 100 ms")
    print(f"two_simulated_hours_idle {two_hours() * 1000:.0f} ms")


if __name__ == "__main__":
    main()
