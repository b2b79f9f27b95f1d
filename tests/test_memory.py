"""What a crash takes from a handler (``ldkkit.exercises.memory``): its memory, put back as the check found it."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from typing import Any

from ldkkit import policy, reference
from ldkkit.exercises.memory import Memory


def learner(source: str) -> dict[str, Any]:
    """The namespace a learner's cell makes: its code is the learner's (neither the kit's nor a library's)."""
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "<a learner's cell>", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_containers_and_values_a_handler_names_come_back_as_they_were_in_place():
    cell = learner("""
        import collections
        SEEN, TOTALS, LOG, RECENT, COUNT = set(), {}, [], collections.deque(maxlen=3), 0
        KEPT_ELSEWHERE = {"kept": 1}

        def handle(event):
            global COUNT
            SEEN.add(event); TOTALS[event] = TOTALS.get(event, 0) + 1; LOG.append(event); RECENT.append(event)
            COUNT += 1
    """)
    seen, totals = cell["SEEN"], cell["TOTALS"]
    memory = Memory(cell["handle"])
    for event in ("a", "b", "a"):
        cell["handle"](event)
    assert memory.forget() is True
    assert (cell["SEEN"], cell["TOTALS"], cell["LOG"], list(cell["RECENT"]), cell["COUNT"]) == (set(), {}, [], [], 0)
    assert cell["SEEN"] is seen and cell["TOTALS"] is totals  # (in place: whatever else holds them sees it)
    assert cell["KEPT_ELSEWHERE"] == {"kept": 1}  # (not named by the handler: not its memory)
    cell["handle"]("c")
    assert memory.forget() is True and cell["SEEN"] == set()  # (each crash comes back to the same memory)
    assert memory.forget() is False  # (nothing changed since: nothing was taken)


def test_closures_tables_of_functions_and_an_objects_attributes_are_memory_too():
    cell = learner("""
        def make():
            seen = set()
            def on_claimed(event):
                seen.add(event)
            arms = {"claimed": on_claimed}
            def handle(event):
                arms["claimed"](event)
            return handle, seen

        class Node:
            def __init__(self):
                self.paid = {}
            def handle(self, event):
                self.paid[event] = True
            def __call__(self, event):
                self.handle(event)
    """)
    handle, seen = cell["make"]()
    node = cell["Node"]()
    memories = [Memory(handle), Memory(node.handle), Memory(node)]
    handle("x")
    node("y")
    assert [m.forget() for m in memories] == [True, True, False]  # (the last finds the dict already put back)
    assert seen == set() and node.paid == {}


def test_what_the_kit_shares_and_what_cannot_be_copied_are_left_alone():
    cell = learner("""
        import threading
        from ldkkit.policy import TRUSTED_ZERO_CONF_PEERS
        HELD = [threading.Lock()]
        background_tasks = set()

        def handle(event):
            if event in TRUSTED_ZERO_CONF_PEERS:
                HELD.append(event)
            background_tasks.add(event)
    """)
    lock, memory = cell["HELD"][0], Memory(cell["handle"])
    policy.TRUSTED_ZERO_CONF_PEERS.add("lsp")  # (a scenario adds its trusted LSP while it plays)
    try:
        cell["handle"]("lsp")
        memory.forget()
        assert "lsp" in policy.TRUSTED_ZERO_CONF_PEERS and cell["HELD"] == [lock]  # (the same lock, no copy)
    finally:
        policy.TRUSTED_ZERO_CONF_PEERS.discard("lsp")
    assert cell["background_tasks"] == set()


def test_data_kept_beside_a_lock_in_slots_or_in_an_in_memory_database_is_memory_too():
    """What a handler counted, kept in a dict or list beside the lock that guards it, in an object with ``__slots__``,
    or in an in-memory sqlite3 database, is gone after a real crash as a plain set is: each is put back (the lock
    itself is the same object). A database on disk outlives a crash, and is left as it is."""
    cell = learner("""
        import sqlite3, threading
        STATE = {"lock": threading.Lock(), "counted": set(), "total": 0}
        PAIR = [threading.Lock(), {}]

        class Tracker:
            __slots__ = ("lock", "seen", "count")
            def __init__(self):
                self.lock, self.seen, self.count = threading.Lock(), set(), 0
        TRACKER = Tracker()
        DB = sqlite3.connect(":memory:", check_same_thread=False)
        DB.execute("create table counted (h text primary key)")

        def handle(event, disk):
            with STATE["lock"]:
                STATE["counted"].add(event)
                STATE["total"] += 1
                STATE[event] = True
            PAIR[1][event] = 1
            PAIR.append(event)
            TRACKER.seen.add(event)
            TRACKER.count += 1
            DB.execute("insert into counted values (?)", (event,))
            disk.execute("insert into counted values (?)", (event,))
    """)
    lock, counted = cell["STATE"]["lock"], cell["STATE"]["counted"]
    disk = sqlite3.connect(":memory:")
    disk.execute("create table counted (h text primary key)")
    memory = Memory(cell["handle"])
    cell["handle"]("a", disk)
    assert memory.forget() is True
    assert cell["STATE"] == {"lock": lock, "counted": set(), "total": 0} and cell["STATE"]["counted"] is counted
    assert cell["PAIR"][1:] == [{}] and cell["PAIR"][0] is not None
    assert (cell["TRACKER"].seen, cell["TRACKER"].count) == (set(), 0)
    assert cell["DB"].execute("select count(*) from counted").fetchone() == (0,)
    assert disk.execute("select count(*) from counted").fetchone() == (1,)  # (not the handler's: handed to it)
    assert memory.forget() is False


def test_a_database_on_disk_outlives_a_crash(tmp_path):
    cell = learner(f"""
        import sqlite3
        DB = sqlite3.connect({str(tmp_path / "seen.sqlite")!r})
        DB.execute("create table counted (h text primary key)")

        def handle(event):
            DB.execute("insert into counted values (?)", (event,))
            DB.commit()
    """)
    memory = Memory(cell["handle"])
    cell["handle"]("a")
    assert memory.forget() is False
    assert cell["DB"].execute("select count(*) from counted").fetchone() == (1,)


def test_work_in_progress_put_back_is_no_memory_taken():
    """A set of tasks (the workbooks' ``background_tasks``) is emptied at a crash, as the tasks die: no record of what
    was handled was lost, so a failure does not say so."""
    cell = learner("""
        background_tasks = set()

        def handle(task):
            background_tasks.add(task)
    """)
    memory = Memory(cell["handle"])
    loop = asyncio.new_event_loop()
    try:
        cell["handle"](loop.create_future())
        assert memory.forget() is False and cell["background_tasks"] == set()
    finally:
        loop.close()


def test_the_kits_own_handler_has_no_memory_of_a_learners():
    memory = Memory(reference.handle_ldk_events)
    assert memory.forget() is False and not memory._containers and not memory._values


def test_workers_a_cell_started_are_put_back_as_they_were_not_emptied():
    """A restarted process runs its cells again, and starts its workers again: a list of the threads a cell started is
    put back as it was (the same threads, still running here), not emptied (WORKERS[h % len(WORKERS)] divided by 0)."""
    cell = learner("""
        import threading
        stop = threading.Event()
        WORKERS = [threading.Thread(target=stop.wait, daemon=True) for _ in range(2)]
        for worker in WORKERS:
            worker.start()

        def handle(event):
            return WORKERS[event % len(WORKERS)]
    """)
    workers = list(cell["WORKERS"])
    memory = Memory(cell["handle"])
    try:
        cell["WORKERS"].append(cell["handle"](1))  # (one more, after the check began)
        memory.forget()
        assert cell["WORKERS"] == workers and all(a is b for a, b in zip(cell["WORKERS"], workers, strict=True))
    finally:
        cell["stop"].set()


def test_memory_a_task_put_in_while_the_check_copies_it_makes_it_a_container_at_work():
    """A list of data a thread of yours puts a task into while the check copies it (another check's task, in a corpus
    run eight at a time): the copy failed ("cannot pickle '_asyncio.Task' object") and so did the check. Now the
    list counts as a container at work, as one holding a task from the start does: a crash empties it. Here the copying
    of one item is what puts a lock in, so the race is certain."""
    cell = learner("""
        import threading
        TASKS = []

        class Sneaky:
            # Reads as a number (data), and puts what cannot be copied in beside itself as it is copied.
            @property
            def __class__(self):
                return int

            def __deepcopy__(self, memo):
                TASKS.append(threading.Lock())
                return 0

        TASKS.append(Sneaky())

        def handle(event):
            return TASKS
    """)
    memory = Memory(cell["handle"])
    memory.forget()
    assert cell["TASKS"] == []


def test_memory_a_thread_of_yours_changes_while_the_check_reads_it_is_read_all_the_same():
    """A set or dict a thread of yours adds to while the check reads your memory (a worker started in an earlier cell,
    another check's task): the check reads what it holds at once, not item by item ("Set changed size during
    iteration" failed a right handler in CI). Here the reading of one item is what adds the next, so the race is
    certain."""
    cell = learner("""
        import threading
        SEEN, BY_HASH = set(), {}

        class Busy:
            '''An item whose reading lets a thread of yours in: it adds to SEEN and BY_HASH meanwhile (and reads as
            a number, so the check reads on).'''
            count = 0

            @property
            def __class__(self):
                Busy.count += 1
                SEEN.add(Busy.count)
                BY_HASH[Busy.count] = Busy.count
                return int

        SEEN.add(Busy())
        BY_HASH[0] = Busy()

        def handle(event):
            return SEEN, BY_HASH
    """)
    memory = Memory(cell["handle"])
    cell["SEEN"].add("after")
    memory.forget()
    assert "after" not in cell["SEEN"]
