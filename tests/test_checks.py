"""How every check treats a handler: real signatures, its own copy of events, hangs, errors, progress."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from ldkkit import exercises, reference
from ldkkit.events import Event
from ldkkit.exercises import ExerciseFailed, check, common
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


def test_wrong_arguments_raise_pythons_own_type_error_named_at_the_event():
    def bad(cm, keys, event):
        cm.accept_inbound_channel(event.temporary_channel_id, nonsense=1)

    with pytest.raises(ExerciseFailed, match="TypeError") as info:
        check("open_channel_request", opening(bad))
    assert "OpenChannelRequest" in str(info.value)


def test_a_mutated_event_changes_nothing_and_is_named():
    def cheat(cm, keys, event):
        object.__setattr__(event, "funding_satoshis", 6_000_000)
        policy(cm, keys, event)

    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", opening(cheat))
    message = str(info.value)
    assert "4,999,999 sats" in message and "you accepted it" in message  # judged on the check's own copy


def test_mutating_alone_is_named():
    def touch(cm, keys, event):
        policy(cm, keys, event)
        object.__setattr__(event, "funding_satoshis", 1)

    with pytest.raises(ExerciseFailed, match="changed its funding_satoshis"):
        check("open_channel_request", opening(touch))


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

    with pytest.raises(ExerciseFailed, match="time.sleep") as info:
        check("open_channel_request", opening(sleepy))
    assert "asyncio.sleep" in str(info.value)


def _no_check_threads_left() -> bool:
    for _ in range(100):
        if not [t for t in threading.enumerate() if t.name.startswith("ldkkit-check") and t.is_alive()]:
            return True
        time.sleep(0.05)
    return False


def test_a_handler_that_never_returns_is_stopped_and_leaves_no_thread(monkeypatch):
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 1.0)

    def stuck(cm, keys, event):
        while True:
            pass

    with pytest.raises(ExerciseFailed, match="did not return within 1 seconds of being given Event.OpenChannelRequest"):
        check("open_channel_request", opening(stuck))
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
    with pytest.raises(ExerciseFailed, match="could not judge your handler: KeyError"):
        check("open_channel_request", reference.handle_ldk_events)


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


def test_a_handler_waiting_on_the_simulations_clock_is_not_taken_for_a_hang(monkeypatch):
    """Only running time counts toward the hang limit: an await on the simulation's clock is not running."""
    import asyncio

    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 0.5)
    real_pay = exercises.open_channel_request.Stage.pay

    def slow_pay(self, *args, **kwargs):  # the check's story takes a while in wall time...
        time.sleep(1.0)
        return real_pay(self, *args, **kwargs)

    monkeypatch.setattr(exercises.open_channel_request.Stage, "pay", slow_pay)

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
    from ldkkit.exercises import common
    from ldkkit.sim.world import World

    world = World(seed=1)
    recorder = common.Recorder(world)
    event = Event.PendingHTLCsForwardable(timedelta(milliseconds=100))
    handling = common.Handling(event, event, 0.0, None, 0)
    ran = []

    async def forward_later():
        ran.append(True)

    loop = asyncio.new_event_loop()
    token = common._HANDLING.set(handling)
    try:
        coro = forward_later()
        task = recorder.task_factory(loop, coro)
    finally:
        common._HANDLING.reset(token)
    task.cancel()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()
        del coro, task
        gc.collect()
    world.close()
    assert not ran
    assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]
