"""Stress: a node under its background processor, with a handler and a disk that fail at random.

Several seeds, many payments each way. Whatever fails, nothing is lost (every payment the
node sent ends exactly once, every payment to it is recorded once with its amount), funds are
conserved, the world never wedges, and no thread is left when it is over.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter

import pytest

from ldkkit.errors import RetryableSendFailure
from ldkkit.events import Event, ReplayEvent
from ldkkit.payment_storage import HTLCStatus, InboundPaymentInfoStorage
from ldkkit.reference import handle_ldk_events
from ldkkit.scenarios import Stage
from ldkkit.sim.node_process import run_processor
from ldkkit.sim.world import World

PAYMENTS = 24


def _flaky(seed: int):
    """The reference handler, asking for a replay at random (as if a database were briefly away)."""
    rng = random.Random(seed)

    async def handler(*args):
        if rng.random() < 0.15:
            return ReplayEvent()
        return await handle_ldk_events(*args)

    return handler


def _flaky_disk(store, seed: int) -> None:
    """The node's disk refuses a payment-record write now and then; the handler must ask for a replay."""
    rng = random.Random(seed * 7 + 1)
    real_write = store.write

    def write(primary_namespace, secondary_namespace, key, buf):
        # (the story's own records, written as ldk-sample's CLI writes them, are not refused: that CLI would panic)
        cli = sys._getframe(1).f_code is Stage._record.__code__
        if key in ("inbound_payments", "outbound_payments") and not cli and rng.random() < 0.2:
            raise OSError(f"disk full (simulated) writing {key}")
        real_write(primary_namespace, secondary_namespace, key, buf)

    store.write = write


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("form", ["thread", "async"])
def test_random_failures_lose_nothing_and_never_wedge(seed, form):
    threads_before = set(threading.enumerate())
    with World(seed=seed) as world:
        me = world.add_node("learner", handler=_flaky(seed))
        stage = Stage(world, me)
        alice, bob = stage.peer("alice"), stage.peer("bob")
        stage.open(alice, me, 8_000_000)
        stage.open(me, bob, 8_000_000)
        _flaky_disk(me.fs_store, seed)
        total = world.audit()["total"]
        rng = random.Random(seed)
        sent, received = [], Counter()
        with run_processor(me, form):
            for i in range(PAYMENTS):
                amount = rng.randrange(10_000, 300_000) * 1000  # within the channels' in-flight limits
                try:
                    if i % 2:
                        sent.append(stage.pay(me, stage.invoice(bob, amount)))
                    else:
                        invoice = stage.invoice(me, amount)
                        received[invoice.payment_hash()] = amount
                        stage.pay(alice, invoice)
                except RetryableSendFailure:
                    continue
                if i % 6 == 5:
                    stage.mine(1)
            stage.settle(120)
        # Every payment we sent ends exactly once (a replay hands the same event over again).
        ended = {}
        for event in me.events_seen:
            if isinstance(event, (Event.PaymentSent, Event.PaymentFailed)):
                assert ended.setdefault(event.payment_id, type(event)) is type(event), event
        assert set(sent) <= set(ended)
        assert len(sent) >= PAYMENTS // 2 - 2 and len(received) >= PAYMENTS // 2 - 2  # the sends really went
        # What is on disk is what happened: no record lost, none counted twice.
        stored = InboundPaymentInfoStorage.decode(me.fs_store.read("", "", "inbound_payments")).payments
        claimed = {e.payment_hash: e.amount_msat for e in me.events_seen if isinstance(e, Event.PaymentClaimed)}
        assert len(claimed) >= PAYMENTS // 2 - 2, "payments to the node were lost"
        assert len(me.events_seen) > len(set(me.events_seen)), "nothing was replayed: the failures did not happen"
        for payment_hash, amount in claimed.items():
            assert stored[payment_hash].status is HTLCStatus.Succeeded and stored[payment_hash].amt_msat == amount
        assert world.audit()["total"] == total
        assert world.channel_disagreements() == []
    # No thread of the world or of the processor outlives them.
    left = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not left, left
