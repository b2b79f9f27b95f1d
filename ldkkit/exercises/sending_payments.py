"""Workbook 4: the payments you send. Record how each one ends, and only how it ends.

Rules, judged from ``outbound_payments`` as stored on disk after each event:
- ``PaymentSent``: the entry is ``Succeeded``, with the preimage, its secret and amount kept;
- ``PaymentFailed``: the entry is ``Failed``, its secret and amount kept;
- ``PaymentFailed`` for a payment that already succeeded changes nothing (its preimage is kept);
- each event is about its own ``payment_id``: a payment still on its way stays ``Pending``, whatever
  the event (a ``ChannelClosed`` ends no payment: LDK may still complete or fail it);
- ``PaymentPathFailed`` is not the end of a payment (LDK retries): the entry is never ``Failed`` then, and a
  payment LDK could still complete is never abandoned (``abandon_payment``);
- a probe (``ProbeSuccessful``, ``ProbeFailed``) is no payment: ``outbound_payments`` holds only what you sent;
- statuses are ``HTLCStatus`` members, and the storage is written before the handler returns.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .. import scenarios
from ..bitcoin import Network
from ..errors import RetryableSendFailure
from ..events import Event, PaymentFailureReason
from ..invoice import Bolt11Invoice
from ..ln.bolt11_payment import payment_parameters_from_invoice
from ..ln.outbound_payment import Retry
from ..payment_storage import HTLCStatus
from ..routing.gossip import NetworkUpdate
from ..routing.router import PaymentParameters, RouteParameters
from ..scenarios import Stage
from ..types import PaymentHash, PaymentId, PaymentSecret
from .common import (
    CheckResult,
    Handling,
    Played,
    Session,
    count,
    fail,
    replayed,
)
from .records import final_records, record_on_disk, stored_record

#: Two payments are sent under ids of their own, not their payment hashes: LDK asks only that a payment's id be unique
#: (ldk-sample's offers take random ones), so a record is found by the event's payment_id, never by its hash.
OWN_IDS = (PaymentId(b"\x21" * 32), PaymentId(b"\x22" * 32))


def story(stage: Stage) -> None:
    bob = stage.peer("bob", fee_base_msat=100)
    carol = stage.peer("carol", fee_base_msat=2000)
    dave = stage.peer("dave", connect=False, handler=scenarios.forwards_after(DAVE_S))
    stage.open(stage.me, bob, 1_000_000)
    stage.open(stage.me, carol, 1_000_000)
    stage.open(dave, bob, 1_000_000)  # dave funded it: bob cannot forward towards dave, so LDK retries via carol
    stage.open(carol, dave, 1_000_000)
    stage.pay(stage.me, stage.invoice(dave, 50_000_000), settle_s=DAVE_S + 2)
    invoice = stage.invoice(bob, 100_000_000)
    stage.pay(stage.me, invoice)
    pay_fake(stage, bob)
    # Two at a time, one ending while the other is still on its way (dave takes DAVE_S to answer, bob less than one).
    pay_fake(stage, dave, b"\x55", settle_s=0)
    stage.pay(stage.me, stage.invoice(bob, 20_000_000), settle_s=DAVE_S + 1, payment_id=OWN_IDS[0])
    stage.pay(stage.me, stage.invoice(dave, 30_000_000), settle_s=0)
    pay_fake(stage, bob, b"\x66", settle_s=DAVE_S + 1)
    pay_again(stage, invoice)
    # A payment you give up on yourself while dave still holds it (abandon_payment, as a user might from a CLI): once
    # it fails back, PaymentFailed comes with the reason UserAbandoned. Whatever the reason, it ends the payment.
    stage.me.channel_manager.abandon_payment(pay_fake(stage, dave, b"\x77", settle_s=0))
    stage.settle(DAVE_S + 1)
    # A payment LDK gives up on for a reason of its own: erin is reached only through bob, who cannot forward to her
    # (she funded their channel), so once that path fails no other is left (PaymentFailed, reason RouteNotFound).
    erin = stage.peer("erin", connect=False)
    stage.open(erin, bob, 1_000_000)
    stage.pay(stage.me, stage.invoice(erin, 40_000_000))
    # And one that may not be retried at all (Retry.Attempts(0)): its first path fails, and LDK gives up at once
    # (PaymentFailed, reason RetriesExhausted). Whatever the reason, PaymentFailed ends the payment.
    stage.pay(stage.me, stage.invoice(erin, 45_000_000), retry=Retry.Attempts(0), payment_id=OWN_IDS[1])
    # And one whose one-second invoice expires while LDK retries it: a path fails (bob cannot forward towards dave, and
    # dave, who holds it DAVE_S, cannot forward to fay, who funded their channel), and LDK, about to try another,
    # finds the invoice expired (PaymentFailed, reason PaymentExpired).
    fay = stage.peer("fay", connect=False)
    stage.open(fay, dave, 1_000_000)
    stage.pay(stage.me, stage.invoice(fay, 25_000_000, expiry_secs=1), settle_s=EXPIRED_SETTLE_S)
    probe(stage, dave, 10_000_000)


def probe(stage: Stage, target: Any, amount_msat: int) -> None:
    """A probe (``send_probe``) of a path to ``target``: ProbeSuccessful or ProbeFailed, and no payment to record."""
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(target.node_id, 42),
                                                           amount_msat)
    route = stage.me.router.find_route(stage.me.node_id, params, stage.me.channel_manager.list_usable_channels(), None)
    stage.me.channel_manager.send_probe(route.paths[0])
    stage.settle()


#: How long dave waits before he processes a payment that reaches him (seconds).
DAVE_S = 2.0
#: Long enough for a path failure to come back and LDK's retry of it to be tried (your handler forwards up to five
#: times ``time_forwardable`` after PendingHTLCsForwardable), and for dave's hold of the retried path.
EXPIRED_SETTLE_S = 20.0
#: How long the payee of ``probes_story`` waits before it claims a payment (seconds): both probes end meanwhile.
CLAIM_S = 20.0


def claims_after(delay_s: float) -> Any:
    """A payee that claims each payment ``delay_s`` after it is claimable (ldk-sample's handler otherwise): a payment
    to it stays on its way, and a probe through it does not (a probe is failed back as soon as it arrives)."""
    import asyncio

    from .. import reference

    def handle(channel_manager: Any, *args: Any) -> Any:
        if isinstance(args[-1], Event.PaymentClaimable):
            async def later() -> None:
                await asyncio.sleep(delay_s)
                await reference.ldk_sample_handle_ldk_events(channel_manager, *args)

            reference._spawn(later())
            return None
        return reference.ldk_sample_handle_ldk_events(channel_manager, *args)

    return handle


def probes_story(stage: Stage) -> None:
    """A payment of yours on its way (its payee claims it only ``CLAIM_S`` later) while a channel of yours it does not
    use closes (ChannelClosed) and two probes end: one gets to its target (ProbeSuccessful), one fails on the way, at
    bob, who has nothing on his side towards carol (ProbeFailed). None of them ends the payment: it succeeds once
    claimed."""
    bob = stage.peer("bob")
    carol = stage.peer("carol", connect=False)
    dave = stage.peer("dave", connect=False, handler=claims_after(CLAIM_S))
    erin = stage.peer("erin")
    stage.open(stage.me, bob, 1_000_000)
    stage.open(bob, dave, 1_000_000)
    stage.open(carol, bob, 1_000_000)  # carol funded it: bob cannot forward towards carol
    stage.open(stage.me, erin, 1_000_000)
    stage.pay(stage.me, stage.invoice(dave, 50_000_000), settle_s=0)
    stage.me.channel_manager.close_channel(stage.channel_between(stage.me, erin).channel_id, erin.node_id)
    stage.settle()
    probe(stage, dave, 10_000_000)
    probe(stage, carol, 10_000_000)
    stage.settle(CLAIM_S + 2)


#: The calls that cut a peer's connection (the PeerManager's, and the ChannelManager's own side of it): nothing in
#: these workbooks asks your handler for one.
DISCONNECTING = ("peer_manager.disconnect_by_node_id", "peer_manager.disconnect_all_peers",
                 "peer_manager.socket_disconnected", "channel_manager.peer_disconnected")


def judge_left_to_ldk(played: Played) -> None:
    """What is LDK's, or the node operator's, your code left alone: no peer's connection was cut (the connection
    carries every channel with that peer), and your node's network graph lost no channel the rest of the network
    still knows, but those LDK itself dropped on a permanent failure a payment of yours reported (LDK applies a failed
    payment's ``network_update`` to the graph itself, and a probe's failure only to the scorer)."""
    cut = sorted((c for name in DISCONNECTING for c in played.recorder.calls_to(name) if c.error is None),
                 key=lambda c: c.order)
    if cut:
        event = cut[0].handling.event if cut[0].handling is not None else None
        arm = f", while it handled {type(event).__name__}" if event is not None else ""
        raise fail(played, event, "every peer's connection left to the PeerManager: no event here asks you to cut one",
                   f"your handler called {cut[0].name}{arm}", "the connection carries every channel with that peer: "
                   "what was on its way to it fails, and its payments through you stop.")
    graphs = [set(peer.network_graph.channels()) for peer in played.stage.peers.values()]
    lost = sorted(set.intersection(*graphs) - set(played.me.network_graph.channels()) - _dropped_by_ldk(played)
                  if graphs else ())
    if lost:
        raise fail(played, None, "your node's network graph as LDK keeps it: every channel the network still knows",
                   f"channel {lost[0]} is gone from it", "LDK keeps the graph itself: it applies a failed payment's "
                   "network_update to it, and a probe's failure only to the scorer (a probe fails by design). A "
                   "channel removed is not learnt again for a week, and payments that needed it find no route.")


def _dropped_by_ldk(played: Played) -> set[int]:
    """The channels LDK drops from your graph on the permanent failures your payments reported (the channel's, or
    every channel of a node that failed)."""
    dropped: set[int] = set()
    for event in played.events(Event.PaymentPathFailed):
        match getattr(event.failure, "network_update", None):
            case NetworkUpdate.ChannelFailure(short_channel_id=scid, is_permanent=True):
                dropped.add(scid)
            case NetworkUpdate.NodeFailure(node_id=node, is_permanent=True):
                dropped |= {scid for peer in played.stage.peers.values()
                            for scid, info in peer.network_graph.channels().items() if node in (info.node_one,
                                                                                                 info.node_two)}
    return dropped


def judge_completed(played: Played) -> None:
    """No payment to an invoice its payee issued was given up by your code while LDK could still complete it: LDK
    retries a failed path on its own, and an abandoned payment is retried no more (``abandon_payment`` "does not
    prevent a payment from succeeding", but the next path to fail ends it). One abandoned once it ended (its
    PaymentSent or PaymentFailed handed over) is left as it was: LDK no longer knows it."""
    ends = {}
    for handling in played.handled((Event.PaymentSent, Event.PaymentFailed)):
        ends.setdefault(handling.event.payment_id, handling)
    for call in played.recorder.calls_to("channel_manager.abandon_payment"):
        payment_id = call.arguments.get("payment_id")
        record, end = played.stage.sent.get(payment_id), ends.get(payment_id)
        if record is None or record.secret == FAKE_SECRET or (end is not None and end.order < call.order):
            continue
        arm = f" (while handling {type(call.handling.event).__name__})" if call.handling is not None else ""
        outcome = ("and it ended PaymentFailed" if isinstance(end.event, Event.PaymentFailed) else "and it still "
                   "succeeded (no path failed after: LDK would have retried it no more)") if end is not None else \
            "and it never completed"
        raise fail(played, end.event if end is not None else call.handling.event if call.handling else None,
                   "the payment to a real invoice left to LDK until it ends (PaymentSent or PaymentFailed): LDK "
                   "finds another path when one fails", f"you abandoned it while it was on its way{arm}, {outcome}",
                   "PaymentPathFailed is about one path, and LDK retries another on its own (the payment's Retry), "
                   "whatever else happens (a channel closing ends no payment): do not abandon_payment, only to give "
                   "up on purpose.")


#: The payment secret of the story's invoices that no payee issued.
FAKE_SECRET = PaymentSecret(b"\x44" * 32)


def pay_fake(stage: Stage, payee: Any, tag: bytes = b"\x33", settle_s: float = 2.0, payer: Any = None) -> PaymentId:
    """An invoice that looks like the payee's, for a hash they never issued: they refuse it, and it fails. Paid by
    your node, unless ``payer`` is another."""
    fake = Bolt11Invoice.create(
        network=Network.Regtest, node_secret_key=payee.keys_manager.get_node_secret_key(),
        payment_hash=PaymentHash(tag * 24 + stage.world.seed.to_bytes(8, "big")),  # (each world's its own)
        payment_secret=FAKE_SECRET,
        amount_msat=10_000_000, description="never issued", timestamp=stage.world.clock.unix_time(),
    )
    return stage.pay(payer or stage.me, fake, settle_s=settle_s)


def pay_again(stage: Stage, invoice: Bolt11Invoice) -> None:
    """The same invoice paid again with the same payment id, once LDK has forgotten the first: bob refuses it."""
    payment_hash, onion, params = payment_parameters_from_invoice(invoice)
    for _ in range(30):
        stage.settle(60)
        try:
            stage.me.channel_manager.send_payment(payment_hash, onion, PaymentId(bytes(payment_hash)), params,
                                                  Retry.Timeout(timedelta(seconds=10)))
        except RetryableSendFailure.DuplicatePayment:
            continue
        stage.settle()
        return


def rules(session: Session, result: CheckResult) -> None:
    from .forwarding import judge_calls_asked_for  # (forwarding builds on this workbook's rules)

    played = session.play("sending_payments", story)
    judge_completed(played)
    counts = judge_outbound_records(played)
    judge_calls_asked_for(played, EXTRA_CALLS)
    judge_left_to_ldk(played)
    probes = session.play("probes and a channel closing while a payment is on its way", probes_story)
    judge_completed(probes)
    judge_outbound_records(probes)
    judge_calls_asked_for(probes, EXTRA_CALLS)
    judge_left_to_ldk(probes)
    result.add("PaymentSent: Succeeded on disk, with the preimage, secret and amount", count(counts["sent"], "payment"))
    result.add("PaymentFailed: Failed on disk, secret and amount kept", count(counts["failed"], "payment"))
    result.add("PaymentFailed after success: still Succeeded", count(counts["after"], "payment"))
    result.add("PaymentPathFailed: the payment not marked failed (LDK retries)", count(counts["path"], "path failure"))


#: Why calls beyond those asked for are wrong, as workbook 4 says it.
EXTRA_CALLS = ("call it only from your PendingHTLCsForwardable arm, once for each: LDK asks whenever there is "
               "something to send on, a retry included (it queues a PendingHTLCsForwardable of its own for that), and "
               "a PaymentPathFailed needs nothing more of you. A call made in case sends on at once an HTLC LDK would "
               "have held back a moment, a forward of someone else's included.")


def judge_outbound_records(played: Played) -> dict[str, int]:
    counts = {"sent": 0, "failed": 0, "after": 0, "path": 0}
    succeeded: dict[Any, Any] = {}  # payment_id: its preimage
    ended: set[Any] = set()
    for handling in played.recorder.handlings:
        event = handling.event
        if replayed(handling):
            continue  # it asked for the event again: judged when it comes again
        match event:
            case Event.PaymentSent(payment_id=payment_id):
                _judge(played, handling, payment_id, HTLCStatus.Succeeded, event.payment_preimage)
                succeeded[payment_id] = event.payment_preimage
                counts["sent"] += 1
            case Event.PaymentFailed(payment_id=payment_id) if payment_id in succeeded:
                _judge(played, handling, payment_id, HTLCStatus.Succeeded, succeeded[payment_id], after_success=True)
                counts["after"] += 1
            case Event.PaymentFailed(payment_id=payment_id):
                _judge(played, handling, payment_id, HTLCStatus.Failed, None)
                counts["failed"] += 1
            case Event.PaymentPathFailed(payment_id=payment_id) if payment_id not in succeeded:
                _judge_not_failed(played, handling, payment_id)
                counts["path"] += 1
        if isinstance(event, (Event.PaymentSent, Event.PaymentFailed)):
            ended.add(event.payment_id)
        _judge_others_pending(played, handling, ended)  # (after any event: a channel closing ends no payment)
        _judge_succeeded_kept(played, handling, succeeded)  # (PaymentPathSuccessful follows PaymentSent, for one)
    _judge_final_records(played, succeeded)
    _judge_nothing_received(played)
    _judge_sent_only_by_you(played)
    judge_only_payments_sent(played)
    return counts


def _judge_nothing_received(played: Played) -> None:
    """``inbound_payments`` holds none of the payments your node sent."""
    sent = {PaymentHash(bytes(payment_id)) for payment_id in played.stage.sent}  # (sendpayment's id is the hash)
    strays = [k for k in final_records(played, "inbound_payments") if k in sent]
    if strays:
        raise fail(played, None, "inbound_payments holding only the payments your node received",
                   f"on disk, it also holds {strays[0]!r}, a payment you sent",
                   "a payment you send is recorded in outbound_payments, under its payment_id; inbound_payments is "
                   "for the payments your node receives.")


#: The ChannelManager's methods that send a payment.
_SENDS = ("send_payment", "send_spontaneous_payment", "send_payment_with_route", "pay_for_offer")


def judge_only_payments_sent(played: Played) -> None:
    """``outbound_payments`` holds only the payments your node sent (sendpayment's entries): a probe is none."""
    strays = [k for k in final_records(played, "outbound_payments") if k not in played.stage.sent]
    if not strays:
        return
    event = next((e for e in played.events() if getattr(e, "payment_id", None) == strays[0]), None)
    probe = isinstance(event, (Event.ProbeSuccessful, Event.ProbeFailed))
    raise fail(played, event, "outbound_payments holding only the payments you sent",
               f"on disk, it also holds {strays[0]!r}" + (", a probe's id" if probe else ", a payment you never sent"),
               "a probe is no payment: ProbeSuccessful and ProbeFailed only teach the scorer which channels have "
               "liquidity (LDK's background processor has already given them to it). Record nothing for them."
               if probe else "update the entry sendpayment made for the event's payment_id; add none of your own.")


def _judge_sent_only_by_you(played: Played) -> None:
    """Your handler sends no payment of its own: LDK retries a payment itself, under its own payment_id."""
    for name in _SENDS:
        for call in played.recorder.calls_to(f"channel_manager.{name}"):
            raise fail(played, call.handling.event if call.handling else None,
                       "no payment sent by your handler: LDK retries a failed path itself (the payment's Retry)",
                       f"your code called channel_manager.{name}", "sending again under a new payment_id is a second "
                       "payment: both may arrive, and the payee is paid twice. Leave retries to LDK, and only record "
                       "how a payment ends.")


def _judge_final_records(played: Played, succeeded: dict[Any, Any]) -> None:
    """In the end, on disk, every payment that ended is recorded as it ended (a later write may not lose it)."""
    records = final_records(played, "outbound_payments")
    ends = {e.payment_id: e for e in played.events((Event.PaymentSent, Event.PaymentFailed))}  # type: ignore[arg-type]
    for payment_id, event in ends.items():
        if payment_id not in played.stage.sent:
            continue  # (not sent through the story's sendpayment: no entry was made for it)
        status = HTLCStatus.Succeeded if payment_id in succeeded else HTLCStatus.Failed
        record = records.get(payment_id)
        if record is None or record.status is not status:
            raise fail(played, event, f"every payment that ended still recorded on disk at the end: {status.name}",
                       "its record is gone" if record is None else f"it is now {record!r}",
                       "update the entry of the event's payment_id, and only it: never remove entries, nor clear or "
                       "rebuild the whole map, as each write stores every payment's record.")


def _expected(played: Played, payment_id: Any) -> Any:
    """What ldk-sample's sendpayment recorded for this payment before sending it."""
    return played.stage.sent.get(payment_id)


def _ends_for_another_reason(event: Any) -> bool:
    """A PaymentFailed whose reason is not the recipient's refusal (LDK 0.1: RetriesExhausted, RouteNotFound, ...)."""
    reason = getattr(event, "reason", None)
    return isinstance(event, Event.PaymentFailed) and reason is not PaymentFailureReason.RecipientRejected


def _whatever_the_reason(event: Any) -> str:
    reason = event.reason.value if event.reason is not None else "none given"
    return (f"PaymentFailed ends the payment whatever its reason (here {reason}): LDK tries it no more, and no "
            "other event about it will come: ")


def _judge(played: Played, handling: Handling, payment_id: Any, status: HTLCStatus, preimage: Any,
           after_success: bool = False) -> None:
    event = handling.event
    record = stored_record(played, handling, "outbound_payments", payment_id, _whatever_the_reason(event)
                           + "mark it Failed and write outbound_payments before you return."
                           if _ends_for_another_reason(event) else "")
    sent = _expected(played, payment_id)
    name = f"HTLCStatus.{status.name}"
    expected = f"outbound_payments[payment_id] {name}" + (" with the preimage" if preimage else "") + " on disk"
    if after_success:
        expected = "the entry left Succeeded, with its preimage: this payment already succeeded"
    if record is None:
        wrote = any(c.arguments.get("key") == "outbound_payments"
                    for c in played.recorder.calls_for(handling, "fs_store.write"))
        raise fail(played, event, expected, "no entry for this payment_id on disk",
                   "outbound_payments holds this payment, but the bytes you wrote under 'outbound_payments' do not: "
                   "write outbound_payments.encode(), the map you updated (not another map's bytes, nor a copy made "
                   "before)." if wrote and payment_id in played.me.outbound_payments.payments else
                   "update the entry sendpayment made (look it up by the event's payment_id); never remove it."
                   if wrote else _whatever_the_reason(event) + "mark it Failed and write outbound_payments before "
                   "you return." if _ends_for_another_reason(event) else "you did not write outbound_payments while "
                   "handling this event: LDK forgets an event once your handler returns, so call fs_store.write(\"\", "
                   "\"\", \"outbound_payments\", outbound_payments.encode()) before you return.")
    if record.status is not status:
        hint = ("a PaymentFailed after a PaymentSent changes nothing: the payment succeeded, and the preimage "
                "proves it. Only mark it Failed if it has not succeeded." if after_success else
                "the event says how the payment ended: record exactly that.")
        wrote = any(c.arguments.get("key") == "outbound_payments" and c.during
                    for c in played.recorder.calls_for(handling, "fs_store.write"))
        in_memory = played.me.outbound_payments.payments.get(payment_id)  # (as the story left it)
        if record.status is HTLCStatus.Pending and wrote and getattr(in_memory, "status", None) is status:
            hint = ("the record was written before it was updated: change the entry first, then write "
                    "outbound_payments.encode(), before you return.")
        elif record.status is HTLCStatus.Pending and _ends_for_another_reason(event):
            hint = _whatever_the_reason(event) + "mark it Failed, as for any other reason."
        elif record.status is HTLCStatus.Pending and wrote:
            hint += (" Change the entry outbound_payments holds under the event's payment_id (the key sendpayment "
                     "used, not its payment_hash), that entry itself (not a copy of it, which "
                     "outbound_payments.encode() never sees), then write.")
        raise fail(played, event, expected, f"on disk: {record!r}", hint)
    if preimage is not None and record.preimage != preimage:
        raise fail(played, event, expected, f"on disk: {record!r}",
                   "the preimage is your receipt, your proof of payment: PaymentFailed carries none, so leave the "
                   "entry as PaymentSent left it." if after_success else
                   "the preimage is your receipt, your proof of payment: keep event.payment_preimage.")
    if sent is not None and (record.secret != sent.secret or record.amt_msat != sent.amt_msat):
        hint = ("update the fields of the entry you have (status, preimage); replacing it with a new PaymentInfo "
                "loses what sendpayment recorded.")
        fee = getattr(event, "fee_paid_msat", None)
        if fee and record.secret == sent.secret and record.amt_msat == sent.amt_msat + fee:  # (the fee added to it)
            hint = ("amt_msat stays what sendpayment recorded, the amount the payee asked for; the event's "
                    "fee_paid_msat, what the route cost on top of it, is no part of it. Change only status and "
                    "preimage.")
        raise fail(played, event, f"{expected}, its secret and amount kept ({sent.amt_msat:,} msat)",
                   f"on disk: {record!r}", hint)


def _judge_others_pending(played: Played, handling: Handling, ended: set[Any]) -> None:
    """The payments still on their way are still Pending on disk: an event is about its own payment_id only."""
    if handling.stored.get("outbound_payments") is None:
        return  # nothing written yet (judged where a payment's own event must have written it)
    for payment_id in played.stage.sent:
        if payment_id in ended:
            continue
        record = record_on_disk(played, handling, "outbound_payments", payment_id)
        if record is not None and record.status is not HTLCStatus.Pending:
            path_failed = _made_by_its_path_failure(played, payment_id, record.status)
            if path_failed is not None:  # (written by a task or thread: seen at a later hand-over)
                _judge_not_failed(played, played.recorder.handling_of(path_failed), payment_id, record=record,
                                  late=True)
            about_payments = isinstance(handling.event, (Event.PaymentSent, Event.PaymentFailed,
                                                         Event.PaymentPathFailed))
            about_a_probe = isinstance(handling.event, (Event.ProbeSuccessful, Event.ProbeFailed))
            its_path_failed = record.status is HTLCStatus.Failed and any(
                isinstance(h.event, Event.PaymentPathFailed) and h.event.payment_id == payment_id
                and h.order < handling.order for h in played.recorder.handlings)
            raise fail(played, handling.event, f"the payment {payment_id!r}, still on its way, left Pending on disk",
                       f"on disk: {record!r}", (f"this event's write stored {payment_id!r} as your code had left it "
                       "in memory, maybe since a PaymentPathFailed of its own: one path failing is not the end of a "
                       "payment (LDK retries another), so leave its entry Pending until PaymentFailed. And "
                       if its_path_failed else "") + "an event is about one payment: look its entry up by the "
                       "event's payment_id, and leave the others as they are." if about_payments else
                       f"a probe is no payment, and {type(handling.event).__name__} ends none of yours: it only "
                       "teaches the scorer which channels have liquidity (LDK's background processor has already "
                       "given it to it). Record nothing for it; only PaymentSent and PaymentFailed end a payment."
                       if about_a_probe else
                       "only PaymentSent and PaymentFailed end a payment: LDK may still complete or fail a payment "
                       "whose channel closed (its HTLC is settled on chain), and tells you with one of them.")


def _judge_succeeded_kept(played: Played, handling: Handling, succeeded: dict[Any, Any]) -> None:
    """A payment that succeeded stays Succeeded on disk, with its preimage, whatever event comes after it."""
    if handling.stored.get("outbound_payments") is None:
        return
    for payment_id, preimage in succeeded.items():
        record = record_on_disk(played, handling, "outbound_payments", payment_id)
        if payment_id not in played.stage.sent or record is None or (record.status is HTLCStatus.Succeeded
                                                                     and record.preimage == preimage):
            continue  # (no entry: judged at the end, which says its record is gone)
        own = getattr(handling.event, "payment_id", None) == payment_id
        raise fail(played, handling.event, f"the payment {payment_id!r}, which succeeded, still Succeeded on disk "
                   "with its preimage", f"on disk after this event: {record!r}",
                   f"PaymentSent said how it ended, and {type(handling.event).__name__} changes nothing of it (it "
                   "carries no preimage): leave the entry as PaymentSent left it, the preimage your receipt."
                   if own else "an event is about one payment: look its entry up by the event's payment_id, and "
                   "leave the others as they are.")


def _made_by_its_path_failure(played: Played, payment_id: Any, status: HTLCStatus) -> Any:
    """The PaymentPathFailed of this payment under whose hand-over (a task or thread it started, after it returned)
    the first write giving the payment ``status`` was made; None if that write came from elsewhere."""
    from ..payment_storage import OutboundPaymentInfoStorage

    for call in played.recorder.calls_to("fs_store.write"):
        if call.arguments.get("key") != "outbound_payments" or call.error is not None:
            continue
        try:
            record = OutboundPaymentInfoStorage.decode(bytes(call.arguments.get("buf"))).payments.get(payment_id)
        except Exception:
            continue
        if record is not None and record.status is status:
            event = call.handling.event if call.handling is not None else None
            ours = isinstance(event, Event.PaymentPathFailed) and event.payment_id == payment_id and not call.during
            return event if ours else None
    return None


def _judge_not_failed(played: Played, handling: Handling, payment_id: Any, *, record: Any = None,
                      late: bool = False) -> None:
    """``late``: ``record`` was written by a task or thread this hand-over started, after the handler returned."""
    if record is None and handling.stored.get("outbound_payments") is None:
        return
    record = record if late else record_on_disk(played, handling, "outbound_payments", payment_id)
    on_disk = f"on disk: {record!r}" + (", written after your handler returned (from a task or thread of yours)"
                                        if late else "")
    if record is not None and record.status is HTLCStatus.Failed:
        if handling.event.payment_failed_permanently:  # (LDK gives up, and says so with the PaymentFailed it queues)
            raise fail(played, handling.event, "the payment still Pending: PaymentFailed, which follows, ends it",
                       on_disk, "payment_failed_permanently means LDK retries no more: it abandons the "
                       "payment and queues PaymentFailed, and that event is where it is marked Failed.")
        raise fail(played, handling.event, "the payment still Pending: one path failed, and LDK retries another",
                   on_disk, "PaymentPathFailed is about one path; LDK's background processor has "
                   "already given it to the scorer. Only PaymentFailed ends a payment.")
