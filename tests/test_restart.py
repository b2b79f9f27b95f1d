"""A restart from disk: the events LDK persists with the ChannelManager come back to the handler."""

from __future__ import annotations

import pytest

from ldkkit import scenarios
from ldkkit.events import Event, ReplayEvent
from ldkkit.ln.channelmanager import ChannelManager
from ldkkit.reference import handle_ldk_events as reference
from ldkkit.scenarios import Stage
from ldkkit.ser import decode
from ldkkit.sim.node_process import run_processor
from ldkkit.sim.world import World


def _recording(seen: list[Event]):
    """The reference handler, keeping each event it is given in ``seen``."""

    async def recording(*args):
        seen.append(args[-1])
        return await reference(*args)

    return recording


def test_a_restart_replays_the_pending_payment_claimed():
    """PaymentClaimed is persisted by LDK (``Writeable for Event``, type 19): a node that stops before its
    handler has finished with it gets it again, with the same hash and amount, after a restart from disk."""

    async def never_finishes_claimed(*args):
        if isinstance(args[-1], Event.PaymentClaimed):
            return ReplayEvent()  # the node stops before this handler has stored the payment
        return await reference(*args)

    seen: list[Event] = []
    recording = _recording(seen)

    with World(seed=5) as world:
        stage = Stage(world, world.add_node("learner", handler=never_finishes_claimed))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        invoice = stage.invoice(stage.me, 50_000_000)
        stage.pay(bob, invoice)
        (claimed,) = [e for e in stage.me.channel_manager.pending_events() if isinstance(e, Event.PaymentClaimed)]
        stage.me.fs_store.write("", "", "manager", stage.me.channel_manager.encode())

        restarted = world.restart_node(stage.me, handler=recording)
        stage.settle()

    replayed = [e for e in seen if isinstance(e, Event.PaymentClaimed)]
    assert replayed == [claimed]
    assert replayed[0].payment_hash == invoice.payment_hash() and replayed[0].amount_msat == 50_000_000
    assert not restarted.channel_manager.pending_events()  # handled this time, so gone



def test_a_node_restarted_after_time_down_is_given_the_blocks_it_missed(monkeypatch):
    """ldk-sample syncs the ChannelManager from the block it was persisted at to the chain's tip before it
    starts (``synchronize_listeners``): a funding transaction that confirmed while the node was down counts."""
    connected: list[tuple[int, int]] = []
    block_connected = ChannelManager.block_connected

    def recorded(self, block, height):
        connected.append((id(self), height))
        block_connected(self, block, height)

    monkeypatch.setattr(ChannelManager, "block_connected", recorded)
    with World(seed=3) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000, confirm=False)
        stage.settle()
        down_at = world.chain.height()
        world.crash(stage.me)  # nothing handles or persists the learner's node any more
        world.mine(6)
        restarted = world.restart_node(stage.me)
        (channel,) = restarted.channel_manager.list_channels()
    assert restarted.channel_manager.best_block_height == world.chain.height() == down_at + 6
    assert channel.confirmations == 6
    given = [height for manager, height in connected if manager == id(restarted.channel_manager)]
    assert given == list(range(down_at + 1, down_at + 7))  # each block it missed, once, in order


def _channel_ready_messages(world: World, since: int) -> list[tuple[str, str]]:
    return [(src, dst) for _, src, dst, kind in world.message_log[since:] if kind == "ChannelReady"]


def test_a_channel_that_confirmed_while_a_node_was_down_is_usable_once_its_peer_reconnects():
    """Each side's ``channel_ready``, sent while the other was away, is lost. LDK answers the ``channel_reestablish``
    of a reconnection with it again (the channel still at its first commitment), so the channel becomes usable on
    both sides, and the restarted node's handler is told ``ChannelReady``."""
    seen: list[Event] = []
    recording = _recording(seen)

    with World(seed=3) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000, confirm=False)
        stage.settle()
        world.disconnect(stage.me, bob)
        world.crash(stage.me)  # its persisted manager stays where it was
        stage.mine(6)
        restarted = world.restart_node(stage.me, handler=recording)
        stage.settle()
        assert not restarted.channel_manager.list_usable_channels()  # bob is still away
        since = len(world.message_log)
        world.connect(restarted, bob)
        stage.settle()
        resent = _channel_ready_messages(world, since)
        (mine,), (theirs,) = restarted.channel_manager.list_channels(), bob.channel_manager.list_channels()
        assert mine.is_usable and theirs.is_usable and mine.confirmations == 6
        assert [type(e) for e in seen] == [Event.ChannelReady]
        assert sorted(resent) == [("bob", "learner"), ("learner", "bob")]
        # Reconnected again: each side still resends (the channel is still at its first commitment), and nothing
        # changes for a channel both sides know is ready.
        world.disconnect(restarted, bob)
        since = len(world.message_log)
        world.connect(restarted, bob)
        stage.settle()
        assert sorted(_channel_ready_messages(world, since)) == [("bob", "learner"), ("learner", "bob")]
        assert [type(e) for e in seen] == [Event.ChannelReady]


def test_a_channel_that_has_carried_an_htlc_resends_no_channel_ready_on_reconnection():
    """Past its first commitment a channel was used, so both sides knew it ready: LDK resends nothing. An HTLC either
    way counts, the one the node offered and the one it was offered."""
    with World(seed=4) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob, carol, dave = stage.peer("bob"), stage.peer("carol"), stage.peer("dave")
        stage.open(stage.me, bob, 1_000_000)
        stage.open(carol, stage.me, 6_000_000)
        stage.open(stage.me, dave, 1_000_000)
        stage.pay(stage.me, stage.invoice(bob, 10_000_000))  # the learner offered one to bob
        stage.pay(carol, stage.invoice(stage.me, 10_000_000))  # carol offered one to the learner
        for peer in (bob, carol, dave):
            world.disconnect(stage.me, peer)
        since = len(world.message_log)
        for peer in (bob, carol, dave):
            world.connect(stage.me, peer)
        stage.settle()
    assert sorted(_channel_ready_messages(world, since)) == [("dave", "learner"), ("learner", "dave")]


def test_a_crash_in_a_check_ends_the_tasks_your_handler_spawned():
    """A restart is a crash: a task the handler spawned to do its work later dies with the node's process (it once
    went on, after the restart, and did what a crashed node never could)."""
    import asyncio

    from ldkkit.exercises import common

    done: list[str] = []

    async def handler(*args):
        event = args[-1]
        if isinstance(event, Event.ChannelReady):
            async def later() -> None:
                await asyncio.sleep(600)
                done.append("after the crash")

            asyncio.get_running_loop().create_task(later())
        return await reference(*args)

    def story(stage: Stage) -> None:
        stage.open(stage.peer("bob"), stage.me, 6_000_000)
        stage.world.restart_node(stage.me)
        stage.settle(3600)

    session = common.Session("background_processor", handler)
    try:
        session.play("a crash", story)
    finally:
        session.close()
    assert done == []


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_crash_under_a_processor_is_the_crash_the_world_plays(form):
    """restart_replay: the node crashes as a payment arrives. Under a background processor as when the world drives
    the node, nothing is handed over between the crash and the restart (the processor dies with its process), and the
    processor the restarted node starts with hands over what was persisted: the same events, at the same times and
    heights. (The processor went on handing events over after the crash: the payment was claimed before it.)"""

    def log(processor: str | None) -> list[tuple[float, int, str]]:
        played = scenarios.run("restart_replay", seed=3, processor=processor)
        return [(at, height, type(event).__name__) for at, height, event in played.node.event_log]

    assert log(form) == log(None)


@pytest.mark.parametrize("form", ["thread", "async"])
def test_a_node_restarted_under_a_processor_runs_under_a_new_one_and_the_dead_one_writes_nothing(form):
    """A restart is a crash: the old process's processor stops without its last persist and writes nothing over the
    restarted node's manager; the restarted node runs under a processor of the same form, which persists it at every
    block. (The old processor went on, and its last persist, at the end, left a manager blocks behind on disk.)"""
    with World(seed=3) as world:
        node = world.add_node("learner", handler=reference)
        store, late = node.fs_store, []
        write = store.write

        def recorded(primary, secondary, key, buf):
            late.append(key)
            write(primary, secondary, key, buf)

        with run_processor(node, form):
            world.mine(1)
            store.write = recorded  # (the world's restart reads its storage; it writes nothing)
            restarted = world.restart_node(node)
            assert restarted.channel_manager.background_processor_attached
            world.mine(3)
        assert late == []
        on_disk = decode(restarted.fs_store.read("", "", "manager"), dict)
        assert on_disk["best_block_height"] == world.chain.height()


def _holding_claimable(held: list[Event]):
    """The reference handler, but each PaymentClaimable kept in ``held`` for the test to answer."""

    async def holding(*args):
        if isinstance(args[-1], Event.PaymentClaimable):
            held.append(args[-1])
            return None
        return await reference(*args)

    return holding


@pytest.mark.parametrize("answer", ["claim_funds", "fail_htlc_backwards"])
def test_an_htlc_settled_while_the_payer_is_away_reaches_it_once_it_is_back(answer):
    """LDK puts a claim (or a failure) the payer cannot get now in the channel's holding cell, and sends it after
    ``channel_reestablish`` (channel.rs ``queue_update_fulfill_htlc``, channelmanager.rs ``check_free_holding_cells``):
    the payer learns its payment's end when it reconnects, and no channel closes. (It was lost: the payer timed its
    HTLC out on chain, and a claimed payment was lost.)"""
    held: list[Event] = []
    with World(seed=5) as world:
        stage = Stage(world, world.add_node("learner", handler=_holding_claimable(held)))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        stage.pay(bob, stage.invoice(stage.me, 50_000_000))
        world.disconnect(stage.me, bob)
        since = len(bob.events_seen)
        if answer == "claim_funds":
            stage.me.channel_manager.claim_funds(held[-1].purpose.preimage())
        else:
            stage.me.channel_manager.fail_htlc_backwards(held[-1].payment_hash)
        stage.settle(10)
        assert bob.events_seen[since:] == []  # (away: nothing reached it)
        world.connect(stage.me, bob)
        stage.settle(10)
        stage.mine(60)
        told = [type(e) for e in bob.events_seen[since:] if not isinstance(e, Event.BumpTransaction)]
        assert told == ([Event.PaymentSent, Event.PaymentPathSuccessful] if answer == "claim_funds" else
                        [Event.PaymentPathFailed, Event.PaymentFailed])
        (mine,), (theirs,) = stage.me.channel_manager.list_channels(), bob.channel_manager.list_channels()
        assert mine.pending_inbound_htlcs == () and theirs.pending_outbound_htlcs == ()
        assert mine.is_usable and theirs.is_usable


def test_a_claim_lost_on_the_way_as_the_payer_went_and_one_held_over_a_restart_reach_it():
    """The claim was sent, and the connection dropped before it arrived: LDK retransmits after
    ``channel_reestablish``. And a claim held while the payer is away is persisted with the channel: the node
    restarted from disk still sends it."""
    held: list[Event] = []
    with World(seed=6) as world:
        stage = Stage(world, world.add_node("learner", handler=_holding_claimable(held)))
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        for restart in (False, True):
            stage.pay(bob, stage.invoice(stage.me, 50_000_000))
            since = len(bob.events_seen)
            stage.me.channel_manager.claim_funds(held[-1].purpose.preimage())
            stage.me.peer_manager.process_events()  # (the claim on its way)
            world.disconnect(stage.me, bob)
            stage.settle(10)
            assert not any(isinstance(e, Event.PaymentSent) for e in bob.events_seen[since:])
            if restart:
                world.crash(stage.me)
                stage.me = world.restart_node(stage.me, handler=reference)
            world.connect(stage.me, bob)
            stage.settle(10)
            assert [type(e) for e in bob.events_seen[since:]] == [Event.PaymentSent, Event.PaymentPathSuccessful]


def test_a_channel_proposed_to_a_peer_that_went_before_answering_is_proposed_again_once_it_is_back():
    """LDK keeps an outbound channel the peer never answered (``is_resumable``: nothing received from it yet) when the
    peer disconnects, and sends ``open_channel`` again on reconnection: the open goes on. (It was closed at once,
    ClosureReason.DisconnectedPeer.) One the peer had answered is closed, as before."""
    seen: list[Event] = []
    with World(seed=7) as world:
        stage = Stage(world, world.add_node("learner", handler=_recording(seen)))
        bob = stage.peer("bob")
        stage.me.channel_manager.create_channel(bob.node_id, 1_000_000, 0, 42, None, None)
        world.disconnect(stage.me, bob)  # (before bob's accept_channel: he never got the proposal)
        stage.settle()
        assert seen == [] and len(stage.me.channel_manager.list_channels()) == 1
        world.connect(stage.me, bob)
        stage.settle()
        stage.mine(6)
        stage.settle()
        assert [type(e) for e in seen] == [Event.FundingGenerationReady, Event.ChannelPending, Event.ChannelReady]
        assert [c.is_usable for c in stage.me.channel_manager.list_channels()] == [True]


def test_a_restarted_node_knows_the_network_graph_it_knew():
    """ldk-sample reads its network graph back at start (the processor persists it), and its peers' gossip brings it
    up to date: a restarted node can route a payment at once. (It started with an empty graph, and every payment it
    sent found no route.)"""
    with World(seed=8) as world:
        stage = Stage(world, world.add_node("learner", handler=reference))
        bob, carol = stage.peer("bob"), stage.peer("carol", connect=False)
        stage.open(stage.me, bob, 1_000_000)
        stage.open(bob, carol, 1_000_000)
        before = stage.me.network_graph.read_only().nodes()
        stage.me = world.restart_node(stage.me)
        assert stage.me.network_graph.read_only().nodes() == before and len(before) == 2  # (ours is private)
        stage.pay(stage.me, stage.invoice(carol, 10_000_000))
        assert [type(e) for e in stage.me.events_seen if isinstance(e, (Event.PaymentSent, Event.PaymentFailed))] == [
            Event.PaymentSent]
