"""Hints for errors a handler raises: each names the concept behind the error, not the fix's code.

A hint is registered with :func:`~.common.error_hint` and a test of the error and the event;
the first that matches words the failure. Workbook-specific hints live beside their rules
(``funding_generation_ready.py``); these apply to any workbook.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from ..events import Event
from ..events.queue import ReturnedUnawaited
from .common import BlockingCall, Played, causes, error_hint


@error_hint(lambda e, event: isinstance(e, BlockingCall) and "called the node" in str(e))
def _polled(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("your handler kept calling the node, as if waiting for something to change: nothing changes while "
            "it runs. Return, and LDK gives you another event when something happens.")


@error_hint(lambda e, event: isinstance(e, BlockingCall))
def _slept(error: BaseException, event: Event, played: Optional[Played]) -> str:
    call = getattr(error, "call", "") or "time.sleep()"
    if call in ("Executor.__exit__()", "ThreadPoolExecutor.shutdown()"):  # (the end of `with ThreadPoolExecutor()`)
        return (f"{call} waits for the pool's threads, and stops the whole node meanwhile: no other event is handled "
                "(the check stopped it). Make the pool once, outside your handler, and await what you hand it: "
                "await asyncio.get_running_loop().run_in_executor(pool, fn, ...).")
    said = (f"{call} stops the whole node: no other event is handled, no message answered, while it waits "
            "(the check stopped it).")
    if isinstance(event, Event.SpendableOutputs):  # (a task would hand them over after LDK forgot the event)
        return (f"{said} The outputs must be in the OutputSweeper's care when your handler returns: call "
                "output_sweeper.track_spendable_outputs(...) in the handler itself (it returns at once), with no "
                "thread or task to wait for.")
    if isinstance(event, (Event.PaymentClaimed, Event.PaymentSent, Event.PaymentFailed)):  # (written before returning)
        return (f"{said} The record must be on disk when your handler returns: write it in the handler itself, or "
                "await the work you hand out (await asyncio.to_thread(...), await loop.run_in_executor(...)) instead "
                "of blocking on it.")
    return (f"{said} To wait, spawn a task that awaits asyncio.sleep(...) (or asyncio's own Event or Queue): "
            "asyncio.get_running_loop().create_task(...).")


def _refused_name(error: BaseException) -> bool:
    """The store refused the namespaces or key themselves (LDK's ``check_namespace_key_validity``): no disk failed."""
    from ..persist import KVStoreError, NotFound

    return any(isinstance(x, KVStoreError) and not isinstance(x, NotFound) for x in causes(error))


@error_hint(lambda e, event: _refused_name(e))
def _invalid_key(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("no disk failed: the store refused the namespaces or the key themselves, as LDK's FilesystemStore does "
            "(check_namespace_key_validity), and it refuses them every time, so ReplayEvent() would only hand the "
            "event over again and again. Fix the name: ldk-sample writes its records with fs_store.write(\"\", \"\", "
            "\"inbound_payments\", ...) and \"outbound_payments\".")


@error_hint(lambda e, event: any(type(x).__name__ == "NotFound" for x in causes(e)))
def _never_written(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("no disk failed: nothing was ever written under that key, and reading a key never written raises "
            "NotFound (LDK's FilesystemStore: io::ErrorKind::NotFound), every time, so ReplayEvent() would not make "
            "it appear. Your records are in memory (inbound_payments, outbound_payments): update them there, then "
            "write them; ldk-sample reads them from disk only when it starts.")


@error_hint(lambda e, event: any(isinstance(x, OSError) for x in causes(e)))
def _unsaved(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("writing to disk failed, and raising stops the node's event processing. When you cannot persist what "
            "an event changed, return ReplayEvent(): LDK hands the same event over again, and nothing is lost.")


@error_hint(lambda e, event: isinstance(event, Event.PaymentClaimable) and event.purpose.preimage() is None)
def _nothing_to_claim(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("this payment has no preimage (purpose.preimage() is None), so it cannot be claimed: fail it back with "
            "channel_manager.fail_htlc_backwards(payment_hash), and the payer gets their money back at once.")


def _missing(error: BaseException) -> tuple[str, str]:
    """What an AttributeError says is missing, ``(its object's type, the attribute)``, read from its words: they are
    what crosses from a graded workbook's process (``'X' object has no attribute 'y'``)."""
    if not isinstance(error, AttributeError):
        return ("", "")
    found = re.match(r"'(\w+)' object has no attribute '(\w+)'", str(error))
    return found.groups() if found else ("", "")  # type: ignore[return-value]


def _field_of_kind(event: Event, kind: str) -> object:
    """The event's field that is an object of type ``kind`` (a ``purpose``, a ``bump_event``), if any."""
    return next((v for f in dataclasses.fields(event) if dataclasses.is_dataclass(v := getattr(event, f.name))
                 and type(v).__name__ == kind), None)


@error_hint(lambda e, event: _missing(e)[0] == type(event).__name__)
def _no_such_field(error: BaseException, event: Event, played: Optional[Played]) -> str:
    names = ", ".join(f.name for f in dataclasses.fields(event))
    return (f"{type(event).__qualname__} has no field {_missing(error)[1]!r}. Its fields are: {names}. "
            "(In a match arm, name the fields you need: case Event.X(field=name).)")


@error_hint(lambda e, event: _field_of_kind(event, _missing(e)[0]) is not None)
def _no_such_field_inside(error: BaseException, event: Event, played: Optional[Played]) -> str:
    kind, name = _missing(error)
    inside = _field_of_kind(event, kind)
    names = ", ".join(f.name for f in dataclasses.fields(inside)) or "none"  # type: ignore[arg-type]
    said = f"this {type(inside).__qualname__} has no field {name!r} (its fields: {names})."
    if kind == "SpontaneousPayment" and name == "payment_secret":
        return (f"{said} A keysend has no invoice, so no secret: take it as getattr(purpose, \"payment_secret\", "
                "None), or match on the purpose's variant.")
    return (f"{said} A field of an enum holds one of its variants, each with fields of its own: match on the variant "
            "(case Kind.Variant(field=name)) before you read one.")


@error_hint(lambda e, event: isinstance(event, Event.PaymentForwarded) and event.total_fee_earned_msat is None
            and isinstance(e, TypeError) and "NoneType" in str(e))
def _no_fee(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("this PaymentForwarded has no fee: total_fee_earned_msat is None when the channel the payment came in on "
            "closed meanwhile (LDK claims it on chain, at a fee not known yet, and may give the event twice). Log it "
            "as it is, and add it to a total only when it is not None.")


@error_hint(lambda e, event: isinstance(e, ReturnedUnawaited))
def _unawaited(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("calling an async function only makes a coroutine: its code runs when something awaits it, and a "
            "handler's answer is never awaited (it is None, or ReplayEvent()). Await the call in your handler: "
            "return await it, and what it returns is your answer.")


@error_hint(lambda e, event: isinstance(e, RuntimeError) and "no running event loop" in str(e))
def _no_loop(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("your handler is a plain def, and under BackgroundProcessor.start a plain handler runs outside any "
            "event loop, so there is no loop to spawn a task on. Make it async def handle_ldk_events(...): "
            "the processor then runs it on the node's loop, as ldk-sample runs its handler on tokio.")


@error_hint(lambda e, event: isinstance(event, Event.OpenChannelRequest) and event.channel_type.requires_zero_conf()
            and type(e).__name__ == "APIMisuseError")
def _zero_conf_request(error: BaseException, event: Event, played: Optional[Played]) -> str:
    return ("this request asks for a zero-conf channel, which accept_inbound_channel refuses. Accept it zero-conf "
            "(accept_inbound_channel_from_trusted_peer_0conf) only if the peer is in TRUSTED_ZERO_CONF_PEERS: its "
            "funding could be double-spent before it confirms. From anyone else, reject it "
            "(force_close_without_broadcasting_txn).")


@error_hint(lambda e, event: isinstance(event, Event.OpenChannelRequest) and type(e).__name__ == "ChannelUnavailable")
def _wrong_request(error: BaseException, event: Event, played: Optional[Played]) -> str:
    recorder = played.recorder if played is not None else None
    before = [h for h in recorder.handlings if h.event is event][:-1] if recorder is not None else []
    answered = any(c.error is None and c.name.split(".")[-1].startswith(("accept_inbound_channel", "force_close"))
                   for h in before for c in recorder.calls_for(h))  # type: ignore[union-attr]
    if answered:  # (an earlier hand-over of this very request answered it, then asked for it again)
        return ("your handler answered this request when it was handed over before, then returned ReplayEvent(), so "
                "LDK handed it over again, and a request answered is gone: ReplayEvent() asks for an event you could "
                "not handle yet (a write that failed, say). Once you have answered, return nothing.")
    if recorder is not None and recorder.calls_for(recorder.handling_of(event), "channel_manager.close_channel"):
        return ("close_channel closes a channel that exists, and a request you have not accepted is none yet: reject "
                "it with channel_manager.force_close_without_broadcasting_txn(temporary_channel_id, "
                "counterparty_node_id, a message for the peer).")
    return ("LDK has no such request from that peer: pass this event's own temporary_channel_id and "
            "counterparty_node_id, in that order (the first two arguments).")


@error_hint(lambda e, event: isinstance(event, Event.OpenChannelRequest) and type(e).__name__ == "APIMisuseError"
            and "user_channel_id must be" in str(e))
def _not_a_u128(error: BaseException, event: Event, played: Optional[Played]) -> str:
    take = "take 16 of the 32 random bytes and read them as one: int.from_bytes(random[:16], 'big')."
    uid = None
    if played is not None:
        calls = [c for c in played.recorder.calls if c.name.startswith("channel_manager.accept_inbound_channel")
                 and c.arguments.get("temporary_channel_id") == event.temporary_channel_id and c.error is not None]
        uid = calls[-1].arguments.get("user_channel_id") if calls else None
    if isinstance(uid, int) and not isinstance(uid, bool) and uid < 0:
        return "user_channel_id is a u128, never negative: read the bytes unsigned (no signed=True), and " + take
    if isinstance(uid, int) and not isinstance(uid, bool):
        whole = " (all 32 random bytes are 256 bits)" if uid.bit_length() > 248 else ""
        return f"user_channel_id is a u128, 128 bits, and this number has {uid.bit_length()}{whole}: {take}"
    if isinstance(uid, float):
        return f"user_channel_id is a u128, an int: a float cannot hold 128 bits exactly. {take.capitalize()}"
    kind = type(uid).__name__ if uid is not None else "a value of another type"
    return f"user_channel_id is a u128, an int, not {kind}: {take}"


#: ldk-sample's payment storages, by class, and the parameter a handler is given each as.
_STORAGES = {"InboundPaymentInfoStorage": "inbound_payments", "OutboundPaymentInfoStorage": "outbound_payments"}


def _storage_used_as_a_dict(error: BaseException) -> Optional[str]:
    """The storage a handler used as the dict it holds (``storage[key]``, ``storage.get``), read from the error's words
    (``'InboundPaymentInfoStorage' object is not subscriptable``): they cross from a graded workbook's process."""
    if not isinstance(error, (AttributeError, TypeError)):
        return None
    return next((name for kind, name in _STORAGES.items() if f"'{kind}' object" in str(error)), None)


@error_hint(lambda e, event: _storage_used_as_a_dict(e) is not None)
def _storage_is_no_dict(error: BaseException, event: Event, played: Optional[Played]) -> str:
    name = _storage_used_as_a_dict(error)
    return (f"{name} is not a dict but ldk-sample's storage, a dict behind a lock (its Mutex): take the dict under "
            f"the lock, with {name}.lock() as payments: (it is also {name}.payments), and look the entry up, or set "
            "it, in that dict.")
