"""A restart from disk: the events LDK persists with the ChannelManager come back to the handler."""

from __future__ import annotations

from ldkkit.events import Event, ReplayEvent
from ldkkit.ln.channelmanager import ChannelManager
from ldkkit.reference import handle_ldk_events as reference
from ldkkit.scenarios import Stage
from ldkkit.sim.world import World


def test_a_restart_replays_the_pending_payment_claimed():
    """PaymentClaimed is persisted by LDK (``Writeable for Event``, type 19): a node that stops before its
    handler has finished with it gets it again, with the same hash and amount, after a restart from disk."""

    async def never_finishes_claimed(*args):
        if isinstance(args[-1], Event.PaymentClaimed):
            return ReplayEvent()  # the node stops before this handler has stored the payment
        return await reference(*args)

    seen: list[Event] = []

    async def recording(*args):
        seen.append(args[-1])
        return await reference(*args)

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
        stage.me.driven_by_world = False  # down: nothing handles or persists the learner's node any more
        world.mine(6)
        restarted = world.restart_node(stage.me)
        (channel,) = restarted.channel_manager.list_channels()
    assert restarted.channel_manager.best_block_height == world.chain.height() == down_at + 6
    assert channel.confirmations == 6
    given = [height for manager, height in connected if manager == id(restarted.channel_manager)]
    assert given == list(range(down_at + 1, down_at + 7))  # each block it missed, once, in order
