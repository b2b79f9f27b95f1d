"""The world's own timers, for the nodes it drives (what LDK's background processor would run for them).

They run in one task that moves the virtual clock straight from tick to tick when nothing else is due;
these tests pin when each tick comes, and that skipping ahead never passes something waiting for time.
"""

from __future__ import annotations

import asyncio

from ldkkit.sim.world import World


def _calls(node, world, component: str, method: str) -> list[float]:
    """Record the virtual time of each call to ``node.<component>.<method>``."""
    times: list[float] = []
    target = getattr(node, component)
    original = getattr(target, method)

    def spy(*args, **kwargs):
        times.append(world.clock.now())
        return original(*args, **kwargs)

    setattr(target, method, spy)
    return times


def test_each_nodes_timers_tick_every_30_s_from_when_it_joined():
    with World(seed=0) as world:
        a = world.add_node("a", persist=False)
        a_rebroadcasts = _calls(a, world, "chain_monitor", "rebroadcast_pending_claims")
        a_fresh = _calls(a, world, "channel_manager", "timer_tick_occurred")
        a_pings = a.peer_manager.timer_ticks
        world.advance(45)
        b = world.add_node("b", persist=False)
        b_rebroadcasts = _calls(b, world, "chain_monitor", "rebroadcast_pending_claims")
        b_fresh = _calls(b, world, "channel_manager", "timer_tick_occurred")
        world.advance(75)
        assert a_rebroadcasts == [30, 60, 90, 120] and a_fresh == [60, 120]
        assert b_rebroadcasts == [75, 105] and b_fresh == [105]
        assert a.peer_manager.timer_ticks - a_pings == 12 and b.peer_manager.timer_ticks == 6  # one per 10 s


def test_moving_the_clock_ahead_never_passes_a_coroutine_waiting_for_time():
    """A handler's ``asyncio.sleep(45)`` wakes at 45 s, between the 30 s and 60 s ticks, not after them."""
    with World(seed=0) as world:
        a = world.add_node("a", persist=False)
        ticks = _calls(a, world, "chain_monitor", "rebroadcast_pending_claims")
        woke: list[tuple[float, int]] = []

        async def sleeper() -> None:
            await asyncio.sleep(45)
            woke.append((world.clock.now(), len(ticks)))

        world.runtime.loop.create_task(sleeper())
        world.advance(100)
        assert woke == [(45, 1)] and ticks == [30, 60, 90]


def test_a_sleeping_processors_timers_never_run_past_a_coroutine_waiting_for_time():
    """Under a BackgroundProcessor, the runtime runs its quiet timers (ping, freshness, rebroadcast) back to
    back while it sleeps, but stops for anything else due first: a coroutine's sleep(45) wakes at 45 s."""
    from ldkkit.background_processor import run_processor

    with World(seed=0) as world:
        a = world.add_node("a", persist=False)
        woke: list[tuple[float, int]] = []

        async def sleeper() -> None:
            await asyncio.sleep(45)
            woke.append((world.clock.now(), a.peer_manager.timer_ticks))

        with run_processor(a, "thread"):
            pings = a.peer_manager.timer_ticks
            world.runtime.loop.create_task(sleeper())
            world.advance(100)
        assert woke[0][0] == 45
        assert woke[0][1] - pings == 4  # the thread form pings at 11, 22, 33 and 44 s (after more than 10 s)


def test_a_timer_that_fails_on_one_node_is_raised_and_the_other_nodes_timers_go_on():
    import pytest

    with World(seed=0) as world:
        a, b = world.add_node("a", persist=False), world.add_node("b", persist=False)

        failures = [RuntimeError("a's monitor is broken")]

        def broken() -> None:  # once
            if failures:
                raise failures.pop()

        a.chain_monitor.rebroadcast_pending_claims = broken
        b_ticks = _calls(b, world, "chain_monitor", "rebroadcast_pending_claims")
        with pytest.raises(RuntimeError, match="a's monitor is broken"):
            world.advance(30)
        world.advance(30)
        assert b_ticks == [30, 60]


def test_time_stops_where_an_advance_ends_even_on_a_tick():
    """An advance that ends exactly on a tick runs that tick and stops there: the timers never move the clock
    past what ``advance`` allows, whether or not a background processor is attached."""
    with World(seed=0) as world:
        a = world.add_node("a", persist=False)
        ticks = _calls(a, world, "chain_monitor", "rebroadcast_pending_claims")
        world.advance(30)
        assert world.clock.now() == 30 and ticks == [30]
        world.run()
        assert world.clock.now() == 30 and ticks == [30]
        world.advance(60)
        assert world.clock.now() == 90 and ticks == [30, 60, 90]
