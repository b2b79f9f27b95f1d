"""Workbook 5, forwarding: process_pending_htlc_forwards after a random delay in [t, 5t), in a task."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import random
import threading
import time
from datetime import timedelta
from typing import Any

from ldkkit.events import Event, ReplayEvent

from . import Fresh, right, wrong
from .arms import asks_again_first, compose, spawn

EX = "forwarding"
FWD = Event.PendingHTLCsForwardable


def _fraction(keys_manager: Any, nbytes: int = 4) -> float:
    return int.from_bytes(keys_manager.get_secure_random_bytes()[:nbytes], "big") / 2 ** (8 * nbytes)


def forward_after(delay_of: Any, *, plain_spawn: bool = False) -> Any:
    """Spawn a task that waits ``delay_of(t_seconds, keys_manager)`` seconds, then forwards."""

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        delay = delay_of(event.time_forwardable.total_seconds(), keys_manager)

        async def later() -> None:
            await asyncio.sleep(delay)
            channel_manager.process_pending_htlc_forwards()

        spawn(later())

    return arm


# --- RIGHT ------------------------------------------------------------------------------------------------

def call_later_ms(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """ldk-sample's formula in milliseconds (gen_range(t_ms..5*t_ms)), scheduled with loop.call_later."""
    t_ms = int(event.time_forwardable.total_seconds() * 1000)
    r = int.from_bytes(keys_manager.get_secure_random_bytes()[:8], "little")
    ms = t_ms + r % (4 * t_ms)
    asyncio.get_running_loop().call_later(ms / 1000, channel_manager.process_pending_htlc_forwards)


def ensure_future_timedelta(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """The delay as a timedelta; the byte as a fraction of 255 (5t reachable); asyncio.ensure_future."""
    delay = event.time_forwardable * (1 + 4 * keys_manager.get_secure_random_bytes()[0] / 255)

    async def forward() -> None:
        await asyncio.sleep(delay.total_seconds())
        channel_manager.process_pending_htlc_forwards()

    from .arms import background_tasks

    background_tasks.add(asyncio.ensure_future(forward()))


def sleeps_then_forwards(how: str) -> Any:
    """The random wait slept with time.sleep off the node's loop, then the forward: in work handed to
    asyncio.to_thread, in a task awaiting loop.run_in_executor(None, time.sleep, delay), in a pool of its own, or in a
    thread of its own. time.sleep there waits on the world's clock, as asyncio.sleep does in a task."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        delay = event.time_forwardable.total_seconds() * (1 + 4 * _fraction(keys_manager))

        def work() -> None:
            if how == "event_wait":  # (a timed wait nothing ends early: the clock does)
                threading.Event().wait(delay)
            elif how == "condition_wait":
                with (condition := threading.Condition()):
                    condition.wait(delay)
            else:
                time.sleep(delay)
            channel_manager.process_pending_htlc_forwards()

        async def in_executor() -> None:
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, delay)
            channel_manager.process_pending_htlc_forwards()

        if how == "to_thread":
            spawn(asyncio.to_thread(work))
        elif how == "run_in_executor":
            spawn(in_executor())
        elif how == "pool":
            pool.submit(work)
        else:
            threading.Thread(target=work).start()

    return compose({FWD: arm})



def fails_back_at_once(channel_manager: Any, **_: Any) -> None:
    """On HTLCHandlingFailed, process_pending_htlc_forwards() at once, "so that the failure goes back"."""
    channel_manager.process_pending_htlc_forwards()

CASES_RIGHT_PLAIN = compose({FWD: forward_after(lambda t, k: t + 4 * t * _fraction(k, 8))}, plain=True)


def worker_woken_before_its_timeout(*, wait_s: float) -> Any:
    """One worker thread, started at the first event: it waits for work with ``Event.wait(wait_s)`` (its timeout only
    a safety net), and the handler hands it each delay and sets the event; the worker sleeps the delay, then forwards.
    With ``wait_s`` short, the worker's own timeout ends each wait too: it then looks again for work."""
    delays: list[float] = []
    ready = threading.Event()
    started: list[threading.Thread] = []

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        def worker() -> None:
            while True:
                if not ready.wait(wait_s):
                    continue
                ready.clear()
                while delays:
                    time.sleep(delays.pop(0))
                    channel_manager.process_pending_htlc_forwards()

        if not started:
            started.append(threading.Thread(target=worker, daemon=True))
            started[0].start()
        delays.append(event.time_forwardable.total_seconds() * (1 + 4 * _fraction(keys_manager)))
        ready.set()

    return compose({FWD: arm})


def waits_a_fixed_delay_on_an_event(channel_manager: Any, **_: Any) -> None:
    threading.Thread(target=lambda: (threading.Event().wait(0.3), channel_manager.process_pending_htlc_forwards())
                     ).start()


def seeded_random(t: float, keys_manager: Any) -> float:
    """Python's random, seeded from the bytes drawn for this event."""
    return random.Random(keys_manager.get_secure_random_bytes()).uniform(t, 5 * t)


def seeded_once() -> Any:
    """Python's random, seeded once from the bytes drawn for the first event; the later delays come from it."""
    generator: list[random.Random] = []

    def delay(t: float, keys_manager: Any) -> float:
        if not generator:
            generator.append(random.Random(keys_manager.get_secure_random_bytes()))
        return generator[0].uniform(t, 5 * t)

    return compose({FWD: forward_after(delay)})

# --- WRONG ------------------------------------------------------------------------------------------------


def cycles_through_multiples(*, draws: bool) -> Any:
    """Delays from a fixed list of multiples of time_forwardable, in turn, all in [t, 5t); the random bytes drawn
    (when ``draws``) and ignored."""
    multiples = itertools.cycle((1.5, 4.9, 2, 3, 1.1))

    def delay(t: float, keys_manager: Any) -> float:
        if draws:
            keys_manager.get_secure_random_bytes()
        return t * next(multiples)

    return compose({FWD: forward_after(delay)})


def whole_multiples_of(choices: int) -> Any:
    """A delay of 1 to ``choices`` times time_forwardable, picked by a random byte: in the range, from the bytes, and
    one of a few an observer can guess (``choices`` 2: t or 5t)."""
    def delay(t: float, keys_manager: Any) -> float:
        pick = keys_manager.get_secure_random_bytes()[0] % choices
        return t * (1 + (pick * 4 if choices == 2 else pick))

    return compose({FWD: forward_after(delay)})


def task_waits_on_an_event(channel_manager: Any, event: Any, **_: Any) -> None:
    """A task that waits with threading.Event().wait(delay): it blocks the loop the task runs on."""
    async def later() -> None:
        threading.Event().wait(event.time_forwardable.total_seconds())
        channel_manager.process_pending_htlc_forwards()

    spawn(later())


def sleeps_blocking(channel_manager: Any, event: Any, **_: Any) -> None:
    time.sleep(event.time_forwardable.total_seconds())
    channel_manager.process_pending_htlc_forwards()


async def awaits_in_handler(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    await asyncio.sleep(event.time_forwardable.total_seconds() * (1 + 4 * _fraction(keys_manager)))
    channel_manager.process_pending_htlc_forwards()


async def awaits_in_handler_then_spawns(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Waits the random delay in the handler itself, then spawns a task that forwards at once."""
    await asyncio.sleep(event.time_forwardable.total_seconds() * (1 + 4 * _fraction(keys_manager)))

    async def now() -> None:
        channel_manager.process_pending_htlc_forwards()

    spawn(now())


def one_worker_per_loop(delay_of: Any) -> Any:
    """One task per event loop forwards for every event: each event queues its delay, ``delay_of(t, keys_manager)``,
    the worker waits it, then forwards."""
    workers: dict[Any, asyncio.Queue[Any]] = {}

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        loop = asyncio.get_running_loop()
        if loop not in workers:
            work: asyncio.Queue[Any] = asyncio.Queue()
            workers[loop] = work

            async def worker() -> None:
                while True:
                    delay = await work.get()
                    await asyncio.sleep(delay)
                    channel_manager.process_pending_htlc_forwards()

            spawn(worker())
        workers[loop].put_nowait(delay_of(event.time_forwardable.total_seconds(), keys_manager))

    return compose({FWD: arm})


def adds_up_fees() -> Any:
    """Keeps the total of the fees earned, adding each PaymentForwarded's ``total_fee_earned_msat`` as it is."""
    total = [0]

    def arm(event: Any, **_: Any) -> None:
        total[0] += event.total_fee_earned_msat

    return compose({Event.PaymentForwarded: arm})


def closes_on_handling_failed(channel_manager: Any, event: Any, **_: Any) -> None:
    """Force-closes the channel a failed HTLC came in on ("that peer sent a payment that failed")."""
    for channel in channel_manager.list_channels():
        if channel.channel_id == event.prev_channel_id:
            channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, channel.counterparty.node_id,
                                                                "a payment that failed")


def forwards_at_once(channel_manager: Any, **_: Any) -> None:
    channel_manager.process_pending_htlc_forwards()


def forwards_now_and_later(channel_manager: Any, keys_manager: Any, event: Any, **kw: Any) -> None:
    channel_manager.process_pending_htlc_forwards()
    forward_after(lambda t, k: t * (1 + 4 * _fraction(k)))(channel_manager=channel_manager,
                                                          keys_manager=keys_manager, event=event)


def sleeps_milliseconds(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    t_ms = event.time_forwardable.total_seconds() * 1000
    delay_ms = t_ms * (1 + 4 * _fraction(keys_manager))

    async def later() -> None:
        await asyncio.sleep(delay_ms)  # milliseconds slept as seconds
        channel_manager.process_pending_htlc_forwards()

    spawn(later())


def whole_seconds(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """time_forwardable.seconds for total_seconds(): timedelta's whole seconds, 0 for 100 ms."""
    delay = event.time_forwardable.seconds * (1 + 4 * _fraction(keys_manager))

    async def later() -> None:
        await asyncio.sleep(delay)
        channel_manager.process_pending_htlc_forwards()

    spawn(later())


def forgets_to_forward(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    async def later() -> None:
        await asyncio.sleep(event.time_forwardable.total_seconds() * (1 + 4 * _fraction(keys_manager)))

    spawn(later())


def replays_each_forward_once() -> Any:
    """A PaymentForwarded arm that asks for each event once more (say, its log write failed) before taking it."""
    asked: set[bytes] = set()

    def arm(event: Any, **_: Any) -> Any:
        if event.encode() not in asked:
            asked.add(event.encode())
            return ReplayEvent()
        return None

    return arm


def disconnects_after_forwards(n: int) -> Any:
    """A PaymentForwarded arm that disconnects the next hop after the ``n``-th forward ("enough for today")."""
    forwards: list[Any] = []

    def arm(peer_manager: Any, event: Any, **_: Any) -> None:
        forwards.append(event)
        if len(forwards) == n:
            peer_manager.disconnect_by_node_id(event.next_node_id)

    return arm


def disconnects_on_handling_failed(peer_manager: Any, event: Any, **_: Any) -> None:
    """Disconnects the next hop an HTLC could not go on to ("it refused it")."""
    node_id = getattr(event.failed_next_destination, "node_id", None)
    if node_id is not None:
        peer_manager.disconnect_by_node_id(node_id)


def polls_forever() -> Any:
    """From the first PendingHTLCsForwardable on, a loop forwards after each random wait in [t, 5t), for ever."""
    started: list[bool] = []

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if started:
            return
        started.append(True)
        t = event.time_forwardable.total_seconds()

        async def poll() -> None:
            while True:
                await asyncio.sleep(t * (1 + 4 * _fraction(keys_manager)))
                channel_manager.process_pending_htlc_forwards()

        spawn(poll())

    return arm


def with_a_safety_net(period_s: float) -> Any:
    """ldk-sample's arm, plus one loop, started at the first event, that calls process_pending_htlc_forwards() every
    ``period_s`` seconds "in case an event is ever missed"."""
    started: list[bool] = []

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **kw: Any) -> None:
        forward_after(lambda t, k: t * (1 + 4 * _fraction(k)))(channel_manager=channel_manager,
                                                               keys_manager=keys_manager, event=event, **kw)
        if not started:
            started.append(True)

            async def safety_net() -> None:
                while True:
                    await asyncio.sleep(period_s)
                    channel_manager.process_pending_htlc_forwards()

            spawn(safety_net())

    return compose({FWD: arm})


def forwards_twice(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """The random wait, the forward, and the forward again 50 ms later, "in case something came meanwhile"."""
    delay = event.time_forwardable.total_seconds() * (1 + 4 * _fraction(keys_manager))

    async def forward() -> None:
        await asyncio.sleep(delay)
        channel_manager.process_pending_htlc_forwards()
        await asyncio.sleep(0.05)
        channel_manager.process_pending_htlc_forwards()

    spawn(forward())


def flushes_when_forwarded(channel_manager: Any, **_: Any) -> None:
    """On PaymentForwarded: "forward anything else waiting" at once."""
    channel_manager.process_pending_htlc_forwards()


async def waits_forever(**_: Any) -> None:
    await asyncio.Event().wait()


CASES = [
    right(EX, "asks_again_for_every_event_first", Fresh(asks_again_first),
          why="returns ReplayEvent() the first time it sees each event, then handles it: each "
              "PendingHTLCsForwardable judged where it was handled"),
    right(EX, "call_later_in_milliseconds", compose({FWD: call_later_ms}),
          why="t_ms + r % (4 t_ms), loop.call_later"),
    right(EX, "ensure_future_timedelta_byte", compose({FWD: ensure_future_timedelta}),
          why="timedelta arithmetic, byte / 255, asyncio.ensure_future"),
    right(EX, "plain_def_eight_byte_fraction", CASES_RIGHT_PLAIN,
          why="plain def handler spawning on the running loop; an 8-byte fraction"),
    right(EX, "random_seeded_from_the_bytes", compose({FWD: forward_after(seeded_random)}),
          why="random.Random(keys_manager.get_secure_random_bytes()).uniform(t, 5t) for each event"),
    right(EX, "random_seeded_once_from_the_bytes", Fresh(seeded_once),
          why="one random.Random seeded from the first event's bytes gives every delay"),
    right(EX, "sleeps_in_to_thread_then_forwards", Fresh(lambda: sleeps_then_forwards("to_thread")),
          why="spawn(asyncio.to_thread(work)), work: time.sleep(delay), then forward: it was told 'Happened: 0 ms', "
              "to_thread's time.sleep taking real time while the clock stood still"),
    right(EX, "awaits_run_in_executor_sleep_then_forwards", Fresh(lambda: sleeps_then_forwards("run_in_executor")),
          why="a task awaits loop.run_in_executor(None, time.sleep, delay), then forwards: told '0 ms' before"),
    right(EX, "sleeps_in_its_own_pool_then_forwards", Fresh(lambda: sleeps_then_forwards("pool")),
          why="a ThreadPoolExecutor of its own sleeps, then forwards: it was told 'Happened: 0 ms'"),
    right(EX, "sleeps_in_its_own_thread_then_forwards", Fresh(lambda: sleeps_then_forwards("thread")),
          why="a threading.Thread of its own sleeps, then forwards (the grader once told it '0 ms')"),
    right(EX, "waits_on_an_event_in_its_own_thread_then_forwards", Fresh(lambda: sleeps_then_forwards("event_wait")),
          why="a thread of its own waits with threading.Event().wait(delay), then forwards: the timed wait took real "
              "time once the thread stopped counting, and the check told it 'never called'"),
    right(EX, "worker_waits_on_an_event_with_a_long_timeout",
          Fresh(lambda: worker_woken_before_its_timeout(wait_s=3600)),
          why="a worker thread waits for work with Event.wait(3600); the handler sets the event: woken before its "
              "timeout, it sleeps the delay, then forwards"),
    right(EX, "worker_waits_on_an_event_with_a_short_timeout", Fresh(lambda: worker_woken_before_its_timeout(wait_s=7)),
          why="the same worker, its Event.wait(7) timing out now and then on the world's clock between events"),
    right(EX, "waits_on_a_condition_in_its_own_thread_then_forwards",
          Fresh(lambda: sleeps_then_forwards("condition_wait")),
          why="a thread of its own waits with Condition.wait(delay), then forwards (told 'never called' too)"),
    right(EX, "replays_each_payment_forwarded_once",
          Fresh(lambda: compose({Event.PaymentForwarded: replays_each_forward_once()})),
          why="returns ReplayEvent() the first time it sees each PaymentForwarded: ten forwards, not twenty"),

    wrong(EX, "fixed_delay", compose({FWD: forward_after(lambda t, k: 2 * t)}), "different random delay",
          "fixed delay", why="always 2 × time_forwardable"),
    wrong(EX, "sleeps_the_timedelta_itself", compose({FWD: forward_after(lambda t, k: timedelta(seconds=t))}),
          "the task your handler spawned to end normally", "TypeError",
          why="await asyncio.sleep(a timedelta): the task raised TypeError, and the check said 'never called'"),
    wrong(EX, "fixed_delay_waited_on_an_event", Fresh(lambda: compose({FWD: waits_a_fixed_delay_on_an_event})),
          "different random delay", "fixed delay",
          why="a thread of its own waits threading.Event().wait(0.3), then forwards: the delay never changes"),
    wrong(EX, "waits_t_or_five_t", whole_multiples_of(2), "a whole multiple of time_forwardable",
          why="t or 5t, by a random byte: it passed, the extremes and the spread being all that was judged"),
    wrong(EX, "waits_a_whole_multiple", whole_multiples_of(5), "a whole multiple of time_forwardable",
          why="1 to 5 times t, by a random byte: a choice among five delays, not a time in the range"),
    wrong(EX, "draws_the_bytes_and_ignores_them", Fresh(lambda: cycles_through_multiples(draws=True)),
          "the same bytes, the same delay", "must come from the bytes",
          why="draws the random bytes, then waits 1.5, 4.9, 2, 3, 1.1 × time_forwardable in turn: it passed, the "
              "extremes only showing that the delays stay in range"),
    wrong(EX, "cycles_through_multiples_without_drawing", Fresh(lambda: cycles_through_multiples(draws=False)),
          "keys_manager.get_secure_random_bytes()", "never called it",
          why="waits 1.5, 4.9, 2, 3, 1.1 × time_forwardable in turn, drawing no random bytes"),
    wrong(EX, "range_from_zero", compose({FWD: forward_after(lambda t, k: 5 * t * _fraction(k))}),
          "a delay between 100 and 500 ms", "1 + 4", why="[0, 5t)"),
    wrong(EX, "range_to_six", compose({FWD: forward_after(lambda t, k: t * (1 + 5 * _fraction(k)))}),
          "a delay between 100 and 500 ms", "five times", why="[t, 6t)"),
    wrong(EX, "three_bytes_over_four", compose({FWD: forward_after(
        lambda t, k: t * (1 + 4 * int.from_bytes(k.get_secure_random_bytes()[:3], "big") / 2**32))}),
        "spread over the range", "2**32", why="3 random bytes divided by 2**32: every delay within 2 % of t"),
    wrong(EX, "range_below_t", compose({FWD: forward_after(lambda t, k: t * _fraction(k))}),
          "a delay between 100 and 500 ms", why="[0, t)"),
    wrong(EX, "task_waits_on_a_thread_event", compose({FWD: task_waits_on_an_event}), "Event.wait()",
          "asyncio.sleep", why="a task waits with threading.Event().wait(delay): it was told '0 ms' and the formula"),
    wrong(EX, "milliseconds_as_seconds", compose({FWD: sleeps_milliseconds}), "already in seconds",
          why="await asyncio.sleep(t_ms): milliseconds slept as seconds"),
    wrong(EX, "whole_seconds_of_the_timedelta", compose({FWD: whole_seconds}), "0 ms", ".seconds",
          "total_seconds()", why="time_forwardable.seconds (whole seconds: 0) for total_seconds(): every delay 0 ms; "
          "the hint gave the formula it had already written"),
    wrong(EX, "seconds_divided_by_1000", compose({FWD: forward_after(lambda t, k: t / 1000 * (1 + 4 * _fraction(k)))}),
          "already in seconds", why="total_seconds() / 1000, \"to make it seconds\": every delay under a millisecond; "
          "the hint gave the formula it had already written"),
    wrong(EX, "time_sleep_in_handler", compose({FWD: sleeps_blocking}), "time.sleep", "asyncio.sleep",
          why="time.sleep in the handler"),
    wrong(EX, "awaits_in_handler_then_spawns", compose({FWD: awaits_in_handler_then_spawns}),
          "the handler itself waited", "create_task", why="awaits the random delay in the handler, then spawns a task "
          "that forwards at once: it passed, only the call's own time being looked at"),
    wrong(EX, "one_worker_per_loop_with_a_fixed_delay",
          Fresh(lambda: one_worker_per_loop(lambda t, keys_manager: keys_manager.get_secure_random_bytes() and 2 * t)),
          "a different random delay each time", "always 200 ms", why="one worker task per loop, each event queuing "
          "the same 2 t (bytes drawn, and ignored): it passed, only the first event's delay being judged, the "
          "worker's calls all made for it"),
    right(EX, "one_worker_per_loop_with_random_delays",
          Fresh(lambda: one_worker_per_loop(lambda t, keys_manager: t * (1 + 4 * _fraction(keys_manager))))),
    wrong(EX, "sleeps_microseconds_as_seconds",
          compose({FWD: forward_after(lambda t, keys_manager: t * 1e6 * (1 + 4 * _fraction(keys_manager)))}),
          "the task your handler spawned for it still waited", "far too long", why="the delay in microseconds slept "
          "as seconds: it was told 'it was never called' and to spawn a task that sleeps, which it did"),
    wrong(EX, "adds_up_fees_unchecked", Fresh(adds_up_fees), "TypeError", "total_fee_earned_msat is None",
          "only when it is not None", why="adds every total_fee_earned_msat to a total: it passed, no story giving a "
          "PaymentForwarded with no fee, though the workbook says never to add it up unchecked"),
    wrong(EX, "waits_from_100_ms_whatever_time_forwardable_says",
          compose({FWD: forward_after(lambda t, keys_manager: 0.1 * (1 + 4 * _fraction(keys_manager)))}),
          "a delay between 2000 and 10000 ms", why="ldk-sample's formula on a constant 100 ms, time_forwardable "
          "never read: it passed, every event of the story saying 100 ms (LDK says 2 s after a restart)"),
    wrong(EX, "disconnects_on_handling_failed", compose({Event.HTLCHandlingFailed: disconnects_on_handling_failed}),
          "peer_manager.disconnect_by_node_id, while it handled HTLCHandlingFailed", "left to the PeerManager",
          why="disconnects the next hop an HTLC could not go on to: it passed, the refused payment being the story's "
              "last forward"),
    wrong(EX, "force_closes_on_handling_failed", compose({Event.HTLCHandlingFailed: closes_on_handling_failed}),
          "every channel still open at the end", "force_close_broadcasting_latest_txn while it handled "
          "HTLCHandlingFailed", why="force-closes the channel a failed HTLC came in on: it passed, the channels "
          "never looked at"),
    wrong(EX, "awaits_in_handler", compose({FWD: awaits_in_handler}), "the handler itself waited", "create_task",
          why="awaits the sleep inside the handler instead of spawning"),
    wrong(EX, "forwards_at_once", compose({FWD: forwards_at_once}), "called at once", "wait a random time",
          why="process_pending_htlc_forwards right away"),
    wrong(EX, "forwards_now_and_later", compose({FWD: forwards_now_and_later}), "called at once",
          why="forwards at once, and again after a delay"),
    wrong(EX, "never_forwards", compose({FWD: None}), "process_pending_htlc_forwards", "never called",
          why="no PendingHTLCsForwardable arm"),
    wrong(EX, "never_returns_from_payment_forwarded", compose({Event.PaymentForwarded: waits_forever}),
          "10 PaymentForwarded events", "never returned from PaymentForwarded",
          why="awaits forever on the first PaymentForwarded: the later forwards never reach the handler (the hint "
              "once said a forward completes once the preimage comes back)"),
    wrong(EX, "disconnects_the_next_hop", Fresh(lambda: compose({Event.PaymentForwarded:
                                                                  disconnects_after_forwards(2)})),
          "10 PaymentForwarded events",
          "disconnected a peer (peer_manager.disconnect_by_node_id, while it handled PaymentForwarded)",
          why="disconnects carol after two forwards: the other HTLCs cannot go on, and are failed back"),
    wrong(EX, "disconnects_the_next_hop_at_once", Fresh(lambda: compose({Event.PaymentForwarded:
                                                                          disconnects_after_forwards(1)})),
          "10 PaymentForwarded events",
          "disconnected a peer (peer_manager.disconnect_by_node_id, while it handled PaymentForwarded)",
          why="disconnects carol at the first forward: one processing both fails a new HTLC and sends an older one's "
              "failure back, and the events it raised were read as coming before that (it was told 'failed back 0 ms "
              "after' and to stop calling process_pending_htlc_forwards from other arms, which it never did)"),
    wrong(EX, "polls_in_a_loop", Fresh(lambda: compose({FWD: polls_forever()})), "after the PendingHTLCsForwardable",
          "only from the task each", why="one loop forwards every random [t, 5t) for ever: an HTLC that arrives "
          "just before its turn goes on at once", slow=True),
    wrong(EX, "flushes_on_payment_forwarded", compose({Event.PaymentForwarded: flushes_when_forwarded}),
          "after the PendingHTLCsForwardable", "another event's arm", "while it handled PaymentForwarded",
          why="process_pending_htlc_forwards() on PaymentForwarded too: an HTLC just arrived goes on at once"),
    wrong(EX, "fails_back_at_once_on_htlc_handling_failed", compose({Event.HTLCHandlingFailed: fails_back_at_once}),
          "failed back 0 ms after", "while it handled HTLCHandlingFailed, which needs no such call",
          why="process_pending_htlc_forwards() from the HTLCHandlingFailed arm: the HTLC carol refused goes back at "
              "once (it passed: no HTLC failed in the story)"),
    wrong(EX, "polls_as_a_safety_net", Fresh(lambda: with_a_safety_net(60)), "called once for each "
          "PendingHTLCsForwardable", "a loop that polls", why="ldk-sample's arm, plus a loop forwarding every minute "
          "in case: it passed, its polls never falling just after an HTLC arrived (the workbook names such a loop)"),
    wrong(EX, "forwards_again_50_ms_later", compose({FWD: forwards_twice}), "called once for each "
          "PendingHTLCsForwardable", why="after its random wait, forwards, then again 50 ms later: it passed, the "
          "second call finding nothing waiting"),
    wrong(EX, "task_forgets_to_forward", compose({FWD: forgets_to_forward}), "process_pending_htlc_forwards",
          why="the task sleeps and never calls process_pending_htlc_forwards"),
]
