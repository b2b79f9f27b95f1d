"""How a check runs a handler that could hang the node: async handlers and the tasks they spawn are watched
like plain handlers, and what the learner sees says which event, which bound, and what came of it."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest
from test_checks import _lines, policy, slow_story

from ldkkit import reference
from ldkkit.events import Event, ReplayEvent
from ldkkit.exercises import ExerciseFailed, check, common
from ldkkit.exercises import recorder as recording


def opening_async(decide):
    """An async handler whose OpenChannelRequest arm is ``decide`` (awaited); every other event is handled."""

    async def handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                     peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            return await decide(channel_manager, keys_manager, event)
        return None

    return handle


# --- errors and answers from an async handler are told as a plain handler's are ---------------------------


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_an_async_handler_raising_keyboard_interrupt_or_system_exit_is_told_what_it_raised(error):
    async def leave(cm, keys, event):
        raise error("bye")

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(leave))
    assert _lines(info.value)[:3] == ["Scenario 'open_channel_request' on Event.OpenChannelRequest:",
                                      "Expected: your handler to return normally",
                                      f"Happened: it raised {error.__name__}: bye"]


@pytest.mark.parametrize("asks", ["raises", "returns"])
def test_an_async_handler_asking_for_an_event_again_is_judged_on_the_hand_over_that_handled_it(asks):
    """The first hand-over of each request asks for it again (ReplayEvent, raised or returned) and decides
    nothing; the second decides. LDK hands the event over again, and the check judges the second."""
    seen: list[bytes] = []

    async def once_more(cm, keys, event):
        if event.temporary_channel_id not in seen:
            seen.append(event.temporary_channel_id)
            if asks == "raises":
                raise ReplayEvent()
            return ReplayEvent()
        policy(cm, keys, event)
        return None

    assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(once_more)))


# --- hangs: an async handler, and a task it spawned --------------------------------------------------------


def test_an_async_handler_that_never_pauses_is_stopped_like_a_plain_one(monkeypatch):
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    async def spins(cm, keys, event):
        while True:  # no await: the node's loop never gets a turn
            pass

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(spins))
    assert _lines(info.value)[0] == ("open_channel_request: your handler did not return within 1 seconds of being "
                                     "given Event.OpenChannelRequest. The check stopped it.")


def test_a_task_spawned_that_never_pauses_is_told_with_the_event_that_spawned_it(monkeypatch):
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    async def spins():
        while True:
            pass

    async def spawn(cm, keys, event):
        policy(cm, keys, event)
        asyncio.get_running_loop().create_task(spins())

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(spawn))
    assert _lines(info.value)[0] == ("open_channel_request: a task your handler spawned ran 1 seconds without "
                                     "pausing, after Event.OpenChannelRequest. The check stopped it.")


@pytest.mark.parametrize("first", [True, False], ids=["before_any_call", "after_its_calls"])
def test_a_task_spawned_that_calls_time_sleep_is_told_with_the_event_that_spawned_it(first):
    """Not "the scenario could not go on": the task's time.sleep, and the event whose handling spawned it (even
    before anything of the kit has run in the check's thread)."""

    async def sleeps():
        import time

        time.sleep(0.01)

    async def spawn(cm, keys, event):
        if not first:
            policy(cm, keys, event)
        asyncio.get_running_loop().create_task(sleeps())
        await asyncio.sleep(0)  # the task runs now
        if first:
            policy(cm, keys, event)

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(spawn))
    lines = _lines(info.value)
    assert lines[:3] == [
        "Scenario 'open_channel_request' on Event.OpenChannelRequest:",
        "Expected: the tasks your handler spawns to wait with await, never blocking the node",
        "Happened: a task it spawned called time.sleep(), which blocks the whole node, and the check stopped it"]
    assert lines[-1] == ("Hint: a task runs on the node's own loop: time.sleep() there stops the whole node, as in "
                         "the handler. Await asyncio.sleep(...) (or asyncio's own Event or Queue) instead: the task "
                         "pauses, and the node goes on meanwhile.")
    assert [tb.tb_frame.f_code.co_name for tb in _traceback(info.value.__cause__)] == ["sleeps"]  # your frames only


def _traceback(error: BaseException) -> list:
    tbs, tb = [], error.__traceback__
    while tb is not None:
        tbs.append(tb)
        tb = tb.tb_next
    return tbs


def test_a_task_spawned_that_still_waits_when_the_check_ends_is_cancelled_so_its_cleanup_runs():
    """The check ends its stories: a task still waiting is cancelled (asyncio.CancelledError where it waits),
    as it would be when the node shuts down, and nothing of the check is left running."""
    spawned: list[int] = []
    cleaned: list[int] = []

    async def waits(task: int):
        try:
            await asyncio.sleep(10 * 365 * 24 * 3600)  # on the simulation's clock: longer than any story
        except asyncio.CancelledError:
            cleaned.append(task)
            raise

    async def spawn(cm, keys, event):
        policy(cm, keys, event)
        spawned.append(len(spawned))
        asyncio.get_running_loop().create_task(waits(spawned[-1]))

    assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(spawn)))
    assert len(spawned) == 11 and sorted(cleaned) == spawned  # one per request of the story, each cancelled once


def test_a_task_that_will_not_end_when_cancelled_does_not_hold_the_check_for_ever():
    """A task that catches its cancellation and waits again (as one under anyio's shielded scope does) is left once
    the check has waited a moment for it: the check ended only when it did, never (a helper's probe hung a grade)."""
    cancelled: list[int] = []

    async def stubborn():
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(1)

    async def spawn(cm, keys, event):
        policy(cm, keys, event)
        asyncio.get_running_loop().create_task(stubborn())

    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(check("open_channel_request", opening_async(spawn))),
                              daemon=True)
    worker.start()
    worker.join(120)  # (no threshold on how long: only that it ends)
    assert not worker.is_alive() and "all 5 checks passed" in repr(result[0])
    assert cancelled  # (each was asked to end)


def test_large_values_handed_to_the_node_are_refused_past_a_bound(monkeypatch):
    """The check keeps every call's arguments: calls handing megabytes in a loop took a grader's memory (and its
    scratch disk) by the gigabyte. Past ``MAX_ARGUMENT_BYTES`` a call handing text or bytes is refused, neither kept
    nor made; others go on as ever."""
    monkeypatch.setattr(recording, "MAX_ARGUMENT_BYTES", 4 * 2**20 + 10_000)
    refused: list[str] = []
    written: list[int] = []

    async def handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                     peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            for _ in range(4):
                try:
                    fs_store.write("", "", "junk", b"\0" * 2**20)
                    written.append(1)
                except common.BlockingCall as e:
                    refused.append(str(e))
            try:  # (held in a list: counted all the same, as a helper's probe had 10 GB kept so)
                fs_store.list([b"\0" * 2**20] * 3, "")
            except common.BlockingCall as e:
                refused.append(str(e))
            except Exception:  # noqa: S110 - (no such namespace: LDK's error, the call made)
                pass
            policy(channel_manager, keys_manager, event)
        return None

    assert "all 5 checks passed" in repr(check("open_channel_request", handle))
    assert len(written) == 4 and refused  # (4 MiB kept, then refused)
    assert any(r.startswith("its calls handed the node over 4 MiB of text and bytes (the last, 1,048,580 bytes to "
                            "fs_store.write)") for r in refused), refused
    assert any(r.startswith("its calls handed the node over 4 MiB of text and bytes (the last, 3,145,728 bytes to "
                            "fs_store.list)") for r in refused), refused


def test_a_task_your_handler_cancels_is_cancelled_where_it_paused():
    """``await asyncio.sleep(0)`` pauses a task without waiting for anything: cancelled there, the task sees
    asyncio.CancelledError there, and runs no further."""
    seen: list[str] = []

    async def worker():
        try:
            for _ in range(3):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("ran to its end")

    async def spawn(cm, keys, event):
        policy(cm, keys, event)
        task = asyncio.get_running_loop().create_task(worker())
        await asyncio.sleep(0)  # the task starts, and pauses in its first asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(spawn)))
    assert seen == ["cancelled"] * 11  # one per request of the story


def test_a_task_waiting_on_the_simulations_clock_is_not_taken_for_a_hang(monkeypatch):
    """Only a task's running time counts toward the limit, step by step: a task that paused long ago, while the
    story goes on for longer than the limit in wall time, is not running."""
    slow_story(monkeypatch)

    async def waits():
        await asyncio.sleep(3600)  # ...while this task waits on the simulation's clock, not running

    async def spawn(cm, keys, event):
        policy(cm, keys, event)
        asyncio.get_running_loop().create_task(waits())

    assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(spawn)))


def test_a_task_spawned_with_its_own_context_runs_in_it():
    """asyncio's create_task(..., context=...) is kept, for a task your handler spawns and for one the kit
    starts outside any hand-over."""
    mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="none")
    seen: list[str] = []

    async def read():
        seen.append(mark.get())

    async def spawn(cm, keys, event):
        policy(cm, keys, event)
        mine = contextvars.copy_context()
        mine.run(mark.set, "the handler's")
        asyncio.get_running_loop().create_task(read(), context=mine)
        await asyncio.sleep(0)

    check("open_channel_request", opening_async(spawn))
    assert seen == ["the handler's"] * 11  # one per request of the story

    from ldkkit.sim.world import World

    with World(seed=1) as world:
        recorder = recording.Recorder(world)
        loop = asyncio.new_event_loop()
        kits = contextvars.copy_context()
        kits.run(mark.set, "the kit's")
        task = recorder.task_factory(loop, read(), context=kits)
        loop.run_until_complete(task)
        loop.close()
    assert seen[-1] == "the kit's"


# --- work handed to a thread (asyncio.to_thread) ----------------------------------------------------------


def test_work_handed_to_a_thread_is_judged_the_same_however_long_it_takes():
    """The simulation's clock waits for a thread's work: the same verdict on a quick machine and a slow one
    (it was one of three, with the clock running on while the thread worked)."""
    import time

    def slowly(seconds):
        async def decide(cm, keys, event):
            small = event.funding_satoshis <= 5_000_000
            if small:  # (a rejection comes before the handler awaits anything)
                policy(cm, keys, event)
            await asyncio.to_thread(time.sleep, seconds)
            if not small:
                policy(cm, keys, event)

        return decide

    for seconds in (0, 0.02):
        assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(slowly(seconds))))


def test_work_handed_to_a_thread_that_never_ends_is_told_with_the_event_that_handed_it(monkeypatch):
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    def spins():
        while True:
            pass

    async def decide(cm, keys, event):
        await asyncio.to_thread(spins)

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(decide))
    assert _lines(info.value)[0] == ("open_channel_request: work your handler handed to a thread ran 1 seconds "
                                     "without ending, after Event.OpenChannelRequest. The check stopped it.")


def test_work_in_a_thread_blocked_for_ever_is_told_unstoppable_and_the_next_check_is_untouched(monkeypatch):
    """A thread waiting in C for ever cannot be stopped: the check says so (not 'The check stopped it'), and raises
    nothing in it that stays pending, so the next check, of a right handler, passes (it once timed out)."""
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)
    never = threading.Event()  # (set at the end, or the stuck thread would keep Python from exiting)

    async def decide(cm, keys, event):
        await asyncio.to_thread(never.wait)

    try:
        with pytest.raises(ExerciseFailed) as info:
            check("open_channel_request", opening_async(decide))
        assert "It is still running, inside a call Python cannot interrupt" in _lines(info.value)[0]
        assert check("open_channel_request", reference.handle_ldk_events)
    finally:
        never.set()


@pytest.mark.parametrize("how", ["thread", "pool"])
def test_a_thread_of_your_own_is_waited_for_like_to_thread(how):
    """A threading.Thread (or a pool of your own) that answers after blocking work: the clock waits for it, so the
    verdict is the same on every run (1 ms of real time was 120 simulated seconds: pass or fail by the machine)."""
    import concurrent.futures
    import time

    pool = concurrent.futures.ThreadPoolExecutor(1)

    async def decide(cm, keys, event):
        def answer():
            time.sleep(0.01)
            policy(cm, keys, event)

        threading.Thread(target=answer).start() if how == "thread" else pool.submit(answer)

    for _ in range(3):
        assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(decide)))
    pool.shutdown()


@pytest.mark.parametrize("how", ["timer", "event_wait", "heartbeat", "event_heartbeat"])
def test_time_in_a_thread_of_your_own_runs_on_the_simulations_clock(how):
    """A threading.Timer, a thread's timed ``Event.wait``, or a thread that time.sleeps (or waits on an Event nobody
    sets) in a loop (a heartbeat), waits on the simulated clock: the answer lands 10 ms (simulated) after the request
    on every run, and the heartbeat is no hang (once its world is gone, it waits in real time)."""
    import time

    beats: list[float] = []

    async def decide(cm, keys, event):
        if how == "timer":
            threading.Timer(0.01, policy, (cm, keys, event)).start()
            return
        if how == "event_wait":
            threading.Thread(target=lambda: (threading.Event().wait(0.01), policy(cm, keys, event))).start()
            return
        stop = threading.Event()

        def heartbeat():
            while True:
                stop.wait(5) if how == "event_heartbeat" else time.sleep(5)
                beats.append(5)

        threading.Thread(target=heartbeat, daemon=True).start()
        policy(cm, keys, event)

    for _ in range(3):
        assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(decide)))
    assert how in ("timer", "event_wait") or beats


@pytest.mark.parametrize("how", ["one_worker_pool", "to_thread", "awaited"])
def test_time_sleep_in_work_handed_to_a_pool_runs_on_the_simulations_clock(how):
    """time.sleep in work handed to a pool (of one worker: the second sleeper queued behind the first), to
    asyncio.to_thread, or to asyncio.to_thread and awaited by the handler, waits on the simulated clock, as in a thread
    of your own: each wait lasts its simulated time, the same on every run, and work queued behind a sleeper never
    holds the clock that sleeper waits for (it once slept in real time, the clock standing still: "0 ms")."""
    import concurrent.futures

    waited: list[list[tuple[str, float]]] = []  # for each request: which wait ended, how long after it came

    async def decide(cm, keys, event):
        loop = asyncio.get_running_loop()
        began, mine = loop.time(), []
        waited.append(mine)

        def after(seconds, name, answers=False):
            time.sleep(seconds)
            mine.append((name, round(loop.time() - began, 6)))
            if answers:
                policy(cm, keys, event)

        if how == "one_worker_pool":
            pool = concurrent.futures.ThreadPoolExecutor(1)
            pool.submit(after, 0.3, "first")
            pool.submit(after, 0.2, "second", True)
            pool.shutdown(wait=False)
        elif how == "to_thread":  # (asyncio's pool: a request's work may queue behind earlier requests' sleepers)
            loop.create_task(asyncio.to_thread(after, 0.3, "first"))
            loop.create_task(asyncio.to_thread(after, 0.2, "second", True))
        else:
            small = event.funding_satoshis <= 5_000_000
            if small:  # (a rejection comes before the handler awaits anything)
                policy(cm, keys, event)
            await asyncio.to_thread(after, 0.3, "first")
            await asyncio.to_thread(after, 0.2, "second", not small)

    runs = []
    for _ in range(2):
        waited.clear()
        assert "all 5 checks passed" in repr(check("open_channel_request", opening_async(decide)))
        runs.append([sorted(each) for each in waited])  # (two waits may end at one instant, in either order)
    assert runs[0] == runs[1]
    if how == "to_thread":
        assert runs[0][0] == [("first", 0.3), ("second", 0.2)]
        assert all(dict(each)["first"] >= 0.3 and dict(each)["second"] >= 0.2 for each in runs[0]), runs[0]
    else:
        assert all(each == [("first", 0.3), ("second", 0.5)] for each in runs[0]), runs[0]


def test_a_thread_of_your_own_that_never_ends_is_stopped_and_named(monkeypatch):
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    def spins():
        while True:
            pass

    async def decide(cm, keys, event):
        threading.Thread(target=spins, daemon=True).start()

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(decide))
    assert _lines(info.value)[0] == ("open_channel_request: work your handler handed to a thread ran 1 seconds "
                                     "without ending, after Event.OpenChannelRequest. The check stopped it.")
    for _ in range(100):  # every one of them, not only the first: none spins on after the check
        if not [t for t in threading.enumerate() if t.name.endswith("(spins)") and t.is_alive()]:
            break
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.endswith("(spins)") and t.is_alive()]


def test_what_a_thread_of_your_own_raises_is_told_with_its_event():
    async def decide(cm, keys, event):
        def answer():
            raise KeyError("no such peer in my database")

        threading.Thread(target=answer).start()

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening_async(decide))
    assert _lines(info.value)[:3] == [
        "Scenario 'open_channel_request' on Event.OpenChannelRequest:",
        "Expected: the thread your handler started to end normally",
        "Happened: it raised KeyError: 'no such peer in my database'"]


# --- the check's own thread --------------------------------------------------------------------------------


def test_a_check_runs_handlers_in_a_thread_named_for_it_that_never_keeps_python_from_exiting():
    """A thread dump of a stuck kernel names the check; and a handler the check could not stop does not
    keep Python from exiting."""
    threads: list[tuple[str, bool]] = []

    def handle(*args):
        if isinstance(args[-1], Event.OpenChannelRequest):
            me = threading.current_thread()
            threads.append((me.name, me.daemon))
        return reference.handle_ldk_events(*args)

    check("open_channel_request", handle)
    assert set(threads) == {("ldkkit-check-open_channel_request", True)}


# --- whose code broadcast: yours, or the kit's and its libraries' ------------------------------------------


@pytest.mark.parametrize("where", ["in_the_handler", "in_a_task_it_spawned"])
def test_a_handler_that_broadcasts_the_funding_transaction_itself_is_told_so(where):
    from corpus.w02_funding_generation_ready import build_funding

    async def later(tx, bitcoind_client):
        await asyncio.sleep(1)
        bitcoind_client.broadcast_transactions([tx])

    async def handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                     peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if not isinstance(event, Event.FundingGenerationReady):
            return await reference.handle_ldk_events(
                channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler, peer_manager,
                inbound_payments, outbound_payments, fs_store, output_sweeper, network, event)
        tx = build_funding(bitcoind_client, network, event)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)
        if where == "in_the_handler":
            bitcoind_client.broadcast_transactions([tx])
        else:
            asyncio.get_running_loop().create_task(later(tx, bitcoind_client))
        return None

    with pytest.raises(ExerciseFailed) as info:
        check("funding_generation_ready", handle)
    assert _lines(info.value)[2] == "Happened: your code broadcast the funding transaction itself"


def test_a_story_played_on_top_of_frames_python_runs_frozen_counts_no_broadcast_as_yours():
    """``python -m ...`` runs its main module through runpy, whose frames are frozen (``<frozen runpy>``): neither
    yours nor the kit's files. A right handler's story played on top of them is judged as in a notebook: LDK
    broadcast the funding transaction, not your code."""
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from ldkkit.exercises import funding_generation_ready

    runpy: dict = {}
    exec(compile("def run(play):\n    return play()\n", "<frozen runpy>", "exec"), runpy)
    session = common.Session("funding_generation_ready", reference.handle_ldk_events)
    result = common.CheckResult("funding_generation_ready")
    try:
        with ThreadPoolExecutor(1) as pool:  # no frame of this test's file below the story
            pool.submit(runpy["run"], partial(funding_generation_ready.rules, session, result)).result()
    finally:
        session.close()
    assert repr(result).splitlines()[0] == f"✅ funding_generation_ready: all {len(result.rows)} checks passed"
    assert result.rows


def test_the_frames_of_the_threads_are_read_with_the_collector_off_and_it_is_left_as_it_was():
    """sys._current_frames() under CPython 3.11 may collect while it holds the lock of the list of threads, and a
    finalizer letting another thread run then deadlocks the process (python/cpython#106883): the check reads them with
    the collector off, and puts it back as it found it."""
    import gc
    import threading

    from ldkkit.exercises import common

    seen = []
    real = common.sys._current_frames

    def spy():
        seen.append(gc.isenabled())
        return real()

    common.sys._current_frames = spy
    try:
        for was in (True, False):
            (gc.enable if was else gc.disable)()
            assert threading.get_ident() in common.current_frames() and gc.isenabled() is was
    finally:
        common.sys._current_frames = real
        gc.enable()
    assert seen == [False, False]
