"""The world: nodes, the chain between them, the messages between them, and time.

A :class:`World` is the simulated Lightning network. It builds nodes wired as ldk-sample
wires a real one, carries wire messages between them on their own queue (separate from
each node's events, as in LDK's own tests), keeps the regtest chain, and runs everything
on a virtual clock, so that the same seed gives the same run every time.

Nodes the world drives get what LDK's background processor gives a real node: their
events handed to their handler, their messages sent, timer ticks every minute, and their
state persisted. A node handed to a real ``BackgroundProcessor`` is left to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import shutil
import weakref
from collections.abc import Callable
from typing import Any, Optional

from ..bitcoin import Network
from ..bitcoind_client import BitcoindClient
from ..chain.chainmonitor import ChainMonitor
from ..config import UserConfig
from ..events.bump_transaction import BumpTransactionEventHandler
from ..events.queue import EventHandlerError
from ..fs_store import FilesystemStore
from ..ln import msgs
from ..ln.channel_establishment import HTLC_UPDATES, hold
from ..ln.channelmanager import ChannelManager
from ..ln.peer_handler import PeerManager
from ..logger import Logger
from ..node import EventLogs, Node
from ..payment_storage import InboundPaymentInfoStorage, OutboundPaymentInfoStorage
from ..persist import CHANNEL_MANAGER_PERSISTENCE_KEY, InMemoryStore
from ..routing.gossip import NetworkGraph
from ..routing.router import DefaultRouter, LightningError
from ..routing.scoring import ProbabilisticScorer, ProbabilisticScoringFeeParameters
from ..ser import Record
from ..sign import KeysManager
from ..sweep import OutputSweeper
from ..types import PublicKey
from .chain import MINER_SCRIPT, Chain
from .clock import EPOCH_UNIX_SECONDS, MICROS, RealClock, VirtualClock
from .quiet_loop import tick_changes_nothing
from .runtime import Runtime
from .scratch import scratch_dir

#: Simulated seconds between blocks, as on Bitcoin's main chain.
BLOCK_INTERVAL_S = 600
#: What each node's wallet starts with: 1 BTC.
DEFAULT_FUNDS_SAT = 100_000_000
#: LDK's ``FRESHNESS_TIMER``, ``PING_TIMER`` and ``REBROADCAST_TIMER``, in seconds.
FRESHNESS_TIMER = 60
PING_TIMER = 10
REBROADCAST_TIMER = 30
#: How soon a replayed event is handed over again. LDK retries at the processor's next wake-up: at once if
#: something notified it (process_events_body notifies only when it has more to do), else when the thread form's
#: 100 ms poll ends (``Sleeper::wait_timeout``). The world always takes the 100 ms: on a virtual clock, an
#: immediate retry by a handler that always replays would stop time.
REPLAY_RETRY_S = 0.1
#: How far the loop's clock may land past a timer's moment (its sleeps are in float seconds).
_TIMER_SLACK_US = 10


class World:
    """A simulated Lightning network on a regtest chain, with a virtual clock by default."""

    def __init__(self, seed: int = 0, *, real_time: bool = False, network: Network = Network.Regtest) -> None:
        self.seed = seed
        self.network = network
        self.clock = RealClock() if real_time else VirtualClock()
        self.runtime = Runtime(self.clock)
        self.chain = Chain(self.clock)
        # The nodes' event logs take an event's time and height as they move on, not at each event (see EventLog).
        self._logs = EventLogs()
        self.clock.before_move = self.chain.before_block = self._logs.stamp
        self.nodes: dict[str, Node] = {}
        self._by_id: dict[PublicKey, Node] = {}
        self._connections: set[frozenset[PublicKey]] = set()
        #: Called with a node whose process dies (``crash``): what lives only in its process ends with it.
        self.on_crash: list[Callable[[Node], None]] = []
        #: Called with a node restarted from disk, before it reconnects to its peers (ldk-sample's start-up order).
        self.on_start: list[Callable[[Node], None]] = []
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        #: When each node's timers next fire, and how many seconds of its schedule will then have passed (its
        #: ticks come every REBROADCAST_TIMER from when it was attached); and the one task that runs them all.
        self._next_tick: dict[str, tuple[int, int]] = {}
        self._timer_task: Optional[asyncio.Task[None]] = None
        self._timers_wake: Optional[asyncio.TimerHandle] = None  # the timers' wake-up, while they sleep
        self.errors: list[BaseException] = []
        self.message_log: list[tuple[float, str, str, str]] = []
        self._announced: set[int] = set()
        self._early_updates: dict[int, list[msgs.ChannelUpdate]] = {}
        self._nodes_announced: set[PublicKey] = set()  # (nodes that announced themselves: once is enough here)
        self._closed = False
        self._scratch: set[str] = set()  # the storage folders the world made, and removes
        #: Nodes a block woke only to persist their manager (see ``_persist_quietly``).
        self._quiet_persists: list[Node] = []
        self.runtime.after_call.append(self._persist_quietly)
        # An exception in a callback on the world's loop must not vanish into asyncio's log.
        self.runtime.loop.set_exception_handler(self._on_loop_error)

    # --- nodes --------------------------------------------------------------------------------

    def _seed_for(self, name: str, purpose: bytes) -> bytes:
        return hashlib.sha256(self.seed.to_bytes(8, "big", signed=True) + name.encode() + purpose).digest()

    def add_node(
        self,
        name: str,
        *,
        handler: Optional[Callable[..., Any]] = None,
        config: Optional[UserConfig] = None,
        funds_sat: int = DEFAULT_FUNDS_SAT,
        storage_dir: Optional[str] = None,
        persist: bool = True,
    ) -> Node:
        """Build a node wired as ldk-sample wires one, fund its wallet, and start driving it.

        ``handler`` has the seed chapter's signature ``handle_ldk_events(channel_manager, ...,
        network, event)``; it may be plain or async. With none, the node runs the kit's
        reference handler (ldk-sample's behaviour).
        """
        if name in self.nodes:
            raise ValueError(f"the world already has a node called {name!r}")
        node = self._build(name, config or UserConfig.ldk_sample(), storage_dir, persist, new=True)
        self._attach(node, handler)
        self.chain.add_listener(lambda block: self._block_to(name, block))
        if funds_sat:
            self.chain.fund({node.bitcoind_client.get_new_address().script_pubkey: funds_sat})
            self.runtime.call(self._mine_one)
        return node

    def _build(self, name: str, config: UserConfig, storage_dir: Optional[str], persist: bool,
               new: bool = False, graph: Optional[bytes] = None) -> Node:
        """A node's components, as ldk-sample wires them; ``new`` unless the node restarts (its wallet's seed is
        unused on this world's chain: names are unique, and so are their seeds), and with the network ``graph`` it
        knew, if it restarts."""
        logger = Logger(name, self.clock.now)
        keys_manager = KeysManager(self._seed_for(name, b"keys"), EPOCH_UNIX_SECONDS, 0)
        bitcoind_client = BitcoindClient(self.chain, self.network, self._seed_for(name, b"wallet"), logger, new=new)
        # Nodes that never restart keep their state in memory, like LDK's TestStore.
        folder = storage_dir or self._scratch_dir(name)
        # A scratch folder is the world's own and goes with it: no fsync (see FilesystemStore's durable).
        fs_store: Any = FilesystemStore(folder, durable=folder not in self._scratch) if persist else InMemoryStore()
        network_graph = NetworkGraph(self.network, logger) if graph is None else NetworkGraph.decode(graph, logger)
        scorer = ProbabilisticScorer(None, network_graph, logger)
        router = DefaultRouter(network_graph, logger, keys_manager, scorer, ProbabilisticScoringFeeParameters())
        chain_monitor = ChainMonitor(chain=self.chain, broadcaster=bitcoind_client, fee_estimator=bitcoind_client,
                                     logger=logger, keys_manager=keys_manager, kv_store=fs_store if persist else None)
        channel_manager = ChannelManager(
            fee_estimator=bitcoind_client, chain_monitor=chain_monitor, tx_broadcaster=bitcoind_client,
            router=router, logger=logger, keys_manager=keys_manager, config=config, network=self.network,
            best_block_height=self.chain.height(), clock=self.clock,
        )
        channel_manager.set_runner(self.runtime.run)
        channel_manager.runtime = self.runtime
        node = Node(
            name=name, channel_manager=channel_manager, bitcoind_client=bitcoind_client,
            network_graph=network_graph, keys_manager=keys_manager,
            bump_tx_event_handler=BumpTransactionEventHandler(bitcoind_client, bitcoind_client, keys_manager, logger),
            peer_manager=PeerManager(channel_manager, logger, self), inbound_payments=InboundPaymentInfoStorage(),
            outbound_payments=OutboundPaymentInfoStorage(), fs_store=fs_store,
            output_sweeper=OutputSweeper(self.chain, bitcoind_client, bitcoind_client, keys_manager, bitcoind_client,
                                         fs_store, logger),
            network=self.network, chain_monitor=chain_monitor, scorer=scorer, logger=logger, router=router,
            config=config, persist=persist,
        )
        return node

    def _scratch_dir(self, name: str) -> str:
        """A storage folder of the world's own: removed once the world is gone (or at exit)."""
        path = scratch_dir(f"ldkkit-{name}-")
        weakref.finalize(self, shutil.rmtree, path, True)
        self._scratch.add(path)
        return path

    def _block_to(self, name: str, block: Any) -> None:
        """ldk-sample feeds each block to the ChainMonitor, then to the ChannelManager."""
        node = self.nodes[name]
        node.chain_monitor.block_connected(block, block.height)
        node.channel_manager.block_connected(block, block.height)

    def _attach(self, node: Node, handler: Optional[Callable[..., Any]]) -> None:
        if handler is None:  # a stub peer: ldk-sample's own handler, which accepts every channel
            from ..reference import ldk_sample_handle_ldk_events as handler
        self.nodes[node.name] = node
        self._by_id[node.node_id] = node
        node.world = self  # type: ignore[attr-defined]
        node.handle_ldk_events = handler
        node.event_handler = node.bind(handler)
        record = node.event_log.recorder(self.clock, self.chain.blocks)  # (blocks are only ever appended to)
        self._logs.add(node.event_log)
        node.channel_manager._events.observer = record
        node.chain_monitor._events.observer = record
        loop = self.runtime.loop
        self._tasks[node.name] = [loop.create_task(self._drive(node), name=f"drive-{node.name}")]
        self._next_tick[node.name] = (self.clock.now_us() + REBROADCAST_TIMER * MICROS, REBROADCAST_TIMER)
        if self._timer_task is not None:  # it may be asleep until later than this node's first tick
            self._timer_task.cancel()
        self._timer_task = loop.create_task(self._timers(), name="timers")

    def crash(self, node: Node) -> None:
        """The node's process dies now: nothing handles its events or persists its manager any more, the tasks its
        handler spawned die, and a background processor running it stops where it is, without its final persist
        (``on_crash``). Its peers' messages still reach it until :meth:`restart_node`, so that a payment can arrive
        at a node that will hand its events over only once restarted."""
        if node.crashed:
            return
        node.crashed, node.driven_by_world = True, False
        for hook in self.on_crash:
            hook(node)

    def restart_node(self, node: Node, handler: Optional[Callable[..., Any]] = None) -> Node:
        """Stop a node and start it again from its storage folder, as after a crash.

        The new node reads its ChannelManager (channels, payments and the events LDK
        persists), its ChannelMonitors, its output sweeper and ldk-sample's payment
        storages back from disk, knows the network graph it knew, and reconnects to its peers. Events LDK does not
        persist (FundingGenerationReady, OpenChannelRequest, ...) are gone. A node
        not crashed yet (:meth:`crash`) crashes first; a background processor that ran
        it is started again on the new node (``on_start``).
        """
        self.crash(node)
        peers = [self._by_id[p] for pair in self._connections if node.node_id in pair for p in pair
                 if p != node.node_id]
        for peer in peers:
            self.disconnect(node, peer)
        for task in self._tasks.pop(node.name):
            task.cancel()
        node.output_sweeper.stop()
        # (its graph as ldk-sample reads it back, persisted by the processor and caught up by its peers' gossip)
        new = self._build(node.name, node.config, str(node.fs_store.get_data_dir()), node.persist,
                          graph=node.network_graph.encode())
        new.chain_monitor.load_monitors()
        store = new.fs_store
        if CHANNEL_MANAGER_PERSISTENCE_KEY in store.list("", ""):
            new.channel_manager.restore(store.read("", "", CHANNEL_MANAGER_PERSISTENCE_KEY))
            # ldk-sample's synchronize_listeners: the manager is given the blocks mined since it was persisted
            # (its monitors saw every block: the old ChainMonitor persisted them as they changed).
            for block in self.chain.blocks[new.channel_manager.best_block_height + 1:]:
                new.channel_manager.block_connected(block, block.height)
        for key, storage in (("inbound_payments", new.inbound_payments), ("outbound_payments", new.outbound_payments)):
            if key in store.list("", ""):
                storage.payments.update(type(storage).decode(store.read("", "", key)).payments)
        if "output_sweeper" in store.list("", ""):
            new.output_sweeper.stop()
            new.output_sweeper = OutputSweeper.read(
                store.read("", "", "output_sweeper"), self.chain, new.bitcoind_client, new.bitcoind_client,
                new.keys_manager, new.bitcoind_client, store, new.logger,
            )
        new.event_log = node.event_log  # one history across the restart
        del self.nodes[node.name]
        self._attach(new, handler or node.handle_ldk_events)
        for hook in self.on_start:
            hook(new)
        for peer in peers:
            self.connect(new, peer)
        return new

    def node(self, name_or_id: str | PublicKey) -> Node:
        if isinstance(name_or_id, PublicKey):
            return self._by_id[name_or_id]
        return self.nodes[name_or_id]

    # --- driving nodes ----------------------------------------------------------------------

    async def _drive(self, node: Node) -> None:
        """What LDK's background processor does for a node, until a real one takes over."""
        wake = asyncio.Event()
        cm, monitor = node.channel_manager, node.chain_monitor
        armed: list[Any] = [None, None]  # the futures a callback waits on: each is armed once
        # (their futures are the manager's get_event_or_persistence_needed_future and the monitor's get_update_future)
        notifiers = (cm._notifier, monitor._events.notifier)
        sources = (cm._notifier.get_future, monitor._events.notifier.get_future)

        def woken(source: int) -> None:
            # Every block wakes every node (LDK's DoPersist). With no messages or events waiting, the world's
            # only work is to persist a manager it keeps and no processor persists: without that (a stub peer's
            # block, or any under a processor), it goes on sleeping. (Whether the world drives the node is asked
            # when it runs, not now: a node down for a while may be driven again by then.)
            if cm.pending_msg_events or cm.has_pending_events() or monitor.has_pending_events():
                self.runtime.call_soon_threadsafe(wake.set)
            elif not node.persist or cm.background_processor_attached:
                arm(source)
            elif self.runtime.in_call_with_nothing_queued():  # a block: persisted as the call returns
                self._quiet_persists.append(node)
                arm(source)
            else:
                self.runtime.call_soon_threadsafe(wake.set)

        # One callback per source: a wake-up re-arms only the future it came from (the other is still armed).
        callbacks = (functools.partial(woken, 0), functools.partial(woken, 1))

        def processor_free() -> bool:
            return not cm.background_processor_attached

        def arm(source: Optional[int] = None) -> None:
            for i in (0, 1) if source is None else (source,):
                if cm.background_processor_attached:  # its wake-ups are its processor's: watched, none taken
                    notifiers[i].watch(callbacks[i])
                    continue
                future = sources[i]()
                if armed[i] is not future:
                    armed[i] = future
                    future.watch(callbacks[i], processor_free)  # (one armed before a processor took over takes nothing)

        while True:
            arm()
            await wake.wait()
            wake.clear()
            if self._world_drives(node) and node.event_handler is not None:
                try:
                    await node.channel_manager.process_pending_events_async(node.event_handler)
                    await node.chain_monitor.process_pending_events_async(node.event_handler)
                except EventHandlerError as e:
                    self.errors.append(e)
                    node.driven_by_world = False  # stop retrying a broken handler in a loop
                    continue
                if node.channel_manager.replay_requested() or node.chain_monitor.replay_requested():
                    # The handler asked for a replay: try again at the processor's next poll,
                    # rather than spinning.
                    await asyncio.sleep(REPLAY_RETRY_S)
            node.peer_manager.process_events()
            if self._world_drives(node) and node.persist and node.channel_manager.get_and_clear_needs_persistence():
                self._persist_manager(node)

    def _persist_manager(self, node: Node) -> None:
        """Write the node's manager, as its processor would. A failed write ends the world's driving of the node,
        as it ends LDK's loop, and is raised from the world's call that met it (not left in a dead task)."""
        try:
            node.fs_store.write("", "", CHANNEL_MANAGER_PERSISTENCE_KEY, node.channel_manager.encode())
        except Exception as e:
            self.errors.append(e)
            node.driven_by_world = False

    def _persist_quietly(self) -> None:
        """What the drives of the nodes a block woke only to persist would do first once the loop runs (their
        wake-ups would have been the first queued, and nothing else changed those managers meanwhile): persist
        the manager. Done here, without the loop's round trip. A node with events waiting (woken again meanwhile,
        or in the middle of one) is left to its drive, which persists once it has handled them."""
        quiet, self._quiet_persists = self._quiet_persists, []
        for node in quiet:
            cm = node.channel_manager
            if (not self._world_drives(node) or cm.has_pending_events() or node.chain_monitor.has_pending_events()
                    or not cm.get_and_clear_needs_persistence()):
                continue
            self._persist_manager(node)

    async def _timers(self) -> None:
        """The processor's timers, for every node: the ChannelManager's tick every 60 s, the claims' rebroadcast
        every 30 s, each node on its own schedule from when it was attached.

        One task runs them all, waking once for all the nodes whose ticks fall at the same moment. The
        PeerManager's 10 s ping tick only counts in the simulation (peers always answer), so the three ticks
        that fell due are counted at each 30 s tick, rather than waking the world for them.
        """
        while True:
            next_us = min(due_us for due_us, _ in self._next_tick.values())
            if not self.runtime.skip_to(next_us):
                await self._sleep(max(0, next_us - self.clock.now_us()) / MICROS)
            for name, (due_us, elapsed) in list(self._next_tick.items()):
                if due_us > self.clock.now_us() + _TIMER_SLACK_US:
                    continue
                self._next_tick[name] = (due_us + REBROADCAST_TIMER * MICROS, elapsed + REBROADCAST_TIMER)
                node = self.nodes[name]
                if not self._world_drives(node):
                    continue
                try:
                    for _ in range(REBROADCAST_TIMER // PING_TIMER):
                        node.peer_manager.timer_tick_occurred()
                    if elapsed % FRESHNESS_TIMER == 0:
                        node.channel_manager.timer_tick_occurred()
                    node.chain_monitor.rebroadcast_pending_claims()
                except Exception as e:  # raised by the world's next call; the other nodes' timers go on
                    self.errors.append(e)

    async def _sleep(self, delay: float) -> None:
        """``asyncio.sleep(delay)`` for the timers, its wake-up kept in ``_timers_wake`` meanwhile, so that
        :meth:`_quiet_advance` can tell it from any other work waiting on the loop."""
        if delay <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        wake = self._timers_wake = loop.call_later(delay, _set_unless_done, woken)
        try:
            await woken
        finally:
            wake.cancel()
            if self._timers_wake is wake:  # (a cancelled task's, ended after its successor fell asleep)
                self._timers_wake = None

    def _advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: at once as far as only quiet ticks come meanwhile (see :meth:`_quiet_advance`),
        the rest on the loop, one thing due after another."""
        target_us = self.clock.now_us() + round(seconds * MICROS)
        if not self._quiet_advance(target_us):
            self.runtime.advance((target_us - self.clock.now_us()) / MICROS)

    def _quiet_advance(self, target_us: int) -> bool:
        """Move the clock on to ``target_us`` at once, if the world's timers' ticks meanwhile would each only count
        pings; True if it got there with nothing left to do. Those ticks are counted and the schedules moved on as
        the timers would have, one tick at a time. False if not, having changed nothing, or having moved the clock
        only to where a sleeping background processor woke (the loop does the rest).

        The world's ticks only count when nothing is ready or scheduled on the loop but the timers' own wake-up,
        and no stub peer's tick has work: no claim to rebroadcast, nothing for ``timer_tick_occurred`` to age or
        forget. A background processor must be asleep; the runtime then works through its deadlines as it would
        between the world's ticks (mostly counting quiet ticks too), until it wakes or the time is up. Mining,
        each block's ten minutes are mostly that.
        """
        runtime, loop = self.runtime, self.runtime.loop
        if not self.clock.is_virtual or loop._ready or runtime.jobs:  # type: ignore[attr-defined]
            return False
        waiting = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        if self._timers_wake is None or waiting != [self._timers_wake]:
            return False
        for name, (due_us, _) in self._next_tick.items():  # (plain loops: asked before every block)
            node = self.nodes[name]
            if due_us <= target_us and self._world_drives(node) and not _only_pings(node):
                return False
        with runtime.cond_lock:
            for p in runtime.participants:
                if not p.idle or p.ticking or p.deadline_us is None or p.on_deadline is None:
                    return False
            sleepers = bool(runtime.participants)
        if sleepers:
            with runtime.turn:  # (as the loop's own jumps do: the processor's quiet work happens in the world's turn)
                runtime.allowed_until_us = target_us
                runtime.jump(target_us)
        reached_us = self.clock.now_us() if sleepers else target_us
        self._count_ticks(reached_us)
        self.clock.move_to(reached_us)
        runtime.allowed_until_us = reached_us
        return reached_us == target_us and runtime.all_idle()

    def _count_ticks(self, until_us: int) -> None:
        """The world's ticks due by ``until_us``, each counting its node's pings, as :meth:`_timers` would."""
        step = REBROADCAST_TIMER * MICROS
        for name, (due_us, elapsed) in self._next_tick.items():
            count = max(0, (until_us - due_us) // step + 1)
            self._next_tick[name] = (due_us + count * step, elapsed + count * REBROADCAST_TIMER)
            if count and self._world_drives(self.nodes[name]):
                self.nodes[name].peer_manager.ticks_occurred(count * (REBROADCAST_TIMER // PING_TIMER))

    @staticmethod
    def _world_drives(node: Node) -> bool:
        """The world runs a node's events and timers unless a BackgroundProcessor does."""
        return node.driven_by_world and not node.channel_manager.background_processor_attached

    # --- the message bus -------------------------------------------------------------------

    def connect(self, a: Node, b: Node) -> None:
        """Connect two nodes as peers (``PeerManager::new_outbound_connection``)."""
        self.bus_connect(a.node_id, b.node_id)

    # bus_connect, bus_disconnect, send and broadcast are what a PeerManager calls.

    def bus_connect(self, a: PublicKey, b: PublicKey) -> None:
        pair = frozenset((a, b))
        if pair in self._connections:
            return
        self._connections.add(pair)
        self._by_id[a].peer_manager.peer_connected(b, inbound=False)
        self._by_id[b].peer_manager.peer_connected(a, inbound=True)

    def disconnect(self, a: Node, b: Node) -> None:
        """Drop the connection between two nodes, as if one of them went offline."""
        self.bus_disconnect(a.node_id, b.node_id)

    def bus_disconnect(self, a: PublicKey, b: PublicKey) -> None:
        pair = frozenset((a, b))
        if pair not in self._connections:
            return
        self._connections.discard(pair)
        self._by_id[a].peer_manager.socket_disconnected(b)
        self._by_id[b].peer_manager.socket_disconnected(a)

    def send(self, src: PublicKey, dst: PublicKey, msg: Record) -> None:
        self.runtime.call_soon_threadsafe(self._deliver, src, dst, msg)

    def broadcast(self, src: PublicKey, msg: Record) -> None:
        self.runtime.call_soon_threadsafe(self._gossip, msg)

    def _deliver(self, src: PublicKey, dst: PublicKey, msg: Record) -> None:
        node = self._by_id.get(dst)
        if node is None or frozenset((src, dst)) not in self._connections:
            sender = self._by_id.get(src)
            if node is not None and sender is not None and isinstance(msg, HTLC_UPDATES):
                with sender.channel_manager._lock:  # (the peer went as it was sent: held until it is back)
                    hold(sender.channel_manager, msg)
            return
        self.message_log.append((self.clock.now(), self._by_id[src].name, node.name, type(msg).__name__))
        node.peer_manager.handle_message(src, msg)
        node.peer_manager.process_events()

    def _gossip(self, msg: Record) -> None:
        """Every node's network graph learns public channels (P2P gossip, made instant).

        An update that arrives before its channel's announcement waits for it. Gossip a
        graph refuses (a repeat, a stale update) is dropped, as LDK's gossip sync drops it.
        """
        try:
            self._apply_gossip(msg)
        except LightningError as e:
            for node in self.nodes.values():
                node.logger.debug("ldkkit::routing::gossip", f"Ignored gossip {type(msg).__name__}: {e.err}")

    def _apply_gossip(self, msg: Record) -> None:
        match msg:
            case msgs.ChannelAnnouncement():
                for node in self.nodes.values():
                    node.network_graph.add_channel(msg.short_channel_id, msg.node_id_1, msg.node_id_2,
                                                   msg.capacity_satoshis, self.clock.unix_time())
                self._announced.add(msg.short_channel_id)
                for update in self._early_updates.pop(msg.short_channel_id, []):
                    self._apply_gossip(update)
                for node_id in (msg.node_id_1, msg.node_id_2):  # (ldk-sample's minute loop, made instant as gossip is)
                    self._announce_node(node_id)
            case msgs.NodeAnnouncement():
                for node in self.nodes.values():
                    with contextlib.suppress(LightningError):  # (one a graph already has: dropped, as LDK drops it)
                        node.network_graph.update_node_from_unsigned_announcement(msg)
            case msgs.ChannelUpdate() if msg.short_channel_id not in self._announced:
                self._early_updates.setdefault(msg.short_channel_id, []).append(msg)
            case msgs.ChannelUpdate(enabled=True):
                for node in self.nodes.values():
                    node.network_graph.update_channel(
                        msg.short_channel_id, msg.node_id, msg.timestamp, True, msg.cltv_expiry_delta,
                        msg.htlc_minimum_msat, msg.htlc_maximum_msat, msg.fee_base_msat,
                        msg.fee_proportional_millionths,
                    )
            case msgs.ChannelUpdate(enabled=False):
                self._announced.discard(msg.short_channel_id)
                for node in self.nodes.values():
                    if node.network_graph.channel(msg.short_channel_id) is not None:
                        node.network_graph.remove_channel(msg.short_channel_id)

    def _announce_node(self, node_id: PublicKey) -> None:
        """A node's first public channel is announced: it announces itself, its name as its alias, as ldk-sample's
        node does (``broadcast_node_announcement`` every minute, once it has a public channel)."""
        node = self._by_id.get(node_id)
        if node is not None and node_id not in self._nodes_announced:
            self._nodes_announced.add(node_id)
            node.peer_manager.broadcast_node_announcement(b"\0\0\0", node.name.encode()[:32].ljust(32, b"\0"), [])

    # --- time and the chain -----------------------------------------------------------------

    def run(self) -> None:
        """Let everything that can happen now happen, without time passing."""
        self._check_open()
        self.runtime.run(asyncio.sleep(0))
        self._raise_errors()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (in real time, wait that long)."""
        self._check_open()
        self._advance(seconds)
        self._raise_errors()

    async def advance_async(self, seconds: float) -> None:
        """``advance``, awaited: use it where an event loop runs ``process_events_async``
        (in Jupyter: ``await world.advance_async(60)``), so the processor keeps running."""
        await asyncio.to_thread(self.advance, seconds)

    async def mine_async(self, blocks: int = 1) -> None:
        """``mine``, awaited, for the same reason as :meth:`advance_async`."""
        await asyncio.to_thread(self.mine, blocks)

    async def run_async(self) -> None:
        await asyncio.to_thread(self.run)

    def mine(self, blocks: int = 1) -> None:
        """Mine blocks on the regtest chain, ten simulated minutes apart, and let nodes react.

        Time passes as it would on a real chain: timers tick and delayed work happens
        between blocks.
        """
        self._check_open()
        for _ in range(blocks):
            self._advance(BLOCK_INTERVAL_S)
            self.runtime.call(self._mine_one)
        self._raise_errors()

    def _mine_one(self) -> None:
        self.chain.mine(1)

    def _on_loop_error(self, loop: Any, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if error is not None and not isinstance(error, asyncio.CancelledError):
            self.errors.append(error)

    def _raise_errors(self) -> None:
        if self.errors:
            error, self.errors = self.errors[0], []
            raise error

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this world has been closed; build a new one (World(seed=...))")

    # --- accounting -------------------------------------------------------------------------

    def audit(self) -> dict[str, int]:
        """Where the world's money is, in satoshis; ``total`` never changes.

        On-chain coins (wallets, channel funding outputs, closes waiting to be swept) plus
        the fees paid to miners add up to what the world started with. Each open channel's
        two sides must also agree on how its capacity is split.
        """
        on_chain = sum(out.value for op, out in self.chain.utxos.items()
                       if out.script_pubkey != MINER_SCRIPT and op not in self.chain.spent_by)
        return {"on_chain": on_chain, "fees": self.chain.fees_paid_sat, "total": on_chain + self.chain.fees_paid_sat}

    def channel_disagreements(self) -> list[str]:
        """Channels whose two sides disagree on the split of its capacity (none, when settled).

        Both sides of an open channel must see the same capacity, split into what each side
        holds and what is in flight, to the millisatoshi.
        """
        sides: dict[Any, list[Any]] = {}
        for node in self.nodes.values():
            for chan in node.channel_manager.channels.values():
                if chan.is_funded() and chan.phase.name != "Closed":
                    sides.setdefault(chan.channel_id, []).append(chan)
        problems = []
        for channel_id, (a, *rest) in sides.items():
            if not rest:
                continue
            b = rest[0]
            capacity = a.channel_value_satoshis * 1000
            if a.value_to_self_msat != b.value_to_remote_msat() or b.value_to_self_msat != a.value_to_remote_msat():
                problems.append(
                    f"channel {channel_id}: one side holds {a.value_to_self_msat} msat and sees "
                    f"{a.value_to_remote_msat()} msat on the other; the other holds {b.value_to_self_msat} msat "
                    f"and sees {b.value_to_remote_msat()} msat (capacity {capacity} msat)"
                )
        return problems

    def close(self) -> None:
        """Stop the world's tasks and close its event loop."""
        if not self._closed:
            self._closed = True
            self.runtime.close()
            self._timer_task = None
            self._tasks.clear()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        height, now = self.chain.height(), self.clock.now()
        return f"World(seed={self.seed}, {len(self.nodes)} nodes, height {height}, t={now:g}s)"


def _only_pings(node: Node) -> bool:
    """Whether a tick of ``node``'s timers now would only count its pings (see ``World._timers``)."""
    return (getattr(node.peer_manager.timer_tick_occurred, "only_counts", False)
            and tick_changes_nothing(node.channel_manager.timer_tick_occurred)
            and tick_changes_nothing(node.chain_monitor.rebroadcast_pending_claims))


def _set_unless_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
