"""Named, seeded, repeatable runs of the situations a node's event handler must handle.

Each scenario plays one story from ``lightning-scenarios.md`` §8a against a fresh node
running your handler (the "learner" node), with stub peers around it::

    from ldkkit import scenarios
    result = scenarios.run("inbound_open_accept", handle_ldk_events, seed=0)
    result.event_names()   # ['OpenChannelRequest', 'ChannelPending', 'ChannelReady']
    result.node            # the learner's node afterwards, to inspect
    result.events_df()     # a pandas table of the events

The handler has the seed chapter's twelve parameters and may be plain or ``async``. With
none, the kit's reference handler runs. The same name and seed always give the same
events, ids and amounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional

from . import policy, reference
from .bitcoin import Network
from .config import ChannelConfig, ChannelHandshakeConfig, UserConfig
from .events import Event
from .invoice import Bolt11Invoice
from .ln.bolt11_payment import payment_parameters_from_invoice
from .ln.outbound_payment import RecipientOnionFields, Retry
from .node import Node
from .payment_storage import INBOUND_PAYMENTS_FNAME, OUTBOUND_PAYMENTS_FNAME, HTLCStatus, PaymentInfo
from .routing.router import Path, PaymentParameters, Route, RouteHop, RouteParameters
from .sim.cpus import one_cpu
from .sim.world import World
from .types import PaymentHash, PaymentId, PaymentPreimage, PaymentSecret

#: The learner's node is called this in every scenario.
LEARNER = "learner"


@dataclass
class ScenarioResult:
    """What a scenario did: the events the learner's node was given, and the node afterwards."""

    name: str
    seed: int
    events: list[Event]
    node: Node
    world: World
    peers: dict[str, Node] = field(default_factory=dict)

    def event_names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def events_df(self) -> Any:
        """The events as a pandas DataFrame, one row per event, with time and block height."""
        from .analysis import events_dataframe

        return events_dataframe(self.node.event_log)

    def __repr__(self) -> str:
        return f"ScenarioResult({self.name!r}, seed={self.seed}, events={self.event_names()})"


class Stage:
    """The helpers a scenario is written with: peers, channels, payments, blocks and time."""

    def __init__(self, world: World, me: Node) -> None:
        self.world = world
        self.me = me
        self.peers: dict[str, Node] = {}
        #: What ``pay`` recorded for each payment before sending it, as ldk-sample's ``sendpayment`` does.
        self.sent: dict[PaymentId, PaymentInfo] = {}
        #: What ``invoice`` recorded for each invoice of yours (your node's), as ldk-sample's ``getinvoice`` does.
        self.issued: dict[PaymentHash, PaymentInfo] = {}
        #: Each byte string the story wrote under a node's (name's) payment records key, as ldk-sample's CLI does.
        self.written: dict[tuple[str, str], set[bytes]] = {}

    # --- peers and channels -----------------------------------------------------------------

    def peer(self, name: str, *, handler: Optional[Callable[..., Any]] = None, connect: bool = True,
             fee_base_msat: int = 1000, fee_ppm: int = 0, anchors: bool = True) -> Node:
        """A stub peer running ldk-sample's handler (or ``handler``), connected to the learner; its channels have
        anchor outputs unless ``anchors`` is False."""
        config = UserConfig(
            ChannelHandshakeConfig(negotiate_anchors_zero_fee_htlc_tx=anchors, announce_for_forwarding=True,
                                   max_inbound_htlc_value_in_flight_percent_of_channel=100),
            ChannelConfig(fee_ppm, fee_base_msat, 72),
            manually_accept_inbound_channels=True,
        )
        node = self.world.add_node(name, handler=handler, config=config, persist=False)
        self.peers[name] = node
        if connect:
            self.world.connect(node, self.me)
        return node

    def open(self, opener: Node, acceptor: Node, sats: int, *, push_msat: int = 0, confirm: bool = True,
             zero_conf: bool = False) -> None:
        """``opener`` opens a channel to ``acceptor``; mine it deep enough when ``confirm``."""
        self.world.connect(opener, acceptor)
        config = opener.config
        if zero_conf:
            config = dataclasses.replace(config)  # the channel type asks for zero-conf below
        tcid = opener.channel_manager.create_channel(acceptor.node_id, sats, push_msat, 42, None, config)
        if zero_conf:
            chan = opener.channel_manager.channels[tcid]
            chan.channel_type = chan.channel_type.with_zero_conf_required()
            opener.channel_manager.pending_msg_events[-1] = (
                acceptor.node_id,
                dataclasses.replace(opener.channel_manager.pending_msg_events[-1][1], channel_type=chan.channel_type),
            )
        self.world.run()
        if confirm:
            self.mine(6)

    def mine(self, blocks: int) -> None:
        self.world.mine(blocks)
        self.settle()

    def settle(self, seconds: float = 2.0) -> None:
        """Let a little time pass: forwards wait 100-500 ms before they are processed."""
        self.world.advance(seconds)

    def until_answered(self, node: Node) -> None:
        """Let time pass while ``node`` has a channel request it has not answered: an accept may come later, from a
        task, and LDK waits for it until the request is ``UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS`` timer ticks old
        (then drops it)."""
        from .ln.channel import UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS, ChannelPhase
        from .sim.world import FRESHNESS_TIMER

        for _ in range((UNACCEPTED_INBOUND_CHANNEL_AGE_LIMIT_TICKS + 1) * FRESHNESS_TIMER):
            if not any(c.phase is ChannelPhase.UnacceptedInbound for c in node.channel_manager.channels.values()):
                return
            self.settle(1)

    def channel_between(self, a: Node, b: Node) -> Any:
        return next(c for c in a.channel_manager.list_channels() if c.counterparty.node_id == b.node_id)

    # --- payments ----------------------------------------------------------------------------

    def invoice(self, payee: Node, amount_msat: int, description: str = "ldkkit workshop",
                expiry_secs: int = 3600) -> Bolt11Invoice:
        """ldk-sample's ``getinvoice``: create an invoice and record it as a pending inbound payment, on disk."""
        invoice = payee.channel_manager.create_bolt11_invoice(amount_msat, description, expiry_secs)
        record = PaymentInfo(None, invoice.payment_secret(), HTLCStatus.Pending, amount_msat)
        if payee is self.me:
            self.issued[invoice.payment_hash()] = dataclasses.replace(record)  # (a copy: handlers change the other)
        self._record(payee, INBOUND_PAYMENTS_FNAME, invoice.payment_hash(), record)
        return invoice

    def pay(self, payer: Node, invoice: Bolt11Invoice, *, retry: Optional[Retry] = None,
            payment_id: Optional[PaymentId] = None, settle_s: float = 2.0, amount_msat: Optional[int] = None,
            custom_tlvs: Sequence[tuple[int, bytes]] = ()) -> PaymentId:
        """ldk-sample's ``sendpayment``: record a pending outbound payment, then send it, and let ``settle_s``
        seconds pass. ``amount_msat``, if given, is what is sent instead of the invoice's amount (more: LDK's payee
        takes an overpayment); ``custom_tlvs``, records of the payer's own in the onion.

        Like ldk-sample, it retries for up to ten seconds unless told otherwise.
        """
        retry = retry or Retry.Timeout(timedelta(seconds=10))
        payment_hash, onion, route_params = payment_parameters_from_invoice(invoice)
        onion = onion.with_custom_tlvs(list(custom_tlvs)) if custom_tlvs else onion
        if amount_msat is not None:
            route_params = RouteParameters.from_payment_params_and_value(route_params.payment_params, amount_msat)
        payment_id = payment_id or PaymentId(bytes(payment_hash))
        record = PaymentInfo(None, invoice.payment_secret(), HTLCStatus.Pending, invoice.amount_milli_satoshis())
        self._send(payer, payment_id, record,
                   lambda: payer.channel_manager.send_payment(payment_hash, onion, payment_id, route_params, retry))
        self.settle(settle_s)
        return payment_id

    def _send(self, payer: Node, payment_id: PaymentId, record: PaymentInfo, send: Callable[[], Any]) -> Any:
        """What ldk-sample's ``sendpayment`` and ``keysend`` do around the send: record the payment as pending, on
        disk; send it; and if LDK refuses it at once, record it failed (here the refusal is raised on, to the
        story)."""
        if payer is self.me:
            self.sent[payment_id] = dataclasses.replace(record)  # a copy: the handler changes the original
        self._record(payer, OUTBOUND_PAYMENTS_FNAME, payment_id, record)
        try:
            return send()
        except Exception:
            self._record(payer, OUTBOUND_PAYMENTS_FNAME, payment_id,
                         dataclasses.replace(record, status=HTLCStatus.Failed))
            raise

    def _record(self, node: Node, key: str, payment_key: Any, record: PaymentInfo) -> None:
        """Put ``record`` in the node's payment records of ``key`` and write them, as ldk-sample's CLI does each
        time."""
        storage = node.inbound_payments if key == INBOUND_PAYMENTS_FNAME else node.outbound_payments
        with storage.lock() as payments:
            payments[payment_key] = record
            data = storage.encode()
            self.written.setdefault((node.name, key), set()).add(data)
            node.fs_store.write("", "", key, data)

    def pay_in_parts(self, payer: Node, invoice: Bolt11Invoice, payment_id: PaymentId) -> None:
        """A multi-path payment of the invoice: an equal part over each of the payer's channels to its payee, one
        payment of several HTLCs (its ``PaymentClaimable`` and ``PaymentClaimed`` come once, for the whole)."""
        payee = invoice.payee_pub_key()
        scids = [c.short_channel_id for c in payer.channel_manager.list_usable_channels()
                 if c.counterparty.node_id == payee]
        part = invoice.amount_milli_satoshis() // len(scids)
        paths = tuple(Path((RouteHop(payee, b"", scid, b"", part, 42, True),), None) for scid in scids)
        payer.channel_manager.send_payment_with_route(
            Route(paths, None), invoice.payment_hash(), RecipientOnionFields.secret_only(invoice.payment_secret()),
            payment_id)
        self.settle()

    def keysend(self, payer: Node, payee: Node, amount_msat: int,
                custom_tlvs: Sequence[tuple[int, bytes]] = ()) -> PaymentHash:
        """ldk-sample's ``keysend``: a spontaneous payment with a fresh preimage, recorded as ``sendpayment`` records
        its payments (and ``custom_tlvs``, if given, as a chat app would send a message)."""
        preimage = PaymentPreimage(payer.keys_manager.get_secure_random_bytes())
        params = PaymentParameters.for_keysend(payee.node_id, 40, False)
        route_params = RouteParameters.from_payment_params_and_value(params, amount_msat)
        payment_id = PaymentId(bytes(preimage.payment_hash()))
        onion = RecipientOnionFields.spontaneous_empty().with_custom_tlvs(list(custom_tlvs))
        payment_hash = self._send(payer, payment_id, PaymentInfo(None, None, HTLCStatus.Pending, amount_msat),
                                  lambda: payer.channel_manager.send_spontaneous_payment(
                                      preimage, onion, payment_id, route_params, Retry.Timeout(timedelta(seconds=10))))
        self.settle()
        return payment_hash


_SCENARIOS: dict[str, Callable[[Stage], None]] = {}


def scenario(play: Callable[[Stage], None]) -> Callable[[Stage], None]:
    _SCENARIOS[play.__name__] = play
    return play


def names() -> list[str]:
    """Every scenario's name, in the order of ``lightning-scenarios.md`` §8a."""
    return list(_SCENARIOS)


def describe(name: str) -> str:
    """What a scenario plays, in one or two sentences."""
    return (_SCENARIOS[name].__doc__ or "").strip()


def run(
    name: str, handler: Optional[Callable[..., Any]] = None, *, seed: int = 0, processor: Optional[str] = None
) -> ScenarioResult:
    """Play scenario ``name`` against a fresh node running ``handler``; see the module docstring.

    ``processor`` chooses what hands the learner's node its events: the world itself
    (``None``), a ``BackgroundProcessor`` thread (``"thread"``) or ``process_events_async``
    (``"async"``). All three give the same events.
    """
    if name not in _SCENARIOS:
        raise KeyError(f"no scenario called {name!r}; ldkkit.scenarios.names() lists them")
    world = World(seed=seed)
    try:
        me = world.add_node(LEARNER, handler=handler or reference.handle_ldk_events)
        stage = Stage(world, me)
        with _processing(me, processor):
            _SCENARIOS[name](stage)
            stage.settle()
        node = world.nodes[LEARNER]
        return ScenarioResult(name, seed, node.events_seen, node, world, stage.peers)
    finally:
        world.close()


@contextlib.contextmanager
def _processing(node: Node, processor: Optional[str]) -> Iterator[None]:
    """Run a background processor over the learner's node for the duration of a scenario."""
    from .sim.node_process import run_processor

    if processor is None:
        yield
        return
    with one_cpu(), run_processor(node, processor):
        yield


# --- the scenarios ----------------------------------------------------------------------------


@scenario
def inbound_open_accept(s: Stage) -> None:
    """A peer opens a 6,000,000 sat channel to you: you accept, it confirms, it is ready."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)


@scenario
def inbound_open_reject(s: Stage) -> None:
    """A peer opens a 4,000,000 sat channel to you: too small, so you reject it. As LDK's opener does, the
    peer proposes it once more without anchors (``static_remote_key``), and you reject that too."""
    bob = s.peer("bob")
    s.open(bob, s.me, 4_000_000)


@contextlib.contextmanager
def _trusting(node: Node) -> Iterator[None]:
    policy.TRUSTED_ZERO_CONF_PEERS.add(node.node_id)
    try:
        yield
    finally:
        policy.TRUSTED_ZERO_CONF_PEERS.discard(node.node_id)


@scenario
def inbound_open_zero_conf(s: Stage) -> None:
    """Your trusted LSP opens a zero-conf channel: it is usable at once, before any block."""
    lsp = s.peer("lsp")
    with _trusting(lsp):
        s.open(lsp, s.me, 6_000_000, confirm=False, zero_conf=True)
        s.until_answered(s.me)
        s.settle()


@scenario
def outbound_open(s: Stage) -> None:
    """You open a 1,000,000 sat channel to a peer: you fund it, it confirms, it is ready."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)


def _refuse_channels(channel_manager: Any, *args: Any) -> None:
    event = args[-1]
    if isinstance(event, Event.OpenChannelRequest):
        channel_manager.force_close_without_broadcasting_txn(
            event.temporary_channel_id, event.counterparty_node_id, "No channels wanted, thank you"
        )


@scenario
def outbound_open_rejected_by_peer(s: Stage) -> None:
    """You open a channel to a peer who refuses it: it closes before it was ever funded."""
    bob = s.peer("bob", handler=_refuse_channels)
    s.open(s.me, bob, 1_000_000, confirm=False)


@scenario
def receive_invoice_payment(s: Stage) -> None:
    """A peer pays your 50,000 sat invoice: you claim it and record it."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    s.pay(bob, s.invoice(s.me, 50_000_000))


@scenario
def receive_keysend(s: Stage) -> None:
    """A peer sends you 20,000 sats by keysend, with no invoice: you claim it."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    s.keysend(bob, s.me, 20_000_000)


@scenario
def receive_unknown_payment(s: Stage) -> None:
    """A peer pays a payment hash you never issued: it cannot be claimed and fails back."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    fake = Bolt11Invoice.create(
        network=Network.Regtest, node_secret_key=s.me.keys_manager.get_node_secret_key(),
        payment_hash=PaymentHash(b"\x11" * 32), payment_secret=PaymentSecret(b"\x22" * 32), amount_msat=10_000_000,
        description="not issued by you", timestamp=s.world.clock.unix_time(),
    )
    s.pay(bob, fake, retry=Retry.Attempts(0))


@scenario
def receive_duplicate_payment(s: Stage) -> None:
    """A peer pays the same invoice twice: you claim the first payment and fail the second."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    invoice = s.invoice(s.me, 30_000_000)
    s.pay(bob, invoice)
    s.pay(bob, invoice, payment_id=PaymentId(b"\x02" * 32))


@scenario
def receive_mpp(s: Stage) -> None:
    """A peer pays your invoice in two parts over two channels: one payment, two HTLCs."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    s.open(bob, s.me, 6_000_000)
    s.pay_in_parts(bob, s.invoice(s.me, 80_000_000), PaymentId(b"\x03" * 32))


@scenario
def send_direct(s: Stage) -> None:
    """You pay a peer's 100,000 sat invoice over your channel to them: no fee."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)
    s.pay(s.me, s.invoice(bob, 100_000_000))


@scenario
def send_two_hop(s: Stage) -> None:
    """You pay carol through bob, who charges a 1,000 msat fee to forward it."""
    bob = s.peer("bob")
    carol = s.peer("carol", connect=False)
    s.open(s.me, bob, 1_000_000)
    s.open(bob, carol, 1_000_000)
    s.pay(s.me, s.invoice(carol, 100_000_000))


@scenario
def forward_payment(s: Stage) -> None:
    """alice pays carol through you: you forward it and earn a fee."""
    alice = s.peer("alice")
    carol = s.peer("carol")
    s.open(alice, s.me, 6_000_000)
    s.open(carol, s.me, 6_000_000, push_msat=3_000_000_000)
    s.pay(alice, s.invoice(carol, 100_000_000))


def _two_routes(s: Stage) -> tuple[Node, Node, Node]:
    """You reach dave through bob (cheap, but bob has no money on his side) or carol."""
    bob = s.peer("bob", fee_base_msat=100)
    carol = s.peer("carol", fee_base_msat=2000)
    dave = s.peer("dave", connect=False)
    s.open(s.me, bob, 1_000_000)
    s.open(s.me, carol, 1_000_000)
    s.open(dave, bob, 1_000_000)  # dave funded it: bob cannot forward towards dave
    s.open(carol, dave, 1_000_000)
    return bob, carol, dave


@scenario
def send_retry_then_succeed(s: Stage) -> None:
    """Your payment to dave fails at bob, then LDK retries through carol and it succeeds."""
    _bob, _carol, dave = _two_routes(s)
    s.pay(s.me, s.invoice(dave, 100_000_000))


@scenario
def send_fails_permanently(s: Stage) -> None:
    """You pay an invoice the recipient does not know: they reject it, and the payment fails."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)
    fake = Bolt11Invoice.create(
        network=Network.Regtest, node_secret_key=bob.keys_manager.get_node_secret_key(),
        payment_hash=PaymentHash(b"\x33" * 32), payment_secret=PaymentSecret(b"\x44" * 32), amount_msat=10_000_000,
        description="bob never issued this", timestamp=s.world.clock.unix_time(),
    )
    s.pay(s.me, fake)


@scenario
def send_retries_exhausted(s: Stage) -> None:
    """Your payment to dave fails at bob, and you allowed no retries: it fails for good."""
    bob = s.peer("bob")
    dave = s.peer("dave", connect=False)
    s.open(s.me, bob, 1_000_000)
    s.open(dave, bob, 1_000_000)
    s.pay(s.me, s.invoice(dave, 100_000_000), retry=Retry.Attempts(0))


def _probe(s: Stage, carol_funds: bool) -> None:
    bob = s.peer("bob")
    carol = s.peer("carol", connect=False)
    s.open(s.me, bob, 1_000_000)
    if carol_funds:
        s.open(carol, bob, 1_000_000)  # bob has nothing on his side towards carol
    else:
        s.open(bob, carol, 1_000_000)
    route_params = RouteParameters.from_payment_params_and_value(
        PaymentParameters.from_node_id(carol.node_id, 42), 200_000_000
    )
    route = s.me.router.find_route(s.me.node_id, route_params, s.me.channel_manager.list_usable_channels(), None)
    s.me.channel_manager.send_probe(route.paths[0])
    s.settle()


@scenario
def probe_successful(s: Stage) -> None:
    """You probe a 200,000 sat path to carol through bob: it gets all the way there."""
    _probe(s, carol_funds=False)


@scenario
def probe_failed(s: Stage) -> None:
    """You probe a path through bob, who has too little on his side: it fails at bob."""
    _probe(s, carol_funds=True)


@scenario
def coop_close_local(s: Stage) -> None:
    """You close your channel cooperatively; once the close confirms, you sweep your coins."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)
    channel = s.channel_between(s.me, bob)
    s.me.channel_manager.close_channel(channel.channel_id, bob.node_id)
    s.settle()
    s.mine(6)
    s.mine(6)


@scenario
def coop_close_remote(s: Stage) -> None:
    """Your peer closes your channel cooperatively; once it confirms, you sweep your coins."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)
    channel = s.channel_between(bob, s.me)
    bob.channel_manager.close_channel(channel.channel_id, s.me.node_id)
    s.settle()
    s.mine(6)
    s.mine(6)


@scenario
def force_close_local(s: Stage) -> None:
    """You force-close: your commitment already pays the feerate LDK wants (no HTLCs: ``OutputSpendingFee``), so
    the monitor broadcasts it with no ``BumpTransaction``; 144 blocks after it confirms, you sweep."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)
    channel = s.channel_between(s.me, bob)
    s.me.channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, bob.node_id, "Manually force-closed")
    s.settle()
    s.mine(144)
    s.mine(6)


@scenario
def force_close_remote(s: Stage) -> None:
    """You pay your peer, then it force-closes; on its error you broadcast your commitment too. The payment's HTLC is
    still on your previous commitment, so the closing is urgent: you are asked to bump yours (``BumpTransaction``,
    every 30 seconds) until theirs, first in the mempool, confirms; your balance is then yours to sweep."""
    bob = s.peer("bob")
    s.open(s.me, bob, 1_000_000)
    s.pay(s.me, s.invoice(bob, 100_000_000))
    channel = s.channel_between(bob, s.me)
    bob.channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, s.me.node_id, "Manually force-closed")
    s.settle()
    s.mine(6)
    s.mine(6)


def vanish_when_paid(channel_manager: Any, *args: Any) -> Any:
    """A peer that goes offline the moment a payment reaches it, leaving the HTLC unsettled."""
    event, peer_manager = args[-1], args[4]
    if isinstance(event, Event.PaymentClaimable):
        peer_manager.disconnect_all_peers()
        return None
    return reference.ldk_sample_handle_ldk_events(channel_manager, *args)


def forwards_after(delay_s: float) -> Callable[..., Any]:
    """A peer that processes its HTLCs exactly ``delay_s`` after being told (ldk-sample's handler otherwise): a payee
    whose claims come back at a moment a story can count on."""

    def handle(channel_manager: Any, *args: Any) -> Any:
        if isinstance(args[-1], Event.PendingHTLCsForwardable):
            async def later() -> None:
                await asyncio.sleep(delay_s)
                channel_manager.process_pending_htlc_forwards()

            reference._spawn(later())
            return None
        return reference.ldk_sample_handle_ldk_events(channel_manager, *args)

    return handle


@scenario
def force_close_htlc_in_flight(s: Stage) -> None:
    """You forward to carol, who never settles. Three blocks after the HTLC expires you force-close; with an HTLC
    on it, your commitment must confirm urgently, so you bump it (``BumpTransaction::ChannelClose``, asked again
    every 30 seconds until it confirms). Then you take the HTLC back with a second-stage transaction
    (``BumpTransaction::HTLCResolution``), fail it back to alice once that is six blocks deep, and sweep your
    balance and the HTLC 144 blocks after each confirmed."""
    alice = s.peer("alice")
    carol = s.peer("carol", handler=vanish_when_paid)
    s.open(alice, s.me, 6_000_000)
    s.open(carol, s.me, 6_000_000, push_msat=3_000_000_000)
    s.pay(alice, s.invoice(carol, 100_000_000))
    s.mine(50)
    s.mine(144)


@scenario
def handler_replay(s: Stage) -> None:
    """Writing your payment records fails once: your handler returns ReplayEvent, and the event comes back."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    store = s.me.fs_store
    real_write = store.write
    failures = iter([OSError("disk full (simulated)")])

    def flaky_write(primary: str, secondary: str, key: str, buf: bytes) -> None:
        if key == "inbound_payments":
            error = next(failures, None)
            if error is not None:
                raise error
        real_write(primary, secondary, key, buf)

    invoice = s.invoice(s.me, 50_000_000)  # (its record written first, as getinvoice does: the disk fails after)
    store.write = flaky_write  # type: ignore[method-assign]
    s.pay(bob, invoice)


@scenario
def restart_replay(s: Stage) -> None:
    """Your node crashes as a payment arrives; restarted from disk, it gets the events back and claims it."""
    bob = s.peer("bob")
    s.open(bob, s.me, 6_000_000)
    invoice = s.invoice(s.me, 50_000_000)
    s.world.crash(s.me)  # nothing handles the learner's events any more (its processor, if any, stops)
    s.pay(bob, invoice)
    # What the node had last persisted, with the payment's HTLC just arrived, is what survives.
    s.me.fs_store.write("", "", "manager", s.me.channel_manager.encode())
    me = s.world.restart_node(s.me)
    s.me = me
    s.settle(10)  # LDK asks for forwarding 2 s after a restart; ldk-sample waits up to five times that

