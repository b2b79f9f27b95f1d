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

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
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
    """One call your handler made on the ChannelManager, and the event it was handling."""

    method: str
    args: tuple[Any, ...]
    event: Optional[Event]


class _Recorder:
    """Records the handler's ChannelManager calls and the random bytes it drew."""

    METHODS = (
        "accept_inbound_channel", "accept_inbound_channel_from_trusted_peer_0conf",
        "force_close_without_broadcasting_txn", "force_close_broadcasting_latest_txn",
        "funding_transaction_generated", "claim_funds", "fail_htlc_backwards", "process_pending_htlc_forwards",
    )

    def __init__(self, node: Node) -> None:
        self.calls: list[_Call] = []
        self.random_bytes: list[bytes] = []
        self.current: Optional[Event] = None
        for name in self.METHODS:
            setattr(node.channel_manager, name, self._wrap(name, getattr(node.channel_manager, name)))
        draw = node.keys_manager.get_secure_random_bytes

        def recorded_draw() -> bytes:
            data = draw()
            self.random_bytes.append(data)
            return data

        node.keys_manager.get_secure_random_bytes = recorded_draw
        observe = node.channel_manager._events.observer

        def observer(event: Event) -> None:
            self.current = event
            if observe is not None:
                observe(event)

        node.channel_manager._events.observer = observer

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append(_Call(name, args, self.current))
            return method(*args)

        return call

    def calls_for(self, event: Event) -> list[_Call]:
        return [c for c in self.calls if c.event is event]


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
        handled = len(recorder.calls) if recorder else 0
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
        if recorder and len(recorder.calls) != handled:
            deadline = time.monotonic() + HANDLER_TIMEOUT_S  # it is making progress
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _fail(scenario: str, event: Optional[Event], expected: str, happened: str, hint: str) -> ExerciseFailed:
    where = f" on {type(event).__qualname__}" if event is not None else ""
    shown = f"\n  The event: {event!r}" if event is not None else ""
    return ExerciseFailed(
        f"Scenario '{scenario}'{where}:\n  Expected: {expected}\n  Happened: {happened}{shown}\n  Hint: {hint}"
    )


def _handler_error(scenario: str, error: EventHandlerError) -> ExerciseFailed:
    cause = error.error
    return _fail(
        scenario, error.event, "your handler to return normally",
        f"it raised {type(cause).__name__}: {cause}",
        "read the traceback above: its last lines point at the line of your handler that failed.",
    )


# --- open_channel_request ------------------------------------------------------------------------


def _check_open_channel_request(handler: Callable[..., Any]) -> CheckResult:
    result = CheckResult("open_channel_request")
    sizes = [4_999_999, 5_000_000, 5_000_001, 6_000_000, LARGEST_NON_WUMBO_SATS]
    box: dict[str, Any] = {}

    def play() -> tuple[World, Node, _Recorder, list[Node]]:
        world = World(seed=17)
        me = world.add_node("learner", handler=handler)
        recorder = box["recorder"] = _Recorder(me)
        stage = Stage(world, me)
        peers = [stage.peer(f"peer{i}") for i in range(len(sizes))]
        for peer, sats in zip(peers, sizes, strict=True):
            peer.channel_manager.create_channel(me.node_id, sats, 0, 1, None, None)
        world.run()
        stage.mine(6)
        try:  # other events, mixed in: a payment over an accepted channel, if there is one
            stage.pay(peers[3], stage.invoice(me, 10_000_000))
        except RetryableSendFailure:
            pass
        return world, me, recorder, peers

    try:
        world, me, recorder, peers = _run_with_timeout(play, box)
    except EventHandlerError as e:
        raise _handler_error("open_channel_request", e) from e.error  # keeps the learner's traceback
    try:
        requests = [e for e in me.events_seen if isinstance(e, Event.OpenChannelRequest)]
        for request in sorted(requests, key=lambda r: r.funding_satoshis):  # smallest first: clearest
            _judge_request(request, recorder)
        accepted = sum(r.funding_satoshis > POLICY_MIN_EXCLUSIVE_SATS for r in requests)
        result.rows.append(("every request over 5,000,000 sats accepted", f"{accepted} accepted"))
        result.rows.append(("every other request rejected explicitly", f"{len(requests) - accepted} rejected"))
        result.rows.append(("5,000,000 sats exactly is rejected", "yes: the policy is strictly over"))
        result.rows.append(("user_channel_id from get_secure_random_bytes()", "yes"))
        others = len(me.events_seen) - len(requests)
        result.rows.append(("other events pass through without raising", f"{others} events"))
        ready = [e for e in me.events_seen if isinstance(e, Event.ChannelReady)]
        result.rows.append(("accepted channels confirm and become ready", f"{len(ready)} ready"))
    finally:
        world.close()
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


_CHECKS: dict[str, Callable[[Callable[..., Any]], CheckResult]] = {
    "open_channel_request": _check_open_channel_request,
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
