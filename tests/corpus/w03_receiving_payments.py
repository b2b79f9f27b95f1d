"""Workbook 3, receiving payments: claim what you can, fail back the rest, store the record."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from typing import Any

from ldkkit.events import Event, PaymentPurpose, ReplayEvent
from ldkkit.ln.channelmanager import FailureCode
from ldkkit.payment_storage import HTLCStatus, PaymentInfo
from ldkkit.types import PaymentId, PaymentPreimage

from . import QUICK_HANG_S, Fresh, right, wrong
from .arms import (
    LATER,
    asks_again_always,
    asks_again_first,
    by_a_worker_started_first,
    claimable,
    compose,
    later,
    only,
    spawn,
)
from .arms import claimed as good_claimed

EX = "receiving_payments"
CLAIMABLE, CLAIMED = Event.PaymentClaimable, Event.PaymentClaimed


# --- RIGHT ------------------------------------------------------------------------------------------------

def handle_isinstance(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                      bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                      fs_store, output_sweeper, network, event):
    """Plain def, isinstance, a match on the purpose, and the record rebuilt whole (every field right)."""
    if isinstance(event, Event.OpenChannelRequest):
        if event.funding_satoshis > 5_000_000:
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id,
                                                   int.from_bytes(keys_manager.get_secure_random_bytes()[:16]))
        else:
            channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id,
                                                                 event.counterparty_node_id, "too small")
    elif isinstance(event, Event.PendingHTLCsForwardable):
        async def forward() -> None:
            await asyncio.sleep(2 * event.time_forwardable.total_seconds())
            channel_manager.process_pending_htlc_forwards()

        spawn(forward())
    elif isinstance(event, Event.PaymentClaimable):
        if event.purpose.preimage() is None:
            channel_manager.fail_htlc_backwards(event.payment_hash)
        else:
            channel_manager.claim_funds(event.purpose.preimage())
    elif isinstance(event, Event.PaymentClaimed):
        match event.purpose:
            case PaymentPurpose.Bolt11InvoicePayment(payment_preimage=preimage, payment_secret=secret):
                pass
            case PaymentPurpose.SpontaneousPayment(payment_preimage=preimage):
                secret = None
            case _:
                preimage, secret = event.purpose.preimage(), getattr(event.purpose, "payment_secret", None)
        with inbound_payments.lock() as payments:
            payments[event.payment_hash] = PaymentInfo(preimage=preimage, secret=secret,
                                                       status=HTLCStatus.Succeeded, amt_msat=event.amount_msat)
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_by_keywords_order(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Fields set one statement each, in another order; the write by keyword, outside the lock."""
    with inbound_payments.lock() as payments:
        info = payments.setdefault(event.payment_hash, PaymentInfo(None, None, HTLCStatus.Pending, None))
        info.amt_msat = event.amount_msat
        info.secret = event.purpose.payment_secret if isinstance(
            event.purpose, PaymentPurpose.Bolt11InvoicePayment) else None
        info.preimage = event.purpose.preimage()
        info.status = HTLCStatus.Succeeded
        data = inbound_payments.encode()
    fs_store.write(primary_namespace="", secondary_namespace="", key="inbound_payments", buf=data)


def claimed_retry_in_place(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    secret = getattr(event.purpose, "payment_secret", None)
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        if info is None:
            info = payments[event.payment_hash] = PaymentInfo(None, secret, HTLCStatus.Pending, event.amount_msat)
        info.status, info.preimage, info.secret = HTLCStatus.Succeeded, event.purpose.preimage(), secret
    for _attempt in range(3):
        try:
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())
            return None
        except OSError:
            continue
    return ReplayEvent()


async def claimable_async(channel_manager: Any, event: Any, **_: Any) -> None:
    match event.purpose.preimage():
        case None:
            channel_manager.fail_htlc_backwards(payment_hash=event.payment_hash)
        case preimage:
            channel_manager.claim_funds(payment_preimage=preimage)


# --- WRONG ------------------------------------------------------------------------------------------------

def _claimed(store: Any, *, key: str = "inbound_payments", write_first: bool = False, secret: bool = True,
             preimage: bool = True, status: Any = HTLCStatus.Succeeded, amount: Any = None,
             insert: bool = True, write: bool = True) -> Any:
    """A PaymentClaimed arm with one thing done differently."""

    def arm(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        if write and write_first:
            fs_store.write("", "", key, inbound_payments.encode())
        the_secret = getattr(event.purpose, "payment_secret", None) if secret else None
        the_preimage = event.purpose.preimage() if preimage else None
        amt = event.amount_msat if amount is None else amount(event.amount_msat)
        with inbound_payments.lock() as payments:
            info = payments.get(event.payment_hash)
            if info is None:
                if insert:
                    payments[event.payment_hash] = PaymentInfo(the_preimage, the_secret, status, amt)
            else:
                info.status, info.preimage, info.secret, info.amt_msat = status, the_preimage, the_secret, amt
        if write and not write_first:
            store(fs_store, key, inbound_payments)

    return arm


def _write(fs_store: Any, key: str, storage: Any) -> None:
    fs_store.write("", "", key, storage.encode())


def _write_later(fs_store: Any, key: str, storage: Any) -> None:
    async def later() -> None:
        await asyncio.sleep(0.5)
        fs_store.write("", "", key, storage.encode())

    spawn(later())


def _write_in_a_thread(fs_store: Any, key: str, storage: Any) -> None:
    threading.Thread(target=_write, args=(fs_store, key, storage)).start()


def writes_in_a_pool() -> Any:
    """Records the payment, then hands the write to a pool of its own (one per run of the check) and returns."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="corpus-writes")

    def write(fs_store: Any, key: str, storage: Any) -> None:
        pool.submit(_write, fs_store, key, storage)

    return compose({CLAIMED: _claimed(write)})


def _write_in_a_with_block(fs_store: Any, key: str, storage: Any) -> None:
    """The write handed to a pool made for it, waited for as the ``with`` block ends (its shutdown joins the thread)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_write, fs_store, key, storage)


def claimed_awaiting_its_pool() -> Any:
    """An async arm: records the payment, then awaits its write, made in a pool of its own (one per run)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="corpus-awaited-writes")

    async def arm(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        _claimed(lambda *_: None)(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
        await asyncio.wrap_future(pool.submit(_write, fs_store, "inbound_payments", inbound_payments))

    return compose({CLAIMED: arm})


async def claimed_awaiting_anyio(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """An async arm: records the payment, then awaits its write in anyio's worker thread (``anyio.to_thread``)."""
    import anyio.to_thread

    _claimed(lambda *_: None)(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
    await anyio.to_thread.run_sync(_write, fs_store, "inbound_payments", inbound_payments)


def fails_back_as_temporary(channel_manager: Any, event: Any, **_: Any) -> None:
    """Claims what it can; fails the rest back as a temporary node failure, not for good."""
    fails_back_with(lambda: FailureCode.TemporaryNodeFailure())(channel_manager, event)


def fails_back_with(code: Any) -> Any:
    """Claims what it can; fails the rest back with ``code()`` (fail_htlc_backwards_with_reason)."""

    def arm(channel_manager: Any, event: Any, **_: Any) -> None:
        if event.purpose.preimage() is not None:
            channel_manager.claim_funds(event.purpose.preimage())
        else:
            channel_manager.fail_htlc_backwards_with_reason(event.payment_hash, code())

    return arm


def claims_only_the_amount_invoiced(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Claims a payment of an invoice only when it pays exactly the invoice's amount; fails back anything else."""
    with inbound_payments.lock() as payments:
        entry = payments.get(event.payment_hash)
    exact = entry is None or entry.amt_msat is None or entry.amt_msat == event.amount_msat
    if event.purpose.preimage() is not None and exact:
        channel_manager.claim_funds(event.purpose.preimage())
    else:
        channel_manager.fail_htlc_backwards(event.payment_hash)


def records_one_parts_amount(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Records a fresh entry with what the first HTLC brought, not the event's amount_msat."""
    with inbound_payments.lock() as payments:
        payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), getattr(event.purpose, "payment_secret",
                                                   None), HTLCStatus.Succeeded, event.htlcs[0].value_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claim_without_preimage(channel_manager: Any, event: Any, **_: Any) -> None:
    channel_manager.claim_funds(event.purpose.preimage())


def claim_or_ignore(channel_manager: Any, event: Any, **_: Any) -> None:
    if event.purpose.preimage() is not None:
        channel_manager.claim_funds(event.purpose.preimage())


def fail_everything(channel_manager: Any, event: Any, **_: Any) -> None:
    channel_manager.fail_htlc_backwards(event.payment_hash)


def claimed_writes_outbound(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any,
                            **_: Any) -> None:
    _claimed(lambda *a: None)(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
    fs_store.write("", "", "inbound_payments", outbound_payments.encode())


def claim_with_the_hash(channel_manager: Any, event: Any, **_: Any) -> None:
    if event.purpose.preimage() is None:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        channel_manager.claim_funds(PaymentPreimage(bytes(event.payment_hash)))


def fail_then_claim(channel_manager: Any, event: Any, **_: Any) -> None:
    channel_manager.fail_htlc_backwards(event.payment_hash)
    if event.purpose.preimage() is not None:
        channel_manager.claim_funds(event.purpose.preimage())


def claim_with_known_tlvs(channel_manager: Any, event: Any, **_: Any) -> None:
    if event.purpose.preimage() is None:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        channel_manager.claim_funds_with_known_custom_tlvs(event.purpose.preimage())


def claim_with_tlvs_checked(channel_manager: Any, event: Any, **_: Any) -> None:
    """Reads the payment's custom TLVs: claims with the known-TLV claim only when no even one is there (it knows
    none), and fails back the rest."""
    tlvs = event.onion_fields.custom_tlvs() if event.onion_fields is not None else ()
    if event.purpose.preimage() is None or any(t % 2 == 0 for t, _ in tlvs):
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        channel_manager.claim_funds_with_known_custom_tlvs(event.purpose.preimage())


def tlvs_judged_by(refuse: Any, refuse_with: Any = None) -> Any:
    """Claims with the known-TLV claim unless ``refuse(types)``; then fails back (``refuse_with``, if given, as the
    failure code)."""

    def arm(channel_manager: Any, event: Any, **_: Any) -> None:
        types = [t for t, _ in event.onion_fields.custom_tlvs()] if event.onion_fields is not None else []
        if event.purpose.preimage() is None or refuse(types):
            if refuse_with is None:
                channel_manager.fail_htlc_backwards(event.payment_hash)
            else:
                channel_manager.fail_htlc_backwards_with_reason(event.payment_hash, refuse_with)
        else:
            channel_manager.claim_funds_with_known_custom_tlvs(event.purpose.preimage())

    return arm


def claimable_records_success(inbound_payments: Any, fs_store: Any, event: Any, **kw: Any) -> None:
    """Claims as it should, but writes Succeeded already on PaymentClaimable, whatever becomes of it."""
    claimable(inbound_payments=inbound_payments, fs_store=fs_store, event=event, **kw)
    with inbound_payments.lock() as payments:
        payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), None, HTLCStatus.Succeeded,
                                                   event.amount_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimable_marks_success_in_memory(inbound_payments: Any, event: Any, **kw: Any) -> None:
    """Answers as it should, and marks the payment Succeeded in memory already (every one, even one it fails back);
    the PaymentClaimed arm only writes the map."""
    claimable(inbound_payments=inbound_payments, event=event, **kw)
    with inbound_payments.lock() as payments:
        payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), getattr(event.purpose, "payment_secret",
                                                                                     None), HTLCStatus.Succeeded,
                                                   event.amount_msat)


def claimed_only_writes(inbound_payments: Any, fs_store: Any, **_: Any) -> None:
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimable_records_what_it_claims(inbound_payments: Any, fs_store: Any, event: Any, **kw: Any) -> None:
    """Claims, and writes the record as PaymentClaimed would, already on PaymentClaimable (and has no Claimed arm)."""
    claimable(inbound_payments=inbound_payments, fs_store=fs_store, event=event, **kw)
    preimage = event.purpose.preimage()
    if preimage is not None:
        with inbound_payments.lock() as payments:
            payments[event.payment_hash] = PaymentInfo(preimage, getattr(event.purpose, "payment_secret", None),
                                                       HTLCStatus.Succeeded, event.amount_msat)
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_in_a_fresh_map(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Keeps only this payment: the map cleared, then its entry written, so each write loses the others."""
    secret = getattr(event.purpose, "payment_secret", None)
    with inbound_payments.lock() as payments:
        payments.clear()
        payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), secret, HTLCStatus.Succeeded,
                                                   event.amount_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_also_in_outbound(inbound_payments: Any, outbound_payments: Any, fs_store: Any, event: Any,
                             **kw: Any) -> None:
    """Records the payment rightly, and files a keysend among the payments sent too ("it has no invoice")."""
    good_claimed(inbound_payments=inbound_payments, fs_store=fs_store, event=event, **kw)
    if not isinstance(event.purpose, PaymentPurpose.Bolt11InvoicePayment):
        with outbound_payments.lock() as payments:
            payments[PaymentId(bytes(event.payment_hash))] = PaymentInfo(
                event.purpose.preimage(), None, HTLCStatus.Succeeded, event.amount_msat)
        fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def _returns_text(arm: Any) -> Any:
    def wrapped(**kw: Any) -> str:
        arm(**kw)
        return "claimed"

    return wrapped


def claimed_keeps_the_invoice_amount(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """The amount taken from the entry getinvoice made, whatever came: a keysend, with no entry, gets None."""
    with inbound_payments.lock() as payments:
        old = payments.get(event.payment_hash)
        payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(),
                                                   getattr(event.purpose, "payment_secret", None),
                                                   HTLCStatus.Succeeded, old.amt_msat if old is not None else None)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claims_and_records_in_a_task(channel_manager: Any, inbound_payments: Any, fs_store: Any, event: Any,
                                 **_: Any) -> None:
    """A task claims, then writes the payment Succeeded at once, as records_claims_on_claimable does in the handler."""
    preimage = event.purpose.preimage()
    if preimage is None:
        channel_manager.fail_htlc_backwards(event.payment_hash)
        return

    async def claim_and_record() -> None:
        channel_manager.claim_funds(preimage)
        with inbound_payments.lock() as payments:
            payments[event.payment_hash] = PaymentInfo(preimage, getattr(event.purpose, "payment_secret", None),
                                                       HTLCStatus.Succeeded, event.amount_msat)
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())

    spawn(claim_and_record())


def claimed_in_a_namespace(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Records the payment rightly, and writes it under the right key, in a namespace of its own ("payments")."""
    _claimed(lambda *a: None)(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
    fs_store.write("payments", "", "inbound_payments", inbound_payments.encode())


def claimed_reading_the_secret_of_every_purpose(inbound_payments: Any, fs_store: Any, event: Any,
                                                **_: Any) -> None:
    """Reads purpose.payment_secret outright: a keysend's purpose (SpontaneousPayment) has none."""
    with inbound_payments.lock() as payments:
        payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), event.purpose.payment_secret,
                                                   HTLCStatus.Succeeded, event.amount_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


W13 = (Event.OpenChannelRequest, Event.PendingHTLCsForwardable, CLAIMABLE, CLAIMED)

async def claimed_in_an_executor(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Claims (or fails back) in the loop's default executor, which copies no context, awaiting it."""
    await asyncio.get_running_loop().run_in_executor(None, lambda: claimable(
        channel_manager=channel_manager, inbound_payments=inbound_payments, event=event))


def claims_then_asks_again_once() -> Any:
    """Claims (or fails back) each payment, then returns ReplayEvent() (say, its log write failed); handed the event
    again, it sees that it has answered it already, and returns nothing."""
    answered: set[bytes] = set()

    def arm(event: Any, **components: Any) -> Any:
        if event.encode() in answered:
            return None
        answered.add(event.encode())
        claimable(event=event, **components)
        return ReplayEvent()

    return compose({CLAIMABLE: arm})


def claimed_keyed_by_hex(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """A new record for each claimed payment, keyed by the hash's hex text rather than the hash itself."""
    with inbound_payments.lock() as payments:
        payments[event.payment_hash.hex()] = PaymentInfo(event.purpose.preimage(),
                                                         getattr(event.purpose, "payment_secret", None),
                                                         HTLCStatus.Succeeded, event.amount_msat)
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_by_one_worker_thread(seconds: float = 0) -> Any:
    """One daemon thread, started with the first PaymentClaimable, claims each payment it takes from a queue (with the
    components it came with: each play of a check is another node), ``seconds`` after taking it, and idles on the queue
    in between (it never ends)."""
    work: queue.Queue[Any] = queue.Queue()
    started: list[threading.Thread] = []

    def worker() -> None:
        while True:
            components, event = work.get()
            time.sleep(seconds)
            claimable(event=event, **components)

    def arm(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        if not started:
            started.append(threading.Thread(target=worker, daemon=True))
            started[0].start()
        work.put(({"channel_manager": channel_manager, "inbound_payments": inbound_payments}, event))

    return compose({CLAIMABLE: arm})


def claimed_by_a_thread_with_its_manager() -> Any:
    """One daemon thread, started with the first PaymentClaimable, keeps the channel_manager it was started with (a
    node's is the same for its life), and claims each payment the handler puts on its queue with its inbound_payments.
    """
    work: queue.Queue[Any] = queue.Queue()
    started: list[threading.Thread] = []

    def arm(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        def worker() -> None:
            while True:
                payments, payment = work.get()
                claimable(channel_manager=channel_manager, inbound_payments=payments, event=payment)

        if not started:
            started.append(threading.Thread(target=worker, daemon=True))
            started[0].start()
        work.put((inbound_payments, event))

    return compose({CLAIMABLE: arm})


def claimed_by_a_thread_waiting_on_its_pool() -> Any:
    """Each PaymentClaimable starts a thread that waits for a lookup in a pool of its own, then claims or fails back."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def arm(event: Any, **components: Any) -> None:
        def claim() -> None:
            pool.submit(event.purpose.preimage).result()
            claimable(event=event, **components)

        threading.Thread(target=claim, daemon=True).start()

    return compose({CLAIMABLE: arm})


def claimed_by_one_worker() -> Any:
    """One task, spawned with the first PaymentClaimable, claims or fails back each payment from a queue."""
    queue: list[asyncio.Queue[Any]] = []

    def arm(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        if not queue:
            queue.append(asyncio.Queue())

            async def worker() -> None:
                while True:
                    claimable(channel_manager=channel_manager, inbound_payments=inbound_payments,
                              event=await queue[0].get())

            spawn(worker())
        queue[0].put_nowait(event)

    return compose({CLAIMABLE: arm})


def claimed_by_a_worker_per_loop(answer: Any = None) -> Any:
    """One task claims or fails back each payment from a queue (with ``answer``, ``claimable`` unless given), with the
    components handed over with it, and is started again when it is not running on the loop now running: each play of
    a check is another node, with a loop of its own (the capstone's hint for the worker above)."""
    worker: list[Any] = []  # [its task, its queue]

    def arm(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        loop = asyncio.get_running_loop()
        if not worker or worker[0].done() or worker[0].get_loop() is not loop:
            work: asyncio.Queue[Any] = asyncio.Queue()

            async def claim() -> None:
                while True:
                    (answer or claimable)(**await work.get())

            worker[:] = [loop.create_task(claim()), work]
        worker[1].put_nowait({"channel_manager": channel_manager, "inbound_payments": inbound_payments,
                              "event": event})

    return compose({CLAIMABLE: arm})


def claims_through_a_pool_by_keyword(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Submits the claim to a thread pool of its own, arguments by keyword, and does not wait for it."""
    _POOL.submit(claimable, channel_manager=channel_manager, inbound_payments=inbound_payments, event=event)


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="corpus-claims")


def fail_back_with_a_reason(channel_manager: Any, event: Any, **_: Any) -> None:
    """Fails back with LDK's other call, naming the FailureCode fail_htlc_backwards uses by default."""
    preimage = event.purpose.preimage()
    if preimage is None:
        channel_manager.fail_htlc_backwards_with_reason(event.payment_hash,
                                                        FailureCode.IncorrectOrUnknownPaymentDetails())
    else:
        channel_manager.claim_funds(preimage)


def writes_every_other_claimed() -> Any:
    """Records every PaymentClaimed in memory, but writes inbound_payments only every other time ("it saves time")."""
    seen: list[Any] = []

    def arm(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        _claimed(lambda *a: None)(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
        seen.append(event.payment_hash)
        if len(seen) % 2 == 1:
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())

    return compose({CLAIMED: arm})


def claimed_status_and_preimage_only(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """The invoice's entry updated in place, status and preimage only (its secret is the invoice's already)."""
    info = inbound_payments.payments.get(event.payment_hash)
    if info is not None:
        info.status, info.preimage = HTLCStatus.Succeeded, event.purpose.preimage()
    else:
        inbound_payments.payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), None,
                                                                    HTLCStatus.Succeeded, event.amount_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_replaced_without_secret(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    inbound_payments.payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), None, HTLCStatus.Succeeded,
                                                                event.amount_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_into_the_storage_itself(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    secret = getattr(event.purpose, "payment_secret", None)
    inbound_payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), secret, HTLCStatus.Succeeded,
                                                       event.amount_msat)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claimed_looked_up_in_the_storage(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    info = inbound_payments.get(event.payment_hash)
    if info is not None:
        info.status, info.preimage = HTLCStatus.Succeeded, event.purpose.preimage()
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


async def _claim(channel_manager: Any, preimage: Any) -> None:
    channel_manager.claim_funds(preimage)


def claims_through_an_async_helper(channel_manager: Any, event: Any, **_: Any) -> None:
    """Fails back at once; claims through an async helper of its own, called without await: it never runs."""
    if event.purpose.preimage() is None:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        _claim(channel_manager, event.purpose.preimage())


async def _persist(fs_store: Any, storage: Any) -> None:
    fs_store.write("", "", "inbound_payments", storage.encode())


def claimed_written_through_an_async_helper(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Records the payment, then writes it through an async helper of its own, called without await: it never runs."""
    _claimed(lambda *a: None)(inbound_payments=inbound_payments, fs_store=fs_store, event=event)
    _persist(fs_store, inbound_payments)


def claimed_marks_every_pending_entry(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Inserts a keysend's entry, then marks every Pending entry Succeeded ("the payment that was waiting")."""
    secret = getattr(event.purpose, "payment_secret", None)
    with inbound_payments.lock() as payments:
        payments.setdefault(event.payment_hash, PaymentInfo(None, secret, HTLCStatus.Pending, event.amount_msat))
        for info in payments.values():
            if info.status is HTLCStatus.Pending:
                info.status, info.preimage = HTLCStatus.Succeeded, event.purpose.preimage()
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def claims_what_it_has_an_entry_for(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Claims only a payment inbound_payments has an entry for ("one of my invoices"); fails back the rest."""
    with inbound_payments.lock() as payments:
        known = event.payment_hash in payments
    if known and event.purpose.preimage() is not None:
        channel_manager.claim_funds(event.purpose.preimage())
    else:
        channel_manager.fail_htlc_backwards(event.payment_hash)


def claims_with_the_entrys_preimage(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Claims with the preimage of the payment's inbound_payments entry, if it has one (the invoice's has none)."""
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
    preimage = info.preimage if info is not None else event.purpose.preimage()
    if preimage is not None:
        channel_manager.claim_funds(preimage)
    else:
        channel_manager.fail_htlc_backwards(event.payment_hash)


def answers_after(seconds: float) -> Any:
    """The right answer (claim, or fail back), from a task that waits ``seconds`` first: "once it is safe"."""

    def put_off(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        async def later() -> None:
            await asyncio.sleep(seconds)
            claimable(channel_manager=channel_manager, inbound_payments=inbound_payments, event=event)

        spawn(later())

    return put_off


def answers_from_a_thread_after(seconds: float, *, wait: Any = time.sleep) -> Any:
    """answers_after's answer, from a thread of its own that sleeps ``seconds`` first (or waits them, ``wait``)."""

    def put_off(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        def later() -> None:
            wait(seconds)
            claimable(channel_manager=channel_manager, inbound_payments=inbound_payments, event=event)

        threading.Thread(target=later).start()

    return put_off


def claimed_and_the_other_invoices(change: str) -> Any:
    """Records the payment claimed rightly, and ``change``s every other invoice still Pending ("expired", or "cleaned
    up"): an invoice no payment came for is one the node may still be paid."""

    def arm(inbound_payments: Any, event: Any, **kw: Any) -> Any:
        with inbound_payments.lock() as payments:
            for payment_hash in [h for h, info in payments.items()
                                 if h != event.payment_hash and info.status is HTLCStatus.Pending]:
                if change == "fail":
                    payments[payment_hash].status = HTLCStatus.Failed
                else:
                    del payments[payment_hash]
        return good_claimed(inbound_payments=inbound_payments, event=event, **kw)

    return compose({CLAIMED: arm})


def fails_back_then_closes_its_channel(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Answers as the workbook asks, then force-closes the channel a payment it cannot claim came through."""
    claimable(channel_manager=channel_manager, inbound_payments=inbound_payments, event=event)
    if event.purpose.preimage() is None:
        for channel in channel_manager.list_channels():
            if channel.channel_id == event.via_channel_id:
                channel_manager.force_close_broadcasting_latest_txn(channel.channel_id, channel.counterparty.node_id,
                                                                    "an unknown payment")


def _after(seconds: float, arm: Any) -> Any:
    def slept(**kwargs: Any) -> Any:
        time.sleep(seconds)
        return arm(**kwargs)

    return slept


def _until_the_clock_says(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1)


def answers_put_off(how: str, seconds: float) -> Any:
    """The right answer (claim, or fail back), decided at once, its call on the node put off ``seconds`` with the
    loop's own means (``arms.later``): ``loop.call_later(60, channel_manager.claim_funds, preimage)``."""

    def put_off(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
        with inbound_payments.lock() as payments:
            info = payments.get(event.payment_hash)
        preimage = event.purpose.preimage()
        if preimage is not None and not (info is not None and info.status is HTLCStatus.Succeeded):
            later(how, seconds, channel_manager.claim_funds, preimage)
        else:
            later(how, seconds, channel_manager.fail_htlc_backwards, event.payment_hash)

    return put_off


def answers_then_puts_off(how: str, work: Any) -> Any:
    """The right answer at once, and ``work`` put off a second with the loop's own means (``arms.later``): a callback
    (``loop.call_later(1, work)``) or a task built directly (``asyncio.Task(coro)``), not a task made with
    ``create_task``."""

    def arm(event: Any, **components: Any) -> None:
        claimable(event=event, **components)
        later(how, 1, work)

    return arm


def spins() -> None:
    while True:  # "poll until it is done": the node's loop never gets a turn
        pass


def naps() -> None:
    time.sleep(0.01)


CASES = [
    *(right(EX, f"answers_a_minute_later_by_{how.lower()}", compose({CLAIMABLE: answers_put_off(how, 60)}),
            why=f"answers_a_minute_later, the call put off with {how} (LDK allows it until the claim deadline): with "
                "call_later, call_at or asyncio.Task it was told 'it was never claimed', the check waiting only for "
                "tasks a task factory made, and threads")
      for how in LATER if how != "call_soon"),
    *(wrong(EX, f"spins_in_what_it_put_off_by_{how.lower()}", compose({CLAIMABLE: answers_then_puts_off(how, spins)}),
            f"a task your handler spawned ran {QUICK_HANG_S:g} seconds without pausing, after Event.PaymentClaimable",
            "The check stopped it", "must return promptly", slow=True, hang_limit_s=QUICK_HANG_S,
            why=f"work put off with {how} spins for ever (while True: pass): the check hung for ever, such a callback "
                "(or a step of a task built directly) ran unwatched, where a create_task task's step is stopped")
      for how in ("call_later", "Task")),
    *(wrong(EX, f"sleeps_in_what_it_put_off_by_{how.lower()}", compose({CLAIMABLE: answers_then_puts_off(how, naps)}),
            "a task it spawned called time.sleep(), which blocks the whole node", "Await asyncio.sleep",
            why=f"work put off with {how} calls time.sleep: it passed, the sleep allowed there (a create_task task "
                "is refused it, with the hint to await asyncio.sleep)")
      for how in ("call_later", "Task")),
    wrong(EX, "claims_through_an_async_helper_unawaited", compose({CLAIMABLE: claims_through_an_async_helper}),
          "your handler called _claim(...) without await", "await _claim(...)",
          why="_claim(channel_manager, preimage), an async def, called without await: its code never ran, and the "
              "hint was that the preimage is in the event's purpose, which is where it took it from"),
    wrong(EX, "writes_through_an_async_helper_unawaited", compose({CLAIMED: claimed_written_through_an_async_helper}),
          "nothing of yours is stored under 'inbound_payments'", "your handler called _persist(...) without await",
          why="_persist(fs_store, inbound_payments), an async def, called without await: nothing written, and the "
              "hint was that ldk-sample keeps these records under 'inbound_payments', the key its code writes"),
    wrong(EX, "marks_every_pending_entry_succeeded", compose({CLAIMED: claimed_marks_every_pending_entry}),
          "is Succeeded, and it was never claimed", "an invoice you issued, never paid",
          why="on PaymentClaimed, every Pending entry set Succeeded: it passed, the paid invoice being the only one"),
    wrong(EX, "claims_with_the_entrys_preimage", compose({CLAIMABLE: claims_with_the_entrys_preimage}),
          "you failed it back", "Pending and with no preimage", "purpose.preimage()",
          why="takes the preimage from the invoice's entry, which getinvoice made with none, and fails the payment "
              "back: it was told only that a Pending entry is no earlier payment"),
    wrong(EX, "claims_only_what_it_has_an_entry_for", compose({CLAIMABLE: claims_what_it_has_an_entry_for}),
          "you failed it back", "this is a keysend", "claim it all the same",
          why="fails back a payment with no inbound_payments entry, the keysend: it was told the preimage is in "
              "purpose, though its code reads it there"),
    right(EX, "answers_by_call_soon", compose({CLAIMABLE: answers_put_off("call_soon", 0)}),
          why="loop.call_soon(channel_manager.claim_funds, preimage): answered once the handler returns"),
    wrong(EX, "answers_by_call_later_after_the_check_stops_waiting",
          compose({CLAIMABLE: answers_put_off("call_later", 3600)}),
          "had still not claimed it when the check stopped waiting", "claim_deadline",
          why="loop.call_later(3600, ...): an hour later, never within the check's wait (as a task's); it was told "
              "'it was never claimed' and 'the preimage is in the event's purpose'"),
    wrong(EX, "answers_by_a_task_built_directly_after_the_check_stops_waiting",
          compose({CLAIMABLE: answers_put_off("Task", 3600)}),
          "had still not claimed it when the check stopped waiting", "claim_deadline",
          why="asyncio.Task(coro) sleeping an hour first: never within the check's wait"),
    right(EX, "answers_from_a_thread_after_a_minute_by_the_clock", compose({CLAIMABLE: answers_from_a_thread_after(
        60, wait=_until_the_clock_says)}),
          why="a thread of its own sleeps a second at a time until time.monotonic() says a minute has passed, then "
              "answers: it passed or failed with the machine's speed, the check's clock racing through a minute while "
              "time.monotonic() moved a few milliseconds"),
    right(EX, "answered_by_a_worker_started_before_the_check_3_s_later",
          Fresh(lambda: compose({CLAIMABLE: by_a_worker_started_first(_after(3, claimable))})),
          why="one thread, started as the cell runs, takes each payment from a queue, sleeps 3 s and answers: it was "
              "failed ('left unclaimed'), the story ending while the thread the handler woke still slept"),
    right(EX, "answers_from_a_thread_after_a_timed_wait", compose({CLAIMABLE: answers_from_a_thread_after(
        60, wait=lambda seconds: threading.Event().wait(seconds))}),
          why="a thread of its own waits a minute with threading.Event().wait(60), then answers: it was failed ('never "
              "claimed'), the check taking a thread in a timed wait for one idle, and ending the story before it woke"),
    right(EX, "answers_from_a_thread_a_minute_later", compose({CLAIMABLE: answers_from_a_thread_after(60)}),
          why="answers_a_minute_later from a thread that sleeps first: it was told 'it was never claimed' and 'the "
              "preimage is in the event's purpose' (the check waited for a task working on a claim, not a thread)"),
    right(EX, "answers_a_minute_later", compose({CLAIMABLE: answers_after(60)}),
          why="a task claims (or fails back) each payment a minute after it is handed over: LDK allows it until the "
              "claim deadline. It was told 'it was never claimed': the story had ended 2 s after the last payment"),
    wrong(EX, "answers_after_the_check_stops_waiting", compose({CLAIMABLE: answers_after(3600)}),
          "had still not claimed it when the check stopped waiting", "claim_deadline",
          why="a task answers each payment an hour later: it was told 'it was never claimed', though it would be"),
    wrong(EX, "records_claims_in_its_claim_task", compose({CLAIMABLE: claims_and_records_in_a_task, CLAIMED: None}),
          "not Succeeded on disk yet", "PaymentClaimed",
          why="a task spawned on PaymentClaimable claims and writes Succeeded at once, with no PaymentClaimed arm: it "
              "passed, the disk being read only when a hand-over ended (records_claims_on_claimable, doing the same "
              "in the handler, failed)"),
    *(wrong(EX, f"claimed_and_{change}s_the_other_invoices", claimed_and_the_other_invoices(change),
            "never paid, still recorded on disk as it was issued", "update the entry of the event's payment_hash, "
            "and only it", why=f"on PaymentClaimed, {change}s every other invoice still Pending: it passed, only an "
            "entry wrongly Succeeded being looked for") for change in ("fail", "delete")),
    wrong(EX, "fails_back_then_closes_its_channel", compose({CLAIMABLE: fails_back_then_closes_its_channel}),
          "your handler closed a channel (channel_manager.force_close_broadcasting_latest_txn while it handled "
          "PaymentClaimable)", why="force-closes the channel an unclaimable payment came through: the story could "
          "not go on, and it was told an earlier event was not handled, to run the earlier checks first"),
    wrong(EX, "reads_a_keysends_secret", compose({CLAIMED: claimed_reading_the_secret_of_every_purpose}),
          "has no field 'payment_secret'", 'getattr(purpose, "payment_secret", None)',
          why="purpose.payment_secret read for every payment: a keysend's raised AttributeError, and the hint only "
              "said to read the traceback, though the workbook names this very case"),
    wrong(EX, "writes_in_a_namespace_of_its_own", compose({CLAIMED: claimed_in_a_namespace}),
          "primary_namespace 'payments'", 'fs_store.write("", "", "inbound_payments"',
          why='fs_store.write("payments", "", "inbound_payments", ...): it was told "nothing is stored under '
              "'inbound_payments'; you wrote under ['inbound_payments']\", the key it had used"),
    right(EX, "fails_back_with_a_reason", compose({CLAIMABLE: fail_back_with_a_reason}),
          why="fail_htlc_backwards_with_reason(hash, FailureCode.IncorrectOrUnknownPaymentDetails()): LDK's "
              "fail_htlc_backwards itself (it was told 'left unclaimed, and the payer waits')"),
    wrong(EX, "keys_records_by_hex", compose({CLAIMED: claimed_keyed_by_hex}), "cannot be read back",
          "not its .hex() or bytes()",
          why="inbound_payments[payment_hash.hex()]: it was told statuses are HTLCStatus members, not strings (its "
              "status was one)"),
    wrong(EX, "writes_every_other_claimed", Fresh(writes_every_other_claimed),
          "you did not write inbound_payments while handling this event", "every time",
          why="the keysend's record kept in memory only: it was told 'keysend payments have no invoice, so no entry "
              "yet: insert one', though it had inserted one"),
    right(EX, "claims_through_its_own_pool_by_keyword", compose({CLAIMABLE: claims_through_a_pool_by_keyword}),
          why="pool.submit(claimable, channel_manager=..., ...): keyword arguments reach the function (once lost)"),
    right(EX, "claimed_in_an_executor", compose({CLAIMABLE: claimed_in_an_executor}),
          why="claims through loop.run_in_executor, awaited: judged by the payment it names (it once failed)"),
    right(EX, "claims_then_asks_again_once", Fresh(claims_then_asks_again_once),
          why="claims, returns ReplayEvent() once, and nothing when handed the event again: its claim, made in the "
              "hand-over it asked for again, was once not counted ('it was never claimed')"),
    right(EX, "claimed_by_one_worker_thread", Fresh(claimed_by_one_worker_thread),
          why="a daemon thread idling on a queue.Queue claims each payment: woken by the handler's put, it is waited "
              "for again (under load its claims once raced the clock)"),
    right(EX, "claimed_by_a_thread_with_its_manager", Fresh(claimed_by_a_thread_with_its_manager),
          why="a daemon thread keeps the channel_manager it started with and claims each payment from a queue.Queue"),
    right(EX, "claimed_by_a_thread_waiting_on_its_pool", Fresh(claimed_by_a_thread_waiting_on_its_pool),
          why="a thread waits for its pool's future: woken as the pool's work ends, it is waited for again"),
    right(EX, "claimed_by_one_worker_task", Fresh(claimed_by_one_worker),
          why="one task claims every payment from a queue: judged by the payment each call names (it once failed)"),
    right(EX, "claimed_by_a_worker_per_loop", Fresh(claimed_by_a_worker_per_loop),
          why="one task per node's loop claims every payment from a queue, with the components handed over with it"),
    right(EX, "asks_again_for_every_event_first", Fresh(asks_again_first),
          why="returns ReplayEvent() the first time it sees each event, then handles it: each payment claimed once"),
    wrong(EX, "asks_again_for_claimables_for_ever", asks_again_always(Event.PaymentClaimable),
          "asked for it again each of the", "never handled",
          why="returns ReplayEvent() for every PaymentClaimable"),
    right(EX, "isinstance_plain_def_rebuilt_record", handle_isinstance,
          why="plain def with isinstance (no forwarding arm), purpose matched, the record rebuilt with keywords"),
    right(EX, "setdefault_fields_in_other_order", compose({CLAIMED: claimed_by_keywords_order}),
          why="setdefault, each field its own statement, write by keyword after the lock"),
    right(EX, "retry_write_in_place", compose({CLAIMED: claimed_retry_in_place, CLAIMABLE: claimable_async}),
          why="retries the write itself; an async arm matching on the preimage"),
    right(EX, "only_these_arms", only(*W13), why="just the arms workbook 3 needs"),

    wrong(EX, "writes_before_updating", compose({CLAIMED: _claimed(_write, write_first=True)}), "status Pending",
          "written before it was updated", why="fs_store.write first, then the entry updated in memory"),
    wrong(EX, "drops_the_secret", compose({CLAIMED: _claimed(_write, secret=False)}), "secret is missing",
          "payment_secret", why="PaymentInfo(preimage, None, ...): the invoice's secret lost"),
    wrong(EX, "drops_the_preimage", compose({CLAIMED: _claimed(_write, preimage=False)}), "preimage is missing",
          "purpose.preimage()", why="the preimage not stored"),
    wrong(EX, "claims_without_preimage", compose({CLAIMABLE: claim_without_preimage}), "fail_htlc_backwards",
          why="claim_funds(None) for a payment the node cannot claim"),
    wrong(EX, "leaves_unclaimable_waiting", compose({CLAIMABLE: claim_or_ignore}), "fail_htlc_backwards",
          "claim deadline", why="a payment without a preimage is left to time out"),
    wrong(EX, "fails_everything_back", compose({CLAIMABLE: fail_everything}), "claim_funds", "you failed it back",
          "purpose.preimage() works", why="fail_htlc_backwards for every payment: it claims none, so it is told "
          "where the preimage is, not that the invoice's Pending entry is no earlier payment (that is for a handler "
          "that claims others)"),
    wrong(EX, "never_claims", compose({CLAIMABLE: None}), "claim_funds", "never claimed",
          why="no PaymentClaimable arm"),
    wrong(EX, "wrong_storage_key", compose({CLAIMED: _claimed(_write, key="inbound_payment")}),
          "nothing of yours is stored under 'inbound_payments'", "inbound_payment'",
          why="writes under 'inbound_payment'"),
    wrong(EX, "never_writes", compose({CLAIMED: _claimed(_write, write=False)}), "fs_store.write",
          "before you return", why="updates memory, never persists"),
    wrong(EX, "writes_from_a_thread", compose({CLAIMED: _claimed(_write_in_a_thread)}),
          "you wrote it only after your handler had returned",
          why="records the payment, then writes from a thread it starts and does not wait for: the write raced the "
              "check's read (it passed, or failed, by the machine's speed)"),
    wrong(EX, "writes_in_a_pool_of_a_with_block", compose({CLAIMED: _claimed(_write_in_a_with_block)}),
          "Executor.__exit__()", "run_in_executor", why="`with ThreadPoolExecutor(1) as pool: pool.submit(write)`: "
          "the end of the block waits for the pool's thread, as Thread.join does: it hung for the check's 10 s, told "
          "it was polling, and the next check in the kernel failed too"),
    wrong(EX, "writes_from_its_pool", Fresh(writes_in_a_pool),
          "you wrote it only after your handler had returned",
          why="records the payment, then hands the write to a pool of its own and returns"),
    right(EX, "awaits_its_pool_writing", Fresh(claimed_awaiting_its_pool),
          why="an async arm awaits the write it handed to a pool of its own (asyncio.wrap_future): written before "
              "it returns"),
    wrong(EX, "claims_only_the_amount_invoiced", compose({CLAIMABLE: claims_only_the_amount_invoiced}),
          "you failed it back", "LDK takes an overpayment",
          why="fails back a payment of more than the invoice asked: it passed, every payment paying exactly"),
    wrong(EX, "records_one_parts_amount", compose({CLAIMED: records_one_parts_amount}), "HTLCStatus.Succeeded, "
          "60,000,000) on disk", "amt_msat 30000000 for 60000000 received", "came in 2 parts",
          why="a payment's amount taken from its first HTLC, htlcs[0].value_msat: it passed, every payment of the "
              "story coming in one part"),
    wrong(EX, "fails_back_as_a_temporary_failure", compose({CLAIMABLE: fails_back_as_temporary}),
          "failed back for good", "ended RetriesExhausted", "incorrect_or_unknown_payment_details",
          why="fail_htlc_backwards_with_reason(hash, FailureCode.TemporaryNodeFailure()): the payer retries a payment "
              "that can never be claimed (it passed: any fail-back was taken for a refusal)"),
    *(wrong(EX, f"fails_back_as_{name}", compose({CLAIMABLE: fails_back_with(code)}),
            "which blames nothing on its path", f"NetworkUpdate.{update}", "drop your node or channel",
            why=f"fail_htlc_backwards_with_reason(hash, FailureCode.{name}()): for good, as asked, but the payer's LDK "
                f"drops your {what} from its graph (it passed: only the PERM bit was judged)")
      for name, code, update, what in (
          ("RequiredNodeFeatureMissing", lambda: FailureCode.RequiredNodeFeatureMissing(), "NodeFailure", "node"),
          ("InvalidOnionPayload", lambda: FailureCode.InvalidOnionPayload(), "ChannelFailure", "channel"))),
    right(EX, "awaits_its_write_through_anyio", compose({CLAIMED: claimed_awaiting_anyio}),
          why="awaits the write in anyio's worker thread (anyio.to_thread.run_sync): its verdict varied from run to "
              "run, three ways, anyio's thread not counted on the world's clock"),
    wrong(EX, "writes_in_a_task_later", compose({CLAIMED: _claimed(_write_later)}), "before your handler returned",
          why="persists from a spawned task, after the handler returned"),
    wrong(EX, "status_as_string", compose({CLAIMED: _claimed(_write, status="Succeeded")}), "HTLCStatus",
          why='status="Succeeded", a string'),
    wrong(EX, "no_entry_for_keysend", compose({CLAIMED: _claimed(_write, insert=False)}), "no entry",
          "insert one", why="updates existing entries only: keysend has none"),
    wrong(EX, "amount_in_sats", compose({CLAIMED: _claimed(_write, amount=lambda msat: msat // 1000)}), "amt_msat",
          "millisatoshis", why="amt_msat stored as sats: it was told 'a replayed PaymentClaimed must not add it "
          "again', though it had added nothing"),
    wrong(EX, "keysend_amount_from_no_invoice", compose({CLAIMED: claimed_keeps_the_invoice_amount}),
          "amt_msat None", "event.amount_msat", why="the amount copied from the invoice's entry, None for a keysend: "
          "it was told 'a replayed PaymentClaimed must not add it again', though it had added nothing"),
    wrong(EX, "stores_outbound_bytes", compose({CLAIMED: claimed_writes_outbound}), "inbound_payments.encode()",
          why="writes outbound_payments.encode() (empty) under inbound_payments"),
    wrong(EX, "claims_with_known_custom_tlvs", compose({CLAIMABLE: claim_with_known_tlvs}),
          "custom TLV of even type 34,349,334", "you claimed it with claim_funds_with_known_custom_tlvs",
          "understands no custom TLV",
          why="claim_funds_with_known_custom_tlvs for every payment, its TLVs unread: it passed (as right) while the "
              "kit modelled no custom TLVs"),
    wrong(EX, "known_tlvs_judged_by_the_first_only", compose({CLAIMABLE: tlvs_judged_by(
              lambda types: bool(types) and types[0] % 2 == 0)}),
          "custom TLV of even type 65,538", "you claimed it with claim_funds_with_known_custom_tlvs",
          why="looks at the first custom TLV only: an odd one of a lower type (they come sorted) hid the even one"),
    *(wrong(EX, f"known_tlvs_judged_by_the_{which}", compose({CLAIMABLE: tlvs_judged_by(refuse)}),
            "custom TLV of even type 34,349,334", "you claimed it with claim_funds_with_known_custom_tlvs",
            why=f"looks at the {what} custom TLV only: it passed, every even TLV of the story being the last and "
                "highest (an odd one of a higher type, as a chat message's time, hides it)")
      for which, what, refuse in (("last_only", "last", lambda types: bool(types) and types[-1] % 2 == 0),
                                  ("highest_only", "highest-typed",
                                   lambda types: bool(types) and max(types) % 2 == 0))),
    wrong(EX, "refuses_only_the_chat_messages_tlv", compose({CLAIMABLE: tlvs_judged_by(
              lambda types: 34_349_334 in types)}),
          "custom TLV of even type 65,538", "you claimed it with claim_funds_with_known_custom_tlvs",
          why="refuses the one even type the story sent (a chat message), and claims the rest with the known-TLV "
              "claim: it passed, every even TLV of the story being of that type"),
    wrong(EX, "refuses_every_custom_tlv", compose({CLAIMABLE: tlvs_judged_by(bool)}),
          "claim_funds(purpose.preimage())", "it's OK to be odd", "claim this one",
          why="fails back every payment with a custom TLV, an odd one too: it passed while the only TLV was even"),
    wrong(EX, "refuses_an_even_tlv_for_now", compose({CLAIMABLE: tlvs_judged_by(
              lambda types: any(t % 2 == 0 for t in types), FailureCode.TemporaryNodeFailure())}),
          "RecipientRejected", "TemporaryNodeFailure",
          why="refuses a payment with an even TLV with TemporaryNodeFailure: the payer retries it"),
    right(EX, "claims_with_known_custom_tlvs_once_checked", compose({CLAIMABLE: claim_with_tlvs_checked}),
          why="reads onion_fields.custom_tlvs(): fails back a payment with an even one, claims the rest with "
              "claim_funds_with_known_custom_tlvs"),
    wrong(EX, "claims_with_the_hash", compose({CLAIMABLE: claim_with_the_hash}), "claim_funds", "still waits",
          "SHA-256", why="claim_funds(PaymentPreimage(bytes(payment_hash))): calls claim_funds, claims nothing"),
    wrong(EX, "fails_back_then_claims", compose({CLAIMABLE: fail_then_claim}), "the payer paid", "refunded",
          why="fail_htlc_backwards, then claim_funds: the payer is refunded"),
    wrong(EX, "marks_success_in_memory_on_claimable", compose({CLAIMABLE: claimable_marks_success_in_memory,
                                                               CLAIMED: claimed_only_writes}),
          "not Succeeded on disk yet", why="marks every payment Succeeded in memory on PaymentClaimable, the one it "
          "fails back too, and only writes on PaymentClaimed: it passed, no record written after the one failed back"),
    wrong(EX, "records_success_on_claimable", compose({CLAIMABLE: claimable_records_success}),
          "not Succeeded on disk yet", "PaymentClaimed",
          why="writes Succeeded on PaymentClaimable, so the refunded payment is Succeeded on disk"),
    wrong(EX, "records_claims_on_claimable", compose({CLAIMABLE: claimable_records_what_it_claims, CLAIMED: None}),
          "not Succeeded on disk yet", "PaymentClaimed",
          why="writes Succeeded (preimage, secret, amount) right after claim_funds, with no PaymentClaimed arm: the "
              "record was right by the time PaymentClaimed came, so it once passed"),
    wrong(EX, "clears_the_map_on_claimed", compose({CLAIMED: claimed_in_a_fresh_map}), "its record is gone",
          "never clear", why="payments.clear(), then this payment's entry: the invoice's record is lost"),
    wrong(EX, "files_a_keysend_among_payments_sent", compose({CLAIMED: claimed_also_in_outbound}),
          "a payment you never sent", "outbound_payments is for", why="keysends also written to outbound_payments"),
    wrong(EX, "returns_text_from_claimed", compose({CLAIMED: _returns_text(_claimed(_write))}),
          "returned 'claimed'", "ReplayEvent", why="returns a string from the PaymentClaimed arm"),
    right(EX, "updates_status_and_preimage_only", compose({CLAIMED: claimed_status_and_preimage_only}),
          why="the invoice's entry updated in place, status and preimage (its secret already the invoice's); a new "
              "entry, secret None, for a keysend"),
    wrong(EX, "replaces_the_entry_without_a_secret", compose({CLAIMED: claimed_replaced_without_secret}),
          "the payment secret is missing", "purpose.payment_secret",
          why="the entry replaced by PaymentInfo(preimage, None, Succeeded, amount): the workbook named a secret but "
              "never said where it comes from (now it says purpose.payment_secret)"),
    wrong(EX, "sets_the_entry_in_the_storage_itself", compose({CLAIMED: claimed_into_the_storage_itself}),
          "does not support item assignment", "inbound_payments.lock() as payments",
          why="inbound_payments[payment_hash] = PaymentInfo(...): the workbook never said where the dict is, and the "
              "hint was only to read the traceback"),
    wrong(EX, "looks_the_entry_up_in_the_storage_itself", compose({CLAIMED: claimed_looked_up_in_the_storage}),
          "no attribute 'get'", "inbound_payments.lock() as payments",
          why="inbound_payments.get(payment_hash): as above"),
]
