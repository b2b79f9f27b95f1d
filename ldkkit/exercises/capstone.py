"""Workbook 8: the capstone, a whole node. Every rule of workbooks 1 to 7, and two more.

Rules:
- everything workbooks 1 to 7 check, judged the same way;
- a zero-conf request is accepted, with ``accept_inbound_channel_from_trusted_peer_0conf``, only
  from a peer in ``TRUSTED_ZERO_CONF_PEERS``, and rejected from anyone else; a trusted peer's ordinary
  request (no zero-conf asked) meets workbook 1's policy like any other;
- a payment made twice is claimed once: the second ``PaymentClaimable`` for a hash already
  ``Succeeded`` is failed back, whatever its amount and whatever its purpose (an invoice's, or a keysend
  made again with the same preimage), and the record keeps the first amount;
- under the background processor, every one of the kit's scenarios gives your node the same
  events as the reference node (the second line of evidence), and in each one every
  ``BumpTransaction`` is handed over, as workbook 6 says (the peer's force-close included). Where your
  answer to an ``OpenChannelRequest`` or a ``PaymentClaimable`` came later, from a task (workbooks 1 and 3
  allow it), the reference's is put off as long: LDK goes on meanwhile (a payment made again while the
  first is still claimable, LDK fails back itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from typing import Any, Optional

from .. import policy, reference, scenarios
from ..errors import APIError
from ..events import Event
from ..ln.bolt11_payment import payment_parameters_from_invoice
from ..ln.outbound_payment import RecipientOnionFields, Retry
from ..routing.router import PaymentParameters, RouteParameters
from ..scenarios import Stage
from ..types import PaymentId, PaymentPreimage
from . import (
    background_processor,
    forwarding,
    funding_generation_ready,
    on_chain,
    open_channel_request,
    receiving_payments,
    sending_payments,
)
from .common import PLAY_ON_S, CheckResult, Handling, Played, Session, fail

EARLIER = (open_channel_request, funding_generation_ready, receiving_payments, sending_payments, forwarding,
           on_chain, background_processor)


#: The sizes of the trusted LSP's ordinary requests (no zero-conf asked): one under workbook 1's line, so rejected, and
#: one over it, accepted as any peer's is (with ``accept_inbound_channel``: trust is about zero-conf only).
LSP_ORDINARY_SATS, LSP_ORDINARY_OVER_SATS = 1_000_000, 6_000_000
#: The size of its zero-conf request: under the line too (an LSP's just-in-time channel is often small), and accepted
#: zero-conf all the same: trust, not size, decides a zero-conf request.
LSP_ZERO_CONF_SATS = 2_000_000
#: The size of the stranger's second zero-conf request: small, so that no line of size lets it through.
STRANGER_SMALL_SATS = 100_000


def zero_conf_story(stage: Stage) -> None:
    lsp, stranger = stage.peer("lsp"), stage.peer("stranger")
    policy.TRUSTED_ZERO_CONF_PEERS.add(lsp.node_id)
    try:
        stage.open(stranger, stage.me, 6_000_000)  # a peer you have a channel with is still no trusted LSP
        stage.open(lsp, stage.me, LSP_ZERO_CONF_SATS, confirm=False, zero_conf=True)
        for sats in (6_000_000, STRANGER_SMALL_SATS):  # (large or small: trust, not size, decides)
            stage.open(stranger, stage.me, sats, confirm=False, zero_conf=True)
        # The trusted LSP's ordinary request, under the line: trust is about zero-conf; workbook 1's policy holds.
        for user_channel_id, sats in enumerate((LSP_ORDINARY_SATS, LSP_ORDINARY_OVER_SATS), start=2):
            lsp.channel_manager.create_channel(stage.me.node_id, sats, 0, user_channel_id, None, None)
            stage.until_answered(stage.me)
        stage.settle()
    finally:
        policy.TRUSTED_ZERO_CONF_PEERS.discard(lsp.node_id)


def paid_again_for_more_story(stage: Stage) -> None:
    """An invoice paid, then, once your node has restarted (what your handler kept in memory is gone, what it wrote
    is not), paid again for more (LDK accepts an overpayment): a repeat all the same; then a keysend made twice with
    the same preimage (no invoice, the same hash); then an invoice paid twice, its first payment refused (no repeat).
    Each second payment is made once the first is paid, however long your claim was put off (while the first is still
    claimable, LDK itself fails the second back, and your handler never sees it)."""
    bob = stage.peer("bob")
    stage.open(bob, stage.me, 6_000_000)
    invoice = stage.invoice(stage.me, 30_000_000)
    stage.pay(bob, invoice)
    payment_hash, onion, params = payment_parameters_from_invoice(invoice)
    _until_it_ends(stage, bob, payment_hash)
    stage.me.fs_store.write("", "", "manager", stage.me.channel_manager.encode())  # (as a background processor does)
    stage.me = stage.world.restart_node(stage.me)
    stage.settle(12)
    more = RouteParameters.from_payment_params_and_value(params.payment_params, 31_000_000)
    bob.channel_manager.send_payment(payment_hash, onion, PaymentId(b"\x02" * 32), more, Retry.Attempts(0))
    stage.settle()
    # A keysend made twice with the same preimage: the second is a repeat too, though no invoice was issued.
    preimage = PaymentPreimage(bob.keys_manager.get_secure_random_bytes())
    keysend = RouteParameters.from_payment_params_and_value(PaymentParameters.for_keysend(stage.me.node_id, 40, False),
                                                            20_000_000)
    for payment_id in (PaymentId(b"\x03" * 32), PaymentId(b"\x04" * 32)):
        bob.channel_manager.send_spontaneous_payment(preimage, RecipientOnionFields.spontaneous_empty(), payment_id,
                                                     keysend, Retry.Attempts(0))
        _until_it_ends(stage, bob, preimage.payment_hash())
    # An invoice whose first payment was refused (it carried an even TLV your node does not know), then paid without
    # it: the refused payment paid nothing, so the second is no repeat, and is claimed.
    invoice = stage.invoice(stage.me, 25_000_000)
    stage.pay(bob, invoice, retry=Retry.Attempts(0), custom_tlvs=[receiving_payments.CHAT_MESSAGE])
    _until_it_ends(stage, bob, invoice.payment_hash())
    stage.pay(bob, invoice, retry=Retry.Attempts(0), payment_id=PaymentId(b"\x05" * 32))
    _until_it_ends(stage, bob, invoice.payment_hash())
    stage.settle()


def _until_it_ends(stage: Stage, payer: Any, payment_hash: Any) -> None:
    """Let time pass until the payer learns how its payment ended, however long your claim was put off."""
    waited = 0
    while waited < PLAY_ON_S and not any(isinstance(e, (Event.PaymentSent, Event.PaymentFailed))
                                         and e.payment_hash == payment_hash for e in payer.events_seen):
        stage.settle(1)
        waited += 1


def rules(session: Session, result: CheckResult) -> None:
    for workbook in EARLIER:
        name = workbook.__name__.rsplit(".", 1)[-1]
        workbook.rules(session, CheckResult(name))  # (its own table is not shown: one row here says it all)
        result.add(f"every rule of {name}", "yes")
    judge_zero_conf(session.play("zero-conf requests", zero_conf_story))
    result.add("zero-conf accepted from the trusted LSP only", "LSP accepted, stranger rejected")
    count = compare_with_reference(session)  # (its receive_duplicate_payment first: the same amount twice)
    judge_duplicate(session.play("payments made twice: an invoice (the second time for more), a keysend, an invoice "
                                 "refused at first",
                                 paid_again_for_more_story))
    result.add("a payment made twice claimed once", "the second failed back, unless the first was refused")
    result.add("every scenario under the background processor: the reference's events", f"{count} scenarios")


def judge_duplicate(played: Played) -> None:
    """The scenario of a payment made twice (the library's, played with the others): the second is failed back, and the
    record keeps the first."""
    receiving_payments.judge_claims(played, refuse_repeats=True)
    receiving_payments.judge_claimed_records(played)
    receiving_payments.judge_unclaimed_records(played)


def judge_received(played: Played) -> None:
    """A scenario where a payment to you was claimed (a payment in parts, say): what is on disk says so."""
    if played.events(Event.PaymentClaimed):
        receiving_payments.judge_claimed_records(played)
        receiving_payments.judge_unclaimed_records(played)


#: Library scenarios whose outcomes the capstone judges too, before their events are compared with the reference's
#: (every other is judged by ``judge_received``).
JUDGED = {"receive_duplicate_payment": judge_duplicate}


def judge_zero_conf(played: Played) -> None:
    lsp, stranger = played.stage.peers["lsp"], played.stage.peers["stranger"]
    for request in played.events(Event.OpenChannelRequest):
        accepts, zero_conf, rejects = open_channel_request._answers(played, request)
        trusted = request.counterparty_node_id == lsp.node_id
        if trusted and not request.channel_type.requires_zero_conf():
            _judge_trusted_ordinary(played, request, accepts, zero_conf, rejects)
            continue
        if trusted and not zero_conf:
            raise fail(played, request, "accept_inbound_channel_from_trusted_peer_0conf: this peer is in "
                       "TRUSTED_ZERO_CONF_PEERS", "you rejected it" if rejects else "it was not accepted zero-conf",
                       "a request whose channel_type.requires_zero_conf() from a trusted peer is accepted with the "
                       "zero-conf method: that is what the trusted list is for." + (
                           " Look the peer up in TRUSTED_ZERO_CONF_PEERS itself when its request comes: the scenario "
                           "adds the LSP's node id while it plays, so a copy of the set taken before (at import, or "
                           "in a set of your own) does not hold it." if rejects else ""))
        untrusted = request.counterparty_node_id == stranger.node_id and request.channel_type.requires_zero_conf()
        expected = "the request rejected: a zero-conf channel from a peer you do not trust"
        why = ("before the funding confirms, the opener can double-spend it: accept zero-conf only from peers in "
               "TRUSTED_ZERO_CONF_PEERS, and reject it from anyone else.")
        if untrusted and (accepts or zero_conf or not rejects):  # (its later plain request is just a channel)
            refused = next((c.error for c in accepts if c.error is not None and not zero_conf
                            and c.arguments.get("temporary_channel_id") == request.temporary_channel_id), None)
            happened = ("you accepted it" if (accepts or zero_conf) and refused is None else
                        f"you tried to accept it with accept_inbound_channel, and LDK refused it for you "
                        f"({type(refused).__name__}: {refused}), which is no rejection of yours"
                        if refused is not None else "it was left unanswered")
            raise fail(played, request, expected, happened, why)
        if untrusted:  # (rejected, as workbook 1 judges a rejection: a call LDK took, at once)
            _, _, elsewhere = open_channel_request._answers(played, request, attributed=True)
            open_channel_request.judge_rejected_at_once(
                played, request, lambda *args, request=request: fail(played, request, *args), rejects, elsewhere,
                ": a zero-conf channel from a peer you do not trust")
    open_channel_request.judge_user_channel_ids(played)
    if not [c for c in played.me.channel_manager.list_usable_channels() if c.counterparty.node_id == lsp.node_id]:
        raise fail(played, None, "the LSP's zero-conf channel usable at once, before any block",
                   "no usable channel with the LSP", "accept it with accept_inbound_channel_from_trusted_peer_0conf.")


def _judge_trusted_ordinary(played: Played, request: Event.OpenChannelRequest, accepts: list, zero_conf: list,
                            rejects: list) -> None:
    """The trusted LSP's request that asks for no zero-conf: workbook 1's policy, as from any peer. Over the line,
    accepted with ``accept_inbound_channel`` (zero-conf, its channel would be used before its funding confirms: if it
    never does, what went over it is lost); under it, rejected at once."""
    sats = request.funding_satoshis
    failing = lambda *args: fail(played, request, *args)  # noqa: E731
    if sats > 5_000_000:
        if zero_conf or not accepts:
            raise failing(f"accept_inbound_channel: {sats:,} sats is over 5,000,000, and the request asks for no "
                          "zero-conf (channel_type.requires_zero_conf() is False)",
                          "you accepted it zero-conf (accept_inbound_channel_from_trusted_peer_0conf)" if zero_conf
                          else "you rejected it" if rejects else "it was left unanswered",
                          "TRUSTED_ZERO_CONF_PEERS is about zero-conf requests only: an ordinary request from a "
                          "trusted peer meets workbook 1's policy like any other, and is accepted as any other is. "
                          "Accepted zero-conf, a channel is used before its funding confirms: if it never does, what "
                          "went over it is lost. Ask channel_type.requires_zero_conf() first.")
        return
    expected = (f"the request rejected: {sats:,} sats is not over 5,000,000, and it asks for no zero-conf "
                "(channel_type.requires_zero_conf() is False)")
    if accepts or zero_conf:
        raise failing(expected, "you accepted it" + (" zero-conf" if zero_conf else ""),
                      "TRUSTED_ZERO_CONF_PEERS is about zero-conf requests only: an ordinary request from a trusted "
                      "peer meets workbook 1's policy like any other (accept only over 5,000,000 sats). Ask "
                      "channel_type.requires_zero_conf() first.")
    _, _, elsewhere = open_channel_request._answers(played, request, attributed=True)
    open_channel_request.judge_rejected_at_once(played, request, failing, rejects, elsewhere,
                                                ": an ordinary request under the line, from a trusted peer too")


#: Far from the seeds the check's other plays take (``common.FIRST_SEED``, then one more for each play).
REFERENCE_SEED = 1000


def reference_seed(name: str) -> int:
    """The seed a scenario is played with in the capstone: ``REFERENCE_SEED``, one more for each scenario before it,
    so that no two plays of the check give the same keys, invoices or payment hashes (a handler that remembers what
    it already wrote meets each play's payments as new)."""
    return REFERENCE_SEED + scenarios.names().index(name)


def reference_events(name: str) -> tuple[str, ...]:
    """What the reference node is given in a scenario, run with its ``reference_seed``."""
    return tuple(scenarios.run(name, reference.handle_ldk_events, seed=reference_seed(name)).event_names())


@functools.cache
def _reference_events(name: str) -> tuple[str, ...]:
    """``reference_events``, as stored in ``reference_events.py`` (the same every time, so computed once, by
    ``tools/make_reference_events.py``; a test checks the stored list against a fresh run)."""
    from .reference_events import REFERENCE_EVENTS

    return REFERENCE_EVENTS.get(name) or reference_events(name)


def _without_replays(names: list[str]) -> list[str]:
    """The events, each once: an event handed over again right after itself is a replay, and whether a
    handler asked for one (ReplayEvent) or retried its write in place is its own business."""
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


#: The events whose answer your handler may put off, and the calls that answer each: workbook 1 judges the channel an
#: accept makes, whoever made it and when (a rejection comes at once), and workbook 3 allows a claim or fail-back until
#: the claim deadline. LDK goes on meanwhile: a payment made again while the first is still claimable, LDK fails back
#: itself (``process_pending_htlc_forwards``: "payment is already claimable"), and your handler never sees it.
PUT_OFF: dict[type, tuple[str, ...]] = {
    Event.OpenChannelRequest: ("accept_inbound_channel", "accept_inbound_channel_from_trusted_peer_0conf",
                               "force_close_without_broadcasting_txn", "force_close_broadcasting_latest_txn"),
    Event.PaymentClaimable: ("claim_funds", "claim_funds_with_known_custom_tlvs", "fail_htlc_backwards",
                             "fail_htlc_backwards_with_reason"),
}

#: For each kind of ``PUT_OFF``, for each event of it your handler was given, in order: how long after it was handed
#: over your answer came from a task or thread of yours. None if your handler answered while handling it (or never);
#: ``math.inf`` if the task spawned for it died unanswered, in a crash of your node.
Delays = tuple[tuple[Optional[float], ...], ...]


def put_off(played: Played) -> Delays:
    """How long your handler put off its answers (``Delays``), as the recorder saw them made."""
    return tuple(tuple(_delay(played, handling, kind) for handling in played.handled(kind)) for kind in PUT_OFF)


def _delay(played: Played, handling: Handling, kind: type) -> Optional[float]:
    calls = (receiving_payments._answers(played, handling) if kind is Event.PaymentClaimable
             else [c for calls in open_channel_request._answers(played, handling.event) for c in calls])
    answers = sorted((c for c in calls if c.name.split(".")[-1] in PUT_OFF[kind]), key=lambda c: c.order)
    if answers:
        return None if answers[0].during else answers[0].at - handling.started
    died = any(h.event is handling.event and task in played.recorder.killed for h, task in played.recorder.tasks)
    return math.inf if died else None


class _PutOff:
    """A ChannelManager whose answers (``names``) the reference makes ``delay`` seconds after it decided them, from a
    task (never, if ``math.inf``: the task died with its node), as yours were."""

    def __init__(self, manager: Any, names: tuple[str, ...], delay: float) -> None:
        self._manager, self._names, self._delay = manager, names, delay

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._manager, name)
        if name not in self._names:
            return method

        def later(*args: Any, **kwargs: Any) -> None:
            async def answer() -> None:
                await asyncio.sleep(self._delay)
                with contextlib.suppress(APIError):  # (as the reference logs a refused answer, and goes on)
                    method(*args, **kwargs)

            if self._delay != math.inf:
                reference._spawn(answer())

        return later


@functools.cache
def reference_events_put_off(name: str, delays: Delays, played_on: int) -> tuple[str, ...]:
    """``reference_events``, the reference's answers put off as ``delays`` says (see ``put_off``), played as the
    capstone plays yours: under the background processor, and on for ``played_on`` seconds after the story."""
    from ..sim.cpus import one_cpu
    from ..sim.node_process import run_processor
    from ..sim.world import World

    given = {kind: iter(kind_delays) for kind, kind_delays in zip(PUT_OFF, delays, strict=True)}

    async def handle_ldk_events(*args: Any) -> Any:
        kind = type(args[-1])
        delay = next(given[kind], None) if kind in given else None
        if delay is not None:
            args = (_PutOff(args[0], PUT_OFF[kind], delay), *args[1:])
        return await reference.handle_ldk_events(*args)

    world = World(seed=reference_seed(name))
    try:
        stage = Stage(world, world.add_node(scenarios.LEARNER, handler=handle_ldk_events))
        with one_cpu(), run_processor(stage.me, "thread"):
            scenarios._SCENARIOS[name](stage)
            stage.settle()
            for _ in range(played_on):  # (as common._play_on played on for yours)
                stage.settle(1)
            if played_on:
                stage.settle()
        return tuple(type(e).__name__ for e in world.nodes[scenarios.LEARNER].events_seen)
    finally:
        world.close()


def compare_with_reference(session: Session) -> int:
    for name in scenarios.names():
        played = session.play(name, scenarios._SCENARIOS[name], seed=reference_seed(name), processor="thread")
        JUDGED.get(name, judge_received)(played)
        on_chain.judge_bumps(played)  # (a bump asked again comes after itself: the comparison would not tell)
        sending_payments.judge_only_payments_sent(played)  # (the probes' scenarios: a probe is no payment)
        delays = put_off(played)
        deferred = any(d is not None for kind_delays in delays for d in kind_delays)
        mine = _without_replays([type(e).__name__ for e in played.events()])
        expected = _without_replays(list(reference_events_put_off(name, delays, played.played_on)
                                         if deferred or played.played_on else _reference_events(name)))
        if mine != expected:
            pairs = enumerate(zip(mine, expected, strict=False))
            first = next((i for i, (a, b) in pairs if a != b), min(len(mine), len(expected)))
            # (the same events in another order: the expected one came later, and what came in its place too)
            later = (next((j for j in range(first + 1, len(mine)) if mine[j] == expected[first]), None)
                     if first < len(expected) and first < len(mine) and mine[first] in expected[first + 1:] else None)
            raise fail(played, None, " → ".join(expected) + (
                           " (the reference's answers put off as long as yours)" if deferred else ""), " → ".join(mine),
                       f"the first difference is at event {first + 1}: "
                       + (f"{expected[first]} was expected" if first < len(expected) else f"{mine[first]} came too")
                       + (f", and came only at event {later + 1}, later than the reference's: did your handler put "
                          "off what leads to it? " + ("(the reference put off its answers to "
                                                      f"{' and '.join(k.__name__ for k in PUT_OFF)} as yours were, "
                                                      "and answers every other event as it handles it)"
                                                      if deferred else
                                                      "(the reference answers each event as it handles it)")
                          if later is not None else "")
                       + f". {scenarios.describe(name)}")
    return len(scenarios.names())
