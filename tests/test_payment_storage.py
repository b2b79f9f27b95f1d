"""ldk-sample's payment storages encode, persist and come back; corrupt files fail clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.errors import DecodeError
from ldkkit.fs_store import FilesystemStore
from ldkkit.payment_storage import (
    INBOUND_PAYMENTS_FNAME,
    HTLCStatus,
    InboundPaymentInfoStorage,
    OutboundPaymentInfoStorage,
    PaymentInfo,
)
from ldkkit.types import PaymentHash, PaymentId, PaymentPreimage
from strategies import for_type

infos = for_type(PaymentInfo)


@given(st.dictionaries(for_type(PaymentHash), infos, max_size=4))
def test_inbound_storage_round_trips(payments):
    storage = InboundPaymentInfoStorage(payments)
    assert InboundPaymentInfoStorage.decode(storage.encode()) == storage


@given(st.dictionaries(for_type(PaymentId), infos, max_size=4))
def test_outbound_storage_round_trips(payments):
    storage = OutboundPaymentInfoStorage(payments)
    assert OutboundPaymentInfoStorage.decode(storage.encode()) == storage


def test_a_handler_updates_and_persists_like_ldk_sample(tmp_path):
    fs_store = FilesystemStore(tmp_path)
    inbound_payments = InboundPaymentInfoStorage()
    preimage = PaymentPreimage(b"\x05" * 32)
    with inbound_payments.lock() as payments:
        payments[preimage.payment_hash()] = PaymentInfo(None, None, HTLCStatus.Pending, None)
        payments[preimage.payment_hash()].status = HTLCStatus.Succeeded  # updated in place, as in the sample
        payments[preimage.payment_hash()].preimage = preimage
        fs_store.write("", "", INBOUND_PAYMENTS_FNAME, inbound_payments.encode())
    back = InboundPaymentInfoStorage.decode(fs_store.read("", "", "inbound_payments"))
    assert back.payments[preimage.payment_hash()].status is HTLCStatus.Succeeded
    assert repr(back) == "InboundPaymentInfoStorage(1 payments: 1 succeeded)"


def test_a_corrupt_file_on_disk_gives_a_clear_error(tmp_path):
    fs_store = FilesystemStore(tmp_path)
    fs_store.write("", "", "inbound_payments", b"\x00garbage")
    with pytest.raises(DecodeError, match="not an encoded ldkkit"):
        InboundPaymentInfoStorage.decode(fs_store.read("", "", "inbound_payments"))


def test_the_wrong_storage_kind_is_refused():
    inbound = InboundPaymentInfoStorage({PaymentHash(bytes(32)): PaymentInfo(None, None, HTLCStatus.Failed, 1)})
    with pytest.raises(DecodeError, match=r"holds \(PaymentId, PaymentInfo\) pairs"):
        OutboundPaymentInfoStorage.decode(inbound.encode())


def test_payment_info_fields_are_checked():
    with pytest.raises(TypeError, match="PaymentInfo.status must be a HTLCStatus"):
        PaymentInfo(None, None, "Succeeded", 1)  # type: ignore[arg-type]
