"""The corpus of learner handlers (tests/corpus) proves the checks right.

Each case is run alone (``test_case``): its verdict must be the expected one, and a WRONG
case's message must contain the words that name its mistake. Cases where the kit is wrong
today are strict xfails whose reason says what the kit does and what it should do.

``test_whole_corpus_eight_at_a_time`` runs every case again, eight checks at once, and
asserts each verdict and message is exactly what the same case gave alone. The capstone's
RIGHT cases take ~15 s each, so they run in that concurrent pass only (their solo verdict
is not compared, only the expected one).

The two handlers that never return (``*_slow``) take up to 10 s each; after their verdict no
thread of the check may be left running (``test_no_check_thread_left``).
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
import time
from dataclasses import dataclass

import pytest
from corpus import FAIL, PASS, Case, all_cases

from ldkkit.exercises import ExerciseFailed, check

CASES = all_cases()


def _concurrent_only(case: Case) -> bool:
    """The capstone's RIGHT cases: ~15 s each, so judged in the concurrent pass only."""
    return case.exercise == "capstone" and case.expect == PASS


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
    """Run one case; afterwards, wait (a few seconds at most) for the check's threads to end."""
    before = set(threading.enumerate())
    outcome = run(case)
    left: list[threading.Thread] = []
    for _ in range(50):
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not any(t.name.startswith("ldkkit-check") for t in left) and not left:
            break
        time.sleep(0.1)
    return Outcome(outcome.verdict, outcome.message, tuple(sorted(t.name for t in left)))


#: Each case's outcome alone, shared by the tests below (computed once per session).
_ALONE: dict[str, Outcome] = {}


def alone(case: Case) -> Outcome:
    if case.id not in _ALONE:
        _ALONE[case.id] = run_alone(case)
    return _ALONE[case.id]


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


@pytest.mark.parametrize("case", [_param(c) for c in CASES if not _concurrent_only(c)])
def test_case(case: Case) -> None:
    assert_verdict(case, alone(case))


NEVER_RETURN = [c for c in CASES if c.slow and not _concurrent_only(c)]


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


def test_whole_corpus_eight_at_a_time_slow() -> None:
    """Every case once more, eight checks at a time: each verdict and hint as when it ran alone."""
    for case in CASES:  # the solo outcomes first (cached when test_case already ran them)
        if not _concurrent_only(case):
            alone(case)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = {case.id: pool.submit(run, case) for case in CASES}
        together = {name: future.result() for name, future in futures.items()}
    differences = []
    for case in CASES:
        mine = together[case.id]
        if _concurrent_only(case):  # no solo run: judged against what it should be
            try:
                assert_verdict(case, mine)
            except AssertionError as wrong:
                if case.xfail is None:
                    differences.append(str(wrong))
            else:
                if case.xfail is not None:
                    differences.append(f"{case.id}: XPASS(strict): {case.xfail}")
            continue
        solo = alone(case)
        if mine.comparable() != solo.comparable():
            differences.append(f"{case.id}:\n--- alone:\n{solo.message}\n--- eight at a time:\n{mine.message}")
    assert not differences, "\n\n".join(differences)


# --- what running checks side by side shares (found by the pass above; reproduced deterministically) ---------


@pytest.mark.xfail(strict=True, reason=(
    "policy.TRUSTED_ZERO_CONF_PEERS is one process-wide set: capstone.zero_conf_story (and the scenarios "
    "inbound_open_zero_conf, via _trusting) add the LSP's node id and discard it when done, and a check playing the "
    "same story (same seed, same node id) alongside loses its trusted LSP mid-story, so the reference handler is "
    "failed with 'you rejected it'. Fix: keep the trusted set per world/node (e.g. a contextvar or an attribute "
    "the story sets on its Stage), or count references instead of add/discard"))
def test_trusted_peer_of_one_check_is_not_taken_away_by_another() -> None:
    from ldkkit.events import Event
    from ldkkit.exercises import capstone, common
    from ldkkit.reference import handle_ldk_events as reference

    asked, other_done = threading.Event(), threading.Event()

    async def waits_at_first_zero_conf_request(*args: object) -> object:
        event = args[-1]
        if isinstance(event, Event.OpenChannelRequest) and event.channel_type.requires_zero_conf() \
                and not asked.is_set():
            asked.set()
            other_done.wait(10)  # the other check plays the same story meanwhile
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
        assert asked.wait(10)
        second = common.Session("capstone", reference)
        try:
            capstone.judge_zero_conf(second.play("zero-conf requests", capstone.zero_conf_story))
        finally:
            second.close()
    finally:
        other_done.set()
        thread.join(30)
    assert outcome["verdict"] == PASS, outcome["verdict"]


@pytest.mark.xfail(strict=True, reason=(
    "progress._save writes every pass through the same 'progress.tmp' then replaces: two checks passing at once "
    "both write it, the first replace moves it away and the second raises FileNotFoundError out of check() after "
    "a passing verdict. Fix: a unique temporary name (tempfile.NamedTemporaryFile(dir=..., delete=False)) and a "
    "lock around load-modify-save"))
def test_two_checks_passing_at_once_both_record_their_pass(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from ldkkit.exercises.progress import record_pass

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
