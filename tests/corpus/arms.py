"""Correct arms of ``handle_ldk_events``, one per event kind, and a way to compose a handler from them.

An arm is written as a learner writes that ``case``: it takes the handler's parameters by
name (``channel_manager``, ``event``, ...; ``**_`` for the rest) and returns what the handler
returns. An arm may be ``async``. :func:`compose` builds a whole twelve-parameter handler
from a mapping of event kinds to arms: the base arms (:data:`BASE`, ldk-sample's behaviour
with the workshop's policy) with one replaced, removed (``None``) or added.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

from ldkkit.bitcoin import Address, Transaction
from ldkkit.events import Event, ReplayEvent
from ldkkit.payment_storage import HTLCStatus, PaymentInfo
from ldkkit.reference import TRUSTED_ZERO_CONF_PEERS

Arm = Callable[..., Any]

#: Tasks the arms spawn, kept alive until they finish (as the workbooks' ``background_tasks``).
background_tasks: set[asyncio.Task[Any]] = set()


def spawn(coro: Any) -> None:
    try:
        task = asyncio.get_running_loop().create_task(coro)
    except RuntimeError:  # (no running loop: a plain handler under BackgroundProcessor.start, told so by the check)
        coro.close()  # (it never runs: closed, so Python does not warn of it at the end of the tests)
        raise
    background_tasks.add(task)
    task.add_done_callback(background_tasks.discard)


#: The ways ``later`` puts a call off with the loop's own means, none of them a task made with ``create_task``.
LATER = ("call_later", "call_at", "call_soon", "run_in_executor", "Task", "ensure_future")


def later(how: str, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)``, ``seconds`` from now (``call_soon``: now, once the handler returns), put off ``how``: a timer
    handle of the running loop, work in its default executor (not awaited, sleeping first), a task spawned
    (``create_task``) or one built directly (``asyncio.Task(coro)``, ``asyncio.ensure_future(coro)``). LDK asks only
    that the answer comes in time."""
    loop = asyncio.get_running_loop()

    async def after() -> None:
        await asyncio.sleep(seconds)
        fn(*args)

    def slept() -> None:
        time.sleep(seconds)
        fn(*args)

    match how:
        case "call_later":
            loop.call_later(seconds, fn, *args)
        case "call_at":
            loop.call_at(loop.time() + seconds, fn, *args)
        case "call_soon":
            loop.call_soon(fn, *args)
        case "run_in_executor":
            loop.run_in_executor(None, slept)
        case "create_task":
            spawn(after())
        case "Task" | "ensure_future":
            task = asyncio.Task(after()) if how == "Task" else asyncio.ensure_future(after())
            background_tasks.add(task)
            task.add_done_callback(background_tasks.discard)
        case _:
            raise ValueError(how)


def by_a_worker_started_first(arm: Arm) -> Arm:
    """``arm``, run by one thread of the learner's, started now (as the cell runs: before any check, no event being
    handled), which takes each event's arguments from a queue.Queue; the handler only puts them there."""
    jobs: queue.Queue[dict[str, Any]] = queue.Queue()

    def work() -> None:
        while True:
            kwargs = jobs.get()
            try:
                arm(**kwargs)
            except Exception as error:  # (a worker's error reaches no one: printed, as a learner's worker would)
                print(f"worker: {type(error).__name__}: {error}")

    threading.Thread(target=work, daemon=True).start()

    def handed_over(**kwargs: Any) -> None:
        jobs.put(kwargs)

    return handed_over


def user_channel_id(keys_manager: Any) -> int:
    return int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")


# --- workbook 1 ---------------------------------------------------------------------------------------

def open_channel(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Over 5,000,000 sats, accepted; zero-conf only from a trusted peer; everything else refused."""
    tcid, peer, kind = event.temporary_channel_id, event.counterparty_node_id, event.channel_type
    if kind.requires_zero_conf() and peer in TRUSTED_ZERO_CONF_PEERS:
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000 and not kind.requires_zero_conf():
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "Channel request refused")


# --- workbook 2 ---------------------------------------------------------------------------------------

def build_funding(bitcoind_client: Any, network: Any, event: Any, btc: Optional[float] = None) -> Transaction:
    address = Address.from_script(event.output_script, network)
    amount = event.channel_value_satoshis / 100_000_000 if btc is None else btc
    raw_tx = bitcoind_client.create_raw_transaction([{str(address): amount}])
    funded_tx = bitcoind_client.fund_raw_transaction(raw_tx)
    signed_tx = bitcoind_client.sign_raw_transaction_with_wallet(funded_tx.hex)
    assert signed_tx.complete
    return Transaction(bytes.fromhex(signed_tx.hex))


def fund_channel(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    tx = build_funding(bitcoind_client, network, event)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


# --- workbook 3 ---------------------------------------------------------------------------------------

def claimable(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Claim with the preimage; fail back what has none, and a payment already received."""
    with inbound_payments.lock() as payments:
        paid_before = event.payment_hash in payments and payments[event.payment_hash].status is HTLCStatus.Succeeded
    preimage = event.purpose.preimage()
    if preimage is not None and not paid_before:
        channel_manager.claim_funds(preimage)
    else:
        channel_manager.fail_htlc_backwards(event.payment_hash)


def claimed(inbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Optional[ReplayEvent]:
    secret = getattr(event.purpose, "payment_secret", None)
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        if info is None:
            payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), secret, HTLCStatus.Succeeded,
                                                       event.amount_msat)
        else:
            info.status, info.preimage, info.secret = HTLCStatus.Succeeded, event.purpose.preimage(), secret
        try:
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())
        except OSError:
            return ReplayEvent()
    return None


# --- workbook 4 ---------------------------------------------------------------------------------------

def sent(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Optional[ReplayEvent]:
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None:
            info.status, info.preimage = HTLCStatus.Succeeded, event.payment_preimage
        try:
            fs_store.write("", "", "outbound_payments", outbound_payments.encode())
        except OSError:
            return ReplayEvent()
    return None


def failed(outbound_payments: Any, fs_store: Any, event: Any, **_: Any) -> Optional[ReplayEvent]:
    with outbound_payments.lock() as payments:
        info = payments.get(event.payment_id)
        if info is not None and info.status is not HTLCStatus.Succeeded:
            info.status = HTLCStatus.Failed
        try:
            fs_store.write("", "", "outbound_payments", outbound_payments.encode())
        except OSError:
            return ReplayEvent()
    return None


# --- workbook 5 ---------------------------------------------------------------------------------------

def forwardable(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    fraction = int.from_bytes(keys_manager.get_secure_random_bytes()[:4], "big") / 2**32
    delay = event.time_forwardable.total_seconds() * (1 + 4 * fraction)

    async def forward_later() -> None:
        await asyncio.sleep(delay)
        channel_manager.process_pending_htlc_forwards()

    spawn(forward_later())


# --- workbook 6 ---------------------------------------------------------------------------------------

def spendable(output_sweeper: Any, event: Any, **_: Any) -> None:
    output_sweeper.track_spendable_outputs(list(event.outputs), event.channel_id, False, None)


def bump(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    bump_tx_event_handler.handle_event(event.bump_event)


def nothing(**_: Any) -> None:
    return None


#: ldk-sample's behaviour with the workshop's policy, arm by arm.
BASE: dict[type, Arm] = {
    Event.OpenChannelRequest: open_channel,
    Event.FundingGenerationReady: fund_channel,
    Event.PaymentClaimable: claimable,
    Event.PaymentClaimed: claimed,
    Event.PaymentSent: sent,
    Event.PaymentFailed: failed,
    Event.PendingHTLCsForwardable: forwardable,
    Event.SpendableOutputs: spendable,
    Event.BumpTransaction: bump,
}

PARAMETERS = ("channel_manager", "bitcoind_client", "network_graph", "keys_manager", "bump_tx_event_handler",
              "peer_manager", "inbound_payments", "outbound_payments", "fs_store", "output_sweeper", "network",
              "event")


def compose(changes: Optional[Mapping[type, Optional[Arm]]] = None, *, base: Mapping[type, Arm] = BASE,
            plain: bool = False) -> Callable[..., Any]:
    """A whole handler: ``base`` with ``changes`` (an arm, or None to drop one); async unless ``plain``."""
    arms = dict(base)
    for kind, arm in (changes or {}).items():
        if arm is None:
            arms.pop(kind, None)
        else:
            arms[kind] = arm

    if plain:
        def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                              bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                              fs_store, output_sweeper, network, event):
            arm = arms.get(type(event))
            if arm is None:
                return None
            values = (channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                      peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event)
            return arm(**dict(zip(PARAMETERS, values, strict=True)))

        return handle_ldk_events

    async def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                                bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                                fs_store, output_sweeper, network, event):
        arm = arms.get(type(event))
        if arm is None:
            return None
        values = (channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                  peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event)
        result = arm(**dict(zip(PARAMETERS, values, strict=True)))
        if inspect.isawaitable(result):
            result = await result
        return result

    return handle_ldk_events


def only(*kinds: type, changes: Optional[Mapping[type, Optional[Arm]]] = None, plain: bool = False
         ) -> Callable[..., Any]:
    """A handler with the base arms for ``kinds`` only (a learner who has reached that workbook), plus ``changes``."""
    return compose(changes, base={k: BASE[k] for k in kinds}, plain=plain)


def asks_again_first(kinds: tuple[type, ...] = (Event,)) -> Callable[..., Any]:
    """The base handler, except that it asks for each event of ``kinds`` once more (``ReplayEvent``, as a
    handler whose write failed once) before it handles it: LDK allows that, and nothing may be lost or doubled.
    Build a new one for every run (``Fresh(asks_again_first)``): it remembers what it was given."""
    inner, asked = compose(), set()

    async def handle_ldk_events(*args: Any) -> Any:
        event = args[-1]
        if isinstance(event, kinds) and event.encode() not in asked:
            asked.add(event.encode())
            return ReplayEvent()
        return await inner(*args)

    return handle_ldk_events


def asks_again_always(kind: type) -> Callable[..., Any]:
    """The base handler, except that it answers every event of ``kind`` with ``ReplayEvent``: never handled."""
    return compose({kind: lambda **_: ReplayEvent()})
