"""The learner process: runs a workbook's cells, then answers the grader's events with its handler.

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
import inspect
import os
import sys
import time
import traceback
import types
from typing import Any, Optional

from ..exercises.watch import blocking_call
from ..sim.runtime import DelegatingSelector
from . import jail as jail_module
from . import wire

HANDLER_NAME = "handle_ldk_events"
COMPONENTS = ("channel_manager", "bitcoind_client", "network_graph", "keys_manager", "bump_tx_event_handler",
              "peer_manager", "fs_store", "output_sweeper")
#: Imported before the sandbox closes, so a workbook's imports work whatever it can read.
PRELOAD = ("asyncio", "logging", "dataclasses", "json", "random", "secrets", "hashlib", "datetime", "typing",
           "collections", "functools", "itertools", "math", "enum", "ldkkit", "ldkkit.events", "ldkkit.bitcoin",
           "ldkkit.types", "ldkkit.errors", "ldkkit.policy", "ldkkit.payment_storage", "ldkkit.invoice", "ldkkit.ser",
           "ldkkit.bitcoind_client", "ldkkit.fs_store", "ldkkit.logger", "ldkkit.sim.world", "ldkkit.scenarios",
           "ldkkit.background_processor", "ldkkit.exercises",
           # What the kit imports only when first needed (a PublicKey checks its point with coincurve, say): the
           # learner may not be able to read the virtual environment once the sandbox has closed.
           "coincurve", "embit.bip32", "embit.compact", "embit.networks", "embit.script", "embit.transaction",
           "bolt11")


def _stub_reference() -> types.ModuleType:
    """``ldkkit.reference`` as the learner process sees it: the constants, never the handlers."""
    stub = types.ModuleType("ldkkit.reference", "The reference handlers are not available while grading.")

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the kit's reference handlers are not available while grading: write your own")

    stub.MIN_FUNDING_SATOSHIS_EXCLUSIVE = 5_000_000  # type: ignore[attr-defined]
    stub.TRUSTED_ZERO_CONF_PEERS = set()  # type: ignore[attr-defined]
    stub.handle_ldk_events = stub.ldk_sample_handle_ldk_events = unavailable  # type: ignore[attr-defined]
    return stub


def _no_checks_here() -> None:
    """``check`` does nothing in the learner process: the grader runs it, and a call by another name
    (``from ldkkit.exercises import check as verify``) should not spend the workbook's time."""
    exercises = sys.modules.get("ldkkit.exercises")
    if exercises is not None:
        exercises.check = lambda *args, **kwargs: None  # type: ignore[attr-defined]


# --- the virtual-time loop --------------------------------------------------------------------


class _SteppingSelector(DelegatingSelector):
    """Never waits: when the loop has nothing due, it stops, and the grader decides when it goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: Optional[VirtualLoop] = None

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if timeout != 0 and self.loop is not None:
            self.loop.stop()  # idle until the world's clock reaches the next timer
        return self._real.select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is the grader's world clock, run in steps."""

    def __init__(self) -> None:
        selector = _SteppingSelector()
        super().__init__(selector)
        selector.loop = self
        self.now_us = 0
        self._clock_resolution = 2e-6

    def time(self) -> float:
        return self.now_us / 1_000_000

    def step(self, now_us: int) -> None:
        """Run everything due at ``now_us``; return when nothing more is (or a handler finished)."""
        self.now_us = now_us
        self.run_forever()

    def next_us(self) -> Optional[int]:
        """When this loop next has something to run: now if callbacks are ready, else its first timer."""
        if self._ready:  # type: ignore[attr-defined]
            return self.now_us
        timers = [h.when() for h in self._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        return None if not timers else max(self.now_us, round(min(timers) * 1_000_000))

    def cancel_everything(self) -> None:
        """A new world: what the old one's handler spawned is cancelled, as the old world's loop did."""
        for task in asyncio.all_tasks(self):
            task.cancel()
        for _ in range(3):
            self.run_forever()
        for handle in list(self._scheduled):  # type: ignore[attr-defined]
            handle.cancel()


# --- stand-ins for the node's components ----------------------------------------------------


#: The number of the event whose handler call (or spawned task) is running: calls name it.
_ORIGIN: contextvars.ContextVar[int] = contextvars.ContextVar("ldkkit_origin", default=0)


class Remote:
    """A component in the grader's process: attribute access builds a path, a call sends it."""

    __slots__ = ("_channel", "_path")

    def __init__(self, channel: Channel, path: tuple[str, ...]) -> None:
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Remote:
        if name.startswith("_") or len(self._path) >= 3 or (len(self._path) >= 2 and self._path[0][0] == "#"):
            raise AttributeError(name)
        return Remote(self._channel, (*self._path, name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{'.'.join(self._path)} cannot be changed from a handler")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(self._path, args, kwargs)

    def __repr__(self) -> str:
        return f"<{'.'.join(self._path)}>"


class Channel:
    """This process's end of the grading boundary."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        from ..payment_storage import InboundPaymentInfoStorage, OutboundPaymentInfoStorage

        self.fd_in, self.fd_out = fd_in, fd_out
        self.storages = {"inbound": InboundPaymentInfoStorage(), "outbound": OutboundPaymentInfoStorage()}
        self.synced: dict[str, bytes] = {}

    def send(self, message: dict[str, Any]) -> None:
        storage = {}
        for kind, store in self.storages.items():
            data = store.encode()
            if data != self.synced.get(kind):
                storage[kind] = wire.to_wire(data)
                self.synced[kind] = data
        if storage:
            message["storage"] = storage
        wire.send(self.fd_out, message)

    def receive(self) -> dict[str, Any]:
        message = wire.receive(self.fd_in, None)
        for kind, data in (message.get("storage") or {}).items():
            data = wire.from_wire(data)
            store = self.storages[kind]
            fresh = type(store).decode(data)
            with store.lock() as payments:
                payments.clear()
                payments.update(fresh.payments)
            self.synced[kind] = data
        return message

    def call(self, path: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.send({"op": "call", "path": list(path), "origin": _ORIGIN.get(), "args": wire.to_wire(tuple(args)),
                   "kwargs": wire.to_wire(dict(kwargs))})
        reply = self.receive()
        if reply.get("op") != "reply":
            raise SystemExit("the grader broke the protocol")
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        if type(reply.get("handle")) is int:  # a kit object that stays in the grader: its methods are calls
            return Remote(self, (f"#{reply['handle']}",))
        return wire.from_wire(reply.get("value"))


# --- running the workbook and the handler ------------------------------------------------------


class BlockingCall(Exception):
    """``time.sleep`` or a wait on a thread (``Event.wait()``, ``Queue.get()``...) in a handler or a task it spawned:
    as in the notebook's check, it is refused."""


def _refuse_waits(frame: Any, what: str, arg: Any) -> None:
    """A profile hook while learner code runs: a blocking wait it makes is refused (``time.sleep`` is, below)."""
    call = blocking_call(frame, what, arg)
    if call is not None and call != "time.sleep()":
        raise BlockingCall(f"{call} blocks the whole node: no other event is handled while it waits")


def display(*objs: Any, **_: Any) -> None:
    """Jupyter's ``display()``, which a workbook may call without importing it: here, each object's repr printed,
    as IPython's own display does outside a notebook."""
    for obj in objs:
        print(repr(obj))


class IPythonShell:
    """``get_ipython()`` as a graded workbook's cells call it (IPython turns ``%magic``, ``!command`` and ``name?``
    into calls on it). The grader already put the code that magics run in the workbook's namespace (``%%time``,
    ``%time x = f()``) in their place (:mod:`ldkkit.sandbox.source`); every other one does nothing here, and a
    shell command is not run (``files = !ls`` is an empty list)."""

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        return None

    def run_cell_magic(self, name: str, line: str, cell: str) -> None:
        return None

    def system(self, cmd: str) -> None:
        return None

    def getoutput(self, cmd: str, split: bool = True, depth: int = 0) -> list[str]:
        return []

    def show_usage(self) -> None:
        return None


class Learner:
    """The workbook's namespace, its handler, and the handler call in progress."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.loop = VirtualLoop()
        asyncio.set_event_loop(self.loop)
        shell = IPythonShell()
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__, "display": display,
                                          "get_ipython": lambda: shell}
        self.components = {name: Remote(channel, (name,)) for name in COMPONENTS}
        self.current: Optional[asyncio.Task[Any]] = None
        self.handling = False
        self._sleep = time.sleep
        time.sleep = self._guarded_sleep

    def _guarded_sleep(self, seconds: float) -> None:
        if self.handling:
            raise BlockingCall("time.sleep() blocks the whole node: no other event is handled while it sleeps")
        self._sleep(seconds)

    def run_cells(self, cells: list[str]) -> None:
        """Each cell in turn, as Jupyter would with errors allowed: one failing cell does not stop the rest."""
        for number, source in enumerate(cells, 1):
            try:
                code = compile(source, f"<cell {number}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                result = eval(code, self.namespace)  # noqa: S307 - the learner's own cell, in the sandbox
                if inspect.iscoroutine(result):
                    self._run_to_end(result)
            except BaseException:  # noqa: B036 - a cell's error (even SystemExit) ends that cell only
                continue

    def _run_to_end(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        for _ in range(100_000):
            self.loop.step(self.loop.now_us)
            if task.done():
                return
            due = self.loop.next_us()
            if due is None:
                task.cancel()
                return
            self.loop.now_us = due

    def handler(self) -> tuple[Optional[Any], str]:
        """The workbook's handler, if it is a function the workbook's own code defined."""
        handler = self.namespace.get(HANDLER_NAME)
        if handler is None:
            return None, "the workbook never defines handle_ldk_events"
        code = getattr(handler, "__code__", None)
        if not isinstance(handler, types.FunctionType) or code is None or not code.co_filename.startswith("<cell "):
            return None, "handle_ldk_events is not a function defined in the workbook"
        return handler, ""

    def start_event(self, handler: Any, message: dict[str, Any]) -> None:
        from ..events import Event

        event = Event.decode(wire.from_wire(message["event"]))
        network = wire.from_wire(message["network"])
        store = self.channel.storages
        args = (*[self.components[n] for n in COMPONENTS[:6]], store["inbound"], store["outbound"],
                self.components["fs_store"], self.components["output_sweeper"], network, event)

        async def run() -> Any:
            result = handler(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

        context = contextvars.copy_context()
        seq = message.get("seq")
        context.run(_ORIGIN.set, seq if type(seq) is int else 0)
        self.current = context.run(self.loop.create_task, run())  # the task keeps a copy of this context
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
        if error is not None:
            if isinstance(error, ReplayEvent):
                return {"state": "returned", "replay": True}
            text = "".join(traceback.format_exception(error)[-6:])[-3000:]
            return {"state": "raised", "error": wire.error_to_wire(error), "traceback": text}
        result = task.result()
        return {"state": "returned", "replay": isinstance(result, ReplayEvent) or result is ReplayEvent}

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
        while True:
            try:
                message = self.channel.receive()
            except wire.ProtocolError:
                return
            op = message.get("op")
            self._trust(message.get("trusted"))
            if op == "reset":
                self.loop.cancel_everything()
                self.current = None
            if op == "event":
                self.start_event(handler, message)
            if op in ("event", "step", "reset"):
                self.handling = True
                previous = sys.getprofile()
                sys.setprofile(_refuse_waits)
                try:
                    self.loop.step(int(message["now_us"]))
                finally:
                    sys.setprofile(previous)
                    self.handling = False
                self.channel.send({"op": "idle", "handler": self.state(), "next_us": self.loop.next_us()})
            elif op == "stop":
                return


def main(argv: list[str]) -> int:
    fd_in, fd_out = int(argv[1]), int(argv[2])
    for fd in (fd_in, fd_out):
        os.set_inheritable(fd, False)
    setup = wire.receive(fd_in, None)
    sys.modules["ldkkit.reference"] = stub = _stub_reference()
    import ldkkit

    ldkkit.reference = stub  # type: ignore[attr-defined]
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: S112 - a module that cannot load fails the learner's import later, as in Jupyter
            continue
    debug = os.environ.get("LDKKIT_SANDBOX_DEBUG")
    _no_checks_here()
    missing = jail_module.enter(jail_module.Jail.from_dict(setup["jail"]))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if debug else (0, 1, 2):
        os.dup2(devnull, fd)
    channel = Channel(fd_in, fd_out)
    learner = Learner(channel)
    channel.send({"op": "confined", "missing": missing})
    cells = channel.receive().get("cells")
    learner.run_cells([c for c in cells if isinstance(c, str)] if isinstance(cells, list) else [])
    handler, why = learner.handler()
    kind = None if handler is None else ("async" if inspect.iscoroutinefunction(handler) else "plain")
    channel.send({"op": "ready", "handler": kind, "why": why})
    if handler is not None:
        learner.serve(handler)
    return 0

