"""``ChannelManager::batch_funding_transaction_generated`` (channelmanager.rs, LDK 0.1.12): one transaction funding
several channels, its errors (``batch_funding_transaction_generated_intern``, ``funding_transaction_generated_intern``)
and the batch's fate: broadcast once every peer has signed, every channel closed on an error or when one closes."""

from __future__ import annotations

import pytest

from ldkkit.bitcoin import Address, Transaction
from ldkkit.errors import APIError
from ldkkit.events import ClosureReason, Event, ReplayEvent
from ldkkit.scenarios import Stage
from ldkkit.sim.world import World
from ldkkit.types import ChannelId


def quiet_handler(*args):
    """Handles nothing: events stay for the test to inspect."""
    return ReplayEvent()


@pytest.fixture
def stage():
    world = World(seed=7)
    stage = Stage(world, world.add_node("learner", handler=quiet_handler))
    yield stage
    world.close()


def asked_to_fund(stage, names=("bob", "carol"), sats=(100_000, 200_000)):
    """We open a channel to each peer; returns (the peers, their FundingGenerationReady events, in order)."""
    peers = [stage.peer(name) for name in names]
    for peer, value in zip(peers, sats, strict=True):
        stage.me.channel_manager.create_channel(peer.node_id, value, 0, 1, None, None)
    stage.world.run()
    ready = [e for e in stage.me.channel_manager.pending_events() if isinstance(e, Event.FundingGenerationReady)]
    return peers, sorted(ready, key=lambda e: e.channel_value_satoshis)


def one_tx_for(stage, events, extra=()):
    """A signed transaction paying each event's output (and ``extra`` (script, sats) outputs)."""
    client = stage.me.bitcoind_client
    outputs = [{str(Address.from_script(e.output_script, stage.me.network)): e.channel_value_satoshis / 100_000_000}
               for e in events]
    outputs += [{str(Address.from_script(s, stage.me.network)): v / 100_000_000} for s, v in extra]
    funded = client.fund_raw_transaction(client.create_raw_transaction(outputs))
    return Transaction(bytes.fromhex(client.sign_raw_transaction_with_wallet(funded.hex).hex))


def events_of(stage, kind):
    return [e for e in stage.me.channel_manager.pending_events() if isinstance(e, kind)]


def test_a_batch_of_one_is_funding_transaction_generated(stage):
    """LDK's ``funding_transaction_generated`` is ``batch_funding_transaction_generated`` with one channel: funded,
    broadcast once the peer signed, ChannelPending."""
    (bob,), (ready,) = asked_to_fund(stage, ("bob",), (100_000,))
    tx = one_tx_for(stage, [ready])
    stage.me.channel_manager.batch_funding_transaction_generated([(ready.temporary_channel_id, bob.node_id)], tx)
    stage.settle(1)
    assert [e.former_temporary_channel_id for e in events_of(stage, Event.ChannelPending)] == [
        ready.temporary_channel_id]
    assert stage.world.chain.confirmations(tx.compute_txid()) == 0  # broadcast: in the mempool


def test_a_batch_waits_for_every_peer_and_closes_whole(stage):
    """``funding_batch_states``: bob signed, carol not yet: nothing broadcast, no ChannelPending. Then carol
    vanishes: her channel closes (DisconnectedPeer) and bob's with it (``FundingBatchClosure``), both discarded."""
    (bob, carol), (to_bob, to_carol) = asked_to_fund(stage)
    tx = one_tx_for(stage, [to_bob, to_carol])
    carol.channel_manager.handle_funding_created = lambda *args: None  # (carol never signs)
    cm = stage.me.channel_manager
    cm.batch_funding_transaction_generated([(to_bob.temporary_channel_id, bob.node_id),
                                            (to_carol.temporary_channel_id, carol.node_id)], tx)
    stage.settle(1)
    assert stage.world.chain.confirmations(tx.compute_txid()) is None and events_of(stage, Event.ChannelPending) == []
    assert cm.channels[ChannelId.v1_from_funding_outpoint(tx.compute_txid(), 0)].is_funded() or cm.channels[
        ChannelId.v1_from_funding_outpoint(tx.compute_txid(), 1)].is_funded()  # bob's, signed
    stage.world.disconnect(stage.me, carol)
    stage.settle(1)
    assert sorted((e.counterparty_node_id, e.reason) for e in events_of(stage, Event.ChannelClosed)) == sorted([
        (carol.node_id, ClosureReason.DisconnectedPeer()), (bob.node_id, ClosureReason.FundingBatchClosure())])
    assert [e.funding_info.transaction for e in events_of(stage, Event.DiscardFunding)] == [tx, tx]
    assert cm.funding_batches == {}


def test_a_batch_of_two_goes_out_whole(stage):
    (bob, carol), (to_bob, to_carol) = asked_to_fund(stage)
    tx = one_tx_for(stage, [to_bob, to_carol])
    broadcasts = []
    real = stage.me.channel_manager.tx_broadcaster.broadcast_transactions
    stage.me.channel_manager.tx_broadcaster.broadcast_transactions = lambda txs: (broadcasts.append(txs), real(txs))
    stage.me.channel_manager.batch_funding_transaction_generated(
        [(to_bob.temporary_channel_id, bob.node_id), (to_carol.temporary_channel_id, carol.node_id)], tx)
    stage.settle(1)
    assert broadcasts == [[tx]]
    assert [e.former_temporary_channel_id for e in events_of(stage, Event.ChannelPending)] == [
        to_bob.temporary_channel_id, to_carol.temporary_channel_id]
    assert stage.me.channel_manager.funding_batches == {}


def test_an_empty_batch_does_nothing(stage):
    """With no channel listed, LDK only checks the transaction: nothing is funded, nothing raised."""
    (bob,), (ready,) = asked_to_fund(stage, ("bob",), (100_000,))
    before = stage.me.channel_manager.pending_events()
    stage.me.channel_manager.batch_funding_transaction_generated([], one_tx_for(stage, [ready]))
    assert stage.me.channel_manager.pending_events() == before


def test_a_channel_listed_twice_is_not_found_the_second_time_and_the_batch_closes(stage):
    """The first hand-over moved the channel on (LDK keys it by its real id): the second finds no channel under the
    temporary id (``ChannelUnavailable``), and the batch closes: ProcessingError naming that error, DiscardFunding."""
    (bob,), (ready,) = asked_to_fund(stage, ("bob",), (100_000,))
    tcid, tx = ready.temporary_channel_id, one_tx_for(stage, [ready])
    cm = stage.me.channel_manager
    not_found = f"Channel with id {tcid} not found for the passed counterparty node_id {bob.node_id}"
    with pytest.raises(APIError.ChannelUnavailable, match=not_found):
        cm.batch_funding_transaction_generated([(tcid, bob.node_id), (tcid, bob.node_id)], tx)
    (closed,) = events_of(stage, Event.ChannelClosed)
    assert closed.reason == ClosureReason.ProcessingError(
        f"Error in transaction funding: Channel unavailable: {not_found}")
    assert closed.channel_id == ChannelId.v1_from_funding_outpoint(tx.compute_txid(), closed.channel_funding_txo.vout)
    assert [e.funding_info.transaction for e in events_of(stage, Event.DiscardFunding)] == [tx]


def test_an_output_missing_for_one_channel_closes_the_whole_batch(stage):
    """The channel whose output is missing closes with that error; the one already handed over, with ``Error in
    transaction funding: ...``; the error is LDK's ``APIMisuseError``."""
    (bob, carol), (to_bob, to_carol) = asked_to_fund(stage)
    tx = one_tx_for(stage, [to_bob])
    cm = stage.me.channel_manager
    missing = "No output matched the script_pubkey and value in the FundingGenerationReady event"
    with pytest.raises(APIError.APIMisuseError, match=missing):
        cm.batch_funding_transaction_generated([(to_bob.temporary_channel_id, bob.node_id),
                                                (to_carol.temporary_channel_id, carol.node_id)], tx)
    assert {e.counterparty_node_id: e.reason for e in events_of(stage, Event.ChannelClosed)} == {
        carol.node_id: ClosureReason.ProcessingError(missing),
        bob.node_id: ClosureReason.ProcessingError(f"Error in transaction funding: Misuse error: {missing}")}
    assert cm.funding_batches == {} and not any(c.phase.name != "Closed" for c in cm.channels.values())


def test_an_unknown_channel_in_a_batch_closes_the_others_listed(stage):
    """A channel not found (``ChannelUnavailable``) stops the batch: the channels listed are closed, handed over
    already or not (LDK removes each still under its temporary id)."""
    (bob, carol), (to_bob, to_carol) = asked_to_fund(stage)
    tx = one_tx_for(stage, [to_bob, to_carol])
    unknown = ChannelId(b"\x07" * 32)
    with pytest.raises(APIError.ChannelUnavailable, match=f"Channel with id {unknown} not found"):
        stage.me.channel_manager.batch_funding_transaction_generated(
            [(to_bob.temporary_channel_id, bob.node_id), (unknown, bob.node_id),
             (to_carol.temporary_channel_id, carol.node_id)], tx)
    assert sorted(e.counterparty_node_id for e in events_of(stage, Event.ChannelClosed)) == sorted(
        [bob.node_id, carol.node_id])


def test_funding_an_inbound_channel_closes_it_as_ldks_batch_does(stage):
    """``funding_transaction_generated_intern`` refuses a channel we accepted (not an unfunded, outbound V1 one) and
    puts it back; the batch's error path then removes it by its temporary id and closes it (``ProcessingError``),
    telling the peer "Failed to fund channel"."""
    bob = stage.peer("bob")
    bob.channel_manager.create_channel(stage.me.node_id, 6_000_000, 0, 1, None, None)
    stage.world.run()
    (request,) = events_of(stage, Event.OpenChannelRequest)
    cm, tcid = stage.me.channel_manager, request.temporary_channel_id
    cm.accept_inbound_channel(tcid, bob.node_id, 1)
    refused = (f"Channel with id {tcid} for the passed counterparty node_id {bob.node_id} is not an unfunded, "
               "outbound V1 channel")
    with pytest.raises(APIError.APIMisuseError, match=refused):
        cm.funding_transaction_generated(tcid, bob.node_id, Transaction.new(2, 0, [], []))
    assert [e.reason for e in events_of(stage, Event.ChannelClosed)] == [
        ClosureReason.ProcessingError(f"Error in transaction funding: Misuse error: {refused}")]
    stage.settle(1)
    assert [e.reason for e in bob.events_seen if isinstance(e, Event.ChannelClosed)] == [
        ClosureReason.CounterpartyForceClosed("Failed to fund channel")]
