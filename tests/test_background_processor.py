"""The background processor: LDK's loop, timers, scoring hooks and error handling, in both forms."""

from __future__ import annotations

import contextlib
import gc
import itertools
import threading
import time
import types
import warnings
import weakref
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from played import played_with_every_write

from ldkkit import background_processor as bp_module
from ldkkit import scenarios
from ldkkit.background_processor import BackgroundProcessor, GossipSync
from ldkkit.errors import RetryableSendFailure
from ldkkit.events import Event, ReplayEvent
from ldkkit.events.queue import EventHandlerError, ReturnedUnawaited
from ldkkit.exercises import watch
from ldkkit.fs_store import FilesystemStore
from ldkkit.ln.outbound_payment import RecipientOnionFields, Retry
from ldkkit.reference import handle_ldk_events, ldk_sample_handle_ldk_events
from ldkkit.routing.router import PaymentParameters, RouteParameters
from ldkkit.scenarios import Stage
from ldkkit.ser import decode
from ldkkit.sim.node_process import run_processor
from ldkkit.sim.world import World
from ldkkit.types import PaymentId, PaymentPreimage
from ldkkit.wakers import Notifier


def start(node) -> BackgroundProcessor:
    return BackgroundProcessor.start(
        node.fs_store, node.event_handler, node.chain_monitor, node.channel_manager, None,
        GossipSync.p2p(node.network_graph), node.peer_manager, node.logger, node.scorer,
    )


@pytest.fixture
def world():
    world = World(seed=11)
    yield world
    world.close()


# Two hours of an idle node. The thread form checks `elapsed().as_secs() > interval` (whole
# seconds): FRESHNESS at 61 s, PING at 11 s and so on, plus the startup calls. The async form
# (ldk-sample's) waits on a sleeper of the interval itself: PING every 10 s.
TWO_HOURS = {"freshness": 1 + 118, "ping": 654, "rebroadcast": 1 + 232, "network_prune": 2, "scorer_persist": 23}
TWO_HOURS_ASYNC_PINGS = 720


@pytest.mark.parametrize("form", ["thread", "async"])
def test_an_async_handler_returning_a_coroutine_unawaited_stops_the_processor_with_its_error(world, form):
    """Under either processor form, a coroutine an async handler returns unawaited is its error, named with the event:
    the thread form once waited for ever to run it on the loop it was itself waiting for (a check never ended)."""
    async def persist():
        pass

    async def handler(*args):
        if isinstance(args[-1], Event.OpenChannelRequest):
            return persist()
        return None

    node = world.add_node("learner", handler=handler)
    peer = world.add_node("bob")
    outcome: list[BaseException] = []

    def play() -> None:
        try:
            with run_processor(node, form):
                world.connect(peer, node)
                peer.channel_manager.create_channel(node.node_id, 1_000_000, 0, 1, None, None)
                world.run()
                world.advance(1)
        except BaseException as e:  # (what the processor ended with, raised as it stops)
            outcome.append(e)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the play never ended"
    error = outcome[0] if outcome else None
    assert isinstance(error, EventHandlerError) and isinstance(error.error, ReturnedUnawaited), outcome
    assert isinstance(error.event, Event.OpenChannelRequest)


@pytest.mark.parametrize("form", ["thread", "async"])
def test_timers_over_two_simulated_hours_match_ldks_schedule(world, form):
    node = world.add_node("learner", handler=handle_ldk_events)
    ticks_before = node.peer_manager.timer_ticks
    with run_processor(node, form) as processor:
        world.advance(7200)
        counts = processor.timer_counts if form == "thread" else None
    pings = node.peer_manager.timer_ticks - ticks_before
    if form == "thread":
        assert dict(counts) == TWO_HOURS and pings == TWO_HOURS["ping"]
    else:
        assert pings == TWO_HOURS_ASYNC_PINGS


@pytest.mark.parametrize("pings_only_count", [True, False])
def test_a_sleeping_processor_counts_pings_without_stopping_the_clock_for_each(world, monkeypatch, pings_only_count):
    """A ping only counts (the simulation's peers always answer): while the processor sleeps, the runtime counts
    the pings due before anything else happens without stopping at each (the world's own timers, every 30 s, are
    the next thing here). A ping tick that does more is run at its time, as LDK's loop wakes for each."""
    stops: list[int] = []
    quiet_tick = bp_module._RunBody.quiet_tick

    def watched(body, now_us, until_us):
        stops.append(now_us)
        return quiet_tick(body, now_us, until_us)

    monkeypatch.setattr(bp_module._RunBody, "quiet_tick", watched)
    node = world.add_node("learner", handler=handle_ldk_events)
    if not pings_only_count:
        _pinging_as_ldks_loop(node)
    with run_processor(node) as processor:
        world.advance(7200)
        counts = processor.timer_counts
    assert dict(counts) == TWO_HOURS
    if pings_only_count:
        assert len(stops) < TWO_HOURS["ping"]
    else:
        assert len(stops) >= TWO_HOURS["ping"]


def test_pings_counted_while_asleep_never_run_ahead_of_the_clock(world):
    """The thread form pings at 11 s, 22 s, 33 s (whole seconds, ``>``); at 31 s the rebroadcast stops the clock
    and the pings after it are counted without stopping, but only those the clock will reach: an advance that
    ends 11 µs before the third (the runtime's rounding slack, 10 µs, still short of it) leaves it for later."""
    node = world.add_node("learner", handler=handle_ldk_events)
    before = node.peer_manager.timer_ticks
    with run_processor(node):
        world.advance(33 - 0.000_011)
        assert node.peer_manager.timer_ticks - before == 2
        world.advance(0.000_011)
        assert node.peer_manager.timer_ticks - before == 3


def _pinging_as_ldks_loop(node) -> None:
    """A ping tick that counts as the kit's does, but is not marked as only counting: the processor then stops
    the clock for each ping, as LDK's loop wakes for each."""
    peer_manager = node.peer_manager

    def tick() -> None:
        peer_manager.timer_ticks += 1

    peer_manager.timer_tick_occurred = tick


@given(form=st.sampled_from(["thread", "async"]), steps=st.lists(st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 40_000).map(lambda tenths: tenths / 10)),
    st.tuples(st.just("mine"), st.integers(1, 2)),
    st.tuples(st.just("pay"), st.integers(1_000, 50_000_000)),
), min_size=1, max_size=5))
def test_pings_counted_while_the_processor_sleeps_are_those_it_would_wake_for(form, steps):
    """With bob's world-driven timers and payments waking the processor at any moment, the counted pings are, at
    every pause, those of a processor that stops the clock for each: as many, the last at the same time."""
    runs = []
    for count_only in (True, False):
        world = World(seed=23)
        me = world.add_node("learner", handler=ldk_sample_handle_ldk_events)
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(bob, me, 5_000_000, push_msat=2_000_000_000)
        if not count_only:
            _pinging_as_ldks_loop(me)
        runs.append((world, stage, bob, run_processor(me, form)))
    seen: list[list[object]] = [[], []]
    try:
        for i, (_, _, _, processing) in enumerate(runs):
            seen[i].append(processing.__enter__())
        for step, value in steps:
            for i, (world, stage, bob, _) in enumerate(runs):
                if step == "advance":
                    world.advance(value)
                elif step == "mine":
                    stage.mine(value)
                else:
                    stage.pay(bob, stage.invoice(stage.me, value))
                processor = seen[i][0]
                timers = {n: t.last_us for n, t in processor._state.body.timers.items()} if form == "thread" else {}
                seen[i].append((stage.me.peer_manager.timer_ticks, timers))
    finally:
        for world, _, _, processing in runs:
            processing.__exit__(None, None, None)
            world.close()
    assert seen[0][1:] == seen[1][1:]


class _Ticks:
    """Stand-ins for the timers' actions: a ping that counts, and ticks whose predicate says they change nothing
    when named in ``idle`` (a counted tick is never run)."""

    def __init__(self, idle: set[str]) -> None:
        self.idle, self.pings = idle, 0

    def ping(self) -> None:
        self.pings += 1

    ping.only_counts = True

    def ticks_occurred(self, count: int) -> None:
        self.pings += count

    def freshness(self) -> None:
        raise AssertionError("a tick that changes nothing is counted, not run")

    def rebroadcast(self) -> None:
        raise AssertionError("a tick that changes nothing is counted, not run")

    freshness.changes_nothing_when = lambda self: "freshness" in self.idle
    rebroadcast.changes_nothing_when = lambda self: "rebroadcast" in self.idle

    # The scorer's persist: a scorer that has nothing to decay, and a store that already holds its bytes.
    def time_passed(self, duration_since_epoch) -> None:
        raise AssertionError("a persist that changes nothing is counted, not run")

    def encode(self) -> bytes:
        return b"scorer"

    def write(self, primary, secondary, key, buf) -> None:
        raise AssertionError("a persist that changes nothing is counted, not run")

    time_passed.changes_nothing_when = lambda self: "scorer_persist" in self.idle
    write.changes_nothing_when = lambda self, p, s, key, buf: (key, buf) == ("scorer", b"scorer")


def _stepped(body, deadline_us: int, until_us: int, idle: set[str], ticks: _Ticks) -> int:
    """What ``_count_quiet`` counts, poll by poll, as the loop would wake for each."""
    while deadline_us < until_us and (due := body._due(deadline_us)) and due <= idle:
        for name in due:
            body._fire(name, deadline_us)
        ticks.pings += "ping" in due
        deadline_us = body.next_deadline_us(deadline_us, bp_module.POLL_INTERVAL_S)
    return deadline_us


_INTERVALS = [("freshness", 60), ("ping", 10), ("network_prune", 60), ("scorer_persist", 300), ("rebroadcast", 30)]


@given(whole_seconds=st.booleans(), ages=st.lists(st.floats(0, 1.3), min_size=5, max_size=5),
       idle=st.sets(st.sampled_from(["ping", "freshness", "rebroadcast", "scorer_persist"])),
       span=st.one_of(st.integers(0, 120_000_000), st.integers(0, 8_000_000_000)))
@example(whole_seconds=True, ages=[0.5, 3e-6, 0.5, 0.5, 0.5], idle={"ping"}, span=0)  # (ends before the first poll)
@settings(max_examples=300)  # (arithmetic only: a second for all of them)
def test_quiet_ticks_are_counted_as_the_loop_would_fire_them_poll_by_poll(whole_seconds, ages, idle, span):
    """Counting a sleeping processor's quiet ticks in one go gives what firing them poll by poll gives: the same
    counts, the same pings, each timer's last firing, and the first deadline left (any timer's state, from just
    fired to overdue, and any span)."""
    start = 1_000_000_000
    runs = []
    for counted in (True, False):
        body = bp_module._RunBody.__new__(bp_module._RunBody)
        body.clock = types.SimpleNamespace(is_virtual=True)
        body.timer_counts = Counter()
        body.timers = {name: bp_module._Timer(interval, start - round(age * interval * 1e6), whole_seconds)
                       for (name, interval), age in zip(_INTERVALS, ages, strict=True)}
        ticks = _Ticks(idle)
        body.scorer, body.persister, body.have_decayed_scorer = ticks, ticks, True
        body._timer_actions = {"freshness": ticks.freshness, "rebroadcast": ticks.rebroadcast,
                               "ping": ticks.ping if "ping" in idle else lambda: None}
        deadline = body.next_deadline_us(start, bp_module.POLL_INTERVAL_S)
        left = body._count_quiet(deadline, start + span) if counted else _stepped(body, deadline, start + span, idle,
                                                                                    ticks)
        runs.append((left, dict(body.timer_counts), {n: t.last_us for n, t in body.timers.items()}, ticks.pings))
    assert runs[0] == runs[1]


class _AskedTooSoon(_Ticks):
    """Stand-ins whose freshness tick and scorer may not be asked about: neither falls due before the count ends."""

    def freshness(self) -> None:
        raise AssertionError("never run")

    freshness.changes_nothing_when = lambda self: pytest.fail("asked whether a tick long after the count only counts")

    def encode(self) -> bytes:
        raise AssertionError("the scorer encoded for a persist due after the count")


def test_a_count_asks_only_of_the_timers_due_before_it_ends():
    """Whether a timer would only count is asked only of those that fall due before the count ends: a count that
    ends before the scorer's persist does not encode the scorer (most of a sleeping processor's counts), nor asks
    the manager about a freshness tick that comes after it."""
    start = 1_000_000_000
    body = bp_module._RunBody.__new__(bp_module._RunBody)
    body.clock = types.SimpleNamespace(is_virtual=True)
    body.timer_counts = Counter()
    body.timers = {name: bp_module._Timer(interval, start, True) for name, interval in _INTERVALS}
    ticks = _AskedTooSoon({"ping", "rebroadcast"})
    body.scorer, body.persister, body.have_decayed_scorer = ticks, ticks, True
    body._timer_actions = {"freshness": ticks.freshness, "rebroadcast": ticks.rebroadcast, "ping": ticks.ping}
    deadline = body.next_deadline_us(start, bp_module.POLL_INTERVAL_S)  # the first ping's, 11 s on
    left = body._count_quiet(deadline, start + 40_000_000)
    assert dict(body.timer_counts) == {"ping": 3, "rebroadcast": 1} and ticks.pings == 3
    assert left == start + 44_000_000  # the fourth ping's


def test_a_scorer_persist_is_counted_only_when_it_would_change_nothing(tmp_path):
    """Counted, not run, only with no scorer, or a scorer with nothing to decay whose bytes the kit's own store
    already holds; anything else (a learned scorer, other bytes, a durable folder, a write of your own) runs."""
    from datetime import timedelta

    from ldkkit.bitcoin import Network
    from ldkkit.persist import InMemoryStore
    from ldkkit.routing.gossip import NetworkGraph
    from ldkkit.routing.scoring import ChannelLiquidity, ProbabilisticScorer

    def counted(scorer, persister) -> bool:
        body = bp_module._RunBody.__new__(bp_module._RunBody)
        body.scorer, body.persister = scorer, persister
        return body._scorer_persist_changes_nothing()

    scorer = ProbabilisticScorer(None, NetworkGraph(Network.Regtest))
    holding, other = InMemoryStore(), InMemoryStore()
    holding.write("", "", "scorer", scorer.encode())
    other.write("", "", "scorer", b"older")
    scratch, durable = FilesystemStore(tmp_path / "a", durable=False), FilesystemStore(tmp_path / "b")
    for store in (scratch, durable):
        store.write("", "", "scorer", scorer.encode())
    assert counted(None, other) and counted(scorer, holding) and counted(scorer, scratch)
    assert not counted(scorer, other) and not counted(scorer, durable) and not counted(scorer, InMemoryStore())
    scratch.write = lambda *args: None  # a write of your own may do anything
    assert not counted(scorer, scratch)
    assert not counted(object(), holding) and not counted(scorer, object())  # (their errors come when run)
    scorer._liquidities[42] = ChannelLiquidity.new(timedelta(0))  # something learned: time passing decays it
    holding.write("", "", "scorer", scorer.encode())
    assert not counted(scorer, holding)


@pytest.mark.parametrize("form, expected", [("thread", [61, 61 + 3601]), ("async", [60, 60 + 3600])])
def test_the_graph_is_first_pruned_a_minute_after_start_then_hourly(world, form, expected):
    """LDK 0.1's FIRST_NETWORK_PRUNE_TIMER is 60 s, NETWORK_PRUNE_TIMER an hour (the thread form compares
    whole elapsed seconds with ``>``, so one second later each time)."""
    node = world.add_node("learner", handler=handle_ldk_events)
    graph, pruned = node.network_graph, []
    prune = graph.remove_stale_channels_and_tracking_with_time

    def recorded(now_unix):
        pruned.append(world.clock.now())
        return prune(now_unix)

    graph.remove_stale_channels_and_tracking_with_time = recorded
    start_s = world.clock.now()
    with run_processor(node, form):
        world.advance(3700)
    assert [round(t - start_s, 3) for t in pruned] == expected


@pytest.mark.parametrize("form, scorer_every, pruned", [("thread", 301, [61, 61 + 3601]), ("async", 300, [60, 3660])])
def test_an_idle_processors_timers_run_while_it_sleeps_and_wake_it_once_to_decay_the_scorer(
        world, form, scorer_every, pruned, monkeypatch):
    """Nothing happens for two hours: every timer runs on LDK's schedule (the scorer written every five minutes,
    the graph pruned), yet the loop wakes only once, at the first scorer persist, which must follow the
    first wake's decay; a wake that would only run timers is done by the runtime while the loop sleeps."""
    node = world.add_node("learner", handler=handle_ldk_events)
    wakes, written = [], []
    real_after_wake = bp_module._RunBody.after_wake
    monkeypatch.setattr(bp_module._RunBody, "after_wake", lambda body: wakes.append(world.clock.now())
                        or real_after_wake(body))
    write = node.fs_store.write
    node.fs_store.write = lambda p, s, key, buf: written.append((world.clock.now(), key)) or write(p, s, key, buf)
    started = world.clock.now()
    with run_processor(node, form):
        world.advance(7200)
        scorer_writes = [round(t - started) for t, key in written if key == "scorer"]
        graph_writes = [round(t - started) for t, key in written if key == "network_graph"]
        assert [round(t - started) for t in wakes] == [scorer_writes[0]]
    assert scorer_writes == list(range(scorer_every, 7201, scorer_every)) and graph_writes == pruned


@pytest.mark.parametrize("form", ["thread", "async"])
def test_stopping_the_processor_persists_the_manager_scorer_and_graph_one_last_time(world, form):
    """LDK's processor, on exit, writes the ChannelManager (then the scorer and the graph) whether or not it
    asked to be persisted: what a node restarts from is its state at the stop."""
    node = world.add_node("learner", handler=handle_ldk_events)
    node.channel_manager.get_and_clear_needs_persistence = lambda: False  # the loop never sees a need itself
    written: list[str] = []
    write = node.fs_store.write

    def recorded(primary, secondary, key, buf):
        written.append(key)
        write(primary, secondary, key, buf)

    node.fs_store.write = recorded
    with run_processor(node, form):
        world.advance(1)
        assert "manager" not in written
    assert written[-3:] == ["manager", "scorer", "network_graph"]
    assert node.fs_store.read("", "", "manager") == node.channel_manager.encode()


def test_the_world_stops_driving_a_node_a_processor_runs(world):
    node = world.add_node("learner", handler=handle_ldk_events)
    processor = start(node)
    world.advance(600)
    processor.stop()
    assert dict(processor.timer_counts)["freshness"] == 1 + 9  # at 61, 122, ... 549 s: the world's own ticks stayed off
    assert node.channel_manager.background_processor_attached is False


def test_scorer_learns_before_the_handler_sees_the_event(world):
    seen: dict[str, object] = {}

    def handler(channel_manager, *args):
        event = args[-1]
        if isinstance(event, Event.ProbeFailed):
            target = next(h.pubkey for h in event.path.hops if h.short_channel_id == event.short_channel_id)
            seen["bounds"] = node.scorer.estimated_channel_liquidity_range(event.short_channel_id, target)
        return handle_ldk_events(channel_manager, *args)

    node = world.add_node("learner", handler=handler)
    stage = Stage(world, node)
    bob, carol = stage.peer("bob"), stage.peer("carol", connect=False)
    stage.open(node, bob, 1_000_000)
    stage.open(carol, bob, 1_000_000)  # bob has nothing on his side towards carol
    with run_processor(node, "thread"):
        params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(carol.node_id, 42),
                                                               200_000_000)
        route = node.router.find_route(node.node_id, params, node.channel_manager.list_usable_channels(), None)
        node.channel_manager.send_probe(route.paths[0])
        stage.settle()
    low, high = seen["bounds"]
    # Before the handler ran, LDK had learnt the channel cannot carry 200,000 sat (it holds 1,000,000).
    assert high <= 200_000_000 < 1_000_000_000


def _failing_manager_writes(node) -> None:
    """The node's disk refuses every write of the ChannelManager."""
    real_write = node.fs_store.write

    def failing_write(primary, secondary, key, buf):
        if key == "manager":
            raise OSError("disk unplugged (simulated)")
        real_write(primary, secondary, key, buf)

    node.fs_store.write = failing_write


def test_a_manager_persistence_failure_ends_the_loop_and_surfaces(world):
    node = world.add_node("learner", handler=handle_ldk_events)
    _failing_manager_writes(node)
    processor = start(node)
    bob = world.add_node("bob")
    world.connect(bob, node)
    bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
    world.run()
    world.advance(1)
    with pytest.raises(OSError, match="disk unplugged"):
        processor.join()
    assert not processor.is_running()


def test_graph_and_scorer_persistence_failures_are_only_logged(world):
    node = world.add_node("learner", handler=handle_ldk_events)
    real_write = node.fs_store.write

    def failing_write(primary, secondary, key, buf):
        if key in ("scorer", "network_graph"):
            raise OSError("read-only (simulated)")
        real_write(primary, secondary, key, buf)

    node.fs_store.write = failing_write
    processor = start(node)
    world.advance(400)
    assert processor.is_running()
    assert any("Failed to persist scorer" in line for line in node.logger.lines())
    with pytest.raises(OSError, match="read-only"):  # the final persist on exit returns its error, as in LDK
        processor.stop()


def test_replay_event_redelivers_the_event(world):
    replies = iter([ReplayEvent(), None])

    def handler(channel_manager, *args):
        event = args[-1]
        if isinstance(event, Event.OpenChannelRequest) and next(replies) is not None:
            return ReplayEvent()
        return handle_ldk_events(channel_manager, *args)

    node = world.add_node("learner", handler=handler)
    with run_processor(node, "thread"):
        stage = Stage(world, node)
        stage.open(stage.peer("bob"), node, 6_000_000)
    names = [type(e).__name__ for e in node.events_seen]
    assert names == ["OpenChannelRequest", "OpenChannelRequest", "ChannelPending", "ChannelReady"]


def test_a_raising_handler_loses_nothing_and_the_error_surfaces(world, capsys):
    def handler(channel_manager, *args):
        raise ZeroDivisionError("my bug")

    node = world.add_node("learner", handler=handler)
    processor = start(node)
    bob = world.add_node("bob")
    world.connect(bob, node)
    bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
    world.run()
    with pytest.raises(EventHandlerError, match="raised ZeroDivisionError while handling Event.OpenChannelRequest"):
        processor.stop()
    assert "BackgroundProcessor stopped" in capsys.readouterr().err
    assert [type(e).__name__ for e in node.channel_manager.pending_events()] == ["OpenChannelRequest"]


def test_processing_events_from_the_handler_returns_at_once(world):
    seen = []

    def handler(channel_manager, *args):
        seen.append(type(args[-1]).__name__)
        channel_manager.process_pending_events(lambda e: seen.append("inner"))  # returns at once, as in LDK

    node = world.add_node("learner", handler=handler)
    processor = start(node)
    bob = world.add_node("bob")
    world.connect(bob, node)
    bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
    world.run()
    processor.stop()
    assert seen == ["OpenChannelRequest"]


def test_a_slow_handler_is_warned_about(world, monkeypatch):
    monkeypatch.setattr(bp_module, "SLOW_HANDLER_WARNING_S", -1.0)
    node = world.add_node("learner", handler=handle_ldk_events)
    with run_processor(node, "thread"):
        Stage(world, node).open(world.add_node("bob"), node, 6_000_000)
    assert any("The event handler took" in line for line in node.logger.lines())


def test_a_forgotten_processor_stops_when_collected(world):
    node = world.add_node("learner", handler=handle_ldk_events)
    processor = start(node)
    thread = processor._thread
    del processor
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    assert node.channel_manager.background_processor_attached is False


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_world_run_under_a_processor_is_collected_once_gone(form):
    """The processor's record of the loop running each manager (for a crash to end it) keeps neither alive: it kept
    every world a processor ever ran, forty more at each capstone check, for the life of the kernel."""
    world = World(seed=3)
    node = world.add_node("learner", handler=handle_ldk_events)
    with run_processor(node, form):
        Stage(world, node).open(world.add_node("bob"), node, 6_000_000)
    world.close()
    gone = weakref.ref(world)
    del world, node
    gc.collect()
    assert gone() is None


def _asked(names: list[str]) -> list[tuple[str, int]]:
    """Event names with runs of one name counted."""
    return [(name, len(list(same))) for name, same in itertools.groupby(names)]


@pytest.mark.parametrize("name", scenarios.names())
def test_thread_and_async_forms_give_the_same_events(name):
    alone = scenarios.run(name)
    threaded = scenarios.run(name, processor="thread")
    in_async = scenarios.run(name, processor="async")
    assert in_async.event_names() == alone.event_names()
    # A fee bump is asked for again at every rebroadcast timer: the thread form's fires every 31 s (as_secs() > 30),
    # the world's every 30 s, so over the same stretch of time it asks 30/31 as often, give or take the one ask that
    # where the stretch begins, between two ticks, decides. Everything else is the same.
    bumps = [(n, k if n != "BumpTransaction" else 0) for n, k in _asked(threaded.event_names())]
    assert bumps == [(n, k if n != "BumpTransaction" else 0) for n, k in _asked(alone.event_names())]
    for (n, k), (_, k_alone) in zip(_asked(threaded.event_names()), _asked(alone.event_names()), strict=True):
        if n == "BumpTransaction":
            assert abs(k - k_alone * 30 / 31) <= 1


def test_payments_from_many_threads_while_the_processor_runs(world):
    node = world.add_node("learner", handler=handle_ldk_events)
    stage = Stage(world, node)
    bob = stage.peer("bob")
    stage.open(node, bob, 10_000_000)
    start_total = world.audit()["total"]
    sent: list[PaymentId] = []
    lock = threading.Lock()

    def send_many(worker: int) -> None:
        for i in range(8):
            preimage = PaymentPreimage(bytes([worker, i]) * 16)
            payment_id = PaymentId(bytes([worker, i, 1]) + bytes(29))
            keysend = PaymentParameters.for_keysend(bob.node_id, 40, False)
            params = RouteParameters.from_payment_params_and_value(keysend, 1_000_000 + i)
            try:
                node.channel_manager.send_spontaneous_payment(
                    preimage, RecipientOnionFields.spontaneous_empty(), payment_id, params, Retry.Attempts(2))
            except RetryableSendFailure:
                continue
            with lock:
                sent.append(payment_id)

    with run_processor(node, "thread"):
        workers = [threading.Thread(target=send_many, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            world.advance(0.5)
        for w in workers:
            w.join()
        world.advance(5)
    ends = Counter(e.payment_id for e in node.events_seen if isinstance(e, (Event.PaymentSent, Event.PaymentFailed)))
    assert sorted(ends) == sorted(sent) and all(n == 1 for n in ends.values())
    assert world.audit()["total"] == start_total
    assert world.channel_disagreements() == []


@pytest.mark.parametrize("form", ["thread", "async"])
def test_stopping_while_an_async_handler_is_mid_event_ends_and_loses_nothing(form):
    """Only the world's thread runs a handler's coroutine: stopping must not wait for it forever."""
    import asyncio
    import threading

    from ldkkit.scenarios import Stage
    from ldkkit.sim.node_process import run_processor
    from ldkkit.sim.world import World

    async def slow(channel_manager, *args):
        if isinstance(args[-1], Event.PaymentClaimable):
            await asyncio.sleep(30)  # mid-event when the processor is told to stop
        return await handle_ldk_events(channel_manager, *args)

    with World(seed=4) as world:
        me = world.add_node("learner", handler=slow)
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(bob, me, 6_000_000)
        leaving = run_processor(me, form)
        leaving.__enter__()
        bob_invoice = stage.invoice(me, 10_000_000)
        stage.pay(bob, bob_invoice)  # PaymentClaimable is being handled: the handler sleeps 30 s
        errors: list[BaseException] = []

        def leave() -> None:
            try:
                leaving.__exit__(None, None, None)
            except BaseException as e:  # noqa: B036  (asserted below: stopping ends cleanly)
                errors.append(e)

        done = threading.Thread(target=leave, daemon=True)
        done.start()
        done.join(60)  # a guard against a hang, not a measure of speed
        assert not done.is_alive(), "stopping the processor hung"
        assert errors == []
        queued = me.channel_manager._events.pending()
        assert any(isinstance(e, Event.PaymentClaimable) for e in queued)  # kept, to be handed over again


@pytest.mark.parametrize("form", ["thread", "async"])
def test_the_manager_is_not_written_mid_event_and_is_written_once_the_handler_returns(form):
    """LDK's processor awaits the handler inside ``process_pending_events``: it persists nothing until the handler
    returns, then the manager with the event gone (handling events is a ``DoPersist``). A node that crashes
    mid-event has on disk what it had before the event; one that crashes once its handler returned, the event
    handled. (The world used to do the loop's work for a processor waiting on an async handler as its coroutine
    ended, persisting the manager with the event still queued; and the world's own watch on the node took the
    processor's wake-up, so the manager after the event was only written at the next block.)"""
    import asyncio

    async def slow(channel_manager, *args):
        if isinstance(args[-1], Event.PaymentClaimable):
            await asyncio.sleep(30)  # claims 30 s later, on the world's clock
        return await handle_ldk_events(channel_manager, *args)

    with World(seed=4) as world:
        me = world.add_node("learner", handler=slow)
        written: list[tuple[int, list[str], bool]] = []  # when, the events it holds, whether handed over then
        write = me.fs_store.write

        def recorded(primary, secondary, key, buf):
            if key == "manager":
                events = [type(e).__name__ for e in decode(buf, dict)["events"]]
                written.append((world.clock.now_us(), events, me.channel_manager._events._busy.locked()))
            return write(primary, secondary, key, buf)

        me.fs_store.write = recorded
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(bob, me, 6_000_000)
        with run_processor(me, form):
            stage.pay(bob, stage.invoice(me, 10_000_000))  # PaymentClaimable: its handler is asleep
            paid_at = world.clock.now_us()
            world.advance(60)
    assert [w for w in written if w[2]] == []
    returned_at = paid_at + 30 * 1_000_000
    assert [events for at, events, _ in written if paid_at < at <= returned_at] == [[]], written


def test_a_handler_error_ends_the_loop_with_no_final_persist(world):
    """LDK's loop returns its error with `?`: nothing more is persisted once the handler has failed."""
    failed = []

    def handler(channel_manager, *args):
        if isinstance(args[-1], Event.OpenChannelRequest):
            failed.append(True)
            raise ValueError("broken")

    node = world.add_node("learner", handler=handler)
    written_after_failure = []
    real_write = node.fs_store.write

    def write(primary, secondary, key, buf):
        if failed:
            written_after_failure.append(key)
        real_write(primary, secondary, key, buf)

    node.fs_store.write = write
    processor = start(node)
    bob = world.add_node("bob")
    world.connect(bob, node)
    bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
    world.run()
    with pytest.raises(EventHandlerError, match="broken"):
        processor.stop()
    assert failed and written_after_failure == []


@pytest.mark.parametrize("timer, component, method", [
    ("freshness", "channel_manager", "timer_tick_occurred"),
    ("ping", "peer_manager", "timer_tick_occurred"),
    ("rebroadcast", "chain_monitor", "rebroadcast_pending_claims"),
])
def test_a_timer_that_fails_while_the_loop_sleeps_still_stops_the_processor_with_its_error(
        world, monkeypatch, timer, component, method):
    """The runtime runs quiet timers while the processor's thread sleeps; a failure there is undone and met
    by the processor itself, which stops with it, as when it runs the timer."""
    node = world.add_node("learner", handler=handle_ldk_events)
    calls = []

    def failing() -> None:
        calls.append(world.clock.now())
        if len(calls) >= 3:
            raise RuntimeError(f"{timer} failed (simulated)")

    monkeypatch.setattr(getattr(node, component), method, failing)
    processor = start(node)
    world.advance(600)
    with pytest.raises(RuntimeError, match=f"{timer} failed"):
        processor.stop()
    assert len(calls) == 4  # the third failed asleep and was run again, awake, where it failed for good
    assert processor.timer_counts[timer] == 3  # the one undone asleep counts once: when the loop ran it
    assert calls[3] == calls[2]  # the loop met it at once


def test_work_a_quiet_timer_leaves_is_handled_at_once_even_if_nothing_said_so(world, monkeypatch):
    """LDK's loop goes back to its top right after its timers, so what they leave is handled then. A timer run
    while the loop sleeps wakes it when it leaves an event, even one queued without a wake-up."""
    node = world.add_node("learner", handler=lambda *args: seen.append(world.clock.now()))
    seen: list[float] = []
    rebroadcast, calls = node.chain_monitor.rebroadcast_pending_claims, []

    def leaving_an_event() -> None:
        calls.append(world.clock.now())
        if len(calls) == 3:  # (the startup call, then at 31 s; the third, at 62 s, leaves an event quietly)
            node.channel_manager._events._events.append(Event.PendingHTLCsForwardable(timedelta(seconds=1)))
        rebroadcast()

    monkeypatch.setattr(node.chain_monitor, "rebroadcast_pending_claims", leaving_an_event)
    with run_processor(node, "thread"):
        world.advance(100)
    assert seen == [calls[2]]


def test_an_event_asked_for_again_comes_again_at_the_next_poll_even_when_a_timer_is_due_then(world):
    """A replay is retried at the next poll (100 ms later). A quiet timer due at that same poll does not
    keep the loop asleep: it wakes, runs the timer and hands the event over again."""
    times: list[float] = []

    def replay_first(*args):
        times.append(world.clock.now())
        return ReplayEvent() if len(times) == 1 else None

    node = world.add_node("learner", handler=replay_first)
    started = world.clock.now()
    with run_processor(node, "thread") as processor:
        world.advance(10.95)  # the first ping is due at 11 s: the retry's poll, at 11.05 s
        node.channel_manager._events.push(Event.PendingHTLCsForwardable(timedelta(seconds=1)))
        world.advance(1)
        pings = processor.timer_counts["ping"]
    assert [round(t - started, 3) for t in times] == [10.95, 11.05] and pings == 1


# --- LDK's rules, on a node's parts with no world: process_events_async driven by the test's own sleeper -------


class _Parts:
    """What the processor is given, as plain objects that note each call, on a clock only the sleeper moves."""

    def __init__(self, *, scorer: bool = True, graph: bool = True, failing: tuple[str, ...] = ()) -> None:
        from ldkkit.events.queue import EventQueue
        from ldkkit.sim.clock import VirtualClock

        self.clock = VirtualClock()
        self.calls: list[tuple[float, str]] = []  # (seconds since the start, what the processor did)
        self.failing = failing
        self.logged: list[tuple[str, str]] = []
        self.name = "amy"
        parts = self

        class Manager:
            clock, runtime, pending_msg_events, background_processor_attached = parts.clock, None, [], False
            needs_persistence = False
            _events = EventQueue("manager")

            def timer_tick_occurred(self):
                parts.note("freshness")

            def get_and_clear_needs_persistence(self):
                needed, self.needs_persistence = self.needs_persistence, False
                return needed

            def encode(self):
                return b"manager"

            def process_pending_events(self, handler):
                self._events.process(handler)

            async def process_pending_events_async(self, handler):
                await self._events.process_async(handler)

            def has_pending_events(self):
                return bool(self._events)

            def replay_requested(self):
                return self._events.replay_requested

            def get_event_or_persistence_needed_future(self):
                return self._events.get_future()

        class Monitor(Manager):
            _events = EventQueue("monitor")

            def rebroadcast_pending_claims(self):
                parts.note("rebroadcast")

            def get_update_future(self):
                return self._events.get_future()

        class Peers:
            def process_events(self):
                pass

            def timer_tick_occurred(self):
                parts.note("ping")

        class Scorer:
            def __getattr__(self, name):  # payment_path_failed, probe_successful, time_passed, ...
                return lambda *args: parts.note(name, *args)

            def encode(self):
                return b"scorer"

        class Graph(Scorer):
            def encode(self):
                return b"network_graph"

        self.manager, self.monitor, self.peers = Manager(), Monitor(), Peers()
        self.scorer = Scorer() if scorer else None
        self.graph = Graph() if graph else None

    def note(self, what: str, *args) -> None:
        self.calls.append((self.clock.now(), what, *args) if args else (self.clock.now(), what))

    def write(self, primary, secondary, key, buf):
        assert (primary, secondary, buf) == ("", "", key.encode())
        if key in self.failing:
            raise OSError("read-only (simulated)")
        self.note(f"wrote {key}")

    def warn(self, module, message):
        assert module == "ldkkit::background_processor"  # what the log line names, as LDK's module path
        self.logged.append(("warn", message))

    def error(self, module, message):
        assert module == "ldkkit::background_processor"
        self.logged.append(("error", message))

    def times(self, what: str) -> list[float]:
        return [call[0] for call in self.calls if call[1] == what]

    def run_async(self, handler=lambda event: None, *, seconds: float, mobile: bool = False,
                  fetch_time="clock") -> list[float]:
        """Run process_events_async until ``seconds`` have passed on the clock; returns each sleep asked for."""
        import asyncio

        from ldkkit.background_processor import process_events_async
        from ldkkit.sim.clock import MICROS

        slept: list[float] = []

        async def sleeper(duration):
            slept.append(duration.total_seconds())
            self.clock._now_us += round(duration.total_seconds() * MICROS)
            return self.clock.now() >= seconds

        gossip = GossipSync.p2p(self.graph) if self.graph is not None else GossipSync.none()
        fetch = self.clock.duration_since_epoch if fetch_time == "clock" else fetch_time
        asyncio.run(process_events_async(self, handler, self.monitor, self.manager, None, gossip, self.peers, self,
                                         self.scorer, sleeper, mobile, fetch))
        return slept


@pytest.mark.parametrize("mobile, poll_s", [(False, 10.0), (True, 0.1)])
def test_the_async_loop_sleeps_the_fastest_timer_or_100_ms_on_a_mobile_platform(mobile, poll_s):
    parts = _Parts()
    assert parts.run_async(seconds=30, mobile=mobile)[:3] == [poll_s] * 3


def test_the_async_loop_fires_ldks_timers_on_schedule_and_persists_everything_on_exit():
    parts = _Parts()
    parts.run_async(seconds=3700)
    every = lambda start, step: [float(t) for t in range(start, 3701, step)]  # noqa: E731
    assert parts.times("freshness") == every(0, 60)  # at start, then every minute
    assert parts.times("rebroadcast") == every(0, 30)
    assert parts.times("ping") == every(10, 10)[:-1]  # the last sleep ended the loop: no timers after it
    assert parts.times("remove_stale_channels_and_tracking_with_time") == [60.0, 3660.0]  # a minute in, then hourly
    assert parts.times("wrote network_graph") == [60.0, 3660.0, 3700.0]  # after each prune, and on exit
    assert parts.times("time_passed") == [10.0, *every(300, 300)]  # decayed at the first wake, then at each persist
    assert parts.times("wrote scorer") == [*every(300, 300), 3700.0]
    assert parts.times("wrote manager") == [3700.0]  # never asked for: only the final persist
    assert parts.calls[-3:] == [(3700.0, "wrote manager"), (3700.0, "wrote scorer"), (3700.0, "wrote network_graph")]
    prune = next(call for call in parts.calls if call[1] == "remove_stale_channels_and_tracking_with_time")
    assert prune[2] == parts.clock.unix_time() - 3700 + 60  # the graph is pruned with the time it is


def test_a_manager_that_needs_persisting_is_written_at_the_next_wake():
    parts = _Parts()
    parts.manager.needs_persistence = True
    parts.run_async(seconds=30)
    assert parts.times("wrote manager") == [10.0, 30.0]  # at the first wake, and the final persist


def test_without_a_scorer_or_graph_only_the_manager_is_persisted_and_nothing_is_pruned():
    parts = _Parts(scorer=False, graph=False)
    parts.run_async(seconds=3700)
    assert {call[1] for call in parts.calls} == {"freshness", "rebroadcast", "ping", "wrote manager"}
    assert parts.times("wrote manager") == [3700.0]


def test_without_the_time_the_scorer_is_not_decayed_but_still_persisted():
    parts = _Parts()
    parts.run_async(seconds=610, fetch_time=lambda: None)
    assert parts.times("time_passed") == [] and parts.times("wrote scorer") == [300.0, 600.0, 610.0]


def test_a_graph_or_scorer_that_cannot_be_written_is_logged_in_ldks_words_and_the_loop_goes_on():
    parts = _Parts(failing=("scorer", "network_graph"))
    with pytest.raises(OSError, match="read-only"):  # the final persist returns its error
        parts.run_async(seconds=310)
    assert parts.logged == [
        ("error", "Error: Failed to persist network_graph, check your disk and permissions read-only (simulated)"),
        ("error", "Error: Failed to persist scorer, check your disk and permissions read-only (simulated)")]
    assert parts.times("wrote manager") == [310.0]


def _path_failed(scid, permanently, update=None) -> Event:
    from ldkkit.events import PathFailure
    from ldkkit.routing.router import Path
    from ldkkit.types import PaymentHash

    return Event.PaymentPathFailed(PaymentId(bytes(32)), PaymentHash(bytes(32)), permanently,
                                   PathFailure.OnPath(update), Path(hops=(), blinded_tail=None), scid)


def _path_event(kind: str, scid=None) -> Event:
    from ldkkit.routing.router import Path
    from ldkkit.types import PaymentHash

    path = Path(hops=(), blinded_tail=None)
    if kind == "ProbeFailed":
        return Event.ProbeFailed(PaymentId(bytes(32)), PaymentHash(bytes(32)), path, scid)
    return getattr(Event, kind)(PaymentId(bytes(32)), PaymentHash(bytes(32)), path)


@pytest.mark.parametrize("event, learnt", [
    (_path_failed(7, False), ("payment_path_failed", 7)),
    (_path_failed(7, True), ("payment_path_failed", 7)),  # a failing channel is known: that comes first
    (_path_failed(None, True), ("probe_successful",)),  # the recipient refused it: every hop had the liquidity
    (_path_failed(None, False), None),
    (_path_event("PaymentPathSuccessful"), ("payment_path_successful",)),
    (_path_event("ProbeSuccessful"), ("probe_successful",)),
    (_path_event("ProbeFailed", 9), ("probe_failed", 9)),
    (_path_event("ProbeFailed", None), None),
])
def test_the_scorer_learns_from_each_path_and_probe_event_as_ldks_update_scorer_says(event, learnt):
    from datetime import timedelta

    parts = _Parts()
    now = timedelta(seconds=12345)
    changed = bp_module.update_scorer(parts.scorer, event, now)
    assert changed is (learnt is not None)
    assert parts.calls == ([] if learnt is None else [(0.0, learnt[0], event.path, *learnt[1:], now)])


def test_before_the_handler_sees_a_path_event_the_graph_and_scorer_learn_from_it_and_the_scorer_is_written():
    from ldkkit.routing.gossip import NetworkUpdate

    update = NetworkUpdate.ChannelFailure(7, True)
    parts = _Parts()
    seen: list[list] = []
    parts.manager._events.push(_path_failed(7, False, update))
    parts.manager._events.push(Event.PendingHTLCsForwardable(time_forwardable=timedelta(seconds=1)))
    parts.run_async(lambda event: seen.append([c[1] for c in parts.calls]), seconds=10)
    assert seen[0][-3:] == ["handle_network_update", "payment_path_failed", "wrote scorer"]
    assert seen[1] == seen[0]  # an event LDK leaves to you: nothing learnt, nothing written
    assert next(c for c in parts.calls if c[1] == "handle_network_update")[2] == update


def test_a_path_event_teaches_nothing_without_a_graph_or_the_time():
    parts = _Parts(graph=False)
    parts.manager._events.push(_path_failed(7, False))
    parts.run_async(seconds=10, fetch_time=lambda: None)
    assert not {"handle_network_update", "payment_path_failed"} & {c[1] for c in parts.calls}


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_handler_slower_than_a_second_is_named_in_the_log_and_a_quick_one_is_not(monkeypatch, asynchronous):
    now = [100.0]
    monkeypatch.setattr(bp_module.time, "perf_counter", lambda: now[0])
    takes = {Event.ProbeSuccessful: 2.5, Event.ProbeFailed: 1.0, Event.PendingHTLCsForwardable: 0.5}
    parts = _Parts(scorer=False, graph=False)
    for event in (_path_event("ProbeSuccessful"), _path_event("ProbeFailed", 9),
                  Event.PendingHTLCsForwardable(time_forwardable=timedelta(seconds=1))):
        parts.manager._events.push(event)

    def handler(event):
        now[0] += takes[type(event)]

    async def async_handler(event):
        handler(event)

    parts.run_async(async_handler if asynchronous else handler, seconds=10)
    assert parts.logged == [("warn", "The event handler took 2.5 s on Event.ProbeSuccessful; "
                                     "nothing else was processed meanwhile")]


@pytest.mark.parametrize("form", ["thread", "async, plain handler", "async"])
def test_only_the_handlers_own_time_counts_toward_the_slow_handler_warning(monkeypatch, form):
    """The processor reads the clock once per event: an event's time runs from the end of the one before. Neither
    what comes before the hand-over (the startup's timer ticks) nor LDK's own updates (the scorer taught and
    written) count as the handler's: each takes 3 s here, the handler 0.5 s, and no handler is named slow."""
    now = [100.0]
    monkeypatch.setattr(bp_module.time, "perf_counter", lambda: now[0])
    parts = _Parts(graph=False)
    note = parts.note

    def slow_note(what, *args):
        now[0] += 3.0
        note(what, *args)

    parts.note = slow_note
    for event in (Event.PendingHTLCsForwardable(time_forwardable=timedelta(seconds=1)), _path_event("ProbeSuccessful")):
        parts.manager._events.push(event)

    def handler(event):
        now[0] += 0.5

    async def async_handler(event):
        handler(event)

    if form == "thread":
        processor = BackgroundProcessor.start(parts, handler, parts.monitor, parts.manager, None, GossipSync.none(),
                                              parts.peers, parts, parts.scorer)
        while processor.events_handled < 2 and processor.is_running():
            time.sleep(0.001)
        processor.stop()
    else:
        parts.run_async(async_handler if form == "async" else handler, seconds=10)
    assert [c[1] for c in parts.calls[:4]] == ["freshness", "rebroadcast", "probe_successful", "wrote scorer"]
    assert parts.logged == []


def test_the_processor_counts_the_events_it_handed_over_and_says_whether_it_runs(world):
    node = world.add_node("learner", handler=handle_ldk_events)  # async
    processor = start(node)
    assert repr(processor) == "BackgroundProcessor(running, 0 events handled)"
    Stage(world, node).open(world.add_node("bob"), node, 6_000_000)
    processor.stop()
    handled = len(node.events_seen)
    assert handled == 3 and processor.events_handled == handled
    assert repr(processor) == "BackgroundProcessor(stopped, 3 events handled)"


def test_the_processor_counts_a_plain_handlers_events_too(world):
    def handler(channel_manager, *args):
        return None  # every request left unanswered: it comes back as more events over time

    node = world.add_node("learner", handler=handler)
    processor = start(node)
    bob = world.add_node("bob")
    world.connect(bob, node)
    for _ in range(2):
        bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
    world.run()
    processor.stop()
    assert processor.events_handled == len(node.events_seen) == 2


@pytest.mark.parametrize("make, kind, has_graph", [(GossipSync.p2p, "p2p", True), (GossipSync.rapid, "rapid", True),
                                                   (lambda graph: GossipSync.none(), "none", False)])
def test_gossip_sync_says_where_the_graph_comes_from(make, kind, has_graph):
    graph = object()
    sync = make(graph)
    assert repr(sync) == f"GossipSync.{kind}(...)"
    assert sync.network_graph is (graph if has_graph else None)


def test_the_exit_signals_sleeper_sleeps_until_stopped_outside_a_world():
    import asyncio

    from ldkkit.background_processor import ExitSignal

    signal = ExitSignal()
    assert asyncio.run(signal.sleeper(timedelta(milliseconds=1))) is False and not signal.stopped
    assert asyncio.run(signal.sleeper(0.001)) is False

    async def stopped_while_asleep():
        asyncio.get_running_loop().call_later(0.01, signal.stop)
        return await signal.sleeper(timedelta(days=1))

    assert asyncio.run(stopped_while_asleep()) is True and signal.stopped
    assert asyncio.run(signal.sleeper(timedelta(days=1))) is True  # once stopped, at once


def test_an_async_handlers_error_ends_process_events_async_naming_the_event(capsys):
    parts = _Parts()
    parts.manager._events.push(_path_event("ProbeSuccessful"))

    async def handler(event):
        raise ZeroDivisionError("my bug")

    with pytest.raises(EventHandlerError, match="raised ZeroDivisionError while handling Event.ProbeSuccessful"):
        parts.run_async(handler, seconds=10)
    error = capsys.readouterr().err
    assert error.startswith("BackgroundProcessor stopped: ") and "Call stop() or join() to get the exception." in error
    assert [what for what, _ in parts.logged] == ["error"] and "my bug" in parts.logged[0][1]
    assert "wrote manager" not in [c[1] for c in parts.calls]  # no final persist after a handler's error
    assert parts.manager.background_processor_attached is False


@pytest.mark.parametrize("form", ["thread", "async"])
def test_an_async_handler_runs_on_the_world_and_handles_every_event(world, form):
    """ldk-sample's handler is async: the processor awaits it on the world's loop, as tokio runs it."""
    node = world.add_node("learner", handler=handle_ldk_events)  # the reference handler is ``async def``
    with run_processor(node, form):
        Stage(world, node).open(world.add_node("bob"), node, 6_000_000)
    assert [type(e).__name__ for e in node.events_seen] == ["OpenChannelRequest", "ChannelPending", "ChannelReady"]
    assert [c.is_channel_ready for c in node.channel_manager.list_channels()] == [True]
    assert node.channel_manager._events.pending() == []


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_handlers_error_is_logged_by_the_background_processor(world, form):
    def handler(channel_manager, *args):
        raise ZeroDivisionError("my bug")

    node = world.add_node("learner", handler=handler)
    with pytest.raises(EventHandlerError, match="my bug"):
        with run_processor(node, form):
            bob = world.add_node("bob")
            world.connect(bob, node)
            bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
            world.run()
    errors = [line for line in node.logger.lines() if " ERROR " in line]
    assert len(errors) == 1 and "[ldkkit::background_processor] " in errors[0] and "my bug" in errors[0]


@pytest.mark.parametrize("form", ["thread", "async"])
@pytest.mark.parametrize("scenario", ["receive_invoice_payment", "force_close_remote"])  # the latter: monitor events
def test_each_event_is_handed_over_the_moment_it_is_queued_as_when_the_world_hands_it(form, scenario):
    """The manager's and the monitor's futures wake the processor at once: events are handled at the same
    simulated times as without a processor, never held until the next poll or timer. (A fee bump asked for again
    comes with the rebroadcast timer, the thread form's every 31 s: only the first ask of a run is compared; the
    runs' lengths are in test_thread_and_async_forms_give_the_same_events.)"""
    def times(processor):
        log = [(round(t, 3), type(e).__name__) for t, _, e in  # to the millisecond: a poll is 100 ms
               scenarios.run(scenario, processor=processor).node.event_log]
        return [entry for i, entry in enumerate(log)
                if not (entry[1] == "BumpTransaction" and i and log[i - 1][1] == "BumpTransaction")]

    assert times(form) == times(None)


def test_a_failure_that_ends_the_loop_is_logged_with_what_it_was(world):
    node = world.add_node("learner", handler=handle_ldk_events)
    _failing_manager_writes(node)
    processor = start(node)
    with pytest.raises(OSError):
        processor.stop()  # the final persist fails
    errors = [line for line in node.logger.lines() if " ERROR " in line]
    assert [line.split(" ERROR ", 1)[1].strip() for line in errors] == [
        "[ldkkit::background_processor] The background processor stopped: OSError('disk unplugged (simulated)')"]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_thread_form_runs_a_node_without_a_world_in_real_time(asynchronous):
    """No world, no virtual clock: the loop polls every 100 ms of real time, as LDK's does."""
    parts = _Parts()
    handled = threading.Event()

    def handler(event):
        handled.set()

    async def async_handler(event):
        handled.set()

    parts.manager._events.push(_path_event("ProbeSuccessful"))
    processor = BackgroundProcessor.start(parts, async_handler if asynchronous else handler, parts.monitor,
                                          parts.manager, None, GossipSync.p2p(parts.graph), parts.peers, parts,
                                          parts.scorer)
    assert handled.wait(30)  # a guard against a hang, not a measure of speed
    assert parts.manager.background_processor_attached
    processor.stop()
    assert processor.events_handled == 1 and not parts.manager.background_processor_attached
    assert [c[1] for c in parts.calls][-3:] == ["wrote manager", "wrote scorer", "wrote network_graph"]


def test_without_a_graph_the_prune_timer_keeps_its_first_interval_as_in_ldk(world):
    """LDK sets ``have_pruned`` only once it has pruned a graph: with GossipSync::None, the prune timer goes on
    firing every minute (and finds nothing to prune), never hourly."""
    node = world.add_node("learner", handler=handle_ldk_events)
    processor = BackgroundProcessor.start(node.fs_store, node.event_handler, node.chain_monitor, node.channel_manager,
                                          None, GossipSync.none(), node.peer_manager, node.logger, node.scorer)
    world.advance(3700)
    processor.stop()
    assert processor.timer_counts["network_prune"] == 3700 // 61  # at 61 s, 122 s, ...: whole seconds over 60
    assert "network_graph" not in node.fs_store.list("", "")


def test_a_forgotten_processor_does_not_keep_python_from_exiting():
    """Like LDK's #[must_use] processor dropped at the end of main: the interpreter exits, stopping it."""
    done = _in_a_process_of_its_own("world.advance(10)\nprint('leaving')\n")
    assert (done.returncode, done.stdout) == (0, "leaving\n"), done.stderr


def test_a_processor_stopped_from_inside_the_worlds_turn_stops_and_persists():
    """``stop()`` called by code that holds the world's turn (a story's step in ``runtime.call``, an async handler on
    the world's loop) gives the turn up while it joins: the thread's last iteration and persist need it. (In a
    process of its own: before, it waited for ever.)"""
    done = _in_a_process_of_its_own(
        "world.advance(5)\nworld.mine(1)\nworld.runtime.call(processor.stop)\nprint(processor._thread.is_alive(), "
        "node.fs_store.read('', '', 'manager') == node.channel_manager.encode())\n")
    assert (done.returncode, done.stdout) == (0, "False True\n"), done.stderr


def _in_a_process_of_its_own(then: str):
    """A world with a node under ``BackgroundProcessor.start`` (``processor``), then ``then``, in a new Python."""
    import subprocess
    import sys

    script = ("from ldkkit.sim.world import World\nfrom ldkkit.reference import handle_ldk_events\n"
              "from ldkkit.background_processor import BackgroundProcessor, GossipSync\n"
              "world = World(seed=1)\nnode = world.add_node('learner', handler=handle_ldk_events)\n"
              "processor = BackgroundProcessor.start(node.fs_store, node.event_handler, node.chain_monitor, "
              "node.channel_manager, None, GossipSync.p2p(node.network_graph), node.peer_manager, node.logger, "
              "node.scorer)\n" + then)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_a_handler_stuck_outside_the_simulation_is_named_when_the_world_gives_up_waiting():
    """The world waits for a processor's handler before moving time; one that blocks on the real world for
    longer than ``stuck_after_s`` is reported, by the processor's name, even if it finishes meanwhile."""
    import threading
    from datetime import timedelta

    from ldkkit.events import Event
    from ldkkit.sim.node_process import run_processor
    from ldkkit.sim.world import World

    release = threading.Event()

    def blocking(*args):  # the seed chapter's handler: the node's parts, then the event
        release.wait(5)

    with World(seed=0) as world:
        node = world.add_node("alice", handler=blocking, persist=False)
        runtime = world.runtime
        runtime.stuck_after_s = 0.2
        waited = runtime.cond.wait_for

        def wait_for(predicate, timeout=None):  # the handler finishes, but only once the world gave up on it
            done = waited(predicate, timeout)
            if not done and predicate == runtime._asleep_or_left_to_the_world:  # (its timeout is what is left of
                release.set()  # stuck_after_s, never stuck_after_s itself: the handler waited out its 5 s instead)
            return done

        runtime.cond.wait_for = wait_for
        with run_processor(node, "thread"):
            node.channel_manager._events.push(Event.PendingHTLCsForwardable(timedelta(milliseconds=100)))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                busy = "BackgroundProcessor of alice has been busy for more than 0.2 s"
                with pytest.raises(RuntimeError, match=busy):
                    world.advance(1)
                gc.collect()
    # The step the world gave up on was closed, not left for Python to warn of a coroutine never awaited.
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


@pytest.mark.parametrize("woke_at", [60.95, 60.85])
def test_after_a_wake_the_thread_forms_polls_run_100_ms_apart_from_that_wake(woke_at):
    """LDK's thread form sleeps 100 ms at a time (``Sleeper::wait_timeout``) from wherever it woke: after an
    event at 60.95 s (or 60.85 s), its freshness timer (due after more than 60 s, so at 61 s) fires at the
    first poll after that, 61.05 s: not at 61 s, and not a poll later."""
    from datetime import timedelta

    from ldkkit.events import Event
    from ldkkit.sim.node_process import run_processor
    from ldkkit.sim.world import World

    with World(seed=0) as world:
        node = world.add_node("alice", persist=False)
        ticks: list[float] = []
        tick = node.channel_manager.timer_tick_occurred

        def recorded() -> None:
            ticks.append(world.clock.now())
            tick()

        node.channel_manager.timer_tick_occurred = recorded
        with run_processor(node, "thread"):
            world.advance(woke_at)
            node.channel_manager._events.push(Event.PendingHTLCsForwardable(timedelta(milliseconds=100)))
            world.advance(1)
        assert [round(t, 3) for t in ticks] == [0.0, 61.05]  # (the loop may land a microsecond late)


def _manager_heights(node) -> list[int]:
    """The best block of each ChannelManager written to ``node``'s store from now on, in order."""
    heights: list[int] = []
    write = node.fs_store.write

    def recorded(primary, secondary, key, buf):
        if key == "manager":
            heights.append(decode(buf, dict)["best_block_height"])
        write(primary, secondary, key, buf)

    node.fs_store.write = recorded
    return heights


@pytest.mark.parametrize("form", [None, "thread", "async"])
def test_the_manager_is_written_after_every_block_so_a_restart_knows_the_tip(world, form):
    """Every block asks for the ChannelManager to be persisted (LDK's ``best_block_updated``:
    ``NotifyOption::DoPersist``): the processor (or the world, driving a node without one) writes it at each
    block, and a node restarted from disk reads back the chain's tip."""
    node = world.add_node("learner", handler=handle_ldk_events)
    heights = _manager_heights(node)
    first = world.chain.height() + 1
    with run_processor(node, form) if form else contextlib.nullcontext():
        world.mine(3)
        written = list(heights)  # (not the processor's last write, on stopping)
    assert sorted(set(written)) == [first, first + 1, first + 2]
    restarted = world.restart_node(node)
    assert restarted.channel_manager.best_block_height == world.chain.height() == first + 2


def _played(name: str, form: str) -> tuple[list, dict, list]:
    """Under a processor: the handler's events, the bytes left under each key, the heights the manager had."""
    events, writes = played_with_every_write(name, form)
    heights = {decode(buf, dict)["best_block_height"] for key, buf in writes if key == "manager"}
    return events, dict(writes), sorted(heights)


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_quiet_wake_done_by_the_world_changes_nothing_but_who_does_it(form, monkeypatch):
    """When the world wakes a sleeping processor with nothing but a persist and the due timers to do (every block),
    the world does that iteration for it (``quiet_wake``). Every scenario then gives the handler the same events
    at the same times and heights, leaves the same bytes under every key, and persists the manager at every
    block, as when the processor's thread wakes for each block itself. (How many times the manager is written
    between two blocks is the thread's scheduling: it may persist a state in passing, or not.)"""
    for name in scenarios.names():
        quiet = _played(name, form)
        with monkeypatch.context() as patch:
            patch.setattr(bp_module._RunBody, "quiet_wake", lambda self, now_us: None)
            woken = _played(name, form)
        assert quiet == woken, name


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_processor_woken_from_outside_the_world_is_done_before_the_world_goes_on(form, monkeypatch):
    """A call from outside the world's turn (a peer connecting, as a scenario's peers do, or a payment sent from a
    cell) wakes the sleeping processor; the world's next step waits until it sleeps again, however late its thread
    takes the turn. (The world used to take the turn first when the woken thread was slow, under load or on a fresh
    clone's first run: the manager's state after the connection was first written with the next block's.)"""
    wait = bp_module.Participant.wait

    def slow_to_take_the_turn(self, *args):
        wait(self, *args)
        for _ in range(30):  # woken, not yet at work, until the world tries to take its turn (0.3 s at most)
            if self.runtime.turn.locked() or self.stopping:
                break
            watch._REAL_SLEEP(0.01)

    monkeypatch.setattr(bp_module.Participant, "wait", slow_to_take_the_turn)
    with World(seed=11) as world:
        node = world.add_node("learner", handler=handle_ldk_events)
        bob = world.add_node("bob", persist=False)
        heights = _manager_heights(node)
        with run_processor(node, form):
            world.mine(1)  # its first wake is its own (it decays the scorer)
            connected_at, written = world.chain.height(), len(heights)
            world.connect(bob, node)  # the manager changed (a peer): the processor is woken to persist it
            world.add_node("carol", persist=False)  # (its funds are mined at once: a block, with no time before it)
    assert heights[written:][:2] == [connected_at, connected_at + 1], heights


def _manager_writes_around_two_outside_calls(form: str, pause: str, monkeypatch) -> list[bytes]:
    """A peer connected, then a channel opened, from the story's thread (as ``Stage.open`` does) under a
    processor; ``pause`` (real time) lets the processor's thread or the story's go first: every manager written."""
    wait = bp_module.Participant.wait

    def slow_to_take_the_turn(self, *args):
        wait(self, *args)
        if not self.stopping:
            watch._REAL_SLEEP(0.1)

    if pause == "processor":
        monkeypatch.setattr(bp_module.Participant, "wait", slow_to_take_the_turn)
    written: list[bytes] = []
    with World(seed=11) as world:
        node = world.add_node("learner", handler=handle_ldk_events)
        bob = world.add_node("bob", persist=False)
        write = node.fs_store.write

        def recorded(primary, secondary, key, buf):
            if key == "manager":
                written.append(bytes(buf))
            return write(primary, secondary, key, buf)

        node.fs_store.write = recorded
        with run_processor(node, form):
            world.mine(1)  # its first wake is its own (it decays the scorer)
            world.connect(bob, node)  # the manager changed (a peer): the processor is woken to persist it
            if pause == "story":
                watch._REAL_SLEEP(0.1)
            node.channel_manager.create_channel(bob.node_id, 1_000_000, 0, 42, None, None)
            world.run()
    monkeypatch.undo()
    return written


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_processor_woken_from_outside_the_world_never_overlaps_the_next_outside_call(form, monkeypatch):
    """What a call from outside the world's turn (the story's or a cell's thread) wakes a sleeping processor for is
    done at the world's next step, not meanwhile: the story's next call into the node lands before it however the
    threads are scheduled. (The woken thread used to work at once: the manager it wrote held the channel opened
    next, or not, as the story's thread or the processor's ran first.)"""
    assert (_manager_writes_around_two_outside_calls(form, "story", monkeypatch)
            == _manager_writes_around_two_outside_calls(form, "processor", monkeypatch))


def test_a_processor_thread_slow_to_start_changes_nothing(monkeypatch):
    """``BackgroundProcessor.start`` returns before its thread has run its startup; the world's next step waits for
    that thread to sleep, so a thread slow to start (a loaded machine) gives the same events and the same writes, in
    the same order. (The world used to go first: the startup tick, and every write after it, then came later.)"""
    unhurried = played_with_every_write("send_retries_exhausted", "thread")
    run = bp_module._ThreadState.run

    def slow_to_start(self):
        for _ in range(30):  # until the world has taken its turn (0.3 s at most)
            if self.body.runtime.turn.locked():
                break
            watch._REAL_SLEEP(0.01)
        run(self)

    monkeypatch.setattr(bp_module._ThreadState, "run", slow_to_start)
    assert played_with_every_write("send_retries_exhausted", "thread") == unhurried


def _mined_under_a_processor(form: str, quiet_wakes: bool) -> tuple[int, dict, list]:
    """Twenty blocks and a minute and a half under a processor, after its first wake: how many times its loop
    woke meanwhile, each timer's count and last firing, and the height of each manager written."""
    wakes: list[Any] = []
    after_wake = bp_module._RunBody.after_wake
    with pytest.MonkeyPatch.context() as patch, World(seed=11) as world:
        patch.setattr(bp_module._RunBody, "after_wake", lambda self: wakes.append(self) or after_wake(self))
        if not quiet_wakes:
            patch.setattr(bp_module._RunBody, "quiet_wake", lambda self, now_us: None)
        node = world.add_node("learner", handler=handle_ldk_events)
        heights = _manager_heights(node)
        with run_processor(node, form):
            world.mine(1)  # its first wake is its own (it decays the scorer)
            first = len(wakes)
            world.mine(20)
            world.advance(90)
            body = wakes[0]
            timers = {name: (body.timer_counts[name], timer.last_us) for name, timer in body.timers.items()}
            return len(wakes) - first, timers, heights


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_processor_sleeps_through_quiet_blocks_while_the_world_does_its_iteration(form):
    """The world persists the manager at every block for a sleeping processor and fires the timers due then,
    as its thread would have: each timer fired as many times and last at the same moment, the same writes."""
    woke, timers, heights = _mined_under_a_processor(form, quiet_wakes=True)
    assert woke <= 2  # twenty blocks and 90 s of timers: the thread woke for the timers that do something, at most
    woken = _mined_under_a_processor(form, quiet_wakes=False)
    assert woken[0] >= 20 and (timers, heights) == woken[1:]
    assert sorted(set(heights))[-20:] == list(range(heights[-1] - 19, heights[-1] + 1))


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_block_wakes_the_loop_twice_as_ldks_sleeper_takes_one_future_at_a_time(form):
    """A block notifies the ChainMonitor and the ChannelManager. LDK's ``Sleeper`` (and the async form's
    ``Selector``) takes one future's notification as its wait returns (wakers.rs ``Sleeper::wait_timeout`` sets
    ``callbacks_made`` on the notified future only; its callbacks never count); the other stays pending and the
    next wait returns at once: the loop goes round twice a block. The kit counted every wake-up as its callback
    fired, so both at once, and the loop went round once a block."""
    woke, _, _ = _mined_under_a_processor(form, quiet_wakes=False)
    assert woke == 2 * 20


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_manager_write_failing_in_a_quiet_wake_ends_the_loop_with_that_error(world, form):
    """LDK's loop ends when persisting the manager fails: the world, persisting for a sleeping processor,
    hands the error to it, which raises it, even though the disk would take the next write."""
    node = world.add_node("learner", handler=handle_ldk_events)
    write = node.fs_store.write
    failures = [OSError("disk full, once (simulated)")]

    def failing_once(primary, secondary, key, buf):
        if key == "manager" and failures:
            raise failures.pop()
        write(primary, secondary, key, buf)

    with pytest.raises(OSError, match="disk full, once"):
        with run_processor(node, form):
            world.advance(1)
            node.fs_store.write = failing_once
            world.mine(1)
    assert not failures


def _body(node) -> bp_module._RunBody:
    body = bp_module._RunBody(node.fs_store, node.event_handler, node.chain_monitor, node.channel_manager,
                              GossipSync.p2p(node.network_graph), node.peer_manager, node.logger, node.scorer,
                              node.channel_manager.clock.duration_since_epoch, whole_seconds=True)
    body.arm_wakeup = lambda futures: None
    body.have_decayed_scorer = True  # (as after its first wake)
    return body


def test_a_quiet_wake_is_the_loops_iteration_or_wakes_the_loop(world):
    """``quiet_wake`` persists the manager if asked and fires the timers due now, as ``after_wake`` would, then
    sleeps to the poll its loop would sleep to; it wakes the loop instead before its first wake, with events or
    messages waiting, and when that work notified it again (the loop would go round at once)."""
    node = world.add_node("learner", handler=handle_ldk_events, persist=False)
    node.channel_manager._notifier = Notifier()  # (the processor's alone: the world's own waits are not on it)
    body = _body(node)
    now = world.clock.now_us()
    body.timers["freshness"].last_us = now - 62 * 1_000_000  # due: more than 60 whole seconds ago
    for future in body.futures():  # what the sleeping loop waited on: the change below wakes it
        future.register_callback_fn(lambda: None)
    node.channel_manager._changed()
    assert body.quiet_wake(now) == body.next_deadline_us(now, bp_module.POLL_INTERVAL_S)
    assert body.timer_counts["freshness"] == 1 and body.timers["freshness"].last_us == now
    assert not node.channel_manager.get_and_clear_needs_persistence()  # persisted

    body.have_decayed_scorer = False
    assert body.quiet_wake(now) is None
    body.have_decayed_scorer = True

    body.timers["freshness"].last_us = now - 62 * 1_000_000
    body._timer_actions["freshness"] = node.channel_manager._changed  # the tick changed the manager
    assert body.quiet_wake(now) is None  # notified meanwhile: the loop goes round again
    node.channel_manager.get_and_clear_needs_persistence()

    node.channel_manager._queue_event(Event.PendingHTLCsForwardable(timedelta(seconds=1)))
    assert body.quiet_wake(now) is None


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_notification_while_the_loop_works_is_kept_and_the_loop_goes_round_to_persist(form):
    """LDK's ``Sleeper`` (the thread form) and ``Selector`` (the async form) count a wake-up as taken only once their
    wait has seen the future complete (``callbacks_made``); until then a ``Notifier`` keeps the notification, and
    the loop's next wait returns at once. Here the loop wakes for a ChainMonitor event, so the wake-up its wait left
    on the manager's future is still there as the handler calls into the manager, which then wants persisting. The
    kit counted that stale wake-up as the notification delivered: the loop went to sleep, and the manager was
    written only at the next block. Now it goes round at once and writes it."""
    invoices: list[Any] = []

    def handler(channel_manager, *args):
        if isinstance(args[-1], Event.SpendableOutputs):
            invoices.append(args[-1])
            channel_manager.process_pending_htlc_forwards()  # (a call after which the manager wants persisting)

    with World(seed=5) as world:
        node = world.add_node("learner", handler=handler)
        written: list[bytes] = []
        write = node.fs_store.write

        def recorded(primary, secondary, key, buf):
            if key == "manager":
                written.append(buf)
            return write(primary, secondary, key, buf)

        node.fs_store.write = recorded
        with run_processor(node, form):
            world.advance(1)
            node.chain_monitor._events.push(Event.SpendableOutputs((), None))
            world.advance(1)  # no block: only the loop's own wake writes the manager
            assert invoices and written and written[-1] == node.channel_manager.encode()
