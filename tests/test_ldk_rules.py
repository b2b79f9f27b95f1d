"""LDK 0.1's rules for the events a node is given: which the ChannelManager and the ChainMonitor emit, with which
fields, in which order, and what survives a restart (rust-lightning v0.1.12; each test cites the function its rule
comes from: lightning/src/ln/outbound_payment.rs, channelmanager.rs, onion_utils.rs, channel.rs,
lightning-background-processor)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from test_channelmanager import intercepting_lsp, pay_through_an_intercept_scid

from ldkkit.bitcoin import OutPoint, Transaction
from ldkkit.chain.chainmonitor import HTLC_FAIL_BACK_BUFFER
from ldkkit.errors import APIError
from ldkkit.events import (
    ClaimedHTLC,
    ClosureReason,
    Event,
    FundingInfo,
    HTLCDestination,
    InboundChannelFunds,
    NetworkUpdate,
    PathFailure,
    PaymentFailureReason,
    PaymentPurpose,
    ReplayEvent,
)
from ldkkit.ln import msgs
from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice
from ldkkit.ln.channel import HTLCOutboundRoute
from ldkkit.ln.claimable_payments import MPP_TIMEOUT_TICKS
from ldkkit.ln.msgs import FailureOnion, FinalPayload, HopPayload, Onion
from ldkkit.ln.onion_utils import build_onion_payloads
from ldkkit.ln.outbound_payment import (
    OutboundPayments,
    PendingOutboundPayment,
    RecipientOnionFields,
    Retry,
    SendAlongPathArgs,
)
from ldkkit.reference import handle_ldk_events as reference
from ldkkit.reference import ldk_sample_handle_ldk_events as ldk_sample
from ldkkit.routing.router import LightningError, Path, PaymentParameters, Route, RouteHop, RouteParameters
from ldkkit.scenarios import Stage
from ldkkit.ser import DecodeError, decode, encode
from ldkkit.sim.clock import VirtualClock
from ldkkit.sim.node_process import run_processor
from ldkkit.sim.world import World
from ldkkit.types import ChannelId, PaymentHash, PaymentId, PaymentPreimage, PaymentSecret, PublicKey


def dead_ends(seed: int, count: int):
    """Us, ``count`` peers, and dave behind each of them on a channel dave funded: no peer can forward to
    dave (temporary_channel_failure), so every path fails, each at a different channel."""
    seen: list[Event] = []
    blamed: list[object] = []  # for each PaymentPathFailed: the graph's entry for the channel it blames, then

    async def recording(*args):
        event, graph = args[-1], args[2]
        seen.append(event)
        if isinstance(event, Event.PaymentPathFailed):  # what the graph says of the blamed channel, then
            blamed.append(graph.channel(event.short_channel_id))
        return await reference(*args)

    world = World(seed=seed)
    stage = Stage(world, world.add_node("learner", handler=recording))
    dave = stage.peer("dave", connect=False)
    hops = [stage.peer(f"hop{i}", fee_base_msat=100 * (i + 1)) for i in range(count)]
    for hop in hops:
        stage.open(stage.me, hop, 1_000_000)
        stage.open(dave, hop, 1_000_000)
    return world, stage, dave, hops, seen, blamed


@pytest.mark.parametrize("retries", [0, 2])
def test_retry_attempts_n_makes_n_retries_after_the_first_attempt(retries):
    """``Retry::Attempts(n)``: n retries (LDK: ``max_retry_count > count``, the count of retries made), so n + 1
    paths are tried before PaymentFailed(RetriesExhausted), even though untried paths remain."""
    world, stage, dave, hops, seen, blamed = dead_ends(21, 4)
    with world:
        stage.pay(stage.me, stage.invoice(dave, 20_000_000), retry=Retry.Attempts(retries))
        stage.settle(30)
    path_failures = [e for e in seen if isinstance(e, Event.PaymentPathFailed)]
    failed = [e for e in seen if isinstance(e, Event.PaymentFailed)]
    assert len(path_failures) == retries + 1
    assert not any(e.payment_failed_permanently for e in path_failures)
    assert [e.reason for e in failed] == [PaymentFailureReason.RetriesExhausted]


def test_a_failed_path_blames_the_channel_that_could_not_forward():
    """A temporary_channel_failure (UPDATE|7) from a hop gives ``PathFailure::OnPath`` a non-permanent
    ``NetworkUpdate::ChannelFailure`` for the hop's outgoing channel, and the event's ``short_channel_id``."""
    world, stage, dave, hops, seen, blamed = dead_ends(22, 1)
    with world:
        outgoing = stage.channel_between(hops[0], dave).short_channel_id
        stage.pay(stage.me, stage.invoice(dave, 20_000_000), retry=Retry.Attempts(0))
        stage.settle(30)
    (failure,) = [e for e in seen if isinstance(e, Event.PaymentPathFailed)]
    assert failure.failure == PathFailure.OnPath(NetworkUpdate.ChannelFailure(outgoing, False))
    assert failure.short_channel_id == outgoing


def test_the_processor_applies_a_permanent_channel_failure_to_the_graph_before_the_handler_sees_it():
    """LDK's BackgroundProcessor hands every PaymentPathFailed to ``handle_network_graph_update`` first: a
    permanent ChannelFailure has removed the channel from the graph by the time the handler sees the event."""
    world, stage, dave, hops, seen, blamed = dead_ends(23, 1)
    with world:
        stage.pay(stage.me, stage.invoice(dave, 20_000_000), retry=Retry.Attempts(0))
        stage.settle(30)
        (failure,) = [e for e in seen if isinstance(e, Event.PaymentPathFailed)]
        scid = failure.short_channel_id
        assert stage.me.network_graph.channel(scid) is not None  # a temporary failure changes nothing
        permanent = dataclasses.replace(failure, failure=PathFailure.OnPath(NetworkUpdate.ChannelFailure(scid, True)))
        with run_processor(stage.me, "thread"):
            stage.me.channel_manager._events.push(permanent)
            stage.settle()
    assert seen[-1] == permanent and blamed[-1] is None


# --- OutboundPayments (lightning/src/ln/outbound_payment.rs), driven directly --------------------------------

HOP = PublicKey.from_secret_key(b"\x01" * 32)
PAYEE = PublicKey.from_secret_key(b"\x02" * 32)
PREIMAGE = PaymentPreimage(b"\x03" * 32)
HASH = PREIMAGE.payment_hash()
PID = PaymentId(b"\x04" * 32)


def path(scid: int, amount: int = 10_000, fee: int = 100) -> Path:
    """Us -> HOP over ``scid`` -> PAYEE over ``scid + 1``."""
    return Path((RouteHop(HOP, b"", scid, b"", fee, 40, True), RouteHop(PAYEE, b"", scid + 1, b"", amount, 40, True)),
                None)


class Sender:
    """OutboundPayments with a clock, a router that gives the next of ``routes`` and a first hop that takes
    every path; the events it raises, and the PendingHTLCsForwardable requests, are recorded."""

    def __init__(self, routes: list[Route | None], refuse_first_hop: bool | str = False) -> None:
        self.clock = VirtualClock()
        self.events: list[Event] = []
        self.forwardable = 0
        self.routes = list(routes)
        self.sent: list[Path] = []
        self.htlcs: list[tuple[HTLCOutboundRoute, SendAlongPathArgs]] = []  # each HTLC sent, as the manager has it
        self.asked: list[RouteParameters] = []
        self.refuse = refuse_first_hop
        self.out = OutboundPayments(clock=self.clock, pending_events=self.events.append,
                                    forwardable=self._forwardable, log=lambda _: None)

    def _forwardable(self) -> None:
        self.forwardable += 1

    def find_route(self, params: RouteParameters) -> Route:
        """The next of ``routes``; none left, or ``None`` next, is no route."""
        self.asked.append(params)
        found = self.routes.pop(0) if self.routes else None
        if found is None:
            raise LightningError("Failed to find a path to the given destination")
        return found

    def send_along_path(self, args) -> None:
        if self.refuse == "misuse":
            raise APIError.APIMisuseError("Cannot send a path of this kind")
        if self.refuse:
            raise APIError.ChannelUnavailable("No channel available with first hop!")
        self.sent.append(args.path)
        self.htlcs.append((HTLCOutboundRoute(args.payment_id, args.path, args.is_probe), args))

    def pay(self, retry: Retry, amount: int = 10_000) -> None:
        params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(PAYEE, 40), amount)
        self.out.send_payment(HASH, RecipientOnionFields.secret_only(None), PID, retry, params, self.find_route,
                              self.send_along_path)

    def fail(self, p: Path, origin: PublicKey = HOP, scid: int | None = None, permanent: bool | None = False,
             code: int | None = None) -> None:
        if code is None:  # a hop's temporary_channel_failure, a payee's incorrect_or_unknown_payment_details
            code = 0x4000 | 15 if origin == PAYEE else 0x1007
        reason = FailureOnion(origin, code, scid, permanent if scid is not None else None)
        self.out.fail_htlc(HTLCOutboundRoute(PID, p, False), HASH, reason)

    def claim(self, p: Path) -> None:
        self.out.claim_htlc(HTLCOutboundRoute(PID, p, False), HASH, PREIMAGE)

    def retry(self) -> None:
        self.out.check_retry_payments(self.find_route, self.send_along_path)

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


def route(*paths: Path) -> Route:
    return Route(tuple(paths), None)


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retry_attempts_n_makes_exactly_n_retries(retries):
    """``Retry::Attempts(n)`` (``Retry::is_retryable_now``: ``max_retry_count > count``, count starting at 0 and
    counting retries): each failed path before the n-th retry asks for a retry (PendingHTLCsForwardable), the
    failure of the n-th retry fails the payment (RetriesExhausted)."""
    paths = [path(10 * (i + 1)) for i in range(retries + 1)]
    s = Sender([route(p) for p in paths])
    s.pay(Retry.Attempts(retries))
    for i, p in enumerate(paths):
        s.fail(p, scid=p.hops[0].short_channel_id)
        if i < retries:
            assert s.names()[-1] == "PaymentPathFailed" and s.forwardable == i + 1
            s.retry()
    assert s.sent == paths
    assert s.names() == ["PaymentPathFailed"] * (retries + 1) + ["PaymentFailed"]
    assert s.events[-1] == Event.PaymentFailed(PID, HASH, PaymentFailureReason.RetriesExhausted)
    assert s.forwardable == retries


def test_retry_timeout_retries_a_path_that_fails_at_the_timeout():
    """``Retry::Timeout(d)`` allows a retry while ``d >= now - first_attempted_at`` (``Retry::is_retryable_now``):
    a path failing exactly at ``d`` is retried; one failing later fails the payment."""
    first, second = path(10), path(20)
    s = Sender([route(first), route(second)])
    s.clock._now_us = 5_000_000
    s.pay(Retry.Timeout(timedelta(seconds=10)))
    s.clock._now_us = 15_000_000
    s.fail(first, scid=10)
    assert s.names() == ["PaymentPathFailed"] and s.forwardable == 1
    s.retry()
    s.clock._now_us = 15_000_001
    s.fail(second, scid=20)
    assert s.names() == ["PaymentPathFailed", "PaymentPathFailed", "PaymentFailed"]
    assert s.events[-1].reason is PaymentFailureReason.RetriesExhausted


def test_payment_path_failed_carries_the_network_update_of_the_failing_channel():
    """``fail_htlc``: a path failed at a hop raises ``PaymentPathFailed`` for this payment and path, not permanent,
    ``PathFailure::OnPath`` with a ``NetworkUpdate::ChannelFailure`` of the blamed channel (permanent as the hop
    said) and that channel as ``short_channel_id``; the retry routes around it."""
    first, second = path(10), path(20)
    s = Sender([route(first), route(second)])
    s.pay(Retry.Attempts(1))
    s.fail(first, scid=11, permanent=True)
    update = NetworkUpdate.ChannelFailure(11, True)
    assert s.events == [Event.PaymentPathFailed(PID, HASH, False, PathFailure.OnPath(update), first, 11)]
    s.retry()
    assert s.asked[-1].payment_params.previously_failed_channels == (11,)
    assert s.asked[-1].max_total_routing_fee_msat == s.asked[0].max_total_routing_fee_msat == 50_100  # kept


def test_a_part_failing_after_the_payment_succeeded_raises_nothing():
    """``fail_htlc``: "Received failure of HTLC ... after payment completion" returns before any event, so an MPP
    part failing after another was fulfilled raises no PaymentPathFailed and no PaymentFailed."""
    a, b = path(10, 5_000), path(20, 5_000)
    s = Sender([route(a, b)])
    s.pay(Retry.Attempts(3))
    s.claim(a)
    assert s.events == [Event.PaymentSent(PID, PREIMAGE, HASH, 200), Event.PaymentPathSuccessful(PID, HASH, a)]
    s.fail(b, scid=20)
    s.retry()
    assert s.names() == ["PaymentSent", "PaymentPathSuccessful"] and s.forwardable == 0 and len(s.sent) == 2


@pytest.mark.parametrize("code, update, blamed", [
    (23, None, None),  # mpp_timeout: the payment failed, nothing to blame
    (19, None, 11),  # final_incorrect_htlc_amount: the last channel, whose value did not match the onion
    (0x2000 | 2, NetworkUpdate.NodeFailure(PAYEE, False), 11),  # temporary_node_failure (FailureCode's first)
])
def test_a_recipients_failure_without_the_perm_bit_is_retried(code, update, blamed):
    """LDK's ``process_onion_failure`` for a failure from the final node: ``payment_failed_permanently`` only with
    the PERM bit (onion_utils.rs:857), so ``fail_htlc`` retries the others (outbound_payment.rs ``fail_htlc``:
    ``payment_failed_permanently`` alone abandons as RecipientRejected), each code with its own network update and
    blamed channel (onion_utils.rs:777-850). The kit took every failure from the recipient as final."""
    a, b = path(10), path(20)
    s = Sender([route(a), route(b)])
    s.pay(Retry.Attempts(3))
    s.fail(a, origin=PAYEE, code=code)
    assert s.events == [Event.PaymentPathFailed(PID, HASH, False, PathFailure.OnPath(update), a, blamed)]
    s.retry()
    assert s.sent == [a, b]
    s.fail(b, origin=PAYEE, code=0x4000 | 15)  # refused for good: abandoned, as the recipient rejected it
    assert s.events[-2:] == [Event.PaymentPathFailed(PID, HASH, True, PathFailure.OnPath(None), b, None),
                             Event.PaymentFailed(PID, HASH, PaymentFailureReason.RecipientRejected)]


def test_a_recipients_temporary_failure_of_a_payment_not_retried_is_retries_exhausted():
    """``send_payment_with_route`` (no retry): a recipient's failure without the PERM bit abandons the payment as
    RetriesExhausted, not RecipientRejected (outbound_payment.rs ``fail_htlc``)."""
    a = path(10)
    s = Sender([route(a)])
    s.pay(Retry.Attempts(0))
    s.fail(a, origin=PAYEE, code=23)
    assert s.events[-1] == Event.PaymentFailed(PID, HASH, PaymentFailureReason.RetriesExhausted)

@pytest.mark.parametrize("delta, received", [(21, False), (22, True)])  # (expiry: the next block plus delta)
def test_a_payment_expiring_too_soon_to_claim_on_chain_is_failed_as_it_arrives(delta, received):
    """LDK's ``create_recv_pending_htlc_info`` (onion_payment.rs:190-204): an HTLC to us whose expiry is at most
    ``HTLC_FAIL_BACK_BUFFER + 1`` blocks away is failed as it arrives (incorrect_or_unknown_payment_details), never
    claimable, and with no event: ``internal_update_add_htlc`` stores it resolved as failed, and ``revoke_and_ack``
    sends the failure (channel.rs:5533-5546). The kit made it claimable, to fail it back at the next block, and then
    raised HTLCHandlingFailed for it."""
    with World(seed=3) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        invoice = stage.invoice(stage.me, 10_000_000)
        scid = bob.channel_manager.list_usable_channels()[0].short_channel_id
        path = Path((RouteHop(stage.me.node_id, b"", scid, b"", 10_000_000, delta, True),), None)
        bob.channel_manager.send_payment_with_route(
            Route((path,), None), invoice.payment_hash(), RecipientOnionFields.secret_only(invoice.payment_secret()),
            PaymentId(b"\x05" * 32))
        stage.settle()
        seen = stage.me.events_seen
        assert any(isinstance(e, Event.PaymentClaimable) for e in seen) is received
        assert not any(isinstance(e, Event.HTLCHandlingFailed) for e in seen)
        failed = [e for e in bob.events_seen if isinstance(e, Event.PaymentFailed)]
        assert [e.reason for e in failed] == ([] if received else [PaymentFailureReason.RecipientRejected])

def test_a_refused_mpp_payment_fails_once_its_last_part_is_back():
    """``fail_htlc``: a part refused by the recipient abandons the payment (RecipientRejected), but
    ``PaymentFailed`` waits for ``remaining_parts() == 0``: each part raises its ``PaymentPathFailed``
    (permanent, no network update, no channel blamed), the last one followed by ``PaymentFailed``."""
    a, b = path(10, 5_000), path(20, 5_000)
    s = Sender([route(a, b)])
    s.pay(Retry.Attempts(3))
    s.fail(a, origin=PAYEE)
    assert s.events == [Event.PaymentPathFailed(PID, HASH, True, PathFailure.OnPath(None), a, None)]
    s.fail(b, origin=PAYEE, scid=21)
    assert s.events[1:] == [Event.PaymentPathFailed(PID, HASH, True, PathFailure.OnPath(None), b, None),
                            Event.PaymentFailed(PID, HASH, PaymentFailureReason.RecipientRejected)]
    assert s.forwardable == 0 and s.out.pending_outbound_payments == {}


def test_an_abandoned_payment_keeps_its_first_reason():
    """``mark_abandoned`` changes only a retryable payment: once retries ran out, ``abandon_payment`` leaves the
    reason RetriesExhausted, and the ``PaymentFailed`` comes with the last part in flight."""
    a, b = path(10, 5_000), path(20, 5_000)
    s = Sender([route(a, b)])
    s.pay(Retry.Attempts(0))
    s.fail(a, scid=10)
    s.out.abandon_payment(PID)
    assert s.names() == ["PaymentPathFailed"]
    s.fail(b, scid=20)
    assert s.events[-1] == Event.PaymentFailed(PID, HASH, PaymentFailureReason.RetriesExhausted)


def test_abandoning_waits_for_the_parts_in_flight():
    """``abandon_payment``: ``PaymentFailed { reason: UserAbandoned }`` once no part is in flight; the part that
    fails meanwhile still raises its ``PaymentPathFailed`` first, and is not retried."""
    a = path(10)
    s = Sender([route(a), route(path(30))])
    s.pay(Retry.Attempts(3))
    s.out.abandon_payment(PID)
    assert s.events == []
    s.fail(a, scid=10)
    s.retry()
    assert s.names() == ["PaymentPathFailed", "PaymentFailed"]
    assert s.events[-1].reason is PaymentFailureReason.UserAbandoned and s.sent == [a] and s.forwardable == 0


def test_abandoning_a_fulfilled_payment_raises_nothing():
    """``mark_abandoned`` leaves a fulfilled payment fulfilled: no ``PaymentFailed`` after ``PaymentSent``."""
    a = path(10)
    s = Sender([route(a)])
    s.pay(Retry.Attempts(3))
    s.claim(a)
    s.out.abandon_payment(PID)
    assert s.names() == ["PaymentSent", "PaymentPathSuccessful"]


def test_no_route_for_a_retry_fails_the_payment_once_nothing_is_in_flight():
    """``find_route_and_send_payment``: no route for the retry abandons the payment with RouteNotFound; its
    ``PaymentFailed`` comes when the last part in flight is back, with that reason."""
    a, b = path(10, 5_000), path(20, 5_000)
    s = Sender([route(a, b)])
    s.pay(Retry.Attempts(3))
    s.fail(a, scid=10)
    s.retry()  # the router has nothing more
    assert s.names() == ["PaymentPathFailed"]
    s.fail(b, scid=20)
    assert s.names() == ["PaymentPathFailed", "PaymentPathFailed", "PaymentFailed"]
    assert s.events[-1].reason is PaymentFailureReason.RouteNotFound and s.forwardable == 1


def test_a_timeout_that_ran_out_before_the_retry_fails_the_payment():
    """``check_retry_payments`` retries only a payment ``is_auto_retryable_now``; one whose ``Retry::Timeout``
    passed since its path failed is abandoned (RetriesExhausted) with nothing in flight, and not sent again."""
    a = path(10)
    s = Sender([route(a), route(path(30))])
    s.pay(Retry.Timeout(timedelta(seconds=5)))
    s.fail(a, scid=10)
    s.clock._now_us = 6_000_000
    s.retry()
    assert s.names() == ["PaymentPathFailed", "PaymentFailed"] and s.sent == [a]
    assert s.events[-1].reason is PaymentFailureReason.RetriesExhausted


def test_a_payment_abandoned_at_its_retry_does_not_hold_up_the_next():
    """``check_retry_payments`` goes on past the payments it abandons: one whose timeout ran out
    (``RetriesExhausted``), one for which no route is found (``RouteNotFound``); the payment after them is still
    routed again and sent."""
    a, b, c = path(10), path(20), path(30)
    s = Sender([route(a), route(b), route(c), None, route(path(40))])
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(PAYEE, 40), 10_000)
    ids = [PaymentId(bytes([i]) * 32) for i in (1, 2, 3)]
    retries = [Retry.Timeout(timedelta(seconds=5)), Retry.Attempts(1), Retry.Attempts(1)]
    for payment_id, retry in zip(ids, retries, strict=True):
        s.out.send_payment(HASH, RecipientOnionFields.secret_only(None), payment_id, retry, params, s.find_route,
                           s.send_along_path)
    for payment_id, p in zip(ids, [a, b, c], strict=True):
        s.out.fail_htlc(HTLCOutboundRoute(payment_id, p, False), HASH, FailureOnion(HOP, 0x1007, 11, False))
    s.clock._now_us = 6_000_000
    s.retry()
    assert s.sent == [a, b, c, path(40)]
    assert [(e.payment_id, e.reason) for e in s.events if isinstance(e, Event.PaymentFailed)] == [
        (ids[0], PaymentFailureReason.RetriesExhausted), (ids[1], PaymentFailureReason.RouteNotFound)]


def test_a_payment_written_after_its_retry_reads_back_as_it_was():
    """``ChannelManager::write`` keeps each pending payment: one retried (its retry no longer pending, a second
    attempt in flight) reads back equal."""
    s = Sender([route(path(10)), route(path(20))])
    s.pay(Retry.Attempts(1))
    s.fail(path(10), scid=10)
    s.retry()
    (payment,) = s.out.pending_outbound_payments.values()
    assert (payment.attempts, payment.inflight_htlcs, payment.pending_retry) == (2, 1, False)
    assert decode(encode(payment), PendingOutboundPayment) == payment


def test_a_path_the_first_hop_refuses_blames_that_channel():
    """``push_path_failed_evs_and_scids``: a path whose first channel is unavailable raises ``PaymentPathFailed``
    with ``PathFailure::InitialSend`` and that channel as ``short_channel_id``, not permanent; ``handle_pay_route_err``
    retries at once, inside ``send_payment`` (no PendingHTLCsForwardable), around that channel; the route is looked
    for before the retries are counted (``find_route_and_send_payment``)."""
    a, b, c = path(10), path(30), path(50)
    s = Sender([route(a), route(b), route(c)], refuse_first_hop=True)
    s.pay(Retry.Attempts(1))
    first, second, failed = s.events
    assert isinstance(first, Event.PaymentPathFailed) and isinstance(first.failure, PathFailure.InitialSend)
    assert (first.payment_id, first.payment_hash, first.payment_failed_permanently, first.path,
            first.short_channel_id) == (PID, HASH, False, a, 10)
    assert isinstance(first.failure.err, APIError.ChannelUnavailable) and s.forwardable == 0
    assert (second.path, second.short_channel_id) == (b, 30)  # (the one retry: its first hop refused it too)
    assert [q.payment_params.previously_failed_channels for q in s.asked] == [(), (10,), (10, 30)]
    assert (failed.payment_id, failed.reason) == (PID, PaymentFailureReason.RetriesExhausted)
    assert not s.sent and not s.out.pending_outbound_payments


def test_a_path_the_first_hop_refuses_is_sent_again_at_once():
    """The retry ``send_payment`` makes itself, when it leaves: one PaymentPathFailed, the next route sent, nothing to
    forward, and the payment in flight (it once waited for the learner's next ``process_pending_htlc_forwards``)."""

    class RefusedOnce(Sender):
        def send_along_path(self, args) -> None:
            try:
                super().send_along_path(args)
            finally:
                self.refuse = False

    s = RefusedOnce([route(path(10)), route(path(30))], refuse_first_hop=True)
    s.pay(Retry.Attempts(1))
    assert s.names() == ["PaymentPathFailed"] and s.sent == [path(30)] and s.forwardable == 0
    (payment,) = s.out.pending_outbound_payments.values()
    assert (payment.attempts, payment.inflight_htlcs) == (2, 1)


# --- a node in the simulated world: ldk-sample's handler, every event recorded ------------------------------------

class Learner:
    """A world with the learner running ldk-sample's handler (``ldkkit.reference``) and recording every event it
    is given; events of the types in ``hold`` are recorded and left to the test."""

    def __init__(self, seed: int, hold: tuple[type, ...] = ()) -> None:
        self.seen: list[Event] = []
        self.hold = hold
        self.world = World(seed=seed)
        self.me = self.world.add_node("learner", handler=self._handle)
        self.stage = Stage(self.world, self.me)
        self.cm = self.me.channel_manager

    async def _handle(self, *args):
        event = args[-1]
        self.seen.append(event)
        if isinstance(event, self.hold):
            return None
        return await reference(*args)

    def of(self, kind: type) -> list:
        return [e for e in self.seen if isinstance(e, kind)]

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.seen]


@pytest.fixture
def receiver():
    """The learner with a 6,000,000 sat channel from bob, holding PaymentClaimable events for the test."""
    learner = Learner(31, hold=(Event.PaymentClaimable,))
    learner.bob = learner.stage.peer("bob")
    learner.stage.open(learner.bob, learner.me, 6_000_000)
    yield learner
    learner.world.close()


def test_payment_claimable_then_claimed_carry_the_payment(receiver):
    """``PaymentClaimable`` (``process_pending_htlc_forwards``) and ``PaymentClaimed`` (``begin_claiming_payment``):
    our node id, the hash, the amount, the invoice's purpose and onion fields, the channel it came over, the claim
    deadline (the HTLC's expiry less ``HTLC_FAIL_BACK_BUFFER``), one ``ClaimedHTLC`` per part, and one payment id."""
    r = receiver
    invoice = r.stage.invoice(r.me, 50_000_000)
    r.stage.pay(r.bob, invoice)
    (claimable,) = r.of(Event.PaymentClaimable)
    chan = r.stage.channel_between(r.me, r.bob)
    (htlc,) = r.cm.channels[chan.channel_id].pending_inbound_htlcs.values()
    purpose = PaymentPurpose.Bolt11InvoicePayment(r.cm.get_payment_preimage(invoice.payment_hash(),
                                                                            invoice.payment_secret()),
                                                  invoice.payment_secret())
    onion = RecipientOnionFields(invoice.payment_secret(), None)
    assert (claimable.receiver_node_id, claimable.payment_hash, claimable.amount_msat,
            claimable.counterparty_skimmed_fee_msat, claimable.purpose, claimable.onion_fields,
            claimable.via_channel_id, claimable.via_user_channel_id, claimable.claim_deadline) == (
        r.me.node_id, invoice.payment_hash(), 50_000_000, 0, purpose, onion, chan.channel_id, chan.user_channel_id,
        htlc.cltv_expiry - HTLC_FAIL_BACK_BUFFER)
    assert r.of(Event.PaymentClaimed) == []
    r.cm.claim_funds(purpose.preimage())
    r.stage.settle()
    (claimed,) = r.of(Event.PaymentClaimed)
    assert claimed == Event.PaymentClaimed(
        receiver_node_id=r.me.node_id, payment_hash=invoice.payment_hash(), amount_msat=50_000_000, purpose=purpose,
        htlcs=(ClaimedHTLC(chan.channel_id, chan.user_channel_id, htlc.cltv_expiry, 50_000_000, 0),),
        sender_intended_total_msat=50_000_000, onion_fields=onion, payment_id=claimable.payment_id)
    assert claimable.payment_id is not None


def test_claiming_what_is_not_claimable_raises_nothing(receiver):
    """``claim_payment_internal``: a preimage whose hash has no claimable payment ("begin_claiming_payment" finds
    none) does nothing: no PaymentClaimed, and a payment still claimable stays so."""
    r = receiver
    invoice = r.stage.invoice(r.me, 50_000_000)
    r.stage.pay(r.bob, invoice)
    r.cm.claim_funds(PaymentPreimage(b"\x77" * 32))
    r.stage.settle()
    assert r.of(Event.PaymentClaimed) == [] and invoice.payment_hash() in r.cm.claimable


def test_payment_claimed_keeps_the_purpose_of_payment_claimable(receiver):
    """``begin_claiming_payment`` moves the claimable payment's ``purpose`` into ``PaymentClaimed`` unchanged: for
    a payment made with ``create_inbound_payment_for_hash`` its ``payment_preimage`` stays None there too."""
    r = receiver
    preimage = PaymentPreimage(b"\x66" * 32)
    secret = r.cm.create_inbound_payment_for_hash(preimage.payment_hash(), None, 3600)
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(r.me.node_id, 42),
                                                           30_000_000)
    r.bob.channel_manager.send_payment(preimage.payment_hash(), RecipientOnionFields.secret_only(secret),
                                       PaymentId(b"\x66" * 32), params, Retry.Attempts(0))
    r.stage.settle()
    (claimable,) = r.of(Event.PaymentClaimable)
    assert claimable.purpose == PaymentPurpose.Bolt11InvoicePayment(None, secret)
    r.cm.claim_funds(preimage)
    r.stage.settle()
    (claimed,) = r.of(Event.PaymentClaimed)
    assert claimed.purpose == claimable.purpose and claimed.amount_msat == 30_000_000


def _bob_sends(r, payment_hash, onion: RecipientOnionFields, amount: int, tamper=None,
               keysend: PaymentPreimage | None = None) -> None:
    """bob pays us ``amount``; ``tamper`` may change his update_add_htlc on its way."""
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(r.me.node_id, 42), amount)
    bcm = r.bob.channel_manager
    if keysend is not None:
        bcm.send_spontaneous_payment(keysend, onion, PaymentId(bytes(payment_hash)), params, Retry.Attempts(0))
    else:
        bcm.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params, Retry.Attempts(0))
    if tamper is not None:
        peer, msg = bcm.pending_msg_events[-1]
        bcm.pending_msg_events[-1] = (peer, tamper(msg))
    r.stage.settle()


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda m: dataclasses.replace(m, amount_msat=m.amount_msat - 1), id="underpaid"),
    pytest.param(lambda m: dataclasses.replace(m, cltv_expiry=m.cltv_expiry - 1), id="expiry_below_the_onion's"),
])
def test_an_htlc_that_does_not_match_its_onion_is_failed_back(receiver, tamper):
    """``create_recv_pending_htlc_info``: an HTLC paying less than its onion's ``amt_to_forward``, or expiring before
    its ``outgoing_cltv_value``, is failed back as it arrives, with no event (``internal_update_add_htlc`` stores it
    resolved as failed: channel.rs:4897, 5533-5546); no PaymentClaimable. The payer is told."""
    r = receiver
    invoice = r.stage.invoice(r.me, 50_000_000)
    _bob_sends(r, invoice.payment_hash(), RecipientOnionFields.secret_only(invoice.payment_secret()), 50_000_000,
               tamper)
    assert r.of(Event.PaymentClaimable) == [] and r.of(Event.HTLCHandlingFailed) == []
    assert [type(e) for e in r.bob.events_seen if isinstance(e, Event.PaymentFailed)] == [Event.PaymentFailed]


def test_a_keysend_whose_preimage_does_not_match_its_hash_is_failed_back(receiver):
    """A keysend proves itself (``create_recv_pending_htlc_info``: the preimage must hash to the payment hash);
    one that does not is failed back (``HTLCHandlingFailed``/``FailedPayment``); one that does is claimable as a
    ``SpontaneousPayment``."""
    r = receiver
    good, bad = PaymentPreimage(b"\x51" * 32), PaymentHash(b"\x52" * 32)
    _bob_sends(r, bad, RecipientOnionFields.spontaneous_empty(), 20_000_000,
               lambda m: dataclasses.replace(m, payment_hash=bad), keysend=good)
    assert r.of(Event.PaymentClaimable) == []
    assert [e.failed_next_destination for e in r.of(Event.HTLCHandlingFailed)] == [HTLCDestination.FailedPayment(bad)]
    _bob_sends(r, good.payment_hash(), RecipientOnionFields.spontaneous_empty(), 20_000_000, keysend=good)
    (claimable,) = r.of(Event.PaymentClaimable)
    assert claimable.purpose == PaymentPurpose.SpontaneousPayment(good)


def test_a_payment_with_an_even_custom_tlv_is_failed_back_by_claim_funds_and_claimed_only_when_known(receiver):
    """``RecipientOnionFields::with_custom_tlvs`` (sorted; types under 2^16, LDK's own, or repeated are refused)
    reach ``PaymentClaimable::onion_fields``. ``claim_funds`` fails back a payment with an even one
    (``begin_claiming_payment``: "unknown even TLVs", ``invalid_onion_payload``, a permanent failure for the payer);
    an odd one is claimed; ``claim_funds_with_known_custom_tlvs`` claims the even one."""
    r = receiver
    for bad in ([(5, b"")], [(5482373484, b"")], [(70_000, b""), (70_000, b"x")]):
        with pytest.raises(ValueError, match="65,536"):
            RecipientOnionFields.spontaneous_empty().with_custom_tlvs(bad)
    even, odd = (100_000, b"even"), (100_001, b"odd")
    hashes = [r.stage.keysend(r.bob, r.me, 10_000_000, custom_tlvs=tlvs) for tlvs in ([odd, even], [odd], [even])]
    claimables = {e.payment_hash: e for e in r.of(Event.PaymentClaimable)}
    assert [claimables[h].onion_fields.custom_tlvs() for h in hashes] == [(even, odd), (odd,), (even,)]
    for h in hashes[:2]:
        r.cm.claim_funds(claimables[h].purpose.preimage())
    r.cm.claim_funds_with_known_custom_tlvs(claimables[hashes[2]].purpose.preimage())
    r.stage.settle()
    assert [e.payment_hash for e in r.of(Event.PaymentClaimed)] == hashes[1:]
    chan = r.stage.channel_between(r.me, r.bob)
    assert r.of(Event.HTLCHandlingFailed) == [
        Event.HTLCHandlingFailed(chan.channel_id, HTLCDestination.FailedPayment(hashes[0]))]
    (failed,) = [e for e in r.bob.events_seen if isinstance(e, Event.PaymentFailed)]
    assert (failed.payment_hash, failed.reason) == (hashes[0], PaymentFailureReason.RecipientRejected)


def test_fail_htlc_backwards_raises_htlc_handling_failed_and_ignores_unknown_hashes(receiver):
    """``fail_htlc_backwards``: each part of the claimable payment fails back with ``HTLCHandlingFailed``
    (``FailedPayment``); a hash with nothing claimable does nothing; the payer sees its path rejected."""
    r = receiver
    r.cm.fail_htlc_backwards(PaymentHash(b"\x53" * 32))
    invoice = r.stage.invoice(r.me, 50_000_000)
    r.stage.pay(r.bob, invoice, retry=Retry.Attempts(0))
    r.cm.fail_htlc_backwards(invoice.payment_hash())
    r.stage.settle()
    chan = r.stage.channel_between(r.me, r.bob)
    assert r.of(Event.HTLCHandlingFailed) == [
        Event.HTLCHandlingFailed(chan.channel_id, HTLCDestination.FailedPayment(invoice.payment_hash()))]
    assert r.cm.claimable == {}
    bob_saw = [type(e).__name__ for e in r.bob.events_seen if type(e).__name__.startswith("Payment")]
    assert bob_saw == ["PaymentPathFailed", "PaymentFailed"]


def _mpp_paths(r, amounts: list[int]) -> tuple[Path, ...]:
    scids = [c.short_channel_id for c in r.bob.channel_manager.list_usable_channels()]
    return tuple(Path((RouteHop(r.me.node_id, b"", scid, b"", amount, 42, True),), None)
                 for scid, amount in zip(scids, amounts, strict=False))


def test_an_mpp_payment_is_claimable_once_whole(receiver):
    """``process_pending_htlc_forwards``: the parts of one payment are collected; ``PaymentClaimable`` is raised
    once, when they add up to ``total_msat``, naming the channel of the part that completed it (LDK's
    ``via_channel_id: Some(prev_channel_id)``) and the earliest claim deadline; ``PaymentClaimed`` lists every
    part, sorted as LDK's ``ClaimableHTLC`` (channel id, then HTLC id), and the total the sender intended."""
    r = receiver
    r.stage.open(r.bob, r.me, 6_000_000)
    invoice = r.stage.invoice(r.me, 80_000_000)
    first, second = _mpp_paths(r, [30_000_000, 50_000_000])
    r.bob.channel_manager.send_payment_with_route(
        Route((first, second), None), invoice.payment_hash(),
        RecipientOnionFields(invoice.payment_secret(), b"meta"), PaymentId(b"\x54" * 32))
    r.stage.settle()
    (claimable,) = r.of(Event.PaymentClaimable)
    parts = sorted((h for c in r.cm.channels.values() for h in c.pending_inbound_htlcs.values()),
                   key=lambda h: h.amount_msat)
    assert claimable.amount_msat == 80_000_000
    assert claimable.onion_fields == RecipientOnionFields(invoice.payment_secret(), b"meta")
    assert claimable.via_channel_id == r.cm._channel_by_scid(second.hops[0].short_channel_id).channel_id
    assert claimable.claim_deadline == min(h.cltv_expiry for h in parts) - HTLC_FAIL_BACK_BUFFER
    r.cm.claim_funds(claimable.purpose.preimage())
    r.stage.settle()
    (claimed,) = r.of(Event.PaymentClaimed)
    by_channel = {r.cm._channel_by_scid(p.hops[0].short_channel_id).channel_id: p.final_value_msat()
                  for p in (first, second)}
    assert [h.value_msat for h in claimed.htlcs] == [by_channel[c] for c in sorted(by_channel, key=bytes)]
    assert (claimed.amount_msat, claimed.sender_intended_total_msat) == (80_000_000, 80_000_000)
    assert claimed.onion_fields == claimable.onion_fields and claimed.payment_id == claimable.payment_id


def _first_of_two_parts_arrives(r: Any, payment_id: PaymentId) -> Any:
    """bob pays an 80,000 sat invoice of ``r.me``'s in two parts, and only the first (30,000 sats) arrives."""
    r.stage.open(r.bob, r.me, 6_000_000)
    invoice = r.stage.invoice(r.me, 80_000_000)
    r.bob.channel_manager.send_payment_with_route(
        Route(_mpp_paths(r, [30_000_000, 50_000_000]), None), invoice.payment_hash(),
        RecipientOnionFields.secret_only(invoice.payment_secret()), payment_id)
    r.bob.channel_manager.pending_msg_events.pop()  # the 50,000 sat part never arrives
    r.stage.settle()
    return invoice


def test_a_part_of_another_total_is_failed_back_and_the_parts_before_it_wait(receiver):
    """``check_total_value``: "Failing HTLCs with payment_hash {} as the HTLCs had inconsistent total values": a part
    whose ``total_msat`` is not that of the parts already arrived is failed back, at once, and only it (it was added,
    and the payment claimable for more than either total)."""
    r = receiver
    invoice = _first_of_two_parts_arrives(r, PaymentId(b"\x56" * 32))
    bcm = r.bob.channel_manager
    (other,) = _mpp_paths(r, [90_000_000])  # (one part of a payment of 90,000 sats, to the same invoice)
    bcm.send_payment_with_route(Route((other,), None), invoice.payment_hash(),
                                RecipientOnionFields.secret_only(invoice.payment_secret()), PaymentId(b"\x57" * 32))
    r.stage.settle()
    assert r.of(Event.PaymentClaimable) == []
    assert [e.failed_next_destination for e in r.of(Event.HTLCHandlingFailed)] == [
        HTLCDestination.FailedPayment(invoice.payment_hash())]
    assert [h.amount_msat for h in r.cm.claimable[invoice.payment_hash()].htlcs] == [30_000_000]


def test_an_incomplete_mpp_payment_fails_back_on_the_third_tick(receiver):
    """``timer_tick_occurred``: the parts of a payment still incomplete are failed back once their
    ``timer_ticks`` reach ``MPP_TIMEOUT_TICKS`` (3): nothing after two ticks, ``HTLCHandlingFailed`` on the third."""
    r = receiver
    invoice = _first_of_two_parts_arrives(r, PaymentId(b"\x55" * 32))
    failed = lambda: [e for e in r.seen + r.cm.pending_events() if isinstance(e, Event.HTLCHandlingFailed)]  # noqa: E731
    for _ in range(MPP_TIMEOUT_TICKS - 1):  # (the world's own timer, every 60 s, has not ticked since)
        r.cm.timer_tick_occurred()
    assert failed() == [] and r.of(Event.PaymentClaimable) == []
    r.cm.timer_tick_occurred()
    assert [e.failed_next_destination for e in failed()] == [HTLCDestination.FailedPayment(invoice.payment_hash())]


# --- forwarding (channelmanager.rs: process_pending_update_add_htlcs, claim_funds_internal) ----------------------

@pytest.fixture
def forwarder():
    """alice -> the learner -> carol, as in the forward_payment scenario."""
    learner = Learner(41)
    s = learner.stage
    learner.alice, learner.carol = s.peer("alice"), s.peer("carol")
    s.open(learner.alice, learner.me, 6_000_000)
    s.open(learner.carol, learner.me, 6_000_000, push_msat=3_000_000_000)
    yield learner
    learner.world.close()


def _alice_pays_carol(f, tamper=None):
    invoice = f.stage.invoice(f.carol, 100_000_000)
    payment_hash, onion, params = payment_parameters_from_invoice(invoice)
    acm = f.alice.channel_manager
    acm.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params, Retry.Attempts(0))
    if tamper is not None:
        peer, msg = acm.pending_msg_events[-1]
        acm.pending_msg_events[-1] = (peer, tamper(msg))
    f.stage.settle()
    return payment_hash


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda m: dataclasses.replace(m, amount_msat=m.amount_msat - 1), id="fee_insufficient"),
    pytest.param(lambda m: dataclasses.replace(m, cltv_expiry=m.cltv_expiry - 1), id="incorrect_cltv_expiry"),
])
def test_a_forward_refused_by_our_channel_policy_fails_back_with_no_event(forwarder, tamper):
    """``can_forward_htlc`` (``htlc_satisfies_config``), as the HTLC arrives: one leaving us too small a fee or too
    short a CLTV delta for the next channel fails back, with no event (``HTLCHandlingFailed``'s doc: "does not get
    generated if an HTLC fails to meet the forwarding requirements"); nothing is forwarded. The kit raised one."""
    f = forwarder
    _alice_pays_carol(f, tamper)
    assert f.of(Event.HTLCHandlingFailed) == [] and f.of(Event.PaymentForwarded) == []
    assert [type(e) for e in f.alice.events_seen if isinstance(e, Event.PaymentFailed)] == [Event.PaymentFailed]


def test_payment_forwarded_carries_both_channels_and_the_fee(forwarder):
    """``claim_funds_internal``: a forward fulfilled downstream claims the HTLC it came in on and raises
    ``PaymentForwarded``: both channels, both user channel ids, both peers, the fee earned (in - out), the amount
    forwarded, not from an on-chain claim."""
    f = forwarder
    _alice_pays_carol(f)
    into, out = f.stage.channel_between(f.me, f.alice), f.stage.channel_between(f.me, f.carol)
    (forwarded,) = f.of(Event.PaymentForwarded)
    assert forwarded == Event.PaymentForwarded(
        prev_channel_id=into.channel_id, next_channel_id=out.channel_id,
        prev_user_channel_id=into.user_channel_id, next_user_channel_id=out.user_channel_id,
        prev_node_id=f.alice.node_id, next_node_id=f.carol.node_id, total_fee_earned_msat=1000,
        skimmed_fee_msat=None, claim_from_onchain_tx=False, outbound_amount_forwarded_msat=100_000_000)
    assert f.of(Event.HTLCHandlingFailed) == []



def test_a_forward_claimed_after_its_upstream_channel_closed_earns_a_fee_of_none():
    """``claim_mpp_part``: the previous hop's channel is gone (force-closed while the HTLC went on), so the preimage
    goes to its ChannelMonitor and ``completion_action(None, false)`` gives ``PaymentForwarded`` at once with
    ``total_fee_earned_msat`` None (the on-chain fee is still unknown); the rest as for a channel still open."""
    from ldkkit.scenarios import forwards_after

    learner = Learner(41)
    f, s = learner, learner.stage
    f.alice, f.carol = s.peer("alice"), s.peer("carol", handler=forwards_after(2.0))
    s.open(f.alice, f.me, 6_000_000)
    s.open(f.carol, f.me, 6_000_000, push_msat=3_000_000_000)
    try:
        invoice = s.invoice(f.carol, 100_000_000)
        payment_hash, onion, params = payment_parameters_from_invoice(invoice)
        f.alice.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params,
                                             Retry.Attempts(0))
        s.settle(1.0)  # sent on to carol, who claims 2 s after she is told
        into, out = s.channel_between(f.me, f.alice), s.channel_between(f.me, f.carol)
        assert out.pending_outbound_htlcs
        f.cm.force_close_broadcasting_latest_txn(into.channel_id, f.alice.node_id, "closed while forwarding")
        s.settle(5.0)
        assert f.of(Event.PaymentForwarded) == [Event.PaymentForwarded(
            prev_channel_id=into.channel_id, next_channel_id=out.channel_id,
            prev_user_channel_id=into.user_channel_id, next_user_channel_id=out.user_channel_id,
            prev_node_id=f.alice.node_id, next_node_id=f.carol.node_id, total_fee_earned_msat=None,
            skimmed_fee_msat=None, claim_from_onchain_tx=False, outbound_amount_forwarded_msat=100_000_000)]
    finally:
        f.world.close()



def test_claiming_a_forward_again_on_a_channel_still_open_raises_nothing(forwarder, monkeypatch):
    """``claim_mpp_part``: ``DuplicateClaim`` (the inbound HTLC already claimed, its channel still open) runs the
    completion action with ``definitely_duplicate``: no second ``PaymentForwarded``."""
    from ldkkit.ln import forwarding

    f, claims = forwarder, []
    real = forwarding.claim_previous_hop
    monkeypatch.setattr(forwarding, "claim_previous_hop", lambda *a: (claims.append(a), real(*a)))
    _alice_pays_carol(f)
    (claim,) = claims
    with f.cm._lock:
        real(*claim)
    assert len(f.of(Event.PaymentForwarded)) == 1 and not [
        e for e in f.cm.pending_events() if isinstance(e, Event.PaymentForwarded)]


# --- a restart (ChannelManager::write and ::read) ------------------------------------------------------------------

def test_a_restart_keeps_an_intercepted_htlc_to_forward():
    """``HTLCIntercepted`` names the fake scid, the hash and both amounts; ``ChannelManager::write`` keeps
    ``pending_intercepted_htlcs`` with the event: after a restart the event is handed over again and
    ``forward_intercepted_htlc`` still finds the HTLC and sends it."""
    from ldkkit.config import UserConfig

    async def stops_before_forwarding(*args):
        if isinstance(args[-1], Event.HTLCIntercepted):
            return ReplayEvent()
        return await reference(*args)

    forwarded: list[Event] = []

    async def lsp(*args):
        cm, event = args[0], args[-1]
        if isinstance(event, Event.HTLCIntercepted):
            to_carol = next(c for c in cm.list_usable_channels() if c.counterparty.node_id == carol.node_id)
            cm.forward_intercepted_htlc(event.intercept_id, to_carol.channel_id, carol.node_id,
                                        event.expected_outbound_amount_msat)
            forwarded.append(event)
            return None
        return await reference(*args)

    with World(seed=12) as world:
        config = dataclasses.replace(UserConfig.ldk_sample(), accept_intercept_htlcs=True)
        stage = Stage(world, world.add_node("learner", handler=stops_before_forwarding, config=config))
        me = stage.me
        alice, carol, fake_scid, invoice = pay_through_an_intercept_scid(stage)
        (intercepted,) = [e for e in me.channel_manager.pending_events() if isinstance(e, Event.HTLCIntercepted)]
        # process_pending_htlc_forwards: the fake scid asked for, the hash, what came in and what should go on
        assert (intercepted.requested_next_hop_scid, intercepted.payment_hash, intercepted.inbound_amount_msat,
                intercepted.expected_outbound_amount_msat) == (fake_scid, invoice.payment_hash(), 10_001_000,
                                                               10_000_000)
        me.fs_store.write("", "", "manager", me.channel_manager.encode())
        world.restart_node(me, handler=lsp)
        stage.settle(10)
    assert forwarded == [intercepted]
    assert any(isinstance(e, Event.PaymentSent) for e in alice.events_seen)


def test_a_restart_with_htlcs_to_fail_back_asks_for_forwarding_after_two_seconds():
    """``ChannelManager::read``: the persisted events come back in order, then, as HTLCs are still to be failed
    back, one ``PendingHTLCsForwardable`` with ``time_forwardable`` 2 s (the one queued before is not persisted);
    an HTLC arriving while forwards are pending asks for no other (``forward_htlcs``: only into an empty queue)."""

    refused: list[Event] = []

    async def refuses_then_stops(*args):
        cm, event = args[0], args[-1]
        if isinstance(event, Event.PaymentClaimable):
            cm.fail_htlc_backwards(event.payment_hash)
            refused.append(event)
            return None
        if refused and isinstance(event, (Event.PendingHTLCsForwardable, Event.HTLCHandlingFailed)):
            return ReplayEvent()  # the node stops before the failure goes back
        return await reference(*args)

    with World(seed=13) as world:
        stage = Stage(world, world.add_node("learner", handler=refuses_then_stops))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        stage.pay(bob, stage.invoice(stage.me, 50_000_000), retry=Retry.Attempts(0))
        before = stage.me.channel_manager.pending_events()
        assert [type(e).__name__ for e in before] == ["HTLCHandlingFailed", "PendingHTLCsForwardable"]
        assert before[1].time_forwardable == timedelta(milliseconds=100)
        stage.me.fs_store.write("", "", "manager", stage.me.channel_manager.encode())
        logged = len(stage.me.event_log)
        restarted = world.restart_node(stage.me, handler=reference)
        after = restarted.channel_manager.pending_events()
        invoice = stage.invoice(restarted, 20_000_000)  # an HTLC arriving before the forwards are processed
        payment_hash, onion, params = payment_parameters_from_invoice(invoice)
        bob.channel_manager.send_payment(payment_hash, onion, PaymentId(b"\x13" * 32), params, Retry.Attempts(0))
        world.run()  # the handler has taken the PendingHTLCsForwardable, and waits before processing
        assert restarted.channel_manager.forward_htlcs  # the HTLC waits with the failure: no second request
        given = [type(e).__name__ for _, _, e in restarted.event_log[logged:]]  # handed to the handler since
        assert given == ["HTLCHandlingFailed", "PendingHTLCsForwardable"]
        stage.settle(10)
    assert after == [before[0], Event.PendingHTLCsForwardable(timedelta(seconds=2))]
    bob_saw = [type(e).__name__ for e in bob.events_seen if type(e).__name__.startswith("Payment")]
    assert bob_saw[-4:] == ["PaymentPathFailed", "PaymentFailed", "PaymentSent", "PaymentPathSuccessful"]


def test_the_onion_tells_each_hop_what_to_forward():
    """``build_onion_payloads``: walking back from the recipient, each hop is told the next channel, the amount
    the next node must get (its fee added hop by hop) and the CLTV expiry (the deltas added to the height); the
    recipient gets the amount, the final expiry, secret, total, metadata and keysend preimage; the first HTLC
    carries the whole amount and expiry."""
    hops = (RouteHop(HOP, b"", 1, b"", 10, 20, True), RouteHop(PAYEE, b"", 2, b"", 20, 30, True),
            RouteHop(PAYEE, b"", 3, b"", 1000, 40, True))
    secret = PaymentSecret(b"\x08" * 32)
    onion, amount, cltv = build_onion_payloads(Path(hops, None), 5000, RecipientOnionFields(secret, b"meta"), 100,
                                               PREIMAGE)
    assert onion == Onion((HopPayload(2, 1020, 170), HopPayload(3, 1000, 140)),
                          FinalPayload(1000, 140, secret, 5000, b"meta", PREIMAGE))
    assert (amount, cltv) == (1030, 190)


# --- closing (channel.rs: force_shutdown's ShutdownResult; channelmanager.rs: finish_close_channel) ------------

def test_a_channel_dropped_after_its_funding_was_generated_names_its_funding_and_discards_it():
    """``get_funding_created`` gives the channel its funding outpoint and its real id; a peer that disconnects
    before ``funding_signed`` drops it (``ClosureReason::DisconnectedPeer``): ``ChannelClosed`` carries that id,
    ``channel_funding_txo``, the capacity and our balance, then ``DiscardFunding`` hands the transaction back."""
    funding: list[Transaction] = []
    seen: list[Event] = []

    async def disconnects_once_funded(*args):
        cm, event = args[0], args[-1]
        seen.append(event)
        await reference(*args)
        if isinstance(event, Event.FundingGenerationReady):
            chan = cm.channels[event.temporary_channel_id]
            funding.append(chan.funding_transaction)
            cm.peer_disconnected(event.counterparty_node_id)

    with World(seed=51) as world:
        stage = Stage(world, world.add_node("learner", handler=disconnects_once_funded))
        bob = stage.peer("bob")
        tcid = stage.me.channel_manager.create_channel(bob.node_id, 1_000_000, 0, 77, None, None)
        world.run()
        stage.settle()
        assert stage.me.channel_manager.list_channels() == []
    (tx,) = funding
    outpoint = next(OutPoint(tx.compute_txid(), i) for i, o in enumerate(tx.output) if o.value == 1_000_000)
    closed, discard = [e for e in seen if isinstance(e, (Event.ChannelClosed, Event.DiscardFunding))]
    channel_id = ChannelId.v1_from_funding_outpoint(outpoint.txid, outpoint.vout)
    assert closed == Event.ChannelClosed(
        channel_id=channel_id, user_channel_id=77, reason=ClosureReason.DisconnectedPeer(),
        counterparty_node_id=bob.node_id, channel_capacity_sats=1_000_000, channel_funding_txo=outpoint,
        last_local_balance_msat=1_000_000_000)
    assert discard == Event.DiscardFunding(channel_id, FundingInfo.Tx(tx))
    assert tcid != channel_id


# --- what a background processor asks ---------------------------------------------------------------------------

def test_has_pending_events_says_whether_events_wait_for_the_handler():
    """``has_pending_events`` (what LDK's background processor polls): true while an event waits, false once
    handled; the ChainMonitor's also counts the events it has queued (here a SpendableOutputs)."""
    with World(seed=61) as world:
        stage = Stage(world, world.add_node("learner", handler=lambda *args: ReplayEvent()))
        cm, monitor = stage.me.channel_manager, stage.me.chain_monitor
        assert not cm.has_pending_events() and not monitor.has_pending_events()
        stage.peer("bob").channel_manager.create_channel(stage.me.node_id, 1_000_000, 0, 1, None, None)
        world.run()
        assert cm.has_pending_events()
        cm.process_pending_events(lambda event: None)
        assert not cm.has_pending_events()
        monitor._events.push(Event.SpendableOutputs((), None))
        assert monitor.has_pending_events() and not cm.has_pending_events()


def test_a_manager_is_not_read_from_something_else():
    """``ChannelManager::read`` refuses bytes that are not a ChannelManager: a ``DecodeError``, not a crash."""
    with World(seed=62) as world:
        cm = world.add_node("learner").channel_manager
        with pytest.raises(DecodeError.InvalidValue, match="expected an encoded dict"):
            cm.restore(encode((1, 2)))


def _probe(s: Sender) -> tuple[PaymentHash, HTLCOutboundRoute]:
    """Send a probe along ``path(10)``: its hash and its HTLC, as the manager keeps it."""
    payment_hash, payment_id = s.out.send_probe(path(10), lambda: b"\x09" * 32, s.send_along_path)
    (htlc, _) = s.htlcs[-1]
    assert htlc.payment_id == payment_id
    return payment_hash, htlc


def test_a_probe_failing_at_the_payee_succeeded_and_elsewhere_failed():
    """``fail_htlc`` for a probe (``payment_is_probe``): failed by the payee it is ``ProbeSuccessful``; failed on
    the way ``ProbeFailed`` with the channel it failed at; either way the probe is forgotten and nothing is retried
    (no PaymentPathFailed, no PaymentFailed)."""
    s = Sender([])
    payment_hash, htlc = _probe(s)
    s.out.fail_htlc(htlc, payment_hash, FailureOnion(PAYEE, 0x400F, None, None))
    assert s.events == [Event.ProbeSuccessful(htlc.payment_id, payment_hash, path(10))]
    s.events.clear()
    payment_hash, htlc = _probe(s)
    s.out.fail_htlc(htlc, payment_hash, FailureOnion(HOP, 0x1007, 11, False))
    assert s.events == [Event.ProbeFailed(htlc.payment_id, payment_hash, path(10), 11)]
    assert s.out.pending_outbound_payments == {} and s.forwardable == 0


def test_only_the_first_fulfilled_part_raises_payment_sent():
    """``claim_htlc``: the first fulfilled part raises ``PaymentSent`` (the fees of the paths in flight), every part
    its ``PaymentPathSuccessful``, in that order; a fulfil for a payment no longer known raises nothing."""
    a, b = path(10, 5_000, fee=100), path(20, 5_000, fee=300)
    s = Sender([route(a, b)])
    s.pay(Retry.Attempts(0))
    s.claim(a)
    s.claim(b)
    assert s.events == [Event.PaymentSent(PID, PREIMAGE, HASH, 400), Event.PaymentPathSuccessful(PID, HASH, a),
                        Event.PaymentPathSuccessful(PID, HASH, b)]
    s.out.pending_outbound_payments.clear()
    s.claim(a)
    assert len(s.events) == 3


def test_a_failed_part_no_longer_counts_in_the_fee_paid():
    """``get_pending_fee_msat``: ``PaymentSent.fee_paid_msat`` counts the paths still in flight, so a part that
    failed and was retried elsewhere is not counted."""
    a, b, c = path(10, 5_000, fee=100), path(20, 5_000, fee=300), path(30, 5_000, fee=50)
    s = Sender([route(a, b), route(c)])
    s.pay(Retry.Attempts(1), amount=10_000)
    s.fail(b, scid=20)
    s.retry()
    s.claim(a)
    assert s.events[-2] == Event.PaymentSent(PID, PREIMAGE, HASH, 150)


def test_a_restart_restores_what_the_manager_wrote():
    """``ChannelManager::write``/``read``: the funded channels (an unfunded one is dropped on write), the payments
    we expect, the payments claimable, the payments we send (with their routes and paths in flight), the HTLCs
    still to forward, the best block height, and the persisted events in order, come back as they were."""
    stall: list[bool] = []

    async def learner(*args):
        event = args[-1]
        if isinstance(event, Event.PaymentClaimable):
            return None  # held: left claimable
        if stall and isinstance(event, Event.PendingHTLCsForwardable):
            return ReplayEvent()  # the HTLC that came in stays to be forwarded
        return await reference(*args)

    async def bob_holds(*args):
        if isinstance(args[-1], Event.PaymentClaimable):
            return None  # our payment to bob stays in flight
        return await ldk_sample(*args)

    with World(seed=71) as world:
        stage = Stage(world, world.add_node("learner", handler=learner))
        bob = stage.peer("bob", handler=bob_holds)
        carol = stage.peer("carol")
        stage.open(bob, stage.me, 6_000_000)
        stage.open(stage.me, bob, 1_000_000)
        stage.pay(bob, stage.invoice(stage.me, 50_000_000))
        stall.append(True)
        stage.pay(bob, stage.invoice(stage.me, 20_000_000))
        stage.pay(stage.me, stage.invoice(bob, 10_000_000))
        carol.channel_manager.create_channel(stage.me.node_id, 1_000_000, 0, 1, None, None)
        world.run()  # an inbound channel accepted, never funded
        cm = stage.me.channel_manager
        assert cm.claimable and cm.forward_htlcs and cm.pending_outbound and any(
            not c.is_funded() for c in cm.channels.values())
        stage.me.fs_store.write("", "", "manager", cm.encode())
        new = world.restart_node(stage.me, handler=reference).channel_manager
        out, new_out = cm._pending_outbound_payments, new._pending_outbound_payments
        assert new.channels == {k: c for k, c in cm.channels.items() if c.is_funded()}
        assert (new.claimable, new_out.pending_outbound_payments, new_out.route_params,
                new_out.payment_paths, new.forward_htlcs, new.fail_backs, new.best_block_height) == (
            cm.claimable, out.pending_outbound_payments, out.route_params, out.payment_paths,
            cm.forward_htlcs, cm.fail_backs, cm.best_block_height)
        assert new.pending_events() == [e for e in cm.pending_events() if type(e).persisted] + [
            Event.PendingHTLCsForwardable(timedelta(seconds=2))]


def test_a_payment_left_unclaimed_fails_back_at_its_claim_deadline(receiver):
    """``best_block_updated``: an HTLC still claimable when the height reaches its ``cltv_expiry -
    HTLC_FAIL_BACK_BUFFER`` (the event's ``claim_deadline``) is failed back: ``HTLCHandlingFailed``
    (``FailedPayment``), not a block earlier; claiming it afterwards raises nothing."""
    r = receiver
    invoice = r.stage.invoice(r.me, 50_000_000)
    r.stage.pay(r.bob, invoice)
    (claimable,) = r.of(Event.PaymentClaimable)
    r.world.mine(claimable.claim_deadline - 1 - r.world.chain.height())
    r.stage.settle()
    assert r.of(Event.HTLCHandlingFailed) == []
    r.world.mine(1)
    r.stage.settle()
    assert [e.failed_next_destination for e in r.of(Event.HTLCHandlingFailed)] == [
        HTLCDestination.FailedPayment(invoice.payment_hash())]
    r.cm.claim_funds(claimable.purpose.preimage())
    r.stage.settle()
    assert r.of(Event.PaymentClaimed) == []


@pytest.mark.parametrize("close", ["cooperative", "force"])
def test_channel_closed_names_the_funded_channel_and_its_balance(close):
    """``ChannelClosed`` for a funded channel (``finish_close_channel``): its id, user channel id, why, the peer,
    the capacity, the funding outpoint and our balance at the close; the channel is no longer listed, and its
    last ``channel_update`` is broadcast disabled (``BroadcastChannelUpdate``)."""
    learner = Learner(81)
    with learner.world:
        s, cm = learner.stage, learner.cm
        bob = s.peer("bob")
        s.open(bob, learner.me, 6_000_000, push_msat=100_000_000)  # bob's channel is announced
        (chan,) = cm.list_channels()
        balance = cm.channels[chan.channel_id].value_to_self_msat
        if close == "cooperative":
            cm.close_channel(chan.channel_id, bob.node_id)
            reason = ClosureReason.LocallyInitiatedCooperativeClosure()
        else:  # LDK's force_shutdown: a disabled channel_update is broadcast
            cm.force_close_broadcasting_latest_txn(chan.channel_id, bob.node_id, "bye")
            reason = ClosureReason.HolderForceClosed(True)
            assert (None, msgs.ChannelUpdate(
                chan.short_channel_id, learner.me.node_id, s.world.clock.unix_time(), False, 72, 1, 6_000_000_000,
                1000, 0)) in cm.pending_msg_events
        s.settle()
        assert cm.list_channels() == []
    (closed,) = learner.of(Event.ChannelClosed)
    assert closed == Event.ChannelClosed(
        channel_id=chan.channel_id, user_channel_id=chan.user_channel_id, reason=reason,
        counterparty_node_id=bob.node_id, channel_capacity_sats=6_000_000, channel_funding_txo=chan.funding_txo,
        last_local_balance_msat=balance)


def test_a_payment_sent_along_a_given_route_is_never_retried():
    """``send_payment_with_route`` has no retry strategy, so the payment is not ``is_auto_retryable_now``: its
    failed path abandons it at once (``RetriesExhausted``), with no request to retry."""
    a = path(10)
    s = Sender([route(path(30))])
    s.out.send_payment_with_route(route(a), HASH, RecipientOnionFields.secret_only(None), PID, s.send_along_path)
    s.fail(a, scid=10)
    s.retry()
    assert s.names() == ["PaymentPathFailed", "PaymentFailed"] and s.sent == [a] and s.forwardable == 0
    assert s.events[-1].reason is PaymentFailureReason.RetriesExhausted


# --- opening (channelmanager.rs: internal_open_channel, internal_accept_channel, ChannelPending/ChannelReady) ----

def test_the_opening_events_carry_the_channel():
    """Inbound: ``OpenChannelRequest`` repeats bob's ``open_channel`` (funds, push as ``PushMsat``, type,
    announcement, parameters); outbound: ``FundingGenerationReady`` asks for the funding output (its script and
    value, our user channel id). Then ``ChannelPending`` (the real id, the former temporary id, the funding outpoint,
    the type) and, once confirmed, ``ChannelReady`` — in that order, for each channel."""
    seen: list[Event] = []
    open_msgs: list[msgs.OpenChannel] = []

    async def recording(*args):
        seen.append(args[-1])
        return await reference(*args)

    with World(seed=91) as world:
        stage = Stage(world, world.add_node("learner", handler=recording))
        bob = stage.peer("bob")
        world.connect(bob, stage.me)
        bob.channel_manager.create_channel(stage.me.node_id, 6_000_000, 5_000_000, 1, None, None)
        open_msgs.append(bob.channel_manager.pending_msg_events[-1][1])
        world.run()
        stage.mine(6)
        carol = stage.peer("carol")
        tcid = stage.me.channel_manager.create_channel(carol.node_id, 2_000_000, 0, 99, None, None)
        world.run()
        stage.mine(6)
        inbound = next(c for c in stage.me.channel_manager.list_channels() if c.counterparty.node_id == bob.node_id)
        outbound = next(c for c in stage.me.channel_manager.list_channels() if c.counterparty.node_id == carol.node_id)
        script = stage.me.channel_manager.channels[outbound.channel_id].funding_output_script
    (msg,) = open_msgs
    assert [type(e).__name__ for e in seen] == ["OpenChannelRequest", "ChannelPending", "ChannelReady",
                                                "FundingGenerationReady", "ChannelPending", "ChannelReady"]
    request, pending_in, ready_in, funding, pending_out, ready_out = seen
    assert request == Event.OpenChannelRequest(
        msg.temporary_channel_id, bob.node_id, 6_000_000, InboundChannelFunds.PushMsat(5_000_000), msg.channel_type,
        msg.announce_channel, msgs.ChannelParameters(msg.dust_limit_satoshis, msg.max_htlc_value_in_flight_msat,
                                                     msg.htlc_minimum_msat, msg.feerate_per_kw, msg.to_self_delay,
                                                     msg.max_accepted_htlcs))
    assert pending_in == Event.ChannelPending(inbound.channel_id, inbound.user_channel_id, msg.temporary_channel_id,
                                             bob.node_id, inbound.funding_txo, inbound.channel_type)
    assert ready_in == Event.ChannelReady(inbound.channel_id, inbound.user_channel_id, bob.node_id,
                                          inbound.channel_type)
    assert (funding.temporary_channel_id, funding.counterparty_node_id, funding.channel_value_satoshis,
            funding.user_channel_id) == (tcid, carol.node_id, 2_000_000, 99)
    assert funding.output_script == script  # the channel's 2-of-2 funding output
    assert pending_out == Event.ChannelPending(outbound.channel_id, 99, tcid, carol.node_id, outbound.funding_txo,
                                               outbound.channel_type)
    assert ready_out == Event.ChannelReady(outbound.channel_id, 99, carol.node_id, outbound.channel_type)


def test_a_forward_to_an_unknown_or_unusable_channel_fails_back_naming_it(forwarder):
    """``can_forward_htlc``, as the HTLC arrives: an HTLC for a channel we do not know ("Don't have available channel
    for forwarding as requested"), or for one whose peer is gone ("Forwarding channel is not in a ready state"),
    fails back with no event; the payer is told which channel failed."""
    f = forwarder
    out = f.stage.channel_between(f.me, f.carol)
    _alice_pays_carol(f, lambda m: dataclasses.replace(m, onion=dataclasses.replace(
        m.onion, hops=(dataclasses.replace(m.onion.hops[0], short_channel_id=12345),))))
    f.world.disconnect(f.me, f.carol)
    _alice_pays_carol(f)
    assert f.of(Event.HTLCHandlingFailed) == []
    assert [e.short_channel_id for e in f.alice.events_seen if isinstance(e, Event.PaymentPathFailed)] == [
        12345, out.short_channel_id]


def test_force_closing_a_channel_carrying_a_forward_raises_channel_closed():
    """``force_close_broadcasting_latest_txn`` on the channel a forwarded HTLC came in on: ``ChannelClosed``
    (``HolderForceClosed``); the HTLC, which is not ours to claim, is left to the chain."""
    learner = Learner(93)

    async def carol_holds(*args):
        if isinstance(args[-1], Event.PaymentClaimable):
            return None
        return await ldk_sample(*args)

    with learner.world:
        s = learner.stage
        alice, carol = s.peer("alice"), s.peer("carol", handler=carol_holds)
        s.open(alice, learner.me, 6_000_000)
        s.open(carol, learner.me, 6_000_000, push_msat=3_000_000_000)
        learner.alice, learner.carol = alice, carol
        _alice_pays_carol(learner)
        into = s.channel_between(learner.me, alice)
        assert learner.cm.channels[into.channel_id].pending_inbound_htlcs
        learner.cm.force_close_broadcasting_latest_txn(into.channel_id, alice.node_id, "bye")
        s.settle()
    (closed,) = learner.of(Event.ChannelClosed)
    assert (closed.channel_id, closed.reason) == (into.channel_id, ClosureReason.HolderForceClosed(True))


def test_htlcs_arriving_together_ask_for_one_forwarding():
    """``push_pending_forwards_ev``: HTLCs arriving while a ``PendingHTLCsForwardable`` waits add no other; after
    ``process_pending_htlc_forwards`` the next HTLC asks again."""
    waiting: list[bool] = [True]

    async def slow(*args):
        if waiting and isinstance(args[-1], Event.PendingHTLCsForwardable):
            return ReplayEvent()  # not processed yet
        return await reference(*args)

    with World(seed=95) as world:
        stage = Stage(world, world.add_node("learner", handler=slow))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        waiting.append(True)
        cm = stage.me.channel_manager
        forwardables = lambda: [e for e in cm.pending_events() if isinstance(e, Event.PendingHTLCsForwardable)]  # noqa: E731
        for amount in (10_000_000, 20_000_000):
            stage.pay(bob, stage.invoice(stage.me, amount), retry=Retry.Attempts(0))
        assert len(cm.forward_htlcs) == 2 and len(forwardables()) == 1
        cm.process_pending_htlc_forwards()
        cm.process_pending_events(lambda event: None)  # the handler is done with what was queued
        stage.pay(bob, stage.invoice(stage.me, 30_000_000), retry=Retry.Attempts(0))
        assert len(forwardables()) == 1


def test_every_payment_awaiting_a_retry_is_retried_once():
    """``check_retry_payments`` goes through every payment: those not awaiting a retry (in flight, abandoned, sent
    along a given route) are passed over, whatever their place; the one awaiting it is routed again, once — the
    next processing sends nothing more."""
    a, b = path(10, 5_000), path(20, 5_000)
    s = Sender([route(path(60)), route(a, b)])
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(PAYEE, 40), 10_000)
    onion = RecipientOnionFields.secret_only(None)
    ids = [PaymentId(bytes([i]) * 32) for i in (1, 2, 3)]
    s.out.send_payment(HASH, onion, ids[0], Retry.Attempts(3), params, s.find_route, s.send_along_path)  # in flight
    s.out.send_payment(HASH, onion, ids[1], Retry.Attempts(3), params, s.find_route, s.send_along_path)
    s.out.fail_htlc(HTLCOutboundRoute(ids[1], a, False), HASH, FailureOnion(HOP, 0x1007, 10, False))
    s.out.abandon_payment(ids[1])  # awaiting a retry, then abandoned with a part in flight
    s.refuse = True
    s.out.send_payment_with_route(route(path(30)), HASH, onion, ids[2], s.send_along_path)  # awaits, no params
    s.refuse = False
    mpp_a, mpp_b = path(40, 5_000), path(50, 5_000)
    s.routes = [route(mpp_a, mpp_b), route(path(90)), route(path(91))]
    s.pay(Retry.Attempts(3))
    s.fail(mpp_a, scid=40)
    before = list(s.sent)
    s.retry()
    assert s.sent == before + [path(90)]
    s.retry()
    assert s.sent == before + [path(90)]


def test_a_path_refused_for_another_reason_blames_no_channel():
    """``push_path_failed_evs_and_scids`` blames the first channel only for ``APIError::ChannelUnavailable``: a path
    refused with another error raises ``PaymentPathFailed`` with ``InitialSend`` and no ``short_channel_id``."""
    s = Sender([route(path(10))], refuse_first_hop="misuse")
    s.pay(Retry.Attempts(0))
    event, failed = s.events
    assert isinstance(event.failure.err, APIError.APIMisuseError) and event.short_channel_id is None
    assert failed.reason == PaymentFailureReason.RouteNotFound  # (the router, asked first, had no route left)


def test_a_route_more_than_the_first_channel_can_carry_fails_at_once_and_moves_nothing():
    """``Channel::send_htlc`` (channel.rs:7885-7887) refuses an HTLC over ``next_outbound_htlc_limit_msat`` ("Cannot
    send more than our next-HTLC maximum - N msat"), so ``send_payment_with_route`` raises ``PaymentPathFailed`` with
    ``InitialSend``, and, its FixedRouter giving the route only once, ``PaymentFailed`` with ``RouteNotFound``
    (outbound_payment.rs ``handle_pay_route_err``). It once sent 5,000,000 sats over 1,000,000 (a balance below
    zero), and a payment whose first hop refused it waited for ever."""
    learner = Learner(98)
    with learner.world:
        s = learner.stage
        bob = s.peer("bob")
        s.open(learner.me, bob, 1_000_000)
        (chan,) = learner.cm.list_usable_channels()
        invoice = s.invoice(bob, 5_000_000_000)
        hop = RouteHop(bob.node_id, b"", chan.short_channel_id, b"", 5_000_000_000, 42, True)
        learner.cm.send_payment_with_route(Route((Path((hop,), None),), None), invoice.payment_hash(),
                                           RecipientOnionFields.secret_only(invoice.payment_secret()), PID)
        s.settle(10)
        balance = learner.cm.channels[chan.channel_id].value_to_self_msat
    (path_failed,), (failed,) = learner.of(Event.PaymentPathFailed), learner.of(Event.PaymentFailed)
    assert isinstance(path_failed.failure, PathFailure.InitialSend)
    assert path_failed.failure.err == APIError.ChannelUnavailable(
        f"Cannot send more than our next-HTLC maximum - {chan.next_outbound_htlc_limit_msat} msat")
    assert (failed.payment_id, failed.reason) == (PID, PaymentFailureReason.RouteNotFound)
    assert balance == 1_000_000_000 and not learner.of(Event.PaymentSent)


def test_a_commitment_confirming_unannounced_closes_the_channel():
    """``Channel::transactions_confirmed``: a peer that force-closes while disconnected (its error never arrives)
    is noticed when its commitment confirms: ``ChannelClosed`` with ``CommitmentTxConfirmed``, once."""
    learner = Learner(97)
    with learner.world:
        s = learner.stage
        bob = s.peer("bob")
        s.open(bob, learner.me, 6_000_000)
        (chan,) = learner.cm.list_channels()
        s.world.disconnect(bob, learner.me)
        bob.channel_manager.force_close_broadcasting_latest_txn(chan.channel_id, learner.me.node_id, "gone")
        s.mine(3)
        s.mine(3)
    (closed,) = learner.of(Event.ChannelClosed)
    assert (closed.channel_id, closed.reason) == (chan.channel_id, ClosureReason.CommitmentTxConfirmed())


# --- forwarding: what the sender is told, our fee, intercepted HTLCs (channelmanager.rs: can_forward_htlc,
# process_pending_htlc_forwards, forward_intercepted_htlc, fail_intercepted_htlc; onion_utils.rs:
# process_onion_failure) ---------------------------------------------------------------------------------------

def _path_failures(node) -> list[tuple]:
    """What ``node`` was told of its failed paths: (short_channel_id, failure, failed permanently)."""
    return [(e.short_channel_id, e.failure, e.payment_failed_permanently)
            for e in node.events_seen if isinstance(e, Event.PaymentPathFailed)]


def _pay_through(stage, payer, forwarder, fee_msat: int, out_scid: int, payee, amount_msat: int, pid: bytes):
    """``payer`` pays ``payee`` ``amount_msat`` along a route it was given: over its channel to ``forwarder``
    (paying it ``fee_msat``), then ``out_scid``; settled. Returns the invoice."""
    invoice = stage.invoice(payee, amount_msat)
    first = stage.channel_between(payer, forwarder).short_channel_id
    hops = (RouteHop(forwarder.node_id, b"", first, b"", fee_msat, 72, True),
            RouteHop(payee.node_id, b"", out_scid, b"", amount_msat, 24, True))
    payer.channel_manager.send_payment_with_route(
        Route((Path(hops, None),), None), invoice.payment_hash(),
        RecipientOnionFields.secret_only(invoice.payment_secret()), PaymentId(pid * 32))
    stage.settle()
    return invoice


def test_a_forward_to_a_channel_we_do_not_know_is_blamed_on_that_scid_for_good(forwarder):
    """``process_onion_failure``: our ``unknown_next_peer`` (PERM|10) tells the sender the channel its route asked
    for is gone: ``PaymentPathFailed`` with that scid and ``ChannelFailure`` permanent; not the payee's refusal."""
    f = forwarder
    _alice_pays_carol(f, lambda m: dataclasses.replace(m, onion=dataclasses.replace(
        m.onion, hops=(dataclasses.replace(m.onion.hops[0], short_channel_id=12345),))))
    assert _path_failures(f.alice) == [(12345, PathFailure.OnPath(NetworkUpdate.ChannelFailure(12345, True)), False)]


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda m: dataclasses.replace(m, amount_msat=m.amount_msat - 1), id="fee_insufficient"),
    pytest.param(lambda m: dataclasses.replace(m, cltv_expiry=m.cltv_expiry - 1), id="incorrect_cltv_expiry"),
])
def test_a_forward_refused_by_our_channel_policy_is_blamed_on_the_next_channel_for_now(forwarder, tamper):
    """``process_onion_failure``: an UPDATE failure (``fee_insufficient``, ``incorrect_cltv_expiry``) tells the
    sender the next channel failed, not permanently: ``ChannelFailure`` of its scid, ``is_permanent`` false."""
    f = forwarder
    _alice_pays_carol(f, tamper)
    out = f.stage.channel_between(f.me, f.carol).short_channel_id
    assert _path_failures(f.alice) == [(out, PathFailure.OnPath(NetworkUpdate.ChannelFailure(out, False)), False)]


def test_a_forward_pays_the_proportional_fee_rounded_down_and_not_a_msat_less():
    """``htlc_satisfies_config``: the fee a forward must leave is ``base + amount * ppm / 1_000_000`` in integers
    (rounded down). Paying exactly that is forwarded (``PaymentForwarded`` with that fee); a msat less fails back
    as it arrives, with no event."""
    with World(seed=43) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        alice, bob = stage.peer("alice"), stage.peer("bob", fee_ppm=10_000)
        stage.open(alice, bob, 6_000_000)
        stage.open(bob, stage.me, 6_000_000)
        out = stage.channel_between(bob, stage.me)
        amount = 100_000_050  # 1,000,000.5 msat at 10,000 ppm: 1,000,000 is due, with the base 1,000
        _pay_through(stage, alice, bob, 1_001_000, out.short_channel_id, stage.me, amount, b"\x41")
        _pay_through(stage, alice, bob, 1_000_999, out.short_channel_id, stage.me, amount, b"\x42")
        assert [e.total_fee_earned_msat for e in bob.events_seen if isinstance(e, Event.PaymentForwarded)] == [
            1_001_000]
        assert [e for e in bob.events_seen if isinstance(e, Event.HTLCHandlingFailed)] == []
        assert sum(isinstance(e, Event.PaymentFailed) for e in alice.events_seen) == 1


def test_a_forward_of_exactly_what_the_next_channel_can_carry_goes_on_and_a_msat_more_fails_back():
    """``can_forward_htlc``: an HTLC up to the next channel's ``next_outbound_htlc_limit_msat`` is forwarded; one
    msat more fails back (``temporary_channel_failure``, ``NextHopChannel``)."""
    with World(seed=44) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        me, alice, carol = stage.me, stage.peer("alice"), stage.peer("carol")
        stage.open(alice, me, 6_000_000)
        stage.open(me, carol, 500_000)
        out = stage.channel_between(me, carol)
        _pay_through(stage, alice, me, 1_000, out.short_channel_id, carol, out.next_outbound_htlc_limit_msat, b"\x43")
        limit = stage.channel_between(me, carol).next_outbound_htlc_limit_msat
        _pay_through(stage, alice, me, 1_000, out.short_channel_id, carol, limit + 1, b"\x44")
        into = stage.channel_between(me, alice)
        seen = me.events_seen
        assert [e.outbound_amount_forwarded_msat for e in seen if isinstance(e, Event.PaymentForwarded)] == [
            out.next_outbound_htlc_limit_msat]
        assert [e for e in seen if isinstance(e, Event.HTLCHandlingFailed)] == [
            Event.HTLCHandlingFailed(into.channel_id, HTLCDestination.NextHopChannel(carol.node_id, out.channel_id))]


def _intercepting_world(seed: int, accept: bool = True):
    """A world whose learner takes intercepts if ``accept`` (``intercepting_lsp``). Returns (world, stage,
    intercepts)."""
    world = World(seed=seed)
    me, intercepts = intercepting_lsp(world, accept)
    return world, Stage(world, me), intercepts


def _released(stage: Stage, intercepts: list, amount_of) -> tuple:
    """Pay through an intercept scid, then release the intercepted HTLC onto the learner's channel with carol
    for ``amount_of(that channel)`` msat. Returns (alice, carol, fake_scid, the channel with carol)."""
    alice, carol, fake_scid, _ = pay_through_an_intercept_scid(stage)
    (intercepted,) = intercepts
    out = stage.channel_between(stage.me, carol)
    stage.me.channel_manager.forward_intercepted_htlc(intercepted.intercept_id, out.channel_id, carol.node_id,
                                                      amount_of(out))
    return alice, carol, fake_scid, out


def test_without_accept_intercept_htlcs_an_intercept_scid_is_an_unknown_next_hop():
    """``can_forward_htlc``: a scid from ``get_intercept_scid`` is intercepted only when ``accept_intercept_htlcs``
    is set; otherwise it is a channel we do not know, failed back as it arrives, with no event."""
    world, stage, intercepts = _intercepting_world(45, accept=False)
    with world:
        alice, _, fake_scid, _ = pay_through_an_intercept_scid(stage)
        failed = [e for e in stage.me.events_seen if isinstance(e, Event.HTLCHandlingFailed)]
    assert intercepts == [] and failed == []
    assert [e.short_channel_id for e in alice.events_seen if isinstance(e, Event.PaymentPathFailed)] == [fake_scid]


def test_with_accept_intercept_htlcs_an_htlc_for_a_real_channel_is_forwarded_not_intercepted():
    """Only HTLCs for an intercept scid raise ``HTLCIntercepted``; one for a channel of ours is forwarded."""
    world, stage, intercepts = _intercepting_world(46)
    with world:
        me, alice, carol = stage.me, stage.peer("alice"), stage.peer("carol")
        stage.open(alice, me, 6_000_000)
        stage.open(me, carol, 1_000_000)
        out = stage.channel_between(me, carol).short_channel_id
        _pay_through(stage, alice, me, 1_000, out, carol, 10_000_000, b"\x46")
        forwarded = [e.next_channel_id for e in me.events_seen if isinstance(e, Event.PaymentForwarded)]
    assert intercepts == [] and forwarded == [stage.channel_between(me, carol).channel_id]


def test_an_intercepted_htlc_failed_by_the_lsp_goes_back_as_an_unknown_next_hop_once():
    """``fail_intercepted_htlc``: ``HTLCHandlingFailed`` with ``UnknownNextHop`` (the fake scid); the sender is told
    that scid failed for good (``unknown_next_peer``). The id is then unknown: failing or forwarding it again is an
    ``APIMisuseError`` naming it."""
    world, stage, intercepts = _intercepting_world(47)
    with world:
        me = stage.me
        alice, carol, fake_scid, _ = pay_through_an_intercept_scid(stage)
        (intercepted,) = intercepts
        me.channel_manager.fail_intercepted_htlc(intercepted.intercept_id)
        stage.settle()
        into, out = stage.channel_between(me, alice), stage.channel_between(me, carol)
        failed = [e for e in me.events_seen if isinstance(e, Event.HTLCHandlingFailed)]
        message = f"Payment with intercept id {intercepted.intercept_id} not found"
        with pytest.raises(APIError.APIMisuseError, match=message):
            me.channel_manager.fail_intercepted_htlc(intercepted.intercept_id)
        with pytest.raises(APIError.APIMisuseError, match=message):
            me.channel_manager.forward_intercepted_htlc(intercepted.intercept_id, out.channel_id, carol.node_id, 1)
    assert failed == [Event.HTLCHandlingFailed(into.channel_id, HTLCDestination.UnknownNextHop(fake_scid))]
    update = NetworkUpdate.ChannelFailure(fake_scid, True)
    assert _path_failures(alice) == [(fake_scid, PathFailure.OnPath(update), False)]


def test_forwarding_an_intercepted_htlc_onto_a_closing_channel_is_refused_and_keeps_it():
    """``forward_intercepted_htlc`` checks the next channel first: one shutting down is not usable
    (``ChannelUnavailable``: "not fully established"); the HTLC stays intercepted and can be forwarded elsewhere."""
    world, stage, intercepts = _intercepting_world(48)
    with world:
        me = stage.me
        alice, carol, _, _ = pay_through_an_intercept_scid(stage)
        dave = stage.peer("dave")
        stage.open(me, dave, 1_000_000)
        (intercepted,) = intercepts
        to_carol, to_dave = stage.channel_between(me, carol), stage.channel_between(me, dave)
        me.channel_manager.close_channel(to_carol.channel_id, carol.node_id)
        with pytest.raises(APIError.ChannelUnavailable) as refused:
            me.channel_manager.forward_intercepted_htlc(intercepted.intercept_id, to_carol.channel_id, carol.node_id,
                                                        10_000_000)
        me.channel_manager.forward_intercepted_htlc(intercepted.intercept_id, to_dave.channel_id, dave.node_id,
                                                    10_000_000)
        stage.settle()
        failed = [e.failed_next_destination for e in me.events_seen if isinstance(e, Event.HTLCHandlingFailed)]
    assert refused.value.err == f"Channel with id {to_carol.channel_id} not fully established"
    # dave, who never made the invoice, refuses it: the HTLC did go to him
    assert failed == [HTLCDestination.NextHopChannel(dave.node_id, to_dave.channel_id)]


def test_an_intercepted_htlc_whose_next_channel_closed_before_processing_fails_back_naming_its_scid():
    """``process_pending_htlc_forwards``: a released HTLC whose channel closed meanwhile is for a channel we no
    longer know: ``HTLCHandlingFailed`` with ``UnknownNextHop`` of that channel's scid; the sender is told its
    fake scid failed for good."""
    world, stage, intercepts = _intercepting_world(49)
    with world:
        me = stage.me
        alice, carol, fake_scid, out = _released(stage, intercepts, lambda out: 10_000_000)
        me.channel_manager.force_close_broadcasting_latest_txn(out.channel_id, carol.node_id, "gone")
        stage.settle()
        into = stage.channel_between(me, alice)
        failed = [e for e in me.events_seen if isinstance(e, Event.HTLCHandlingFailed)]
    assert failed == [Event.HTLCHandlingFailed(into.channel_id, HTLCDestination.UnknownNextHop(out.short_channel_id))]
    assert _path_failures(alice) == [(fake_scid, PathFailure.OnPath(NetworkUpdate.ChannelFailure(fake_scid, True)),
                                      False)]


def test_an_intercepted_htlc_released_for_more_than_the_next_channel_can_carry_fails_back_for_now():
    """``process_pending_htlc_forwards``: ``queue_add_htlc`` refuses an HTLC above the channel's limit:
    ``temporary_channel_failure`` and ``HTLCHandlingFailed`` with ``NextHopChannel``; the sender is told its fake
    scid failed for now."""
    world, stage, intercepts = _intercepting_world(50)
    with world:
        me = stage.me
        alice, carol, fake_scid, out = _released(stage, intercepts, lambda out: out.next_outbound_htlc_limit_msat + 1)
        stage.settle()
        into = stage.channel_between(me, alice)
        failed = [e for e in me.events_seen if isinstance(e, Event.HTLCHandlingFailed)]
        update = NetworkUpdate.ChannelFailure(fake_scid, False)
        assert _path_failures(alice) == [(fake_scid, PathFailure.OnPath(update), False)]
    assert failed == [Event.HTLCHandlingFailed(into.channel_id, HTLCDestination.NextHopChannel(carol.node_id,
                                                                                                out.channel_id))]


# --- closing by force, and the peer's error (channelmanager.rs: force_close_sending_error,
# force_close_all_channels_broadcasting_latest_txn, handle_error, force_close_channel_with_peer) -------------------

def test_a_peers_error_closes_our_funded_channel_at_once_with_its_message():
    """``handle_error``: an ``error`` naming a funded channel closes it then (not when a commitment confirms):
    ``ChannelClosed`` with ``CounterpartyForceClosed`` carrying the peer's message; a second error changes nothing."""
    learner = Learner(101)
    with learner.world:
        s = learner.stage
        bob = s.peer("bob")
        s.open(bob, learner.me, 6_000_000)
        (chan,) = learner.cm.list_channels()
        learner.cm.handle_error(bob.node_id, msgs.ErrorMessage(chan.channel_id, "we are done"))
        closed_now = learner.cm.pending_events() + learner.seen
        learner.cm.handle_error(bob.node_id, msgs.ErrorMessage(chan.channel_id, "we are done"))
        s.mine(6)
    assert [(e.channel_id, e.reason) for e in closed_now if isinstance(e, Event.ChannelClosed)] == [
        (chan.channel_id, ClosureReason.CounterpartyForceClosed("we are done"))]
    assert [e.reason for e in learner.of(Event.ChannelClosed)] == [ClosureReason.CounterpartyForceClosed("we are done")]


def test_an_error_for_every_channel_closes_all_the_peers_channels_and_forgets_its_requests():
    """``handle_error`` with the zero channel id: every channel with that peer closes (``CounterpartyForceClosed``),
    its requests not yet accepted are dropped without an event; other peers' channels stay open."""
    learner = Learner(102)
    with learner.world:
        s = learner.stage
        bob, carol = s.peer("bob"), s.peer("carol")
        s.open(bob, learner.me, 6_000_000)
        s.open(carol, learner.me, 6_000_000)
        learner.hold = (Event.OpenChannelRequest,)  # the next request is left unanswered
        bob.channel_manager.create_channel(learner.me.node_id, 1_000_000, 0, 7, None, None)
        s.settle()
        learner.cm.handle_error(bob.node_id, msgs.ErrorMessage(ChannelId(bytes(32)), "all gone"))
        s.settle()
        left = [c.counterparty.node_id for c in learner.cm.list_channels()]
        request = learner.of(Event.OpenChannelRequest)[-1]
        with pytest.raises(APIError.APIMisuseError, match="No such channel awaiting to be accepted"):
            learner.cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 1)
    assert [(e.counterparty_node_id, e.reason) for e in learner.of(Event.ChannelClosed)] == [
        (bob.node_id, ClosureReason.CounterpartyForceClosed("all gone"))]
    assert left == [carol.node_id]


def test_force_closing_without_broadcasting_leaves_the_chain_to_the_peer():
    """``force_close_without_broadcasting_txn``: ``ChannelClosed`` with ``HolderForceClosed`` and
    ``broadcasted_latest_txn`` false; our commitment is not broadcast, so the peer's, broadcast on our error,
    confirms and pays us a ``StaticPaymentOutput``."""
    learner = Learner(103)
    with learner.world:
        s = learner.stage
        bob = s.peer("bob")
        s.open(learner.me, bob, 1_000_000)
        (chan,) = learner.cm.list_channels()
        learner.cm.force_close_without_broadcasting_txn(chan.channel_id, bob.node_id, "quietly")
        s.settle()
        s.mine(6)
        s.mine(6)
    assert [e.reason for e in learner.of(Event.ChannelClosed)] == [ClosureReason.HolderForceClosed(False)]
    assert [e.reason for e in bob.events_seen if isinstance(e, Event.ChannelClosed)] == [
        ClosureReason.CounterpartyForceClosed("quietly")]
    assert [type(o).__name__ for e in learner.of(Event.SpendableOutputs) for o in e.outputs] == [
        "StaticPaymentOutput"]


def test_force_closing_all_channels_closes_each_telling_its_peer_why():
    """``force_close_all_channels_broadcasting_latest_txn``: every channel closes with ``HolderForceClosed``
    (broadcast); each peer is sent our message and closes with ``CounterpartyForceClosed`` carrying it."""
    learner = Learner(104)
    with learner.world:
        s = learner.stage
        bob, carol = s.peer("bob"), s.peer("carol")
        s.open(learner.me, bob, 1_000_000)
        s.open(learner.me, carol, 1_000_000)
        learner.cm.force_close_all_channels_broadcasting_latest_txn("closing shop")
        s.settle()
        assert learner.cm.list_channels() == []
    assert sorted((e.counterparty_node_id, e.reason) for e in learner.of(Event.ChannelClosed)) == sorted(
        [(bob.node_id, ClosureReason.HolderForceClosed(True)), (carol.node_id, ClosureReason.HolderForceClosed(True))])
    for peer in (bob, carol):
        assert [e.reason for e in peer.events_seen if isinstance(e, Event.ChannelClosed)] == [
            ClosureReason.CounterpartyForceClosed("closing shop")]


# --- sending a keysend, a probe (outbound_payment.rs: send_spontaneous_payment, send_probe) -----------------------

def test_a_keysend_without_a_preimage_sends_a_fresh_one_and_retries_as_told():
    """``send_spontaneous_payment`` with no preimage takes 32 random bytes for it: the hash returned is its hash
    and the HTLC carries it; the payment follows its retry strategy (a failed path is sent again); once
    fulfilled, ``PaymentSent`` gives that preimage."""
    s = Sender([route(path(10)), route(path(20))])
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(PAYEE, 40), 10_000)
    preimage = PaymentPreimage(b"\x0a" * 32)
    payment_hash = s.out.send_spontaneous_payment(None, RecipientOnionFields.spontaneous_empty(), PID,
                                                  Retry.Attempts(1), params, lambda: bytes(preimage),
                                                  s.find_route, s.send_along_path)
    assert payment_hash == preimage.payment_hash()
    assert [(a.payment_hash, a.keysend_preimage) for _, a in s.htlcs] == [(payment_hash, preimage)]
    s.out.fail_htlc(s.htlcs[0][0], payment_hash, FailureOnion(HOP, 0x1007, 11, False))
    s.retry()
    assert s.sent == [path(10), path(20)]
    s.out.claim_htlc(s.htlcs[1][0], payment_hash, preimage)
    (sent,) = [e for e in s.events if isinstance(e, Event.PaymentSent)]
    assert (sent.payment_hash, sent.payment_preimage) == (payment_hash, preimage)


def test_a_first_hop_whose_peer_is_offline_is_refused_in_ldks_words():
    """LDK's ``send_payment_along_path``: a first hop it does not know is "No channel available with first hop!"; one
    it knows, whose peer is disconnected, is "Peer for first hop currently disconnected" (channelmanager.rs:4666)."""
    from ldkkit.errors import ProbeSendFailure

    with World(seed=21) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob, carol = stage.peer("bob"), stage.peer("carol")
        stage.open(stage.me, bob, 1_000_000)
        stage.open(bob, carol, 1_000_000)
        stage.settle(5)
        params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(carol.node_id, 40),
                                                               10_000_000)
        path = stage.me.channel_manager._find_route(params).paths[0]
        world.disconnect(stage.me, bob)
        with pytest.raises(ProbeSendFailure.ParameterError) as offline:
            stage.me.channel_manager.send_probe(path)
        unknown = dataclasses.replace(path, hops=(dataclasses.replace(path.hops[0], short_channel_id=12345),
                                                  *path.hops[1:]))
        with pytest.raises(ProbeSendFailure.ParameterError) as nowhere:
            stage.me.channel_manager.send_probe(unknown)
    assert offline.value.err == APIError.ChannelUnavailable("Peer for first hop currently disconnected")
    assert nowhere.value.err == APIError.ChannelUnavailable("No channel available with first hop!")


def test_recent_payments_are_listed_by_their_state_and_all_channels_can_be_closed_at_once():
    """``list_recent_payments`` (ldk-sample's start-up reads it): a payment in flight is ``Pending`` with its total, a
    paid one ``Fulfilled`` (kept a few ticks), an abandoned one ``Abandoned``. And
    ``force_close_all_channels_without_broadcasting_txn`` closes each channel, broadcasting nothing."""
    from ldkkit.ln.outbound_payment import RecentPaymentDetails
    from ldkkit.scenarios import vanish_when_paid

    with World(seed=22) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob, carol = stage.peer("bob"), stage.peer("carol", handler=vanish_when_paid)
        stage.open(stage.me, bob, 1_000_000)
        stage.open(stage.me, carol, 1_000_000)
        paid = stage.pay(stage.me, stage.invoice(bob, 10_000_000))
        stuck = stage.pay(stage.me, stage.invoice(carol, 20_000_000))
        cm = stage.me.channel_manager
        recent = {d.payment_id: d for d in cm.list_recent_payments()}
        assert recent[paid] == RecentPaymentDetails.Fulfilled(paid, recent[paid].payment_hash)
        assert isinstance(recent[stuck], RecentPaymentDetails.Pending) and recent[stuck].total_msat == 20_000_000
        cm.abandon_payment(stuck)
        assert isinstance({d.payment_id: d for d in cm.list_recent_payments()}[stuck], RecentPaymentDetails.Abandoned)
        cm.force_close_all_channels_without_broadcasting_txn("going away")
        stage.settle()
        assert cm.list_channels() == []
        closed = [e.reason for e in stage.me.events_seen if isinstance(e, Event.ChannelClosed)]
        assert closed == [ClosureReason.HolderForceClosed(False)] * 2, closed


@pytest.mark.parametrize("late_s, claimable", [(120, True), (60 + 7200 + 120, False)])
def test_a_payment_a_little_after_its_invoice_expired_is_claimable_and_long_after_it_is_not(late_s, claimable):
    """LDK's ``inbound_payment::create`` adds two hours to the expiry (block header time may lag): a payment made two
    minutes after a one-minute invoice expired is ``PaymentClaimable``, the handler's to judge; one made two hours
    later is failed back by LDK, with no event of its own."""
    with World(seed=23) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        payment_hash, secret = stage.me.channel_manager.create_inbound_payment(50_000_000, 60)
        stage.settle(late_s)
        before = len(stage.me.events_seen)
        params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(stage.me.node_id, 40),
                                                               50_000_000)
        bob.channel_manager.send_payment(payment_hash, RecipientOnionFields.secret_only(secret),
                                         PaymentId(bytes(payment_hash)), params, Retry.Attempts(0))
        stage.settle()
        seen = {type(e).__name__ for e in stage.me.events_seen[before:]}
        ended = {type(e).__name__ for e in bob.events_seen if getattr(e, "payment_hash", None) == payment_hash}
    assert ("PaymentClaimable" in seen) is claimable, seen
    assert ended & {"PaymentSent", "PaymentFailed"} == ({"PaymentSent"} if claimable else {"PaymentFailed"}), ended


def test_inbound_payments_are_stateless_an_invoice_made_before_a_crash_is_paid_after_it():
    """LDK's ``inbound_payment`` stores nothing: the secret carries the minimum amount and the expiry, encrypted under
    the node's ``ExpandedKey``, and the preimage of a hash LDK made is found again from it. So a manager restored from
    bytes written before the invoice was made accepts the payment (``PaymentClaimable`` with the preimage);
    ``get_payment_preimage`` gives it; a secret not made by the node, or too small a payment, is failed back."""
    from ldkkit.errors import APIError

    with World(seed=24) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        cm = stage.me.channel_manager
        before = cm.encode()  # the manager as it was before the invoices: restored from these bytes below
        payment_hash, secret = cm.create_inbound_payment(50_000_000, 3600)
        preimage = cm.get_payment_preimage(payment_hash, secret)
        assert preimage.payment_hash() == payment_hash
        user_hash = PaymentHash(b"\x61" * 32)
        user_secret = cm.create_inbound_payment_for_hash(user_hash, None, 3600)
        with pytest.raises(APIError.APIMisuseError, match="instead got UserPaymentHash"):
            cm.get_payment_preimage(user_hash, user_secret)
        stage.me.fs_store.write("", "", "manager", before)
        stage.me = world.restart_node(stage.me)
        params = PaymentParameters.from_node_id(stage.me.node_id, 40)
        for hash_, secret_, amount, pid in ((payment_hash, PaymentSecret(b"\x62" * 32), 50_000_000, b"\x01"),
                                            (payment_hash, secret, 40_000_000, b"\x02"),
                                            (payment_hash, secret, 50_000_000, b"\x03")):
            bob.channel_manager.send_payment(hash_, RecipientOnionFields.secret_only(secret_), PaymentId(pid * 32),
                                             RouteParameters.from_payment_params_and_value(params, amount),
                                             Retry.Attempts(0))
            stage.settle()
        claimable = [e for e in stage.me.events_seen if isinstance(e, Event.PaymentClaimable)]
        assert [e.purpose for e in claimable] == [PaymentPurpose.Bolt11InvoicePayment(preimage, secret)]
        failed = [e.payment_id for e in bob.events_seen if isinstance(e, Event.PaymentFailed)]
        assert failed == [PaymentId(b"\x01" * 32), PaymentId(b"\x02" * 32)]


def test_a_probe_its_first_hop_refuses_raises_that_error_and_is_forgotten():
    """``send_probe``: a path the first channel cannot take raises ``ProbeSendFailure::ParameterError`` with the
    channel's ``APIError``; nothing is left pending and no event is raised."""
    from ldkkit.errors import ProbeSendFailure

    s = Sender([], refuse_first_hop=True)
    with pytest.raises(ProbeSendFailure.ParameterError) as refused:
        s.out.send_probe(path(10), lambda: b"\x09" * 32, s.send_along_path)
    assert refused.value.err == APIError.ChannelUnavailable("No channel available with first hop!")
    assert s.out.pending_outbound_payments == {} and s.events == []


def test_a_channel_never_funded_or_closed_does_not_stop_the_next_from_confirming():
    """``best_block_updated`` looks at every channel: one we never funded and one closed before it are passed
    over, and the channel opened after them still confirms (``ChannelReady``)."""
    learner = Learner(105, hold=(Event.FundingGenerationReady,))
    with learner.world:
        s = learner.stage
        carol, dave, bob = s.peer("carol"), s.peer("dave"), s.peer("bob")
        learner.cm.create_channel(carol.node_id, 1_000_000, 0, 5, None, None)  # never funded
        s.world.run()
        s.open(dave, learner.me, 6_000_000)
        (to_dave,) = learner.cm.list_usable_channels()
        learner.cm.force_close_broadcasting_latest_txn(to_dave.channel_id, dave.node_id, "closed first")
        s.settle()
        s.open(bob, learner.me, 6_000_000)
    assert [e.counterparty_node_id for e in learner.of(Event.ChannelReady)] == [dave.node_id, bob.node_id]


def test_an_intercepted_htlc_released_for_exactly_what_the_next_channel_can_carry_goes_on():
    """``forward_intercepted_htlc`` may forward up to the next channel's ``next_outbound_htlc_limit_msat``: released
    for exactly that, the HTLC is offered on the next processing, nothing failed back."""
    world, stage, intercepts = _intercepting_world(51)
    with world:
        cm = stage.me.channel_manager
        _, _, _, out = _released(stage, intercepts, lambda out: out.next_outbound_htlc_limit_msat)
        cm.process_pending_htlc_forwards()
        offered = [h.amount_msat for h in cm.channels[out.channel_id].pending_outbound_htlcs.values()]
        failed = [e for e in cm.pending_events() if isinstance(e, Event.HTLCHandlingFailed)]
    assert offered == [out.next_outbound_htlc_limit_msat] and failed == []


def test_each_forwarder_peels_its_own_hop_off_the_onion():
    """``process_pending_htlc_forwards``: forwarding, we pass on the onion without our hop, so along alice -> us ->
    carol -> dave each node finds its own instructions and dave is paid (``PaymentForwarded`` here and at carol,
    ``PaymentSent`` at alice)."""
    with World(seed=52) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        me, alice, carol, dave = stage.me, stage.peer("alice"), stage.peer("carol"), stage.peer("dave")
        stage.open(alice, me, 6_000_000)
        stage.open(me, carol, 1_000_000)
        stage.open(carol, dave, 1_000_000)
        invoice = stage.invoice(dave, 10_000_000)
        first, second, third = (stage.channel_between(a, b).short_channel_id
                                for a, b in ((alice, me), (me, carol), (carol, dave)))
        hops = (RouteHop(me.node_id, b"", first, b"", 1_000, 72, True),
                RouteHop(carol.node_id, b"", second, b"", 1_000, 72, True),
                RouteHop(dave.node_id, b"", third, b"", 10_000_000, 24, True))
        alice.channel_manager.send_payment_with_route(
            Route((Path(hops, None),), None), invoice.payment_hash(),
            RecipientOnionFields.secret_only(invoice.payment_secret()), PaymentId(b"\x52" * 32))
        stage.settle(10)
        forwarded = [len([e for e in n.events_seen if isinstance(e, Event.PaymentForwarded)]) for n in (me, carol)]
        sent = [e for e in alice.events_seen if isinstance(e, Event.PaymentSent)]
    assert forwarded == [1, 1] and len(sent) == 1


def test_channel_closed_counts_an_htlc_we_offered_and_still_have_in_flight_as_ours():
    """``ChannelClosed::last_local_balance_msat`` is LDK's ``ChannelContext::value_to_self_msat`` (``force_shutdown``
    puts it in ``ShutdownResult``), from which an HTLC we offered is taken only once it is fulfilled
    (``FundedChannel::revoke_and_ack``): forwarding 100,000 sat to carol, who never settles, we close holding our
    3,000,000 sat push with the HTLC still ours, not 2,900,000."""
    from ldkkit import scenarios

    result = scenarios.run("force_close_htlc_in_flight")
    (closed,) = [e for e in result.events if isinstance(e, Event.ChannelClosed)]
    assert closed.reason == ClosureReason.HTLCsTimedOut()
    assert closed.last_local_balance_msat == 3_000_000_000


def test_a_payment_goes_out_at_ldks_cur_height_the_next_blocks():
    """LDK's ``pay_route_internal``: ``cur_height = best_block_height + 1``, to which the invoice's final CLTV delta
    adds (the kit draws no shadow route); ``PaymentClaimable.claim_deadline`` is that, less HTLC_FAIL_BACK_BUFFER."""
    from ldkkit import scenarios
    from ldkkit.invoice import MIN_FINAL_CLTV_EXPIRY_DELTA

    result = scenarios.run("receive_invoice_payment")
    claimable = next(e for e in result.events if isinstance(e, Event.PaymentClaimable))
    height = result.world.chain.height()  # (no block since the payment)
    assert claimable.claim_deadline == height + 1 + MIN_FINAL_CLTV_EXPIRY_DELTA - HTLC_FAIL_BACK_BUFFER


# --- closing by force after a payment (channelmonitor.rs: closure_conf_target) -----------------------------------

def test_a_force_close_after_a_payment_is_urgent_so_our_anchor_commitment_is_bumped():
    """``ChannelMonitorImpl::closure_conf_target``: a closing is urgent (``UrgentOnChainSweep``) while an HTLC is on
    the current holder commitment, the previous one (``prev_holder_signed_commitment_tx``, replaced only by the next
    commitment) or the current or previous counterparty commitment. A paid HTLC stays on our previous commitment:
    forcing the channel closed after paying bob, our anchor commitment, which pays only ``AnchorChannelFee``, is not
    broadcast as it is but asked for as ``BumpTransaction::ChannelClose`` at the urgent feerate. Before any payment
    (``OutputSpendingFee``) it is broadcast with no event."""
    from ldkkit.chain.chaininterface import ConfirmationTarget
    from ldkkit.events.bump_transaction import BumpTransactionEvent

    learner = Learner(105)
    with learner.world:
        s = learner.stage
        bob = s.peer("bob")
        s.open(learner.me, bob, 1_000_000)
        s.pay(learner.me, s.invoice(bob, 100_000_000))
        (chan,) = learner.cm.list_channels()
        channel = learner.cm.channels[chan.channel_id]
        assert learner.of(Event.PaymentSent) and not channel.pending_outbound_htlcs  # the HTLC is settled
        learner.cm.force_close_broadcasting_latest_txn(chan.channel_id, bob.node_id, "after a payment")
        s.settle()
        urgent = learner.me.bitcoind_client.get_est_sat_per_1000_weight(ConfirmationTarget.UrgentOnChainSweep)
    bumps = [e.bump_event for e in learner.of(Event.BumpTransaction)]
    assert bumps and all(isinstance(b, BumpTransactionEvent.ChannelClose) for b in bumps)
    assert bumps[0].channel_id == chan.channel_id and bumps[0].pending_htlcs == ()
    assert bumps[0].package_target_feerate_sat_per_1000_weight == urgent


def test_custom_tlvs_too_large_for_the_onion_are_refused_before_routing():
    """``set_max_path_length`` (outbound_payment.rs, before routing): a payment whose own onion data (here custom TLVs)
    leaves the 1,300-byte onion no room is refused with ``OnionPacketSizeExceeded``, and nothing is sent; one that
    fits goes."""
    from ldkkit.errors import RetryableSendFailure

    with World(seed=25) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        with pytest.raises(RetryableSendFailure.OnionPacketSizeExceeded):
            stage.keysend(stage.me, bob, 10_000, custom_tlvs=[(100_001, b"x" * 1_200)])
        assert not stage.me.channel_manager.list_recent_payments()
        stage.keysend(stage.me, bob, 10_000, custom_tlvs=[(100_001, b"x" * 1_100)])
        assert any(isinstance(e, Event.PaymentSent) for e in stage.me.events_seen)
