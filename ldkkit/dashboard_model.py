"""What the dashboard shows and does, in plain Python: no widgets, no browser.

:class:`DashboardModel` builds a world with your node running your handler under a
background processor, with stub peers around it. It has one method per control (each
returns a :class:`Message` and never raises) and the tables as pandas DataFrames (pandas
is imported only when a table is built). :class:`CallRecorder` notes what your handler
called while handling each event. The widgets over it are :class:`ldkkit.dashboard.Dashboard`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

from .config import ChannelHandshakeConfig, UserConfig
from .errors import RetryableSendFailure
from .events import Event
from .ln.channel import Channel, ChannelPhase
from .ln.outbound_payment import Retry
from .node import Node
from .routing.router import PaymentParameters, RouteParameters
from .scenarios import Stage
from .sim.node_process import run_processor
from .sim.world import World
from .types import PublicKey

#: The learner's node is called this.
LEARNER = "learner"
#: Peers connected to the learner from the start.
PEERS = ("alice", "bob", "carol")
#: A node the learner is not connected to, with a 1,000,000 sat channel to bob that dave funded.
REMOTE_PEER = "dave"
#: Simulated seconds each control lets pass, so messages and delayed forwards settle.
SETTLE_S = 2.0
#: Confirmations after which a closing transaction counts as final (LDK's ANTI_REORG_DELAY).
FINAL_CONFIRMATIONS = 6
#: The columns of :meth:`DashboardModel.channels_table`.
CHANNEL_COLUMNS = ["peer", "channel_id", "scid", "state", "capacity_sat", "local_sat", "remote_sat",
                   "in_flight_sat", "opened_by"]
EVENT_COLUMNS = ["#", "time_s", "height", "event", "summary", "handler_calls"]
SCORER_COLUMNS = ["learned_from", "hop", "scid", "capacity_sat", "lower_sat", "upper_sat"]
PEER_COLUMNS = ["peer", "node_id", "connected", "channels"]

_STATE = {ChannelPhase.Ready: "ready", ChannelPhase.ShuttingDown: "closing"}
_SUMMARY_FIELDS = ("counterparty_node_id", "funding_satoshis", "channel_value_satoshis", "channel_capacity_sats",
                   "amount_msat", "fee_paid_msat", "total_fee_earned_msat", "reason", "bump_event",
                   "time_forwardable", "channel_id", "temporary_channel_id", "payment_hash")


class Message(str):
    """A control's outcome: a plain string that shows without quotes in a notebook."""

    def __repr__(self) -> str:
        return str(self)


# --- recording what the handler calls ----------------------------------------------------------

#: The event whose handling is running in this context (tasks the handler spawns inherit it).
_HANDLING: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("ldkkit_dashboard_event", default=None)
#: Set inside a recorded call, so that what it calls in turn (a monitor write, say) is not recorded too.
_IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("ldkkit_dashboard_in_call", default=False)


@dataclass(frozen=True)
class Call:
    """One call the handler made, as text; ``later`` if a task it spawned made it afterwards."""

    text: str
    later: bool

    def __str__(self) -> str:
        return f"{self.text} (later, from a task)" if self.later else self.text


class CallRecorder:
    """Records the handler's calls on the node's components, beside the event being handled."""

    TARGETS = {
        "channel_manager": (
            "accept_inbound_channel", "accept_inbound_channel_from_trusted_peer_0conf",
            "force_close_without_broadcasting_txn", "force_close_broadcasting_latest_txn", "close_channel",
            "funding_transaction_generated", "batch_funding_transaction_generated", "claim_funds",
            "fail_htlc_backwards", "process_pending_htlc_forwards",
        ),
        "output_sweeper": ("track_spendable_outputs",),
        "bump_tx_event_handler": ("handle_event",),
        "fs_store": ("write",),
    }

    def __init__(self, node: Node, describe: Callable[[Any], str]) -> None:
        self.calls: dict[int, list[Call]] = {}  # id(event) -> calls
        self._active: set[int] = set()
        self._describe = describe
        for attr, methods in self.TARGETS.items():
            component = getattr(node, attr)
            for name in methods:
                label = name if attr == "channel_manager" else f"{attr}.{name}"
                setattr(component, name, self._wrap(label, getattr(component, name)))
        node.event_handler = self._tracking(node.event_handler)

    def for_event(self, event: Event) -> list[Call]:
        return self.calls.get(id(event), [])

    def _tracking(self, handler: Any) -> Callable[[Event], Any]:
        def run(event: Event) -> Any:
            key = id(event)
            self._active.add(key)
            token = _HANDLING.set(key)
            try:
                result = handler(event)
            except BaseException:
                self._active.discard(key)
                raise
            finally:
                _HANDLING.reset(token)
            if inspect.isawaitable(result):
                return self._finish(result, key)
            self._active.discard(key)
            return result

        return run

    async def _finish(self, awaitable: Any, key: int) -> Any:
        token = _HANDLING.set(key)  # the coroutine runs here: what it spawns inherits the event
        try:
            return await awaitable
        finally:
            _HANDLING.reset(token)
            self._active.discard(key)

    def _wrap(self, label: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            key = _HANDLING.get()
            if key is None or _IN_CALL.get():
                return method(*args, **kwargs)
            shown = ", ".join(self._describe(a) for a in (*args, *kwargs.values()))
            self.calls.setdefault(key, []).append(Call(f"{label}({shown})", key not in self._active))
            token = _IN_CALL.set(True)
            try:
                return method(*args, **kwargs)
            finally:
                _IN_CALL.reset(token)

        return call


# --- the model ---------------------------------------------------------------------------------


def _control(action: Callable[..., str]) -> Callable[..., Message]:
    """Make a control never raise: its outcome, or what went wrong, comes back as a Message."""

    @functools.wraps(action)
    def run(self: DashboardModel, *args: Any, **kwargs: Any) -> Message:
        before = len(self.node.event_log)
        try:
            self._check_running()
            text = action(self, *args, **kwargs)
            self._check_processor()
        except Exception as e:  # shown in the dashboard, never lost
            return self.record_error(action.__name__, e)
        return self._record("ok", text + self._new_events(before))

    return run


class DashboardModel:
    """The dashboard's logic, without widgets: a world, your node, its processor, the controls and tables."""

    def __init__(self, handler: Callable[..., Any], *, seed: int = 0, processor: str = "thread") -> None:
        if processor not in ("thread", "async"):
            raise ValueError(f"processor must be 'thread' or 'async', not {processor!r}")
        self.seed = seed
        self.processor_form = processor
        self.handler_name = getattr(handler, "__name__", type(handler).__name__)
        self.messages: list[tuple[str, str]] = []  # (kind, text), kind "ok" or "error"
        self.world = World(seed=seed)
        self.node = self.world.add_node(LEARNER, handler=handler)
        self.stage = Stage(self.world, self.node)
        self.peers: dict[str, Node] = {name: self.stage.peer(name) for name in PEERS}
        self._build_remote_peer()
        self._names = {self.node.node_id: "you", **{p.node_id: n for n, p in self.peers.items()}}
        self.recorder = CallRecorder(self.node, self._describe)
        self._user_channel_id = 0
        self._closing_txids: dict[Any, Any] = {}
        self._stopped = False
        self._processor_error: Optional[BaseException] = None
        self._stack = contextlib.ExitStack()
        self.processor = self._stack.enter_context(run_processor(self.node, processor))

    def _build_remote_peer(self) -> None:
        """dave, behind bob: a public channel dave funded, so bob cannot send anything towards dave."""
        dave = self.stage.peer(REMOTE_PEER, connect=False)
        self.stage.open(dave, self.peers["bob"], 1_000_000)
        self.peers[REMOTE_PEER] = dave

    # --- the controls --------------------------------------------------------------------------

    @_control
    def peer_opens_channel(self, peer: str, sats: int = 6_000_000, push_sat: int = 0) -> str:
        """``peer`` opens a channel of ``sats`` to us: your handler gets an OpenChannelRequest."""
        them = self._peer(peer)
        self.world.connect(them, self.node)
        tcid = them.channel_manager.create_channel(self.node.node_id, sats, push_sat * 1000, self._next_id(), None,
                                                   None)
        self._settle()
        chan = self._channel_by_temporary_id(tcid)
        if chan is None or chan.phase is ChannelPhase.Closed:
            outcome = "your handler rejected it"
        elif chan.phase is ChannelPhase.UnacceptedInbound:
            outcome = "your handler has not answered it yet"
        else:
            outcome = "accepted; it is pending until it has 6 confirmations (mine blocks)"
        return f"{peer} opened a {sats:,} sat channel to you: {outcome}"

    @_control
    def open_channel(self, peer: str, sats: int = 1_000_000) -> str:
        """We open a public channel of ``sats`` to ``peer``: your handler gets FundingGenerationReady."""
        them = self._peer(peer)
        self.world.connect(self.node, them)
        public = UserConfig(ChannelHandshakeConfig(negotiate_anchors_zero_fee_htlc_tx=True,
                                                   announce_for_forwarding=True),
                            self.node.config.channel_config, manually_accept_inbound_channels=True)
        tcid = self.node.channel_manager.create_channel(them.node_id, sats, 0, self._next_id(), None, public)
        self._settle()
        chan = self._channel_by_temporary_id(tcid)
        if chan is None or chan.phase is ChannelPhase.Closed:
            outcome = "it was closed before it was funded"
        elif chan.is_funded():
            outcome = "funded; it is pending until it has 6 confirmations (mine blocks)"
        else:
            outcome = f"waiting ({chan.phase.name}): did your handler fund it?"
        return f"you opened a {sats:,} sat channel to {peer}: {outcome}"

    @_control
    def peer_pays_invoice(self, peer: str, sats: int = 50_000) -> str:
        """We create an invoice for ``sats`` and ``peer`` pays it."""
        them = self._peer(peer)
        invoice = self.stage.invoice(self.node, sats * 1000, "ldkkit dashboard")
        self._pay(them, invoice, f"{peer} needs a ready channel to you with at least {sats:,} sat on {peer}'s side")
        info = self.node.inbound_payments.payments.get(invoice.payment_hash())
        status = info.status.name if info is not None else "unknown"
        return f"{peer} paid your {sats:,} sat invoice: inbound_payments says {status}"

    @_control
    def pay_peer(self, peer: str, sats: int = 10_000) -> str:
        """We pay an invoice for ``sats`` that ``peer`` created."""
        them = self._peer(peer)
        payment_id = self._pay(self.node, self.stage.invoice(them, sats * 1000),
                               f"You need a ready channel with at least {sats:,} sat on your side, towards {peer}")
        info = self.node.outbound_payments.payments.get(payment_id)
        status = info.status.name if info is not None else "unknown"
        return f"you paid {peer} {sats:,} sat: outbound_payments says {status}"

    @_control
    def route_through_us(self, payer: str, payee: str, sats: int = 10_000) -> str:
        """``payer`` pays ``payee``'s invoice, routed through us: your node forwards it."""
        if payer == payee:
            raise ValueError("the payer and the payee must be two different peers")
        them, to = self._peer(payer), self._peer(payee)
        payment_id = self._pay(them, self.stage.invoice(to, sats * 1000),
                               f"A route from {payer} to {payee} through you needs a public channel from {payer} "
                               f"to you with {payer}'s money on it, and one from you to {payee} with yours")
        info = them.outbound_payments.payments.get(payment_id)
        status = info.status.name if info is not None else "unknown"
        return f"{payer} paid {payee} {sats:,} sat through the network: {payer}'s payment {status}"

    @_control
    def probe(self, peer: str, sats: int = 200_000) -> str:
        """Probe a path to ``peer`` for ``sats``: LDK's scorer learns from the outcome."""
        them = self._peer(peer)
        params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(them.node_id, 42),
                                                               sats * 1000)
        route = self.node.router.find_route(self.node.node_id, params,
                                            self.node.channel_manager.list_usable_channels(), None)
        path = route.paths[0]
        self.node.channel_manager.send_probe(path)
        self._settle()
        hops = " -> ".join(self._name(h.pubkey) for h in path.hops)
        return f"probed {sats:,} sat along you -> {hops}"

    @_control
    def close_channel(self, peer: str) -> str:
        """Close our oldest open channel with ``peer`` cooperatively."""
        chan = self._open_channel_with(peer)
        self.node.channel_manager.close_channel(chan.channel_id, chan.counterparty_node_id)
        self._settle()
        return f"you closed your channel {chan.channel_id.short()} with {peer} cooperatively"

    @_control
    def force_close(self, peer: str) -> str:
        """Force-close our oldest open channel with ``peer``, broadcasting our commitment."""
        chan = self._open_channel_with(peer)
        self.node.channel_manager.force_close_broadcasting_latest_txn(
            chan.channel_id, chan.counterparty_node_id, "Force-closed from the dashboard"
        )
        self._settle()
        return f"you force-closed your channel {chan.channel_id.short()} with {peer}"

    @_control
    def mine(self, blocks: int = 6) -> str:
        """Mine ``blocks`` blocks, ten simulated minutes apart."""
        if blocks < 1:
            raise ValueError(f"mine at least one block, not {blocks}")
        self.stage.mine(blocks)
        return f"mined {blocks} block{'s' if blocks != 1 else ''}: height {self.world.chain.height()}"

    @_control
    def advance(self, seconds: float = 60) -> str:
        """Let ``seconds`` of simulated time pass (timers tick, delayed work happens)."""
        if seconds <= 0:
            raise ValueError(f"advance by a positive number of seconds, not {seconds}")
        self.world.advance(seconds)
        return f"advanced {seconds:,g} s: t = {self.world.clock.now():,.1f} s"

    # --- control helpers -------------------------------------------------------------------------

    def _pay(self, payer: Node, invoice: Any, hint: str) -> Any:
        """ldk-sample's ``sendpayment`` from ``payer``; if it cannot even start, say what would help."""
        try:
            return self.stage.pay(payer, invoice, retry=Retry.Attempts(3))
        except RetryableSendFailure as e:
            raise RuntimeError(f"{e} {hint}") from e

    def _peer(self, name: str) -> Node:
        if name not in self.peers:
            raise KeyError(f"no peer called {name!r}; the peers are {', '.join(self.peers)}")
        return self.peers[name]

    def _next_id(self) -> int:
        self._user_channel_id += 1
        return self._user_channel_id

    def _settle(self) -> None:
        self.world.advance(SETTLE_S)

    def _channel_by_temporary_id(self, tcid: Any) -> Optional[Channel]:
        return next((c for c in self.node.channel_manager.channels.values() if c.temporary_channel_id == tcid), None)

    def _open_channel_with(self, peer: str) -> Channel:
        them = self._peer(peer)
        for chan in self.node.channel_manager.channels.values():
            if chan.counterparty_node_id == them.node_id and chan.phase not in (ChannelPhase.Closed,
                                                                                 ChannelPhase.ShuttingDown):
                return chan
        raise ValueError(f"you have no open channel with {peer} to close")

    def _check_running(self) -> None:
        if self._stopped:
            raise RuntimeError("this dashboard has been stopped; build a new one with Dashboard.for_handler(...)")

    def _check_processor(self) -> None:
        """If the processor has died (the handler raised), stop it for good and raise why."""
        if self._processor_error is not None or self.processor_running():
            return
        self.node.driven_by_world = False  # a dead processor is a dead node: the world does not take over
        try:
            self._stack.close()
        except BaseException as e:  # what ended the loop
            self._processor_error = e
        else:
            self._processor_error = RuntimeError("the background processor ended")
        raise RuntimeError(f"the background processor stopped: {self._processor_error}") from self._processor_error

    def processor_running(self) -> bool:
        if self._stopped or self._processor_error is not None:
            return False
        if self.processor_form == "thread":
            return bool(self.processor.is_running())
        return bool(self.node.channel_manager.background_processor_attached)

    def _new_events(self, before: int) -> str:
        names = [type(e).__name__ for _, _, e in self.node.event_log[before:]]
        return f" [events: {', '.join(names)}]" if names else " [no new events]"

    def _record(self, kind: str, text: str) -> Message:
        self.messages.append((kind, text))
        return Message(text)

    def record_error(self, what: str, error: BaseException) -> Message:
        """Keep ``error`` as a readable message about ``what`` (a control's name), and return it."""
        return self._record("error", f"{what} failed: {type(error).__qualname__}: {error}")

    @property
    def errors(self) -> list[str]:
        return [text for kind, text in self.messages if kind == "error"]

    @property
    def status(self) -> str:
        """The last control's outcome."""
        return self.messages[-1][1] if self.messages else "ready: use a control"

    def stop(self) -> Message:
        """Stop the background processor (raising nothing: its error comes back as text) and close the world."""
        if self._stopped:
            return Message("the dashboard was already stopped")
        text = f"stopped {self.processor_label()} and closed the world"
        try:
            if self._processor_error is None:
                self._stack.close()
        except Exception as e:
            text = self.record_error("stop", e)
        finally:
            self._stopped = True
            self.world.close()
        return self._record("ok", text)

    # --- what the views show ------------------------------------------------------------------

    def processor_label(self) -> str:
        return {"thread": "BackgroundProcessor.start (thread)",
                "async": "process_events_async (async)"}[self.processor_form]

    def processor_status(self) -> str:
        if self.processor_running():
            return f"{self.processor_label()}: running"
        if self._processor_error is not None:
            return f"{self.processor_label()}: stopped by an error"
        return f"{self.processor_label()}: stopped"

    def header(self) -> dict[str, Any]:
        """The node at a glance: name, id, block height, virtual time, processor, handler."""
        return {
            "node": LEARNER, "node_id": str(self.node.node_id), "height": self.world.chain.height(),
            "time_s": round(self.world.clock.now(), 3), "processor": self.processor_status(),
            "handler": self.handler_name,
        }

    def header_text(self) -> str:
        h = self.header()
        return (f"{h['node']} {self.node.node_id.short()} | height {h['height']} | t = {h['time_s']:,.1f} s | "
                f"{h['processor']} | handler: {h['handler']}")

    def peers_table(self) -> Any:
        """One row per peer: its id, whether it is connected to us, and how many open channels we share."""
        import pandas as pd

        connected = self.node.channel_manager.peers
        rows = []
        for name, peer in self.peers.items():
            chans = [c for c in self.node.channel_manager.list_channels() if c.counterparty.node_id == peer.node_id]
            rows.append({"peer": name, "node_id": peer.node_id.short(), "connected": peer.node_id in connected,
                         "channels": len(chans)})
        return pd.DataFrame(rows, columns=PEER_COLUMNS)

    def channels_table(self) -> Any:
        """One row per channel, closed ones included: state, capacity, and both balances in sats."""
        import pandas as pd

        rows = [self._channel_row(c) for c in self.node.channel_manager.channels.values()]
        return pd.DataFrame(rows, columns=CHANNEL_COLUMNS)

    def _channel_row(self, chan: Channel) -> dict[str, Any]:
        in_flight = chan.pending_inbound_msat() + chan.pending_outbound_msat()
        return {
            "peer": self._name(chan.counterparty_node_id), "channel_id": chan.channel_id.short(),
            "scid": chan.short_channel_id, "state": self.channel_state(chan),
            "capacity_sat": chan.channel_value_satoshis, "local_sat": chan.value_to_self_msat // 1000,
            "remote_sat": chan.value_to_remote_msat() // 1000, "in_flight_sat": in_flight // 1000,
            "opened_by": "you" if chan.is_outbound else self._name(chan.counterparty_node_id),
        }

    def channel_state(self, chan: Channel) -> str:
        """pending, ready, closing (shutting down, or closed on chain with fewer than 6 confirmations) or closed."""
        if chan.phase in _STATE:
            return _STATE[chan.phase]
        if chan.phase is not ChannelPhase.Closed:
            return "pending"
        closing_txid = self._closing_txid(chan)
        if closing_txid is not None and (self.world.chain.confirmations(closing_txid) or 0) < FINAL_CONFIRMATIONS:
            return "closing"
        return "closed"

    def _closing_txid(self, chan: Channel) -> Any:
        """The transaction that spent the channel's funding output (mempool or chain), if any."""
        if chan.funding_txo is None:
            return None
        if chan.channel_id not in self._closing_txids:
            chain = self.world.chain
            txid = chain.spent_by.get(chan.funding_txo)
            if txid is None:
                txid = next((t for t, tx in list(chain.transactions.items())
                             if any(i.previous_output == chan.funding_txo for i in tx.input)), None)
            if txid is None or txid not in chain.confirmed_at:
                return txid  # not final yet: look again next time
            self._closing_txids[chan.channel_id] = txid
        return self._closing_txids[chan.channel_id]

    def event_kinds(self) -> list[str]:
        """The event types seen so far, sorted: the event log's filter choices."""
        return sorted({type(e).__name__ for _, _, e in self.node.event_log})

    def events(self, kind: Optional[str] = None) -> Iterator[tuple[int, float, int, Event]]:
        """(number, time, height, event), newest first, only of type ``kind`` if given."""
        log = list(self.node.event_log)
        for n in range(len(log), 0, -1):
            time_s, height, event = log[n - 1]
            if kind in (None, "", "all") or type(event).__name__ == kind:
                yield n, time_s, height, event

    def events_table(self, kind: Optional[str] = None) -> Any:
        """The event log, newest first: one readable line per event and the handler's calls beside it."""
        import pandas as pd

        rows = [{"#": n, "time_s": round(t, 3), "height": h, "event": type(e).__name__,
                 "summary": self.summary(e), "handler_calls": "; ".join(map(str, self.recorder.for_event(e)))}
                for n, t, h, e in self.events(kind)]
        return pd.DataFrame(rows, columns=EVENT_COLUMNS)

    def event_fields(self, number: int) -> dict[str, Any]:
        """Every field of event ``number`` (as numbered in the log, from 1)."""
        _, _, event = self.node.event_log[number - 1]
        return event.to_dict()

    def summary(self, event: Event) -> str:
        """The event's key fields on one line, with peers named."""
        flat = event.to_dict()
        failed_at = self._failed_hop(event)
        parts = [f"failed at {failed_at}"] if failed_at else []
        for key in _SUMMARY_FIELDS:
            if flat.get(key) is not None:
                parts.append(f"{key}={self._show(key, flat[key], event)}")
        return " ".join(parts)

    def _failed_hop(self, event: Event) -> Optional[str]:
        """For a failed path or probe: the hop it failed at, as "bob -> dave"."""
        scid, path = getattr(event, "short_channel_id", None), getattr(event, "path", None)
        if scid is None or not hasattr(path, "hops"):
            return None
        source = self.node.node_id
        for hop in path.hops:
            if hop.short_channel_id == scid:
                return f"{self._name(source)} -> {self._name(hop.pubkey)}"
            source = hop.pubkey
        return None

    def scorer_table(self, paths: int = 5) -> Any:
        """What the scorer believes about each hop of the last ``paths`` paths, in sats.

        The bounds are on what the hop's channel can send towards the hop's node; unknown
        (None) for channels the scorer has no data on (our own channels are never scored).
        """
        import pandas as pd

        recent = [(n, e) for n, _, _, e in self.events() if hasattr(getattr(e, "path", None), "hops")][:paths]
        rows, seen = [], set()
        for n, event in recent:
            for row in self._path_rows(n, event, event.path):
                if (row["scid"], row["hop"]) not in seen:
                    seen.add((row["scid"], row["hop"]))
                    rows.append(row)
        return pd.DataFrame(rows, columns=SCORER_COLUMNS)

    def _path_rows(self, n: int, event: Event, path: Any) -> list[dict[str, Any]]:
        rows, source = [], self.node.node_id
        for hop in path.hops:
            info = self.node.network_graph.channel(hop.short_channel_id)
            bounds = self.node.scorer.estimated_channel_liquidity_range(hop.short_channel_id, hop.pubkey)
            rows.append({
                "learned_from": f"#{n} {type(event).__name__}",
                "hop": f"{self._name(source)} -> {self._name(hop.pubkey)}", "scid": hop.short_channel_id,
                "capacity_sat": info.capacity_sats if info is not None else None,
                "lower_sat": bounds[0] // 1000 if bounds else None, "upper_sat": bounds[1] // 1000 if bounds else None,
            })
            source = hop.pubkey
        return rows

    def text(self, events: int = 8) -> str:
        """The whole dashboard as stable text: what a notebook shows where widgets cannot render."""
        lines = [f"ldkkit dashboard: {self.header_text()}"]
        peers = self.peers_table()
        lines.append("peers: " + ", ".join(f"{r.peer} ({'connected' if r.connected else 'not connected'})"
                                           for r in peers.itertuples()))
        lines += ["channels:", _indent(self.channels_table(), "(none yet)")]
        log = self.events_table()
        lines.append(f"events (newest first, {min(events, len(log))} of {len(log)}):")
        for row in log.head(events).itertuples():
            calls = f"  -> {row.handler_calls}" if row.handler_calls else ""
            lines.append(f"  #{row[1]} h{row.height} {row.event} {row.summary}{calls}")
        lines += ["scorer:", _indent(self.scorer_table(), "(no paths yet)")]
        lines.append(f"status: {self.status}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DashboardModel({self.header_text()})"

    # --- naming --------------------------------------------------------------------------------

    def _name(self, node_id: Any) -> str:
        return self._names.get(node_id, node_id.short() if hasattr(node_id, "short") else str(node_id))

    def _describe(self, value: Any) -> str:
        """A handler call's argument, briefly."""
        if isinstance(value, PublicKey):
            return self._name(value)
        if hasattr(value, "short"):
            return str(value.short())
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        if isinstance(value, (list, tuple)):
            return f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
        if isinstance(value, int) and abs(value) >= 10**9:
            return f"{str(value)[:6]}…"
        text = repr(value)
        return text if len(text) <= 24 else text[:23] + "…"

    def _show(self, key: str, value: Any, event: Event) -> str:
        if key == "counterparty_node_id":
            return self._name(event.counterparty_node_id)
        if key == "reason" and hasattr(event, "reason"):
            return str(event.reason)
        if isinstance(value, int) and key.endswith(("_msat", "_satoshis", "_sats")):
            return f"{value:,}"
        text = str(value)
        return text[:8] + "…" if len(text) > 16 and " " not in text else text


def _indent(table: Any, empty: str) -> str:
    text = empty if table.empty else table.to_string(index=False)
    return "\n".join("  " + line for line in text.splitlines())
