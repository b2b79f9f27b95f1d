"""Workbook 5: forwarding. Forward after a random wait in LDK's range, without the handler waiting.

Rules, judged on the simulation's clock (never on wall time):
- each ``PendingHTLCsForwardable`` leads to ``process_pending_htlc_forwards()``;
- after a random delay in ``[time_forwardable, 5 × time_forwardable)``, as LDK asks: the delays
  differ from event to event, spread over the range (at least ``time_forwardable`` between the shortest
  and the longest), and the extremes of the random bytes stay in range;
- the delay comes from ``keys_manager.get_secure_random_bytes()``: drawn for the events, the same bytes given
  twice give the same delay;
- the wait happens in a spawned task: the handler itself returns at once, and never blocks the
  node with ``time.sleep``;
- no HTLC goes on sooner than ``time_forwardable`` after the ``PendingHTLCsForwardable`` before it, when
  payments overlap too (a loop that polls, or a call from another event's arm, forwards one at once); nor
  goes back, failed by the next hop, sooner than that after the ``HTLCHandlingFailed`` that told of it;
- no more ``process_pending_htlc_forwards()`` calls than ``PendingHTLCsForwardable`` events asked for: a loop
  that polls is wrong even when its polls find nothing waiting;
- every payment routed through you is forwarded (``PaymentForwarded``), and your code closes no channel (nothing asks
  for it: ``HTLCHandlingFailed`` is LDK telling you it fails an HTLC back itself);
- the same after a restart, when LDK asks with a ``time_forwardable`` of 2 s (it is no constant), and for a forward
  whose inbound channel closed meanwhile, whose ``total_fee_earned_msat`` is None (a sum that adds it raises).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from .. import scenarios
from ..events import Event
from ..scenarios import Stage
from . import sending_payments
from .common import CLOSING, CheckResult, Handling, Played, Session, fail, held_back
from .recorder import Call

PAYMENTS_MSAT = (100_000_000, 200_000_000, 50_000_000, 70_000_000)
#: Then payments this far apart (seconds): each arrives while the one before may still wait to go on.
OVERLAPPING_MSAT, OVERLAP_S = (20_000_000, 30_000_000, 10_000_000, 25_000_000), 0.35
#: Then a payment sent on to carol, who claims it CAROL_S later, and the next one arriving EARLY_S before that claim.
RACING_MSAT, CAROL_S, EARLY_S = (15_000_000, 5_000_000), 0.3, 0.05
#: The random bytes your handler is given for its delays: the extremes first, so the range shows.
EXTREME_DRAWS = (b"\x00" * 32, b"\xff" * 32)
#: Then bytes that look random, given again in no pattern a counter could follow: the same bytes must give the same
#: delay, or the delay does not come from them. (Read as ldk-sample would, they wait about 190, 400 and 480 ms: the
#: 480 ms one makes the fourth overlapping payment arrive while the third waits.) The world's own bytes follow.
_LOW, _MID, _HIGH = (hashlib.sha256(b"ldkkit forwarding %d" % i).digest() for i in (4, 5, 7))
PLANNED_DRAWS = EXTREME_DRAWS + (_MID, _LOW, _LOW, _LOW, _HIGH, _LOW, _MID, _HIGH, _MID, _LOW)
#: How far a measured delay may be off the range (the clock counts microseconds).
SLACK_S = 0.001


def story(stage: Stage) -> None:
    alice, carol = stage.peer("alice"), stage.peer("carol", handler=scenarios.forwards_after(CAROL_S))
    stage.open(alice, stage.me, 6_000_000)
    stage.open(carol, stage.me, 6_000_000, push_msat=3_000_000_000)
    for amount in PAYMENTS_MSAT:
        stage.pay(alice, stage.invoice(carol, amount))
    for amount in OVERLAPPING_MSAT:
        stage.pay(alice, stage.invoice(carol, amount), settle_s=OVERLAP_S)
    stage.settle()
    for amount in RACING_MSAT:  # (a call made when the claim comes back, PaymentForwarded, sends the next at once)
        stage.pay(alice, stage.invoice(carol, amount), settle_s=0)
        _until_sent_on(stage)
        stage.settle(CAROL_S - EARLY_S)
    # Then a payment carol refuses (a hash she never issued): you fail it back, told by HTLCHandlingFailed, then
    # PendingHTLCsForwardable (a call from the first one's arm fails it back at once).
    sending_payments.pay_fake(stage, carol, payer=alice)
    stage.settle(900)  # long enough for a delay read in the wrong unit to show


#: A payment that arrives as your node crashes, and one whose inbound channel alice force-closes once it went on.
RESTARTED_MSAT, CLOSED_MSAT = 40_000_000, 35_000_000


def restart_and_close_story(stage: Stage) -> None:
    """A payment arrives as your node crashes: restarted from what it had persisted, the HTLC just arrived, it is asked
    to forward with a time_forwardable of 2 s (no constant). Then alice force-closes the channel a payment came in on
    once it went on: its PaymentForwarded comes with no fee (None: LDK claims it on chain)."""
    alice, carol = stage.peer("alice"), stage.peer("carol", handler=scenarios.forwards_after(CAROL_S))
    stage.open(alice, stage.me, 6_000_000)
    stage.open(carol, stage.me, 6_000_000, push_msat=3_000_000_000)
    stage.world.crash(stage.me)
    stage.pay(alice, stage.invoice(carol, RESTARTED_MSAT), settle_s=0.05)
    stage.me.fs_store.write("", "", "manager", stage.me.channel_manager.encode())
    stage.me = stage.world.restart_node(stage.me)
    stage.settle(12)
    stage.pay(alice, stage.invoice(carol, CLOSED_MSAT), settle_s=0)
    _until_sent_on(stage, limit_s=12)
    alice.channel_manager.force_close_broadcasting_latest_txn(stage.channel_between(alice, stage.me).channel_id,
                                                              stage.me.node_id, "alice is gone")
    stage.settle()


def _until_sent_on(stage: Stage, limit_s: float = 1.0, step_s: float = 0.01) -> None:
    """Let time pass until your node has sent on every HTLC it was given (at most ``limit_s``)."""
    def waiting() -> bool:
        kinds = Counter((src, kind) for _at, src, _dst, kind in stage.world.message_log)
        return kinds[("alice", "UpdateAddHTLC")] > kinds[(stage.me.name, "UpdateAddHTLC")]

    for _ in range(round(limit_s / step_s)):
        if not waiting():
            return
        stage.settle(step_s)


def rules(session: Session, result: CheckResult) -> None:
    played = session.play("forwarding", story, draws_for=(Event.PendingHTLCsForwardable, PLANNED_DRAWS))
    delays = judge_played(played, len(PAYMENTS_MSAT) + len(OVERLAPPING_MSAT) + len(RACING_MSAT))
    forwarded = played.events(Event.PaymentForwarded)
    later = session.play("a forward across a restart, and one whose channel closes", restart_and_close_story)
    judge_played(later, 2)
    fees = sum(e.total_fee_earned_msat or 0 for e in forwarded)
    result.add("process_pending_htlc_forwards after a random delay in [t, 5t)",
               f"{len(delays)} times, {min(delays) * 1000:.0f} to {max(delays) * 1000:.0f} ms")
    result.add("the handler returned at once; a task waited", f"{len(delays)} events")
    result.add("payments forwarded", f"{len(forwarded)}, earning {fees:,} msat")
    result.add("after a restart (time_forwardable 2 s), and with no fee (None)", "forwarded")


def judge_played(played: Played, payments: int) -> list[float]:
    """Every rule, on one play of ``payments`` forwards: the delays each wait took."""
    delays = judge_forwards(played)
    judge_forward_times(played)
    judge_calls_asked_for(played)
    judge_channels_kept(played)
    forwarded = played.events(Event.PaymentForwarded)
    if len(forwarded) != payments:
        raise fail(played, None, f"{payments} PaymentForwarded events", f"{len(forwarded)}",
                   held_back(played) or _disconnected(played)
                   or "a forward completes once the next hop's preimage comes back through you.")
    sending_payments.judge_left_to_ldk(played)  # (a peer cut off when no forward was left to fail: wrong all the same)
    return delays


def judge_channels_kept(played: Played) -> None:
    """Your code closed no channel: nothing in these stories asks for it (alice closes one herself), and a closed
    channel fails every HTLC still on it (or leaves it to time out on chain)."""
    calls = [c for name in CLOSING for c in played.recorder.calls_to(f"channel_manager.{name}")]
    if not calls:
        return
    first = min(calls, key=lambda c: c.order)
    closed = [h.event for h in played.handled(Event.ChannelClosed) if h.order > first.order]
    arm = type(first.handling.event).__name__ if first.handling is not None else ""
    raise fail(played, closed[0] if closed else None, "every channel still open at the end (but one alice closes): "
               "nothing in this story asks you to close one", (f"the channel with "
               f"{closed[0].counterparty_node_id!r} closed ({closed[0].reason})" if closed else "you closed one"),
               f"your handler called channel_manager.{first.name.split('.')[-1]}"
               + (f" while it handled {arm}" if arm else "") + ". An HTLCHandlingFailed only tells you that an HTLC "
               "could not go on: LDK fails it back itself (the PendingHTLCsForwardable that follows sends the "
               "failure). There is nothing to do for it, and closing the channel it came on fails or strands every "
               "other HTLC there.")


def _disconnected(played: Played) -> str:
    """The hint for a handler that disconnected a peer: the HTLCs it had not yet forwarded there were failed back."""
    calls = played.recorder.calls_to("peer_manager.disconnect_by_node_id")
    if not calls:
        return ""
    during = calls[0].handling
    arm = f", while it handled {type(during.event).__name__}" if during is not None else ""
    return (f"your handler disconnected a peer (peer_manager.disconnect_by_node_id{arm}): the HTLCs still to go on "
            "to it were failed back. A forward completes once the next hop's preimage comes back through you, so "
            "leave the connections to the PeerManager.")


def judge_forwards(played: Played) -> list[float]:
    delays, judged = [], []
    calls = played.recorder.calls_to("channel_manager.process_pending_htlc_forwards")
    handled = played.handled(Event.PendingHTLCsForwardable)
    if not handled:  # (no HTLC ever waited: the count of forwards says what went wrong)
        return delays
    usual = min(h.event.time_forwardable for h in handled)  # (the story's, but after the restart)
    for handling in [h for h in handled if h.event.time_forwardable == usual]:
        delay = _judge_one(played, handling)
        if delay is not None:
            delays.append(delay)
            judged.append((handling, delay))
        elif went := [c.at - handling.started for c in calls if c.order > handling.order]:
            # (made for another event, as by a worker of yours, or a wait already running: the wait it had all the
            # same is judged for its spread, not against the bytes drawn for it)
            delays.append(went[0])
    if len(delays) >= 3 and max(delays) - min(delays) < SLACK_S:
        raise fail(played, played.events(Event.PendingHTLCsForwardable)[-1], "a different random delay each time",
                   f"always {delays[0] * 1000:.0f} ms",
                   "a fixed delay tells an observer exactly when you got the HTLC; draw a random fraction from "
                   "keys_manager.get_secure_random_bytes() for each event.")
    t = usual.total_seconds()
    if len(delays) >= 3 and max(delays) - min(delays) < t:
        raise fail(played, played.events(Event.PendingHTLCsForwardable)[-1],
                   f"delays spread over the range {t * 1000:.0f} to {5 * t * 1000:.0f} ms (the first two events' "
                   "random bytes were all zeros, then all ones)",
                   f"all of them between {min(delays) * 1000:,.0f} and {max(delays) * 1000:,.0f} ms",
                   "the random fraction must cover [0, 1): divide the number you read by 2 to the power of its bits "
                   "(int.from_bytes(random[:4], 'big') / 2**32), then wait time_forwardable × (1 + 4 × fraction).")
    if len(delays) >= 5 and all(abs(d / t - round(d / t)) * t < SLACK_S for d in delays):
        shown = ", ".join(f"{d * 1000:,.0f}" for d in sorted(set(round(d, 3) for d in delays)))
        raise fail(played, played.events(Event.PendingHTLCsForwardable)[-1],
                   "delays anywhere in the range, drawn afresh for each event",
                   f"every one a whole multiple of time_forwardable ({t * 1000:.0f} ms): {shown} ms",
                   "a choice among a few delays is one an observer can guess: take a fraction in [0, 1) from the "
                   "bytes (int.from_bytes(random[:4], 'big') / 2**32), then wait time_forwardable × (1 + 4 × "
                   "fraction).")
    for handling in [h for h in handled if h.event.time_forwardable != usual]:  # (once the story's usual are judged)
        delay = _judge_one(played, handling)
        if delay is not None:
            delays.append(delay)
            judged.append((handling, delay))
    _judge_from_the_bytes(played, judged)
    return delays


def _judge_from_the_bytes(played: Played, judged: list[tuple[Handling, float]]) -> None:
    """Two events whose handling drew the same random bytes waited the same delay (for the same time_forwardable): it
    comes from those bytes."""
    first: dict[tuple[Any, ...], tuple[Handling, float]] = {}
    draws = {id(h): tuple(c.returned for c in played.recorder.calls_for(h, "keys_manager.get_secure_random_bytes"))
             for h in played.handled(Event.PendingHTLCsForwardable)}
    if judged and not any(draws.values()):
        raise fail(played, judged[-1][0].event, "the random delay taken from keys_manager.get_secure_random_bytes()",
                   "your code never called it while handling a PendingHTLCsForwardable",
                   "draw the randomness for each delay from keys_manager.get_secure_random_bytes(), the node's "
                   "secure source: fraction = int.from_bytes(random[:4], 'big') / 2**32, then wait "
                   "time_forwardable × (1 + 4 × fraction). A delay an observer can predict tells them where the HTLC "
                   "came from.")
    for handling, delay in judged:
        drawn = draws[id(handling)]
        if not drawn:
            continue  # (no bytes drawn for this event, as when a generator seeded once from them gives the delays)
        earlier, earlier_delay = first.setdefault((*drawn, handling.event.time_forwardable), (handling, delay))
        if abs(delay - earlier_delay) > SLACK_S:
            raise fail(played, handling.event, "the delay computed from the random bytes drawn for the event: the "
                       "same bytes, the same delay", f"two events given the same random bytes waited "
                       f"{earlier_delay * 1000:,.0f} ms, then {delay * 1000:,.0f} ms",
                       "the delay must come from the bytes keys_manager.get_secure_random_bytes() gave you for this "
                       "event, and from nothing else (a counter, a list of delays, the clock, an unseeded random): "
                       "fraction = int.from_bytes(random[:4], 'big') / 2**32, then wait time_forwardable × "
                       "(1 + 4 × fraction). A delay an observer can predict tells them where the HTLC came from.")


def judge_forward_times(played: Played) -> None:
    """Each HTLC your node sent on went at least ``time_forwardable`` after the PendingHTLCsForwardable before it
    (one LDK gave while it was still waiting goes with that one's: LDK gives a single event for them all), and each
    it failed back at least that long after the HTLCHandlingFailed before it (given with a PendingHTLCsForwardable,
    if none was waiting)."""
    forwardable = played.handled(Event.PendingHTLCsForwardable)
    given = played.handled()
    # (an HTLCHandlingFailed while a PendingHTLCsForwardable waits comes alone: that one's wait is the failure's too)
    failed = [h for h, after in zip(given, given[1:], strict=False) if isinstance(h.event, Event.HTLCHandlingFailed)
              and isinstance(after.event, Event.PendingHTLCsForwardable)]
    announced = {"UpdateAddHTLC": forwardable,
                 "UpdateFailHTLC": sorted([*forwardable, *failed], key=lambda h: h.order)}
    calls = played.recorder.calls_to("channel_manager.process_pending_htlc_forwards")
    for at, kind in _sent_on(played, tuple(announced)):
        # What was announced before the call that sent it: not the events that very call raised (failing a new HTLC
        # while it sends an older one's failure back), though they come at the same instant.
        sender = max((c for c in calls if c.at <= at), key=lambda c: c.order, default=None)
        before = [h for h in announced[kind] if h.started <= at and (sender is None or h.order < sender.order)]
        if not before:
            continue  # (not a forward: nothing was announced; the story pays nothing from your node)
        last = before[-1]
        waits = [h for h in forwardable if h.order <= last.order] or forwardable  # (its own, or the one it went with)
        t, gap = waits[-1].event.time_forwardable.total_seconds(), at - last.started
        if gap < t - SLACK_S:
            sent = "sent on" if kind == "UpdateAddHTLC" else "failed back"
            arm = _other_arm_calling(sender)
            raise fail(played, last.event, f"each HTLC {sent} at least {t * 1000:.0f} ms after the "
                       f"{type(last.event).__name__} before it", f"one was {sent} {gap * 1000:,.0f} ms after it",
                       (f"your handler called process_pending_htlc_forwards while it handled {arm}, which needs no "
                        "such call: " if arm else "") + "call process_pending_htlc_forwards only from the task each "
                       "PendingHTLCsForwardable spawns, after its own random wait: a loop that polls, or a call from "
                       "another event's arm, sends on or fails back an HTLC that has just arrived, and the timing "
                       "tells an observer where it came from.")


#: Why calls beyond those asked for are wrong, as workbook 5 teaches it.
EXTRA_CALLS = ("call it only from the task each PendingHTLCsForwardable spawns, once, after its own random wait. "
               "LDK gives you that event whenever an HTLC waits to go on: a loop that polls, or a call made again "
               "in case, sends on an HTLC that has just arrived, and the timing tells an observer where it came from.")


def judge_calls_asked_for(played: Played, hint: str = EXTRA_CALLS) -> None:
    """No more ``process_pending_htlc_forwards`` calls than ``PendingHTLCsForwardable`` hand-overs: each asks for one.
    A loop that polls, or a call made again "in case", is wrong whenever it falls, though a poll that finds nothing
    waiting sends nothing (``judge_forward_times`` sees only the polls that forward an HTLC too soon)."""
    calls = played.recorder.calls_to("channel_manager.process_pending_htlc_forwards")
    asked = [h for h in played.recorder.handlings if isinstance(h.event, Event.PendingHTLCsForwardable)]
    if len(calls) <= len(asked):
        return
    # The first call beyond those asked for so far, and the event whose handling made it.
    extra = next(c for i, c in enumerate(calls) if i >= sum(h.order < c.order for h in asked))
    event = extra.handling.event if extra.handling is not None else asked[-1].event
    raise fail(played, event, f"process_pending_htlc_forwards() called once for each PendingHTLCsForwardable "
               f"({len(asked)} of them)", f"your code called it {len(calls)} times" + _from_other_arms(calls), hint)


def _from_other_arms(calls: list[Call]) -> str:
    kinds = list(dict.fromkeys(kind for kind in map(_other_arm_calling, calls) if kind))
    return f", from your {' and '.join(kinds)} arm{'s' if len(kinds) > 1 else ''} too" if kinds else ""


def _other_arm_calling(call: Call | None) -> str:
    """The kind of event (not a PendingHTLCsForwardable) whose handler made this process_pending_htlc_forwards call,
    or ""."""
    if call is None or call.handling is None or not call.during:
        return ""
    kind = type(call.handling.event)
    return "" if kind is Event.PendingHTLCsForwardable else kind.__name__


def _sent_on(played: Played, kinds: tuple[str, ...] = ("UpdateAddHTLC",)) -> list[tuple[float, str]]:
    """When your node sent an HTLC on (an ``update_add_htlc`` of its own: in this story, only forwards), or failed one
    back (``update_fail_htlc``), with which."""
    me = played.me.name
    return [(at, kind) for at, src, _dst, kind in played.world.message_log if src == me and kind in kinds]


def _judge_one(played: Played, handling: Handling) -> float | None:
    """The delay before this event's own call; None if the call came from code spawned for another event (then the
    times its HTLCs went on are what is judged, by ``judge_forward_times``)."""
    event = handling.event
    t = event.time_forwardable.total_seconds()
    calls = played.recorder.calls_for(handling, "channel_manager.process_pending_htlc_forwards")
    waited = handling.finished - handling.started if handling.finished is not None else 0.0
    if waited > SLACK_S and not (calls and calls[0].during):  # (waited, then handed the call to a task)
        raise fail(played, event, "the handler to return at once, and the forward to happen later",
                   f"the handler itself waited {waited * 1000:,.0f} ms before returning", _WAIT_IN_A_TASK)
    later = [at for at, _ in _sent_on(played, ("UpdateAddHTLC", "UpdateFailHTLC")) if at >= handling.started]
    if not calls and later and later[0] - handling.started <= 5 * t + SLACK_S:
        return None
    if not calls and later:
        raise fail(played, event, f"process_pending_htlc_forwards() called {t * 1000:.0f} to {5 * t * 1000:.0f} ms "
                   "after it", f"its HTLCs went on only {(later[0] - handling.started) * 1000:,.0f} ms later",
                   "each PendingHTLCsForwardable needs its own call: spawn a task for every one, that waits its "
                   "random delay, then calls process_pending_htlc_forwards().")
    if not calls and any(e is event for e in played.recorder.waiting(Event.PendingHTLCsForwardable)):
        raise fail(played, event, f"process_pending_htlc_forwards() called {t * 1000:.0f} to {5 * t * 1000:.0f} ms "
                   "after it", "it was never called: the task your handler spawned for it still waited when the check "
                   "stopped waiting for it", "its wait is far too long: time_forwardable.total_seconds() is in "
                   "seconds (a fraction of one here), and asyncio.sleep takes seconds: wait time_forwardable."
                   "total_seconds() × (1 + 4 × fraction), not a count of milliseconds or microseconds.")
    if not calls:
        raise fail(played, event, "process_pending_htlc_forwards() called after a short delay",
                   "it was never called (not even 15 minutes later)",
                   "without it, HTLCs wait forever: nothing is forwarded or claimed. Spawn a task that sleeps, "
                   "then calls it.")
    call = calls[0]
    delay = call.at - handling.started
    if call.during and delay <= 0:
        raise fail(played, event, f"a wait of {t * 1000:.0f} to {5 * t * 1000:.0f} ms first", "it was called at once",
                   "forwarding at once tells anyone watching the timing that you were the sender or the recipient: "
                   "wait a random time first, in a task.")
    if call.during:
        raise fail(played, event, "the handler to return at once, and the forward to happen later",
                   f"the handler itself waited {delay * 1000:,.0f} ms before returning", _WAIT_IN_A_TASK)
    if not t - SLACK_S <= delay <= 5 * t + SLACK_S:
        unit = (f" That is {delay:g} s: time_forwardable.total_seconds() is already in seconds."
                if delay > 50 * t else _too_short_unit(played, t) if delay < t / 50 else "")
        raise fail(played, event, f"a delay between {t * 1000:.0f} and {5 * t * 1000:.0f} ms",
                   f"{delay * 1000:,.0f} ms", "LDK asks for a random delay between time_forwardable and five times "
                   f"it: time_forwardable × (1 + 4 × a random fraction in [0, 1)).{unit}")
    return delay


_WAIT_IN_A_TASK = ("while your handler waits, no other event is handled: spawn the wait in a task "
                   "(asyncio.get_running_loop().create_task(...)) instead of awaiting it in the handler.")


def _too_short_unit(played: Played, t: float) -> str:
    """What a unit slip says of delays all far below ``t`` (not a range from 0: its other delays reach 5 t)."""
    delays = [calls[0].at - h.started for h in played.handled(Event.PendingHTLCsForwardable)
              if (calls := played.recorder.calls_for(h, "channel_manager.process_pending_htlc_forwards"))]
    if max(delays, default=t) >= t / 50:
        return ""
    if max(delays) < 1e-6:
        return (" Every delay was 0 ms: did your task wait at all? (time_forwardable.seconds counts whole seconds "
                f"only, 0 for {t * 1000:.0f} ms: time_forwardable.total_seconds() is the whole of it.)")
    return (f" Every delay was under {t * 1000 / 50:.0f} ms: time_forwardable.total_seconds() is already in seconds "
            "(divided by 1000, it is a thousand times too short).")
