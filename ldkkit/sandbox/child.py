"""The learner process: runs a workbook's cells as Run All does, then answers the grader's events with its handler.

Started by the grader's worker as ``python -I -m ldkkit.sandbox.child IN OUT`` (two pipe
file descriptors), it confines itself (:mod:`ldkkit.sandbox.jail`) before it runs any
learner code, and from then on is not trusted: the grader judges only what it asks the
real node to do. Its components are stand-ins that send each method call to the grader;
``inbound_payments`` and ``outbound_payments`` are real storages whose state travels with
every message. Its asyncio loop runs on the world's virtual clock: the grader says what
time it is, the loop runs what is due and reports when it next needs to run.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import functools
import inspect
import itertools
import linecache
import os
import queue
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from ..events.queue import ReturnedUnawaited, answer
from ..exercises.memory import Memory
from ..exercises.task_failures import error_of, settled
from ..exercises.watch import (
    CLOCK,
    DROPPED,
    KIT_DIR,
    LIBRARY_DIRS,
    BlockingCall,
    Later,
    just_built,
    no_sleeping,
    refused_in,
    scheduled_by_you,
    sleeping_allowed,
    watch_built,
)
from . import jail as jail_module
from . import kernel, node_folders, wire
from .gate import Gate
from .kernel import (
    CELL_SOURCES,
    CHECKS,
    STUB_ERRORS,
    IPythonShell,
    after_a_scenario,
    defined_in_the_workbook,
    display,
    from_the_stub,
    input_,
    quit_,
    shown,
    stopped_at,
    stub_reference,
)
from .learner_threads import THREAD_ERRORS, WORKED_FOR, WORKING, LoopClock, count_threads
from .provenance import PROVENANCE
from .virtual_loop import HANDLER_TASK, VirtualLoop, by_the_handler
from .virtual_loop import ORIGIN as _ORIGIN

HANDLER_NAME = "handle_ldk_events"
COMPONENTS = ("channel_manager", "bitcoind_client", "network_graph", "keys_manager", "bump_tx_event_handler",
              "peer_manager", "fs_store", "output_sweeper")
#: Imported before the sandbox closes, so a workbook's imports work whatever it can read.
PRELOAD = ("asyncio", "logging", "dataclasses", "json", "random", "secrets", "hashlib", "datetime", "typing",
           "collections", "functools", "itertools", "math", "enum", "ldkkit", "ldkkit.events", "ldkkit.bitcoin",
           "ldkkit.types", "ldkkit.errors", "ldkkit.policy", "ldkkit.payment_storage", "ldkkit.invoice", "ldkkit.ser",
           "ldkkit.bitcoind_client", "ldkkit.fs_store", "ldkkit.logger", "ldkkit.sim.world", "ldkkit.scenarios",
           "ldkkit.background_processor", "ldkkit.sim.node_process", "ldkkit.exercises",
           # What the kit imports only when first needed (a PublicKey checks its point with coincurve, say): the
           # learner may not be able to read the virtual environment once the sandbox has closed.
           "coincurve", "embit.bip32", "embit.compact", "embit.networks", "embit.script", "embit.transaction",
           "bolt11")


def _no_checks_here() -> None:
    """``check`` (or ``judge``) runs no check in the learner process: the grader runs it (:func:`.kernel.check`).
    (A check run here would meet the stub reference handlers, and its failure would pass for a scenario's.)"""
    exercises = sys.modules.get("ldkkit.exercises")
    if exercises is not None:
        exercises.check = exercises.judge = kernel.check  # type: ignore[attr-defined]


# --- stand-ins for the node's components ----------------------------------------------------


_GATE = Gate()


class Remote:
    """A component in the grader's process: attribute access builds a path, a call sends it."""

    __slots__ = ("_channel", "_path")

    def __init__(self, channel: Channel, path: tuple[str, ...]) -> None:
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or len(self._path) >= 3 or (len(self._path) >= 2 and self._path[0][0] == "#"):
            raise AttributeError(name)
        component = _component_classes().get(self._path)
        static = inspect.getattr_static(component, name, None) if component is not None else None
        if component is not None and not isinstance(static, (types.FunctionType, staticmethod, classmethod)):
            return self._channel.read((*self._path, name))  # (no method: a value, as the check's stand-in gives it)
        return Remote(self._channel, (*self._path, name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{'.'.join(self._path)} cannot be changed from a handler")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _GATE.wait()
        return self._channel.call(self._path, args, kwargs)

    def __repr__(self) -> str:
        return f"<{'.'.join(self._path)}>"

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # (a component's stand-in passes for it in ``isinstance``, as the check's does)
        return _component_classes().get(self._path, Remote)


@functools.cache
def _component_classes() -> dict[tuple[str, ...], type]:
    """Each component's class, by the stand-in's path: the types of ``Node``'s fields of those names."""
    import typing

    from ..node import Node

    hints = typing.get_type_hints(Node)
    return {(name,): hints[name] for name in COMPONENTS}


class Channel:
    """This process's end of the grading boundary, safe for every thread of the learner's.

    One thread reads the pipe (:meth:`start`): a reply goes to the thread whose call it answers (by the call's
    ``id``), anything else to the main thread (:meth:`receive`). Messages are sent whole, one at a time."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        from ..payment_storage import InboundPaymentInfoStorage, OutboundPaymentInfoStorage

        self.fd_in, self.fd_out = fd_in, fd_out
        self.storages = {"inbound": InboundPaymentInfoStorage(), "outbound": OutboundPaymentInfoStorage()}
        self.synced: dict[str, bytes] = {}
        self.views = node_folders.Views()  # its views of the nodes' folders
        self._lock = threading.Lock()  # one message on the pipe at a time, and ``synced`` with it
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.SimpleQueue[Optional[dict[str, Any]]]] = {}  # call id: where its reply goes
        self._ops: queue.SimpleQueue[Optional[dict[str, Any]]] = queue.SimpleQueue()  # None: the grader is gone
        self._gone = False

    def start(self) -> None:
        """Start reading: from now on every message arrives through the reader thread."""
        threading.Thread(target=self._read, name="ldkkit-grader-pipe", daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            storage = {}
            for kind, store in self.storages.items():
                data = _encoded_unless_held(store)
                if data is not None and data != self.synced.get(kind):
                    storage[kind] = wire.to_wire(data)
                    self.synced[kind] = data
            if storage:
                message["storage"] = storage
            files = self.views.changed()
            if files:
                message["files"] = {view: {name: wire.to_wire(data) for name, data in named.items()}
                                    for view, named in files.items()}
            wire.send(self.fd_out, message)

    def opened(self, view: str, name: str, mode: Any, flags: int) -> Optional[bytes]:
        """The learner's code opens ``name`` in its view of a node's folder: the grader sees the same open first
        (``RemoteHandler._serve_open``); its refusal (a full disk) is raised here, by ``open()`` itself, else the view
        is given the file as it is on the node's disk (None: it has none) before the learner's open goes on."""
        _GATE.wait()
        reply = self._answer({"op": "open", "view": int(view), "name": name, "origin": _ORIGIN.get(),
                              "mode": mode if isinstance(mode, str) else None, "flags": flags})
        data = wire.from_wire(reply.get("value"))
        return data if type(data) is bytes else None

    def receive(self) -> dict[str, Any]:
        """The grader's next message that is not a reply (an event, a step...); ProtocolError once it is gone."""
        message = self._ops.get()
        if message is None:
            self._ops.put(None)  # (for whoever asks next)
            raise wire.ProtocolError("the grader closed the channel")
        return message

    def _read(self) -> None:
        try:
            while True:
                message = wire.receive(self.fd_in, None)
                self._apply_storage(message)
                if message.get("op") == "where":  # (answered here: the loop's thread may be stuck in a step)
                    where = _where()
                    with self._lock:
                        wire.send(self.fd_out, {"op": "stepping", "id": message.get("id"), **where})
                    continue
                if message.get("op") != "reply":
                    self._ops.put(message)
                    continue
                with self._lock:
                    waiter = self._waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
                if waiter is None:
                    raise wire.ProtocolError("a reply to no call")
                waiter.put(message)
        except Exception:  # noqa: S110 - a message that does not read (or a closed pipe): the grader is gone
            pass
        with self._lock:  # every thread still waiting learns that the grader is gone
            self._gone = True
            waiters, self._waiting = list(self._waiting.values()), {}
        for waiter in (*waiters, self._ops):
            waiter.put(None)

    def _apply_storage(self, message: dict[str, Any]) -> None:
        for kind, data in (message.get("storage") or {}).items():
            data = wire.from_wire(data)
            store = self.storages[kind]
            fresh = type(store).decode(data)
            with store.lock() as payments:
                payments.clear()
                payments.update(fresh.payments)
            with self._lock:
                self.synced[kind] = data

    def call(self, path: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._returned(self._answer({"op": "call", "path": list(path), "origin": _ORIGIN.get(),
                                            "own": by_the_handler(), "args": wire.to_wire(tuple(args)),
                                            "kwargs": wire.to_wire(dict(kwargs))}))

    def read(self, path: tuple[str, ...]) -> Any:
        """A component's attribute that is no method: its value, or a kit object whose methods are calls."""
        return self._returned(self._answer({"op": "get", "path": list(path), "origin": _ORIGIN.get()}))

    def _returned(self, reply: dict[str, Any]) -> Any:
        if type(reply.get("handle")) is int:  # a kit object that stays in the grader: its methods are calls
            return Remote(self, (f"#{reply['handle']}",))
        return self.views.given(wire.from_wire(reply.get("value")))

    def _answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """Ask the grader, and have its answer (its error raised here). The kit's own code, as in the check: no
        refusal, and no "first wait" of a thread (its reply's is not one)."""
        with sleeping_allowed():
            reply = self._ask(message)
        if reply is None:
            raise SystemExit("the grader is gone")
        if reply.get("op") != "reply":
            raise SystemExit("the grader broke the protocol")
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        return reply

    def _ask(self, message: dict[str, Any]) -> Optional[dict[str, Any]]:
        """Send a call and wait for its own reply (None if the grader is gone)."""
        box: queue.SimpleQueue[Optional[dict[str, Any]]] = queue.SimpleQueue()
        message["id"] = number = next(self._ids)
        with self._lock:
            if self._gone:
                return None
            self._waiting[number] = box
        self.send(message)
        return box.get()


def _encoded_unless_held(store: Any) -> Optional[bytes]:
    """The storage's bytes, or None while another thread of the learner's holds its lock (``with store.lock()``): it
    is changing it, and a later message (its own, or the next idle) carries it. Waiting for it could wait for ever: the
    holder may itself wait for this message's answer (its write, held by the gate, or awaited by the handler)."""
    lock = store._lock  # (the kit's own RLock: the thread that holds it encodes)
    if not lock.acquire(blocking=False):
        return None
    try:
        return store.encode()  # type: ignore[no-any-return]
    finally:
        lock.release()


# --- running the workbook and the handler ------------------------------------------------------


class _TaskBlocked(Exception):
    """A task the handler spawned was refused a blocking call: the check's ``TaskBlocked``, with the number of the
    event whose handling spawned the task (the grader knows the event by it)."""

    def __init__(self, origin: int, error: BlockingCall) -> None:
        super().__init__(str(error))
        self.origin = origin
        self.error = error


def _blocking(error: BaseException) -> dict[str, Any]:
    """What the check's ``BlockingCall`` (or ``TaskBlocked``) carries beyond its message: the call refused, whether it
    was caught, and for a spawned task's, the event's number."""
    if isinstance(error, _TaskBlocked):
        return {"blocking": {**_blocking(error.error)["blocking"], "origin": error.origin}}
    if not isinstance(error, BlockingCall):
        return {}
    return {"blocking": {"call": error.call, "caught": error.caught}}


def _exit_error(error: BaseException) -> Exception:
    """``SystemExit`` or ``KeyboardInterrupt`` your handler raised, as an error of the same name and message."""
    return type(type(error).__name__, (Exception,), {"__module__": "learner"})(str(error))


#: The step running now on the learner's loop, outermost first: a spawned task's (or a scheduled callback), or the
#: handler's own; the number of the event it works for, when it began (``time.monotonic``, one clock for both
#: processes), and whether it is the handler's. The grader asks for it when an exchange runs long
#: (``RemoteHandler._serve_until_idle``): the check watches such a step, and judges one that overruns.
_STEPPING: list[tuple[int, float, bool]] = []


def _where() -> dict[str, Any]:
    """Where the learner's code is, for the grader: the step its loop is in, else the thread at work longest; {} if
    neither (the grader times it out)."""
    if stepping := _STEPPING[:1]:
        origin, since, handler = stepping[0]
        return {"origin": origin, "since": since, "kind": "handler" if handler else "task"}
    working = sorted(list(WORKING.values()), key=lambda w: w[1])[:1]  # (copied at once: threads change it)
    return {"origin": working[0][0], "since": working[0][1], "kind": "thread"} if working else {}


@contextmanager
def _step(handler: bool = False) -> Iterator[None]:
    """A step, watched as the check watches one (``no_sleeping``, and known to be running)."""
    _STEPPING.append((_ORIGIN.get(), time.monotonic(), handler))
    try:
        with no_sleeping():
            yield
    finally:
        _STEPPING.pop()


class _Watched:
    """A coroutine run one step at a time, each step under the check's own watch (``no_sleeping``): a blocking call
    there is refused, and one the learner's code caught is raised again as the step returns, as in the check. Only
    this thread (the loop's) is watched: the learner's other threads may sleep and wait, as they may in the check."""

    def __init__(self, coro: Any, gate: Optional[Gate] = None) -> None:
        self._it = coro.__await__()
        self._gate = gate  # (the handler's own steps: work it hands to its threads waits for them to end)

    def __await__(self) -> Any:
        throw: Optional[BaseException] = None
        while True:
            deferral = _GATE.deferral() if self._gate is None else None
            if deferral is not None:  # (a spawned task's step, due once the handler returned: after the grader heard)
                try:
                    yield from deferral.__await__()
                except BaseException as e:  # a cancellation meanwhile, handed on to the coroutine
                    throw = e
            if self._gate is not None:
                self._gate.close()
            with _step(handler=self._gate is not None):
                try:
                    yielded = self._it.send(None) if throw is None else self._it.throw(throw)
                except StopIteration as stop:
                    return stop.value
            if self._gate is not None:
                self._gate.open()  # (it awaits: its threads' work may go on)
            try:
                yield yielded
                throw = None
            except BaseException as e:  # a cancellation, handed on to the coroutine
                throw = e


def _watched_step(callback: Callable[..., Any], *args: Any) -> Any:
    """A callback the learner's code scheduled, or a step of a task it built directly, under the watch a spawned task's
    step runs under (``_Watched``): a blocking call there is refused."""
    with _step():
        return callback(*args)


async def _watched(coro: Any, gate: Optional[Gate] = None) -> Any:
    return await _Watched(coro, gate)


def _your_traceback(error: BaseException) -> str:
    """What a notebook shows the learner of ``error`` (or of the error it was raised from, as an exit is): their own
    frames, then the error; the kit's frames are noise to them, and to their instructor."""
    for raised in (error, error.__cause__):
        frames = [] if raised is None else [f for f in traceback.extract_tb(raised.__traceback__)
                                            if not f.filename.startswith((KIT_DIR, *LIBRARY_DIRS))]
        if frames:
            return ("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
                    + "".join(traceback.format_exception_only(raised)))  # type: ignore[arg-type]
    return "".join(traceback.format_exception_only(error))


#: Errors raised in tasks the handler spawned (the event's number, the error): told as threads' are, after them.
TASK_ERRORS: list[tuple[int, BaseException]] = []
#: Errors raised in callbacks the learner's code scheduled on the loop itself (``Learner._scheduling``): told last.
CALLBACK_ERRORS: list[tuple[int, BaseException]] = []
#: The async functions the learner's code called without await (the event's number, the name): told at the next idle.
UNAWAITED: list[tuple[int, str]] = []
DROPPED.append(lambda name: _ORIGIN.get() and len(UNAWAITED) < 8 and UNAWAITED.append((_ORIGIN.get(), name[:100])))


class _Stopped(Exception):
    """A StopIteration a plain handler raised (``next()`` on an empty iterator), carried out of the coroutine that
    called it as it is, as the check tells it."""

    def __init__(self, stop: StopIteration) -> None:
        super().__init__()
        self.stop = stop


class Learner:
    """The workbook's namespace, its handler, and the handler call in progress."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._new_loop()
        shell = IPythonShell()
        # The workbook's namespace is the module __main__, as IPython makes a notebook's: what looks a class of the
        # workbook's up by its module (pickle, typing.get_type_hints, import __main__) finds it there.
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        self.namespace: dict[str, Any] = main.__dict__
        self.namespace.update({"__builtins__": __builtins__, "display": display, "get_ipython": lambda: shell,
                               "exit": quit_, "quit": quit_, "input": input_})
        shell.user_ns = self.namespace  # type: ignore[attr-defined]  # (IPython's name for it)
        self.components: dict[str, Remote] = {}
        self._new_node()
        self.current: Optional[asyncio.Task[Any]] = None
        self.current_origin = 0  # the number of the event it handles
        #: What tasks the handler spawned raised, with the number of the event and the task (``_settle_task_failures``).
        self.task_failures: list[tuple[int, BaseException, asyncio.Task[Any]]] = []
        #: Refusals in tasks the handler spawned that no one awaited, for the grader (its world meets them so).
        self.blocked: list[_TaskBlocked] = []
        #: The tasks the handler spawned and not yet done, with the number of the event whose handling spawned each: the
        #: check plays on while one still works (``Recorder.waiting``).
        self.spawned: list[tuple[int, asyncio.Task[Any] | Later]] = []
        count_threads(self)

    def _new_node(self) -> None:
        """Stand-ins of the node's components: the same at every event, new for each node (a world's, or the node
        restarted), as a real node's are and as the check gives them (``Recorder._proxy``). Any of them, kept from
        before, still stands for the node playing now: a call names its component, not the node."""
        self.components = {name: Remote(self.channel, (name,)) for name in COMPONENTS}

    def _new_loop(self) -> None:
        """A loop of its own for each world, as the check gives each play's node (its world's): a task of an earlier
        node's never runs again, and a handler that starts a task per loop starts one for each node, as in the check."""
        self.loop = VirtualLoop()
        asyncio.set_event_loop(self.loop)
        self.loop.set_task_factory(self._task_factory)
        self.loop.scheduling = self._scheduling
        self.loop.set_exception_handler(self._on_loop_error)
        self.clock = LoopClock(self.loop)

    def _task_factory(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Tasks the handler spawns are watched step by step, like the handler (``Recorder.task_factory``)."""
        origin = _ORIGIN.get()
        if origin and inspect.iscoroutine(coro):
            task = asyncio.Task(self._spawned(coro, origin), loop=loop, **kwargs)
            self.spawned.append((origin, task))
            task.add_done_callback(self._retrieved)
            return task
        return asyncio.Task(coro, loop=loop, **kwargs)

    def _scheduling(self, schedule: Callable[..., Any], callback: Callable[..., Any], args: tuple[Any, ...],
                    context: Any) -> Any:
        """A callback the learner's code scheduled on the loop itself while an event was handled (``call_later``), or a
        task it built directly (``asyncio.Task(coro)``): work still to do for that event, as a task it spawned is, as
        the check counts it (``Recorder.scheduling``)."""
        origin = _ORIGIN.get()
        if not origin or not scheduled_by_you(sys._getframe(2)):  # (2: the caller of the loop's method)
            return schedule(callback, *args, context=context)
        owner = getattr(callback, "__self__", None)
        if just_built(owner):
            self.spawned.append((origin, owner))
            owner.add_done_callback(functools.partial(self._built_task_done, origin))
            if context is not None:  # (its first step, in its own context: so are the next, and its wake-ups)
                callback = watch_built(self.loop.stepping, owner, context,
                                       functools.partial(self._built_step, origin, owner))(callback)
        if owner is not None and isinstance(owner, asyncio.Future):  # (a task's or future's step: asyncio's own)
            return schedule(callback, *args, context=context)
        later = Later(functools.partial(_watched_step, callback), functools.partial(self._callback_failed, origin))
        later.handle = schedule(later, *args, context=context)
        self.spawned.append((origin, later))
        return later.handle

    def _built_step(self, origin: int, task: asyncio.Task[Any], step: Callable[..., Any],
                    args: tuple[Any, ...]) -> None:
        try:
            _watched_step(step, *args)
        except BlockingCall as e:  # (the task caught the refusal and went on; one it did not ended it: told when done)
            if not refused_in(task):
                self.blocked.append(_TaskBlocked(origin, e))

    def _callback_failed(self, origin: int, error: Exception) -> None:
        """A callback the learner's code scheduled raised: told with its event; a refused call as a task's is."""
        if isinstance(error, BlockingCall):
            self.blocked.append(_TaskBlocked(origin, error))
        else:
            CALLBACK_ERRORS.append((origin, error))

    def _built_task_done(self, origin: int, task: asyncio.Task[Any]) -> None:
        """A task the learner's code built directly ended: its error is told as a spawned task's (``TASK_ERRORS``)."""
        error = error_of(task)
        if isinstance(error, BlockingCall):
            task.exception()
            self.blocked.append(_TaskBlocked(origin, error))
        elif isinstance(error, Exception):
            self.task_failures.append((origin, error, task))

    def _retrieved(self, task: asyncio.Task[Any]) -> None:
        """A spawned task refused a blocking call is told at once, as the check's ``_retrieved`` tells it, not only if
        the task is collected unretrieved (one the learner keeps in a set never is). Any other error is left for an
        awaiter of the learner's to take (``_settle_task_failures``)."""
        error = error_of(task)
        if isinstance(error, _TaskBlocked):
            task.exception()
            self.blocked.append(error)

    def _settle_task_failures(self) -> None:
        """What a task the handler spawned raised that nothing of the learner's took, once the work for its event is
        over, is told (``TASK_ERRORS``), as the check's ``Recorder.settle_task_failures`` tells it."""
        busy = set(self.waiting())
        if self.current is not None and not self.current.done():
            busy.add(self.current_origin)
        self.task_failures, told = settled(self.task_failures, busy.__contains__)
        TASK_ERRORS.extend(told)

    def waiting(self) -> list[int]:
        """The events (by number) a task the handler spawned while handling them still works for (or a callback the
        learner's code scheduled then has yet to run: ``_scheduling``)."""
        self.spawned = [(origin, task) for origin, task in self.spawned if not task.done()]
        return sorted({origin for origin, _ in self.spawned})

    def working(self) -> list[int]:
        """The events (by number) a thread the learner's code started, or the code handling them woke, still works,
        sleeps or waits a while for (``at_work``: not idle, waiting for the next event), as ``Recorder.waiting`` asks
        of the check's."""
        worked_for = list(WORKED_FOR.items())  # (copied at once: threads change it)
        for counted, _ in worked_for:
            if counted.ended:
                WORKED_FOR.pop(counted, None)
        return sorted({origin for counted, origin in worked_for if counted.at_work and not counted.ended})

    def crashed(self) -> None:
        """The node restarts as after a crash: the tasks the handler spawned die with its process, as in the check
        (``Recorder.crashed``); its threads go on (the check's do too)."""
        for _, task in self.spawned:
            task.cancel()
        for _ in range(3):
            self.loop.run_forever()
        self.waiting()
        self._new_node()

    async def _spawned(self, coro: Any, origin: int) -> Any:
        try:
            return await _Watched(coro)
        except BlockingCall as e:  # told with the event whose handling spawned the task, as the check tells it
            raise _TaskBlocked(origin, e) from e
        except Exception as e:  # (told to the grader if no awaiter takes it, as the check tells it: raised on, for one)
            self.task_failures.append((origin, e, asyncio.current_task()))
            raise

    def _on_loop_error(self, loop: Any, context: dict[str, Any]) -> None:
        """A task's error no one retrieved: a refusal goes to the grader, as the check's world keeps it to raise."""
        error = context.get("exception")
        if isinstance(error, _TaskBlocked):
            self.blocked.append(error)

    def run_cells(self, cells: list[str]) -> str:
        """Each cell in turn, as Jupyter's Run All runs them: up to the workbook's check, stopping at a cell that
        raises (its check never runs then: returns why)."""
        for number, source in enumerate(cells, 1):
            self.channel.send({"op": "cell", "number": number})  # (the grader names the cell its time ran out in)
            name = f"<cell {number}>"
            linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)  # (a traceback's lines)
            CELL_SOURCES[name] = source  # (what the cell ran, whatever clears linecache: see compiled_from_its_cell)
            since = len(STUB_ERRORS)
            try:
                self.run_code(source, name)
            except BaseException as e:  # noqa: B036 - even SystemExit: IPython shows it, and Run All stops
                error: Optional[BaseException] = e
            else:
                error = None
            if error is not None and not CHECKS.reached and from_the_stub(error, since):
                # (``scenarios.run``, whose peers' handlers are not here: it ran in Jupyter, and so does the rest)
                error = after_a_scenario(source, name, error, self.run_code)
            if error is not None and not CHECKS.reached:
                return stopped_at(number, error)
            if CHECKS.reached:  # (a check the learner's own code caught)
                return ""
        return ""

    def run_code(self, code: str | ast.Module, name: str) -> None:
        """Run a cell's code (or some of its statements) in the workbook's namespace; raise what it raises."""
        result = eval(compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), self.namespace)  # noqa: S307
        if inspect.iscoroutine(result):
            self._run_to_end(result)

    def _run_to_end(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        for _ in range(100_000):
            self.loop.step(self.loop.now_us)
            if task.done():
                task.result()  # (its error is the cell's, as in Jupyter)
                return
            due = self.loop.next_us()
            if due is None:
                task.cancel()
                return
            self.loop.now_us = due

    def handler(self) -> tuple[Optional[Any], str]:
        """The handler the workbook's check was given (else its ``handle_ldk_events``), if the workbook's own code
        defined it."""
        handler = CHECKS.handler if CHECKS.reached else self.namespace.get(HANDLER_NAME)
        if handler is None:
            return None, ("the workbook's check was given None, not its handler" if CHECKS.reached else
                          "the workbook never defines handle_ldk_events")
        if not defined_in_the_workbook(handler):
            return None, (f"the workbook's check was given {type(handler).__name__} {shown(handler)}, not a function "
                          "the workbook's own cells define" if CHECKS.reached else
                          "handle_ldk_events is not a function defined in the workbook")
        return handler, ""

    def start_event(self, handler: Any, message: dict[str, Any]) -> None:
        from ..events import Event

        event = Event.decode(wire.from_wire(message["event"]))
        network = wire.from_wire(message["network"])
        store = self.channel.storages
        args = (*[self.components[n] for n in COMPONENTS[:6]], store["inbound"], store["outbound"],
                self.components["fs_store"], self.components["output_sweeper"], network, event)

        async def run() -> Any:
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    result = await result
            except (KeyboardInterrupt, SystemExit) as e:  # an error like any, as in the check (``LearnerExit``):
                raise _exit_error(e) from e  # asyncio would end this process with it
            except StopIteration as e:  # (a plain handler's: out of this coroutine, PEP 479 would make it another)
                raise _Stopped(e) from e
            return result

        context = contextvars.copy_context()
        seq = message.get("seq")
        self.current_origin = seq if type(seq) is int else 0
        context.run(_ORIGIN.set, self.current_origin)
        context.run(CLOCK.set, self.clock)
        _GATE.close()
        self.current = asyncio.Task(_watched(run(), _GATE), loop=self.loop, context=context)  # (not a task it spawned)
        HANDLER_TASK[0] = self.current
        self.current.add_done_callback(lambda _: self.loop.stop())

    def state(self) -> dict[str, Any]:
        """How the current handler call stands, for the grader."""
        from ..events import ReplayEvent

        task = self.current
        if task is None or not task.done():
            return {"state": "pending"}
        if task.cancelled():
            return {"state": "raised", "error": {"name": "CancelledError", "message": "the handler was cancelled"}}
        error = task.exception()
        if isinstance(error, _Stopped):
            error = error.stop
        if error is not None:
            if isinstance(error, ReplayEvent):
                return {"state": "returned", "replay": True}
            text = _your_traceback(error)[-3000:]
            return {"state": "raised", "error": wire.error_to_wire(error), "traceback": text, **_blocking(error)}
        result = answer(task.result())
        if isinstance(result, ReturnedUnawaited):  # (its coroutine closed: as the check judges it, an error)
            return {"state": "raised", "error": {**wire.error_to_wire(result), "returned": result.name}}
        replay = isinstance(result, ReplayEvent) or result is ReplayEvent
        if isinstance(result, BaseException) and not replay:  # (returned, not raised: the world's queue takes it as
            text = _your_traceback(result)[-3000:]  # raised, the check's too)
            return {"state": "raised", "error": wire.error_to_wire(result), "traceback": text, **_blocking(result)}
        if result is None or replay:
            return {"state": "returned", "replay": replay}
        try:  # (an answer LDK's handler has not, handled all the same: the check names it by its repr)
            said = repr(result)[:200]
        except Exception:
            said = f"a {type(result).__name__}"
        return {"state": "returned", "replay": False, "answer": said}

    def _thread_failed(self) -> dict[str, Any]:
        """The first error raised in a thread of the learner's own (else in a task the handler spawned, else in a
        callback it scheduled) since the last idle, for the grader to keep."""
        self._settle_task_failures()
        for what, errors in (("thread", THREAD_ERRORS), ("task", TASK_ERRORS), ("callback", CALLBACK_ERRORS)):
            if errors:
                (origin, error), errors[:] = errors[0], []
                return {"thread_error": {"origin": origin, "error": wire.error_to_wire(error), "what": what}}
        return {}

    def _blocked(self) -> dict[str, Any]:
        """The first refusal met by a task the handler spawned since the last idle, for the grader to raise."""
        if not self.blocked:
            return {}
        error, self.blocked = self.blocked[0], []
        return {"blocked": {"error": wire.error_to_wire(error), **_blocking(error)}}

    def _trust(self, peers: Any) -> None:
        """Mirror the grader's ``TRUSTED_ZERO_CONF_PEERS`` into the stub the workbook imported it from."""
        if peers is None:
            return
        fresh = wire.from_wire(peers)
        for name in ("ldkkit.policy", "ldkkit.reference"):
            trusted = getattr(sys.modules.get(name), "TRUSTED_ZERO_CONF_PEERS", None)
            if isinstance(trusted, set):
                trusted.clear()
                trusted.update(fresh)

    def serve(self, handler: Any) -> None:
        """Answer the grader until it hangs up: events, clock steps, new worlds."""
        memory = Memory(handler)  # (as the workbook's cells left it: what a crash puts back, as the check does)
        self.count_thread_pools()  # (a ThreadPool the cells imported: its work counted as an executor's)
        while True:
            try:
                message = self.channel.receive()
            except wire.ProtocolError:
                return
            op = message.get("op")
            self._trust(message.get("trusted"))
            if op == "reset":
                self.loop.cancel_everything()
                old, now_us = self.loop, self.loop.now_us
                self._new_loop()
                self._new_node()
                self.loop.now_us = now_us
                old.close()
                self.current = None
            forgot = op == "crash" and memory.forget()  # (before the node's restart: a new process's memory)
            if op == "crash":
                self.crashed()
            if op == "event":
                self.start_event(handler, message)
            if op in ("event", "step", "reset", "crash"):
                self.loop.settle(int(message["now_us"]))  # (idle only once no job runs: the grader's time waits)
                state = self.state()
                held = state["state"] != "pending" and _GATE.holds()  # (work held until the grader heard: it steps)
                self.channel.send({"op": "idle", "handler": state, "next_us": self.loop.next_us(), "held": held,
                                   "waiting": self.waiting(), "working": self.working(),
                                   "unawaited": UNAWAITED[:], "forgot": forgot, **self._thread_failed(),
                                   "foreign": PROVENANCE.why(self.namespace), **self._blocked()})
                UNAWAITED.clear()
                if state["state"] != "pending":
                    _GATE.open()
            elif op == "stop":
                return


def main(argv: list[str]) -> int:
    fd_in, fd_out, fd_tell = int(argv[1]), int(argv[2]), int(argv[3])
    for fd in (fd_in, fd_out, fd_tell):
        os.set_inheritable(fd, False)
    setup = wire.receive(fd_in, None)
    stub_reference()  # (the learner process's start did it before any kit module loaded: this is for the record)
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: S112 - a module that cannot load fails the learner's import later, as in Jupyter
            continue
    debug = os.environ.get("LDKKIT_SANDBOX_DEBUG")
    _no_checks_here()
    jail = jail_module.Jail.from_dict(setup["jail"])
    missing = jail_module.enter(jail)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if debug else (0, 1, 2):
        os.dup2(devnull, fd)
    channel = Channel(fd_in, fd_out)
    channel.views.watch(os.path.join(os.path.abspath(jail.scratch), node_folders.VIEWS), channel.opened)
    channel.start()  # (before the workbook's cells: they may use up the threads the sandbox allows)
    learner = Learner(channel)
    channel.send({"op": "confined", "missing": missing})
    job = channel.receive()
    cells, CHECKS.exercise = job.get("cells"), str(job.get("exercise"))
    PROVENANCE.install(fd_tell)  # (before the cells: what they compile, and the modules they import, are told apart)
    stopped = learner.run_cells([c for c in cells if isinstance(c, str)] if isinstance(cells, list) else [])
    handler, why = (None, stopped) if stopped else learner.handler()
    kind = None if handler is None else ("async" if inspect.iscoroutinefunction(handler) else "plain")
    channel.send({"op": "ready", "handler": kind, "why": why, "stopped": bool(stopped), "others": CHECKS.others})
    if handler is not None:
        learner.serve(handler)
    return 0

