"""Errors a node's methods raise, with LDK's kinds and LDK's messages.

Mirrors ``lightning::util::errors::APIError`` and the send failures of
``lightning::ln::outbound_payment``. Where LDK returns ``Err(APIError::ChannelUnavailable
{ err })``, ldkkit raises ``APIError.ChannelUnavailable`` carrying ``err``, so a learner
can write ``except APIError.ChannelUnavailable as e: print(e.err)``. ``str(e)`` is LDK's
``Debug`` rendering, e.g. ``Misuse error: No such channel awaiting to be accepted.``
"""

from __future__ import annotations

from typing import Any, ClassVar

from .ser import DecodeError, register

__all__ = ["APIError", "CreationError", "DecodeError", "ProbeSendFailure", "RetryableSendFailure",
           "SignOrCreationError"]


class _LdkError(Exception):
    """Shared behaviour: equality by kind and fields, and encodability."""

    SER_FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.SER_FIELDS)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self._values()))

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={v!r}" for n, v in zip(self.SER_FIELDS, self._values(), strict=True))
        return f"{type(self).__qualname__}({args})"


def _kinds(base: type, *kinds: type) -> None:
    """Attach each kind as ``base.<Name>``, as Rust's ``Enum::Variant`` spelling."""
    for kind in kinds:
        kind.__qualname__ = f"{base.__name__}.{kind.__name__}"
        setattr(base, kind.__name__, kind)
        register(kind)


class APIError(_LdkError):
    """Mirrors ``lightning::util::errors::APIError``. ``err`` is LDK's message."""

    SER_FIELDS = ("err",)
    _FORMAT = "{err}"

    def __init__(self, err: str) -> None:
        super().__init__(err)
        self.err = err

    def __str__(self) -> str:
        return self._FORMAT.format(**vars(self))


class APIMisuseError(APIError):
    """A precondition of the call was violated: the caller has a bug."""

    _FORMAT = "Misuse error: {err}"


class FeeRateTooHigh(APIError):
    """The feerate asked for is higher than LDK allows."""

    SER_FIELDS = ("err", "feerate")
    _FORMAT = "{err} feerate: {feerate}"

    def __init__(self, err: str, feerate: int) -> None:
        super().__init__(err)
        self.feerate = feerate


class InvalidRoute(APIError):
    """The route given cannot be used."""

    _FORMAT = "Invalid route provided: {err}"


class ChannelUnavailable(APIError):
    """No such channel or peer, the peer is disconnected, or the channel cannot do this now."""

    _FORMAT = "Channel unavailable: {err}"


class MonitorUpdateInProgress(APIError):
    """A ChannelMonitor update is still being persisted; the call completes later."""

    SER_FIELDS = ()

    def __init__(self) -> None:
        super().__init__("Client indicated a channel monitor update is in progress but not yet complete")


class IncompatibleShutdownScript(APIError):
    """The peer does not accept the shutdown script we offered."""

    SER_FIELDS = ("script",)

    def __init__(self, script: Any) -> None:
        super().__init__(f"Provided a scriptpubkey format not accepted by peer: {script}")
        self.script = script


_kinds(
    APIError,
    APIMisuseError,
    FeeRateTooHigh,
    InvalidRoute,
    ChannelUnavailable,
    MonitorUpdateInProgress,
    IncompatibleShutdownScript,
)


class _FixedMessageError(_LdkError):
    """An error kind with no data; its message is LDK's doc comment for it."""

    MESSAGE: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class RetryableSendFailure(_FixedMessageError):
    """Mirrors ``lightning::ln::outbound_payment::RetryableSendFailure``.

    Raised by ``send_payment`` and ``send_spontaneous_payment`` when the payment could
    not even start; no payment event will follow for it.
    """


class PaymentExpired(RetryableSendFailure):
    MESSAGE = "The payment has expired, according to its PaymentParameters::expiry_time."


class RouteNotFound(RetryableSendFailure):
    MESSAGE = "We were unable to find a route to the destination."


class DuplicatePayment(RetryableSendFailure):
    MESSAGE = (
        "A payment for the provided PaymentId is already in-flight and has not yet completed; "
        "use a fresh PaymentId for a new payment."
    )


class OnionPacketSizeExceeded(RetryableSendFailure):
    MESSAGE = (
        "The payment_metadata or custom_tlvs are too large and would exceed the "
        "maximum onion packet size of 1300 bytes."
    )


_kinds(RetryableSendFailure, PaymentExpired, RouteNotFound, DuplicatePayment, OnionPacketSizeExceeded)


class ProbeSendFailure(_LdkError):
    """Mirrors ``lightning::ln::outbound_payment::ProbeSendFailure``, raised by ``send_probe``."""


class ProbeRouteNotFound(ProbeSendFailure):
    def __init__(self) -> None:
        super().__init__("We were unable to find a route to the destination.")


class ParameterError(ProbeSendFailure):
    """The probe's path was refused; ``err`` is the APIError that says why."""

    SER_FIELDS = ("err",)

    def __init__(self, err: APIError) -> None:
        super().__init__(str(err))
        self.err = err


class DuplicateProbe(ProbeSendFailure):
    def __init__(self) -> None:
        super().__init__("A payment for the provided PaymentId is already in-flight and has not yet completed "
                         "(no ProbeSuccessful or ProbeFailed yet).")


ProbeRouteNotFound.__name__ = "RouteNotFound"
_kinds(ProbeSendFailure, ProbeRouteNotFound, ParameterError, DuplicateProbe)


class CreationError(_FixedMessageError):
    """Mirrors ``lightning_invoice::CreationError``: why an invoice could not be made (the message: LDK's
    ``Display``)."""


class DescriptionTooLong(CreationError):
    MESSAGE = "The supplied description string was longer than 639 bytes"


class RouteTooLong(CreationError):
    MESSAGE = "The specified route has too many hops and can't be encoded"


class TimestampOutOfBounds(CreationError):
    MESSAGE = "The Unix timestamp of the supplied date is less than zero or greater than 35-bits"


class InvalidAmount(CreationError):
    MESSAGE = "The supplied millisatoshi amount was greater than the total bitcoin supply"


class MissingRouteHints(CreationError):
    MESSAGE = "The invoice required route hints and they weren't provided"


class MinFinalCltvExpiryDeltaTooShort(CreationError):
    MESSAGE = "The supplied final CLTV expiry delta was less than LDK's `MIN_FINAL_CLTV_EXPIRY_DELTA`"


_kinds(CreationError, DescriptionTooLong, RouteTooLong, TimestampOutOfBounds, InvalidAmount, MissingRouteHints,
       MinFinalCltvExpiryDeltaTooShort)


class SignOrCreationError(_LdkError):
    """Mirrors ``lightning_invoice::SignOrCreationError``, raised by ``ChannelManager.create_bolt11_invoice``."""


class SignError(SignOrCreationError):
    def __init__(self) -> None:
        super().__init__("An error occurred during signing")


class _InvoiceNotCreated(SignOrCreationError):
    """``SignOrCreationError::CreationError(err)``: ``err`` is the :class:`CreationError` that says why."""

    SER_FIELDS = ("err",)

    def __init__(self, err: CreationError) -> None:
        super().__init__(str(err))
        self.err = err


_InvoiceNotCreated.__name__ = "CreationError"
_kinds(SignOrCreationError, SignError, _InvoiceNotCreated)
