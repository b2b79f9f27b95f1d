"""The corpus of learner handlers (tests/corpus) proves the checks right.

The whole corpus runs once, eight checks at a time (``test_case``): each verdict must be the
expected one, and a WRONG case's message must contain the words that name its mistake. A case
the kit gets wrong is a strict xfail whose reason says what the kit does and should do.

``test_eight_at_a_time_gives_what_alone_gives`` runs many of the same cases alone and asserts
their verdict, headline and hint are exactly what they were side by side.

The handlers that never return (``*_slow``) run alone, and are stopped at the kit's 10 s (one of them) or sooner
(``Case.hang_limit_s``); after their verdict no thread of the check may be left running (``test_no_check_thread_left``).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading
import time
from dataclasses import dataclass

import pytest
from corpus import FAIL, PASS, Case, all_cases

from ldkkit.exercises import ExerciseFailed, check, common

#: ``LDKKIT_CORPUS_ONLY=<workbook>[,<workbook>...]`` (mutation testing's ``--corpus``): those workbooks'
#: cases only, each judged on its own, so that a mutant runs only the cases that reach the code it changed.
ONLY = os.environ.get("LDKKIT_CORPUS_ONLY", "").split(",") if os.environ.get("LDKKIT_CORPUS_ONLY") else None
CASES = [c for c in all_cases() if ONLY is None or c.exercise in ONLY]


@dataclass(frozen=True)
class Outcome:
    verdict: str  # PASS or FAIL
    message: str  # the ExerciseFailed message, or the CheckResult's table
    leftover_threads: tuple[str, ...] = ()  # threads the check started that were still alive afterwards

    @property
    def headline(self) -> str:
        return self.message.splitlines()[0] if self.message else ""

    @property
    def hint(self) -> str:
        found = re.search(r"^\s*Hint: (.*)$", self.message, re.MULTILINE)
        return found.group(1) if found else ""

    @property
    def teaching(self) -> str:
        """The message without the event's repr and the path of events: what it says, not what it shows."""
        return "\n".join(line for line in self.message.splitlines()
                         if not line.lstrip().startswith(("The event:", "Events so far:")))

    def comparable(self) -> tuple[str, str, str]:
        """What must not change when the check runs alongside others: verdict, headline, hint."""
        return (self.verdict, self.headline, self.hint)


def run(case: Case) -> Outcome:
    try:
        result = check(case.exercise, case.new_handler())
    except ExerciseFailed as failure:
        return Outcome(FAIL, str(failure))
    return Outcome(PASS, repr(result))


def run_alone(case: Case) -> Outcome:
    """Run one case, under its own hang limit if it has one; afterwards, for a handler stopped for overrunning (whose
    leftovers ``test_no_check_thread_left`` judges), wait (a few seconds at most) for the threads it started to end.
    (Only for those: a right handler's own worker thread that lives on cost every other case 5 s of waiting.)"""
    before = set(threading.enumerate())
    kits = common.HANDLER_TIMEOUT_S
    common.HANDLER_TIMEOUT_S = case.hang_limit_s or kits
    try:
        outcome = run(case)
    finally:
        common.HANDLER_TIMEOUT_S = kits
    left: list[threading.Thread] = []
    for _ in range(50 if _never_returns(case) else 0):
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not any(t.name.startswith("ldkkit-check") for t in left) and not left:
            break
        time.sleep(0.1)
    return Outcome(outcome.verdict, outcome.message, tuple(sorted(t.name for t in left)))


#: Each case's outcome alone, for the cases that run alone (computed once per session).
_ALONE: dict[str, Outcome] = {}
#: Every other case's outcome from one pass of the whole corpus, eight checks at a time.
_TOGETHER: dict[str, Outcome] = {}


@pytest.fixture(scope="session", autouse=True)
def _outcomes_of_this_session():
    """Outcomes are computed once per session, not once per import: a process that runs pytest again (as
    mutmut does, for each mutant) judges the code as it is now, never by a verdict cached by an earlier run."""
    _ALONE.clear()
    _TOGETHER.clear()
    yield


def alone(case: Case) -> Outcome:
    if case.id not in _ALONE:
        _ALONE[case.id] = run_alone(case)
    return _ALONE[case.id]


def _never_returns(case: Case) -> bool:
    """The handlers stopped for overrunning: alone, so the threads they leave can be watched."""
    return case.slow and case.expect == FAIL


def together(case: Case) -> Outcome:
    """The case's outcome when the whole corpus runs eight checks at a time (one pass per session)."""
    if not _TOGETHER:
        batch = [c for c in CASES if not _never_returns(c)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = {c.id: pool.submit(run, c) for c in batch}
            _TOGETHER.update({name: future.result() for name, future in futures.items()})
    return _TOGETHER[case.id]


def outcome_of(case: Case) -> Outcome:
    """Handlers that never return run alone (their threads are watched); the rest in the concurrent pass
    (unless the corpus is narrowed to one workbook: then each case alone)."""
    return alone(case) if ONLY or _never_returns(case) else together(case)


def assert_verdict(case: Case, outcome: Outcome) -> None:
    if case.expect == PASS:
        assert outcome.verdict == PASS, f"{case.id} ({case.why}) is RIGHT but the check failed it:\n{outcome.message}"
        return
    assert outcome.verdict == FAIL, f"{case.id} ({case.why}) is WRONG but the check passed it:\n{outcome.message}"
    missing = [w for w in case.words if w not in outcome.teaching]
    assert not missing, f"{case.id} ({case.why}): the message lacks {missing}:\n{outcome.message}"


def _param(case: Case) -> object:
    name = case.id + ("_slow" if case.slow else "")
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case: Case) -> None:
    assert_verdict(case, outcome_of(case))


NEVER_RETURN = [c for c in CASES if _never_returns(c)]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id + "_slow") for c in NEVER_RETURN])
def test_no_check_thread_left(case: Case) -> None:
    """A handler stopped for overrunning leaves no thread of the check running (polled, not timed)."""
    outcome = alone(case)
    assert outcome.verdict == FAIL
    assert not [n for n in outcome.leftover_threads if n.startswith("ldkkit-check")], outcome.leftover_threads
    assert not outcome.leftover_threads, f"threads the check started are still alive: {outcome.leftover_threads}"


def test_corpus_is_big_enough() -> None:
    for exercise in {c.exercise for c in CASES}:
        mine = [c for c in CASES if c.exercise == exercise]
        assert sum(c.expect == FAIL for c in mine) >= 10, exercise
        assert sum(c.expect == PASS for c in mine) >= 3, exercise
    assert len({c.exercise for c in CASES}) == 8


#: Run alone too, to compare word for word with the concurrent pass: every case of the fast workbooks,
#: and the first WRONG and first RIGHT case of every other (a capstone RIGHT case alone takes ~15 s).
SIDE_BY_SIDE = [c for c in CASES if not _never_returns(c) and (
    c.exercise in ("open_channel_request", "funding_generation_ready", "receiving_payments", "sending_payments")
    or c is next(d for d in CASES if d.exercise == c.exercise and d.expect == c.expect and not _never_returns(d)))
    and not (c.exercise == "capstone" and c.expect == PASS)]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in SIDE_BY_SIDE])
def test_eight_at_a_time_gives_what_alone_gives(case: Case) -> None:
    """The verdict, the headline and the hint do not depend on what else the machine runs."""
    assert together(case).comparable() == alone(case).comparable()


# --- what running checks side by side shares (found by the pass above; reproduced deterministically) ---------


def test_trusted_peer_of_one_check_is_not_taken_away_by_another() -> None:
    from ldkkit.events import Event
    from ldkkit.exercises import capstone, common
    from ldkkit.exercises.watch import sleeping_allowed
    from ldkkit.reference import handle_ldk_events as reference

    asked, other_done = threading.Event(), threading.Event()

    async def waits_at_first_zero_conf_request(*args: object) -> object:
        event = args[-1]
        if isinstance(event, Event.OpenChannelRequest) and event.channel_type.requires_zero_conf() \
                and not asked.is_set():
            asked.set()
            with sleeping_allowed():  # (a wait of the test's own, not the handler's: the check refuses those)
                other_done.wait()  # the other check plays the same story meanwhile (set at the latest as it ends)
        return await reference(*args)

    outcome: dict[str, object] = {}

    def first() -> None:
        session = common.Session("capstone", waits_at_first_zero_conf_request)
        try:
            capstone.judge_zero_conf(session.play("zero-conf requests", capstone.zero_conf_story))
            outcome["verdict"] = PASS
        except ExerciseFailed as failure:
            outcome["verdict"] = str(failure)
        finally:
            session.close()

    thread = threading.Thread(target=first, name="corpus-first-check")
    thread.start()
    try:
        while not asked.wait(0.05) and thread.is_alive():  # (no time limit: the first check asks, or ends)
            pass
        assert asked.is_set(), outcome
        second = common.Session("capstone", reference)
        try:
            capstone.judge_zero_conf(second.play("zero-conf requests", capstone.zero_conf_story))
        finally:
            second.close()
    finally:
        other_done.set()
        thread.join()
    assert outcome["verdict"] == PASS, outcome["verdict"]


def test_two_checks_passing_at_once_both_record_their_pass(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from ldkkit.exercises.learner import record_pass

    monkeypatch.setenv("LDKKIT_PROGRESS_FILE", str(tmp_path / "progress.json"))  # type: ignore[operator]
    errors: list[BaseException] = []

    def passes(i: int) -> None:
        try:
            record_pass("forwarding" if i % 2 else "on_chain")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(passes, range(400)))
    assert not errors, f"{len(errors)} of 400 record_pass calls raised, e.g. {errors[0]!r}"


def test_a_checks_worlds_are_freed_once_it_ends() -> None:
    """Closed, a world dropped neither its timers' task nor its nodes' tasks: a task cancelled at the close kept its
    CancelledError, whose traceback held the world, and gc.collect never freed that cycle. This case's check left six
    worlds behind (the corpus's worker held 2.5 M objects after it, and each garbage collection took seconds)."""
    import gc

    from ldkkit.sim.world import World

    def worlds() -> int:
        gc.collect()
        return sum(isinstance(o, World) for o in gc.get_objects())

    case = next(c for c in all_cases() if c.id == "background_processor:writes_in_a_thread_after_its_pool")
    before = worlds()
    assert run(case).verdict == PASS
    assert worlds() - before <= 1  # (one, the last play's, the handler's own threads may still hold)
