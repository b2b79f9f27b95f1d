"""The Event model holds LDK 0.1's names, fields, texts and rules, and reads well."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.events import (
    ClosureReason,
    Event,
    FundingInfo,
    HTLCDestination,
    InboundChannelFunds,
    PathFailure,
    PaymentFailureReason,
    PaymentPurpose,
    ReplayEvent,
)
from ldkkit.events.bump_transaction import BumpTransactionEvent
from ldkkit.ln.msgs import ChannelParameters
from ldkkit.routing.gossip import NetworkUpdate
from ldkkit.sign import SpendableOutputDescriptor
from ldkkit.types import ChannelId, ChannelTypeFeatures, PaymentPreimage, PaymentSecret, PublicKey
from strategies import for_type

# LDK 0.1.12's `lightning::events::Event`: every variant with its fields, in LDK's order
# (from ../shared/reference/ldk-0.1-api.md §2).
LDK_0_1_EVENTS = {
    "FundingGenerationReady": ["temporary_channel_id", "counterparty_node_id", "channel_value_satoshis",
                               "output_script", "user_channel_id"],
    "FundingTxBroadcastSafe": ["channel_id", "user_channel_id", "funding_txo", "counterparty_node_id",
                               "former_temporary_channel_id"],
    "PaymentClaimable": ["receiver_node_id", "payment_hash", "onion_fields", "amount_msat",
                         "counterparty_skimmed_fee_msat", "purpose", "via_channel_id", "via_user_channel_id",
                         "claim_deadline", "payment_id"],
    "PaymentClaimed": ["receiver_node_id", "payment_hash", "amount_msat", "purpose", "htlcs",
                       "sender_intended_total_msat", "onion_fields", "payment_id"],
    "ConnectionNeeded": ["node_id", "addresses"],
    "InvoiceReceived": ["payment_id", "invoice", "context", "responder"],
    "PaymentSent": ["payment_id", "payment_preimage", "payment_hash", "fee_paid_msat"],
    "PaymentFailed": ["payment_id", "payment_hash", "reason"],
    "PaymentPathSuccessful": ["payment_id", "payment_hash", "path"],
    "PaymentPathFailed": ["payment_id", "payment_hash", "payment_failed_permanently", "failure", "path",
                          "short_channel_id"],
    "ProbeSuccessful": ["payment_id", "payment_hash", "path"],
    "ProbeFailed": ["payment_id", "payment_hash", "path", "short_channel_id"],
    "PendingHTLCsForwardable": ["time_forwardable"],
    "HTLCIntercepted": ["intercept_id", "requested_next_hop_scid", "payment_hash", "inbound_amount_msat",
                        "expected_outbound_amount_msat"],
    "SpendableOutputs": ["outputs", "channel_id"],
    "PaymentForwarded": ["prev_channel_id", "next_channel_id", "prev_user_channel_id", "next_user_channel_id",
                         "prev_node_id", "next_node_id", "total_fee_earned_msat", "skimmed_fee_msat",
                         "claim_from_onchain_tx", "outbound_amount_forwarded_msat"],
    "ChannelPending": ["channel_id", "user_channel_id", "former_temporary_channel_id", "counterparty_node_id",
                       "funding_txo", "channel_type"],
    "ChannelReady": ["channel_id", "user_channel_id", "counterparty_node_id", "channel_type"],
    "ChannelClosed": ["channel_id", "user_channel_id", "reason", "counterparty_node_id", "channel_capacity_sats",
                      "channel_funding_txo", "last_local_balance_msat"],
    "DiscardFunding": ["channel_id", "funding_info"],
    "OpenChannelRequest": ["temporary_channel_id", "counterparty_node_id", "funding_satoshis",
                           "channel_negotiation_type", "channel_type", "is_announced", "params"],
    "HTLCHandlingFailed": ["prev_channel_id", "failed_next_destination"],
    "BumpTransaction": None,  # a tuple variant: BumpTransaction(BumpTransactionEvent)
    "OnionMessageIntercepted": ["peer_node_id", "message"],
    "OnionMessagePeerConnected": ["peer_node_id"],
}

LDK_0_1_SUPPORTING = {
    ClosureReason: ["CounterpartyForceClosed", "HolderForceClosed", "LegacyCooperativeClosure",
                    "CounterpartyInitiatedCooperativeClosure", "LocallyInitiatedCooperativeClosure",
                    "CommitmentTxConfirmed", "FundingTimedOut", "ProcessingError", "DisconnectedPeer",
                    "OutdatedChannelManager", "CounterpartyCoopClosedUnfundedChannel", "FundingBatchClosure",
                    "HTLCsTimedOut", "PeerFeerateTooLow"],
    PaymentPurpose: ["Bolt11InvoicePayment", "Bolt12OfferPayment", "Bolt12RefundPayment", "SpontaneousPayment"],
    PathFailure: ["InitialSend", "OnPath"],
    NetworkUpdate: ["ChannelFailure", "NodeFailure"],
    HTLCDestination: ["NextHopChannel", "UnknownNextHop", "InvalidForward", "InvalidOnion", "FailedPayment"],
    InboundChannelFunds: ["PushMsat", "DualFunded"],
    FundingInfo: ["Tx", "OutPoint"],
    SpendableOutputDescriptor: ["StaticOutput", "DelayedPaymentOutput", "StaticPaymentOutput"],
    BumpTransactionEvent: ["ChannelClose", "HTLCResolution"],
}

PEER = PublicKey.from_secret_key(b"\x07" * 32)
TEMP_ID = ChannelId(bytes(range(32)))


def open_request(sats: int = 6_000_000) -> Event:
    return Event.OpenChannelRequest(
        temporary_channel_id=TEMP_ID, counterparty_node_id=PEER, funding_satoshis=sats,
        channel_negotiation_type=InboundChannelFunds.PushMsat(0),
        channel_type=ChannelTypeFeatures.only_static_remote_key(), is_announced=False,
        params=ChannelParameters(354, 5_000_000_000, 1, 253, 144, 483),
    )


def test_every_ldk_0_1_variant_with_its_fields_in_order():
    assert list(Event.VARIANTS) == list(LDK_0_1_EVENTS)
    for name, fields in LDK_0_1_EVENTS.items():
        variant = getattr(Event, name)
        assert issubclass(variant, Event)
        if fields is not None:
            assert [f.name for f in dataclasses.fields(variant)] == fields, name
    assert [f.type for f in dataclasses.fields(Event.BumpTransaction)] == ["BumpTransactionEvent"]


@pytest.mark.parametrize("enum_cls", list(LDK_0_1_SUPPORTING), ids=lambda c: c.__name__)
def test_supporting_enums_have_ldks_variants(enum_cls):
    assert list(enum_cls.VARIANTS) == LDK_0_1_SUPPORTING[enum_cls]
    assert all(issubclass(v, enum_cls) for v in enum_cls.VARIANTS.values())


def test_payment_failure_reason_has_ldks_ten_reasons():
    assert [r.name for r in PaymentFailureReason] == [
        "RecipientRejected", "UserAbandoned", "RetriesExhausted", "PaymentExpired", "RouteNotFound",
        "UnexpectedError", "UnknownRequiredFeatures", "InvoiceRequestExpired", "InvoiceRequestRejected",
        "BlindedPathCreationFailed",
    ]


def test_the_seed_chapters_match_works_in_python():
    seen = []
    for event in [open_request(), Event.PendingHTLCsForwardable(timedelta(milliseconds=100))]:
        match event:
            case Event.OpenChannelRequest(temporary_channel_id=tcid, counterparty_node_id=peer, funding_satoshis=sats):
                seen.append((tcid, peer, sats))
            case _:
                seen.append("other")
    assert seen == [(TEMP_ID, PEER, 6_000_000), "other"]


def test_positional_match_on_tuple_variants():
    purpose = PaymentPurpose.SpontaneousPayment(PaymentPreimage(b"\x01" * 32))
    match purpose:
        case PaymentPurpose.SpontaneousPayment(preimage):
            assert preimage == PaymentPreimage(b"\x01" * 32)
        case _:
            pytest.fail("positional pattern did not match")


def test_isinstance_and_immutability():
    event = open_request()
    assert isinstance(event, Event) and isinstance(event, Event.OpenChannelRequest)
    assert not isinstance(event, Event.PaymentClaimable)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.funding_satoshis = 1  # type: ignore[misc]
    assert hash(event) == hash(open_request())


def test_an_enum_itself_cannot_be_built():
    with pytest.raises(TypeError, match="Event is an enum: build one of its variants"):
        Event()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"funding_satoshis": -1}, r"funding_satoshis must be a u64"),
        ({"funding_satoshis": "5000000"}, r"funding_satoshis must be a u64"),
        ({"temporary_channel_id": bytes(32)}, r"temporary_channel_id must be a ChannelId.*wrap raw bytes"),
        ({"is_announced": 1}, r"is_announced must be a bool"),
    ],
)
def test_wrong_field_types_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(TypeError, match=message):
        dataclasses.replace(open_request(), **kwargs)


CLOSURE_TEXTS = {
    ClosureReason.CounterpartyForceClosed("bye"): "counterparty force-closed with message: bye",
    ClosureReason.HolderForceClosed(True): "user force-closed the channel and broadcasted the latest transaction",
    ClosureReason.HolderForceClosed(False):
        "user force-closed the channel and elected not to broadcast the latest transaction",
    ClosureReason.HolderForceClosed(None): "user force-closed the channel",
    ClosureReason.LegacyCooperativeClosure(): "the channel was cooperatively closed",
    ClosureReason.CounterpartyInitiatedCooperativeClosure(): "the channel was cooperatively closed by our peer",
    ClosureReason.LocallyInitiatedCooperativeClosure(): "the channel was cooperatively closed by us",
    ClosureReason.CommitmentTxConfirmed(): "commitment or closing transaction was confirmed on chain.",
    ClosureReason.FundingTimedOut(): "funding transaction failed to confirm within 2016 blocks",
    ClosureReason.ProcessingError("oops"): "of an exception: oops",
    ClosureReason.DisconnectedPeer(): "the peer disconnected prior to the channel being funded",
    ClosureReason.OutdatedChannelManager():
        "the ChannelManager read from disk was stale compared to ChannelMonitor(s)",
    ClosureReason.CounterpartyCoopClosedUnfundedChannel(): "the peer requested the unfunded channel be closed",
    ClosureReason.FundingBatchClosure(): "another channel in the same funding batch closed",
    ClosureReason.HTLCsTimedOut(): "htlcs on the channel timed out",
    ClosureReason.PeerFeerateTooLow(253, 1000):
        "peer provided a feerate (253 sat/kw) which was below our lower bound (1000 sat/kw)",
}


@pytest.mark.parametrize("reason", list(CLOSURE_TEXTS), ids=repr)
def test_closure_reasons_render_ldks_text(reason):
    assert str(reason) == "Channel closed because " + CLOSURE_TEXTS[reason]


def test_payment_purpose_preimage():
    secret = PaymentSecret(b"\x02" * 32)
    preimage = PaymentPreimage(b"\x03" * 32)
    assert PaymentPurpose.Bolt11InvoicePayment(preimage, secret).preimage() == preimage
    assert PaymentPurpose.Bolt11InvoicePayment(None, secret).preimage() is None
    assert PaymentPurpose.SpontaneousPayment(preimage).preimage() == preimage


def test_replay_and_persistence_rules_are_ldks():
    not_persisted = {n for n, v in Event.VARIANTS.items() if not v.persisted}
    assert not_persisted == {"FundingGenerationReady", "OpenChannelRequest", "ConnectionNeeded",
                             "OnionMessageIntercepted", "OnionMessagePeerConnected",
                             "PendingHTLCsForwardable", "BumpTransaction"}
    assert {n for n, v in Event.VARIANTS.items() if not v.replayable} == {"ConnectionNeeded"}
    assert Event.OpenChannelRequest.ldk_type_id == 17 and Event.ChannelPending.ldk_type_id == 31
    assert len({v.ldk_type_id for v in Event.VARIANTS.values()}) == 25


#: The type byte each event is written with in LDK 0.1.12 (``impl Writeable for Event``, lightning/src/events/mod.rs).
LDK_0_1_TYPE_IDS = {
    "FundingGenerationReady": 0, "PaymentClaimable": 1, "PaymentSent": 2, "PaymentPathFailed": 3,
    "PendingHTLCsForwardable": 4, "SpendableOutputs": 5, "HTLCIntercepted": 6, "PaymentForwarded": 7,
    "ChannelClosed": 9, "DiscardFunding": 11, "PaymentPathSuccessful": 13, "PaymentFailed": 15,
    "OpenChannelRequest": 17, "PaymentClaimed": 19, "ProbeSuccessful": 21, "ProbeFailed": 23,
    "HTLCHandlingFailed": 25, "BumpTransaction": 27, "ChannelReady": 29, "ChannelPending": 31,
    "ConnectionNeeded": 35, "OnionMessageIntercepted": 37, "OnionMessagePeerConnected": 39, "InvoiceReceived": 41,
    "FundingTxBroadcastSafe": 43,
}


def test_every_event_has_the_type_byte_ldk_writes_it_with():
    assert {name: v.ldk_type_id for name, v in Event.VARIANTS.items()} == LDK_0_1_TYPE_IDS


def test_replay_event_can_be_returned_or_raised():
    assert isinstance(ReplayEvent(), Exception)


def test_repr_is_one_readable_line():
    text = repr(open_request())
    assert "\n" not in text
    assert text.startswith("Event.OpenChannelRequest(temporary_channel_id=0001…1e1f, counterparty_node_id=")
    assert "funding_satoshis=6,000,000 sat" in text and "PushMsat(push_msat=0 msat)" in text
    assert "channel_type=static_remote_key" in text


@pytest.mark.parametrize("name", list(LDK_0_1_EVENTS))
@given(data=st.data())
def test_every_event_has_a_flat_dict_and_a_one_line_repr(name, data):
    event = data.draw(for_type(getattr(Event, name)))
    row = event.to_dict()
    assert row["event"] == name
    assert all(isinstance(v, (str, int, bool, type(None), timedelta)) for v in row.values()), row
    assert "\n" not in repr(event)


def test_flat_dict_uses_dotted_keys_for_nested_records():
    row = open_request().to_dict()
    assert row["funding_satoshis"] == 6_000_000
    assert row["channel_negotiation_type"] == "PushMsat"
    assert row["channel_negotiation_type.push_msat"] == 0
    assert row["params.to_self_delay"] == 144
    assert row["temporary_channel_id"] == TEMP_ID.hex()
