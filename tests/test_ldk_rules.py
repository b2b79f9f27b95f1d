"""LDK 0.1's rules for failed paths and retries, as a sender sees them (lightning/src/ln/outbound_payment.rs,
onion_utils.rs, lightning-background-processor)."""

from __future__ import annotations

import dataclasses

import pytest

from ldkkit.background_processor import run_processor
from ldkkit.events import Event, NetworkUpdate, PathFailure, PaymentFailureReason
from ldkkit.ln.outbound_payment import Retry
from ldkkit.reference import handle_ldk_events as reference
from ldkkit.scenarios import Stage
from ldkkit.sim.world import World


def dead_ends(seed: int, count: int):
    """Us, ``count`` peers, and dave behind each of them on a channel dave funded: no peer can forward to
    dave (temporary_channel_failure), so every path fails, each at a different channel."""
    seen: list[Event] = []
    blamed: list[object] = []  # for each PaymentPathFailed: the graph's entry for the channel it blames, then

    async def recording(*args):
        event, graph = args[-1], args[2]
        seen.append(event)
        if isinstance(event, Event.PaymentPathFailed):  # what the graph says of the blamed channel, then
            blamed.append(graph.channel(event.short_channel_id))
        return await reference(*args)

    world = World(seed=seed)
    stage = Stage(world, world.add_node("learner", handler=recording))
    dave = stage.peer("dave", connect=False)
    hops = [stage.peer(f"hop{i}", fee_base_msat=100 * (i + 1)) for i in range(count)]
    for hop in hops:
        stage.open(stage.me, hop, 1_000_000)
        stage.open(dave, hop, 1_000_000)
    return world, stage, dave, hops, seen, blamed


@pytest.mark.parametrize("retries", [0, 2])
def test_retry_attempts_n_makes_n_retries_after_the_first_attempt(retries):
    """``Retry::Attempts(n)``: n retries (LDK: ``max_retry_count > count``, the count of retries made), so n + 1
    paths are tried before PaymentFailed(RetriesExhausted), even though untried paths remain."""
    world, stage, dave, hops, seen, blamed = dead_ends(21, 4)
    with world:
        stage.pay(stage.me, stage.invoice(dave, 20_000_000), retry=Retry.Attempts(retries))
        stage.settle(30)
    path_failures = [e for e in seen if isinstance(e, Event.PaymentPathFailed)]
    failed = [e for e in seen if isinstance(e, Event.PaymentFailed)]
    assert len(path_failures) == retries + 1
    assert not any(e.payment_failed_permanently for e in path_failures)
    assert [e.reason for e in failed] == [PaymentFailureReason.RetriesExhausted]


def test_a_failed_path_blames_the_channel_that_could_not_forward():
    """A temporary_channel_failure (UPDATE|7) from a hop gives ``PathFailure::OnPath`` a non-permanent
    ``NetworkUpdate::ChannelFailure`` for the hop's outgoing channel, and the event's ``short_channel_id``."""
    world, stage, dave, hops, seen, blamed = dead_ends(22, 1)
    with world:
        outgoing = stage.channel_between(hops[0], dave).short_channel_id
        stage.pay(stage.me, stage.invoice(dave, 20_000_000), retry=Retry.Attempts(0))
        stage.settle(30)
    (failure,) = [e for e in seen if isinstance(e, Event.PaymentPathFailed)]
    assert failure.failure == PathFailure.OnPath(NetworkUpdate.ChannelFailure(outgoing, False))
    assert failure.short_channel_id == outgoing


def test_the_processor_applies_a_permanent_channel_failure_to_the_graph_before_the_handler_sees_it():
    """LDK's BackgroundProcessor hands every PaymentPathFailed to ``handle_network_graph_update`` first: a
    permanent ChannelFailure has removed the channel from the graph by the time the handler sees the event."""
    world, stage, dave, hops, seen, blamed = dead_ends(23, 1)
    with world:
        stage.pay(stage.me, stage.invoice(dave, 20_000_000), retry=Retry.Attempts(0))
        stage.settle(30)
        (failure,) = [e for e in seen if isinstance(e, Event.PaymentPathFailed)]
        scid = failure.short_channel_id
        assert stage.me.network_graph.channel(scid) is not None  # a temporary failure changes nothing
        permanent = dataclasses.replace(failure, failure=PathFailure.OnPath(NetworkUpdate.ChannelFailure(scid, True)))
        with run_processor(stage.me, "thread"):
            stage.me.channel_manager._events.push(permanent)
            stage.settle()
    assert seen[-1] == permanent and blamed[-1] is None
