"""How a background processor sleeps on the world's virtual clock without waking for nothing.

Not LDK's: LDK's loop wakes at every poll and every notification. On the virtual clock the world may do a
sleeping loop's work for it when that work is all its wake would do (its timers when one falls due, a block's
persist), at the moment and in the order its thread would have, and only count the ticks that would change
nothing. Tests hold each shortcut to the loop's own behaviour. ``_RunBody`` (``background_processor``) is the
loop; this is the part of it the world calls while it sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from ..persist import SCORER_PERSISTENCE_KEY
from ..wakers import take_wake
from .clock import MICROS


def tick_changes_nothing(tick: Callable[..., Any], *args: Any) -> bool:
    """Whether a timer's tick (a bound method) would change nothing if called now (with ``args``). The kit's own
    methods say so through the predicate they are marked with (``changes_nothing_when``); any other (a method
    replaced by a test, a store or scorer of your own) may do anything, and is always run at its time."""
    when = getattr(tick, "changes_nothing_when", None)
    return when is not None and bool(when(tick.__self__, *args))


class QuietLoop:
    """The processor loop's work while it sleeps (mixed into ``background_processor._RunBody``)."""

    #: The sync loop's longest wait per iteration (``background_processor.POLL_INTERVAL_S``).
    poll_interval_s: float

    def quiet_tick(self, now_us: int, until_us: int) -> Optional[int]:
        """At a deadline of the simulation's clock, run the due timers while the loop sleeps, if that is all
        its wake would do; returns the next deadline, or None to wake the loop as usual. Nothing else happens
        in the world before ``until_us``.

        The timers' own work (ticks, the prune, the scorer's persist), in the loop's order. If they leave
        events, messages or a persist for the loop (a future they complete wakes it), the loop wakes and does
        the rest of its iteration as it would have; otherwise that iteration would have done nothing, and
        skipping the thread hand-over changes nothing but the time it takes. Before the loop's first wake has
        decayed the scorer, a due scorer persist wakes it instead.
        """
        due = self._due(now_us)
        if not due or ("scorer_persist" in due and not self.have_decayed_scorer):
            return None  # (an event asked for again is still queued: work left, below, wakes the loop for it)
        if not self._run_timers(now_us, quiet=True, due=due):  # pragma: no mutate  (due: only not computed twice)
            return None
        if self._work_left():
            return None
        return self._count_quiet(self.next_deadline_us(now_us, self.poll_interval_s), until_us)

    def quiet_wake(self, now_us: int) -> Optional[int]:
        """When the world wakes the sleeping loop (every block asks for the manager to be persisted), do the
        iteration that wake would run, while the loop sleeps, if that is all it would do: persist the manager if
        asked, run the timers due now, find nothing for the top of the loop (events, messages, an event asked
        for again), and wait on fresh futures. Returns the deadline the loop would sleep to, or None to wake it
        as usual; its first wake, which decays the scorer, is always its own.

        The loop's thread would do this work in the world's turn, at the same moment, in the same order; what
        it saves is two thread hand-overs a block. A failed persist is handed to the loop, which raises it."""
        if self.arm_wakeup is None or not self.have_decayed_scorer:
            return None
        # The loop's wait returns, taking one future's wake-up (LDK's Sleeper); another complete too (a block notifies
        # the manager and the monitor) makes its next wait return at once, for a round that finds nothing more.
        while take_wake(self.futures()):
            pass
        if self.channel_manager.get_and_clear_needs_persistence():
            try:
                self.persist_manager()
            except Exception as e:  # (raised by the loop at once: see after_wake)
                self._handed_over = e
                return None
        if not self._run_timers(now_us, quiet=True) or self._work_left():  # (an event asked for again is queued)
            return None
        futures = self.futures()
        for future in futures:
            if future.is_complete():  # notified meanwhile: the loop goes round again at once
                return None
        self.arm_wakeup(futures)
        return self.next_deadline_us(now_us, self.poll_interval_s)

    def _count_quiet(self, deadline_us: int, until_us: int) -> int:
        """Fire the due timers at each of the loop's polls before ``until_us`` whose ticks would only count; returns
        the first deadline left. A ping only counts (the simulation's peers always answer), and so does a freshness
        or rebroadcast tick with nothing to age, forget or claim (``tick_changes_nothing``): the clock need not
        stop for them, and they are most of a sleeping processor's deadlines. Any other timer (the scorer's
        persist, the prune, a tick you replaced) is run at its time.

        Counted, not stepped through: the polls run ``poll_interval_s`` apart from ``deadline_us`` (a poll at which
        a timer falls due), so each timer falls due at the first poll at or after its threshold, then once a period
        (its interval, with the thread form's extra second), whatever the others do.
        The first poll at which a timer that does more falls due ends the count. Whether a timer would only count
        is asked in the order the timers fall due, and only of those due before the count ends (a persist that
        changes nothing is found by encoding the scorer): a later one's answer would change nothing counted."""
        poll_us = round(self.poll_interval_s * MICROS)
        timers = self.timers
        first: list[tuple[int, str]] = []
        for name, timer in timers.items():
            ahead_us = timer.threshold_us - deadline_us
            first.append((deadline_us - (-ahead_us // poll_us) * poll_us if ahead_us > 0 else deadline_us, name))
        first.sort()  # (a tie counts the same either way: the one due with a busy timer is not counted)
        end_us, idle, left_us = until_us, [], None
        for first_us, name in first:
            if first_us >= end_us:
                left_us = first_us
                break
            if not self._only_counts(name):
                end_us = left_us = first_us  # (the first busy poll is not counted)
                break
            idle.append((first_us, name))
        following = [] if left_us is None else [left_us]  # (the first not counted: busy, or due after the end)
        for first_us, name in idle:
            timer = timers[name]
            period_us = timer.period_us  # (whole seconds, so whole polls)
            count = -(-(end_us - first_us) // period_us)  # (none if due with the busy one, at the end)
            if count:
                timer.last_us = first_us + (count - 1) * period_us
                self.timer_counts[name] += count
                if name == "ping":
                    self._timer_actions["ping"].__self__.ticks_occurred(count)
            following.append(first_us + count * period_us)
        return min(following)

    def _only_counts(self, name: str) -> bool:
        """Whether timer ``name``'s tick now would only count (see ``_count_quiet``)."""
        match name:
            case "ping":
                return bool(getattr(self._timer_actions["ping"], "only_counts", False))
            case "freshness" | "rebroadcast":
                return tick_changes_nothing(self._timer_actions[name])
            case "scorer_persist":
                return self._scorer_persist_changes_nothing()
        return False

    def _scorer_persist_changes_nothing(self) -> bool:
        """Whether the scorer's persist now would change nothing: there is no scorer, or it has learned nothing
        (``time_passed`` has nothing to decay) and the store already holds its bytes. Mining, it is the one timer
        of a quiet block that would otherwise stop the clock (every five minutes, twice a block)."""
        scorer = self.scorer
        return scorer is None or (  # (anything not the kit's own is run at its time, and any error met there)
            tick_changes_nothing(getattr(scorer, "time_passed", None))
            and tick_changes_nothing(getattr(self.persister, "write", None), "", "", SCORER_PERSISTENCE_KEY,
                                     scorer.encode()))

    def next_deadline_us(self, wait_start_us: int, poll_s: float) -> int:
        """On a virtual clock, sleep straight to the poll at which a timer falls due.

        Polls in between would find nothing to do (new events wake the loop at once), so
        skipping them changes nothing but the time it takes.
        """
        poll_us = round(poll_s * MICROS)
        if not self.clock.is_virtual:
            return wait_start_us + poll_us
        first_us = None  # (a plain loop, and the division inline: asked at every sleep of the loop)
        for timer in self.timers.values():
            if first_us is None or timer.threshold_us < first_us:
                first_us = timer.threshold_us
        assert first_us is not None
        return wait_start_us + max(1, -((wait_start_us - first_us) // poll_us)) * poll_us  # the poll it is due at
