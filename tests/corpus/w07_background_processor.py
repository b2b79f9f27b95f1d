"""Workbook 7, under the background processor: a failed write loses nothing, a replay counts once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import queue
import sqlite3
import tempfile
import threading
import time
from typing import Any

from ldkkit.events import Event, ReplayEvent
from ldkkit.payment_storage import HTLCStatus, PaymentInfo

from . import Fresh, right, wrong
from .arms import claimable as good_claimable
from .arms import claimed as good_claimed
from .arms import compose, failed, fund_channel, nothing, open_channel, sent, spawn
from .w03_receiving_payments import (
    answers_after,
    answers_from_a_thread_after,
    claimed_by_a_worker_per_loop,
    claimed_by_one_worker,
    claimed_retry_in_place,
)

EX = "background_processor"
CLAIMABLE, CLAIMED, SENT, FAILED = Event.PaymentClaimable, Event.PaymentClaimed, Event.PaymentSent, Event.PaymentFailed


def _update_inbound(inbound_payments: Any, event: Any, *, add: bool = False) -> None:
    secret = getattr(event.purpose, "payment_secret", None)
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        if info is None:
            payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), secret, HTLCStatus.Succeeded,
                                                       event.amount_msat)
        else:
            info.status, info.preimage, info.secret = HTLCStatus.Succeeded, event.purpose.preimage(), secret
            if add:
                info.amt_msat = (info.amt_msat or 0) + event.amount_msat
            else:
                info.amt_msat = event.amount_msat


def _update_outbound(outbound_payments: Any, event: Any) -> None:
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is None:
            return
        if isinstance(event, Event.PaymentSent):
            info.status, info.preimage = HTLCStatus.Succeeded, event.payment_preimage
        elif info.status is not HTLCStatus.Succeeded:
            info.status = HTLCStatus.Failed


def persisting(update: Any, key: str, on_error: Any) -> Any:
    """An arm: ``update(storage, event)``, then write ``key``; ``on_error(error)`` says what a failed write does."""

    def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        storage = inbound_payments if key == "inbound_payments" else outbound_payments
        update(storage, event)
        try:
            fs_store.write("", "", key, storage.encode())
        except OSError as e:
            return on_error(e)
        return None

    return arm


def replay(error: OSError) -> ReplayEvent:
    return ReplayEvent()


def swallow(error: OSError) -> None:
    print("could not save:", error)


def reraise_as_runtime(error: OSError) -> None:
    raise RuntimeError("could not save the payment") from error


def raise_replay(error: OSError) -> None:
    raise ReplayEvent()


def replay_class(error: OSError) -> Any:
    return ReplayEvent  # the class, not an instance: the kit's queue takes it too


def sleep_and_retry(error: OSError) -> None:
    time.sleep(0.05)
    raise error


def wait_and_retry(error: OSError) -> None:
    threading.Event().wait(0.05)  # "sleep" without time.sleep: it blocks all the same
    raise error


def join_a_timer_then_retry(error: OSError) -> None:
    """Waits for a 50 ms timer thread to end (Thread.join blocks in C, never in a Condition) before giving up."""
    timer = threading.Timer(0.05, lambda: None)
    timer.start()
    timer.join()
    raise error


def sleep_swallowed_then_replay(error: OSError) -> ReplayEvent:
    try:
        time.sleep(0.05)
    except Exception:  # (the check's refusal, swallowed: the node was to be blocked all the same)
        pass
    return ReplayEvent()


INBOUND = lambda on_error, add=False: persisting(  # noqa: E731
    lambda storage, event: _update_inbound(storage, event, add=add), "inbound_payments", on_error)
OUTBOUND = lambda on_error: persisting(_update_outbound, "outbound_payments", on_error)  # noqa: E731


def unprotected(update: Any, key: str) -> Any:
    def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        storage = inbound_payments if key == "inbound_payments" else outbound_payments
        update(storage, event)
        fs_store.write("", "", key, storage.encode())

    return arm


def retry_outbound_in_place(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    _update_outbound(outbound_payments, event)
    for _attempt in range(5):
        try:
            fs_store.write("", "", "outbound_payments", outbound_payments.encode())
            return None
        except OSError:
            pass
    return ReplayEvent()


def _updated(inbound_payments: Any, outbound_payments: Any, event: Any) -> tuple[Any, str]:
    """The event's record updated in its storage: the storage, and the key it is written under."""
    if isinstance(event, Event.PaymentClaimed):
        _update_inbound(inbound_payments, event)
        return inbound_payments, "inbound_payments"
    _update_outbound(outbound_payments, event)
    return outbound_payments, "outbound_payments"


def write_by_keyword(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    storage, key = _updated(inbound_payments, outbound_payments, event)
    try:
        fs_store.write(primary_namespace="", secondary_namespace="", key=key, buf=storage.encode())
    except OSError:
        return ReplayEvent()
    return None


async def write_through_wait_for(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any,
                                 **_: Any) -> Any:
    """The write in a thread, awaited through asyncio.wait_for (a task of its own): its OSError reaches the handler."""
    storage, key = _updated(inbound_payments, outbound_payments, event)
    try:
        await asyncio.wait_for(asyncio.to_thread(fs_store.write, "", "", key, storage.encode()), 5)
    except (OSError, asyncio.TimeoutError):
        return ReplayEvent()
    return None


def update_after_write(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    """Writes first "so nothing is half-done", then updates memory: the disk keeps the old record."""
    try:
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())
    except OSError:
        return ReplayEvent()
    _update_inbound(inbound_payments, event)
    return None


def swallow_then_log(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Swallows the failed write of the record, then writes a log of the claim, which works."""
    _update_inbound(inbound_payments, event)
    try:
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())
    except OSError:
        pass  # "the log below will do"
    fs_store.write("", "", "claims_log", bytes(event.payment_hash))


def always_replay(**kw: Any) -> ReplayEvent:
    good_claimed(**kw)
    return ReplayEvent()  # "to be safe"


def _plain_with(changes: dict) -> Any:
    return compose(changes, plain=True)


ALL_REPLAY = {CLAIMED: INBOUND(replay), SENT: OUTBOUND(replay), FAILED: OUTBOUND(replay)}

def retries_once_then_swallows(key: str, tries: int = 2) -> Any:
    """Retries the failed write of ``key`` (``tries`` attempts in all, twice by default), then logs and returns as if
    all was well ("the disk is full anyway")."""
    def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        storage = inbound_payments if key == "inbound_payments" else outbound_payments
        (_update_inbound if key == "inbound_payments" else _update_outbound)(storage, event)
        for attempt in range(tries):
            try:
                fs_store.write("", "", key, storage.encode())
                return
            except OSError as error:
                if attempt == tries - 1:
                    print(f"could not save {key}:", error)

    return arm


def replays_a_few_times_then_gives_up(times: int) -> Any:
    """Returns ReplayEvent for a failed write ``times`` times per event (counted by payment hash), then returns None
    ("it will never work")."""
    asked: dict[Any, int] = {}

    def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        storage, key = _updated(inbound_payments, outbound_payments, event)
        try:
            fs_store.write("", "", key, storage.encode())
        except OSError:
            asked[event.payment_hash] = asked.get(event.payment_hash, 0) + 1
            return ReplayEvent() if asked[event.payment_hash] <= times else None
        return None

    return arm


def retries_for_ever(pause: float = 0) -> Any:
    """Retries the failed write until it works, at once (``pause`` 0) or awaiting ``pause`` simulated seconds between
    tries: "retrying the write yourself is fine too"."""

    async def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        storage, key = _updated(inbound_payments, outbound_payments, event)
        while True:
            try:
                fs_store.write("", "", key, storage.encode())
                return
            except OSError:
                if pause:
                    await asyncio.sleep(pause)

    return arm


def pauses_then_asks_again(pause: float) -> Any:
    """On a failed write, awaits ``pause`` simulated seconds (not to ask again at once of a full disk), then returns
    ReplayEvent()."""

    async def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        storage, key = _updated(inbound_payments, outbound_payments, event)
        try:
            fs_store.write("", "", key, storage.encode())
        except OSError:
            await asyncio.sleep(pause)
            return ReplayEvent()
        return None

    return arm


def adds_when_handed_again(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    """Adds the amount to a record already Succeeded ("another part arrived"), and puts memory back as it was when
    the write fails: right after a failed write, but a PaymentClaimed handed over again after a crash counts twice."""
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        before = None if info is None else (info.preimage, info.secret, info.status, info.amt_msat)
        if info is None:
            payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(),
                                                       getattr(event.purpose, "payment_secret", None),
                                                       HTLCStatus.Succeeded, event.amount_msat)
        elif info.status is HTLCStatus.Succeeded:
            info.amt_msat += event.amount_msat
        else:
            info.status, info.preimage = HTLCStatus.Succeeded, event.purpose.preimage()
            info.secret, info.amt_msat = getattr(event.purpose, "payment_secret", None), event.amount_msat
        try:
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())
        except OSError:
            if before is None:
                del payments[event.payment_hash]
            else:
                info.preimage, info.secret, info.status, info.amt_msat = before
            return ReplayEvent()
    return None


async def claimed_then_waits_forever(inbound_payments: Any, fs_store: Any, event: Any, **kw: Any) -> Any:
    """Writes the record (a failed write answered with ReplayEvent), then awaits an asyncio.Event nobody sets "until
    the disk has settled": it never returns from PaymentClaimed."""
    answer = good_claimed(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
    await asyncio.Event().wait()
    return answer


def retries_after_pauses(pauses: tuple[float, ...], then: str) -> Any:
    """An async arm writing the record, retried after each of ``pauses`` (simulated seconds, ``asyncio.sleep``) while
    it fails; when the last fails too, ``then``: "replay" (ReplayEvent) or "swallow" (printed, None)."""

    async def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        storage, key = _updated(inbound_payments, outbound_payments, event)
        for pause in (0, *pauses):
            await asyncio.sleep(pause)
            try:
                fs_store.write("", "", key, storage.encode())
                return None
            except OSError as error:
                failed = error
        if then == "replay":
            return ReplayEvent()
        print("could not save:", failed)
        return None

    return arm


def retries_from_a_task_later(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """On a failed write, returns None at once and retries the write from a task, once a second, until it works."""
    _update_inbound(inbound_payments, event)
    try:
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())
    except OSError:
        async def retry() -> None:
            for _ in range(10):
                await asyncio.sleep(1)
                try:
                    fs_store.write("", "", "inbound_payments", inbound_payments.encode())
                    return
                except OSError:
                    pass

        spawn(retry())


def remembers_what_it_wrote() -> Any:
    """Each payment event's record written once: one handed over again after its write succeeded is skipped (a set
    of what was written, kept by the handler). Right, and idempotent; it needs the check's plays not to repeat one
    another's payment hashes."""
    written: set[tuple[str, bytes]] = set()

    def once(arm: Any, key_of: Any) -> Any:
        def wrapped(event: Any, **kw: Any) -> Any:
            key = (type(event).__name__, bytes(key_of(event)))
            if key in written:
                return None
            answer = arm(event=event, **kw)
            if answer is None:
                written.add(key)
            return answer

        return wrapped

    return compose({Event.PaymentClaimed: once(good_claimed, lambda e: e.payment_hash),
                    Event.PaymentSent: once(sent, lambda e: e.payment_id),
                    Event.PaymentFailed: once(failed, lambda e: e.payment_id)})


def counts_once_by_memory(where: str = "closure") -> Any:
    """Adds each payment's amount to its record once: a set in memory says which it counted ("idempotent"). After a
    real crash the set is gone, and the PaymentClaimed handed over again is counted twice. ``where`` the set is kept:
    a closure's cell, a mutable default argument, a class attribute, an attribute of the function, an lru_cache, a
    dict beside its lock, an object with ``__slots__``, an in-memory sqlite3 database."""
    counted: set[bytes] = set()
    state = {"lock": threading.Lock(), "counted": set()}

    class Seen:
        hashes: set[bytes] = set()

    class Slotted:
        __slots__ = ("hashes",)

        def __init__(self) -> None:
            self.hashes: set[bytes] = set()

    slotted = Slotted()
    database = sqlite3.connect(":memory:", check_same_thread=False)
    database.execute("create table counted (h blob primary key)")

    class InTheDatabase:  # (the set's two calls, on the database)
        def __contains__(self, payment_hash: bytes) -> bool:
            return database.execute("select 1 from counted where h = ?", (payment_hash,)).fetchone() is not None

        def add(self, payment_hash: bytes) -> None:
            database.execute("insert into counted values (?)", (payment_hash,))

    def remembered(payment_hash: bytes, seen: set[bytes] = set()) -> Any:  # noqa: B006 (the learner's slip)
        return {"closure": counted, "default": seen, "class": Seen.hashes, "function": claimed.seen,
                "dict_with_its_lock": state["counted"], "slots": slotted.hashes, "sqlite": InTheDatabase()}[where]

    @functools.cache
    def first_time(payment_hash: bytes) -> list[bool]:
        return [True]

    def is_new(payment_hash: bytes) -> bool:
        if where == "lru_cache":  # (the first call for a hash returns a list it then empties)
            answer = first_time(payment_hash)
            return bool(answer and answer.pop())
        return payment_hash not in remembered(payment_hash)

    def claimed(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        secret = getattr(event.purpose, "payment_secret", None)
        with inbound_payments.lock() as payments:
            info = payments.get(event.payment_hash)
            if is_new(bytes(event.payment_hash)):
                if info is None:
                    info = payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), secret,
                                                                      HTLCStatus.Succeeded, 0)
                elif info.status is not HTLCStatus.Succeeded:
                    info.amt_msat = 0
                info.status, info.preimage, info.secret = HTLCStatus.Succeeded, event.purpose.preimage(), secret
                info.amt_msat += event.amount_msat
                if where != "lru_cache":
                    remembered(bytes(event.payment_hash)).add(bytes(event.payment_hash))
            try:
                fs_store.write("", "", "inbound_payments", inbound_payments.encode())
            except OSError:
                return ReplayEvent()
        return None

    claimed.seen = set()  # type: ignore[attr-defined]
    return compose({CLAIMED: claimed})


def writes_in_a_thread_after_its_pool() -> Any:
    """Each payment event's record is written by a thread of its own, which first waits for a pool of its own, then
    writes (ReplayEvent if the write failed); the handler awaits its answer."""
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def via_thread(arm: Any) -> Any:
        async def wrapped(**kw: Any) -> Any:
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            def run() -> None:
                pool.submit(lambda: None).result()
                loop.call_soon_threadsafe(done.set_result, arm(**kw))

            threading.Thread(target=run, daemon=True).start()
            return await done

        return wrapped

    return compose({CLAIMED: via_thread(good_claimed), SENT: via_thread(sent), Event.PaymentFailed: via_thread(failed)})


def returns_its_write_unawaited(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    """Records the claim, then ``return persist(...)``: the async helper that writes it, its ``await`` forgotten."""

    async def persist() -> Any:
        try:
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())
        except OSError:
            return ReplayEvent()
        return None

    _update_inbound(inbound_payments, event)

    async def arm() -> Any:  # (the composed handler awaits this; what it returns, it returns: a coroutine)
        return persist()

    return arm()


def skips_what_memory_says_is_recorded(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    """Idempotent by memory: returns at once when the payment is already Succeeded in inbound_payments. But memory
    was changed before the write that failed, so when the event is handed over again nothing is written."""
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        if info is not None and info.status is HTLCStatus.Succeeded:
            return None  # "already recorded"
    return good_claimed(inbound_payments=inbound_payments, fs_store=fs_store, event=event)


def writes_under_a_namespace(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any,
                             **_: Any) -> Any:
    """Every write under the primary namespace "payments": ldk-sample reads the records back from "", "" on restart."""
    storage, key = _updated(inbound_payments, outbound_payments, event)
    try:
        fs_store.write("payments", "", key, storage.encode())
    except OSError:
        return ReplayEvent()
    return None


def by_open(on_error: str, tries: int = 1, *, through_a_temporary_file: bool = False) -> Any:
    """An arm writing the record with open() in the node's folder, not fs_store.write, ``tries`` times at most; when
    the last fails, ``on_error``: "raise" it, "replay" (ReplayEvent), or "print" it and return None. Or, ``through a
    temporary file``: written under a name of tempfile's, then moved onto the key's (os.replace), as files are saved
    whole."""

    def arm(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        storage, key = _updated(inbound_payments, outbound_payments, event)
        path = os.path.join(fs_store.get_data_dir(), key)
        for attempt in range(tries):
            try:
                if through_a_temporary_file:
                    with tempfile.NamedTemporaryFile(dir=fs_store.get_data_dir(), delete=False) as file:
                        file.write(storage.encode())
                    os.replace(file.name, path)
                    return None
                with open(path, "wb") as file:
                    file.write(storage.encode())
                return None
            except OSError as error:
                if attempt + 1 < tries:
                    continue
                match on_error:
                    case "raise":
                        raise
                    case "replay":
                        return ReplayEvent()
                    case _:
                        print("could not save:", error)
        return None

    return arm


def by_a_store_of_its_own(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any,
                          **_: Any) -> None:
    """Writes the record with a FilesystemStore of its own, on the node's folder, and no try/except."""
    from ldkkit.fs_store import FilesystemStore

    storage, key = _updated(inbound_payments, outbound_payments, event)
    FilesystemStore(fs_store.get_data_dir()).write("", "", key, storage.encode())


def claims_and_persists(channel_manager: Any, inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    """PaymentClaimable: claims, then writes inbound_payments too ("in case"), ReplayEvent if that write fails."""
    good_claimable(channel_manager=channel_manager, inbound_payments=inbound_payments, event=event)
    try:
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())
    except OSError:
        return ReplayEvent()
    return None


def persists_unchanged(outbound_payments: Any, fs_store: Any, **_: Any) -> Any:
    """PaymentPathFailed: writes outbound_payments as it is ("so nothing is lost"), ReplayEvent if that fails."""
    try:
        fs_store.write("", "", "outbound_payments", outbound_payments.encode())
    except OSError:
        return ReplayEvent()
    return None


def _written_by_a_worker(jobs: queue.Queue[Any], protected: bool = True) -> Any:
    """An arm that updates its record, puts the write on ``jobs`` for a worker, and awaits it: ReplayEvent if it failed
    and ``protected``, else the OSError goes up."""
    async def record(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
        storage, key = _updated(inbound_payments, outbound_payments, event)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        jobs.put((done, fs_store, key, storage.encode()))
        try:
            await asyncio.wrap_future(done)
        except OSError:
            if not protected:
                raise
            return ReplayEvent()
        return None

    return record


def writes_by_a_worker_started_first(protected: bool) -> Any:
    """One writer thread, started as the cell runs (before the check: no event is being handled), writes every record
    from a queue.Queue; the handler awaits each write's future (ReplayEvent if it failed and ``protected``; otherwise
    the worker prints the error and reports the write done, "so that the handler goes on")."""
    jobs: queue.Queue[Any] = queue.Queue()

    def write() -> None:
        while True:
            done, fs_store, key, data = jobs.get()
            try:
                fs_store.write("", "", key, data)
            except OSError as e:
                if protected:
                    done.set_exception(e)
                    continue
                print(f"could not save {key}: {e}")
            done.set_result(None)

    threading.Thread(target=write, daemon=True).start()
    record = _written_by_a_worker(jobs)
    return compose({CLAIMED: record, SENT: record, FAILED: record})


def writes_by_one_worker(protected: bool) -> Any:
    """One writer thread, started with the node's first channel event, writes every record from a queue.Queue; the
    handler awaits each write's future (ReplayEvent if it failed and ``protected``, else the OSError goes up)."""
    jobs: queue.Queue[Any] = queue.Queue()
    worker: list[threading.Thread] = []

    def write() -> None:
        while True:
            done, fs_store, key, data = jobs.get()
            try:
                fs_store.write("", "", key, data)
                done.set_result(None)
            except OSError as e:
                done.set_exception(e)

    def starting(arm: Any) -> Any:
        def started(**kw: Any) -> Any:
            if not worker:
                worker.append(threading.Thread(target=write, daemon=True))
                worker[0].start()
            return arm(**kw)

        return started

    record = _written_by_a_worker(jobs, protected)

    return compose({Event.OpenChannelRequest: starting(open_channel), Event.FundingGenerationReady:
                    starting(fund_channel), CLAIMED: record, SENT: record, FAILED: record})


CASES = [
    wrong(EX, "never_claims", compose({CLAIMABLE: nothing}), "it was never claimed",
          why="no PaymentClaimable arm at all: the write that fails was never tried, and the workbook passed it"),
    wrong(EX, "claimed_by_one_worker_task", Fresh(claimed_by_one_worker), "a task spawned in an earlier play",
          "event loop of its own",
          why="one task, spawned with the first PaymentClaimable of the check, claims from a queue: from the second "
              "play on it claimed nothing, and the workbook passed it (the failed writes of those plays never tried)"),
    right(EX, "claims_a_minute_later", compose({CLAIMABLE: answers_after(60)}),
          why="claims from a task a minute later, as workbook 3 allows: waited for, as workbook 3 waits"),
    right(EX, "claimed_by_a_worker_per_loop", Fresh(claimed_by_a_worker_per_loop),
          why="one task per node's loop claims every payment from a queue, with the components handed over with it"),
    wrong(EX, "skips_what_memory_says_is_recorded", compose({CLAIMED: skips_what_memory_says_is_recorded}),
          "handed over again", "Write the record each time",
          why="returns at once when memory already says Succeeded: the replay after the failed write writes nothing. "
              "It was told to write under the key 'inbound_payments', which it had"),
    wrong(EX, "writes_under_a_namespace", compose({CLAIMED: writes_under_a_namespace, SENT: writes_under_a_namespace,
                                                   FAILED: writes_under_a_namespace}),
          "primary_namespace 'payments'", 'in "" and ""',
          why="fs_store.write(\"payments\", \"\", key, ...): it was told \"nothing is stored under 'inbound_payments'; "
              "you wrote under ['inbound_payments']\", and to use that key, which it had"),
    right(EX, "writes_in_a_thread_after_its_pool", Fresh(writes_in_a_thread_after_its_pool),
          why="each record is written by a thread that first waits for its pool, the handler awaiting it: it failed "
              "9 runs in 10 ('never returned'), the pool's thread starting having stopped the thread counting"),
    right(EX, "remembers_what_it_wrote", Fresh(remembers_what_it_wrote),
          why="skips an event whose record it already wrote (a set of payment hashes and ids, kept across the "
              "check's stories: each story's payments are its own)"),
    right(EX, "retry_in_place", compose({CLAIMED: claimed_retry_in_place, SENT: retry_outbound_in_place,
                                         FAILED: retry_outbound_in_place}),
          why="retries a failed write in place instead of returning ReplayEvent"),
    right(EX, "raise_replay_event", compose({CLAIMED: INBOUND(raise_replay), SENT: OUTBOUND(raise_replay),
                                             FAILED: OUTBOUND(raise_replay)}),
          why="raise ReplayEvent() (ldkkit's documented alternative to returning it)"),
    right(EX, "amount_set_not_added", compose(ALL_REPLAY),
          why="every write protected; the amount set from the event on each hand-over"),
    right(EX, "write_by_keyword", compose({CLAIMED: write_by_keyword, SENT: write_by_keyword,
                                           FAILED: write_by_keyword}),
          why="fs_store.write(primary_namespace=, secondary_namespace=, key=, buf=): KVStore's own parameter names"),
    right(EX, "writes_through_wait_for", compose({CLAIMED: write_through_wait_for, SENT: write_through_wait_for,
                                                  FAILED: write_through_wait_for}),
          why="awaits its write through asyncio.wait_for, catching OSError: the check once told the task's error as if "
              "no one had taken it"),
    right(EX, "returns_the_replay_class", compose({CLAIMED: INBOUND(replay_class), SENT: OUTBOUND(replay_class),
                                                   FAILED: OUTBOUND(replay_class)}),
          why="return ReplayEvent (the class): the kit's queue accepts it"),

    wrong(EX, "returns_its_write_unawaited", compose({CLAIMED: returns_its_write_unawaited}),
          "without awaiting it", "return await",
          why="return persist(...) from the async handler, its await forgotten: the check waited for ever (under "
              "BackgroundProcessor.start, the processor ran the coroutine on the loop it was itself waiting for)"),
    wrong(EX, "protects_only_inbound", compose({SENT: unprotected(_update_outbound, "outbound_payments"),
                                                FAILED: unprotected(_update_outbound, "outbound_payments")}),
          "raised OSError", "ReplayEvent", why="try/except around the inbound write only"),
    wrong(EX, "protects_only_outbound", compose({CLAIMED: unprotected(_update_inbound, "inbound_payments")}),
          "raised OSError", "ReplayEvent", why="try/except around the outbound writes only"),
    wrong(EX, "swallows_oserror", compose({CLAIMED: INBOUND(swallow), SENT: OUTBOUND(swallow),
                                           FAILED: OUTBOUND(swallow)}),
          "ReplayEvent", why="except OSError: print(...)"),
    wrong(EX, "swallows_outbound_only", compose({SENT: OUTBOUND(swallow), FAILED: OUTBOUND(swallow)}),
          "ReplayEvent", why="inbound protected, outbound errors printed and dropped"),
    wrong(EX, "swallows_then_writes_a_log", compose({CLAIMED: swallow_then_log}), "writing inbound_payments raised "
          "OSError", "ReplayEvent", why="swallows the failed write of the record, then writes a log that works (the "
          "message once said nothing was stored under 'inbound_payments', judging only the last write)"),
    wrong(EX, "counts_replay_twice", compose({CLAIMED: INBOUND(replay, add=True)}), "amt_msat", "once",
          why="info.amt_msat += amount_msat: a replayed PaymentClaimed adds it again"),
    wrong(EX, "retries_once_then_swallows", compose({CLAIMED: retries_once_then_swallows("inbound_payments")}),
          "raised OSError", "ReplayEvent",
          why="one retry in place, then the error printed and dropped: the disk refuses twice"),
    wrong(EX, "retries_thrice_then_swallows", compose({
              CLAIMED: retries_once_then_swallows("inbound_payments", 4),
              **{kind: retries_once_then_swallows("outbound_payments", 4) for kind in (SENT, FAILED)}}),
          "raised OSError", "ReplayEvent", why="three retries in place, then the error printed and dropped: it passed, "
          "the disk refusing twice in a row"),
    *(wrong(EX, f"retries_{tries}_times_then_swallows", compose({
              CLAIMED: retries_once_then_swallows("inbound_payments", tries),
              **{kind: retries_once_then_swallows("outbound_payments", tries) for kind in (SENT, FAILED)}}),
            "raised OSError", f"after {tries} tries", "never give up",
            why=f"{tries} tries in place, then the error printed and dropped: it passed, the disk refusing six times "
                "in a row (the workbook: 'your handler cannot know: it must not give up')")
      for tries in (10, 100)),
    wrong(EX, "retries_each_second_ten_times_then_swallows", compose({
              kind: retries_after_pauses((1,) * 9, "swallow") for kind in (CLAIMED, SENT, FAILED)}),
          "raised OSError", "after 10 tries", why="ten tries a second apart, then the error printed and dropped: it "
          "passed, as the ten tries in place did"),
    right(EX, "retries_for_ever_at_once", compose({kind: retries_for_ever() for kind in (CLAIMED, SENT, FAILED)}),
          why="retries the write in place until it works, with no pause: the disk stays full a while, not for ever"),
    *(right(EX, f"retries_for_ever_every_{pause}_s", compose({kind: retries_for_ever(pause) for kind in (
              CLAIMED, SENT, FAILED)}), why=f"retries the write until it works, {pause} s apart" + (
              ": it failed, the disk refusing six writes however far apart, and the check waiting 300 s"
              if pause > 50 else ""))
      for pause in (1, 60)),
    right(EX, "pauses_a_minute_then_asks_again", compose({kind: pauses_then_asks_again(60) for kind in (
              CLAIMED, SENT, FAILED)}),
          why="on a failed write, awaits a minute, then returns ReplayEvent(): it failed (\"still waiting\"), as the "
              "minute-apart retries did"),
    wrong(EX, "asks_for_the_event_thrice_then_gives_up", Fresh(lambda: compose({
              kind: replays_a_few_times_then_gives_up(3) for kind in (CLAIMED, SENT, FAILED)})),
          "raised OSError", "ReplayEvent", why="ReplayEvent three times per payment, then None: it passed, the disk "
          "refusing twice in a row"),
    wrong(EX, "retries_a_sent_payment_once_then_swallows", compose({
              kind: retries_once_then_swallows("outbound_payments") for kind in (SENT, FAILED)}),
          "raised OSError", "ReplayEvent", why="one retry in place on PaymentSent and PaymentFailed, then the error "
          "printed and dropped: it passed, the disk refusing outbound_payments once only"),
    wrong(EX, "counts_once_by_a_set_in_memory", Fresh(counts_once_by_memory), "a crash just after PaymentClaimed",
          "amt_msat", "only what is on disk outlives a crash",
          why="adds the amount once, a set in memory saying which payments it counted: it passed, the check's restart "
              "keeping the set a real restart loses, and the PaymentClaimed handed over again is counted twice"),
    *(wrong(EX, f"counts_once_by_a_set_in_memory_kept_in_{where}", Fresh(lambda where=where: counts_once_by_memory(
        where)), "a crash just after PaymentClaimed", "amt_msat", why=f"the same, the set kept in {what}: it passed, "
        "the check putting back only what a handler names, and its closures")
      for where, what in (("default", "a mutable default argument"), ("class", "a class attribute"),
                          ("function", "an attribute of the function"), ("lru_cache", "an lru_cache"))),
    *(wrong(EX, f"counts_once_by_a_set_in_memory_kept_in_{where}", Fresh(lambda where=where: counts_once_by_memory(
        where)), "a crash just after PaymentClaimed", "amt_msat", why=f"the same, the set kept in {what}: it passed, "
        "the check putting back neither what a dict of more than data holds, nor slots, nor a database in memory")
      for where, what in (("dict_with_its_lock", "a dict beside the lock that guards it"),
                          ("slots", "an object with __slots__"), ("sqlite", "an in-memory sqlite3 database"))),
    wrong(EX, "counts_a_payment_handed_over_again", compose({CLAIMED: adds_when_handed_again}),
          "a crash just after PaymentClaimed", "amt_msat", why="adds the amount to a Succeeded record, memory put "
          "back after a failed write: a PaymentClaimed handed over again after a crash counts twice"),
    *(wrong(EX, f"counts_a_payment_handed_over_again_claimed_{how}",
            compose({CLAIMABLE: answer, CLAIMED: adds_when_handed_again}),
            "a crash just after PaymentClaimed", "amt_msat",
            why=f"counts_a_payment_handed_over_again, each payment claimed 3 s later from a {how} (workbook 3 allows "
                "it): it passed, the story's crash coming only once a PaymentClaimed had been handed over, and the "
                "story ending before that")
      for how, answer in (("task", answers_after(3)), ("thread", answers_from_a_thread_after(3)))),
    wrong(EX, "writes_with_open", compose({CLAIMED: by_open("raise"), SENT: by_open("raise"),
                                           FAILED: by_open("raise")}),
          "raised OSError", "return ReplayEvent()",
          why="open(os.path.join(fs_store.get_data_dir(), key), 'wb') with no try/except: it passed, the check's "
              "full disk refusing only fs_store.write"),
    wrong(EX, "writes_with_a_store_of_its_own", compose({CLAIMED: by_a_store_of_its_own, SENT: by_a_store_of_its_own,
                                                         FAILED: by_a_store_of_its_own}),
          "raised OSError", "return ReplayEvent()",
          why="FilesystemStore(fs_store.get_data_dir()).write(...), no try/except: it passed, as writes_with_open"),
    right(EX, "writes_with_open_catching", compose({CLAIMED: by_open("replay"), SENT: by_open("replay"),
                                                    FAILED: by_open("replay")}),
          why="open() in the node's folder, ReplayEvent on OSError: the full disk refuses it too, and it asks again "
              "(the grader could not run it: a PosixPath did not cross to the learner's process)"),
    wrong(EX, "writes_through_a_temporary_file", compose({
              kind: by_open("raise", through_a_temporary_file=True) for kind in (CLAIMED, SENT, FAILED)}),
          "raised OSError", "return ReplayEvent()",
          why="tempfile.NamedTemporaryFile in the node's folder, then os.replace onto the key, no try/except: it "
              "passed, the full disk refusing only files named after the key"),
    right(EX, "writes_through_a_temporary_file_catching", compose({
              kind: by_open("replay", through_a_temporary_file=True) for kind in (CLAIMED, SENT, FAILED)}),
          why="the same, with ReplayEvent on OSError"),
    right(EX, "writes_with_open_retrying", compose({CLAIMED: by_open("replay", 5), SENT: by_open("replay", 5),
                                                    FAILED: by_open("replay", 5)}),
          why="open() retried in place until it works (as retry_in_place does with fs_store.write)"),
    wrong(EX, "writes_with_open_swallowing", compose({CLAIMED: by_open("print"), SENT: by_open("print"),
                                                      FAILED: by_open("print")}),
          "raised OSError", "returned as if all was well",
          why="open() in the node's folder, the OSError printed and dropped: it was told \"nothing is stored under "
              "'inbound_payments'\" and that ldk-sample keeps the records under that key, which it had used"),
    wrong(EX, "returns_false_when_the_write_fails", compose({CLAIMED: INBOUND(lambda error: False),
                                                             SENT: OUTBOUND(lambda error: False),
                                                             FAILED: OUTBOUND(lambda error: False)}),
          "raised OSError", "(False, which LDK takes as handled)", "return ReplayEvent()",
          why="return False on a failed write: it was told \"nothing is stored under 'inbound_payments'; you wrote "
              "under ['inbound_payments']\" and that ldk-sample keeps the records under that key, which it had used"),
    wrong(EX, "persists_at_claimable_swallows_at_claimed", compose({CLAIMABLE: claims_and_persists,
                                                                    CLAIMED: INBOUND(swallow)}),
          "on Event.PaymentClaimed", "raised OSError", "returned as if all was well",
          why="a protected write at PaymentClaimable too, the PaymentClaimed arm swallowing its failure: it passed, "
              "the disk's two failures spent on the PaymentClaimable's writes"),
    wrong(EX, "persists_at_path_failed_swallows_at_failed", compose({Event.PaymentPathFailed: persists_unchanged,
                                                                     FAILED: OUTBOUND(swallow)}),
          "on Event.PaymentFailed", "raised OSError", "returned as if all was well",
          why="a protected write at PaymentPathFailed too, the PaymentFailed arm swallowing its failure: it passed, "
              "the disk's failure spent on the PaymentPathFailed's write"),
    wrong(EX, "writes_by_one_worker_unprotected", Fresh(lambda: writes_by_one_worker(False)), "raised OSError",
          "return ReplayEvent()",
          why="one writer thread, started with the first channel event, its failed write raised in the handler: it "
              "passed once the disk failed only in a PaymentClaimed's hand-over (the worker's writes were the "
              "OpenChannelRequest's)"),
    right(EX, "writes_by_a_worker_started_before_the_check", Fresh(lambda: writes_by_a_worker_started_first(True)),
          why="a writer thread started as the cell runs, before any event; the handler awaits each write and returns "
              "ReplayEvent() when it failed: it passed or failed from run to run, the clock running on while the "
              "thread wrote"),
    wrong(EX, "worker_started_before_the_check_swallows", Fresh(lambda: writes_by_a_worker_started_first(False)),
          "raised OSError", "returned as if all was well", why="the same thread prints a failed write and reports it "
          "done: it passed, the disk never refusing a thread no check had started (it counts for the event whose "
          "handler woke it, and its write is judged as one made while that event was handled)"),
    right(EX, "writes_by_one_worker", Fresh(lambda: writes_by_one_worker(True)),
          why="one writer thread for every record, each write awaited, ReplayEvent if it failed"),
    wrong(EX, "raises_on_failed_write", compose({CLAIMED: INBOUND(reraise_as_runtime),
                                                 SENT: OUTBOUND(reraise_as_runtime),
                                                 FAILED: OUTBOUND(reraise_as_runtime)}),
          "raised RuntimeError", "ReplayEvent", why="except OSError: raise RuntimeError(...)"),
    wrong(EX, "raises_oserror_unchanged", compose({CLAIMED: unprotected(_update_inbound, "inbound_payments"),
                                                   SENT: unprotected(_update_outbound, "outbound_payments"),
                                                   FAILED: unprotected(_update_outbound, "outbound_payments")}),
          "raised OSError", "return ReplayEvent()", why="no try/except at all: the OSError escapes"),
    wrong(EX, "sleeps_before_retry", compose({CLAIMED: INBOUND(sleep_and_retry)}), "time.sleep",
          why="time.sleep before giving up"),
    wrong(EX, "waits_on_an_event_before_retry", compose({CLAIMED: INBOUND(wait_and_retry)}), "Event.wait()",
          "blocks the whole node", why="threading.Event().wait(0.05) before giving up (only time.sleep was refused)"),
    wrong(EX, "joins_a_thread_before_retry", compose({CLAIMED: INBOUND(join_a_timer_then_retry)}), "Thread.join()",
          "blocks the whole node", why="starts a 50 ms threading.Timer and joins it before giving up (it once "
          "passed: Thread.join waits in C)"),
    wrong(EX, "sleeps_before_retry_swallowing_the_refusal", compose({CLAIMED: INBOUND(sleep_swallowed_then_replay)}),
          "time.sleep", "caught the error",
          why="time.sleep inside try/except Exception, then ReplayEvent: the check's refusal caught, and it passed"),
    wrong(EX, "updates_after_writing", compose({CLAIMED: update_after_write}), "status Pending",
          why="writes the old state, then updates memory"),
    wrong(EX, "always_replays_claimed", compose({CLAIMED: always_replay}), "ReplayEvent",
          why="returns ReplayEvent() even after a successful write: the event never leaves LDK's queue"),
    wrong(EX, "never_returns_after_a_failed_write", compose({CLAIMED: claimed_then_waits_forever}),
          "never returned from PaymentClaimed", "the processor waited 300 simulated seconds", "still waiting",
          why="catches the failed write and keeps ReplayEvent(), then awaits for ever: it was told it 'returned as if "
              "all was well' and to return ReplayEvent(), which it had not failed to do"),
    *(right(EX, f"retries_after_pauses_of_{'_'.join(f'{p:g}' for p in pauses)}_s",
            compose({CLAIMED: arm, SENT: arm, FAILED: arm}),
            why=f"retries the write in the handler after awaiting {' then '.join(f'{p:g} s' for p in pauses)} "
                "(workbook 7: retrying it yourself is fine; LDK's processor waits for the handler): it failed, 'still "
                "waiting ... Never wait in the handler', the story ending 4 s after the PaymentClaimed")
      for pauses in ((2, 4), (30, 60)) for arm in (retries_after_pauses(pauses, "replay"),)),
    wrong(EX, "retries_after_a_pause_then_swallows", compose({CLAIMED: retries_after_pauses((5,), "swallow")}),
          "raised OSError", "returned as if all was well",
          why="one retry 5 s later, then the error printed and dropped (the disk refuses twice): it was told 'still "
              "waiting ... Never wait in the handler', not the lost record"),
    wrong(EX, "retries_from_a_task_later", compose({CLAIMED: retries_from_a_task_later}), "raised OSError",
          "returned as if all was well",
          why="returns None on a failed write, a task retrying it a second later: it was told \"nothing is stored "
              "under 'inbound_payments'; you wrote under ['inbound_payments']\" (the task's later write counted as "
              "the hand-over's own)"),
    wrong(EX, "plain_def_spawning_forwards", _plain_with(ALL_REPLAY), "async def",
          why="a plain def handler whose forwarding arm spawns on the running loop: under "
              "BackgroundProcessor.start there is none"),
]
