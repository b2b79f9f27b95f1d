"""The ChannelMonitor's claims after a force-close, as LDK 0.1's ``OnchainTxHandler`` presses them.

On an anchor channel LDK does not broadcast a commitment that pays less than its target: it asks the
handler for a fee bump (``BumpTransaction``) on every block and every rebroadcast until the commitment
confirms. HTLCs we offered come back through a second-stage transaction (``HTLCResolution``).
"""

from __future__ import annotations

from typing import Any

from ldkkit import reference
from ldkkit.chain.chaininterface import ConfirmationTarget
from ldkkit.chain.chainmonitor import ANTI_REORG_DELAY
from ldkkit.events import Event
from ldkkit.events.bump_transaction import BumpTransactionEvent
from ldkkit.scenarios import Stage, vanish_when_paid
from ldkkit.sign import SpendableOutputDescriptor
from ldkkit.sim.world import World


def ignore_bumps(channel_manager: Any, *args: Any) -> Any:
    """ldk-sample's handler, except that it drops every BumpTransaction."""
    if isinstance(args[-1], Event.BumpTransaction):
        return None
    return reference.ldk_sample_handle_ldk_events(channel_manager, *args)


def force_close_with_an_htlc(world: World, handler: Any) -> tuple[Stage, Any]:
    """The learner's node force-closes its channel to carol while its payment to her is stuck on it."""
    me = world.add_node("learner", handler=handler)
    stage = Stage(world, me)
    carol = stage.peer("carol", handler=vanish_when_paid)
    stage.open(carol, me, 6_000_000, push_msat=3_000_000_000)
    stage.pay(me, stage.invoice(carol, 100_000_000))
    channel = stage.channel_between(me, carol)
    me.channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, carol.node_id, "going away")
    stage.settle()
    return stage, channel


def bumps(node: Any) -> list[BumpTransactionEvent]:
    return [e.bump_event for _, _, e in node.event_log if isinstance(e, Event.BumpTransaction)]


def test_an_unbumped_commitment_with_an_htlc_is_never_broadcast_and_asked_for_every_block_at_a_higher_feerate():
    with World(seed=8) as world:
        stage, _ = force_close_with_an_htlc(world, ignore_bumps)
        me = stage.me
        first = bumps(me)[0]
        assert isinstance(first, BumpTransactionEvent.ChannelClose)
        urgent = me.bitcoind_client.get_est_sat_per_1000_weight(ConfirmationTarget.UrgentOnChainSweep)
        assert first.package_target_feerate_sat_per_1000_weight == urgent  # closure_conf_target: an HTLC is on it
        txid = first.commitment_tx.compute_txid()
        assert bytes(first.claim_id) == bytes(txid)  # LDK: a commitment's claim id is its txid
        assert len(first.pending_htlcs) == 1 and first.pending_htlcs[0].transaction_output_index is not None
        assert world.chain.confirmations(txid) is None  # the monitor did not broadcast it
        stage.mine(3)
        assert world.chain.confirmations(txid) is None  # and nobody else did
        asked = bumps(me)
        assert {b.claim_id for b in asked} == {first.claim_id}
        # ForceBump every block (HIGH_FREQUENCY_BUMP_INTERVAL): 25 % more, the estimate being unchanged
        assert sorted({b.package_target_feerate_sat_per_1000_weight for b in asked}) == [5_000, 6_250, 7_812, 9_765]
        assert len(asked) >= 3 * 600 // 30  # and again at every rebroadcast, 30 s apart


def test_the_htlc_comes_back_through_a_second_stage_transaction_then_is_failed_back_six_blocks_later():
    with World(seed=9) as world:
        stage, channel = force_close_with_an_htlc(world, reference.ldk_sample_handle_ldk_events)
        me = stage.me
        stage.mine(60)
        resolutions = [b for b in bumps(me) if isinstance(b, BumpTransactionEvent.HTLCResolution)]
        (descriptor,) = resolutions[0].htlc_descriptors
        assert resolutions[0].tx_lock_time == descriptor.htlc.cltv_expiry
        assert {b.claim_id for b in resolutions} == {resolutions[0].claim_id}
        log = me.event_log
        asked_at = next(h for _, h, e in log if isinstance(e, Event.BumpTransaction)
                        and isinstance(e.bump_event, BumpTransactionEvent.HTLCResolution))
        assert asked_at >= descriptor.htlc.cltv_expiry  # not before the HTLC expires
        (second_stage,) = [txid for txid, tx in world.chain.transactions.items()
                           if any(i.previous_output == descriptor.outpoint() for i in tx.input)]
        confirmed_at = world.chain.confirmed_at[second_stage]
        failed = [(h, e) for _, h, e in log if isinstance(e, Event.PaymentFailed)]
        assert failed and failed[0][0] == confirmed_at + ANTI_REORG_DELAY - 1
        stage.mine(confirmed_at + 144 - world.chain.height())
        outputs = [o for _, _, e in log if isinstance(e, Event.SpendableOutputs) for o in e.outputs]
        htlc_output = [o for o in outputs if o.descriptor.outpoint.txid == second_stage]
        assert len(htlc_output) == 1 and isinstance(htlc_output[0], SpendableOutputDescriptor.DelayedPaymentOutput)
        assert htlc_output[0].descriptor.output.value == descriptor.htlc.amount_msat // 1000


def test_a_restart_asks_for_the_bump_again_rather_than_reading_it_back():
    """LDK never writes BumpTransaction: the pending claim, kept with the monitor, raises it again."""
    with World(seed=10) as world:
        stage, _ = force_close_with_an_htlc(world, ignore_bumps)
        before = len(bumps(stage.me))
        for monitor in stage.me.chain_monitor.monitors.values():
            assert not any(isinstance(e, Event.BumpTransaction) for e in monitor.pending_events)
        me = world.restart_node(stage.me)
        world.advance(31)
        after = bumps(me)[before:]
        assert after and isinstance(after[0], BumpTransactionEvent.ChannelClose)
