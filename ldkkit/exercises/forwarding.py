"""Workbook 5: forwarding. Forward after a random wait in LDK's range, without the handler waiting.

Rules, judged on the simulation's clock (never on wall time):
- each ``PendingHTLCsForwardable`` leads to ``process_pending_htlc_forwards()``;
- after a random delay in ``[time_forwardable, 5 × time_forwardable)``, as LDK asks: the delays
  differ from event to event, and the extremes of the random bytes stay in range;
- the wait happens in a spawned task: the handler itself returns at once, and never blocks the
  node with ``time.sleep``;
- every payment routed through you is forwarded (``PaymentForwarded``).
"""

from __future__ import annotations

from ..events import Event
from ..scenarios import Stage
from .common import CheckResult, Handling, Played, Session, fail, held_back

PAYMENTS_MSAT = (100_000_000, 200_000_000, 50_000_000, 70_000_000)
#: The random bytes your handler is given for its delays: the extremes first, so the range shows.
EXTREME_DRAWS = (b"\x00" * 32, b"\xff" * 32)
#: How far a measured delay may be off the range (the clock counts microseconds).
SLACK_S = 0.001


def story(stage: Stage) -> None:
    alice, carol = stage.peer("alice"), stage.peer("carol")
    stage.open(alice, stage.me, 6_000_000)
    stage.open(carol, stage.me, 6_000_000, push_msat=3_000_000_000)
    for amount in PAYMENTS_MSAT:
        stage.pay(alice, stage.invoice(carol, amount))
    stage.settle(900)  # long enough for a delay read in the wrong unit to show


def rules(session: Session, result: CheckResult) -> None:
    played = session.play("forwarding", story, draws_for=(Event.PendingHTLCsForwardable, EXTREME_DRAWS))
    delays = judge_forwards(played)
    forwarded = played.events(Event.PaymentForwarded)
    if len(forwarded) != len(PAYMENTS_MSAT):
        raise fail(played, None, f"{len(PAYMENTS_MSAT)} PaymentForwarded events", f"{len(forwarded)}",
                   held_back(played) or "a forward completes once the next hop's preimage comes back through you.")
    fees = sum(e.total_fee_earned_msat or 0 for e in forwarded)
    result.add("process_pending_htlc_forwards after a random delay in [t, 5t)",
               f"{len(delays)} times, {min(delays) * 1000:.0f} to {max(delays) * 1000:.0f} ms")
    result.add("the handler returned at once; a task waited", f"{len(delays)} events")
    result.add("payments forwarded", f"{len(forwarded)}, earning {fees:,} msat")


def judge_forwards(played: Played) -> list[float]:
    delays = []
    for handling in played.handled(Event.PendingHTLCsForwardable):
        delays.append(_judge_one(played, handling))
    if len(delays) >= 3 and max(delays) - min(delays) < SLACK_S:
        raise fail(played, played.events(Event.PendingHTLCsForwardable)[-1], "a different random delay each time",
                   f"always {delays[0] * 1000:.0f} ms",
                   "a fixed delay tells an observer exactly when you got the HTLC; draw a random fraction from "
                   "keys_manager.get_secure_random_bytes() for each event.")
    return delays


def _judge_one(played: Played, handling: Handling) -> float:
    event = handling.event
    t = event.time_forwardable.total_seconds()
    calls = played.recorder.calls_for(handling, "channel_manager.process_pending_htlc_forwards")
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
                   f"the handler itself waited {delay * 1000:,.0f} ms before returning",
                   "while your handler waits, no other event is handled: spawn the wait in a task "
                   "(asyncio.get_running_loop().create_task(...)) instead of awaiting it in the handler.")
    if not t - SLACK_S <= delay <= 5 * t + SLACK_S:
        unit = (f" That is {delay:g} s: time_forwardable.total_seconds() is already in seconds."
                if delay > 50 * t else "")
        raise fail(played, event, f"a delay between {t * 1000:.0f} and {5 * t * 1000:.0f} ms",
                   f"{delay * 1000:,.0f} ms", "LDK asks for a random delay between time_forwardable and five times "
                   f"it: time_forwardable × (1 + 4 × a random fraction in [0, 1)).{unit}")
    return delay
