"""What the sender of a payment chooses, and what the ChannelManager tracks while it is paid.

Mirrors ``lightning::ln::outbound_payment``: ``RecipientOnionFields``, ``Retry``,
``PendingOutboundPayment``, and ``OutboundPayments``, the part of the ChannelManager that
sends payments and probes, retries failed paths, remembers a fulfilled payment for
``IDEMPOTENCY_TIMEOUT_TICKS`` and raises the payment events as each path is fulfilled or
fails. Its failures (``RetryableSendFailure``, ``ProbeSendFailure``) live with the other
errors in :mod:`ldkkit.errors`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Optional

# The module, not its names: ldkkit.events imports this module for RecipientOnionFields.
from .. import events
from ..errors import APIError, ProbeSendFailure, RetryableSendFailure
from ..ln.channel import HTLCOutboundRoute
from ..ln.msgs import FailureOnion
from ..routing.gossip import NetworkUpdate
from ..routing.router import LightningError, Path, Route, RouteParameters
from ..ser import U32, U64, Record, RustEnum, register
from ..types import PaymentHash, PaymentId, PaymentPreimage, PaymentSecret


class RecipientOnionFields(Record):
    """Mirrors ``lightning::ln::outbound_payment::RecipientOnionFields``.

    What the sender tells the recipient in the onion. Its custom TLVs are the sender's own records, each a
    ``(type, value)`` by increasing type: private, as in LDK, read with :meth:`custom_tlvs` and set with
    :meth:`with_custom_tlvs`. By BOLT 1's "it's OK to be odd", a recipient must understand every even one.
    """

    payment_secret: Optional[PaymentSecret]
    payment_metadata: Optional[bytes]
    _custom_tlvs: tuple[tuple[U64, bytes], ...] = ()

    @classmethod
    def secret_only(cls, payment_secret: PaymentSecret) -> RecipientOnionFields:
        """For paying a BOLT 11 invoice: just its payment secret."""
        return cls(payment_secret, None)

    @classmethod
    def spontaneous_empty(cls) -> RecipientOnionFields:
        """For a keysend payment, which has no invoice and so no secret."""
        return cls(None, None)

    def with_custom_tlvs(self, custom_tlvs: list[tuple[int, bytes]]) -> RecipientOnionFields:
        """Mirrors ``RecipientOnionFields::with_custom_tlvs``: these fields with ``custom_tlvs``, sorted by type.
        LDK's ``Err(())`` is a ValueError here: a type under 65,536 (BOLT's own), a type LDK uses itself (keysend's
        5482373484, 77777), or a type twice."""
        tlvs = tuple(sorted(((t, bytes(v)) for t, v in custom_tlvs), key=lambda tlv: tlv[0]))
        types = [t for t, _ in tlvs]
        reserved = [t for t in types if t < 1 << 16 or t in _LDKS_OWN_TLV_TYPES]
        if reserved or len(set(types)) < len(types):
            raise ValueError(f"custom TLV types must be at least 65,536, none of LDK's own {_LDKS_OWN_TLV_TYPES}, "
                             f"and each once: got {types}")
        return dataclasses.replace(self, _custom_tlvs=tlvs)

    def custom_tlvs(self) -> tuple[tuple[int, bytes], ...]:
        """Mirrors ``RecipientOnionFields::custom_tlvs``: the custom TLVs sent or received, by increasing type."""
        return self._custom_tlvs


#: BOLT 4: the onion's hop payloads take 1,300 bytes in all, each followed by a 32-byte HMAC.
ONION_DATA_LEN, PAYLOAD_HMAC_LEN = 1300, 32


def _bigsize_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFF_FFFF else 9


def _tlv_len(tlv_type: int, value_len: int) -> int:
    return _bigsize_len(tlv_type) + _bigsize_len(value_len) + value_len


def _final_payload_len(onion: RecipientOnionFields, keysend_preimage: Optional[PaymentPreimage]) -> int:
    """The recipient's payload as BOLT 4 encodes it, its length prefix included (amounts at their widest): what LDK's
    ``set_max_path_length`` reserves for it before it routes, refusing a payment whose own data leaves no room."""
    size = _tlv_len(2, 8) + _tlv_len(4, 4)  # amt_to_forward, outgoing_cltv_value
    if onion.payment_secret is not None:
        size += _tlv_len(8, 32 + 8)  # payment_data: the secret and total_msat
    if onion.payment_metadata is not None:
        size += _tlv_len(16, len(onion.payment_metadata))
    if keysend_preimage is not None:
        size += _tlv_len(5482373484, 32)
    size += sum(_tlv_len(t, len(v)) for t, v in onion.custom_tlvs())
    return _bigsize_len(size) + size


#: TLV types LDK's onions use themselves above 65,536 (``with_custom_tlvs`` refuses them): keysend's preimage, and
#: async payments' invoice requests.
_LDKS_OWN_TLV_TYPES = (5482373484, 77_777)


class Retry(RustEnum):
    """Mirrors ``lightning::ln::outbound_payment::Retry``: how long to keep retrying."""

    class Attempts:
        """Retry at most this many times after the first attempt."""

        max_retries: U32

    class Timeout:
        """Retry until this much time has passed since the first attempt."""

        timeout: timedelta


#: LDK's ``IDEMPOTENCY_TIMEOUT_TICKS``: timer ticks a fulfilled payment is remembered after its last HTLC.
IDEMPOTENCY_TIMEOUT_TICKS = 7


@register
class PaymentState(enum.Enum):
    Retryable = "Retryable"
    Fulfilled = "Fulfilled"
    Abandoned = "Abandoned"


class PendingOutboundPayment(Record, frozen=False):
    """Mirrors LDK's ``PendingOutboundPayment``: one payment we are sending."""

    payment_id: PaymentId
    payment_hash: PaymentHash
    onion: RecipientOnionFields
    keysend_preimage: Optional[PaymentPreimage]
    total_msat: U64
    retry: Optional[Retry]
    attempts: U32
    started_at_us: U64
    failed_scids: tuple[U64, ...]
    state: PaymentState
    inflight_htlcs: U32
    is_probe: bool
    sent_event_emitted: bool
    pending_retry: bool
    failure_reason: Optional[str]
    #: LDK's ``timer_ticks_without_htlcs``: a fulfilled payment is kept this long, so a second
    #: ``send_payment`` with its id is refused as ``DuplicatePayment``.
    timer_ticks_without_htlcs: U32 = 0

    def can_retry(self, now_us: int) -> bool:
        """Whether the retry strategy allows another attempt now."""
        match self.retry:
            case Retry.Attempts(max_retries=n):
                return self.attempts <= n
            case Retry.Timeout(timeout=limit):  # LDK: max_duration >= now - first_attempted_at
                return timedelta(microseconds=now_us - self.started_at_us) <= limit
        return False  # no strategy: a payment sent along a given route


@dataclasses.dataclass(frozen=True)
class SendAlongPathArgs:
    """Mirrors LDK's ``SendAlongPathArgs``: what the ChannelManager needs to send one path of a payment."""

    path: Path
    payment_hash: PaymentHash
    recipient_onion: RecipientOnionFields
    total_value: int
    payment_id: PaymentId
    keysend_preimage: Optional[PaymentPreimage]
    is_probe: bool


#: Finds a route for the parameters (LDK passes the router, our node id and the first hops instead).
FindRoute = Callable[[RouteParameters], Route]
#: The ChannelManager's ``send_payment_along_path``: raises ``APIError`` if the first hop cannot take the HTLC.
SendAlongPath = Callable[[SendAlongPathArgs], None]


class RecentPaymentDetails(RustEnum):
    """Mirrors ``lightning::ln::channelmanager::RecentPaymentDetails``: a payment ``list_recent_payments`` knows of,
    still in flight or ended a moment ago (ldk-sample's start-up marks those it lost track of ``Failed``)."""

    class AwaitingInvoice:
        """A BOLT 12 payment waiting for its invoice (never, here: the kit pays BOLT 11 invoices)."""

        payment_id: PaymentId

    class Pending:
        """Sent, and not yet ended: a part may be in flight, or a retry due."""

        payment_id: PaymentId
        payment_hash: PaymentHash
        total_msat: U64

    class Fulfilled:
        """Paid: its ``PaymentSent`` came, and it is kept a few timer ticks to refuse a second send."""

        payment_id: PaymentId
        payment_hash: Optional[PaymentHash]

    class Abandoned:
        """Given up: no more retries, its ``PaymentFailed`` coming once no part is in flight."""

        payment_id: PaymentId
        payment_hash: PaymentHash


class OutboundPayments:
    """Mirrors LDK's ``OutboundPayments``: the payments we send, owned by the ChannelManager.

    As in LDK, what it needs of the manager is handed in rather than reached for: the
    event queue, the clock and the logger when it is made, and a ``FindRoute`` and a
    ``SendAlongPath`` with each call that sends. ``forwardable`` asks the handler for a
    ``process_pending_htlc_forwards``, where failed paths are retried
    (:meth:`check_retry_payments`). The manager calls in with its lock held.
    """

    def __init__(
        self, *, clock: Any, pending_events: Callable[[events.Event], None], forwardable: Callable[[], None],
        log: Callable[[str], None],
    ) -> None:
        self.clock = clock
        self._pending_events = pending_events
        self._forwardable = forwardable
        self._log = log
        self.pending_outbound_payments: dict[PaymentId, PendingOutboundPayment] = {}
        #: What a retry routes for, by payment (none for a payment sent along a given route).
        self.route_params: dict[PaymentId, RouteParameters] = {}
        #: The paths of the current attempt in flight: PaymentSent reports their fees.
        self.payment_paths: dict[PaymentId, list[Path]] = {}

    # --- sending --------------------------------------------------------------------------------

    def send_payment(
        self, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields, payment_id: PaymentId,
        retry_strategy: Retry, route_params: RouteParameters, find_route: FindRoute, send_along_path: SendAlongPath,
    ) -> None:
        """Mirrors ``OutboundPayments::send_payment``."""
        self._send_payment_internal(payment_id, payment_hash, recipient_onion, None, retry_strategy, route_params,
                                    find_route, send_along_path)

    def send_spontaneous_payment(
        self, payment_preimage: Optional[PaymentPreimage], recipient_onion: RecipientOnionFields,
        payment_id: PaymentId, retry_strategy: Retry, route_params: RouteParameters,
        entropy_source: Callable[[], bytes], find_route: FindRoute, send_along_path: SendAlongPath,
    ) -> PaymentHash:
        """Mirrors ``OutboundPayments::send_spontaneous_payment``: a keysend, with a fresh preimage if none is given."""
        preimage = payment_preimage or PaymentPreimage(entropy_source())
        payment_hash = preimage.payment_hash()
        self._send_payment_internal(payment_id, payment_hash, recipient_onion, preimage, retry_strategy, route_params,
                                    find_route, send_along_path)
        return payment_hash

    def _send_payment_internal(
        self, payment_id: PaymentId, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields,
        keysend_preimage: Optional[PaymentPreimage], retry_strategy: Retry, route_params: RouteParameters,
        find_route: FindRoute, send_along_path: SendAlongPath,
    ) -> None:
        # LDK's order: find_initial_route (the expiry, then a route), then add_new_pending_payment (a duplicate).
        params = route_params.payment_params
        if params.expiry_time is not None and params.expiry_time < self.clock.unix_time():
            raise RetryableSendFailure.PaymentExpired()
        if _final_payload_len(recipient_onion, keysend_preimage) + PAYLOAD_HMAC_LEN > ONION_DATA_LEN:
            raise RetryableSendFailure.OnionPacketSizeExceeded()  # (LDK's set_max_path_length)
        try:
            route = find_route(route_params)
        except LightningError as e:
            self._log(f"Failed to find a route for payment {payment_id}: {e.err}")
            raise RetryableSendFailure.RouteNotFound() from None
        if payment_id in self.pending_outbound_payments:
            raise RetryableSendFailure.DuplicatePayment()
        payment = self._add_new_pending_payment(
            payment_id, payment_hash, recipient_onion, keysend_preimage, route_params.final_value_msat, retry_strategy,
        )
        self.route_params[payment_id] = route_params
        self._send_route(payment, route, route_params.final_value_msat, find_route, send_along_path)

    def send_payment_with_route(
        self, route: Route, payment_hash: PaymentHash, recipient_onion: RecipientOnionFields, payment_id: PaymentId,
        send_along_path: SendAlongPath,
    ) -> None:
        """Mirrors ``OutboundPayments::send_payment_with_route``: every path of the route, never retried."""
        if payment_id in self.pending_outbound_payments:
            raise RetryableSendFailure.DuplicatePayment()
        total = sum(p.final_value_msat() for p in route.paths)
        payment = self._add_new_pending_payment(payment_id, payment_hash, recipient_onion, None, total, None)
        sent = [self._send_path(payment, path, total, send_along_path) for path in route.paths]
        if not all(sent):  # LDK retries at once, through a FixedRouter that gives the route only once: no route
            self._abandon(payment, events.PaymentFailureReason.RouteNotFound)

    def send_probe(
        self, path: Path, entropy_source: Callable[[], bytes], send_along_path: SendAlongPath
    ) -> tuple[PaymentHash, PaymentId]:
        """Mirrors ``OutboundPayments::send_probe``: an HTLC whose hash nobody can claim."""
        payment_id = PaymentId(entropy_source())
        if len(path.hops) < 2 and path.blinded_tail is None:  # the first hop's liquidity is known already
            raise ProbeSendFailure.ParameterError(
                APIError.APIMisuseError("No need probing a path with less than two hops"))
        # LDK's probing_cookie_from_id hashes a secret with the id, so nobody can claim it; any hash of the id that
        # nobody knows the preimage of serves (the kit tells a probe by its HTLC, not by its hash).
        payment_hash = PaymentHash(hashlib.sha256(b"ldkkit probe" + bytes(payment_id)).digest())  # pragma: no mutate
        payment = self._add_new_pending_payment(
            payment_id, payment_hash, RecipientOnionFields(None, None), None, path.final_value_msat(), None,
            is_probe=True,
        )
        err = self._pay_path(payment, path, path.final_value_msat(), send_along_path)
        if err is not None:
            del self.pending_outbound_payments[payment_id]
            raise ProbeSendFailure.ParameterError(err)
        return payment_hash, payment_id

    def _add_new_pending_payment(
        self, payment_id: PaymentId, payment_hash: PaymentHash, onion: RecipientOnionFields,
        keysend_preimage: Optional[PaymentPreimage], total_msat: int, retry: Optional[Retry], is_probe: bool = False,
    ) -> PendingOutboundPayment:
        payment = PendingOutboundPayment(
            payment_id=payment_id, payment_hash=payment_hash, onion=onion, keysend_preimage=keysend_preimage,
            total_msat=total_msat, retry=retry,
            attempts=1, started_at_us=self.clock.now_us(), failed_scids=(), state=PaymentState.Retryable,
            inflight_htlcs=0, is_probe=is_probe, sent_event_emitted=False, pending_retry=False,
            failure_reason=None,
        )
        self.pending_outbound_payments[payment_id] = payment
        return payment

    def _send_path(
        self, payment: PendingOutboundPayment, path: Path, total_msat: int, send_along_path: SendAlongPath,
    ) -> bool:
        """Send one path; True if it left. If the first hop cannot take it, the path fails: PaymentPathFailed."""
        err = self._pay_path(payment, path, total_msat, send_along_path)
        if err is None:
            return True
        # LDK's push_path_failed_evs_and_scids: an unavailable first channel is blamed, and avoided on retry.
        scid = path.hops[0].short_channel_id if isinstance(err, APIError.ChannelUnavailable) else None
        if scid is not None:
            payment.failed_scids = payment.failed_scids + (scid,)
        self._pending_events(events.Event.PaymentPathFailed(
            payment.payment_id, payment.payment_hash, False, events.PathFailure.InitialSend(err), path, scid))
        return False

    def _send_route(
        self, payment: PendingOutboundPayment, route: Route, total_msat: int, find_route: FindRoute,
        send_along_path: SendAlongPath,
    ) -> None:
        """LDK's ``pay_route_internal``, then ``handle_pay_route_err``: a path the first hop refused is retried at
        once, inside the call that sent it (not on the next forwards: no PendingHTLCsForwardable is asked for)."""
        if not all([self._send_path(payment, path, total_msat, send_along_path) for path in route.paths]):
            self._find_route_and_send(payment, find_route, send_along_path)

    def _find_route_and_send(
        self, payment: PendingOutboundPayment, find_route: FindRoute, send_along_path: SendAlongPath
    ) -> None:
        """Mirrors ``OutboundPayments::find_route_and_send_payment``: route the payment again, around the channels
        that failed it, and send it; expired, with no route, or out of retries (asked in that order), it is
        abandoned (``PaymentExpired``, ``RouteNotFound``, ``RetriesExhausted``)."""
        base = self.route_params[payment.payment_id]
        params = base.payment_params
        if params.expiry_time is not None and params.expiry_time < self.clock.unix_time():
            self._abandon(payment, events.PaymentFailureReason.PaymentExpired)
            return
        for scid in payment.failed_scids:
            params = params.with_previously_failed_channel(scid)
        route_params = RouteParameters(params, base.final_value_msat, base.max_total_routing_fee_msat)
        try:
            route = find_route(route_params)
        except LightningError:
            self._abandon(payment, events.PaymentFailureReason.RouteNotFound)
            return
        if not payment.can_retry(self.clock.now_us()):
            self._abandon(payment, events.PaymentFailureReason.RetriesExhausted)
            return
        payment.attempts += 1
        self._send_route(payment, route, route_params.final_value_msat, find_route, send_along_path)

    def _pay_path(
        self, payment: PendingOutboundPayment, path: Path, total_msat: int, send_along_path: SendAlongPath
    ) -> Optional[APIError]:
        """LDK's ``pay_route_internal`` for one path: count it in flight, then have the manager send it.
        Returns the manager's error, with the counting undone, if the path could not leave."""
        payment.inflight_htlcs += 1
        first_path = payment.payment_id not in self.payment_paths
        paths = self.payment_paths.setdefault(payment.payment_id, [])
        paths.append(path)
        try:
            send_along_path(SendAlongPathArgs(path, payment.payment_hash, payment.onion, total_msat,
                                              payment.payment_id, payment.keysend_preimage, payment.is_probe))
        except APIError as err:
            # LDK's remove_session_privs: a path that never left is not in flight.
            payment.inflight_htlcs -= 1
            paths.pop()
            if first_path:
                del self.payment_paths[payment.payment_id]
            return err
        return None

    # --- retrying and abandoning ----------------------------------------------------------------

    def check_retry_payments(self, find_route: FindRoute, send_along_path: SendAlongPath) -> None:
        """Mirrors ``OutboundPayments::check_retry_payments``: each payment marked for retry is sent again
        (:meth:`_find_route_and_send`). One whose strategy ran out meanwhile is abandoned (``RetriesExhausted``),
        and fails once nothing is in flight."""
        for payment in list(self.pending_outbound_payments.values()):
            if not payment.pending_retry:
                continue
            payment.pending_retry = False
            if payment.state is not PaymentState.Retryable:
                continue
            base = self.route_params.get(payment.payment_id)
            if base is None:
                continue
            if not payment.can_retry(self.clock.now_us()):  # LDK abandons it once no part is in flight
                if payment.inflight_htlcs == 0:
                    self._abandon(payment, events.PaymentFailureReason.RetriesExhausted)
                continue
            self._find_route_and_send(payment, find_route, send_along_path)

    def recent_payments(self) -> list[RecentPaymentDetails]:
        """LDK's ``list_recent_payments``: each payment kept, by its state."""
        details = RecentPaymentDetails
        return [details.Pending(i, p.payment_hash, p.total_msat) if p.state is PaymentState.Retryable else
                details.Fulfilled(i, p.payment_hash) if p.state is PaymentState.Fulfilled else
                details.Abandoned(i, p.payment_hash) for i, p in self.pending_outbound_payments.items()]

    def abandon_payment(self, payment_id: PaymentId) -> None:
        """Mirrors ``OutboundPayments::abandon_payment``: no more retries; PaymentFailed once nothing is in flight."""
        payment = self.pending_outbound_payments.get(payment_id)
        if payment is not None:
            self._abandon(payment, events.PaymentFailureReason.UserAbandoned)

    def _abandon(self, payment: PendingOutboundPayment, reason: events.PaymentFailureReason) -> None:
        """LDK's ``OutboundPayments::abandon_payment``: mark it abandoned, and fail it if nothing is in flight."""
        self._mark_abandoned(payment, reason)
        if payment.state is PaymentState.Abandoned and payment.inflight_htlcs == 0:
            self._payment_failed(payment)

    @staticmethod
    def _mark_abandoned(payment: PendingOutboundPayment, reason: events.PaymentFailureReason) -> None:
        """LDK's ``PendingOutboundPayment::mark_abandoned``: only a payment still retryable becomes abandoned, for
        ``reason``; an abandoned one keeps its first reason, a fulfilled one stays fulfilled."""
        if payment.state is PaymentState.Retryable:
            payment.state = PaymentState.Abandoned
            payment.failure_reason = reason.value

    def nothing_stale(self) -> bool:
        """Whether :meth:`remove_stale_payments` would change nothing: no fulfilled payment is remembered."""
        fulfilled = PaymentState.Fulfilled  # (read once: see channel._FUNDED_PHASES)
        return not any(p.state is fulfilled for p in self.pending_outbound_payments.values())

    def remove_stale_payments(self, pending_events: Iterable[events.Event] = ()) -> None:
        """Mirrors ``OutboundPayments::remove_stale_payments``: forget a fulfilled payment
        IDEMPOTENCY_TIMEOUT_TICKS ticks after its last HTLC resolved and its last event was handled (a
        ``PaymentSent``, ``PaymentPathSuccessful`` or ``PaymentPathFailed`` of it still queued starts the count
        again, as an HTLC in flight does)."""
        waiting = {e.payment_id for e in pending_events
                   if isinstance(e, (events.Event.PaymentSent, events.Event.PaymentPathSuccessful,
                                     events.Event.PaymentPathFailed))}
        for payment in list(self.pending_outbound_payments.values()):
            if payment.state is not PaymentState.Fulfilled:
                continue
            if payment.inflight_htlcs or payment.payment_id in waiting:
                payment.timer_ticks_without_htlcs = 0
                continue
            payment.timer_ticks_without_htlcs += 1
            if payment.timer_ticks_without_htlcs > IDEMPOTENCY_TIMEOUT_TICKS:
                self._forget(payment.payment_id)

    # --- a path's outcome -----------------------------------------------------------------------

    def claim_htlc(
        self, route: HTLCOutboundRoute, payment_hash: PaymentHash, payment_preimage: PaymentPreimage
    ) -> None:
        """Mirrors ``OutboundPayments::claim_htlc``: one of our paths was fulfilled.

        The first raises ``PaymentSent`` (with the fees of every path of the attempt); each
        raises ``PaymentPathSuccessful``.
        """
        payment = self.pending_outbound_payments.get(route.payment_id)
        if payment is None:
            return
        payment.inflight_htlcs -= 1
        if not payment.sent_event_emitted:
            payment.sent_event_emitted = True
            payment.state = PaymentState.Fulfilled
            fees = sum(p.fee_msat() for p in self.payment_paths[route.payment_id])  # every payment has its paths
            self._pending_events(events.Event.PaymentSent(
                payment_id=route.payment_id, payment_preimage=payment_preimage, payment_hash=payment_hash,
                fee_paid_msat=fees,
            ))
        self._pending_events(events.Event.PaymentPathSuccessful(route.payment_id, payment_hash, route.path))
        # Kept (not forgotten) for IDEMPOTENCY_TIMEOUT_TICKS: a repeat send_payment is a DuplicatePayment.

    def fail_htlc(self, route: HTLCOutboundRoute, payment_hash: PaymentHash, reason: FailureOnion) -> None:
        """Mirrors ``OutboundPayments::fail_htlc``: one of our paths failed.

        A part of a payment already fulfilled raises nothing. A probe reports what it learned.
        A payment raises ``PaymentPathFailed``; it is retried if its strategy allows, else
        abandoned (``RecipientRejected`` if the recipient refused it for good, ``RetriesExhausted``),
        and once an abandoned payment's last part is back, ``PaymentFailed`` follows. What the recipient's failure
        teaches is LDK's ``process_onion_failure`` (see :func:`_payee_failure`).
        """
        payment = self.pending_outbound_payments.get(route.payment_id)
        if payment is None:
            return
        payment.inflight_htlcs -= 1
        paths = self.payment_paths[route.payment_id]
        if route.path in paths:
            paths.remove(route.path)
        if payment.state is PaymentState.Fulfilled:
            return  # LDK: "Received failure of HTLC ... after payment completion"; kept for IDEMPOTENCY_TIMEOUT_TICKS
        at_payee = reason.origin == route.path.hops[-1].pubkey
        permanent, network_update, scid = False, None, reason.short_channel_id
        if at_payee:
            permanent, network_update, scid = _payee_failure(route.path, reason.failure_code)
        if route.is_probe:
            if permanent:
                self._pending_events(events.Event.ProbeSuccessful(route.payment_id, payment_hash, route.path))
            else:
                self._pending_events(events.Event.ProbeFailed(route.payment_id, payment_hash, route.path, scid))
            self._forget(route.payment_id)
            return
        if at_payee:
            if scid is not None:
                payment.failed_scids = payment.failed_scids + (scid,)
        elif all(reason.origin != hop.pubkey for hop in route.path.hops):
            # Failed by us, not by a hop (LDK's HTLCFailReasonRepr::Reason, e.g. timed out on chain): no onion to
            # read, so decode_onion_failure blames the first hop, with no network update, never permanently.
            scid = route.path.hops[0].short_channel_id
            payment.failed_scids = payment.failed_scids + (scid,)
        elif scid is not None:
            permanent_update = bool(reason.network_update_permanent)
            network_update = NetworkUpdate.ChannelFailure(scid, permanent_update)
            payment.failed_scids = payment.failed_scids + (scid,)
        retry_now = not permanent and payment.state is PaymentState.Retryable and payment.can_retry(self.clock.now_us())
        if not retry_now:
            self._mark_abandoned(payment, events.PaymentFailureReason.RecipientRejected if permanent
                                 else events.PaymentFailureReason.RetriesExhausted)
        self._pending_events(events.Event.PaymentPathFailed(
            payment_id=route.payment_id, payment_hash=payment_hash, payment_failed_permanently=permanent,
            failure=events.PathFailure.OnPath(network_update), path=route.path, short_channel_id=scid,
        ))
        if payment.state is PaymentState.Abandoned and payment.inflight_htlcs == 0:
            self._payment_failed(payment)  # after its PaymentPathFailed, as LDK pushes them
        elif retry_now:
            payment.pending_retry = True
            self._forwardable()

    def _payment_failed(self, payment: PendingOutboundPayment) -> None:
        """An abandoned payment with nothing in flight: forget it and raise ``PaymentFailed`` with its reason."""
        self._forget(payment.payment_id)
        reason = events.PaymentFailureReason(payment.failure_reason)
        self._pending_events(events.Event.PaymentFailed(payment.payment_id, payment.payment_hash, reason))

    def _forget(self, payment_id: PaymentId) -> None:
        self.pending_outbound_payments.pop(payment_id, None)
        self.route_params.pop(payment_id, None)
        self.payment_paths.pop(payment_id, None)


# BOLT 4's failure code flags.
_PERM, _NODE = 0x4000, 0x2000


def _payee_failure(path: Path, code: int) -> tuple[bool, Optional[NetworkUpdate], Optional[int]]:
    """LDK's ``process_onion_failure`` for a failure from the recipient (``is_from_final_node``): whether the payment
    failed for good (the PERM bit: ``payment_failed_permanently``), the network update and the channel it blames.
    A code that says the payment itself failed (15-19, 23) updates nothing, blaming the last channel only for a value
    that does not match the onion (18, 19); without the PERM bit it is retried, as a temporary node failure is."""
    last = path.hops[-1]
    permanent = bool(code & _PERM)
    payment_failed = code & 0xFF in (15, 16, 17, 18, 19, 23)
    if code & _NODE:
        return permanent, NetworkUpdate.NodeFailure(last.pubkey, permanent), last.short_channel_id
    if permanent:
        if payment_failed:
            return True, None, None
        return True, NetworkUpdate.ChannelFailure(last.short_channel_id, True), last.short_channel_id
    if payment_failed:
        return False, None, last.short_channel_id if code & 0xFF in (18, 19) else None
    # (an update code without the channel_update LDK would read, or a code it does not know: it gives up on the node)
    return False, NetworkUpdate.NodeFailure(last.pubkey, True), last.short_channel_id
