#!/usr/bin/env python3
"""Where a check's time goes: what the simulation does for it, counted.

A check is made of scenario plays; the capstone plays every scenario of the library under the
background processor's thread form, after the earlier workbooks' own plays. This plays the library
once that way (the reference handler, the capstone's seed) and counts what was simulated, then does
the same for payments on the 3-node line of ``bench/payments.py`` (per payment). Counts do not depend on the
machine, so they say where the CPU time goes even on a noisy one. The world's blocks come ten simulated
minutes apart, and LDK's timers tick many times between two: the ticks counted here are those run one at
a time (a tick that would change nothing is only counted, see ``World._quiet_advance``), next to the
Lightning work (events, messages, commitment updates). Prints one ``name value unit`` line per figure,
with the scenarios' CPU time in the same run.

First, what the processor's own thread costs: the library played world-driven and under a
``BackgroundProcessor``, with user and kernel CPU time and how often a thread blocked. Each hand-over
between the world and the processor thread blocks one of them, and a switch costs the kernel tens of
microseconds on a virtual machine: kernel time the instruction counts of ``bench/instructions.py`` leave out.
Plays keep both threads on one CPU (``cpus.one_cpu``); ``thread_on_any_cpu`` is the same without.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import payments  # noqa: E402  (bench/payments.py: its 3-node line)

from ldkkit import background_processor, reference, scenarios  # noqa: E402
from ldkkit.chain.chainmonitor import ChainMonitor  # noqa: E402
from ldkkit.events.queue import EventQueue  # noqa: E402
from ldkkit.exercises.capstone import reference_seed  # noqa: E402
from ldkkit.ln.channelmanager import ChannelManager  # noqa: E402
from ldkkit.scenarios import Stage  # noqa: E402
from ldkkit.sim.chain import Chain  # noqa: E402
from ldkkit.sim.cpus import one_cpu  # noqa: E402
from ldkkit.sim.world import BLOCK_INTERVAL_S, World  # noqa: E402

COUNTED = {  # what is counted: the kit's function, and the figure's name and unit
    (World, "__init__"): ("worlds", "worlds"),
    (Chain, "_mine_block"): ("blocks", "blocks"),
    (EventQueue, "push"): ("events", "events"),
    (World, "_deliver"): ("messages", "messages"),
    (ChainMonitor, "channel_updated"): ("monitor_updates", "updates"),
    (ChannelManager, "timer_tick_occurred"): ("channel_manager_ticks", "calls"),
    (ChainMonitor, "rebroadcast_pending_claims"): ("claim_rebroadcasts", "calls"),
    (background_processor._RunBody, "quiet_tick"): ("processor_stops_asleep", "stops"),
    (background_processor._RunBody, "_fire"): ("processor_timer_firings", "firings"),
}


def measured(work: Callable[[], Any], targets: dict[tuple[Any, str], str],
             wrap: Callable[[Callable[..., Any], str], Callable[..., Any]]) -> float:
    """Run ``work`` with each target function ``(owner, attribute)`` replaced by ``wrap(original, its name)``, and
    put back after; the CPU seconds it took. The wrapper keeps the original's marks (``functools.wraps``): a tick
    that says when it changes nothing is still skipped then."""
    originals = {key: getattr(*key) for key in targets}
    for key, name in targets.items():
        setattr(*key, functools.wraps(originals[key])(wrap(originals[key], name)))
    try:
        started = time.process_time()
        work()
        return time.process_time() - started
    finally:
        for key, original in originals.items():
            setattr(*key, original)


def counting(work: Callable[[], Any]) -> tuple[Counter[str], float]:
    """Run ``work`` with each counted function counting its calls; the counts and the CPU seconds."""
    counts: Counter[str] = Counter()

    def counter(original: Callable[..., Any], name: str) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)
        return counted

    return counts, measured(work, {key: name for key, (name, _) in COUNTED.items()}, counter)


#: The steps scenarios are written with, whose CPU time is told apart (each step's own: a channel's opening mines
#: its six blocks, and those count as opening it).
PHASES = {(Stage, "peer"): "adding_peers", (Stage, "open"): "opening_channels", (Stage, "mine"): "mining",
          (Stage, "pay"): "paying", (Stage, "settle"): "settling"}


def cpu_by_phase(work: Callable[[], Any]) -> tuple[Counter[str], float]:
    """Run ``work`` with the CPU time of each scenario step added up (the outermost step's, nested ones included);
    the times and the whole CPU time. Noisy, unlike the counts: shares, not figures to compare between runs."""
    spent: Counter[str] = Counter()
    depth = [0]

    def timed(original: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[name] += time.process_time() - started
        return run

    return spent, measured(work, PHASES, timed)


def every_scenario(processor: str | None = "thread") -> None:
    for name in scenarios.names():
        scenarios.run(name, reference.handle_ldk_events, seed=reference_seed(name), processor=processor)


def handovers() -> None:
    """What the processor's thread costs beyond its Python: the scenarios played world-driven (one thread) and under
    a ``BackgroundProcessor`` thread, with the kernel's CPU time and the times a thread blocked (a hand-over
    between the world and the processor, each a context switch). Unix only (``resource``)."""
    try:
        import resource
    except ImportError:
        print("(handovers: the resource module is Unix only)", file=sys.stderr)
        return
    for label, processor in (("world_driven", None), ("thread", "thread"), ("thread_on_any_cpu", "thread")):
        if label == "thread_on_any_cpu":  # (as before cpus.one_cpu: the world's and the processor's threads
            scenarios.one_cpu = contextlib.nullcontext  # wherever the kernel puts them)
        before = resource.getrusage(resource.RUSAGE_SELF)
        try:
            every_scenario(processor)
        finally:
            scenarios.one_cpu = one_cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        print(f"scenarios_{label}_user_cpu {(after.ru_utime - before.ru_utime) * 1000:.0f} ms")
        print(f"scenarios_{label}_kernel_cpu {(after.ru_stime - before.ru_stime) * 1000:.0f} ms")
        print(f"scenarios_{label}_threads_blocked {after.ru_nvcsw - before.ru_nvcsw} switches")


def main() -> None:
    every_scenario()  # imports and caches first, as in a kernel that has run a check before
    every_scenario(None)
    handovers()
    counts, cpu_s = counting(every_scenario)
    print(f"scenarios_played {len(scenarios.names())} scenarios")
    for name, unit in COUNTED.values():
        print(f"scenarios_{name} {counts[name]} {unit}")
    print(f"scenarios_cpu {cpu_s * 1000:.0f} ms")
    print(f"scenarios_simulated_time {counts['blocks'] * BLOCK_INTERVAL_S / 3600:.0f} hours")
    timer_calls = counts["channel_manager_ticks"] + counts["claim_rebroadcasts"] + counts["processor_stops_asleep"]
    print(f"scenarios_timer_calls_per_event {timer_calls / counts['events']:.0f} calls")
    spent, cpu_s = cpu_by_phase(every_scenario)
    for name in [*PHASES.values(), "elsewhere"]:
        share = spent[name] if name != "elsewhere" else cpu_s - sum(spent.values())
        print(f"scenarios_cpu_share_{name} {share / cpu_s * 100:.0f} %")
    n, measured = 300, {}
    pay_many = payments.pay_many

    def counted_pay_many(*args: Any) -> tuple[int, float]:  # (the channels' opening is left out, as the bench does)
        measured["counts"], _ = counting(lambda: measured.setdefault("result", pay_many(*args)))
        return measured["result"]

    payments.pay_many = counted_pay_many
    payments.line(n)
    for name, unit in COUNTED.values():  # (no block, no timer: a payment takes under a simulated second)
        if measured["counts"][name]:
            print(f"line_{name}_per_payment {measured['counts'][name] / n:.1f} {unit}")


if __name__ == "__main__":
    main()
