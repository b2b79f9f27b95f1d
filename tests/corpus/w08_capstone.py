"""Workbook 8, the capstone: every earlier rule, zero-conf for trusted peers only, a payment made twice."""

from __future__ import annotations

import asyncio
from typing import Any

from ldkkit.bitcoin import Address, Transaction
from ldkkit.errors import APIError
from ldkkit.events import ClosureReason, Event, PaymentPurpose, ReplayEvent
from ldkkit.ln.claimable_payments import FailureCode
from ldkkit.payment_storage import HTLCStatus, PaymentInfo
from ldkkit.reference import TRUSTED_ZERO_CONF_PEERS

from . import Fresh, right, wrong
from .arms import BASE, asks_again_first, compose, open_channel, spawn, user_channel_id
from .w01_open_channel_request import accept_by_keywords, accepts_later, accepts_put_off, answered_by_one_worker
from .w03_receiving_payments import (
    answers_after,
    answers_from_a_thread_after,
    answers_put_off,
    claimed_by_a_thread_with_its_manager,
    claimed_by_a_worker_per_loop,
    claimed_by_one_worker,
    claimed_by_one_worker_thread,
    claimed_retry_in_place,
)
from .w04_sending_payments import probe_fails_pending_payments, set_status
from .w05_forwarding import forward_after
from .w06_on_chain import track_defaults
from .w07_background_processor import INBOUND, OUTBOUND, remembers_what_it_wrote, retry_outbound_in_place, swallow

EX = "capstone"
OPEN, CLAIMABLE, CLAIMED = Event.OpenChannelRequest, Event.PaymentClaimable, Event.PaymentClaimed

_tasks: set[Any] = set()


async def handle_isinstance(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                            bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                            fs_store, output_sweeper, network, event):
    """A whole node in if/elif isinstance, keyword arguments to the channel manager and sweeper."""

    def save(key: str, storage: Any) -> Any:
        try:
            fs_store.write("", "", key, storage.encode())  # not by keyword: see background_processor
        except OSError:
            return ReplayEvent()
        return None

    if isinstance(event, Event.OpenChannelRequest):
        zero_conf = event.channel_type.requires_zero_conf()
        uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
        if zero_conf and event.counterparty_node_id in TRUSTED_ZERO_CONF_PEERS:
            channel_manager.accept_inbound_channel_from_trusted_peer_0conf(
                temporary_channel_id=event.temporary_channel_id, counterparty_node_id=event.counterparty_node_id,
                user_channel_id=uid)
        elif not zero_conf and event.funding_satoshis > 5_000_000:
            channel_manager.accept_inbound_channel(temporary_channel_id=event.temporary_channel_id,
                                                   counterparty_node_id=event.counterparty_node_id,
                                                   user_channel_id=uid)
        else:
            channel_manager.force_close_without_broadcasting_txn(
                channel_id=event.temporary_channel_id, counterparty_node_id=event.counterparty_node_id,
                error_message="refused")
    elif isinstance(event, Event.FundingGenerationReady):
        address = Address.from_script(event.output_script, network)
        raw = bitcoind_client.create_raw_transaction(outputs=[{str(address): event.channel_value_satoshis / 1e8}])
        signed = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw).hex)
        channel_manager.funding_transaction_generated(
            temporary_channel_id=event.temporary_channel_id, counterparty_node_id=event.counterparty_node_id,
            funding_transaction=Transaction(bytes.fromhex(signed.hex)))
    elif isinstance(event, Event.PaymentClaimable):
        with inbound_payments.lock() as payments:
            known = payments.get(event.payment_hash)
        preimage = event.purpose.preimage()
        if preimage is None or (known is not None and known.status is HTLCStatus.Succeeded):
            channel_manager.fail_htlc_backwards(payment_hash=event.payment_hash)
        else:
            channel_manager.claim_funds(payment_preimage=preimage)
    elif isinstance(event, Event.PaymentClaimed):
        with inbound_payments.lock() as payments:
            old = payments.get(event.payment_hash)
            payments[event.payment_hash] = PaymentInfo(
                preimage=event.purpose.preimage(), secret=getattr(event.purpose, "payment_secret", None),
                status=HTLCStatus.Succeeded, amt_msat=old.amt_msat if old is not None else event.amount_msat)
        return save("inbound_payments", inbound_payments)
    elif isinstance(event, (Event.PaymentSent, Event.PaymentFailed)):
        with outbound_payments.lock() as payments:
            info = payments.get(event.payment_id)
            if info is not None and isinstance(event, Event.PaymentSent):
                info.preimage, info.status = event.payment_preimage, HTLCStatus.Succeeded
            elif info is not None and info.status is HTLCStatus.Pending:
                info.status = HTLCStatus.Failed
        return save("outbound_payments", outbound_payments)
    elif isinstance(event, Event.PendingHTLCsForwardable):
        t_ms = event.time_forwardable.total_seconds() * 1000
        fraction = keys_manager.get_secure_random_bytes()[31] / 256
        delay_s = (t_ms + 4 * t_ms * fraction) / 1000

        async def forward() -> None:
            await asyncio.sleep(delay_s)
            channel_manager.process_pending_htlc_forwards()

        task = asyncio.create_task(forward())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    elif isinstance(event, Event.SpendableOutputs):
        output_sweeper.track_spendable_outputs(output_descriptors=event.outputs, channel_id=event.channel_id)
    elif isinstance(event, Event.BumpTransaction):
        bump_tx_event_handler.handle_event(event.bump_event)
    return None


def open_with_keywords_and_zero_conf(channel_manager: Any, keys_manager: Any, event: Any, **kw: Any) -> None:
    if event.channel_type.requires_zero_conf():
        if event.counterparty_node_id in TRUSTED_ZERO_CONF_PEERS:
            channel_manager.accept_inbound_channel_from_trusted_peer_0conf(
                temporary_channel_id=event.temporary_channel_id, counterparty_node_id=event.counterparty_node_id,
                user_channel_id=user_channel_id(keys_manager))
        else:
            channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id,
                                                                 event.counterparty_node_id, "no zero-conf")
        return
    accept_by_keywords(channel_manager=channel_manager, keys_manager=keys_manager, event=event)


def open_zero_conf_by_supports(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Tells a zero-conf request by LDK's other getter of the feature, channel_type.supports_zero_conf()."""
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    zero_conf = event.channel_type.supports_zero_conf()
    if zero_conf and peer in TRUSTED_ZERO_CONF_PEERS:
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000 and not zero_conf:
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


# --- WRONG ------------------------------------------------------------------------------------------------

def zero_conf_from_anyone(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if event.channel_type.requires_zero_conf():
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000:
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def zero_conf_only_over_the_line(channel_manager: Any, keys_manager: Any, event: Any, **kw: Any) -> None:
    """Holds every request to workbook 1's line first, a trusted peer's zero-conf request too."""
    if event.funding_satoshis <= 5_000_000:
        channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                             "too small")
        return
    open_with_keywords_and_zero_conf(channel_manager=channel_manager, keys_manager=keys_manager, event=event, **kw)


def large_from_a_trusted_peer_zero_conf(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """A trusted peer's request accepted zero-conf when it asks for zero-conf, or when it is over the line."""
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    trusted = peer in TRUSTED_ZERO_CONF_PEERS
    if trusted and (event.channel_type.requires_zero_conf() or event.funding_satoshis > 5_000_000):
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000 and not event.channel_type.requires_zero_conf():
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def anything_from_a_trusted_peer_zero_conf(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Accepts every request of a peer in TRUSTED_ZERO_CONF_PEERS zero-conf, whatever its size or type."""
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if peer in TRUSTED_ZERO_CONF_PEERS:
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000 and not event.channel_type.requires_zero_conf():
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def zero_conf_from_peers_with_a_channel(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Trusts a peer it already has a ready channel with, as if it were an LSP."""
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    known = any(c.counterparty.node_id == peer and c.is_channel_ready for c in channel_manager.list_channels())
    if event.channel_type.requires_zero_conf() and (peer in TRUSTED_ZERO_CONF_PEERS or known):
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000 and not event.channel_type.requires_zero_conf():
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def small_zero_conf_from_anyone(limit: int) -> Any:
    """Zero-conf from a trusted peer, and from anyone for a channel of ``limit`` sats or less ("little is at risk")."""

    def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        tcid, peer = event.temporary_channel_id, event.counterparty_node_id
        zero_conf = event.channel_type.requires_zero_conf()
        if zero_conf and (peer in TRUSTED_ZERO_CONF_PEERS or event.funding_satoshis <= limit):
            channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
        elif event.funding_satoshis > 5_000_000 and not zero_conf:
            channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
        else:
            channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")

    return arm


def no_zero_conf(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if event.funding_satoshis > 5_000_000 and not event.channel_type.requires_zero_conf():
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def zero_conf_ignored_by_policy(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """The workbook-1 arm kept as it was: zero-conf requests accepted like any other (not zero-conf)."""
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if event.funding_satoshis > 5_000_000:
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def zero_conf_answered(reject: Any = None, uid: Any = None) -> Any:
    """The reference's answers to OpenChannelRequest, but a stranger's zero-conf request rejected by ``reject(channel_
    manager, event)`` and a trusted one accepted with ``uid(keys_manager)``, when given."""

    async def arm(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
        tcid, peer, zero_conf = event.temporary_channel_id, event.counterparty_node_id, event.channel_type
        if zero_conf.requires_zero_conf() and peer in TRUSTED_ZERO_CONF_PEERS and uid is not None:
            channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, uid(keys_manager))
        elif zero_conf.requires_zero_conf() and peer not in TRUSTED_ZERO_CONF_PEERS and reject is not None:
            await reject(channel_manager, event)
        else:
            open_channel(channel_manager=channel_manager, keys_manager=keys_manager, event=event)

    return arm


async def _reject_swapped(channel_manager: Any, event: Any) -> None:
    """The arguments swapped, the error caught and logged as ldk-sample logs its own."""
    try:
        channel_manager.force_close_without_broadcasting_txn(event.counterparty_node_id, event.temporary_channel_id,
                                                             "refused")
    except APIError as e:
        print("could not reject:", e)


async def _reject_after_a_lookup(channel_manager: Any, event: Any) -> None:
    await asyncio.sleep(5)  # ("is this peer on a list somewhere?")
    channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                         "refused")


TRUSTED_AT_IMPORT = frozenset(TRUSTED_ZERO_CONF_PEERS)  # a copy taken before any scenario adds its LSP


def trusts_a_copy_taken_at_import(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """The capstone's rules, but the trusted set copied once, when the module was imported."""
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if event.funding_satoshis <= 5_000_000:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")
    elif event.channel_type.requires_zero_conf():
        if peer in TRUSTED_AT_IMPORT:
            channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
        else:
            channel_manager.force_close_without_broadcasting_txn(tcid, peer, "no zero-conf from strangers")
    else:
        channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))


def tries_every_request_as_plain(channel_manager: Any, keys_manager: Any, event: Any, **_: Any) -> None:
    """Trusted zero-conf aside, accepts over 5,000,000 sats with accept_inbound_channel, and swallows LDK's refusal."""
    from ldkkit.errors import APIError

    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if event.channel_type.requires_zero_conf() and peer in TRUSTED_ZERO_CONF_PEERS:
        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, user_channel_id(keys_manager))
    elif event.funding_satoshis > 5_000_000:
        try:
            channel_manager.accept_inbound_channel(tcid, peer, user_channel_id(keys_manager))
        except APIError:
            pass
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "refused")


def answers_later(arm: Any, seconds: float) -> Any:
    """``arm``'s answer, from a task that waits ``seconds`` first."""

    def put_off(**kw: Any) -> None:
        async def later() -> None:
            await asyncio.sleep(seconds)
            arm(**kw)

        spawn(later())

    return put_off


def claims_every_time(channel_manager: Any, event: Any, **_: Any) -> None:
    preimage = event.purpose.preimage()
    if preimage is not None:
        channel_manager.claim_funds(preimage)
    else:
        channel_manager.fail_htlc_backwards(event.payment_hash)


def refuses_any_known_hash(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    with inbound_payments.lock() as payments:
        seen = event.payment_hash in payments  # the invoice's own Pending entry counts as "seen"
    if event.purpose.preimage() is None or seen:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        channel_manager.claim_funds(event.purpose.preimage())


def marks_the_paid_invoice_failed(channel_manager: Any, inbound_payments: Any, fs_store: Any, event: Any,
                                  **kw: Any) -> Any:
    """Fails back a second payment of a paid invoice, and 'records the refusal': the invoice's entry set Failed."""
    from .arms import claimable

    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        if info is not None and info.status is HTLCStatus.Succeeded:
            channel_manager.fail_htlc_backwards(event.payment_hash)
            info.status = HTLCStatus.Failed
            fs_store.write("", "", "inbound_payments", inbound_payments.encode())
            return None
    return claimable(channel_manager=channel_manager, inbound_payments=inbound_payments, event=event, **kw)


def sats_as_btc(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    from .arms import build_funding

    tx = build_funding(bitcoind_client, network, event, btc=event.channel_value_satoshis)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def write_first(inbound_payments: Any, fs_store: Any, event: Any, **kw: Any) -> Any:
    fs_store.write("", "", "inbound_payments", inbound_payments.encode())
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        secret = getattr(event.purpose, "payment_secret", None)
        if info is None:
            payments[event.payment_hash] = PaymentInfo(event.purpose.preimage(), secret, HTLCStatus.Succeeded,
                                                       event.amount_msat)
        else:
            info.status, info.preimage, info.secret = HTLCStatus.Succeeded, event.purpose.preimage(), secret
    return None


def remembers_the_hashes_it_recorded() -> Any:
    """The workbook's test at PaymentClaimable (inbound_payments says Succeeded), plus a set of the hashes whose
    Succeeded record this handler wrote: on one node a hash recorded is a hash paid, so the set refuses nothing
    inbound_payments would let through. Right; it needs the check's plays not to repeat one another's hashes."""
    from .arms import claimable, claimed

    recorded: set[bytes] = set()

    def claimable_arm(channel_manager: Any, event: Any, **kw: Any) -> None:
        if bytes(event.payment_hash) in recorded:
            channel_manager.fail_htlc_backwards(event.payment_hash)
        else:
            claimable(channel_manager=channel_manager, event=event, **kw)

    def claimed_arm(event: Any, **kw: Any) -> Any:
        answer = claimed(event=event, **kw)
        if answer is None:
            recorded.add(bytes(event.payment_hash))
        return answer

    return compose({CLAIMABLE: claimable_arm, CLAIMED: claimed_arm})


def ignores_bumps_once_the_peer_closed() -> Any:
    """Hands BumpTransaction over, except for a channel its peer force-closed (the peer's commitment will do)."""
    from .arms import bump
    closed_by_peer: set[Any] = set()

    def closed_arm(event: Any, **_: Any) -> None:
        if isinstance(event.reason, ClosureReason.CounterpartyForceClosed):
            closed_by_peer.add(event.channel_id)

    def bump_arm(event: Any, **kw: Any) -> None:
        if getattr(event.bump_event, "channel_id", None) not in closed_by_peer:
            bump(event=event, **kw)

    return compose({Event.ChannelClosed: closed_arm, Event.BumpTransaction: bump_arm})


def refuses_only_a_repeat_of_the_same_amount(channel_manager: Any, inbound_payments: Any, event: Any,
                                              **_: Any) -> None:
    """Fails back a second payment of a paid invoice only if it is for the amount recorded: one for more is claimed."""
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        repeat = info is not None and info.status is HTLCStatus.Succeeded and info.amt_msat == event.amount_msat
    if event.purpose.preimage() is None or repeat:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        channel_manager.claim_funds(event.purpose.preimage())


def refuses_a_repeat_for_now(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Fails a repeat back with a temporary failure code ("the payer may try again later"), not for good."""
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        repeat = info is not None and info.status is HTLCStatus.Succeeded
    if event.purpose.preimage() is None:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    elif repeat:
        channel_manager.fail_htlc_backwards_with_reason(event.payment_hash, FailureCode.TemporaryNodeFailure())
    else:
        channel_manager.claim_funds(event.purpose.preimage())


def refuses_only_an_invoice_paid_again(channel_manager: Any, inbound_payments: Any, event: Any, **_: Any) -> None:
    """Fails back a payment whose hash is already Succeeded only when it pays an invoice: a keysend is claimed."""
    with inbound_payments.lock() as payments:
        info = payments.get(event.payment_hash)
        repeat = info is not None and info.status is HTLCStatus.Succeeded
    if event.purpose.preimage() is None or repeat and isinstance(event.purpose, PaymentPurpose.Bolt11InvoicePayment):
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        channel_manager.claim_funds(event.purpose.preimage())


def paid_before_from_its_claims_on_disk(channel_manager: Any, fs_store: Any, event: Any, **_: Any) -> None:
    """Tells a payment made again by the hashes it called claim_funds for, kept on disk (it outlives a restart), not
    by a Succeeded entry in inbound_payments: a payment claim_funds refused counts as paid."""
    try:
        seen = fs_store.read("", "", "claimed_hashes")
    except FileNotFoundError:
        seen = b""
    preimage = event.purpose.preimage()
    if preimage is None or bytes(event.payment_hash) in {seen[i:i + 32] for i in range(0, len(seen), 32)}:
        channel_manager.fail_htlc_backwards(event.payment_hash)
    else:
        fs_store.write("", "", "claimed_hashes", seen + bytes(event.payment_hash))
        channel_manager.claim_funds(preimage)


def paid_before_from_memory() -> Any:
    """Tells a payment made again by a set of the hashes it claimed, kept in memory, not by inbound_payments."""
    paid: set[Any] = set()

    def claimable(channel_manager: Any, event: Any, **_: Any) -> None:
        preimage = event.purpose.preimage()
        if preimage is None or event.payment_hash in paid:
            channel_manager.fail_htlc_backwards(event.payment_hash)
        else:
            channel_manager.claim_funds(preimage)

    def claimed(event: Any, **kw: Any) -> Any:
        paid.add(event.payment_hash)
        return BASE[Event.PaymentClaimed](event=event, **kw)

    return compose({CLAIMABLE: claimable, Event.PaymentClaimed: claimed})


def answers_with_the_first_manager_per_node() -> Any:
    """Keeps the first ChannelManager it is given for each node (by node id), and answers every event with it. A
    restarted node keeps its id: its events are then answered with the manager kept from before the crash, which
    stands for the restarted node's (``recorder._Recorded``), as the grader's stand-in does."""
    managers: dict[Any, Any] = {}
    handle = compose()

    async def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                                bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                                fs_store, output_sweeper, network, event):
        channel_manager = managers.setdefault(channel_manager.get_our_node_id(), channel_manager)
        return await handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                            peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network,
                            event)

    return handle_ldk_events


def claims_every_payment_by_a_worker_per_loop() -> Any:
    """claimed_by_a_worker_per_loop's worker (right: started again on each node's loop), claiming every payment, a
    repeat too."""
    return claimed_by_a_worker_per_loop(claims_every_time)


def keeps_the_first_storages_it_was_given() -> Any:
    """Keeps the first inbound_payments and outbound_payments it is given, and answers every event with them: one
    process runs one node, whose storages are the same for its life (ldk-sample hands its handler the same Arcs)."""
    kept: dict[str, Any] = {}
    handle = compose()

    async def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                                bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                                fs_store, output_sweeper, network, event):
        inbound_payments = kept.setdefault("inbound", inbound_payments)
        outbound_payments = kept.setdefault("outbound", outbound_payments)
        return await handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                            peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network,
                            event)

    return handle_ldk_events


NOT_SUCCEEDED = dict(when=lambda info: info.status is not HTLCStatus.Succeeded)

CASES = [
    right(EX, "claims_put_off", compose({CLAIMABLE: answers_after(5)}), slow=True,
          why="a task claims each payment 5 s later (workbook 3 allows it): a payment made twice then meets the first "
              "still claimable, and LDK fails the second back itself. It failed, the scenario's events compared with "
              "the reference's answering at once ('came only at event 10: did your handler put off what leads to "
              "it?'); and once, where the story crashed the node 2 s after the payment, with its task unanswered"),
    right(EX, "claims_put_off_in_a_thread", compose({CLAIMABLE: answers_from_a_thread_after(5)}), slow=True,
          why="as claims_put_off, from a thread that sleeps first: workbook 3's play ended before its claims"),
    right(EX, "claims_put_off_a_minute", compose({CLAIMABLE: answers_after(60)}), slow=True,
          why="as claims_put_off, a minute later (workbook 3's own RIGHT case answers_a_minute_later)"),
    wrong(EX, "claims_every_payment_a_little_later", compose({CLAIMABLE: answers_later(claims_every_time, 1)}),
          "already paid", "you claimed it a second time", slow=True,
          why="a task claims every payment, a repeat too, 1 s later: the first is claimed before the second comes"),
    wrong(EX, "claims_every_payment_later", compose({CLAIMABLE: answers_later(claims_every_time, 5)}),
          "payments made twice: an invoice (the second time for more), a keysend", "you claimed it a second time",
          slow=True,
          why="a task claims every payment, a repeat too, 5 s later: the second payment came while the first was "
              "still claimable, and LDK failed it back itself, so no repeat was ever handed over (the story of a "
              "payment made again for more now waits until the first is paid)"),
    wrong(EX, "claims_put_off_past_the_wait", compose({CLAIMABLE: answers_after(3600)}),
          "had still not claimed it when the check stopped waiting", "claim_deadline",
          why="a task claims each payment an hour later: never, within the check's wait"),
    *(right(EX, f"claims_put_off_by_{how.lower()}", compose({CLAIMABLE: answers_put_off(how, 5)}), slow=True,
            why=f"as claims_put_off, the claim put off with {how} (loop.call_later(5, channel_manager.claim_funds, "
                "preimage)): workbook 3's play ended before its claims")
      for how in ("call_later", "run_in_executor", "Task")),
    wrong(EX, "claims_put_off_past_the_wait_by_call_later", compose({CLAIMABLE: answers_put_off("call_later", 3600)}),
          "had still not claimed it when the check stopped waiting", "claim_deadline",
          why="loop.call_later(3600, ...): never, within the check's wait"),
    right(EX, "accepts_put_off_by_call_later", compose({OPEN: accepts_put_off("call_later", 5)}), slow=True,
          why="as accepts_put_off, the accept put off with loop.call_later"),
    right(EX, "accepts_put_off", compose({OPEN: accepts_later(5)}), slow=True,
          why="accepts (zero-conf from the trusted LSP) from a task 5 s later, as workbook 1 allows: it failed, the "
              "zero-conf stories ending before the accept ('it was not accepted zero-conf')"),
    right(EX, "zero_conf_by_supports_zero_conf", compose({OPEN: open_zero_conf_by_supports}), slow=True,
          why="channel_type.supports_zero_conf(), LDK's getter beside requires_zero_conf() (a channel type sets the "
              "required bit): it raised AttributeError, the kit's ChannelTypeFeatures having only requires_zero_conf"),
    right(EX, "remembers_what_it_wrote", Fresh(remembers_what_it_wrote), slow=True,
          why="workbook 7's handler that skips what it already wrote, across every story of the capstone"),
    right(EX, "asks_again_for_every_event_first", Fresh(asks_again_first), slow=True,
          why="returns ReplayEvent() the first time it sees each event, then handles it"),
    right(EX, "isinstance_keywords", handle_isinstance, slow=True,
          why="a whole node in if/elif isinstance, keyword arguments, a record rebuilt keeping its amount"),
    right(EX, "retry_write_in_place", compose({CLAIMED: claimed_retry_in_place,
                                               Event.PaymentSent: retry_outbound_in_place,
                                               Event.PaymentFailed: retry_outbound_in_place}), slow=True,
          why="retries a failed write in place, which workbook 7 accepts"),
    right(EX, "alternative_arms", compose({
        OPEN: open_with_keywords_and_zero_conf,
        Event.SpendableOutputs: track_defaults,
        Event.PendingHTLCsForwardable: forward_after(lambda t, k: t * (5 - 4 * int.from_bytes(
            k.get_secure_random_bytes()[:2], "big") / 65536)),
    }), slow=True, why="keyword accept with a zero-conf branch first, sweeper defaults, a delay in (t, 5t]"),

    right(EX, "remembers_the_hashes_it_recorded", Fresh(remembers_the_hashes_it_recorded), slow=True,
          why="fails back a hash whose Succeeded record it wrote itself (a set), as well as what inbound_payments "
              "says was paid: it failed, the capstone playing workbook 7's restart_replay and comparing "
              "handler_replay both with seed 28 (reference seeds 5..29 overlapped the plays' 17..31), the same "
              "invoice hash coming twice"),

    wrong(EX, "zero_conf_from_anyone", compose({OPEN: zero_conf_from_anyone}), "TRUSTED_ZERO_CONF_PEERS",
          "you accepted it", why="accept_inbound_channel_from_trusted_peer_0conf for any zero-conf request"),
    wrong(EX, "zero_conf_only_over_the_line", compose({OPEN: zero_conf_only_over_the_line}),
          "accept_inbound_channel_from_trusted_peer_0conf", "you rejected it",
          why="a trusted LSP's zero-conf request held to the 5,000,000-sat line: it passed, every zero-conf request "
              "being over the line"),
    wrong(EX, "anything_from_a_trusted_peer_zero_conf", compose({OPEN: anything_from_a_trusted_peer_zero_conf}),
          "1,000,000 sats is not over 5,000,000", "you accepted it zero-conf", "requires_zero_conf() first",
          why="any request of a trusted peer accepted zero-conf: it passed, the LSP never asking for an ordinary "
              "channel"),
    wrong(EX, "large_from_a_trusted_peer_zero_conf", compose({OPEN: large_from_a_trusted_peer_zero_conf}),
          "accept_inbound_channel: 6,000,000 sats is over 5,000,000", "you accepted it zero-conf",
          why="a trusted LSP's ordinary request over the line accepted zero-conf (its channel used before its funding "
              "confirms): it passed, the LSP's only ordinary request being under the line"),
    wrong(EX, "paid_before_from_memory", Fresh(paid_before_from_memory), "this invoice is already paid",
          "you claimed it a second time",
          why="tells a repeat by a set in memory: after a restart it claimed an invoice paid before (it passed: no "
              "payment was made again across a restart)"),
    wrong(EX, "claims_a_keysend_made_again", compose({CLAIMABLE: refuses_only_an_invoice_paid_again}),
          "already paid (a keysend made again with the same preimage)", "you claimed it a second time", slow=True,
          why="fails back only an invoice paid again, and claims a keysend repeated with the same preimage: it passed, "
              "no keysend being made twice"),
    wrong(EX, "paid_before_from_its_claims_on_disk", compose({CLAIMABLE: paid_before_from_its_claims_on_disk}),
          "an invoice refused at first", "claim_funds(purpose.preimage())", "you failed it back", slow=True,
          why="a payment made again told by the hashes it called claim_funds for, kept on disk: it passed, every hash "
              "paid twice in the stories having been claimed the first time (an invoice whose first payment "
              "claim_funds refused, for its even TLV, could never be paid)"),
    wrong(EX, "zero_conf_from_peers_with_a_channel", compose({OPEN: zero_conf_from_peers_with_a_channel}),
          "a peer you do not trust", "you accepted it", slow=True,
          why="zero-conf accepted from any peer it already has a ready channel with, not only the trusted LSP"),
    *(wrong(EX, f"small_zero_conf_from_anyone_up_to_{limit}", compose({OPEN: small_zero_conf_from_anyone(limit)}),
            "a peer you do not trust", "you accepted it", slow=True,
            why=f"zero-conf accepted from anyone for a channel of {limit:,} sats or less: it passed, the stranger's "
                "zero-conf requests being of 6,000,000 sats (then of 2,000,000: the workbook says 'trust, not size, "
                "decides')")
      for limit in (5_000_000, 1_000_000)),
    wrong(EX, "zero_conf_tried_as_plain_and_refused", compose({OPEN: tries_every_request_as_plain}),
          "a peer you do not trust", "LDK refused", "APIMisuseError",
          why="a stranger's zero-conf request tried with accept_inbound_channel, its APIMisuseError swallowed: it "
              "was told 'you accepted it', though the call had failed"),
    wrong(EX, "trusts_a_copy_taken_at_import", compose({OPEN: trusts_a_copy_taken_at_import}),
          "TRUSTED_ZERO_CONF_PEERS itself", "a copy",
          why="frozenset(TRUSTED_ZERO_CONF_PEERS) at import, before the scenario adds its LSP: it was told only "
              "'that is what the trusted list is for', though it did look the peer up"),
    wrong(EX, "rejects_the_strangers_zero_conf_by_a_call_that_raised",
          compose({OPEN: zero_conf_answered(reject=_reject_swapped)}), "an explicit rejection, at once",
          "you called force_close for another channel or peer", why="rejects the stranger's zero-conf request with "
          "the arguments swapped, the APIError caught: it passed, a call that raised counting as a rejection, and "
          "LDK dropping the request two timer ticks later"),
    wrong(EX, "rejects_the_strangers_zero_conf_after_awaiting", compose({OPEN: zero_conf_answered(
          reject=_reject_after_a_lookup)}), "only 5 s later, awaiting in your handler first",
          why="awaits 5 s before rejecting the stranger's zero-conf request: it passed, the capstone asking only "
              "whether a rejection came, not as workbook 1 does (at once)"),
    wrong(EX, "accepts_zero_conf_with_a_fixed_user_channel_id", compose({OPEN: zero_conf_answered(
          uid=lambda keys_manager: 0)}), "user_channel_id=0", "a different one for each channel",
          why="accepts the trusted LSP's zero-conf request with user_channel_id 0: it passed, user_channel_id judged "
              "in workbook 1's story only, which has no zero-conf request"),
    wrong(EX, "zero_conf_accepted_as_normal", compose({OPEN: zero_conf_ignored_by_policy}),
          "TRUSTED_ZERO_CONF_PEERS", why="the workbook-1 arm: zero-conf requests accepted with accept_inbound_channel"),
    wrong(EX, "ignores_bumps_once_the_peer_closed", Fresh(ignores_bumps_once_the_peer_closed),
          "force_close_remote", "bump_tx_event_handler.handle_event", "not handed over", slow=True,
          why="skips BumpTransaction for a channel the peer force-closed: it passed, force_close_remote's bumps "
              "(asked for, as LDK does, the closing being urgent) collapsing into one event in the comparison "
              "whether handed over or not"),
    wrong(EX, "refuses_a_repeat_for_now", compose({CLAIMABLE: refuses_a_repeat_for_now}),
          "RecipientRejected", "ended RouteNotFound", "TemporaryNodeFailure", slow=True,
          why="fails a repeat back with TemporaryNodeFailure: it passed, the rule that a payment failed back is "
              "refused for good being judged only for payments with no preimage"),
    wrong(EX, "claims_a_repeat_of_another_amount", compose({CLAIMABLE: refuses_only_a_repeat_of_the_same_amount}),
          "already paid", "you claimed it a second time", "whatever its amount", slow=True,
          why="claims a second payment of a paid invoice when its amount differs: it passed, the only payment made "
              "twice (receive_duplicate_payment) paying the same amount both times"),
    # (right for one node, which runs one loop for its life; the capstone plays many, each with a loop of its own)
    wrong(EX, "claimed_by_one_worker_task", Fresh(claimed_by_one_worker), "made no call for this PaymentClaimable",
          "spawned in an earlier play", "a new node with an event loop of its own", "task.get_loop()",
          why="one task, spawned with the first PaymentClaimable of the check, claims from a queue: it was told 'the "
              "preimage is in the event's purpose', though its handler had handed the payment to that task"),
    wrong(EX, "answered_by_one_worker_task", Fresh(lambda: compose({OPEN: answered_by_one_worker()})),
          "made no call for event 1, an OpenChannelRequest", "spawned in an earlier play",
          "a new node with an event loop of its own",
          why="one task, spawned with the first OpenChannelRequest of the check, answers from a queue: it was told "
              "'an earlier event was not handled... Run the earlier checks first'"),
    right(EX, "claimed_by_one_worker_thread_3_s_later", Fresh(lambda: claimed_by_one_worker_thread(3)),
          why="one thread, started with the first PaymentClaimable, sleeps 3 s before each claim: it was told 'it was "
              "never claimed', the thread having slept through the end of workbook 1's story (which has a payment), "
              "then met its gone node, and died"),
    right(EX, "claimed_by_a_worker_per_loop", Fresh(claimed_by_a_worker_per_loop),
          why="the worker started again on each node's loop, handed the components with each payment (the hint above)"),
    wrong(EX, "claims_every_payment_by_a_worker_per_loop", Fresh(claims_every_payment_by_a_worker_per_loop),
          "you claimed it a second time", "look the payment_hash up in inbound_payments first",
          why="the worker per loop above, claiming a repeat too: its hint said 'made no call for this "
              "PaymentClaimable: "
              "it handed it to a task spawned in an earlier play' (the worker of this play had claimed it, under the "
              "first payment's hand-over; earlier plays' workers still waited on their queues)"),
    right(EX, "keeps_the_first_storages_it_was_given", Fresh(keeps_the_first_storages_it_was_given), slow=True,
          why="the payment storages of the check's first play kept, and used in every other: it was told 'Succeeded "
              "on disk ... and it was never claimed' (the record came from an earlier play's storage) in check(), "
              "and passed in the grader (one storage of each kind in the learner process for every play)"),
    right(EX, "claimed_by_a_thread_with_its_manager", Fresh(claimed_by_a_thread_with_its_manager),
          why="a thread of an earlier play, with that play's channel_manager, claims each payment from a queue.Queue: "
              "in the check its claims went to the earlier play's node ('never claimed'), in the grader to the node "
              "playing (the learner process has one stand-in for every play's)"),
    wrong(EX, "never_sweeps", compose({Event.SpendableOutputs: None}), "track_spendable_outputs",
          "never came back to your wallet", why="no SpendableOutputs arm"),
    wrong(EX, "claims_a_payment_made_twice", compose({CLAIMABLE: claims_every_time}), "receive_duplicate_payment",
          "fail the second", why="claims the second payment of an already Succeeded hash"),
    wrong(EX, "marks_the_paid_invoice_failed", compose({CLAIMABLE: marks_the_paid_invoice_failed}),
          "made again for an invoice already paid", "stays the first payment's",
          why="fails back the second payment and sets the invoice's entry Failed: it was told to update only the "
              "event's payment_hash and never rebuild the map, which it had done"),
    wrong(EX, "refuses_any_known_hash", compose({CLAIMABLE: refuses_any_known_hash}), "claim_funds",
          "you failed it back", "not a Succeeded one", "Pending",
          why="treats the invoice's own Pending entry as a payment made before: it was told 'the preimage is in the "
              "event's purpose', which it had used"),
    wrong(EX, "sats_as_btc", compose({Event.FundingGenerationReady: sats_as_btc}), "BTC", "100_000_000",
          why="workbook 2's mistake in the capstone"),
    wrong(EX, "failed_on_path_failure",
          compose({Event.PaymentPathFailed: set_status(HTLCStatus.Failed, **NOT_SUCCEEDED)}), "PaymentPathFailed",
          why="workbook 4's mistake in the capstone"),
    wrong(EX, "probe_fails_pending_payments", compose({Event.ProbeFailed: probe_fails_pending_payments}),
          "on Event.ProbeFailed", "still on its way, left Pending", "a probe is no payment",
          why="workbook 4's mistake in the capstone: every Pending payment marked Failed on ProbeFailed"),
    wrong(EX, "fixed_forward_delay", compose({Event.PendingHTLCsForwardable: forward_after(lambda t, k: 3 * t)}),
          "random", why="workbook 5's mistake in the capstone"),
    wrong(EX, "swallows_oserror", compose({CLAIMED: INBOUND(swallow), Event.PaymentSent: OUTBOUND(swallow),
                                           Event.PaymentFailed: OUTBOUND(swallow)}), "ReplayEvent",
          why="workbook 7's mistake in the capstone"),
    wrong(EX, "writes_before_updating", compose({CLAIMED: write_first}), "written before it was updated",
          why="workbook 3's mistake in the capstone"),
    wrong(EX, "accepts_exactly_5m", compose({OPEN: lambda channel_manager, keys_manager, event, **_: (
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id,
                                               user_channel_id(keys_manager))
        if event.funding_satoshis >= 5_000_000 else
        channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                             "small"))}),
        "exactly 5,000,000", why="workbook 1's mistake in the capstone"),
    right(EX, "answers_with_the_first_manager_per_node", Fresh(answers_with_the_first_manager_per_node), slow=True,
          why="a registry of managers by node id, the first kept: after the kit's restart (in the same process), the "
              "crashed node's. A real restart starts with empty memory, and the grader's stand-ins are the node's "
              "whatever was kept, so a kept component stands for the restarted node: it failed restart_replay "
              "('PaymentClaimable was expected') in check() only, once a crash under the processor stopped it"),
]
