"""Primitives are immutable, hashable, hex-rendering and length-checked."""

from __future__ import annotations

import pickle

import pytest

from ldkkit.types import (
    ChannelId,
    ChannelTypeFeatures,
    InterceptId,
    PaymentHash,
    PaymentId,
    PaymentPreimage,
    PaymentSecret,
    PublicKey,
    Txid,
)

THIRTY_TWO = [ChannelId, PaymentHash, PaymentPreimage, PaymentSecret, PaymentId, InterceptId, Txid]


@pytest.mark.parametrize("cls", THIRTY_TWO, ids=lambda c: c.__name__)
def test_length_is_checked_with_a_clear_message(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__} must be exactly 32 bytes, got 5"):
        cls(b"short")
    with pytest.raises(TypeError, match="from_hex"):
        cls("00" * 32)


@pytest.mark.parametrize("cls", THIRTY_TWO, ids=lambda c: c.__name__)
def test_immutable_hashable_and_hex(cls):
    value = cls(bytes(range(32)))
    assert value == cls(bytes(range(32))) and hash(value) == hash(cls(bytes(range(32))))
    assert cls.from_hex(value.hex()) == value
    assert pickle.loads(pickle.dumps(value)) == value
    with pytest.raises(AttributeError):
        value._data = b""  # type: ignore[misc]
    assert value != bytes(range(32))


def test_different_kinds_of_id_never_compare_equal():
    assert PaymentHash(bytes(32)) != PaymentId(bytes(32))


def test_txid_displays_byte_reversed_like_bitcoind():
    txid = Txid(bytes(range(32)))
    assert str(txid) == bytes(range(32))[::-1].hex()
    assert repr(txid) == "Txid(1f1e…0100)"


def test_public_keys_are_real_curve_points():
    key = PublicKey.from_secret_key(b"\x01" * 32)
    assert str(key) == "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"
    with pytest.raises(ValueError, match="not a valid compressed secp256k1 point"):
        PublicKey(b"\x02" + b"\xff" * 32)
    with pytest.raises(ValueError, match="exactly 33 bytes"):
        PublicKey(bytes(32))


def test_bytes_found_valid_once_are_not_checked_again_and_bad_ones_always_are(monkeypatch):
    """A check hands over a copy of every event, decoded: its keys (and transactions) are checked once per process."""
    import coincurve

    from ldkkit import types

    parsed: list[bytes] = []
    real_point = coincurve.PublicKey

    def counting_point(data: bytes) -> object:
        parsed.append(data)
        return real_point(data)

    monkeypatch.setattr(coincurve, "PublicKey", counting_point)
    monkeypatch.setattr(types, "_KNOWN_VALID", {})
    good = bytes(PublicKey.from_secret_key(b"\x02" * 32))
    types._KNOWN_VALID.clear()  # (as in a new process)
    parsed.clear()
    assert PublicKey(good) == PublicKey(good) == PublicKey(good)
    assert parsed == [good]  # the curve point parsed once
    bad = b"\x02" + b"\xff" * 32
    for _ in range(2):
        with pytest.raises(ValueError, match="not a valid compressed secp256k1 point"):
            PublicKey(bad)
    assert parsed == [good, bad, bad]
    monkeypatch.setattr(types, "_MAX_KNOWN_VALID", 1)  # (bounded: the remembered bytes are dropped when full)
    other = bytes(PublicKey.from_secret_key(b"\x03" * 32))
    PublicKey(other)
    assert types._KNOWN_VALID[PublicKey] == {other}


def test_payment_hash_is_sha256_of_the_preimage():
    preimage = PaymentPreimage(bytes(32))
    assert preimage.payment_hash().hex() == "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"


def test_v1_channel_id_xors_the_output_index_into_the_txid():
    txid = Txid(bytes(32))
    assert bytes(ChannelId.v1_from_funding_outpoint(txid, 0x0102))[-2:] == b"\x01\x02"


def test_channel_type_features():
    anchors = ChannelTypeFeatures.anchors_zero_htlc_fee_and_dependencies()
    assert anchors.supports_anchors_zero_fee_htlc_tx() and anchors.supports_static_remote_key()
    assert not anchors.requires_zero_conf()
    assert anchors.with_zero_conf_required().requires_zero_conf()
    assert str(ChannelTypeFeatures.only_static_remote_key()) == "static_remote_key"
