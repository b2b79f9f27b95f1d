"""The ChannelManager's methods take LDK's arguments and fail with LDK's errors and messages."""

from __future__ import annotations

import dataclasses

import pytest

from ldkkit.bitcoin import Address, Transaction
from ldkkit.errors import APIError, RetryableSendFailure
from ldkkit.events import ClosureReason, Event, HTLCDestination, ReplayEvent
from ldkkit.events.queue import EventHandlerError
from ldkkit.ln import msgs
from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice
from ldkkit.ln.outbound_payment import Retry
from ldkkit.scenarios import Stage
from ldkkit.sim.world import World
from ldkkit.types import ChannelId, PaymentHash, PaymentId, PublicKey


def quiet_handler(*args):
    """A handler that handles nothing, so events stay for the test to inspect and answer."""
    return ReplayEvent()


@pytest.fixture
def stage():
    world = World(seed=7)
    me = world.add_node("learner", handler=quiet_handler)
    stage = Stage(world, me)
    yield stage
    world.close()


def open_request(stage):
    bob = stage.peer("bob")
    bob.channel_manager.create_channel(stage.me.node_id, 6_000_000, 0, 1, None, None)
    stage.world.run()
    (request,) = stage.me.channel_manager.pending_events()
    return bob, request


def test_accepting_an_unknown_request(stage):
    bob, request = open_request(stage)
    cm = stage.me.channel_manager
    with pytest.raises(APIError.APIMisuseError, match=r"^Misuse error: No such channel awaiting to be accepted\.$"):
        cm.accept_inbound_channel(ChannelId(bytes(32)), bob.node_id, 1)
    stranger = PublicKey.from_secret_key(b"\x09" * 32)
    with pytest.raises(APIError.ChannelUnavailable) as info:
        cm.accept_inbound_channel(request.temporary_channel_id, stranger, 1)
    assert info.value.err == f"Can't find a peer matching the passed counterparty node_id {stranger}"


def test_accepting_twice_is_a_misuse(stage):
    bob, request = open_request(stage)
    cm = stage.me.channel_manager
    cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 7)
    with pytest.raises(APIError.APIMisuseError, match="No such channel awaiting to be accepted."):
        cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 7)


def test_force_closing_an_unknown_channel(stage):
    bob, _ = open_request(stage)
    missing = ChannelId(b"\x05" * 32)
    with pytest.raises(APIError.ChannelUnavailable) as info:
        stage.me.channel_manager.force_close_without_broadcasting_txn(missing, bob.node_id, "no")
    assert info.value.err == f"Channel with id {missing} not found for the passed counterparty node_id {bob.node_id}"


def test_close_channel_knows_no_request_not_yet_accepted_and_leaves_it_to_be_answered(stage):
    """LDK 0.1's ``close_channel`` looks only among channels; a request not yet accepted is kept apart
    (``inbound_channel_request_by_id``): ``ChannelUnavailable``, and the request is still there to accept."""
    bob, request = open_request(stage)
    cm = stage.me.channel_manager
    with pytest.raises(APIError.ChannelUnavailable) as info:
        cm.close_channel(request.temporary_channel_id, bob.node_id)
    assert info.value.err == (f"Channel with id {request.temporary_channel_id} not found for the passed counterparty "
                              f"node_id {bob.node_id}")
    cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 7)
    stage.world.run()
    assert [c.channel_id for c in cm.list_channels()] != []


def test_rejecting_a_request_raises_no_channel_closed_and_logs_who_and_why(stage):
    bob, request = open_request(stage)
    cm = stage.me.channel_manager
    cm.force_close_without_broadcasting_txn(request.temporary_channel_id, bob.node_id, "too small")
    stage.world.run()
    assert cm.list_channels() == []
    assert [type(e).__name__ for e in cm.pending_events()] == ["OpenChannelRequest"]
    expected = f"Rejected inbound channel request {request.temporary_channel_id} from {bob.node_id}: too small"
    assert any(line.endswith(expected) for line in stage.me.logger.lines())


def test_zero_conf_requests_need_the_trusted_method(stage):
    bob = stage.peer("bob")
    stage.world.connect(bob, stage.me)
    tcid = bob.channel_manager.create_channel(stage.me.node_id, 6_000_000, 0, 1, None, None)
    chan = bob.channel_manager.channels[tcid]
    chan.channel_type = chan.channel_type.with_zero_conf_required()
    peer, msg = bob.channel_manager.pending_msg_events[-1]
    bob.channel_manager.pending_msg_events[-1] = (peer, dataclasses.replace(msg, channel_type=chan.channel_type))
    stage.world.run()
    (request,) = stage.me.channel_manager.pending_events()
    with pytest.raises(APIError.APIMisuseError, match="Please use accept_inbound_channel_from_trusted_peer_0conf"):
        stage.me.channel_manager.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 1)


def test_an_unanswered_request_expires_after_two_ticks(stage):
    """``timer_tick_occurred``: a request not accepted within two ticks is dropped and its proposer told
    "Channel force-closed"; only that tick asks for the manager to be persisted."""
    bob, request = open_request(stage)
    cm = stage.me.channel_manager
    cm.get_and_clear_needs_persistence()
    cm.get_and_clear_pending_msg_events()
    cm.timer_tick_occurred()
    assert request.temporary_channel_id in cm.channels
    assert not cm.get_and_clear_needs_persistence() and cm.get_and_clear_pending_msg_events() == []
    cm.timer_tick_occurred()
    assert cm.get_and_clear_needs_persistence()
    assert cm.get_and_clear_pending_msg_events() == [
        (bob.node_id, msgs.ErrorMessage(request.temporary_channel_id, "Channel force-closed"))]
    tcid = request.temporary_channel_id
    logged = f"Force-closing unaccepted inbound channel {tcid} for not accepting in a timely manner"
    assert [(r.level.name, r.module_path) for r in stage.me.logger.records() if r.args == logged] == [
        ("Error", "ldkkit::ln::channelmanager")]  # LDK's words and level
    with pytest.raises(APIError.APIMisuseError, match="No such channel awaiting to be accepted."):
        cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 1)


@pytest.mark.parametrize(
    "args, message",
    [
        ((999, 0), "Channel value must be at least 1000 satoshis. It was 999"),
        ((21_000_000 * 100_000_000, 0), "funding_value must be smaller than the total bitcoin supply, it was"),
        ((100_000, 100_000_001), r"Push value \(100000001\) was larger than channel_value \(100000000\)"),
        # OutboundV1Channel::new (channel.rs:2276-2278): 253 sat/kW x (1124 + 4 x 172) / 1000 = 458 sat, beyond the
        # two anchors' 660; functional_tests.rs:1752 has the same words
        ((1117, 0), r"Funding amount \(1117\) can't even pay fee for initial commitment transaction fee of 458\."),
        ((100_000, 98_900_000), r"Funding amount \(1100\) can't even pay fee for initial commitment transaction fee"),
    ],
)
def test_create_channel_checks_its_arguments(stage, args, message):
    bob = stage.peer("bob")
    with pytest.raises(APIError.APIMisuseError, match=message):
        stage.me.channel_manager.create_channel(bob.node_id, *args, 1, None, None)
    assert not stage.me.channel_manager.list_channels()
    stage.me.channel_manager.create_channel(bob.node_id, 1118, 0, 1, None, None)  # (one sat more: affordable)


def test_create_channel_refuses_an_unreasonable_to_self_delay(stage):
    """LDK's OutboundV1Channel::new (channel.rs:2259-2261): under BREAKDOWN_TIMEOUT (144 blocks) the opener's own
    funds are at risk."""
    bob = stage.peer("bob")
    config = stage.me.config
    handshake = dataclasses.replace(config.channel_handshake_config, our_to_self_delay=143)
    with pytest.raises(APIError.APIMisuseError, match=r"Configured with an unreasonable our_to_self_delay \(143\) "
                                                      r"putting user funds at risks$"):
        stage.me.channel_manager.create_channel(bob.node_id, 100_000, 0, 1, None,
                                                dataclasses.replace(config, channel_handshake_config=handshake))
    assert not stage.me.channel_manager.list_channels()


def test_a_large_channel_is_proposed_to_an_ldk_peer_which_refuses_it_when_accepted(stage):
    """LDK's nodes support large channels (``provided_init_features`` sets wumbo), so ``create_channel`` of more than
    2^24 - 1 sats to one is proposed (channel.rs ``OutboundV1Channel::new`` checks wumbo only against a peer without
    it); the acceptor's default ``max_funding_satoshis`` refuses it as it is accepted (``InboundV1Channel::new``,
    channel.rs:1919-1922): ``ChannelUnavailable``, the request gone, the opener told why."""
    bob = stage.peer("bob")
    cm = stage.me.channel_manager
    bob.channel_manager.create_channel(stage.me.node_id, 20_000_000, 0, 1, None, None)
    stage.world.run()
    (request,) = [e for e in cm.pending_events() if isinstance(e, Event.OpenChannelRequest)]
    assert request.funding_satoshis == 20_000_000
    why = ("Per our config, funding must be at most 16777215. It was 20000000. Peer contribution: 20000000. "
           "Our contribution: 0")
    with pytest.raises(APIError.ChannelUnavailable, match=why):
        cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 1)
    assert (bob.node_id, msgs.ErrorMessage(request.temporary_channel_id, why)) in cm.get_and_clear_pending_msg_events()
    with pytest.raises(APIError.APIMisuseError, match="No such channel awaiting to be accepted."):
        cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 1)

def test_create_channel_needs_a_connected_peer(stage):
    bob = stage.peer("bob", connect=False)
    with pytest.raises(APIError.APIMisuseError, match=f"Not connected to node: {bob.node_id}"):
        stage.me.channel_manager.create_channel(bob.node_id, 100_000, 0, 1, None, None)


def funding_asked(stage):
    """We open a channel to bob; LDK asks us to fund it: (bob, the FundingGenerationReady, our wallet)."""
    bob = stage.peer("bob")
    stage.me.channel_manager.create_channel(bob.node_id, 100_000, 0, 1, None, None)
    stage.world.run()
    (ready,) = [e for e in stage.me.channel_manager.pending_events() if isinstance(e, Event.FundingGenerationReady)]
    return bob, ready, stage.me.bitcoind_client


def test_funding_with_the_wrong_output_is_refused_and_closes_the_channel(stage):
    bob, ready, client = funding_asked(stage)
    cm = stage.me.channel_manager
    address = str(client.get_new_address())
    raw = client.create_raw_transaction([{address: 0.001}])
    signed = client.sign_raw_transaction_with_wallet(client.fund_raw_transaction(raw).hex)
    wrong = Transaction(bytes.fromhex(signed.hex))
    with pytest.raises(APIError.APIMisuseError, match="No output matched the script_pubkey and value"):
        cm.funding_transaction_generated(ready.temporary_channel_id, bob.node_id, wrong)
    closed = cm.pending_events()[-1]
    assert isinstance(closed, Event.ChannelClosed)  # and no DiscardFunding: LDK never took the transaction
    assert closed.reason == ClosureReason.ProcessingError(
        "No output matched the script_pubkey and value in the FundingGenerationReady event")


@pytest.mark.parametrize("broadcast", [True, False])
def test_force_closing_a_channel_not_yet_funded_raises_channel_closed_and_tells_the_peer(stage, broadcast):
    """``force_close_sending_error`` on a channel whose funding was never generated: ``ChannelClosed`` with its
    temporary id and ``HolderForceClosed`` (``broadcasted_latest_txn`` as asked), no funding outpoint and no
    ``DiscardFunding``; the peer gets our message and closes its side with ``CounterpartyForceClosed``."""
    bob, ready, _ = funding_asked(stage)
    cm = stage.me.channel_manager
    close = cm.force_close_broadcasting_latest_txn if broadcast else cm.force_close_without_broadcasting_txn
    close(ready.temporary_channel_id, bob.node_id, "changed my mind")
    stage.settle()
    assert cm.pending_events()[1:] == [Event.ChannelClosed(
        channel_id=ready.temporary_channel_id, user_channel_id=1, reason=ClosureReason.HolderForceClosed(broadcast),
        counterparty_node_id=bob.node_id, channel_capacity_sats=100_000, channel_funding_txo=None,
        last_local_balance_msat=100_000_000)]  # the opener's, as LDK's value_to_self_msat
    assert [e.reason for e in bob.events_seen if isinstance(e, Event.ChannelClosed)] == [
        ClosureReason.CounterpartyForceClosed("changed my mind")]


def test_an_unsigned_funding_transaction_closes_the_channel_as_ldk_does(stage):
    bob, ready, client = funding_asked(stage)
    cm = stage.me.channel_manager
    address = str(Address.from_script(ready.output_script, stage.me.network))
    funded = client.fund_raw_transaction(client.create_raw_transaction([{address: 0.001}]))
    unsigned = Transaction(bytes.fromhex(funded.hex))
    with pytest.raises(APIError.APIMisuseError, match="must be fully signed"):
        cm.funding_transaction_generated(ready.temporary_channel_id, bob.node_id, unsigned)
    closed = cm.pending_events()[-1]
    assert closed.reason == ClosureReason.ProcessingError(
        "Error in transaction funding: Misuse error: Funding transaction must be fully signed and spend Segwit outputs")
    assert not any(isinstance(e, Event.DiscardFunding) for e in cm.pending_events())


def test_sending_twice_with_one_payment_id_and_without_a_route(stage):
    bob = stage.peer("bob")
    stage.me.event_handler = None
    stage.world.nodes["learner"].handle_ldk_events = None
    from ldkkit.reference import handle_ldk_events

    stage.me.event_handler = stage.me.bind(handle_ldk_events)
    stage.open(stage.me, bob, 1_000_000)
    invoice = stage.invoice(bob, 10_000_000)
    payment_hash, onion, params = payment_parameters_from_invoice(invoice)
    cm = stage.me.channel_manager
    cm.send_payment(payment_hash, onion, PaymentId(b"\x01" * 32), params, Retry.Attempts(1))
    with pytest.raises(RetryableSendFailure.DuplicatePayment):
        cm.send_payment(payment_hash, onion, PaymentId(b"\x01" * 32), params, Retry.Attempts(1))
    too_big = stage.invoice(bob, 2_000_000_000)
    payment_hash, onion, params = payment_parameters_from_invoice(too_big)
    with pytest.raises(RetryableSendFailure.RouteNotFound):
        cm.send_payment(payment_hash, onion, PaymentId(b"\x02" * 32), params, Retry.Attempts(1))


def test_replay_keeps_the_event_and_later_ones(stage):
    _, request = open_request(stage)
    cm = stage.me.channel_manager
    seen = []
    cm.process_pending_events(lambda e: seen.append(e) or ReplayEvent())
    cm.process_pending_events(lambda e: seen.append(e) or None)
    assert seen == [request, request]
    assert cm.pending_events() == []


def test_a_raising_handler_loses_nothing_and_names_the_event(stage):
    _, request = open_request(stage)
    cm = stage.me.channel_manager

    def broken(event):
        raise ValueError("oops in my handler")

    with pytest.raises(EventHandlerError, match="raised ValueError while handling Event.OpenChannelRequest") as info:
        cm.process_pending_events(broken)
    assert info.value.event == request and isinstance(info.value.__cause__, ValueError)
    assert cm.pending_events() == [request]


def test_processing_events_from_inside_the_handler_returns_at_once_as_in_ldk(stage):
    open_request(stage)
    cm = stage.me.channel_manager
    inner: list[Event] = []
    outer: list[Event] = []

    def handler(event):
        outer.append(event)
        cm.process_pending_events(inner.append)  # LDK's pending_events_processor flag: returns, nothing handed

    cm.process_pending_events(handler)
    assert inner == [] and [type(e).__name__ for e in outer] == ["OpenChannelRequest"]
    assert cm.pending_events() == []


def test_async_handlers_work_with_the_plain_method(stage):
    _, request = open_request(stage)
    seen = []

    async def handler(event):
        seen.append(event)

    stage.me.channel_manager.process_pending_events(handler)
    assert seen == [request]


def test_persistence_flag_and_future(stage):
    stage.me.persist = False  # the world would otherwise persist it, clearing the flag
    cm = stage.me.channel_manager
    cm.get_and_clear_needs_persistence()
    future = cm.get_event_or_persistence_needed_future()
    assert not future.is_complete()
    open_request(stage)
    assert future.is_complete()
    assert cm.get_and_clear_needs_persistence() is True
    assert cm.get_and_clear_needs_persistence() is False


def test_events_ldk_does_not_persist_are_gone_after_a_restart(stage):
    _, request = open_request(stage)
    cm = stage.me.channel_manager
    stage.me.fs_store.write("", "", "manager", cm.encode())
    new = stage.world.restart_node(stage.me, handler=quiet_handler)
    assert all(not isinstance(e, Event.OpenChannelRequest) for e in new.channel_manager.pending_events())


def test_an_invoice_for_a_negative_amount_is_refused():
    from ldkkit.sim.world import World

    with World(seed=0) as world:
        node = world.add_node("alice")
        with pytest.raises(TypeError, match="min_value_msat must be"):
            node.channel_manager.create_bolt11_invoice(-1000, "refund?", 3600)


def test_an_invoices_final_cltv_delta_is_three_blocks_more_than_asked_and_never_under_ldks_minimum():
    """LDK 0.1's create_bolt11_invoice: a delta given is written 3 longer, and one that is then under
    MIN_FINAL_CLTV_EXPIRY_DELTA (24) is refused with SignOrCreationError::CreationError."""
    import bolt11

    from ldkkit.errors import CreationError, SignOrCreationError

    with World(seed=0) as world:
        cm = world.add_node("alice").channel_manager
        assert [bolt11.decode(str(cm.create_bolt11_invoice(1_000, "x", 3600, delta))).min_final_cltv_expiry
                for delta in (None, 21, 40, 0xFFFF)] == [24, 24, 43, 0xFFFF]
        with pytest.raises(SignOrCreationError.CreationError) as refused:
            cm.create_bolt11_invoice(1_000, "x", 3600, 20)
        assert refused.value.err == CreationError.MinFinalCltvExpiryDeltaTooShort()
        assert str(refused.value) == ("The supplied final CLTV expiry delta was less than LDK's "
                                      "`MIN_FINAL_CLTV_EXPIRY_DELTA`")


def test_an_invoice_for_a_hash_you_give_is_paid_to_that_hash_and_ldk_knows_no_preimage():
    """create_bolt11_invoice(payment_hash=...): the invoice is for your hash, and LDK does not know its preimage."""
    import hashlib

    from ldkkit.types import PaymentPreimage

    with World(seed=7) as world:
        stage = Stage(world, world.add_node("alice"))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        preimage = PaymentPreimage(hashlib.sha256(b"mine").digest())
        invoice = stage.me.channel_manager.create_bolt11_invoice(50_000, "yours", 3600, None, preimage.payment_hash())
        assert invoice.payment_hash() == preimage.payment_hash()
        stage.pay(bob, invoice)
        claimable = [e for e in stage.me.events_seen if isinstance(e, Event.PaymentClaimable)]
        assert [(e.payment_hash, e.purpose.preimage()) for e in claimable] == [(preimage.payment_hash(), None)]


def test_list_channels_shows_each_htlc_in_flight_as_ldks_htlc_details():
    """ChannelDetails.pending_outbound_htlcs is LDK 0.1's Vec<OutboundHTLCDetails> (not a count): each HTLC's id,
    amount, expiry, hash, state, and whether it is dust on our commitment (under the 354-sat dust limit, with zero-fee
    anchors); the counterparty's side shows it as an InboundHTLCDetails."""
    from ldkkit.ln.channel_state import InboundHTLCStateDetails, OutboundHTLCStateDetails
    from ldkkit.scenarios import vanish_when_paid
    from ldkkit.ser import decode, encode

    with World(seed=5) as world:
        stage = Stage(world, world.add_node("alice"))
        carol = stage.peer("carol", handler=vanish_when_paid)
        stage.open(stage.me, carol, 6_000_000)
        hashes = []
        for amount_msat in (1_000_000, 100_000):
            payment_hash, onion, params = payment_parameters_from_invoice(stage.invoice(carol, amount_msat))
            stage.me.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params,
                                                  Retry.Attempts(0))
            hashes.append(payment_hash)
        [mine] = stage.me.channel_manager.list_channels()
        assert mine.pending_inbound_htlcs == ()
        assert [(h.htlc_id, h.amount_msat, h.payment_hash, h.state, h.skimmed_fee_msat, h.is_dust)
                for h in mine.pending_outbound_htlcs] == [
            (0, 1_000_000, hashes[0], OutboundHTLCStateDetails.Committed, None, False),
            (1, 100_000, hashes[1], OutboundHTLCStateDetails.Committed, None, True)]
        assert decode(encode(mine)) == mine
        stage.settle(5)  # (carol never claims: the HTLCs stay in flight)
        [theirs] = carol.channel_manager.list_channels()
        assert [(h.htlc_id, h.amount_msat, h.payment_hash, h.state, h.is_dust)
                for h in theirs.pending_inbound_htlcs] == [
            (0, 1_000_000, hashes[0], InboundHTLCStateDetails.Committed, False),
            (1, 100_000, hashes[1], InboundHTLCStateDetails.Committed, True)]


def test_a_channels_inbound_scid_alias_is_the_one_its_counterparty_gave_it():
    """ChannelDetails.inbound_scid_alias: the alias in the counterparty's channel_ready (its outbound_scid_alias),
    None until that message comes."""
    with World(seed=5) as world:
        stage = Stage(world, world.add_node("alice"))
        carol = stage.peer("carol")
        stage.open(stage.me, carol, 6_000_000, confirm=False)
        assert [c.inbound_scid_alias for c in stage.me.channel_manager.list_channels()] == [None]
        stage.mine(6)
        [mine], [theirs] = stage.me.channel_manager.list_channels(), carol.channel_manager.list_channels()
        assert mine.inbound_scid_alias == theirs.outbound_scid_alias is not None
        assert theirs.inbound_scid_alias == mine.outbound_scid_alias is not None
        assert mine.inbound_scid_alias != mine.outbound_scid_alias


def test_the_largest_htlc_each_side_may_offer_leaves_both_reserves_and_respects_the_in_flight_limit():
    """LDK's get_htlc_maximum_msat: min((value - both reserves) x 1000, the receiver's max_htlc_value_in_flight_msat).
    Alice lets 10% of the channel be in flight towards her; carol (100%) is bound by the two 1% reserves. What one side
    may offer (counterparty.outbound_htlc_maximum_msat) is what the other accepts (inbound_htlc_maximum_msat)."""
    with World(seed=5) as world:
        stage = Stage(world, world.add_node("alice"))
        carol = stage.peer("carol")
        stage.open(stage.me, carol, 6_000_000)
        [mine], [theirs] = stage.me.channel_manager.list_channels(), carol.channel_manager.list_channels()
        assert (mine.inbound_htlc_maximum_msat, theirs.inbound_htlc_maximum_msat) == (600_000_000, 5_880_000_000)
        assert mine.counterparty.outbound_htlc_maximum_msat == theirs.inbound_htlc_maximum_msat
        assert theirs.counterparty.outbound_htlc_maximum_msat == mine.inbound_htlc_maximum_msat


def test_a_request_whose_peer_went_away_is_logged_not_wedging_the_node():
    """ldk-sample logs a refused accept and goes on; raising would replay the stale request forever."""
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World

    with World(seed=3) as world:
        me = world.add_node("learner")
        stage = Stage(world, me)
        bob = stage.peer("bob")
        me.driven_by_world = False  # briefly down
        bob.channel_manager.create_channel(me.node_id, 6_000_000, 0, 1, None, None)
        world.run()
        world.disconnect(bob, me)
        me.driven_by_world = True
        world.advance(120)  # the request is handed over; accepting it fails: the peer is gone
        assert "Failed to answer inbound channel" in "\n".join(line for line in me.logger.lines())
        world.connect(bob, me)
        stage.open(bob, me, 6_000_000)  # the node still works
        assert any(c.is_channel_ready for c in me.channel_manager.list_channels())


def test_ldks_htlc_buffers():
    from ldkkit.invoice import MIN_FINAL_CLTV_EXPIRY_DELTA
    from ldkkit.ln import channelmanager as cm

    assert (cm.CLTV_CLAIM_BUFFER, cm.LATENCY_GRACE_PERIOD_BLOCKS, cm.HTLC_FAIL_BACK_BUFFER) == (18, 3, 21)
    assert MIN_FINAL_CLTV_EXPIRY_DELTA == 24


def test_an_unfunded_channel_times_out_as_a_holder_force_close():
    """LDK's timer closes a channel never funded within 60 ticks: HolderForceClosed, nothing broadcast."""
    from ldkkit.events import ClosureReason
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World

    with World(seed=5) as world:
        me = world.add_node("learner", handler=lambda *args: None)  # never funds its channel
        bob = Stage(world, me).peer("bob")
        me.channel_manager.create_channel(bob.node_id, 1_000_000, 0, 7, None, None)
        world.advance(61 * 60)
        closed = [e for e in me.events_seen if isinstance(e, Event.ChannelClosed)]
        assert [e.reason for e in closed] == [ClosureReason.HolderForceClosed(False)]


def test_a_channel_left_unfunded_tells_its_peer_why_on_the_sixtieth_tick(stage):
    """``timer_tick_occurred``: on the 60th tick without funding, the peer is sent LDK's error for it."""
    bob, ready, _ = funding_asked(stage)
    cm = stage.me.channel_manager
    cm.get_and_clear_pending_msg_events()
    for _ in range(59):
        cm.timer_tick_occurred()
    assert cm.get_and_clear_pending_msg_events() == []
    cm.timer_tick_occurred()
    assert cm.get_and_clear_pending_msg_events() == [(bob.node_id, msgs.ErrorMessage(
        ready.temporary_channel_id, "Force-closing pending channel due to timeout awaiting establishment handshake"))]


def test_an_outbound_htlc_is_force_closed_three_blocks_after_it_expires():
    """ChannelMonitor: cltv_expiry + LATENCY_GRACE_PERIOD_BLOCKS <= height, not before."""
    from ldkkit.scenarios import Stage, vanish_when_paid
    from ldkkit.sim.world import World

    with World(seed=6) as world:
        me = world.add_node("learner")
        stage = Stage(world, me)
        alice, carol = stage.peer("alice"), stage.peer("carol", handler=vanish_when_paid)
        stage.open(alice, me, 6_000_000)
        stage.open(carol, me, 6_000_000, push_msat=3_000_000_000)
        stage.pay(alice, stage.invoice(carol, 100_000_000))
        channel = next(c for c in me.channel_manager.channels.values() if c.counterparty_node_id == carol.node_id)
        (htlc,) = channel.pending_outbound_htlcs.values()
        stage.mine(htlc.cltv_expiry + 2 - world.chain.height())
        assert not any(isinstance(e, Event.ChannelClosed) for e in me.events_seen)
        stage.mine(1)
        assert any(isinstance(e, Event.ChannelClosed) for e in me.events_seen)


def test_a_payment_id_is_refused_again_until_ldks_idempotency_ticks_have_passed():
    """LDK keeps a fulfilled payment IDEMPOTENCY_TIMEOUT_TICKS (7) ticks: a repeat send is a DuplicatePayment."""
    from ldkkit.errors import RetryableSendFailure
    from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice
    from ldkkit.ln.outbound_payment import Retry
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World
    from ldkkit.types import PaymentId

    with World(seed=7) as world:
        me = world.add_node("learner")
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(me, bob, 1_000_000)
        invoice = stage.invoice(bob, 10_000_000)
        payment_id = stage.pay(me, invoice)
        assert any(isinstance(e, Event.PaymentSent) for e in me.events_seen)
        payment_hash, onion, params = payment_parameters_from_invoice(invoice)

        def again() -> None:
            me.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_id)), params,
                                            Retry.Attempts(0))

        for _ in range(7):  # seven ticks: still remembered
            with pytest.raises(RetryableSendFailure.DuplicatePayment):
                again()
            world.advance(60)
        world.advance(60)  # the eighth tick forgets it
        again()
        stage.settle()
        failed = [e for e in me.events_seen if isinstance(e, Event.PaymentFailed)]
        assert [e.payment_id for e in failed] == [payment_id]  # bob refuses a second payment of one invoice


def test_probing_a_one_hop_path_is_refused_as_in_ldk():
    from ldkkit.errors import ProbeSendFailure
    from ldkkit.routing.router import Path, RouteHop

    with World(seed=7) as world:
        stage = Stage(world, world.add_node("learner"))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        scid = stage.me.channel_manager.list_usable_channels()[0].short_channel_id
        one_hop = Path((RouteHop(bob.node_id, b"", scid, b"", 10_000, 42, True),), None)
        with pytest.raises(ProbeSendFailure.ParameterError) as info:
            stage.me.channel_manager.send_probe(one_hop)
        assert info.value.err == APIError.APIMisuseError("No need probing a path with less than two hops")


def test_a_request_not_yet_accepted_is_not_listed_as_a_channel(stage):
    _bob, request = open_request(stage)
    cm = stage.me.channel_manager
    assert cm.list_channels() == []  # LDK keeps it in inbound_channel_request_by_id, apart from channels
    cm.accept_inbound_channel(request.temporary_channel_id, request.counterparty_node_id, 1)
    assert [c.channel_id for c in cm.list_channels()] == [request.temporary_channel_id]


def test_the_reference_handler_connects_when_ldk_needs_a_connection():
    """ldk-sample's ConnectionNeeded arm connects to the peer, in a task."""
    from ldkkit.ln.msgs import SocketAddress

    with World(seed=8) as world:
        me = world.add_node("learner")
        bob = world.add_node("bob")
        assert me.peer_manager.peer_by_node_id(bob.node_id) is None
        address = SocketAddress.TcpIpV4(bytes([127, 0, 0, 1]), 9735)
        me.channel_manager._queue_event(Event.ConnectionNeeded(bob.node_id, (address,)))
        world.advance(1)
        assert me.peer_manager.peer_by_node_id(bob.node_id) is not None


def test_a_released_intercepted_htlc_goes_out_on_the_next_processing():
    """LDK's forward_intercepted_htlc queues the HTLC: it is sent when process_pending_htlc_forwards runs."""
    with World(seed=12) as world:
        me, intercepts = intercepting_lsp(world)
        stage = Stage(world, me)
        alice, carol, fake_scid, invoice = pay_through_an_intercept_scid(stage)
        (intercepted,) = intercepts
        to_carol = stage.channel_between(me, carol)
        cm = me.channel_manager
        cm.forward_intercepted_htlc(intercepted.intercept_id, to_carol.channel_id, carol.node_id, 10_000_000)
        assert not cm.channels[to_carol.channel_id].pending_outbound_htlcs  # queued, not sent yet
        assert any(isinstance(e, Event.PendingHTLCsForwardable) for e in cm.pending_events())
        stage.settle()
        assert any(isinstance(e, Event.PaymentSent) for e in alice.events_seen)



def intercepting_lsp(world, accept: bool = True):
    """A learner node that takes intercepts if ``accept``, noting each ``HTLCIntercepted`` and answering nothing, and
    runs ldk-sample's handler for the rest. Returns (the node, its intercepts)."""
    from ldkkit.config import UserConfig
    from ldkkit.reference import handle_ldk_events

    intercepts: list[Event.HTLCIntercepted] = []

    async def lsp(*args):
        if isinstance(args[-1], Event.HTLCIntercepted):
            intercepts.append(args[-1])
            return None
        return await handle_ldk_events(*args)

    config = dataclasses.replace(UserConfig.ldk_sample(), accept_intercept_htlcs=accept)
    return world.add_node("learner", handler=lsp, config=config), intercepts


@pytest.mark.parametrize("accepts", [True, False])
def test_an_intercepted_htlc_forwarded_for_less_skims_a_fee_the_recipient_may_accept(accepts):
    """LDK's ``forward_intercepted_htlc`` with less than ``expected_outbound_amount_msat``: the outbound HTLC carries
    the difference as ``skimmed_fee_msat`` (channelmanager.rs ``forward_intercepted_htlc``), ``PaymentForwarded``
    reports it, within ``total_fee_earned_msat`` (``claim_funds_internal``). The recipient takes it only with
    ``ChannelConfig.accept_underpaying_htlcs``, its ``PaymentClaimable.counterparty_skimmed_fee_msat`` saying how
    much; otherwise it fails the HTLC back with ``final_incorrect_htlc_amount`` (19: onion_payment.rs
    ``create_recv_pending_htlc_info``)."""
    from ldkkit.ln.outbound_payment import OutboundPayments

    with World(seed=12) as world:
        me, intercepts = intercepting_lsp(world)
        alice, carol, _, invoice = pay_through_an_intercept_scid(Stage(world, me))
        stage = Stage(world, me)
        if accepts:
            config = carol.channel_manager.config
            carol.channel_manager.config = dataclasses.replace(
                config, channel_config=dataclasses.replace(config.channel_config, accept_underpaying_htlcs=True))
        codes: list[int] = []
        fail_htlc = OutboundPayments.fail_htlc

        def noted(self, route, payment_hash, reason):
            codes.append(reason.failure_code)
            return fail_htlc(self, route, payment_hash, reason)

        (intercepted,) = intercepts
        assert intercepted.expected_outbound_amount_msat == 10_000_000
        to_carol = stage.channel_between(me, carol)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(OutboundPayments, "fail_htlc", noted)
            me.channel_manager.forward_intercepted_htlc(
                intercepted.intercept_id, to_carol.channel_id, carol.node_id, 9_900_000)
            stage.settle()
        forwarded = [e for e in me.events_seen if isinstance(e, Event.PaymentForwarded)]
        claimable = [e for e in carol.events_seen if isinstance(e, Event.PaymentClaimable)]
        if not accepts:
            assert codes == [19] and not forwarded and not claimable
            # (failed as it arrived: no event at carol; the LSP, whose forward failed downstream, raises one)
            assert not any(isinstance(e, Event.HTLCHandlingFailed) for e in carol.events_seen)
            assert any(isinstance(e, Event.HTLCHandlingFailed) for e in me.events_seen)
            return
        (forwarded,), (claimable,) = forwarded, claimable
        assert forwarded.skimmed_fee_msat == 100_000
        assert forwarded.total_fee_earned_msat == 10_001_000 - 9_900_000
        assert forwarded.outbound_amount_forwarded_msat == 9_900_000
        assert (claimable.amount_msat, claimable.counterparty_skimmed_fee_msat) == (9_900_000, 100_000)
        (claimed,) = [e for e in carol.events_seen if isinstance(e, Event.PaymentClaimed)]
        assert [h.counterparty_skimmed_fee_msat for h in claimed.htlcs] == [100_000]
        assert any(isinstance(e, Event.PaymentSent) for e in alice.events_seen)


def test_an_intercepted_htlc_forwarded_in_full_skims_nothing():
    """``skimmed_fee_msat`` is None, not Some(0), when the whole expected amount is forwarded."""
    with World(seed=12) as world:
        me, intercepts = intercepting_lsp(world)
        stage = Stage(world, me)
        _, carol, _, _ = pay_through_an_intercept_scid(stage)
        (intercepted,) = intercepts
        to_carol = stage.channel_between(me, carol)
        me.channel_manager.forward_intercepted_htlc(intercepted.intercept_id, to_carol.channel_id, carol.node_id,
                                                    intercepted.expected_outbound_amount_msat)
        stage.settle()
        (forwarded,) = [e for e in me.events_seen if isinstance(e, Event.PaymentForwarded)]
        (claimable,) = [e for e in carol.events_seen if isinstance(e, Event.PaymentClaimable)]
        assert forwarded.skimmed_fee_msat is None and forwarded.total_fee_earned_msat == 1_000
        assert claimable.counterparty_skimmed_fee_msat == 0


def test_an_intercepted_htlc_not_forwarded_in_time_is_failed_back():
    """LDK's ``best_block_updated`` (channelmanager.rs:11538-11564): an intercepted HTLC still held
    ``HTLC_FAIL_BACK_BUFFER`` blocks before its outgoing expiry is failed back (temporary_node_failure,
    ``HTLCHandlingFailed`` with ``InvalidForward`` naming the intercept scid); forwarding it then is an
    ``APIMisuseError`` ("Errors if the event was not handled in time"). The kit held it for ever."""
    from ldkkit.chain.chainmonitor import HTLC_FAIL_BACK_BUFFER

    with World(seed=12) as world:
        me, intercepts = intercepting_lsp(world)
        stage = Stage(world, me)
        alice, carol, fake_scid, _ = pay_through_an_intercept_scid(stage)
        (intercepted,) = intercepts
        cm = me.channel_manager
        (htlc,) = [h for c in cm.channels.values() for h in c.pending_inbound_htlcs.values()]
        expiry = htlc.onion.hops[0].outgoing_cltv_value
        stage.mine(expiry - HTLC_FAIL_BACK_BUFFER - cm.best_block_height - 1)
        assert not any(isinstance(e, Event.HTLCHandlingFailed) for e in me.events_seen)
        stage.mine(1)
        stage.settle()
        assert [e.failed_next_destination for e in me.events_seen if isinstance(e, Event.HTLCHandlingFailed)] == [
            HTLCDestination.InvalidForward(fake_scid)]
        assert any(isinstance(e, Event.PaymentFailed) for e in alice.events_seen)
        to_carol = stage.channel_between(me, carol)
        with pytest.raises(APIError.APIMisuseError, match="Payment with intercept id .* not found"):
            cm.forward_intercepted_htlc(intercepted.intercept_id, to_carol.channel_id, carol.node_id, 10_000_000)

def pay_through_an_intercept_scid(stage):
    """alice pays carol 10,000,000 msat through the learner node, to a fake scid it gave out for intercepts
    (channels alice→me 6,000,000 and me→carol 1,000,000 sats; the HTLC expires 144 blocks on, so blocks mined
    meanwhile do not time the intercept out); settled. Returns (alice, carol, fake_scid, invoice)."""
    from ldkkit.ln.outbound_payment import RecipientOnionFields
    from ldkkit.routing.router import Path, Route, RouteHop
    from ldkkit.types import PaymentId

    me = stage.me
    alice, carol = stage.peer("alice"), stage.peer("carol")
    stage.open(alice, me, 6_000_000)
    stage.open(me, carol, 1_000_000)
    fake_scid = me.channel_manager.get_intercept_scid()
    invoice = stage.invoice(carol, 10_000_000)
    first = alice.channel_manager.list_usable_channels()[0].short_channel_id
    path = Path((RouteHop(me.node_id, b"", first, b"", 1_000, 72, True),
             RouteHop(carol.node_id, b"", fake_scid, b"", 10_000_000, 144, True)), None)
    alice.channel_manager.send_payment_with_route(
        Route((path,), None), invoice.payment_hash(),
        RecipientOnionFields.secret_only(invoice.payment_secret()), PaymentId(b"\x07" * 32))
    stage.settle()
    return alice, carol, fake_scid, invoice


def test_channel_ready_waits_for_the_peers_channel_ready_too():
    """``channel_ready`` both ways makes a channel usable: ours, sent once the funding is deep enough, is not
    enough while the peer's has not arrived (here the peer is offline): no ``ChannelReady``, nothing usable."""
    from ldkkit.reference import handle_ldk_events

    with World(seed=9) as world:
        stage = Stage(world, world.add_node("learner", handler=handle_ldk_events))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000, confirm=False)
        world.disconnect(bob, stage.me)
        stage.mine(6)
        cm = stage.me.channel_manager
        (chan,) = cm.channels.values()
        assert chan.sent_channel_ready and not chan.received_channel_ready
        assert not any(isinstance(e, Event.ChannelReady) for e in cm.pending_events() + stage.me.events_seen)
        assert cm.list_usable_channels() == [] and not cm.list_channels()[0].is_channel_ready


def _request_from(stage, peer):
    """``peer`` proposes a channel to the learner; returns the learner's OpenChannelRequest for it."""
    peer.channel_manager.create_channel(stage.me.node_id, 1_000_000, 0, 1, None, None)
    stage.world.run()
    return [e for e in stage.me.channel_manager.pending_events() if isinstance(e, Event.OpenChannelRequest)
            and e.counterparty_node_id == peer.node_id][-1]


def _answering_requests_myself(world):
    """A learner running ldk-sample's handler, with ``holding`` to leave the next OpenChannelRequests to the test.
    Returns (stage, holding)."""
    from ldkkit.reference import ldk_sample_handle_ldk_events

    holding: list[bool] = []

    async def handler(*args):
        if holding and isinstance(args[-1], Event.OpenChannelRequest):
            return ReplayEvent()
        return await ldk_sample_handle_ldk_events(*args)

    return Stage(world, world.add_node("learner", handler=handler)), holding


def test_a_request_cannot_be_accepted_while_too_many_peers_have_only_unfunded_channels(monkeypatch):
    """``do_accept_inbound_channel``: accepting a request from a peer without a funded channel fails once more than
    ``MAX_UNFUNDED_CHANNEL_PEERS`` peers (this one counted) would have only unfunded inbound channels
    (``APIMisuseError``; the peer is told why); a peer whose channel is funded is accepted still."""
    from ldkkit.ln import channel_establishment

    with World(seed=16) as world:
        stage, holding = _answering_requests_myself(world)
        cm = stage.me.channel_manager
        carol, bob, dave, erin = (stage.peer(name) for name in ("carol", "bob", "dave", "erin"))
        stage.open(carol, stage.me, 1_000_000)  # funded and confirmed
        stage.open(bob, stage.me, 1_000_000, confirm=False)  # funded, not confirmed: only unfunded channels
        stage.open(dave, stage.me, 1_000_000, confirm=False)
        holding.append(True)
        monkeypatch.setattr(channel_establishment, "MAX_UNFUNDED_CHANNEL_PEERS", 1)
        cm.accept_inbound_channel(_request_from(stage, carol).temporary_channel_id, carol.node_id, 2)
        request = _request_from(stage, erin)
        cm.get_and_clear_pending_msg_events()
        with pytest.raises(APIError.APIMisuseError) as refused:
            cm.accept_inbound_channel(request.temporary_channel_id, erin.node_id, 3)
        sent = cm.get_and_clear_pending_msg_events()
        carols = [c.counterparty.node_id for c in cm.list_channels()].count(carol.node_id)
    assert refused.value.err == "Too many peers with unfunded channels, refusing to accept new ones"
    assert sent == [(erin.node_id, msgs.ErrorMessage(
        request.temporary_channel_id, "Have too many peers with unfunded channels, not accepting new ones"))]
    assert carols == 2


def test_our_own_proposals_and_zero_conf_channels_do_not_count_as_unfunded_peers(monkeypatch):
    """``unfunded_channel_count`` counts inbound channels that are not zero-conf, until their funding confirms:
    with bob and dave unfunded, frank's channel ours and george's zero-conf, erin makes three of a limit of three
    and is accepted."""
    from ldkkit.ln import channel_establishment

    with World(seed=18) as world:
        stage, holding = _answering_requests_myself(world)
        cm = stage.me.channel_manager
        bob, dave, erin, frank, george = (stage.peer(n) for n in ("bob", "dave", "erin", "frank", "george"))
        stage.open(bob, stage.me, 1_000_000, confirm=False)
        stage.open(dave, stage.me, 1_000_000, confirm=False)
        stage.open(stage.me, frank, 1_000_000, confirm=False)
        holding.append(True)
        stage.open(george, stage.me, 1_000_000, confirm=False, zero_conf=True)
        request = [e for e in cm.pending_events() if isinstance(e, Event.OpenChannelRequest)][-1]
        cm.accept_inbound_channel_from_trusted_peer_0conf(request.temporary_channel_id, george.node_id, 4)
        world.run()
        monkeypatch.setattr(channel_establishment, "MAX_UNFUNDED_CHANNEL_PEERS", 3)
        cm.accept_inbound_channel(_request_from(stage, erin).temporary_channel_id, erin.node_id, 5)
        peers = sorted(bytes(c.counterparty.node_id) for c in cm.list_channels())
    assert peers == sorted(bytes(p.node_id) for p in (bob, dave, frank, george, erin))


def test_accepting_at_once_a_new_peers_open_channel_is_refused_while_too_many_peers_have_only_unfunded_ones(
        monkeypatch):
    """``internal_open_channel`` without ``manually_accept_inbound_channels``: a peer with no channel yet is refused
    (an error, no channel) once ``MAX_UNFUNDED_CHANNEL_PEERS`` peers have only unfunded channels; a peer with one
    may propose another."""
    from ldkkit.config import UserConfig
    from ldkkit.ln import channel_establishment

    monkeypatch.setattr(channel_establishment, "MAX_UNFUNDED_CHANNEL_PEERS", 1)
    config = dataclasses.replace(UserConfig.ldk_sample(), manually_accept_inbound_channels=False)
    with World(seed=17) as world:
        stage = Stage(world, world.add_node("learner", handler=quiet_handler, config=config))
        cm = stage.me.channel_manager
        bob, carol = stage.peer("bob"), stage.peer("carol")
        for peer in (bob, bob, carol):
            peer.channel_manager.create_channel(stage.me.node_id, 1_000_000, 0, 1, None, None)
            (_, open_channel), = peer.channel_manager.get_and_clear_pending_msg_events()
            cm.handle_open_channel(peer.node_id, open_channel)
        sent = cm.get_and_clear_pending_msg_events()
    assert [type(m).__name__ for _, m in sent] == ["AcceptChannel", "AcceptChannel", "ErrorMessage"]
    # accepted at once, not as zero-conf: the configured depth is asked for
    assert [m.minimum_depth for _, m in sent[:2]] == [config.channel_handshake_config.minimum_depth] * 2
    assert sent[-1] == (carol.node_id, msgs.ErrorMessage(
        open_channel.temporary_channel_id, "Have too many peers with unfunded channels, not accepting new ones"))
    assert [c.counterparty_node_id for c in cm.channels.values()] == [bob.node_id, bob.node_id]
    # each accepted at once with a user_channel_id of its own, 16 random bytes (a u128)
    user_ids = [c.user_channel_id for c in cm.channels.values()]
    assert all(isinstance(u, int) and 0 < u < 1 << 128 for u in user_ids) and len(set(user_ids)) == 2


def test_an_outbound_channel_expires_sixty_ticks_after_it_was_proposed_however_long_the_accept_took(stage):
    """``UnfundedChannelContext::unfunded_channel_age_ticks`` counts from ``create_channel``: ticks spent waiting
    for ``accept_channel`` count toward the 60."""
    bob = stage.peer("bob")
    cm = stage.me.channel_manager
    tcid = cm.create_channel(bob.node_id, 100_000, 0, 1, None, None)
    for _ in range(30):
        cm.timer_tick_occurred()
    stage.world.run()  # bob accepts only now
    for _ in range(29):
        cm.timer_tick_occurred()
    assert tcid in cm.channels
    cm.timer_tick_occurred()
    assert tcid not in cm.channels
    closed = [e for e in cm.pending_events() if isinstance(e, Event.ChannelClosed)]
    assert [(e.channel_id, e.reason) for e in closed] == [(tcid, ClosureReason.HolderForceClosed(False))]


def test_a_peers_error_after_accepting_our_proposal_closes_it_without_proposing_again(stage):
    """``maybe_downgrade_channel_features`` only while our ``open_channel`` awaits its answer: once the peer
    accepted, its error closes the channel (``CounterpartyForceClosed``) and no new ``open_channel`` is sent."""
    bob, ready, _ = funding_asked(stage)
    cm = stage.me.channel_manager
    cm.get_and_clear_pending_msg_events()
    cm.handle_error(bob.node_id, msgs.ErrorMessage(ready.temporary_channel_id, "no thanks"))
    assert cm.get_and_clear_pending_msg_events() == []
    closed = [e for e in cm.pending_events() if isinstance(e, Event.ChannelClosed)]
    assert [e.reason for e in closed] == [ClosureReason.CounterpartyForceClosed("no thanks")]


def test_a_second_accept_channel_for_our_proposal_is_ignored(stage):
    """``internal_accept_channel`` acts only on a proposal awaiting its answer: ``FundingGenerationReady`` once."""
    bob = stage.peer("bob")
    cm = stage.me.channel_manager
    tcid = cm.create_channel(bob.node_id, 100_000, 0, 1, None, None)
    (_, open_channel), = cm.get_and_clear_pending_msg_events()
    bob.channel_manager.handle_open_channel(stage.me.node_id, open_channel)
    (request,) = bob.channel_manager.pending_events()
    bob.channel_manager.accept_inbound_channel(request.temporary_channel_id, stage.me.node_id, 1)
    (_, accept), = bob.channel_manager.get_and_clear_pending_msg_events()
    cm.handle_accept_channel(bob.node_id, accept)
    cm.handle_accept_channel(bob.node_id, accept)
    ready = [e for e in cm.pending_events() if isinstance(e, Event.FundingGenerationReady)]
    assert [e.temporary_channel_id for e in ready] == [tcid]


def test_every_block_asks_for_persisting_and_wakes_the_processor_once_it_is_handled():
    """LDK's ``transactions_confirmed`` and ``best_block_updated`` return ``NotifyOption::DoPersist``, and the
    ChainMonitor's ``filtered_block_connected`` wakes the processor too, whatever the block held: both futures
    complete for a block with nothing in it for the node. The manager notifies once the block is handled."""
    world = World(seed=7)
    try:
        node = world.add_node("quiet", persist=False)  # (the world persists nothing for it: the flag stays)
        cm, monitor = node.channel_manager, node.chain_monitor
        cm.get_and_clear_needs_persistence()
        manager_woken, monitor_woken = cm.get_event_or_persistence_needed_future(), monitor.get_update_future()
        heights: list[int] = []
        manager_woken.register_callback_fn(lambda: heights.append(cm.best_block_height))
        assert not manager_woken.is_complete() and not monitor_woken.is_complete()
        world.mine(1)
        assert manager_woken.is_complete() and monitor_woken.is_complete()
        assert heights == [world.chain.height()]  # woken with the block in place, not before it
        assert cm.get_and_clear_needs_persistence()
    finally:
        world.close()


def test_a_payment_made_again_while_the_first_is_claimable_is_failed_back_as_ldk_does():
    """LDK's check_total_value: "Failing HTLC ... as payment is already claimable". The first payment stays
    claimable (it was once replaced by the second, its HTLC left on the channel with nothing to claim it)."""
    from ldkkit import reference

    seen = []

    def holds_claims(*args):
        event = args[-1]
        seen.append(type(event).__name__)
        if isinstance(event, Event.PaymentClaimable):
            return None  # claimed later, below
        return reference.handle_ldk_events(*args)

    with World(seed=1) as world:
        me = world.add_node("me", handler=holds_claims)
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(bob, me, 6_000_000)
        invoice = stage.invoice(me, 30_000_000)
        stage.pay(bob, invoice)
        stage.pay(bob, invoice, payment_id=PaymentId(b"\x02" * 32))
        assert seen.count("PaymentClaimable") == 1 and "HTLCHandlingFailed" in seen
        me.channel_manager.claim_funds(next(iter(me.channel_manager.claimable.values())).purpose.preimage())
        stage.settle()
        sent = [e for e in bob.events_seen if isinstance(e, (Event.PaymentSent, Event.PaymentFailed))]
        assert [type(e).__name__ for e in sent] == ["PaymentFailed", "PaymentSent"]


def test_funding_an_inbound_channel_is_refused_in_ldks_words(stage):
    bob, request = open_request(stage)
    cm = stage.me.channel_manager
    cm.accept_inbound_channel(request.temporary_channel_id, bob.node_id, 1)
    with pytest.raises(APIError.APIMisuseError) as info:
        cm.funding_transaction_generated(request.temporary_channel_id, bob.node_id, Transaction.new(2, 0, [], []))
    assert info.value.err == (f"Channel with id {request.temporary_channel_id} for the passed counterparty node_id "
                              f"{bob.node_id} is not an unfunded, outbound V1 channel")


def test_closing_a_channel_while_the_peer_is_away_is_refused_in_ldks_words():
    with World(seed=3) as world:
        stage = Stage(world, world.add_node("me"))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        cm, chan = stage.me.channel_manager, stage.channel_between(stage.me, bob)
        world.disconnect(stage.me, bob)
        with pytest.raises(APIError.ChannelUnavailable) as info:
            cm.close_channel(chan.channel_id, bob.node_id)
    assert info.value.err == ("Cannot begin shutdown while peer is disconnected or we're waiting on a monitor "
                              "update, maybe force-close instead?")


def test_fail_htlc_backwards_with_reason_fails_the_payment_back_with_ldks_failure_codes():
    from ldkkit import reference
    from ldkkit.ln.channelmanager import FailureCode

    assert [c.code() for c in (FailureCode.TemporaryNodeFailure(), FailureCode.RequiredNodeFeatureMissing(),
                               FailureCode.IncorrectOrUnknownPaymentDetails(), FailureCode.InvalidOnionPayload(None))
            ] == [0x2000 | 2, 0x4000 | 0x2000 | 3, 0x4000 | 15, 0x4000 | 22]  # LDK's Into<u16> for FailureCode

    def refuses(*args):
        if isinstance(args[-1], Event.PaymentClaimable):
            args[0].fail_htlc_backwards_with_reason(args[-1].payment_hash, FailureCode.TemporaryNodeFailure())
            return None
        return reference.handle_ldk_events(*args)

    with World(seed=1) as world:
        me = world.add_node("me", handler=refuses)
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(bob, me, 6_000_000)
        stage.pay(bob, stage.invoice(me, 30_000_000))
        assert any(isinstance(e, Event.HTLCHandlingFailed) for e in me.events_seen)
        assert any(isinstance(e, Event.PaymentFailed) for e in bob.events_seen)
        with pytest.raises(TypeError, match="must be a FailureCode"):
            me.channel_manager.fail_htlc_backwards_with_reason(PaymentHash(b"\1" * 32), 0x2002)


def test_current_best_block_is_ldks_best_block_of_the_manager_and_of_the_sweeper():
    from ldkkit.chain import BestBlock
    from ldkkit.types import BlockHash

    with World(seed=1) as world:
        node = world.add_node("me")
        world.mine(3)
        tip = world.chain.blocks[-1]
        expected = BestBlock(BlockHash(tip.block_hash), tip.height)
        assert node.channel_manager.current_best_block() == expected == node.output_sweeper.current_best_block()


def test_closing_a_channel_the_peer_is_closing_is_a_misuse_as_in_ldk():
    """LDK's Channel::shutdown answers the peer's shutdown with ours at once (LOCAL_SHUTDOWN_SENT), so
    get_shutdown's first check meets it: APIMisuseError 'Shutdown already in progress', whoever began."""
    with World(seed=3) as world:
        stage = Stage(world, world.add_node("me"))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 1_000_000)  # bob opened it: bob proposes the closing fee, so it stays closing
        cm, chan = stage.me.channel_manager, stage.channel_between(stage.me, bob)
        cm.handle_shutdown(bob.node_id, msgs.Shutdown(chan.channel_id, bob.keys_manager.get_shutdown_scriptpubkey()))
        with pytest.raises(APIError.APIMisuseError) as info:
            cm.close_channel(chan.channel_id, bob.node_id)
    assert str(info.value) == "Misuse error: Shutdown already in progress"


def test_channel_details_count_confirmations_from_zero_and_a_closing_channel_is_no_longer_ready():
    """``ChannelDetails::from_channel_context``: ``confirmations`` is ``Some(get_funding_tx_confirmations)``, 0 until
    the funding confirms; ``is_channel_ready`` and ``outbound_scid_alias`` follow ``context.is_usable()``, which a
    shutdown ends, though the channel stays open until its HTLC is resolved."""
    from ldkkit import reference

    def holds_payments(*args):  # bob keeps the payment claimable: its HTLC stays on the channel
        if not isinstance(args[-1], Event.PaymentClaimable):
            return reference.ldk_sample_handle_ldk_events(*args)

    with World(seed=6) as world:
        stage = Stage(world, world.add_node("learner"))
        bob = stage.peer("bob", handler=holds_payments)
        stage.open(stage.me, bob, 1_000_000, confirm=False)
        (pending,) = stage.me.channel_manager.list_channels()
        assert (pending.confirmations, pending.is_channel_ready, pending.outbound_scid_alias) == (0, False, None)
        stage.mine(6)
        (ready,) = stage.me.channel_manager.list_channels()
        assert ready.confirmations == 6 and ready.is_channel_ready and ready.outbound_scid_alias is not None
        stage.pay(stage.me, stage.invoice(bob, 10_000_000))
        stage.me.channel_manager.close_channel(ready.channel_id, bob.node_id)
        stage.settle()
        (closing,) = stage.me.channel_manager.list_channels()
        assert closing.channel_shutdown_state is not None and closing.channel_shutdown_state.name != "NotShuttingDown"
        assert (closing.is_channel_ready, closing.is_usable, closing.outbound_scid_alias) == (False, False, None)
