"""What a ChannelManager method checks first, and what it leaves to later, as LDK 0.1 does (channelmanager.rs,
outbound_payment.rs at v0.1.12): the error a learner reads depends on that order."""

from __future__ import annotations

import pytest
from test_ldk_rules import _intercepting_world, pay_through_an_intercept_scid

from ldkkit.errors import APIError
from ldkkit.events import Event, HTLCDestination
from ldkkit.types import InterceptId


def test_an_intercepted_htlc_may_be_forwarded_to_a_peer_that_is_away_and_fails_back_when_processed():
    """``forward_intercepted_htlc`` asks ``ChannelContext::is_usable`` (ready, not shutting down), not whether the
    peer is connected (``is_live``): it returns Ok; ``process_pending_htlc_forwards`` then cannot send it
    (``send_htlc``: "Cannot send an HTLC while disconnected") and fails it back, naming the channel."""
    world, stage, intercepts = _intercepting_world(51)
    with world:
        me = stage.me
        alice, carol, _, _ = pay_through_an_intercept_scid(stage)
        (intercepted,) = intercepts
        to_carol, into = stage.channel_between(me, carol), stage.channel_between(me, alice)
        world.disconnect(me, carol)
        me.channel_manager.forward_intercepted_htlc(intercepted.intercept_id, to_carol.channel_id, carol.node_id,
                                                    10_000_000)
        stage.settle()
        failed = [e for e in me.events_seen if isinstance(e, Event.HTLCHandlingFailed)]
    assert failed == [Event.HTLCHandlingFailed(into.channel_id,
                                               HTLCDestination.NextHopChannel(carol.node_id, to_carol.channel_id))]


def test_forward_intercepted_htlc_checks_the_next_channel_before_the_intercept_id():
    """LDK looks the channel up first: a channel still opening is "still opening." (``ChannelUnavailable``), an
    unknown one "not found", whatever the intercept id; only then is an unknown id an ``APIMisuseError``."""
    world, stage, intercepts = _intercepting_world(52)
    with world:
        me = stage.me
        _, carol, _, _ = pay_through_an_intercept_scid(stage)
        dave = stage.peer("dave")
        opening = me.channel_manager.create_channel(dave.node_id, 1_000_000, 0, 5, None, None)  # not yet accepted
        unknown_id = InterceptId(b"\x42" * 32)
        to_carol = stage.channel_between(me, carol)
        with pytest.raises(APIError.ChannelUnavailable) as still_opening:
            me.channel_manager.forward_intercepted_htlc(unknown_id, opening, dave.node_id, 1)
        with pytest.raises(APIError.ChannelUnavailable) as not_found:
            me.channel_manager.forward_intercepted_htlc(unknown_id, to_carol.channel_id, dave.node_id, 1)
        with pytest.raises(APIError.APIMisuseError) as unknown:
            me.channel_manager.forward_intercepted_htlc(unknown_id, to_carol.channel_id, carol.node_id, 1)
    assert still_opening.value.err == (f"Channel with id {opening} for the passed counterparty node_id "
                                       f"{dave.node_id} is still opening.")
    assert not_found.value.err == (f"Channel with id {to_carol.channel_id} not found for the passed counterparty "
                                   f"node_id {dave.node_id}")
    assert unknown.value.err == f"Payment with intercept id {unknown_id} not found"


def test_send_payment_finds_its_route_before_it_refuses_a_payment_id_in_use():
    """``send_payment_internal``: ``find_initial_route`` first (the invoice's expiry, then a route), and only then
    ``add_new_pending_payment`` (``DuplicatePayment``): a payment id in use for a payment with no route is a
    ``RouteNotFound``, for one whose invoice expired a ``PaymentExpired``."""
    from ldkkit.errors import RetryableSendFailure
    from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice
    from ldkkit.ln.outbound_payment import Retry
    from ldkkit.reference import handle_ldk_events
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World
    from ldkkit.types import PaymentId

    with World(seed=7) as world:
        stage = Stage(world, world.add_node("learner", handler=handle_ldk_events))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        cm, in_use = stage.me.channel_manager, PaymentId(b"\x01" * 32)

        def send(amount_msat: int, expiry_secs: int = 3600) -> None:
            invoice = bob.channel_manager.create_bolt11_invoice(amount_msat, "", expiry_secs)
            payment_hash, onion, params = payment_parameters_from_invoice(invoice)
            cm.send_payment(payment_hash, onion, in_use, params, Retry.Attempts(1))

        send(10_000_000)  # in flight: the world is not settled
        with pytest.raises(RetryableSendFailure.RouteNotFound):
            send(2_000_000_000)
        invoice = bob.channel_manager.create_bolt11_invoice(10_000, "", 60)
        world.advance(120)
        payment_hash, onion, params = payment_parameters_from_invoice(invoice)
        with pytest.raises(RetryableSendFailure.PaymentExpired):
            cm.send_payment(payment_hash, onion, in_use, params, Retry.Attempts(1))
        with pytest.raises(RetryableSendFailure.DuplicatePayment):
            send(10_000)


def test_payment_claimed_lists_the_parts_by_channel_id_whatever_order_they_came_in():
    """LDK sorts a complete payment's parts (``claimable_payment.htlcs.sort()``; ``ClaimableHTLC``'s ``Ord``: channel
    id, then HTLC id): ``PaymentClaimed.htlcs`` come in that order, not in the order they arrived."""
    from test_ldk_rules import Learner

    from ldkkit.ln.outbound_payment import RecipientOnionFields
    from ldkkit.routing.router import Path, Route, RouteHop
    from ldkkit.types import PaymentId

    r = Learner(31, hold=(Event.PaymentClaimable,))
    with r.world:
        bob = r.stage.peer("bob")
        r.stage.open(bob, r.me, 6_000_000)
        r.stage.open(bob, r.me, 6_000_000)
        by_id = sorted(bob.channel_manager.list_usable_channels(), key=lambda c: bytes(c.channel_id), reverse=True)
        invoice = r.stage.invoice(r.me, 80_000_000)
        paths = tuple(Path((RouteHop(r.me.node_id, b"", c.short_channel_id, b"", amount, 42, True),), None)
                      for c, amount in zip(by_id, (30_000_000, 50_000_000), strict=True))  # the larger id first
        bob.channel_manager.send_payment_with_route(Route(paths, None), invoice.payment_hash(),
                                                    RecipientOnionFields.secret_only(invoice.payment_secret()),
                                                    PaymentId(b"\x55" * 32))
        r.stage.settle()
        (claimable,) = r.of(Event.PaymentClaimable)
        r.cm.claim_funds(claimable.purpose.preimage())
        r.stage.settle()
        (claimed,) = r.of(Event.PaymentClaimed)
    assert [h.value_msat for h in claimed.htlcs] == [50_000_000, 30_000_000]
    assert [bytes(h.channel_id) for h in claimed.htlcs] == sorted(bytes(h.channel_id) for h in claimed.htlcs)


def test_a_fulfilled_payment_is_remembered_while_its_payment_sent_waits_for_the_handler():
    """LDK's ``remove_stale_payments`` counts a fulfilled payment's idempotency ticks only once none of its
    ``PaymentSent``, ``PaymentPathSuccessful`` or ``PaymentPathFailed`` is still queued: while the handler replays
    its ``PaymentSent``, a second send with its id is a ``DuplicatePayment``, however many ticks pass."""
    from ldkkit.errors import RetryableSendFailure
    from ldkkit.events import ReplayEvent
    from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice
    from ldkkit.ln.outbound_payment import Retry
    from ldkkit.reference import handle_ldk_events
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World
    from ldkkit.types import PaymentId

    holding = [True]

    def holds_payment_sent(*args):
        if holding[0] and isinstance(args[-1], Event.PaymentSent):
            return ReplayEvent()
        return handle_ldk_events(*args)

    with World(seed=7) as world:
        stage = Stage(world, world.add_node("learner", handler=holds_payment_sent))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        invoice = stage.invoice(bob, 10_000_000)
        payment_id = stage.pay(stage.me, invoice)
        payment_hash, onion, params = payment_parameters_from_invoice(invoice)

        def again() -> None:
            stage.me.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_id)), params,
                                                  Retry.Attempts(0))

        world.advance(60 * 10)  # ten ticks, PaymentSent still queued
        with pytest.raises(RetryableSendFailure.DuplicatePayment):
            again()
        holding[0] = False
        stage.settle()
        assert any(isinstance(e, Event.PaymentSent) for e in stage.me.events_seen)
        world.advance(60 * 7)  # seven ticks since it was handled: still remembered
        with pytest.raises(RetryableSendFailure.DuplicatePayment):
            again()


def test_our_payment_timed_out_on_chain_fails_its_path_blaming_the_first_hop_with_no_network_update():
    """An HTLC of ours failed by our own node (timed out on chain after a force-close: LDK's
    ``HTLCFailReason::from_failure_code(0x4000 | 8)``, a ``Reason``, not an onion) is decoded by
    ``decode_onion_failure`` as ``network_update: None``, ``payment_failed_permanently: false``,
    ``short_channel_id: Some(path.hops[0].short_channel_id)``."""
    from ldkkit.events import PathFailure
    from ldkkit.exercises import on_chain
    from ldkkit.reference import handle_ldk_events
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World

    with World(seed=5) as world:
        stage = Stage(world, world.add_node("learner", handler=handle_ldk_events))
        on_chain.story(stage)  # a payment to carol stuck on a channel we force-close
        failed = [e for e in stage.me.events_seen if isinstance(e, Event.PaymentPathFailed)]
    (path_failed,) = failed
    assert path_failed.failure == PathFailure.OnPath(None)
    assert not path_failed.payment_failed_permanently
    assert path_failed.short_channel_id == path_failed.path.hops[0].short_channel_id
