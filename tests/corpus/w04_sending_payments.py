"""Workbook 4, the payments you send: record how each one ends, and only how it ends."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ldkkit.events import Event, PaymentFailureReason, ReplayEvent
from ldkkit.ln.outbound_payment import RecipientOnionFields, Retry
from ldkkit.payment_storage import HTLCStatus, PaymentInfo
from ldkkit.routing.router import PaymentParameters, RouteParameters
from ldkkit.types import PaymentId

from . import Fresh, right, wrong
from .arms import compose, failed, sent, spawn

EX = "sending_payments"
SENT, FAILED, PATH_FAILED = Event.PaymentSent, Event.PaymentFailed, Event.PaymentPathFailed


def _write(fs_store: Any, outbound_payments: Any, key: str = "outbound_payments") -> None:
    fs_store.write("", "", key, outbound_payments.encode())


# --- RIGHT ------------------------------------------------------------------------------------------------

def handle_isinstance(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                      bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                      fs_store, output_sweeper, network, event):
    """Plain def, isinstance; entries rebuilt whole, keeping what sendpayment recorded; == Pending."""
    if isinstance(event, Event.FundingGenerationReady):
        from .arms import fund_channel

        fund_channel(channel_manager=channel_manager, bitcoind_client=bitcoind_client, network=network, event=event)
    elif isinstance(event, Event.PaymentSent):
        with outbound_payments.lock() as payments:
            old = payments.get(event.payment_id)
            if old is not None:
                payments[event.payment_id] = PaymentInfo(event.payment_preimage, old.secret, HTLCStatus.Succeeded,
                                                         old.amt_msat)
        fs_store.write("", "", "outbound_payments", outbound_payments.encode())
    elif isinstance(event, Event.PaymentFailed):
        with outbound_payments.lock() as payments:
            old = payments.get(event.payment_id)
            if old is not None and old.status == HTLCStatus.Pending:
                old.status = HTLCStatus.Failed
        fs_store.write("", "", "outbound_payments", outbound_payments.encode())
    elif isinstance(event, (Event.PaymentPathFailed, Event.PaymentPathSuccessful)):
        pass  # the scorer already learnt from it


def sent_write_outside_lock(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    with outbound_payments.lock() as payments:
        if event.payment_id in payments:
            payments[event.payment_id].preimage = event.payment_preimage
            payments[event.payment_id].status = HTLCStatus.Succeeded
    fs_store.write(key="outbound_payments", buf=outbound_payments.encode(), primary_namespace="",
                   secondary_namespace="")


def failed_early_return(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Any:
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is None or info.status is HTLCStatus.Succeeded:
            return None  # nothing changed, nothing to write
        info.status = HTLCStatus.Failed
    try:
        _write(fs_store, outbound_payments)
    except OSError:
        return ReplayEvent()
    return None


def path_failed_in_memory(outbound_payments: Any, event: Any, **_: Any) -> None:
    """Marks the payment Failed in memory on PaymentPathFailed, leaving the write to the next event's arm."""
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None and info.status is HTLCStatus.Pending:
            info.status = HTLCStatus.Failed


def path_failed_logged(channel_manager: Any, event: Any, **_: Any) -> None:
    channel_manager.logger.info("learner", f"a path of {event.payment_id} failed; LDK retries")


# --- WRONG ------------------------------------------------------------------------------------------------

def set_status(status: Any, *, when: Any = lambda info: True, preimage: bool = False, write: bool = True,
               key: str = "outbound_payments") -> Any:
    def arm(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is not None and when(info):
                info.status = status
                if preimage:
                    info.preimage = event.payment_preimage
        if write:
            _write(fs_store, outbound_payments, key)

    return arm


def sent_replaces(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    with outbound_payments.lock() as payments:
        payments[event.payment_id] = PaymentInfo(event.payment_preimage, None, HTLCStatus.Succeeded, None)
    _write(fs_store, outbound_payments)


def failed_removes(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None and info.status is not HTLCStatus.Succeeded:
            del payments[event.payment_id]
    _write(fs_store, outbound_payments)


def sent_by_hash(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)  # the wrong key: payments are kept by payment_id
        if info is not None:
            info.status, info.preimage = HTLCStatus.Succeeded, event.payment_preimage
    _write(fs_store, outbound_payments)


def every_pending_as(status: Any, *, preimage: bool = False) -> Any:
    """Marks every Pending entry, not the event's: "the payment" taken to be whatever is waiting."""

    def arm(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        with outbound_payments.lock() as payments:
            for info in payments.values():
                if info.status is HTLCStatus.Pending:
                    info.status = status
                    if preimage:
                        info.preimage = event.payment_preimage
        _write(fs_store, outbound_payments)

    return arm


def failed_rebuilds_without_preimage(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Rebuilds the entry from the event on PaymentFailed, which carries no preimage: a success's preimage is lost."""
    with outbound_payments.lock() as payments:
        old = payments.get(event.payment_id)
        if old is not None:
            status = HTLCStatus.Succeeded if old.status is HTLCStatus.Succeeded else HTLCStatus.Failed
            payments[event.payment_id] = PaymentInfo(None, old.secret, status, old.amt_msat)
    _write(fs_store, outbound_payments)


def failed_then_forgotten(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Writes the failure, then drops the entry from memory ("it is over"): the next write removes it from disk."""
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None and info.status is not HTLCStatus.Succeeded:
            info.status = HTLCStatus.Failed
        _write(fs_store, outbound_payments)
        if info is not None and info.status is HTLCStatus.Failed:
            del payments[event.payment_id]


def path_successful_rebuilds_the_entry(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Marks the payment Succeeded again on PaymentPathSuccessful, rebuilding its entry: the preimage is lost."""
    with outbound_payments.lock() as payments:
        old = payments.get(event.payment_id)
        if old is not None:
            payments[event.payment_id] = PaymentInfo(None, old.secret, HTLCStatus.Succeeded, old.amt_msat)
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def path_successful_marks_succeeded(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Sets Succeeded again on PaymentPathSuccessful (it always follows PaymentSent): changes nothing."""
    with outbound_payments.lock() as payments:
        if event.payment_id in payments:
            payments[event.payment_id].status = HTLCStatus.Succeeded
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def records_probes(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Files each probe among the payments sent, Failed or Succeeded as the probe went."""
    status = HTLCStatus.Failed if isinstance(event, Event.ProbeFailed) else HTLCStatus.Succeeded
    with outbound_payments.lock() as payments:
        payments[event.payment_id] = PaymentInfo(None, None, status, None)
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def probe_fails_pending_payments(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Takes a probe's end for the end of the payments on their way: every Pending entry marked Failed."""
    with outbound_payments.lock() as payments:
        for info in payments.values():
            if info.status is HTLCStatus.Pending:
                info.status = HTLCStatus.Failed
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def abandons_the_pending_when_a_channel_closes(channel_manager: Any, outbound_payments: Any, **_: Any) -> None:
    """On ChannelClosed, abandons every payment still Pending ("its channel may be gone: stop retrying")."""
    with outbound_payments.lock() as payments:
        pending = [payment_id for payment_id, info in payments.items() if info.status is HTLCStatus.Pending]
    for payment_id in pending:
        channel_manager.abandon_payment(payment_id)


def abandons_once_failed(channel_manager: Any, event: Any, **kw: Any) -> Any:
    """The workbook's PaymentFailed arm, then abandon_payment ("make sure LDK stops"): LDK forgot the payment as it
    queued PaymentFailed, and the call does nothing."""
    answer = failed(event=event, **kw)
    channel_manager.abandon_payment(event.payment_id)
    return answer


def abandons_on_path_failure(channel_manager: Any, event: Any, **_: Any) -> None:
    """Gives up at the first failed path: abandon_payment, so LDK's retry never comes."""
    channel_manager.abandon_payment(event.payment_id)


def sent_also_as_received(outbound_payments: Any, inbound_payments: Any, fs_store: Any, event: Any,
                          **kw: Any) -> None:
    """Records PaymentSent rightly, and files it among the payments received as well."""
    sent(outbound_payments=outbound_payments, fs_store=fs_store, event=event, **kw)
    with inbound_payments.lock() as payments:
        payments[event.payment_hash] = PaymentInfo(event.payment_preimage, None, HTLCStatus.Succeeded, None)
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())


def retries_itself_once() -> Any:
    """On PaymentPathFailed, sends the payment again itself, once, under a new payment_id (recorded as sendpayment
    would): LDK is retrying the first one all the while."""
    retried: set[Any] = set()

    def arm(channel_manager: Any, keys_manager: Any, outbound_payments: Any, fs_store: Any, event: Any,
            **_: Any) -> None:
        if event.payment_failed_permanently or event.payment_id in retried:
            return
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is None or info.status is not HTLCStatus.Pending:
                return
            new_id = PaymentId(keys_manager.get_secure_random_bytes())
            payments[new_id] = PaymentInfo(None, info.secret, HTLCStatus.Pending, info.amt_msat)
            fs_store.write("", "", "outbound_payments", outbound_payments.encode())
        retried.update((event.payment_id, new_id))
        params = RouteParameters.from_payment_params_and_value(
            PaymentParameters.from_node_id(event.path.hops[-1].pubkey, 40), info.amt_msat)
        channel_manager.send_payment(event.payment_hash, RecipientOnionFields.secret_only(info.secret), new_id,
                                     params, Retry.Attempts(3))

    return compose({Event.PaymentPathFailed: arm})


def fails_on_a_permanent_path_failure(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Marks the payment Failed on a PaymentPathFailed whose payment_failed_permanently is True."""
    if event.payment_failed_permanently:
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is not None and info.status is HTLCStatus.Pending:
                info.status = HTLCStatus.Failed
        fs_store.write("", "", "outbound_payments", outbound_payments.encode())


async def sent_then_waits_forever(**kw: Any) -> None:
    """Records PaymentSent, then waits for something that never happens (a confirmation it expects)."""
    sent(**kw)
    await asyncio.Event().wait()


def _returning(value: Any, arm: Any) -> Any:
    def wrapped(**kw: Any) -> Any:
        arm(**kw)
        return value

    return wrapped


def failed_only_when_rejected(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Marks a payment Failed only when the recipient rejected it: any other reason taken for one LDK retries."""
    if event.reason is PaymentFailureReason.RecipientRejected:
        set_status(HTLCStatus.Failed, when=lambda info: info.status is not HTLCStatus.Succeeded)(
            outbound_payments=outbound_payments, fs_store=fs_store, event=event)


def failed_unless(*reasons: Any) -> Any:
    """Leaves a payment Pending when PaymentFailed gives one of ``reasons`` ("only a timeout: it may be tried again",
    "given up by us, not failed"): marks it Failed otherwise."""

    def arm(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        if event.reason not in reasons:
            set_status(HTLCStatus.Failed, when=lambda info: info.status is not HTLCStatus.Succeeded)(
                outbound_payments=outbound_payments, fs_store=fs_store, event=event)

    return arm


def sent_adds_the_fee(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Marks Succeeded with the preimage, and adds the event's fee_paid_msat to the entry's amount."""
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None:
            info.status, info.preimage = HTLCStatus.Succeeded, event.payment_preimage
            info.amt_msat += event.fee_paid_msat or 0
    _write(fs_store, outbound_payments)


def failed_writes_the_inbound_map(outbound_payments: Any, inbound_payments: Any, fs_store: Any, event: Any,
                                  **_: Any) -> None:
    """Copied from the PaymentClaimed arm: the key changed to outbound_payments, the map written left inbound."""
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None and info.status is not HTLCStatus.Succeeded:
            info.status = HTLCStatus.Failed
        fs_store.write("", "", "outbound_payments", inbound_payments.encode())


def sent_writes_first(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Writes outbound_payments, then marks the entry Succeeded with its preimage: disk keeps it Pending."""
    _write(fs_store, outbound_payments)
    set_status(HTLCStatus.Succeeded, preimage=True, write=False)(outbound_payments=outbound_payments,
                                                                  fs_store=fs_store, event=event)


def failed_updates_a_copy(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Marks Failed a copy of the entry (dataclasses.replace, "so as not to change the original"), then writes."""
    with outbound_payments.lock() as payments:
        info = dataclasses.replace(payments[event.payment_id])
        if info.status is not HTLCStatus.Succeeded:
            info.status = HTLCStatus.Failed
    _write(fs_store, outbound_payments)


def path_failed_in_a_task(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Marks the payment Failed on PaymentPathFailed, from a task it spawns (the write lands after it returned)."""
    async def mark() -> None:
        set_status(HTLCStatus.Failed, when=lambda info: info.status is HTLCStatus.Pending)(
            outbound_payments=outbound_payments, fs_store=fs_store, event=event)

    spawn(mark())


def forgets_a_probes_channel(network_graph: Any, event: Any, **_: Any) -> None:
    """Drops the channel a probe failed at from the graph ("it has no liquidity")."""
    if event.short_channel_id is not None:
        network_graph.channel_failed_permanent(event.short_channel_id)


def applies_its_own_network_update(network_graph: Any, event: Any, **_: Any) -> None:
    """Applies the failure's network_update to the graph itself, as LDK's background processor already does."""
    if event.failure.network_update is not None:
        network_graph.handle_network_update(event.failure.network_update)


def forgets_through_the_router(channel_manager: Any, event: Any, **_: Any) -> None:
    """Drops the channel a probe failed at from the graph the router reads (the same graph)."""
    if event.short_channel_id is not None:
        channel_manager.router.network_graph.channel_failed_permanent(event.short_channel_id)


def applies_updates_from_a_task() -> Any:
    """Hands each PaymentPathFailed's network_update to a task of its own (one per node's loop), which applies it to
    the graph."""
    queues: dict[Any, asyncio.Queue] = {}

    async def arm(network_graph: Any, event: Any, **_: Any) -> None:
        loop = asyncio.get_running_loop()
        if loop not in queues:
            updates = queues[loop] = asyncio.Queue()

            async def apply() -> None:
                while True:
                    network_graph.handle_network_update(await updates.get())

            TASKS.add(loop.create_task(apply()))
        if event.failure.network_update is not None:
            queues[loop].put_nowait(event.failure.network_update)

    return compose({Event.PaymentPathFailed: arm})


TASKS: set[Any] = set()


def looked_up_by_the_hash(status: Any, *, preimage: bool = False) -> Any:
    """Updates the entry of ``PaymentId(bytes(payment_hash))``, not of the event's payment_id ("sendpayment keys the
    entry by the invoice's hash")."""

    def arm(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
        with outbound_payments.lock() as payments:
            info = payments.get(PaymentId(bytes(event.payment_hash)))
            if info is not None:
                info.status = status
                if preimage:
                    info.preimage = event.payment_preimage
        _write(fs_store, outbound_payments)

    return arm


GOOD_SENT = set_status(HTLCStatus.Succeeded, preimage=True)
NOT_SUCCEEDED = dict(when=lambda info: info.status is not HTLCStatus.Succeeded)

def sent_into_the_storage_itself(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> None:
    info = outbound_payments[event.payment_id]
    info.status, info.preimage = HTLCStatus.Succeeded, event.payment_preimage
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def sends_the_retry_now(channel_manager: Any, **_: Any) -> None:
    """On PaymentPathFailed, processes the forwards "so that the retry goes out now"."""
    channel_manager.process_pending_htlc_forwards()


CASES = [
    wrong(EX, "sends_the_retry_now", compose({PATH_FAILED: sends_the_retry_now}), "called it",
          "from your PaymentPathFailed arm", "a PaymentPathFailed needs nothing more of you",
          why="calls process_pending_htlc_forwards from its PaymentPathFailed arm: LDK asks for the retry itself, and "
              "the call sends on at once whatever waited its delay"),
    wrong(EX, "failed_on_path_failure_in_a_task", compose({PATH_FAILED: path_failed_in_a_task}),
          "one path failed", "Only PaymentFailed ends a payment",
          why="marks Failed on PaymentPathFailed from a spawned task: caught at a later event, it was told 'look its "
              "entry up by the event's payment_id, and leave the others as they are', which it had done"),
    wrong(EX, "sent_writes_before_updating", compose({SENT: sent_writes_first}), "HTLCStatus.Succeeded",
          "written before it was updated", why="fs_store.write first, then the entry marked Succeeded: it was told "
          "'the event says how the payment ended: record exactly that', which it had done, in memory"),
    wrong(EX, "failed_updates_a_copy", compose({FAILED: failed_updates_a_copy}), "HTLCStatus.Failed", "not a copy",
          why="marks Failed a dataclasses.replace copy of the entry: it was told only 'the event says how the payment "
              "ended: record exactly that'"),
    wrong(EX, "failed_writes_the_inbound_map", compose({FAILED: failed_writes_the_inbound_map}),
          "write outbound_payments.encode()", "not another map's bytes",
          why="PaymentFailed writes inbound_payments.encode() under 'outbound_payments': it was told 'update the "
              "entry sendpayment made (look it up by the event's payment_id); never remove it', which it did"),
    wrong(EX, "sent_adds_the_fee_to_the_amount", compose({SENT: sent_adds_the_fee}), "amount kept", "fee_paid_msat",
          why="amt_msat += fee_paid_msat on PaymentSent: it was told 'replacing it with a new PaymentInfo', though "
              "it replaced nothing"),
    wrong(EX, "fails_only_rejected_payments", compose({FAILED: failed_only_when_rejected}), "mark it Failed",
          "whatever its reason", "UserAbandoned",
          why="PaymentFailed marks Failed only if reason is RecipientRejected (RetriesExhausted, RouteNotFound, "
              "PaymentExpired left Pending for ever): it once passed, every PaymentFailed of the story being "
              "RecipientRejected"),
    wrong(EX, "leaves_retries_exhausted_pending", compose({FAILED: failed_unless(
              PaymentFailureReason.RetriesExhausted, PaymentFailureReason.PaymentExpired)}),
          "mark it Failed", "whatever its reason", "RetriesExhausted",
          why="PaymentFailed left Pending when its reason is RetriesExhausted or PaymentExpired: it passed, no "
              "payment of the stories running out of retries"),
    wrong(EX, "leaves_expired_pending", compose({FAILED: failed_unless(PaymentFailureReason.PaymentExpired)}),
          "mark it Failed", "whatever its reason", "PaymentExpired",
          why="PaymentFailed left Pending when its reason is PaymentExpired: it passed, no payment of the stories "
              "expiring while LDK retried it"),
    wrong(EX, "leaves_abandoned_pending", compose({FAILED: failed_unless(
              PaymentFailureReason.UserAbandoned, PaymentFailureReason.PaymentExpired)}),
          "mark it Failed", "whatever its reason", "UserAbandoned",
          why="PaymentFailed left Pending when its reason is UserAbandoned or PaymentExpired: it passed, no payment "
              "of the stories being abandoned"),
    wrong(EX, "never_returns_from_payment_sent", compose({Event.PaymentSent: sent_then_waits_forever}),
          "still waiting", "one at a time",
          why="records PaymentSent, then awaits something that never comes: once told 'nothing is stored'"),
    wrong(EX, "fails_on_a_permanent_path_failure",
          compose({Event.PaymentPathFailed: fails_on_a_permanent_path_failure}),
          "PaymentFailed, which follows", "retries no more", why="Failed on PaymentPathFailed when "
          "payment_failed_permanently: told 'LDK retries another' path, which it does not then"),
    wrong(EX, "files_a_payment_sent_among_those_received", compose({Event.PaymentSent: sent_also_as_received}),
          "a payment you sent", "inbound_payments is", why="PaymentSent also written to inbound_payments (it once "
          "passed: the mirror of workbook 3's keysend filed among payments sent)"),
    wrong(EX, "retries_a_failed_path_itself", Fresh(retries_itself_once), "channel_manager.send_payment",
          "paid twice", why="on PaymentPathFailed, sends the payment again under a new payment_id: it once passed, "
          "with two payments left in flight and 80,004 sats more spent"),
    right(EX, "isinstance_plain_def_rebuilt", handle_isinstance,
          why="plain def, isinstance, PaymentSent rebuilds the entry keeping secret and amount, == Pending"),
    right(EX, "write_by_keyword_outside_lock",
          compose({SENT: sent_write_outside_lock, PATH_FAILED: path_failed_logged}),
          why="fields set through the dict, keyword write after the lock; PaymentPathFailed logged"),
    right(EX, "failed_returns_early_when_unchanged", compose({FAILED: failed_early_return}),
          why="PaymentFailed writes only when it changed something"),

    wrong(EX, "failed_on_path_failure", compose({PATH_FAILED: set_status(HTLCStatus.Failed, **NOT_SUCCEEDED)}),
          "PaymentPathFailed", "Only PaymentFailed ends a payment", why="marks Failed on PaymentPathFailed"),
    wrong(EX, "replaces_the_entry", compose({SENT: sent_replaces}), "secret and amount kept", "replacing",
          why="PaymentInfo(preimage, None, Succeeded, None): sendpayment's amount lost"),
    wrong(EX, "status_string_succeeded",
          compose({SENT: set_status("Succeeded", preimage=True)}), "HTLCStatus",
          why='info.status = "Succeeded"'),
    wrong(EX, "status_string_failed", compose({FAILED: set_status("Failed", **NOT_SUCCEEDED)}), "HTLCStatus",
          why='info.status = "Failed"'),
    wrong(EX, "failed_after_success", compose({FAILED: set_status(HTLCStatus.Failed)}), "already succeeded",
          "Only mark it Failed if it has not succeeded", why="PaymentFailed marks Failed even after PaymentSent"),
    wrong(EX, "sent_without_preimage", compose({SENT: set_status(HTLCStatus.Succeeded)}), "preimage",
          "proof of payment", why="Succeeded, but the preimage not kept"),
    wrong(EX, "failed_never_written", compose({FAILED: set_status(HTLCStatus.Failed, write=False, **NOT_SUCCEEDED)}),
          "you did not write outbound_payments", "fs_store.write", why="PaymentFailed updates memory only"),
    wrong(EX, "failed_removes_entry", compose({FAILED: failed_removes}), "no entry", "never remove it",
          why="deletes the failed payment's entry"),
    wrong(EX, "sent_looked_up_by_hash", compose({SENT: sent_by_hash}), "HTLCStatus.Succeeded", "record exactly that",
          "not its payment_hash", why="looks the entry up by payment_hash (the hint named only a copy)"),
    wrong(EX, "wrong_storage_key", compose({SENT: set_status(HTLCStatus.Succeeded, preimage=True,
                                                              key="outbound")}),
          "nothing of yours is stored under 'outbound_payments'", why="writes under 'outbound'"),
    wrong(EX, "sent_ignored", compose({SENT: None}), "outbound_payments", "persisted",
          why="no PaymentSent arm"),
    wrong(EX, "failed_marks_succeeded", compose({FAILED: set_status(HTLCStatus.Succeeded)}), "HTLCStatus.Failed",
          why="copy-paste: PaymentFailed marks Succeeded"),
    wrong(EX, "sent_marks_every_pending", compose({SENT: every_pending_as(HTLCStatus.Succeeded, preimage=True)}),
          "still on its way, left Pending", "event's payment_id",
          why="on PaymentSent, marks every Pending entry Succeeded: another payment still on its way too"),
    wrong(EX, "path_failed_marks_failed_in_memory", compose({Event.PaymentPathFailed: path_failed_in_memory}),
          "still on its way, left Pending", "since a PaymentPathFailed of its own", "Pending until PaymentFailed",
          why="marks Failed in memory on PaymentPathFailed, and another payment's write stores it: it was told to look "
              "that other event's entry up by its payment_id, which it did"),
    wrong(EX, "channel_closed_fails_every_pending", compose({Event.ChannelClosed: every_pending_as(HTLCStatus.Failed)}),
          "still on its way, left Pending", "only PaymentSent and PaymentFailed end a payment",
          why="marks every Pending payment Failed when a channel closes: it passed, no channel closing in the "
              "workbook's stories while a payment was on its way"),
    wrong(EX, "failed_marks_every_pending", compose({FAILED: every_pending_as(HTLCStatus.Failed)}),
          "still on its way, left Pending", why="on PaymentFailed, marks every Pending entry Failed"),
    wrong(EX, "failed_after_success_loses_the_preimage", compose({FAILED: failed_rebuilds_without_preimage}),
          "with its preimage", "proof of payment",
          why="rebuilds the entry on PaymentFailed with preimage None, keeping Succeeded after a success"),
    wrong(EX, "forgets_a_failed_payment", compose({FAILED: failed_then_forgotten}), "its record is gone",
          "never remove", why="writes Failed, then deletes the entry from memory: a later write loses it"),
    wrong(EX, "path_successful_rebuilds_the_entry",
          compose({Event.PaymentPathSuccessful: path_successful_rebuilds_the_entry}),
          "on Event.PaymentPathSuccessful", "PaymentPathSuccessful changes nothing",
          why="rebuilds the entry on PaymentPathSuccessful with preimage None: it was told at a later PaymentFailed "
              "that PaymentFailed carries no preimage, and passed when none came after a success"),
    right(EX, "path_successful_marks_succeeded",
          compose({Event.PaymentPathSuccessful: path_successful_marks_succeeded}),
          why="sets Succeeded again on PaymentPathSuccessful, which LDK always sends after PaymentSent"),
    wrong(EX, "forgets_a_probes_channel", compose({Event.ProbeFailed: forgets_a_probes_channel}),
          "network graph as LDK keeps it", "is gone from it", "only to the scorer",
          why="drops the channel a probe failed at from the graph: it passed, no later payment needing that channel"),
    wrong(EX, "forgets_a_probes_channel_through_the_router", compose({Event.ProbeFailed: forgets_through_the_router}),
          "network graph as LDK keeps it", "is gone from it",
          why="the same, through channel_manager.router.network_graph: it passed a judge of the graph's own calls"),
    right(EX, "applies_network_updates_from_a_task", Fresh(applies_updates_from_a_task),
          why="a task of its own applies each PaymentPathFailed's network_update, taken from a queue: it failed, the "
              "call judged as made for another event (and the grader credited it to yet another)"),
    right(EX, "applies_its_own_network_update", compose({Event.PaymentPathFailed: applies_its_own_network_update}),
          why="hands PaymentPathFailed's network_update to network_graph.handle_network_update, which LDK's processor "
              "did already: nothing changes"),
    wrong(EX, "records_looked_up_by_the_hash", compose({
              SENT: looked_up_by_the_hash(HTLCStatus.Succeeded, preimage=True),
              Event.PaymentFailed: looked_up_by_the_hash(HTLCStatus.Failed)}),
          "outbound_payments[payment_id]", "HTLCStatus.Pending",
          why="finds the entry by PaymentId(bytes(payment_hash)), not the event's payment_id: it passed, every payment "
              "of the story being sent under its hash"),
    wrong(EX, "records_probes", compose({Event.ProbeFailed: records_probes, Event.ProbeSuccessful: records_probes}),
          "a probe's id", "a probe is no payment",
          why="records each probe in outbound_payments: it passed, no probe being sent in the story (nor judged in the "
              "capstone's probe scenarios), though the workbook says to do nothing with them"),
    wrong(EX, "probe_failed_fails_pending_payments", compose({Event.ProbeFailed: probe_fails_pending_payments}),
          "on Event.ProbeFailed", "still on its way, left Pending", "a probe is no payment",
          why="marks every Pending payment Failed on ProbeFailed: it passed, the story's probe ending when no payment "
              "was on its way"),
    wrong(EX, "probe_successful_fails_pending_payments",
          compose({Event.ProbeSuccessful: probe_fails_pending_payments}),
          "on Event.ProbeSuccessful", "still on its way, left Pending", "a probe is no payment",
          why="marks every Pending payment Failed on ProbeSuccessful (as above)"),
    wrong(EX, "abandons_on_path_failure", compose({PATH_FAILED: abandons_on_path_failure}), "left to LDK until it ends",
          "do not abandon_payment", why="abandon_payment on PaymentPathFailed: the retried payment never succeeds"),
    wrong(EX, "abandons_the_pending_when_a_channel_closes",
          compose({Event.ChannelClosed: abandons_the_pending_when_a_channel_closes}),
          "you abandoned it while it was on its way (while handling ChannelClosed)", "do not abandon_payment",
          why="abandons every Pending payment on ChannelClosed: it passed, the payment in flight completing all the "
              "same (abandon_payment does not stop one that succeeds, but LDK would retry it no more)"),
    right(EX, "abandons_once_failed", compose({FAILED: abandons_once_failed}),
          why="abandon_payment after the PaymentFailed arm, a call that does nothing: it failed, told it had "
              "abandoned a payment that should have completed (erin's, which no path reaches) and to leave "
              "PaymentPathFailed alone"),
    wrong(EX, "returns_true", compose({SENT: _returning(True, GOOD_SENT)}), "returned True", "ReplayEvent",
          why="returns True from PaymentSent"),
    wrong(EX, "looks_the_entry_up_in_the_storage_itself", compose({Event.PaymentSent: sent_into_the_storage_itself}),
          "not subscriptable", "outbound_payments.lock() as payments",
          why="outbound_payments[payment_id]: the storage used as the dict it holds; the hint was only to read the "
              "traceback"),
]
