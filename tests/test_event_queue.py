"""The EventsProvider contract of ``ldkkit.events.queue``: what a handler's answer does to the queue.

LDK 0.1 (``lightning::events::EventsProvider``, ``process_events_body``): an event leaves the
queue once the handler returns ``Ok(())``; ``Err(ReplayEvent())`` leaves it, and the events after
it, to be handed over again. In Python, ``ReplayEvent`` may be returned or raised: both are a replay.
"""

from __future__ import annotations

import asyncio

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
