"""What your handler was given and what it did, recorded for the check: each hand-over of an event, each call
on a component (passed on unchanged), the tasks it spawned, and the payment records on disk afterwards.

The check judges outcomes from its own copy of the events and from the world; the recording explains a failure,
and catches what no outcome shows (a loop that calls the node for ever, an event asked for again for ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from ..events import Event, ReplayEvent
from ..node import HANDLER_PARAMETERS, Node
from ..sim.world import World
from . import own_threads  # noqa: F401  (threads your code starts, and pools it submits to, counted in checks)
from .memory import Memory
from .task_failures import error_of, settled
from .watch import (
    CLOCK,
    DROPPED,
    HANDED_OVER,
    Alarm,
    BlockingCall,
    Counted,
    Later,
    Stepped,
    TaskStep,
    counted_here,
    just_built,
    learner_on_stack,
    no_sleeping,
    refused_in,
    scheduled_by_you,
    sleeping_allowed,
    sleeping_on,
    watch_built,
)

#: More calls than this on the node for one event is a loop that waits for something: stopped, deterministically.
MAX_CALLS_PER_EVENT = 10_000
#: What the calls of a check (all its plays) may hand the node in text and bytes, all told: a record is a few hundred
#: bytes, and the check keeps every call's arguments to judge them (megabytes a call, in a loop, took the grader's
#: memory by the gigabyte; 64 KiB a call, as fast). Beyond it, a call handing any is refused.
MAX_ARGUMENT_BYTES = 64 * 2**20


#: An event your handler asked for again (ReplayEvent) this many times in a row will not be handled: stopped.
MAX_REPLAYS = 100


class NeverHandled(Exception):
    """Raised by the check, not by your handler, instead of handing over an event it asked for again
    :data:`MAX_REPLAYS` times in a row: LDK would go on handing it over, and nothing after it, for ever."""

    def __init__(self, event: Event) -> None:
        super().__init__(type(event).__name__)
        self.event = event


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
    #: What was in the OutputSweeper's care when your handler returned from a ``SpendableOutputs`` (LDK forgets the
    #: event then), and how many transactions had been broadcast in the world by then.
    held_by_sweeper: frozenset[Any] = frozenset()
    broadcasts: int = 0
    order: int = field(default_factory=lambda: next(_ORDER))  # when it began, among hand-overs and calls
    #: Set while no step of your handler's code runs on it (it awaits, or returned and what it stored was read): work
    #: it handed to another thread acts only then (``_after_the_step``), so what it did by then is all its own.
    paused: threading.Event = field(default_factory=threading.Event, repr=False)
    #: The async functions your code called without await while handling it (``watch.DROPPED``): none of them ran.
    unawaited: list[str] = field(default_factory=list)
    #: Where the handler's own code runs: its thread, and the id of the task running it (0 outside a loop). An id, not
    #: the task: a hand-over kept (in a thread's context) must not keep its world alive.
    own: tuple[int, int] = (0, 0)

    def step_ended(self) -> None:
        self.paused.set()

    def step_began(self) -> None:
        self.paused.clear()


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
    order: int = field(default_factory=lambda: next(_ORDER))  # when it was made, among hand-overs and calls
    #: Made by the handler's own code, as it ran (not by a task, thread or callback it started, even meanwhile).
    by_handler: bool = False

    def __getitem__(self, argument: str) -> Any:
        return self.arguments[argument]


_HANDLING: contextvars.ContextVar[Optional[Handling]] = contextvars.ContextVar("ldkkit_handling", default=None)
DROPPED.append(lambda name: (h := _HANDLING.get()) and len(h.unawaited) < 8 and h.unawaited.append(name))
#: For a call the grader's learner process made: whether the handler's own code made it, as that process tells (the
#: grader cannot see its tasks and threads); None for a call made here, which ``_running_here`` tells.
CALLED_BY_HANDLER: contextvars.ContextVar[Optional[bool]] = contextvars.ContextVar("ldkkit_by_handler", default=None)
#: The recorder of the hand-over in progress (with ``_HANDLING``): threads your code starts meanwhile are its jobs.
_RECORDING: contextvars.ContextVar[Optional[Recorder]] = contextvars.ContextVar("ldkkit_recording", default=None)
#: One count for hand-overs and calls, so that which came first is known even within one simulated instant.
_ORDER = itertools.count()
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
        # Kept from an earlier play (``Recorder.successor``), or from before your node restarted: it stands for the
        # node handed over to now, as in a real node, whose components are the same for its process's life (a kept
        # one is gone with the memory that kept it), and as the grader's stand-ins do.
        now = self._recorder.latest()
        component = dict(now.components).get(self._name)
        if component is not None and component is not self._component:
            return getattr(now._proxy(self._name, component), attr)
        value = getattr(self._component, attr)
        if attr.startswith("_") or isinstance(value, type):
            return value
        if not callable(value):  # another of your components, reached through this one: recorded as itself
            name = next((n for n, c in self._recorder.components if c is value), None)  # (peer_manager.channel_manager)
            return value if name is None else self._recorder._proxy(name, value)
        return self._recorder.recorded(self._name, attr, value)

    def __setattr__(self, attr: str, value: Any) -> None:
        # As the grader's stand-in refuses it (sandbox.child.Remote): a component is the node's, not your handler's
        # to change (a method replaced there would be judged, or would judge, in the node's place).
        raise AttributeError(f"{self._name} cannot be changed from a handler")

    def __repr__(self) -> str:
        return repr(self._component)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # (``isinstance(channel_manager, ChannelManager)`` holds, as in a real node)
        return type(self._component)


def _text_bytes(values: tuple[Any, ...]) -> int:
    """The text and bytes arguments hold, in lists, tuples, sets and dicts too (a list of megabytes of bytes is kept
    as they are). Past ``_LOOKED_AT`` items, what is left counts as more than any bound."""
    size, todo, looked = 0, list(values), 0
    while todo:
        value = todo.pop()
        looked += 1
        if looked > _LOOKED_AT:
            return MAX_ARGUMENT_BYTES + 1
        if isinstance(value, (str, bytes, bytearray, memoryview)):
            size += len(value)
        elif isinstance(value, dict):
            todo += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            todo += value
    return size


#: How many values ``_text_bytes`` looks at in one call's arguments (a record, a list of them: far fewer).
_LOOKED_AT = 100_000


class Recorder:
    """Everything one learner node's handler was given and did, across restarts."""

    memory: Optional[Memory] = None  # your handler's, put back as it was when your node crashes (``memory.Memory``)
    memory_put_back = False  # (and something in it had changed then: a failure says so)

    def __init__(self, world: World) -> None:
        self.world = world
        self.handlings: list[Handling] = []
        self._finished_before = 0  # every hand-over before this index has returned (see in_progress)
        self.calls: list[Call] = []
        self.argument_bytes, self.too_large = 0, ""  # see MAX_ARGUMENT_BYTES
        self._recordings: dict[tuple[Any, ...], Callable[..., Any]] = {}  # see ``recorded``
        self.random_draws: list[bytes] = []
        #: Every transaction broadcast in the world: (transaction, whether your code was on the stack).
        self.broadcasts: list[tuple[Any, bool]] = []
        self.node: Optional[Node] = None
        self.handler: Optional[Callable[..., Any]] = None  # yours, as ``wrap`` was given it
        self.planned_draws: Optional[tuple[type, list[bytes]]] = None
        self.task_steps: list[TaskStep] = []
        #: The tasks your code spawned and not yet done: a crash of your node ends them (``crashed``).
        self.spawned: set[Any] = set()
        #: Every task your code spawned, with the hand-over it was spawned under (``waiting``); and each callback it
        #: scheduled on the loop itself (``scheduling``), as a task.
        self.tasks: list[tuple[Handling, Any]] = []
        #: The threads your code started (and work it handed to a pool), with the hand-over they were started under.
        self.threads: list[tuple[Handling, Counted]] = []
        #: The tasks of yours a crash of your node ended (``crashed``): what they were to do died with them.
        self.killed: set[Any] = set()
        #: What the threads your code started raised, with the event whose handling started them.
        self.thread_errors: list[tuple[Event, BaseException]] = []
        #: What tasks your handler spawned raised, with the event whose handling spawned each (told as threads' are),
        #: once ``settle_task_failures`` has found that it reached no one.
        self.task_errors: list[tuple[Event, BaseException]] = []
        #: What they raised, with the hand-over and the task, until ``settle_task_failures`` tells or drops each.
        self._task_failures: list[tuple[Handling, BaseException, Any]] = []
        #: What callbacks your code scheduled on the loop itself raised (``scheduling``), with the event of each.
        self.callback_errors: list[tuple[Event, BaseException]] = []
        self._replays: dict[int, int] = {}  # id(event): how many times your handler asked for it again
        #: The components your handler was last given (name, component): one reached through another is recorded too.
        self.components: list[tuple[str, Any]] = []
        self._proxies: dict[str, _Recorded] = {}  # see ``_proxy``
        #: The recorder of the check's next play. A component your code kept from this play (in a thread of yours that
        #: outlives it) stands for the node playing now, as the grader's stand-ins do, and as a real node's components
        #: are the same for its life: the check plays many nodes against one handler.
        self.successor: Optional[Recorder] = None
        #: The payment storages your handler was given, by name, oldest first: the check's plays share it
        #: (``_storages_now``).
        self.storages_given: dict[str, list[Any]] = {}
        chain_broadcast = world.chain.broadcast

        def broadcast(tx: Any) -> Any:
            self.broadcasts.append((tx, learner_on_stack()))
            return chain_broadcast(tx)

        world.chain.broadcast = broadcast  # type: ignore[method-assign]

    # What the world calls: the twelve-parameter handler, wrapping yours.
    def wrap(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        self.handler = handler
        @functools.wraps(handler)
        def handle_ldk_events(*args: Any) -> Any:
            components, event = args[:-1], args[-1]
            if self._replays.get(id(event), 0) >= MAX_REPLAYS:
                raise NeverHandled(event)
            given = Event.decode(event.encode())
            self.components = [(n, c) for n, c in zip(HANDLER_PARAMETERS, components, strict=True) if n in _RECORDED]
            self._storages_now(components)
            proxies = [self._proxy(name, c) for name, c in zip(HANDLER_PARAMETERS, components, strict=True)]
            handling = Handling(event, given, self.world.clock.now(), time.monotonic(), threading.get_ident())
            handling.own = _running_here()
            self.handlings.append(handling)
            token = _HANDLING.set(handling)
            recording, clock = _RECORDING.set(self), CLOCK.set(_Clock(self, handling))
            try:
                with no_sleeping():
                    result = handler(*proxies, given)
            except (KeyboardInterrupt, SystemExit) as e:  # from your code, not from the user: an error like any
                raise LearnerExit(e) from e
            except BaseException as e:
                self._finish(handling, e if isinstance(e, ReplayEvent) else None)  # raising ReplayEvent asks too
                handling.step_ended()
                raise
            finally:
                _HANDLING.reset(token)
                _RECORDING.reset(recording)
                CLOCK.reset(clock)
                handling.wall_started = None
            if inspect.isawaitable(result):
                return self._awaited(handling, result)
            self._finish(handling, result)
            handling.step_ended()
            return result

        return handle_ldk_events

    async def _awaited(self, handling: Handling, awaitable: Any) -> Any:
        handling.own = _running_here()  # (the coroutine's task: where an async handler's own code runs)
        token = _HANDLING.set(handling)
        recording, clock = _RECORDING.set(self), CLOCK.set(_Clock(self, handling))
        try:
            result = await Stepped(awaitable, handling)
        except (KeyboardInterrupt, SystemExit) as e:
            raise LearnerExit(e) from e
        except BaseException as e:
            self._finish(handling, e if isinstance(e, ReplayEvent) else None)
            handling.step_ended()
            raise
        finally:
            _HANDLING.reset(token)
            _RECORDING.reset(recording)
            CLOCK.reset(clock)
        self._finish(handling, result)
        handling.step_ended()
        return result

    def _storages_now(self, components: tuple[Any, ...]) -> None:
        """A payment storage your handler was given by an earlier play's node, or before your node restarted, is from
        now on the storage it is given now, as a component kept is (``_Recorded``): a real node's storages are the same
        for its process's life (and the grader's learner process has one of each for every play). The storages are
        handed over as they are (not recorded), so the one given before shares the state of the one given now."""
        for name, storage in zip(HANDLER_PARAMETERS, components, strict=True):
            if name in STORED_KEYS:
                given = self.storages_given.setdefault(name, [])
                if given and given[-1] is not storage:
                    for old in given:
                        old.__dict__ = storage.__dict__
                if not given or given[-1] is not storage:
                    given.append(storage)

    def _finish(self, handling: Handling, result: Any) -> None:
        handling.finished = self.world.clock.now()
        handling.result = result
        if replayed(handling):  # (an event handled is never handed over again: no count to reset)
            self._replays[id(handling.event)] = self._replays.get(id(handling.event), 0) + 1
        handling.broadcasts = len(self.broadcasts)
        node = self.node
        if node is not None:
            handling.stored = {key: _read(node, key) for key in STORED_KEYS}
            if type(handling.event) is Event.SpendableOutputs:
                tracked = node.output_sweeper.tracked_spendable_outputs()
                handling.held_by_sweeper = frozenset(o.outpoint() for o in tracked)

    def _proxy(self, name: str, component: Any) -> Any:
        """What your handler is given for ``component``: the same object at every event, as a real node's components
        are the same for its process's life (a handler that keeps state by component, ``functools.cache`` on
        ``keys_manager`` say, keeps it here as there); a new one once the node restarts, as its components are new."""
        if name not in _RECORDED:
            return component
        proxy = self._proxies.get(name)
        if proxy is None or proxy._component is not component:
            proxy = self._proxies[name] = _Recorded(name, component, self)
        return proxy

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
            handling, _ = working_for()
            _after_the_step(handling)
            if handling is not None and handling.finished is None:
                handling.calls += 1
                if handling.calls > MAX_CALLS_PER_EVENT:
                    raise BlockingCall(f"it called the node {MAX_CALLS_PER_EVENT:,} times while handling one event")
            if self._too_large(name, (*args, *kwargs.values())):  # (not kept, not made: the memory and disk stay)
                self.calls.append(Call(name, {}, handling, handling is not None and handling.finished is None,
                                       self.world.clock.now(), BlockingCall(self.too_large)))
                raise BlockingCall(self.too_large)
            during = handling is not None and handling.finished is None
            told = CALLED_BY_HANDLER.get()
            record = Call(name, dict(bound.arguments) if bound else {"args": args, **kwargs}, handling, during,
                          self.world.clock.now(),
                          by_handler=during and (told if told is not None else _running_here() == handling.own))
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

    def _too_large(self, name: str, values: tuple[Any, ...]) -> bool:
        """Whether this call's text and bytes take the check past ``MAX_ARGUMENT_BYTES`` (``too_large`` says so)."""
        size = _text_bytes(values)
        if self.argument_bytes + size <= MAX_ARGUMENT_BYTES:
            self.argument_bytes += size
            return False
        self.too_large = (f"its calls handed the node over {MAX_ARGUMENT_BYTES // 2**20} MiB of text and bytes (the "
                          f"last, {size:,} bytes to {name}): a record is a few hundred bytes")
        return True

    def _draw(self, handling: Optional[Handling], drawn: bytes) -> bytes:
        plan = self.planned_draws
        if plan is not None and handling is not None and isinstance(handling.event, plan[0]) and plan[1]:
            return plan[1].pop(0)
        return drawn

    def latest(self) -> Recorder:
        """The recorder of the check's play now (``successor``)."""
        recorder = self
        while recorder.successor is not None:
            recorder = recorder.successor
        return recorder

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
        time), and the steps of spawned tasks running now. (The check's watchdog asks every 50 ms, of every play's
        recorder: the hand-overs that returned before the first one still running are not looked at again, since
        one that returned stays so.)"""
        handlings, first = self.handlings, self._finished_before
        while first < len(handlings) and handlings[first].finished is not None:
            first += 1
        self._finished_before = first
        return [h for h in handlings[first:] if h.finished is None] + list(self.task_steps)

    def waiting(self, kind: type | tuple[type, ...] = Event) -> list[Event]:
        """The events (of ``kind``) a task your code spawned while handling them still works on (not done), or a thread
        it started then still works, sleeps or waits a while for (``at_work``: not idle, waiting for your next
        event)."""
        at_work = [*((h, task) for h, task in self.tasks if not task.done()),
                   *((h, c) for h, c in self.threads if c.at_work)]
        return list({id(h.event): h.event for h, _ in at_work if isinstance(h.event, kind)}.values())

    def settle_task_failures(self) -> None:
        """Tell (``task_errors``) what a task your handler spawned raised that nothing of yours took (``await task``,
        ``asyncio.wait_for``, ``gather``, ``task.exception()``) once the work for its event is over: asyncio's own test
        of an error that "was never retrieved". One your code caught reached it, and is no failure of the task's. The
        grader's learner process asks the same at each idle (``child.Learner._settle_task_failures``)."""
        busy = {id(h) for h, task in self.tasks if not task.done()}
        self._task_failures, told = settled(self._task_failures, lambda h: id(h) in busy or h.finished is None)
        self.task_errors += [(handling.event, error) for handling, error in told]

    def task_factory(self, loop: Any, coro: Any, **kwargs: Any) -> Any:
        """Tasks your code spawns while handling an event run step by step, watched like the handler."""
        handling = _HANDLING.get()
        if handling is not None and inspect.iscoroutine(coro):
            yours = coro
            task = asyncio.Task(self._spawned(yours, handling), loop=loop, **kwargs)
            self.spawned.add(task)
            self.tasks.append((handling, task))
            task.add_done_callback(self.spawned.discard)
            # Cancelled before it ran (the story ended first), your coroutine is closed here, so Python
            # does not warn that it "was never awaited"; one that ran to its end is closed already.
            task.add_done_callback(lambda _: yours.close())
            task.add_done_callback(_retrieved)  # (its error is told by the check: asyncio need not log it, when GC'd)
            return task
        return asyncio.Task(coro, loop=loop, **kwargs)

    def scheduling(self, schedule: Callable[..., Any], callback: Callable[..., Any], args: tuple[Any, ...],
                   context: Any) -> Any:
        """A callback scheduled on the world's loop (``_VirtualTimeLoop.scheduling``). One your code schedules itself
        while an event is handled (``loop.call_later(60, channel_manager.claim_funds, preimage)``, ``call_soon``,
        ``call_at``) is work still to do for that event until it has run, as a task spawned then is (``waiting``); so is
        a task it builds directly (``asyncio.Task(coro)``, no task factory's). A crash of your node cancels both."""
        handling = _HANDLING.get()
        if handling is None or not scheduled_by_you(sys._getframe(2)):  # (2: the caller of the loop's method)
            return schedule(callback, *args, context=context)
        owner = getattr(callback, "__self__", None)
        if just_built(owner):
            self.spawned.add(owner)
            self.tasks.append((handling, owner))
            owner.add_done_callback(self.spawned.discard)
            owner.add_done_callback(functools.partial(self._built_task_done, handling))
            if context is not None:  # (its first step, in its own context: so are the next, and its wake-ups)
                callback = watch_built(self.world.runtime.loop.stepping, owner, context,
                                       functools.partial(self._built_step, handling, owner))(callback)
        if owner is not None and isinstance(owner, asyncio.Future):  # (a task's or future's step: asyncio's own)
            return schedule(callback, *args, context=context)
        later = Later(functools.partial(self._watched_step, handling, callback),
                      functools.partial(self._callback_failed, handling))
        later.handle = schedule(later, *args, context=context)
        self.tasks.append((handling, later))
        return later.handle

    def _watched_step(self, handling: Handling, callback: Callable[..., Any], *args: Any) -> Any:
        """A callback your code scheduled, or a step of a task it built directly, run as a spawned task's step is
        (``Stepped``): watched for running too long without pausing, and refused a blocking call."""
        step = TaskStep(handling.event, time.monotonic(), threading.get_ident())
        self.task_steps.append(step)
        try:
            with no_sleeping():
                return callback(*args)
        finally:
            self.task_steps.remove(step)

    def _built_step(self, handling: Handling, task: asyncio.Task[Any], step: Callable[..., Any],
                    args: tuple[Any, ...]) -> None:
        try:
            self._watched_step(handling, step, *args)
        except BlockingCall as e:  # (your task caught the refusal and went on; one it did not ended it: told when done)
            if not refused_in(task):
                self._blocked(handling, e)

    def _callback_failed(self, handling: Handling, error: Exception) -> None:
        """A callback your code scheduled raised: told with its event; a refused blocking call as a task's is."""
        if isinstance(error, BlockingCall):
            self._blocked(handling, error)
        else:
            self.callback_errors.append((handling.event, error))

    def _blocked(self, handling: Handling, error: BlockingCall) -> None:
        """The world meets a refusal in a task (or callback) of yours from its loop, as ``_retrieved`` hands it one."""
        self.world.runtime.loop.call_exception_handler({"message": "a task was refused a call",
                                                        "exception": TaskBlocked(handling.event, error)})

    def _built_task_done(self, handling: Handling, task: asyncio.Task[Any]) -> None:
        """A task your code built directly ended: its error is told with its event, as a spawned task's is."""
        error = error_of(task)
        if isinstance(error, BlockingCall):
            task.exception()
            self._blocked(handling, error)
        elif isinstance(error, Exception):
            self._task_failures.append((handling, error, task))

    def crashed(self, node: Node) -> None:
        """Your node's process dies (``World.crash``): the tasks your code spawned die with it, and what your code kept
        in memory is as the process loaded it when it comes back (``memory.Memory``)."""
        if node is self.node:
            for _, task in self.tasks:
                if not task.done():
                    self.killed.add(task)
                    task.cancel()
            if self.memory is not None and self.memory.forget():
                self.memory_put_back = True
            if type(self.handler).__module__ == "ldkkit.sandbox.bridge":  # (the grader's RemoteHandler: the tasks
                if self.handler.crashed():  # in its learner process die too, and its memory is put back there)
                    self.memory_put_back = True  # (the sandbox is not imported in a notebook)

    @contextlib.contextmanager
    def handing_over(self) -> Iterator[list[Counted]]:
        """Around the world's ``run_in_executor``: work your code hands to a thread (``asyncio.to_thread``) while an
        event is handled is counted as work it submits to a pool of its own (``Recorder.counted``). What it yields is
        not empty once the work is counted so (the world need not count it)."""
        if _HANDLING.get() is None:
            yield []
            return
        handed: list[Counted] = []
        token = HANDED_OVER.set(handed)
        try:
            yield handed
        finally:
            HANDED_OVER.reset(token)

    def counted(self, fn: Callable[..., Any], *, own_thread: bool) -> tuple[Callable[..., Any], Counted]:
        """``fn``, to run on a thread your code started (or a pool of yours), as a job of the world, and its counting
        (``watch.Counted``): the clock waits for it while it works, so what it does lands at the same moment on every
        run whatever the machine's speed, and it is watched meanwhile. Not while it waits for another thread (a worker
        idle on its queue waits for your next event, as a task does at an await): it counts again when your code wakes
        it. Counted from now, until it ends (a pool's work: until its future is done, after it woke what waits on it).

        ``own_thread``: a thread of its own, whose errors are kept for the check (it has no one else to tell); otherwise
        work in a pool (of yours, or ``asyncio.to_thread``'s), whose errors go to its future. Either way its
        ``time.sleep`` waits on the world's clock (``Counted.sleep``): a heartbeat, or a delay before a forward, sleeps
        in simulated time, as ``await asyncio.sleep`` does (work queued in a pool behind a sleeper waits uncounted:
        ``pools.submit_counted``)."""
        handling = _HANDLING.get()
        assert handling is not None  # (counted only while an event is handled)
        counted = Counted(_Clock(self, handling))
        counted.up()
        self.threads.append((handling, counted))
        context = contextvars.copy_context()  # (threads it starts, or work it submits, count too)

        def counted_fn(*args: Any, **kwargs: Any) -> Any:
            counted.bind()
            try:
                with sleeping_on(counted.sleep):
                    return context.run(fn, *args, **kwargs)
            except BaseException as e:  # a thread's own: never lost in it, the check tells it, with the event
                if not own_thread:
                    raise  # (a pool's future holds it, for your code)
                clock: _Clock = counted.clock  # type: ignore[assignment]  (the recorder's, or another check's)
                clock.recorder.thread_errors.append((clock.handling.event, e))
                return None
            finally:
                if own_thread:
                    counted.end()

        return counted_fn, counted

    async def _spawned(self, coro: Any, handling: Handling) -> Any:
        try:
            return await Stepped(coro, handling, self.task_steps)
        except BlockingCall as e:  # the story meets it later, from the loop: it is told with the event that spawned it
            raise TaskBlocked(handling.event, e) from e
        except Exception as e:  # (kept to be told if no awaiter takes it: raised on, for one)
            self._task_failures.append((handling, e, asyncio.current_task()))
            raise


@dataclass(eq=False)
class _Clock:
    """The clock of a check's world, in which a thread of yours counts (``Recorder.counted``), and the event it works
    for: the one being handled when the thread started, or when your code woke it."""

    recorder: Recorder
    handling: Handling

    @property
    def world(self) -> object:
        return self.recorder.world

    def now_us(self) -> int:
        return self.recorder.world.clock.now_us()

    def start(self, counted: Counted) -> Callable[[], None]:
        if not any(known is counted for _, known in self.recorder.threads):  # (adopted: waited for as one started)
            self.recorder.threads.append((self.handling, counted))
        done = self.recorder.world.runtime.job_started()
        steps = self.recorder.task_steps
        counted.step = TaskStep(self.handling.event, time.monotonic(), counted.thread, in_thread=True)
        steps.append(counted.step)

        def stop() -> None:
            if counted.step in steps:
                steps.remove(counted.step)
            counted.step = None
            done()

        return stop

    def alarm(self, alarm: Alarm, seconds: float) -> bool:
        """A timed wait on the world's clock, from the thread (``watch.Alarm``); False at once if the world is gone."""
        return bool(self.recorder.world.runtime.alarm_job(alarm, seconds))

    def sleep(self, counted: Counted, seconds: float) -> bool:
        """``time.sleep`` on the world's clock, from the thread; False at once if the world is gone."""
        steps, step = self.recorder.task_steps, counted.step
        if step in steps:
            steps.remove(step)  # (its own wait for the world's clock is no wait for work)
        if not self.recorder.world.runtime.sleep_job(seconds):
            return False
        if step is not None and counted.counting:
            step.wall_started = time.monotonic()
            steps.append(step)
        return True


def working_for() -> tuple[Optional[Handling], Optional[Recorder]]:
    """The hand-over the running code works for, and the recorder of its play: the one it runs under, or, in a thread of
    yours, the one whose code last woke it (a worker started for an earlier event, or before the check, works for
    whoever hands it work)."""
    counted = counted_here()
    if counted is not None and isinstance(counted.clock, _Clock):
        return counted.clock.handling, counted.clock.recorder
    return _HANDLING.get(), _RECORDING.get()


def _after_the_step(handling: Optional[Handling]) -> None:
    """Work your code handed to another thread (a thread or pool of yours, ``asyncio.to_thread``) acts on the node only
    once the step of your handler that started it, or woke it, is over: when it awaits, or returned and the check read
    what it had stored. A write your handler left to a thread lands after it returned on every run, however fast the
    machine (LDK considers the event handled when the handler returns)."""
    counted = counted_here()
    if handling is None or handling.paused.is_set() or handling.thread == threading.get_ident() or _in_a_loop():
        return
    if counted is None:
        handling.paused.wait()
        return
    with counted.unbound():  # (the clock waits meanwhile: this work is still to do, now)
        handling.paused.wait()


def _running_here() -> tuple[int, int]:
    """This thread, and the id of the task running in it (0 outside one; while the handler runs, its task is alive, so
    no other task has its id)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # (no loop runs in this thread)
        task = None
    return threading.get_ident(), 0 if task is None else id(task)


def _in_a_loop() -> bool:
    """Whether this thread runs an event loop (a task's step, on the loop, is never a thread's work)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
    """A task your handler spawned made a blocking call (:class:`BlockingCall`), raised where the story meets it."""

    def __init__(self, event: Event, error: BlockingCall) -> None:
        super().__init__(str(error))
        self.event = event
        self.error = error


class LearnerExit(Exception):
    """Your handler raised ``KeyboardInterrupt`` or ``SystemExit``: reported like any error it raises."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}({error})")
        self.error = error


def _retrieved(task: Any) -> None:
    """A spawned task is done: a refused call (``TaskBlocked``) the world meets from its loop, now, as it met it when
    asyncio reported it. Any other error is left for an awaiter of yours to take, and told by the check if none does
    (``settle_task_failures``), not by asyncio once the task is collected, at a moment no run repeats."""
    error = error_of(task)
    if isinstance(error, TaskBlocked):
        task.exception()
        task.get_loop().call_exception_handler({"message": "a task was refused a call", "exception": error,
                                                "task": task})


def _read(node: Node, key: str) -> Optional[bytes]:
    try:
        return node.fs_store.read("", "", key)
    except (OSError, KeyError, ValueError):
        return None


def _counted(handlings: list[Handling]) -> Handling:
    """Of one event's hand-overs, the one that counts (see ``Recorder.handling_of``)."""
    return next((h for h in handlings if not replayed(h)), handlings[-1])


def replayed(handling: Handling) -> bool:
    """Whether your handler asked for this event again (returned or raised ``ReplayEvent``)."""
    return isinstance(handling.result, ReplayEvent) or handling.result is ReplayEvent
