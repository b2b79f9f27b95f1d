"""What every check shares: play a story against your handler, record what it did, judge it.

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

import contextvars
import ctypes
import dataclasses
import functools
import gc
import inspect
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ..events import Event, ReplayEvent
from ..events.queue import EventHandlerError
from ..node import HANDLER_PARAMETERS, Node
from ..scenarios import Stage
from ..sim.world import World
from .watch import (
    KIT_DIR,
    LIBRARY_DIRS,
    BlockingCall,
    HandlerStopped,
    Stepped,
    TaskStep,
    learner_on_stack,
    no_sleeping,
    sleeping_allowed,
)

#: How long a handler may take on one event, from the moment it is handed over.
HANDLER_TIMEOUT_S = 10.0
#: How often the check looks at a handler's running time, and at whether a handler it stopped has ended.
POLL_S = 0.05
#: How long the check goes on stopping a handler that overran before it says it could not.
STOP_GRACE_S = 2.0
#: While a check runs, Python's youngest generation is collected after this many new objects, not 700: a check
#: makes millions, kept a moment, and each collection promotes some, until a full collection of everything the
#: kernel holds (a quarter of a second with pandas loaded) stops the check. Restored when the check ends.
CHECK_GC_THRESHOLD = 10_000
#: The workshop's policy: accept a channel exactly when it is strictly over this.
POLICY_MIN_EXCLUSIVE_SATS = 5_000_000
#: The largest channel without "wumbo" (option_support_large_channel).
LARGEST_NON_WUMBO_SATS = (1 << 24) - 1



class ExerciseFailed(AssertionError):
    """A check found something your handler should do differently; the message says what."""


#: More calls than this on the node for one event is a loop that waits for something: stopped, deterministically.
MAX_CALLS_PER_EVENT = 10_000


#: An event your handler asked for again (ReplayEvent) this many times in a row will not be handled: stopped.
MAX_REPLAYS = 100


class NeverHandled(Exception):
    """Raised by the check, not by your handler, instead of handing over an event it asked for again
    :data:`MAX_REPLAYS` times in a row: LDK would go on handing it over, and nothing after it, for ever."""

    def __init__(self, event: Event) -> None:
        super().__init__(type(event).__name__)
        self.event = event


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


# --- recording -----------------------------------------------------------------------------------


@dataclass(eq=False)
class Handling:
    """One hand-over of one event to your handler, and what came of it."""

    event: Event  # the check's own copy: what is judged
    given: Event  # the copy your handler was given
    started: float  # simulation seconds
    #: time.monotonic() since your code started running on this event, None while it waits (on the
    #: simulation's clock, between the awaits of an async handler): the hang limit counts only running time.
    wall_started: Optional[float]
    thread: int
    finished: Optional[float] = None
    result: Any = None
    calls: int = 0
    stored: dict[str, Optional[bytes]] = field(default_factory=dict)  # payment records on disk afterwards


@dataclass
class Call:
    """One call your code made on a component: its arguments bound by name, and its context."""

    name: str  # e.g. "channel_manager.accept_inbound_channel"
    arguments: dict[str, Any]
    handling: Optional[Handling]  # the hand-over it was made under (tasks spawned there keep it)
    during: bool  # made before the handler returned (False: from a task it spawned, later)
    at: float  # simulation seconds
    error: Optional[BaseException] = None
    returned: Any = None

    def __getitem__(self, argument: str) -> Any:
        return self.arguments[argument]


_HANDLING: contextvars.ContextVar[Optional[Handling]] = contextvars.ContextVar("ldkkit_handling", default=None)
#: Components whose calls are recorded; the payment storages and ``network`` are handed over as they are.
_RECORDED = ("channel_manager", "bitcoind_client", "network_graph", "keys_manager", "bump_tx_event_handler",
             "peer_manager", "fs_store", "output_sweeper")
#: Payment records a check reads back from disk after each hand-over.
STORED_KEYS = ("inbound_payments", "outbound_payments")


class _Recorded:
    """A component as your handler sees it: every method call is recorded, then passed on."""

    def __init__(self, name: str, component: Any, recorder: Recorder) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_component", component)
        object.__setattr__(self, "_recorder", recorder)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._component, attr)
        if attr.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        return self._recorder.recorded(self._name, attr, value)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._component, attr, value)

    def __repr__(self) -> str:
        return repr(self._component)


class Recorder:
    """Everything one learner node's handler was given and did, across restarts."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.handlings: list[Handling] = []
        self.calls: list[Call] = []
        self._recordings: dict[tuple[Any, ...], Callable[..., Any]] = {}  # see ``recorded``
        self.random_draws: list[bytes] = []
        #: Every transaction broadcast in the world: (transaction, whether your code was on the stack).
        self.broadcasts: list[tuple[Any, bool]] = []
        self.node: Optional[Node] = None
        self.planned_draws: Optional[tuple[type, list[bytes]]] = None
        self.task_steps: list[TaskStep] = []
        self._replays: dict[int, int] = {}  # id(event): how many times your handler asked for it again
        chain_broadcast = world.chain.broadcast

        def broadcast(tx: Any) -> Any:
            self.broadcasts.append((tx, learner_on_stack()))
            return chain_broadcast(tx)

        world.chain.broadcast = broadcast  # type: ignore[method-assign]

    # What the world calls: the twelve-parameter handler, wrapping yours.
    def wrap(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def handle_ldk_events(*args: Any) -> Any:
            components, event = args[:-1], args[-1]
            if self._replays.get(id(event), 0) >= MAX_REPLAYS:
                raise NeverHandled(event)
            given = Event.decode(event.encode())
            proxies = [self._proxy(name, c) for name, c in zip(HANDLER_PARAMETERS, components, strict=True)]
            handling = Handling(event, given, self.world.clock.now(), time.monotonic(), threading.get_ident())
            self.handlings.append(handling)
            token = _HANDLING.set(handling)
            try:
                with no_sleeping():
                    result = handler(*proxies, given)
            except (KeyboardInterrupt, SystemExit) as e:  # from your code, not from the user: an error like any
                raise LearnerExit(e) from e
            except BaseException as e:
                self._finish(handling, e if isinstance(e, ReplayEvent) else None)  # raising ReplayEvent asks too
                raise
            finally:
                _HANDLING.reset(token)
                handling.wall_started = None
            if inspect.isawaitable(result):
                return self._awaited(handling, result)
            self._finish(handling, result)
            return result

        return handle_ldk_events

    async def _awaited(self, handling: Handling, awaitable: Any) -> Any:
        token = _HANDLING.set(handling)
        try:
            result = await Stepped(awaitable, handling)
        except (KeyboardInterrupt, SystemExit) as e:
            raise LearnerExit(e) from e
        except BaseException as e:
            self._finish(handling, e if isinstance(e, ReplayEvent) else None)
            raise
        finally:
            _HANDLING.reset(token)
        self._finish(handling, result)
        return result

    def _finish(self, handling: Handling, result: Any) -> None:
        handling.finished = self.world.clock.now()
        handling.result = result
        if replayed(handling):  # (an event handled is never handed over again: no count to reset)
            self._replays[id(handling.event)] = self._replays.get(id(handling.event), 0) + 1
        node = self.node
        if node is not None:
            handling.stored = {key: _read(node, key) for key in STORED_KEYS}

    def _proxy(self, name: str, component: Any) -> Any:
        return _Recorded(name, component, self) if name in _RECORDED else component

    def recorded(self, component: str, attr: str, method: Callable[..., Any]) -> Callable[..., Any]:
        """``recording`` of ``component.attr``, made once per method: a handler reaches for its components' methods
        on every event. A method replaced meanwhile (``fs_store.write = ...``) is a new one, recorded anew."""
        # (the wrapper holds the method, so the ids in its key stay its own)
        key = (component, attr, id(getattr(method, "__func__", method)), id(getattr(method, "__self__", None)))
        made = self._recordings.get(key)
        if made is None:
            made = self._recordings[key] = self.recording(f"{component}.{attr}", method)
        return made

    def recording(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        signature = _signature(method)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs) if signature else None
            except TypeError:
                return method(*args, **kwargs)  # Python's own TypeError, as the component would raise it
            if bound is not None:
                bound.apply_defaults()
            handling = _HANDLING.get()
            if handling is not None and handling.finished is None:
                handling.calls += 1
                if handling.calls > MAX_CALLS_PER_EVENT:
                    raise BlockingCall(f"it called the node {MAX_CALLS_PER_EVENT:,} times while handling one event")
            record = Call(name, dict(bound.arguments) if bound else {"args": args, **kwargs}, handling,
                          handling is not None and handling.finished is None, self.world.clock.now())
            self.calls.append(record)
            with sleeping_allowed():
                try:
                    record.returned = method(*args, **kwargs)
                except BaseException as e:
                    record.error = e
                    raise
            if name == "keys_manager.get_secure_random_bytes":
                record.returned = self._draw(handling, record.returned)
                self.random_draws.append(record.returned)
            return record.returned

        return call

    def _draw(self, handling: Optional[Handling], drawn: bytes) -> bytes:
        plan = self.planned_draws
        if plan is not None and handling is not None and isinstance(handling.event, plan[0]) and plan[1]:
            return plan[1].pop(0)
        return drawn

    # --- questions a check asks -------------------------------------------------------------

    def handled(self, kind: type = Event) -> list[Handling]:
        """For each event of ``kind`` given to your handler, in order, the handling that counts (``handling_of``)."""
        by_event: dict[int, list[Handling]] = {}
        for h in self.handlings:
            if isinstance(h.event, kind):
                by_event.setdefault(id(h.event), []).append(h)
        return [_counted(handlings) for handlings in by_event.values()]

    def calls_for(self, handling: Handling, name: Optional[str] = None) -> list[Call]:
        return [c for c in self.calls if c.handling is handling and (name is None or c.name == name)]

    def calls_to(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def handling_of(self, event: Event) -> Handling:
        """The handling of ``event`` that counts: the first your handler did not answer with ``ReplayEvent``
        (an event asked for again comes again, and is judged then), or its last if it asked every time."""
        return _counted([h for h in self.handlings if h.event is event])

    def in_progress(self) -> list[Handling | TaskStep]:
        """Hand-overs not yet returned from (one waiting on the simulation's clock counts as running for no
        time), and the steps of spawned tasks running now."""
        return [h for h in self.handlings if h.finished is None] + list(self.task_steps)

    def task_factory(self, loop: Any, coro: Any, **kwargs: Any) -> Any:
        """Tasks your code spawns while handling an event run step by step, watched like the handler."""
        import asyncio

        handling = _HANDLING.get()
        if handling is not None and inspect.iscoroutine(coro):
            yours = coro
            task = asyncio.Task(self._spawned(yours, handling), loop=loop, **kwargs)
            # Cancelled before it ran (the story ended first), your coroutine is closed here, so Python
            # does not warn that it "was never awaited"; one that ran to its end is closed already.
            task.add_done_callback(lambda _: yours.close())
            return task
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def _spawned(self, coro: Any, handling: Handling) -> Any:
        try:
            return await Stepped(coro, handling, self.task_steps)
        except BlockingCall as e:  # the story meets it later, from the loop: it is told with the event that spawned it
            raise TaskBlocked(handling.event, e) from e


def _signature(method: Callable[..., Any]) -> Optional[inspect.Signature]:
    """``inspect.signature(method)``, or None if it has none. A method's is the same on every instance, and every
    call a handler makes asks for one: it is worked out once per function."""
    function = getattr(method, "__func__", None)
    if function is None:
        return _signature_of(method)
    if function not in _METHOD_SIGNATURES:
        _METHOD_SIGNATURES[function] = _signature_of(method)
    return _METHOD_SIGNATURES[function]


def _signature_of(method: Callable[..., Any]) -> Optional[inspect.Signature]:
    try:
        return inspect.signature(method)
    except (TypeError, ValueError):
        return None


_METHOD_SIGNATURES: dict[Callable[..., Any], Optional[inspect.Signature]] = {}


class TaskBlocked(Exception):
    """A task your handler spawned called ``time.sleep`` (:class:`BlockingCall`), raised where the story meets it."""

    def __init__(self, event: Event, error: BlockingCall) -> None:
        super().__init__(str(error))
        self.event = event
        self.error = error


class LearnerExit(Exception):
    """Your handler raised ``KeyboardInterrupt`` or ``SystemExit``: reported like any error it raises."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}({error})")
        self.error = error


def _read(node: Node, key: str) -> Optional[bytes]:
    try:
        return node.fs_store.read("", "", key)
    except (OSError, KeyError, ValueError):
        return None


# --- playing stories -------------------------------------------------------------------------------


@dataclass
class Played:
    """One story played: the world afterwards, the learner's node, and what its handler did."""

    name: str
    world: World
    stage: Stage
    recorder: Recorder

    @property
    def me(self) -> Node:
        return self.stage.me

    def events(self, kind: type = Event) -> list[Event]:
        """The check's own copies of the events your handler was given, in order, each once (not its replays)."""
        return [h.event for h in self.recorder.handled(kind)]

    def handled(self, kind: type = Event) -> list[Handling]:
        """Each event's handling that counts, in order (see :meth:`Recorder.handling_of`)."""
        return self.recorder.handled(kind)


class Session:
    """One run of ``check``: the stories it plays against one handler, watched for hangs."""

    def __init__(self, exercise: str, handler: Callable[..., Any]) -> None:
        self.exercise = exercise
        self.handler = handler
        self.recorders: list[Recorder] = []
        self.worlds: list[World] = []
        self.played: list[Played] = []

    def play(self, name: str, story: Callable[[Stage], None], *, seed: int = 17,
             processor: Optional[str] = None, draws_for: Optional[tuple[type, tuple[bytes, ...]]] = None) -> Played:
        """Play ``story`` against a fresh node running the handler (under ``processor``, if named).

        ``draws_for`` is ``(event kind, random byte strings)``: while handling that kind of event,
        ``get_secure_random_bytes()`` gives these first (the extremes show a range's edges).
        """
        from ..background_processor import run_processor

        world = World(seed=seed)
        self.worlds.append(world)
        recorder = Recorder(world)
        world.runtime.loop.set_task_factory(recorder.task_factory)
        if draws_for is not None:
            recorder.planned_draws = (draws_for[0], list(draws_for[1]))
        self.recorders.append(recorder)
        me = world.add_node("learner", handler=recorder.wrap(self.handler))
        recorder.node = me
        stage = Stage(world, me)
        played = Played(name, world, stage, recorder)
        try:
            if processor is None:
                story(stage)
            else:
                with run_processor(me, processor):
                    story(stage)
                    stage.settle()
        except EventHandlerError as e:
            raise handler_error(e, played)  # noqa: B904  (its __cause__ is your error, frames trimmed)
        except TaskBlocked as e:
            raise task_blocked(e, played)  # noqa: B904  (as above)
        except ExerciseFailed:
            raise
        except Exception as e:  # (HandlerStopped is no Exception: it goes on up, to end the check)
            raise cannot_go_on(e, played) from None
        _check_handled(played)
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


def _check_untouched(played: Played) -> None:
    """Changing the event you were given changes nothing, but it is a mistake worth naming."""
    for handling in played.recorder.handlings:
        if handling.given != handling.event:
            changed = _changed_fields(played, handling.event)
            raise fail(played, handling.event, "the event left as LDK gave it",
                       f"your handler changed its {', '.join(changed) or 'fields'}",
                       "events are LDK's record of what happened: read them, never change them. "
                       "Decide from the fields as they are.", note_changes=False)


def _counted(handlings: list[Handling]) -> Handling:
    """Of one event's hand-overs, the one that counts (see ``Recorder.handling_of``)."""
    return next((h for h in handlings if not replayed(h)), handlings[-1])


def replayed(handling: Handling) -> bool:
    """Whether your handler asked for this event again (returned or raised ``ReplayEvent``)."""
    return isinstance(handling.result, ReplayEvent) or handling.result is ReplayEvent


def _check_handled(played: Played) -> None:
    """Every event was handled in the end: one your handler asked for every time (ReplayEvent) never was,
    and LDK hands over no event after it until it is."""
    for handling in played.recorder.handled():
        if replayed(handling):
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
    start sets it, the last to end puts back what was there before."""
    with _COLLECTING_LOCK:
        if not _COLLECTING:
            before = gc.get_threshold()
            gc.set_threshold(max(before[0], CHECK_GC_THRESHOLD), *before[1:])
            _COLLECTING.append(before)
        _COLLECTING.append(None)


def _collect_as_before() -> None:
    with _COLLECTING_LOCK:
        _COLLECTING.pop()
        if len(_COLLECTING) == 1:
            gc.set_threshold(*_COLLECTING.pop())


#: While checks run: the thresholds they found, then one entry per check running.
_COLLECTING: list[Optional[tuple[int, ...]]] = []
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
    return not thread.is_alive()


def _timed_out(session: Session, handling: Handling | TaskStep, stopped: bool) -> ExerciseFailed:
    event = handling.event
    still = ("The check stopped it." if stopped else
             "It is still running, inside a call Python cannot interrupt: restart the kernel "
             "(Kernel → Restart) once you have fixed it.")
    what = (f"your handler did not return within {HANDLER_TIMEOUT_S:g} seconds of being given"
            if isinstance(handling, Handling) else
            f"a task your handler spawned ran {HANDLER_TIMEOUT_S:g} seconds without pausing, after")
    return ExerciseFailed(
        f"{session.exercise}: {what} {type(event).__qualname__}. {still}\n  The event: {event!r}\n"
        "  Hint: a handler must return promptly: never wait in a loop for something to happen (LDK gives you "
        "another event when it does), and never call the node over and over. Work that must wait goes in a "
        "task: asyncio.get_running_loop().create_task(...)."
    )


# --- failing well ------------------------------------------------------------------------------------


def fail(played: Played | str, event: Optional[Event], expected: str, happened: str,
         hint: str, *, scenario: str = "", note_changes: bool = True) -> ExerciseFailed:
    """A failure that names the scenario (``played``'s, or the one given) and the event, shows the path of
    events, and teaches."""
    scenario = scenario or (played if isinstance(played, str) else played.name)
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
    return ExerciseFailed("\n".join(lines))


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
    if isinstance(cause, BlockingCall):
        happened = f"it did not return: {cause}, and the check stopped it"
    failure = fail(played, error.event, "your handler to return promptly" if isinstance(cause, BlockingCall)
                   else "your handler to return normally", happened, hint)
    failure.__cause__ = trimmed(cause)
    return failure


def task_blocked(error: TaskBlocked, played: Played) -> ExerciseFailed:
    """A task your handler spawned blocked the node: say so, name the event that spawned it, keep your frames."""
    failure = fail(played, error.event, "the tasks your handler spawns to wait with await, never blocking the node",
                   f"a task it spawned {str(error).removeprefix('it ')}, and the check stopped it",
                   "a task runs on the node's own loop: time.sleep() there stops the whole node, as in the handler. "
                   "Await asyncio.sleep(...) instead: the task pauses, and the node goes on meanwhile.")
    failure.__cause__ = trimmed(error.error)
    return failure


def cannot_go_on(error: BaseException, played: Played) -> ExerciseFailed:
    return fail(played, None, "the scenario played to its end",
                f"it could not go on: {type(error).__name__}: {error}",
                "this usually means an earlier event was not handled (a channel never accepted or funded, so "
                "there is no route for a payment). Run the earlier checks first.")


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


# --- payment records on disk ---------------------------------------------------------------------------


def stored_record(played: Played, handling: Handling, key: str, payment_key: Any) -> Any:
    """The record your handler left on disk for one payment, right after it returned; fails if unreadable."""
    from ..payment_storage import InboundPaymentInfoStorage, OutboundPaymentInfoStorage

    storage = {"inbound_payments": InboundPaymentInfoStorage, "outbound_payments": OutboundPaymentInfoStorage}[key]
    data = handling.stored.get(key)
    event = handling.event
    if data is None:
        writes = played.recorder.calls_for(handling, "fs_store.write")
        written = sorted({c["key"] for c in writes if "key" in c.arguments})
        raise fail(played, event, f"{key} persisted before your handler returned: fs_store.write(\"\", \"\", "
                   f"\"{key}\", {key}.encode())",
                   f"nothing is stored under '{key}'" + (f"; you wrote under {written}" if written else ""),
                   f"ldk-sample keeps these records under the key '{key}'. LDK forgets an event once your handler "
                   "returns, so write what it changed before you return.")
    try:
        payments = storage.decode(data).payments
    except Exception as e:
        status_hint = "HTLCStatus" in str(e)
        raise fail(played, event, f"{key} stored as {key}.encode()", f"what is stored cannot be read back: {e}",
                   "statuses are HTLCStatus members (HTLCStatus.Succeeded), not strings." if status_hint else
                   f"store exactly the bytes {key}.encode() returns.") from None
    return payments.get(payment_key)
