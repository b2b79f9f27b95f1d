"""Events and their parts encode to bytes and decode back exactly; bad bytes fail clearly."""

from __future__ import annotations

import copy
import functools
import typing
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldkkit import encoding_cache, scenarios, ser
from ldkkit.bitcoin import OutPoint, Transaction
from ldkkit.encoding_cache import EncodingCache, _immutable, _immutable_hint
from ldkkit.errors import APIError, DecodeError
from ldkkit.events import ClosureReason, Event
from ldkkit.ln.channel import Channel, ChannelPhase, InboundHTLC, OutboundHTLC
from ldkkit.payment_storage import PaymentInfo
from ldkkit.ser import (
    _REGISTRY,
    Record,
    RustEnum,
    decode,
    encode,
    encode_item,
    register,
    ser_fields,
)
from ldkkit.types import ChannelId, ChannelTypeFeatures, HexBytes
from strategies import for_type

RECORD_TYPES = sorted(
    (cls for cls in _REGISTRY.values() if isinstance(cls, type) and issubclass(cls, Record)
     and RustEnum not in cls.__bases__),
    key=lambda c: c.__qualname__,
)
events = st.one_of([for_type(v) for v in Event.VARIANTS.values()])


@pytest.mark.parametrize("variant", list(Event.VARIANTS.values()), ids=lambda v: v.__name__)
@given(data=st.data())
def test_every_event_round_trips(variant, data):
    event = data.draw(for_type(variant))
    assert Event.decode(event.encode()) == event


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__qualname__)
@given(data=st.data())
def test_every_record_type_round_trips(cls, data):
    value = data.draw(for_type(cls))
    assert type(value).decode(value.encode()) == value


@given(st.one_of(for_type(APIError), st.integers(-(2**130), 2**130), st.text(), st.binary()))
def test_plain_values_and_errors_round_trip(value):
    assert decode(encode(value)) == value


LDK_INTS = st.integers(-(2**128), 2**128)
MAP_VALUES = (st.none() | st.booleans() | st.binary(max_size=8) | st.lists(LDK_INTS, max_size=3).map(tuple)
              | st.dictionaries(st.text(max_size=3), LDK_INTS, max_size=2))


@given(st.dictionaries(st.integers(-(2**70), 2**70) | st.text(max_size=8), MAP_VALUES, max_size=5))
def test_maps_round_trip_keys_values_and_order(value):
    """The ChannelManager is written as a map of its parts: every key and value comes back, in order."""
    back = decode(encode(value))
    assert back == value and list(back) == list(value)


@given(events, st.data())
def test_truncated_bytes_raise_short_read_never_a_partial_event(event, data):
    encoded = event.encode()
    cut = data.draw(st.integers(3, len(encoded) - 1))
    with pytest.raises(DecodeError) as info:
        Event.decode(encoded[:cut])
    assert isinstance(info.value, DecodeError.ShortRead)
    assert "truncated" in str(info.value)


@given(events, st.data())
def test_corrupt_bytes_give_a_decode_error_or_a_whole_valid_event(event, data):
    encoded = bytearray(event.encode())
    pos = data.draw(st.integers(3, len(encoded) - 1))
    encoded[pos] ^= data.draw(st.integers(1, 255))
    try:
        decoded = Event.decode(bytes(encoded))
    except DecodeError:
        return
    # Anything that does decode went through every field check on the way in.
    assert isinstance(decoded, Event)
    assert Event.decode(decoded.encode()) == decoded


@pytest.mark.parametrize(
    "data, kind, message",
    [
        (b"", DecodeError.InvalidValue, "not an encoded ldkkit Event"),
        (b"{\"json\": 1}", DecodeError.InvalidValue, "not an encoded ldkkit Event"),
        (b"LK\x09", DecodeError.UnknownVersion, "unknown encoding version 9"),
        (b"LK\x01\x3f", DecodeError.InvalidValue, "unknown value tag 63"),
        (encode(ClosureReason.FundingTimedOut()), DecodeError.InvalidValue,
         "expected an encoded Event, found a ClosureReason.FundingTimedOut"),
        (encode(ClosureReason.FundingTimedOut()) + b"\x00", DecodeError.InvalidValue, "1 unexpected bytes"),
    ],
)
def test_clear_messages_for_bad_bytes(data, kind, message):
    with pytest.raises(kind, match=message):
        Event.decode(data)


def test_a_field_of_the_wrong_type_in_the_bytes_is_refused():
    good = encode(ClosureReason.ProcessingError("x"))
    bad = good.replace(b"\x04\x01x", b"\x03\x02")  # swap the str field for an int
    with pytest.raises(DecodeError.InvalidValue, match="ProcessingError.err must be a str"):
        decode(bad)


def test_unknown_type_names_are_refused():
    bad = encode(ClosureReason.FundingTimedOut()).replace(b"FundingTimedOut", b"FundingTimedOup")
    with pytest.raises(DecodeError.InvalidValue, match="unknown type 'ClosureReason.FundingTimedOup'"):
        decode(bad)


HEADER = b"LK\x01"


def test_integers_are_read_up_to_twenty_one_bytes_and_no_longer():
    """No LDK integer needs more (u128, zigzagged): a longer one is corrupt data, not a bigger number."""
    longest = HEADER + b"\x03" + b"\x80" * 20 + b"\x01"
    assert decode(longest) == 1 << 139  # (1 << 140), zigzag-decoded
    with pytest.raises(DecodeError.InvalidValue, match=r"^an integer at offset 25 is longer than any LDK integer$"):
        decode(HEADER + b"\x03" + b"\x80" * 21 + b"\x01")


def test_an_integer_too_large_to_read_back_is_never_written():
    """Whatever encode writes, decode reads: the largest integer written is the largest the reader takes."""
    largest = (1 << 146) - 1  # zigzagged: 147 bits, 21 bytes
    assert decode(encode(largest)) == largest and decode(encode(-largest - 1)) == -largest - 1
    for too_large in (largest + 1, -largest - 2):
        with pytest.raises(ValueError, match=rf"^ldkkit cannot encode the integer {too_large}: it is larger than"):
            encode(too_large)


def test_text_that_is_not_utf8_is_corrupt_data():
    with pytest.raises(DecodeError.InvalidValue, match=r"^text before offset 7 is not valid UTF-8$"):
        decode(HEADER + b"\x04\x02\xff\xfe")


class Nest(Record):
    inner: object


def nested(levels: int, leaf: object, wrap) -> object:
    for _ in range(levels):
        leaf = wrap(leaf)
    return leaf


DEPTHS = {  # a value whose innermost part is ``levels`` deep
    "tuples": lambda levels: nested(levels, None, lambda v: (v,)),
    "records": lambda levels: nested(levels, None, Nest),
    "map values": lambda levels: nested(levels, None, lambda v: {0: v}),
    "map keys": lambda levels: {nested(levels - 1, None, lambda v: (v,)): 0},
    "durations": lambda levels: nested(levels - 1, timedelta(seconds=1), lambda v: (v,)),  # its count is inside
}


@pytest.mark.parametrize("kind", list(DEPTHS))
def test_values_nest_sixty_four_deep_and_no_deeper(kind):
    deepest = DEPTHS[kind](64)
    assert decode(encode(deepest)) == deepest
    with pytest.raises(DecodeError.InvalidValue, match=r"^values are nested too deeply; the data is corrupt$"):
        decode(encode(DEPTHS[kind](65)))


def test_a_record_with_the_wrong_number_of_fields_is_refused_by_name():
    good = encode(ClosureReason.ProcessingError("x"))
    name = ClosureReason.ProcessingError.__qualname__.encode()
    bad = good.replace(bytes([len(name)]) + name + b"\x01", bytes([len(name)]) + name + b"\x02") + b"\x00"
    with pytest.raises(DecodeError.InvalidValue,
                       match=r"^ClosureReason.ProcessingError has 1 fields, but the data holds 2$"):
        decode(bad)


@pytest.mark.parametrize("data, message", [
    (b"xx", "these 2 bytes are not an encoded ldkkit value (they do not start with b'LK'); the file may be corrupt "
            "or was written by something else"),
    (b"LK", "unknown encoding version missing; this ldkkit reads version 1"),
    (b"LK\x02\x00", "unknown encoding version 2; this ldkkit reads version 1"),
    (HEADER + b"\x00\x00\x00", "2 unexpected bytes after the encoded value"),
    (HEADER + b"\x07\x03abc\x00", "unknown type 'abc'; the data is corrupt or from a newer ldkkit"),
    (HEADER + b"\x0a\x04\x00", "a duration holds something other than an integer"),
    (HEADER + b"\x0b\x01\x0b\x00\x00", "a map in the data has a key that cannot be a key"),
    (HEADER + b"\x03", "the data ends after 4 bytes, in the middle of a value (needed 1 more at offset 4); it was "
                       "truncated"),
])
def test_bad_bytes_of_any_value_get_their_whole_message(data, message):
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert str(info.value) == message


def test_decode_takes_bytes_only():
    with pytest.raises(TypeError, match=r"^decode needs bytes, got str$"):
        decode("LK")  # type: ignore[arg-type]
    assert decode(bytearray(encode(7))) == 7 and decode(memoryview(encode(7))) == 7


def test_a_value_no_record_accepts_is_corrupt_data_naming_what_went_wrong():
    """A duration past year 9999 is described by the bytes, but Python cannot hold it."""
    too_long = HEADER + b"\x0a" + encode(10**20)[3:]
    with pytest.raises(DecodeError.InvalidValue, match=r"^the data is corrupt: OverflowError: "):
        decode(too_long)


class NoField(Record):
    pass


class OneField(Record):
    x: int


class TwoFields(Record):
    x: int
    y: dict[str, int]


def test_a_records_fields_are_written_in_order_whatever_their_number():
    """A record is its type's name, its field count, then each field in order (a dict: each key, then its value),
    for none, one or many fields: the layout files on disk were written with."""
    from ldkkit.ser import _MAGIC, _VERSION

    def named(name: str) -> bytes:
        return bytes([7, len(name)]) + name.encode()  # STRUCT, then the name as a blob

    start = _MAGIC + bytes([_VERSION])
    assert encode(NoField()) == start + named(NoField.__qualname__) + bytes([0])
    assert encode(OneField(5)) == start + named(OneField.__qualname__) + bytes([1, 3, 10])  # INT 5, zigzag 10
    assert encode(TwoFields(-1, {"a": 1, "b": 2})) == start + named(TwoFields.__qualname__) + bytes(
        [2, 3, 1, 11, 2, 4, 1]) + b"a" + bytes([3, 2, 4, 1]) + b"b" + bytes([3, 4])
    for record in (NoField(), OneField(5), TwoFields(-1, {"a": 1, "b": 2})):
        assert decode(encode(record)) == record


# --- EncodingCache: a kept encoding is always what encoding now would write ----------------------

CHANNEL_HINTS = typing.get_type_hints(Channel, include_extras=True)
HTLC_MAPS = ("pending_inbound_htlcs", "pending_outbound_htlcs")


@functools.cache
def a_channel() -> Channel:
    """A funded channel as a scenario leaves it (its manager persisted it at every block)."""
    result = scenarios.run("receive_invoice_payment")
    return next(iter(result.node.channel_manager.channels.values()))


def _change(chan: Channel, data: st.DataObject) -> None:
    match data.draw(st.sampled_from(["nothing", "field", "same value, other type", "htlc", "htlc in place",
                                     "no htlcs"])):
        case "field":
            name = data.draw(st.sampled_from([n for n in ser_fields(Channel) if n not in HTLC_MAPS]))
            setattr(chan, name, data.draw(for_type(CHANNEL_HINTS[name])))
        case "same value, other type":  # 1 == True, but an int and a bool are written differently
            name = data.draw(st.sampled_from([n for n in ser_fields(Channel) if type(getattr(chan, n)) in (int, bool)
                                              and getattr(chan, n) in (0, 1)] or ["is_outbound"]))
            value = getattr(chan, name)
            setattr(chan, name, int(value) if type(value) is bool else bool(value))
        case "htlc":
            name = data.draw(st.sampled_from(HTLC_MAPS))
            kind = InboundHTLC if name == "pending_inbound_htlcs" else OutboundHTLC
            getattr(chan, name)[data.draw(st.integers(0, 3))] = data.draw(for_type(kind))
        case "htlc in place":  # an HTLC the map already holds changes: the map itself is the same object
            for htlc in (*chan.pending_inbound_htlcs.values(), *chan.pending_outbound_htlcs.values()):
                htlc.amount_msat = data.draw(st.integers(0, 2**64 - 1))
        case "no htlcs":
            chan.pending_inbound_htlcs.clear()
            chan.pending_outbound_htlcs.clear()


@given(data=st.data())
def test_a_kept_encoding_is_always_what_encoding_now_writes(data):
    chan = copy.deepcopy(a_channel())
    other = copy.deepcopy(a_channel())
    cache = EncodingCache()
    for _ in range(data.draw(st.integers(1, 8))):
        _change(chan, data)
        items = cache.encoded([chan, other])
        assert [item.data for item in items] == [encode_item(chan), encode_item(other)]
        assert encode((items, 7)) == encode(((chan, other), 7))  # written in place of the records


@settings(max_examples=5)
@given(htlc=for_type(InboundHTLC))
def test_a_quiet_channel_is_encoded_once_and_one_with_htlcs_at_every_write(htlc):
    chan = copy.deepcopy(a_channel())
    cache = EncodingCache()
    encoded: list[object] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoding_cache, "encode_item", lambda v: encoded.append(v) or b"\x00")
        for _ in range(3):
            cache.encoded([chan])
        assert encoded == [chan]
        chan.pending_inbound_htlcs[0] = htlc
        for _ in range(2):
            cache.encoded([chan])
        assert encoded == [chan] * 3
        chan.pending_inbound_htlcs.clear()
        cache.encoded([chan])
        cache.encoded([chan])
        assert len(encoded) == 4  # quiet again: kept from its next encoding
        cache.encoded([])  # a record left out is forgotten
        cache.encoded([chan])
        assert len(encoded) == 5


def test_only_values_that_cannot_change_count_as_immutable():
    assert all(_immutable(t) for t in (int, bool, str, bytes, type(None), ChannelPhase, ChannelId, Transaction,
                                         ChannelTypeFeatures, OutPoint))
    assert not any(_immutable(t) for t in (dict, list, Channel, InboundHTLC, PaymentInfo, object))
    # Ids, scripts and transactions refuse to be changed; a type written as bytes is not taken for immutable
    # unless it is bytes or declared so.
    assert issubclass(ChannelId, HexBytes) and _immutable(HexBytes)

    @register
    class Blob:
        def __init__(self) -> None:
            self.data = bytearray(b"can change")

        def __bytes__(self) -> bytes:
            return bytes(self.data)

    @register
    class Tag(bytes):
        pass

    assert not _immutable(Blob) and _immutable(Tag)
    # A channel's fields are all immutable but its HTLC maps: a quiet channel is kept.
    assert [n for n in ser_fields(Channel) if not _immutable_hint(CHANNEL_HINTS[n])] == list(HTLC_MAPS)


def test_every_manager_persisted_in_a_scenario_is_the_manager_encoded_afresh(monkeypatch):
    """Over scenarios with HTLCs in flight, closes and restarts, what each persist wrote with kept encodings
    is byte for byte what a new encoding of the manager writes."""
    from ldkkit.ln import channelmanager_persistence

    written = channelmanager_persistence.write
    compared: list[int] = []

    def write(cm):
        kept = written(cm)
        cache, cm._encoded_channels = cm._encoded_channels, EncodingCache()
        assert kept == written(cm)
        cm._encoded_channels = cache
        compared.append(1)
        return kept

    monkeypatch.setattr(channelmanager_persistence, "write", write)
    for name in ("force_close_htlc_in_flight", "send_retry_then_succeed", "receive_mpp", "restart_replay"):
        scenarios.run(name)
    assert len(compared) > 250


def test_a_quiet_managers_write_reuses_its_last_bytes_but_its_height():
    """A manager whose channels all kept their encodings and with nothing else to write (no events, payments or
    HTLCs) is written as its last write up to its height, then the height: the same bytes as a fresh encoding. Any
    other part, or a channel encoded again, writes it all anew."""
    cm = scenarios.run("inbound_open_accept").node.channel_manager
    encoded: list[object] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoding_cache, "encode", lambda v: encoded.append(v) or ser.encode(v))
        cm.encode()
        encoded.clear()
        for height in (cm.best_block_height + 1, 2**40):  # (a height written in more bytes than the last)
            cm.best_block_height = height
            kept = cm.encode()
            cache, cm._encoded_channels = cm._encoded_channels, EncodingCache()
            assert kept == cm.encode()
            cm._encoded_channels = cache
        assert len(encoded) == 2  # the fresh ones only
        cm.intercept_scids.add(7)  # another part: written whole
        assert cm.encode() == ser.encode(encoded[-1]) and len(encoded) == 2 + 1
        cm.intercept_scids.clear()  # quiet again, as before it
        cm.encode()
        assert len(encoded) == 2 + 1
        chan = next(iter(cm.channels.values()))
        chan.push_msat += 1  # a channel encoded again: the dict too
        cm.encode()
        assert len(encoded) == 2 + 2


def test_short_strings_are_kept_as_written_and_the_kept_ones_stay_few():
    """A string's bytes are kept for its next write (field names, dict keys), only the short ones and at most
    ``_MAX_STRS``: a kit that encodes a million distinct texts keeps no more, and every one reads back."""
    texts = [f"text {i}" for i in range(ser._MAX_STRS + 100)] + ["x" * (ser._MAX_STR_LEN + 1)]
    assert ser.decode(ser.encode(tuple(texts))) == tuple(texts)
    assert ser.decode(ser.encode(tuple(texts))) == tuple(texts)  # (again, from what was kept)
    assert len(ser._STRS) <= ser._MAX_STRS and "x" * (ser._MAX_STR_LEN + 1) not in ser._STRS
    assert ser._STRS["text 0"] == ser.encode_item("text 0")
