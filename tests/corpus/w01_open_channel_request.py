"""Workbook 1, ``OpenChannelRequest``: accept exactly the channels over 5,000,000 sats.

Also holds the cases any workbook could have (a handler that raises, returns nonsense,
changes its event, or never returns): the first check is the cheapest place to judge them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
import uuid
from typing import Any

from ldkkit.events import Event, ReplayEvent
from ldkkit.reference import TRUSTED_ZERO_CONF_PEERS

from . import Fresh, right, wrong
from .arms import (
    LATER,
    asks_again_always,
    asks_again_first,
    by_a_worker_started_first,
    compose,
    later,
    only,
    open_channel,
    spawn,
    user_channel_id,
)

EX = "open_channel_request"
OPEN = Event.OpenChannelRequest


def _reject(channel_manager: Any, event: Any) -> None:
    channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                         "too small")


def _accept(channel_manager: Any, keys_manager: Any, event: Any) -> None:
    channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id,
                                           user_channel_id(keys_manager))


def _policy(accepts: Any) -> Any:
    """An arm that accepts when ``accepts(funding_satoshis)``, rejects otherwise."""

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if accepts(event.funding_satoshis):
            _accept(channel_manager, keys_manager, event)
        else:
            _reject(channel_manager, event)

    return arm


# --- RIGHT ------------------------------------------------------------------------------------------------

def accept_by_keywords(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    if event.funding_satoshis > 5_000_000:
        channel_manager.accept_inbound_channel(
            temporary_channel_id=event.temporary_channel_id,
            counterparty_node_id=event.counterparty_node_id,
            user_channel_id=int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big"),
        )
    else:
        channel_manager.force_close_without_broadcasting_txn(
            channel_id=event.temporary_channel_id, counterparty_node_id=event.counterparty_node_id,
            error_message="We only accept channels over 5,000,000 sats",
        )


def handle_isinstance(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                      bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                      fs_store, output_sweeper, network, event):
    """Plain def, if/elif isinstance, reject first, the other 16 random bytes, little-endian."""
    if isinstance(event, Event.OpenChannelRequest):
        if event.funding_satoshis < 5_000_001:
            channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id,
                                                                 event.counterparty_node_id, "no small channels")
            return
        random = keys_manager.get_secure_random_bytes()
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id,
                                               int.from_bytes(random[16:], "little"))
    elif isinstance(event, (Event.ChannelPending, Event.ChannelReady)):
        pass  # nothing to do yet


async def handle_match_positional(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                                  bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                                  fs_store, output_sweeper, network, event):
    """Async def, a class pattern with positional-free keywords, rejection by broadcasting close."""
    match event:
        case Event.OpenChannelRequest(funding_satoshis=sats) if sats > 5_000_000:
            uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)
        case Event.OpenChannelRequest():
            channel_manager.force_close_broadcasting_latest_txn(event.temporary_channel_id,
                                                                event.counterparty_node_id, "too small")
        case _:
            return None


# --- WRONG ------------------------------------------------------------------------------------------------

def same_user_channel_id_arm() -> Any:
    drawn: list[int] = []

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if not drawn:
            drawn.append(user_channel_id(keys_manager))
        if event.funding_satoshis > 5_000_000:
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, drawn[0])
        else:
            _reject(channel_manager, event)

    return arm


def user_channel_id_per_keys_manager_arm() -> Any:
    """One id per node: ``functools.cache`` on keys_manager, the same object at every event of a node."""
    drawn = functools.cache(user_channel_id)

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if event.funding_satoshis > 5_000_000:
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id,
                                                   drawn(keys_manager))
        else:
            _reject(channel_manager, event)

    return arm


def short_delays_only(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Over 5,000,000 sats, and only if the peer asks for no more than a day's to_self_delay and 50 HTLCs in flight."""
    if event.funding_satoshis > 5_000_000 and event.params.to_self_delay <= 144 and \
            event.params.max_accepted_htlcs >= 50:
        _accept(channel_manager, keys_manager, event)
    else:
        _reject(channel_manager, event)


def user_channel_id_per_peer_arm() -> Any:
    """One id per peer ("easier to look up"): every channel from the same peer shares it."""
    ids: dict[Any, int] = {}

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if event.funding_satoshis > 5_000_000:
            uid = ids.setdefault(event.counterparty_node_id, user_channel_id(keys_manager))
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)
        else:
            _reject(channel_manager, event)

    return arm


def counter_user_channel_id_arm() -> Any:
    ids = itertools.count(1)

    def arm(channel_manager: Any, event: Any, **_: Any) -> None:
        if event.funding_satoshis > 5_000_000:
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, next(ids))
        else:
            _reject(channel_manager, event)

    return arm


def answered_by_one_worker() -> Any:
    """Puts each request on a queue; one task, spawned with the first, answers each at once (its calls made in the
    first request's context, for every request's channel)."""
    queue: list[Any] = []

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if not queue:
            queue.append(asyncio.Queue())

            async def work() -> None:
                while True:
                    request = await queue[0].get()
                    _policy(lambda sats: sats > 5_000_000)(channel_manager=channel_manager,
                                                           keys_manager=keys_manager, event=request)

            spawn(work())
        queue[0].put_nowait(event)

    return arm


async def answered_in_an_executor(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Makes its calls in the loop's default executor (run_in_executor copies no context), awaiting each."""
    decide = _accept if event.funding_satoshis > 5_000_000 else lambda cm, km, ev: _reject(cm, ev)
    await asyncio.get_running_loop().run_in_executor(None, decide, channel_manager, keys_manager, event)


def anchor_channels_only(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts a large request only if its channel has anchor outputs: a policy of its own, not the workbook's."""
    if event.funding_satoshis > 5_000_000 and event.channel_type.supports_anchors_zero_fee_htlc_tx():
        _accept(channel_manager, keys_manager, event)
    else:
        _reject(channel_manager, event)


def no_anchor_channels(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts a large request only if its channel has no anchor outputs ("they need a reserve of coins"): a policy
    of its own, which every first proposal meets, LDK's opener then proposing the channel again without anchors."""
    if event.funding_satoshis > 5_000_000 and not event.channel_type.supports_anchors_zero_fee_htlc_tx():
        _accept(channel_manager, keys_manager, event)
    else:
        _reject(channel_manager, event)


def public_channels_only(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts a large request only for a channel to be announced: a policy of its own, not the workbook's."""
    (_accept(channel_manager, keys_manager, event) if event.funding_satoshis > 5_000_000 and event.is_announced
     else _reject(channel_manager, event))


def nothing_pushed_only(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts a large request only if the opener pushes nothing to us ("a gift is suspicious")."""
    pushed = getattr(event.channel_negotiation_type, "push_msat", 0)
    (_accept(channel_manager, keys_manager, event) if event.funding_satoshis > 5_000_000 and pushed == 0
     else _reject(channel_manager, event))


def small_ones_too_if(offers: Any) -> Any:
    """Accepts over the line, and also a request under it that ``offers(event)`` something (a push, privacy)."""

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        (_accept(channel_manager, keys_manager, event) if event.funding_satoshis > 5_000_000 or offers(event)
         else _reject(channel_manager, event))

    return arm


def net_of_what_it_pushes(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts when what the opener keeps, after what it pushes to us, is over 5,000,000 sats."""
    kept = event.funding_satoshis - getattr(event.channel_negotiation_type, "push_msat", 0) // 1000
    _accept(channel_manager, keys_manager, event) if kept > 5_000_000 else _reject(channel_manager, event)


def rejects_the_sizes_the_workbook_names(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Rejects the two sizes under the line the workbook says the check asks for, and accepts every other."""
    (_reject(channel_manager, event) if event.funding_satoshis in (4_999_999, 5_000_000)
     else _accept(channel_manager, keys_manager, event))


def rejects_a_minute_later(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts large requests at once, and rejects the others from a task a minute later."""
    if event.funding_satoshis > 5_000_000:
        _accept(channel_manager, keys_manager, event)
        return

    async def later() -> None:
        await asyncio.sleep(60)
        _reject(channel_manager, event)

    spawn(later())


def accepts_later(seconds: float) -> Any:
    """Rejects at once, and accepts (with the zero-conf method for a trusted peer's zero-conf request) from a task
    ``seconds`` later ("once the peer is checked"): the decision made at once, the call put off."""
    return accepts_put_off("create_task", seconds)


def accepts_put_off(how: str, seconds: float) -> Any:
    """accepts_later's accept, put off ``seconds`` ``how`` (``arms.later``): a task, or the loop's own means,
    ``loop.call_later(30, channel_manager.accept_inbound_channel, tcid, peer, uid)``; rejects at once."""

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        tcid, peer, kind = event.temporary_channel_id, event.counterparty_node_id, event.channel_type
        trusted = kind.requires_zero_conf() and peer in TRUSTED_ZERO_CONF_PEERS
        if not trusted and (kind.requires_zero_conf() or event.funding_satoshis <= 5_000_000):
            _reject(channel_manager, event)
            return
        accept = (channel_manager.accept_inbound_channel_from_trusted_peer_0conf if trusted
                  else channel_manager.accept_inbound_channel)
        later(how, seconds, accept, tcid, peer, user_channel_id(keys_manager))

    return arm


def rejects_after_awaiting_a_lookup(seconds: float = 5) -> Any:
    """Accepts at once; awaits a lookup of ``seconds`` in the handler itself before it rejects."""
    async def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if event.funding_satoshis > 5_000_000:
            _accept(channel_manager, keys_manager, event)
            return
        await asyncio.sleep(seconds)  # "is this peer on our list?"
        _reject(channel_manager, event)

    return arm


def asks_again_before_rejecting(times: int) -> Any:
    """Accepts at once; rejects a small request only after asking for it again ``times`` times (``ReplayEvent``), the
    node handing over nothing else meanwhile. Build one per run (``Fresh``): it counts the hand-overs."""
    counts: dict[bytes, int] = {}

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> Any:
        if event.funding_satoshis > 5_000_000:
            _accept(channel_manager, keys_manager, event)
            return None
        counts[event.encode()] = counts.get(event.encode(), 0) + 1
        if counts[event.encode()] <= times:
            return ReplayEvent()
        _reject(channel_manager, event)
        return None

    return arm


def rejects_from_a_task_then_awaits_an_audit(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> Any:
    """Decides at once; a task it spawns rejects after a 50 ms lookup, while the handler awaits a 0.5 s audit write."""
    async def handle() -> None:
        if event.funding_satoshis > 5_000_000:
            _accept(channel_manager, keys_manager, event)
            return

        async def reject_after_a_lookup() -> None:
            await asyncio.sleep(0.05)
            _reject(channel_manager, event)

        spawn(reject_after_a_lookup())
        await asyncio.sleep(0.5)  # "audit log written"

    return handle()


def answered_from_a_thread_after_a_lookup(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Answers from a thread of its own, after 20 ms of blocking work (a database lookup, say): the handler
    returns at once."""
    def answer() -> None:
        time.sleep(0.02)
        (_accept(channel_manager, keys_manager, event) if event.funding_satoshis > 5_000_000
         else _reject(channel_manager, event))

    threading.Thread(target=answer, daemon=True).start()


def uid_of(make: Any) -> Any:
    """An arm that accepts over 5,000,000 sats with ``make(random_bytes)`` as the user_channel_id."""

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if event.funding_satoshis > 5_000_000:
            uid = make(keys_manager.get_secure_random_bytes())
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)
        else:
            _reject(channel_manager, event)

    return arm


def uid_from_the_middle(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """16 bytes from the middle of the draw: "take 16 of them", any 16."""
    if event.funding_satoshis > 5_000_000:
        uid = int.from_bytes(keys_manager.get_secure_random_bytes()[8:24], "big")
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)
    else:
        _reject(channel_manager, event)


def forgets_the_else(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    if event.funding_satoshis > 5_000_000:
        _accept(channel_manager, keys_manager, event)
    _reject(channel_manager, event)  # (meant for the else: branch)


def rejects_with_close_channel(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    if event.funding_satoshis > 5_000_000:
        _accept(channel_manager, keys_manager, event)
    else:
        channel_manager.close_channel(event.temporary_channel_id, event.counterparty_node_id)


def swapped_arguments(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    if event.funding_satoshis > 5_000_000:
        channel_manager.accept_inbound_channel(event.counterparty_node_id, event.temporary_channel_id,
                                               user_channel_id(keys_manager))
    else:
        _reject(channel_manager, event)


def zero_conf_for_all(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    if event.funding_satoshis > 5_000_000:
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(
            event.temporary_channel_id, event.counterparty_node_id, user_channel_id(keys_manager))
    else:
        _reject(channel_manager, event)


def accept_all_then_mutate(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    _accept(channel_manager, keys_manager, event)
    object.__setattr__(event, "funding_satoshis", 6_000_000)


def right_but_mutate(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    sats = event.funding_satoshis
    object.__setattr__(event, "funding_satoshis", 0)  # "consumed"
    if sats > 5_000_000:
        _accept(channel_manager, keys_manager, event)
    else:
        _reject(channel_manager, event)


def answers_then_asks_again_once() -> Any:
    """Answers each request, then returns ReplayEvent() (say, its log write failed); handed the request again, it
    sees that it has answered it already, and returns nothing."""
    answered: set[bytes] = set()

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> Any:
        if event.encode() in answered:
            return None
        answered.add(event.encode())
        _policy(lambda sats: sats > 5_000_000)(channel_manager=channel_manager, keys_manager=keys_manager,
                                               event=event)
        return ReplayEvent()

    return arm


def keeps_a_count_on_the_channel_manager(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Decides rightly, and counts the requests in an attribute of its own on channel_manager."""
    channel_manager.requests_seen = getattr(channel_manager, "requests_seen", 0) + 1
    _policy(lambda sats: sats > 5_000_000)(channel_manager=channel_manager, keys_manager=keys_manager, event=event)


def raises_on_other_events(**_: Any) -> None:
    raise ValueError("I only expected OpenChannelRequest")


def returns(value: Any) -> Any:
    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> Any:
        _policy(lambda sats: sats > 5_000_000)(channel_manager=channel_manager, keys_manager=keys_manager,
                                               event=event)
        return value

    return arm


def spins(**_: Any) -> None:
    while True:
        pass


def polls_channels(channel_manager: Any, **_: Any) -> None:
    while True:  # "wait until the channel shows up"
        channel_manager.list_channels()


def closes_once_ready(channel_manager: Any, event: Any, **_: Any) -> None:
    """On ChannelReady, closes the channel cooperatively ("done testing it")."""
    channel_manager.close_channel(event.channel_id, event.counterparty_node_id)


def disconnects_small(channel_manager: Any, keys_manager: Any, peer_manager: Any, event: Any, **_: Any) -> None:
    """Accepts large requests; "rejects" the others by disconnecting the peer."""
    if event.funding_satoshis > 5_000_000:
        _accept(channel_manager, keys_manager, event)
    else:
        peer_manager.disconnect_by_node_id(event.counterparty_node_id)


def answered_in_a_thread_pool(pause_s: float = 0.0, wait: bool = False, starmap: bool = False) -> Any:
    """A ``multiprocessing.pool.ThreadPool`` made as a cell runs; each request answered by ``apply_async`` (``apply``,
    waiting for it, if ``wait``; ``starmap_async`` if ``starmap``), the work sleeping ``pause_s`` first."""
    import atexit
    from multiprocessing.pool import ThreadPool

    pool = ThreadPool(2)
    atexit.register(pool.terminate)  # (at the process's end, before its pipes close)

    def answer(channel_manager: Any, keys_manager: Any, event: Any) -> None:
        time.sleep(pause_s)
        (_accept(channel_manager, keys_manager, event) if event.funding_satoshis > 5_000_000
         else _reject(channel_manager, event))

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        if starmap:
            pool.starmap_async(answer, [(channel_manager, keys_manager, event)])
            return
        (pool.apply if wait else pool.apply_async)(answer, (channel_manager, keys_manager, event))

    return compose({OPEN: arm})


async def _reject_politely(channel_manager: Any, event: Any) -> None:
    _reject(channel_manager, event)


def rejects_through_an_async_helper(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts at once; rejects through an async helper of its own, called without await: it never runs."""
    if event.funding_satoshis > 5_000_000:
        _accept(channel_manager, keys_manager, event)
    else:
        _reject_politely(channel_manager, event)


def _with_default(arm: Any) -> Any:
    """The base handler with every other event raising (no ``case _``)."""
    return compose({OPEN: arm}, base={})


CASES = [
    right(EX, "answered_in_a_thread_pool", Fresh(answered_in_a_thread_pool),
          why="multiprocessing's ThreadPool.apply_async answers each request: passed or failed from run to run (its "
              "work was not counted on the world's clock)"),
    right(EX, "answered_in_a_thread_pools_starmap", Fresh(lambda: answered_in_a_thread_pool(starmap=True)),
          why="ThreadPool.starmap_async answers each request: its verdict varied from run to run"),
    wrong(EX, "thread_pools_starmap_answers_a_minute_later",
          Fresh(lambda: answered_in_a_thread_pool(60, starmap=True)), "only 60 s later",
          why="starmap_async's work sleeps a minute first: told 'left to expire' or '60 s later' from run to run"),
    wrong(EX, "answers_through_a_thread_pools_apply", Fresh(lambda: answered_in_a_thread_pool(wait=True)),
          "Pool.apply()", "blocks the whole node", why="ThreadPool.apply() in the handler, waiting for the pool's "
          "work: it passed or hung, where Future.result() is refused at once"),
    wrong(EX, "answered_in_a_thread_pool_a_minute_later", Fresh(lambda: answered_in_a_thread_pool(60)),
          "only 60 s later", why="the pool's work sleeps a minute before it answers: it was told 'left to expire', "
                                 "'60 s later' or passed, from run to run"),
    right(EX, "asks_again_for_every_event_first", Fresh(asks_again_first),
          why="returns ReplayEvent() the first time it sees each event, then handles it: every request answered "
              "once, at once"),
    wrong(EX, "asks_again_for_requests_for_ever", asks_again_always(Event.OpenChannelRequest),
          "asked for it again each of the", "never handled",
          why="returns ReplayEvent() for every OpenChannelRequest"),
    right(EX, "answers_then_asks_again_once", Fresh(lambda: compose({OPEN: answers_then_asks_again_once()})),
          why="answers each request, then returns ReplayEvent() once, and nothing when handed it again: its answers, "
              "made in the hand-over it asked for again, were once not counted ('left to expire')"),
    wrong(EX, "forgets_the_else", compose({OPEN: forgets_the_else}), "you accepted it and rejected it",
          "answer each request once",
          why="accepts when over 5,000,000, then rejects every request (the else: forgotten): it was told to compare "
              "funding_satoshis strictly, which it did"),
    wrong(EX, "rejects_with_close_channel", compose({OPEN: rejects_with_close_channel}), "ChannelUnavailable",
          "force_close_without_broadcasting_txn",
          why="close_channel on a request not yet accepted: LDK 0.1 answers ChannelUnavailable (no such channel); "
              "the kit dropped the request silently and told it 'left to expire'"),
    wrong(EX, "keeps_a_count_on_the_channel_manager", compose({OPEN: keeps_a_count_on_the_channel_manager}),
          "channel_manager cannot be changed from a handler",
          why="sets an attribute on channel_manager: the grader refuses it, and check() once let it through to the "
              "node (a method replaced there could judge in the node's place)"),
    right(EX, "keywords_only_this_arm", only(changes={OPEN: accept_by_keywords}),
          why="accept_inbound_channel and force_close by keyword; no other arm at all"),
    right(EX, "isinstance_plain_def", handle_isinstance,
          why="plain def, if/elif isinstance, reject first with < 5_000_001, other random bytes little-endian"),
    right(EX, "match_guard_broadcasting_close", handle_match_positional,
          why="a guard in the case, rejection with force_close_broadcasting_latest_txn"),
    right(EX, "whole_base_plain_def", compose(plain=True), why="every arm, plain def"),

    right(EX, "answered_by_a_worker_thread_started_before_the_check",
          Fresh(lambda: compose({OPEN: by_a_worker_started_first(open_channel)})),
          why="a thread started as the cell runs answers each request from a queue: it passed or failed from run to "
              "run (told it rejected 120 s to an hour later), the clock running on while the thread worked"),
    right(EX, "answered_by_one_worker_task", Fresh(lambda: compose({OPEN: answered_by_one_worker()})),
          why="one task answers every request from a queue: its calls are judged by the channel they name"),
    right(EX, "accepts_from_a_task_later", compose({OPEN: accepts_later(30)}),
          why="accepts from a task 30 s later (LDK waits two timer ticks for an answer); rejects at once"),
    *(right(EX, f"accepts_later_by_{how.lower()}",
            compose({OPEN: accepts_put_off(how, 0 if how == "call_soon" else 30)}),
            why=f"accepts_from_a_task_later, the accept put off with {how}: the story plays on for an hour meanwhile")
      for how in LATER),
    wrong(EX, "accepts_by_call_later_after_two_ticks", compose({OPEN: accepts_put_off("call_later", 180)}),
          "No such channel awaiting to be accepted", "the callback your handler scheduled to end normally",
          why="loop.call_later(180, accept_inbound_channel, ...): LDK dropped the request at its second timer tick. "
              "Its error reached the loop: 'it could not go on', the hint blaming an earlier event not handled"),
    wrong(EX, "accepts_by_a_task_built_directly_after_two_ticks", compose({OPEN: accepts_put_off("Task", 180)}),
          "No such channel awaiting to be accepted", "the task your handler spawned to end normally",
          why="asyncio.Task(coro) accepting 180 s later: LDK dropped the request at its second timer tick. Its "
              "error reached the loop: 'it could not go on', the hint blaming an earlier event not handled"),
    right(EX, "answered_in_an_executor", compose({OPEN: answered_in_an_executor}),
          why="accepts and rejects through loop.run_in_executor, awaited in the handler"),
    right(EX, "answered_from_a_thread_after_a_lookup", compose({OPEN: answered_from_a_thread_after_a_lookup}),
          why="a threading.Thread answers after 20 ms of blocking work: once judged on how far the simulated clock "
              "ran meanwhile (1 ms of real time was 120 s), it passed or failed by the machine's speed"),
    right(EX, "user_channel_id_from_the_middle", compose({OPEN: uid_from_the_middle}),
          why="int.from_bytes(random[8:24], 'big'): 16 of the 32 bytes, not the first"),
    wrong(EX, "user_channel_id_from_all_32_bytes", compose({OPEN: uid_of(lambda r: int.from_bytes(r, "big"))}),
          "a u128", "all 32 random bytes", "[:16]",
          why="int.from_bytes(all 32 random bytes): a 256-bit number, which LDK refuses; the hint only said to read "
              "the traceback"),
    wrong(EX, "user_channel_id_as_bytes", compose({OPEN: uid_of(lambda r: r[:16])}), "a u128", "not bytes",
          "int.from_bytes", why="the 16 random bytes themselves, not read as an int: the hint said to read the "
              "traceback"),
    right(EX, "user_channel_id_uuid4_of_the_bytes",
          compose({OPEN: uid_of(lambda r: uuid.UUID(bytes=r[:16], version=4).int)}),
          why="a version-4 UUID made of 16 of the node's bytes (122 of their bits): it was told the id was not the "
              "node's randomness, and not to use uuid"),
    wrong(EX, "user_channel_id_from_pythons_uuid4", compose({OPEN: uid_of(lambda r: uuid.uuid4().int)}),
          "uuid.uuid4()", "is not the node's", why="uuid.uuid4(): Python's randomness, not the node's"),
    wrong(EX, "user_channel_id_signed", compose({OPEN: uid_of(lambda r: int.from_bytes(r[:16], "big", signed=True))}),
          "never negative", why="int.from_bytes(..., signed=True): half the ids negative"),
    wrong(EX, "refuses_anchor_channels", compose({OPEN: no_anchor_channels}), "5,000,001 sats", "you rejected it",
          "whatever its channel_type", why="rejects every request with anchor outputs: it passed, each refused "
          "opener proposing again without them, and the channel it then accepted counting for the first"),
    wrong(EX, "accepts_anchor_channels_only", compose({OPEN: anchor_channels_only}), "6,500,000 sats",
          "you rejected it", why="rejects a large request whose channel has no anchor outputs"),
    wrong(EX, "accepts_public_channels_only", compose({OPEN: public_channels_only}), "16,777,215 sats",
          "you rejected it", why="rejects a large request for a private channel (is_announced False): every peer "
                                 "once asked for a public one, and it passed"),
    wrong(EX, "accepts_nothing_pushed_only", compose({OPEN: nothing_pushed_only}), "16,777,215 sats",
          "you rejected it", why="rejects a large request that pushes msat to us: no peer once pushed any, and it "
                                 "passed"),
    wrong(EX, "accepts_small_pushing", compose({OPEN: small_ones_too_if(
              lambda e: getattr(e.channel_negotiation_type, "push_msat", 0) > 0)}), "4,999,999 sats",
          "the request rejected", "you accepted it",
          why="also accepts a small request that pushes msat to us: the one request that pushed was over the line, "
              "and it passed"),
    wrong(EX, "accepts_small_private", compose({OPEN: small_ones_too_if(lambda e: not e.is_announced)}),
          "the request rejected", "you accepted it",
          why="also accepts a small request for a private channel: the one private request was over the line, and "
              "it passed"),
    wrong(EX, "accepts_net_of_what_it_pushes", compose({OPEN: net_of_what_it_pushes}), "16,777,215 sats",
          "you rejected it", "what it pushes", why="funding_satoshis minus push_msat compared with 5,000,000: the one "
          "request that pushed, pushed 1,000 sats, and it passed"),
    wrong(EX, "rejects_the_sizes_the_workbook_names", compose({OPEN: rejects_the_sizes_the_workbook_names}),
          "the request rejected", "you accepted it", why="rejects 4,999,999 and 5,000,000 sats only, the sizes the "
          "workbook names: every request under the line was one of them, and it passed"),
    wrong(EX, "rejects_a_minute_later", compose({OPEN: rejects_a_minute_later}), "at once", "only 60 s later",
          why="rejects from a task that sleeps a minute first: the peer waits for nothing"),
    wrong(EX, "rejects_after_awaiting_a_short_lookup", compose({OPEN: rejects_after_awaiting_a_lookup(1.1)}),
          "only 1.1 s later, awaiting in your handler first", why="awaits 1.1 s in the handler, then rejects: it was "
          "told it rejected 'only 1 s later', beside the 1 s it may take"),
    wrong(EX, "rejects_after_awaiting_under_a_second", compose({OPEN: rejects_after_awaiting_a_lookup(0.9)}),
          "only 0.9 s later, awaiting in your handler first", "before your handler awaits anything",
          why="awaits 0.9 s in the handler ('rate-limit refusals a little'), then rejects: it passed, within the 1 s "
              "a task spawned to reject may take"),
    wrong(EX, "rejects_after_asking_again_many_times", Fresh(lambda: compose({OPEN: asks_again_before_rejecting(98)})),
          "asking for it again 98 times first", "ReplayEvent() only when something failed",
          why="returns ReplayEvent() 98 times, then rejects: it passed, the delay counted from the last hand-over "
              "(9.7 s during which the node handled nothing else)"),
    right(EX, "rejects_from_a_task_while_it_awaits_an_audit", compose({OPEN: rejects_from_a_task_then_awaits_an_audit}),
          why="a task rejects 50 ms after the request while the handler awaits a 0.5 s audit write: it was told it "
              "awaited in the handler first, the task's call counted as the handler's own"),
    right(EX, "rejects_after_asking_again_once", Fresh(lambda: compose({OPEN: asks_again_before_rejecting(1)})),
          why="asks for a small request again once (as after a failed write), then rejects: 0.1 s"),
    wrong(EX, "rejects_after_awaiting_a_lookup", compose({OPEN: rejects_after_awaiting_a_lookup()}),
          "only 5 s later, awaiting in your handler first", "before your handler awaits anything",
          why="awaits 5 s in the handler, then rejects: it was told to reject 'while you handle the event', which it "
              "did (and the workbook asked only for 'explicitly'; it now says 'and at once')"),
    wrong(EX, "accepts_everything", compose({OPEN: _policy(lambda sats: True)}), "you accepted it", "strictly",
          why="no policy"),
    wrong(EX, "accepts_exactly_5m", compose({OPEN: _policy(lambda sats: sats >= 5_000_000)}),
          "exactly 5,000,000", "strictly", why=">= instead of >"),
    wrong(EX, "rejects_everything", compose({OPEN: _policy(lambda sats: False)}), "you rejected it", "5,000,000",
          why="rejects all"),
    wrong(EX, "threshold_in_msat", compose({OPEN: _policy(lambda sats: sats > 5_000_000_000)}), "you rejected it",
          "strictly greater", why="compares sats with a msat threshold"),
    wrong(EX, "rejects_through_an_async_helper_unawaited", compose({OPEN: rejects_through_an_async_helper}),
          "your handler called _reject_politely(...) without await", "await _reject_politely(...)",
          why="_reject_politely(channel_manager, event), an async def, called without await: its code never ran, and "
              "the hint was to reject with force_close_without_broadcasting_txn, which its code does"),
    wrong(EX, "closes_what_it_accepted_once_ready", compose({Event.ChannelReady: closes_once_ready}),
          "then your handler closed the channel (channel_manager.close_channel, while it handled ChannelReady)",
          "once accepted, is kept",
          why="accepts rightly, then closes each channel on ChannelReady: it was told 'the channel never became ready' "
              "and to accept with accept_inbound_channel, which it had done"),
    wrong(EX, "disconnects_instead_of_rejecting", compose({OPEN: disconnects_small}),
          "you disconnected the peer instead", "force_close_without_broadcasting_txn",
          why="peer_manager.disconnect_by_node_id for a small request: LDK drops the request at once, and it was told "
              "'nothing: it was left to expire after two timer ticks'"),
    wrong(EX, "silent_on_small", compose({OPEN: lambda channel_manager, keys_manager, event, **_: (
        _accept(channel_manager, keys_manager, event) if event.funding_satoshis > 5_000_000 else None)}),
        "force_close_without_broadcasting_txn", "expire",
        why="never rejects: the small requests are left to time out"),
    wrong(EX, "zero_conf_for_everyone", compose({OPEN: zero_conf_for_all}), "zero-conf", "trust",
          why="accept_inbound_channel_from_trusted_peer_0conf for unknown peers"),
    wrong(EX, "fixed_user_channel_id", compose({OPEN: lambda channel_manager, event, **_: (
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, 42)
        if event.funding_satoshis > 5_000_000 else _reject(channel_manager, event))}),
        "get_secure_random_bytes", "user_channel_id=42", why="user_channel_id=42 for every channel"),
    wrong(EX, "counter_user_channel_id", Fresh(lambda: compose({OPEN: counter_user_channel_id_arm()})),
          "get_secure_random_bytes",
          why="user_channel_id from a counter"),
    wrong(EX, "one_draw_for_every_channel", Fresh(lambda: compose({OPEN: same_user_channel_id_arm()})), "again",
          "get_secure_random_bytes", why="draws the random id once and reuses it"),
    wrong(EX, "one_draw_per_keys_manager", Fresh(lambda: compose({OPEN: user_channel_id_per_keys_manager_arm()})),
          "again", "get_secure_random_bytes",
          why="draws the random id once per node (functools.cache on keys_manager): the check passed it while it gave "
              "each event a keys_manager of its own"),
    wrong(EX, "short_delays_only", compose({OPEN: short_delays_only}), "the policy is about size only",
          "whatever else it asks for", why="a policy on the request's params too: it passed, every request of the "
          "story asking for the same params"),
    wrong(EX, "one_draw_per_peer", Fresh(lambda: compose({OPEN: user_channel_id_per_peer_arm()})), "again",
          "draw fresh random bytes for every request", why="draws the random id once per peer: it passed, every "
          "channel of the story coming from a peer of its own"),
    wrong(EX, "swapped_arguments", compose({OPEN: swapped_arguments}), "ChannelUnavailable", "temporary_channel_id",
          why="counterparty_node_id and temporary_channel_id swapped"),
    wrong(EX, "accept_all_then_mutate_event", compose({OPEN: accept_all_then_mutate}), "funding_satoshis",
          "changed", why="accepts everything, then rewrites funding_satoshis to 6,000,000 on the event"),
    wrong(EX, "right_but_mutates_event", compose({OPEN: right_but_mutate}), "funding_satoshis", "changed",
          "read them, never change them", why="decides correctly but zeroes the event's funding_satoshis"),
    wrong(EX, "raises_on_other_events", compose({OPEN: _policy(lambda s: s > 5_000_000)},
                                                base={e: raises_on_other_events for e in (
                                                    Event.ChannelPending, Event.ChannelReady)}),
          "raised ValueError", "I only expected OpenChannelRequest", why="raises on every other event kind"),
    wrong(EX, "answers_then_asks_again_always", compose({OPEN: returns(ReplayEvent())}),
          "ChannelUnavailable", "answered this request when it was handed over before", "return nothing",
          why="answers each request, then returns ReplayEvent() every time: handed over again, its answer raised "
              "ChannelUnavailable, and the hint was to pass the event's own temporary_channel_id, which it did"),
    wrong(EX, "returns_42", compose({OPEN: returns(42)}), "returned 42", "ReplayEvent",
          why="LDK's handler returns Ok(()) or Err(ReplayEvent()); 42 means nothing"),
    wrong(EX, "returns_a_string", compose({OPEN: returns("handled")}), "returned 'handled'", "ReplayEvent",
          why="returns a string as a status"),
    wrong(EX, "returns_true", compose({OPEN: returns(True)}), "returned True", "ReplayEvent",
          why="returns True for handled"),
    wrong(EX, "spins_forever", compose({OPEN: spins}), "did not return within 10 seconds", "OpenChannelRequest",
          "must return promptly", why="while True: pass", slow=True),
    wrong(EX, "polls_list_channels_forever", compose({OPEN: polls_channels}), "did not return",
          "OpenChannelRequest", "calling the node", why="list_channels() in an endless loop", slow=True),
]
