"""Workbook 7: under the background processor, where a failed write must lose nothing.

Rules, judged under both of LDK's forms (``BackgroundProcessor.start`` and ``process_events_async``),
from what is on disk once the processor has stopped:
- the payment received is claimed (as workbook 3 says), so that the write that fails is tried;
- when writing ``inbound_payments`` or ``outbound_payments`` fails, the event is not lost: the
  handler returns ``ReplayEvent()`` (or retries the write itself) and the record ends right (the disk fails
  ``REFUSALS`` times in a row while the event that records the key is handled, and then goes on refusing the
  hand-over that met it, for ``FULL_FOR_S`` in all, for every writer of its file: ``fs_store``, ``open()``, a file
  moved onto it, a worker, whenever it was started; the workbook says "your handler cannot know: it must not give
  up": a handler that gives up after some tries, in place or by asking for the event again a few times, loses the
  record);
- the handler never raises for it (that would stop the node's processing);
- a retry may come after a pause (``asyncio.sleep``): the processor waits for the handler to return, as LDK's does, on
  the simulated clock, for up to ``PLAY_ON_S`` after the story (``common._wait_for_the_handler``);
- handling an event again never counts it twice: the amount stored is the amount received;
- after a crash and a restart, the replayed events leave the same records, though what your code kept in memory (a
  set, a dict, a count) is back as the check found it, as a restarted process loads it (``memory.Memory``; these two
  stories are played as the world drives the node: the capstone plays ``restart_replay`` under the processor too; the
  crash just after ``PaymentClaimed`` waits for claims put off, as workbook 3 allows).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import Event
from ..persist import CHANNEL_MANAGER_PERSISTENCE_KEY
from ..scenarios import Stage
from . import receiving_payments, sending_payments
from .common import PLAY_ON_S, CheckResult, Handling, Played, Session, fail, held_back
from .recorder import Call, replayed, working_for

FORMS = ("thread", "async")


def _failing(stage: Stage, key: str, kinds: tuple[type, ...] | None = None) -> None:
    """The node's disk is full for ``key`` while your handler handles an event whose record it is (``kinds``, by
    default ``RECORDED_BY``), or a task or thread started then writes it, as a full disk would: through its
    ``fs_store``, and through any other writer of the key's file (``open()``, a ``FilesystemStore`` of your own). See
    :class:`_Full` for how long. A write of it while handling another event (a PaymentClaimable, a PaymentPathFailed)
    is not refused: a handler that writes there too must still meet the failure in the arm that records the
    payment."""
    store = stage.me.fs_store
    real_write = store.write
    full = _Full(key, kinds or RECORDED_BY[key], stage.world.clock.now)
    with _HOOKING:  # (an audit hook is never removed: only a process that plays a failing disk has one, ~1% slower)
        if not _HOOKED:
            sys.addaudithook(_refuse_open)
            _HOOKED.append(_refuse_open)
    for path, fulls in list(_REFUSED.items()):  # (those of plays over: the disk freed, or their world gone)
        fulls[:] = [f for f in fulls if not f.freed]
        if not fulls or not os.path.isdir(os.path.dirname(path)):
            _REFUSED.pop(path, None)
    _REFUSED.setdefault(os.path.abspath(store._file("", "", key)), []).append(full)

    def write(primary_namespace: str, secondary_namespace: str, key: str, buf: bytes) -> None:
        """FilesystemStore.write, with its own parameter names (a handler may pass them as keywords)."""
        error = full.refusal() if key == full.key else None
        if error is not None:
            raise error
        real_write(primary_namespace, secondary_namespace, key, buf)

    store.write = write  # type: ignore[method-assign]


#: The events whose handling records each key (what workbook 7's failing disk refuses a write of it in).
RECORDED_BY: dict[str, tuple[type, ...]] = {"inbound_payments": (Event.PaymentClaimed,),
                                            "outbound_payments": (Event.PaymentSent, Event.PaymentFailed)}

#: How long the disk stays full once it first refused a write (simulated seconds): a handler that pauses between its
#: tries (half a minute, a minute) finds room at its next try, as it would on a real disk.
FULL_FOR_S = 30
#: Meanwhile it refuses the first ``REFUSALS`` writes whoever makes them, more than a handler that gives up after a
#: few quick tries (in place, or asking for the event again a few times) would make; and then every write of a
#: hand-over it already refused, up to ``TRIES`` of them (at once, or after short pauses): a handler that tries again
#: and again and then gives up loses the record, however many tries it allowed itself. A handler that never gives up
#: is right whatever the numbers: asked again (``ReplayEvent()``), a new hand-over's first write goes through once
#: the first refusals are spent; trying on in place, its write goes through once the disk has room.
REFUSALS, TRIES = 6, 1_000


@dataclass
class _Full:
    """A disk full for one key while events of ``kinds`` are handled: see ``FULL_FOR_S`` and ``REFUSALS``."""

    key: str
    kinds: tuple[type, ...]
    now: Callable[[], float]
    left: int = REFUSALS
    since: float | None = None  # when it first refused a write
    refused: dict[int, int] = field(default_factory=dict)  # by hand-over (its order): how many of its writes
    freed: bool = False  # a write went through once it was full: the disk has room again

    def refusal(self) -> OSError | None:
        """The disk's error for a write of the key made now, or None if it goes through."""
        handling = None if self.freed else _handling(self.kinds)
        if handling is None:
            return None
        now, refused = self.now(), self.refused.get(handling.order, 0)
        self.since = now if self.since is None else self.since
        if self.left and now - self.since < FULL_FOR_S:
            self.left -= 1
        elif not refused or refused >= TRIES or now - self.since >= FULL_FOR_S:
            self.freed = True
            return None
        self.refused[handling.order] = refused + 1
        return OSError(f"disk full (simulated) writing {self.key}")


def _handling(kinds: tuple[type, ...]) -> Handling | None:
    """The hand-over of an event of ``kinds`` the code running now works for: the one it runs for (or in a task or
    thread started then), or one your handler is handling (a worker of yours started earlier, writing for it)."""
    handling, recorder = working_for()
    if handling is not None and isinstance(handling.event, kinds):
        return handling
    return next((h for h in recorder.in_progress() if isinstance(h, Handling) and isinstance(h.event, kinds)),
                None) if recorder is not None else None


#: The files a failing disk refuses to write, each with its spells of being full, one for each ``_failing`` of it (the
#: first that refuses a write made now refuses it). Every check in the process shares it: their nodes' folders differ.
_REFUSED: dict[str, list[_Full]] = {}
_HOOKING, _HOOKED = threading.Lock(), []  # (the hook, once added)


def _refuse_open(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: a refused file opened for writing by anyone (a key's own file, or the temporary file a
    FilesystemStore writes it through), or a file of any name moved onto it (``os.replace``, ``os.rename``,
    ``shutil.move``, a temporary file's usual end), raises the disk's error."""
    if not _REFUSED or not (event == "open" and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR)
                            or event == "os.rename"):
        return
    path = args[1] if event == "os.rename" else args[0]
    if not isinstance(path, (str, bytes, os.PathLike)):
        return
    folder, name = os.path.split(os.path.abspath(os.fsdecode(path)))
    key = name.split(".", 1)[0]  # (keys have no '.': "key.<hex>.tmp")
    fulls = _REFUSED.get(os.path.join(folder, key))
    if fulls is None:
        return
    error = next((e for e in (full.refusal() for full in fulls) if e is not None), None)
    handling, recorder = working_for()
    if recorder is not None and handling is not None:  # (your own write: judged as a write of fs_store's is)
        recorder.calls.append(Call("open", {"key": key}, handling, handling.finished is None,
                                   recorder.world.clock.now(), error))
    if error is not None:
        raise error


def receive_with_failing_disk(stage: Stage) -> None:
    bob = stage.peer("bob")
    stage.open(bob, stage.me, 6_000_000)
    _failing(stage, "inbound_payments")
    stage.pay(bob, stage.invoice(stage.me, 50_000_000))


def send_with_failing_disk(stage: Stage) -> None:
    bob = stage.peer("bob")
    stage.open(stage.me, bob, 1_000_000)
    _failing(stage, "outbound_payments", kinds=(Event.PaymentSent,))
    stage.pay(stage.me, stage.invoice(bob, 100_000_000))
    for _ in range(PLAY_ON_S):  # (a handler pausing between its retries may take a while: the next payment waits)
        if not stage.me.channel_manager.has_pending_events():
            break
        stage.settle(1)
    _failing(stage, "outbound_payments", kinds=(Event.PaymentFailed,))
    sending_payments.pay_fake(stage, bob)


STORIES: dict[str, Callable[[Stage], None]] = {
    "a failed write of inbound_payments": receive_with_failing_disk,
    "failed writes of outbound_payments": send_with_failing_disk,
}


def rules(session: Session, result: CheckResult) -> None:
    for form in FORMS:
        for title, story in STORIES.items():
            receives = story is receive_with_failing_disk  # (claimed, or the write that fails is never tried)
            played = session.play(f"{title}, under {_form(form)}", story, processor=form)
            judge_replays(played)
            if receives:
                receiving_payments.judge_claims(played)
    result.add("a failed write loses nothing: ReplayEvent, and the record ends right",
               "inbound and outbound, both processor forms")
    result.add("a replayed event is not counted twice", "the amount stored is the amount received")
    for name, story in (("restart_replay", restart_story), ("a crash just after PaymentClaimed", crash_after_claimed)):
        judge_replays(session.play(name, story))
    result.add("after a crash and restart, the replayed events leave the same records", "yes")


def _form(form: str) -> str:
    return "BackgroundProcessor.start" if form == "thread" else "process_events_async"


def judge_replays(played: Played) -> None:
    """The last hand-over of each payment event left the right record; failed writes were not swallowed."""
    last: dict[Event, Handling] = {}  # events of two kinds are never equal
    for handling in played.recorder.handlings:
        if isinstance(handling.event, (Event.PaymentClaimed, Event.PaymentSent, Event.PaymentFailed)):
            last[handling.event] = handling
    for handling in last.values():  # never a replay asked for: the story refused those (common._check_handled)
        _judge_not_swallowed(played, handling)
    receiving_payments.judge_claimed_records(played)  # an event is handed over again only if it was replayed
    receiving_payments.judge_unclaimed_records(played)
    sending_payments.judge_outbound_records(played)


def _judge_not_swallowed(played: Played, handling: Handling) -> None:
    """A write that raised, of a key no later write of this hand-over wrote, and None returned: swallowed."""
    # (only the writes made before it returned: a task's retry later is no write before LDK forgets the event)
    writes = [w for w in played.recorder.calls_for(handling) if w.name in ("fs_store.write", "open") and w.during]
    keys = [w.arguments.get("key") for w in writes]
    lost = [w for at, w in enumerate(writes) if w.error is not None
            and not any(later.error is None for later in writes[at + 1:] if later.arguments.get("key") == keys[at])]
    if lost and handling.finished is None:  # (it never returned: nothing it returned can be judged)
        raise fail(played, handling.event, f"{keys[writes.index(lost[0])]} persisted before your handler returned",
                   "your handler had not returned from this event when the story ended: it was still waiting",
                   held_back(played))
    if lost and not replayed(handling):  # (None, or an answer LDK's handler has not: False, "retry"... all handled)
        key = keys[writes.index(lost[0])]
        returned = "" if handling.result is None else f" ({handling.result!r}, which LDK takes as handled)"
        tries = sum(1 for w in writes if w.error is not None and w.arguments.get("key") == key)
        gave_up = f" after {tries} tries" if tries > 1 else ""
        raise fail(played, handling.event, "ReplayEvent() returned when the write failed, so LDK hands the event over "
                   "again", f"writing {key} raised {type(lost[0].error).__name__} and your handler returned as if "
                   f"all was well{gave_up}{returned}: the record is lost",
                   "catch OSError around fs_store.write and return ReplayEvent(): an event counts as handled only "
                   "once your handler returns normally." + (
                       " Your handler cannot know how long a disk stays full: never give up after a number of tries "
                       "(asked again, LDK hands the event over as long as you ask)." if tries > 1 else ""))


def crash_after_claimed(stage: Stage) -> None:
    """Your node crashes just after your handler returned from PaymentClaimed, before the manager was persisted
    again: restarted from the manager as it was persisted while the event still waited, it hands PaymentClaimed over
    again (LDK: "the app may crash after handling an event but before the manager is saved"; handlers must be
    idempotent). An invoice payment and a keysend arrive together: neither record may count its payment twice."""
    bob = stage.peer("bob")
    stage.open(bob, stage.me, 6_000_000)
    me, kept = stage.me, {}
    queue = me.channel_manager._events
    record = queue.observer  # (the world's: called as each event is handed to your handler, to log it)
    claimed: set[bytes] = set()

    def keep(event: Event) -> None:
        if isinstance(event, Event.PaymentClaimed):  # (the last: a claim put off comes in a hand-over of its own)
            kept["manager"] = me.channel_manager.encode()  # the event still pending in it
            claimed.add(bytes(event.payment_hash))
        if record is not None:
            record(event)

    queue.observer = keep
    invoice = stage.invoice(me, 50_000_000)
    stage.pay(bob, invoice, settle_s=0)  # (and a keysend at once: both claimed together)
    paid = {bytes(invoice.payment_hash()), bytes(stage.keysend(bob, me, 20_000_000))}
    waited = 0  # a claim put off (workbook 3 allows it): the crash comes once both are claimed, not before
    while waited < PLAY_ON_S and not paid <= claimed:
        stage.settle(1)
        waited += 1
    if "manager" in kept:  # (else the payment never reached your handler: judged as such)
        me.fs_store.write("", "", CHANNEL_MANAGER_PERSISTENCE_KEY, kept["manager"])
        stage.me = stage.world.restart_node(me)
        stage.settle(10)


def restart_story(stage: Stage) -> None:
    from ..scenarios import _SCENARIOS

    _SCENARIOS["restart_replay"](stage)
