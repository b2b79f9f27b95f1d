"""Workbook 6: on chain. Every spendable output comes back to your wallet; every fee bump is paid.

The story: you close one channel cooperatively and force-close another while a payment you sent
over it is stuck, so your commitment carries an HTLC and must confirm urgently, as fees spike; a third peer force-closes
its channel with you, so its commitment pays your balance (a ``StaticPaymentOutput``). Then workbook 2's peer
vanishes before it signs: its funding is discarded.

Rules, judged from the chain and the wallet:
- every output of every ``SpendableOutputs`` is swept, by a confirmed transaction, into your wallet
  (a cooperative close's ``StaticOutput`` included: hand over ``outputs`` as they are, no exclusions,
  no far-off ``delay_until_height``), at a fee bitcoind relays and no more than the node's highest estimate;
- each was in the sweeper's care (or spent by a transaction you broadcast) by the time your handler
  returned: LDK forgets the event then, and a crash before a later hand-over would lose the coins;
- every ``BumpTransaction`` is handed, as it is, to ``bump_tx_event_handler.handle_event``;
- what each one asked for confirmed: the commitment transaction (``ChannelClose``), before the HTLC on it
  expires, and the spend of each HTLC output (``HTLCResolution``). LDK does not broadcast these itself while they pay
  too little;
- the payment stuck on the force-closed channel is recorded as workbook 4 says: ``Pending`` until
  ``PaymentFailed`` (closing its channel does not end it), then ``Failed``;
- a funding transaction LDK says to discard (``DiscardFunding``) is never broadcast, as workbook 2 says.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..chain.chaininterface import ConfirmationTarget
from ..events import Event
from ..events.bump_transaction import BumpTransactionEvent
from ..scenarios import Stage, vanish_when_paid
from ..sign import SpendableOutputDescriptor, descriptor_outpoint
from ..sim.chain import is_final
from . import funding_generation_ready, sending_payments
from .common import CheckResult, Handling, Played, Session, count, fail, held_back
from .funding_generation_ready import MIN_RELAY_SAT_PER_VB
from .recorder import replayed

#: The urgent feerate during the force-close, four times the usual 5,000 sat/kW (80 sat/vB): what LDK asks for the
#: fee bumps then is what they must pay, however high (a handler that caps it, or waits for fees to fall, loses the
#: HTLC).
FEE_SPIKE_SAT_PER_KW = 20_000


def story(stage: Stage) -> None:
    bob, carol, dave = stage.peer("bob"), stage.peer("carol", handler=vanish_when_paid), stage.peer("dave")
    stage.open(stage.me, bob, 1_000_000)
    stage.open(stage.me, carol, 1_000_000)
    stage.open(stage.me, dave, 1_000_000)
    stage.pay(stage.me, stage.invoice(carol, 50_000_000))  # carol goes offline: the HTLC stays on the channel
    me = stage.me.channel_manager
    bob_channel, carol_channel = stage.channel_between(stage.me, bob), stage.channel_between(stage.me, carol)
    me.close_channel(bob_channel.channel_id, bob.node_id)
    # Fees spike just before: the commitment (an HTLC on it) and the HTLC's claim must confirm all the same.
    stage.me.bitcoind_client.set_fee_estimate(ConfirmationTarget.UrgentOnChainSweep, FEE_SPIKE_SAT_PER_KW)
    me.force_close_broadcasting_latest_txn(carol_channel.channel_id, carol.node_id, "going away")
    dave_channel = stage.channel_between(dave, stage.me)  # dave force-closes: its commitment pays you directly
    dave.channel_manager.force_close_broadcasting_latest_txn(dave_channel.channel_id, stage.me.node_id, "going away")
    stage.settle()
    stage.mine(150)  # the commitment's own output matures, and the HTLC expires and is taken back
    stage.mine(50)  # the HTLC's second-stage output matures


def rules(session: Session, result: CheckResult) -> None:
    played = session.play("on_chain", story)
    spendable, bumps = played.handled(Event.SpendableOutputs), played.handled(Event.BumpTransaction)
    if not spendable or not bumps:
        raise fail(played, None, "SpendableOutputs and BumpTransaction events", f"{len(spendable)} and {len(bumps)}",
                   held_back(played) or "your handler must open and fund channels first (workbooks 1 and 2).")
    swept = judge_sweeps(played)
    judge_kept_before_returning(played)
    judge_bumps(played)
    judge_bumped_confirmed(played)
    sending_payments.judge_outbound_records(played)
    discarded = funding_generation_ready.judge_discarded(
        session.play("a peer vanishing before it signs", funding_generation_ready.vanishing_peer_story))
    result.add("every spendable output swept into your wallet", f"{swept:,} sats from {count(len(spendable), 'event')}")
    result.add("BumpTransaction handed to the BumpTxEventHandler", count(len(bumps), "event"))
    result.add("your commitment and HTLC claims confirmed", "paid for from your wallet")
    result.add("DiscardFunding: the transaction never broadcast", count(discarded, "transaction"))


def judge_sweeps(played: Played) -> int:
    """Each output LDK said you can spend ends in a confirmed transaction paying your wallet, and no one else."""
    chain, wallet = played.world.chain, played.me.bitcoind_client
    spenders = {txin.previous_output: txid for txid, tx in chain.transactions.items() for txin in tx.input}
    total = 0
    for handling in played.handled(Event.SpendableOutputs):
        for descriptor in handling.event.outputs:
            outpoint = descriptor_outpoint(descriptor)
            value = chain.get_transaction(outpoint.txid).output[outpoint.vout].value
            txid = spenders.get(outpoint)
            tx = chain.get_transaction(txid) if txid is not None else None
            if tx is not None and chain.confirmations(txid) and not any(wallet.is_mine(o.script_pubkey)
                                                                        for o in tx.output):
                raise fail(played, handling.event, f"the output {outpoint} ({value:,} sats) swept into your wallet",
                           f"it never came back to your wallet: the transaction that spent it ({txid!r}) paid all of "
                           "it to scripts that are not your wallet's", _NOT_YOURS)
            if tx is None or not chain.confirmations(txid):
                why, hint = _explain(played, handling, descriptor)
                raise fail(played, handling.event, f"the output {outpoint} ({value:,} sats) swept into your wallet",
                           f"it never came back to your wallet{why}", hint)
            elsewhere = sum(o.value for o in tx.output if not wallet.is_mine(o.script_pubkey))
            if elsewhere:
                raise fail(played, handling.event, f"the output {outpoint} ({value:,} sats) swept into your wallet",
                           f"the transaction that spent it ({txid!r}) paid {elsewhere:,} sats to scripts that are not "
                           "your wallet's", _NOT_YOURS)
            _judge_fee(played, handling, outpoint, value, txid, tx)
            total += value
    return total


#: What to do when a sweep of your own pays scripts that are not your wallet's.
_NOT_YOURS = ("sweep to your own wallet only: output_sweeper.track_spendable_outputs spends to an address of your "
              "wallet, and so must a spend of your own (bitcoind_client.get_change_script(); "
              "keys_manager.get_destination_script() is LDK's key, not your wallet's).")


def _judge_fee(played: Played, handling: Handling, outpoint: Any, value: int, txid: Any, tx: Any) -> None:
    """What a sweep pays miners stays within the node's own highest fee estimate: above it, coins that LDK handed you
    go to miners, not back to your wallet (the sweeper spends at ``OutputSpendingFee``)."""
    from ..chain.chaininterface import ConfirmationTarget

    chain = played.world.chain
    spent = sum(chain.get_transaction(i.previous_output.txid).output[i.previous_output.vout].value for i in tx.input)
    fee = spent - sum(o.value for o in tx.output)
    highest = played.me.bitcoind_client.get_est_sat_per_1000_weight(ConfirmationTarget.MaximumFeeEstimate)
    if fee < tx.vsize() * MIN_RELAY_SAT_PER_VB:  # (the simulated chain takes it; bitcoind never would)
        raise fail(played, handling.event, f"the output {outpoint} ({value:,} sats) swept into your wallet",
                   f"the transaction that spent it ({txid!r}) paid {fee:,} sats to miners, {fee / tx.vsize():,.2f} "
                   "sat/vB: less than bitcoind relays (its minrelaytxfee, 1 sat/vB), so it would never confirm",
                   "spend_spendable_outputs takes its feerate in sats per 1000 weight units (1 sat/vB is 250 of "
                   "them): take it from bitcoind_client.get_est_sat_per_1000_weight(ConfirmationTarget"
                   ".OutputSpendingFee), or hand the outputs to output_sweeper.track_spendable_outputs, which does.")
    if fee * 1000 > highest * tx.weight():
        raise fail(played, handling.event, f"the output {outpoint} ({value:,} sats) swept into your wallet",
                   f"the transaction that spent it ({txid!r}) paid {fee:,} of its {spent:,} sats to miners "
                   f"({fee * 1000 // tx.weight():,} sat/kW, over the node's highest estimate, {highest:,} sat/kW)",
                   "hand the outputs to output_sweeper.track_spendable_outputs, which spends them at LDK's "
                   "OutputSpendingFee; a spend of your own takes its feerate from bitcoind_client"
                   ".get_est_sat_per_1000_weight(ConfirmationTarget.OutputSpendingFee).")


def judge_kept_before_returning(played: Played) -> None:
    """When your handler returned from each ``SpendableOutputs``, its outputs were the sweeper's to spend, or spent."""
    broadcasts, chain = played.recorder.broadcasts, played.world.chain
    for handling in played.handled(Event.SpendableOutputs):
        spent = {txin.previous_output for tx, _ in broadcasts[:handling.broadcasts]
                 if chain.get_transaction(tx.compute_txid()) is not None  # (one the chain refused spent nothing)
                 for txin in tx.input}
        for descriptor in handling.event.outputs:
            outpoint = descriptor_outpoint(descriptor)
            if outpoint in handling.held_by_sweeper or outpoint in spent:
                continue
            later = [c.at for c in played.recorder.calls_for(handling, "output_sweeper.track_spendable_outputs")
                     if not c.during]
            stored = any(c.during for c in played.recorder.calls_for(handling, "fs_store.write"))
            gap = later[0] - handling.finished if later else 0.0
            raise fail(played, handling.event, f"the output {outpoint} in the OutputSweeper's care when your "
                       "handler returned", f"it was handed over only {gap:,.0f} s after your handler returned"
                       if gap >= 0.5 else "it was handed over only after your handler returned, by code of yours "
                       "still running then" if later else
                       "your handler stored something with fs_store.write, but returned before anything took it"
                       if stored else "your handler returned before anything took it",
                       "keeping the outputs on disk and spending them yourself later is what ldk-sample did before "
                       "LDK had an OutputSweeper; this workbook hands them to output_sweeper.track_spendable_outputs "
                       "before you return: it persists them, and sweeps them once they can be spent." if stored else
                       "LDK forgets an event once your handler returns, so a crash in between would lose these "
                       "coins for good: call output_sweeper.track_spendable_outputs before you return (the sweeper "
                       "persists them), not from a task that runs later.")


#: What to do when nothing more specific is known about an output that never came back.
HAND_OVER = ("LDK never spends these itself: hand event.outputs and event.channel_id to "
             "output_sweeper.track_spendable_outputs, which spends them to your wallet at once, and spends them "
             "again each block until that sweep confirms.")


#: What each kind of output is, in words (``SpendableOutputDescriptor``'s variants).
_KIND = {
    SpendableOutputDescriptor.StaticOutput: "a StaticOutput: a cooperative close pays you so",
    SpendableOutputDescriptor.DelayedPaymentOutput: "a DelayedPaymentOutput: your balance on a commitment you "
                                                    "broadcast, yours after to_self_delay blocks",
    SpendableOutputDescriptor.StaticPaymentOutput: "a StaticPaymentOutput: your balance on a commitment your peer "
                                                   "broadcast, as much yours to sweep as any other",
}


def _explain(played: Played, handling: Handling, descriptor: Any) -> tuple[str, str]:
    """Why ``descriptor`` never came back, from the handler's first hand-over to the sweeper, and the hint
    for that reason (never one for another reason: a right delay_until_height is not blamed)."""
    calls = played.recorder.calls_for(handling, "output_sweeper.track_spendable_outputs")
    built = [c for c in played.recorder.calls_for(handling, "keys_manager.spend_spendable_outputs")
             if descriptor in tuple(c.arguments.get("descriptors", ()))]
    chain, txs = played.world.chain, [c.returned for c in built if c.returned is not None]
    refused = [r for r in played.me.bitcoind_client.rejected if r.reason.startswith("non-final") and r.tx in txs]
    late = [tx for tx in txs if not is_final(tx, chain.height() + 1, chain.median_time_past())]
    if not calls and refused:  # (broadcast while its nLockTime was not reached, and never again once it was)
        return (f": you built a transaction spending it (keys_manager.spend_spendable_outputs) with nLockTime "
                f"{refused[0].tx.lock_time:,} and broadcast it, and bitcoind refused it ({refused[0].reason}); it was "
                "not broadcast again", "pass the current height (bitcoind_client.get_block_height(), as LDK recommends "
                "and its sweeper does: a transaction may enter only a block above its nLockTime) or locktime=None (0: "
                "no lock), or hand the outputs to output_sweeper.track_spendable_outputs, which broadcasts again until "
                "it confirms.")
    if not calls and late:
        return (f": you built a transaction spending it (keys_manager.spend_spendable_outputs) with nLockTime "
                f"{late[0].lock_time:,}, a block after the story's last ({chain.height():,}), and bitcoind refuses "
                "such a transaction (non-final)", "pass the current height (bitcoind_client.get_block_height(), as LDK "
                "recommends and its sweeper does) or locktime=None (0: no lock), or hand the outputs to "
                "output_sweeper.track_spendable_outputs, which spends them as soon as it may.")
    if not calls and built:
        return (": you built a transaction spending it (keys_manager.spend_spendable_outputs), and none spending it "
                "confirmed", "a transaction you build reaches the chain only once you broadcast it "
                "(bitcoind_client.broadcast_transactions([tx])), and must be broadcast again until it confirms: "
                "output_sweeper.track_spendable_outputs(event.outputs, event.channel_id, False, None) does all that.")
    if not calls:
        return ": the event's outputs were never handed to the OutputSweeper", HAND_OVER
    call = calls[0]
    if call["exclude_static_outputs"] and isinstance(descriptor, SpendableOutputDescriptor.StaticOutput):
        return (": you told the sweeper to exclude static outputs, and this is one",
                "a cooperative close pays you a plain StaticOutput: excluding static outputs leaves it unswept. "
                "Pass exclude_static_outputs=False.")
    # At delay_until_height the sweeper only broadcasts: at the story's last block, that sweep is unconfirmed.
    if call["delay_until_height"] is not None and call["delay_until_height"] >= played.world.chain.height():
        return (f": you told the sweeper to wait until block {call['delay_until_height']:,}",
                "pass delay_until_height=None: the sweeper spends outputs as soon as they are spendable.")
    if descriptor not in tuple(call["output_descriptors"]):
        return f": it was not among the outputs you handed over ({_KIND[type(descriptor)]})", HAND_OVER
    if call.error is not None:
        return f": track_spendable_outputs raised {type(call.error).__name__}: {call.error}", HAND_OVER
    return "", HAND_OVER


def judge_bumps(played: Played) -> None:
    claims_handed: set[Any] = set()  # (the claims of the requests handed over so far)
    # Each request is answered by the first hand-over equal to it, made after it was given and answering no other,
    # from whatever thread (a worker of yours, started for an earlier event, hands over under that event's handling).
    # (Looked for up to the first only: comparing a request with every later hand-over, deeply, took a handler whose
    # claims never confirmed, asked again at every block, minutes.)
    unanswered = list(played.recorder.calls_to("bump_tx_event_handler.handle_event"))
    for handling in played.handled(Event.BumpTransaction):
        if replayed(handling):  # (LDK ignores it, and asks again: what the asks led to is judged on chain)
            continue
        bump = handling.event.bump_event
        handed = next((c for c in unanswered if c.order > handling.order and c.arguments.get("event") == bump), None)
        if handed is not None:
            unanswered.remove(handed)
        outer = any(isinstance(c.arguments.get("event"), Event.BumpTransaction)
                    for c in played.recorder.calls_for(handling, "bump_tx_event_handler.handle_event"))
        if handed is None and outer:
            raise fail(played, handling.event, f"bump_tx_event_handler.handle_event(the inner {type(bump).__name__})",
                       "you handed over the Event.BumpTransaction itself, not its bump_event",
                       "the BumpTxEventHandler takes what the event carries, a BumpTransactionEvent: match "
                       "Event.BumpTransaction(bump_event) and hand bump_event over.")
        changed = next((c.arguments.get("event") for c in played.recorder.calls_for(handling,
                        "bump_tx_event_handler.handle_event") if type(c.arguments.get("event")) is type(bump)
                        and getattr(c.arguments.get("event"), "claim_id", None) == getattr(bump, "claim_id", None)),
                       None) if handed is None else None
        if changed is not None:  # (a copy of it, made with a field of its own)
            fields = [f.name for f in dataclasses.fields(bump) if getattr(changed, f.name) != getattr(bump, f.name)]
            raise fail(played, handling.event, f"bump_tx_event_handler.handle_event(the inner {type(bump).__name__}, "
                       "as it is)", f"you handed over a copy of it with {', '.join(fields)} changed",
                       "LDK's request says what it needs (its feerate is the one the claim must reach to confirm in "
                       "time, no more): hand bump_event over as you were given it.")
        if handed is None:
            kind = type(bump).__name__
            again = getattr(bump, "claim_id", None) in claims_handed
            raise fail(played, handling.event, f"bump_tx_event_handler.handle_event(the inner {kind})",
                       "it was not handed over" + (" (you handed this claim over before)" if again else ""),
                       "LDK asks again for a claim that has not confirmed (every 30 seconds, and as the feerate it "
                       "needs rises): each ask is a new request, to be handed over as the first was." if again else
                       "match Event.BumpTransaction(bump_event) and hand bump_event over, whatever its kind: on an "
                       "anchor channel, only your wallet's coins get your commitment (through a child spending its "
                       "anchor) or an HTLC claim (added to its transaction) confirmed in time.")
        claims_handed.add(getattr(bump, "claim_id", None))
    _judge_only_what_was_asked(played)


def _judge_only_what_was_asked(played: Played) -> None:
    """No fee bump handed over is one LDK never asked for: a copy of a request with a field changed (a feerate ten times
    LDK's, "to be sure it confirms") pays that much, and its transaction, first in the mempool, is the one that
    confirms, however right the copy handed over after it."""
    asked = {h.event.bump_event for h in played.recorder.handlings if type(h.event) is Event.BumpTransaction}
    for call in played.recorder.calls_to("bump_tx_event_handler.handle_event"):
        given = call.arguments.get("event")
        if not isinstance(given, _BUMP_KINDS) or given in asked:
            continue
        request = next((b for b in asked if type(b) is type(given) and b.claim_id == given.claim_id), None)
        fields = [f.name for f in dataclasses.fields(given)
                  if request is not None and getattr(given, f.name) != getattr(request, f.name)]
        raise fail(played, call.handling.event if call.handling is not None else None,
                   f"bump_tx_event_handler.handle_event(the inner {type(given).__name__}, as it is), and nothing else",
                   f"you also handed over a copy of it with {', '.join(fields) or 'its fields'} changed",
                   "LDK's request says what it needs (its feerate is the one the claim must reach to confirm in "
                   "time, no more): hand bump_event over as you were given it, and only it.")


#: The kinds of fee bump LDK asks for (``BumpTransactionEvent``'s variants).
_BUMP_KINDS = (BumpTransactionEvent.ChannelClose, BumpTransactionEvent.HTLCResolution)


def judge_bumped_confirmed(played: Played) -> None:
    """What each fee bump was for is on chain: LDK leaves it unconfirmed until the handler pays for it."""
    chain = played.world.chain
    spenders = {txin.previous_output: txid for txid, tx in chain.transactions.items() for txin in tx.input}
    for handling in played.handled(Event.BumpTransaction):
        match handling.event.bump_event:
            case BumpTransactionEvent.ChannelClose(commitment_tx=tx, channel_id=channel_id, pending_htlcs=htlcs):
                txid = tx.compute_txid()
                expiry = min((h.cltv_expiry for h in htlcs), default=None)
                confirmed_at = chain.confirmed_at.get(txid) if chain.confirmations(txid) else None
                if confirmed_at is not None and (expiry is None or confirmed_at < expiry):
                    continue
                what = (f"your commitment transaction {txid} of channel {channel_id} confirmed" +
                        (f" before the HTLC on it expires (block {expiry:,})" if expiry is not None else ""))
                if confirmed_at is not None:  # (too late: an HTLC is taken back only once the commitment is in)
                    raise fail(played, handling.event, what, f"it confirmed only at block {confirmed_at:,}",
                               "hand each BumpTransaction over as it comes: LDK asks for the commitment with an HTLC "
                               "on it urgently, as only once it confirms can the HTLC be taken back before the peer "
                               "claims it, and a fee bump put off misses that deadline.")
                why = ("your commitment pays only the feerate agreed when it was signed, too little now, and only the "
                       "child the handler builds from your wallet's coins, spending its anchor, pays the rest.")
            case BumpTransactionEvent.HTLCResolution(htlc_descriptors=descriptors, channel_id=channel_id):
                unspent = [d.outpoint() for d in descriptors if not chain.confirmations(spenders.get(d.outpoint()))]
                if not unspent:
                    continue
                what = f"the HTLC output {unspent[0]} of channel {channel_id} taken back by a confirmed transaction"
                why = ("the HTLC transaction pays no fee of its own, and only your wallet's coins, which the handler "
                       "adds to it, pay one.")
            case _:
                continue
        asked = " (you answered ReplayEvent(): LDK ignores that answer to a fee-bump request and asks again later, " \
                "and nothing is paid until one is handed over)" if replayed(handling) else ""
        raise fail(played, handling.event, what, "it never confirmed" + asked,
                   f"hand event.bump_event to bump_tx_event_handler.handle_event: on an anchor channel {why}")
