"""The ChannelMonitor's claims after a force-close, as LDK 0.1's ``OnchainTxHandler`` presses them.

On an anchor channel LDK does not broadcast a commitment that pays less than its target: it asks the
handler for a fee bump (``BumpTransaction``) on every block and every rebroadcast until the commitment
confirms. HTLCs we offered come back through a second-stage transaction (``HTLCResolution``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ldkkit import reference
from ldkkit.chain.chaininterface import ConfirmationTarget, fee_for_weight
from ldkkit.chain.chainmonitor import (
    ANTI_REORG_DELAY,
    HTLC_TIMEOUT_TX_WEIGHT,
    ChannelMonitor,
    FeerateStrategy,
    _package_feerate,
    anchor_script,
)
from ldkkit.config import UserConfig
from ldkkit.events import ClosureReason, Event, ReplayEvent
from ldkkit.events.bump_transaction import BumpTransactionEvent
from ldkkit.persist import CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE
from ldkkit.scenarios import Stage, vanish_when_paid
from ldkkit.sign import SpendableOutputDescriptor
from ldkkit.sim.world import World


def ignore_bumps(channel_manager: Any, *args: Any) -> Any:
    """ldk-sample's handler, except that it drops every BumpTransaction."""
    if isinstance(args[-1], Event.BumpTransaction):
        return None
    return reference.ldk_sample_handle_ldk_events(channel_manager, *args)


def force_close_with_an_htlc(
    world: World, handler: Any, urgent_feerate: int | None = None, with_dave: bool = False,
) -> tuple[Stage, Any]:
    """The learner's node force-closes its channel to carol while its payment to her is stuck on it (with the
    urgent fee estimate at ``urgent_feerate`` first, if given; and its channel to dave, with no HTLC, too)."""
    me = world.add_node("learner", handler=handler)
    stage = Stage(world, me)
    carol = stage.peer("carol", handler=vanish_when_paid)
    stage.open(carol, me, 6_000_000, push_msat=3_000_000_000)
    peers = [carol] + ([stage.peer("dave")] if with_dave else [])
    if with_dave:
        stage.open(peers[1], me, 2_000_000, push_msat=1_000_000_000)
    stage.pay(me, stage.invoice(carol, 100_000_000))
    channel = stage.channel_between(me, carol)
    if urgent_feerate is not None:
        me.bitcoind_client.set_fee_estimate(ConfirmationTarget.UrgentOnChainSweep, urgent_feerate)
    for peer in peers:
        closing = stage.channel_between(me, peer)
        me.channel_manager.force_close_broadcasting_latest_txn(closing.channel_id, peer.node_id, "going away")
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
        # closed once: the HTLC expiring on the closed channel closes nothing again
        assert [e.reason for _, _, e in log if isinstance(e, Event.ChannelClosed)] == [
            ClosureReason.HolderForceClosed(True)]
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


def replay_bumps(channel_manager: Any, *args: Any) -> Any:
    """ldk-sample's handler, except that it cannot finish a BumpTransaction and asks for it again."""
    if isinstance(args[-1], Event.BumpTransaction):
        return ReplayEvent()
    return reference.ldk_sample_handle_ldk_events(channel_manager, *args)


def test_package_feerate_follows_ldks_three_strategies():
    """PackageTemplate::compute_package_feerate: a first claim takes the estimate; a rebroadcast keeps the higher
    of the two; a forced bump takes a higher estimate, or 25 % more, but not past five times the estimate."""
    assert _package_feerate(5_000, 0, FeerateStrategy.ForceBump) == 5_000
    assert _package_feerate(4_000, 6_000, FeerateStrategy.HighestOfPreviousOrNew) == 6_000
    assert _package_feerate(7_000, 6_000, FeerateStrategy.HighestOfPreviousOrNew) == 7_000
    assert _package_feerate(7_000, 6_000, FeerateStrategy.ForceBump) == 7_000
    assert _package_feerate(5_000, 8_000, FeerateStrategy.ForceBump) == 10_000
    assert _package_feerate(5_000, 24_000, FeerateStrategy.ForceBump) == 25_000  # capped at 5x
    assert _package_feerate(5_000, 30_000, FeerateStrategy.ForceBump) == 30_000  # never lower than before


def test_a_request_waiting_for_the_handler_is_queued_and_reported_before_any_processing():
    with World(seed=11) as world:
        stage, _ = force_close_with_an_htlc(world, ignore_bumps)
        me = stage.me
        me.driven_by_world = False  # the application is down: nothing processes events
        stage.mine(1)  # the commitment's claim is asked for again (ForceBump): not handed over yet
        monitor = me.chain_monitor
        assert monitor.has_pending_events()
        assert any(isinstance(e, Event.BumpTransaction) for e in monitor.pending_events())


def test_a_request_whose_input_is_spent_meanwhile_is_taken_back():
    with World(seed=12) as world:
        stage, _ = force_close_with_an_htlc(world, ignore_bumps)
        me = stage.me
        me.driven_by_world = False
        stage.mine(1)  # a forced bump: a request waits, not yet handed over
        (waiting,) = [e.bump_event for e in me.chain_monitor.pending_events() if isinstance(e, Event.BumpTransaction)]
        world.chain.broadcast(waiting.commitment_tx)  # somebody else gets the commitment mined
        stage.mine(1)
        assert not [e for e in me.chain_monitor.pending_events() if isinstance(e, Event.BumpTransaction)]


def test_a_replayed_request_is_forgotten_until_the_monitor_asks_again_and_never_written_to_disk():
    """LDK's "repeated events": a fee-bump request the handler asks to replay is not handed over again at the next
    poll (``get_repeated_events`` took it): the monitor asks again at its next rebroadcast (every 30 s) or block."""
    with World(seed=13) as world:
        stage, _ = force_close_with_an_htlc(world, replay_bumps)
        me = stage.me
        asked = len(bumps(me))
        world.advance(95)  # three rebroadcasts, no block
        assert len(bumps(me)) - asked == 3
        assert not [e for e in me.chain_monitor.pending_events() if isinstance(e, Event.BumpTransaction)]
        for key in me.fs_store.list(CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, ""):
            stored = ChannelMonitor.decode(me.fs_store.read(CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, "", key))
            assert not any(isinstance(e, Event.BumpTransaction) for e in stored.pending_events)


def test_the_htlc_output_is_not_spendable_before_to_self_delay():
    with World(seed=14) as world:
        stage, _ = force_close_with_an_htlc(world, reference.ldk_sample_handle_ldk_events)
        stage.mine(60)
        resolution = next(b for b in bumps(stage.me) if isinstance(b, BumpTransactionEvent.HTLCResolution))
        (descriptor,) = resolution.htlc_descriptors
        (second_stage,) = [txid for txid, tx in world.chain.transactions.items()
                           if any(i.previous_output == descriptor.outpoint() for i in tx.input)]
        stage.mine(world.chain.confirmed_at[second_stage] + 142 - world.chain.height())  # 143 confirmations
        outputs = [o for _, _, e in stage.me.event_log if isinstance(e, Event.SpendableOutputs) for o in e.outputs]
        assert not [o for o in outputs if o.descriptor.outpoint.txid == second_stage]
        stage.mine(1)
        outputs = [o for _, _, e in stage.me.event_log if isinstance(e, Event.SpendableOutputs) for o in e.outputs]
        assert [o for o in outputs if o.descriptor.outpoint.txid == second_stage]


def test_without_anchors_the_monitor_broadcasts_the_htlc_timeout_paying_its_fee_from_the_htlc():
    """No BumpTransaction on a channel without anchors: the pre-signed HTLC-timeout pays htlc_timeout_tx_weight
    (663 WU) at the commitment's feerate (NonAnchorChannelFee) out of the HTLC's own value."""
    with World(seed=15) as world:
        me = world.add_node("learner", config=UserConfig(manually_accept_inbound_channels=True))
        stage = Stage(world, me)
        carol = stage.peer("carol", handler=vanish_when_paid)
        stage.open(me, carol, 1_000_000)
        stage.pay(me, stage.invoice(carol, 100_000_000))
        channel = stage.channel_between(me, carol)
        assert not channel.channel_type.supports_anchors_zero_fee_htlc_tx()
        me.channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, carol.node_id, "going away")
        stage.mine(60)
        assert not bumps(me)
        monitor = next(iter(me.chain_monitor.monitors.values()))
        (spend,) = monitor.htlc_spends
        tx = world.chain.get_transaction(spend.txid)
        feerate = me.bitcoind_client.get_est_sat_per_1000_weight(ConfirmationTarget.NonAnchorChannelFee)
        assert tx.output[0].value == 100_000 - fee_for_weight(feerate, HTLC_TIMEOUT_TX_WEIGHT)
        assert any(isinstance(e, Event.PaymentFailed) for e in me.events_seen)


def _what(output: SpendableOutputDescriptor) -> tuple[str, Any, int]:
    """A spendable output's kind, the transaction it is in and its value."""
    d = output if isinstance(output, SpendableOutputDescriptor.StaticOutput) else output.descriptor
    return type(output).__name__, d.outpoint.txid, d.output.value


def test_the_peers_commitment_pays_our_balance_at_its_sixth_confirmation_and_our_expired_htlc_after():
    """``OnchainEventEntry::confirmation_threshold``: on the peer's confirmed commitment (an anchor channel), our
    balance (``to_remote``, behind a CSV of 1) is ``SpendableOutputs`` with a ``StaticPaymentOutput`` at its
    ``ANTI_REORG_DELAY``-th confirmation, not a block sooner; the HTLC we offered is ours again only once it has
    expired: then the payment fails and its output is spendable (``StaticOutput``), each output reported once."""
    with World(seed=11) as world:
        me = world.add_node("learner", handler=reference.ldk_sample_handle_ldk_events)
        stage = Stage(world, me)
        carol = stage.peer("carol", handler=vanish_when_paid)
        stage.open(carol, me, 6_000_000, push_msat=3_000_000_000)
        chan = stage.channel_between(me, carol)
        assert chan.channel_type.supports_anchors_zero_fee_htlc_tx()
        stage.pay(me, stage.invoice(carol, 100_000_000))
        (htlc,) = me.channel_manager.channels[chan.channel_id].pending_outbound_htlcs.values()
        carol.channel_manager.force_close_broadcasting_latest_txn(chan.channel_id, me.node_id, "bye")
        stage.settle()
        stage.mine(htlc.cltv_expiry + 6 - world.chain.height())
        (commitment,) = [txid for txid, tx in world.chain.transactions.items()
                         if any(i.previous_output == chan.funding_txo for i in tx.input)]
        confirmed_at = world.chain.confirmed_at[commitment]
        spendable = [(h, [_what(o) for o in e.outputs]) for _, h, e in me.event_log
                     if isinstance(e, Event.SpendableOutputs)]
        failed = [h for _, h, e in me.event_log if isinstance(e, Event.PaymentFailed)]
    assert confirmed_at + ANTI_REORG_DELAY - 1 < htlc.cltv_expiry
    assert spendable == [
        (confirmed_at + ANTI_REORG_DELAY - 1, [("StaticPaymentOutput", commitment, 2_900_000)]),
        (htlc.cltv_expiry, [("StaticOutput", commitment, 100_000)]),
    ]
    assert failed == [htlc.cltv_expiry]


def test_the_channel_close_request_points_at_our_anchor_output():
    """``BumpTransactionEvent::ChannelClose``: the ``anchor_descriptor`` names the commitment's output the child
    transaction spends: our anchor, 330 sat to the anchor script of our funding key (the peer's is its twin)."""
    with World(seed=12) as world:
        stage, _ = force_close_with_an_htlc(world, ignore_bumps)
        first = bumps(stage.me)[0]
        params = first.anchor_descriptor.channel_derivation_parameters
        funding_key = stage.me.keys_manager.derive_channel_keys(params.value_satoshis, params.keys_id).funding_pubkey
    spent = first.commitment_tx.output[first.anchor_descriptor.outpoint.vout]
    assert first.anchor_descriptor.outpoint.txid == first.commitment_tx.compute_txid()
    assert (spent.value, spent.script_pubkey) == (330, anchor_script(funding_key))


def ignore_htlc_resolutions(channel_manager: Any, *args: Any) -> Any:
    """ldk-sample's handler, except that it drops every ``BumpTransaction::HTLCResolution``."""
    event = args[-1]
    if isinstance(event, Event.BumpTransaction) and isinstance(event.bump_event, BumpTransactionEvent.HTLCResolution):
        return None
    return reference.ldk_sample_handle_ldk_events(channel_manager, *args)


def test_every_rebroadcast_sends_the_claims_again_and_writes_a_monitor_only_when_its_claim_changed():
    """ChainMonitor::rebroadcast_pending_claims, every 30 s: a commitment that already pays the target is broadcast
    again each time, every channel's at once; a monitor is written again only when its claim's feerate moved (a
    higher estimate)."""
    with World(seed=15) as world:
        stage, channel = force_close_with_an_htlc(world, ignore_bumps, urgent_feerate=253, with_dave=True)
        me = stage.me
        monitors = me.chain_monitor.monitors
        commitments = [m.holder_commitment_tx.compute_txid() for m in monitors.values()]
        sent: list[list[Any]] = []
        written: list[str] = []
        broadcast, write = me.bitcoind_client.broadcast_transactions, me.fs_store.write

        def sending(txs: list[Any]) -> None:
            sent.append([t.compute_txid() for t in txs])
            broadcast(txs)

        def writing(namespace: str, sub: str, key: str, data: bytes) -> None:
            if namespace == CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE:
                written.append(key)
            write(namespace, sub, key, data)

        me.bitcoind_client.broadcast_transactions, me.fs_store.write = sending, writing
        world.advance(61)
        assert len(commitments) == 2 and sent == [commitments, commitments]
        assert written == []  # made again as they were: nothing to write
        me.bitcoind_client.set_fee_estimate(ConfirmationTarget.UrgentOnChainSweep, 20_000)
        world.advance(30)
        carols = monitors[channel.channel_id]
        assert written == [carols.storage_key()]  # her claim (an HTLC on it) now asks 20,000 sat/kW: written
        dave_s = [t for t in commitments if t != carols.holder_commitment_tx.compute_txid()]
        assert sent == [commitments, commitments, dave_s]  # (hers no longer broadcast by the monitor)
        world.advance(30)
        assert written == [carols.storage_key()]


def test_an_unconfirmed_htlc_claim_is_bumped_on_ldks_timer_not_on_every_rebroadcast():
    """``OnchainTxHandler``: an HTLC claim is asked at its expiry, then bumped (``ForceBump``, 25 % more) when its
    height timer comes (``get_height_timer``: every 15 blocks while its deadline, expiry + 42, is far, every 3 as it
    nears, then every block), up to 5x the estimate; the rebroadcasts every 30 s between blocks ask it again at the
    same feerate and leave the timer as it is (``rebroadcast_pending_claims``)."""
    with World(seed=9) as world:
        stage, channel = force_close_with_an_htlc(world, ignore_htlc_resolutions)
        me = stage.me
        (htlc,) = me.channel_manager.channels[channel.channel_id].pending_outbound_htlcs.values()
        stage.mine(htlc.cltv_expiry + 43 - world.chain.height())
        first_asked: dict[int, int] = {}
        for _, height, event in me.event_log:
            if isinstance(event, Event.BumpTransaction) and isinstance(
                    event.bump_event, BumpTransactionEvent.HTLCResolution):
                first_asked.setdefault(event.bump_event.target_feerate_sat_per_1000_weight, height - htlc.cltv_expiry)
    assert first_asked == {5_000: 0, 6_250: 15, 7_812: 30, 9_765: 33, 12_206: 36, 15_257: 39, 19_071: 40,
                           23_838: 41, 25_000: 42}


def test_a_commitment_paying_exactly_the_target_feerate_is_broadcast_as_it_is_and_logged():
    """``generate_claim``: an anchor commitment whose own feerate is at least the target (here exactly it) is
    broadcast with no ``BumpTransaction``; the monitor logs why (debug) and what it broadcasts (info)."""
    from ldkkit.chain.chaininterface import compute_feerate_sat_per_1000_weight, tx_weight
    from ldkkit.logger import Level

    with World(seed=14) as world:
        me = world.add_node("learner", handler=reference.ldk_sample_handle_ldk_events)
        stage = Stage(world, me)
        bob = stage.peer("bob")
        stage.open(me, bob, 1_000_000)
        channel = stage.channel_between(me, bob)
        (monitor,) = me.chain_monitor.monitors.values()
        tx, fee = me.chain_monitor._holder_commitment(monitor)
        feerate = compute_feerate_sat_per_1000_weight(fee, tx_weight(tx))
        me.bitcoind_client.set_fee_estimate(ConfirmationTarget.OutputSpendingFee, feerate)
        me.channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, bob.node_id, "now")
        stage.mine(1)
        txid = tx.compute_txid()
        logged = [(r.level, r.module_path, r.args) for r in me.logger.records(Level.Debug) if str(txid) in r.args]
    assert bumps(me) == [] and world.chain.confirmations(txid) == 1
    assert logged[:2] == [
        (Level.Debug, "ldkkit::chain::chainmonitor",
         f"Pre-signed commitment {txid} already has feerate {feerate} sat/kW above required {feerate} sat/kW"),
        (Level.Info, "ldkkit::chain::chainmonitor", f"Broadcasting commitment transaction {txid}"),
    ]


def test_the_monitor_logs_the_fee_bump_it_asks_for():
    """An anchor commitment below its target is not broadcast: the monitor logs the ``BumpTransaction`` it
    yields, for which claim and channel, at which feerate."""
    from ldkkit.logger import Level

    with World(seed=15) as world:
        stage, channel = force_close_with_an_htlc(world, ignore_bumps)
        first = bumps(stage.me)[0]
        logged = [(r.level, r.module_path, r.args) for r in stage.me.logger.records() if "Yielding" in r.args]
    assert logged[0] == (
        Level.Info, "ldkkit::chain::chainmonitor",
        f"Yielding onchain event ChannelClose for claim {first.claim_id} of channel {channel.channel_id} at "
        f"{first.package_target_feerate_sat_per_1000_weight} sat/kW")


def two_closed_channels(world: World, handler: Any) -> tuple[Stage, list[Any]]:
    """The learner force-closes its channels to carol and dave, each with a payment of its own stuck on it."""
    me = world.add_node("learner", handler=handler)
    stage = Stage(world, me)
    channels = []
    for name in ("carol", "dave"):
        peer = stage.peer(name, handler=vanish_when_paid)
        stage.open(peer, me, 6_000_000, push_msat=3_000_000_000)
        stage.pay(me, stage.invoice(peer, 100_000_000))
        channels.append((stage.channel_between(me, peer), peer))
    for channel, peer in channels:
        me.channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, peer.node_id, "going away")
    stage.settle()
    return stage, [channel for channel, _ in channels]


def test_each_claims_request_comes_at_every_rebroadcast_whatever_the_other_claims_answer():
    """One fee-bump request per claim and monitor: with two channels force-closed, each monitor hands its own
    request over at every rebroadcast, though the handler asks to replay every one."""
    with World(seed=16) as world:
        stage, channels = two_closed_channels(world, replay_bumps)
        before = len(bumps(stage.me))
        world.advance(95)  # three rebroadcasts
        asked = [b.channel_id for b in bumps(stage.me)[before:]]
        assert sorted(asked) == sorted([c.channel_id for c in channels] * 3)


def test_a_replay_for_one_channel_holds_back_no_other_channels_events():
    """ChainMonitor::process_pending_events asks each monitor in turn: a SpendableOutputs the handler asks to replay
    comes again, but the other channel's SpendableOutputs, and a channel's fee-bump requests, are handed over."""
    refused: list[Any] = []

    def replay_first_channels_outputs(channel_manager: Any, *args: Any) -> Any:
        event = args[-1]
        if isinstance(event, Event.SpendableOutputs) and event.channel_id in refused[:1]:
            return ReplayEvent()
        if isinstance(event, Event.SpendableOutputs) and not refused:
            refused.append(event.channel_id)
            return ReplayEvent()
        return reference.ldk_sample_handle_ldk_events(channel_manager, *args)

    with World(seed=17) as world:
        stage, channels = two_closed_channels(world, replay_first_channels_outputs)
        stage.mine(200)
        handed = [e.channel_id for _, _, e in stage.me.event_log if isinstance(e, Event.SpendableOutputs)]
        (other,) = [c.channel_id for c in channels if c.channel_id not in refused]
        assert refused and handed.count(refused[0]) > 1 and other in handed
        still = [e.channel_id for e in stage.me.chain_monitor.pending_events() if isinstance(e, Event.SpendableOutputs)]
        assert refused[0] in still and other not in still


def test_monitor_updates_match_the_channel_with_many_htlcs_in_flight(monkeypatch):
    """The monitor keeps each channel's HTLC records and their totals from one update to the next (a channel carries
    dozens while payments are in flight): after every update its balances and HTLCs are what the channel says, as
    HTLCs are added, settled in any order, and added and settled between two updates (an HTLC offered to us is
    recorded at the next update)."""
    from datetime import timedelta

    from ldkkit.chain.chainmonitor import ChainMonitor, MonitorHTLC
    from ldkkit.ln.bolt11_payment import payment_parameters_from_invoice
    from ldkkit.ln.outbound_payment import Retry
    from ldkkit.types import PaymentId

    checked = []
    update = ChainMonitor.channel_updated

    def channel_updated(self, chan, preimage=None):
        update(self, chan, preimage)
        monitor = self.monitors[chan.channel_id]
        assert (monitor.to_self_msat, monitor.to_remote_msat) == (chan.value_to_self_msat, chan.value_to_remote_msat())
        assert monitor.htlcs == (
            *(MonitorHTLC(h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry, True)
              for h in chan.pending_outbound_htlcs.values()),
            *(MonitorHTLC(h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry, False)
              for h in chan.pending_inbound_htlcs.values()),
        )
        checked.append(len(monitor.htlcs))

    monkeypatch.setattr(ChainMonitor, "channel_updated", channel_updated)
    with World(seed=5) as world:
        stage = Stage(world, world.add_node("a", persist=False))
        a, b, c = stage.me, stage.peer("b"), stage.peer("c")
        stage.open(a, b, 5_000_000)
        stage.open(b, c, 5_000_000)
        stage.open(c, a, 5_000_000)
        for i in range(40):  # both ways round the triangle, all in flight at once
            payer, payee = [(a, c), (c, a), (b, a), (a, b)][i % 4]
            invoice = stage.invoice(payee, 10_000 + i)
            payment_hash, onion, params = payment_parameters_from_invoice(invoice)
            payer.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params,
                                               Retry.Timeout(timedelta(seconds=10)))
        world.advance(5)
        sent = sum(isinstance(e, Event.PaymentSent) for n in (a, b, c) for e in n.events_seen)
        assert sent == 40 and max(checked) >= 10


def test_log_records_are_built_when_read(monkeypatch):
    """A hop logs a line or two that nobody may read: the logger keeps their fields and builds each LogRecord when
    asked, the same records in the same order, levels filtered and the oldest tenth dropped past the limit."""
    from ldkkit.logger import Level, Logger, LogRecord

    built = []
    init = LogRecord.__init__
    monkeypatch.setattr(LogRecord, "__init__", lambda self, *a: built.append(a) or init(self, *a))
    times = iter(range(100))
    logger = Logger("n", lambda: float(next(times)), max_records=20)
    for i in range(25):
        logger.log(Level.Debug if i % 2 else Level.Info, "m", f"line {i}")
    assert built == []  # nothing read yet
    records = logger.records(Level.Info)
    assert records == [LogRecord(Level.Info, "m", f"line {i}", float(i)) for i in range(6, 25, 2)]
    assert logger.lines()[-1] == str(records[-1]) == "    24.000 INFO  [m] line 24"
    assert len(logger.records()) == 19  # each time past 20, the oldest 2 went: lines 6 to 24 are left
    assert all(type(r.level) is Level for r in logger.records())


def test_kept_log_lines_are_left_alone_by_the_garbage_collector():
    """A busy world keeps tens of thousands of log lines: each is a tuple of plain values, which a collection stops
    looking at (a Level in it, an object of its own, kept every line in every full collection)."""
    import gc

    from ldkkit.logger import Level, Logger

    logger = Logger("n", lambda: 1.0)
    for level in Level:
        logger.log(level, "m", f"a {level.name} line")
    gc.collect()
    assert not any(gc.is_tracked(fields) for fields in logger._records)
    assert [r.level for r in logger.records()] == list(Level)


def test_an_htlc_the_confirmed_commitment_does_not_carry_is_failed_back_once_the_close_is_final():
    """LDK's ``fail_unbroadcast_htlcs!`` (channelmonitor.rs:2751): an HTLC we offered that the commitment which
    confirmed holds no output for can never come back on chain; ANTI_REORG_DELAY blocks after it confirmed it is
    failed back. Here a dust HTLC (200 sats) we forwarded: the node force-closes its outbound channel when it
    expires, and the HTLC it came in on is failed back then, not left until that channel expires too."""
    with World(seed=0) as world:
        me = world.add_node("learner", handler=reference.handle_ldk_events)
        stage = Stage(world, me)
        alice, carol = stage.peer("alice"), stage.peer("carol", handler=vanish_when_paid)
        stage.open(alice, me, 6_000_000)
        stage.open(carol, me, 6_000_000, push_msat=3_000_000_000)
        stage.pay(alice, stage.invoice(carol, 200_000))
        stage.mine(60)
        closed = [h for _, h, e in me.event_log if isinstance(e, Event.ChannelClosed)]
        failed = [(h, e.failed_next_destination) for _, h, e in me.event_log if isinstance(e, Event.HTLCHandlingFailed)]
        alice_failed = [e for e in alice.events_seen if isinstance(e, Event.PaymentFailed)]
        spent_at = next(iter(m.spend_height for m in me.chain_monitor.monitors.values() if m.spend_height))
    assert len(closed) == 1 and [h for h, _ in failed] == [spent_at + ANTI_REORG_DELAY - 1]
    assert failed[0][1].node_id == carol.node_id and len(alice_failed) == 1


def _paying_carol(world: World) -> tuple[Any, Stage, Any, Any]:
    """The learner, with a channel carol opened (pushing half to it), paying her 100,000 sats as she goes offline."""
    me = world.add_node("learner", handler=reference.ldk_sample_handle_ldk_events)
    stage = Stage(world, me)
    carol = stage.peer("carol", handler=vanish_when_paid)
    stage.open(carol, me, 6_000_000, push_msat=3_000_000_000)
    chan = stage.channel_between(me, carol)
    stage.pay(me, stage.invoice(carol, 100_000_000))
    return me, stage, carol, chan


def test_our_htlc_missing_from_the_peers_confirmed_commitment_fails_the_payment():
    """The peer's commitment that confirmed no longer holds the HTLC we offered (she failed it back as it neared its
    expiry, while offline): the payment fails once the close is final, where it waited for ever."""
    with World(seed=11) as world:
        me, stage, carol, chan = _paying_carol(world)
        (htlc,) = me.channel_manager.channels[chan.channel_id].pending_outbound_htlcs.values()
        stage.mine(htlc.cltv_expiry + 1 - world.chain.height())
        carol.channel_manager.force_close_broadcasting_latest_txn(chan.channel_id, me.node_id, "bye")
        stage.settle()
        stage.mine(10)
        monitor = me.chain_monitor.monitors[chan.channel_id]
        failed = [h for _, h, e in me.event_log if isinstance(e, Event.PaymentFailed)]
    assert failed == [monitor.spend_height + ANTI_REORG_DELAY - 1]
    assert monitor.resolved_htlcs == (htlc.htlc_id,)


def test_outputs_maturing_in_one_block_are_each_a_spendable_outputs_event_of_its_own(monkeypatch):
    """LDK's monitor raises ``SpendableOutputs { outputs: vec![descriptor] }`` for each output as it matures
    (channelmonitor.rs:4412-4417), never one event for several. Our expired HTLC on the peer's commitment made
    to mature with our balance, in the same block: two events."""
    from ldkkit.chain import chainmonitor

    real = chainmonitor.ChainMonitor._our_output

    def at_once(self, monitor, keys, kind, outpoint, out, confirmations, height):  # (the HTLC's expiry passed over)
        if isinstance(kind, chainmonitor.MonitorHTLC):
            kind = dataclasses.replace(kind, cltv_expiry=0)
        return real(self, monitor, keys, kind, outpoint, out, confirmations, height)

    monkeypatch.setattr(chainmonitor.ChainMonitor, "_our_output", at_once)
    with World(seed=11) as world:
        me, stage, carol, chan = _paying_carol(world)
        carol.channel_manager.force_close_broadcasting_latest_txn(chan.channel_id, me.node_id, "bye")
        stage.settle()
        stage.mine(10)
        spendable = [(h, len(e.outputs)) for _, h, e in me.event_log if isinstance(e, Event.SpendableOutputs)]
    assert len(spendable) == 2 and spendable[0][0] == spendable[1][0] and {n for _, n in spendable} == {1}


def test_a_monitors_fee_bump_requests_are_taken_as_its_turn_begins_and_dropped_if_an_event_is_replayed():
    """channelmonitor.rs ``process_events_body``: the repeated events are taken (and cleared) before any event is
    handed over; if one is replayed they are not handed over at all, and come again only when the monitor makes them
    again (the next block or rebroadcast). Another monitor's turn is not held up."""
    from ldkkit.chain.monitor_events import MonitorEvents
    from ldkkit.types import ChannelId

    mine, other = ChannelId(b"\x01" * 32), ChannelId(b"\x02" * 32)
    request = Event.SpendableOutputs((), mine)  # (a stand-in for a BumpTransaction: its type is not looked at)
    requests: dict[Any, list[Any]] = {mine: [request]}
    queues = MonitorEvents(lambda c: requests.pop(c, []), lambda c: c in requests)
    replayed, handled = Event.SpendableOutputs((), mine), []
    queues.push(replayed)
    queues.push(Event.SpendableOutputs((), other))

    def handler(event: Any) -> Any:
        handled.append(event)
        return ReplayEvent() if event is replayed else None

    queues.process(handler)
    assert handled == [replayed, Event.SpendableOutputs((), other)] and requests == {} and queues.replay_requested
    handled.clear()
    queues.process(handler)  # (no request made again meanwhile: none handed over)
    assert handled == [replayed]
    requests[mine] = [request]
    queues.process(lambda event: handled.append(event))
    assert handled[1:] == [replayed, request] and not queues.replay_requested
