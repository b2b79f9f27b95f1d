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


_ACTIONS = ["put", "status", "amount", "pop", "del", "popitem", "clear", "update", "setdefault", "or", "share",
            "replace", "other", "encode"]


@given(st.lists(st.tuples(st.sampled_from(_ACTIONS), st.integers(0, 5), infos), max_size=30))
def test_encoding_after_any_changes_is_the_whole_maps_encoding(steps):
    """The storage keeps each entry's bytes between encodes (ldk-sample re-encodes after every payment); whatever
    the handler changed in place, added or removed, by any of a dict's ways, the bytes are those of the map
    encoded afresh. An entry also held by another storage, and changed there, counts as changed here too."""
    from ldkkit import ser

    storage, other = InboundPaymentInfoStorage(), InboundPaymentInfoStorage()
    hashes = [PaymentHash(bytes([i]) * 32) for i in range(6)]
    for action, i, info in steps:
        with storage.lock() as payments:
            match action:
                case "put":
                    payments[hashes[i]] = info
                case "status" if hashes[i] in payments:
                    payments[hashes[i]].status = info.status
                case "amount" if hashes[i] in payments:
                    payments[hashes[i]].amt_msat = info.amt_msat
                case "pop":
                    payments.pop(hashes[i], None)
                case "del" if hashes[i] in payments:
                    del payments[hashes[i]]
                case "popitem" if payments:
                    payments.popitem()
                case "clear":
                    payments.clear()
                case "update":
                    payments.update({hashes[i]: info, hashes[(i + 1) % 6]: info})
                case "setdefault":
                    payments.setdefault(hashes[i], info).amt_msat = i
                case "or":
                    payments |= {hashes[i]: info}
                case "share" if hashes[i] in payments:  # the same entry, held under a second key and in another map
                    payments[hashes[(i + 2) % 6]] = other.payments[hashes[i]] = payments[hashes[i]]
                case "replace":
                    storage.payments = {hashes[i]: info}
                case "other" if other.payments:
                    next(iter(other.payments.values())).status = info.status
        assert storage.encode() == ser.encode(tuple(storage.payments.items()))
        assert InboundPaymentInfoStorage.decode(storage.encode()) == storage
        assert other.encode() == ser.encode(tuple(other.payments.items()))


def test_an_entry_changed_to_an_equal_value_of_another_type_is_encoded_again():
    """``True == 1`` and equal bytes under two names compare equal, but encode differently: the kept bytes of an
    entry are reused only if every value keeps its type too."""
    from ldkkit import ser
    from ldkkit.types import PaymentSecret

    storage = InboundPaymentInfoStorage()
    with storage.lock() as payments:
        payments[PaymentHash(b"\1" * 32)] = info = PaymentInfo(PaymentPreimage(b"\2" * 32), None, HTLCStatus.Pending, 1)
    storage.encode()
    info.amt_msat = True
    assert storage.encode() == ser.encode(tuple(storage.payments.items()))
    info.amt_msat, info.preimage = 1, PaymentSecret(b"\2" * 32)
    assert storage.encode() == ser.encode(tuple(storage.payments.items()))
    with storage.lock() as payments:  # the same entry again, under a key that is equal but of another type
        payments[1] = info
    storage.encode()
    with storage.lock() as payments:
        payments[True] = payments.pop(1)
    assert storage.encode() == ser.encode(tuple(storage.payments.items()))


def test_encoding_again_writes_only_the_entries_changed_since(monkeypatch):
    """ldk-sample re-encodes the whole map after every payment; only what changed is written again."""
    from ldkkit import payment_storage

    storage = InboundPaymentInfoStorage()
    with storage.lock() as payments:
        for i in range(3):
            payments[PaymentHash(bytes([i]) * 32)] = PaymentInfo(None, None, HTLCStatus.Pending, 1000)
    storage.encode()
    written: list[object] = []
    real = payment_storage.encode_item
    monkeypatch.setattr(payment_storage, "encode_item", lambda value: written.append(value[0]) or real(value))
    with storage.lock() as payments:
        payments[PaymentHash(bytes([1]) * 32)].status = HTLCStatus.Succeeded
        payments[PaymentHash(bytes([3]) * 32)] = PaymentInfo(None, None, HTLCStatus.Pending, 5)
    storage.encode()
    assert written == [PaymentHash(bytes([1]) * 32), PaymentHash(bytes([3]) * 32)]
    written.clear()
    storage.encode()
    assert written == []


def test_an_entry_changed_after_it_left_the_map_is_not_written_again(monkeypatch):
    """An entry replaced or removed no longer belongs to the map: changing it then writes nothing again. And an
    entry put again and again under its key is held once: nothing grows with the puts."""
    from ldkkit import payment_storage

    storage = InboundPaymentInfoStorage()
    key = PaymentHash(b"\1" * 32)
    old = PaymentInfo(None, None, HTLCStatus.Pending, 1)
    with storage.lock() as payments:
        payments[key] = old
        payments[key] = PaymentInfo(None, None, HTLCStatus.Pending, 2)
        payments[PaymentHash(b"\2" * 32)] = kept = PaymentInfo(None, None, HTLCStatus.Pending, 3)
        for _ in range(100):
            payments[PaymentHash(b"\2" * 32)] = kept
    assert len(kept.__dict__["_held"]) == 1
    storage.encode()
    written: list[object] = []
    real = payment_storage.encode_item
    monkeypatch.setattr(payment_storage, "encode_item", lambda value: written.append(value[0]) or real(value))
    old.status = HTLCStatus.Failed
    storage.encode()
    assert written == []


def test_an_entry_changed_while_the_map_is_encoded_is_encoded_as_it_is_then(monkeypatch):
    """Code that changes an entry without taking the storage's lock (another thread, mid-encode) gets neither an
    error nor stale bytes: the map is encoded as it is once nothing changes under it."""
    from ldkkit import payment_storage, ser

    storage = InboundPaymentInfoStorage()
    first, second = PaymentHash(b"\1" * 32), PaymentHash(b"\2" * 32)
    with storage.lock() as payments:
        payments[first] = PaymentInfo(None, None, HTLCStatus.Pending, 1)
        payments[second] = other = PaymentInfo(None, None, HTLCStatus.Pending, 2)
    storage.encode()
    storage.payments[first].amt_msat = 5
    real = payment_storage.encode_item

    def meanwhile(value):
        if value[0] == first and other.status is HTLCStatus.Pending:
            other.status = HTLCStatus.Succeeded  # while the first entry is being written
        return real(value)

    monkeypatch.setattr(payment_storage, "encode_item", meanwhile)
    assert storage.encode() == ser.encode(tuple(storage.payments.items()))


def test_an_entry_held_in_a_map_copies_and_pickles_as_its_fields():
    """What a map keeps on an entry (which maps hold it) is no part of it: a copy or a pickle of the entry is its
    fields, equal to it, held by no map, and changing the copy changes nothing stored."""
    import copy
    import pickle

    storage = InboundPaymentInfoStorage()
    with storage.lock() as payments:
        payments[PaymentHash(b"\1" * 32)] = info = PaymentInfo(None, None, HTLCStatus.Pending, 1)
    encoded = storage.encode()
    for other in (pickle.loads(pickle.dumps(info)), copy.deepcopy(info), copy.copy(info)):
        assert other == info and other is not info
        other.status = HTLCStatus.Failed
        assert storage.encode() == encoded


def test_an_entry_put_in_maps_made_again_and_again_keeps_only_the_live_ones():
    """A handler that rebuilds its map from the same entries, payment after payment, leaves each entry a note of the
    maps holding it now, not of every map it was ever in; the new map still re-encodes an entry changed in place."""
    import gc

    storage = InboundPaymentInfoStorage()
    info = PaymentInfo(None, None, HTLCStatus.Pending, 1_000)
    key = PaymentHash(bytes(32))
    for _ in range(50):
        storage.payments = {key: info}
    gc.collect()
    held = info.__dict__["_held"]
    assert [by() for by, _ in held if by() is not None] == [storage.payments]
    assert len(held) <= 2  # (the map before the last one is forgotten when the entry is put next)
    before = storage.encode()
    info.amt_msat = 2_000
    assert storage.encode() != before == InboundPaymentInfoStorage({key: PaymentInfo(None, None, HTLCStatus.Pending,
                                                                                    1_000)}).encode()
