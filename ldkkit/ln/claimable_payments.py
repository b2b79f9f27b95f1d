"""Payments to us that have arrived: collected part by part, then claimed or failed back.

Mirrors LDK's ``ClaimablePayments`` and the receiving half of ``lightning::ln::channelmanager``
in LDK 0.1, which LDK keeps in channelmanager.rs: an HTLC for us is checked and added to
its payment until the payment is whole (``PaymentClaimable``), then ``claim_funds`` takes
it (``PaymentClaimed``) or ``fail_htlc_backwards`` refuses it. A payment left incomplete
for ``MPP_TIMEOUT_TICKS``, or unclaimed until its claim deadline, is failed back.

The payments live on the ChannelManager (``claimable``), as in LDK. Each function takes
the manager; its caller holds the manager's lock.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Optional

from ..chain.chainmonitor import HTLC_FAIL_BACK_BUFFER
from ..events import ClaimedHTLC, Event, HTLCDestination, PaymentPurpose
from ..ln import msgs
from ..ln.channel import Channel, InboundHTLC
from ..ln.outbound_payment import RecipientOnionFields
from ..ser import U16, U64, Record, RustEnum
from ..types import ChannelId, PaymentHash, PaymentId, PaymentPreimage, PublicKey
from . import forwarding, inbound_payment

if TYPE_CHECKING:
    from .channelmanager import ChannelManager

#: LDK's ``MPP_TIMEOUT_TICKS``: an incomplete multi-part payment is failed after this many ticks.
MPP_TIMEOUT_TICKS = 3


class ClaimableHTLC(Record):
    """An HTLC to us that has arrived and waits, alone or with the other parts of its payment."""

    channel_id: ChannelId
    htlc_id: int
    user_channel_id: int
    amount_msat: int  # LDK's value: what arrived
    cltv_expiry: int
    total_msat: int
    counterparty_node_id: PublicKey
    sender_intended_value: int  # what the onion says should have: a payment is whole when these make its total
    counterparty_skimmed_fee_msat: Optional[int]


class ClaimablePayment(Record, frozen=False):
    """The HTLCs of one payment to us, and what the handler was told about it."""

    payment_hash: PaymentHash
    purpose: PaymentPurpose
    onion_fields: Optional[RecipientOnionFields]
    htlcs: tuple[ClaimableHTLC, ...]
    ticks: int
    announced: bool  # PaymentClaimable was raised


def refused_on_arrival(cm: ChannelManager, htlc: InboundHTLC) -> Optional[tuple[int, None]]:
    """LDK's ``create_recv_pending_htlc_info``, as the HTLC arrives: the CLTV, an expiry too soon to claim on chain in
    time, the amount (short of the onion's by at most the skimmed fee, if the config accepts underpaying HTLCs), then
    a payment secret or a keysend preimage; each failure with BOLT 4's code (no event: see ``forwarding``)."""
    final = htlc.onion.final
    allowed_short = (htlc.skimmed_fee_msat or 0) if cm.config.channel_config.accept_underpaying_htlcs else 0
    if final.outgoing_cltv_value > htlc.cltv_expiry:
        return forwarding.FINAL_INCORRECT_CLTV_EXPIRY, None
    if htlc.cltv_expiry <= cm.best_block_height + HTLC_FAIL_BACK_BUFFER + 1:
        return forwarding.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, None
    if final.amt_to_forward > htlc.amount_msat + allowed_short:
        return forwarding.FINAL_INCORRECT_HTLC_AMOUNT, None
    if final.payment_secret is None and final.keysend_preimage is None:  # ("We require payment_secrets")
        return forwarding.REQUIRED_NODE_FEATURE_MISSING, None
    return None


def receive(cm: ChannelManager, chan: Channel, htlc: InboundHTLC) -> None:
    """The HTLC is for us (checked as it arrived: ``refused_on_arrival``): is it a payment of ours? Collect the
    parts, raise PaymentClaimable when whole."""
    final = htlc.onion.final
    purpose = inbound_payment.payment_purpose(cm.inbound_payment_key, htlc.payment_hash, final, cm.clock.unix_time())
    if purpose is None:
        forwarding.fail_inbound(cm, chan, htlc, forwarding.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, None,
                                HTLCDestination.FailedPayment(htlc.payment_hash))
        return
    part = ClaimableHTLC(chan.channel_id, htlc.htlc_id, chan.user_channel_id, htlc.amount_msat,
                         htlc.cltv_expiry, final.total_msat, chan.counterparty_node_id, final.amt_to_forward,
                         htlc.skimmed_fee_msat)
    onion_fields = RecipientOnionFields(final.payment_secret, final.payment_metadata, final.custom_tlvs)
    claimable = cm.claimable.get(htlc.payment_hash)
    if claimable is not None and (claimable.announced or claimable.purpose != purpose
                                  or claimable.onion_fields != onion_fields
                                  or any(h.total_msat != final.total_msat for h in claimable.htlcs)):
        # LDK's check_total_value fails the new HTLC, and only it: "payment is already claimable" (once claimed, the
        # hash is claimable no more: a payment made again then is a payment of its own); a part of another purpose
        # (keysend or not), whose onion fields do not merge (``check_merge``: secret, metadata), or "the HTLCs had
        # inconsistent total values".
        forwarding.fail_inbound(cm, chan, htlc, forwarding.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, None,
                                HTLCDestination.FailedPayment(htlc.payment_hash))
        return
    if claimable is None:
        claimable = ClaimablePayment(htlc.payment_hash, purpose, onion_fields, (), 0, False)
        cm.claimable[htlc.payment_hash] = claimable
    claimable.htlcs = claimable.htlcs + (part,)
    # LDK's check_total_value: whole when what the sender meant to send makes the total (a hop that overpaid, or
    # skimmed a fee we accept, changes nothing); PaymentClaimable's amount is what arrived.
    if sum(h.sender_intended_value for h in claimable.htlcs) >= final.total_msat:
        received = sum(h.amount_msat for h in claimable.htlcs)
        claimable.announced = True
        # LDK's check_total_value: the parts sorted (ClaimableHTLC's Ord: channel id, then HTLC id), as
        # PaymentClaimed lists them; via_channel_id names the channel of the part that completed the payment.
        claimable.htlcs = tuple(sorted(claimable.htlcs, key=lambda h: (bytes(h.channel_id), h.htlc_id)))
        cm._queue_event(Event.PaymentClaimable(
            receiver_node_id=cm._our_node_id,
            payment_hash=htlc.payment_hash,
            onion_fields=onion_fields,
            amount_msat=received,
            counterparty_skimmed_fee_msat=sum(h.counterparty_skimmed_fee_msat or 0 for h in claimable.htlcs),
            purpose=purpose,
            via_channel_id=part.channel_id,
            via_user_channel_id=part.user_channel_id,
            claim_deadline=min(h.cltv_expiry for h in claimable.htlcs) - HTLC_FAIL_BACK_BUFFER,
            payment_id=_inbound_payment_id(claimable),
        ))


def _inbound_payment_id(claimable: ClaimablePayment) -> PaymentId:
    """LDK's ``PaymentId`` of a received payment: a hash of the HTLCs it arrived in.

    Opaque, as LDK's (an HMAC of the HTLCs under a node secret): only that it is the same for a payment's
    PaymentClaimable and PaymentClaimed, and differs between payments, can be seen; so the exact bytes
    hashed are not mutated (any change of them is an equivalent mutant)."""
    parts = b"".join(bytes(h.channel_id) + h.htlc_id.to_bytes(8, "big") for h in claimable.htlcs)  # pragma: no mutate
    return PaymentId(hashlib.sha256(b"inbound payment id" + parts).digest())  # pragma: no mutate


def claim_funds(cm: ChannelManager, payment_preimage: PaymentPreimage, custom_tlvs_known: bool = False) -> None:
    """Fulfil every part of the payment with this preimage, then raise PaymentClaimed (LDK's
    ``claim_payment_internal``). Unless ``custom_tlvs_known``, a payment carrying a custom TLV of an even type is
    failed back instead (``invalid_onion_payload``): it asks for something your node may not understand."""
    payment_hash = payment_preimage.payment_hash()
    claimable = cm.claimable.get(payment_hash)
    if claimable is None or not claimable.announced:
        cm._log(f"claim_funds: no claimable payment with hash {payment_hash}")  # pragma: no mutate (log text)
        return
    even = [t for t, _ in claimable.onion_fields.custom_tlvs() if t % 2 == 0] if claimable.onion_fields else []
    if even and not custom_tlvs_known:
        cm._log(f"Rejecting payment with payment hash {payment_hash} as we cannot accept payment with unknown even "
                f"TLVs: {', '.join(map(str, even))}")
        fail_htlc_backwards(cm, payment_hash, FailureCode.InvalidOnionPayload().code())
        return
    del cm.claimable[payment_hash]
    # Every part is still pending on its channel: closing a channel drops the payments it carried (closed()).
    htlcs = []
    for part in claimable.htlcs:
        chan = cm.channels[part.channel_id]
        cm._fulfill_inbound(chan, chan.pending_inbound_htlcs[part.htlc_id], payment_preimage)
        htlcs.append(ClaimedHTLC(part.channel_id, part.user_channel_id, part.cltv_expiry, part.amount_msat,
                                 part.counterparty_skimmed_fee_msat or 0))
    cm._queue_event(Event.PaymentClaimed(
        receiver_node_id=cm._our_node_id,
        payment_hash=payment_hash,
        amount_msat=sum(h.value_msat for h in htlcs),
        purpose=claimable.purpose,  # LDK's begin_claiming_payment: PaymentClaimable's, unchanged
        htlcs=tuple(htlcs),
        sender_intended_total_msat=claimable.htlcs[0].total_msat,
        onion_fields=claimable.onion_fields,
        payment_id=_inbound_payment_id(claimable),
    ))


class FailureCode(RustEnum):
    """Mirrors ``lightning::ln::channelmanager::FailureCode``: why ``fail_htlc_backwards_with_reason`` fails a
    payment back, as a BOLT 4 failure code. (The failure's data is not modelled.)"""

    class TemporaryNodeFailure:
        """A temporary error: the payer may want to retry."""

    class RequiredNodeFeatureMissing:
        """A feature you require was not in the onion (some metadata you need, say)."""

    class IncorrectOrUnknownPaymentDetails:
        """The preimage is unknown, or the HTLC expires too soon: what ``fail_htlc_backwards`` says."""

    class InvalidOnionPayload:
        """The payload could not be processed (a custom TLV of an even type you do not know, say)."""

        data: Optional[tuple[U64, U16]] = None

    def code(self) -> int:
        """LDK's ``Into<u16>``: the BOLT 4 failure code."""
        match self:
            case FailureCode.TemporaryNodeFailure():
                return forwarding.NODE | 2
            case FailureCode.RequiredNodeFeatureMissing():
                return forwarding.PERM | forwarding.NODE | 3
            case FailureCode.IncorrectOrUnknownPaymentDetails():
                return forwarding.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
            case _:
                return forwarding.PERM | 22


def fail_htlc_backwards(cm: ChannelManager, payment_hash: PaymentHash,
                        failure_code: int = forwarding.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS) -> None:
    """Fail every part of a claimable payment back with this BOLT 4 failure code (LDK's default:
    incorrect_or_unknown_payment_details)."""
    claimable = cm.claimable.pop(payment_hash, None)
    if claimable is None:
        return
    for part in claimable.htlcs:  # each still pending on its channel, as in claim_funds
        reason = msgs.FailureOnion(cm._our_node_id, failure_code, None, None)
        forwarding.queue_fail_back(cm, forwarding.PendingFailBack(part.channel_id, part.htlc_id, reason,
                                                                  HTLCDestination.FailedPayment(payment_hash)))


def fail_expired(cm: ChannelManager, height: int) -> None:
    """Payments left unclaimed until their claim deadline are failed back, as LDK does."""
    for payment_hash, claimable in list(cm.claimable.items()):
        deadline = min(h.cltv_expiry for h in claimable.htlcs) - HTLC_FAIL_BACK_BUFFER
        if height >= deadline:
            cm._log(f"Failing back unclaimed payment {payment_hash}: its claim deadline {deadline} passed")
            cm.fail_htlc_backwards(payment_hash)


def nothing_waiting(cm: ChannelManager) -> bool:
    """Whether :func:`timer_tick` would change nothing: every payment received so far is complete."""
    return all(claimable.announced for claimable in cm.claimable.values())


def timer_tick(cm: ChannelManager) -> bool:
    """Fail back the parts of a payment still incomplete after MPP_TIMEOUT_TICKS. True if any was."""
    changed = False
    for payment_hash, claimable in list(cm.claimable.items()):
        if claimable.announced:
            continue
        claimable.ticks += 1
        if claimable.ticks >= MPP_TIMEOUT_TICKS:
            del cm.claimable[payment_hash]
            for part in claimable.htlcs:
                reason = msgs.FailureOnion(cm._our_node_id, forwarding.MPP_TIMEOUT, None, None)
                forwarding.queue_fail_back(cm, forwarding.PendingFailBack(
                    part.channel_id, part.htlc_id, reason, HTLCDestination.FailedPayment(payment_hash)))
            changed = True
    return changed
