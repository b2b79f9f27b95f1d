"""The kit's reference ``handle_ldk_events``: ldk-sample's handler (LDK 0.1), in Python.

``handle_ldk_events`` is what the workshop's learner ends up writing: ldk-sample's
behaviour plus the workshop's policy of accepting only channels over 5,000,000 sats.
``ldk_sample_handle_ldk_events`` accepts every channel, as ldk-sample does; the world's
stub peers run it. Both print nothing: they log to the node's logger, whose lines a
notebook can show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .bitcoin import Address, Transaction
from .errors import APIError
from .events import Event, PaymentFailureReason, ReplayEvent
from .payment_storage import INBOUND_PAYMENTS_FNAME, OUTBOUND_PAYMENTS_FNAME, HTLCStatus, PaymentInfo
from .policy import MIN_FUNDING_SATOSHIS_EXCLUSIVE, TRUSTED_ZERO_CONF_PEERS

_spawned: set[asyncio.Task[None]] = set()  # keep spawned tasks alive until they finish


def _spawn(coro: Any) -> None:
    """``tokio::spawn``: run ``coro`` alongside the handler, on the running event loop."""
    task = asyncio.get_running_loop().create_task(coro)
    _spawned.add(task)
    task.add_done_callback(_spawned.discard)


def _user_channel_id(keys_manager: Any) -> int:
    """ldk-sample: the first 16 random bytes, read as a big-endian u128."""
    return int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")


def _persist(fs_store: Any, key: str, storage: Any) -> ReplayEvent | None:
    """Persist before returning, as LDK asks; if the disk fails, ask for the event again."""
    try:
        fs_store.write("", "", key, storage.encode())
    except OSError:
        return ReplayEvent()
    return None


def _make_handler(accept: Callable[[Any], bool]) -> Callable[..., Any]:
    async def handle_ldk_events(
        channel_manager: Any, bitcoind_client: Any, network_graph: Any, keys_manager: Any,
        bump_tx_event_handler: Any, peer_manager: Any, inbound_payments: Any, outbound_payments: Any,
        fs_store: Any, output_sweeper: Any, network: Any, event: Event,
    ) -> ReplayEvent | None:
        log = channel_manager.logger.info
        match event:
            case Event.FundingGenerationReady(
                temporary_channel_id=tcid, counterparty_node_id=peer, channel_value_satoshis=sats, output_script=script
            ):
                address = Address.from_script(script, network)
                raw_tx = bitcoind_client.create_raw_transaction([{str(address): sats / 100_000_000}])
                funded_tx = bitcoind_client.fund_raw_transaction(raw_tx)
                signed_tx = bitcoind_client.sign_raw_transaction_with_wallet(funded_tx.hex)
                assert signed_tx.complete
                final_tx = Transaction(bytes.fromhex(signed_tx.hex))
                try:
                    channel_manager.funding_transaction_generated(tcid, peer, final_tx)
                except Exception as e:
                    log("ldk_sample", f"ERROR: Channel went away before we could fund it: {e}")

            case Event.OpenChannelRequest(temporary_channel_id=tcid, counterparty_node_id=peer, channel_type=kind):
                # ldk-sample logs a refused accept and goes on: the request may be gone (the peer
                # disconnected), and raising would only hand the same stale request over again.
                try:
                    if kind.requires_zero_conf() and peer in TRUSTED_ZERO_CONF_PEERS:
                        channel_manager.accept_inbound_channel_from_trusted_peer_0conf(
                            tcid, peer, _user_channel_id(keys_manager)
                        )
                        log("ldk_sample", f"EVENT: Accepted zero-conf channel ({tcid}) from trusted peer {peer}")
                    elif accept(event) and not kind.requires_zero_conf():
                        channel_manager.accept_inbound_channel(tcid, peer, _user_channel_id(keys_manager))
                        log("ldk_sample", f"EVENT: Accepted inbound channel ({tcid}) from {peer}")
                    else:
                        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "Channel request refused")
                        log("ldk_sample", f"EVENT: Rejected inbound channel ({tcid}) from {peer}")
                except APIError as e:
                    log("ldk_sample", f"EVENT: Failed to answer inbound channel ({tcid}) from {peer}: {e!r}")

            case Event.PaymentClaimable(purpose=purpose, payment_hash=payment_hash, amount_msat=amount):
                log("ldk_sample", f"EVENT: received payment from payment hash {payment_hash} of {amount} millisatoshis")
                with inbound_payments.lock() as payments:
                    already = payments.get(payment_hash)
                if already is not None and already.status is HTLCStatus.Succeeded:
                    channel_manager.fail_htlc_backwards(payment_hash)  # paid twice: refuse the second
                elif (preimage := purpose.preimage()) is not None:
                    channel_manager.claim_funds(preimage)
                else:
                    channel_manager.fail_htlc_backwards(payment_hash)

            case Event.PaymentClaimed(payment_hash=payment_hash, purpose=purpose, amount_msat=amount):
                log("ldk_sample", f"EVENT: claimed payment from payment hash {payment_hash} of {amount} millisatoshis")
                secret = getattr(purpose, "payment_secret", None)
                with inbound_payments.lock() as payments:
                    info = payments.get(payment_hash)
                    if info is None:
                        payments[payment_hash] = PaymentInfo(purpose.preimage(), secret, HTLCStatus.Succeeded, amount)
                    else:
                        info.status, info.preimage, info.secret = HTLCStatus.Succeeded, purpose.preimage(), secret
                return _persist(fs_store, INBOUND_PAYMENTS_FNAME, inbound_payments)

            case Event.PaymentSent(payment_id=payment_id, payment_preimage=preimage):
                with outbound_payments.lock() as payments:
                    info = payments.get(payment_id)
                    if info is not None:
                        info.preimage, info.status = preimage, HTLCStatus.Succeeded
                return _persist(fs_store, OUTBOUND_PAYMENTS_FNAME, outbound_payments)

            case Event.PaymentFailed(payment_id=payment_id, reason=reason):
                reason = reason or PaymentFailureReason.RetriesExhausted  # None only in old data
                log("ldk_sample", f"EVENT: Failed to send payment {payment_id}: {reason}")
                with outbound_payments.lock() as payments:
                    info = payments.get(payment_id)
                    if info is not None and info.status is not HTLCStatus.Succeeded:
                        info.status = HTLCStatus.Failed
                return _persist(fs_store, OUTBOUND_PAYMENTS_FNAME, outbound_payments)

            case Event.PendingHTLCsForwardable(time_forwardable=time_forwardable):
                # Wait a random time between time_forwardable and five times it, for privacy,
                # without holding up the handler: ldk-sample spawns a task for this.
                fraction = int.from_bytes(keys_manager.get_secure_random_bytes()[:4], "big") / 2**32
                delay = time_forwardable.total_seconds() * (1 + 4 * fraction)

                async def forward_later() -> None:
                    await asyncio.sleep(delay)
                    channel_manager.process_pending_htlc_forwards()

                _spawn(forward_later())

            case Event.SpendableOutputs(outputs=outputs, channel_id=channel_id):
                output_sweeper.track_spendable_outputs(list(outputs), channel_id, False, None)

            case Event.BumpTransaction(bump_event):
                bump_tx_event_handler.handle_event(bump_event)

            case Event.PaymentForwarded(total_fee_earned_msat=fee, outbound_amount_forwarded_msat=amount):
                log("ldk_sample", f"EVENT: Forwarded payment for {amount} msat, earning {fee} msat")

            case Event.ChannelPending(channel_id=channel_id, counterparty_node_id=peer):
                log("ldk_sample", f"EVENT: Channel {channel_id} with peer {peer} is pending awaiting funding lock-in!")

            case Event.ChannelReady(channel_id=channel_id, counterparty_node_id=peer):
                log("ldk_sample", f"EVENT: Channel {channel_id} with peer {peer} is ready to be used!")

            case Event.ChannelClosed(channel_id=channel_id, counterparty_node_id=peer, reason=reason):
                log("ldk_sample", f"EVENT: Channel {channel_id} with counterparty {peer} closed due to: {reason}")

            case Event.ConnectionNeeded(node_id=node_id, addresses=addresses):
                # ldk-sample connects in a task (connecting takes time), trying each address until one
                # answers; in the simulation a node is reached by its id.
                async def connect() -> None:
                    if addresses and peer_manager.peer_by_node_id(node_id) is None:
                        peer_manager.connect_peer(node_id)

                _spawn(connect())

            case _:
                # FundingTxBroadcastSafe, PaymentPathSuccessful, PaymentPathFailed, ProbeSuccessful,
                # ProbeFailed, HTLCHandlingFailed, HTLCIntercepted, DiscardFunding, InvoiceReceived and
                # the onion-message events need nothing here: LDK's background processor has already
                # scored the payment and probe events.
                pass

    return handle_ldk_events


#: The workshop's reference solution: ldk-sample, accepting only channels over 5,000,000 sats.
handle_ldk_events = _make_handler(lambda request: request.funding_satoshis > MIN_FUNDING_SATOSHIS_EXCLUSIVE)
handle_ldk_events.__name__ = handle_ldk_events.__qualname__ = "handle_ldk_events"

#: ldk-sample's own handler, which accepts every channel: what the world's peers run.
ldk_sample_handle_ldk_events = _make_handler(lambda request: True)
ldk_sample_handle_ldk_events.__name__ = ldk_sample_handle_ldk_events.__qualname__ = "ldk_sample_handle_ldk_events"
