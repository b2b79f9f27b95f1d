"""What every check shares: play a story against your handler, judge what it did (recorded by ``recorder``).

A check builds a fresh simulated world whose learner node runs your ``handle_ldk_events``.
Your handler is given its own copy of each event and, for each component, a thin
recorder that passes every call on unchanged (keywords and defaults included, as the
component's own signature takes them). The check judges outcomes from its own copy of
the events and from the world itself: what is stored on disk, what is in the wallet,
what was broadcast, what the channels are. The recording only explains a failure.

Verdicts never depend on wall time, except the one limit a handler that never returns
needs: :data:`HANDLER_TIMEOUT_S` seconds per event, from the moment it is handed over.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ..bitcoin import Network
from ..events import Event
from ..events.queue import EventHandlerError, ReturnedUnawaited
from ..node import Node
from ..scenarios import Stage
from ..sim.cpus import one_cpu
from ..sim.world import World
from . import pools
from .memory import Memory
from .recorder import _HANDLING, Handling, LearnerExit, NeverHandled, Recorder, TaskBlocked, _counted, replayed
from .watch import (
    KIT_DIR,
    LIBRARY_DIRS,
    BlockingCall,
    HandlerStopped,
    TaskStep,
    blocked_in_a_wait,
)

#: How long a handler may take on one event, from the moment it is handed over. The grader hands its own value to
#: its worker (``hang_limit_s`` in the job), whose wait on the learner process scales with it
#: (``bridge.exchange_limit_s``): a test that lowers it in its process lowers it for the grader's check too.
HANDLER_TIMEOUT_S = 10.0
#: How often the check looks at a handler's running time, and at whether a handler it stopped has ended.
POLL_S = 0.05
#: How long the check goes on stopping a handler that overran before it says it could not.
STOP_GRACE_S = 2.0
#: While a check runs, Python's youngest generation is collected after this many new objects, not 700: a check
#: makes millions, kept a moment, and each collection promotes some, until a full collection of everything the
#: kernel holds (a quarter of a second with pandas loaded) stops the check. Restored when the check ends. What the
#: kernel held before is set aside meanwhile (``gc.freeze``): no collection during the check looks at it, and it is
#: handed back, as the oldest generation, when the check ends (in a process with IPython and pandas loaded, the
#: collector took a tenth of each capstone check, and stopped one in ten for a third of a second).
CHECK_GC_THRESHOLD = 10_000
#: The workshop's policy: accept a channel exactly when it is strictly over this.
POLICY_MIN_EXCLUSIVE_SATS = 5_000_000
#: The largest channel without "wumbo" (option_support_large_channel).
LARGEST_NON_WUMBO_SATS = (1 << 24) - 1



class ExerciseFailed(AssertionError):
    """A check found something your handler should do differently; the message says what."""


@dataclass
class CheckResult:
    """What a passing check verified, one row per thing; shows as a table in a notebook."""

    exercise: str
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str, result: str) -> None:
        self.rows.append((what, result))

    def __repr__(self) -> str:
        width = max(len(what) for what, _ in self.rows)
        lines = [f"✅ {self.exercise}: all {len(self.rows)} checks passed"]
        lines += [f"  {what.ljust(width)}  {result}" for what, result in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        cells = "".join(f"<tr><td style='text-align:left'>{html.escape(w)}</td>"
                        f"<td style='text-align:left'>{html.escape(r)}</td></tr>" for w, r in self.rows)
        return (f"<p>✅ <b>{html.escape(self.exercise)}</b>: all {len(self.rows)} checks passed</p>"
                f"<table><tr><th>checked</th><th>result</th></tr>{cells}</table>")


def count(n: int, noun: str) -> str:
    """"1 payment", "2 payments": rows that read as English."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


# --- playing stories -------------------------------------------------------------------------------


@dataclass
class Played:
    """One story played: the world afterwards, the learner's node, and what its handler did."""

    name: str
    world: World
    stage: Stage
    recorder: Recorder
    #: How long (simulated seconds) the world played on after the story, waiting for your work on its events.
    played_on: int = 0
    #: How long (simulated seconds) the processor played on after the story, waiting for a hand-over to return.
    waited_for_handler: int = 0
    #: The hand-overs whose spawned tasks were still at work when this play ended (its node's loop runs no more).
    left_running: list[Handling] = field(default_factory=list)
    #: Those of the check's earlier plays, with each play's name: tasks that no longer run (``_handed_to_a_gone_task``).
    gone: list[tuple[str, Handling]] = field(default_factory=list)
    #: Errors of your tasks and threads the story let pass (``Session.play``'s ``let_out``): LDK refused a call for a
    #: reason the story itself made (a channel gone meanwhile), and nothing was lost.
    let_out: list[BaseException] = field(default_factory=list)
    #: The records read back from each (key, bytes) stored, once: a check reads the same bytes many times over
    #: (the judges only read them).
    decoded: dict[tuple[str, bytes], dict[Any, Any]] = field(default_factory=dict, repr=False)

    @property
    def me(self) -> Node:
        return self.stage.me

    def events(self, kind: type = Event) -> list[Event]:
        """The check's own copies of the events your handler was given, in order, each once (not its replays)."""
        return [h.event for h in self.recorder.handled(kind)]

    def handled(self, kind: type = Event) -> list[Handling]:
        """Each event's handling that counts, in order (see :meth:`Recorder.handling_of`)."""
        return self.recorder.handled(kind)


#: What a learner is told of a handler the check could not stop. (The grader's worker, which ends the learner's
#: process itself, tells instructors that instead.)
CANNOT_STOP = ("It is still running, inside a call Python cannot interrupt: restart the kernel (Kernel → Restart) "
               "once you have fixed it.")
#: The seed of a check's first play (see ``Session.play``).
FIRST_SEED = 17


class Session:
    """One run of ``check``: the stories it plays against one handler, watched for hangs."""

    def __init__(self, exercise: str, handler: Callable[..., Any]) -> None:
        self.exercise = exercise
        self.handler = handler
        pools.count_thread_pools_in_checks()  # (a ThreadPool the workbook imported: its work counted as an executor's)
        self.memory = Memory(handler)  # (what a crash of your node puts back, as a new process would have it)
        self.recorders: list[Recorder] = []
        self.worlds: list[World] = []
        self.played: list[Played] = []

    def play(self, name: str, story: Callable[[Stage], None], *, seed: Optional[int] = None,
             processor: Optional[str] = None, draws_for: Optional[tuple[type, tuple[bytes, ...]]] = None,
             network: Optional[Network] = None,
             let_out: Optional[Callable[[BaseException], bool]] = None) -> Played:
        """Play ``story`` against a fresh node running the handler (under ``processor``, if named).

        Unless ``seed`` is given, each play of a check has a world of its own, seeded ``FIRST_SEED``, then one
        more for each play before it: no two plays give the same keys, invoices or payment hashes, so a handler
        that remembers what it already wrote (as an idempotent one may) meets each story's payments as new.

        ``draws_for`` is ``(event kind, random byte strings)``: while handling that kind of event,
        ``get_secure_random_bytes()`` gives these first (the extremes show a range's edges).

        ``network``: the world's, if not regtest (a handler given ``network`` must use it, not name one itself).

        ``let_out``: which errors of LDK's a task or thread of your handler may let out in this story, unjudged (kept in
        ``Played.let_out``): the story made LDK refuse the call, and says what your handler did about it.

        Once the story ends, the world plays on while a task your handler spawned (or a thread it started) still works
        for an event of this play, for up to ``PLAY_ON_S``, so that what it does then is judged too: a real node goes
        on after a story's last step, and LDK lets you put off answers (a claim until its deadline, an accept until the
        request expires).
        """
        from ..sim.node_process import run_processor

        world = World(seed=FIRST_SEED + len(self.worlds) if seed is None else seed, network=network or Network.Regtest)
        self.worlds.append(world)
        recorder = Recorder(world)
        world.runtime.loop.set_task_factory(recorder.task_factory)
        world.runtime.loop.scheduling, world.runtime.loop.scheduling_while = recorder.scheduling, _HANDLING
        world.runtime.hand_over = recorder.handing_over
        world.runtime.announce_errors = False  # (the verdict tells what stopped a processor)
        world.on_crash.append(recorder.crashed)
        recorder.memory = self.memory
        if draws_for is not None:
            recorder.planned_draws = (draws_for[0], list(draws_for[1]))
        if self.recorders:
            self.recorders[-1].successor = recorder
            recorder.storages_given = self.recorders[-1].storages_given
            recorder.argument_bytes = self.recorders[-1].argument_bytes  # (the bound is the check's)
        self.recorders.append(recorder)
        me = world.add_node("learner", handler=recorder.wrap(self.handler))
        recorder.node = me
        stage = Stage(world, me)
        played = Played(name, world, stage, recorder, gone=[(p.name, h) for p in self.played for h in p.left_running])
        try:
            if processor is None:
                story(stage)
                _play_on(played)
            else:
                with one_cpu(), run_processor(me, processor):
                    story(stage)
                    stage.settle()
                    _wait_for_the_handler(played)
                    _play_on(played)
                    _wait_for_the_handler(played)
        except EventHandlerError as e:
            raise handler_error(e, played)  # noqa: B904  (its __cause__ is your error, frames trimmed)
        except TaskBlocked as e:
            raise task_blocked(e, played)  # noqa: B904  (as above)
        except ExerciseFailed:
            raise
        except Exception as e:  # (HandlerStopped is no Exception: it goes on up, to end the check)
            raise cannot_go_on(e, played) from None
        recorder.settle_task_failures()
        for kept in (recorder.thread_errors, recorder.task_errors, recorder.callback_errors):
            played.let_out += [error for _, error in kept if let_out is not None and let_out(error)]
            kept[:] = [(event, error) for event, error in kept if let_out is None or not let_out(error)]
        if recorder.thread_errors:
            raise thread_failed(played, *recorder.thread_errors[0])
        if recorder.task_errors:
            raise thread_failed(played, *recorder.task_errors[0], what="task")
        if recorder.callback_errors:
            raise thread_failed(played, *recorder.callback_errors[0], what="callback")
        _check_handled(played)
        played.left_running = list({id(h): h for h, task in recorder.tasks if not task.done()}.values())
        self.played.append(played)
        return played

    def finish(self) -> None:
        """After the rules: what a handler did that changed no outcome, but is still a mistake."""
        for played in self.played:
            _check_untouched(played)
            _check_answers(played)

    def in_progress(self) -> list[Handling | TaskStep]:
        return [h for r in self.recorders for h in r.in_progress()]

    def close(self) -> None:
        for world in self.worlds:
            world.close()
        frames = current_frames()
        for recorder in self.recorders:  # threads of yours still at work outlive no check: stopped, as the handler is
            for step in list(recorder.task_steps):
                if step.in_thread and not blocked_in_a_wait(frames.get(step.thread)):
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(step.thread),
                                                               ctypes.py_object(HandlerStopped))


#: How long (simulated seconds) a story plays on after its end while a task or thread of yours still works for one of
#: its events (``_play_on``).
PLAY_ON_S = 300


def _play_on(played: Played) -> None:
    waited = 0
    while waited < PLAY_ON_S and played.recorder.waiting():
        played.stage.settle(1)
        waited += 1
    if waited:
        played.stage.settle()  # (what the task did, claim or fail back, reaches the payer)
    played.played_on = waited


def _wait_for_the_handler(played: Played) -> None:
    """The processor awaits your handler: LDK's ``process_pending_events`` counts an event handled only once the handler
    returns, and bounds no handler's time (a write retried after a pause is fine). Once the story ends, the world plays
    on while a hand-over has not returned, for up to ``PLAY_ON_S`` on the simulated clock, so that what it does then
    (and the events LDK hands over after it) is judged too; and while an event your handler asked for again waits to
    be handed over again, for up to ``REPLAYS_ON_S`` (an answer that came late is not judged by how late it came)."""
    waited = replaying = 0
    while played.waited_for_handler + waited < PLAY_ON_S and (
            any(h.finished is None for h in played.recorder.handlings)
            or replaying < REPLAYS_ON_S and _replay_waiting(played)):
        replaying += not any(h.finished is None for h in played.recorder.handlings)
        played.stage.settle(1)
        waited += 1
    if waited:
        played.stage.settle()  # (what it did, and the events after it, reach their ends)
    played.waited_for_handler += waited


#: How long (simulated seconds) a story plays on after its end while an event your handler asked for again waits to be
#: handed over again (the processor hands it over at its next poll, 100 ms later).
REPLAYS_ON_S = 10


def _replay_waiting(played: Played) -> bool:
    """Whether the node holds an event its handler asked to be handed over again (``ReplayEvent``)."""
    node = played.me
    return node.channel_manager.replay_requested() or node.chain_monitor.replay_requested()


def _check_untouched(played: Played) -> None:
    """Changing the event you were given changes nothing, but it is a mistake worth naming."""
    for handling in played.recorder.handlings:
        if handling.given != handling.event:
            changed = _changed_fields(played, handling.event)
            raise fail(played, handling.event, "the event left as LDK gave it",
                       f"your handler changed its {', '.join(changed) or 'fields'}",
                       "events are LDK's record of what happened: read them, never change them. "
                       "Decide from the fields as they are.", note_changes=False)


def _check_handled(played: Played) -> None:
    """Every event was handled in the end: one your handler asked for every time (ReplayEvent) never was,
    and LDK hands over no event after it until it is. A fee-bump request is not held: LDK ignores what the
    handler answers it and asks again at the next block or rebroadcast (what it leads to is judged on chain)."""
    for handling in played.recorder.handled():
        if replayed(handling) and not isinstance(handling.event, Event.BumpTransaction):
            raise never_handled(played, handling.event)


def never_handled(played: Played, event: Event) -> ExerciseFailed:
    times = sum(h.event is event for h in played.recorder.handlings)
    return fail(played, event, "the event handled in the end (None returned once what failed works again)",
                f"your handler asked for it again each of the {times} times it was handed over, so it was never "
                "handled, and LDK hands over no event after it until it is",
                "return ReplayEvent() only when something failed that may work next time, such as fs_store.write "
                "raising OSError; once it works, return nothing.")


def held_back(played: Played) -> str:
    """Why later events never reached your handler, if it never returned from one (an await that never
    ends): a hint naming that event; "" if every hand-over finished."""
    stuck = next((h for h in played.recorder.handlings if h.finished is None), None)
    if stuck is None:
        return ""
    if played.waited_for_handler:  # (the processor waited for it, as LDK's does: a pause that ends is fine)
        return (f"your handler never returned from {type(stuck.event).__name__}: the processor waited "
                f"{played.waited_for_handler} simulated seconds after the story ended, and it was still waiting. LDK "
                "hands events over one at a time, so none after it reached your handler. A pause before retrying a "
                "write is fine, but never wait in the handler for something that may never happen: return "
                "ReplayEvent() and LDK hands the event over again.")
    return (f"your handler never returned from {type(stuck.event).__name__} (it is still waiting), and LDK hands "
            "events over one at a time: none after it reached your handler. Never wait in the handler for "
            "something that happens later.")


def _check_answers(played: Played) -> None:
    """LDK's handler returns ``Ok(())`` or ``Err(ReplayEvent())``: in Python, None or ``ReplayEvent()``."""
    for handling in played.recorder.handlings:
        result = handling.result
        if result is not None and not replayed(handling):
            raise fail(played, handling.event, "None (handled) or ReplayEvent() (hand it over again)",
                       f"your handler returned {result!r}",
                       "LDK's handler returns Ok(()) or Err(ReplayEvent()): in Python, return nothing, or return "
                       "ReplayEvent() when you could not finish and want the event again. Anything else means "
                       "nothing to LDK.")


def run_check(exercise: str, handler: Callable[..., Any], body: Callable[[Session], CheckResult]) -> CheckResult:
    """Run ``body`` in a thread of its own, so a handler that never returns cannot hang you."""
    session = Session(exercise, handler)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = body(session)
        except BaseException as e:  # handed to the caller's thread below
            outcome["error"] = e

    thread = threading.Thread(target=work, name=f"ldkkit-check-{exercise}", daemon=True)
    _collect_less_often()
    thread.start()
    try:
        while thread.is_alive():
            thread.join(POLL_S)
            # (no mutate: ">=" reads alike, a float of wall time is never exactly the limit; this line's other
            # changes break every check)
            overdue = [h for h in session.in_progress() if _running_for(h) > HANDLER_TIMEOUT_S]  # pragma: no mutate
            if overdue:
                stopped = _stop(thread, overdue[0])
                raise _timed_out(session, overdue[0], stopped)
    finally:
        _collect_as_before()
        if not thread.is_alive():
            session.close()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, ExerciseFailed):
            raise error
        raise internal_error(exercise, error)
    return outcome["result"]


def _collect_less_often() -> None:
    """See ``CHECK_GC_THRESHOLD``. Checks may run at once, in threads (the tests' corpus runs eight): the first to
    start sets it and sets aside what the process holds, the last to end puts back what was there before. Objects
    someone else set aside (``gc.freeze``, in your code or a library's) are left as they were, and so is all else."""
    with _COLLECTING_LOCK:
        if not _COLLECTING:
            before = gc.get_threshold()
            gc.set_threshold(max(before[0], CHECK_GC_THRESHOLD), *before[1:])
            frozen = gc.get_freeze_count() == 0
            if frozen:
                gc.freeze()
            _COLLECTING.append((before, frozen))
        _COLLECTING.append(None)


def _collect_as_before() -> None:
    with _COLLECTING_LOCK:
        _COLLECTING.pop()
        if len(_COLLECTING) == 1:
            before, frozen = _COLLECTING.pop()  # type: ignore[misc]
            gc.set_threshold(*before)
            if frozen:
                gc.unfreeze()


#: While checks run: the thresholds they found and whether they set objects aside, then one entry per check running.
_COLLECTING: list[Optional[tuple[tuple[int, ...], bool]]] = []
_COLLECTING_LOCK = threading.Lock()


def _running_for(watched: Handling | TaskStep) -> float:
    """How long your code has been running on its current event or step (0 once it has returned or paused)."""
    started = watched.wall_started  # read once: the check's thread may clear it meanwhile
    return 0.0 if started is None else time.monotonic() - started


def _stop(thread: threading.Thread, handling: Handling | TaskStep) -> bool:
    """Stop a handler that overran: raise HandlerStopped in its thread until the check ends."""
    deadline = time.monotonic() + STOP_GRACE_S
    # (how long it tries, never what it says: "or" would only try on until the deadline, "<=" a moment longer)
    while thread.is_alive() and time.monotonic() < deadline:  # pragma: no mutate
        for ident in {handling.thread, thread.ident}:
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(HandlerStopped))
        thread.join(POLL_S)
    # (work handed to another thread waiting in C for ever cannot be stopped: it is not, and the check says so)
    return not thread.is_alive() and not (isinstance(handling, TaskStep) and handling.in_thread
                                          and blocked_in_a_wait(current_frames().get(handling.thread)))


_FRAMES_LOCK = threading.Lock()


def current_frames() -> dict[int, Any]:
    """``sys._current_frames()``, with the garbage collector off meanwhile: CPython 3.11 may collect while it holds the
    lock of the list of threads, and a finalizer that lets another thread run then deadlocks the whole process
    (python/cpython#106883: a check stopping threads found every thread waiting, none running)."""
    with _FRAMES_LOCK:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return sys._current_frames()
        finally:
            if enabled:
                gc.enable()


def _timed_out(session: Session, handling: Handling | TaskStep, stopped: bool) -> ExerciseFailed:
    event = handling.event
    still = "The check stopped it." if stopped else CANNOT_STOP
    if isinstance(handling, Handling):
        what = f"your handler did not return within {HANDLER_TIMEOUT_S:g} seconds of being given"
    elif handling.in_thread:
        what = f"work your handler handed to a thread ran {HANDLER_TIMEOUT_S:g} seconds without ending, after"
    else:
        what = f"a task your handler spawned ran {HANDLER_TIMEOUT_S:g} seconds without pausing, after"
    return ExerciseFailed(
        f"{session.exercise}: {what} {type(event).__qualname__}. {still}\n  The event: {event!r}\n  Hint: {HANG_HINT}"
    )


#: What a handler that never returns is told (and a workbook the grader stopped for it).
HANG_HINT = ("a handler must return promptly: never wait in a loop for something to happen (LDK gives you another "
             "event when it does), and never call the node over and over. Work that must wait goes in a task: "
             "asyncio.get_running_loop().create_task(...).")


# --- failing well ------------------------------------------------------------------------------------


def fail(played: Played | str, event: Optional[Event], expected: str, happened: str,
         hint: str, *, scenario: str = "", note_changes: bool = True, explained: bool = False) -> ExerciseFailed:
    """A failure that names the scenario (``played``'s, or the one given) and the event, shows the path of
    events, and teaches. Unless ``explained`` (an error of yours is the cause), an event your handler left to a task
    of an earlier play is told as such (``_handed_to_a_gone_task``): the hint for a handler that did nothing would
    name another cause."""
    scenario = scenario or (played if isinstance(played, str) else played.name)
    if isinstance(played, Played) and not explained:
        hint = _handed_to_a_gone_task(played, event) or hint
    where = f" on {type(event).__qualname__}" if event is not None else ""
    lines = [f"Scenario '{scenario}'{where}:", f"  Expected: {expected}", f"  Happened: {happened}"]
    if event is not None:
        lines.append(f"  The event: {event!r}")
    if isinstance(played, Played):
        lines.append(f"  Events so far: {_path(played, event)}")
    lines.append(f"  Hint: {hint}")
    changed = _changed_fields(played, event) if isinstance(played, Played) and note_changes else []
    if changed:
        lines.append(f"  Also: your handler changed this event's {', '.join(changed)}. That changes nothing (the "
                     "check judges LDK's own copy), but events are LDK's record: read them, never change them.")
    if isinstance(played, Played) and played.recorder.memory_put_back:
        lines.append("  Note: your node crashed and came back in this scenario, and what your code kept in memory (a "
                     "set, a dict or a count of its own) came back as it was when the check began, as a restarted "
                     "process loads it: only what is on disk outlives a crash.")
    return ExerciseFailed("\n".join(lines))


#: The events a handler answers with a call (to the node, its disk, its sweeper): one handled with none, in a play
#: after one whose task for such an event still worked at its end, was handed to that task (``_handed_to_a_gone_task``).
ANSWERED = (Event.OpenChannelRequest, Event.FundingGenerationReady, Event.PaymentClaimable, Event.PaymentClaimed,
            Event.PaymentSent, Event.PaymentFailed, Event.PendingHTLCsForwardable, Event.SpendableOutputs,
            Event.BumpTransaction)


def _handed_to_a_gone_task(played: Played, event: Optional[Event]) -> str:
    """The hint for an event (``event``, or any of the play's if None) your handler left to a task spawned in an
    earlier play: one of the same kind still at work when that play ended, where this event got no call at all, from
    the handler or anything it spawned. "" if there is none. Each play is a new node with an event loop of its own (the
    grader's learner process cancels the old node's tasks): the earlier task never runs again, so what it is handed
    is never done. A real node runs one loop for its life; the check plays many nodes against one handler."""
    if not played.gone:
        return ""
    running = {id(h) for h, task in played.recorder.tasks if not task.done()}
    ours = {id(h) for h in played.recorder.handlings}
    # Kinds this play's own tasks or threads answer: a worker of this play, started with an earlier event of the kind,
    # answers this one under that event's hand-over (a worker started again per loop), so no call names this hand-over.
    worked = {type(h.event) for h, _ in played.recorder.tasks} | {
        type(c.handling.event) for c in played.recorder.calls if not c.during and c.handling is not None
        and id(c.handling) in ours}
    for handling in played.recorder.handlings:
        kind = type(handling.event)
        if (event is not None and handling.event is not event) or kind not in ANSWERED or handling.finished is None \
                or replayed(handling) or id(handling) in running or played.recorder.calls_for(handling) \
                or kind in worked:
            continue
        earlier = next(((name, h) for name, h in played.gone if type(h.event) is kind), None)
        if earlier is not None:
            a = "an" if kind.__name__[0] in "AEIOU" else "a"
            which = "this" if event is not None else f"event {_number(played, handling)}, {a}"
            return (f"your handler made no call for {which} {kind.__name__}: it handed it to a task spawned in an "
                    f"earlier play of this check (scenario '{earlier[0]}', while handling {a} {kind.__name__}), "
                    "and that task no longer runs. Each play is a new node with an event loop of its own, and a "
                    "task runs only on its node's loop (a real node runs one loop for its life, so one long-lived "
                    "worker is sound in LDK; the check plays many nodes). Answer in the handler or in a task spawned "
                    "for this event; or start the worker again when it is not running on the current loop "
                    "(task.done() or task.get_loop() is not asyncio.get_running_loop()), handing it this node's "
                    "components with each event.")
    return ""


def unawaited_hint(played: Played, event: Optional[Event]) -> str:
    """The hint for an event your handler did nothing for, having called an async function without await while it
    handled it (``Handling.unawaited``): that function's code never ran. "" if it called none."""
    names = [name for h in played.recorder.handlings if h.event is event for name in h.unawaited]
    if not names:
        return ""
    name = names[0].split(".")[-1]
    return (f"your handler called {name}(...) without await while it handled this event, so none of its code ran: "
            "calling an async function only makes a coroutine (Python warns that it 'was never awaited'). Await it, "
            f"await {name}(...) in an async def handler, or spawn it: asyncio.get_running_loop().create_task(...).")


def _number(played: Played, handling: Handling) -> int:
    """Which event of the play (counted as the path of events shows them, a replay with its event) ``handling`` was."""
    events: list[int] = []
    for h in played.recorder.handlings:
        if not events or events[-1] != id(h.event):
            events.append(id(h.event))
        if h is handling:
            break
    return len(events)


def _changed_fields(played: Played, event: Optional[Event]) -> list[str]:
    for handling in played.recorder.handlings:
        if handling.event is event and handling.given != handling.event:
            return [f.name for f in dataclasses.fields(event)
                    if getattr(event, f.name) != getattr(handling.given, f.name)]
    return []


def _path(played: Played, upto: Optional[Event]) -> str:
    """The events handed over, up to ``upto`` (its handling that counts, marked); an event handed over
    several times in a row (replays asked for) shows once, with the count: ``PaymentClaimed ×3``."""
    runs: list[list[Any]] = []  # [event, times handed over in a row]
    handed = [h for h in played.recorder.handlings if h.event is upto]
    mark = _counted(handed) if handed else None  # not a replay asked for
    for handling in played.recorder.handlings:
        if runs and runs[-1][0] is handling.event:
            runs[-1][1] += 1
        else:
            runs.append([handling.event, 1])
        if handling is mark:
            break
    names = [type(event).__name__ + (f" ×{times}" if times > 1 else "") for event, times in runs]
    if mark is not None:
        names[-1] = f"[{names[-1]}]"
    if len(names) > 14:
        names = names[:3] + ["..."] + names[-10:]
    return " → ".join(names) or "none"


#: Specific hints for errors a handler raises, by what the error says.
_ERROR_HINTS: list[tuple[Callable[[BaseException, Event], bool], str]] = []


def error_hint(matches: Callable[[BaseException, Event], bool]) -> Callable[[Callable[..., str]], Any]:
    def register(hint: Callable[..., str]) -> Any:
        _ERROR_HINTS.append((matches, hint))
        return hint

    return register


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or during, as Python chains them."""
    seen: list[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def handler_error(error: EventHandlerError, played: Played) -> ExerciseFailed:
    """Your handler raised: say so, name the event, teach if we can, and keep only your frames.

    (A handler the check stopped, with HandlerStopped, comes here too; but the check has already
    failed it as overdue, and what is said here is never read.)"""
    cause = error.error
    if isinstance(cause, NeverHandled):
        return never_handled(played, cause.event)
    if isinstance(cause, LearnerExit):
        cause = cause.error
    hint = "read the traceback above: its last lines point at the line of your handler that failed."
    for matches, teach in _ERROR_HINTS:
        try:
            if matches(cause, error.event):
                hint = teach(cause, error.event, played)
                break
        except Exception:  # a hint that cannot be worked out falls back to the general one
            continue
    happened = f"it raised {type(cause).__name__}: {cause}"
    if isinstance(cause, ReturnedUnawaited):  # (not raised: returned, and made an error of)
        happened = cause.happened
    if isinstance(cause, BlockingCall):
        happened = f"{cause}" if cause.caught else f"it did not return: {cause}, and the check stopped it"
    failure = fail(played, error.event, "your handler to return promptly" if isinstance(cause, BlockingCall)
                   else "your handler to return normally", happened, hint, explained=True)
    failure.__cause__ = trimmed(cause)
    return failure


def task_blocked(error: TaskBlocked, played: Played) -> ExerciseFailed:
    """A task your handler spawned blocked the node: say so, name the event that spawned it, keep your frames."""
    failure = fail(played, error.event, "the tasks your handler spawns to wait with await, never blocking the node",
                   f"a task it spawned {str(error).removeprefix('it ')}, and the check stopped it",
                   f"a task runs on the node's own loop: {error.error.call or 'time.sleep()'} there stops the whole "
                   "node, as in the handler. Await asyncio.sleep(...) (or asyncio's own Event or Queue) instead: the "
                   "task pauses, and the node goes on meanwhile.", explained=True)
    failure.__cause__ = trimmed(error.error)
    return failure


def thread_failed(played: Played, event: Event, error: BaseException, what: str = "thread") -> ExerciseFailed:
    """A thread your handler started (or a task it spawned, a callback it scheduled: ``what``) raised: say so, with the
    event whose handling started it."""
    started = {"thread": "started", "task": "spawned"}.get(what, "scheduled")
    failure = fail(played, event, f"the {what} your handler {started} to end normally",
                   f"it raised {type(error).__name__}: {error}",
                   f"read the traceback above: its last lines point at the line that failed. An error in a {what} "
                   "reaches no one, so the node never learns that the work was not done.", explained=True)
    failure.__cause__ = trimmed(error)
    return failure


#: The ChannelManager's calls that close a channel (a force_close_* of a request's temporary_channel_id rejects it).
CLOSING = ("close_channel", "close_channel_with_feerate_and_script", "force_close_broadcasting_latest_txn",
           "force_close_without_broadcasting_txn", "force_close_all_channels_broadcasting_latest_txn",
           "force_close_all_channels_without_broadcasting_txn")


def cannot_go_on(error: BaseException, played: Played) -> ExerciseFailed:
    closed = closed_a_channel(played)
    return fail(played, None, "the scenario played to its end",
                f"it could not go on: {type(error).__name__}: {error}",
                f"{closed}, and the story needed it: close a channel only when the workbook asks you to." if closed
                else "this usually means an earlier event was not handled (a channel never accepted or funded, so "
                "there is no route for a payment). Run the earlier checks first.")


def closed_a_channel(played: Played) -> str:
    """"your handler closed a channel (the call, the event it handled)", if it closed one (a rejected request's
    temporary channel is none); "" if not."""
    closing = next((c for c in played.recorder.calls if c.error is None and c.name.startswith("channel_manager.")
                    and c.name.split(".")[-1] in CLOSING and c.arguments.get("channel_id") not in _requests(played)),
                   None)
    if closing is None:
        return ""
    arm = f" while it handled {type(closing.handling.event).__name__}" if closing.handling else ""
    return f"your handler closed a channel (channel_manager.{closing.name.split('.')[-1]}{arm})"


def _requests(played: Played) -> set[Any]:
    """The temporary channel ids of the requests the story made (a rejection names one: no channel closed)."""
    return {e.temporary_channel_id for e in played.events(Event.OpenChannelRequest)}


def internal_error(exercise: str, error: BaseException) -> ExerciseFailed:
    """The check itself met something it did not foresee: never a crash, always a verdict with your frames."""
    failure = ExerciseFailed(
        f"{exercise}: the check could not judge your handler: {type(error).__name__}: {error}\n"
        "  Hint: this is usually a value of an unexpected type stored or passed by your handler (the traceback "
        "above shows where, if it was your code). If your handler looks right, tell your instructor: it may be "
        "a bug in the kit."
    )
    failure.__cause__ = trimmed(error)
    return failure


def trimmed(error: BaseException) -> BaseException:
    """``error`` with only your frames in its traceback (the kit's own are noise to you)."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(KIT_DIR) and not filename.startswith(LIBRARY_DIRS):
            frames.append(tb)
        tb = tb.tb_next
    new: Optional[types.TracebackType] = None
    for tb in reversed(frames):
        new = types.TracebackType(new, tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
    if error.__context__ is not None and error.__cause__ is None:
        error.__suppress_context__ = True  # "During handling of the above exception..." from the kit's code
    return error.with_traceback(new)
