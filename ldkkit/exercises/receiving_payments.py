"""Workbook 3: receiving payments. Claim what you can, fail back what you cannot, and keep the record.

Rules, judged from the payer's side and from ``inbound_payments`` as stored on disk:
- a ``PaymentClaimable`` with a preimage is claimed (the payer sees it succeed);
- one without a preimage is failed back with ``fail_htlc_backwards`` (the payer sees it fail long before the claim
  deadline);
- one carrying a custom TLV of an even type the node does not know is refused (``claim_funds`` fails it back itself;
  ``claim_funds_with_known_custom_tlvs`` would take it);
- an answer may be put off (LDK allows it until the claim deadline): a task, or a thread, that answers later is
  waited for, up to ``PLAY_ON_S`` after the story;
- after ``PaymentClaimed``, the record on disk is ``Succeeded``, with the preimage, the invoice's
  secret (none for keysend) and the amount received (the whole of a payment made in parts), written before the
  handler returned;
- in the end, no payment is ``Succeeded`` on disk that LDK never claimed (``PaymentClaimable`` is no success).
"""

from __future__ import annotations

import math
from typing import Optional

from ..events import Event, PaymentFailureReason, PaymentPurpose
from ..ln.outbound_payment import RecipientOnionFields, Retry
from ..payment_storage import HTLCStatus
from ..routing.router import PaymentParameters, RouteParameters
from ..scenarios import Stage
from ..types import PaymentId, PaymentPreimage
from .common import (
    PLAY_ON_S,
    CheckResult,
    Handling,
    Played,
    Session,
    closed_a_channel,
    fail,
    held_back,
    unawaited_hint,
)
from .recorder import Call
from .records import final_records, record_on_disk, stored_record

#: A hash whose preimage your node never had: a payment to it cannot be claimed.
UNKNOWN_PREIMAGE = PaymentPreimage(b"\x5a" * 32)


#: An invoice issued and never paid: its entry in inbound_payments stays Pending, whatever else is claimed.
UNPAID_MSAT = 70_000_000
#: An invoice paid with more than it asks (LDK's payee takes an overpayment): claimed all the same.
OVERPAID_MSAT, OVERPAID_BY_MSAT = 40_000_000, 1_000_000


#: An invoice paid in two parts, over two channels: one payment, two HTLCs, its events about the whole.
IN_PARTS_MSAT = 60_000_000


def story(stage: Stage) -> None:
    bob = stage.peer("bob")
    stage.open(bob, stage.me, 6_000_000)
    stage.open(bob, stage.me, 6_000_000)  # (a second channel: the payment in parts takes both)
    paid = stage.invoice(stage.me, 50_000_000)
    stage.invoice(stage.me, UNPAID_MSAT)
    stage.pay(bob, paid)
    stage.pay_in_parts(bob, stage.invoice(stage.me, IN_PARTS_MSAT), PaymentId(b"\x03" * 32))
    stage.pay(bob, stage.invoice(stage.me, OVERPAID_MSAT), amount_msat=OVERPAID_MSAT + OVERPAID_BY_MSAT)
    pay_unknown_hash(stage, bob, 30_000_000)  # (before the keysend: its record is written after, memory and all)
    stage.keysend(bob, stage.me, 20_000_000)
    # Custom TLVs: a chat message (even) with its time (odd, of a higher type) on a keysend; a note (odd) on another,
    # claimed all the same; and an invoice paid with the note and a loyalty card (even, of another type), the odd one
    # first (TLVs come sorted by type): an even TLV of any type anywhere among them makes the payment refused.
    stage.keysend(bob, stage.me, 15_000_000, custom_tlvs=[CHAT_MESSAGE, CHAT_TIME])
    stage.keysend(bob, stage.me, 12_000_000, custom_tlvs=[PAYER_NOTE])
    stage.pay(bob, stage.invoice(stage.me, TLVS_MSAT), custom_tlvs=[PAYER_NOTE, LOYALTY_CARD])


#: A chat app's message, in a custom TLV of an even type (the type Sphinx chat and Whatsat used): even, it asks to be
#: understood ("it's OK to be odd"), and your node does not know it, so a payment carrying it may not be claimed.
CHAT_MESSAGE = (34_349_334, b"thanks for the coffee")
#: When the message was written, in the odd TLV beside it (as Whatsat sends it): the highest type, so the last.
CHAT_TIME = (34_349_343, (1_700_000_000_000_000_000).to_bytes(8, "big"))
#: A note of the payer's, in a custom TLV of an odd type: yours to ignore, and the payment is claimed as any other.
PAYER_NOTE = (65_537, b"table 4")
#: A shop's loyalty card, in a custom TLV of another even type: your node does not know it either.
LOYALTY_CARD = (65_538, b"card 0077")
#: An invoice paid with the note and the card.
TLVS_MSAT = 35_000_000


def unknown_even_tlvs(event: Event.PaymentClaimable) -> list[int]:
    """The even types of the custom TLVs the payment carries (none of which your node knows)."""
    fields = event.onion_fields
    return [t for t, _ in fields.custom_tlvs() if t % 2 == 0] if fields is not None else []


def pay_unknown_hash(stage: Stage, payer: object, amount_msat: int) -> None:
    unknown = UNKNOWN_PREIMAGE.payment_hash()
    secret = stage.me.channel_manager.create_inbound_payment_for_hash(unknown, None, 3600)
    params = RouteParameters.from_payment_params_and_value(PaymentParameters.from_node_id(stage.me.node_id, 42),
                                                           amount_msat)
    payer.channel_manager.send_payment(unknown, RecipientOnionFields.secret_only(secret),  # type: ignore[attr-defined]
                                       PaymentId(bytes(unknown)), params, Retry.Attempts(0))
    stage.settle()


def rules(session: Session, result: CheckResult) -> None:
    played = session.play("receiving_payments", story)
    claimables = played.events(Event.PaymentClaimable)
    if len(claimables) < 8:
        raise fail(played, None, "eight PaymentClaimable events", f"{len(claimables)}",
                   held_back(played) or "HTLCs become PaymentClaimable only once process_pending_htlc_forwards has "
                   "run (the PendingHTLCsForwardable arm given in the workbook).")
    judge_claims(played)
    judge_claimed_records(played)
    judge_unclaimed_records(played)
    claimed = [e for e in claimables if e.purpose.preimage() is not None and not unknown_even_tlvs(e)]
    result.add("claimed with the preimage from purpose", f"{len(claimed)} payments, the payer paid")
    result.add("failed back what cannot be claimed", "1 payment, the payer refunded at once")
    result.add("refused a payment with an unknown even TLV", "2 payments, the payer refunded")
    result.add("PaymentClaimed stored as Succeeded on disk", "preimage, secret and amount, before returning")


#: LDK's two ways to claim (with the custom TLVs the handler checked, or without any), and its two ways to fail
#: back (``fail_htlc_backwards`` is ``fail_htlc_backwards_with_reason`` with LDK's default FailureCode).
_CLAIMS = {"claim_funds_with_known_custom_tlvs": "claim_funds",
           "fail_htlc_backwards_with_reason": "fail_htlc_backwards"}
_OUTCOMES = {"waiting": "still waits for an answer", "failed": "failed: it was refunded"}


def _payer_outcome(played: Played, payment_hash: object, before: float = math.inf) -> str:
    """How the payment of this hash ended for its payer: paid if any payment of it was (a second payment of the hash,
    failed back, ends no first one, whichever the payer heard of first), else failed, else still waiting; of those
    the payer heard of ``before`` (simulation seconds) only, if given."""
    ends = (Event.PaymentSent, Event.PaymentFailed)
    seen = {type(e) for peer in played.stage.peers.values() for at, _, e in peer.event_log
            if isinstance(e, ends) and e.payment_hash == payment_hash and at < before}
    return "paid" if Event.PaymentSent in seen else "failed" if Event.PaymentFailed in seen else "waiting"


def _answers(played: Played, handling: Handling) -> list[Call]:
    """The calls that answered this PaymentClaimable: those naming its payment (a claim with its preimage, a fail-back
    of its hash) whoever made them (a task, a worker thread, an executor), after it and before the next
    PaymentClaimable of the same hash; and those made while handling it that name no payment handed over (a claim with
    a wrong preimage). A call naming another payment answers that one, whoever it was made for: a worker taking work
    already queued goes on working for the event that last woke it. A call made in a hand-over your handler then asked
    for again (``ReplayEvent``) answers it all the same."""
    answers = []
    for call in played.recorder.calls:
        named = _answering(played, call)
        if named is handling or named is None and call.handling is not None and call.handling.event is handling.event:
            answers.append(call)
    return answers


def _answering(played: Played, call: Call) -> Optional[Handling]:
    """The hand-over that counts of the PaymentClaimable a claim or fail-back answers: the one handed over last, before
    the call, of the payment it names."""
    name = call.name.split(".")[-1]
    if name in ("claim_funds", "claim_funds_with_known_custom_tlvs"):
        preimage = call.arguments.get("payment_preimage")
        payment_hash = preimage.payment_hash() if isinstance(preimage, PaymentPreimage) else None
    elif name.startswith("fail_htlc_backwards"):
        payment_hash = call.arguments.get("payment_hash")
    else:
        return None
    claimables = [h for h in played.recorder.handlings if isinstance(h.event, Event.PaymentClaimable)
                  and h.event.payment_hash == payment_hash and h.order < call.order]
    return played.recorder.handling_of(claimables[-1].event) if claimables else None


def _unpaid_entry_hint(played: Played, event: Event.PaymentClaimable) -> str:
    """The hint for a payment failed back that had a preimage. A handler that claims others, and fails back one whose
    hash has an entry in inbound_payments that is not Succeeded (the invoice's own, Pending), took that entry for a
    payment made before."""
    odd = [t for t, _ in event.onion_fields.custom_tlvs()] if event.onion_fields is not None else []
    if odd:  # (all odd: a payment with an even one is judged apart)
        return (f"the payment carries a custom TLV of odd type {odd[0]:,}: \"it's OK to be odd\" (BOLT 1), so a TLV "
                "your node does not know that is odd is yours to ignore. Refuse a payment only for an even one, "
                "and claim this one as any other.")
    issued = played.stage.issued.get(event.payment_hash)
    if issued is not None and issued.amt_msat is not None and event.amount_msat > issued.amt_msat:
        return (f"the payer paid {event.amount_msat:,} msat for an invoice of {issued.amt_msat:,}: LDK takes an "
                "overpayment (PaymentClaimable's amount_msat may be greater than the invoice's), and so do you. A "
                "payment you can claim is claimed, whatever its amount.")
    with played.me.inbound_payments.lock() as payments:
        entry = payments.get(event.payment_hash)
    claims_others = any(h.event.payment_hash != event.payment_hash and h.event.purpose.preimage() is not None
                        and any(_CLAIMS.get(name, name) == "claim_funds"
                                for name in (c.name.split(".")[-1] for c in _answers(played, h)))
                        for h in played.handled(Event.PaymentClaimable))
    if entry is None and isinstance(event.purpose, PaymentPurpose.SpontaneousPayment) and claims_others:
        return ("this is a keysend: the payer chose its preimage and sent it in the onion, so no invoice of yours, and "
                "no entry in inbound_payments, stands behind it. Its preimage is in purpose: claim it all the same.")
    if entry is not None and entry.status is not HTLCStatus.Succeeded and claims_others:
        return ("this payment has a preimage and was never paid before: claim it. inbound_payments holds an "
                "entry for its hash, but not a Succeeded one: the invoice made it, Pending and with no preimage, when "
                "it was issued (the preimage is in purpose.preimage()). Only an entry already Succeeded means the "
                "invoice was paid, and a second payment is failed back.")
    return "the preimage is in the event's purpose: purpose.preimage() works for invoices and keysend."


def _still_waiting(played: Played, event: Event.PaymentClaimable, done: str) -> str:
    """What happened to a payment a task of yours was still working on when the check stopped waiting; "" if none."""
    if not any(e is event for e in played.recorder.waiting(Event.PaymentClaimable)):
        return ""
    return (f"a task or thread your handler started for it had still not {done} when the check stopped waiting, "
            f"{PLAY_ON_S} s after the story ended (the payer's HTLCs were held all that time)")


#: The hint for a payment a task of yours never answered while the check waited.
_PUT_OFF = (f"LDK lets you answer until the payment's claim_deadline, and the check waits {PLAY_ON_S} s after the "
            "story for an answer put off: yours never came. Answer as you handle the event, or soon after.")


def judge_claims(played: Played, *, refuse_repeats: bool = False) -> None:
    """Each PaymentClaimable ends as it should, seen from the payer."""
    settled: set[object] = set()
    for handling in played.handled(Event.PaymentClaimable):
        event = handling.event
        preimage = event.purpose.preimage()
        outcome = _payer_outcome(played, event.payment_hash)
        repeat = refuse_repeats and event.payment_hash in settled
        names = [c.name.split(".")[-1] for c in _answers(played, handling)]
        calls = [_CLAIMS.get(name, name) for name in names]
        if unknown_even_tlvs(event):  # (the hash paid again later without it: that payment's outcome is its own)
            later = [h.started for h in played.handled(Event.PaymentClaimable)
                     if h.event.payment_hash == event.payment_hash and h.started > handling.started]
            _judge_refused_for_its_tlvs(played, event, names, _payer_outcome(played, event.payment_hash,
                                                                              min(later, default=math.inf)))
            _judge_failed_for_good(played, event, blames_nothing=False)  # (LDK's own code for it blames the channel)
            _judge_not_yet_succeeded(played, handling)
            continue
        if repeat and "claim_funds" in calls:
            keysend = isinstance(event.purpose, PaymentPurpose.SpontaneousPayment)
            raise fail(played, event, "fail_htlc_backwards(payment_hash): " + (
                           "this payment_hash is already paid (a keysend made again with the same preimage)" if keysend
                           else "this invoice is already paid"),
                       "you claimed it a second time", "look the payment_hash up in inbound_payments first: if it "
                       "is already Succeeded, fail the second payment back instead of claiming it, whatever its "
                       "amount and whatever its purpose (an invoice's or a keysend): a payment_hash is paid once.")
        if preimage is not None and not repeat and "claim_funds" not in calls:
            waiting = "fail_htlc_backwards" not in calls and _still_waiting(played, event, "claimed it")
            raise fail(played, event, "claim_funds(purpose.preimage())",
                       "you failed it back" if "fail_htlc_backwards" in calls else waiting or "it was never claimed",
                       _unpaid_entry_hint(played, event) if "fail_htlc_backwards" in calls else _PUT_OFF if waiting
                       else not calls and unawaited_hint(played, event)
                       or "the preimage is in the event's purpose: purpose.preimage() works for invoices and "
                       "keysend.")
        if preimage is not None and not repeat and outcome != "paid":
            raise fail(played, event, "the payment claimed: the payer paid, and PaymentClaimed followed",
                       f"you called claim_funds, but for the payer the payment {_OUTCOMES[outcome]}",
                       "a payment you can claim is claimed and never failed back: call only claim_funds, with "
                       "purpose.preimage() (the preimage whose SHA-256 is the payment_hash)." if "fail_htlc_backwards"
                       in calls else "claim_funds claims only with this payment's own preimage, purpose.preimage() "
                       "(its SHA-256 is the payment_hash): with any other it finds nothing to claim.")
        if preimage is None and "fail_htlc_backwards" not in calls:
            waiting = "claim_funds" not in calls and _still_waiting(played, event, "failed it back")
            raise fail(played, event, "fail_htlc_backwards(payment_hash): there is no preimage to claim with",
                       "you tried to claim it" if "claim_funds" in calls else waiting or "it was left unclaimed, and "
                       "the payer waits until the claim deadline", _PUT_OFF if waiting else not calls
                       and unawaited_hint(played, event) or "when "
                       "purpose.preimage() is None you cannot claim; channel_manager.fail_htlc_backwards(payment_hash) "
                       "gives the payer their money back now.")
        if preimage is None and outcome != "failed":
            closed = closed_a_channel(played)
            raise fail(played, event, "the payer refunded at once", f"the payment is {outcome} for the payer",
                       f"{closed}: a fail-back goes back over the channel the payment came in on, and once that "
                       "channel is closed it waits for the chain instead (the payer is refunded only when the HTLC "
                       "times out). Close a channel only when the workbook asks you to." if closed else
                       "pass the event's payment_hash to fail_htlc_backwards.")
        if preimage is None or repeat:  # (a repeat failed back: refused for good too, not to be tried again)
            _judge_failed_for_good(played, event)
        if preimage is not None and not repeat:
            settled.add(event.payment_hash)
        _judge_not_yet_succeeded(played, handling)
    _judge_no_success_written_early(played)


def _judge_refused_for_its_tlvs(played: Played, event: Event.PaymentClaimable, names: list[str], outcome: str) -> None:
    """A payment with a custom TLV of an even type your node does not know is refused: ``claim_funds`` fails it back
    itself (LDK: "it will fail the payment if it has custom TLVs with even type numbers"), as does a fail-back;
    ``claim_funds_with_known_custom_tlvs`` takes it, agreeing to what it asks without knowing what that is."""
    even = ", ".join(f"{t:,}" for t in unknown_even_tlvs(event))
    known = "claim_funds_with_known_custom_tlvs" in names
    if known or outcome != "failed":
        raise fail(played, event, f"the payment refused: it carries a custom TLV of even type {even} "
                   "(onion_fields.custom_tlvs()), which your node does not understand",
                   "you claimed it with claim_funds_with_known_custom_tlvs" if known
                   else f"for the payer the payment {_OUTCOMES.get(outcome, 'was paid')}",
                   "your node understands no custom TLV (workbook 3 says so), and an even one says \"understand me, "
                   "or refuse me\" (BOLT 1: it's OK to be odd): claim_funds refuses such a payment itself. "
                   "claim_funds_with_known_custom_tlvs is for a node that has read every even TLV and knows what it "
                   "agrees to." if known else
                   "call claim_funds (it fails back a payment whose even TLVs it does not know) or "
                   "fail_htlc_backwards, as for any payment you answer.")


def _judge_failed_for_good(played: Played, event: Event.PaymentClaimable, blames_nothing: bool = True) -> None:
    """A payment failed back is failed for good: the payer is told you reject it (a failure code with BOLT 4's PERM
    bit, as ``fail_htlc_backwards`` sends), and does not try it again over another path. Unless ``blames_nothing`` is
    False, the code blames no node or channel either: ``incorrect_or_unknown_payment_details`` (BOLT 4's code for a
    payment hash you do not know) leaves the payer's graph as it was, where a node or channel failure code has it
    drop your node or channel (LDK's ``NetworkUpdate``)."""
    seen = [e for peer in played.stage.peers.values() for e in peer.events_seen]
    reasons = [e.reason for e in seen if isinstance(e, Event.PaymentFailed) and e.payment_hash == event.payment_hash]
    if reasons and reasons[0] is not PaymentFailureReason.RecipientRejected:
        ended = getattr(reasons[0], "name", reasons[0])
        raise fail(played, event, "the payment failed back for good: the payer told that you reject it (its "
                   "PaymentFailed reason RecipientRejected)", f"the payer's payment ended {ended}: told of a "
                   "failure that may pass, it tried the payment again until it ran out of ways",
                   "fail_htlc_backwards(payment_hash) tells the payer, for good, that you know no such payment "
                   "(incorrect_or_unknown_payment_details). A temporary failure code (TemporaryNodeFailure) has it "
                   "retry a payment that can never be claimed.")
    yours = {played.me.node_id, *(scid for c in played.me.channel_manager.channels.values()
                                  for scid in (c.short_channel_id, c.outbound_scid_alias) if scid is not None)}
    updates = [getattr(e.failure, "network_update", None) for e in seen
               if isinstance(e, Event.PaymentPathFailed) and e.payment_hash == event.payment_hash]
    blamed = next((u for u in updates if u is not None and (getattr(u, "node_id", None) in yours
                                                            or getattr(u, "short_channel_id", None) in yours)),
                  None)  # (a failure further up the path, met before the payment reached you, is none of yours)
    if blames_nothing and blamed is not None:
        raise fail(played, event, "the payment failed back as one you do not know (incorrect_or_unknown_payment_"
                   "details), which blames nothing on its path", f"the payer was told to blame the path: {blamed!r}",
                   "fail_htlc_backwards(payment_hash) sends BOLT 4's code for a payment you do not know; a node or "
                   "channel failure code has the payer's LDK drop your node or channel from its graph, and route "
                   "around you from then on.")


def _judge_not_yet_succeeded(played: Played, handling: Handling) -> None:
    """A payment is not Succeeded on disk after its PaymentClaimable, unless a PaymentClaimed came before."""
    event = handling.event
    record = record_on_disk(played, handling, "inbound_payments", event.payment_hash)
    claimed_before = any(h.event.payment_hash == event.payment_hash and h.order < handling.order
                         for h in played.handled(Event.PaymentClaimed))
    if record is not None and record.status is HTLCStatus.Succeeded and not claimed_before:
        raise fail(played, event, "the payment not Succeeded on disk yet: PaymentClaimable says it can be claimed, "
                   "not that it was", f"on disk after it: {record!r}",
                   "record the payment when PaymentClaimed comes: only that event says the claim went through "
                   "(LDK: wait for PaymentClaimed to be sure). Until then it is not yours.")


def _judge_no_success_written_early(played: Played) -> None:
    """No write of inbound_payments, whoever made it (a task, a thread), says Succeeded for a payment that waits to be
    claimed: one whose PaymentClaimable was handed over, and its PaymentClaimed not yet."""
    from ..payment_storage import InboundPaymentInfoStorage

    for call in played.recorder.calls_to("fs_store.write"):
        if call.arguments.get("key") != "inbound_payments" or call.error is not None:
            continue
        try:
            written = InboundPaymentInfoStorage.decode(bytes(call.arguments.get("buf"))).payments
        except Exception:
            continue  # (unreadable bytes: judged where they are read back)
        for handling in played.handled(Event.PaymentClaimable):
            event = handling.event
            record = written.get(event.payment_hash)
            if (handling.order > call.order or record is None or record.status is not HTLCStatus.Succeeded
                    or any(h.event.payment_hash == event.payment_hash and h.order < call.order
                           for h in played.recorder.handlings if isinstance(h.event, Event.PaymentClaimed))):
                continue
            raise fail(played, event, "the payment not Succeeded on disk yet: PaymentClaimable says it can be "
                       "claimed, not that it was", f"you wrote {record!r} before PaymentClaimed came"
                       + ("" if call.during else " (from a task or thread of yours)"),
                       "record the payment when PaymentClaimed comes: only that event says the claim went through "
                       "(LDK: wait for PaymentClaimed to be sure). Until then it is not yours.")


def judge_claimed_records(played: Played, *, handlings: list | None = None) -> None:
    """After each PaymentClaimed, the record on disk says what was received."""
    for handling in handlings or played.handled(Event.PaymentClaimed):
        event = handling.event
        record = stored_record(played, handling, "inbound_payments", event.payment_hash)
        invoiced = isinstance(event.purpose, PaymentPurpose.Bolt11InvoicePayment)
        secret = event.purpose.payment_secret if invoiced else None
        expected = (f"inbound_payments[payment_hash] = PaymentInfo(preimage, {'secret' if secret else 'None'}, "
                    f"HTLCStatus.Succeeded, {event.amount_msat:,}) on disk")
        problem = _record_problem(record, event.purpose.preimage(), secret, _amounts(played, event))
        if problem:
            wrote = any(c.arguments.get("key") == "inbound_payments" and c.during
                        for c in played.recorder.calls_for(handling, "fs_store.write"))
            raise fail(played, event, expected, f"on disk: {record!r} ({problem})",
                       _record_hint(problem, invoiced, record, event) if wrote else _NOT_WRITTEN)


def judge_unclaimed_records(played: Played) -> None:
    """In the end, on disk, every payment claimed is still ``Succeeded`` with its amount (a later write may not
    lose it), no payment received is kept among those sent, no payment is ``Succeeded`` that was never claimed:
    only ``PaymentClaimed`` says so, and an invoice of yours no payment came for is still recorded as it was issued
    (Pending: no event was about it)."""
    claimed = {e.payment_hash for e in played.events(Event.PaymentClaimed)}
    records = final_records(played, "inbound_payments")
    for event in {e.payment_hash: e for e in played.events(Event.PaymentClaimed)}.values():
        record = records.get(event.payment_hash)
        if record is None or record.status is not HTLCStatus.Succeeded or record.amt_msat not in _amounts(played,
                                                                                                           event):
            paid_again = sum(e.payment_hash == event.payment_hash for e in played.events(Event.PaymentClaimable)) > 1
            raise fail(played, event, "every payment received still recorded on disk at the end: Succeeded, "
                       f"{event.amount_msat:,} msat", "its record is gone" if record is None else f"it is now "
                       f"{record!r}", "a payment made again for an invoice already paid is failed back, and that is "
                       "all: the invoice's record stays the first payment's (failing back the second takes nothing "
                       "from the first)." if paid_again and record is not None else "update the entry of the event's "
                       "payment_hash, and only it: never clear or rebuild the whole map, as each write stores every "
                       "payment's record.")
    strays = [k for k in final_records(played, "outbound_payments") if k not in played.stage.sent]
    if strays:
        raise fail(played, None, "outbound_payments holding only the payments you sent",
                   f"on disk, it also holds {strays[0]!r}, a payment you never sent",
                   "a payment you receive is recorded in inbound_payments, under its payment_hash; "
                   "outbound_payments is for the payments your node sends.")
    for payment_hash, record in records.items():
        if record.status is HTLCStatus.Succeeded and payment_hash not in claimed:
            event = next((e for e in played.events(Event.PaymentClaimable) if e.payment_hash == payment_hash), None)
            raise fail(played, event, "Succeeded on disk only for a payment LDK says it claimed (PaymentClaimed)",
                       f"on disk, the payment {payment_hash!r} is Succeeded, and it was never claimed",
                       "no payment of this hash ever came: it is an invoice you issued, never paid. On PaymentClaimed, "
                       "update the entry of the event's payment_hash, and only it." if event is None else
                       "PaymentClaimable only says a payment waits to be claimed: it may still fail (a payment "
                       "you cannot claim is failed back). Record Succeeded on PaymentClaimed, once the money is yours.")
    came = {e.payment_hash for e in played.events(Event.PaymentClaimable)}
    for payment_hash, issued in played.stage.issued.items():
        record = records.get(payment_hash)
        if payment_hash not in came and records and record != issued:
            raise fail(played, None, f"the invoice {payment_hash!r}, never paid, still recorded on disk as it was "
                       f"issued: {issued!r}", "its record is gone" if record is None else f"it is now {record!r}",
                       "no event was about this invoice: no payment of its hash ever came. On PaymentClaimed, update "
                       "the entry of the event's payment_hash, and only it: the others are payments you may still "
                       "receive.")


def _amounts(played: Played, event: Event.PaymentClaimed) -> tuple[int, ...]:
    """The amounts a record of this payment may say: what was received, or, in the entry an invoice of yours made,
    the invoice's own amount (ldk-sample updates such an entry's status, preimage and secret, and keeps its amount:
    they differ only when the payer paid more than it asked)."""
    issued = played.stage.issued.get(event.payment_hash)
    return (event.amount_msat,) if issued is None or issued.amt_msat is None else (event.amount_msat, issued.amt_msat)


def _record_problem(record: object, preimage: object, secret: object, amounts: tuple[int, ...]) -> str:
    if record is None:
        return "no entry for this payment_hash"
    if record.status is not HTLCStatus.Succeeded:  # type: ignore[attr-defined]
        return f"status {record.status.name}"  # type: ignore[attr-defined]
    if record.preimage != preimage:  # type: ignore[attr-defined]
        return "the preimage is missing" if record.preimage is None else "the preimage is wrong"  # type: ignore
    if record.secret != secret:  # type: ignore[attr-defined]
        return "the payment secret is missing" if record.secret is None else "the secret is wrong"  # type: ignore
    if record.amt_msat not in amounts:  # type: ignore[attr-defined]
        return f"amt_msat {record.amt_msat} for {amounts[0]} received"  # type: ignore[attr-defined]
    return ""


#: The hint when the handler wrote no inbound_payments while handling the event: what is on disk is older.
_NOT_WRITTEN = ("you did not write inbound_payments while handling this event (what is on disk was written before): "
                "LDK forgets an event once your handler returns, so call fs_store.write(\"\", \"\", "
                "\"inbound_payments\", inbound_payments.encode()) every time, before you return.")


def _record_hint(problem: str, invoiced: bool, record: object, event: Event.PaymentClaimed) -> str:
    if problem.startswith("status Pending"):
        return ("the record was written before it was updated, or not updated: change the entry first, then "
                "write inbound_payments.encode(), before you return.")
    if problem.startswith("status"):
        return "PaymentClaimed means the money is yours: the payment Succeeded (HTLCStatus.Succeeded)."
    if "secret" in problem:
        return "keep the invoice's payment secret (purpose.payment_secret for an invoice payment; keysend has none)."
    if "amt_msat" in problem:
        return _amount_hint(getattr(record, "amt_msat", None), event)
    if "no entry" in problem and invoiced:
        return ("the invoice's entry is gone: update the entry for payment_hash in place (status, preimage, "
                "secret), never remove or replace the map, then write inbound_payments.encode().")
    if "no entry" in problem:
        return "keysend payments have no invoice, so no entry yet: insert one when there is none."
    return "the preimage is your proof of payment: take it from purpose.preimage()."


def _amount_hint(stored: Optional[int], event: Event.PaymentClaimed) -> str:
    """What an amount on disk that is not the event's says of how it was made."""
    amount = event.amount_msat
    if len(event.htlcs) > 1 and stored in {htlc.value_msat for htlc in event.htlcs}:
        return (f"this payment came in {len(event.htlcs)} parts, an HTLC over each of {len(event.htlcs)} channels "
                "(event.htlcs lists them): PaymentClaimed comes once, for the whole, and its amount_msat is what you "
                "received in all. Record amount_msat, not one part's value_msat.")
    if stored is not None and amount and stored > amount and stored % amount == 0:  # (the amount added again)
        return ("record the amount this event says you received, once: a replayed PaymentClaimed must not add it "
                "again. Set the fields; never add to them.")
    if stored is not None and stored * 1000 == amount:
        return ("amt_msat is in millisatoshis, as the event's amount_msat is: store event.amount_msat as it is, not "
                "divided by 1,000.")
    return ("record the amount this event says you received, event.amount_msat (a keysend has no invoice, so no "
            "amount of its own to keep).")
