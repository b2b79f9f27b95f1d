"""APIError and the send failures carry LDK's kinds and messages."""

from __future__ import annotations

import pytest

from ldkkit.errors import APIError, ProbeSendFailure, RetryableSendFailure
from ldkkit.ser import decode, encode


@pytest.mark.parametrize(
    "error, text",
    [
        (APIError.APIMisuseError("No such channel awaiting to be accepted."),
         "Misuse error: No such channel awaiting to be accepted."),
        (APIError.ChannelUnavailable("Can't find a peer"), "Channel unavailable: Can't find a peer"),
        (APIError.InvalidRoute("loop"), "Invalid route provided: loop"),
        (APIError.FeeRateTooHigh("too high", 9999), "too high feerate: 9999"),
        (APIError.MonitorUpdateInProgress(),
         "Client indicated a channel monitor update is in progress but not yet complete"),
    ],
)
def test_api_errors_render_like_ldks_debug(error, text):
    assert str(error) == text
    assert isinstance(error, APIError) and isinstance(error, Exception)
    assert decode(encode(error)) == error


def test_err_carries_ldks_message_and_kinds_are_catchable():
    with pytest.raises(APIError.APIMisuseError) as info:
        raise APIError.APIMisuseError("No such channel awaiting to be accepted.")
    assert info.value.err == "No such channel awaiting to be accepted."
    assert repr(info.value) == "APIError.APIMisuseError(err='No such channel awaiting to be accepted.')"


def test_equality_is_by_kind_and_fields():
    assert APIError.ChannelUnavailable("x") == APIError.ChannelUnavailable("x")
    assert APIError.ChannelUnavailable("x") != APIError.APIMisuseError("x")


def test_send_failures_have_ldks_kinds():
    kinds = {"PaymentExpired", "RouteNotFound", "DuplicatePayment", "OnionPacketSizeExceeded"}
    assert {k for k in kinds if issubclass(getattr(RetryableSendFailure, k), RetryableSendFailure)} == kinds
    assert str(RetryableSendFailure.RouteNotFound()) == "We were unable to find a route to the destination."
    wrapped = ProbeSendFailure.ParameterError(APIError.InvalidRoute("x"))
    assert wrapped.err == APIError.InvalidRoute("x")
    assert issubclass(ProbeSendFailure.DuplicateProbe, ProbeSendFailure)
