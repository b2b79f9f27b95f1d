"""Rules of the checks judged on situations the workbooks' stories never reach with a learner's handler.

The corpus (tests/corpus) judges whole handlers; here a rule is judged directly, on a world the
test shapes: a sweep still in the mempool, an event carrying two outputs.
"""

from __future__ import annotations

import dataclasses

import pytest

from ldkkit.events import Event
from ldkkit.exercises import ExerciseFailed, common, on_chain
from ldkkit.reference import handle_ldk_events as reference


def on_chain_until(blocks_after_closing: int) -> tuple[common.Session, common.Played]:
    """Workbook 6's story with ldk-sample's handler, stopped ``blocks_after_closing`` blocks after the closes."""

    def story(stage):
        bob, carol = stage.peer("bob"), stage.peer("carol")
        stage.open(stage.me, bob, 1_000_000)
        stage.open(stage.me, carol, 1_000_000)
        me = stage.me.channel_manager
        bob_channel, carol_channel = stage.channel_between(stage.me, bob), stage.channel_between(stage.me, carol)
        me.close_channel(bob_channel.channel_id, bob.node_id)
        me.force_close_broadcasting_latest_txn(carol_channel.channel_id, carol.node_id, "going away")
        stage.settle()
        stage.mine(blocks_after_closing)

    session = common.Session("on_chain", reference)
    return session, session.play("on_chain", story)


@pytest.fixture(scope="module")
def sweep_in_mempool():
    """The force-closed channel's output was just swept (by the sweeper, to the wallet): not yet confirmed."""
    session, played = on_chain_until(144)
    yield played
    session.close()


def test_a_sweep_still_in_the_mempool_has_not_come_back_yet(sweep_in_mempool):
    """The rule is a *confirmed* sweep into the wallet: one only broadcast is not judged swept."""
    played = sweep_in_mempool
    assert len(played.handled(Event.SpendableOutputs)) == 2 and played.world.chain.mempool
    with pytest.raises(ExerciseFailed, match="never came back to your wallet"):
        on_chain.judge_sweeps(played)


def test_every_output_of_an_event_is_judged_not_only_the_first(sweep_in_mempool):
    """One SpendableOutputs may carry several outputs (LDK's ``outputs: Vec<...>``): each must be swept."""
    played = sweep_in_mempool
    first, second = played.handled(Event.SpendableOutputs)
    both = dataclasses.replace(first.event, outputs=first.event.outputs + second.event.outputs)
    handlings = played.recorder.handlings
    played.recorder.handlings = [dataclasses.replace(first, event=both)]
    try:
        with pytest.raises(ExerciseFailed, match="never came back to your wallet"):
            on_chain.judge_sweeps(played)
        played.recorder.handlings = [dataclasses.replace(first, event=first.event)]
        assert on_chain.judge_sweeps(played) > 0  # the first output alone was swept and confirmed
    finally:
        played.recorder.handlings = handlings


def test_the_capstone_compares_with_what_the_reference_node_is_given_today():
    """The capstone's stored reference events are a fresh run's: a world change that alters them fails here,
    with the command that writes them again, rather than failing learners' right handlers."""
    from ldkkit import scenarios
    from ldkkit.exercises import capstone
    from ldkkit.exercises.reference_events import REFERENCE_EVENTS

    assert list(REFERENCE_EVENTS) == scenarios.names(), "run .venv/bin/python tools/make_reference_events.py"
    for name in scenarios.names():
        assert REFERENCE_EVENTS[name] == capstone.reference_events(name), (
            f"{name}: the stored reference events are out of date; run .venv/bin/python tools/make_reference_events.py")
