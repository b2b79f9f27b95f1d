"""Checks for the workshop's workbooks: run your ``handle_ldk_events`` and say what it got right.

    from ldkkit.exercises import check
    check("open_channel_request", handle_ldk_events)

A check plays the exercise's scenarios against a fresh simulated node running your
handler, and judges what your handler did to the world. On success it returns a short
table of what was verified. On failure it raises :class:`ExerciseFailed` (an
``AssertionError``), naming the scenario and the event, saying what was expected and what
happened, with a hint that teaches rather than tells.

A handler that raises fails the check with its traceback kept; one that never returns
fails it within :data:`HANDLER_TIMEOUT_S` seconds. The handler may be plain or async.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import RetryableSendFailure
from .events import Event
from .events.queue import EventHandlerError
from .node import Node
from .scenarios import Stage
from .sim.world import World

#: How long a handler may take on one event before the check gives up on it.
HANDLER_TIMEOUT_S = 10.0
#: The workshop's policy: accept a channel exactly when it is strictly over this.
POLICY_MIN_EXCLUSIVE_SATS = 5_000_000
#: The largest channel without "wumbo" (option_support_large_channel).
LARGEST_NON_WUMBO_SATS = (1 << 24) - 1

_ROOT = Path(__file__).resolve().parent.parent


class ExerciseFailed(AssertionError):
    """A check found something your handler should do differently; the message says what."""


@dataclass
class CheckResult:
    """What a passing check verified, one row per thing; shows as a table in a notebook."""

    exercise: str
    rows: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        width = max(len(what) for what, _ in self.rows)
        lines = [f"✅ {self.exercise}: all {len(self.rows)} checks passed"]
        lines += [f"  {what.ljust(width)}  {result}" for what, result in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><td style='text-align:left'>{w}</td><td style='text-align:left'>{r}</td></tr>"
                        for w, r in self.rows)
        return (f"<p>✅ <b>{self.exercise}</b>: all {len(self.rows)} checks passed</p>"
                f"<table><tr><th>checked</th><th>result</th></tr>{cells}</table>")


@dataclass
class _Call:
    """One call your handler made on a component, the event it was handling, and when."""

    method: str
    args: tuple[Any, ...]
    event: Optional[Event]
    at: float  # simulation seconds


class _Recorder:
    """Records the handler's calls on the node's components, and the random bytes it drew."""

    TARGETS = {
        "channel_manager": (
            "accept_inbound_channel", "accept_inbound_channel_from_trusted_peer_0conf",
            "force_close_without_broadcasting_txn", "force_close_broadcasting_latest_txn",
            "funding_transaction_generated", "claim_funds", "fail_htlc_backwards", "process_pending_htlc_forwards",
        ),
        "bitcoind_client": ("send_raw_transaction",),
        "output_sweeper": ("track_spendable_outputs",),
        "bump_tx_event_handler": ("handle_event",),
        "fs_store": ("write",),
    }

    def __init__(self, node: Node) -> None:
        self.calls: list[_Call] = []
        self.random_bytes: list[bytes] = []
        self.current: Optional[Event] = None
        self.started: dict[int, float] = {}  # id(event) -> real time its handling began
        self._clock = node.channel_manager.clock
        for attr, methods in self.TARGETS.items():
            component = getattr(node, attr)
            for name in methods:
                short = name if attr == "channel_manager" else f"{attr}.{name}"
                setattr(component, name, self._wrap(short, getattr(component, name)))
        draw = node.keys_manager.get_secure_random_bytes

        def recorded_draw() -> bytes:
            data = draw()
            self.random_bytes.append(data)
            return data

        node.keys_manager.get_secure_random_bytes = recorded_draw
        for queue in (node.channel_manager._events, node.chain_monitor._events):
            queue.observer = self._observer(queue.observer)
        self.active: Optional[Event] = None  # the event the handler is handling right now
        node.event_handler = self._tracking(node.event_handler)

    def _tracking(self, handler: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """Know when the handler is running, so calls made later (by tasks it spawned) are told apart."""

        def run(event: Event) -> Any:
            self.active = event
            try:
                result = handler(event)
            except BaseException:
                self.active = None
                raise
            if inspect.isawaitable(result):
                return self._finish(result)
            self.active = None
            return result

        return run

    async def _finish(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self.active = None

    def _observer(self, inner: Optional[Callable[[Event], None]]) -> Callable[[Event], None]:
        def observe(event: Event) -> None:
            self.current = event
            self.started[id(event)] = time.perf_counter()
            if inner is not None:
                inner(event)

        return observe

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append(_Call(name, args, self.active, self._clock.now()))
            return method(*args)

        return call

    def calls_for(self, event: Event, method: Optional[str] = None) -> list[_Call]:
        return [c for c in self.calls if c.event is event and (method is None or c.method == method)]

    def calls_to(self, method: str) -> list[_Call]:
        return [c for c in self.calls if c.method == method]


def _progress(box: dict[str, Any]) -> tuple[Any, ...]:
    """Something that changes whenever the handler gets a new event or calls the node."""
    recorder = box.get("recorder")
    if recorder is None:
        return (box.get("progress"),)
    return (len(recorder.calls), id(recorder.current), box.get("progress"))


def _run_with_timeout(body: Callable[[], Any], recorder_box: dict[str, Any]) -> Any:
    """Run a check's world in a thread, so a handler that never returns cannot hang the kernel."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = body()
        except BaseException as e:  # re-raised in the caller's thread below
            outcome["error"] = e

    thread = threading.Thread(target=work, name="ldkkit-check", daemon=True)
    thread.start()
    deadline = time.monotonic() + HANDLER_TIMEOUT_S
    while thread.is_alive():
        recorder = recorder_box.get("recorder")
        before = _progress(recorder_box)
        thread.join(0.05)
        if time.monotonic() > deadline:
            event = recorder.current if recorder else None
            raise ExerciseFailed(
                f"Your handler did not return within {HANDLER_TIMEOUT_S:g} seconds"
                + (f" while handling {type(event).__qualname__}" if event else "")
                + ". It is still running in the background: Python cannot stop it, so restart the kernel "
                "(Kernel → Restart) once you have fixed it.\n"
                "Hint: a handler must return promptly. Never wait in a loop for something to happen; "
                "LDK will give you another event when it does."
            )
        if _progress(recorder_box) != before:
            deadline = time.monotonic() + HANDLER_TIMEOUT_S  # it is making progress: only a stuck handler times out
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _fail(scenario: str, event: Optional[Event], expected: str, happened: str, hint: str) -> ExerciseFailed:
    where = f" on {type(event).__qualname__}" if event is not None else ""
    shown = f"\n  The event: {event!r}" if event is not None else ""
    return ExerciseFailed(
        f"Scenario '{scenario}'{where}:\n  Expected: {expected}\n  Happened: {happened}{shown}\n  Hint: {hint}"
    )


def _cannot_go_on(scenario: str, error: Exception) -> ExerciseFailed:
    return _fail(scenario, None, "the scenario played to its end",
                 f"it could not go on: {type(error).__qualname__}: {error}",
                 "this usually means an earlier event was not handled (a channel never accepted or funded, so "
                 "there is no route for a payment). Run the earlier checks first.")


def _handler_error(scenario: str, error: EventHandlerError) -> ExerciseFailed:
    cause = error.error
    return _fail(
        scenario, error.event, "your handler to return normally",
        f"it raised {type(cause).__name__}: {cause}",
        "read the traceback above: its last lines point at the line of your handler that failed.",
    )


@contextlib.contextmanager
def _played(
    exercise: str, handler: Callable[..., Any], story: Callable[[Stage, _Recorder], None], seed: int = 17
) -> Iterator[tuple[Stage, _Recorder]]:
    """Play ``story`` against a fresh node running ``handler``; yield the stage and the recording."""
    box: dict[str, Any] = {}

    def play() -> tuple[Stage, _Recorder]:
        world = box["world"] = World(seed=seed)
        me = world.add_node("learner", handler=handler)
        recorder = box["recorder"] = _Recorder(me)
        stage = Stage(world, me)
        story(stage, recorder)
        return stage, recorder

    try:
        stage, recorder = _run_with_timeout(play, box)
    except EventHandlerError as e:
        box["world"].close()
        raise _handler_error(exercise, e) from e.error  # keeps the learner's traceback
    except ExerciseFailed:
        raise
    except Exception as e:
        if "world" in box:
            box["world"].close()
        raise _cannot_go_on(exercise, e) from e
    try:
        yield stage, recorder
    finally:
        stage.world.close()


def _events(node: Node, kind: type) -> list[Any]:
    return [e for e in node.events_seen if isinstance(e, kind)]


# --- open_channel_request ------------------------------------------------------------------------


def _check_open_channel_request(handler: Callable[..., Any]) -> CheckResult:
    sizes = [4_999_999, 5_000_000, 5_000_001, 6_000_000, LARGEST_NON_WUMBO_SATS]

    def story(stage: Stage, recorder: _Recorder) -> None:
        peers = [stage.peer(f"peer{i}") for i in range(len(sizes))]
        for peer, sats in zip(peers, sizes, strict=True):
            peer.channel_manager.create_channel(stage.me.node_id, sats, 0, 1, None, None)
        stage.world.run()
        stage.mine(6)
        try:  # other events, mixed in: a payment over an accepted channel, if there is one
            stage.pay(peers[3], stage.invoice(stage.me, 10_000_000))
        except RetryableSendFailure:
            pass

    result = CheckResult("open_channel_request")
    with _played("open_channel_request", handler, story) as (stage, recorder):
        me = stage.me
        requests = _events(me, Event.OpenChannelRequest)
        for request in sorted(requests, key=lambda r: r.funding_satoshis):  # smallest first: clearest
            _judge_request(request, recorder)
        accepted = sum(r.funding_satoshis > POLICY_MIN_EXCLUSIVE_SATS for r in requests)
        result.rows.append(("every request over 5,000,000 sats accepted", f"{accepted} accepted"))
        result.rows.append(("every other request rejected explicitly", f"{len(requests) - accepted} rejected"))
        result.rows.append(("5,000,000 sats exactly is rejected", "yes: the policy is strictly over"))
        result.rows.append(("user_channel_id from get_secure_random_bytes()", "yes"))
        others = len(me.events_seen) - len(requests)
        result.rows.append(("other events pass through without raising", f"{others} events"))
        ready = _events(me, Event.ChannelReady)
        result.rows.append(("accepted channels confirm and become ready", f"{len(ready)} ready"))
    return result


def _judge_request(request: Event.OpenChannelRequest, recorder: _Recorder) -> None:
    scenario = f"open_channel_request ({request.funding_satoshis:,} sats)"
    calls = recorder.calls_for(request)
    accepts = [c for c in calls if c.method == "accept_inbound_channel"]
    zero_conf = [c for c in calls if c.method == "accept_inbound_channel_from_trusted_peer_0conf"]
    rejects = [c for c in calls if c.method.startswith("force_close_")]
    should_accept = request.funding_satoshis > POLICY_MIN_EXCLUSIVE_SATS
    if zero_conf:
        raise _fail(scenario, request, "accept_inbound_channel(...)",
                    "accept_inbound_channel_from_trusted_peer_0conf(...)",
                    "the 0-conf method trusts the peer with your funds until the channel confirms: keep it for "
                    "peers you trust completely (an LSP), never for an unknown peer.")
    if should_accept and not accepts:
        happened = "you rejected it" if rejects else "nothing: the request was left unanswered"
        raise _fail(scenario, request, f"the channel accepted: {request.funding_satoshis:,} is over 5,000,000",
                    happened, "compare funding_satoshis with 5_000_000 and accept when it is strictly greater, "
                    "with channel_manager.accept_inbound_channel(temporary_channel_id, counterparty_node_id, "
                    "user_channel_id).")
    if not should_accept and not rejects:
        happened = "you accepted it" if accepts else "nothing: it was left to expire after two timer ticks"
        exactly = " (exactly 5,000,000 is not over 5,000,000)" if request.funding_satoshis == 5_000_000 else ""
        raise _fail(scenario, request, f"an explicit rejection{exactly}", happened,
                    "reject with channel_manager.force_close_without_broadcasting_txn(temporary_channel_id, "
                    "counterparty_node_id, a message for the peer); silence makes the peer wait for nothing.")
    for call in accepts:
        tcid, peer, user_channel_id = call.args
        if tcid != request.temporary_channel_id or peer != request.counterparty_node_id:
            raise _fail(scenario, request, "the request's temporary_channel_id and counterparty_node_id passed on",
                        f"accept_inbound_channel({tcid!r}, {peer!r}, ...)",
                        "pass the values from the event you are handling, not from another one.")
        if not _drawn_from(user_channel_id, recorder.random_bytes):
            raise _fail(scenario, request, "a user_channel_id drawn from keys_manager.get_secure_random_bytes()",
                        f"user_channel_id={user_channel_id!r}",
                        "take 16 of the 32 random bytes and read them as an int: "
                        "int.from_bytes(keys_manager.get_secure_random_bytes()[:16], 'big'). A fixed number would "
                        "give every channel the same id.")


def _drawn_from(value: Any, draws: list[bytes]) -> bool:
    if not isinstance(value, int):
        return False
    for data in draws:
        for chunk in (data[:16], data[16:], data):
            if value in (int.from_bytes(chunk, "big"), int.from_bytes(chunk, "little")):
                return True
    return False


# --- funding_generation_ready --------------------------------------------------------------------


def _check_funding_generation_ready(handler: Callable[..., Any]) -> CheckResult:
    sizes = [100_000, 1_000_000, LARGEST_NON_WUMBO_SATS]

    def story(stage: Stage, recorder: _Recorder) -> None:
        peers = [stage.peer(f"peer{i}") for i in range(len(sizes))]
        wallet = stage.me.bitcoind_client
        for i in range(len(sizes)):  # a coin per channel: bitcoind does not lock coins between fundings
            stage.world.chain.fund({wallet.get_new_address().script_pubkey: 30_000_000 + i})
        stage.mine(1)
        for peer, sats in zip(peers, sizes, strict=True):
            stage.me.channel_manager.create_channel(peer.node_id, sats, 0, sats, None, None)
        stage.world.run()
        stage.mine(6)

    result = CheckResult("funding_generation_ready")
    with _played("funding_generation_ready", handler, story) as (stage, recorder):
        ready_events = _events(stage.me, Event.FundingGenerationReady)
        for event in sorted(ready_events, key=lambda e: e.channel_value_satoshis):
            scenario = f"funding_generation_ready ({event.channel_value_satoshis:,} sats)"
            if recorder.calls_for(event, "bitcoind_client.send_raw_transaction"):
                raise _fail(scenario, event, "the signed transaction handed to funding_transaction_generated",
                            "you broadcast it yourself with send_raw_transaction",
                            "LDK broadcasts the funding transaction once the peer has signed for the refund; "
                            "broadcasting first risks your coins if the peer vanishes.")
            calls = recorder.calls_for(event, "funding_transaction_generated")
            if not calls:
                raise _fail(scenario, event,
                            "funding_transaction_generated(temporary_channel_id, counterparty_node_id, transaction)",
                            "nothing: the channel was never funded",
                            "build it with bitcoind_client: create_raw_transaction([{address: btc}]), then "
                            "fund_raw_transaction(raw_tx), then sign_raw_transaction_with_wallet(funded.hex); the "
                            "address is Address.from_script(output_script, network).")
            tcid, peer, tx = calls[0].args
            paying = [o for o in tx.output if o.script_pubkey == event.output_script]
            if len(paying) != 1 or paying[0].value != event.channel_value_satoshis:
                raise _fail(scenario, event, f"one output of exactly {event.channel_value_satoshis:,} sats to "
                            "output_script", f"{[o.value for o in paying]} to that script",
                            "bitcoind takes amounts in BTC: channel_value_satoshis / 100_000_000.")
        pending, ready = _events(stage.me, Event.ChannelPending), _events(stage.me, Event.ChannelReady)
        if len(ready) != len(sizes):
            raise _fail("funding_generation_ready", None, f"{len(sizes)} channels ready after six blocks",
                        f"{len(pending)} pending, {len(ready)} ready", "every channel you open needs its own funding.")
        result.rows.append(("each FundingGenerationReady funded", f"{len(ready_events)} transactions"))
        result.rows.append(("one output of the exact value to output_script", "yes"))
        result.rows.append(("left the broadcast to LDK", "yes"))
        result.rows.append(("channels pending, then ready after six blocks", f"{len(ready)} ready"))
    return result


# --- receiving_payments ------------------------------------------------------------------------


def _persisted(recorder: _Recorder, event: Event, key: str) -> bool:
    return any(c.args[2] == key for c in recorder.calls_for(event, "fs_store.write"))


def _check_receiving_payments(handler: Callable[..., Any]) -> CheckResult:
    from .ln.outbound_payment import RecipientOnionFields
    from .ln.outbound_payment import Retry as _Retry
    from .routing.router import PaymentParameters, RouteParameters
    from .types import PaymentId, PaymentPreimage

    def story(stage: Stage, recorder: _Recorder) -> None:
        bob = stage.peer("bob")
        stage.open(bob, stage.me, 6_000_000)
        stage.pay(bob, stage.invoice(stage.me, 50_000_000))
        stage.keysend(bob, stage.me, 20_000_000)
        # A payment to a hash whose preimage your node does not have: it cannot be claimed.
        unknown = PaymentPreimage(b"\x5a" * 32).payment_hash()
        secret = stage.me.channel_manager.create_inbound_payment_for_hash(unknown, None, 3600)
        params = RouteParameters.from_payment_params_and_value(
            PaymentParameters.from_node_id(stage.me.node_id, 42), 30_000_000)
        bob.channel_manager.send_payment(unknown, RecipientOnionFields.secret_only(secret), PaymentId(bytes(unknown)),
                                         params, _Retry.Attempts(0))
        stage.settle()

    result = CheckResult("receiving_payments")
    with _played("receiving_payments", handler, story) as (stage, recorder):
        me = stage.me
        claimables = _events(me, Event.PaymentClaimable)
        if len(claimables) != 3:
            raise _fail("receiving_payments", None, "three PaymentClaimable events",
                        f"{len(claimables)}", "HTLCs become PaymentClaimable only once your handler has called "
                        "process_pending_htlc_forwards (the PendingHTLCsForwardable arm given in the workbook).")
        for event in claimables:
            preimage = event.purpose.preimage()
            claims = recorder.calls_for(event, "claim_funds")
            fails = recorder.calls_for(event, "fail_htlc_backwards")
            if preimage is not None and not any(c.args == (preimage,) for c in claims):
                raise _fail("receiving_payments", event, "claim_funds(event.purpose.preimage())",
                            "no claim with that preimage" if not fails else "you failed it back",
                            "the preimage is in the event's purpose: purpose.preimage() works for every kind.")
            if preimage is None and not any(c.args == (event.payment_hash,) for c in fails):
                raise _fail("receiving_payments", event, "fail_htlc_backwards(payment_hash): there is no preimage",
                            "it was left unclaimed" if not claims else "you tried to claim it",
                            "when purpose.preimage() is None you cannot claim; fail it back so the payer "
                            "gets their money back at once instead of at the claim deadline.")
        for event in _events(me, Event.PaymentClaimed):
            info = me.inbound_payments.payments.get(event.payment_hash)
            if info is None or info.status.name != "Succeeded" or info.preimage != event.purpose.preimage():
                raise _fail("receiving_payments", event, "inbound_payments[payment_hash] = PaymentInfo(preimage, "
                            "secret, HTLCStatus.Succeeded, amount_msat)", f"{info!r}",
                            "update the entry in place if there is one, or insert a new one (keysend payments "
                            "have no invoice, so no entry yet).")
            if info.amt_msat != event.amount_msat:
                raise _fail("receiving_payments", event, f"amt_msat={event.amount_msat}", f"amt_msat={info.amt_msat}",
                            "record the amount the event says you received.")
            if not _persisted(recorder, event, "inbound_payments"):
                raise _fail("receiving_payments", event, "fs_store.write('', '', 'inbound_payments', "
                            "inbound_payments.encode()) before returning", "no write while handling the event",
                            "LDK forgets an event once your handler returns: persist what it changed first.")
        result.rows.append(("claimed with the preimage from purpose", f"{len(claimables) - 1} payments"))
        result.rows.append(("failed back what cannot be claimed", "1 payment"))
        result.rows.append(("PaymentClaimed recorded as Succeeded", "preimage, secret and amount"))
        result.rows.append(("inbound_payments persisted before returning", "yes"))
    return result


# --- sending_payments ------------------------------------------------------------------------


def _check_sending_payments(handler: Callable[..., Any]) -> CheckResult:
    from .bitcoin import Network
    from .invoice import Bolt11Invoice
    from .types import PaymentHash, PaymentSecret

    def story(stage: Stage, recorder: _Recorder) -> None:
        bob = stage.peer("bob")
        stage.open(stage.me, bob, 1_000_000)
        stage.pay(stage.me, stage.invoice(bob, 100_000_000))
        fake = Bolt11Invoice.create(
            network=Network.Regtest, node_secret_key=bob.keys_manager.get_node_secret_key(),
            payment_hash=PaymentHash(b"\x33" * 32), payment_secret=PaymentSecret(b"\x44" * 32),
            amount_msat=10_000_000, description="never issued", timestamp=stage.world.clock.unix_time(),
        )
        stage.pay(stage.me, fake)

    result = CheckResult("sending_payments")
    with _played("sending_payments", handler, story) as (stage, recorder):
        me = stage.me
        for event in _events(me, Event.PaymentSent):
            info = me.outbound_payments.payments.get(event.payment_id)
            if info is None or info.status.name != "Succeeded" or info.preimage != event.payment_preimage:
                raise _fail("sending_payments", event, "outbound_payments[payment_id] marked Succeeded, with the "
                            "preimage", f"{info!r}", "the preimage is your receipt: keep it.")
            if not _persisted(recorder, event, "outbound_payments"):
                raise _fail("sending_payments", event, "outbound_payments persisted before returning",
                            "no write while handling the event", "write outbound_payments.encode() to fs_store.")
        for event in _events(me, Event.PaymentFailed):
            info = me.outbound_payments.payments.get(event.payment_id)
            if info is None or info.status.name != "Failed":
                raise _fail("sending_payments", event, "outbound_payments[payment_id] marked Failed", f"{info!r}",
                            "a PaymentFailed is final: no part of the payment is still in flight.")
            if not _persisted(recorder, event, "outbound_payments"):
                raise _fail("sending_payments", event, "outbound_payments persisted before returning",
                            "no write while handling the event", "write outbound_payments.encode() to fs_store.")
        sent, failed = len(_events(me, Event.PaymentSent)), len(_events(me, Event.PaymentFailed))
        result.rows.append(("PaymentSent: Succeeded, with the preimage", f"{sent} payment"))
        result.rows.append(("PaymentFailed: Failed", f"{failed} payment"))
        result.rows.append(("outbound_payments persisted before returning", "yes"))
        result.rows.append(("path and probe events left to LDK's scorer", "yes"))
    return result


# --- forwarding ------------------------------------------------------------------------


def _check_forwarding(handler: Callable[..., Any]) -> CheckResult:
    def story(stage: Stage, recorder: _Recorder) -> None:
        alice, carol = stage.peer("alice"), stage.peer("carol")
        stage.open(alice, stage.me, 6_000_000)
        stage.open(carol, stage.me, 6_000_000, push_msat=3_000_000_000)
        stage.pay(alice, stage.invoice(carol, 100_000_000))
        stage.pay(alice, stage.invoice(carol, 200_000_000))

    result = CheckResult("forwarding")
    with _played("forwarding", handler, story) as (stage, recorder):
        me = stage.me
        log = {id(e): (t, e) for t, _, e in me.event_log}
        forwardables = _events(me, Event.PendingHTLCsForwardable)
        calls = recorder.calls_to("process_pending_htlc_forwards")
        for event in forwardables:
            started, _ = log[id(event)]
            later = [c for c in calls if c.at >= started]
            scenario = "forwarding"
            if not later:
                raise _fail(scenario, event, "process_pending_htlc_forwards() called after a short delay",
                            "it was never called", "without it, HTLCs wait forever: nothing is forwarded or claimed.")
            call = later[0]
            delay = call.at - started
            minimum = event.time_forwardable.total_seconds()
            if call.event is event and delay > 0:
                raise _fail(scenario, event, "the handler to return at once, and the forward to happen later",
                            f"the handler itself waited {delay * 1000:.0f} ms", "spawn the wait instead of "
                            "awaiting it: asyncio.get_running_loop().create_task(forward_later()).")
            real = time.perf_counter() - recorder.started.get(id(event), time.perf_counter())
            if call.event is event and real > 0.05:
                raise _fail(scenario, event, "the handler to return at once", "it slept (time.sleep)",
                            "sleeping blocks every other event; spawn a task that waits instead.")
            if not minimum <= delay <= 5 * minimum + 1e-6:
                raise _fail(scenario, event, f"a delay between {minimum * 1000:.0f} and {5 * minimum * 1000:.0f} ms",
                            f"{delay * 1000:.0f} ms", "pick a random delay between time_forwardable and five times "
                            "it: an HTLC forwarded at once tells observers you were its source or destination.")
        forwarded = _events(me, Event.PaymentForwarded)
        if len(forwarded) != 2:
            raise _fail("forwarding", None, "two PaymentForwarded events", f"{len(forwarded)}",
                        "a forward completes once the next hop's preimage comes back through you.")
        fees = sum(e.total_fee_earned_msat or 0 for e in forwarded)
        result.rows.append(("process_pending_htlc_forwards after a random delay", f"{len(forwardables)} times"))
        result.rows.append(("the handler did not wait itself", f"{len(forwardables)} events handled promptly"))
        result.rows.append(("payments forwarded", f"{len(forwarded)}, earning {fees:,} msat"))
    return result


# --- on_chain ------------------------------------------------------------------------


def _check_on_chain(handler: Callable[..., Any]) -> CheckResult:
    def story(stage: Stage, recorder: _Recorder) -> None:
        bob, carol = stage.peer("bob"), stage.peer("carol")
        stage.open(stage.me, bob, 1_000_000)
        stage.open(stage.me, carol, 1_000_000)
        me = stage.me.channel_manager
        bob_channel, carol_channel = stage.channel_between(stage.me, bob), stage.channel_between(stage.me, carol)
        me.close_channel(bob_channel.channel_id, bob.node_id)
        me.force_close_broadcasting_latest_txn(carol_channel.channel_id, carol.node_id, "going away")
        stage.settle()
        stage.mine(150)
        stage.mine(6)

    result = CheckResult("on_chain")
    with _played("on_chain", handler, story) as (stage, recorder):
        me = stage.me
        spendable = _events(me, Event.SpendableOutputs)
        for event in spendable:
            tracked = recorder.calls_for(event, "output_sweeper.track_spendable_outputs")
            if not tracked:
                raise _fail("on_chain", event, "output_sweeper.track_spendable_outputs(outputs, channel_id, False, "
                            "None)", "nothing: these coins would never come back to your wallet",
                            "LDK never spends them itself: hand them to the sweeper, which spends them to your "
                            "wallet once they confirm.")
            outputs, channel_id = tracked[0].args[0], tracked[0].args[1]
            if list(outputs) != list(event.outputs) or channel_id != event.channel_id:
                raise _fail("on_chain", event, "the event's outputs and channel_id passed on", f"{tracked[0].args!r}",
                            "pass event.outputs (a list) and event.channel_id as they are.")
        bumps = _events(me, Event.BumpTransaction)
        for event in bumps:
            handled = recorder.calls_for(event, "bump_tx_event_handler.handle_event")
            if not handled or handled[0].args[0] != event.bump_event:
                raise _fail("on_chain", event, "bump_tx_event_handler.handle_event(the inner BumpTransactionEvent)",
                            "it was not passed on", "match Event.BumpTransaction(bump_event) and hand bump_event "
                            "over: on an anchor channel, only a fee-paying child gets the commitment confirmed.")
        if not spendable or not bumps:
            raise _fail("on_chain", None, "SpendableOutputs and BumpTransaction events",
                        f"{len(spendable)} and {len(bumps)}", "your handler must accept and fund channels first.")
        result.rows.append(("SpendableOutputs handed to the OutputSweeper", f"{len(spendable)} events"))
        result.rows.append(("BumpTransaction handed to the BumpTxEventHandler", f"{len(bumps)} events"))
        result.rows.append(("channel events pass through", "yes"))
    return result


# --- background_processor and capstone ---------------------------------------------------------


@functools.cache
def _reference_events(name: str) -> list[str]:
    """What the reference node is given in a scenario (the same every time, so computed once)."""
    from . import reference, scenarios

    return scenarios.run(name, reference.handle_ldk_events, seed=5).event_names()


def _compare_with_reference(exercise: str, handler: Callable[..., Any], names: list[str], processor: str) -> int:
    """Run scenarios with your handler under a processor and compare with the reference handler's run."""
    from . import scenarios

    def run_all() -> list[tuple[str, list[str], list[str]]]:
        out = []
        for name in names:
            try:
                mine = scenarios.run(name, handler, seed=5, processor=processor).event_names()
            except EventHandlerError as e:
                raise _handler_error(f"{exercise}: {name}", e) from e.error
            except Exception as e:
                raise _cannot_go_on(f"{exercise}: {name}", e) from e
            out.append((name, mine, _reference_events(name)))
            box["progress"] = len(out)
        return out

    box: dict[str, Any] = {}
    for name, mine, expected in _run_with_timeout(run_all, box):
        if mine != expected:
            raise _fail(f"{exercise}: {name}", None, " → ".join(expected), " → ".join(mine),
                        f"run scenarios.run({name!r}, handle_ldk_events) and compare its event_names() with the "
                        "reference's; the first difference shows which arm to look at.")
    return len(names)


def _check_background_processor(handler: Callable[..., Any]) -> CheckResult:
    names = ["inbound_open_accept", "outbound_open", "receive_invoice_payment", "forward_payment", "handler_replay"]
    result = CheckResult("background_processor")
    result.rows.append(("same events under BackgroundProcessor.start",
                        f"{_compare_with_reference('background_processor', handler, names, 'thread')} scenarios"))
    result.rows.append(("same events under process_events_async",
                        f"{_compare_with_reference('background_processor', handler, names, 'async')} scenarios"))
    result.rows.append(("a failed write answered with ReplayEvent", "yes (handler_replay)"))
    return result


def _check_capstone(handler: Callable[..., Any]) -> CheckResult:
    from . import scenarios

    names = scenarios.names()
    result = CheckResult("capstone")
    count = _compare_with_reference("capstone", handler, names, "thread")
    result.rows.append(("every scenario, under the background processor", f"{count} scenarios"))
    result.rows.append(("the same events as the reference node", "yes"))
    return result


_CHECKS: dict[str, Callable[[Callable[..., Any]], CheckResult]] = {
    "open_channel_request": _check_open_channel_request,
    "funding_generation_ready": _check_funding_generation_ready,
    "receiving_payments": _check_receiving_payments,
    "sending_payments": _check_sending_payments,
    "forwarding": _check_forwarding,
    "on_chain": _check_on_chain,
    "background_processor": _check_background_processor,
    "capstone": _check_capstone,
}


def check(exercise: str, handle_ldk_events: Callable[..., Any]) -> CheckResult:
    """Check your ``handle_ldk_events`` for one exercise; raise :class:`ExerciseFailed` if it falls short."""
    if exercise not in _CHECKS:
        raise KeyError(f"no check called {exercise!r}; the checks are: {', '.join(_CHECKS)}")
    if not callable(handle_ldk_events):
        raise ExerciseFailed(f"check() needs your handle_ldk_events function, got {handle_ldk_events!r}. "
                             "Run the cell that defines it first.")
    result = _CHECKS[exercise](handle_ldk_events)
    _record_pass(exercise)
    return result


# --- progress ------------------------------------------------------------------------------------


def _progress_file() -> Path:
    default = Path.home() / ".local" / "share" / "ldkkit" / "progress.json"
    return Path(os.environ.get("LDKKIT_PROGRESS_FILE", default))


def _record_pass(exercise: str) -> None:
    path = _progress_file()
    try:
        passed = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        passed = {}  # a damaged progress file is started afresh, never fatal
    passed[exercise] = time.strftime("%Y-%m-%d %H:%M")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passed, indent=2))


def progress() -> dict[str, bool]:
    """Which checks you have passed (on this computer), in the workshop's order."""
    path = _progress_file()
    try:
        passed = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        passed = {}
    return {exercise: exercise in passed for exercise in _CHECKS}


def reset(workbook: str) -> Path:
    """Put a workbook back as it was shipped, keeping your version as a ``.backup`` copy beside it.

    ``workbook`` is its name, e.g. ``"01_open_channel_request"``. Returns the backup's path.
    """
    name = workbook.removesuffix(".ipynb")
    pristine = _ROOT / "solutions" / f"{name}.ipynb"
    target = _ROOT / "exercises" / f"{name}.ipynb"
    if not pristine.exists():
        raise FileNotFoundError(f"no workbook called {name!r} in {pristine.parent}")
    backup = target.with_name(f"{name}.{time.strftime('%Y%m%d-%H%M%S')}.backup.ipynb")
    if target.exists():
        shutil.copy2(target, backup)
    from .workbooks import exercise_from_solution

    target.write_text(exercise_from_solution(pristine.read_text()))
    return backup
