"""Workbook 6, on chain: every spendable output swept to the wallet, every fee bump handed over."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import queue
import threading
from typing import Any

from ldkkit.bitcoin import ScriptBuf, Transaction, TxOut
from ldkkit.events import Event
from ldkkit.payment_storage import HTLCStatus
from ldkkit.sign import SpendableOutputDescriptor

from . import Fresh, right, wrong
from .arms import BASE, asks_again_always, asks_again_first, compose, spawn

EX = "on_chain"
SPEND, BUMP = Event.SpendableOutputs, Event.BumpTransaction


# --- RIGHT ------------------------------------------------------------------------------------------------

def track_defaults(output_sweeper: Any, event: Any, **_: Any) -> None:
    output_sweeper.track_spendable_outputs(output_descriptors=event.outputs)


def track_keywords(output_sweeper: Any, event: Any, **_: Any) -> None:
    output_sweeper.track_spendable_outputs(list(event.outputs), channel_id=event.channel_id,
                                           exclude_static_outputs=False, delay_until_height=None)


def track_at_current_height(channel_manager: Any, output_sweeper: Any, event: Any, **_: Any) -> None:
    """A delay_until_height that is already reached: spent at once."""
    output_sweeper.track_spendable_outputs(event.outputs, event.channel_id, False,
                                           channel_manager.current_best_block().height)


def bump_by_keyword(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    match event:
        case Event.BumpTransaction(bump_event=inner):
            bump_tx_event_handler.handle_event(event=inner)


def handle_isinstance(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                      bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                      fs_store, output_sweeper, network, event):
    """Plain def, isinstance for the two on-chain arms; the earlier arms composed in."""
    if isinstance(event, Event.SpendableOutputs):
        output_sweeper.track_spendable_outputs(tuple(event.outputs), event.channel_id)
    elif isinstance(event, Event.BumpTransaction):
        bump_tx_event_handler.handle_event(event.bump_event)
    else:
        return _EARLIER(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                        peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event)
    return None


_EARLIER = compose({SPEND: None, BUMP: None}, plain=True)


def spend_to_my_wallet(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
    """Spends the outputs itself, to its wallet, and broadcasts the spend before returning (no sweeper)."""
    tx = keys_manager.spend_spendable_outputs(list(event.outputs), [], bitcoind_client.get_change_script(), 253, None)
    bitcoind_client.broadcast_transactions([tx])


def bumps_at_twice_the_feerate(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    """Hands over a copy of the request asking for twice its feerate ("to be sure it confirms")."""
    bump = event.bump_event
    field = next(f.name for f in dataclasses.fields(bump) if f.name.endswith("feerate_sat_per_1000_weight"))
    bump_tx_event_handler.handle_event(dataclasses.replace(bump, **{field: 2 * getattr(bump, field)}))


def bumps_at_ten_times_first(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    """Hands over a copy of the request at ten times its feerate ("to be sure it confirms"), then the request as it
    came, as the workbook says."""
    bump = event.bump_event
    field = next(f.name for f in dataclasses.fields(bump) if f.name.endswith("feerate_sat_per_1000_weight"))
    bump_tx_event_handler.handle_event(dataclasses.replace(bump, **{field: 10 * getattr(bump, field)}))
    bump_tx_event_handler.handle_event(bump)


def bumps_capped_at(cap: int, clamp: bool) -> Any:
    """Leaves a request over ``cap`` sat/kW unanswered ("wait for fees to come down"), or, if ``clamp``, hands over a
    copy of it at the cap; any other, as it came."""

    def arm(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
        bump = event.bump_event
        field = next(f.name for f in dataclasses.fields(bump) if f.name.endswith("feerate_sat_per_1000_weight"))
        if getattr(bump, field) <= cap:
            bump_tx_event_handler.handle_event(bump)
        elif clamp:
            bump_tx_event_handler.handle_event(dataclasses.replace(bump, **{field: cap}))

    return arm


def tracks_from_a_thread_it_joins(output_sweeper: Any, event: Any, **_: Any) -> None:
    """Hands the outputs over from a thread of its own, and waits for it (Thread.join)."""
    thread = threading.Thread(target=output_sweeper.track_spendable_outputs,
                              args=(list(event.outputs), event.channel_id, False, None))
    thread.start()
    thread.join()


def spend_with_a_lock_time(blocks: int = 1_000) -> Any:
    """Spends the outputs itself, to its wallet, with an nLockTime ``blocks`` on ("so that no one can mine it early"):
    bitcoind refuses the transaction until a block above it (non-final), and it is broadcast once only."""

    def arm(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
        locktime = bitcoind_client.get_block_height() + blocks
        tx = keys_manager.spend_spendable_outputs(list(event.outputs), [], bitcoind_client.get_change_script(), 253,
                                                  locktime)
        bitcoind_client.broadcast_transactions([tx])

    return arm


def _spend_at(feerate: Any) -> Any:
    def arm(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
        rate = feerate(bitcoind_client)
        tx = keys_manager.spend_spendable_outputs(list(event.outputs), [], bitcoind_client.get_change_script(), rate)
        bitcoind_client.broadcast_transactions([tx])

    return arm


def _urgent(bitcoind_client: Any) -> int:
    from ldkkit.chain.chaininterface import ConfirmationTarget

    return bitcoind_client.get_est_sat_per_1000_weight(ConfirmationTarget.UrgentOnChainSweep)


async def track_in_a_thread(output_sweeper: Any, event: Any, **_: Any) -> None:
    """Hands the outputs over from a worker thread, awaited before the handler returns."""
    await asyncio.to_thread(output_sweeper.track_spendable_outputs, list(event.outputs), event.channel_id)


# --- WRONG ------------------------------------------------------------------------------------------------

def track(**kw: Any) -> Any:
    def arm(channel_manager: Any, output_sweeper: Any, event: Any, **_: Any) -> None:
        args = dict(kw)
        outputs = args.pop("outputs", None)
        args = {k: (v(channel_manager) if callable(v) else v) for k, v in args.items()}
        output_sweeper.track_spendable_outputs(list(event.outputs) if outputs is None else outputs(event.outputs),
                                               event.channel_id, **args)

    return arm


def spend_myself(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
    """Builds the spending transaction with the keys manager, and never broadcasts it."""
    keys_manager.spend_spendable_outputs(list(event.outputs), [], bitcoind_client.get_change_script(), 253, None)


#: A script of nobody in the story: not the learner's wallet.
STRANGER = ScriptBuf.new_p2wpkh(b"\x02" * 33)


def spend_to_a_stranger(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
    """Spends the outputs itself, to a script that is not the wallet's, and broadcasts the spend."""
    tx = keys_manager.spend_spendable_outputs(list(event.outputs), [], STRANGER, 253, None)
    bitcoind_client.broadcast_transactions([tx])


def spend_to_the_keys_managers_script(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
    """Spends the outputs itself to keys_manager.get_destination_script() ("the node's own address"): LDK's key, not
    the bitcoind wallet's."""
    tx = keys_manager.spend_spendable_outputs(list(event.outputs), [], keys_manager.get_destination_script(), 253, None)
    bitcoind_client.broadcast_transactions([tx])


def spend_mostly_to_a_stranger(keys_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
    """Spends the outputs itself to a stranger's script ("my cold storage"), keeping only a little change."""
    total = sum(_value(o) for o in event.outputs)
    tx = keys_manager.spend_spendable_outputs(list(event.outputs), [TxOut(total - 3_000, STRANGER)],
                                              bitcoind_client.get_change_script(), 253, None)
    bitcoind_client.broadcast_transactions([tx])


def _value(descriptor: Any) -> int:
    inner = getattr(descriptor, "descriptor", descriptor)
    return inner.output.value


def bump_whole_event(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    try:
        bump_tx_event_handler.handle_event(event)
    except Exception:
        pass


def bump_close_only(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    if type(event.bump_event).__name__ == "HTLCResolution":
        bump_tx_event_handler.handle_event(event.bump_event)


def bump_htlc_close_only(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    if type(event.bump_event).__name__ == "ChannelClose":
        bump_tx_event_handler.handle_event(event.bump_event)


def broadcasts_what_is_discarded(bitcoind_client: Any, event: Any, **_: Any) -> None:
    """Broadcasts the funding transaction LDK hands back ("so the coins are not lost")."""
    bitcoind_client.send_raw_transaction(event.funding_info.transaction)


def only_open_channels(channel_manager: Any, output_sweeper: Any, event: Any, **_: Any) -> None:
    if any(c.channel_id == event.channel_id for c in channel_manager.list_channels()):
        output_sweeper.track_spendable_outputs(list(event.outputs), event.channel_id, False, None)


def bump_hours_later(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
    """Hands each fee bump over from a task six hours later ("fee bumps batched a few times a day")."""
    async def later() -> None:
        await asyncio.sleep(6 * 3600)
        bump_tx_event_handler.handle_event(event.bump_event)

    spawn(later())


def track_later(output_sweeper: Any, event: Any, **_: Any) -> None:
    """Returns at once, and hands the outputs to the sweeper from a task ten minutes later."""
    async def later() -> None:
        await asyncio.sleep(600)
        output_sweeper.track_spendable_outputs(list(event.outputs), event.channel_id)

    spawn(later())


def refused_spend_then_track_later(keys_manager: Any, bitcoind_client: Any, output_sweeper: Any, event: Any,
                                   **kw: Any) -> None:
    """Broadcasts a spend the chain refuses (its outputs exceed its inputs) before returning, and hands the outputs
    to the sweeper ten minutes later."""
    tx = keys_manager.spend_spendable_outputs(list(event.outputs), [], bitcoind_client.get_change_script(), 253, None)
    more = [TxOut(o.value + 10**9, o.script_pubkey) for o in tx.output]
    bitcoind_client.broadcast_transactions([Transaction.new(tx.version, tx.lock_time, list(tx.input), more)])
    track_later(output_sweeper=output_sweeper, event=event, **kw)


def make_sweeps_once_an_hour() -> Any:
    """Keeps the outputs in a list in memory, and a task sweeps what is in it every hour."""
    kept: list[Any] = []
    started: list[bool] = []

    def arm(output_sweeper: Any, event: Any, **_: Any) -> None:
        kept.extend(event.outputs)
        if not started:
            started.append(True)

            async def hourly() -> None:
                while True:
                    await asyncio.sleep(3600)
                    if kept:
                        output_sweeper.track_spendable_outputs(list(kept), None)
                        kept.clear()

            spawn(hourly())

    return compose({SPEND: arm})


def fails_pending_on_close(outbound_payments: Any, fs_store: Any, **_: Any) -> None:
    """On ChannelClosed, marks every Pending outbound payment Failed: "its channel is gone"."""
    with outbound_payments.lock() as payments:
        for info in payments.values():
            if info.status is HTLCStatus.Pending:
                info.status = HTLCStatus.Failed
    fs_store.write("", "", "outbound_payments", outbound_payments.encode())


async def waits_forever(**_: Any) -> None:
    """Waits for something that never happens (say, a confirmation the handler expects to be told of)."""
    await asyncio.Event().wait()


def not_static(outputs: Any) -> list[Any]:
    return [o for o in outputs if not isinstance(o, SpendableOutputDescriptor.StaticOutput)]


def not_static_payment(outputs: Any) -> list[Any]:
    return [o for o in outputs if not isinstance(o, SpendableOutputDescriptor.StaticPaymentOutput)]


def not_after_the_peers_close() -> Any:
    """Believes a peer's force-close pays it directly: remembers the channels its peers closed (ChannelClosed), and
    sweeps nothing of theirs."""
    closed_by_the_peer: set[Any] = set()

    def remember(event: Any, **_: Any) -> None:
        if type(event.reason).__name__ in ("CounterpartyForceClosed", "CommitmentTxConfirmed"):
            closed_by_the_peer.add(event.channel_id)

    def sweep(event: Any, **kw: Any) -> Any:
        if event.channel_id not in closed_by_the_peer:
            return BASE[SPEND](event=event, **kw)
        return None

    return compose({Event.ChannelClosed: remember, SPEND: sweep})


def handed_over_by_a_worker_thread() -> Any:
    """One worker thread of its own, started with the first SpendableOutputs, takes each hand-over from a queue.Queue;
    the handler awaits its answer (an asyncio future set with call_soon_threadsafe) before returning."""
    work: queue.Queue[Any] = queue.Queue()
    started: list[bool] = []

    def worker() -> None:
        while True:
            sweeper, outputs, channel_id, loop, done = work.get()
            sweeper.track_spendable_outputs(outputs, channel_id)
            loop.call_soon_threadsafe(done.set_result, None)

    async def arm(output_sweeper: Any, event: Any, **_: Any) -> None:
        if not started:
            started.append(True)
            threading.Thread(target=worker, daemon=True).start()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        work.put((output_sweeper, list(event.outputs), event.channel_id, loop, done))
        await done

    return compose({SPEND: arm})


def handed_over_by_a_thread_after_its_pool() -> Any:
    """A thread of its own per event waits for a pool of its own (its first submit starts the pool's thread), then
    hands over and tells the handler, which awaits that."""
    pool = concurrent.futures.ThreadPoolExecutor(1)

    async def arm(output_sweeper: Any, event: Any, **_: Any) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def run() -> None:
            pool.submit(lambda: None).result()
            output_sweeper.track_spendable_outputs(list(event.outputs), event.channel_id)
            loop.call_soon_threadsafe(done.set_result, None)

        threading.Thread(target=run, daemon=True).start()
        await done

    return compose({SPEND: arm})


def handed_over_by_a_worker_later() -> Any:
    """A worker thread woken from its queue.Queue hands over; the handler returns at once, without waiting."""
    work: queue.Queue[Any] = queue.Queue()
    started: list[bool] = []

    def worker() -> None:
        while True:
            sweeper, outputs, channel_id = work.get()
            sweeper.track_spendable_outputs(outputs, channel_id)

    def arm(output_sweeper: Any, event: Any, **_: Any) -> None:
        if not started:
            started.append(True)
            threading.Thread(target=worker, daemon=True).start()
        work.put((output_sweeper, list(event.outputs), event.channel_id))

    return compose({SPEND: arm})


def stores_them_and_sweeps_later() -> Any:
    """ldk-sample before LDK had an OutputSweeper (0.0.118): each event written to disk before returning, and a task
    spending what is on disk to the wallet every ten minutes."""
    started: list[bool] = []

    def arm(keys_manager: Any, bitcoind_client: Any, fs_store: Any, event: Any, **_: Any) -> None:
        data = event.encode()
        fs_store.write("spendable_outputs", "", hashlib.sha256(data).hexdigest(), data)
        if not started:
            started.append(True)

            async def sweep_what_is_stored() -> None:
                while True:
                    await asyncio.sleep(600)
                    keys = fs_store.list("spendable_outputs", "")
                    outputs = [o for k in keys for o in Event.decode(fs_store.read("spendable_outputs", "", k)).outputs]
                    if outputs:
                        change = bitcoind_client.get_change_script()
                        tx = keys_manager.spend_spendable_outputs(outputs, [], change, 253, None)
                        bitcoind_client.broadcast_transactions([tx])
                    for k in keys:
                        fs_store.remove("spendable_outputs", "", k)

            spawn(sweep_what_is_stored())

    return compose({SPEND: arm})


def bumps_from_one_worker_thread() -> Any:
    """One worker thread of its own, started with the first BumpTransaction, takes each request from a queue.Queue and
    hands it to the BumpTxEventHandler; the handler returns at once (LDK asks again until the claim confirms)."""
    work: queue.Queue[Any] = queue.Queue()
    started: list[threading.Thread] = []

    def arm(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
        if not started:
            def worker() -> None:
                while True:
                    bump_tx_event_handler.handle_event(work.get())

            started.append(threading.Thread(target=worker, daemon=True))
            started[0].start()
        work.put(event.bump_event)

    return compose({BUMP: arm})


def bumps_each_claim_once() -> Any:
    """Hands each claim_id to the BumpTxEventHandler the first time only ("once is enough"): LDK's later asks,
    at a higher feerate, are dropped."""
    seen: set[Any] = set()

    def arm(bump_tx_event_handler: Any, event: Any, **_: Any) -> None:
        if event.bump_event.claim_id not in seen:
            seen.add(event.bump_event.claim_id)
            bump_tx_event_handler.handle_event(event.bump_event)

    return compose({BUMP: arm})


CASES = [
    right(EX, "bumps_from_one_worker_thread", Fresh(bumps_from_one_worker_thread),
          why="one worker thread takes every request from a queue and hands it over: every request after the first "
              "was 'not handed over (you handed this claim over before)', the worker's hand-overs counted for the "
              "event whose handling started it"),
    wrong(EX, "bumps_each_claim_once", Fresh(bumps_each_claim_once), "not handed over", "asks again",
          why="hands each claim_id over the first time only: LDK's later asks for the same claim are dropped (it was "
              "told to match Event.BumpTransaction(bump_event) and hand it over whatever its kind, which it did)"),
    wrong(EX, "broadcasts_what_is_discarded", compose({Event.DiscardFunding: broadcasts_what_is_discarded}),
          "the discarded funding transaction never broadcast", "it was broadcast",
          why="the DiscardFunding arm (written in this workbook) broadcasts the transaction: it passed, no funding "
              "being discarded in the story (the capstone caught it)"),
    wrong(EX, "bumps_six_hours_later", compose({BUMP: bump_hours_later}), "before the HTLC on it expires",
          "hand each BumpTransaction over as it comes", why="hands each fee bump over six hours later: it passed, "
          "its commitment confirming 11 blocks after the HTLC on it expired"),
    wrong(EX, "stores_them_and_sweeps_later", Fresh(stores_them_and_sweeps_later), "before LDK had an OutputSweeper",
          "output_sweeper.track_spendable_outputs",
          why="ldk-sample's way before the OutputSweeper: on disk before returning, swept later by a task. The "
              "workbook hands them to the sweeper; it was told a crash would lose the coins, which on disk it won't"),
    right(EX, "spends_its_own_at_the_urgent_feerate", compose({SPEND: _spend_at(_urgent)}),
          why="spends the outputs itself to its wallet at UrgentOnChainSweep's feerate, within the node's estimates"),
    wrong(EX, "spends_its_own_at_one_sat_per_kw", compose({SPEND: _spend_at(lambda _: 1)}),
          "less than bitcoind relays", "per 1000 weight units", "OutputSpendingFee",
          why="spends the outputs itself at feerate 1 (\"1 sat/vB\"), which is 1 sat per 1000 weight units: bitcoind "
              "never relays it. It passed: the kit's spend_spendable_outputs raised the feerate to 253 (LDK's does "
              "not), and the check judged only the highest fee"),
    wrong(EX, "spends_its_own_at_half_a_sat_per_vb", compose({SPEND: _spend_at(lambda _: 125)}),
          "less than bitcoind relays", "0.50 sat/vB", why="spends the outputs itself at 125 sat/kW, 0.5 sat/vB: under "
          "bitcoind's 1 sat/vB, though far over 1 sat/kW (a bar at an eighth of bitcoind's went unnoticed)"),
    wrong(EX, "spends_its_own_paying_most_to_miners", compose({SPEND: _spend_at(lambda _: 60_000)}),
          "to miners", "over the node's highest estimate", "OutputSpendingFee",
          why="spends the outputs itself to its wallet at 60,000 sat/kW, over MaximumFeeEstimate (more than the node "
              "would ever pay); it once passed, what was left reaching its wallet and nowhere else"),
    right(EX, "handed_over_by_a_worker_thread", Fresh(handed_over_by_a_worker_thread),
          why="a worker thread woken from its queue hands the outputs over, the handler awaiting its answer: under "
              "load it once raced the clock (3 of 10 runs passed, with three different messages)"),
    right(EX, "handed_over_by_a_thread_after_its_pool", Fresh(handed_over_by_a_thread_after_its_pool),
          why="a thread waits for its pool, then hands over; the handler awaits it (the pool's thread starting once "
              "stopped the thread counting)"),
    wrong(EX, "handed_over_by_a_worker_later", Fresh(handed_over_by_a_worker_later),
          "in the OutputSweeper's care when your handler returned", "by code of yours still running then",
          why="a worker thread hands the outputs over after the handler returned (it once passed now and then; it was "
              "told 'handed over only 0 s after your handler returned')"),
    right(EX, "asks_again_for_every_event_first", Fresh(asks_again_first),
          why="returns ReplayEvent() the first time it sees each event, then handles it: each BumpTransaction "
              "handed over when handled"),
    wrong(EX, "asks_again_for_bumps_for_ever", asks_again_always(Event.BumpTransaction), "never confirmed",
          "you answered ReplayEvent()", "asks again later",
          why="returns ReplayEvent() for every BumpTransaction: LDK ignores the answer to a repeated event and asks "
              "again, and the commitment never confirms"),
    wrong(EX, "asks_again_for_spendable_outputs_for_ever", asks_again_always(Event.SpendableOutputs),
          "asked for it again each of the", "never handled",
          why="returns ReplayEvent() for every SpendableOutputs (once, this wedged the check for minutes)"),
    right(EX, "track_with_defaults", compose({SPEND: track_defaults}),
          why="track_spendable_outputs(output_descriptors=event.outputs), the rest defaulted"),
    right(EX, "keywords_and_bump_by_keyword", compose({SPEND: track_keywords, BUMP: bump_by_keyword}),
          why="every keyword spelt out; handle_event(event=inner) from a class pattern"),
    right(EX, "delay_until_current_height", compose({SPEND: track_at_current_height}),
          why="delay_until_height = the current height, already reached"),
    right(EX, "isinstance_plain_def", handle_isinstance, why="plain def, isinstance, a tuple of outputs"),
    right(EX, "spends_to_its_wallet_itself", compose({SPEND: spend_to_my_wallet}),
          why="keys_manager.spend_spendable_outputs to its wallet, broadcast before returning: no sweeper needed"),
    right(EX, "tracks_in_a_worker_thread", compose({SPEND: track_in_a_thread}),
          why="await asyncio.to_thread(output_sweeper.track_spendable_outputs, ...): handed over before returning"),

    wrong(EX, "excludes_static_outputs", compose({SPEND: track(exclude_static_outputs=True)}), "exclude",
          "StaticOutput", "exclude_static_outputs=False", why="track_spendable_outputs(..., True, None)"),
    wrong(EX, "far_delay_until_height",
          compose({SPEND: track(delay_until_height=lambda cm: cm.current_best_block().height + 10_000)}),
          "delay_until_height", "wait until block", why="delay_until_height = height + 10,000"),
    wrong(EX, "delay_until_the_last_block", compose({SPEND: track(delay_until_height=lambda cm: 222)}),
          "wait until block 222", "delay_until_height",
          why="delay_until_height = 222, the story's last block: the sweep is broadcast then, never confirmed (the "
              "message once gave no reason, and the hint said to hand the outputs over)"),
    wrong(EX, "tracks_from_a_task_later", compose({SPEND: track_later}), "after your handler returned",
          "before you return", why="a task hands the outputs to the sweeper ten minutes after the handler returned "
          "(they were swept, so it once passed; a crash in between loses them)"),
    wrong(EX, "refused_spend_then_tracks_later", compose({SPEND: refused_spend_then_track_later}),
          "after your handler returned", why="a spend the chain refused, broadcast before returning, counted as spent "
          "(it once passed); the sweeper got the outputs ten minutes later"),
    wrong(EX, "keeps_outputs_in_memory", Fresh(make_sweeps_once_an_hour), "after your handler returned",
          why="keeps the outputs in a Python list that a task sweeps once an hour (it once passed)"),
    wrong(EX, "fails_pending_payments_on_close", compose({Event.ChannelClosed: fails_pending_on_close}),
          "left Pending", why="marks every Pending payment Failed when a channel closes: the payment stuck on it "
          "is still LDK's to fail or complete, hours later (it once passed)"),
    wrong(EX, "never_sweeps", compose({SPEND: None}), "never came back to your wallet", "track_spendable_outputs",
          "OutputSweeper", why="no SpendableOutputs arm"),
    wrong(EX, "ignores_bump_transaction", compose({BUMP: None}), "bump_tx_event_handler.handle_event",
          "not handed over", why="no BumpTransaction arm"),
    wrong(EX, "only_for_open_channels", compose({SPEND: only_open_channels}), "never handed to the OutputSweeper",
          why="tracks outputs only of channels list_channels() still shows: a closed channel never is"),
    wrong(EX, "leaves_out_static_payment_outputs", compose({SPEND: track(outputs=not_static_payment)}),
          "not among the outputs you handed over", "StaticPaymentOutput: your balance on a commitment your peer",
          why="drops the StaticPaymentOutput, the balance a peer's force-close pays it, from what it hands over"),
    wrong(EX, "sweeps_nothing_after_a_peers_force_close", Fresh(not_after_the_peers_close),
          "never handed to the OutputSweeper",
          why="believes a peer's force-close pays it directly, and hands over nothing of the channels peers closed"),
    wrong(EX, "filters_static_outputs_itself", compose({SPEND: track(outputs=not_static)}),
          "not among the outputs you handed over", why="drops StaticOutputs from the list before handing it over"),
    wrong(EX, "filters_static_outputs_delay_at_current_height",
          compose({SPEND: track(outputs=not_static, delay_until_height=lambda cm: cm.current_best_block().height)}),
          "not among the outputs you handed over", "hand event.outputs",
          why="drops StaticOutputs, with a delay_until_height already reached: the hint is about the outputs, "
              "not the delay (it once said 'pass delay_until_height=None')"),
    wrong(EX, "spends_with_keys_manager_unbroadcast", compose({SPEND: spend_myself}), "track_spendable_outputs",
          "you built a transaction spending it", "broadcast it",
          why="keys_manager.spend_spendable_outputs builds a transaction that is never broadcast (it was told only "
              "that the outputs were never handed to the OutputSweeper)"),
    wrong(EX, "sweeps_mostly_to_a_stranger", compose({SPEND: spend_mostly_to_a_stranger}),
          "scripts that are not your wallet's", why="spends them itself to a foreign script, a little change back"),
    wrong(EX, "sweeps_to_the_keys_managers_script", compose({SPEND: spend_to_the_keys_managers_script}),
          "never came back to your wallet", "paid all of it to scripts that are not your wallet's",
          why="spends them itself to keys_manager.get_destination_script(), confirmed: it was told its outputs were "
              "never handed to the OutputSweeper, as if a spend of its own were the mistake"),
    wrong(EX, "sweeps_with_a_far_lock_time", compose({SPEND: spend_with_a_lock_time()}), "never came back to your "
          "wallet", "non-final", "pass the current height", why="its own sweep, its nLockTime a thousand blocks on: "
          "it passed, the simulated chain taking a transaction bitcoind refuses until then"),
    *(wrong(EX, f"bumps_capped_at_10000_{how}", compose({BUMP: bumps_capped_at(10_000, how == "clamped")}),
            "bump_tx_event_handler.handle_event(the inner ChannelClose", why=f"a request over 10,000 sat/kW {what}: "
            "it passed, every request of the story being at 5,000 (in a fee spike the commitment never confirms, and "
            "the HTLC on it is lost)")
      for how, what in (("skipped", "left unanswered, 'until fees come down'"),
                        ("clamped", "handed over as a copy at 10,000"))),
    wrong(EX, "bumps_at_ten_times_first", compose({BUMP: bumps_at_ten_times_first}), "and nothing else",
          "package_target_feerate_sat_per_1000_weight changed", "and only it",
          why="a copy at ten times LDK's feerate first, then the request itself: it passed (the request was handed "
              "over), while the copy's transaction, first in the mempool, paid ten times the fees"),
    wrong(EX, "bumps_at_twice_the_feerate", compose({BUMP: bumps_at_twice_the_feerate}),
          "a copy of it with package_target_feerate_sat_per_1000_weight changed", "as you were given it",  # (the first)
          why="hands over a copy asking twice the feerate: it was told 'it was not handed over'"),
    wrong(EX, "tracks_from_a_thread_it_joins", compose({SPEND: tracks_from_a_thread_it_joins}, plain=True),
          "Thread.join()", "in the handler itself (it returns at once)", why="a plain handler that hands the outputs "
          "over from a thread and joins it: its hint said to spawn a task, which hands them over too late"),
    wrong(EX, "sweeps_locked_to_the_next_block", compose({SPEND: spend_with_a_lock_time(1)}), "never came back to "
          "your wallet", "and broadcast it, and bitcoind refused it (non-final", "pass the current height",
          why="its own sweep, its nLockTime the next block's height, broadcast once: bitcoind refuses it (it may enter "
              "only a block above its nLockTime); the check said to broadcast it, which it had done"),
    wrong(EX, "sweeps_to_a_stranger", compose({SPEND: spend_to_a_stranger}), "never came back to your wallet",
          why="spends the outputs itself to a script that is not the wallet's: swept and confirmed, but not back"),
    wrong(EX, "hands_over_the_outer_event", compose({BUMP: bump_whole_event}),
          "you handed over the Event.BumpTransaction itself, not its bump_event", "hand bump_event over",
          why="handle_event(event) with the outer Event.BumpTransaction (and the error swallowed): it was told only "
              "'it was not handed over'"),
    wrong(EX, "bumps_htlc_resolution_only", compose({BUMP: bump_close_only}), "bump_tx_event_handler.handle_event",
          why="hands over HTLCResolution only, never ChannelClose"),
    wrong(EX, "bumps_channel_close_only", compose({BUMP: bump_htlc_close_only}), "HTLCResolution",
          "bump_tx_event_handler.handle_event", why="hands over ChannelClose only: the HTLC is never taken back"),
    wrong(EX, "never_returns_from_channel_closed", compose({Event.ChannelClosed: waits_forever}),
          "never returned from ChannelClosed", why="awaits forever on ChannelClosed: the on-chain events queued "
          "after it never reach the handler (the hint once said to open and fund channels first)"),
    wrong(EX, "never_returns_from_bump_transaction", compose({BUMP: waits_forever}),
          "never returned from BumpTransaction", why="awaits forever on the first BumpTransaction: the outputs to "
          "sweep never reach the handler"),
    wrong(EX, "ignores_both_on_chain_events", compose({SPEND: lambda **kw: None, BUMP: None}),
          "never came back to your wallet", why="ignores both on-chain events"),
]
