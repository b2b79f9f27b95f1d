"""The background processor: what keeps a node running, and hands every event to your handler.

Mirrors ``lightning-background-processor`` 0.1. Both of LDK's forms are here:

- :meth:`BackgroundProcessor.start` runs the loop in a thread; ``stop()`` asks it to exit
  and waits, ``join()`` waits. Both return, or raise the error that ended the loop.
- :func:`process_events_async` is the same loop as a coroutine, to run on an event loop
  (Jupyter's, with ``asyncio.create_task``). :class:`ExitSignal` gives the usual
  ``sleeper`` and stop switch, as ldk-sample's tokio ``watch`` channel does.

Each iteration hands the ChannelManager's, then the ChainMonitor's events to the handler,
lets the PeerManager send messages, then waits for new events or 100 ms. After waking it
persists the ChannelManager if needed and runs LDK's timers. Before your handler sees a
``PaymentPathFailed`` or a probe or path event, LDK updates the network graph and the
scorer with it, as the real processor does.

On the world's virtual clock the waits take no real time, so two simulated hours run in
a fraction of a second and fire exactly the timer ticks LDK would.

The handler is LDK's ``Fn(Event)``: usually ``node.bind(handle_ldk_events)``, a
``functools.partial`` of the seed chapter's function. It may be plain or ``async``. It
may return (or raise) ``ReplayEvent`` to have the event handed over again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Optional

from .events import Event, PathFailure, ReplayEvent
from .events.queue import EventHandlerError, ReturnedUnawaited, answer
from .persist import (
    CHANNEL_MANAGER_PERSISTENCE_KEY,
    NETWORK_GRAPH_PERSISTENCE_KEY,
    SCORER_PERSISTENCE_KEY,
)
from .sim.clock import MICROS
from .sim.quiet_loop import QuietLoop
from .sim.runtime import Participant
from .wakers import never, take_wake

#: LDK's timer intervals, in seconds (lightning-background-processor 0.1, release build).
FRESHNESS_TIMER = 60
PING_TIMER = 10
ONION_MESSAGE_HANDLER_TIMER = 10
FIRST_NETWORK_PRUNE_TIMER = 60
NETWORK_PRUNE_TIMER = 3600
SCORER_PERSIST_TIMER = 300
REBROADCAST_TIMER = 30
FASTEST_TIMER = min(FRESHNESS_TIMER, PING_TIMER, SCORER_PERSIST_TIMER, FIRST_NETWORK_PRUNE_TIMER, REBROADCAST_TIMER)
#: The sync loop's longest wait per iteration.
POLL_INTERVAL_S = 0.1
#: A handler slower than this (in real seconds) gets a warning in the log.
SLOW_HANDLER_WARNING_S = 1.0

_MODULE = "ldkkit::background_processor"


class GossipSync:
    """Mirrors ``lightning_background_processor::GossipSync``: where the network graph comes from."""

    def __init__(self, network_graph: Any, kind: str) -> None:
        self.network_graph = network_graph
        self.kind = kind

    @classmethod
    def p2p(cls, network_graph: Any) -> GossipSync:
        """``GossipSync::P2P``: the graph is learnt from peers (what ldk-sample uses)."""
        return cls(network_graph, "p2p")

    @classmethod
    def rapid(cls, network_graph: Any) -> GossipSync:
        return cls(network_graph, "rapid")

    @classmethod
    def none(cls) -> GossipSync:
        return cls(None, "none")

    def __repr__(self) -> str:
        return f"GossipSync.{self.kind}(...)"


# --- what LDK does with events before your handler sees them (§4.5) -----------------------------


def handle_network_graph_update(network_graph: Any, event: Event) -> None:
    """Mirrors ``handle_network_graph_update``: apply a failed path's update to the graph."""
    match event:
        case Event.PaymentPathFailed(failure=PathFailure.OnPath(network_update=update)) if update is not None:
            network_graph.handle_network_update(update)


def update_scorer(scorer: Any, event: Event, duration_since_epoch: timedelta) -> bool:
    """Mirrors ``update_scorer``: teach the scorer from a path or probe. True if it changed."""
    match event:
        case Event.PaymentPathFailed(path=path, short_channel_id=scid) if scid is not None:
            scorer.payment_path_failed(path, scid, duration_since_epoch)
        case Event.PaymentPathFailed(path=path, payment_failed_permanently=True):
            # The recipient rejected it: every hop had the liquidity to get it there.
            scorer.probe_successful(path, duration_since_epoch)
        case Event.PaymentPathSuccessful(path=path):
            scorer.payment_path_successful(path, duration_since_epoch)
        case Event.ProbeSuccessful(path=path):
            scorer.probe_successful(path, duration_since_epoch)
        case Event.ProbeFailed(path=path, short_channel_id=scid) if scid is not None:
            scorer.probe_failed(path, scid, duration_since_epoch)
        case _:
            return False
    return True


#: The events LDK looks at itself before handing them on.
_LDK_HANDLES_FIRST = frozenset(
    (Event.PaymentPathFailed, Event.PaymentPathSuccessful, Event.ProbeSuccessful, Event.ProbeFailed)
)


# --- the loop body both forms share (LDK's ``define_run_body!``) ---------------------------------


class _Timer:
    """One of LDK's timers.

    The thread form checks ``last.elapsed().as_secs() > interval``: whole seconds, so a 60 s
    timer fires at the first poll at or after 61 s. The async form waits on a sleeper of
    ``interval`` seconds: it fires at the first poll once that sleep is over.
    """

    def __init__(self, interval_s: float, now_us: int, whole_seconds: bool) -> None:
        self._slack_us = MICROS if whole_seconds else 0
        self._interval_us = round(interval_s * MICROS)
        self.last_us = now_us

    # The threshold is kept up to date as the timer is set, since the loop asks for it at every poll.
    @property
    def last_us(self) -> int:
        return self._last_us

    @last_us.setter
    def last_us(self, value: int) -> None:
        self._last_us = value
        self.period_us = self._interval_us + self._slack_us  #: from one tick to the next, while nothing else wakes it
        self.threshold_us = value + self.period_us  #: the first moment it counts as elapsed

    @property
    def interval_us(self) -> int:
        return self._interval_us

    @interval_us.setter
    def interval_us(self, value: int) -> None:
        self._interval_us = value
        self.last_us = self._last_us


class _RunBody(QuietLoop):
    """The state and steps of the processor loop, shared by the thread and the coroutine."""

    poll_interval_s = POLL_INTERVAL_S

    def __init__(
        self, persister: Any, event_handler: Callable[[Event], Any], chain_monitor: Any, channel_manager: Any,
        gossip_sync: Optional[GossipSync], peer_manager: Any, logger: Any, scorer: Any,
        fetch_time: Callable[[], Optional[timedelta]], whole_seconds: bool,
    ) -> None:
        self.persister = persister
        self.user_handler = event_handler
        self.chain_monitor = chain_monitor
        self.channel_manager = channel_manager
        self.network_graph = gossip_sync.network_graph if gossip_sync is not None else None
        self.peer_manager = peer_manager
        self.logger = logger
        self.scorer = scorer
        self.fetch_time = fetch_time
        self.clock = channel_manager.clock
        self.runtime = getattr(channel_manager, "runtime", None)
        self.timer_counts: Counter[str] = Counter()
        self.events_handled = 0
        #: How an async handler's (timed) coroutine is run: None to hand it back, for the caller to await
        #: (the async form); the thread form runs it to the end on the world's runtime.
        self.run_awaitable: Optional[Callable[[Awaitable[Any]], Any]] = None
        now = self.clock.now_us()
        self.timers = {
            name: _Timer(interval, now, whole_seconds) for name, interval in (
                ("freshness", FRESHNESS_TIMER), ("ping", PING_TIMER), ("network_prune", FIRST_NETWORK_PRUNE_TIMER),
                ("scorer_persist", SCORER_PERSIST_TIMER), ("rebroadcast", REBROADCAST_TIMER))
        }
        self.have_decayed_scorer = False
        #: Set by the form: how its wait registers its wake-up on the futures it sleeps on (see ``quiet_wake``).
        self.arm_wakeup: Optional[Callable[[list[Any]], None]] = None
        self._handed_over: Optional[BaseException] = None  # what a quiet wake met, for the loop to raise
        self._timer_actions = {"freshness": channel_manager.timer_tick_occurred,
                               "ping": peer_manager.timer_tick_occurred,
                               "rebroadcast": chain_monitor.rebroadcast_pending_claims}
        #: Set when the node's process dies (``World.crash``): the loop stops where it is, with no last persist.
        self.crashed = False
        #: What the loop hands each event to, and when the time of the next one started (see ``_decorate``).
        self.decorated = self._decorate()
        self.since = time.perf_counter()

    def _decorate(self) -> Callable[[Event], Any]:
        """Mirrors the ``event_handler`` closure of ``BackgroundProcessor::start`` (``async_event_handler`` in
        ``process_events_async``): LDK's own updates first, then your handler, timed for the slow-handler warning.

        It runs once per event, so it is a closure over what it uses (no method to bind), and it reads the clock
        once: an event's time runs from the end of the one before to the end of your handler (from the start of the
        hand-over for the first, from the end of LDK's own updates for an event they saw first: ``since``). What
        lies between two events, the event log's entry, takes microseconds against the warning's second; two clock
        readings were a quarter of the processor's time per event (``bench/background_processor.py``)."""
        user_handler, learn_from, ldk_first = self.user_handler, self._learn_from, _LDK_HANDLES_FIRST
        perf_counter, slow_s = time.perf_counter, SLOW_HANDLER_WARNING_S  # (as they are when the processor starts)

        def decorated(event: Event) -> Any:
            if type(event) in ldk_first:
                learn_from(event)
                self.since = perf_counter()  # (LDK's updates, and the scorer's persist, are not your handler's)
            result = user_handler(event)
            if result is not None and inspect.isawaitable(result):
                timed = self._timed(result, event, self.since)
                return timed if self.run_awaitable is None else self.run_awaitable(timed)
            now = perf_counter()
            if now - self.since > slow_s:
                self._warn_slow(event, now - self.since)
            self.since = now
            self.events_handled += 1
            return result

        return decorated

    def hand_over(self, provider: Any) -> None:
        """``provider.process_pending_events`` (the ChannelManager's or the ChainMonitor's), the clock of its first
        event starting now."""
        self.since = time.perf_counter()
        provider.process_pending_events(self.decorated)

    def _learn_from(self, event: Event) -> None:
        """LDK's updates before your handler sees a path or probe event: the graph, then the scorer."""
        if self.network_graph is not None:
            handle_network_graph_update(self.network_graph, event)
        now = self.fetch_time()
        if self.scorer is not None and now is not None and update_scorer(self.scorer, event, now):
            self._persist_logged(SCORER_PERSISTENCE_KEY, self.scorer)

    async def _timed(self, awaitable: Awaitable[Any], event: Event, started: float) -> Any:
        result = answer(await awaitable)  # (the thread form hands the queue its final answer: never one to await)
        if isinstance(result, ReturnedUnawaited):
            raise result  # (the handler's error: the queue names the event)
        now = time.perf_counter()
        if now - started > SLOW_HANDLER_WARNING_S:
            self._warn_slow(event, now - started)
        self.since = now
        self.events_handled += 1
        return result

    def _warn_slow(self, event: Event, elapsed: float) -> None:
        self.logger.warn(_MODULE, f"The event handler took {elapsed:.1f} s on {type(event).__qualname__}; "
                                  "nothing else was processed meanwhile")

    def startup(self) -> None:
        self.channel_manager.timer_tick_occurred()
        self.chain_monitor.rebroadcast_pending_claims()
        self.timer_counts.update(("freshness", "rebroadcast"))  # the startup calls count as those timers' ticks

    def persist_manager(self) -> None:
        """Persist the ChannelManager; an error here ends the loop, as in LDK."""
        self.persister.write("", "", CHANNEL_MANAGER_PERSISTENCE_KEY, self.channel_manager.encode())

    def _persist_logged(self, key: str, component: Any) -> None:
        """Persist the graph or scorer; LDK only logs a failure here, since they can be rebuilt."""
        try:
            self.persister.write("", "", key, component.encode())
        except Exception as e:  # logged, not raised: LDK carries on without them
            self.logger.error(_MODULE, f"Error: Failed to persist {key}, check your disk and permissions {e}")

    def after_wake(self) -> None:
        """Persist if needed, then run whichever timers are due (§4.4 steps 6-13)."""
        if self._handed_over is not None:  # a quiet wake's persist failed: the loop meets that error here
            error, self._handed_over = self._handed_over, None
            raise error
        if self.channel_manager.get_and_clear_needs_persistence():
            self.persist_manager()
        self._run_timers(self.clock.now_us())

    def _run_timers(self, now: int, quiet: bool = False, due: Optional[set[str]] = None) -> bool:
        """The due timers, in LDK's order. ``quiet``: the runtime runs them while the loop sleeps (see
        ``quiet_tick``); a timer whose action raises is then undone and False returned, so that the loop
        wakes, runs it itself, and meets the error there."""
        due = self._due(now) if due is None else due  # pragma: no mutate  (the same set: no timer's work moves another)
        for name in ("freshness", "ping"):
            if name in due and not self._timer(name, now, quiet):
                return False
        if "network_prune" in due:
            self._fire("network_prune", now)
            if self.network_graph is not None:
                self.network_graph.remove_stale_channels_and_tracking_with_time(self.clock.unix_time())
                self._persist_logged(NETWORK_GRAPH_PERSISTENCE_KEY, self.network_graph)
                # LDK's have_pruned: hourly once a graph was pruned; with no graph, the first interval stays.
                self.timers["network_prune"].interval_us = NETWORK_PRUNE_TIMER * MICROS
        if not self.have_decayed_scorer and not quiet:  # (the loop's first wake; quiet_tick waits for it)
            if self.scorer is not None and (t := self.fetch_time()) is not None:
                self.scorer.time_passed(t)
            self.have_decayed_scorer = True
        if "scorer_persist" in due:
            self._fire("scorer_persist", now)
            if self.scorer is not None:
                if (t := self.fetch_time()) is not None:
                    self.scorer.time_passed(t)
                self._persist_logged(SCORER_PERSISTENCE_KEY, self.scorer)
        return "rebroadcast" not in due or self._timer("rebroadcast", now, quiet)

    def _timer(self, name: str, now: int, quiet: bool) -> bool:
        """Fire due timer ``name``; False if its action raised while quiet (undone)."""
        timer = self.timers[name]
        last_us = timer._last_us  # (not the property: every tick comes here)
        self._fire(name, now)
        try:
            self._timer_actions[name]()
        except Exception:
            if not quiet:
                raise
            timer.last_us = last_us
            self.timer_counts[name] -= 1
            return False
        return True

    def _work_left(self) -> bool:
        """Whether the top of the loop would find anything to do: events, or messages to send."""
        return (self.channel_manager.has_pending_events() or self.chain_monitor.has_pending_events()
                or bool(self.channel_manager.pending_msg_events))

    def _due(self, now_us: int) -> set[str]:
        due = set()  # (a plain loop: asked at every wake and quiet tick)
        for name, timer in self.timers.items():
            if now_us >= timer.threshold_us:
                due.add(name)
        return due

    def _fire(self, name: str, now_us: int) -> None:
        """A due timer fires: it counts, and its interval starts again now."""
        self.timers[name].last_us = now_us
        self.timer_counts[name] += 1

    def on_exit(self) -> None:
        """Persist the manager, scorer and graph one last time (errors are returned); nothing if the process died."""
        if self.crashed:
            return
        self.persist_manager()
        if self.scorer is not None:
            self.persister.write("", "", SCORER_PERSISTENCE_KEY, self.scorer.encode())
        if self.network_graph is not None:
            self.persister.write("", "", NETWORK_GRAPH_PERSISTENCE_KEY, self.network_graph.encode())

    def replay_pending(self) -> bool:
        """Whether the handler asked for an event to come back: retry it at the next poll."""
        return self.channel_manager.replay_requested() or self.chain_monitor.replay_requested()

    def futures(self) -> list[Any]:
        return [self.channel_manager.get_event_or_persistence_needed_future(), self.chain_monitor.get_update_future()]


def _default_fetch_time(clock: Any) -> Callable[[], timedelta]:
    return clock.duration_since_epoch


def _announce_error(body: _RunBody, error: BaseException) -> None:
    """Show a handler's error at once, in the notebook, without waiting for stop() or join()."""
    body.logger.error(_MODULE, str(error))
    if getattr(body.runtime, "announce_errors", True):
        print(f"BackgroundProcessor stopped: {error}\nCall stop() or join() to get the exception.", file=sys.stderr)


# --- the threaded form --------------------------------------------------------------------------


class _ThreadState:
    """What the processor thread owns. Kept apart from the BackgroundProcessor object, so
    that the object can be garbage-collected (and so stopped) while the thread runs."""

    def __init__(self, body: _RunBody) -> None:
        self.body = body
        self.stop_flag = threading.Event()
        self.error: Optional[BaseException] = None
        self.participant: Optional[Participant] = None
        if body.runtime is not None:
            self.participant = body.runtime.join(f"the BackgroundProcessor of {body.logger.name or 'a node'}")
            self.participant.on_deadline = body.quiet_tick
            self.participant.on_wake = body.quiet_wake
            body.arm_wakeup = self._arm
        body.run_awaitable = self._run_async  # LDK's sync loop blocks on the handler: an async one is run through

    def run(self) -> None:
        body = self.body
        turn = _turn(body.runtime)
        try:
            with turn():
                body.startup()
            while True:
                with turn():
                    body.hand_over(body.channel_manager)
                    body.hand_over(body.chain_monitor)
                    body.peer_manager.process_events()
                if self.stop_flag.is_set():
                    break
                self._wait()
                if self.stop_flag.is_set():
                    break
                with turn():
                    body.after_wake()
            with turn():
                body.on_exit()
        # An error ends the loop at once, with no final persist: LDK's loop returns its error with `?`.
        except EventHandlerError as e:
            self.error = e
            _announce_error(body, e)
        except BaseException as e:  # kept for stop()/join(), never lost in the thread
            self.error = e
            body.logger.error(_MODULE, f"The background processor stopped: {e!r}")
        finally:
            if self.participant is not None:
                body.runtime.leave(self.participant)

    def _run_async(self, awaitable: Awaitable[Any]) -> Any:
        """Run an async handler on the world's runtime (ldk-sample's tokio), waiting idle meanwhile."""
        runtime = self.body.runtime

        async def capture() -> Any:
            try:
                return await awaitable
            except BaseException as e:  # reported by the event queue, with the event named
                return e

        if runtime is None:
            return asyncio.run(capture())
        participant = self.participant
        participant.handler_started()
        try:
            future = asyncio.run_coroutine_threadsafe(capture(), runtime.loop)
            future.add_done_callback(lambda _: participant.handler_done())
            stopping = self.stop_flag.is_set
            with runtime.turn_released():
                while not future.done() and not stopping():  # idle while the world runs it
                    participant.wait(None, lambda: future.done() or stopping())
        finally:
            participant.in_handler = False  # (stopped meanwhile: the coroutine is abandoned below)
        return future.result() if future.done() else _abandon(future)

    def _arm(self, futures: list[Any]) -> None:
        wake = self.participant.wake  # type: ignore[union-attr]
        for future in futures:  # LDK's Sleeper: its wake-ups take nothing; its wait's return does (take_wake)
            future.watch(wake, never)

    def _wait(self) -> None:
        body = self.body
        futures = body.futures()
        if body.replay_pending():  # retry a replayed event at the next poll, not in a hot loop
            futures = []
        ready = lambda: self.stop_flag.is_set() or any(f.is_complete() for f in futures)  # noqa: E731
        if self.participant is None:
            deadline = POLL_INTERVAL_S
            end = time.monotonic() + deadline
            while not ready() and time.monotonic() < end:
                time.sleep(0.005)
            return
        self._arm(futures)
        now = body.clock.now_us()
        poll_us = round(POLL_INTERVAL_S * MICROS)
        deadline_us = body.next_deadline_us(now, POLL_INTERVAL_S) if futures else now + poll_us
        self.participant.wait(deadline_us, ready)
        take_wake(futures)


class BackgroundProcessor:
    """Mirrors ``lightning_background_processor::BackgroundProcessor``.

    Like LDK's ``#[must_use]`` struct, it is stopped cleanly when garbage-collected or
    when the interpreter exits, and never leaves its thread behind.
    """

    def __init__(self, state: _ThreadState, thread: threading.Thread) -> None:
        self._state = state
        self._thread = thread
        # Called when the object is garbage-collected, or at interpreter exit at the latest.
        self._finalizer = weakref.finalize(self, _stop_thread, state, thread)

    @classmethod
    def start(
        cls, persister: Any, event_handler: Callable[[Event], Any], chain_monitor: Any, channel_manager: Any,
        onion_messenger: Any, gossip_sync: Optional[GossipSync], peer_manager: Any, logger: Any, scorer: Any,
    ) -> BackgroundProcessor:
        """Mirrors ``BackgroundProcessor::start``: run the loop in a new thread."""
        body = _RunBody(persister, event_handler, chain_monitor, channel_manager, gossip_sync, peer_manager, logger,
                        scorer, _default_fetch_time(channel_manager.clock), whole_seconds=True)
        _take_over(channel_manager, body)
        state = _ThreadState(body)
        thread = threading.Thread(target=state.run, name="ldk-background-processor", daemon=True)
        thread.start()
        return cls(state, thread)

    @property
    def timer_counts(self) -> Counter[str]:
        """How many times each of LDK's timers has fired (the startup tick included)."""
        return self._state.body.timer_counts

    @property
    def events_handled(self) -> int:
        return self._state.body.events_handled

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Mirrors ``BackgroundProcessor::stop``: ask the loop to exit, wait, raise what ended it."""
        self._finalizer.detach()
        _stop_thread(self._state, self._thread)
        self._raise()

    def join(self) -> None:
        """Mirrors ``BackgroundProcessor::join``: wait for the loop to end, raise what ended it."""
        while self._thread.is_alive():
            self._thread.join(0.1)
        self._finalizer.detach()
        _release(self._state.body.channel_manager)
        self._raise()

    def _raise(self) -> None:
        if self._state.error is not None:
            error, self._state.error = self._state.error, None
            raise error

    def __repr__(self) -> str:
        status = "running" if self.is_running() else "stopped"
        return f"BackgroundProcessor({status}, {self.events_handled} events handled)"


def _turn(runtime: Any) -> Callable[[], Any]:
    """The world's turn for a participant's work (nothing to take when there is no world)."""
    return runtime.participant_turn if runtime is not None else contextlib.nullcontext


def _stop_thread(state: _ThreadState, thread: threading.Thread) -> None:
    state.stop_flag.set()
    if state.participant is not None:
        state.participant.stop()
    if thread is not threading.current_thread():
        runtime = state.participant.runtime if state.participant is not None else None
        if runtime is not None and runtime.turn.held_here():  # (stopped from inside the world's turn, as by a story's
            with runtime.turn_released():                   # step: its last iteration and persist need the turn)
                thread.join()
        else:
            thread.join()
    _release(state.body.channel_manager)


#: The loop of the processor running each ChannelManager (``_take_over``): what a crash of its node ends. Held
#: weakly on both sides: the loop holds its manager, so a loop held here would keep every manager a processor ever
#: ran, and its world with it, for the life of the process (each capstone check's forty worlds).
_LOOPS: weakref.WeakKeyDictionary[Any, weakref.ref[_RunBody]] = weakref.WeakKeyDictionary()


def _take_over(channel_manager: Any, body: _RunBody) -> None:
    """While a processor runs a node, the world leaves that node's events and timers to it."""
    channel_manager.background_processor_attached = True
    _LOOPS[channel_manager] = weakref.ref(body)


def _release(channel_manager: Any) -> None:
    channel_manager.background_processor_attached = False


def process_died(channel_manager: Any) -> None:
    """Not LDK's: the node's process died (``World.crash``), so the loop of the processor running it ends with no
    last persist (a crash runs no code of the process's own)."""
    loop = _LOOPS.get(channel_manager)
    body = loop() if loop is not None else None  # (none: its thread is over, and nothing held it)
    if body is not None:
        body.crashed = True


# --- the async form ---------------------------------------------------------------------------

_current_participant: contextvars.ContextVar[Optional[Participant]] = contextvars.ContextVar(
    "ldkkit_participant", default=None
)


class ExitSignal:
    """The sleeper and stop switch ldk-sample builds from a tokio ``watch`` channel.

    ``exit.sleeper`` is LDK's ``sleeper``: ``await exit.sleeper(duration)`` returns after
    ``duration`` on the world's clock (``False``), or as soon as ``exit.stop()`` is called
    (``True``, which ends ``process_events_async``).
    """

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._participants: set[Participant] = set()

    def stop(self) -> None:
        self._stopped.set()
        for participant in list(self._participants):
            participant.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    async def sleeper(self, duration: timedelta | float) -> bool:
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        participant = _current_participant.get()
        if self._stopped.is_set():
            return True
        if participant is None:  # outside process_events_async: plain real-time sleep
            end = time.monotonic() + seconds
            while not self._stopped.is_set() and time.monotonic() < end:
                await asyncio.sleep(min(0.01, max(0.0, end - time.monotonic())))
            return self._stopped.is_set()
        clock = participant.runtime.clock
        deadline = clock.now_us() + round(seconds * MICROS)
        self._participants.add(participant)  # kept: stop() must also end its waits on the world
        await asyncio.get_running_loop().run_in_executor(
            None, participant.wait, deadline, lambda: self._stopped.is_set() or participant.wake_pending
        )
        return self._stopped.is_set()


async def process_events_async(
    persister: Any, event_handler: Callable[[Event], Any], chain_monitor: Any, channel_manager: Any,
    onion_messenger: Any, gossip_sync: Optional[GossipSync], peer_manager: Any, logger: Any, scorer: Any,
    sleeper: Callable[[timedelta], Awaitable[bool]], mobile_interruptable_platform: bool,
    fetch_time: Callable[[], Optional[timedelta]],
) -> None:
    """Mirrors ``lightning_background_processor::process_events_async``: the loop as a coroutine.

    Ends when ``sleeper`` resolves to ``True``; raises what ended it otherwise (a failure
    to persist the ChannelManager, or an error from the handler, with the event named).
    """
    body = _RunBody(persister, event_handler, chain_monitor, channel_manager, gossip_sync, peer_manager, logger,
                    scorer, fetch_time, whole_seconds=False)
    runtime = body.runtime
    participant = runtime.join(f"process_events_async of {logger.name or 'a node'}") if runtime else None
    if participant is not None:  # its quiet timers and wakes run while it sleeps, as the thread form's do
        participant.on_deadline = body.quiet_tick
        participant.on_wake = body.quiet_wake
        body.arm_wakeup = functools.partial(_arm_async, body, participant)
    token = _current_participant.set(participant)
    _take_over(channel_manager, body)
    poll_s = POLL_INTERVAL_S if mobile_interruptable_platform else FASTEST_TIMER
    turn = _turn(runtime)
    try:
        with turn():
            body.startup()
        while True:
            try:
                with turn():
                    await channel_manager.process_pending_events_async(_on_runtime(body, runtime, participant))
                    await chain_monitor.process_pending_events_async(_on_runtime(body, runtime, participant))
                    peer_manager.process_events()
            except EventHandlerError as e:
                _announce_error(body, e)
                raise
            futures = [] if body.replay_pending() else body.futures()
            if participant is not None:
                _arm_async(body, participant, futures)
            if any(f.is_complete() for f in futures):
                exit_requested = False
            else:
                wait_s = poll_s if futures else POLL_INTERVAL_S
                if participant is not None and body.clock.is_virtual and futures:
                    now = body.clock.now_us()
                    wait_s = (body.next_deadline_us(now, POLL_INTERVAL_S) - now) / MICROS
                exit_requested = await sleeper(timedelta(seconds=wait_s))
                take_wake(futures)  # (LDK's Selector polls the futures before the sleeper)
            if exit_requested:
                break
            with turn():
                body.after_wake()
        with turn():
            body.on_exit()
    finally:
        _current_participant.reset(token)
        if participant is not None:
            runtime.leave(participant)
        _release(channel_manager)


def _arm_async(body: _RunBody, participant: Participant, futures: list[Any]) -> None:
    participant.wake_pending = False
    for future in futures:
        future.watch(lambda: _flag_wake(participant), never)


def _flag_wake(participant: Participant) -> None:
    participant.wake_pending = True
    participant.wake()


def _on_runtime(body: _RunBody, runtime: Any, participant: Optional[Participant]) -> Callable[[Event], Any]:
    """Run async handlers on the world's runtime (ldk-sample's tokio), so the tasks they spawn live on. Made as a
    hand-over starts: the clock of its first event starts now (see ``_RunBody._decorate``)."""
    body.since = time.perf_counter()

    def handler(event: Event) -> Any:
        result = body.decorated(event)
        if not inspect.isawaitable(result) or runtime is None or participant is None:
            return result
        return _await_on_world(result, runtime, participant)

    return handler


async def _await_on_world(awaitable: Awaitable[Any], runtime: Any, participant: Participant) -> Any:
    """Await a handler's coroutine on the world's loop, idle meanwhile so the world can run it."""
    participant.handler_started()
    try:
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), runtime.loop)
        future.add_done_callback(lambda _: participant.handler_done())  # busy again the moment it is done
        with runtime.turn_released():
            with runtime.cond_lock:
                if not future.done():
                    participant.idle = True
                    runtime.cond.notify_all()
            waiting = asyncio.wrap_future(future)
            while not waiting.done():
                if participant.stopping:
                    return _abandon(future)
                await asyncio.wait({waiting}, timeout=0.05)  # real time: only the stop request is polled
            return waiting.result()
    finally:
        participant.in_handler = False


def _abandon(future: Any) -> ReplayEvent:
    """Stopping while the world still runs a handler's coroutine (only the world's thread runs it):
    cancel it, and keep its event queued, to be handed over again. Nothing is lost, nothing waits forever."""
    future.cancel()
    return ReplayEvent()


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
