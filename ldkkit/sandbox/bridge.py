"""The grader's end of the boundary: a handler that is the learner's, run in the learner process.

:class:`~ldkkit.sandbox.learner_process.LearnerProcess` starts and confines the learner process and runs the
workbook's cells in it. :class:`RemoteHandler` is what the grader hands to ``check``: a plain
callable with the seed chapter's twelve parameters. Called with an event, it sends the
event's bytes over, carries out on the real components each call the handler asks for
(only public methods of the kit's own objects), mirrors the payment storages both ways,
and returns ``None`` or ``ReplayEvent()``, or raises what the handler raised (by name and
message only). When the learner's loop has a timer (a task sleeping before
``process_pending_htlc_forwards``), a wake-up is scheduled on the world's own loop at
that virtual time, and the learner's loop is told to run what is due then.

Every wait on the learner is bounded: silent past :func:`exchange_limit_s`, the learner is
asked where it is. In a step (its handler's, or a task's it spawned) or in work it handed
to a thread of its own, that is the check's to watch, stop and tell at the check's own
limit, in the check's own words;
anywhere else, or silent still, its process is killed and the handler raises
:class:`HandlerTimeout`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, NoReturn, Optional

from ..exercises.watch import HandlerStopped
from . import node_folders, wire
from .learner_process import HandlerTimeout, LearnerGone, LearnerProcess
from .learner_work import LearnerTasks, LearnerThreads, Watched

#: The longest the learner may take to answer one message, as a share of the check's hang limit (8 s of its 10 s):
#: then asked where it is, a spawned task's step it is in is the check's to stop at that limit, well before the
#: learner's time runs out again.
EXCHANGE_SHARE = 0.8
#: How many kit objects without bytes (a graph, say) calls may hand the learner, by number.
MAX_HANDLES = 10_000
_PARAMETERS = ("channel_manager", "bitcoind_client", "network_graph", "keys_manager", "bump_tx_event_handler",
               "peer_manager", "inbound_payments", "outbound_payments", "fs_store", "output_sweeper", "network")
_CALLABLE = ("channel_manager", "bitcoind_client", "network_graph", "keys_manager", "bump_tx_event_handler",
             "peer_manager", "fs_store", "output_sweeper")


#: How the learner process's traceback of an error begins, as a note on the error (a grade's row shows it).
LEARNERS_TRACEBACK = "In the learner's process:"


def hang_limit_s() -> float:
    """The check's hang limit (``common.HANDLER_TIMEOUT_S``, the grader's, handed to its worker in the job)."""
    from ..exercises import common

    return common.HANDLER_TIMEOUT_S


def exchange_limit_s() -> float:
    """The longest the learner may take to answer one message: :data:`EXCHANGE_SHARE` of the check's hang limit."""
    return EXCHANGE_SHARE * hang_limit_s()


class RemoteHandler:
    """``handle_ldk_events`` for the check: each call goes to the learner process and back."""

    def __init__(self, learner: LearnerProcess, kind: str) -> None:
        self.learner = learner
        self.kind = kind
        self.components: dict[str, Any] = {}
        self.runtime: Any = None
        self._timer: Any = None
        self._seq = 0
        self._asked = 0  # the grader's questions "where are you?" (``_serve_until_idle``), by number
        self._contexts: dict[int, contextvars.Context] = {}  # per event handed over: the check's context
        self._entered: set[int] = set()
        self._handles: list[Any] = []  # kit objects a call returned that have no bytes: reached by number
        self._folders = node_folders.Folders(learner.scratch)  # the nodes' folders the learner was given
        #: The events (by number) a task the learner's handler spawned still works for, as its process last said; and
        #: their stand-ins among the check's tasks (``Recorder.tasks``), one per event.
        self.waiting: set[int] = set()
        self._stand_ins: dict[int, LearnerTasks] = {}
        #: The events (by number) a thread the learner's code started still works or sleeps for; their stand-ins among
        #: the check's threads (``Recorder.threads``).
        self.working: set[int] = set()
        self._thread_stand_ins: dict[int, LearnerThreads] = {}
        self.__name__ = self.__qualname__ = "handle_ldk_events"

    def __call__(self, *args: Any) -> Any:
        if len(args) != len(_PARAMETERS) + 1:
            raise TypeError(f"handle_ldk_events takes {len(_PARAMETERS) + 1} arguments, got {len(args)}")
        self._adopt(args)
        event = args[-1]
        self._seq += 1
        self._contexts[self._seq] = contextvars.copy_context()
        reply = self._exchange({"op": "event", "event": wire.event_to_wire(event), "seq": self._seq,
                                "network": wire.to_wire(self.components["network"])})
        state = reply["handler"]
        if state.get("state") == "pending":
            return self._finish_later()
        return self._outcome(state)

    async def _finish_later(self) -> Any:
        """The learner's async handler is waiting for (virtual) time: let the world's clock run to it."""
        loop = asyncio.get_running_loop()
        while True:
            reply = self._exchange({"op": "step"})
            state = reply["handler"]
            if state.get("state") != "pending":
                return self._outcome(state)
            due = reply.get("next_us")
            if due is not None:
                await asyncio.sleep(max(0.0, due / 1_000_000 - loop.time()))
            elif self.working or self.waiting:  # (no timer due: a thread or task of the learner's may still wake it)
                await asyncio.sleep(1.0)
            else:  # nothing can wake it: it awaits for ever, as it would in the check, which decides what that means
                await loop.create_future()

    def _adopt(self, args: tuple[Any, ...]) -> None:
        """Remember the node's components; a new world means the learner's old tasks are cancelled."""
        self.components = dict(zip(_PARAMETERS, args[:-1], strict=True))
        runtime = getattr(self.components["channel_manager"], "runtime", None)
        if runtime is not self.runtime:
            self.runtime = runtime
            self._timer = None
            self._exchange({"op": "reset"})

    def _now_us(self) -> int:
        clock = getattr(self.components["channel_manager"], "clock", None)
        return clock.now_us() if clock is not None else 0

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one message and serve the learner's calls until it is idle again."""
        from ..exercises.watch import sleeping_allowed

        learner = self.learner
        if not learner.lock.acquire(timeout=exchange_limit_s()):
            raise HandlerTimeout("the learner process stayed busy")
        try:
            # The grader's own code: its waits (for a learner process that is ending, say) are no learner's sleep.
            with sleeping_allowed():
                message["now_us"] = self._now_us()
                message["trusted"] = wire.to_wire(_trusted_peers())
                learner.send(self._with_storage(message))
                return self._serve_until_idle()
        except BaseException as e:
            # Interrupted half-way (the check stopped an overrunning handler, say): the two ends no
            # longer agree on where they are in the conversation, so the learner process goes.
            learner.kill(e if isinstance(e, (HandlerTimeout, LearnerGone)) else
                         LearnerGone(f"the learner process was stopped: {type(e).__name__}"))
            raise
        finally:
            learner.lock.release()

    def _serve_until_idle(self) -> dict[str, Any]:
        """Serve the learner's calls until it is idle. One that says nothing for :func:`exchange_limit_s` is asked
        where it is: stuck in a step (of a task its handler spawned, or of the handler itself), or in work handed to
        a thread of its own, that is the check's to watch and to judge, as the check judges its own, and the learner
        has until the check's limit for it (and as long again as it had); anywhere else, or silent still, it timed
        out."""
        learner, began, limit = self.learner, time.monotonic(), exchange_limit_s()
        asked, watched, wait = None, None, limit
        try:
            while True:
                if not learner.answers_within(wait):
                    if asked is not None:
                        learner.time_out(limit)
                    self._asked = asked = self._asked + 1
                    learner.send({"op": "where", "id": asked})
                    continue
                reply = learner.receive(limit)
                if reply.get("op") == "stepping":  # (an answer to an earlier exchange's question, late: none now)
                    if asked is not None and reply.get("id") == asked and watched is None:
                        watched = self._watch_step(reply, began)
                        # (the check stops the step at its limit, from when it is watched: this wait outlasts that)
                        wait = max(limit, watched.since + hang_limit_s() - time.monotonic() + limit)
                    continue
                idle = self._serve(reply)
                if idle is not None:
                    return idle
        except HandlerStopped:  # (the check's watch of a hand-over ran out while the learner could not say where it is)
            if asked is not None and watched is None:
                learner.time_out(limit)
            raise
        finally:
            if watched is not None:
                watched.restore()

    def _watch_step(self, stepping: dict[str, Any], began: float) -> Watched:
        """Where the learner is, the check's to watch from when it says it began (not before this exchange began): a
        spawned task's step, or work handed to a thread of its own, as a ``TaskStep`` among the check's
        (``Recorder.task_steps``); the handler's own step, as its hand-over (``Handling``), running. None: it timed
        out. Watching a task's step or a thread, a handler call still in progress (a step held until the grader heard
        an earlier one return runs in the next event's exchange) does not run meanwhile: it is paused, as one awaiting
        is, so the check tells the task's (or thread's) overrun."""
        from ..exercises import recorder
        from ..exercises.watch import TaskStep

        origin, since, kind = stepping.get("origin"), stepping.get("since"), stepping.get("kind")
        context = self._contexts.get(origin) if type(origin) is int else None
        keeper = context.get(recorder._RECORDING) if context is not None else None
        handling = context.get(recorder._HANDLING) if context is not None else None
        if keeper is None or handling is None or type(since) not in (int, float) \
                or kind not in ("task", "handler", "thread") or (kind == "handler" and handling.finished is not None):
            self.learner.time_out(exchange_limit_s())
        start, thread = max(float(since), began), threading.get_ident()  # type: ignore[arg-type]
        if kind == "handler":  # (its hand-over runs already, unless the world's clock woke the step: it runs from now)
            watched = Watched(keeper, None, [(handling, handling.wall_started, handling.thread)])
            if handling.wall_started is None:
                handling.wall_started = start
            handling.thread = thread
            watched.since = handling.wall_started
            return watched
        step = TaskStep(handling.event, start, thread, in_thread=kind == "thread")
        paused = [(h, h.wall_started, h.thread) for h in keeper.handlings
                  if h.finished is None and h.wall_started is not None]
        for h, _, _ in paused:
            h.wall_started = None
        keeper.task_steps.append(step)
        return Watched(keeper, step, paused, start)

    def _serve(self, reply: dict[str, Any]) -> Optional[dict[str, Any]]:
        """One message of the learner's served; the message itself once it is idle."""
        learner = self.learner
        self._apply_storage(reply)
        self._apply_files(reply)
        op = reply.get("op")
        if op in ("call", "get", "open"):  # (from any of the learner's threads: the reply names the call it answers)
            answer = self._serve_call(reply) if op in ("call", "get") else self._serve_open(reply)
            if type(reply.get("id")) is int:
                answer["id"] = reply["id"]
            learner.send(self._with_storage(answer))
            return None
        elif op == "idle" and isinstance(reply.get("handler"), dict):
            self._note_waiting(reply.get("waiting"), reply.get("working"))
            self._task_blocked(reply.get("blocked"))
            self._thread_failed(reply.get("thread_error"))
            self._unawaited(reply.get("unawaited"))
            if isinstance(reply.get("foreign"), str) and reply["foreign"] and not learner.foreign:
                learner.foreign = reply["foreign"][:300]
            self._schedule(reply.get("next_us"))
            if reply.get("held") is True:
                self._step_held()
            return reply
        else:
            learner.kill(LearnerGone("the learner process broke the protocol"))
            raise learner.dead  # type: ignore[misc]

    def _serve_call(self, request: dict[str, Any]) -> dict[str, Any]:
        """A call of a component's method (``call``), or a read of a component's attribute that is no method (``get``:
        a value, as the check's stand-in gives it, or a kit object, whose methods are then calls)."""
        try:
            if request.get("op") == "get":
                method, args, kwargs = _attribute(self.components, request.get("path")), (), {}
            else:
                method = _resolve(self.components, self._handles, request.get("path"))
                args = wire.from_wire(request.get("args"))
                kwargs = wire.from_wire(request.get("kwargs"))
            if type(args) is not tuple or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
                raise wire.ProtocolError("a call's arguments are badly formed")
        except wire.ProtocolError as e:
            self.learner.kill(LearnerGone(f"the learner process broke the protocol: {e}"))
            raise self.learner.dead from None  # type: ignore[misc]
        except LookupError as e:
            return {"op": "reply", "error": wire.error_to_wire(AttributeError(str(e)))}
        try:
            value = self._in_context(request.get("origin"), method, args, kwargs, by_handler=request.get("own") is True)
        except Exception as e:  # the component's answer, raised again in the learner process
            return {"op": "reply", "error": wire.error_to_wire(e)}
        if isinstance(value, PurePath):  # a node's folder (fs_store.get_data_dir(), .data_dir), as the learner sees it
            if _FOLDER_READS.isdisjoint({getattr(method, "__name__", None), str(request.get("path"))}):
                return {"op": "reply", "error": wire.error_to_wire(TypeError(
                    f"a {type(value).__qualname__} cannot cross the grading boundary"))}
            value = self._folders.view(str(value))
        try:
            return {"op": "reply", "value": wire.to_wire(value)}
        except TypeError as e:
            known = next((i for i, kept in enumerate(self._handles) if kept is value), None)  # (channel_manager.logger,
            if known is not None:  # read at every event, is one handle)
                return {"op": "reply", "handle": known}
            if _kit_object(value) and len(self._handles) < MAX_HANDLES:  # e.g. network_graph.read_only()
                self._handles.append(value)
                return {"op": "reply", "handle": len(self._handles) - 1}
            return {"op": "reply", "error": wire.error_to_wire(TypeError(str(e)))}

    def _serve_open(self, request: dict[str, Any]) -> dict[str, Any]:
        """The learner's code opens a file of its view of a node's folder (:meth:`.node_folders.Folders.opened`), in
        the context of the event it works for."""
        announce = lambda *args: self._in_context(request.get("origin"), sys.audit, args, {})  # noqa: E731
        try:
            return self._folders.opened(request, announce)
        except node_folders.BadFiles as e:
            self._stop_for(e)

    def _apply_files(self, message: dict[str, Any]) -> None:
        """The files the learner wrote in its views of the nodes' folders, written there (``Folders.apply``)."""
        try:
            self._folders.apply(message.get("files"))
        except node_folders.BadFiles as e:
            self._stop_for(e)

    def _stop_for(self, error: node_folders.BadFiles) -> NoReturn:
        self.learner.kill(LearnerGone(str(error)))
        raise self.learner.dead from None  # type: ignore[misc]

    def _in_context(self, origin: Any, method: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any], by_handler: Optional[bool] = None) -> Any:
        """Make the call in the context of the handler call whose code (or spawned task) asked for it; ``by_handler``:
        whether the learner process says the handler's own code made it (``recorder.CALLED_BY_HANDLER``)."""
        context = self._contexts.get(origin) if type(origin) is int else None
        if context is None or origin in self._entered:
            return _told_call(by_handler, method, args, kwargs)
        self._entered.add(origin)
        try:
            return context.run(_told_call, by_handler, method, args, kwargs)
        finally:
            self._entered.discard(origin)

    def _note_waiting(self, waiting: Any, working: Any) -> None:
        """The learner process's tasks still at work, and the events its threads work or sleep for: each event's a
        stand-in task (or thread) the check waits for as for its own (``common._play_on``)."""
        from ..exercises import recorder

        for told in (waiting, working):
            if type(told) is not list or not all(type(origin) is int for origin in told):
                self.learner.kill(LearnerGone("the learner process described its tasks badly"))
                raise self.learner.dead  # type: ignore[misc]
        self.waiting, self.working = set(waiting), set(working)
        for origins, stand_ins, make in ((self.waiting, self._stand_ins, LearnerTasks),
                                         (self.working, self._thread_stand_ins, LearnerThreads)):
            for origin in origins - set(stand_ins):
                context = self._contexts.get(origin)
                keeper = context.get(recorder._RECORDING) if context is not None else None
                handling = context.get(recorder._HANDLING) if context is not None else None
                if keeper is not None and handling is not None:
                    stand_ins[origin] = make(self, origin)
                    (keeper.tasks if make is LearnerTasks else keeper.threads).append((handling, stand_ins[origin]))

    def crashed(self) -> bool:
        """The learner's node restarts as after a crash (``Recorder.crashed``): its tasks die with its process, and its
        handler's memory is put back as it was loaded (``memory.Memory``). True if any of that memory had changed."""
        if self.learner.dead is None and self.runtime is not None:
            return self._exchange({"op": "crash"}).get("forgot") is True
        return False

    def _task_blocked(self, blocked: Any) -> None:
        """A task the learner's handler spawned was refused a blocking call, and dropped unawaited: the check's world
        meets it from its loop (``TaskBlocked``, raised to the story), and so it meets this one."""
        if blocked is None or self.runtime is None:
            return
        error = self._refusal(blocked.get("error"), blocked.get("blocking")) if type(blocked) is dict else None
        if error is None:
            self.learner.kill(LearnerGone("the learner process described a refused call badly"))
            raise self.learner.dead  # type: ignore[misc]
        self.runtime.loop.call_exception_handler({"message": "a task the learner's handler spawned was refused",
                                                  "exception": error})

    def _thread_failed(self, failed: Any) -> None:
        """A thread of the learner's own (or a task its handler spawned, a callback it scheduled) raised: the check
        keeps it with the event whose handling started it (``Recorder.thread_errors``, ``task_errors``,
        ``callback_errors``), and fails the play with it, as it does in a notebook."""
        if failed is None:
            return
        context = self._contexts.get(failed.get("origin")) if type(failed) is dict else None
        if context is None:
            self.learner.kill(LearnerGone("the learner process described a thread's error badly"))
            raise self.learner.dead  # type: ignore[misc]
        context.run(_keep_thread_error, wire.error_from_wire(failed.get("error")), failed.get("what"))

    def _unawaited(self, told: Any) -> None:
        """The async functions the learner's code called without await, kept with the hand-over whose handling called
        each (``Handling.unawaited``), as the check keeps its own."""
        from ..exercises import recorder

        for item in told if type(told) is list else ():
            origin, name = item if type(item) is list and len(item) == 2 else (None, None)
            context = self._contexts.get(origin) if type(origin) is int and type(name) is str else None
            handling = context.get(recorder._HANDLING) if context is not None else None
            if handling is not None:
                handling.unawaited.append(name)

    def _outcome(self, state: dict[str, Any]) -> Any:
        """What the learner's handler did, as the world expects it; a refusal as the check's own."""
        if state.get("state") == "raised":
            refusal = self._refusal(state.get("error"), state.get("blocking"))
            if refusal is not None:
                raise refusal
        return _outcome(state)

    def _refusal(self, described: Any, blocking: Any) -> Optional[BaseException]:
        """The check's ``BlockingCall`` for a call the learner process refused (or its ``TaskBlocked``, with the event
        whose handling spawned the task), so the check tells it as it tells its own; None if it is none."""
        from ..exercises.recorder import Handling, TaskBlocked
        from ..exercises.watch import BlockingCall

        if type(described) is not dict or described.get("name") not in ("BlockingCall", "_TaskBlocked") \
                or type(blocking) is not dict:
            return None
        message, call, caught = described.get("message"), blocking.get("call"), blocking.get("caught")
        if type(message) is not str or type(call) is not str or type(caught) is not bool:
            return None
        error = BlockingCall(message[:4000], call[:100], caught)
        origin = blocking.get("origin")
        if described["name"] == "BlockingCall" or type(origin) is not int:
            return error
        context = self._contexts.get(origin)
        handling = next((v for v in (context or {}).values() if isinstance(v, Handling)), None)
        return TaskBlocked(handling.event if handling is not None else None, error)  # type: ignore[arg-type]

    # --- payment storages --------------------------------------------------------------------

    _synced: dict[str, bytes]

    def _stores(self) -> dict[str, Any]:
        return {"inbound": self.components.get("inbound_payments"),
                "outbound": self.components.get("outbound_payments")}

    def _with_storage(self, message: dict[str, Any]) -> dict[str, Any]:
        synced = self.__dict__.setdefault("_synced", {})
        storage = {}
        for kind, store in self._stores().items():
            if store is not None:
                data = store.encode()
                if data != synced.get(kind):
                    storage[kind] = wire.to_wire(data)
                    synced[kind] = data
        if storage:
            message["storage"] = storage
        return message

    def _apply_storage(self, message: dict[str, Any]) -> None:
        storage = message.get("storage")
        if storage is None:
            return
        if type(storage) is not dict or not set(storage) <= {"inbound", "outbound"}:
            self.learner.kill(LearnerGone("the learner process sent a malformed payment storage"))
            raise self.learner.dead  # type: ignore[misc]
        synced = self.__dict__.setdefault("_synced", {})
        for kind, data in storage.items():
            store = self._stores()[kind]
            try:
                raw = wire.from_wire(data)
            except Exception as e:  # ProtocolError, TypeError: not the bytes of anything
                self.learner.kill(LearnerGone(f"the learner process sent an unreadable {kind}_payments: {e}"))
                raise self.learner.dead from None  # type: ignore[misc]
            try:
                fresh = type(store).decode(raw)
            except Exception:  # (keys or records of another type: the learner's own mistake, judged from the disk
                continue  # as the check judges it, where its own encode() wrote them; this copy keeps what it had)
            with store.lock() as payments:
                payments.clear()
                payments.update(fresh.payments)
            synced[kind] = raw

    # --- wake-ups on the world's clock --------------------------------------------------------

    def _schedule(self, due_us: Any) -> None:
        """Ask the world's loop to wake the learner's loop at ``due_us`` (virtual microseconds)."""
        runtime = self.runtime
        if runtime is None or type(due_us) is not int or runtime.loop.is_closed():
            return
        runtime.loop.call_soon_threadsafe(self._arm, runtime, due_us)

    def _step_held(self) -> None:
        """Work the learner's threads held until the grader heard the handler return (and the check read what it
        stored) goes on now, at this moment, as a job of the world: its clock waits for it, as in the check."""
        runtime = self.runtime
        if runtime is None or runtime.loop.is_closed():
            return
        done = runtime.job_started()

        def step() -> None:
            try:
                if runtime is self.runtime and self.learner.dead is None:
                    self._exchange({"op": "step"})
            finally:
                done()

        runtime.loop.call_soon_threadsafe(step)

    def _arm(self, runtime: Any, due_us: int) -> None:
        if runtime is not self.runtime:
            return  # a wake-up for a world that is gone
        if self._timer is not None:
            self._timer.cancel()
        self._timer = runtime.loop.call_at(due_us / 1_000_000, self._wake, runtime)

    def _wake(self, runtime: Any) -> None:
        """On the world's loop: the learner's tasks run what is due now (their calls act on the world now)."""
        if runtime is not self.runtime or self.learner.dead is not None:
            return
        self._timer = None
        self._exchange({"op": "step"})


# The learner's calls are made through a frame that is not the kit's: to the check, whose
# rules ask "was the learner's code on the stack?" (a broadcast, say), it stands for the
# learner's own code, which is in another process.
_TRAMPOLINE: dict[str, Any] = {}
exec(compile("def learner_call(method, args, kwargs):\n    return method(*args, **kwargs)\n",  # noqa: S102
             "<learner's code, in the sandbox>", "exec"), _TRAMPOLINE)
_learner_call: Callable[..., Any] = _TRAMPOLINE["learner_call"]


def _told_call(by_handler: Optional[bool], method: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
    """The learner's call, with what its process said of who made it (``recorder.CALLED_BY_HANDLER``)."""
    from ..exercises import recorder

    token = recorder.CALLED_BY_HANDLER.set(by_handler)
    try:
        return _learner_call(method, args, kwargs)
    finally:
        recorder.CALLED_BY_HANDLER.reset(token)


def _trusted_peers() -> tuple[Any, ...]:
    """The node ids in the kit's ``TRUSTED_ZERO_CONF_PEERS``, as the grader's scenarios set them.

    The workbook imports that set (from ``ldkkit.policy``, or ``ldkkit.reference`` in older
    kits) and a scenario adds its trusted LSP while it plays: the learner's copy follows.
    """
    import importlib

    peers: set[Any] = set()
    for name in ("ldkkit.policy", "ldkkit.reference"):
        try:
            peers |= set(getattr(importlib.import_module(name), "TRUSTED_ZERO_CONF_PEERS", ()))
        except ImportError:
            continue
    return tuple(peers)


def _resolve(components: dict[str, Any], handles: list[Any], path: Any) -> Callable[..., Any]:
    """The real method a learner's call names: a public method of one of the kit's own objects.

    ``path`` starts with a component's name, or with ``#n``, the n-th kit object a call returned.
    """
    if type(path) is not list or not 2 <= len(path) <= 3 or not all(type(p) is str for p in path):
        raise wire.ProtocolError("a call names no method")
    if path[0].startswith("#") and path[0][1:].isdigit() and int(path[0][1:]) < len(handles):
        target = handles[int(path[0][1:])]
    elif path[0] in _CALLABLE:
        target = components[path[0]]
    else:
        raise LookupError(f"{path[0]} is not a component a handler can call")
    for name in path[1:-1]:
        target = _public(target, name)
        if not type(target).__module__.startswith("ldkkit."):
            raise LookupError(f"{'.'.join(path)} is not a method of a node component")
    method = _public(target, path[-1])
    if not _kit_code(method):
        raise LookupError(f"{'.'.join(path)} is not a method of a node component")
    return method


#: What gives a node's folder (the learner's view of it): ``fs_store.get_data_dir()`` and ``fs_store.data_dir``.
_FOLDER_READS = frozenset({"get_data_dir", str(["fs_store", "data_dir"])})


def _attribute(components: dict[str, Any], path: Any) -> Callable[[], Any]:
    """How to read the attribute a learner's ``component.name`` names, where it is no method: public, of a component."""
    if type(path) is not list or len(path) != 2 or not all(type(p) is str for p in path):
        raise wire.ProtocolError("a read names no attribute")
    if path[0] not in _CALLABLE:
        raise LookupError(f"{path[0]} is not a component a handler can read")
    target = components[path[0]]
    _public(target, path[1])
    return lambda: getattr(target, path[1])


def _kit_object(value: Any) -> bool:
    """An instance of one of the kit's own classes (not a function, class or module)."""
    return type(value).__module__.startswith("ldkkit.") and not isinstance(value, (type, types.ModuleType))


def _kit_code(method: Any) -> bool:
    """A method of a kit object, or a function the kit defined (a check's failing ``write``, say)."""
    real = inspect.unwrap(method) if callable(method) else None  # the check wraps methods to record them
    if inspect.ismethod(real):
        return type(real.__self__).__module__.startswith("ldkkit.")
    return isinstance(real, types.FunctionType) and (real.__module__ or "").startswith("ldkkit.")


def _public(target: Any, name: str) -> Any:
    if name.startswith("_") or not hasattr(target, name):
        raise LookupError(f"{type(target).__name__} has no attribute {name!r}")
    return getattr(target, name)


def _keep_thread_error(error: BaseException, what: Any) -> None:
    """``what`` (a thread's, a task's or a callback's) the learner's code raised, kept as the check keeps its own."""
    from ..exercises import recorder

    keeper, handling = recorder._RECORDING.get(), recorder._HANDLING.get()
    if keeper is not None and handling is not None:
        kept = {"task": keeper.task_errors, "callback": keeper.callback_errors}.get(what, keeper.thread_errors)
        kept.append((handling.event, error))


class _Answer:
    """What the learner's handler returned that is neither None nor ``ReplayEvent`` (``False``, ``"ok"``): handled, as
    the world takes it, and shown by the learner's own repr of it, as check() shows it."""

    def __init__(self, shown: str) -> None:
        self.shown = shown[:200]

    def __repr__(self) -> str:
        return self.shown


def _outcome(state: dict[str, Any]) -> Any:
    """What the learner's handler did, as the world expects it: None, ReplayEvent(), or an exception."""
    from ..events import ReplayEvent

    if state.get("state") == "returned":
        shown = state.get("answer")
        return ReplayEvent() if state.get("replay") is True else None if type(shown) is not str else _Answer(shown)
    if state.get("state") == "raised":
        raise _learner_error(state.get("error"), state.get("traceback"))
    raise LearnerGone("the learner process reported a handler state that does not exist")


def _learner_error(described: Any, trace: Any) -> BaseException:
    """The learner's exception, by class name and message (a class of that name, made here)."""
    from ..events.queue import ReturnedUnawaited

    returned = described.get("returned") if isinstance(described, dict) else None
    if described.get("name") == "ReturnedUnawaited" and type(returned) is str:  # type: ignore[union-attr]
        return ReturnedUnawaited(returned[:100])  # (the check's own error, with its own words)
    try:
        error = wire.error_from_wire(described)
    except wire.ProtocolError:
        return LearnerGone("the learner process described its error badly")
    name = described.get("name") if isinstance(described, dict) else None
    if isinstance(name, str) and name.isidentifier() and type(error) is RuntimeError and name != "RuntimeError":
        kind = type(name[:80], (Exception,), {"__module__": "learner"})
        error, came_from = kind(str(described.get("message", ""))[:4000]), error.__cause__
        error.__cause__ = came_from
    if isinstance(trace, str):
        error.add_note(f"{LEARNERS_TRACEBACK}\n{trace[-3000:]}") if hasattr(error, "add_note") else None
    return error
