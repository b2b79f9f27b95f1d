"""Runtime.call: a plain function in the world's turn, the loop run only to settle what it set off; one_cpu: the world
and a processor's thread taking turns on one CPU."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import timedelta

import pytest

from ldkkit import scenarios
from ldkkit.events import Event
from ldkkit.reference import handle_ldk_events
from ldkkit.sim import cpus as cpus_module
from ldkkit.sim import runtime as runtime_module
from ldkkit.sim.world import World


def _through_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call made as ``run`` makes it: inside a task on the loop, settled every time."""
    monkeypatch.setattr(runtime_module.Runtime, "call", lambda self, fn: self.run(runtime_module._called(fn)))


def _played(name: str, processor: str | None) -> tuple:
    result = scenarios.run(name, seed=5, processor=processor)
    return list(result.node.event_log), result.world.message_log, result.world.chain.height(), result.world.audit()


@pytest.mark.parametrize("processor", [None, "thread", "async"])
def test_every_scenario_plays_as_it_does_through_the_loop(monkeypatch, processor):
    """Mining straight from the caller gives every event at the same time and height, every message, and the
    same chain and coins as mining inside a task on the loop, however the learner's node is driven."""
    direct = {name: _played(name, processor) for name in scenarios.names()}
    _through_the_loop(monkeypatch)
    for name in scenarios.names():
        assert _played(name, processor) == direct[name], name


def test_a_call_that_sets_nothing_off_never_runs_the_loop(monkeypatch):
    with World(seed=1) as world:
        node = world.add_node("n", handler=handle_ldk_events)
        world.mine(1)
        runs = []
        real = world.runtime.loop.run_until_complete
        monkeypatch.setattr(world.runtime.loop, "run_until_complete", lambda coro: runs.append(1) or real(coro))
        assert world.runtime.call(lambda: 42) == 42
        assert runs == []
        world.runtime.call(lambda: node.channel_manager._queue_event(
            Event.PendingHTLCsForwardable(timedelta(milliseconds=100))))
        assert runs == [1] and not node.channel_manager.has_pending_events()  # woken, handled, settled


def test_an_error_in_the_call_is_raised_and_the_world_goes_on():
    with World(seed=1) as world:
        world.add_node("n", handler=handle_ldk_events)

        def fails() -> None:
            raise ValueError("the block could not be built")

        with pytest.raises(ValueError, match="could not be built"):
            world.runtime.call(fails)
        world.mine(2)
        assert world.chain.height() == 3


def test_mining_from_a_running_event_loop_as_in_jupyter():
    """A Jupyter kernel's thread runs an event loop: the call goes to the world's helper thread, as ``run`` does."""

    async def in_a_kernel() -> tuple[int, int]:
        with World(seed=1) as world:
            node = world.add_node("n", handler=handle_ldk_events)
            world.mine(3)
            result = world.runtime.call(lambda: node.channel_manager._queue_event(
                Event.PendingHTLCsForwardable(timedelta(milliseconds=100))) or 7)
            return result, world.chain.height(), len(node.event_log)

    assert asyncio.run(in_a_kernel()) == (7, 4, 1)


def test_a_call_that_wakes_a_participant_returns_once_it_is_done():
    """Something outside the loop woken by the call (a processor's thread, say) has done its work, in its turn,
    and is asleep again by the time the call returns, as after ``run``."""
    import threading
    import time

    with World(seed=1) as world:
        runtime = world.runtime
        helper = runtime.join("a helper")
        done: list[int] = []

        def work() -> None:
            helper.wait(None, lambda: helper.stopping)  # asleep until the call wakes it
            with runtime.participant_turn():
                done.append(1)
            helper.wait(None, lambda: helper.stopping)  # and asleep again

        thread = threading.Thread(target=work)
        thread.start()
        while not helper.idle:  # (until it is asleep: no time limit, only a wait)
            time.sleep(0.001)
        runtime.call(helper.wake)
        assert done == [1] and helper.idle
        helper.stop()
        thread.join()
        runtime.leave(helper)



def test_a_participant_woken_by_the_turns_holder_is_told_as_the_turn_is_given_back():
    """Woken while the world holds its turn, a processor's thread would only run to the turn and wait there (two
    thread switches for nothing): it is told as the turn is given back, and is then awake at once."""
    import time

    with World(seed=1) as world:
        runtime = world.runtime
        helper = runtime.join("a helper")
        woke: list[bool] = []  # whether the turn was free when its wait returned

        def work() -> None:
            helper.wait(None, lambda: helper.stopping)
            woke.append(not runtime.turn.locked())

        thread = threading.Thread(target=work)
        thread.start()
        while not helper.idle:
            time.sleep(0.001)
        with runtime.turn:
            helper.handler_done()  # (from the loop's thread, as an async handler's coroutine ends)
            thread.join(0.2)
            assert thread.is_alive() and not woke  # not yet
        thread.join()  # (no time limit: told as the turn is given back, it ends)
        assert woke == [True]
        runtime.leave(helper)


# --- one_cpu -------------------------------------------------------------------------------------

LINUX_SMP = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                               reason="thread affinity: Linux with two CPUs or more")


def _cpus_of_a_thread_started_now() -> set[int]:
    seen: list[set[int]] = []
    thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
    thread.start()
    thread.join()
    return seen[0]


@LINUX_SMP
def test_one_cpu_keeps_the_thread_and_those_it_starts_on_its_cpu_and_gives_the_others_back():
    before = os.sched_getaffinity(0)
    with pytest.raises(KeyError):
        with cpus_module.one_cpu():
            (cpu,) = os.sched_getaffinity(0)
            assert cpu in before and _cpus_of_a_thread_started_now() == {cpu}
            raise KeyError("an error in the play")
    assert os.sched_getaffinity(0) == before == _cpus_of_a_thread_started_now()


@LINUX_SMP
@pytest.mark.parametrize("case", ["cpu unknown", "one cpu allowed", "refused"])
def test_one_cpu_changes_nothing_where_it_cannot_tell_or_is_refused(monkeypatch, case):
    before = os.sched_getaffinity(0)
    if case == "cpu unknown":
        monkeypatch.setattr(cpus_module, "_current_cpu", lambda: None)
    elif case == "one cpu allowed":  # (this thread's: the machine's others are not for it)
        monkeypatch.setattr(cpus_module, "_allowed_cpus", lambda: {min(before)})
        monkeypatch.setattr(cpus_module, "_current_cpu", lambda: min(before))
    else:
        def refuse(pid, cpus):
            raise OSError("not in this container")
        monkeypatch.setattr(cpus_module.os, "sched_setaffinity", refuse)
    with pytest.raises(KeyError) as raised:
        with cpus_module.one_cpu():
            assert os.sched_getaffinity(0) == before
            raise KeyError("an error in the play")
    assert os.sched_getaffinity(0) == before
    assert raised.value.__context__ is None  # (not shown as raised while handling the kernel's refusal)


@LINUX_SMP
@pytest.mark.parametrize("processor", ["thread", "async"])
def test_a_scenario_under_a_processor_runs_it_on_the_worlds_cpu(processor):
    """The processor's thread, which hands the turn back and forth with the world's, shares its one CPU."""
    cpus: list[set[int]] = []

    def handler(*args):
        cpus.append(os.sched_getaffinity(0))
        return handle_ldk_events(*args)

    before = os.sched_getaffinity(0)
    scenarios.run("inbound_open_accept", handler, seed=5, processor=processor)
    assert cpus and all(len(c) == 1 for c in cpus) and os.sched_getaffinity(0) == before


def test_a_sleeper_the_world_wakes_has_its_work_done_by_the_world_before_anything_moves_on():
    """A participant with ``on_wake`` work, woken from the world's turn as it sleeps, stays asleep: the world does
    that work (``run_deferred_wakes``) before ``call`` returns, and counts it busy until then. Woken from a thread
    outside the world's turn, that is left to the world's next step. If the work says it must wake, it wakes."""
    with World(seed=1) as world:
        runtime = world.runtime
        sleeper = runtime.join("a sleeping processor")
        done: list[int] = []
        answer: list[int | None] = [5_000_000]
        sleeper.on_wake = lambda now_us: done.append(now_us) or (None if answer[0] is None else now_us + answer[0])
        woke: list[int] = []

        def asleep() -> None:
            with runtime.cond:
                assert runtime.cond.wait_for(runtime.all_idle, 10)

        def sleeping() -> None:  # a processor's thread: asleep until woken, then asleep again
            while not sleeper.stopping:
                sleeper.wait(None, lambda: sleeper.stopping)
                woke.append(1)

        thread = threading.Thread(target=sleeping)
        thread.start()
        asleep()

        def wake_and_look() -> bool:
            sleeper.wake()
            return sleeper.wake_deferred and not runtime.all_idle()

        assert runtime.call(wake_and_look)  # deferred, and busy, inside the call
        now = world.clock.now_us()
        assert done == [now] and woke == [] and sleeper.deadline_us == now + 5_000_000 and runtime.all_idle()

        answer[0] = None  # its work finds more to do: its thread is woken after all
        runtime.call(sleeper.wake)
        assert done == [now, now] and woke == [1]

        other = threading.Thread(target=sleeper.wake)  # not in the world's turn (a cell's): left to its next step
        other.start()
        other.join()
        assert sleeper.wake_deferred and done == [now, now] and woke == [1]
        runtime.call(lambda: None)  # the world's next step does its work first (more to do: its thread is woken)
        asleep()
        assert done == [now, now, now] and woke == [1, 1]
        sleeper.stop()
        thread.join()
        runtime.leave(sleeper)


def test_the_clock_stands_still_while_work_handed_to_a_thread_runs():
    """asyncio.to_thread on the world's loop takes real time, not the simulation's: a minute of simulated time
    asked for meanwhile passes only once the work is done, and the work ends at the moment it began."""
    import time

    from ldkkit.sim.world import World

    with World(seed=1) as world:
        seen = {}

        async def work():
            seen["began"] = world.clock.now()
            await asyncio.to_thread(time.sleep, 0.2)
            seen["ended"] = world.clock.now()

        began = world.clock.now()
        world.runtime.loop.create_task(work())
        world.advance(60)
        assert seen == {"began": began, "ended": began}
        assert world.clock.now() == began + 60
        assert world.runtime.jobs == 0


def test_a_wait_shorter_than_a_microsecond_lets_time_move():
    """A task that sleeps "the rest" until a moment between two microseconds ends, as it would on a real clock:
    its short wait ends a microsecond later (it once fired at once, for ever, time never moving)."""
    from ldkkit.sim.world import World

    with World(seed=1) as world:
        loop, done = world.runtime.loop, []

        async def until(due):
            while loop.time() < due:
                await asyncio.sleep(due - loop.time())
            done.append(loop.time())

        start = loop.time()
        loop.create_task(until(start + 0.5e-6))
        world.advance(1)
        assert done == [start + 1e-6]


@pytest.mark.parametrize("build", ["create_task", "Task"])
def test_a_task_still_waiting_when_the_world_closes_is_cancelled_however_it_was_built(build):
    """Its coroutine ends as the world closes (its ``finally`` runs then, in the world's turn): a task built directly,
    ``asyncio.Task(coro)``, with no ``create_task``, was left pending on the closed loop."""
    world = World(seed=1)
    loop, ended = world.runtime.loop, []

    async def waits():
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append(world.clock.now())

    task = loop.create_task(waits()) if build == "create_task" else asyncio.Task(waits(), loop=loop)
    world.advance(1)
    world.close()
    assert task.cancelled() and ended == [world.clock.now()]
