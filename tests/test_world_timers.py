"""The world's own timers, for the nodes it drives (what LDK's background processor would run for them).

They run in one task that moves the virtual clock straight from tick to tick when nothing else is due;
these tests pin when each tick comes, and that skipping ahead never passes something waiting for time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from played import played_with_every_write

from ldkkit import background_processor as bp_module
from ldkkit import scenarios
from ldkkit.config import UserConfig
from ldkkit.events import Event
from ldkkit.ln.outbound_payment import RecipientOnionFields
from ldkkit.routing.router import Path, Route, RouteHop
from ldkkit.scenarios import _SCENARIOS, Stage
from ldkkit.sim.node_process import run_processor
from ldkkit.sim.runtime import Runtime
from ldkkit.sim.world import World
from ldkkit.types import PaymentId


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
    from ldkkit.sim.node_process import run_processor

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


# --- quiet advances: time moved on at once while the only ticks due would count pings -----------------------


def _unfunded(world: World) -> None:
    """The learner opens a channel to bob and never funds it: 60 ticks later it is closed."""
    from ldkkit.reference import ldk_sample_handle_ldk_events

    def never_funding(*args):
        return None if isinstance(args[-1], Event.FundingGenerationReady) else ldk_sample_handle_ldk_events(*args)

    stage = Stage(world, world.add_node("learner", handler=never_funding))
    bob = stage.peer("bob")
    stage.me.channel_manager.create_channel(bob.node_id, 1_000_000, 0, 1, None, None)
    world.run()
    stage.mine(8)


def _unanswered(world: World) -> None:
    """Bob asks the learner for a channel, and nobody answers: after two ticks the request is dropped."""
    me = world.add_node("learner", config=UserConfig(manually_accept_inbound_channels=True), handler=lambda *a: None)
    stage = Stage(world, me)
    bob = stage.peer("bob")
    bob.channel_manager.create_channel(me.node_id, 1_000_000, 0, 1, None, None)
    world.run()
    bob.driven_by_world = False  # (its own unfunded channel would keep every advance exact: the learner's request)
    stage.mine(1)


def _unbumped(world: World) -> None:
    """A force-closed commitment the learner never bumps: its claim waits, asked again every 30 s, for blocks."""
    from test_chainmonitor import force_close_with_an_htlc, ignore_bumps

    stage, _ = force_close_with_an_htlc(world, ignore_bumps)
    stage.mine(3)


def _just_short(world: World) -> None:
    """An advance that ends 5 µs before a tick: the advance's own end comes first, the tick after it."""
    world.add_node("learner")
    world.run()
    world.advance(30 - 0.000_005)


def _incomplete_mpp(world: World) -> None:
    """One part of bob's two-part payment never arrives: after three ticks the other is failed back."""
    stage = Stage(world, world.add_node("learner"))
    bob = stage.peer("bob")
    stage.open(bob, stage.me, 6_000_000)
    stage.open(bob, stage.me, 6_000_000)
    invoice = stage.invoice(stage.me, 80_000_000)
    scids = [c.short_channel_id for c in bob.channel_manager.list_usable_channels()]
    paths = tuple(Path((RouteHop(stage.me.node_id, b"", scid, b"", amount, 42, True),), None)
                  for scid, amount in zip(scids, [30_000_000, 50_000_000], strict=True))
    bob.channel_manager.send_payment_with_route(Route(paths, None), invoice.payment_hash(),
                                                RecipientOnionFields.secret_only(invoice.payment_secret()),
                                                PaymentId(b"\x55" * 32))
    bob.channel_manager.pending_msg_events.pop()  # the 50,000 sat part never arrives
    stage.settle()
    world.advance(600)


def _scenario(name: str) -> Callable[[World], None]:
    def play(world: World) -> None:
        _SCENARIOS[name](Stage(world, world.add_node("learner")))
    return play


STORIES = {"unfunded": _unfunded, "unanswered": _unanswered, "incomplete_mpp": _incomplete_mpp, "unbumped": _unbumped,
           "just_short": _just_short,
           **{name: _scenario(name) for name in _SCENARIOS}}


def _played(story: Callable[[World], None], processor: str = "") -> list[Any]:
    """Everything a story leaves in its world; with ``processor`` (a form), the learner runs under a processor."""
    with World(seed=5) as world, contextlib.ExitStack() as running:
        processors: list[Any] = []
        pings: list[Any] = []
        if processor:
            add_node = world.add_node

            def add_under_processor(name: str, **kwargs: Any) -> Any:
                node = add_node(name, **kwargs)
                if name == "learner":
                    handler = node.event_handler

                    def handle(event: Any) -> Any:  # what the world's other nodes had counted by then, too
                        pings.append((type(event).__name__, [n.peer_manager.timer_ticks for n in world.nodes.values()]))
                        return handler(event)

                    node.event_handler = handle
                    processors.append(running.enter_context(run_processor(node, processor)))
                return node

            world.add_node = add_under_processor  # type: ignore[method-assign]
        story(world)
        world.run()
        state = [(name, [(t, h, repr(e)) for t, h, e in node.event_log], node.peer_manager.timer_ticks,
                  node.channel_manager.encode(), [m.encode() for m in node.chain_monitor.monitors.values()],
                  node.scorer.encode(), node.fs_store.list("", ""), world._next_tick[name])
                 for name, node in sorted(world.nodes.items())]
        state.append((world.clock.now_us(), world.chain.tip().block_hash, world.message_log))
        state += [(dict(p.timer_counts), {n: t.last_us for n, t in p._state.body.timers.items()})
                  for p in processors if processor == "thread"]
        state.append(pings)
    return state


@pytest.mark.parametrize("story", list(STORIES))
def test_a_quiet_advance_leaves_the_world_as_the_timers_ticking_one_by_one_do(story, monkeypatch):
    """A quiet advance counts the pings of ticks that would do nothing else (no claim, nothing to age or forget)
    and moves the clock on: every event, time, record, ping count and schedule is as with every tick run."""
    quietly = _played(STORIES[story])
    monkeypatch.setattr(World, "_quiet_advance", lambda world, target_us: False)
    one_by_one = _played(STORIES[story])
    assert quietly == one_by_one


def test_each_quiet_block_is_one_quiet_advance():
    """Mining where nothing waits for time (a funded channel, nothing in flight): each block's ten minutes
    pass at once, the pings of their twenty ticks counted."""
    with World(seed=5) as world:
        stage = Stage(world, world.add_node("learner"))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 1_000_000)
        pings, taken = bob.peer_manager.timer_ticks, []
        quiet = world._quiet_advance
        world._quiet_advance = lambda seconds: taken.append(quiet(seconds)) or taken[-1]  # type: ignore[method-assign]
        world.mine(10)
        assert taken == [True] * 10
        assert bob.peer_manager.timer_ticks - pings == 10 * 20 * 3


PROCESSED = ["unfunded", "unbumped", "incomplete_mpp", "just_short", *_SCENARIOS]


@pytest.mark.parametrize("form", ["thread", "async"])
@pytest.mark.parametrize("story", PROCESSED)
def test_under_a_processor_quiet_time_leaves_the_world_as_stopping_at_every_deadline_does(story, form, monkeypatch):
    """Under a processor, a quiet advance also works through the sleeping processor's deadlines, and at each the
    ticks that would change nothing are only counted: every event, record, persisted key, ping and timer count,
    and each timer's last firing, are as when the clock stops at every deadline. The thread form's loop is then
    woken each time, as LDK's is. The async form's ticks fall on the world's own instants (both every 60 s),
    where the runtime has always run the processor's due timers first, before the world's: it does, each time."""
    quietly = _played(STORIES[story], processor=form)
    monkeypatch.setattr(World, "_quiet_advance", lambda world, target_us: False)
    if form == "thread":
        monkeypatch.setattr(bp_module._RunBody, "quiet_tick", lambda body, now_us, until_us: None)
    else:
        monkeypatch.setattr(bp_module._RunBody, "_count_quiet", lambda body, deadline_us, until_us: deadline_us)
    every_deadline = _played(STORIES[story], processor=form)
    assert quietly == every_deadline


def test_a_quiet_block_under_a_processor_stops_only_where_the_processor_has_work():
    """Under a BackgroundProcessor, each quiet block's ten minutes still pass in one quiet advance; the sleeping
    processor stops the clock only for its first deadline after the block woke it, its scorer's persist (every
    five minutes) and its graph's prune (hourly), its ticks of the other timers (about ninety a block) only
    counted."""
    with World(seed=5) as world:
        stage = Stage(world, world.add_node("learner"))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 1_000_000)
        taken, stops = [], []
        quiet = world._quiet_advance
        world._quiet_advance = lambda target_us: taken.append(quiet(target_us)) or taken[-1]  # type: ignore
        with run_processor(stage.me) as processor:
            world.mine(1)  # (its first wake decays the scorer)
            quiet_tick = processor._state.participant.on_deadline
            processor._state.participant.on_deadline = lambda now, until: stops.append(now) or quiet_tick(now, until)
            before = Counter(processor.timer_counts)
            world.mine(12)
            fired = processor.timer_counts - before
        assert taken[1:] == [True] * 12
        assert fired["scorer_persist"] == 24 and fired["network_prune"] == 2 and fired["ping"] > 12 * 50
        assert len(stops) <= 12 + fired["scorer_persist"] + fired["network_prune"]


def _every_write_world_driven(name: str, defer: bool) -> tuple[list, list]:
    with pytest.MonkeyPatch.context() as patch:
        if not defer:
            patch.setattr(Runtime, "in_call_with_nothing_queued", lambda self: False)
        return played_with_every_write(name)


@pytest.mark.parametrize("name", scenarios.names())
def test_a_block_persisted_as_the_call_returns_is_the_drives_own_persist(name):
    """A block wakes the world's drive of a node only to persist its manager; the world does that as the block's
    call returns (``World._persist_quietly``), not through the loop. The handler gets the same events at the
    same times and heights, and the store the same writes, byte for byte and in the same order."""
    assert _every_write_world_driven(name, defer=True) == _every_write_world_driven(name, defer=False)


@pytest.mark.parametrize("defer", [True, False])
def test_a_manager_write_failing_at_a_block_ends_the_drive_with_that_error(defer, monkeypatch):
    """As LDK's processor ends when persisting the manager fails, the world stops driving the node, and the
    error is raised from the call that met it (a drive's task once died with it unseen)."""
    if not defer:
        monkeypatch.setattr(Runtime, "in_call_with_nothing_queued", lambda self: False)
    with World(seed=4) as world:
        node = world.add_node("learner")
        write = node.fs_store.write
        written: list[str] = []
        failures = [OSError("disk full, once (simulated)")]

        def failing_once(primary, secondary, key, buf):
            if key == "manager" and failures:
                raise failures.pop()
            written.append(key)
            write(primary, secondary, key, buf)

        node.fs_store.write = failing_once
        with pytest.raises(OSError, match="disk full, once"):
            world.mine(1)
        assert not node.driven_by_world
        world.mine(2)
        assert written == []  # nothing persists the node any more
