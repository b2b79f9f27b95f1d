"""Workbook 2: ``FundingGenerationReady``. Fund the channels you open, and leave the broadcast to LDK.

Rules, judged from the transactions your handler built and the chain:
- one output of exactly ``channel_value_satoshis`` to ``output_script`` (bitcoind counts in BTC), every other
  output your wallet's (or another channel's, funded by the same batch: ``batch_funding_transaction_generated``)
  and none of them dust, a fee bitcoind would relay (at least its ``minrelaytxfee``,
  1 sat/vB, at most its ``maxfeerate``, 10,000 sat/vB), and every input signed for this very transaction
  (as bitcoind checks);
- handed to ``funding_transaction_generated`` for the event's channel and peer;
- never broadcast by your own code, by any method: LDK broadcasts it once the peer has signed;
- every channel you open is pending, then ready after six blocks;
- a funding transaction LDK says to discard (``DiscardFunding``: the peer vanished before signing) is never
  broadcast;
- nor is one LDK refused because the channel went away before you handed it over (``funding_transaction_generated``
  raises ``APIError.ChannelUnavailable``): ldk-sample checks for the error and says so.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any

from ..bitcoin import Network, ScriptBuf
from ..bitcoind_client import BitcoindError
from ..errors import APIError
from ..events import Event
from ..events.queue import EventHandlerError
from ..scenarios import Stage
from ..sign import min_non_dust_value, p2wpkh_script_code, segwit_sighashes
from .common import LARGEST_NON_WUMBO_SATS, CheckResult, Played, Session, count, error_hint, fail
from .recorder import Call

#: The channels the story opens. 6,000,000 sats times 1e-8 is the float 0.060000000000000005, an amount bitcoind
#: refuses (more than 8 decimal places): only a division, channel_value_satoshis / 100_000_000, gives 0.06.
SIZES = (100_000, 6_000_000, LARGEST_NON_WUMBO_SATS)
#: A second channel with the first peer: a node may have several with one peer, and each is funded.
SECOND_WITH_ONE_PEER_SATS = 2_000_000


def story(stage: Stage) -> None:
    peers = [stage.peer(f"peer{i}") for i in range(len(SIZES))]
    channels = [*zip(peers, SIZES, strict=True), (peers[0], SECOND_WITH_ONE_PEER_SATS)]
    wallet = stage.me.bitcoind_client
    # A coin per channel (bitcoind does not lock coins between fundings), each bigger than any channel: what
    # exactly they hold, and how deep they are buried, no verdict depends on.
    for i in range(len(channels)):
        stage.world.chain.fund({wallet.get_new_address().script_pubkey: 30_000_000 + i})  # pragma: no mutate
    stage.mine(1)  # pragma: no mutate  (confirmed coins, one block deep or two)
    for peer, sats in channels:  # (the two with the first peer opened with user_channel_id 0, as ldk-sample opens
        user_channel_id = 0 if peer is peers[0] else sats  # every channel: an id of yours need not be unique)
        stage.me.channel_manager.create_channel(peer.node_id, sats, 0, user_channel_id, None, None)
    stage.world.run()
    stage.mine(6)


def vanishing_peer_story(stage: Stage) -> None:
    """The peer disconnects as soon as you hand over the funding transaction, before it signs your refund: LDK
    closes the channel (``DisconnectedPeer``) and hands the transaction back (``DiscardFunding``)."""
    peer, cm = stage.peer("peer"), stage.me.channel_manager
    stage.world.chain.fund({stage.me.bitcoind_client.get_new_address().script_pubkey: 30_000_000})
    stage.mine(1)
    hand_over = cm.batch_funding_transaction_generated  # (funding_transaction_generated calls it, as in LDK)

    @functools.wraps(hand_over)
    def then_the_peer_vanishes(*args: Any, **kwargs: Any) -> None:
        try:
            hand_over(*args, **kwargs)
        finally:
            stage.world.disconnect(stage.me, peer)

    cm.batch_funding_transaction_generated = then_the_peer_vanishes
    try:
        cm.create_channel(peer.node_id, 1_000_000, 0, 1, None, None)
        stage.world.run()
        stage.mine(6)
    finally:
        del cm.batch_funding_transaction_generated


def gone_before_funding_story(stage: Stage) -> None:
    """The peer disconnects as soon as it has accepted, before you hand the funding transaction over: LDK has already
    closed the channel (``DisconnectedPeer``), so ``funding_transaction_generated`` raises ``ChannelUnavailable``
    (``Err(APIError::ChannelUnavailable)`` in Rust, which ldk-sample checks with ``.is_err()``). The transaction was
    never broadcast: its coins are still your wallet's.

    A handler that lets the error out stops the node, as ``unwrap()`` would panic a Rust one. It is started again
    from its folder (LDK never persists a FundingGenerationReady: peers drop unfunded channels on disconnect), and the
    story goes on (a task or thread of yours that lets it out stops nothing: see ``_channel_gone``); the verdict is
    what reached the chain."""
    peer, world = stage.peer("peer"), stage.world
    world.chain.fund({stage.me.bitcoind_client.get_new_address().script_pubkey: 30_000_000})
    stage.mine(1)
    cm = stage.me.channel_manager
    accept = cm.handle_accept_channel

    @functools.wraps(accept)
    def then_the_peer_vanishes(*args: Any, **kwargs: Any) -> None:
        try:
            accept(*args, **kwargs)
        finally:
            world.disconnect(stage.me, peer)

    cm.handle_accept_channel = then_the_peer_vanishes  # type: ignore[method-assign]
    try:
        cm.create_channel(peer.node_id, 1_000_000, 0, 1, None, None)
        world.run()
        stage.mine(6)  # (a handler that asked for the event again first meets LDK's refusal now)
    except EventHandlerError as e:
        if not (_channel_gone(e.error) and type(e.event) is Event.FundingGenerationReady):
            raise
        stage.me = world.restart_node(stage.me)
        stage.mine(6)
    finally:
        del cm.handle_accept_channel
    stage.settle(GONE_PLAYS_ON_S)  # (what your code put off, an hour or two, happens too: the coins must stay)


#: ``asyncio.TaskGroup``'s errors come in one of these (Python 3.11 on; none before).
_GROUPS: Any = getattr(builtins, "BaseExceptionGroup", ())
#: How long (simulated seconds) the story of a channel gone before its funding plays on after it: a day.
GONE_PLAYS_ON_S = 86_400


def _channel_gone(error: BaseException) -> bool:
    """LDK's refusal of a funding hand-over for a channel that closed before it (``gone_before_funding_story``): the
    error itself, or every error of a group that carries it (``asyncio.TaskGroup``), or one raised from it or while
    handling it (``raise ... from e``, or a plain ``raise`` in the ``except``, as Rust's ``expect``)."""
    if isinstance(error, _GROUPS):
        return all(map(_channel_gone, error.exceptions))
    came_from = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return isinstance(error, APIError.ChannelUnavailable) or (came_from is not None and _channel_gone(came_from))


def judge_gone_before_funding(played: Played) -> bool:
    """Nothing paid the output of the channel that went away before it was funded; returns whether your code let
    LDK's error out (from your handler, it stopped your node, which the story restarted)."""
    event = played.events(Event.FundingGenerationReady)[0]
    chain, wallet = played.world.chain, played.me.bitcoind_client
    paid = _broadcast_by_you(played, event) or _on_chain_paying(played, {event.output_script})
    spending = [txid for txid, tx in chain.transactions.items() if any(
        (prev := chain.transactions.get(i.previous_output.txid)) is not None
        and wallet.is_mine(prev.output[i.previous_output.vout].script_pubkey) for i in tx.input)]
    if paid or spending:
        raise fail(played, event, "nothing broadcast: the channel went away before you funded it (the peer "
                   "disconnected), so LDK refused the transaction, and its coins stay in your wallet",
                   "you broadcast a transaction paying the channel's funding output" if paid else
                   f"{spending[0]!r}, a transaction spending your wallet's coins, was broadcast",
                   "funding_transaction_generated raises APIError (ChannelUnavailable) when the channel is gone: "
                   "there is no channel to fund" + (", and a transaction paying output_script would lock your coins "
                   "in a 2-of-2 with nobody behind it" if paid else ", and nothing in this story spends your coins")
                   + ". Catch the error and say so, as ldk-sample does (\"Channel went away before we could fund "
                   "it\"); never broadcast the transaction yourself, and leave the coins where they are.")
    return played.recorder.node.crashed or bool(played.let_out)


def _on_chain_paying(played: Played, scripts: set, txid: Any = None) -> list:
    """The transactions on chain that are ``txid``, or pay one of ``scripts``."""
    return [t for t, spent in played.world.chain.transactions.items()
            if t == txid or any(o.script_pubkey in scripts for o in spent.output)]


def judge_discarded(played: Played) -> int:
    """No transaction LDK said to discard was broadcast: the channel it funds will never exist."""
    discarded = played.handled(Event.DiscardFunding)
    if not discarded:
        raise fail(played, None, "ChannelClosed and DiscardFunding, once the peer vanished before signing",
                   "no DiscardFunding", "fund the channel as in the first story: funding_transaction_generated with "
                   "the signed transaction.")
    funding_scripts = {e.output_script for e in played.events(Event.FundingGenerationReady)}
    for handling in discarded:
        tx = handling.event.funding_info.transaction
        txid = tx.compute_txid()
        scripts = funding_scripts & {o.script_pubkey for o in tx.output}  # (the dead channel's 2-of-2)
        paying = _on_chain_paying(played, scripts, txid)
        if paying:
            raise fail(played, handling.event, "the discarded funding transaction never broadcast, nor its output "
                       "paid by another", f"it was broadcast: {txid!r} is on chain" if paying[0] == txid else
                       f"{paying[0]!r}, a transaction paying its funding output, is on chain",
                       "DiscardFunding means the channel closed before the peer signed your refund: LDK will never "
                       "broadcast this transaction, and neither may you, as its output would hold your coins with no "
                       "channel behind it (funding it again, or bumping its fee, pays that output too). ldk-sample "
                       "does nothing with the event: the coins were never spent, so they stay in your wallet.")
    return len(discarded)


def rules(session: Session, result: CheckResult) -> None:
    played = session.play("funding_generation_ready", story)
    judge_funding(played)
    # (on signet: a handler that names the network itself, Network.Regtest, instead of using the one it is given,
    # builds an address bitcoind refuses there, as a real node on another network would)
    discarded = judge_discarded(session.play("a peer vanishing before it signs", vanishing_peer_story,
                                             network=Network.Signet))
    stopped = judge_gone_before_funding(session.play("a peer gone before you fund its channel",
                                                     gone_before_funding_story, let_out=_channel_gone))
    ready = played.events(Event.ChannelReady)
    result.add("each FundingGenerationReady funded", f"{len(played.events(Event.FundingGenerationReady))} "
               "transactions")
    result.add("one output of the exact value to output_script", "yes")
    result.add("the broadcast left to LDK", "yes: none of your code broadcast a funding transaction")
    result.add("channels pending, then ready after six blocks", f"{len(ready)} ready")
    result.add("DiscardFunding: the transaction never broadcast", count(discarded, "transaction"))
    result.add("a channel gone before you funded it: nothing broadcast", "yes" if not stopped else
               "yes, but your code let funding_transaction_generated's APIError out (from the handler, that stops "
               "a node): catch it and say so, as ldk-sample does")


def judge_funding(played: Played) -> None:
    for event in sorted(played.events(Event.FundingGenerationReady), key=lambda e: e.channel_value_satoshis):
        where = f"{played.name} ({event.channel_value_satoshis:,} sats)"
        handling = played.recorder.handling_of(event)
        shared = _shared_one_by_one(played, event)
        if shared > 1:
            raise fail(where, event, "each channel funded by a transaction of its own, or one transaction for "
                       "several handed over once, for them all", f"you handed one transaction over for {shared} "
                       "channels, one funding_transaction_generated call each", "LDK broadcasts a transaction handed "
                       "over this way as soon as that one channel's peer signs, before the other peers have signed "
                       "the transactions that refund you. To fund several channels with one transaction, hand it "
                       "over once: channel_manager.batch_funding_transaction_generated([(temporary_channel_id, "
                       "counterparty_node_id), ...], transaction), and LDK broadcasts it only once every peer signed.")
        if _broadcast_by_you(played, event):
            raise fail(where, event, "the signed transaction handed to funding_transaction_generated, and nothing "
                       "more", "your code broadcast the funding transaction itself",
                       "LDK broadcasts the funding transaction once the peer has signed the transaction that "
                       "refunds you; broadcasting it first risks your coins if the peer vanishes.")
        calls = [c for tcid, c in _handed_over(played) if tcid == event.temporary_channel_id]
        if not calls:
            raise fail(where, event, "funding_transaction_generated(temporary_channel_id, counterparty_node_id, "
                       "transaction)", "nothing: the channel was never funded", _unfunded_hint(played, handling))
        tx = calls[0]["funding_transaction"]
        value = _pays(tx, event)
        if value != event.channel_value_satoshis:
            raise fail(where, event, f"one output of exactly {event.channel_value_satoshis:,} sats to output_script",
                       "no output to output_script" if value is None else f"{value:,} sats to output_script",
                       _unit_hint(played, handling))
        trouble = _funding_trouble(played, tx, event)
        if trouble:
            raise fail(where, event, "the channel's output, change back to your wallet, a fee bitcoind would relay "
                       "(1 to 10,000 sat/vB), and signatures bitcoind accepts", trouble,
                       "give create_raw_transaction one output, the channel's: fund_raw_transaction adds the change "
                       "only when it is worth more than its dust limit, and bitcoind relays no transaction with an "
                       "output worth less than spending it." if "dust limit" in trouble else
                       "let fund_raw_transaction add the inputs and the change output, and hand over what "
                       "sign_raw_transaction_with_wallet returns, unchanged: every output but the channel's is yours.")
        if calls[0].error is not None:
            raise fail(where, event, "funding_transaction_generated to accept the transaction",
                       f"it raised {type(calls[0].error).__name__}: {calls[0].error}",
                       "pass the event's temporary_channel_id and counterparty_node_id with the signed transaction.")
    opened = played.events(Event.FundingGenerationReady)
    ready = played.events(Event.ChannelReady)
    if len(ready) < len(opened):
        raise fail(played, None, f"{len(opened)} channels ready after six blocks",
                   f"{len(played.events(Event.ChannelPending))} pending, {len(ready)} ready",
                   "every channel you open needs its own funding transaction.")


def _broadcast_by_you(played: Played, event: Any) -> bool:
    """Whether your code broadcast a transaction funding this channel, by any means: called with your code on the
    stack, or more broadcasts of one than LDK's own, once the peer signed (ChannelPending). Handed to the event loop,
    a thread or a timer, a broadcast runs with no code of yours on the stack, but it is still one too many."""
    paying = [mine for tx, mine in played.recorder.broadcasts if _pays(tx, event) is not None]
    pending = played.events(Event.ChannelPending)
    signed = any(e.former_temporary_channel_id == event.temporary_channel_id for e in pending)
    return any(paying) or len(paying) > int(signed)


#: bitcoind's default ``maxfeerate`` (0.10 BTC/kvB): a transaction paying more is refused as an absurd fee.
MAX_FEERATE_SAT_PER_VB = 10_000


def _funding_trouble(played: Played, tx: Any, event: Any) -> str:
    """What is wrong with where the funding transaction's coins go, or ""."""
    wallet, chain = played.me.bitcoind_client, played.world.chain
    # (a batch, LDK's batch_funding_transaction_generated: the other channels it was handed over for are yours too)
    batch = {e.output_script for e in played.events(Event.FundingGenerationReady)
             for tcid, call in _handed_over(played) if tcid == e.temporary_channel_id
             and call["funding_transaction"] is tx and _pays(tx, e) == e.channel_value_satoshis}
    others = [o for o in tx.output if o.script_pubkey != event.output_script and o.script_pubkey not in batch]
    foreign = sum(o.value for o in others if not wallet.is_mine(o.script_pubkey))
    if foreign:
        return f"{foreign:,} sats go to scripts that are not your wallet's"
    for o in others:  # bitcoind's IsDust (its dustrelayfee): a spendable output worth less than spending it
        if bytes(o.script_pubkey)[:1] != b"\x6a" and o.value < min_non_dust_value(o.script_pubkey):
            return (f"an output of {o.value:,} sats, below the dust limit ({min_non_dust_value(o.script_pubkey):,} "
                    "sats): bitcoind does not relay a transaction with dust")
    spent = [chain.get_transaction(i.previous_output.txid) for i in tx.input]
    if None in spent:
        return ""  # (inputs the chain does not know: the hand-over fails, and says so)
    prevouts = [t.output[i.previous_output.vout] for t, i in zip(spent, tx.input, strict=True)]
    fee = sum(o.value for o in prevouts) - sum(o.value for o in tx.output)
    rate = fee / tx.vsize()
    if rate > MAX_FEERATE_SAT_PER_VB:
        return f"a fee of {fee:,} sats, {rate:,.0f} sat/vB"
    if rate < MIN_RELAY_SAT_PER_VB:
        return f"a fee of {fee:,} sats, {rate:,.2f} sat/vB: less than bitcoind relays (its minrelaytxfee, 1 sat/vB)"
    unsigned = _badly_signed(tx, prevouts)
    if unsigned is None:
        return ""
    if not tx.input[unsigned].witness:
        return f"input {unsigned} is not signed: bitcoind refuses it"
    return f"the signature of input {unsigned} does not sign this transaction (was it changed after signing?)"


#: bitcoind's default ``minrelaytxfee`` (0.00001 BTC/kvB): a transaction paying less is not relayed, nor mined.
MIN_RELAY_SAT_PER_VB = 1


def _badly_signed(tx: Any, prevouts: list[Any]) -> int | None:
    """The first input spending a P2WPKH output whose witness is not a valid signature of ``tx``, as bitcoind checks
    it (the simulated chain runs no scripts); None if every such input is signed."""
    from coincurve import PublicKey

    for index, (txin, prevout) in enumerate(zip(tx.input, prevouts, strict=True)):
        witness = list(txin.witness)
        if not prevout.script_pubkey.is_p2wpkh():
            continue  # (not a wallet key's: nothing to check here)
        if len(witness) != 2 or ScriptBuf.new_p2wpkh(witness[1]) != prevout.script_pubkey or witness[0][-1:] != b"\x01":
            return index
        digest = segwit_sighashes(tx, [(index, p2wpkh_script_code(witness[1]), prevout.value)])[0]
        try:
            if not PublicKey(witness[1]).verify(witness[0][:-1], digest, hasher=None):
                return index
        except (ValueError, TypeError):  # not a key, or not a DER signature
            return index
    return None


def _shared_one_by_one(played: Played, event: Event.FundingGenerationReady) -> int:
    """How many channels the transaction handed over for this one by ``funding_transaction_generated`` was handed over
    for that way (1: its own)."""
    singles = [(c.arguments.get("temporary_channel_id"), txid(c.arguments.get("funding_transaction")))
               for c in played.recorder.calls_to("channel_manager.funding_transaction_generated") if c.error is None]
    mine = next((tx for tcid, tx in singles if tcid == event.temporary_channel_id and tx is not None), None)
    return len({tcid for tcid, tx in singles if tx == mine}) if mine is not None else 0


def txid(tx: Any) -> Any:
    """A transaction's id, or None for what is no transaction."""
    compute = getattr(tx, "compute_txid", None)
    return compute() if callable(compute) else None


def _handed_over(played: Played) -> list[tuple[Any, Call]]:
    """Each channel your code handed a funding transaction to, with the call: ``funding_transaction_generated``, or
    ``batch_funding_transaction_generated`` for each channel it lists (LDK's funding_transaction_generated is a batch
    of one)."""
    handed: list[tuple[Any, Call]] = []
    for call in played.recorder.calls:
        if call.name == "channel_manager.funding_transaction_generated":
            handed.append((call.arguments.get("temporary_channel_id"), call))
        elif call.name == "channel_manager.batch_funding_transaction_generated":
            listed = call.arguments.get("temporary_channels")
            handed += [(entry[0] if isinstance(entry, tuple | list) and entry else None, call)
                       for entry in (listed if isinstance(listed, tuple | list) else ())]
    return handed


def _pays(tx: Any, event: Event.FundingGenerationReady) -> int | None:
    outputs = [o.value for o in getattr(tx, "output", ()) if o.script_pubkey == event.output_script]
    return outputs[0] if len(outputs) == 1 else None


def _unfunded_hint(played: Played, handling: Any) -> str:
    """Why a channel was never funded: a bitcoind call that raised (and your code caught), else how to build it."""
    for name in ("create_raw_transaction", "fund_raw_transaction", "sign_raw_transaction_with_wallet"):
        for call in played.recorder.calls_for(handling, f"bitcoind_client.{name}"):
            if call.error is not None:
                said = f"bitcoind_client.{name} raised {type(call.error).__name__}: {call.error}; your code went on. "
                hint = (_unit_hint(played, handling) if name == "create_raw_transaction" else
                        "the channel is funded only once funding_transaction_generated has the signed transaction.")
                return said + hint[:1].upper() + hint[1:]
    others = {tcid for tcid, c in _handed_over(played) if c.error is None}
    if others and not played.recorder.calls_for(handling):
        return ("your handler funded another channel, and did nothing for this one: each FundingGenerationReady is a "
                "channel of its own, to fund with a transaction of its own, whatever was funded before.")
    return ("build the transaction with bitcoind_client (create_raw_transaction, fund_raw_transaction, "
            "sign_raw_transaction_with_wallet), to the address Address.from_script(output_script, network).")


def _unit_hint(played: Played, handling: Any) -> str:
    for call in played.recorder.calls_for(handling, "bitcoind_client.create_raw_transaction"):
        amounts = [v for output in call["outputs"] for v in output.values()]
        sats = handling.event.channel_value_satoshis
        if any(a == sats for a in amounts):
            return "bitcoind counts in BTC, not sats: pass channel_value_satoshis / 100_000_000."
        if any(a == sats / 100_000_000 / 100_000_000 for a in amounts):
            return "you divided twice: channel_value_satoshis / 100_000_000 is already in BTC."
        if any(isinstance(a, float) and a != sats / 100_000_000 and round(a * 100_000_000) == sats for a in amounts):
            return (f"as a float, {sats:,} × 1e-8 is {sats * 1e-8!r}, not {sats / 100_000_000!r}: bitcoind refuses "
                    "an amount with more than 8 decimal places. Divide: channel_value_satoshis / 100_000_000.")
    return "one output, to Address.from_script(output_script, network), of channel_value_satoshis / 100_000_000 BTC."


@error_hint(lambda e, event: isinstance(event, Event.FundingGenerationReady) and isinstance(e, BitcoindError)
             and ("Insufficient funds" in str(e) or "Amount out of range" in str(e)))
def _sats_as_btc(error: BaseException, event: Event, played: Played | None) -> str:
    return ("bitcoind counts in BTC, not sats: create_raw_transaction wants channel_value_satoshis / 100_000_000. "
            f"{event.channel_value_satoshis:,} BTC is more than your wallet can pay.")


@error_hint(lambda e, event: isinstance(event, Event.FundingGenerationReady)
            and ("No output matched" in str(e) or isinstance(e, BitcoindError) and "Invalid amount" in str(e)))
def _wrong_output(error: BaseException, event: Event, played: Played | None) -> str:
    if played is not None:
        return _unit_hint(played, played.recorder.handling_of(event))
    return "one output, to Address.from_script(output_script, network), of channel_value_satoshis / 100_000_000 BTC."


@error_hint(lambda e, event: isinstance(event, Event.FundingGenerationReady) and isinstance(e, BitcoindError)
            and "Invalid Bitcoin address" in str(e))
def _other_network(error: BaseException, event: Event, played: Played | None) -> str:
    text = str(error).partition("Invalid Bitcoin address: ")[2].lower()
    if text.startswith(("bc1", "tb1", "bcrt1")):
        network = played.me.bitcoind_client.network.name if played is not None else "its own"
        return (f"bitcoind takes addresses of its own network ({network}), and this one is of another: make it "
                "with the network your handler is given, Address.from_script(output_script, network).")
    return ("bitcoind takes an address, as text: str(Address.from_script(output_script, network)), with the network "
            "your handler is given.")


@error_hint(lambda e, event: isinstance(event, Event.FundingGenerationReady) and "fully signed" in str(e))
def _unsigned(error: BaseException, event: Event, played: Played | None) -> str:
    return ("LDK takes only a signed transaction: sign the funded one with "
            "bitcoind_client.sign_raw_transaction_with_wallet(funded_tx.hex) and hand over Transaction(bytes.fromhex("
            "signed_tx.hex)).")


@error_hint(lambda e, event: isinstance(event, Event.FundingGenerationReady)
            and type(e).__name__ == "ChannelUnavailable")
def _no_such_channel(error: BaseException, event: Event, played: Played | None) -> str:
    handed = [] if played is None else [
        c for tcid, c in _handed_over(played) if c.error is None and tcid == event.temporary_channel_id]
    if handed:
        return ("you had already handed a funding transaction over for this channel, and LDK takes one: once it has "
                "it, the channel no longer awaits funding (LDK answers ChannelUnavailable). Hand it over once.")
    return ("LDK has no channel awaiting funding under those ids: the arguments are the event's temporary_channel_id, "
            "then its counterparty_node_id, then the transaction.")
