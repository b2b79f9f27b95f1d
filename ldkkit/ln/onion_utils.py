"""Building a payment's onion: what each hop of a path is told to do.

Mirrors ``build_onion_payloads`` of ``lightning::ln::onion_utils`` in LDK 0.1, without the
encryption: ldkkit's onion (:class:`ldkkit.ln.msgs.Onion`) is the plain payloads, one per hop.
"""

from __future__ import annotations

from typing import Optional

from ..ln import msgs
from ..ln.outbound_payment import RecipientOnionFields
from ..routing.router import Path
from ..types import PaymentPreimage


def build_onion_payloads(
    path: Path, total_msat: int, recipient_onion: RecipientOnionFields, starting_htlc_offset: int,
    keysend_preimage: Optional[PaymentPreimage],
) -> tuple[msgs.Onion, int, int]:
    """The onion for ``path``, and the amount and CLTV expiry of the HTLC that carries it to the first hop.

    ``starting_htlc_offset`` is the height the CLTV deltas add to: LDK's ``cur_height``, the current block's plus one
    (the HTLC goes out as the next block is being mined).
    """
    hops = path.hops
    final_cltv = starting_htlc_offset + hops[-1].cltv_expiry_delta
    final = msgs.FinalPayload(
        hops[-1].fee_msat, final_cltv, recipient_onion.payment_secret, total_msat,
        recipient_onion.payment_metadata, keysend_preimage, recipient_onion.custom_tlvs(),
    )
    # Walk back from the recipient: each hop forwards what the next needs, plus its fee.
    payloads: list[msgs.HopPayload] = []
    amount, cltv = hops[-1].fee_msat, final_cltv
    for i in range(len(hops) - 1, 0, -1):
        payloads.insert(0, msgs.HopPayload(hops[i].short_channel_id, amount, cltv))
        amount += hops[i - 1].fee_msat
        cltv += hops[i - 1].cltv_expiry_delta
    return msgs.Onion(tuple(payloads), final), amount, cltv
