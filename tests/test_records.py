"""Records and Rust enums as the kit declares LDK's types: defined here, at run time, so every step of
building them (variants, registration, field checks) is exercised by the test itself.

No ``from __future__ import annotations`` here: the records' field types must be real objects, as
``typing.get_type_hints`` cannot resolve names local to a test function.
"""

import enum
import weakref
from datetime import timedelta
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.ser import U8, U16, U32, Record, RustEnum, decode, encode, register
from ldkkit.types import PaymentHash


def test_a_rust_enum_declares_its_variants_as_nested_classes():
    class LightShape(RustEnum):
        """A test enum."""

        class Circle:
            """Round."""

            radius: U16

        class Dot:
            pass

        class _Helper:  # private: not a variant
            pass

        def area(self) -> int:
            return 3 * self.radius**2 if isinstance(self, LightShape.Circle) else 0

    circle = LightShape.Circle(2)
    assert list(LightShape.VARIANTS) == ["Circle", "Dot"]
    assert LightShape.VARIANTS["Circle"] is LightShape.Circle and isinstance(circle, LightShape)
    assert LightShape.Circle.__qualname__.endswith("LightShape.Circle") and LightShape.Circle.__doc__ == "Round."
    assert circle.area() == 12 and LightShape.Dot().area() == 0
    assert repr(circle).endswith("LightShape.Circle(radius=2)")
    match circle:
        case LightShape.Circle(radius=r):
            assert r == 2
        case _:
            pytest.fail("a variant matches its class pattern")
    with pytest.raises(TypeError, match=r"LightShape is an enum: build one of its variants \(Circle, Dot\)$"):
        LightShape()
    assert decode(encode(circle)) == circle  # registered under its qualified name: it round-trips
    ref = weakref.ref(circle)
    assert vars(circle) == {"radius": 2} and ref() is circle and circle.__weakref__ is ref  # an ordinary instance
    with pytest.raises(dataclass_frozen()):
        circle.radius = 3  # type: ignore[misc]


def dataclass_frozen() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


class Mood(enum.Enum):
    HAPPY = "happy"


@register
class Mood2(enum.Enum):
    CALM = "calm"


def test_field_types_are_checked_when_a_record_is_built_with_what_each_must_be():
    class Sample(Record):
        tiny: U8
        count: U32
        maybe: Optional[U16]
        table: dict[str, int]
        items: tuple[U8, ...]
        plain: int
        flag: bool
        name: str
        raw: bytes
        hash: PaymentHash

    good = dict(tiny=255, count=0, maybe=5, table={"a": 1}, items=[1, 2], plain=-5, flag=True, name="x",
                raw=b"\x00", hash=PaymentHash(b"\x01" * 32))
    sample = Sample(**good)
    assert sample.items == (1, 2) and sample.maybe == 5  # lists become tuples: records stay hashable
    assert Sample(**{**good, "maybe": None, "tiny": 0}).maybe is None
    bad = {
        "tiny": (256, "a u8 (an int from 0 to 255)"),
        "count": (True, "a u32 (an int from 0 to 4,294,967,295)"),
        "maybe": (-1, "None or a u16 (an int from 0 to 65,535)"),
        "table": ({"a": "1"}, "a dict of a str to an int"),
        "items": ((1, 300), "a list of a u8 (an int from 0 to 255)"),
        "plain": (1.0, "an int"),
        "flag": (1, "a bool"),
        "name": (b"x", "a str"),
        "raw": ("00", "a bytes"),
        "hash": (b"\x01" * 32, "a PaymentHash"),
    }
    for field, (value, must_be) in bad.items():
        with pytest.raises(TypeError) as info:
            Sample(**{**good, field: value})
        wrap = " (wrap raw bytes in the named type, e.g. PaymentHash(b'...'))" if isinstance(value, bytes) else ""
        assert str(info.value) == f"{Sample.__qualname__}.{field} must be {must_be}, got {value!r}{wrap}"
    assert Sample(**{**good, "table": {}, "items": ()}).table == {}
    with pytest.raises(TypeError, match="must be a list of"):
        Sample(**{**good, "items": "12"})
    with pytest.raises(TypeError, match="must be a dict of"):
        Sample(**{**good, "table": [("a", 1)]})


class Mixed(Record):
    tiny: U8
    maybe: Optional[U16]
    items: tuple[U8, ...]
    flag: bool
    hash: Optional[PaymentHash]


@given(st.tuples(*[st.one_of(st.none(), st.booleans(), st.integers(-2, 70_000), st.binary(max_size=2),
                             st.just(PaymentHash(b"\x01" * 32)), st.lists(st.integers(-1, 300), max_size=3))] * 5))
def test_the_compiled_checks_judge_every_value_as_the_field_by_field_checks_do(values):
    """Each record class compiles its checks into one function (building records is hot); whatever the values,
    it accepts, refuses (with the same message) and stores them exactly as checking each field in turn does."""
    from ldkkit.ser import _check_fields

    def outcome(build):
        try:
            return "built", vars(build())
        except TypeError as e:
            return "refused", str(e)

    def field_by_field():
        record = object.__new__(Mixed)
        for name, value in zip(("tiny", "maybe", "items", "flag", "hash"), values, strict=True):
            object.__setattr__(record, name, value)
        _check_fields(record)
        return record

    assert outcome(lambda: Mixed(*values)) == outcome(field_by_field)


def test_valid_values_are_judged_by_the_compiled_checks_alone(monkeypatch):
    """The field-by-field checks are for a value that fails (to name it) and for sequences to store anew as tuples
    (a list): a valid record whose sequences are tuples already never reaches them, whatever its field types."""
    from ldkkit import ser

    reached = []
    real = ser._check_fields
    monkeypatch.setattr(ser, "_check_fields", lambda record, only=None: reached.append(only) or real(record, only))

    class Plain(Record):  # defined after the spy: its first record compiles its checks with it
        tiny: U8
        wide: U32
        maybe: Optional[U16]
        flag: bool
        name: str
        raw: bytes
        plain: int
        hash: Optional[PaymentHash]
        items: tuple[U8, ...]
        maybe_items: Optional[tuple[U8, ...]]

    Plain(255, 2**32 - 1, 65_535, True, "x", b"", -1, PaymentHash(b"\x01" * 32), (1,), (2,))
    Plain(0, 0, None, False, "", b"x", 0, None, (), None)
    assert reached == []
    assert Plain(0, 0, None, False, "", b"x", 0, None, [1], [2]).items == (1,)  # a list is stored as a tuple
    assert reached == [None]
    with pytest.raises(TypeError, match="Plain.tiny must be a u8"):
        Plain(256, 0, None, False, "", b"x", 0, None, (), None)
    assert reached[1:] == [None]


def test_a_subclass_of_a_record_checks_its_own_fields():
    class Base(Record, frozen=False):
        amount: U8

    class Child(Base, frozen=False):
        note: str

    Base(1)  # Base compiles its checks first: Child must not use them
    with pytest.raises(TypeError, match="Child.note must be a str"):
        Child(1, 2)
    with pytest.raises(TypeError, match="Child.amount must be a u8"):
        Child(256, "x")


def test_a_record_with_its_own_post_init_keeps_it():
    seen = []

    class Noted(Record):
        amount: U8

        def __post_init__(self):
            seen.append(self.amount)
            super().__post_init__()

    Noted(1)
    Noted(2)
    assert seen == [1, 2]
    with pytest.raises(TypeError, match="Noted.amount must be a u8"):
        Noted(300)


def test_a_mutable_record_may_be_changed():
    class Counter(Record, frozen=False):
        value: int

    counter = Counter(1)
    counter.value = 2
    assert counter == Counter(2)


def test_a_flat_dict_has_one_column_per_leaf_with_dotted_keys():
    class PaymentShape(RustEnum):
        class Split:
            parts: tuple[U32, ...]
            mood: Mood2
            raw: bytes
            note: Optional[str]
            wait: timedelta
            hash: PaymentHash

    class Holder(Record):
        shape: PaymentShape
        error: object

    split = PaymentShape.Split((1_000, 2), Mood2.CALM, b"\xab", None, timedelta(seconds=1), PaymentHash(b"\x02" * 32))
    assert split.to_dict() == {"payment_shape": "Split", "parts": "[1000, 2]", "mood": "CALM", "raw": "ab",
                               "note": None, "wait": timedelta(seconds=1), "hash": str(PaymentHash(b"\x02" * 32))}
    row = Holder(split, ValueError("no")).to_dict()
    assert row["shape"] == "Split" and row["shape.parts"] == "[1000, 2]" and row["error"] == "no"
    assert "payment_shape" not in row  # only a variant's own row names its enum


def test_a_nested_record_is_a_type_of_the_enum_not_a_variant_and_amounts_show_their_unit():
    class Payment(RustEnum):
        class Part(Record):
            amount_msat: U32

        class Whole:
            part: Record
            amount_msat: U32

    whole = Payment.Whole(Payment.Part(1_000), 2_000)
    assert list(Payment.VARIANTS) == ["Whole"] and not isinstance(Payment.Part(1), Payment)
    assert repr(whole).endswith("Payment.Whole(part=" + repr(Payment.Part(1_000)) + ", amount_msat=2,000 msat)")
    assert repr(Payment.Part(1_000)).endswith("Payment.Part(amount_msat=1,000 msat)")


def test_a_field_type_the_kit_cannot_check_is_refused_by_name():
    class Odd(Record):
        values: list[int]

    with pytest.raises(TypeError, match=r"^ldkkit cannot check fields of type list\[int\]$"):
        Odd([1])


def test_flags_and_nothing_show_as_python_writes_them():
    class Flagged(Record):
        flag: bool
        paid_msat: bool  # a flag, whatever its name: never an amount
        note: Optional[str]

    assert repr(Flagged(True, False, None)).endswith("Flagged(flag=True, paid_msat=False, note=None)")


def test_a_value_that_shows_itself_short_is_one_column_even_if_it_is_a_record():
    class Span(Record):
        start: int

        def short(self) -> str:
            return f"from {self.start}"

    class Holder(Record):
        span: Span

    assert Holder(Span(3)).to_dict() == {"span": str(Span(3))}


def test_types_registered_at_run_time_encode_by_kind_and_decode_back():
    @register
    class Colour(enum.Enum):
        RED = "red"

    @register
    class Tag(bytes):
        def __bytes__(self) -> bytes:
            return bytes(memoryview(self))

    @register
    class Pair:
        SER_FIELDS = ("a", "b")

        def __init__(self, a: int, b: int) -> None:
            self.a, self.b = a, b

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Pair) and (self.a, self.b) == (other.a, other.b)

    class Keyed(Record):  # a record that can also show itself as bytes is still written field by field
        key: bytes
        index: int

        def __bytes__(self) -> bytes:
            return self.key

    for value in (Colour.RED, Tag(b"\x01\x02"), Pair(1, 2), Keyed(b"\x07", 3)):
        back = decode(encode(value))
        assert type(back) is type(value) and back == value

    class Unknown:
        pass

    with pytest.raises(TypeError, match=r"^ldkkit cannot encode a .*Unknown$"):
        encode(Unknown())


def test_a_records_line_shows_amounts_with_their_unit_and_times_in_milliseconds():
    class Shown(Record):
        push_msat: U32
        parts_msat: tuple[U32, ...]
        funding_satoshis: U32
        dust_sats: U32
        change_sat: U32
        value: U32
        count: U32
        wait: timedelta
        mood: Mood2

    shown = Shown(1_000, (1_000, 20_000), 6_000_000, 330, 294, 1_500, 1_234, timedelta(milliseconds=250),
                  Mood2.CALM)
    assert repr(shown).endswith(
        "Shown(push_msat=1,000 msat, parts_msat=[1,000 msat, 20,000 msat], funding_satoshis=6,000,000 sat, "
        "dust_sats=330 sat, change_sat=294 sat, value=1,500 sat, count=1234, wait=250 ms, mood=Mood2.CALM)")


class Nested(Record):
    rows: tuple[tuple[U8, ...], ...]


def test_a_checked_tuple_is_kept_and_anything_else_becomes_one():
    """A tuple whose items all pass as they are is stored as given (no copy per record); a list, or a tuple
    holding a list, becomes tuples all the way down; a bad item is refused either way."""
    rows = ((1, 2), (3,))
    assert Nested(rows).rows is rows
    mixed = Nested(((1,), [2, 3])).rows
    assert mixed == ((1,), (2, 3)) and type(mixed[1]) is tuple
    assert Nested([[1], (2,)]).rows == ((1,), (2,))
    for bad in (((1,), (256,)), ((1,), "2"), [(1,), [-1]]):
        with pytest.raises(TypeError, match="Nested.rows must be a list of a list of a u8"):
            Nested(bad)
