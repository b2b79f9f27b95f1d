"""The EventsProvider contract of ``ldkkit.events.queue``: what a handler's answer does to the queue.

LDK 0.1 (``lightning::events::EventsProvider``, ``process_events_body``): an event leaves the
queue once the handler returns ``Ok(())``; ``Err(ReplayEvent())`` leaves it, and the events after
it, to be handed over again. In Python, ``ReplayEvent`` may be returned or raised: both are a replay.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from test_wakers import _Untouchable  # (a stand-in for a lock that must not be taken)

from ldkkit.events import Event, ReplayEvent
from ldkkit.events.queue import EventHandlerError, EventQueue, ReturnedUnawaited
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


@pytest.mark.parametrize("form", ["plain", "async"])
def test_an_async_handler_returning_a_coroutine_unawaited_is_an_error_naming_it(form, recwarn):
    """``return persist(...)`` in an async handler, its ``await`` forgotten: that code never runs, so the event is not
    handled. It is the handler's error, which says what to write, and the coroutine is closed (no warning later)."""
    queue = queue_of(failed(1))
    ran: list[Event] = []

    async def persist(event):
        ran.append(event)

    async def handler(event):
        return persist(event)

    with pytest.raises(EventHandlerError) as info:
        queue.process(handler) if form == "plain" else asyncio.run(queue.process_async(handler))
    assert isinstance(info.value.error, ReturnedUnawaited) and queue.pending() == [failed(1)] and not ran
    assert str(info.value.error) == ("it returned persist(...) without awaiting it, so that code never ran. Write "
                                     "return await persist(...): a handler's answer is None or ReplayEvent()")
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_what_an_async_handler_returns_after_awaiting_is_its_answer():
    """``return await persist(...)``: the answer is what persist returned (here, a replay)."""
    queue = queue_of(failed(1))

    async def persist(event):
        return ReplayEvent()

    async def handler(event):
        return await persist(event)

    assert queue.process(handler) == 0 and queue.replay_requested and queue.pending() == [failed(1)]


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


@pytest.mark.parametrize("form", ["plain", "async"])
def test_the_observer_sees_each_event_just_before_the_handler_and_none_past_a_replay(form):
    """The world's event log: what was handed over, in order, and nothing the handler was not given."""
    queue = queue_of(failed(1), failed(2), failed(3))
    order: list[tuple[str, Event]] = []
    queue.observer = lambda event: order.append(("observed", event))

    def handler(event):
        order.append(("handled", event))
        if event == failed(1):
            queue.push(failed(4))  # a second round: observed too
        return ReplayEvent() if event == failed(3) else None

    async def handler_async(event):
        return handler(event)

    handled = queue.process(handler) if form == "plain" else asyncio.run(queue.process_async(handler_async))
    assert handled == 2
    assert order == [("observed", failed(1)), ("handled", failed(1)), ("observed", failed(2)),
                     ("handled", failed(2)), ("observed", failed(3)), ("handled", failed(3))]
    order.clear()
    queue.process(lambda e: None) if form == "plain" else asyncio.run(queue.process_async(lambda e: None))
    assert order == [("observed", failed(3)), ("observed", failed(4))]


def test_a_push_takes_no_lock():
    """An append is atomic, and only adds at the end: what reorders the queue takes the lock, not a push."""
    queue = queue_of(failed(1))
    lock, queue._lock = queue._lock, _Untouchable()
    queue.push(failed(2))
    queue._lock = lock
    assert queue.pending() == [failed(1), failed(2)] and queue.get_future().is_complete()


def test_replace_refills_the_queues_own_list_so_no_push_lands_elsewhere():
    queue = queue_of(failed(1))
    own = queue._events  # a push appends to it without the lock: it must stay the queue's list
    given = [failed(2), failed(3)]
    queue.replace(given)
    given.append(failed(9))  # the caller's list stays the caller's
    queue.push(failed(4))
    assert queue._events is own and queue.pending() == [failed(2), failed(3), failed(4)]


def test_events_pushed_from_many_threads_while_processing_are_each_handled_once_in_each_threads_order():
    queue = EventQueue("test")
    producers, per_producer = 4, 500
    handled: list[Event] = []

    def produce(p: int) -> None:
        for i in range(per_producer):
            queue.push(Event.PaymentFailed(PaymentId(bytes([p]) * 30 + i.to_bytes(2, "big")), None, None))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) or queue:
        queue.process(handled.append)
    for thread in threads:
        thread.join()
    assert len(handled) == producers * per_producer
    for p in range(producers):
        ids = [int.from_bytes(bytes(e.payment_id)[30:], "big") for e in handled if bytes(e.payment_id)[0] == p]
        assert ids == list(range(per_producer))
