"""BOLT 11 invoices: what an invoice the kit makes says is what its string says, to any reader."""

import bolt11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldkkit.bitcoin import Network
from ldkkit.invoice import Bolt11Invoice, _read
from ldkkit.types import PaymentHash, PaymentSecret, PublicKey

KEY = bytes(range(1, 33))


def make(**changes) -> Bolt11Invoice:
    fields = dict(network=Network.Regtest, node_secret_key=KEY, payment_hash=PaymentHash(b"\x11" * 32),
                  payment_secret=PaymentSecret(b"\x22" * 32), amount_msat=10_000, description="coffee",
                  timestamp=1_700_000_000)
    return Bolt11Invoice.create(**{**fields, **changes})


def said(invoice: Bolt11Invoice) -> tuple:
    return (invoice.payment_hash(), invoice.payment_secret(), invoice.amount_milli_satoshis(),
            invoice.recover_payee_pub_key(), invoice.min_final_cltv_expiry_delta(), invoice.expiry_time_secs(),
            invoice.duration_since_epoch_secs(), invoice.description(), invoice.network())


@given(amount=st.none() | st.integers(1, 21_000_000 * 10**11).filter(lambda a: a % 10**14),
       description=st.text(max_size=40), expiry=st.integers(1, 10**6), cltv=st.integers(18, 2016),
       network=st.sampled_from(list(Network)), timestamp=st.integers(1_600_000_000, 1_900_000_000))
def test_a_new_invoice_says_what_its_string_says(amount, description, expiry, cltv, network, timestamp):
    invoice = make(amount_msat=amount, description=description, expiry_secs=expiry,
                   min_final_cltv_expiry_delta=cltv, network=network, timestamp=timestamp)
    read_back = Bolt11Invoice.from_str(str(invoice))
    assert said(read_back) == said(invoice) == (
        PaymentHash(b"\x11" * 32), PaymentSecret(b"\x22" * 32), amount, PublicKey.from_secret_key(KEY), cltv,
        expiry, timestamp, description, network)
    assert read_back == invoice and hash(read_back) == hash(invoice)
    decoded = bolt11.decode(str(invoice))  # a reader other than the kit agrees
    assert decoded.payee == PublicKey.from_secret_key(KEY).hex() and decoded.payment_hash == "11" * 32


def test_the_same_invoice_made_twice_is_the_same_string():
    assert str(make()) == str(make())  # signing is deterministic (RFC 6979), so a replayed scenario matches
    assert str(make(amount_msat=10_001)) != str(make())


def test_an_invoice_read_twice_is_decoded_once():
    text = str(make(description="read me"))
    _read.cache_clear()
    Bolt11Invoice(text), Bolt11Invoice(text)
    assert _read.cache_info().hits == 1 and _read.cache_info().misses == 1


def test_a_damaged_invoice_is_refused_with_a_clear_error():
    text = str(make())
    with pytest.raises(ValueError, match="not a valid BOLT 11 invoice"):
        Bolt11Invoice(text[:-1] + ("q" if text[-1] != "q" else "p"))


def test_an_amount_the_bolt11_library_would_write_wrong_is_refused_clearly():
    """bolt11 writes a whole multiple of 1,000 BTC as a thousandth of it (10^14 msat as "1", one bitcoin)."""
    with pytest.raises(ValueError, match="cannot write an invoice for 100,000,000,000,000 msat"):
        make(amount_msat=10**14)
    assert make(amount_msat=10**14 + 1).amount_milli_satoshis() == 10**14 + 1
