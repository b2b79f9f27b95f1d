"""What a handler left on disk: the payment records the checks read back (``inbound_payments``,
``outbound_payments``), and what to say when they are missing, misplaced or unreadable."""

from __future__ import annotations

from typing import Any, Optional

from ..events import Event
from .common import Handling, Played, fail, held_back, unawaited_hint


def final_records(played: Played, key: str) -> dict[Any, Any]:
    """The payment records your node has on disk at the end of the scenario (none if nothing was written)."""
    from .recorder import _read

    data = _read(played.me, key)
    return {} if data is None else _decoded(played, None, key, data)


def record_on_disk(played: Played, handling: Handling, key: str, payment_key: Any) -> Any:
    """The record on disk for one payment right after your handler returned (None if none, whoever wrote the rest);
    fails if unreadable. For a record this event need not write: to see that nothing else changed it."""
    data = handling.stored.get(key)
    return None if data is None else _decoded(played, handling.event, key, data).get(payment_key)


def stored_record(played: Played, handling: Handling, key: str, payment_key: Any, unwritten: str = "") -> Any:
    """The record your handler left on disk for one payment, right after it returned; fails if unreadable, or if your
    handler stored nothing there (``unwritten``: the hint then, if it wrote nothing at all)."""
    data = handling.stored.get(key)
    nothing = f"nothing is stored under '{key}'"
    if data is not None and data in played.stage.written.get((played.me.name, key), ()) and not any(
            c.during and c.arguments.get("key") == key for c in played.recorder.calls_for(handling)
            if c.name == "open" or c.name == "fs_store.write" and _in_the_root(c)):
        data = None  # (only what the story wrote, as ldk-sample's CLI does: nothing your handler stored)
        nothing = (f"nothing of yours is stored under '{key}' (what is there, the CLI wrote, as ldk-sample's "
                   "getinvoice and sendpayment do)")
    if data is None and handling.finished is None:
        raise fail(played, handling.event, f"{key} persisted before your handler returned",
                   "your handler had not returned from this event when the story ended: it was still waiting",
                   held_back(played))
    if data is None:
        writes = played.recorder.calls_for(handling, "fs_store.write")
        written = sorted({c["key"] for c in writes if "key" in c.arguments and c.during})
        late = not written and any(c.arguments.get("key") == key for c in writes)
        expected = (f"{key} persisted before your handler returned: fs_store.write(\"\", \"\", \"{key}\", "
                    f"{key}.encode())")
        spaces = [(c.arguments.get("primary_namespace"), c.arguments.get("secondary_namespace")) for c in writes
                  if c.during and c.arguments.get("key") == key]
        elsewhere = next((s for s in spaces if s != ("", "")), None)
        if elsewhere is not None:  # (the right key, in namespaces of its own: found only there)
            raise fail(played, handling.event, expected,
                       f"{nothing} in the namespaces \"\" and \"\": you wrote it under "
                       f"primary_namespace {elsewhere[0]!r}, secondary_namespace {elsewhere[1]!r}",
                       "a key is found only in the namespaces it was written in, and ldk-sample writes its payment "
                       f"records, and reads them back when it starts, in \"\" and \"\": fs_store.write(\"\", \"\", "
                       f"\"{key}\", {key}.encode()).")
        before = [c for h in played.recorder.handlings if h.event is handling.event and h is not handling
                  for c in played.recorder.calls_for(h, "fs_store.write") if c.during and c.arguments.get("key") == key]
        if not written and any(c.error is not None for c in before):  # (it failed, and the replay wrote nothing)
            raise fail(played, handling.event, expected,
                       f"{nothing}: writing it failed when this event was handed over before, "
                       "and when it was handed over again your handler wrote nothing",
                       "an event handed over again must be handled again, in full: your handler's memory already "
                       "held the change, but the disk did not. Write the record each time (the same record written "
                       "twice is the same record): what counts is what is on disk when you return.")
        raise fail(played, handling.event, expected,
                   nothing + (f"; you wrote under {written}" if written else "")
                   + ("; you wrote it only after your handler had returned (from a thread or task of yours)" if late
                      else ""), not writes and (unawaited_hint(played, handling.event) or unwritten or
                                                f"you did not write {key} while handling this event: LDK forgets an "
                                                "event once your handler returns, so write what it changed every "
                                                "time, before you return.") or
                   f"ldk-sample keeps these records under the key '{key}'. LDK forgets an event once your handler "
                   "returns, so write what it changed before you return.")
    return _decoded(played, handling.event, key, data).get(payment_key)


def _in_the_root(call: Any) -> bool:
    """Whether an ``fs_store.write`` wrote in the namespaces "" and "", where ldk-sample keeps its payment records."""
    return (call.arguments.get("primary_namespace"), call.arguments.get("secondary_namespace")) == ("", "")


def _decoded(played: Played, event: Optional[Event], key: str, data: bytes) -> dict[Any, Any]:
    """The records stored under ``key``; fails, naming what is wrong, if they cannot be read back."""
    from ..payment_storage import InboundPaymentInfoStorage, OutboundPaymentInfoStorage

    decoded = played.decoded.get((key, data)) if isinstance(played, Played) else None
    if decoded is not None:
        return dict(decoded)
    storage = {"inbound_payments": InboundPaymentInfoStorage, "outbound_payments": OutboundPaymentInfoStorage}[key]
    try:
        decoded = dict(storage.decode(data).payments)
    except Exception as e:
        raise fail(played, event, f"{key} stored as {key}.encode()", f"what is stored cannot be read back: {e}",
                   _unreadable_hint(key, str(e))) from None
    if isinstance(played, Played):
        played.decoded[(key, data)] = decoded
    return dict(decoded)


def _unreadable_hint(key: str, error: str) -> str:
    """What made a payment storage unreadable, from its decoder's words: a status, a key or a record of another type."""
    if "status must be" in error:
        return "statuses are HTLCStatus members (HTLCStatus.Succeeded), not strings."
    if "pairs, but the data has" in error:
        by = "payment_hash (a PaymentHash)" if key == "inbound_payments" else "payment_id (a PaymentId)"
        return (f"{key} maps the event's {by} to a PaymentInfo: use the event's value as the key, as it is (not its "
                ".hex() or bytes()), and a PaymentInfo as each value.")
    return f"store exactly the bytes {key}.encode() returns."
