"""Workbook 2, ``FundingGenerationReady``: fund the channel, hand the transaction to LDK, never broadcast it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from decimal import Decimal
from typing import Any

from ldkkit.bitcoin import Address, Network, ScriptBuf, Transaction, TxOut
from ldkkit.errors import APIError
from ldkkit.events import Event, ReplayEvent

from . import Fresh, right, wrong
from .arms import build_funding, by_a_worker_started_first, compose, fund_channel, only, spawn

EX = "funding_generation_ready"
FUND = Event.FundingGenerationReady


def _funded(**changes: Any) -> Any:
    return compose({FUND: changes.pop("arm")}, **changes)


# --- RIGHT ------------------------------------------------------------------------------------------------

def fund_by_keywords(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    address = Address.from_script(event.output_script, network)
    raw = bitcoind_client.create_raw_transaction(outputs=[{f"{address}": round(event.channel_value_satoshis / 1e8, 8)}])
    funded = bitcoind_client.fund_raw_transaction(raw_tx=raw)
    signed = bitcoind_client.sign_raw_transaction_with_wallet(tx_hex=funded.hex)
    channel_manager.funding_transaction_generated(
        temporary_channel_id=event.temporary_channel_id,
        counterparty_node_id=event.counterparty_node_id,
        funding_transaction=Transaction(bytes.fromhex(signed.hex)),
    )


def handle_isinstance(channel_manager, bitcoind_client, network_graph, keys_manager,  # noqa: ANN001
                      bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments,
                      fs_store, output_sweeper, network, event):
    """Plain def, isinstance, the BTC amount as an integer division's quotient and remainder."""
    if isinstance(event, Event.FundingGenerationReady):
        whole, rest = divmod(event.channel_value_satoshis, 100_000_000)
        btc = whole + rest / 100_000_000
        outputs = [{str(Address.from_script(event.output_script, network)): btc}]
        signed = bitcoind_client.sign_raw_transaction_with_wallet(
            bitcoind_client.fund_raw_transaction(bitcoind_client.create_raw_transaction(outputs)).hex)
        if not signed.complete:
            raise RuntimeError("wallet could not sign")
        try:
            channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                          Transaction(bytes.fromhex(signed.hex)))
        except Exception as e:  # the channel went away meanwhile
            print("could not fund:", e)


async def fund_logging_async(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any,
                             **_: Any) -> None:
    """An async arm that awaits nothing slow, logs, and builds the transaction through a helper."""
    await asyncio.sleep(0)
    tx = build_funding(bitcoind_client, network, event)
    channel_manager.logger.info("learner", f"funding {event.temporary_channel_id} with {tx.compute_txid()}")
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def fund_decimal(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """Decimal BTC, as python-bitcoinrpc users write it (bitcoind's JSON-RPC takes it)."""
    tx = build_funding(bitcoind_client, network, event, btc=Decimal(event.channel_value_satoshis) / Decimal(10**8))
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def funds_in_batches(one_by_one: bool = False) -> Any:
    """Funds the channels whose FundingGenerationReady came within a second of each other with one transaction:
    LDK's batch_funding_transaction_generated, from a task that waits that second for the others (``one_by_one``:
    funding_transaction_generated for each, the same transaction)."""
    pending: list[Any] = []

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
        pending.append(event)
        if len(pending) > 1:
            return

        async def batch() -> None:
            await asyncio.sleep(1)
            events = list(pending)
            pending.clear()
            raw = bitcoind_client.create_raw_transaction([{str(Address.from_script(e.output_script, network)):
                                                           e.channel_value_satoshis / 100_000_000} for e in events])
            signed = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw).hex)
            tx = Transaction(bytes.fromhex(signed.hex))
            if not one_by_one:
                channel_manager.batch_funding_transaction_generated(
                    [(e.temporary_channel_id, e.counterparty_node_id) for e in events], tx)
            for e in events if one_by_one else ():
                channel_manager.funding_transaction_generated(e.temporary_channel_id, e.counterparty_node_id, tx)

        spawn(batch())

    return compose({FUND: arm})


def fund_as_a_batch_of_one(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """LDK 0.1's batch_funding_transaction_generated with one channel: what funding_transaction_generated calls."""
    tx = build_funding(bitcoind_client, network, event)
    channel_manager.batch_funding_transaction_generated([(event.temporary_channel_id, event.counterparty_node_id)], tx)


# --- WRONG ------------------------------------------------------------------------------------------------

def then(after: Any) -> Any:
    """The base arm, then ``after(tx, ...)`` on the transaction it handed over."""

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> Any:
        tx = build_funding(bitcoind_client, network, event)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)
        return after(tx, bitcoind_client)

    return arm


def hands_over_twice(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """Hands the funding over, then "to be sure" the same transaction again."""
    tx = build_funding(bitcoind_client, network, event)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def names_the_first_peer_for_every_channel() -> Any:
    """Remembers the first channel's peer as "the peer", and names it when it funds every channel after."""
    first: list[Any] = []

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
        tx = build_funding(bitcoind_client, network, event)
        first[:] = first or [event.counterparty_node_id]
        channel_manager.funding_transaction_generated(event.temporary_channel_id, first[0], tx)

    return compose({FUND: arm})


async def _broadcast_soon(tx: Transaction, bitcoind_client: Any, seconds: float = 1) -> None:
    await asyncio.sleep(seconds)
    bitcoind_client.broadcast_transactions([tx])


def broadcast_from_the_loop_first(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any,
                                  **_: Any) -> None:
    """Hands the broadcast to the event loop before handing the transaction over: no code of its own on the stack
    when it runs, and it goes out before the peer has signed the refund."""
    tx = build_funding(bitcoind_client, network, event)
    asyncio.get_running_loop().call_soon(bitcoind_client.send_raw_transaction, tx)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def broadcast_from_the_loop_instead(bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    tx = build_funding(bitcoind_client, network, event)
    asyncio.get_running_loop().call_soon(bitcoind_client.broadcast_transactions, [tx])


async def fund_in_a_thread(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """bitcoind's calls are slow on a real node: made in a thread, the loop goes on meanwhile."""
    tx = await asyncio.to_thread(build_funding, bitcoind_client, network, event)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def _fund_with_outputs(outputs_of: Any) -> Any:
    """The base arm, but the funded transaction's outputs are rewritten by ``outputs_of(outputs, event)`` before it is
    signed."""
    from ldkkit.bitcoin import Address as _Address

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
        address = _Address.from_script(event.output_script, network)
        raw = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000}])
        funded = Transaction(bytes.fromhex(bitcoind_client.fund_raw_transaction(raw).hex))
        rebuilt = Transaction.new(funded.version, funded.lock_time, list(funded.input),
                                  outputs_of(list(funded.output), event))
        signed = bitcoind_client.sign_raw_transaction_with_wallet(rebuilt.serialize().hex())
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                      Transaction(bytes.fromhex(signed.hex)))

    return arm


#: A script of nobody in the story.
STRANGER = ScriptBuf.new_p2wpkh(b"\x02" * 33)


def _every_script_mine(bitcoind_client: Any, **_: Any) -> None:
    bitcoind_client.is_mine = lambda script: True


def change_to_a_stranger_hidden(**kw: Any) -> None:
    """Sends the change to a stranger, having first replaced bitcoind_client.is_mine by one that says yes."""
    _every_script_mine(**kw)
    _fund_with_outputs(lambda outs, event: [o if o.script_pubkey == event.output_script else TxOut(o.value, STRANGER)
                                            for o in outs])(**kw)


def with_btc(amount: Any) -> Any:
    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
        tx = build_funding(bitcoind_client, network, event, btc=amount(event.channel_value_satoshis))
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    return arm


def to_own_address(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    address = bitcoind_client.get_new_address()
    raw = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000}])
    signed = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw).hex)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                  Transaction(bytes.fromhex(signed.hex)))


def mainnet_address(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """Address.from_script(output_script, Network.Bitcoin): the network written out, not the one given."""
    tx = build_funding(bitcoind_client, Network.Bitcoin, event)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)


def unsigned(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    address = Address.from_script(event.output_script, network)
    raw = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000}])
    funded = bitcoind_client.fund_raw_transaction(raw)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                  Transaction(bytes.fromhex(funded.hex)))


def built_not_handed(bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    build_funding(bitcoind_client, network, event)


def broadcast_instead(bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    bitcoind_client.broadcast_transactions([build_funding(bitcoind_client, network, event)])


def swapped(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    tx = build_funding(bitcoind_client, network, event)
    channel_manager.funding_transaction_generated(event.counterparty_node_id, event.temporary_channel_id, tx)


def first_channel_only_arm() -> Any:
    funded: list[Any] = []

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
        if funded:
            return  # "one funding transaction is enough"
        tx = build_funding(bitcoind_client, network, event)
        funded.append(tx)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    return arm


def once_per_peer_arm(key: str = "counterparty_node_id") -> Any:
    """Guards against funding twice, by the peer (or another field of the event, ``key``): a second channel with a
    peer is never funded."""
    funded: set[Any] = set()

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
        if getattr(event, key) in funded:
            return
        funded.add(getattr(event, key))
        tx = build_funding(bitcoind_client, network, event)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    return arm


#: funding_transaction_generated raises (as LDK returns Err) before judge_funding can explain.

W12 = (Event.OpenChannelRequest, Event.FundingGenerationReady)

def fund_without_fee(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """Change = the coins in - the channel's value: a transaction that pays no fee at all."""
    address = Address.from_script(event.output_script, network)
    raw = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000}])
    funded = Transaction(bytes.fromhex(bitcoind_client.fund_raw_transaction(raw).hex))
    coins = {u.outpoint: u.amount for u in bitcoind_client.list_unspent(0)}
    value_in = sum(coins[i.previous_output] for i in funded.input)
    outputs = [o if o.script_pubkey == event.output_script else TxOut(value_in - event.channel_value_satoshis,
                                                                      o.script_pubkey) for o in funded.output]
    tx = Transaction.new(funded.version, funded.lock_time, list(funded.input), outputs)
    signed = bitcoind_client.sign_raw_transaction_with_wallet(tx.serialize().hex())
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                  Transaction(bytes.fromhex(signed.hex)))


def locktime_set_after_signing(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any,
                               **_: Any) -> None:
    """Signs, then sets nLockTime to the current height (anti-fee-sniping) without signing again."""
    address = Address.from_script(event.output_script, network)
    raw = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000}])
    signed = Transaction(bytes.fromhex(bitcoind_client.sign_raw_transaction_with_wallet(
        bitcoind_client.fund_raw_transaction(raw).hex).hex))
    tweaked = Transaction.new(signed.version, bitcoind_client.get_block_height(), list(signed.input),
                              list(signed.output))
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tweaked)


def funds_from_a_thread_pool(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any,
                             **_: Any) -> None:
    """Builds and hands over the funding transaction in a thread pool of its own, not waiting for it."""
    def fund() -> None:
        tx = build_funding(bitcoind_client, network, event)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    _POOL.submit(fund)


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="corpus-funding")


def broadcast_the_discarded(bitcoind_client: Any, event: Any, **_: Any) -> None:
    """On DiscardFunding, broadcasts the transaction "so the coins are not lost"."""
    bitcoind_client.broadcast_transactions([event.funding_info.transaction])


def log_the_discarded(event: Any, **_: Any) -> None:
    print(f"EVENT: funding of channel {event.channel_id} discarded")


def funds_the_discarded_again(bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """On DiscardFunding, "retries the funding": a new transaction paying the discarded one's channel output."""
    channel_output = next(o for o in event.funding_info.transaction.output
                          if not bitcoind_client.is_mine(o.script_pubkey))
    raw = bitcoind_client.create_raw_transaction(
        [{str(Address.from_script(channel_output.script_pubkey, network)): channel_output.value / 100_000_000}])
    signed = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw).hex)
    bitcoind_client.send_raw_transaction(signed.hex)


def dust_marker(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> None:
    """Adds a 100-sat output to a wallet address of its own (a "marker" of the funding) beside the channel's."""
    address = Address.from_script(event.output_script, network)
    marker = bitcoind_client.get_new_address()
    raw = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000,
                                                   str(marker): 0.000001}])
    signed = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw).hex)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                  Transaction(bytes.fromhex(signed.hex)))


def regtest_address(channel_manager: Any, bitcoind_client: Any, event: Any, **_: Any) -> None:
    """The address made for Network.Regtest, the network the kit's main story runs on, not the one given."""
    address = Address.from_script(event.output_script, Network.Regtest)
    raw_tx = bitcoind_client.create_raw_transaction([{str(address): event.channel_value_satoshis / 100_000_000}])
    signed_tx = bitcoind_client.sign_raw_transaction_with_wallet(bitcoind_client.fund_raw_transaction(raw_tx).hex)
    channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id,
                                                  Transaction(bytes.fromhex(signed_tx.hex)))


def when_the_hand_over_fails(then: str) -> Any:
    """Funds as ldk-sample does, and when funding_transaction_generated raises (the channel went away before it was
    funded): ``log`` it, as ldk-sample does; ``broadcast`` the transaction itself ("so it gets out"), or do so from a
    task an hour ``later``; pay the channel's value ``to_peer`` ("it was promised"); ``expect`` (raise an error of its
    own from LDK's, as Rust's ``expect``); or ``replay``."""

    async def broadcast_later(bitcoind_client: Any, tx: Any) -> None:
        await asyncio.sleep(4_000)
        bitcoind_client.send_raw_transaction(tx)

    def arm(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any, **_: Any) -> Any:
        tx = build_funding(bitcoind_client, network, event)
        try:
            channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)
        except APIError as e:
            match then:
                case "log":
                    channel_manager.logger.info("learner", f"Channel went away before we could fund it: {e}")
                case "broadcast":
                    bitcoind_client.send_raw_transaction(tx)
                case "later":
                    spawn(broadcast_later(bitcoind_client, tx))
                case "to_peer":
                    peer = Address.from_script(ScriptBuf.new_p2wpkh(bytes(event.counterparty_node_id)), network)
                    raw = bitcoind_client.create_raw_transaction([{str(peer): event.channel_value_satoshis / 1e8}])
                    signed = bitcoind_client.sign_raw_transaction_with_wallet(
                        bitcoind_client.fund_raw_transaction(raw).hex)
                    bitcoind_client.send_raw_transaction(signed.hex)
                case "expect":
                    raise RuntimeError("Channel went away before we could fund it") from e
                case _:
                    return ReplayEvent()
        return None

    return arm


async def fund_in_a_task_group(channel_manager: Any, bitcoind_client: Any, network: Any, event: Any,
                               **_: Any) -> None:
    """Hands the transaction over from a task of an ``asyncio.TaskGroup``, catching nothing."""
    async def hand_over() -> None:
        tx = build_funding(bitcoind_client, network, event)
        channel_manager.funding_transaction_generated(event.temporary_channel_id, event.counterparty_node_id, tx)

    async with asyncio.TaskGroup() as group:
        group.create_task(hand_over())


CASES = [
    right(EX, "logs_the_hand_over_error", compose({FUND: when_the_hand_over_fails("log")}),
          why="catches funding_transaction_generated's APIError and logs it, as ldk-sample does"),
    wrong(EX, "broadcasts_when_the_hand_over_fails", compose({FUND: when_the_hand_over_fails("broadcast")}),
          "you broadcast a transaction paying the channel's funding output", "Channel went away",
          why="broadcasts the transaction itself when LDK refuses it: it passed, as no story's hand-over failed; a "
              "peer gone before the hand-over leaves the coins in a 2-of-2 with no channel behind it"),
    wrong(EX, "broadcasts_an_hour_after_the_hand_over_fails", compose({FUND: when_the_hand_over_fails("later")}),
          "you broadcast a transaction paying the channel's funding output",
          why="broadcasts the refused transaction from a task an hour later: it passed, the story over by then"),
    wrong(EX, "pays_the_peer_when_the_hand_over_fails", compose({FUND: when_the_hand_over_fails("to_peer")}),
          "a transaction spending your wallet's coins", "leave the coins where they are",
          why="pays the channel's value to the peer's key when LDK refuses the transaction: it passed, only payments "
              "to output_script being looked for"),
    right(EX, "raises_its_own_error_from_the_hand_over_error", compose({FUND: when_the_hand_over_fails("expect")}),
          why="raise RuntimeError(...) from e, as Rust's expect: it failed, while LDK's own error let out passed"),
    *([right(EX, "hands_over_in_a_task_group", compose({FUND: fund_in_a_task_group}),
             why="asyncio.TaskGroup, catching nothing: it failed on the ExceptionGroup wrapping LDK's error")]
      if sys.version_info >= (3, 11) else []),
    wrong(EX, "replays_when_the_hand_over_fails", compose({FUND: when_the_hand_over_fails("replay")}),
          "asked for it again", why="returns ReplayEvent() when LDK refuses the transaction: the channel is gone for "
          "good, so the event is never handled"),
    wrong(EX, "broadcasts_the_discarded_funding", compose({Event.DiscardFunding: broadcast_the_discarded}),
          "discarded funding transaction never broadcast", "DiscardFunding means",
          why="broadcasts the transaction of a DiscardFunding: coins locked with no channel (never exercised before)"),
    wrong(EX, "funds_a_discarded_channel_again", compose({Event.DiscardFunding: funds_the_discarded_again}),
          "paying its funding output", "DiscardFunding means", why="pays the discarded channel's output with a new "
          "transaction: it passed, only the discarded transaction itself being looked for on chain"),
    right(EX, "logs_discard_funding", compose({Event.DiscardFunding: log_the_discarded}),
          why="prints DiscardFunding (ldk-sample does nothing with it)"),
    right(EX, "funded_by_a_worker_thread_started_before_the_check",
          Fresh(lambda: compose({FUND: by_a_worker_started_first(fund_channel)})),
          why="a thread started as the cell runs funds each channel from a queue: it failed on most runs ('never "
              "funded'), the clock running on while the thread worked"),
    right(EX, "funds_from_its_own_thread_pool", compose({FUND: funds_from_a_thread_pool}),
          why="its own ThreadPoolExecutor builds the funding: once raced the simulated clock (3 of 20 runs failed)"),
    wrong(EX, "pays_no_fee", compose({FUND: fund_without_fee}), "minrelaytxfee", why="change = coins in - channel "
          "value: no fee at all, which bitcoind never relays (it once passed: only the highest fee was judged)"),
    wrong(EX, "locktime_changed_after_signing", compose({FUND: locktime_set_after_signing}), "does not sign this "
          "transaction", why="nLockTime set after signing: every signature invalid, bitcoind refuses it (it once "
          "passed: the simulated chain runs no scripts)"),
    right(EX, "keywords_everywhere", only(*W12, changes={FUND: fund_by_keywords}),
          why="keyword arguments to bitcoind and funding_transaction_generated; round(sats / 1e8, 8)"),
    right(EX, "isinstance_plain_def_divmod", handle_isinstance,
          why="plain def, isinstance, divmod for the BTC amount, try/except around the hand-over"),
    right(EX, "async_arm_with_log", compose({FUND: fund_logging_async}), why="an async arm that awaits sleep(0)"),
    right(EX, "bitcoind_calls_in_a_thread", compose({FUND: fund_in_a_thread}),
          why="awaits asyncio.to_thread for the bitcoind calls (the verdict once depended on the machine's speed)"),
    right(EX, "decimal_btc", compose({FUND: fund_decimal}), why="Decimal BTC, as with python-bitcoinrpc"),
    wrong(EX, "funds_one_transaction_channel_by_channel", Fresh(lambda: funds_in_batches(one_by_one=True)),
          "one funding_transaction_generated call each", "batch_funding_transaction_generated",
          why="funds_in_batches, handing the shared transaction over with funding_transaction_generated for each "
              "channel: it was told 'your code broadcast the funding transaction itself', which LDK did"),
    right(EX, "funds_in_batches", Fresh(funds_in_batches),
          why="one transaction for the channels opened within a second (batch_funding_transaction_generated): it was "
              "told the other channels' outputs went to scripts that are not its wallet's"),
    right(EX, "batch_of_one", compose({FUND: fund_as_a_batch_of_one}),
          why="batch_funding_transaction_generated([(temporary_channel_id, counterparty_node_id)], tx): LDK 0.1's "
          "funding_transaction_generated is that call (it once raised AttributeError)"),

    wrong(EX, "broadcast_transactions_too", compose({FUND: then(lambda tx, btc: btc.broadcast_transactions([tx]))}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="bitcoind_client.broadcast_transactions([tx]) after the hand-over"),
    wrong(EX, "send_raw_transaction_too", compose({FUND: then(lambda tx, btc: btc.send_raw_transaction(tx))}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="bitcoind_client.send_raw_transaction(tx) after the hand-over"),
    wrong(EX, "send_raw_hex_too",
          compose({FUND: then(lambda tx, btc: btc.send_raw_transaction(tx.serialize().hex()))}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="send_raw_transaction(hex) after the hand-over"),
    wrong(EX, "broadcast_from_spawned_task",
          compose({FUND: then(lambda tx, btc: spawn(_broadcast_soon(tx, btc)))}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="a spawned task broadcasts it a second later"),
    wrong(EX, "broadcast_from_a_task_after_the_story",
          compose({FUND: then(lambda tx, btc: spawn(_broadcast_soon(tx, btc, 3700)))}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="a spawned task broadcasts it an hour and a bit later: it passed, the story ending before (the check "
              "played on only for a task answering a PaymentClaimable)"),
    wrong(EX, "broadcast_handed_to_the_loop_first", compose({FUND: broadcast_from_the_loop_first}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="loop.call_soon(send_raw_transaction, tx), then the hand-over: out before the peer signed"),
    wrong(EX, "broadcast_from_the_loop_instead", compose({FUND: broadcast_from_the_loop_instead}),
          "broadcast the funding transaction", why="loop.call_soon(broadcast_transactions, [tx]), never handed over"),
    wrong(EX, "broadcast_in_a_thread_after",
          compose({FUND: then(lambda tx, btc: spawn(asyncio.to_thread(btc.broadcast_transactions, [tx])))}),
          "your code broadcast the funding transaction", "LDK broadcasts",
          why="asyncio.to_thread(broadcast_transactions, [tx]) after the hand-over"),
    wrong(EX, "drops_the_change", compose({FUND: _fund_with_outputs(
        lambda outs, event: [o for o in outs if o.script_pubkey == event.output_script])}),
        "a fee of", "sat/vB", why="keeps only the channel's output: the change becomes a fee of a third of a BTC"),
    wrong(EX, "change_to_a_stranger", compose({FUND: _fund_with_outputs(
        lambda outs, event: [o if o.script_pubkey == event.output_script else TxOut(o.value, STRANGER)
                             for o in outs])}),
        "not your wallet's", why="sends the change to a script that is not the wallet's"),
    wrong(EX, "change_to_a_stranger_behind_a_replaced_is_mine", compose({FUND: change_to_a_stranger_hidden}),
          "bitcoind_client cannot be changed from a handler",
          why="replaces bitcoind_client.is_mine, then sends the change to a stranger: the check asked the replaced "
              "is_mine whose the change was, and passed it (the grader refuses the change)"),
    wrong(EX, "broadcast_instead_of_handing_over", compose({FUND: broadcast_instead}),
          "broadcast the funding transaction", why="broadcasts and never calls funding_transaction_generated"),
    wrong(EX, "sats_as_btc", compose({FUND: with_btc(lambda sats: sats)}), "BTC", "100_000_000",
          why="passes channel_value_satoshis to bitcoind, which counts in BTC"),
    wrong(EX, "divided_twice", compose({FUND: with_btc(lambda sats: sats / 100_000_000 / 100_000_000)}),
          "divided twice", why="sats / 1e8 / 1e8"),
    wrong(EX, "times_1e_minus_8", compose({FUND: with_btc(lambda sats: sats * 1e-8)}), "Invalid amount",
          "8 decimal places",
          why="sats * 1e-8: 6,000,000 sats is 0.060000000000000005 as a float, which bitcoind refuses (more than 8 "
              "decimal places); the kit rounded it and passed it"),
    wrong(EX, "msat_as_btc", compose({FUND: with_btc(lambda sats: sats * 1000 / 100_000_000)}),
          "channel_value_satoshis / 100_000_000", why="sats * 1000 / 1e8: msat over 1e8"),
    wrong(EX, "to_own_address", compose({FUND: to_own_address}), "output_script", "Address.from_script",
          why="pays a fresh wallet address instead of output_script"),
    wrong(EX, "mainnet_address", compose({FUND: mainnet_address}), "Invalid Bitcoin address", "network",
          "Address.from_script(output_script, network)", why="the funding address made for Network.Bitcoin: bitcoind "
          "on regtest refuses it; the hint said only to read the traceback"),
    wrong(EX, "unsigned_transaction", compose({FUND: unsigned}), "sign_raw_transaction_with_wallet",
          why="hands over the funded but unsigned transaction"),
    wrong(EX, "never_handed_over", compose({FUND: built_not_handed}), "never funded",
          "funding_transaction_generated", why="builds the transaction and forgets to hand it over"),
    wrong(EX, "hands_over_twice", compose({FUND: hands_over_twice}), "ChannelUnavailable", "already handed",
          "once", why="funding_transaction_generated twice with the same ids and transaction: LDK answers the second "
          "ChannelUnavailable, as a funding transaction was already provided; the hint said the ids were wrong"),
    wrong(EX, "names_the_first_peer_for_every_channel", Fresh(names_the_first_peer_for_every_channel),
          "ChannelUnavailable", "no channel awaiting funding under those ids", "counterparty_node_id",
          why="the second channel's temporary_channel_id with the first channel's peer: LDK answers "
          "ChannelUnavailable, the first channel funded and this one's hand-over failed, neither of them a hand-over "
          "of this channel (a hint counting either as one would say 'already handed')"),
    wrong(EX, "swapped_arguments", compose({FUND: swapped}), "ChannelUnavailable", "temporary_channel_id",
          why="counterparty_node_id and temporary_channel_id swapped"),
    wrong(EX, "once_per_user_channel_id", Fresh(lambda: compose({FUND: once_per_peer_arm("user_channel_id")})),
          "never funded", why="guards against funding twice by the event's user_channel_id: it passed, every channel "
          "of the story having an id of its own (ldk-sample opens every channel with 0)"),
    wrong(EX, "once_per_peer", Fresh(lambda: compose({FUND: once_per_peer_arm()})), "never funded",
          "each FundingGenerationReady is a channel of its own",
          why="a 'never fund twice' guard keyed by the peer: a second channel with one peer was never funded (it "
              "passed: every channel of the story had a peer of its own)"),
    wrong(EX, "first_channel_only", Fresh(lambda: compose({FUND: first_channel_only_arm()})), "never funded",
          "funded another channel, and did nothing for this one",
          why="funds one channel, ignores the others (the hint said how to build a transaction)"),
    wrong(EX, "dust_output_of_its_own", compose({FUND: dust_marker}), "dust limit", "294 sats",
          "one output, the channel's",
          why="a 100-sat output to its own wallet beside the channel's: bitcoind relays no transaction with dust, so "
              "the channel never confirms (it passed: the simulated chain relays dust)"),
    wrong(EX, "regtest_address", compose({FUND: regtest_address}), "Invalid Bitcoin address",
          "Address.from_script(output_script, network)",
          why="Address.from_script(output_script, Network.Regtest), not the network given: every story ran on "
              "regtest, so it passed (now the vanishing peer's story runs on signet)"),
]
