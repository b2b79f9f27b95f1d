"""A node: LDK's components wired together exactly as ldk-sample wires a real one.

``Node`` carries, under the very names the seed chapter's ``handle_ldk_events`` takes
them, everything a handler needs, plus ``chain_monitor``, ``scorer`` and ``logger`` for
the background processor. Build one with :meth:`ldkkit.sim.world.World.add_node`.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, overload

from .bitcoin import Network
from .bitcoind_client import BitcoindClient
from .chain.chainmonitor import ChainMonitor
from .config import UserConfig
from .events import Event
from .events.bump_transaction import BumpTransactionEventHandler
from .fs_store import FilesystemStore
from .ln.channelmanager import ChannelManager
from .ln.peer_handler import PeerManager
from .logger import Logger
from .payment_storage import InboundPaymentInfoStorage, OutboundPaymentInfoStorage
from .routing.gossip import NetworkGraph
from .routing.router import DefaultRouter
from .routing.scoring import ProbabilisticScorer
from .sign import KeysManager
from .sim.clock import MICROS, VirtualClock
from .sweep import OutputSweeper
from .types import PublicKey

#: The order of the seed chapter's ``handle_ldk_events`` parameters, before ``event``.
HANDLER_PARAMETERS = (
    "channel_manager",
    "bitcoind_client",
    "network_graph",
    "keys_manager",
    "bump_tx_event_handler",
    "peer_manager",
    "inbound_payments",
    "outbound_payments",
    "fs_store",
    "output_sweeper",
    "network",
)


class EventLog(Sequence[tuple[float, int, Event]]):
    """What a node's handler was given: ``(simulation seconds, block height, event)`` entries, read as a list.

    Kept as three columns, each appended to: a tuple per event would be one more object for Python's garbage
    collector to follow, which costs more than the logging itself once a node has logged many events. The time
    is kept as the clock keeps it, in whole microseconds, and turned into seconds when read.

    On the world's virtual clock an event is logged as it is handed out by a bare ``list.append`` (no Python call
    of ours, the processor's costliest step per event); its time and height, which only move in the world's steps,
    are filled in by ``stamp`` just before either moves on (``VirtualClock.before_move``, ``Chain.before_block``), or
    as the log is read: the same entries as reading the clock at each event, for a call per step of the world
    instead of one per event."""

    def __init__(self) -> None:
        self._times: list[int] = []  # microseconds
        self._heights: list[int] = []
        self._events: list[Event] = []
        self._lock = threading.Lock()  # (stamped by the world's thread and by readers)
        #: The time and height now, for the events not stamped yet (set by ``recorder`` on a virtual clock).
        self._now: Optional[Callable[[], tuple[int, int]]] = None

    def record(self, time_s: float, height: int, event: Event) -> None:
        """Log ``event``, given at ``time_s`` (kept to the microsecond, as the world's clocks count)."""
        self._stamped()  # (events handed out before it and not stamped yet take the time now, each in its place)
        self._times.append(round(time_s * MICROS))
        self._heights.append(height)
        self._events.append(event)  # (last: an entry is there once its event is)

    def recorder(self, clock: VirtualClock, blocks: list[Any]) -> Callable[[Event], None]:
        """What the world calls with each event just before a handler gets it (an event queue's ``observer``), on
        ``clock``, with the chain whose ``blocks`` are given (``Chain.height``: they are only ever appended to).

        On a virtual clock it only appends the event (see the class's docstring); on a real one, whose time moves
        by itself, it appends its time and height too, one call a straight append to each column."""
        times, heights, events = self._times.append, self._heights.append, self._events.append
        if clock.is_virtual:
            self._now = lambda: (clock._now_us, len(blocks) - 1)
            return events
        now_us = clock.now_us

        def record_real_time(event: Event) -> None:
            times(now_us())
            heights(len(blocks) - 1)
            events(event)  # (last, as in ``record``)

        return record_real_time

    def stamp(self) -> None:
        """Give the events logged but not stamped yet the time and the chain's height now: they were handed out since
        the clock or the chain last moved (the world calls this just before either moves on, once per node and move:
        the time and height are only read when there is something to stamp)."""
        if len(self._events) > len(self._times) and self._now is not None:
            with self._lock:
                self._fill(*self._now())

    def _fill(self, now_us: int, height: int) -> None:
        missing = len(self._events) - len(self._times)  # (counted under the lock: an event logged meanwhile is now's)
        self._times.extend(itertools.repeat(now_us, missing))
        self._heights.extend(itertools.repeat(height, missing))

    def _stamped(self) -> int:
        """Stamp what was handed out since the world last moved with the time and height now; the entries whole.
        (Now is read under the lock: the world stamps under it too before it moves on, so a reader in another
        thread never stamps with a time the world has left.)"""
        if self._now is not None and len(self._events) > len(self._times):
            with self._lock:
                self._fill(*self._now())
        return min(len(self._times), len(self._heights), len(self._events))

    def __len__(self) -> int:
        return self._stamped()

    @overload
    def __getitem__(self, index: int) -> tuple[float, int, Event]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, int, Event]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        count = self._stamped()
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(count))]
        position = index + count if index < 0 else index
        if not 0 <= position < count:
            raise IndexError(f"event log index {index} out of range: {count} events logged")
        return self._entry(position)

    def _entry(self, position: int) -> tuple[float, int, Event]:
        return self._times[position] / MICROS, self._heights[position], self._events[position]

    def __iter__(self) -> Iterator[tuple[float, int, Event]]:
        count = self._stamped()
        seconds = (us / MICROS for us in self._times[:count])
        return zip(seconds, self._heights[:count], self._events[:count], strict=False)

    def __repr__(self) -> str:
        return f"EventLog({list(self)!r})"


class EventLogs:
    """A world's nodes' event logs, stamped together just before its clock or chain moves on (``EventLog.stamp``).
    Which have events to stamp is told by their columns' lengths, compared in C: a world of a hundred nodes moves its
    clock hundreds of times a second of payments, and a Python call per log and move cost more than the calls per
    event it saves."""

    def __init__(self) -> None:
        self._logs: list[EventLog] = []
        self._events: list[list[Event]] = []
        self._times: list[list[int]] = []

    def add(self, log: EventLog) -> None:
        if all(known is not log for known in self._logs):  # (a node restarted keeps its log)
            self._logs.append(log)
            self._events.append(log._events)
            self._times.append(log._times)

    def stamp(self) -> None:
        """``EventLog.stamp`` for each log with events to stamp."""
        logged, stamped = list(map(len, self._events)), list(map(len, self._times))
        if logged != stamped:
            for log, n_logged, n_stamped in zip(self._logs, logged, stamped, strict=True):
                if n_logged > n_stamped:
                    log.stamp()


@dataclass(eq=False)
class Node:
    """One simulated LDK node. Its attributes are ldk-sample's components."""

    name: str
    channel_manager: ChannelManager
    bitcoind_client: BitcoindClient
    network_graph: NetworkGraph
    keys_manager: KeysManager
    bump_tx_event_handler: BumpTransactionEventHandler
    peer_manager: PeerManager
    inbound_payments: InboundPaymentInfoStorage
    outbound_payments: OutboundPaymentInfoStorage
    fs_store: FilesystemStore
    output_sweeper: OutputSweeper
    network: Network
    chain_monitor: ChainMonitor
    scorer: ProbabilisticScorer
    logger: Logger
    router: DefaultRouter
    config: UserConfig
    #: The node's ``handle_ldk_events`` (the twelve-parameter function).
    handle_ldk_events: Optional[Callable[..., Any]] = None
    #: The Fn(Event) the world drives this node with: ``handle_ldk_events`` bound to this node.
    event_handler: Optional[Callable[[Event], Any]] = None
    #: Whether the world hands this node its events, runs its timers and persists it. Set it
    #: to False to pause the node (``World.crash`` crashes it); a BackgroundProcessor also takes these over.
    driven_by_world: bool = True
    #: Whether its process died (``World.crash``): what is left of it waits for ``World.restart_node``.
    crashed: bool = False
    persist: bool = True
    #: Every event handed to the handler, with when: (simulation seconds, block height, event).
    event_log: EventLog = field(default_factory=EventLog)

    @property
    def events_seen(self) -> list[Event]:
        """The events this node's handler was given, in order (replayed ones again)."""
        return [event for _, _, event in self.event_log]

    @property
    def node_id(self) -> PublicKey:
        return self.channel_manager.get_our_node_id()

    def handler_args(self) -> tuple[Any, ...]:
        """The first eleven arguments of ``handle_ldk_events``, in the seed chapter's order."""
        return tuple(getattr(self, name) for name in HANDLER_PARAMETERS)

    def bind(self, handle_ldk_events: Callable[..., Any]) -> Callable[[Event], Any]:
        """LDK's ``Fn(Event)``: ``handle_ldk_events`` with this node's components filled in."""
        return functools.partial(handle_ldk_events, *self.handler_args())

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.node_id.short()})"
