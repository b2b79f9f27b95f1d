"""Rules of the checks judged on situations the workbooks' stories never reach with a learner's handler.

The corpus (tests/corpus) judges whole handlers; here a rule is judged directly, on a world the
test shapes: a sweep still in the mempool, an event carrying two outputs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math

import pytest

from ldkkit.events import Event, PaymentFailureReason
from ldkkit.exercises import ExerciseFailed, common, on_chain
from ldkkit.exercises import recorder as recording
from ldkkit.exercises.background_processor import REFUSALS
from ldkkit.reference import handle_ldk_events as reference


def on_chain_until(blocks_after_closing: int) -> tuple[common.Session, common.Played]:
    """Workbook 6's story with ldk-sample's handler, stopped ``blocks_after_closing`` blocks after the closes."""

    def story(stage):
        bob, carol = stage.peer("bob"), stage.peer("carol")
        stage.open(stage.me, bob, 1_000_000)
        stage.open(stage.me, carol, 1_000_000)
        me = stage.me.channel_manager
        bob_channel, carol_channel = stage.channel_between(stage.me, bob), stage.channel_between(stage.me, carol)
        me.close_channel(bob_channel.channel_id, bob.node_id)
        me.force_close_broadcasting_latest_txn(carol_channel.channel_id, carol.node_id, "going away")
        stage.settle()
        stage.mine(blocks_after_closing)

    session = common.Session("on_chain", reference)
    return session, session.play("on_chain", story)


@pytest.fixture(scope="module")
def sweep_in_mempool():
    """The force-closed channel's output was just swept (by the sweeper, to the wallet): not yet confirmed."""
    session, played = on_chain_until(144)
    yield played
    session.close()


def test_a_sweep_still_in_the_mempool_has_not_come_back_yet(sweep_in_mempool):
    """The rule is a *confirmed* sweep into the wallet: one only broadcast is not judged swept."""
    played = sweep_in_mempool
    assert len(played.handled(Event.SpendableOutputs)) == 2 and played.world.chain.mempool
    with pytest.raises(ExerciseFailed, match="never came back to your wallet") as failure:
        on_chain.judge_sweeps(played)
    lines = [line.strip() for line in str(failure.value).splitlines()]
    assert lines[2] == "Happened: it never came back to your wallet"  # handed over whole: no reason to give
    assert lines[-1] == W06_HAND_OVER


def test_every_output_of_an_event_is_judged_not_only_the_first(sweep_in_mempool):
    """One SpendableOutputs may carry several outputs (LDK's ``outputs: Vec<...>``): each must be swept."""
    played = sweep_in_mempool
    first, second = played.handled(Event.SpendableOutputs)
    both = dataclasses.replace(first.event, outputs=first.event.outputs + second.event.outputs)
    handlings = played.recorder.handlings
    played.recorder.handlings = [dataclasses.replace(first, event=both)]
    try:
        with pytest.raises(ExerciseFailed, match="never came back to your wallet"):
            on_chain.judge_sweeps(played)
        played.recorder.handlings = [dataclasses.replace(first, event=first.event)]
        assert on_chain.judge_sweeps(played) > 0  # the first output alone was swept and confirmed
    finally:
        played.recorder.handlings = handlings


# --- workbook 1: the words a learner reads, exactly -------------------------------------------------------


def _read(handler, exercise="open_channel_request") -> list[str]:
    """The check's verdict on ``handler`` as the learner reads it, without the event's and the path's lines (as a
    fresh kernel's first check of the workbook: no note that it was checked before)."""
    from ldkkit import exercises
    from ldkkit.exercises import check

    exercises._CHECKED.clear()
    try:
        return repr(check(exercise, handler)).splitlines()
    except ExerciseFailed as failure:
        return [line.strip() for line in str(failure).splitlines()
                if not line.strip().startswith(("The event:", "Events so far:"))]


def _corpus(name: str, exercise="open_channel_request"):
    from corpus import all_cases

    return next(c for c in all_cases() if c.exercise == exercise and c.name == name).new_handler()


W01_SCENARIO = "Scenario 'open_channel_request{}' on Event.{}:"
W01_TOO_SMALL = "Hint: accept only when funding_satoshis > 5_000_000: strictly greater."
W01_ACCEPT = ("Hint: compare funding_satoshis with 5_000_000 and accept when it is strictly greater, with "
              "channel_manager.accept_inbound_channel, passing the temporary_channel_id and counterparty_node_id of "
              "the event you are handling.")
W01_REJECT = ("Hint: reject with channel_manager.force_close_without_broadcasting_txn while you handle the event, "
              "passing its temporary_channel_id and counterparty_node_id and a message for the peer; silence, or an "
              "answer put off, makes the peer wait for nothing.")
W01_RANDOM = ("Expected: a user_channel_id drawn from keys_manager.get_secure_random_bytes(), a different one for "
              "each channel")
W01_RANDOM_HINT = ("Hint: take 16 of the 32 random bytes and read them as an int (int.from_bytes(..., 'big')): a fixed "
                   "number would give every channel the same id, and your node could not tell them apart.")
W01_RETURN = ["Expected: None (handled) or ReplayEvent() (hand it over again)",
              "Hint: LDK's handler returns Ok(()) or Err(ReplayEvent()): in Python, return nothing, or return "
              "ReplayEvent() when you could not finish and want the event again. Anything else means nothing to LDK."]


@pytest.mark.parametrize("case, lines", [
    ("accepts_everything", [W01_SCENARIO.format(" (4,999,999 sats)", "OpenChannelRequest"),
                            "Expected: the request rejected", "Happened: you accepted it", W01_TOO_SMALL]),
    ("accepts_exactly_5m", [W01_SCENARIO.format(" (5,000,000 sats)", "OpenChannelRequest"),
                            "Expected: the request rejected (exactly 5,000,000 is not over 5,000,000)",
                            "Happened: you accepted it", W01_TOO_SMALL]),
    ("rejects_everything", [W01_SCENARIO.format(" (5,000,001 sats)", "OpenChannelRequest"),
                            "Expected: a channel that confirms and is ready: 5,000,001 is over 5,000,000",
                            "Happened: you rejected it", W01_ACCEPT]),
    ("silent_on_small", [W01_SCENARIO.format(" (4,999,999 sats)", "OpenChannelRequest"),
                         "Expected: an explicit rejection, at once",
                         "Happened: nothing: it was left to expire after two timer ticks", W01_REJECT]),
    ("zero_conf_for_everyone", [W01_SCENARIO.format(" (5,000,001 sats)", "OpenChannelRequest"),
                                "Expected: accept_inbound_channel(...)",
                                "Happened: accept_inbound_channel_from_trusted_peer_0conf(...)",
                                "Hint: the zero-conf method trusts the peer with your funds until the channel "
                                "confirms: keep it for peers you trust completely (an LSP), never for an unknown "
                                "peer."]),
    ("fixed_user_channel_id", [W01_SCENARIO.format("", "OpenChannelRequest"), W01_RANDOM,
                               "Happened: user_channel_id=42", W01_RANDOM_HINT]),
    ("counter_user_channel_id", [W01_SCENARIO.format("", "OpenChannelRequest"), W01_RANDOM,
                                 "Happened: user_channel_id=1", W01_RANDOM_HINT]),
    ("right_but_mutates_event", [W01_SCENARIO.format("", "OpenChannelRequest"),
                                 "Expected: the event left as LDK gave it",
                                 "Happened: your handler changed its funding_satoshis",
                                 "Hint: events are LDK's record of what happened: read them, never change them. "
                                 "Decide from the fields as they are."]),
    ("raises_on_other_events", [W01_SCENARIO.format("", "ChannelPending"), "Expected: your handler to return normally",
                                "Happened: it raised ValueError: I only expected OpenChannelRequest",
                                "Hint: read the traceback above: its last lines point at the line of your handler "
                                "that failed."]),
    ("returns_42", [W01_SCENARIO.format("", "OpenChannelRequest"), W01_RETURN[0],
                    "Happened: your handler returned 42", W01_RETURN[1]]),
])
def test_workbook_1_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case)) == lines


def test_workbook_1_names_a_reused_random_id_again():
    lines = _read(_corpus("one_draw_for_every_channel"))
    assert lines[:2] == [W01_SCENARIO.format("", "OpenChannelRequest"), W01_RANDOM] and lines[3] == (
        "Hint: each channel gets an id of its own: draw fresh random bytes for every request (a number drawn once "
        "gives every channel the same id, and your node could not tell them apart).")
    assert lines[2].startswith("Happened: user_channel_id=") and lines[2].endswith(" again")


@pytest.mark.parametrize("draw, hint", [
    (lambda keys, event: int.from_bytes(keys.get_secure_random_bytes()[:8], "big"),
     "Hint: you read 8 of the random bytes: take 16 of the 32, as user_channel_id is a 128-bit number "
     "(int.from_bytes(keys_manager.get_secure_random_bytes()[:16], 'big'))."),
    (lambda keys, event: int.from_bytes(bytes(event.temporary_channel_id)[:16], "big"),
     "Hint: draw it from keys_manager.get_secure_random_bytes(), the node's own randomness (not Python's secrets, "
     "uuid or random, nor the event's ids): take 16 of the 32 bytes and read them as an int "
     "(int.from_bytes(..., 'big')).")])
def test_workbook_1_names_what_is_wrong_with_a_user_channel_id(draw, hint):
    """Too few of the random bytes, or a number from somewhere else (a helper's probe: both were told that a fixed
    number gives every channel the same id)."""
    def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                          peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if not isinstance(event, Event.OpenChannelRequest):
            return
        if event.funding_satoshis > 5_000_000:
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id,
                                                   draw(keys_manager, event))
        else:
            channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id,
                                                                 event.counterparty_node_id, "too small")

    lines = _read(handle_ldk_events)
    assert lines[1] == W01_RANDOM and lines[2].startswith("Happened: user_channel_id=") and lines[3] == hint


def _handler(accept_id=None, reject_id=None):
    """Workbook 1's policy, accepting (or rejecting) with another channel id than the event's, if given."""
    from ldkkit.events import Event

    def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                          peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
            try:
                if event.funding_satoshis > 5_000_000:
                    channel_manager.accept_inbound_channel(accept_id or event.temporary_channel_id,
                                                           event.counterparty_node_id, uid)
                else:
                    channel_manager.force_close_without_broadcasting_txn(reject_id or event.temporary_channel_id,
                                                                         event.counterparty_node_id, "too small")
            except Exception:  # the learner hides LDK's answer: the check still sees what came of it
                pass

    return handle_ldk_events


def test_workbook_1_says_why_an_accepted_request_became_no_channel():
    from ldkkit.types import ChannelId

    assert _read(_handler(accept_id=ChannelId(bytes(32)))) == [
        W01_SCENARIO.format(" (5,000,001 sats)", "OpenChannelRequest"),
        "Expected: a channel that confirms and is ready: 5,000,001 is over 5,000,000",
        "Happened: you answered, but no channel came of it: accept_inbound_channel raised APIMisuseError: Misuse "
        "error: No such channel awaiting to be accepted.", W01_ACCEPT]


def test_workbook_1_says_a_rejection_of_another_channel_is_no_rejection():
    from ldkkit.types import ChannelId

    assert _read(_handler(reject_id=ChannelId(bytes(32)))) == [
        W01_SCENARIO.format(" (4,999,999 sats)", "OpenChannelRequest"), "Expected: an explicit rejection, at once",
        "Happened: you called force_close for another channel or peer", W01_REJECT]


def test_workbook_1_tells_a_passing_handler_what_it_verified():
    assert _read(_handler()) == [
        "✅ open_channel_request: all 5 checks passed",
        "  every request over 5,000,000 sats accepted, confirmed and ready  5 channels",
        "  every other request rejected at once, explicitly                 6 rejected",
        "  5,000,000 sats exactly is rejected                               yes: the policy is strictly over",
        "  user_channel_id drawn from get_secure_random_bytes()             yes, a different one per channel",
        "  other events pass through without raising                        11 events"]


def _opening(on_request, on_pending=None):
    """A workbook 1 handler from two arms: one for each OpenChannelRequest, one for each ChannelPending."""
    from ldkkit.events import Event

    def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                          peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            on_request(channel_manager, keys_manager, event)
        elif isinstance(event, Event.ChannelPending) and on_pending is not None:
            on_pending(channel_manager, event)

    return handle_ldk_events


def _policy(channel_manager, keys_manager, event, accept_big=True):
    if event.funding_satoshis > 5_000_000:
        if accept_big:
            uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
            channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)
    else:
        channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                             "too small")


def test_workbook_1_says_a_big_request_was_left_unanswered():
    lines = _read(_opening(lambda cm, km, event: _policy(cm, km, event, accept_big=False)))
    assert lines[2] == "Happened: nothing: the request was left unanswered" and lines[3] == W01_ACCEPT


def test_workbook_1_says_an_accepted_channel_the_handler_closed_was_closed_by_it():
    def close(channel_manager, event):
        channel_manager.force_close_broadcasting_latest_txn(event.channel_id, event.counterparty_node_id, "changed")

    assert _read(_opening(_policy, close))[1:3] == [
        "Expected: a channel that confirms and is ready, and stays open: 5,000,001 is over 5,000,000",
        "Happened: you accepted it, then your handler closed the channel "
        "(channel_manager.force_close_broadcasting_latest_txn, while it handled ChannelPending)"]


def test_workbook_1_counts_an_accept_of_a_small_request_even_when_it_failed():
    from ldkkit.types import ChannelId

    def accept_wrongly(channel_manager, keys_manager, event):
        try:
            channel_manager.accept_inbound_channel(ChannelId(bytes(32)), event.counterparty_node_id, 7)
        except Exception:  # the learner hides LDK's answer: the attempt still counts as accepting
            pass

    assert _read(_opening(accept_wrongly)) == [W01_SCENARIO.format(" (4,999,999 sats)", "OpenChannelRequest"),
                                               "Expected: the request rejected", "Happened: you accepted it",
                                               W01_TOO_SMALL]

def test_the_capstone_compares_with_what_the_reference_node_is_given_today():
    """The capstone's stored reference events are a fresh run's: a world change that alters them fails here,
    with the command that writes them again, rather than failing learners' right handlers."""
    from ldkkit import scenarios
    from ldkkit.exercises import capstone
    from ldkkit.exercises.reference_events import REFERENCE_EVENTS

    assert list(REFERENCE_EVENTS) == scenarios.names(), "run .venv/bin/python tools/make_reference_events.py"
    for name in scenarios.names():
        assert REFERENCE_EVENTS[name] == capstone.reference_events(name), (
            f"{name}: the stored reference events are out of date; run .venv/bin/python tools/make_reference_events.py")


# --- workbook 2: the words a learner reads, exactly -------------------------------------------------------

W02 = "funding_generation_ready"
W02_SCENARIO = "Scenario 'funding_generation_ready{}' on Event.FundingGenerationReady:"
W02_BROADCAST = ["Expected: the signed transaction handed to funding_transaction_generated, and nothing more",
                 "Happened: your code broadcast the funding transaction itself",
                 "Hint: LDK broadcasts the funding transaction once the peer has signed the transaction that refunds "
                 "you; broadcasting it first risks your coins if the peer vanishes."]
W02_NEVER = ["Expected: funding_transaction_generated(temporary_channel_id, counterparty_node_id, transaction)",
             "Happened: nothing: the channel was never funded",
             "Hint: build the transaction with bitcoind_client (create_raw_transaction, fund_raw_transaction, "
             "sign_raw_transaction_with_wallet), to the address Address.from_script(output_script, network)."]
W02_ONE_OUTPUT = ("Hint: one output, to Address.from_script(output_script, network), of channel_value_satoshis / "
                  "100_000_000 BTC.")


@pytest.mark.parametrize("case, lines", [
    ("broadcast_transactions_too", [W02_SCENARIO.format(" (100,000 sats)"), *W02_BROADCAST]),
    ("never_handed_over", [W02_SCENARIO.format(" (100,000 sats)"), *W02_NEVER]),
    ("first_channel_only", [W02_SCENARIO.format(" (2,000,000 sats)"), *W02_NEVER[:2],
                            "Hint: your handler funded another channel, and did nothing for this one: each "
                            "FundingGenerationReady is a channel of its own, to fund with a transaction of its own, "
                            "whatever was funded before."]),
    ("divided_twice", [W02_SCENARIO.format(""), "Expected: your handler to return normally",
                       "Happened: it raised BitcoindError: Invalid amount: 1.0000000000000001e-11 (bitcoind takes at "
                       "most 8 decimal places: divide the satoshis by 100_000_000)",
                       "Hint: you divided twice: channel_value_satoshis / 100_000_000 is already in BTC."]),
    ("to_own_address", [W02_SCENARIO.format(""), "Expected: your handler to return normally",
                        "Happened: it raised APIMisuseError: Misuse error: No output matched the script_pubkey and "
                        "value in the FundingGenerationReady event", W02_ONE_OUTPUT]),
])
def test_workbook_2_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case, W02), W02) == lines


def test_workbook_2_says_when_a_passing_handler_let_the_hand_over_error_out():
    """A peer gone before the hand-over: a handler that lets LDK's error out stops its node, and passes (nothing was
    broadcast) with a row that says so; one that catches it, as ldk-sample does, gets a plain yes."""
    from corpus.arms import compose, fund_channel
    from corpus.w02_funding_generation_ready import when_the_hand_over_fails

    row = "  a channel gone before you funded it: nothing broadcast  "
    assert _read(compose({Event.FundingGenerationReady: when_the_hand_over_fails("log")}), W02)[-1] == row + "yes"
    assert _read(compose({Event.FundingGenerationReady: fund_channel}), W02)[-1] == row + (
        "yes, but your code let funding_transaction_generated's APIError out (from the handler, that stops a node): "
        "catch it and say so, as ldk-sample does")


def _funding(arm):
    """A workbook 2 handler: ldk-sample's handling of every event but FundingGenerationReady, which ``arm`` gets.
    The arm's errors are swallowed, as a learner's try/except would: the check judges what came of the hand-over."""
    from ldkkit.events import Event

    async def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                                peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network,
                                event):
        if not isinstance(event, Event.FundingGenerationReady):
            return await reference(channel_manager, bitcoind_client, network_graph, keys_manager,
                                   bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments, fs_store,
                                   output_sweeper, network, event)
        try:
            arm(channel_manager, bitcoind_client, network, event)
        except Exception:  # the learner hides LDK's answer
            pass

    return handle_ldk_events


def _build(bitcoind_client, network, event, btc):
    from ldkkit.bitcoin import Address, Transaction

    raw = bitcoind_client.create_raw_transaction([{str(Address.from_script(event.output_script, network)): btc}])
    signed = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw).hex)
    return Transaction(bytes.fromhex(signed.hex))


def _hand_over(btc):
    def arm(channel_manager, bitcoind_client, network, event):
        tx = _build(bitcoind_client, network, event, btc(event.channel_value_satoshis))
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    return arm


def test_workbook_2_names_the_value_handed_over_and_the_unit_mistake():
    assert _read(_funding(_hand_over(lambda sats: 0)), W02) == [
        W02_SCENARIO.format(" (100,000 sats)"), "Expected: one output of exactly 100,000 sats to output_script",
        "Happened: 0 sats to output_script", W02_ONE_OUTPUT]
    assert _read(_funding(_hand_over(lambda sats: sats / 100_000_000 + 0.00000001)), W02)[1:] == [
        "Expected: one output of exactly 100,000 sats to output_script", "Happened: 100,001 sats to output_script",
        W02_ONE_OUTPUT]


@pytest.mark.parametrize("btc, sats, hint", [
    (lambda sats: sats / 100_000_000 / 100_000_000, 100_000,
     "Invalid amount: 1.0000000000000001e-11 (bitcoind takes at most 8 decimal places: divide the satoshis by "
     "100_000_000); your code went on. You divided twice: channel_value_satoshis / 100_000_000 is already in BTC."),
    (lambda sats: sats * 1e-8, 6_000_000,  # (exact for 100,000 sats: not for 6,000,000)
     "Invalid amount: 0.060000000000000005 (bitcoind takes at most 8 decimal places: divide the satoshis by "
     "100_000_000); your code went on. As a float, 6,000,000 × 1e-8 is 0.060000000000000005, not 0.06: bitcoind "
     "refuses an amount with more than 8 decimal places. Divide: channel_value_satoshis / 100_000_000."),
])
def test_workbook_2_names_bitcoinds_refusal_of_an_amount_and_the_unit_mistake_behind_it(btc, sats, hint):
    """bitcoind refuses an amount with more than 8 decimal places; a handler that caught the refusal is told of it."""
    assert _read(_funding(_hand_over(btc)), W02) == [
        W02_SCENARIO.format(f" ({sats:,} sats)"),
        "Expected: funding_transaction_generated(temporary_channel_id, counterparty_node_id, transaction)",
        "Happened: nothing: the channel was never funded",
        f"Hint: bitcoind_client.create_raw_transaction raised BitcoindError: {hint}"]


def test_workbook_2_says_bitcoind_counts_in_btc_when_sats_were_asked_for_first():
    def sats_then_tiny(channel_manager, bitcoind_client, network, event):
        try:
            tx = _build(bitcoind_client, network, event, event.channel_value_satoshis)
        except Exception:  # "insufficient funds": try something else
            tx = _build(bitcoind_client, network, event, event.channel_value_satoshis / 100_000_000 / 1000)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    assert _read(_funding(sats_then_tiny), W02)[1:] == [
        "Expected: one output of exactly 100,000 sats to output_script", "Happened: 100 sats to output_script",
        "Hint: bitcoind counts in BTC, not sats: pass channel_value_satoshis / 100_000_000."]


@pytest.mark.parametrize("error, bitcoind", [(IndexError("list index out of range"), False),
                                             (None, True)])
def test_workbook_2_blames_the_unit_only_for_bitcoinds_own_refusal(error, bitcoind):
    """A handler's own IndexError ("out of range") is not bitcoind refusing an amount in sats."""
    from ldkkit.events import Event

    async def fails(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                    peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.FundingGenerationReady):
            if error is not None:
                raise error
            _build(bitcoind_client, network, event, event.channel_value_satoshis)  # sats as BTC: refused
        return await reference(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                               peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network,
                               event)

    lines = _read(fails, W02)
    assert lines[2].startswith("Happened: it raised " + ("BitcoindError" if bitcoind else "IndexError")), lines
    assert ("bitcoind counts in BTC" in lines[-1]) is bitcoind, lines[-1]


def test_workbook_2_says_no_output_when_what_was_handed_over_is_no_transaction():
    def hex_string(channel_manager, bitcoind_client, network, event):
        tx = _build(bitcoind_client, network, event, event.channel_value_satoshis / 100_000_000)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                      tx.serialize().hex())

    assert _read(_funding(hex_string), W02) == [
        W02_SCENARIO.format(" (100,000 sats)"), "Expected: one output of exactly 100,000 sats to output_script",
        "Happened: no output to output_script", W02_ONE_OUTPUT]


def test_workbook_2_says_what_ldk_answered_to_a_hand_over_for_another_peer():
    def our_own_id(channel_manager, bitcoind_client, network, event):
        tx = _build(bitcoind_client, network, event, event.channel_value_satoshis / 100_000_000)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, channel_manager.get_our_node_id(),
                                                      tx)

    lines = _read(_funding(our_own_id), W02)
    assert lines[:2] == [W02_SCENARIO.format(" (100,000 sats)"),
                         "Expected: funding_transaction_generated to accept the transaction"]
    assert lines[2].startswith("Happened: it raised ChannelUnavailable: Channel unavailable: Can't find a peer")
    assert lines[3] == ("Hint: pass the event's temporary_channel_id and counterparty_node_id with the signed "
                        "transaction.")


def test_workbook_2_names_the_channel_whose_funding_your_code_broadcast():
    def broadcasts_the_middle_one(channel_manager, bitcoind_client, network, event):
        tx = _build(bitcoind_client, network, event, event.channel_value_satoshis / 100_000_000)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)
        if event.channel_value_satoshis == 6_000_000:
            bitcoind_client.broadcast_transactions([tx])

    assert _read(_funding(broadcasts_the_middle_one), W02) == [W02_SCENARIO.format(" (6,000,000 sats)"),
                                                               *W02_BROADCAST]


def test_workbook_2_tells_a_passing_handler_what_it_verified():
    assert _read(_funding(_hand_over(lambda sats: sats / 100_000_000)), W02) == [
        "✅ funding_generation_ready: all 6 checks passed",
        "  each FundingGenerationReady funded                      4 transactions",
        "  one output of the exact value to output_script          yes",
        "  the broadcast left to LDK                               yes: none of your code broadcast a funding "
        "transaction",
        "  channels pending, then ready after six blocks           4 ready",
        "  DiscardFunding: the transaction never broadcast         1 transaction",
        "  a channel gone before you funded it: nothing broadcast  yes"]


@pytest.fixture(scope="module")
def funded_by_the_reference():
    from ldkkit.exercises import funding_generation_ready

    session = common.Session(W02, reference)
    played = session.play(W02, funding_generation_ready.story)
    # Played from this file, every broadcast had "your code" (this test) on the stack: they were LDK's.
    played.recorder.broadcasts = [(tx, False) for tx, _ in played.recorder.broadcasts]
    yield played
    session.close()


def test_workbook_2_story_mines_exactly_six_blocks_after_the_fundings(funded_by_the_reference):
    """'Ready after six blocks': the story mines six blocks once the funding transactions are out, not seven."""
    played = funded_by_the_reference
    pending = played.events(Event.ChannelPending)
    assert len(pending) == 4
    assert [played.world.chain.confirmations(p.funding_txo.txid) for p in pending] == [6, 6, 6, 6]


def test_workbook_2_fails_a_funded_channel_that_never_became_ready(funded_by_the_reference):
    from ldkkit.exercises import funding_generation_ready

    played = funded_by_the_reference
    handlings = played.recorder.handlings
    ready = [h for h in handlings if isinstance(h.event, Event.ChannelReady)]
    played.recorder.handlings = [h for h in handlings if h is not ready[-1]]
    try:
        with pytest.raises(ExerciseFailed) as failure:
            funding_generation_ready.judge_funding(played)
    finally:
        played.recorder.handlings = handlings
    lines = [line.strip() for line in str(failure.value).splitlines() if not line.strip().startswith("Events so far:")]
    assert lines == ["Scenario 'funding_generation_ready':", "Expected: 4 channels ready after six blocks",
                     "Happened: 4 pending, 3 ready", "Hint: every channel you open needs its own funding transaction."]
    funding_generation_ready.judge_funding(played)  # all four ready: no failure


# --- workbook 3: the words a learner reads, exactly -------------------------------------------------------

W03 = "receiving_payments"
W03_SCENARIO = "Scenario 'receiving_payments' on Event.{}:"
W03_RECORD = ("Expected: inbound_payments[payment_hash] = PaymentInfo(preimage, {}, HTLCStatus.Succeeded, {}) on "
              "disk")
W03_CLAIM_HINT = ("Hint: the preimage is in the event's purpose: purpose.preimage() works for invoices and "
                  "keysend.")
W03_FAIL_BACK = "Expected: fail_htlc_backwards(payment_hash): there is no preimage to claim with"
W03_FAIL_BACK_HINT = ("Hint: when purpose.preimage() is None you cannot claim; "
                      "channel_manager.fail_htlc_backwards(payment_hash) gives the payer their money back now.")
W03_PERSISTED = ('Expected: inbound_payments persisted before your handler returned: fs_store.write("", "", '
                 '"inbound_payments", inbound_payments.encode())')
W03_KEY_HINT = ("Hint: ldk-sample keeps these records under the key 'inbound_payments'. LDK forgets an event once "
                "your handler returns, so write what it changed before you return.")
W03_NOTHING_OF_YOURS = ("Happened: nothing of yours is stored under 'inbound_payments' (what is there, the CLI wrote, "
                        "as ldk-sample's getinvoice and sendpayment do)")


@pytest.mark.parametrize("case, lines", [
    ("writes_before_updating", [
        W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("secret", "50,000,000"),
        "Happened: on disk: PaymentInfo(preimage=None, secret=9b53…f371, status=HTLCStatus.Pending, "
        "amt_msat=50,000,000 msat) (status Pending)",
        "Hint: the record was written before it was updated, or not updated: change the entry first, then write "
        "inbound_payments.encode(), before you return."]),
    ("drops_the_secret", [
        W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("secret", "50,000,000"),
        "Happened: on disk: PaymentInfo(preimage=75e0…1229, secret=None, status=HTLCStatus.Succeeded, "
        "amt_msat=50,000,000 msat) (the payment secret is missing)",
        "Hint: keep the invoice's payment secret (purpose.payment_secret for an invoice payment; keysend has none)."]),
    ("drops_the_preimage", [
        W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("secret", "50,000,000"),
        "Happened: on disk: PaymentInfo(preimage=None, secret=9b53…f371, status=HTLCStatus.Succeeded, "
        "amt_msat=50,000,000 msat) (the preimage is missing)",
        "Hint: the preimage is your proof of payment: take it from purpose.preimage()."]),
    ("leaves_unclaimable_waiting", [
        W03_SCENARIO.format("PaymentClaimable"), W03_FAIL_BACK,
        "Happened: it was left unclaimed, and the payer waits until the claim deadline", W03_FAIL_BACK_HINT]),
    ("fails_everything_back", [W03_SCENARIO.format("PaymentClaimable"), "Expected: claim_funds(purpose.preimage())",
                               "Happened: you failed it back", W03_CLAIM_HINT]),
    ("never_claims", [W03_SCENARIO.format("PaymentClaimable"), "Expected: claim_funds(purpose.preimage())",
                      "Happened: it was never claimed", W03_CLAIM_HINT]),
    ("wrong_storage_key", [W03_SCENARIO.format("PaymentClaimed"), W03_PERSISTED,
                           W03_NOTHING_OF_YOURS + "; you wrote under ['inbound_payment']", W03_KEY_HINT]),
    ("never_writes", [W03_SCENARIO.format("PaymentClaimed"), W03_PERSISTED, W03_NOTHING_OF_YOURS,
                      "Hint: you did not write inbound_payments while handling this event: LDK forgets an event once "
                      "your handler returns, so write what it changed every time, before you return."]),
    ("no_entry_for_keysend", [
        W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("None", "20,000,000"),
        "Happened: on disk: None (no entry for this payment_hash)",
        "Hint: keysend payments have no invoice, so no entry yet: insert one when there is none."]),
    ("amount_in_sats", [
        W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("secret", "50,000,000"),
        "Happened: on disk: PaymentInfo(preimage=75e0…1229, secret=9b53…f371, status=HTLCStatus.Succeeded, "
        "amt_msat=50,000 msat) (amt_msat 50000 for 50000000 received)",
        "Hint: amt_msat is in millisatoshis, as the event's amount_msat is: store event.amount_msat as it is, not "
        "divided by 1,000."]),
    ("stores_outbound_bytes", [
        W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("secret", "50,000,000"),
        "Happened: on disk: None (no entry for this payment_hash)",
        "Hint: the invoice's entry is gone: update the entry for payment_hash in place (status, preimage, secret), "
        "never remove or replace the map, then write inbound_payments.encode()."]),
])
def test_workbook_3_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case, W03), W03) == lines


def test_workbook_3_names_each_key_written_under_once_and_reads_are_not_writes():
    def claimed(fs_store, inbound_payments, event, **_):
        try:
            fs_store.read("", "", "inbound_payments")  # a read, under the right key: not a write
        except Exception:
            pass
        for key in ("payments", "inbound", "payments"):
            fs_store.write("", "", key, inbound_payments.encode())

    assert _read(_receiving(claimed=claimed), W03)[1:3] == [
        W03_PERSISTED, W03_NOTHING_OF_YOURS + "; you wrote under ['inbound', 'payments']"]


def test_workbook_3_says_a_key_the_store_refuses_is_no_disk_failure_to_replay():
    """A key LDK's FilesystemStore refuses (a '.') fails every time: ReplayEvent would hand the event over for ever."""
    def claimed(fs_store, inbound_payments, event, **_):
        fs_store.write("", "", "inbound_payments.json", inbound_payments.encode())

    lines = _read(_receiving(claimed=claimed), W03)
    assert lines[2].startswith("Happened: it raised KVStoreError: Failed to write //inbound_payments.json: ")
    assert lines[3] == ("Hint: no disk failed: the store refused the namespaces or the key themselves, as LDK's "
                        "FilesystemStore does (check_namespace_key_validity), and it refuses them every time, so "
                        "ReplayEvent() would only hand the event over again and again. Fix the name: ldk-sample "
                        'writes its records with fs_store.write("", "", "inbound_payments", ...) and '
                        '"outbound_payments".')


def test_workbook_3_says_a_key_never_written_is_no_disk_failure_to_replay():
    """Reading a key never written raises NotFound every time: no disk failed, and ReplayEvent would not help."""
    def claimed(fs_store, event, **_):
        fs_store.read("", "", "inbound_payment")

    lines = _read(_receiving(claimed=claimed), W03)
    assert lines[2].startswith("Happened: it raised NotFound: Nothing is stored under 'inbound_payment' in ")
    assert lines[3] == ("Hint: no disk failed: nothing was ever written under that key, and reading a key never "
                        "written raises NotFound (LDK's FilesystemStore: io::ErrorKind::NotFound), every time, so "
                        "ReplayEvent() would not make it appear. Your records are in memory (inbound_payments, "
                        "outbound_payments): update them there, then write them; ldk-sample reads them from disk "
                        "only when it starts.")


def test_workbook_3_says_bytes_that_are_not_a_record_cannot_be_read_back():
    def claimed(fs_store, event, **_):
        fs_store.write("", "", "inbound_payments", b"not a record")

    lines = _read(_receiving(claimed=claimed), W03)
    assert lines[1] == "Expected: inbound_payments stored as inbound_payments.encode()"
    assert lines[2].startswith("Happened: what is stored cannot be read back: ")
    assert lines[3] == "Hint: store exactly the bytes inbound_payments.encode() returns."


def _receiving(claimable=None, claimed=None, forwardable=True):
    """A workbook 3 handler: the corpus's right arms, with the PaymentClaimable or PaymentClaimed arm given."""
    from corpus.arms import BASE, compose

    changes = {k: v for k, v in ((Event.PaymentClaimable, claimable), (Event.PaymentClaimed, claimed)) if v}
    base = dict(BASE)
    if not forwardable:
        del base[Event.PendingHTLCsForwardable]
    return compose(changes, base=base)


def test_workbook_3_tells_a_passing_handler_what_it_verified():
    assert _read(_receiving(), W03) == [
        "✅ receiving_payments: all 4 checks passed",
        "  claimed with the preimage from purpose      5 payments, the payer paid",
        "  failed back what cannot be claimed          1 payment, the payer refunded at once",
        "  refused a payment with an unknown even TLV  2 payments, the payer refunded",
        "  PaymentClaimed stored as Succeeded on disk  preimage, secret and amount, before returning"]


def test_workbook_3_counts_a_payment_claimable_asked_for_again_once():
    """A PaymentClaimable the handler replays (ReplayEvent, as LDK allows) is one payment, not two."""
    from corpus.arms import BASE

    from ldkkit.events import ReplayEvent

    asked: set[object] = set()

    def replays_each_once(**kw):
        if kw["event"].payment_hash not in asked:
            asked.add(kw["event"].payment_hash)
            return ReplayEvent()
        return BASE[Event.PaymentClaimable](**kw)

    assert _read(_receiving(claimable=replays_each_once), W03)[1] == (
        "  claimed with the preimage from purpose      5 payments, the payer paid")


def test_an_event_asked_for_again_every_time_is_named_with_its_hand_overs():
    """A handler that answers an event with ReplayEvent every time never handles it, and LDK hands over nothing
    after it: the failure says so, with the hand-overs counted in the path of events."""
    from ldkkit.events import ReplayEvent
    from ldkkit.exercises import check

    with pytest.raises(ExerciseFailed) as failure:
        check(W03, _receiving(claimable=lambda **_: ReplayEvent()))
    lines = [line.strip() for line in str(failure.value).splitlines() if not line.strip().startswith("The event:")]
    assert lines == [
        W03_SCENARIO.format("PaymentClaimable"),
        "Expected: the event handled in the end (None returned once what failed works again)",
        "Happened: your handler asked for it again each of the 100 times it was handed over, so it was never "
        "handled, and LDK hands over no event after it until it is",
        "Events so far: OpenChannelRequest → ChannelPending → ChannelReady → OpenChannelRequest → ChannelPending → "
        "ChannelReady → PendingHTLCsForwardable → [PaymentClaimable ×100]",
        "Hint: return ReplayEvent() only when something failed that may work next time, such as fs_store.write "
        "raising OSError; once it works, return nothing."]


def test_a_long_story_stops_an_event_asked_for_again_at_its_100th_hand_over():
    """Workbook 6 mines for days of simulated time; asked for again every 100 ms, a SpendableOutputs would be
    handed over a million times. The check stops at the 100th, on the count, not on a clock."""
    from corpus.arms import compose

    from ldkkit.events import ReplayEvent

    lines = _read(compose({Event.SpendableOutputs: lambda **_: ReplayEvent()}), "on_chain")
    assert lines[:3] == [
        "Scenario 'on_chain' on Event.SpendableOutputs:",
        "Expected: the event handled in the end (None returned once what failed works again)",
        "Happened: your handler asked for it again each of the 100 times it was handed over, so it was never "
        "handled, and LDK hands over no event after it until it is"]


def test_an_event_asked_for_again_at_the_end_of_a_story_is_named_too(received_by_the_reference):
    """Fewer than 100 hand-overs, but the story ended with the event still asked for again: never handled."""
    from ldkkit.events import ReplayEvent

    played = received_by_the_reference
    last = played.recorder.handlings[-1]
    result = last.result
    last.result = ReplayEvent()
    try:
        with pytest.raises(ExerciseFailed, match="asked for it again each of the 1 times it was handed over"):
            common._check_handled(played)
    finally:
        last.result = result
    common._check_handled(played)


def test_a_handling_asked_for_again_does_not_count_the_next_one_does(received_by_the_reference):
    from ldkkit.events import ReplayEvent

    played = received_by_the_reference
    recorder = played.recorder
    first = next(h for h in recorder.handlings if isinstance(h.event, Event.PaymentClaimable))
    again = dataclasses.replace(first, result=None)
    first.result = ReplayEvent()
    recorder.handlings.insert(recorder.handlings.index(first) + 1, again)
    try:
        assert recorder.handling_of(first.event) is again
        assert [h for h in played.handled(Event.PaymentClaimable) if h.event is first.event] == [again]
        assert played.events(Event.PaymentClaimable).count(first.event) == 1
        assert "PendingHTLCsForwardable → [PaymentClaimable ×2]" in common._path(played, first.event)
    finally:
        recorder.handlings.remove(again)
        first.result = None


def test_the_path_of_events_shows_the_first_three_and_the_last_ten_runs_up_to_the_event():
    """Events so far: each run of hand-overs of one event once (×n when more than one), the event judged in
    brackets, and a path longer than 14 runs cut to its first 3 and last 10."""
    import types
    from datetime import timedelta

    from ldkkit.events import ReplayEvent

    def played(kinds_and_times):
        recorder = recording.Recorder.__new__(recording.Recorder)
        recorder.handlings = []
        events = []
        for n, times in kinds_and_times:
            event = Event.PendingHTLCsForwardable(timedelta(milliseconds=n))
            events.append(event)
            for i in range(times):
                result = ReplayEvent() if i < times - 1 else None
                recorder.handlings.append(recording.Handling(event, event, 0.0, None, 0, result=result))
        return types.SimpleNamespace(recorder=recorder), events

    short, events = played([(1, 1), (2, 3), (3, 1)])
    assert common._path(short, events[1]) == "PendingHTLCsForwardable → [PendingHTLCsForwardable ×3]"
    assert common._path(short, None) == " → ".join(["PendingHTLCsForwardable", "PendingHTLCsForwardable ×3",
                                                    "PendingHTLCsForwardable"])
    assert common._path(played([])[0], None) == "none"
    fourteen, events = played([(n, 1) for n in range(14)])
    assert common._path(fourteen, events[-1]).count("→") == 13
    fifteen, events = played([(n, 2 if n in (3, 5) else 1) for n in range(15)])
    names = common._path(fifteen, events[-1]).split(" → ")
    assert names == ["PendingHTLCsForwardable"] * 3 + ["...", "PendingHTLCsForwardable ×2"] + \
        ["PendingHTLCsForwardable"] * 8 + ["[PendingHTLCsForwardable]"]


def test_workbook_3_says_htlcs_need_forwarding_before_they_are_claimable():
    assert _read(_receiving(forwardable=False), W03) == [
        "Scenario 'receiving_payments':", "Expected: eight PaymentClaimable events", "Happened: 0",
        "Hint: HTLCs become PaymentClaimable only once process_pending_htlc_forwards has run (the "
        "PendingHTLCsForwardable arm given in the workbook)."]


def test_workbook_3_says_a_payment_without_preimage_was_claimed_not_failed_back():
    def claims_everything(channel_manager, event, **_):
        try:
            channel_manager.claim_funds(event.purpose.preimage())
        except TypeError:  # the learner hides the error
            pass

    assert _read(_receiving(claimable=claims_everything), W03) == [
        W03_SCENARIO.format("PaymentClaimable"), W03_FAIL_BACK, "Happened: you tried to claim it", W03_FAIL_BACK_HINT]


def test_workbook_3_says_a_payment_failed_back_under_another_hash_still_waits():
    from ldkkit.types import PaymentHash

    def fails_back_another(channel_manager, event, **_):
        if event.purpose.preimage() is None:
            channel_manager.fail_htlc_backwards(PaymentHash(bytes(32)))
        else:
            channel_manager.claim_funds(event.purpose.preimage())

    assert _read(_receiving(claimable=fails_back_another), W03) == [
        W03_SCENARIO.format("PaymentClaimable"), "Expected: the payer refunded at once",
        "Happened: the payment is waiting for the payer",
        "Hint: pass the event's payment_hash to fail_htlc_backwards."]


def _claimed_with(**fields):
    """A PaymentClaimed arm that stores a right record but for ``fields``."""
    from ldkkit.payment_storage import HTLCStatus, PaymentInfo

    def arm(inbound_payments, fs_store, event, **_):
        right = {"preimage": event.purpose.preimage(), "secret": getattr(event.purpose, "payment_secret", None),
                 "status": HTLCStatus.Succeeded, "amt_msat": event.amount_msat}
        with inbound_payments.lock() as payments:
            payments[event.payment_hash] = PaymentInfo(**{**right, **fields})
        fs_store.write("", "", "inbound_payments", inbound_payments.encode())

    return arm


def test_workbook_3_says_which_field_of_the_record_is_wrong():
    from ldkkit.payment_storage import HTLCStatus
    from ldkkit.types import PaymentPreimage, PaymentSecret

    def happened(**fields):
        lines = _read(_receiving(claimed=_claimed_with(**fields)), W03)
        assert lines[:2] == [W03_SCENARIO.format("PaymentClaimed"), W03_RECORD.format("secret", "50,000,000")]
        return lines[2][lines[2].rindex(" ("):], lines[3]

    assert happened(preimage=PaymentPreimage(bytes(32))) == (
        " (the preimage is wrong)", "Hint: the preimage is your proof of payment: take it from purpose.preimage().")
    assert happened(secret=PaymentSecret(bytes(32))) == (
        " (the secret is wrong)", "Hint: keep the invoice's payment secret (purpose.payment_secret for an invoice "
        "payment; keysend has none).")
    assert happened(status=HTLCStatus.Failed) == (
        " (status Failed)", "Hint: PaymentClaimed means the money is yours: the payment Succeeded "
        "(HTLCStatus.Succeeded).")


@pytest.fixture(scope="module")
def received_by_the_reference():
    from ldkkit.exercises import receiving_payments

    session = common.Session(W03, reference)
    yield session.play(W03, receiving_payments.story)
    session.close()


def test_the_capstone_refuses_a_second_claim_of_a_paid_invoice(received_by_the_reference):
    """Workbook 3 claims every payment with a preimage; the capstone (refuse_repeats) fails back a second payment
    to an invoice already paid, and names a claim of it."""
    from ldkkit.exercises import receiving_payments

    played = received_by_the_reference
    handlings = played.recorder.handlings
    invoice_paid = next(h for h in handlings if isinstance(h.event, Event.PaymentClaimable))
    later = max(x.order for x in (*handlings, *played.recorder.calls)) + 1  # (after all: a second payment)
    paid_again = dataclasses.replace(invoice_paid, event=dataclasses.replace(invoice_paid.event), order=later)
    calls = played.recorder.calls
    played.recorder.calls = [*calls, *(dataclasses.replace(c, handling=paid_again, order=later + 1 + i)
                                       for i, c in enumerate(played.recorder.calls_for(invoice_paid)))]
    played.recorder.handlings = [*handlings, paid_again]  # the same invoice paid and claimed again
    try:
        receiving_payments.judge_claims(played)
        with pytest.raises(ExerciseFailed) as failure:
            receiving_payments.judge_claims(played, refuse_repeats=True)
    finally:
        played.recorder.handlings, played.recorder.calls = handlings, calls
    lines = [line.strip() for line in str(failure.value).splitlines()
             if not line.strip().startswith(("The event:", "Events so far:"))]
    assert lines == [W03_SCENARIO.format("PaymentClaimable"),
                     "Expected: fail_htlc_backwards(payment_hash): this invoice is already paid",
                     "Happened: you claimed it a second time",
                     "Hint: look the payment_hash up in inbound_payments first: if it is already Succeeded, fail the "
                     "second payment back instead of claiming it, whatever its amount and whatever its purpose (an "
                     "invoice's or a keysend): a payment_hash is paid once."]
    receiving_payments.judge_claims(played, refuse_repeats=True)  # each paid once: nothing refused


def test_workbook_3_judges_a_replayed_payment_claimed_when_it_comes_again():
    """A PaymentClaimed the handler asked for again (ReplayEvent) is not judged then, but its next handling is,
    and so is every PaymentClaimed after it."""
    from ldkkit.events import ReplayEvent

    asked: set[object] = set()
    without_secret = _claimed_with(secret=None)

    def replays_each_once(inbound_payments, fs_store, event, **_):
        if event.payment_hash not in asked:
            asked.add(event.payment_hash)
            return ReplayEvent()
        return without_secret(inbound_payments=inbound_payments, fs_store=fs_store, event=event)

    lines = _read(_receiving(claimed=replays_each_once), W03)
    assert lines[2].endswith(" (the payment secret is missing)"), lines


# --- workbook 4: the words a learner reads, exactly -------------------------------------------------------

W04 = "sending_payments"
W04_SCENARIO = "Scenario 'sending_payments' on Event.{}:"
W04_PERSISTED = ('Expected: outbound_payments persisted before your handler returned: fs_store.write("", "", '
                 '"outbound_payments", outbound_payments.encode())')
W04_KEY_HINT = ("Hint: ldk-sample keeps these records under the key 'outbound_payments'. LDK forgets an event once "
                "your handler returns, so write what it changed before you return.")
W04_EXACTLY = "Hint: the event says how the payment ended: record exactly that."
W04_NOTHING_OF_YOURS = ("Happened: nothing of yours is stored under 'outbound_payments' (what is there, the CLI wrote, "
                        "as ldk-sample's getinvoice and sendpayment do)")
W04_UNWRITTEN = ("Hint: you did not write outbound_payments while handling this event: LDK forgets an event once your "
                 "handler returns, so write what it changed every time, before you return.")
W04_STRINGS = ["Expected: outbound_payments stored as outbound_payments.encode()",
               "Happened: what is stored cannot be read back: bad PaymentInfo in the data: PaymentInfo.status must be "
               "a HTLCStatus, got '{}'", "Hint: statuses are HTLCStatus members (HTLCStatus.Succeeded), not strings."]


@pytest.mark.parametrize("case, lines", [
    ("failed_on_path_failure", [
        W04_SCENARIO.format("PaymentPathFailed"),
        "Expected: the payment still Pending: one path failed, and LDK retries another",
        "Happened: on disk: PaymentInfo(preimage=None, secret=5ee2…2e84, status=HTLCStatus.Failed, "
        "amt_msat=50,000,000 msat)",
        "Hint: PaymentPathFailed is about one path; LDK's background processor has already given it to the scorer. "
        "Only PaymentFailed ends a payment."]),
    ("replaces_the_entry", [
        W04_SCENARIO.format("PaymentSent"),
        "Expected: outbound_payments[payment_id] HTLCStatus.Succeeded with the preimage on disk, its secret and "
        "amount kept (50,000,000 msat)",
        "Happened: on disk: PaymentInfo(preimage=f0d0…2cbb, secret=None, status=HTLCStatus.Succeeded, amt_msat=None)",
        "Hint: update the fields of the entry you have (status, preimage); replacing it with a new PaymentInfo loses "
        "what sendpayment recorded."]),
    ("status_string_succeeded", [W04_SCENARIO.format("PaymentSent"), W04_STRINGS[0],
                                 W04_STRINGS[1].format("Succeeded"), W04_STRINGS[2]]),
    ("status_string_failed", [W04_SCENARIO.format("PaymentFailed"), W04_STRINGS[0], W04_STRINGS[1].format("Failed"),
                              W04_STRINGS[2]]),
    ("failed_after_success", [
        W04_SCENARIO.format("PaymentFailed"),
        "Expected: the entry left Succeeded, with its preimage: this payment already succeeded",
        "Happened: on disk: PaymentInfo(preimage=d01b…b389, secret=f395…7012, status=HTLCStatus.Failed, "
        "amt_msat=100,000,000 msat)",
        "Hint: a PaymentFailed after a PaymentSent changes nothing: the payment succeeded, and the preimage proves "
        "it. Only mark it Failed if it has not succeeded."]),
    ("sent_without_preimage", [
        W04_SCENARIO.format("PaymentSent"),
        "Expected: outbound_payments[payment_id] HTLCStatus.Succeeded with the preimage on disk",
        "Happened: on disk: PaymentInfo(preimage=None, secret=5ee2…2e84, status=HTLCStatus.Succeeded, "
        "amt_msat=50,000,000 msat)",
        "Hint: the preimage is your receipt, your proof of payment: keep event.payment_preimage."]),
    ("failed_never_written", [W04_SCENARIO.format("PaymentFailed"), W04_PERSISTED, W04_NOTHING_OF_YOURS,
                              W04_UNWRITTEN]),
    ("failed_removes_entry", [
        W04_SCENARIO.format("PaymentFailed"), "Expected: outbound_payments[payment_id] HTLCStatus.Failed on disk",
        "Happened: no entry for this payment_id on disk",
        "Hint: update the entry sendpayment made (look it up by the event's payment_id); never remove it."]),
    ("sent_looked_up_by_hash", [
        W04_SCENARIO.format("PaymentSent"),
        "Expected: outbound_payments[payment_id] HTLCStatus.Succeeded with the preimage on disk",
        "Happened: on disk: PaymentInfo(preimage=None, secret=5ee2…2e84, status=HTLCStatus.Pending, "
        "amt_msat=50,000,000 msat)", W04_EXACTLY + " Change the entry outbound_payments holds under the event's "
        "payment_id (the key sendpayment used, not its payment_hash), that entry itself (not a copy of it, which "
        "outbound_payments.encode() never sees), then write."]),
    ("wrong_storage_key", [W04_SCENARIO.format("PaymentSent"), W04_PERSISTED,
                           W04_NOTHING_OF_YOURS + "; you wrote under ['outbound']", W04_KEY_HINT]),
    ("sent_ignored", [W04_SCENARIO.format("PaymentSent"), W04_PERSISTED, W04_NOTHING_OF_YOURS, W04_UNWRITTEN]),
    ("failed_marks_succeeded", [
        W04_SCENARIO.format("PaymentFailed"), "Expected: outbound_payments[payment_id] HTLCStatus.Failed on disk",
        "Happened: on disk: PaymentInfo(preimage=None, secret=4444…4444, status=HTLCStatus.Succeeded, "
        "amt_msat=10,000,000 msat)", W04_EXACTLY]),
    ("fails_only_rejected_payments", [
        W04_SCENARIO.format("PaymentFailed"), W04_PERSISTED, W04_NOTHING_OF_YOURS,
        "Hint: PaymentFailed ends the payment whatever its reason (here UserAbandoned): LDK tries it no more, and no "
        "other event about it will come: mark it Failed and write outbound_payments before you return."]),
])
def test_workbook_4_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case, W04), W04) == lines


def test_workbook_4_tells_a_passing_handler_what_it_verified():
    from corpus.arms import compose

    assert _read(compose(), W04) == [
        "✅ sending_payments: all 4 checks passed",
        "  PaymentSent: Succeeded on disk, with the preimage, secret and amount  4 payments",
        "  PaymentFailed: Failed on disk, secret and amount kept                 7 payments",
        "  PaymentFailed after success: still Succeeded                          1 payment",
        "  PaymentPathFailed: the payment not marked failed (LDK retries)        11 path failures"]


# --- workbook 5: the words a learner reads, exactly -------------------------------------------------------

W_HELD_BACK = ("Hint: your handler never returned from {} (it is still waiting), and LDK hands events over one at a "
               "time: none after it reached your handler. Never wait in the handler for something that happens "
               "later.")
W05 = "forwarding"
W05_SCENARIO = "Scenario 'forwarding' on Event.PendingHTLCsForwardable:"
W05_RANGE = ("Hint: LDK asks for a random delay between time_forwardable and five times it: time_forwardable × (1 + 4 "
             "× a random fraction in [0, 1)).")
W05_AT_ONCE = ["Expected: a wait of 100 to 500 ms first", "Happened: it was called at once",
               "Hint: forwarding at once tells anyone watching the timing that you were the sender or the recipient: "
               "wait a random time first, in a task."]


@pytest.mark.parametrize("case, lines", [
    ("fixed_delay", [W05_SCENARIO, "Expected: a different random delay each time", "Happened: always 200 ms",
                     "Hint: a fixed delay tells an observer exactly when you got the HTLC; draw a random fraction "
                     "from keys_manager.get_secure_random_bytes() for each event."]),
    ("range_from_zero", [W05_SCENARIO, "Expected: a delay between 100 and 500 ms", "Happened: 0 ms", W05_RANGE]),
    ("range_to_six", [W05_SCENARIO, "Expected: a delay between 100 and 500 ms", "Happened: 600 ms", W05_RANGE]),
    ("milliseconds_as_seconds", [W05_SCENARIO, "Expected: a delay between 100 and 500 ms", "Happened: 100,000 ms",
                                 W05_RANGE + " That is 100 s: time_forwardable.total_seconds() is already in "
                                 "seconds."]),
    ("awaits_in_handler", [W05_SCENARIO, "Expected: the handler to return at once, and the forward to happen later",
                           "Happened: the handler itself waited 100 ms before returning",
                           "Hint: while your handler waits, no other event is handled: spawn the wait in a task "
                           "(asyncio.get_running_loop().create_task(...)) instead of awaiting it in the handler."]),
    ("forwards_at_once", [W05_SCENARIO, *W05_AT_ONCE]),
    ("forwards_now_and_later", [W05_SCENARIO, *W05_AT_ONCE]),
    ("never_returns_from_payment_forwarded", ["Scenario 'forwarding':", "Expected: 10 PaymentForwarded events",
                                              "Happened: 1", W_HELD_BACK.format("PaymentForwarded")]),
    ("disconnects_the_next_hop", ["Scenario 'forwarding':", "Expected: 10 PaymentForwarded events", "Happened: 2",
                                  "Hint: your handler disconnected a peer (peer_manager.disconnect_by_node_id, while "
                                  "it handled PaymentForwarded): the HTLCs still to go on to it were failed back. A "
                                  "forward completes once the next hop's preimage comes back through you, so leave "
                                  "the connections to the PeerManager."]),
    ("never_forwards", [W05_SCENARIO, "Expected: process_pending_htlc_forwards() called after a short delay",
                        "Happened: it was never called (not even 15 minutes later)",
                        "Hint: without it, HTLCs wait forever: nothing is forwarded or claimed. Spawn a task that "
                        "sleeps, then calls it."]),
    ("draws_the_bytes_and_ignores_them", [
        W05_SCENARIO, "Expected: the delay computed from the random bytes drawn for the event: the same bytes, the "
        "same delay", "Happened: two events given the same random bytes waited 300 ms, then 110 ms",
        "Hint: the delay must come from the bytes keys_manager.get_secure_random_bytes() gave you for this event, and "
        "from nothing else (a counter, a list of delays, the clock, an unseeded random): fraction = "
        "int.from_bytes(random[:4], 'big') / 2**32, then wait time_forwardable × (1 + 4 × fraction). A delay an "
        "observer can predict tells them where the HTLC came from."]),
    ("cycles_through_multiples_without_drawing", [
        W05_SCENARIO, "Expected: the random delay taken from keys_manager.get_secure_random_bytes()",
        "Happened: your code never called it while handling a PendingHTLCsForwardable",
        "Hint: draw the randomness for each delay from keys_manager.get_secure_random_bytes(), the node's secure "
        "source: fraction = int.from_bytes(random[:4], 'big') / 2**32, then wait time_forwardable × (1 + 4 × "
        "fraction). A delay an observer can predict tells them where the HTLC came from."]),
])
def test_workbook_5_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case, W05), W05) == lines


def test_workbook_5_tells_a_passing_handler_what_it_verified():
    assert _read(_corpus("plain_def_eight_byte_fraction", W05), W05) == [
        "✅ forwarding: all 4 checks passed",
        "  process_pending_htlc_forwards after a random delay in [t, 5t)   11 times, 100 to 500 ms",
        "  the handler returned at once; a task waited                     11 events",
        "  payments forwarded                                              10, earning 10,000 msat",
        "  after a restart (time_forwardable 2 s), and with no fee (None)  forwarded"]


def _sending(**arms):
    """A workbook 4 handler: the corpus's right arms, with those given (PaymentSent=..., PaymentFailed=...)."""
    from corpus.arms import compose

    return compose({getattr(Event, kind): arm for kind, arm in arms.items()})


def _write_outbound(fs_store, outbound_payments):
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


def test_workbook_4_says_an_entry_removed_after_success_should_have_stayed_succeeded():
    from ldkkit.payment_storage import HTLCStatus

    def drops_paid_ones(outbound_payments, fs_store, event, **_):
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is not None and info.status is HTLCStatus.Succeeded:
                del payments[event.payment_id]  # "a failure for a paid invoice: forget it"
            elif info is not None:
                info.status = HTLCStatus.Failed
        _write_outbound(fs_store, outbound_payments)

    assert _read(_sending(PaymentFailed=drops_paid_ones), W04) == [
        W04_SCENARIO.format("PaymentFailed"),
        "Expected: the entry left Succeeded, with its preimage: this payment already succeeded",
        "Happened: no entry for this payment_id on disk",
        "Hint: update the entry sendpayment made (look it up by the event's payment_id); never remove it."]


def test_workbook_4_says_a_failed_payment_must_keep_its_amount():
    from ldkkit.payment_storage import HTLCStatus

    def forgets_the_amount(outbound_payments, fs_store, event, **_):
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is not None and info.status is not HTLCStatus.Succeeded:
                info.status, info.amt_msat = HTLCStatus.Failed, None
        _write_outbound(fs_store, outbound_payments)

    assert _read(_sending(PaymentFailed=forgets_the_amount), W04) == [
        W04_SCENARIO.format("PaymentFailed"),
        "Expected: outbound_payments[payment_id] HTLCStatus.Failed on disk, its secret and amount kept "
        "(10,000,000 msat)",
        "Happened: on disk: PaymentInfo(preimage=None, secret=4444…4444, status=HTLCStatus.Failed, amt_msat=None)",
        "Hint: update the fields of the entry you have (status, preimage); replacing it with a new PaymentInfo loses "
        "what sendpayment recorded."]


def test_workbook_4_says_a_wrong_preimage_is_no_receipt():
    from ldkkit.payment_storage import HTLCStatus
    from ldkkit.types import PaymentPreimage

    def keeps_another_preimage(outbound_payments, fs_store, event, **_):
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is not None:
                info.status, info.preimage = HTLCStatus.Succeeded, PaymentPreimage(bytes(32))
        _write_outbound(fs_store, outbound_payments)

    lines = _read(_sending(PaymentSent=keeps_another_preimage), W04)
    assert lines[1] == "Expected: outbound_payments[payment_id] HTLCStatus.Succeeded with the preimage on disk"
    assert lines[3] == "Hint: the preimage is your receipt, your proof of payment: keep event.payment_preimage."


def test_workbook_4_story_shows_a_retried_path_a_success_a_refusal_overlaps_and_a_failure_after_success():
    """What the rules are judged on: a payment whose first path fails and that LDK retries to success (50,000 sat
    to dave), one that succeeds (100,000 sat to bob), one refused (10,000 sat, a hash bob never issued); then two
    at a time twice (dave answers two seconds after a payment reaches him, bob sooner): one to dave refused (a
    hash he never issued) while 20,000 sat to bob succeed, and 30,000 sat to dave while one to bob is refused; and
    the paid invoice paid again, refused after its success; one to dave that you abandon while he holds it
    (UserAbandoned, once it fails back); last, 40,000 sat to erin, whom only bob reaches and
    cannot forward to: LDK finds no other path, and gives up (RouteNotFound); 45,000 sat to erin that LDK may not
    retry (Retry.Attempts(0)): it gives up at the first failed path (RetriesExhausted); 25,000 sat to fay on a
    one-second invoice, whose paths fail until LDK finds it expired (PaymentExpired); and a probe, which is no
    payment."""
    from ldkkit.exercises import sending_payments

    session = common.Session(W04, reference)
    try:
        played = session.play(W04, sending_payments.story)
    finally:
        session.close()
    seen = [(type(e).__name__, e.payment_id) for e in played.events() if getattr(e, "payment_id", None) is not None]
    (retried, paid, refused, paid_meanwhile, refused_slowly, paid_slowly, refused_meanwhile, abandoned, no_route,
     no_retry, expired, probe) = dict.fromkeys(p for _, p in seen)
    assert seen == [("PaymentPathFailed", retried), ("PaymentSent", retried), ("PaymentPathSuccessful", retried),
                    ("PaymentSent", paid), ("PaymentPathSuccessful", paid),
                    ("PaymentPathFailed", refused), ("PaymentFailed", refused),
                    ("PaymentSent", paid_meanwhile), ("PaymentPathSuccessful", paid_meanwhile),
                    ("PaymentPathFailed", refused_slowly),  # (LDK retries it another way: dave refuses again)
                    ("PaymentPathFailed", paid_slowly),  # (its first path: dave's channel from bob, as above)
                    ("PaymentPathFailed", refused_meanwhile), ("PaymentFailed", refused_meanwhile),
                    ("PaymentSent", paid_slowly), ("PaymentPathSuccessful", paid_slowly),
                    ("PaymentPathFailed", refused_slowly), ("PaymentFailed", refused_slowly),
                    ("PaymentPathFailed", paid), ("PaymentFailed", paid),
                    ("PaymentPathFailed", abandoned), ("PaymentFailed", abandoned),
                    ("PaymentPathFailed", no_route), ("PaymentFailed", no_route),
                    ("PaymentPathFailed", no_retry), ("PaymentFailed", no_retry),
                    ("PaymentPathFailed", expired), ("PaymentPathFailed", expired), ("PaymentFailed", expired),
                    ("ProbeFailed", probe)]
    sent = played.stage.sent
    assert probe not in sent
    assert [sent[p].amt_msat for p in (retried, paid, refused, paid_meanwhile, refused_slowly, paid_slowly,
                                       refused_meanwhile, abandoned, no_route, no_retry, expired)] == [
        50_000_000, 100_000_000, 10_000_000, 20_000_000, 10_000_000, 30_000_000, 10_000_000, 10_000_000, 40_000_000,
        45_000_000, 25_000_000]
    reasons = [e.reason for e in played.events(Event.PaymentFailed)]
    assert reasons == [PaymentFailureReason.RecipientRejected] * 4 + [
        PaymentFailureReason.UserAbandoned, PaymentFailureReason.RouteNotFound, PaymentFailureReason.RetriesExhausted,
        PaymentFailureReason.PaymentExpired]


def test_workbook_4_judges_a_replayed_event_when_it_comes_again():
    from ldkkit.events import ReplayEvent
    from ldkkit.payment_storage import HTLCStatus

    asked: set[object] = set()

    def replays_each_once_then_forgets_the_preimage(outbound_payments, fs_store, event, **_):
        if event.payment_id not in asked:
            asked.add(event.payment_id)
            return ReplayEvent()
        with outbound_payments.lock() as payments:
            payments[event.payment_id].status = HTLCStatus.Succeeded
        _write_outbound(fs_store, outbound_payments)
        return None

    lines = _read(_sending(PaymentSent=replays_each_once_then_forgets_the_preimage), W04)
    assert lines[3] == "Hint: the preimage is your receipt, your proof of payment: keep event.payment_preimage."


# --- workbook 8, the capstone: its own rules, judged directly ------------------------------------------------


def test_the_capstone_takes_an_event_handed_over_again_right_after_itself_as_one():
    from ldkkit.exercises.capstone import _without_replays

    assert _without_replays([]) == []
    assert _without_replays(["A", "A", "B", "A", "A", "A"]) == ["A", "B", "A"]  # a later A is another event


def _zero_conf(on_request):
    """The capstone's zero-conf story, played with the corpus's right arms and ``on_request`` for each request."""
    from corpus.arms import compose

    from ldkkit.exercises import capstone

    session = common.Session("capstone", compose({Event.OpenChannelRequest: on_request}))
    try:
        return session.play("zero-conf requests", capstone.zero_conf_story)
    finally:
        session.close()


def _judged_zero_conf(on_request) -> list[str]:
    from ldkkit.exercises import capstone

    try:
        capstone.judge_zero_conf(_zero_conf(on_request))
    except ExerciseFailed as failure:
        return [line.strip() for line in str(failure).splitlines()
                if not line.strip().startswith(("The event:", "Events so far:"))]
    return []


def _zero_conf_arm(lsp: str, stranger: str):
    """An OpenChannelRequest arm: ``lsp``/``stranger`` says what it does with a zero-conf request from a trusted /
    an untrusted peer: "0conf" (accepted zero-conf), "accept" (accept_inbound_channel), "reject" or "ignore"."""
    from corpus.arms import open_channel, user_channel_id

    from ldkkit.reference import TRUSTED_ZERO_CONF_PEERS

    def arm(channel_manager, keys_manager, event, **_):
        if not event.channel_type.requires_zero_conf():
            return open_channel(channel_manager=channel_manager, keys_manager=keys_manager, event=event)
        how = lsp if event.counterparty_node_id in TRUSTED_ZERO_CONF_PEERS else stranger
        tcid, peer = event.temporary_channel_id, event.counterparty_node_id
        if how == "0conf":
            channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
        elif how == "reject":
            channel_manager.force_close_without_broadcasting_txn(tcid, peer, "no")
        return None

    return arm


CAPSTONE_SCENARIO = "Scenario 'zero-conf requests' on Event.OpenChannelRequest:"
TRUSTED_EXPECTED = "Expected: accept_inbound_channel_from_trusted_peer_0conf: this peer is in TRUSTED_ZERO_CONF_PEERS"
TRUSTED_HINT = ("Hint: a request whose channel_type.requires_zero_conf() from a trusted peer is accepted with the "
                "zero-conf method: that is what the trusted list is for.")
TRUSTED_REJECTED_HINT = TRUSTED_HINT + (" Look the peer up in TRUSTED_ZERO_CONF_PEERS itself when its request comes: "
                                        "the scenario adds the LSP's node id while it plays, so a copy of the set "
                                        "taken before (at import, or in a set of your own) does not hold it.")
UNTRUSTED_EXPECTED = "Expected: the request rejected: a zero-conf channel from a peer you do not trust"
UNTRUSTED_HINT = ("Hint: before the funding confirms, the opener can double-spend it: accept zero-conf only from "
                  "peers in TRUSTED_ZERO_CONF_PEERS, and reject it from anyone else.")


@pytest.mark.parametrize("lsp, stranger, lines", [
    ("0conf", "reject", []),
    ("reject", "reject", [CAPSTONE_SCENARIO, TRUSTED_EXPECTED, "Happened: you rejected it",
                          TRUSTED_REJECTED_HINT]),
    ("ignore", "reject", [CAPSTONE_SCENARIO, TRUSTED_EXPECTED, "Happened: it was not accepted zero-conf",
                          TRUSTED_HINT]),
    ("0conf", "0conf", [CAPSTONE_SCENARIO, UNTRUSTED_EXPECTED, "Happened: you accepted it", UNTRUSTED_HINT]),
    ("0conf", "ignore", [CAPSTONE_SCENARIO, UNTRUSTED_EXPECTED, "Happened: it was left unanswered",
                         UNTRUSTED_HINT]),
])
def test_the_capstone_accepts_zero_conf_from_the_trusted_lsp_only(lsp, stranger, lines):
    from ldkkit import policy

    trusted = set(policy.TRUSTED_ZERO_CONF_PEERS)
    assert _judged_zero_conf(_zero_conf_arm(lsp, stranger)) == lines
    assert policy.TRUSTED_ZERO_CONF_PEERS == trusted  # the story's LSP trusted for its story only


def test_the_capstone_names_an_accept_of_an_untrusted_zero_conf_request_that_failed():
    from ldkkit.reference import TRUSTED_ZERO_CONF_PEERS
    from ldkkit.types import ChannelId

    plain = _zero_conf_arm("0conf", "reject")

    def arm(channel_manager, keys_manager, event, **_):
        if event.channel_type.requires_zero_conf() and event.counterparty_node_id not in TRUSTED_ZERO_CONF_PEERS:
            try:  # accepted, but for a channel that does not exist: still an accept, even when rejected after
                channel_manager.accept_inbound_channel(ChannelId(bytes(32)), event.counterparty_node_id, 7)
            except Exception:
                pass
            channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id,
                                                                 event.counterparty_node_id, "no")
            return None
        return plain(channel_manager=channel_manager, keys_manager=keys_manager, event=event)

    assert _judged_zero_conf(arm)[1:3] == [UNTRUSTED_EXPECTED, "Happened: you accepted it"]


def test_the_capstone_wants_the_lsps_zero_conf_channel_usable_before_any_block():
    accept = _zero_conf_arm("0conf", "reject")

    def arm(channel_manager, keys_manager, event, **_):
        accept(channel_manager=channel_manager, keys_manager=keys_manager, event=event)
        for channel in channel_manager.list_channels():  # accepted, then closed at once
            if channel.channel_id != event.temporary_channel_id and channel.is_usable:
                channel_manager.force_close_broadcasting_latest_txn(channel.channel_id,
                                                                    channel.counterparty.node_id, "changed my mind")

    assert _judged_zero_conf(arm) == [
        "Scenario 'zero-conf requests':", "Expected: the LSP's zero-conf channel usable at once, before any block",
        "Happened: no usable channel with the LSP",
        "Hint: accept it with accept_inbound_channel_from_trusted_peer_0conf."]


@pytest.mark.parametrize("expected, happened, hint", [
    (("OpenChannelRequest", "ChannelReady"), "OpenChannelRequest → ChannelPending → ChannelReady",
     "event 2: ChannelReady was expected"),
    (("OpenChannelRequest", "ChannelPending"), "OpenChannelRequest → ChannelPending → ChannelReady",
     "event 3: ChannelReady came too"),
    (("OpenChannelRequest", "ChannelPending", "ChannelReady", "PaymentClaimable"),
     "OpenChannelRequest → ChannelPending → ChannelReady", "event 4: PaymentClaimable was expected"),
])
def test_the_capstone_names_the_first_event_that_differs_from_the_reference_nodes(monkeypatch, expected, happened,
                                                                                   hint):
    from ldkkit import scenarios
    from ldkkit.exercises import capstone

    first = scenarios.names()[0]
    monkeypatch.setattr(capstone, "_reference_events", lambda name: expected)
    session = common.Session("capstone", reference)
    try:
        with pytest.raises(ExerciseFailed) as failure:
            capstone.compare_with_reference(session)
    finally:
        session.close()
    lines = [line.strip() for line in str(failure.value).splitlines()]
    assert lines == [f"Scenario '{first}':", f"Expected: {' → '.join(expected)}", f"Happened: {happened}",
                     f"Events so far: {happened}",
                     f"Hint: the first difference is at {hint}. {scenarios.describe(first)}"]


def test_the_capstone_does_not_count_a_replay_as_a_difference(monkeypatch):
    from ldkkit import scenarios
    from ldkkit.exercises import capstone

    first, second = scenarios.names()[:2]
    replayed = ("OpenChannelRequest", "OpenChannelRequest", "ChannelPending", "ChannelReady", "ChannelReady")
    monkeypatch.setattr(capstone, "_reference_events", lambda name: replayed if name == first else ("Nothing",))
    session = common.Session("capstone", reference)
    try:
        with pytest.raises(ExerciseFailed, match=f"^Scenario '{second}':"):  # the first scenario was the same
            capstone.compare_with_reference(session)
    finally:
        session.close()


def test_the_capstone_tells_a_passing_handler_what_it_verified():
    from ldkkit import scenarios

    earlier = ["open_channel_request", "funding_generation_ready", "receiving_payments", "sending_payments",
               "forwarding", "on_chain", "background_processor"]
    rows = [(f"every rule of {name}", "yes") for name in earlier] + [
        ("zero-conf accepted from the trusted LSP only", "LSP accepted, stranger rejected"),
        ("a payment made twice claimed once", "the second failed back, unless the first was refused"),
        ("every scenario under the background processor: the reference's events",
         f"{len(scenarios.names())} scenarios")]
    width = max(len(what) for what, _ in rows)
    assert _read(reference, "capstone") == ["✅ capstone: all 10 checks passed"] + [
        f"  {what.ljust(width)}  {result}" for what, result in rows]


def test_the_capstone_plays_every_scenario_under_the_background_processor():
    """A plain ``def`` handler that spawns tasks works when the world drives it on the node's loop, and fails
    under BackgroundProcessor.start (no loop): the capstone's comparison plays every scenario under it."""
    from corpus.arms import compose

    from ldkkit.exercises import capstone

    session = common.Session("capstone", compose({}, plain=True))
    try:
        with pytest.raises(ExerciseFailed) as failure:
            capstone.compare_with_reference(session)
    finally:
        session.close()
    lines = [line.strip() for line in str(failure.value).splitlines()]
    assert lines[0] == "Scenario 'receive_invoice_payment' on Event.PendingHTLCsForwardable:"
    assert lines[-1].startswith("Hint: your handler is a plain def, and under BackgroundProcessor.start")


@pytest.fixture
def capstone_alone(monkeypatch):
    """The capstone with no earlier workbook's rules before its own: its own rules judged at once."""
    from ldkkit.exercises import capstone

    monkeypatch.setattr(capstone, "EARLIER", ())


def test_the_capstone_names_its_zero_conf_scenario(capstone_alone):
    from corpus.arms import compose
    from corpus.w08_capstone import zero_conf_from_anyone

    assert _read(compose({Event.OpenChannelRequest: zero_conf_from_anyone}), "capstone")[:3] == [
        CAPSTONE_SCENARIO, UNTRUSTED_EXPECTED, "Happened: you accepted it"]


def test_the_capstone_fails_a_claim_of_a_payment_made_twice(capstone_alone):
    from corpus.arms import compose
    from corpus.w08_capstone import claims_every_time

    assert _read(compose({Event.PaymentClaimable: claims_every_time}), "capstone")[:3] == [
        "Scenario 'receive_duplicate_payment' on Event.PaymentClaimable:",
        "Expected: fail_htlc_backwards(payment_hash): this invoice is already paid",
        "Happened: you claimed it a second time"]


def test_a_payment_made_again_while_the_first_is_claimable_is_failed_back_by_ldk_itself():
    """LDK 0.1.12's check_total_value: an HTLC set for a hash already claimable is failed back ("payment is already
    claimable"), and the handler never sees it; once claimed, a payment made again is a PaymentClaimable of its own.
    The reference put off as a handler may put off its claim gives the first; answering at once, the second."""
    from ldkkit.exercises import capstone

    at_once = ("PaymentClaimable", "PaymentClaimed", "PendingHTLCsForwardable", "PaymentClaimable",
               "HTLCHandlingFailed", "PendingHTLCsForwardable")
    put_off = ("PaymentClaimable", "PendingHTLCsForwardable", "HTLCHandlingFailed", "PendingHTLCsForwardable",
               "PaymentClaimed")
    assert capstone.reference_events_put_off("receive_duplicate_payment", ((None,), (None,)), 0)[-6:] == at_once
    assert capstone.reference_events_put_off("receive_duplicate_payment", ((None,), (5.0,)), 0)[-5:] == put_off
    assert capstone._reference_events("receive_duplicate_payment")[-6:] == at_once
    # (a claim that died with its task, in a crash: the payment is never claimed, as LDK hands it over only once)
    assert capstone.reference_events_put_off("restart_replay", ((None,), (math.inf,)), 0)[-2:] == (
        "PendingHTLCsForwardable", "PaymentClaimable")


def test_a_difference_from_the_reference_put_off_says_the_reference_put_off_its_answers(capstone_alone, monkeypatch):
    """A handler that puts its claims off is compared with the reference put off as long: a difference then never
    says that the reference answers each event as it handles it."""
    from corpus.arms import compose
    from corpus.w03_receiving_payments import answers_after

    from ldkkit.exercises import capstone

    real = capstone.reference_events_put_off
    monkeypatch.setattr(capstone, "reference_events_put_off", lambda name, delays, played_on: (
        real(name, delays, played_on) if name != "receive_invoice_payment" else
        ("OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimed",
         "PaymentClaimable")))
    lines = _read(compose({Event.PaymentClaimable: answers_after(5)}), "capstone")
    assert lines[1].endswith("PaymentClaimed → PaymentClaimable (the reference's answers put off as long as yours)")
    assert lines[3].startswith("Hint: the first difference is at event 5: PaymentClaimed was expected, and came only "
                               "at event 6, later than the reference's: did your handler put off what leads to it? "
                               "(the reference put off its answers to OpenChannelRequest and PaymentClaimable as "
                               "yours were, and answers every other event as it handles it)")


# --- workbook 6: the words a learner reads, exactly -------------------------------------------------------

W06 = "on_chain"
W06_SPENDABLE = ["Scenario 'on_chain' on Event.SpendableOutputs:",
                 "Expected: the output 08763478b58e8ff127cc9e280825f0c12725627d520ed811c7bac95100f5828f:0 "
                 "(999,830 sats) swept into your wallet"]
W06_NEVER = "Happened: it never came back to your wallet"
W06_NOT_AMONG = ": it was not among the outputs you handed over (a StaticOutput: a cooperative close pays you so)"
W06_HAND_OVER = ("Hint: LDK never spends these itself: hand event.outputs and event.channel_id to "
                 "output_sweeper.track_spendable_outputs, which spends them to your wallet at once, and spends them "
                 "again each block until that sweep confirms.")
W06_BUMP = ["Scenario 'on_chain' on Event.BumpTransaction:",
            "Expected: bump_tx_event_handler.handle_event(the inner {})", "Happened: it was not handed over",
            "Hint: match Event.BumpTransaction(bump_event) and hand bump_event over, whatever its kind: on an anchor "
            "channel, only your wallet's coins get your commitment (through a child spending its anchor) or an HTLC "
            "claim (added to its transaction) confirmed in time."]


@pytest.mark.parametrize("case, lines", [
    ("excludes_static_outputs", [*W06_SPENDABLE, W06_NEVER + ": you told the sweeper to exclude static outputs, and "
                                 "this is one", "Hint: a cooperative close pays you a plain StaticOutput: excluding "
                                 "static outputs leaves it unswept. Pass exclude_static_outputs=False."]),
    ("far_delay_until_height", [*W06_SPENDABLE, W06_NEVER + ": you told the sweeper to wait until block 10,028",
                                "Hint: pass delay_until_height=None: the sweeper spends outputs as soon as they are "
                                "spendable."]),
    ("delay_until_the_last_block", [*W06_SPENDABLE, W06_NEVER + ": you told the sweeper to wait until block 222",
                                    "Hint: pass delay_until_height=None: the sweeper spends outputs as soon as they "
                                    "are spendable."]),
    ("never_sweeps", [*W06_SPENDABLE, W06_NEVER + ": the event's outputs were never handed to the OutputSweeper",
                      W06_HAND_OVER]),
    ("filters_static_outputs_itself", [*W06_SPENDABLE, W06_NEVER + W06_NOT_AMONG, W06_HAND_OVER]),
    ("filters_static_outputs_delay_at_current_height", [*W06_SPENDABLE, W06_NEVER + W06_NOT_AMONG, W06_HAND_OVER]),
    ("never_returns_from_channel_closed", ["Scenario 'on_chain':",
                                           "Expected: SpendableOutputs and BumpTransaction events",
                                           "Happened: 0 and 0", W_HELD_BACK.format("ChannelClosed")]),
    ("never_returns_from_bump_transaction", ["Scenario 'on_chain':",
                                             "Expected: SpendableOutputs and BumpTransaction events",
                                             "Happened: 0 and 1", W_HELD_BACK.format("BumpTransaction")]),
    ("ignores_bump_transaction", [W06_BUMP[0], W06_BUMP[1].format("ChannelClose"), *W06_BUMP[2:]]),
    ("bumps_channel_close_only", [W06_BUMP[0], W06_BUMP[1].format("HTLCResolution"), *W06_BUMP[2:]]),
])
def test_workbook_6_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case, W06), W06) == lines


def test_workbook_6_tells_a_passing_handler_what_it_verified():
    assert _read(_corpus("track_with_defaults", W06), W06) == [
        "✅ on_chain: all 4 checks passed",
        "  every spendable output swept into your wallet     2,997,899 sats from 4 events",
        "  BumpTransaction handed to the BumpTxEventHandler  42 events",
        "  your commitment and HTLC claims confirmed         paid for from your wallet",
        "  DiscardFunding: the transaction never broadcast   1 transaction"]


def test_workbook_6_names_the_error_a_handler_hid_from_the_sweeper():
    def hides_the_error(output_sweeper, event, **_):
        try:
            output_sweeper.track_spendable_outputs([*event.outputs, None], event.channel_id)
        except TypeError:  # the learner hides the sweeper's answer
            pass

    from corpus.arms import compose

    assert _read(compose({Event.SpendableOutputs: hides_the_error}), W06) == [
        *W06_SPENDABLE, W06_NEVER + ": track_spendable_outputs raised TypeError: track_spendable_outputs takes "
        "SpendableOutputDescriptors, got NoneType", W06_HAND_OVER]


W06_UNCONFIRMED = ["Scenario 'on_chain' on Event.BumpTransaction:", "Expected: {}", "Happened: it never confirmed",
                   "Hint: hand event.bump_event to bump_tx_event_handler.handle_event: on an anchor channel {}"]
W06_UNPAID = {"ChannelClose": "your commitment pays only the feerate agreed when it was signed, too little now, and "
                              "only the child the handler builds from your wallet's coins, spending its anchor, pays "
                              "the rest.",
              "HTLCResolution": "the HTLC transaction pays no fee of its own, and only your wallet's coins, which the "
                                "handler adds to it, pay one."}
W06_COMMITMENT = "5bffcc10d72fc473f82f108aad28a60cd0eebfd76ded98177e790e1baa85d2e4"
W06_CHANNEL = "f739ae680efcce960b12e94bb7d7f38654f88df07dfe4e72c143863407bb745d"


@pytest.mark.parametrize("unpaid, expected", [
    ("ChannelClose", f"your commitment transaction {W06_COMMITMENT} of channel {W06_CHANNEL} confirmed before the "
                     "HTLC on it expires (block 47)"),
    ("HTLCResolution", f"the HTLC output {W06_COMMITMENT}:1 of channel {W06_CHANNEL} taken back by a confirmed "
                       "transaction"),
])
def test_workbook_6_judges_the_chain_not_the_hand_over(monkeypatch, unpaid, expected):
    """Each fee bump handed over, but the BumpTxEventHandler pays for one kind only (say, the wallet ran dry):
    what that kind asked for never confirms, and the check names it."""
    from corpus.arms import compose

    from ldkkit.events.bump_transaction import BumpTransactionEventHandler

    pays = BumpTransactionEventHandler.handle_event

    def pays_all_but_one_kind(self, event):
        if type(event).__name__ != unpaid:
            pays(self, event)

    monkeypatch.setattr(BumpTransactionEventHandler, "handle_event", pays_all_but_one_kind)
    lines = _read(compose(), W06)
    assert lines == [W06_UNCONFIRMED[0], W06_UNCONFIRMED[1].format(expected), W06_UNCONFIRMED[2],
                     W06_UNCONFIRMED[3].format(W06_UNPAID[unpaid])]


# --- workbook 7: the words a learner reads, exactly -------------------------------------------------------

W07 = "background_processor"
W07_INBOUND, W07_OUTBOUND = "a failed write of inbound_payments", "failed writes of outbound_payments"
W07_THREAD, W07_ASYNC = "BackgroundProcessor.start", "process_events_async"
W07_RAISED = ("Hint: writing to disk failed, and raising stops the node's event processing. When you cannot persist "
              "what an event changed, return ReplayEvent(): LDK hands the same event over again, and nothing is lost.")
W07_SWALLOWED = ["Expected: ReplayEvent() returned when the write failed, so LDK hands the event over again",
                 "Happened: writing {} raised OSError and your handler returned as if all was well: the record is lost",
                 "Hint: catch OSError around fs_store.write and return ReplayEvent(): an event counts as handled only "
                 "once your handler returns normally."]
W07_RECORD = ("Expected: inbound_payments[payment_hash] = PaymentInfo(preimage, secret, HTLCStatus.Succeeded, "
              "50,000,000) on disk")


def _w07_scenario(story: str, form: str, kind: str) -> str:
    return f"Scenario '{story}, under {form}' on Event.{kind}:"


@pytest.mark.parametrize("case, lines", [
    ("protects_only_inbound", [_w07_scenario(W07_OUTBOUND, W07_THREAD, "PaymentSent"),
                               "Expected: your handler to return normally",
                               "Happened: it raised OSError: disk full (simulated) writing outbound_payments",
                               W07_RAISED]),
    ("raises_on_failed_write", [_w07_scenario(W07_INBOUND, W07_THREAD, "PaymentClaimed"),
                                "Expected: your handler to return normally",
                                "Happened: it raised RuntimeError: could not save the payment", W07_RAISED]),
    ("plain_def_spawning_forwards", [_w07_scenario(W07_INBOUND, W07_THREAD, "PendingHTLCsForwardable"),
                                     "Expected: your handler to return normally",
                                     "Happened: it raised RuntimeError: no running event loop",
                                     "Hint: your handler is a plain def, and under BackgroundProcessor.start a plain "
                                     "handler runs outside any event loop, so there is no loop to spawn a task on. "
                                     "Make it async def handle_ldk_events(...): the processor then runs it on the "
                                     "node's loop, as ldk-sample runs its handler on tokio."]),
    ("swallows_oserror", [_w07_scenario(W07_INBOUND, W07_THREAD, "PaymentClaimed"), W07_SWALLOWED[0],
                          W07_SWALLOWED[1].format("inbound_payments"), W07_SWALLOWED[2]]),
    ("swallows_outbound_only", [_w07_scenario(W07_OUTBOUND, W07_THREAD, "PaymentSent"), W07_SWALLOWED[0],
                                W07_SWALLOWED[1].format("outbound_payments"), W07_SWALLOWED[2]]),
    ("counts_replay_twice", [_w07_scenario(W07_INBOUND, W07_THREAD, "PaymentClaimed"), W07_RECORD,
                             "Happened: on disk: PaymentInfo(preimage=1316…e5df, secret=f645…0145, "
                             "status=HTLCStatus.Succeeded, amt_msat=400,000,000 msat) (amt_msat 400000000 for "
                             "50000000 received)",
                             "Hint: record the amount this event says you received, once: a replayed PaymentClaimed "
                             "must not add it again. Set the fields; never add to them."]),
    ("always_replays_claimed", [_w07_scenario(W07_INBOUND, W07_THREAD, "PaymentClaimed"),
                                "Expected: the event handled in the end (None returned once what failed works "
                                "again)",
                                "Happened: your handler asked for it again each of the 100 times it was handed over, "
                                "so it was never handled, and LDK hands over no event after it until it is",
                                "Hint: return ReplayEvent() only when something failed that may work next time, such "
                                "as fs_store.write raising OSError; once it works, return nothing."]),
])
def test_workbook_7_says_exactly_what_went_wrong(case, lines):
    assert _read(_corpus(case, W07), W07) == lines


def test_workbook_7_tells_a_passing_handler_what_it_verified():
    assert _read(_corpus("retry_in_place", W07), W07) == [
        "✅ background_processor: all 3 checks passed",
        "  a failed write loses nothing: ReplayEvent, and the record ends right   inbound and outbound, both "
        "processor forms",
        "  a replayed event is not counted twice                                  the amount stored is the amount "
        "received",
        "  after a crash and restart, the replayed events leave the same records  yes"]


def _swallows_from(nth_failure: int):
    """A workbook 7 handler that returns ReplayEvent() for failed writes, until the ``nth_failure``-th of the
    check, which it swallows: right in the stories played before it, wrong in the one it happens in."""
    from corpus.arms import compose
    from corpus.w07_background_processor import _update_inbound, _update_outbound

    from ldkkit.events import ReplayEvent

    failures = [0]

    def arm(inbound_payments, outbound_payments, fs_store, event, **_):
        inbound = isinstance(event, Event.PaymentClaimed)
        storage, key = (inbound_payments, "inbound_payments") if inbound else (outbound_payments, "outbound_payments")
        (_update_inbound if inbound else _update_outbound)(storage, event)
        try:
            fs_store.write("", "", key, storage.encode())
        except OSError:
            failures[0] += 1
            return ReplayEvent() if failures[0] < nth_failure else None
        return None

    return compose({Event.PaymentClaimed: arm, Event.PaymentSent: arm, Event.PaymentFailed: arm})


@pytest.mark.parametrize("nth_failure, scenario, key", [
    (nth, _w07_scenario(story, form, kind), "inbound_payments" if story == W07_INBOUND else "outbound_payments")
    for nth, (form, story, kind) in enumerate(
        [(form, story, kind) for form in (W07_THREAD, W07_ASYNC)
         for story, kind in ((W07_INBOUND, "PaymentClaimed"), (W07_OUTBOUND, "PaymentSent"),
                             (W07_OUTBOUND, "PaymentFailed")) for _ in range(REFUSALS)], start=1)
])
def test_workbook_7_judges_every_failed_write_under_both_processor_forms(nth_failure, scenario, key):
    """The disk refuses thirty-six writes in all, in this order: inbound six times in a row, then outbound six times in
    a row for a payment that succeeds and six for one that fails, under BackgroundProcessor.start, then the same under
    process_events_async. Swallowing any one of them fails, in the story and form it happened in."""
    assert _read(_swallows_from(nth_failure), W07) == [scenario, W07_SWALLOWED[0], W07_SWALLOWED[1].format(key),
                                                       W07_SWALLOWED[2]]


def test_workbook_7_judges_the_records_after_a_restart():
    """A handler right under both processor forms that stores a wrong amount from the PaymentClaimed after those of the
    failing disk on (each handed over once and again for each refusal, under both forms): the one a restarted node is
    handed again (the crash came before anything handled it) is judged too."""
    from corpus.arms import compose
    from corpus.w07_background_processor import INBOUND, replay

    right = INBOUND(replay)
    seen = itertools.count(1)  # (no memory a crash puts back: the count goes on past the restart)

    def in_sats_after_six(event, **kw):
        if next(seen) > 2 * (REFUSALS + 1):
            event = dataclasses.replace(event, amount_msat=event.amount_msat // 1000)
        return right(event=event, **kw)

    assert _read(compose({Event.PaymentClaimed: in_sats_after_six}), W07) == [
        "Scenario 'restart_replay' on Event.PaymentClaimed:", W07_RECORD,
        "Happened: on disk: PaymentInfo(preimage=dc64…e459, secret=693e…e188, status=HTLCStatus.Succeeded, "
        "amt_msat=50,000 msat) (amt_msat 50000 for 50000000 received)",
        "Hint: amt_msat is in millisatoshis, as the event's amount_msat is: store event.amount_msat as it is, not "
        "divided by 1,000."]


def test_workbook_5_story_forwards_ten_payments_from_alice_to_carol_with_the_extreme_draws_first():
    """What the rules are judged on: alice and carol each open a 6,000,000 sat channel to you (carol pushing you
    3,000,000 sats to forward with). Alice pays carol through you, for a fee of 1,000 msat each: 100,000, 200,000,
    50,000 and 70,000 sats two seconds apart; then 20,000, 30,000, 10,000 and 25,000 sats 0.35 s apart (two arrive
    while one waits: LDK gives one PendingHTLCsForwardable for both); then 15,000 sats, and 5,000 sats arriving
    0.05 s before carol (who forwards 0.3 s after she is told) claims the 15,000. The first two delays your handler
    draws are the extremes, all zeros and all ones; then bytes given again, the same bytes for the same delay, one
    of them long enough for the fourth overlapping payment to arrive while the third waits. Last, alice pays carol
    10,000 sats for a hash carol never issued: she refuses it, and you fail it back (HTLCHandlingFailed, then
    PendingHTLCsForwardable)."""
    from ldkkit.exercises import forwarding

    session = common.Session(W05, reference)
    try:
        played = session.play(W05, forwarding.story, draws_for=(Event.PendingHTLCsForwardable,
                                                                forwarding.PLANNED_DRAWS))
    finally:
        session.close()
    assert list(played.stage.peers) == ["alice", "carol"]
    forwarded = played.events(Event.PaymentForwarded)
    assert [e.outbound_amount_forwarded_msat for e in forwarded] == [
        100_000_000, 200_000_000, 50_000_000, 70_000_000, 20_000_000, 30_000_000, 10_000_000, 25_000_000,
        15_000_000, 5_000_000]
    assert [e.total_fee_earned_msat for e in forwarded] == [1_000] * 10
    channels = played.me.channel_manager.list_channels()
    assert [c.channel_value_satoshis for c in channels] == [6_000_000, 6_000_000]
    # Yours, less the 1 % reserve: what alice paid you (525,010,000 msat), and carol's push less what you sent her.
    assert sorted(c.outbound_capacity_msat for c in channels) == [465_010_000, 2_415_000_000]
    delays = [c.at - h.started for h in played.handled(Event.PendingHTLCsForwardable)
              for c in played.recorder.calls_for(h, "channel_manager.process_pending_htlc_forwards")]
    assert len(delays) == 11 and delays[0] == pytest.approx(0.1, abs=1e-5) and delays[1] == pytest.approx(0.5)
    assert delays[3] == delays[4] == delays[5] == delays[7] and delays[2] == delays[8] and delays[6] > 0.35
    # The last payment forwarded arrived 0.05 s before carol's claim of the one before came back.
    claims = [at for at, src, _dst, kind in played.world.message_log if src == "carol" and kind == "UpdateFulfillHTLC"]
    last = played.handled(Event.PendingHTLCsForwardable)[-3].started
    assert 0.04 <= min(claim - last for claim in claims if claim > last) <= 0.05  # (time is let pass 10 ms at a time)
    # The refused one: sent on to carol, failed back by her, then by you to alice, a delay after HTLCHandlingFailed.
    [failed] = played.handled(Event.HTLCHandlingFailed)
    [back] = [at for at, src, _dst, kind in played.world.message_log
              if src == played.me.name and kind == "UpdateFailHTLC"]
    assert played.handled(Event.PendingHTLCsForwardable)[-1].started == failed.started and back - failed.started >= 0.1


def test_workbook_5_names_a_fixed_delay_on_the_last_event_once_every_delay_showed():
    from ldkkit.exercises import check

    with pytest.raises(ExerciseFailed) as failure:
        check(W05, _corpus("fixed_delay", W05))
    path = next(line.strip() for line in str(failure.value).splitlines() if line.strip().startswith("Events so far:"))
    assert path.endswith("HTLCHandlingFailed → [PendingHTLCsForwardable]")  # the last of eleven
    assert path.count("PendingHTLCsForwardable") == 5 and "..." in path


@pytest.mark.parametrize("story, kinds, sent, channel_sats, refusals", [
    ("receive_with_failing_disk", ["PaymentClaimed"], [], 6_000_000, 6),
    ("send_with_failing_disk", ["PaymentSent", "PaymentFailed"], [100_000_000, 10_000_000], 1_000_000, 6),
])
def test_workbook_7_stories_refuse_the_first_writes_of_each_payment_event(story, kinds, sent, channel_sats, refusals):
    """What the rules are judged on: bob opens 6,000,000 sats to you and pays you 50,000 sats; or you open
    1,000,000 sats to bob and pay him 100,000 sats, then 10,000 sats he refuses. The disk refuses the first writes of
    each payment event's record six times in a row (more than a handler giving up after a few tries would try), and
    no other; a right handler asks for the event again each time."""
    from ldkkit.exercises import background_processor

    session = common.Session(W07, reference)
    try:
        played = session.play(story, getattr(background_processor, story), processor="thread")
    finally:
        session.close()
    assert list(played.stage.peers) == ["bob"]
    assert [c.channel_value_satoshis for c in played.me.channel_manager.list_channels()] == [channel_sats]
    assert [s.amt_msat for s in played.stage.sent.values()] == sent
    handed = [h for h in played.recorder.handlings if type(h.event).__name__ in kinds]
    assert [type(h.event).__name__ for h in handed] == [kind for kind in kinds for _ in range(refusals + 1)]
    key = "inbound_payments" if story.startswith("receive") else "outbound_payments"
    errors = [str(c.error) for h in handed for c in played.recorder.calls_for(h, "fs_store.write")]
    assert errors == ([f"disk full (simulated) writing {key}"] * refusals + ["None"]) * len(kinds)
    if story.startswith("receive"):
        assert [h.event.amount_msat for h in handed] == [50_000_000] * (refusals + 1)


def test_workbook_5_says_how_long_a_handler_waited_when_it_awaited_milliseconds_as_seconds():
    from corpus.arms import compose

    async def awaits_milliseconds(channel_manager, event, **_):
        await asyncio.sleep(event.time_forwardable.total_seconds() * 1000)  # 100 "ms", slept as seconds, in here
        channel_manager.process_pending_htlc_forwards()

    assert _read(compose({Event.PendingHTLCsForwardable: awaits_milliseconds}), W05)[1:3] == [
        "Expected: the handler to return at once, and the forward to happen later",
        "Happened: the handler itself waited 100,000 ms before returning"]


def test_workbook_6_story_closes_one_channel_cooperatively_and_force_closes_one_with_a_stuck_htlc():
    """What the rules are judged on: you open 1,000,000 sats to bob, to carol and to dave and pay carol 50,000 sats;
    she goes offline as it arrives, so the HTLC stays. You close bob's channel cooperatively (a StaticOutput to sweep)
    and force-close carol's: your commitment, its HTLC taken back once it expires, and both delayed outputs to
    sweep once they mature. Dave force-closes his: his commitment pays your balance (a StaticPaymentOutput)."""
    from ldkkit.events.bump_transaction import BumpTransactionEvent

    session = common.Session(W06, reference)
    try:
        played = session.play(W06, on_chain.story)
    finally:
        session.close()
    assert list(played.stage.peers) == ["bob", "carol", "dave"]
    assert [e.channel_capacity_sats for e in played.events(Event.ChannelClosed)] == [1_000_000] * 3
    spendable = played.events(Event.SpendableOutputs)
    assert [[type(o).__name__ for o in e.outputs] for e in spendable] == [
        ["StaticOutput"], ["StaticPaymentOutput"], ["DelayedPaymentOutput"], ["DelayedPaymentOutput"]]
    bumps = [e.bump_event for e in played.events(Event.BumpTransaction)]
    htlcs = {d.htlc.amount_msat for b in bumps if isinstance(b, BumpTransactionEvent.HTLCResolution)
             for d in b.htlc_descriptors}
    assert isinstance(bumps[0], BumpTransactionEvent.ChannelClose) and htlcs == {50_000_000}


def test_workbook_7_names_a_swallowed_write_even_when_another_key_is_written_after_it():
    """The failed write of the record is what is lost, whatever the handler writes after it (a log here)."""
    from corpus.arms import compose
    from corpus.w07_background_processor import _update_inbound

    def logs_after_the_record(inbound_payments, fs_store, event, **_):
        _update_inbound(inbound_payments, event)
        try:
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())
        except OSError:
            pass  # "the log below will do"
        fs_store.write("", "", "claims_log", bytes(event.payment_hash))

    assert _read(compose({Event.PaymentClaimed: logs_after_the_record}), W07) == [
        _w07_scenario(W07_INBOUND, W07_THREAD, "PaymentClaimed"), W07_SWALLOWED[0],
        W07_SWALLOWED[1].format("inbound_payments"), W07_SWALLOWED[2]]


def test_workbook_7_judges_writes_only_a_read_that_finds_nothing_is_no_lost_write():
    """A RIGHT handler that first reads its claims log, which does not exist yet (NotFound, handled), then
    persists with ReplayEvent() on a failed write: only fs_store.write calls are judged as lost writes."""
    from corpus.arms import compose
    from corpus.w07_background_processor import INBOUND, replay

    persist = INBOUND(replay)

    def reads_its_log_first(fs_store, **kw):
        try:
            fs_store.read("", "", "claims_log")
        except OSError:  # NotFound: no log yet
            pass
        return persist(fs_store=fs_store, **kw)

    assert _read(compose({Event.PaymentClaimed: reads_its_log_first}), W07)[0] == (
        "✅ background_processor: all 3 checks passed")


def _written_early(played, *, key="inbound_payments", error=None, during=True, status=None):
    """Workbook 3 played by the reference, with one write more: the record the keysend's PaymentClaimed wrote, made
    instead between its PaymentClaimable and that PaymentClaimed (the invoice's payment claimed before it), under
    ``key``, failing with ``error``, from a task unless ``during``, with the keysend's entry of ``status`` if given."""
    from ldkkit.payment_storage import HTLCStatus, InboundPaymentInfoStorage

    claimable = [h for h in played.handled(Event.PaymentClaimable) if h.event.purpose.preimage() is not None][1]
    claimed = next(h for h in played.handled(Event.PaymentClaimed)
                   if h.event.payment_hash == claimable.event.payment_hash)
    assert any(h.order < claimable.order for h in played.handled(Event.PaymentClaimed))  # (another hash's claim)
    write = next(c for c in played.recorder.calls_for(claimed, "fs_store.write")
                 if c.arguments["key"] == "inbound_payments")
    buf = bytes(write.arguments["buf"])
    if status is not None:
        storage = InboundPaymentInfoStorage.decode(buf)
        storage.payments[claimable.event.payment_hash].status = status
        buf = storage.encode()
    assert InboundPaymentInfoStorage.decode(buf).payments[claimable.event.payment_hash].status is (
        status or HTLCStatus.Succeeded)
    return dataclasses.replace(write, arguments={**write.arguments, "key": key, "buf": buf}, error=error,
                               during=during, handling=claimable, order=claimable.order + 0.5)


@pytest.mark.parametrize("during, says", [(True, "before PaymentClaimed came\n"),
                                          (False, "before PaymentClaimed came (from a task or thread of yours)")])
def test_a_payment_written_succeeded_before_its_payment_claimed_fails_whoever_wrote_it(received_by_the_reference,
                                                                                         during, says):
    """A write of inbound_payments holding Succeeded for a payment whose PaymentClaimable came and its PaymentClaimed
    not yet fails, though another payment was claimed before it; one made from a task says so."""
    from ldkkit.exercises import receiving_payments

    played = received_by_the_reference
    calls = played.recorder.calls
    played.recorder.calls = [*calls, _written_early(played, during=during)]
    try:
        with pytest.raises(ExerciseFailed) as failure:
            receiving_payments._judge_no_success_written_early(played)
    finally:
        played.recorder.calls = calls
    assert "Expected: the payment not Succeeded on disk yet" in str(failure.value)
    assert says in str(failure.value) + "\n", str(failure.value)
    receiving_payments._judge_no_success_written_early(played)  # (the reference's own writes: none early)


@pytest.mark.parametrize("early", [
    pytest.param({"error": OSError("disk full")}, id="a write that failed: nothing reached the disk"),
    pytest.param({"key": "inbound_payments_backup"}, id="another key: not the record ldk-sample reads back"),
    pytest.param({"status": "Pending"}, id="the entry written Pending: not yet Succeeded, as it should be"),
])
def test_only_succeeded_written_to_the_record_before_payment_claimed_fails(received_by_the_reference, early):
    from ldkkit.exercises import receiving_payments
    from ldkkit.payment_storage import HTLCStatus

    played = received_by_the_reference
    if early.get("status"):
        early = {"status": HTLCStatus[early["status"]]}
    calls = played.recorder.calls
    played.recorder.calls = [*calls, _written_early(played, **early)]
    try:
        receiving_payments._judge_no_success_written_early(played)
    finally:
        played.recorder.calls = calls


@pytest.mark.parametrize("missing, says, not_said", [
    ("payment_secret", "this PaymentPurpose.SpontaneousPayment has no field 'payment_secret' (its fields: "
     "payment_preimage). A keysend has no invoice, so no secret: take it as getattr(purpose, \"payment_secret\", None)",
     "A field of an enum"),
    ("payment_context", "this PaymentPurpose.SpontaneousPayment has no field 'payment_context' (its fields: "
     "payment_preimage). A field of an enum holds one of its variants", "A keysend has no invoice"),
])
def test_a_field_the_events_purpose_lacks_is_told_from_the_errors_words_alone(received_by_the_reference, missing,
                                                                            says, not_said):
    """An AttributeError on a field of the event's purpose names the purpose's fields; the keysend's missing secret
    is told how to take it, any other missing field to match on the variant. Only the error's words are read: they
    are what crosses from a graded workbook's process."""
    from ldkkit.events.queue import EventHandlerError

    played = received_by_the_reference
    keysend = next(e for e in played.events(Event.PaymentClaimable)
                   if type(e.purpose).__name__ == "SpontaneousPayment")
    error = AttributeError(f"'SpontaneousPayment' object has no attribute '{missing}'")  # (no obj, no name)
    hint = str(common.handler_error(EventHandlerError(keysend, error), played)).splitlines()[-1]
    assert says in hint and not_said not in hint, hint


@pytest.mark.parametrize("below, fails", [(0, False), (1, True)])
def test_a_sweep_of_your_own_paying_exactly_bitcoinds_relay_fee_passes_and_a_sat_less_fails(sweep_in_mempool, below,
                                                                                             fails):
    """bitcoind refuses a transaction paying less than minrelaytxfee (1 sat/vB) for its size, and relays one paying
    exactly that: the sweeper's sweep, its first output worth more so that it pays vsize - ``below`` sats."""
    from ldkkit.bitcoin import Transaction, TxOut

    played = sweep_in_mempool
    handling = played.handled(Event.SpendableOutputs)[0]
    chain = played.world.chain
    sweep = next(iter(chain.mempool.values()))
    spent = sum(chain.get_transaction(i.previous_output.txid).output[i.previous_output.vout].value
                for i in sweep.input)
    first, *rest = sweep.output
    paid = spent - sum(o.value for o in rest) - sweep.vsize() + below
    tx = Transaction.new(sweep.version, sweep.lock_time, list(sweep.input),
                         [TxOut(value=paid, script_pubkey=first.script_pubkey), *rest])
    assert tx.vsize() == sweep.vsize() and spent - sum(o.value for o in tx.output) == tx.vsize() - below
    outpoint = sweep.input[0].previous_output
    if not fails:
        on_chain._judge_fee(played, handling, outpoint, 1_000, tx.compute_txid(), tx)
        return
    with pytest.raises(ExerciseFailed, match="less than bitcoind relays"):
        on_chain._judge_fee(played, handling, outpoint, 1_000, tx.compute_txid(), tx)


def test_a_unit_slip_is_told_only_when_every_forwarding_delay_is_far_too_short():
    """Delays all under time_forwardable / 50 are a unit slip (0 ms: .seconds; a little more: divided by 1000); one
    short delay among others reaching 5 t is a range from 0, not a unit slip, and is told nothing of units."""
    from types import SimpleNamespace

    from ldkkit.exercises import forwarding

    def played_with(*delays: float) -> SimpleNamespace:
        handlings = [SimpleNamespace(started=10.0 * i) for i in range(len(delays))]
        calls = {id(h): [SimpleNamespace(at=h.started + d)] for h, d in zip(handlings, delays, strict=True)}
        return SimpleNamespace(handled=lambda kind: handlings,
                               recorder=SimpleNamespace(calls_for=lambda h, name: calls[id(h)]))

    assert forwarding._too_short_unit(played_with(0.001, 0.002), 1.0).startswith(" Every delay was under 20 ms: ")
    assert forwarding._too_short_unit(played_with(0.0, 0.0), 1.0).startswith(" Every delay was 0 ms: ")
    assert forwarding._too_short_unit(played_with(0.001, 4.0), 1.0) == ""


def test_a_failure_back_waits_for_the_htlc_handling_failed_given_with_its_own_pending_htlcs_forwardable():
    """An update_fail_htlc goes back at least time_forwardable after the HTLCHandlingFailed before it, if LDK gave a
    PendingHTLCsForwardable with it; one given while a PendingHTLCsForwardable waited comes alone, and goes back with
    that one's processing (ldk-sample's handler: no sooner than that one allows)."""
    from datetime import timedelta
    from types import SimpleNamespace

    from ldkkit.events import HTLCDestination
    from ldkkit.exercises import forwarding
    from ldkkit.types import ChannelId

    def played(*given: tuple[str, float], fail_back_at: float) -> SimpleNamespace:
        events = {"PHF": Event.PendingHTLCsForwardable(timedelta(milliseconds=100)),
                  "HHF": Event.HTLCHandlingFailed(ChannelId(b"\x01" * 32), HTLCDestination.UnknownNextHop(42))}
        handlings = [SimpleNamespace(event=events[kind], started=at, order=i) for i, (kind, at) in enumerate(given)]
        return SimpleNamespace(
            name="forwarding", handled=lambda kind=Event: [h for h in handlings if isinstance(h.event, kind)],
            me=SimpleNamespace(name="learner"), events=lambda kind=Event: [h.event for h in handlings],
            recorder=SimpleNamespace(calls_to=lambda name: []),
            world=SimpleNamespace(message_log=[(fail_back_at, "learner", "alice", "UpdateFailHTLC")]))

    # two alone, while the PendingHTLCsForwardable of 0.0 waits: its processing at 0.15 fails them back
    forwarding.judge_forward_times(played(("PHF", 0.0), ("HHF", 0.1), ("HHF", 0.12), fail_back_at=0.15))
    # given with its own: 0.05 after it is too soon (as when the HTLCHandlingFailed arm processes at once)
    with pytest.raises(ExerciseFailed, match="failed back 50 ms after"):
        forwarding.judge_forward_times(played(("PHF", 0.0), ("HHF", 0.1), ("PHF", 0.1), fail_back_at=0.15))
    forwarding.judge_forward_times(played(("PHF", 0.0), ("HHF", 0.1), ("PHF", 0.1), fail_back_at=0.2))


def test_workbook_5_with_no_htlc_ever_waiting_judges_no_delay_and_raises_nothing_of_its_own():
    """A play where no PendingHTLCsForwardable came (its channels never opened): the forwards' count says what went
    wrong, not an IndexError of the check's (as the story's last event was read unconditionally)."""
    from types import SimpleNamespace

    from ldkkit.exercises import forwarding

    played = SimpleNamespace(handled=lambda kind: [], recorder=SimpleNamespace(calls_to=lambda name: []))
    assert forwarding.judge_forwards(played) == []
