"""A corpus of learner handlers, each with the verdict its workbook's check must give.

Every case is a whole ``handle_ldk_events`` a learner could write. Most are composed from
*arms* (one per event kind, see :mod:`.arms`): a base set of correct arms, with one arm
replaced or added. A case is RIGHT (the check must pass it) or WRONG (the check must fail
it, and its message must contain ``words``: the words that name the concept the learner
got wrong). The modules ``w01_...`` to ``w08_...`` hold one workbook's cases each;
:data:`CASES` gathers them all, in workbook order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

PASS, FAIL = "pass", "fail"
#: The hang limit (``common.HANDLER_TIMEOUT_S``) a case whose handler never returns may be checked under, instead of
#: the kit's 10 s: such a case runs alone, and is stopped as soon. ``open_channel_request:spins_forever`` keeps the
#: kit's own limit, and its words.
QUICK_HANG_S = 2.0


@dataclass(frozen=True)
class Fresh:
    """A handler that keeps state between events: ``make()`` builds a new one for every run of a check."""

    make: Callable[[], Callable[..., Any]]


@dataclass(frozen=True)
class Case:
    """One learner handler and what ``check(exercise, handler)`` must say about it."""

    exercise: str
    name: str
    handler: Callable[..., Any] | Fresh
    expect: str  # PASS or FAIL
    words: tuple[str, ...] = ()  # a WRONG case's message must contain each (case-sensitive)
    why: str = ""  # what the learner did, in a sentence
    xfail: Optional[str] = None  # the kit gets this one wrong today: why (strict xfail)
    slow: bool = False  # takes many seconds alone (a timeout, or a whole capstone)
    hang_limit_s: Optional[float] = None  # the check's hang limit for this case (QUICK_HANG_S), None: the kit's
    marks: tuple[str, ...] = field(default=())

    def new_handler(self) -> Callable[..., Any]:
        """The handler to give one run of the check (a fresh one, if it keeps state)."""
        return self.handler.make() if isinstance(self.handler, Fresh) else self.handler

    @property
    def id(self) -> str:
        return f"{self.exercise}:{self.name}"

    def __post_init__(self) -> None:
        assert self.expect in (PASS, FAIL), self.expect
        assert self.expect == PASS or self.words, f"{self.id}: a WRONG case names the words its message needs"
        # (a limit is the process's: only a case that runs alone, never beside others, may have one of its own)
        assert self.hang_limit_s is None or (self.slow and self.expect == FAIL), f"{self.id}: runs alone"


def right(exercise: str, name: str, handler: Callable[..., Any], why: str = "", **kw: Any) -> Case:
    return Case(exercise, name, handler, PASS, why=why, **kw)


def wrong(exercise: str, name: str, handler: Callable[..., Any], *words: str, why: str = "", **kw: Any) -> Case:
    return Case(exercise, name, handler, FAIL, tuple(words), why=why, **kw)


def all_cases() -> list[Case]:
    from . import (
        w01_open_channel_request,
        w02_funding_generation_ready,
        w03_receiving_payments,
        w04_sending_payments,
        w05_forwarding,
        w06_on_chain,
        w07_background_processor,
        w08_capstone,
    )

    cases: list[Case] = []
    for module in (w01_open_channel_request, w02_funding_generation_ready, w03_receiving_payments,
                   w04_sending_payments, w05_forwarding, w06_on_chain, w07_background_processor, w08_capstone):
        cases += module.CASES
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case names are unique within a workbook"
    return cases
