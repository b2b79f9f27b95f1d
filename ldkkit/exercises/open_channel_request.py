"""Workbook 1: ``OpenChannelRequest``. Accept exactly the channels over 5,000,000 sats, reject the rest.

Rules, judged from the channels your node ends up with and what its peers were told:
- a request over 5,000,000 sats is accepted, whatever its channel type, and becomes a channel that confirms and
  is ready (a rejected one counts as rejected, though LDK's opener then proposes it again without anchors);
- any other request (5,000,000 exactly included) is rejected at once, explicitly, whatever it offers (a push, a
  private channel);
- only ``accept_inbound_channel``: zero-conf is for trusted peers, and there are none here;
- each channel's ``user_channel_id`` comes from ``keys_manager.get_secure_random_bytes()``;
- other events pass through without raising.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from typing import Any, Optional

from ..config import UserConfig
from ..errors import RetryableSendFailure
from ..events import Event
from ..scenarios import Stage
from .common import (
    CLOSING,
    LARGEST_NON_WUMBO_SATS,
    POLICY_MIN_EXCLUSIVE_SATS,
    CheckResult,
    Handling,
    Played,
    Session,
    fail,
    unawaited_hint,
)
from .recorder import Call

SIZES = (4_999_999, 5_000_000, 5_000_001, 6_000_000, LARGEST_NON_WUMBO_SATS)


#: And a request over the line from a peer whose channels have no anchor outputs: the policy is about size only.
WITHOUT_ANCHORS_SATS = 6_500_000
#: The largest request is for a private channel (not announced), pushing you so much that what the opener keeps is
#: under the line: size only, again (its size is what the channel holds, whoever holds it).
PRIVATE_PUSHING = LARGEST_NON_WUMBO_SATS
PUSH_MSAT = 12_000_000_000
#: Under the line, what a request offers changes nothing either: the smallest pushes you a million sats, and the one
#: drawn is for a private channel.
SMALL_PUSH_MSAT = 1_000_000_000


def _private(config: UserConfig) -> UserConfig:
    """A peer's config asking for a private channel (not announced)."""
    handshake = dataclasses.replace(config.channel_handshake_config, announce_for_forwarding=False)
    return dataclasses.replace(config, channel_handshake_config=handshake)


#: And a second request over the line from the peer of the 6,000,000 sats one: each channel its own user_channel_id. It
#: asks for other parameters than the others (a longer to_self_delay, fewer HTLCs in flight): size only, again.
SECOND_FROM_A_PEER_SATS = 7_000_000
SECOND_TO_SELF_DELAY, SECOND_MAX_ACCEPTED_HTLCS = 720, 30


def drawn_small_sats(seed: int) -> int:
    """One more request under the line, of a size the workbook does not name: drawn from the play's seed (a policy
    is a comparison, not the list of sizes the workbook tells)."""
    return random.Random(f"open_channel_request {seed}").randrange(MIN_CHANNEL_SATS, POLICY_MIN_EXCLUSIVE_SATS)


#: The smallest request drawn: well over LDK's dust limits, a channel a peer might really ask for.
MIN_CHANNEL_SATS = 100_000


def story(stage: Stage) -> None:
    peers = [stage.peer(f"peer{i}") for i in range(len(SIZES))]
    for peer, sats in zip(peers, SIZES, strict=True):
        config, push_msat = None, 0
        if sats == PRIVATE_PUSHING:
            config, push_msat = _private(peer.config), PUSH_MSAT
        elif sats == SIZES[0]:
            push_msat = SMALL_PUSH_MSAT
        peer.channel_manager.create_channel(stage.me.node_id, sats, push_msat, 1, None, config)
    plain = stage.peer(f"peer{len(SIZES)}", anchors=False)
    plain.channel_manager.create_channel(stage.me.node_id, WITHOUT_ANCHORS_SATS, 0, 1, None, None)
    drawn = stage.peer(f"peer{len(SIZES) + 1}")
    drawn.channel_manager.create_channel(stage.me.node_id, drawn_small_sats(stage.world.seed), 0, 1, None,
                                         _private(drawn.config))
    stage.world.run()
    stage.mine(6)
    # (once its first is funded: a peer's wallet funding two at once would spend one coin twice)
    again = peers[SIZES.index(6_000_000)]
    handshake = dataclasses.replace(again.config.channel_handshake_config, our_to_self_delay=SECOND_TO_SELF_DELAY,
                                    our_max_accepted_htlcs=SECOND_MAX_ACCEPTED_HTLCS)
    again.channel_manager.create_channel(stage.me.node_id, SECOND_FROM_A_PEER_SATS, 0, 2, None,
                                         dataclasses.replace(again.config, channel_handshake_config=handshake))
    stage.world.run()
    stage.mine(6)
    try:  # other events mixed in: a payment over an accepted channel, if there is one
        stage.pay(peers[3], stage.invoice(stage.me, 10_000_000))
    except RetryableSendFailure:
        pass


def rules(session: Session, result: CheckResult) -> None:
    played = session.play("open_channel_request", story)
    drawn = drawn_small_sats(played.stage.world.seed)
    # Smallest first, the clearest failure; the size drawn last: a handler it alone catches hard-codes sizes.
    requests = sorted(played.events(Event.OpenChannelRequest), key=lambda r: (r.funding_satoshis == drawn,
                                                                               r.funding_satoshis))
    for request in requests:
        judge_request(played, request)
    accepted = [r for r in requests if r.funding_satoshis > POLICY_MIN_EXCLUSIVE_SATS]
    judge_user_channel_ids(played)
    result.add("every request over 5,000,000 sats accepted, confirmed and ready", f"{len(accepted)} channels")
    result.add("every other request rejected at once, explicitly", f"{len(requests) - len(accepted)} rejected")
    result.add("5,000,000 sats exactly is rejected", "yes: the policy is strictly over")
    result.add("user_channel_id drawn from get_secure_random_bytes()", "yes, a different one per channel")
    result.add("other events pass through without raising", f"{len(played.events()) - len(requests)} events")


def _answers(played: Played, request: Event.OpenChannelRequest, *, attributed: bool = False) -> tuple[list, list, list]:
    """The calls that answered this request: (accepts, zero-conf accepts, rejections). Those that name its
    temporary_channel_id, whoever made them (the handler, a task it spawned, a thread), and those made while
    handling it that name no request at all; or, ``attributed``, those made while handling it, whatever they name
    (to tell what went wrong with a call for another channel)."""
    handling = played.recorder.handling_of(request)
    if attributed:
        calls = played.recorder.calls_for(handling)
    else:  # (made while handling it: in any of its hand-overs, one your handler asked for again included)
        calls = [c for c in played.recorder.calls if _answering(played, c) is handling
                 or c.handling is not None and c.handling.event is request
                 and _answering(played, c) is None]  # (an id of no request: a mistake)
    by = lambda *names: [c for c in calls if c.name.split(".")[-1] in names]  # noqa: E731
    return (by("accept_inbound_channel"), by("accept_inbound_channel_from_trusted_peer_0conf"),
            by("force_close_without_broadcasting_txn", "force_close_broadcasting_latest_txn"))


def _answering(played: Played, call: Call) -> Optional[Handling]:
    """The hand-over that counts of the request a call answers: the request handed over last, before the call, with
    the temporary_channel_id it names (LDK's opener retries with the same id when a channel type is refused). A call
    made in a hand-over your handler then asked for again (``ReplayEvent``) answers that request all the same."""
    tcid = call.arguments.get("temporary_channel_id") or call.arguments.get("channel_id")
    requests = [h for h in played.recorder.handlings if isinstance(h.event, Event.OpenChannelRequest)
                and h.event.temporary_channel_id == tcid and h.order < call.order]
    return played.recorder.handling_of(requests[-1].event) if requests else None


#: How long after the request (simulated seconds) a rejection from a task the handler spawned still counts as
#: "at once": the task's few awaits. A rejection the handler makes itself comes before it awaits anything, so
#: before any simulated time has passed.
AT_ONCE_S = 1.0


def judge_request(played: Played, request: Event.OpenChannelRequest) -> None:
    """One request: the channel it became (or not), judged against the policy."""
    me, sats = played.me, request.funding_satoshis
    where = f"{played.name} ({sats:,} sats)"
    failing = lambda *args: fail(played, request, *args, scenario=where)  # noqa: E731
    accepts, zero_conf, rejects = _answers(played, request)
    tried, _, rejected_elsewhere = _answers(played, request, attributed=True)  # (to say what went wrong)
    channels = [c for c in me.channel_manager.list_channels_with_counterparty(request.counterparty_node_id)
                if c.channel_value_satoshis == sats]
    if zero_conf:
        raise failing("accept_inbound_channel(...)", "accept_inbound_channel_from_trusted_peer_0conf(...)",
                   "the zero-conf method trusts the peer with your funds until the channel confirms: keep it for "
                   "peers you trust completely (an LSP), never for an unknown peer.")
    should_accept = sats > POLICY_MIN_EXCLUSIVE_SATS
    if should_accept and not (channels and channels[0].is_channel_ready):
        answer = (accepts or tried or [None])[0]
        closed = [c for c in played.recorder.calls if c.error is None and c.name.split(".")[-1] in CLOSING
                  and c.arguments.get("counterparty_node_id") == request.counterparty_node_id
                  and c.arguments.get("channel_id") != request.temporary_channel_id]
        if accepts and closed:  # (the channel it became, closed later by the handler itself)
            during = f", while it handled {type(closed[0].handling.event).__name__}" if closed[0].handling else ""
            raise failing(f"a channel that confirms and is ready, and stays open: {sats:,} is over 5,000,000",
                          f"you accepted it, then your handler closed the channel ({closed[0].name}{during})",
                          "the policy is about size only: a channel over 5,000,000 sats, once accepted, is kept. "
                          "Close nothing in the other arms; they only pass events through.")
        if accepts and rejects:
            raise failing(f"a channel that confirms and is ready: {sats:,} is over 5,000,000",
                          "you accepted it and rejected it", "answer each request once: accept it, or else "
                          "(an else: branch, not a second if) reject it.")
        happened = ("you rejected it" if rejects else
                    "nothing: the request was left unanswered" if answer is None else
                    "you answered, but no channel came of it: " + _accept_trouble(answer, request))
        raise failing(f"a channel that confirms and is ready: {sats:,} is over 5,000,000", happened,
                   answer is None and not rejects and unawaited_hint(played, request)
                   or ("the policy is about size only: accept every request over 5,000,000 sats, whatever else it "
                       "asks for (its channel_type, its params, what it pushes, whether it is announced), with "
                       "channel_manager.accept_inbound_channel." if rejects and _accepted_others(played, request)
                       else "")
                   or "compare funding_satoshis with 5_000_000 and accept when it is strictly greater, with "
                   "channel_manager.accept_inbound_channel, passing the temporary_channel_id and "
                   "counterparty_node_id of the event you are handling.")
    refused = [c for c in rejects if c.error is None]
    if should_accept and refused:  # (a channel came of it all the same: the opener's second proposal, accepted)
        raise failing(f"the request accepted: {sats:,} is over 5,000,000", "you rejected it; the channel you have "
                      "came of the peer's second proposal (LDK's opener, refused, proposes again with fewer features: "
                      "without anchor outputs)", "the policy is about size only: accept every request over 5,000,000 "
                      "sats, whatever its channel_type, with channel_manager.accept_inbound_channel.")
    if not should_accept:
        exactly = " (exactly 5,000,000 is not over 5,000,000)" if sats == POLICY_MIN_EXCLUSIVE_SATS else ""
        if channels or accepts:
            raise failing(f"the request rejected{exactly}", "you accepted it",
                       "accept only when funding_satoshis > 5_000_000: strictly greater.")
        judge_rejected_at_once(played, request, failing, rejects, rejected_elsewhere, exactly)


def judge_rejected_at_once(played: Played, request: Event.OpenChannelRequest, failing: Any, rejects: list,
                           rejected_elsewhere: list, exactly: str = "") -> None:
    """A request to refuse was rejected explicitly (a call LDK took), and at once: by the handler's own code before any
    simulated time passed in that hand-over (before it awaited anything), or by a task, thread or callback it started;
    either way within ``AT_ONCE_S`` of the request's first hand-over (asking for it again puts off the answer too)."""
    started = min(h.started for h in played.recorder.handlings if h.event is request)
    this = [c for c in rejects if c.arguments.get("channel_id") == request.temporary_channel_id
            and c.arguments.get("counterparty_node_id") == request.counterparty_node_id]
    done = [c for c in this if c.error is None]
    cut = played.recorder.calls_for(played.recorder.handling_of(request), "peer_manager.disconnect_by_node_id")
    if not done:
        happened = (f"you rejected it {this[0].at - started:,.0f} s later, when LDK had already dropped it"
                    if this else "you called force_close for another channel or peer"
                    if rejects or rejected_elsewhere else "you disconnected the peer instead, which drops its "
                    "request and tells it nothing" if cut
                    else "nothing: it was left to expire after two timer ticks")
    elif done[0].by_handler and done[0].at > done[0].handling.started:  # (it awaited first, in that hand-over)
        raise failing(f"an explicit rejection, at once{exactly}", f"you rejected it only "
                      f"{_seconds(done[0].at - started)} later, awaiting in your handler first",
                      "decide from the event's fields and reject before your handler awaits anything: the "
                      "peer waits for your answer meanwhile. Work that takes time can come after it.")
    elif done[0].at - started > AT_ONCE_S:
        asked = sum(h.event is request for h in played.recorder.handlings) - 1
        happened = f"you rejected it only {_seconds(done[0].at - started)} later"
        if asked > 1:
            raise failing(f"an explicit rejection, at once{exactly}",
                          f"{happened}, asking for it again {asked} times first (ReplayEvent)",
                          "return ReplayEvent() only when something failed that may work next time; deciding "
                          "whether to reject needs nothing that can fail, and LDK hands over no other event while it "
                          "waits for this one.")
    else:
        return
    raise failing(f"an explicit rejection, at once{exactly}", happened,
                  not this and not rejects and not rejected_elsewhere and unawaited_hint(played, request) or
                  "reject with channel_manager.force_close_without_broadcasting_txn while you handle the event, "
                  "passing its temporary_channel_id and counterparty_node_id and a message for the peer; "
                  "silence, or an answer put off, makes the peer wait for nothing.")


def _seconds(s: float) -> str:
    """A short delay as a learner reads it: ``1.1 s``, ``2 s``, ``40 ms``."""
    return f"{s:,.1f}".removesuffix(".0") + " s" if s >= 0.1 else f"{s * 1000:.3g} ms"


def _accepted_others(played: Played, request: Event.OpenChannelRequest) -> bool:
    """Whether your handler accepted another request over the line: it told this one apart by more than its size."""
    return any(c.channel_value_satoshis > POLICY_MIN_EXCLUSIVE_SATS and c.channel_value_satoshis !=
               request.funding_satoshis for c in played.me.channel_manager.list_channels() if not c.is_outbound)


def _accept_trouble(call, request: Event.OpenChannelRequest) -> str:
    if call.error is not None:
        return f"accept_inbound_channel raised {type(call.error).__name__}: {call.error}"
    if call["temporary_channel_id"] != request.temporary_channel_id:
        return "the temporary_channel_id you passed is not this request's"
    if call["counterparty_node_id"] != request.counterparty_node_id:
        return "the counterparty_node_id you passed is not this request's"
    return "the channel never became ready"


def judge_user_channel_ids(played: Played) -> None:
    channels = played.me.channel_manager.list_channels()
    draws = played.recorder.random_draws
    seen: set[int] = set()
    for channel in channels:
        if channel.is_outbound:
            continue
        request = next((r for r in played.events(Event.OpenChannelRequest)
                        if r.counterparty_node_id == channel.counterparty.node_id), None)
        uid = channel.user_channel_id
        if not _drawn_from(uid, draws) or uid in seen:
            raise fail(played, request, "a user_channel_id drawn from keys_manager.get_secure_random_bytes(), "
                       "a different one for each channel", f"user_channel_id={uid!r}" +
                       (" again" if uid in seen else ""), _uid_hint(uid, draws, seen))
        seen.add(uid)


def _uid_hint(uid: object, draws: list[bytes], seen: set[int]) -> str:
    """Why a user_channel_id is not one the workbook asks for: repeated, too few bytes, or not the node's randomness."""
    if uid in seen:
        return ("each channel gets an id of its own: draw fresh random bytes for every request (a number drawn once "
                "gives every channel the same id, and your node could not tell them apart).")
    if not isinstance(uid, int) or uid < 2**32:
        return ("take 16 of the 32 random bytes and read them as an int (int.from_bytes(..., 'big')): a fixed number "
                "would give every channel the same id, and your node could not tell them apart.")
    short = _bytes_read(uid, draws)
    if short is not None:
        return (f"you read {short} of the random bytes: take 16 of the 32, as user_channel_id is a 128-bit number "
                "(int.from_bytes(keys_manager.get_secure_random_bytes()[:16], 'big')).")
    if draws:  # (your code drew the node's bytes: the id is made from them some other way, or from something else)
        return ("read 16 of the 32 bytes of keys_manager.get_secure_random_bytes() as they are, as a number "
                "(int.from_bytes(random_bytes[:16], 'big')), as the workbook asks: an id made from them otherwise "
                "(hashed, say) cannot be told from one made from no randomness at all, and one from Python's own "
                "(secrets, uuid.uuid4(), random) is not the node's.")
    return ("draw it from keys_manager.get_secure_random_bytes(), the node's own randomness (not Python's secrets, "
            "uuid or random, nor the event's ids): take 16 of the 32 bytes and read them as an int "
            "(int.from_bytes(..., 'big')).")


def _bytes_read(uid: object, draws: list[bytes]) -> int | None:
    """How many bytes in a row of one draw ``uid`` reads as an int: 4 to 15 (fewer may match a fixed number)."""
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        return None
    for n in range(4, 16):
        for data in draws:
            chunks = (data[i:i + n] for i in range(len(data) - n + 1))
            if any(uid in (int.from_bytes(c, "big"), int.from_bytes(c, "little")) for c in chunks):
                return n
    return None


def _drawn_from(value: object, draws: list[bytes]) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    for data in draws:  # any 16 bytes of one draw in a row (the workbook says "take 16 of them"), or all of it
        for chunk in (*(data[i:i + 16] for i in range(len(data) - 15)), data):
            if value in (int.from_bytes(chunk, "big"), int.from_bytes(chunk, "little")):
                return True
            # (a version-4 UUID made of them, uuid.UUID(bytes=..., version=4).int: 122 of their bits, as random)
            if len(chunk) == 16 and value == uuid.UUID(bytes=chunk, version=4).int:
                return True
    return False
