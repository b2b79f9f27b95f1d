"""Invariants of the simulated world under random activity (hypothesis).

Funds are conserved; every payment ends exactly once; ChannelPending comes before
ChannelReady; PaymentClaimed comes only after claim_funds; no event is handed over twice
unless it was replayed; both sides of every channel agree on its balances.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ldkkit.errors import RetryableSendFailure
from ldkkit.events import Event
from ldkkit.reference import handle_ldk_events
from ldkkit.scenarios import Stage
from ldkkit.sim.world import World

NAMES = ["learner", "alice", "bob", "carol"]
actions = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(1_000, 400_000_000)),
        st.tuples(st.just("keysend"), st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(1_000, 50_000_000)),
        st.tuples(st.just("mine"), st.integers(1, 12)),
        st.tuples(st.just("wait"), st.integers(1, 180)),
        st.tuples(st.just("close"), st.sampled_from(NAMES), st.booleans()),
    ),
    max_size=8,
)


def build(seed: int) -> tuple[World, Stage, dict[str, list]]:
    world = World(seed=seed)
    me = world.add_node("learner", handler=handle_ldk_events)
    stage = Stage(world, me)
    alice, bob, carol = stage.peer("alice"), stage.peer("bob"), stage.peer("carol", connect=False)
    stage.open(alice, me, 6_000_000)
    stage.open(me, bob, 3_000_000)
    stage.open(bob, carol, 2_000_000, push_msat=500_000_000)
    stage.open(carol, me, 6_000_000, push_msat=1_000_000_000)
    claims: dict[str, list] = {}
    for node in world.nodes.values():
        record = claims.setdefault(node.name, [])
        real_claim = node.channel_manager.claim_funds

        def claim(preimage, real_claim=real_claim, record=record, node=node):
            record.append((len(node.event_log), preimage.payment_hash()))
            return real_claim(preimage)

        node.channel_manager.claim_funds = claim
    return world, stage, claims


def play(stage: Stage, action: tuple) -> None:
    world = stage.world
    match action:
        case ("pay", payer, payee, amount) if payer != payee:
            try:
                stage.pay(world.nodes[payer], stage.invoice(world.nodes[payee], amount))
            except RetryableSendFailure:
                pass  # no route: fails at once, with no payment to end
        case ("keysend", payer, payee, amount) if payer != payee:
            try:
                stage.keysend(world.nodes[payer], world.nodes[payee], amount)
            except RetryableSendFailure:
                pass
        case ("mine", blocks):
            stage.mine(blocks)
        case ("wait", seconds):
            stage.settle(seconds)
        case ("close", name, force):
            node = world.nodes[name]
            channels = node.channel_manager.list_channels()
            if channels:
                chan = channels[0]
                if force:
                    node.channel_manager.force_close_broadcasting_latest_txn(
                        chan.channel_id, chan.counterparty.node_id, "random close")
                elif chan.counterparty.node_id in node.channel_manager.peers:
                    node.channel_manager.close_channel(chan.channel_id, chan.counterparty.node_id)
            stage.settle()


# Each example builds a whole world; LDKKIT_WORLD_EXAMPLES=200 searches harder.
@settings(max_examples=int(os.environ.get("LDKKIT_WORLD_EXAMPLES", "12")), deadline=None)
@given(seed=st.integers(0, 2**16), script=actions)
def test_world_invariants(seed, script):
    world, stage, claims = build(seed)
    try:
        start = world.audit()["total"]
        for action in script:
            play(stage, action)
            assert world.audit()["total"] == start, "money appeared or vanished"
        stage.settle(30)
        assert world.channel_disagreements() == []
        stage.mine(200)  # let every close and every HTLC resolve on chain
        stage.settle(30)
        assert world.audit()["total"] == start
        for node in world.nodes.values():
            events = node.events_seen
            assert len({id(e) for e in events}) == len(events), f"{node.name} was given an event twice"
            check_channel_order(events)
            check_claims(node, claims[node.name])
            check_payments_end_once(node, events)
    finally:
        world.close()


def check_channel_order(events):
    pending = set()
    for event in events:
        if isinstance(event, Event.ChannelPending):
            pending.add(event.channel_id)
        if isinstance(event, Event.ChannelReady):
            assert event.channel_id in pending, "ChannelReady before ChannelPending"


def check_claims(node, claims):
    for index, (_, _, event) in enumerate(node.event_log):
        if isinstance(event, Event.PaymentClaimed):
            claimed_before = any(at <= index and h == event.payment_hash for at, h in claims)
            assert claimed_before, "PaymentClaimed without claim_funds"


def check_payments_end_once(node, events):
    ends = Counter(e.payment_id for e in events if isinstance(e, (Event.PaymentSent, Event.PaymentFailed)))
    assert all(count == 1 for count in ends.values()), f"{node.name}: a payment ended twice: {ends}"
    started = set(node.channel_manager.pending_outbound)
    assert not started, f"{node.name}: payments never ended: {started}"
