"""The world's log of what each node's handler was given: ``(simulation seconds, block height, event)``.

Checks and the dashboard read it, so each entry holds the time and the chain's height at the moment the
handler got the event, on either clock.
"""

from __future__ import annotations

import pytest

from ldkkit.sim.world import World


@pytest.mark.parametrize("real_time", [False, True], ids=["virtual clock", "real clock"])
def test_each_event_is_logged_with_the_time_and_height_at_which_the_handler_got_it(real_time):
    with World(seed=5, real_time=real_time) as world:
        given: list[tuple[float, int, object]] = []

        def handler(*args):  # every request left unanswered: enough to get events at different moments
            given.append((world.clock.now(), world.chain.height(), args[-1]))

        node = world.add_node("learner", handler=handler)
        bob = world.add_node("bob")
        world.connect(bob, node)
        for _ in range(2):
            world.advance(0.05 if real_time else 7)
            if not real_time:
                world.mine(2)
            bob.channel_manager.create_channel(node.node_id, 6_000_000, 0, 1, None, None)
            world.run()
        log = node.event_log
        assert len(log) >= 2 and [(h, e) for _, h, e in log] == [(h, e) for _, h, e in given]
        assert log[0][0] < log[-1][0] and log[0][1] == world.chain.height() - (0 if real_time else 2)
        for (logged_s, _, _), (handled_s, _, _) in zip(log, given, strict=True):
            assert type(logged_s) is float
            if real_time:  # the real clock moves on between the log and the handler, which comes next
                assert 0 < logged_s <= handled_s
            else:
                assert logged_s == handled_s


def test_the_log_reads_as_a_list_of_entries():
    """Kept in columns (no tuple per event for the garbage collector to follow), read as a list of tuples:
    by index from either end, by slice, in order, and an index past the end says how many there are."""
    from ldkkit.node import EventLog

    log, entries = EventLog(), [(0.5 * i, i // 2, f"event {i}") for i in range(5)]
    for entry in entries:
        log.record(*entry)
    assert len(log) == 5 and list(log) == entries and log[0] == entries[0] and log[-1] == entries[-1]
    assert log[1:4] == entries[1:4] and log[::-2] == entries[::-2] and log[7:] == []
    assert log.index(entries[3]) == 3 and entries[2] in log and repr(log) == f"EventLog({entries!r})"
    with pytest.raises(IndexError, match="5 events logged"):
        log[5]
    with pytest.raises(IndexError):
        log[-6]


def test_an_entry_half_recorded_is_not_read():
    """Another thread may read while an entry is recorded: what it reads is whole, the half-recorded one left out."""
    from ldkkit.node import EventLog

    log = EventLog()
    log.record(1.0, 1, "first")
    log._times.append(2.0)  # (recording the second: its time is in, its height and event not yet)
    assert len(log) == 1 and list(log) == [(1.0, 1, "first")] and log[-1] == (1.0, 1, "first") and log[:] == [
        (1.0, 1, "first")]


def test_an_event_recorded_after_events_not_stamped_yet_keeps_its_own_time():
    """On a virtual clock an event handed out is stamped later (as the world moves on): one recorded with its own
    time meanwhile comes after them, and they take the time now, each entry whole."""
    from ldkkit.node import EventLog
    from ldkkit.sim.clock import VirtualClock

    clock, blocks = VirtualClock(), ["genesis", "block 1"]
    log = EventLog()
    handed = log.recorder(clock, blocks)
    clock.move_to(2_000_000)
    handed("handed out")
    log.record(5.0, 7, "recorded")
    assert list(log) == [(2.0, 1, "handed out"), (5.0, 7, "recorded")]


def test_an_event_handed_after_a_handler_let_time_pass_is_logged_at_its_own_time():
    """On the virtual clock an event's time and height are stamped as the clock or the chain moves on, not at each
    event: two events of one batch, the first's async handler sleeping 5 s in the world, are 5 s apart in the log,
    and one handed out after a block mined at the same moment carries the block's height."""
    import asyncio
    from datetime import timedelta

    from ldkkit.events import Event
    from ldkkit.sim.node_process import run_processor

    with World(seed=5) as world:
        async def handler(*args):
            if isinstance(args[-1], Event.PendingHTLCsForwardable):
                await asyncio.sleep(5)

        node = world.add_node("learner", handler=handler)
        with run_processor(node, "thread"):
            world.advance(1)
            queue = node.channel_manager._events
            world.runtime.call(lambda: [queue.push(Event.PendingHTLCsForwardable(timedelta(seconds=1))),
                                        queue.push(Event.ConnectionNeeded(node.node_id, ()))])
            world.advance(10)
            log = node.event_log
            assert [(t, type(e).__name__) for t, _, e in log][-2:] == [
                (1.0, "PendingHTLCsForwardable"), (6.0, "ConnectionNeeded")]
            for _ in range(2):  # an event, then a block with no time passing (add_node's funding is mined so), again
                world.runtime.call(lambda: queue.push(Event.ConnectionNeeded(node.node_id, ())))
                world.runtime.call(world._mine_one)
            height = world.chain.height()
            assert [entry[:2] for entry in log[-2:]] == [(11.0, height - 2), (11.0, height - 1)]


def test_a_reader_as_a_block_is_added_does_not_stamp_earlier_events_with_its_height():
    """The logs are stamped before a block is added, not by a listener once it is in: a reader in another thread (a
    dashboard, a learner's task while ``mine_async`` runs) reading just after the block is in, before the listeners
    are told, stamped the events handed before it with the new block's height."""
    from ldkkit.events import Event

    with World(seed=5) as world:
        node = world.add_node("learner", handler=lambda *args: None)
        world.advance(1)
        queue = node.channel_manager._events
        world.runtime.call(lambda: queue.push(Event.ConnectionNeeded(node.node_id, ())))
        before, mine_block = world.chain.height(), world.chain._mine_block

        def mine_block_read_meanwhile(*args):
            block = mine_block(*args)
            len(node.event_log)  # (the other thread's read, at this moment)
            return block

        world.chain._mine_block = mine_block_read_meanwhile
        world.runtime.call(world._mine_one)
        assert world.chain.height() == before + 1
        assert [(t, h, type(e).__name__) for t, h, e in node.event_log][-1] == (1.0, before, "ConnectionNeeded")
