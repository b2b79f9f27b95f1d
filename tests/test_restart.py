"""A restart from disk: the events LDK persists with the ChannelManager come back to the handler."""

from __future__ import annotations

from ldkkit.events import Event, ReplayEvent
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

