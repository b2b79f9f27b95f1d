"""Payments we expect: the hash and secret an invoice carries, and the check an HTLC to us must pass.

Mirrors ``lightning::ln::inbound_payment`` in LDK 0.1, which stores nothing. The payment secret carries what the
node must know of the payment (how its hash was made, its minimum amount, its expiry), encrypted under a key of the
node's own (:class:`ExpandedKey`); :func:`verify` reads them back from the secret alone. So any ChannelManager of the
node, however old (restored from disk after a crash, say), accepts a payment to an invoice it made. The preimage of a
hash LDK made is an HMAC of the secret's parts under another of the node's keys, found again the same way.

Simplified against LDK 0.1: the metadata is encrypted with an HMAC-SHA256 keystream where LDK uses ChaCha20 (the same
idea, with Python's own library); a custom ``min_final_cltv_expiry_delta`` is not kept in it; no spontaneous-payment
(async payments) method.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from ..errors import APIError
from ..events import PaymentPurpose
from ..ln.msgs import FinalPayload
from ..routing.router import MAX_VALUE_MSAT
from ..types import PaymentHash, PaymentPreimage, PaymentSecret

IV_LEN = 16
METADATA_LEN = 16
AMT_MSAT_LEN = 8
#: The payment's method takes the top 3 bits of the metadata's first byte.
METHOD_TYPE_OFFSET = 5

#: LDK adds two hours to an inbound payment's expiry (``construct_metadata_bytes``): it is judged against the newest
#: block's header time, which may lag the clock by that much, and a payment must never be failed too early. A payment
#: made a little after its invoice expired is claimable (LDK: "If you need exact expiry semantics, you should enforce
#: them upon receipt of PaymentClaimable").
EXPIRY_MARGIN_SECS = 7200


class Method(enum.IntEnum):
    """Mirrors ``inbound_payment::Method``: who made the payment hash."""

    LdkPaymentHash = 0  # create: LDK made the preimage, and finds it again
    UserPaymentHash = 1  # create_from_hash: you keep the preimage


@dataclass(frozen=True)
class ExpandedKey:
    """Mirrors ``lightning::ln::inbound_payment::ExpandedKey``: the node's keys for its payment secrets, HKDF-expanded
    from its inbound payment key material (LDK expands six; inbound payments use these three)."""

    metadata_key: bytes
    ldk_pmt_hash_key: bytes
    user_pmt_hash_key: bytes

    @classmethod
    def new(cls, key_material: bytes) -> ExpandedKey:
        """LDK's ``ExpandedKey::new``: ``hkdf_extract_expand`` of the material, salted with LDK's label."""
        prk = _hmac(b"LDK Inbound Payment Key Expansion", key_material)
        keys, previous = [], b""
        for i in range(1, 4):
            previous = _hmac(prk, previous + bytes([i]))
            keys.append(previous)
        return cls(*keys)


def _hmac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def create(
    keys: ExpandedKey, min_value_msat: Optional[int], invoice_expiry_delta_secs: int,
    entropy_source: Callable[[], bytes], current_time: int,
) -> tuple[PaymentHash, PaymentSecret]:
    """Mirrors ``inbound_payment::create``: the preimage is an HMAC of a random IV and the metadata, so the secret
    (the IV and the encrypted metadata) is all the node needs to find it again."""
    metadata = _metadata(min_value_msat, Method.LdkPaymentHash, invoice_expiry_delta_secs, current_time)
    iv = entropy_source()[:IV_LEN]
    preimage = PaymentPreimage(_hmac(keys.ldk_pmt_hash_key, iv, metadata))
    return preimage.payment_hash(), _secret(iv, metadata, keys)


def create_from_hash(
    keys: ExpandedKey, min_value_msat: Optional[int], payment_hash: PaymentHash, invoice_expiry_delta_secs: int,
    current_time: int,
) -> PaymentSecret:
    """Mirrors ``inbound_payment::create_from_hash``: the caller keeps the preimage; the IV authenticates the hash."""
    metadata = _metadata(min_value_msat, Method.UserPaymentHash, invoice_expiry_delta_secs, current_time)
    iv = _hmac(keys.user_pmt_hash_key, metadata, bytes(payment_hash))[:IV_LEN]
    return _secret(iv, metadata, keys)


def _metadata(min_value_msat: Optional[int], method: Method, invoice_expiry_delta_secs: int,
              current_time: int) -> bytes:
    """LDK's ``construct_metadata_bytes``: the minimum amount (its top 3 bits the method), then the expiry. LDK's
    ``Err(())`` for an amount over the bitcoin supply is a ValueError here."""
    if min_value_msat is not None and (type(min_value_msat) is not int or not 0 <= min_value_msat < 1 << 64):
        raise TypeError(f"min_value_msat must be None or a u64 (an int from 0 to 18,446,744,073,709,551,615), "
                        f"got {min_value_msat!r}")
    if min_value_msat is not None and min_value_msat > MAX_VALUE_MSAT:
        raise ValueError(f"min_value_msat {min_value_msat:,} is more than all bitcoin: {MAX_VALUE_MSAT:,} msat")
    amount = bytearray((min_value_msat or 0).to_bytes(AMT_MSAT_LEN, "big"))
    amount[0] |= method << METHOD_TYPE_OFFSET
    expiry = current_time + invoice_expiry_delta_secs + EXPIRY_MARGIN_SECS
    return bytes(amount) + expiry.to_bytes(METADATA_LEN - AMT_MSAT_LEN, "big")


def _crypt(metadata: bytes, iv: bytes, keys: ExpandedKey) -> bytes:
    """Encrypt or decrypt the metadata (the same XOR both ways) with a keystream of the IV under the metadata key."""
    stream = _hmac(keys.metadata_key, iv)
    return bytes(a ^ b for a, b in zip(metadata, stream, strict=False))


def _secret(iv: bytes, metadata: bytes, keys: ExpandedKey) -> PaymentSecret:
    """LDK's ``construct_payment_secret``: the IV, then the encrypted metadata."""
    return PaymentSecret(iv + _crypt(metadata, iv, keys))


def _read(payment_secret: PaymentSecret, keys: ExpandedKey) -> tuple[bytes, bytes, Optional[Method], int, int]:
    """LDK's ``decrypt_metadata``, taken apart: the IV, the metadata, its method (None if unknown), minimum amount
    and expiry."""
    data = bytes(payment_secret)
    iv, metadata = data[:IV_LEN], _crypt(data[IV_LEN:], data[:IV_LEN], keys)
    bits = metadata[0] >> METHOD_TYPE_OFFSET
    method = Method(bits) if bits in Method._value2member_map_ else None
    min_amt = int.from_bytes(bytes([metadata[0] & 0b0001_1111]) + metadata[1:AMT_MSAT_LEN], "big")
    return iv, metadata, method, min_amt, int.from_bytes(metadata[AMT_MSAT_LEN:], "big")


def verify(
    keys: ExpandedKey, payment_hash: PaymentHash, payment_data: FinalPayload, highest_seen_timestamp: int,
) -> Optional[PaymentPurpose]:
    """Mirrors ``inbound_payment::verify``: what the secret says of a payment we made, if it authenticates the hash,
    the sender meant to pay at least its minimum, and it has not expired; else None. The HMAC is checked first."""
    if payment_data.payment_secret is None:
        return None
    iv, metadata, method, min_amt, expiry = _read(payment_data.payment_secret, keys)
    preimage = None
    match method:
        case Method.UserPaymentHash:
            if not hmac.compare_digest(iv, _hmac(keys.user_pmt_hash_key, metadata, bytes(payment_hash))[:IV_LEN]):
                return None
        case Method.LdkPaymentHash:
            preimage = PaymentPreimage(_hmac(keys.ldk_pmt_hash_key, iv, metadata))
            if preimage.payment_hash() != payment_hash:
                return None
        case _:
            return None
    if payment_data.total_msat < min_amt or expiry < highest_seen_timestamp:
        return None
    return PaymentPurpose.Bolt11InvoicePayment(preimage, payment_data.payment_secret)


def get_payment_preimage(
    payment_hash: PaymentHash, payment_secret: PaymentSecret, keys: ExpandedKey,
) -> PaymentPreimage:
    """Mirrors ``inbound_payment::get_payment_preimage``: the preimage of a hash LDK made, from its secret."""
    iv, metadata, method, _, _ = _read(payment_secret, keys)
    match method:
        case Method.LdkPaymentHash:
            preimage = PaymentPreimage(_hmac(keys.ldk_pmt_hash_key, iv, metadata))
            if preimage.payment_hash() != payment_hash:
                raise APIError.APIMisuseError(
                    f"Payment hash {payment_hash} did not match decoded preimage {bytes(preimage).hex()}")
            return preimage
        case Method.UserPaymentHash:
            raise APIError.APIMisuseError("Expected payment type to be LdkPaymentHash, instead got UserPaymentHash")
        case _:
            raise APIError.APIMisuseError(f"Unknown payment type: {metadata[0] >> METHOD_TYPE_OFFSET}")


def payment_purpose(
    keys: ExpandedKey, payment_hash: PaymentHash, payment_data: FinalPayload, current_time: int,
) -> Optional[PaymentPurpose]:
    """What an HTLC to us pays for, or None if it must be failed back.

    A keysend payment proves itself: its preimage must hash to the payment hash (LDK checks
    this in ``create_recv_pending_htlc_info``). Any other payment must pass :func:`verify`.
    """
    if payment_data.keysend_preimage is not None:
        if payment_data.keysend_preimage.payment_hash() == payment_hash:
            return PaymentPurpose.SpontaneousPayment(payment_data.keysend_preimage)
        return None
    return verify(keys, payment_hash, payment_data, current_time)
