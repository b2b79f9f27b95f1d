"""The EventsProvider contract of ``ldkkit.events.queue``: what a handler's answer does to the queue.

LDK 0.1 (``lightning::events::EventsProvider``, ``process_events_body``): an event leaves the
queue once the handler returns ``Ok(())``; ``Err(ReplayEvent())`` leaves it, and the events after
it, to be handed over again. In Python, ``ReplayEvent`` may be returned or raised: both are a replay.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from ldkkit.events import Event, ReplayEvent
from ldkkit.events.queue import EventHandlerError, EventQueue
from ldkkit.types import PaymentId


def failed(n: int) -> Event:
    return Event.PaymentFailed(PaymentId(bytes([n]) * 32), None, None)


def queue_of(*events: Event) -> EventQueue:
    queue = EventQueue("test")
    for event in events:
        queue.push(event)
    return queue


def raising_replay(event):
    raise ReplayEvent()


async def raising_replay_async(event):
    raise ReplayEvent()


@pytest.mark.parametrize("answer", [raising_replay, lambda e: ReplayEvent(), lambda e: ReplayEvent],
                         ids=["raised", "returned", "the class"])
def test_a_replay_keeps_the_event_and_those_after_it_and_is_no_error(answer):
    queue = queue_of(failed(1), failed(2))
    assert queue.process(answer) == 0  # no EventHandlerError: a replay is an answer, not a failure
    assert queue.pending() == [failed(1), failed(2)] and queue.replay_requested


@pytest.mark.parametrize("handler", [raising_replay_async, raising_replay], ids=["async", "plain"])
def test_a_replay_raised_by_an_async_handler_is_a_replay_too(handler):
    queue = queue_of(failed(1))
    assert asyncio.run(queue.process_async(handler)) == 0
    assert queue.pending() == [failed(1)] and queue.replay_requested


def test_an_async_handler_given_to_the_plain_processor_may_raise_replay_event():
    queue = queue_of(failed(1))
    assert queue.process(raising_replay_async) == 0
    assert queue.pending() == [failed(1)] and queue.replay_requested


def test_any_other_exception_is_the_handlers_error_and_the_event_stays():
    queue = queue_of(failed(1), failed(2))
    seen = []

    def handler(event):
        seen.append(event)
        if event == failed(2):
            raise ValueError("disk full")

    with pytest.raises(EventHandlerError) as info:
        queue.process(handler)
    assert info.value.event == failed(2) and isinstance(info.value.error, ValueError)
    assert queue.pending() == [failed(2)] and not queue.replay_requested
    assert seen == [failed(1), failed(2)]


def test_a_queue_is_true_while_events_wait_and_a_new_one_has_no_replay_pending():
    queue = EventQueue("test")
    assert not queue and queue.replay_requested is False
    queue.push(failed(1))
    assert queue
    queue.process(lambda e: None)
    assert not queue


def test_process_counts_the_events_handled_across_rounds_and_up_to_a_replay():
    """Events the handler causes are handled in the same call (a second round); the count covers both."""
    queue = queue_of(failed(1), failed(2))

    def handler(event):
        if event == failed(1):
            queue.push(failed(3))  # caused by handling: comes after failed(2), in a second round

    assert queue.process(handler) == 3 and not queue
    queue = queue_of(failed(1), failed(2), failed(3))
    assert queue.process(lambda e: ReplayEvent() if e == failed(3) else None) == 2
    assert queue.pending() == [failed(3)]


def test_process_async_counts_the_events_handled_across_rounds_and_up_to_a_replay():
    queue = queue_of(failed(1), failed(2))

    async def handler(event):
        if event == failed(1):
            queue.push(failed(3))

    assert asyncio.run(queue.process_async(handler)) == 3 and not queue
    queue = queue_of(failed(1), failed(2), failed(3))

    async def replays_third(event):
        return ReplayEvent() if event == failed(3) else None

    assert asyncio.run(queue.process_async(replays_third)) == 2
    assert queue.pending() == [failed(3)]


@pytest.mark.parametrize("form", ["plain", "async"])
def test_processing_from_inside_the_handler_returns_at_once_handling_nothing(form):
    """LDK's ``pending_events_processor`` flag: the caller already handing out events hands out the rest."""
    queue = queue_of(failed(1), failed(2))
    inner: list[int] = []

    def handler(event):
        if event == failed(1):
            inner.append(queue.process(lambda e: None))

    async def handler_async(event):
        if event == failed(1):
            inner.append(await queue.process_async(lambda e: None))

    handled = queue.process(handler) if form == "plain" else asyncio.run(queue.process_async(handler_async))
    assert inner == [0] and handled == 2


def test_an_async_handlers_error_names_its_event():
    queue = queue_of(failed(1), failed(2))

    async def handler(event):
        if event == failed(2):
            raise ValueError("disk full")

    with pytest.raises(EventHandlerError) as info:
        asyncio.run(queue.process_async(handler))
    assert info.value.event == failed(2) and queue.pending() == [failed(2)]


def test_the_error_says_what_raised_on_which_event_and_that_nothing_is_lost():
    error = EventHandlerError(failed(1), ValueError("disk full"))
    assert str(error) == (
        "your event handler raised ValueError while handling Event.PaymentFailed: disk full\n"
        f"  event: {failed(1)!r}\n"
        "  Nothing is lost: the event stays queued and will be handed to the handler again. Fix the handler (the "
        "last lines of its traceback point at the line that failed), then process events again.")


def test_plain_processing_runs_an_async_handler_on_the_queues_runner():
    """The world gives its queues a runner, so tasks an async handler spawns live on the world's loop."""
    queue = queue_of(failed(1))
    ran: list[object] = []

    def runner(coro):
        ran.append(coro)
        return asyncio.run(coro)

    async def handler(event):
        return None

    queue.runner = runner
    assert queue.process(handler) == 1 and len(ran) == 1


def test_an_async_handler_given_to_plain_processing_inside_a_running_loop_runs_in_a_thread_of_its_own():
    """No runner, and a loop already running here: the coroutine runs to its end on a new loop, in a thread
    named so it can be told apart (ldkkit-async-handler); its answer is judged as usual."""
    queue = queue_of(failed(1), failed(2))
    threads: list[str] = []

    async def handler(event):
        threads.append(threading.current_thread().name)
        return ReplayEvent() if event == failed(2) else None

    async def main():
        return queue.process(handler)

    assert asyncio.run(main()) == 1
    assert threads == ["ldkkit-async-handler"] * 2 and queue.pending() == [failed(2)]
