"""How every check treats a handler: real signatures, its own copy of events, hangs, errors, progress."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
from pathlib import Path

import pytest

from ldkkit import exercises, reference
from ldkkit.events import Event
from ldkkit.exercises import ExerciseFailed, check, common
from ldkkit.exercises import recorder as recording
from ldkkit.workbooks import exercise_from_solution

ROOT = Path(__file__).resolve().parent.parent


def opening(decide):
    """A handler whose OpenChannelRequest arm is ``decide``; everything else passes through."""

    def handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler, peer_manager,
               inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            return decide(channel_manager, keys_manager, event)
        return None

    return handle


def policy(cm, keys, event, **how):
    if event.funding_satoshis > 5_000_000:
        uid = int.from_bytes(keys.get_secure_random_bytes()[:16], "big")
        cm.accept_inbound_channel(temporary_channel_id=event.temporary_channel_id,
                                  counterparty_node_id=event.counterparty_node_id, user_channel_id=uid)
    else:
        cm.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                error_message="too small")


def test_keyword_arguments_are_recorded_through_the_components_own_signature():
    result = check("open_channel_request", opening(policy))
    assert "all 5 checks passed" in repr(result)


@pytest.mark.parametrize("passing", [True, False])
def test_the_collector_runs_less_often_while_a_check_runs_and_as_before_after_it(passing):
    """A check makes millions of objects kept a moment: while it runs, Python's youngest generation is collected
    less often (as set before, if that was rarer still); after it, passed or failed, as before."""
    import gc

    seen = []

    def decide(cm, keys, event):
        seen.append(gc.get_threshold())
        return policy(cm, keys, event) if passing else cm.accept_inbound_channel(event.temporary_channel_id)

    before = gc.get_threshold()
    try:
        gc.set_threshold(500, 7, 9)
        if passing:
            check("open_channel_request", opening(decide))
        else:
            with pytest.raises(ExerciseFailed):
                check("open_channel_request", opening(decide))
        assert seen and set(seen) == {(common.CHECK_GC_THRESHOLD, 7, 9)} and gc.get_threshold() == (500, 7, 9)
        gc.set_threshold(50_000, 7, 9)
        seen.clear()
        with contextlib.suppress(ExerciseFailed):
            check("open_channel_request", opening(decide))
        assert set(seen) == {(50_000, 7, 9)} and gc.get_threshold() == (50_000, 7, 9)
    finally:
        gc.set_threshold(*before)


def test_what_the_process_held_is_set_aside_while_checks_run_and_handed_back_after():
    """No collection during a check looks at what the kernel held before it (a full one took a third of a second with
    IPython and pandas loaded): set aside as the first check starts (``gc.freeze``), handed back as the last ends."""
    import gc

    held = [object()]  # (a container, which the collector tracks)
    assert gc.get_freeze_count() == 0
    common._collect_less_often()  # one check starts,
    try:
        assert gc.get_freeze_count() > 0 and not any(o is held for o in gc.get_objects())  # (no generation holds it)
        made = [object()]  # (made while the first check runs: the collector's to look at)
        common._collect_less_often()  # then another, which sets nothing more aside
        assert any(o is made for o in gc.get_objects())
        common._collect_as_before()  # the first ends, and hands nothing back yet
        assert not any(o is held for o in gc.get_objects())
    finally:
        common._collect_as_before()
    assert gc.get_freeze_count() == 0 and any(o is held for o in gc.get_objects(2))  # (the oldest generation's again)


def test_objects_set_aside_by_someone_else_stay_so_after_a_check():
    import gc

    gc.freeze()  # (your code, or a library, set the process's objects aside itself)
    try:
        before = gc.get_freeze_count()
        check("open_channel_request", opening(policy))
        assert gc.get_freeze_count() >= before  # never handed back to the collector by the check
    finally:
        gc.unfreeze()


def test_checks_running_at_once_put_the_collector_back_once_the_last_ends():
    import gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        common._collect_less_often()  # one check starts,
        common._collect_less_often()  # then another
        common._collect_as_before()  # the first ends
        assert gc.get_threshold() == (common.CHECK_GC_THRESHOLD, 10, 10)
        common._collect_as_before()
        assert gc.get_threshold() == (700, 10, 10)
        common._collect_less_often()  # and a later one finds it as it was
        assert gc.get_threshold() == (common.CHECK_GC_THRESHOLD, 10, 10)
        common._collect_as_before()
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_wrong_arguments_raise_pythons_own_type_error_named_at_the_event():
    def bad(cm, keys, event):
        cm.accept_inbound_channel(event.temporary_channel_id, nonsense=1)

    with pytest.raises(ExerciseFailed, match="TypeError") as info:
        check("open_channel_request", opening(bad))
    assert "OpenChannelRequest" in str(info.value)


def test_a_mutated_event_changes_nothing_and_is_named():
    def cheat(cm, keys, event):
        object.__setattr__(event, "funding_satoshis", 6_000_000)
        object.__setattr__(event, "is_announced", not event.is_announced)
        policy(cm, keys, event)

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(cheat))
    message = str(info.value)
    assert "4,999,999 sats" in message and "you accepted it" in message  # judged on the check's own copy
    assert _lines(info.value)[-1] == (
        "Also: your handler changed this event's funding_satoshis, is_announced. That changes nothing (the check "
        "judges LDK's own copy), but events are LDK's record: read them, never change them.")


def test_mutating_alone_is_named():
    def touch(cm, keys, event):
        policy(cm, keys, event)
        object.__setattr__(event, "funding_satoshis", 1)

    with pytest.raises(ExerciseFailed, match="changed its funding_satoshis"):
        check("open_channel_request", opening(touch))


def test_a_handler_that_changes_what_kind_of_event_it_was_given_is_named():
    class Mine(Event.OpenChannelRequest):
        pass

    def touch(cm, keys, event):
        policy(cm, keys, event)
        object.__setattr__(event, "__class__", Mine)  # every field as it was

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(touch))
    assert _lines(info.value)[1:3] == ["Expected: the event left as LDK gave it",
                                       "Happened: your handler changed its fields"]


def test_every_field_a_handler_changed_is_named():
    def touch(cm, keys, event):
        policy(cm, keys, event)
        object.__setattr__(event, "funding_satoshis", 1)
        object.__setattr__(event, "is_announced", not event.is_announced)

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(touch))
    assert _lines(info.value)[1:3] == ["Expected: the event left as LDK gave it",
                                       "Happened: your handler changed its funding_satoshis, is_announced"]
    assert not [line for line in _lines(info.value) if line.startswith("Also:")]  # said once is enough


@pytest.mark.parametrize("answer", [42, "ok", True])
def test_an_answer_that_means_nothing_to_ldk_is_named(answer):
    def odd(cm, keys, event):
        policy(cm, keys, event)
        return answer

    with pytest.raises(ExerciseFailed, match=f"returned {answer!r}") as info:
        check("open_channel_request", opening(odd))
    assert "ReplayEvent()" in str(info.value)


def test_a_raising_handler_keeps_only_its_own_frames_and_no_kit_context():
    def slip(cm, keys, event):
        return event.channel_value_satoshis  # the chapter's slip: not a field of OpenChannelRequest

    with pytest.raises(ExerciseFailed, match="raised AttributeError") as info:
        check("open_channel_request", opening(slip))
    cause = info.value.__cause__
    assert isinstance(cause, AttributeError)
    frames = []
    tb = cause.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert frames and all(f == __file__ for f in frames), frames
    names = []
    tb = cause.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert names == ["handle", "slip"]  # every frame of the learner's, in order: the handler and what it called
    assert cause.__suppress_context__ or cause.__context__ is None
    shown = []  # after this test's own frame: check() alone, none of the kit's frames inside it
    tb = info.value.__traceback__.tb_next
    while tb is not None:
        if "mutmut" not in tb.tb_frame.f_code.co_filename:  # mutation testing wraps every function
            shown.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert shown and all(f.endswith(("exercises/__init__.py", "exercises\\__init__.py")) for f in shown), shown
    assert "has no field 'channel_value_satoshis'" in str(info.value) and "funding_satoshis" in str(info.value)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_from_a_handler_are_its_errors(error):
    def leave(cm, keys, event):
        raise error()

    with pytest.raises(ExerciseFailed, match=f"raised {error.__name__}"):
        check("open_channel_request", opening(leave))


def test_time_sleep_in_a_handler_is_caught_on_the_simulation_not_the_clock():
    def sleepy(cm, keys, event):
        time.sleep(0.01)
        policy(cm, keys, event)

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(sleepy))
    assert _lines(info.value)[1:3] == [
        "Expected: your handler to return promptly",
        "Happened: it did not return: it called time.sleep(), which blocks the whole node, and the check stopped it"]
    assert "asyncio.sleep" in str(info.value)


def test_a_library_that_waits_a_moment_for_its_own_thread_is_not_refused(tmp_path, monkeypatch):
    """Jupyter's sys.stdout.flush() (and a logging handler that flushes it) waits in Condition.wait for its sending
    thread: only the waits your code calls itself are refused, and a look that does not wait (timeout 0) is fine."""
    from ldkkit.exercises import watch

    library = tmp_path / "a_library.py"
    library.write_text("import threading\n\ndef flush():\n    done = threading.Event()\n"
                       "    threading.Timer(0.001, done.set).start()\n    done.wait(5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(watch, "LIBRARY_DIRS", (*watch.LIBRARY_DIRS, str(tmp_path)))
    import a_library

    def flushes(cm, keys, event):
        a_library.flush()
        threading.Event().wait(0)
        policy(cm, keys, event)

    check("open_channel_request", opening(flushes))


def _no_check_threads_left() -> bool:
    """No check's thread runs: a check returns (or says "The check stopped it.") only once its thread has ended, so
    none is left to wait for (a wait of a few seconds here was a limit a loaded machine could overrun)."""
    return not [t for t in threading.enumerate() if t.name.startswith("ldkkit-check") and t.is_alive()]


def test_a_handler_that_never_returns_is_stopped_and_leaves_no_thread(monkeypatch):
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    def stuck(cm, keys, event):
        while True:
            try:
                while True:
                    pass
            except Exception:  # swallows every error, and goes on: being stopped is no Exception
                continue

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(stuck))
    lines = _lines(info.value)
    assert lines[0] == ("open_channel_request: your handler did not return within 1 seconds of being given "
                        "Event.OpenChannelRequest. The check stopped it.")
    assert lines[1].startswith("The event: Event.OpenChannelRequest(") and lines[2] == (
        "Hint: a handler must return promptly: never wait in a loop for something to happen (LDK gives you another "
        "event when it does), and never call the node over and over. Work that must wait goes in a task: "
        "asyncio.get_running_loop().create_task(...).")
    assert _no_check_threads_left()


def test_a_handler_that_keeps_calling_the_node_is_stopped_by_count_not_by_time():
    def polling(cm, keys, event):
        while True:  # waiting for a channel to appear: it never will, while the handler runs
            cm.list_usable_channels()

    with pytest.raises(ExerciseFailed, match="kept calling the node"):
        check("open_channel_request", opening(polling))
    assert _no_check_threads_left()


def test_a_check_that_meets_the_unforeseen_still_gives_a_verdict(monkeypatch):
    from ldkkit.exercises import open_channel_request

    def broken(session, result):
        raise KeyError("something the check did not foresee")

    monkeypatch.setattr(open_channel_request, "rules", broken)
    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", reference.handle_ldk_events)
    assert _lines(info.value) == [
        "open_channel_request: the check could not judge your handler: KeyError: 'something the check did not "
        "foresee'",
        "Hint: this is usually a value of an unexpected type stored or passed by your handler (the traceback above "
        "shows where, if it was your code). If your handler looks right, tell your instructor: it may be a bug in "
        "the kit."]
    cause = info.value.__cause__
    assert isinstance(cause, KeyError) and _frames(cause) == [__file__]  # the kit's frames trimmed: this test's own


def test_async_handlers_are_checked_too():
    async def handle_async(channel_manager, *rest):
        return await reference.handle_ldk_events(channel_manager, *rest)

    assert "all 5 checks passed" in repr(check("open_channel_request", handle_async))


def test_unknown_workbooks_and_missing_handlers_are_explained():
    with pytest.raises(ExerciseFailed, match="01_open_channel_request") as info:
        check("no_such_exercise", reference.handle_ldk_events)
    assert "solutions" not in str(info.value)
    with pytest.raises(ExerciseFailed, match="Run the cell that defines it"):
        check("open_channel_request", None)


def test_a_workbook_has_one_name_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("LDKKIT_PROGRESS_FILE", str(tmp_path / "p.json"))
    assert list(exercises.progress()) == list(exercises.WORKBOOKS)
    check("01_open_channel_request.ipynb", reference.handle_ldk_events)
    assert exercises.progress()["01_open_channel_request"] and not exercises.progress()["08_capstone"]
    (tmp_path / "p.json").write_text("{not json")
    assert not any(exercises.progress().values())  # a damaged file is not fatal


def test_progress_is_kept_per_kit_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LDKKIT_PROGRESS_FILE", raising=False)
    for kit in ("a", "b"):
        (tmp_path / kit / "exercises").mkdir(parents=True)
        (tmp_path / kit / "solutions").mkdir()
    monkeypatch.chdir(tmp_path / "a" / "exercises")
    check("open_channel_request", reference.handle_ldk_events)
    assert exercises.progress()["01_open_channel_request"]
    monkeypatch.chdir(tmp_path / "b" / "exercises")
    assert not exercises.progress()["01_open_channel_request"]


@pytest.mark.parametrize("name", ["01_open_channel_request", "open_channel_request"])
def test_reset_restores_the_workbook_keeps_a_backup_and_clears_its_progress(tmp_path, monkeypatch, name):
    monkeypatch.setenv("LDKKIT_PROGRESS_FILE", str(tmp_path / "p.json"))
    for folder in ("solutions", "exercises"):
        (tmp_path / folder).mkdir()
    solution = (ROOT / "solutions" / "01_open_channel_request.ipynb").read_text()
    (tmp_path / "solutions" / "01_open_channel_request.ipynb").write_text(solution)
    mine = tmp_path / "exercises" / "01_open_channel_request.ipynb"
    mine.write_text(json.dumps({"learner": "work in progress"}))
    monkeypatch.chdir(tmp_path / "exercises")
    exercises.progress()  # nothing yet
    check("open_channel_request", reference.handle_ldk_events)
    backup = exercises.reset(name)
    assert json.loads(backup.read_text()) == {"learner": "work in progress"}
    assert mine.read_text() == exercise_from_solution(solution)
    assert not exercises.progress()["01_open_channel_request"]
    with pytest.raises(ValueError, match="08_capstone") as info:
        exercises.reset("99_nothing")
    assert "solutions" not in str(info.value)


def test_a_spawned_task_that_sleeps_or_spins_is_caught_too(monkeypatch):
    import asyncio

    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    def spawning(body):
        async def handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                         peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
            if isinstance(event, Event.OpenChannelRequest):
                policy(channel_manager, keys_manager, event)
                asyncio.get_running_loop().create_task(body())

        return handle

    async def sleeps():
        time.sleep(0.01)

    async def spins():
        while True:
            pass

    with pytest.raises(ExerciseFailed, match="time.sleep"):
        check("open_channel_request", spawning(sleeps))
    with pytest.raises(ExerciseFailed, match="a task your handler spawned ran 1 seconds without pausing"):
        check("open_channel_request", spawning(spins))
    assert _no_check_threads_left()


def slow_story(monkeypatch) -> None:
    """The hang limit at half a second, and a check's story that sleeps a second of wall time at each payment:
    a handler (or a task) waiting on the simulation's clock meanwhile must not be taken for stuck."""
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 0.5)
    real_pay = exercises.open_channel_request.Stage.pay

    def slow_pay(self, *args, **kwargs):
        time.sleep(1.0)
        return real_pay(self, *args, **kwargs)

    monkeypatch.setattr(exercises.open_channel_request.Stage, "pay", slow_pay)


def test_a_handler_waiting_on_the_simulations_clock_is_not_taken_for_a_hang(monkeypatch):
    """Only running time counts toward the hang limit: an await on the simulation's clock is not running."""
    import asyncio

    slow_story(monkeypatch)

    async def waits(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                    peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            policy(channel_manager, keys_manager, event)
        elif isinstance(event, Event.ChannelReady):
            await asyncio.sleep(3600)  # ...while this handler waits on the simulation's clock, not running

    assert "all 5 checks passed" in repr(check("open_channel_request", waits))  # slow in wall time, not stuck


def test_a_bump_handed_over_that_never_confirms_fails_on_chain(monkeypatch):
    """The on_chain check judges the chain, not the call: a BumpTxEventHandler that could not pay (here, one
    that does nothing) leaves the commitment unconfirmed, and the check says so."""
    from ldkkit.events.bump_transaction import BumpTransactionEventHandler

    monkeypatch.setattr(BumpTransactionEventHandler, "handle_event", lambda self, event: None)
    with pytest.raises(ExerciseFailed, match="never confirmed") as failed:
        check("on_chain", reference.handle_ldk_events)
    assert "your commitment transaction" in str(failed.value)


def test_a_task_your_handler_spawned_that_never_ran_is_closed_without_a_never_awaited_warning():
    """The story ended before a task your handler spawned could start (a forward timer, say): the task is
    cancelled, and your coroutine closed, so Python does not print 'coroutine ... was never awaited'."""
    import asyncio
    import gc
    import warnings
    from datetime import timedelta

    from ldkkit.events import Event
    from ldkkit.sim.world import World

    world = World(seed=1)
    recorder = recording.Recorder(world)
    event = Event.PendingHTLCsForwardable(timedelta(milliseconds=100))
    handling = recording.Handling(event, event, 0.0, None, 0)
    ran = []

    async def forward_later():
        ran.append(True)

    loop = asyncio.new_event_loop()
    token = recording._HANDLING.set(handling)
    try:
        coro = forward_later()
        task = recorder.task_factory(loop, coro)
    finally:
        recording._HANDLING.reset(token)
    task.cancel()
    gc.collect()  # (earlier tests' garbage, a coroutine of theirs among it, is not this test's to judge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()
        del coro, task
        gc.collect()
    world.close()
    assert not ran
    assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]


def test_what_your_handler_schedules_on_the_loop_itself_is_waited_for_until_a_crash_cancels_it():
    """``loop.call_later(...)`` and a task built directly (``asyncio.Task(coro)``, no task factory's), made while an
    event is handled, are work still to do for that event, as a task spawned with ``create_task`` is: the check waits
    for them (``Recorder.waiting``), and a crash of your node cancels them (they die with its process)."""
    import asyncio

    ran: list[str] = []
    tasks: set[asyncio.Task] = set()
    waiting: dict[str, list] = {}

    async def handle(*args):
        if isinstance(args[-1], Event.OpenChannelRequest):
            async def later():
                await asyncio.sleep(30)
                ran.append("Task")

            asyncio.get_running_loop().call_later(30, ran.append, "call_later")
            tasks.add(asyncio.Task(later()))
        return await reference.handle_ldk_events(*args)

    def story(stage):
        stage.open(stage.peer("bob"), stage.me, 6_000_000, confirm=False)
        waiting["before"] = session.recorders[-1].waiting(Event.OpenChannelRequest)
        stage.world.crash(stage.me)
        stage.settle(60)
        waiting["after"] = session.recorders[-1].waiting(Event.OpenChannelRequest)

    session = common.Session("demo", handle)
    try:
        played = session.play("a crash while a channel is accepted", story)
    finally:
        session.close()
    assert [type(e) for e in waiting["before"]] == [Event.OpenChannelRequest] and waiting["after"] == []
    assert ran == [] and len(played.recorder.killed) == 2


def test_a_handler_is_given_a_nodes_components_as_the_same_objects_until_the_node_restarts():
    """A real node's components are the same for its process's life: a handler that keeps what it knows of a node by
    them (``functools.cache`` on keys_manager, a dict keyed by channel_manager) keeps it at every event, and a
    restarted node's are new. So are the ones the check gives (and the grader's stand-ins, for the same verdict)."""
    from ldkkit import scenarios

    # (the node's own channel_manager, the components handed over with an event), kept where no crash puts it back:
    # in a queue (a crash puts back a handler's plain data only)
    seen: queue.SimpleQueue[tuple[object, tuple]] = queue.SimpleQueue()

    async def handle(*args):
        seen.put((object.__getattribute__(args[0], "_component"), args[:-1]))
        return await reference.handle_ldk_events(*args)

    session = common.Session("demo", handle)
    try:
        session.play("restart_replay", scenarios._SCENARIOS["restart_replay"])
    finally:
        session.close()
    given = [seen.get() for _ in range(seen.qsize())]
    nodes = list(dict.fromkeys(node for node, _ in given))
    runs = [[args for node, args in given if node is run] for run in nodes]
    assert len(runs) == 2 and all(len(run) >= 2 for run in runs)  # the node before the restart, and after
    for run in runs:  # one object for each component, at every event of the node's life
        assert all(a is b for args in run for a, b in zip(args, run[0], strict=True))
    recorded = [i for i, name in enumerate(recording.HANDLER_PARAMETERS[:11]) if name in recording._RECORDED]
    assert recorded and all(runs[0][0][i] is not runs[1][0][i] for i in recorded)  # the restarted node's are new


# --- the machinery's own words: what every check says, whatever the workbook ---------------------------------


def test_a_passing_check_reads_as_a_table_in_text_and_in_a_notebook():
    result = common.CheckResult("demo")
    result.add("a <short> row", "yes")
    result.add("a longer row & more", "3 channels")
    assert repr(result).splitlines() == ["✅ demo: all 2 checks passed",
                                         "  a <short> row        yes",
                                         "  a longer row & more  3 channels"]
    assert result._repr_html_() == (
        "<p>✅ <b>demo</b>: all 2 checks passed</p><table><tr><th>checked</th><th>result</th></tr>"
        "<tr><td style='text-align:left'>a &lt;short&gt; row</td><td style='text-align:left'>yes</td></tr>"
        "<tr><td style='text-align:left'>a longer row &amp; more</td><td style='text-align:left'>3 channels</td></tr>"
        "</table>")


def test_counts_read_as_english():
    assert [common.count(n, "payment") for n in (0, 1, 2, 1234)] == [
        "0 payments", "1 payment", "2 payments", "1,234 payments"]


def _lines(failure: BaseException) -> list[str]:
    """A failure's lines, but the note that its workbook was checked before in this kernel (tested on its own)."""
    return [line.strip() for line in str(failure).splitlines() if line.strip() != exercises.CHECKED_BEFORE]


def test_a_story_that_cannot_go_on_names_the_events_so_far_and_sends_back_to_the_earlier_checks():
    def story(stage):
        stage.open(stage.peer("bob"), stage.me, 6_000_000)
        raise LookupError("no route to carol")

    session = common.Session("demo", reference.handle_ldk_events)
    try:
        with pytest.raises(ExerciseFailed) as info:
            session.play("a payment to carol", story)
    finally:
        session.close()
    assert _lines(info.value) == [
        "Scenario 'a payment to carol':", "Expected: the scenario played to its end",
        "Happened: it could not go on: LookupError: no route to carol",
        "Events so far: OpenChannelRequest → ChannelPending → ChannelReady",
        "Hint: this usually means an earlier event was not handled (a channel never accepted or funded, so there is "
        "no route for a payment). Run the earlier checks first."]
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the kit's error is not the learner's


class Tick:
    """A stand-in event: a failure names it by its class."""


class Tock:
    pass


def _played_with(events: list) -> common.Played:
    recorder = recording.Recorder.__new__(recording.Recorder)
    recorder.handlings = [recording.Handling(e, e, 0.0, None, 0) for e in events]
    return common.Played("long story", None, None, recorder)  # type: ignore[arg-type]


@pytest.mark.parametrize("upto, path", [
    (None, "Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tick → Tock"),
    (2, "Tick → Tick → [Tick]"),
])
def test_a_path_of_up_to_fourteen_events_is_shown_whole_and_the_event_failed_on_is_marked(upto, path):
    events = [Tick() for _ in range(13)] + [Tock()]
    played = _played_with(events)
    failure = common.fail(played, None if upto is None else events[upto], "e", "h", "hint")
    assert [line for line in _lines(failure) if line.startswith("Events so far:")] == [f"Events so far: {path}"]


def test_a_longer_path_shows_its_first_three_and_last_ten_events():
    events = [Tock()] + [Tick() for _ in range(13)] + [Tock()] + [Tick() for _ in range(3)]
    failure = common.fail(_played_with(events), events[14], "e", "h", "hint")  # the 15th of 18: the rest unseen
    assert _lines(failure) == [
        "Scenario 'long story' on Tock:", "Expected: e", "Happened: h", f"The event: {events[14]!r}",
        "Events so far: Tock → Tick → Tick → ... → " + "Tick → " * 9 + "[Tock]", "Hint: hint"]


def test_a_failure_without_a_played_story_names_the_scenario_alone():
    assert _lines(common.fail("funding", None, "e", "h", "hint")) == [
        "Scenario 'funding':", "Expected: e", "Happened: h", "Hint: hint"]
    assert _lines(common.fail(_played_with([]), None, "e", "h", "hint", scenario="funding (6 BTC)")) == [
        "Scenario 'funding (6 BTC)':", "Expected: e", "Happened: h", "Events so far: none", "Hint: hint"]


def _frames(error: BaseException) -> list[str]:
    """The files of the frames in ``error``'s traceback, once each, in order."""
    files: list[str] = []
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename not in files:
            files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files


def test_causes_follow_what_an_error_was_raised_from_or_during_once_each():
    first, second, third = OSError("disk full"), RuntimeError("could not save"), ValueError("gave up")
    second.__context__ = first
    third.__cause__, third.__context__ = second, first  # an explicit cause is followed before the context
    assert common.causes(third) == [third, second, first]
    first.__context__ = third  # a cycle ends where it began
    assert common.causes(third) == [third, second, first]
    assert common.causes(first) == [first, third, second]


def test_an_error_raised_from_a_failed_write_is_taught_as_one():
    def save(cm, keys, event):
        policy(cm, keys, event)
        try:
            raise OSError("disk full")
        except OSError as e:
            raise RuntimeError("could not save the channel") from e

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(save))
    lines = _lines(info.value)
    assert lines[2] == "Happened: it raised RuntimeError: could not save the channel"
    assert lines[-1] == ("Hint: writing to disk failed, and raising stops the node's event processing. When you cannot "
                         "persist what an event changed, return ReplayEvent(): LDK hands the same event over again, "
                         "and nothing is lost.")


class Unforeseen(Exception):
    pass


def test_the_first_hint_that_matches_an_error_teaches_and_a_hint_that_fails_is_passed_over(monkeypatch):
    monkeypatch.setattr(common, "_ERROR_HINTS", [])

    @common.error_hint(lambda e, event: isinstance(e, Unforeseen) and "broken" in str(e))
    def _broken(error, event, played):
        raise ValueError("a hint that cannot be worked out")

    @common.error_hint(lambda e, event: isinstance(e, Unforeseen))
    def _named(error, event, played):
        return f"{type(event).__name__} in scenario {played.name!r}: {error}"

    @common.error_hint(lambda e, event: True)
    def _later(error, event, played):
        return "never: an earlier hint matched"

    def raising(message):
        def decide(cm, keys, event):
            raise Unforeseen(message)
        return decide

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(raising("odd")))
    assert _lines(info.value)[-1] == "Hint: OpenChannelRequest in scenario 'open_channel_request': odd"
    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(raising("broken")))
    assert _lines(info.value)[-1] == "Hint: OpenChannelRequest in scenario 'open_channel_request': broken"


@pytest.mark.parametrize("stopped, still", [
    (True, "The check stopped it."),
    (False, "It is still running, inside a call Python cannot interrupt: restart the kernel (Kernel → Restart) once "
            "you have fixed it."),
])
def test_a_hang_is_told_by_what_hung_and_whether_the_check_could_stop_it(stopped, still):
    event = Tick()
    session = common.Session("demo", reference.handle_ldk_events)
    handling = recording.Handling(event, event, 0.0, None, 0)
    step = common.TaskStep(event, 0.0, 0)
    hint = ("Hint: a handler must return promptly: never wait in a loop for something to happen (LDK gives you "
            "another event when it does), and never call the node over and over. Work that must wait goes in a "
            "task: asyncio.get_running_loop().create_task(...).")
    for watched, what in ((handling, "your handler did not return within 10 seconds of being given"),
                          (step, "a task your handler spawned ran 10 seconds without pausing, after")):
        lines = _lines(common._timed_out(session, watched, stopped))
        assert lines == [f"demo: {what} Tick. {still}", f"The event: {event!r}", hint]


def test_a_component_the_handler_is_given_reads_as_the_component_itself_and_refuses_writes():
    class Component:
        size = 3

        def grow(self, by: int = 1) -> int:
            self.size += by
            return self.size

        def __repr__(self) -> str:
            return "Component(3 or more)"

    world = type("World", (), {"chain": type("Chain", (), {"broadcast": None})(),
                               "clock": type("Clock", (), {"now": staticmethod(lambda: 7.0)})()})()
    recorder = recording.Recorder(world)  # type: ignore[arg-type]
    component = Component()
    seen = recording._Recorded("component", component, recorder)
    assert repr(seen) == "Component(3 or more)" and seen.size == 3
    assert isinstance(seen, Component)  # (a handler may ask, as of a real node's)
    with pytest.raises(AttributeError, match="^component cannot be changed from a handler$"):
        seen.size = 10  # refused, as the grader's stand-in refuses it: the component is the node's
    assert component.size == 3 and seen.grow() == 4
    assert [(c.name, c.arguments, c.returned, c.during, c.at) for c in recorder.calls] == [
        ("component.grow", {"by": 1}, 4, False, 7.0)]  # made outside any hand-over: not during one


def test_the_hand_over_that_counts_is_the_events_own_first_one_not_asked_for_again():
    """An equal copy (the same event decoded afresh after a restart) is another event with its own hand-overs;
    of one event's hand-overs, the first your handler did not answer with ReplayEvent counts, else its last."""
    from ldkkit.events import ReplayEvent

    @dataclasses.dataclass
    class Paid:
        amount: int

    first, again, other = Paid(1), Paid(1), Paid(2)  # ``again``: the same event decoded afresh (after a restart)
    recorder = recording.Recorder.__new__(recording.Recorder)
    recorder.handlings = [recording.Handling(e, e, 0.0, None, 0) for e in (other, first, first, again, again)]
    recorder.handlings[1].result = recorder.handlings[3].result = recorder.handlings[4].result = ReplayEvent()
    assert recorder.handling_of(first) is recorder.handlings[2]
    assert recorder.handling_of(again) is recorder.handlings[4]
    assert recorder.handled(Paid) == [recorder.handlings[i] for i in (0, 2, 4)]


@pytest.mark.parametrize("form, on_a_loop", [("thread", False), ("async", True), (None, True)])
def test_a_story_is_played_under_the_processor_form_it_names(form, on_a_loop):
    """BackgroundProcessor.start runs a plain handler outside any event loop; process_events_async, and the
    world itself without a processor, run it on the node's loop."""
    import asyncio

    loops: list[bool] = []

    def handle(*args):
        if isinstance(args[-1], Event.OpenChannelRequest):
            try:
                asyncio.get_running_loop()
                loops.append(True)
            except RuntimeError:
                loops.append(False)
        return reference.handle_ldk_events(*args)

    session = common.Session("demo", handle)
    try:
        session.play("one channel", lambda stage: stage.open(stage.peer("bob"), stage.me, 6_000_000),
                     processor=form)
    finally:
        session.close()
    assert loops == [on_a_loop]


def test_a_components_method_is_recorded_as_it_is_when_called():
    """A handler's calls are recorded through one wrapper per method, made once; a method replaced meanwhile
    (as a story replaces ``fs_store.write``), or another component's, is the one called and recorded."""
    from ldkkit.sim.world import World

    class Thing:
        def __init__(self, label: str) -> None:
            self.label = label

        def act(self, x: int) -> tuple[str, int]:
            return (self.label, x)

        def shout(self, x: int) -> tuple[str, int]:
            return (self.label.upper(), x)

    with World(seed=1) as world:
        recorder = recording.Recorder(world)
        thing, other = Thing("real"), Thing("other")
        proxy = recording._Recorded("thing", thing, recorder)
        assert proxy.act(1) == ("real", 1) and proxy.act is proxy.act
        assert recording._Recorded("thing", other, recorder).act(2) == ("other", 2)
        thing.act = lambda x: ("replaced", x)
        assert proxy.act(3) == ("replaced", 3)
        assert recording._Recorded("thing", Thing("new"), recorder).act(x=4) == ("new", 4)
        thing.act = thing.shout  # the same component, another of its methods
        assert proxy.act(5) == ("REAL", 5)
        assert [(c.name, c.arguments, c.returned) for c in recorder.calls] == [
            ("thing.act", {"x": 1}, ("real", 1)), ("thing.act", {"x": 2}, ("other", 2)),
            ("thing.act", {"x": 3}, ("replaced", 3)), ("thing.act", {"x": 4}, ("new", 4)),
            ("thing.act", {"x": 5}, ("REAL", 5))]


def test_no_two_plays_of_a_check_share_a_seed(monkeypatch):
    """Every play of a check is a world with a seed of its own, the capstone's scenarios included: two plays with one
    seed give the same keys, invoices and payment hashes, and a handler that remembers the hashes it recorded (right,
    on one node) would take the second play's payments for repeats."""
    from ldkkit.sim.world import World

    seeds: list[int] = []
    build = World.__init__

    def world_of(self, seed=0, **kw):
        seeds.append(seed)
        build(self, seed, **kw)

    monkeypatch.setattr(World, "__init__", world_of)
    check("capstone", reference.handle_ldk_events)
    assert len(seeds) > 30 and len(seeds) == len(set(seeds))


def test_a_workbook_checked_again_in_one_kernel_says_a_handlers_own_memory_outlives_a_check(monkeypatch):
    """A handler that remembers what it wrote (a set of its own) and skips it next time passes its first check; the
    next check of that workbook plays the same payments on new nodes, and its failure says why it may fail."""
    from corpus.w07_background_processor import remembers_what_it_wrote

    monkeypatch.setattr(exercises, "_CHECKED", __import__("collections").Counter())
    handler = remembers_what_it_wrote()
    check("background_processor", handler)
    with pytest.raises(ExerciseFailed) as again:
        check("07_background_processor", handler)  # (by file name: the same workbook)
    assert str(again.value).endswith(exercises.CHECKED_BEFORE)
    with pytest.raises(ExerciseFailed) as first:
        check("receiving_payments", lambda *args: None)
    assert exercises.CHECKED_BEFORE not in str(first.value)


def test_a_worker_thread_from_an_earlier_check_meets_this_checks_failing_disk():
    """A learner runs the check's cell again: the writer thread their handler started in the first check works on, and
    it writes for the second check's node when that check's handler wakes it. The second check's disk refuses it as the
    first's did (it passed, the thread still counted on the first check's world, whose disk was gone)."""
    from corpus.w07_background_processor import writes_by_one_worker

    handler = writes_by_one_worker(False)
    for _ in range(2):
        with pytest.raises(ExerciseFailed, match="raised OSError: disk full"):
            check("background_processor", handler)


def test_a_handler_that_stops_the_processor_under_a_check_is_told_by_the_verdict_alone(capsys):
    """The processor announces a handler's error on stderr for the learner who started it ("Call stop() or join() to
    get the exception", "then process events again"). Under check() the learner started none, and the check stops it
    and says what happened: the announcement, printed above the verdict, would tell them to do what does not apply."""
    from corpus import all_cases

    case = next(c for c in all_cases() if c.id == "background_processor:raises_oserror_unchanged")
    with pytest.raises(ExerciseFailed, match="raised OSError"):
        check(case.exercise, case.new_handler())
    assert "stop() or join()" not in capsys.readouterr().err


#: Two threads entering and leaving the check's watch, beside a Python audit hook that lets another thread run
#: while one sets its profile (as workbook 7's failing disk adds one): CPython's guard against a second
#: sys.setprofile is one flag for the process, so without the watch's own lock one of them is refused.
_PROFILES_BESIDE_AN_AUDIT_HOOK = """
import sys, threading, time
from ldkkit.exercises import watch

sys.addaudithook(lambda event, args: time.sleep(0.0005) if event == "sys.setprofile" else None)
errors = []

def enter_and_leave():
    try:
        for _ in range(300):
            with watch.no_sleeping():
                with watch.sleeping_allowed():
                    pass
    except RuntimeError as e:
        errors.append(e)

threads = [threading.Thread(target=enter_and_leave) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(repr(errors[:1]))
"""


def test_the_watch_sets_profiles_one_thread_at_a_time_beside_an_audit_hook() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PROFILES_BESIDE_AN_AUDIT_HOOK], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.stdout.strip() == "[]", out.stdout
