"""Every named scenario runs, deterministically, and gives the learner's node LDK's event order."""

from __future__ import annotations

import pytest

from ldkkit import scenarios
from ldkkit.events import ClosureReason, Event, PaymentFailureReason, PaymentPurpose
from ldkkit.ser import encode
from ldkkit.sign import SpendableOutputDescriptor
from ldkkit.types import ChannelTypeFeatures

OPEN_IN = ["OpenChannelRequest", "ChannelPending", "ChannelReady"]
OPEN_OUT = ["FundingGenerationReady", "ChannelPending", "ChannelReady"]
RECEIVE = ["PendingHTLCsForwardable", "PaymentClaimable", "PaymentClaimed"]
#: A fee-bump request comes when the claim is made and again at every rebroadcast (30 s) until a block confirms
#: what the handler broadcast: blocks are 600 s apart, so 1 + 20 times.
ASKED_UNTIL_THE_NEXT_BLOCK = 1 + 600 // 30

CANONICAL = {
    "inbound_open_accept": OPEN_IN,
    "inbound_open_reject": ["OpenChannelRequest", "OpenChannelRequest"],  # LDK's opener retries without anchors
    "inbound_open_zero_conf": OPEN_IN,
    "outbound_open": OPEN_OUT,
    "outbound_open_rejected_by_peer": ["ChannelClosed"],
    "receive_invoice_payment": OPEN_IN + RECEIVE,
    "receive_keysend": OPEN_IN + RECEIVE,
    # LDK's fail_htlc_backwards_internal: HTLCHandlingFailed when the failure is queued, then a new
    # PendingHTLCsForwardable, whose processing sends the update_fail_htlc.
    "receive_unknown_payment": OPEN_IN + ["PendingHTLCsForwardable", "HTLCHandlingFailed", "PendingHTLCsForwardable"],
    "receive_duplicate_payment": OPEN_IN + RECEIVE
    + ["PendingHTLCsForwardable", "PaymentClaimable", "HTLCHandlingFailed", "PendingHTLCsForwardable"],
    "receive_mpp": OPEN_IN + OPEN_IN + RECEIVE,
    "send_direct": OPEN_OUT + ["PaymentSent", "PaymentPathSuccessful"],
    "send_two_hop": OPEN_OUT + ["PaymentSent", "PaymentPathSuccessful"],
    "forward_payment": OPEN_IN + OPEN_IN + ["PendingHTLCsForwardable", "PaymentForwarded"],
    "send_retry_then_succeed": OPEN_OUT + OPEN_OUT
    + ["PaymentPathFailed", "PendingHTLCsForwardable", "PaymentSent", "PaymentPathSuccessful"],
    "send_fails_permanently": OPEN_OUT + ["PaymentPathFailed", "PaymentFailed"],
    "send_retries_exhausted": OPEN_OUT + ["PaymentPathFailed", "PaymentFailed"],
    "probe_successful": OPEN_OUT + ["ProbeSuccessful"],
    "probe_failed": OPEN_OUT + ["ProbeFailed"],
    "coop_close_local": OPEN_OUT + ["ChannelClosed", "SpendableOutputs"],
    "coop_close_remote": OPEN_OUT + ["ChannelClosed", "SpendableOutputs"],
    # No HTLC on the commitment: it already pays OutputSpendingFee, so the monitor broadcasts it, no bump.
    "force_close_local": OPEN_OUT + ["ChannelClosed", "SpendableOutputs"],
    # The payment's HTLC is on our previous commitment: closing is urgent (closure_conf_target), so ours, broadcast
    # on bob's error, is asked to be bumped until bob's commitment, first in the mempool, confirms.
    "force_close_remote": OPEN_OUT + ["PaymentSent", "PaymentPathSuccessful", "ChannelClosed"]
    + ["BumpTransaction"] * ASKED_UNTIL_THE_NEXT_BLOCK + ["SpendableOutputs"],
    # An HTLC on it: UrgentOnChainSweep. The commitment (ChannelClose), then the HTLC's second stage (HTLCResolution).
    "force_close_htlc_in_flight": OPEN_IN + OPEN_IN + ["PendingHTLCsForwardable", "ChannelClosed"]
    + ["BumpTransaction"] * ASKED_UNTIL_THE_NEXT_BLOCK * 2
    + ["HTLCHandlingFailed", "PendingHTLCsForwardable", "SpendableOutputs", "SpendableOutputs"],
    "handler_replay": OPEN_IN + RECEIVE + ["PaymentClaimed"],
    "restart_replay": OPEN_IN + RECEIVE,
}


@pytest.fixture(scope="module")
def results() -> dict[str, scenarios.ScenarioResult]:
    return {name: scenarios.run(name) for name in scenarios.names()}


def test_the_issue_names_every_scenario():
    assert set(scenarios.names()) == set(CANONICAL)
    assert all(scenarios.describe(name) for name in scenarios.names())


@pytest.mark.parametrize("name", list(CANONICAL))
def test_canonical_event_order(results, name):
    assert results[name].event_names() == CANONICAL[name]


@pytest.mark.parametrize("name", ["inbound_open_accept", "forward_payment", "force_close_htlc_in_flight"])
def test_same_seed_same_run_other_seed_other_ids(name):
    first, again = scenarios.run(name, seed=3), scenarios.run(name, seed=3)
    assert encode(tuple(first.events)) == encode(tuple(again.events))
    assert first.node.node_id == again.node.node_id
    other = scenarios.run(name, seed=4)
    assert other.event_names() == first.event_names()
    assert other.node.node_id != first.node.node_id


def test_unknown_scenario_names_say_where_to_look():
    with pytest.raises(KeyError, match="ldkkit.scenarios.names"):
        scenarios.run("no_such_thing")


def test_channel_open_fields_line_up(results):
    request, pending, ready = results["inbound_open_accept"].events
    assert request.funding_satoshis == 6_000_000
    assert pending.former_temporary_channel_id == request.temporary_channel_id
    assert pending.counterparty_node_id == request.counterparty_node_id == ready.counterparty_node_id
    assert pending.channel_id == ready.channel_id != request.temporary_channel_id
    assert pending.user_channel_id == ready.user_channel_id
    channel = results["inbound_open_accept"].node.channel_manager.list_channels()[0]
    assert channel.is_usable and channel.channel_value_satoshis == 6_000_000


def test_rejected_request_leaves_no_channel(results):
    result = results["inbound_open_reject"]
    assert result.events[0].funding_satoshis == 4_000_000
    assert result.node.channel_manager.list_channels() == []
    bob_events = result.peers["bob"].events_seen
    assert isinstance(bob_events[-1], Event.ChannelClosed)
    assert isinstance(bob_events[-1].reason, ClosureReason.CounterpartyForceClosed)


def test_a_refused_anchor_channel_is_proposed_once_more_without_anchors(results):
    """LDK's opener (maybe_downgrade_channel_features) drops anchors after a refusal, then gives up."""
    first, second = results["inbound_open_reject"].events
    assert first.temporary_channel_id == second.temporary_channel_id
    assert first.channel_type == ChannelTypeFeatures.anchors_zero_htlc_fee_and_dependencies()
    assert second.channel_type == ChannelTypeFeatures.only_static_remote_key()


def test_zero_conf_is_ready_before_any_block(results):
    request, pending, ready = results["inbound_open_zero_conf"].events
    assert request.channel_type.requires_zero_conf()
    log = results["inbound_open_zero_conf"].node.event_log
    assert log[1][1] == log[2][1]  # ChannelReady at the same height as ChannelPending


def test_receiving_an_invoice_payment(results):
    events = results["receive_invoice_payment"].events
    claimable, claimed = events[-2], events[-1]
    assert claimable.amount_msat == claimed.amount_msat == 50_000_000
    assert isinstance(claimable.purpose, PaymentPurpose.Bolt11InvoicePayment)
    assert claimable.purpose.preimage() is not None and claimable.claim_deadline is not None
    assert claimed.htlcs[0].value_msat == 50_000_000


def test_keysend_purpose_is_spontaneous(results):
    assert isinstance(results["receive_keysend"].events[-2].purpose, PaymentPurpose.SpontaneousPayment)


def test_mpp_arrives_as_one_payment_of_two_htlcs(results):
    claimed = results["receive_mpp"].events[-1]
    assert len(claimed.htlcs) == 2 and claimed.amount_msat == claimed.sender_intended_total_msat == 80_000_000


def test_fees_along_two_hops_and_forwarding(results):
    sent = results["send_two_hop"].events[-2]
    assert sent.fee_paid_msat == 1000
    forwarded = results["forward_payment"].events[-1]
    assert forwarded.total_fee_earned_msat == 1000
    assert forwarded.outbound_amount_forwarded_msat == 100_000_000
    assert not forwarded.claim_from_onchain_tx


def test_retry_path_failure_blames_a_channel(results):
    failed = results["send_retry_then_succeed"].events[-4]
    assert not failed.payment_failed_permanently and failed.short_channel_id is not None


def test_permanent_and_exhausted_failures(results):
    assert results["send_fails_permanently"].events[-2].payment_failed_permanently
    assert results["send_fails_permanently"].events[-1].reason is PaymentFailureReason.RecipientRejected
    assert results["send_retries_exhausted"].events[-1].reason is PaymentFailureReason.RetriesExhausted


@pytest.mark.parametrize(
    "name, reason, descriptor",
    [
        ("coop_close_local", ClosureReason.LocallyInitiatedCooperativeClosure, SpendableOutputDescriptor.StaticOutput),
        ("coop_close_remote", ClosureReason.CounterpartyInitiatedCooperativeClosure,
         SpendableOutputDescriptor.StaticOutput),
        ("force_close_local", ClosureReason.HolderForceClosed, SpendableOutputDescriptor.DelayedPaymentOutput),
        ("force_close_remote", ClosureReason.CounterpartyForceClosed, SpendableOutputDescriptor.StaticPaymentOutput),
        ("force_close_htlc_in_flight", ClosureReason.HTLCsTimedOut, SpendableOutputDescriptor.DelayedPaymentOutput),
    ],
)
def test_closes_give_the_right_reason_and_outputs(results, name, reason, descriptor):
    events = results[name].events
    closed = next(e for e in events if isinstance(e, Event.ChannelClosed))
    assert isinstance(closed.reason, reason)
    spendable = next(e for e in events if isinstance(e, Event.SpendableOutputs))
    assert any(isinstance(d, descriptor) for d in spendable.outputs)


def test_force_close_waits_for_the_csv_delay(results):
    log = results["force_close_local"].node.event_log
    closed_at = next(h for _, h, e in log if isinstance(e, Event.ChannelClosed))
    spendable_at = next(h for _, h, e in log if isinstance(e, Event.SpendableOutputs))
    assert spendable_at - closed_at >= 144


def test_replayed_event_comes_back_identical(results):
    events = results["handler_replay"].events
    assert events[-1] == events[-2]


@pytest.mark.parametrize("processor", [None, "thread"])
def test_a_replayed_event_comes_back_at_the_next_100_ms_poll(processor):
    """LDK's processor retries when it next wakes; with nothing else to do, when its 100 ms poll ends."""
    log = scenarios.run("handler_replay", processor=processor).node.event_log
    (first, _, _), (again, _, _) = [entry for entry in log if isinstance(entry[2], Event.PaymentClaimed)]
    assert round(again - first, 6) == 0.1


def test_restart_brings_the_payment_back(results):
    node = results["restart_replay"].node
    claimed = results["restart_replay"].events[-1]
    assert node.inbound_payments.payments[claimed.payment_hash].status.name == "Succeeded"


def test_events_dataframe_has_time_height_and_key_fields(results):
    df = results["forward_payment"].events_df()
    assert list(df.columns[:3]) == ["time_s", "height", "event"]
    assert list(df["event"]) == CANONICAL["forward_payment"]
    assert df.iloc[-1]["total_fee_earned_msat"] == 1000


def test_a_spendable_output_queued_at_a_crash_comes_back_after_the_restart():
    """LDK persists a ChannelMonitor's pending events with it: nothing for the sweeper is lost."""
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World

    with World(seed=9) as world:
        me = world.add_node("learner")
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(me, bob, 1_000_000)
        channel = stage.channel_between(me, bob)
        me.channel_manager.close_channel(channel.channel_id, bob.node_id)
        stage.settle()
        world.crash(me)  # the SpendableOutputs is raised but never handled
        stage.mine(12)
        queued = [e for e in me.chain_monitor.pending_events() if isinstance(e, Event.SpendableOutputs)]
        assert queued
        me.fs_store.write("", "", "manager", me.channel_manager.encode())
        restarted = world.restart_node(me)
        stage.me = restarted
        stage.settle()
        handed = [e for e in restarted.events_seen if isinstance(e, Event.SpendableOutputs)]
        assert handed[-1] == queued[0]
        assert restarted.output_sweeper.tracked_spendable_outputs()


def test_the_stage_keeps_payment_records_on_disk_as_ldk_samples_cli_does():
    """ldk-sample's getinvoice, sendpayment and keysend (cli.rs) write inbound_payments or outbound_payments as soon
    as they record a payment, and sendpayment records it Failed when LDK refuses it at once: a node that crashes
    before its handler writes anything still finds them when it restarts."""
    from ldkkit.errors import RetryableSendFailure
    from ldkkit.payment_storage import HTLCStatus, InboundPaymentInfoStorage, OutboundPaymentInfoStorage
    from ldkkit.scenarios import Stage
    from ldkkit.sim.world import World
    from ldkkit.types import PaymentId

    def on_disk(node, key, storage):
        return storage.decode(node.fs_store.read("", "", key)).payments

    with World(seed=5) as world:
        stage = Stage(world, world.add_node("learner"))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        invoice = stage.invoice(stage.me, 30_000_000)
        assert on_disk(stage.me, "inbound_payments", InboundPaymentInfoStorage)[invoice.payment_hash()].status \
            is HTLCStatus.Pending
        paid = stage.pay(stage.me, stage.invoice(bob, 20_000_000), settle_s=0)
        sent = stage.keysend(stage.me, bob, 10_000_000)
        records = on_disk(stage.me, "outbound_payments", OutboundPaymentInfoStorage)
        assert records[paid].amt_msat == 20_000_000 and records[PaymentId(bytes(sent))].amt_msat == 10_000_000
        with pytest.raises(RetryableSendFailure.DuplicatePayment):
            stage.pay(stage.me, stage.invoice(bob, 20_000_000), payment_id=paid)
        assert on_disk(stage.me, "outbound_payments", OutboundPaymentInfoStorage)[paid].status is HTLCStatus.Failed
