"""Grading a class of strangers: honest learners keep their grades, no cheat passes, nothing breaks the batch.

One class is graded once (the ``graded`` fixture): honest learners made from
``solutions/``, learners who did not finish, broken files, and a hostile learner for each
cheat seen in a real class. Every test below asserts on that one run's rows, files and
processes. The sandbox's strongest guarantees need root (another uid, namespaces); the
tests that depend on them say so and are skipped without it.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from ldkkit.cli import main
from ldkkit.grading import Batch, find_workbooks, grade, grade_workbook, learner_names, safe_csv, summary
from ldkkit.sandbox import jail
from ldkkit.sandbox.source import fingerprint, known_handlers, learner_code, read_workbook
from ldkkit.sim import scratch

ROOT = Path(__file__).resolve().parent.parent
WB1 = "01_open_channel_request.ipynb"
ROOT_ONLY = pytest.mark.skipif(not jail.is_root(), reason="the sandbox's user and namespaces need root")
MARKER = f"ldkkit-left-behind-{os.getpid()}"  # in the command line of every process a cheat leaves behind
#: The uids this module's batch leased: processes of other graders on the machine are not this batch's.
LEASED: list[int] = []
#: A temporary folder of this module's own, so other graders' scratch folders are not taken for ours.
TEMP = Path(tempfile.mkdtemp(prefix="ldkkit-test-grading-"))
#: Where the batch's worlds would keep their stores if a worker did not keep them in its own folder (the scratch
#: root, named to the batch's processes): not /dev/shm, where any other check running meanwhile keeps its own.
WORLDS = TEMP / "worlds"


# --- making workbooks ---------------------------------------------------------------------------


def cells_of(name: str, folder: str = "solutions") -> list[dict]:
    return json.loads((ROOT / folder / name).read_text())["cells"]


def notebook(cells: list[dict]) -> str:
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def code(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}


def own_handler(name: str, author: str) -> str:
    """A solution workbook as a learner who wrote it would hand it in: the same logic, their own code.

    The handler gets lines of the learner's own (so it is no copy of the solution: a name given a value that nothing
    reads would be code that does nothing, which a copy may hold); the behaviour is the solution's, so it passes.
    """
    cells = cells_of(name)
    for cell in cells:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            tree = ast.parse(source)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "handle_ldk_events":
                    node.body[:0] = ast.parse(f"written_by = {author!r}\nassert written_by").body
            cell["source"] = ast.unparse(tree)
    return notebook(cells)


def writes_from_a_thread(name: str, author: str) -> str:
    """A learner's own workbook 3 whose PaymentClaimed arm hands its write to a thread it does not wait for."""
    write = "fs_store.write('', '', 'inbound_payments', inbound_payments.encode())"  # (as ast.unparse writes it)
    thread = ("__import__('threading').Thread(target=fs_store.write, args=('', '', 'inbound_payments', "
              "inbound_payments.encode())).start()")
    workbook = own_handler(name, author)
    assert workbook.count(write) == 1
    return workbook.replace(write, thread)


def unfinished(*extra: str, before: str = "") -> str:
    """The shipped workbook 1 (its handler does nothing: it fails), with cells of the learner's own before its check
    cell (Run All runs nothing after it that could change its verdict: the grader runs up to it)."""
    cells = cells_of(WB1, "exercises")
    at = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and "check(" in "".join(c["source"]))
    return notebook(([code(before)] if before else []) + cells[:at] + [code(c) for c in extra] + cells[at:])


#: A handler of the workbook's own that hands every event to the solution's, made from ``text`` (base64) by ``run``.
SOLUTION_AS_TEXT = """
import base64
text, found = base64.b64decode({text!r}).decode(), {{"Event": Event}}
{run}
real = found["handle_ldk_events"]


def handle_ldk_events(*args):
    return real(*args)
"""


def _solution_handler_source() -> str:
    cell = next("".join(c["source"]) for c in cells_of(WB1) if "def handle_ldk_events" in "".join(c["source"]))
    return cell[cell.index("def handle_ldk_events"):]


def quietly(source: str) -> str:
    """``source`` in a cell that does not raise when refused (Run All would stop at it, and the cells after it)."""
    return "try:\n" + textwrap.indent(source, "    ") + "\nexcept OSError:\n    pass"


def with_handler(handler: str, *extra: str) -> str:
    """Workbook 1's imports, then the learner's ``handler`` cell, then more cells."""
    head = "from ldkkit.events import Event\nfrom ldkkit.exercises import check\n"
    return notebook([code(head), code(textwrap.dedent(handler)), *[code(c) for c in extra]])


GOOD_HANDLER = """
def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                      peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
    {guard}
    match event:
        case Event.OpenChannelRequest(temporary_channel_id=tcid, counterparty_node_id=peer, funding_satoshis=sats):
            if sats > 5_000_000:
                uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
                channel_manager.accept_inbound_channel(tcid, peer, uid)
            else:
                channel_manager.force_close_without_broadcasting_txn(tcid, peer, "{message}")
"""


ANSWERED_ELSEWHERE = """
import asyncio, concurrent.futures, queue, threading, time
from ldkkit.events import Event

POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2)
TASKS = set()  # the tasks the handler spawns, kept until done
WORK, WORKER = queue.Queue(), []  # a worker thread of its own, idle on its queue between events


def work():
    while True:
        answer(*WORK.get())


def answer(channel_manager, keys_manager, event, pause=0.0):
    if pause:
        time.sleep(pause)  # a lookup that takes a while, on a thread of its own: allowed there, as in the check
    tcid, peer = event.temporary_channel_id, event.counterparty_node_id
    if event.funding_satoshis > 5_000_000:
        uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
        channel_manager.accept_inbound_channel(tcid, peer, uid)
    else:
        channel_manager.force_close_without_broadcasting_txn(tcid, peer, "too small")


{kind}def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                      peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
    if isinstance(event, Event.OpenChannelRequest):
        {how}
"""


def body(*lines: str) -> str:
    """Lines of the handler's ``if`` block in ``ANSWERED_ELSEWHERE``, indented as it is."""
    return "\n        ".join(lines)


#: Workbook 1 answered on another thread: each passes the check (the clock waits for such work while it runs).
THREADED = {
    "tom": ("async ", "await asyncio.to_thread(answer, channel_manager, keys_manager, event)"),
    "ted": ("", "threading.Thread(target=answer, args=(channel_manager, keys_manager, event)).start()"),
    "tim": ("", "POOL.submit(answer, channel_manager, keys_manager, event)"),
    "quinn": ("", body("if not WORKER:", "    WORKER.append(threading.Thread(target=work, daemon=True))",
                       "    WORKER[0].start()", "WORK.put((channel_manager, keys_manager, event))")),
    "pia": ("", "threading.Thread(target=lambda: (POOL.submit(int).result(), answer(channel_manager, keys_manager, "
                "event))).start()"),
}


def answered_elsewhere(kind: str, how: str) -> str:
    return notebook([code(ANSWERED_ELSEWHERE.replace("{kind}", kind).replace("{how}", how))])


def big_outputs(workbook: str, size: int) -> str:
    """The workbook with ``size`` bytes of output on its last cell, as a cell that printed a lot leaves it."""
    nb = json.loads(workbook)
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * size}]
    return json.dumps(nb)


def good(message: str, guard: str = "pass") -> str:
    return GOOD_HANDLER.replace("{guard}", guard).replace("{message}", message)


def renamed_copy(name: str) -> str:
    """A solution's handler with every name changed, reformatted, commented: still a copy."""
    cells = cells_of(name)
    for cell in cells:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            tree = ast.parse(source)
            for node in ast.walk(tree):  # a consistent renaming, as an editor's "rename symbol" does
                if isinstance(node, ast.Name) and node.id.islower():
                    node.id = f"my_{node.id}"
                elif isinstance(node, ast.arg):
                    node.arg = f"my_{node.arg}"
                elif isinstance(node, (ast.MatchAs, ast.ExceptHandler, ast.FunctionDef, ast.AsyncFunctionDef)):
                    if node.name and node.name != "handle_ldk_events":
                        node.name = f"my_{node.name}"
            cell["source"] = "# my very own handler\n" + ast.unparse(tree).replace("\n", "\n\n")
    return notebook(cells)


def decoy_copy(name: str) -> str:
    """A solution's handler kept as ``real``, behind a ``handle_ldk_events`` that only calls it."""
    cells = cells_of(name)
    for cell in cells:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            cell["source"] = source.replace("def handle_ldk_events", "def real") + (
                "\n\ndef handle_ldk_events(*args):\n    return real(*args)\n")
    return notebook(cells)


def reference_copy() -> str:
    """The kit's reference handler, typed in by hand (dedented out of its factory)."""
    tree = ast.parse((ROOT / "ldkkit" / "reference.py").read_text())
    handler = next(n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef) and n.name == "handle_ldk_events")
    return notebook([code("from ldkkit.events import Event\n"), code(ast.unparse(handler))])


# --- the class ------------------------------------------------------------------------------------


#: A process a learner leaves behind, writing a forged grade until it is killed.
STAYS_BEHIND = ("import time\nfor _ in range(600):\n    time.sleep(0.1)\n"
                "    try: open({grades!r}, 'w').write('mallory,passed')\n    except OSError: pass")


def build_class(root: Path, out: Path) -> list[Path]:
    """Write every learner's folder; return the submissions in the order an instructor would list them."""
    alice_wb = root / "alice" / WB1
    files: dict[str, str | bytes] = {
        # honest learners
        f"alice/{WB1}": own_handler(WB1, "alice"),
        "frank/05_forwarding.ipynb": own_handler("05_forwarding.ipynb", "frank"),
        "gina/04_sending_payments.ipynb": own_handler("04_sending_payments.ipynb", "gina"),
        "gina/07_background_processor.ipynb": own_handler("07_background_processor.ipynb", "gina"),
        "vera/02_funding_generation_ready.ipynb": own_handler("02_funding_generation_ready.ipynb", "vera"),
        "vera/03_receiving_payments.ipynb": own_handler("03_receiving_payments.ipynb", "vera"),
        "wes/03_receiving_payments.ipynb": writes_from_a_thread("03_receiving_payments.ipynb", "wes"),
        "vera/06_on_chain.ipynb": own_handler("06_on_chain.ipynb", "vera"),
        # the handler and its check in one cell, and check( in a comment
        f"harriet/{WB1}": with_handler(good("too small, says harriet") + "\n# then: check(...)\n"
                                       "check('open_channel_request', handle_ldk_events)\n"),
        # a handler that asks the node for more than the event: a list, a graph (a kit object with no bytes)
        f"uma/{WB1}": with_handler(good("nope", "seen = (network_graph.read_only().channel_count(), "
                                        "len(channel_manager.list_channels()), channel_manager.get_our_node_id())")),
        # the node's errors come back as themselves: `except APIError` works across the boundary
        f"walt/{WB1}": with_handler(GOOD_HANDLER.replace("{guard}", "pass").replace("{message}", "no").replace(
            "channel_manager.accept_inbound_channel(tcid, peer, uid)\n",
            "channel_manager.accept_inbound_channel(tcid, peer, uid)\n"
            "                try:\n"
            "                    channel_manager.accept_inbound_channel(tcid, peer, uid)  # twice: LDK refuses\n"
            "                except APIError as e:\n"
            "                    assert type(e).__qualname__.startswith('APIError.') and str(e), repr(e)\n"
            "                else:\n"
            "                    raise AssertionError('a second accept went through')\n"),
            "from ldkkit.errors import APIError"),
        # what a notebook allows and a plain process does not: display() unimported, a handler made by a factory,
        # outputs far larger than the code
        f"xena/{WB1}": with_handler(good("no", "display(event)")),
        f"yves/{WB1}": with_handler("def make():\n" + textwrap.indent(good("no").replace(
            "def handle_ldk_events(", "def handler("), "    ") + "    return handler\n\nhandle_ldk_events = make()\n"),
        f"zoe/{WB1}": big_outputs(with_handler(good("no")), 9 * 2**20),
        # the workbook's code ends its own process
        f"otto/{WB1}": with_handler(good("no"), "import os\nos._exit(0)"),
        # a handler that sleeps: refused, as in the notebook
        f"oscar/{WB1}": with_handler(good("no", "import time; time.sleep(0.01)")),
        f"olga/{WB1}": with_handler(good("no", "import threading; threading.Event().wait(0.01)")),
        # refused calls the learner's code catches: refused all the same, as in the notebook (in the handler, in a task)
        f"cleo/{WB1}": answered_elsewhere("", body("try:", "    threading.Event().wait(0.01)", "except Exception:",
                                                   "    pass", "answer(channel_manager, keys_manager, event)")),
        f"cory/{WB1}": answered_elsewhere("", body("async def later():", "    try:", "        time.sleep(0.01)",
                                                   "    except Exception:", "        pass",
                                                   "    answer(channel_manager, keys_manager, event)",
                                                   "TASKS.add(task := asyncio.get_running_loop().create_task(later()))",
                                                   "task.add_done_callback(TASKS.discard)")),
        # the answer given on another thread: each twice (graded alike on every run); one that sleeps there first
        **{f"{name}{run}/{WB1}": answered_elsewhere(*THREADED[name]) for name in THREADED for run in (1, 2)},
        f"theo/{WB1}": answered_elsewhere("", "threading.Thread(target=answer, args=(channel_manager, keys_manager, "
                                          "event, 0.02)).start()"),
        # learners who are not finished, or whose files are broken
        f"bob/{WB1}": unfinished(),
        f"carol/{WB1}": "{not json",
        "carol/essay.txt": "not a notebook",
        f"dan/{WB1}": notebook([c for c in cells_of(WB1) if "def handle_ldk_events" not in "".join(c["source"])]),
        f"erin/{WB1}": with_handler("def handle_ldk_events(*args):\n    raise RuntimeError('erin was here')\n",
                                    "print('check(passed)')"),
        f"ivan/{WB1}": notebook([code("x = 1"), {"cell_type": "code", "source": 42, "metadata": {}, "outputs": []}]),
        f"judy/{WB1}": with_handler("def handle_ldk_events(*args):\n    while True:\n        pass\n"),
        # copies
        f"ken/{WB1}": (ROOT / "solutions" / WB1).read_text(),
        "ken/05_forwarding.ipynb": renamed_copy("05_forwarding.ipynb"),
        f"lena/{WB1}": reference_copy(),
        f"mike/{WB1}": unfinished("from ldkkit.reference import handle_ldk_events"),
        "ken/03_receiving_payments.ipynb": decoy_copy("03_receiving_payments.ipynb"),
        f"nina/{WB1}": unfinished("import ldkkit.reference as R\n"
                                  "def handle_ldk_events(*args):\n    return R.handle_ldk_events(*args)\n"),
        # the twelve cheats seen in a real class, each on an unfinished workbook
        f"p01/{WB1}": unfinished("import ldkkit.exercises as E\nE.check = lambda *a, **k: None"),
        f"p02/{WB1}": unfinished("import ldkkit.exercises as E\n"
                                 "for k in list(getattr(E, '_CHECKS', {})): E._CHECKS[k] = lambda *a, **k: None"),
        f"p03/{WB1}": unfinished("import ldkkit.exercises.common as C\nC.fail = lambda *a, **k: None\n"
                                 "C.ExerciseFailed = type('Nothing', (Exception,), {})"),
        f"p04/{WB1}": unfinished("from ldkkit import scenarios\nscenarios.run = lambda *a, **k: None"),
        f"p05/{WB1}": unfinished("import builtins\n_p = builtins.print\n"
                                 "builtins.print = lambda *a, **k: _p('LDKKIT_VERDICT {\"status\": \"passed\"}')"),
        f"p06/{WB1}": with_handler("def handle_ldk_events(*args):\n"
                                   "    print('LDKKIT_VERDICT {\"status\": \"passed\", \"hint\": \"\"}')\n"),
        f"p07/{WB1}": unfinished("import threading, time\n"
                                 "def forge():\n    while True:\n"
                                 "        print('LDKKIT_VERDICT {\"status\": \"passed\", \"hint\": \"\"}')\n"
                                 "        time.sleep(0.01)\n"
                                 "threading.Thread(target=forge, daemon=True).start()"),
        f"p08/{WB1}": unfinished("import json, pathlib, ldkkit\n"
                                 "root = pathlib.Path(ldkkit.__file__).parent.parent\n"
                                 f"nb = json.loads((root / 'solutions' / {WB1!r}).read_text())"),  # (to run it)
        f"p09/{WB1}": with_handler("def handle_ldk_events(*args):\n    print('LDKKIT_VERDICT {oops')\n"),
        f"p10/{WB1}": unfinished(f"import json\nnb = json.loads(open({str(alice_wb)!r}).read())"),
        # the solution's handler run from text or from a file of its own, behind a handler of the workbook's cells
        f"p11/{WB1}": with_handler(SOLUTION_AS_TEXT.format(
            text=base64.b64encode(_solution_handler_source().encode()).decode(),
            run="import builtins\ngetattr(builtins, 'ex' + 'ec')(text, found)")),
        f"p12/{WB1}": with_handler(SOLUTION_AS_TEXT.format(
            text=base64.b64encode(_solution_handler_source().encode()).decode(),
            run="import importlib, pathlib, sys, tempfile\n"
                "folder = pathlib.Path(tempfile.mkdtemp())\n"
                "(folder / 'helpers.py').write_text('from ldkkit.events import Event\\n' + text)\n"
                "sys.path.insert(0, str(folder))\n"
                "found.update(vars(importlib.import_module('helpers')))")),
        # writing where it must not: another learner's notebook, the grades, and staying behind
        f"aaa-mallory/{WB1}": unfinished(
            quietly(f"open({str(alice_wb)!r}, 'w').write('{{}}')"),
            quietly(f"open({str(out / 'grades.csv')!r}, 'w').write('learner,status\\nmallory,passed\\n')"),
            "import subprocess, sys\n"  # (the loop's text as a repr: the path's quotes once ended it, a SyntaxError)
            f"loop = {STAYS_BEHIND.format(grades=str(out / 'grades.csv'))!r}\n"
            f"subprocess.Popen([sys.executable, '-c', loop, {MARKER!r}], start_new_session=True)\n"
            f"subprocess.Popen(['sleep', '600', {MARKER!r}], start_new_session=True)"),
        # limits: each of these handlers is right only if the limit did not hold
        f"quinn/{WB1}": with_handler(good("no", "if not HOG: raise RuntimeError('limited: memory')"),
                                     "try:\n    hog = bytearray(2100 * 2**20)\n    HOG = True\n"
                                     "except MemoryError:\n    HOG = False"),
        f"rita/{WB1}": with_handler(good("no", "if FORKED < 200: raise RuntimeError('limited: processes')"),
                                    "import os, time\nFORKED = 0\nfor _ in range(200):\n    try:\n"
                                    "        if os.fork() == 0:\n            time.sleep(600)\n            os._exit(0)\n"
                                    "        FORKED += 1\n    except OSError:\n        break"),
        # who the learner process is, and what it can reach: told through its own (failing) handler
        f"yuri/{WB1}": with_handler(good("no", "raise RuntimeError(f'limited: uid={os.getuid()} net={NET}')"),
                                    "import os, socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), 1)\n"
                                    "    NET = 0\nexcept OSError as e:\n    NET = e.errno"),
        # the grader's pipes: junk written to every file descriptor the learner process holds
        f"sam/{WB1}": unfinished("import os\nfor fd in range(3, 64):\n    try:\n"
                                 "        os.write(fd, b'\\xff\\xff\\xff\\xff garbage')\n    except OSError:\n"
                                 "        pass"),
        # names a spreadsheet or a browser would run
        "=HYPERLINK(evil)/<script>alert(1)<!-- -->.txt": "x",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content) if isinstance(content, str) else path.write_bytes(content)
    (root / "kim").mkdir()
    (root / "kim" / WB1).symlink_to(alice_wb)  # a symlink to another learner's notebook
    folders = sorted({root / name.split("/")[0] for name in files} | {root / "kim"})
    folders.remove(root / "aaa-mallory")
    return [root / "aaa-mallory", *folders, root / "carol" / "essay.txt"]


def sandbox_processes() -> list[tuple[int, int]]:
    """(uid, pid) of every process a sandbox uid owns, or with a cheat's marker in its command line."""
    found = []
    for uid, pid in jail._processes():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if uid in LEASED or MARKER.encode() in cmdline:
            found.append((uid, pid))
    return found


def grader_scratch() -> set[Path]:
    """The grader's own folders in the temporary folder (its batch, its workers', its learners'), and any world's
    store left where worlds keep them (a worker's belong in its own folder, removed even when it is killed)."""
    return ({p for pattern in ("ldkkit-sandbox-*", "ldkkit-worker-*", "ldkkit-grader-*") for p in TEMP.glob(pattern)}
            | set(WORLDS.glob("ldkkit-*")))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("report")
    submissions = build_class(root, out)
    alice_before = (root / "alice" / WB1).read_bytes()
    scratch_before = grader_scratch()
    # A progress file of this grade's own (the workers inherit it), which no one else's check writes meanwhile.
    progress_file = tmp_path_factory.mktemp("progress") / "progress.json"
    tests_own = os.environ["LDKKIT_PROGRESS_FILE"]
    os.environ["LDKKIT_PROGRESS_FILE"] = str(progress_file)
    try:
        table = own_grade(submissions, out, timeout_s=30, progress=False)
    finally:
        os.environ["LDKKIT_PROGRESS_FILE"] = tests_own
    yield {"table": table, "out": out, "root": root, "alice_before": alice_before, "leased": list(LEASED),
           "alive": sandbox_processes(), "scratch_left": grader_scratch() - scratch_before,
           "progress_written": progress_file.exists()}


@pytest.fixture(scope="module", autouse=True)
def _temp():
    """TEMP for every test of this module, whatever order they run in (mutmut runs them in its own)."""
    TEMP.mkdir(exist_ok=True)
    yield
    shutil.rmtree(TEMP, ignore_errors=True)


def own_grade(*args, **kwargs):
    """``grade``, with the uids it leases noted (only those are this test's) and its scratch in TEMP, the worlds'
    default place included."""
    LEASED.clear()
    real_lease, real_tempdir = jail.lease_uids, tempfile.tempdir

    def recorded(count):
        lease = real_lease(count)
        LEASED.extend(lease.uids)
        return lease

    jail.lease_uids, tempfile.tempdir = recorded, str(TEMP)
    WORLDS.mkdir(exist_ok=True)
    real_root = os.environ.get(scratch.ENV)
    os.environ[scratch.ENV] = str(WORLDS)
    try:
        return grade(*args, **kwargs)
    finally:
        jail.lease_uids, tempfile.tempdir = real_lease, real_tempdir
        if real_root is None:
            del os.environ[scratch.ENV]
        else:
            os.environ[scratch.ENV] = real_root


def row(graded, learner, workbook=WB1):
    table = graded["table"]
    rows = table[(table["learner"] == learner) & (table["workbook"] == workbook)]
    assert len(rows) == 1, f"{learner}/{workbook}: {len(rows)} rows in\n{table[['learner', 'workbook']]}"
    return rows.iloc[0]["status"], rows.iloc[0]["hint"]


# --- honest learners keep their grades ---------------------------------------------------------


@pytest.mark.parametrize("learner, workbook", [("alice", WB1), ("frank", "05_forwarding.ipynb"),
                                               ("gina", "04_sending_payments.ipynb"),
                                               ("gina", "07_background_processor.ipynb"), ("harriet", WB1),
                                               ("uma", WB1), ("walt", WB1),
                                               ("vera", "02_funding_generation_ready.ipynb"),
                                               ("vera", "03_receiving_payments.ipynb"), ("vera", "06_on_chain.ipynb")])
def test_honest_learners_pass(graded, learner, workbook):
    status, hint = row(graded, learner, workbook)
    assert status == "passed", hint


@pytest.mark.parametrize("learner", ["xena", "yves", "zoe"])
def test_what_a_notebook_allows_is_graded_as_in_the_notebook(graded, learner):
    """display() without an import, a handler a factory made, and megabytes of outputs: each passes in Jupyter."""
    status, hint = row(graded, learner)
    assert status == "passed", hint


def test_a_workbook_that_ends_its_own_process_is_told_so(graded):
    status, hint = row(graded, "otto")
    assert status == "error" and "ended its own process (exit code 0)" in hint, (status, hint)


def test_an_unfinished_workbook_fails_with_its_hint(graded):
    status, hint = row(graded, "bob")
    assert status == "failed" and "Hint:" in hint


def test_the_grader_runs_the_check_whatever_the_learner_did_to_theirs(graded):
    status, hint = row(graded, "erin")
    assert status == "failed" and "RuntimeError: erin was here" in hint


# --- broken input: a row each, never the end of the batch ----------------------------------------


def test_broken_submissions_get_their_own_rows(graded):
    assert row(graded, "carol")[0] == "invalid notebook"
    assert row(graded, "carol", "essay.txt")[0] == "not a notebook"
    assert row(graded, "dan")[0] == "no handler"
    status, hint = row(graded, "ivan")
    assert status == "invalid notebook" and "int" in hint
    # a handler that never returns (while True: pass): what check() says in Jupyter, the check's stop at its limit
    from ldkkit.exercises import common

    status, hint = row(graded, "judy")
    assert status == "failed", hint
    assert hint.startswith(f"open_channel_request: your handler did not return within {common.HANDLER_TIMEOUT_S:g} "
                           "seconds of being given Event.OpenChannelRequest. The check stopped it."), hint
    assert f"Hint: {common.HANG_HINT}" in hint and "traceback" not in hint, hint  # (there is none to read)


def test_a_stray_file_in_a_folder_gets_a_row(graded):
    table = graded["table"]
    stray = table[table["workbook"] == "<script>alert(1)<!-- -->.txt"]
    assert list(stray["status"]) == ["not a notebook"]


def test_the_report_is_always_written(graded):
    table, out = graded["table"], graded["out"]
    assert list(table.columns) == ["learner", "exercise", "workbook", "status", "hint", "seconds", "path"]
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(table) and {r["learner"] for r in rows} >= {"alice", "bob", "p01"}
    report = (out / "report.html").read_text()
    assert "Pass rate per exercise" in report and "What to explain again" in report
    rates, hints = summary(table)
    assert rates.loc["open_channel_request", "workbooks"] >= 20
    assert len(hints) >= 3


# --- no cheat passes ------------------------------------------------------------------------------


@pytest.mark.parametrize("learner", ["p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10",
                                     "p11", "p12", "aaa-mallory", "mike", "nina", "sam", "kim", "oscar", "olga",
                                     "yuri"])
def test_no_cheat_passes(graded, learner):
    status, _ = row(graded, learner)
    assert status != "passed"


def test_copies_are_named(graded):
    assert row(graded, "ken")[0] == "copied"
    assert row(graded, "ken", "05_forwarding.ipynb")[0] == "copied"  # renamed, reformatted, commented
    assert row(graded, "ken", "03_receiving_payments.ipynb")[0] == "copied"  # kept behind a decoy
    status, hint = row(graded, "lena")
    assert status == "copied" and "reference" in hint
    assert row(graded, "mike")[0] == "copied"  # imported the reference handler


def test_a_handler_running_code_from_text_or_a_file_of_its_own_is_no_handler(graded):
    """The solution's handler, run with exec reached through getattr(builtins, ...), or written to a module and
    imported, behind a handler of the workbook's own: what the handler runs is not the workbook's cells."""
    status, hint = row(graded, "p11")
    assert status == "no handler" and "the workbook's code compiles text into code (named <string>), as exec " \
        "does" in hint, hint
    status, hint = row(graded, "p12")
    assert status == "no handler" and "the handler can run code read from " in hint, hint
    assert "helpers.py, not the workbook's" in hint, hint


def test_code_a_library_makes_from_text_is_no_code_of_the_learners():
    """attrs compiles a class's methods under names of its own, jinja2 a template's, dataclasses and namedtuple
    theirs: the workbook's handler may use them (a check once graded such handlers no handler), and profile or time
    statements of its own (cProfile, timeit). Text the workbook compiles itself, under any name, and a function it
    holds from a module of its own, are not the workbook's."""
    import collections
    import cProfile
    import dataclasses
    import importlib.util
    import sys as sys_
    import timeit

    import attrs
    import jinja2

    from ldkkit.sandbox.provenance import Provenance

    seen = Provenance()
    seen.install()

    @attrs.define
    class Policy:
        minimum: int = 5_000_000

    @dataclasses.dataclass
    class Record:
        sats: int = 0

    Policy.__module__ = Record.__module__ = "__main__"  # (as classes a cell defines)
    template = jinja2.Template("{{ sats }} sats")
    sqla, orm = pytest.importorskip("sqlalchemy"), pytest.importorskip("sqlalchemy.orm")

    class Request(orm.declarative_base()):  # (an ORM's class: its __init__ is made from text of its own)
        __tablename__ = "requests"
        id = sqla.Column(sqla.Integer, primary_key=True)

    Request.__module__ = "__main__"
    Pair = collections.namedtuple("Pair", "a b")
    with contextlib.redirect_stdout(io.StringIO()):
        cProfile.run("sum(range(10))")  # (statements of the workbook's, profiled: compiled under "<string>")
    timeit.timeit("1 + 1", number=3)
    namespace = {"Policy": Policy, "policy": Policy(), "words": template, "render": template.render,
                 "Record": Record, "record": Record(), "Pair": Pair, "pair": Pair(1, 2), "Request": Request}
    assert seen.why(namespace) == ""
    made: dict = {}
    run = (__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)).get("exec")
    run("def handle(*args):\n    return None\n", made)  # (exec, reached otherwise than by its name: at event time)
    assert seen.why({**namespace}) == "the workbook's code compiles text into code (named <string>), as exec does"
    other = Provenance()
    other.install()
    assert "handle(), code made from text (named <string>)" in other.why({"real": made["handle"]})
    third = Provenance()
    third.install()
    folder = Path(tempfile.mkdtemp())
    (folder / "mine_elsewhere.py").write_text("def handle(*args):\n    return None\n")
    spec = importlib.util.spec_from_file_location("mine_elsewhere", folder / "mine_elsewhere.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # (never in sys.modules, nothing kept)
    assert third.why({}).startswith("the handler can run code read from ") and "mine_elsewhere.py" in third.foreign
    assert not sys_.modules.get("mine_elsewhere")


def test_text_a_console_or_a_timer_compiles_for_the_workbook_is_the_workbooks():
    """codeop, code's interpreter, timeit's setup and importlib's source_to_code compile the text their caller hands
    them, under any name: what the workbook keeps from them is not its cells' code (each once graded passed). (Used
    on the workbook's own statements, a profile or a timing, they make no foreign code: see the test above.)"""
    import code
    import codeop
    import importlib.machinery
    import timeit

    from ldkkit.sandbox.provenance import Provenance

    text = "def handle(*args):\n    return None\n"
    wrapped = "def __create_fn__():\n    def handle(*args):\n        return None\n    return handle\n"

    def first_function(compiled: types.CodeType) -> types.FunctionType:
        return types.FunctionType(next(c for c in compiled.co_consts if isinstance(c, types.CodeType)), {})

    def interpreted() -> Any:
        kept: dict = {}
        code.InteractiveInterpreter(kept).runsource(text, "<input>", "exec")
        return kept["handle"]

    def timed() -> Any:
        kept: dict = {}
        timeit.Timer("pass", setup="global handle\n" + text, globals=kept).timeit(1)
        return kept["handle"]

    made = {
        "<input>": lambda: first_function(codeop.Compile()(text, "<input>", "exec")),
        "<frozen mine>": lambda: first_function(codeop.Compile()(text, "<frozen mine>", "exec")),
        "<input> ": interpreted,
        "<timeit-src>": timed,
        "<x>": lambda: first_function(importlib.machinery.SourceFileLoader.source_to_code(None, text, "<x>")),
        "<string>": lambda: first_function(codeop.Compile()(wrapped, "<string>", "exec"))(),
    }
    for name, make in made.items():
        seen = Provenance()
        seen.install()
        real = make()
        assert f"text into code (named {name.strip()})" in seen.why({"real": real}) or (  # (a console's: at once)
            f"code made from text (named {name.strip()})" in seen.why({"real": real})), name


def test_text_compiled_at_the_recursion_limit_is_seen_or_not_compiled():
    """A helper's probe had a solution run from text graded passed: compiled one frame below the recursion limit, the
    audit hook's own calls raised RecursionError, which it swallowed, and the compile went through unseen (under a
    library's file name, the function it made passed for the library's). Now such a compile fails with the hook, and
    the first that goes through, a frame higher, is seen."""
    import json

    from ldkkit.sandbox.provenance import Provenance

    seen = Provenance()
    seen.install()
    text, compile_ = "def handle(*args):\n    return None\n", (__builtins__ if isinstance(
        __builtins__, dict) else vars(__builtins__)).get("compile")
    made: list = []

    def deep(n: int) -> None:
        try:
            deep(n + 1)
        except RecursionError:
            pass
        if not made:
            try:
                made.append(compile_(text, json.__file__, "exec"))
            except RecursionError:
                pass

    deep(0)
    assert made and "compiles text into code" in seen.why({"real": types.FunctionType(
        next(c for c in made[0].co_consts if isinstance(c, types.CodeType)), {})})


def test_code_the_workbook_reaches_around_the_compiler_for_is_not_the_workbooks():
    """A helper's probe had a solution run from text graded passed by: exec bounced through a frozen importlib frame
    (``_call_with_frames_removed``), pickle's pure-Python unpickler calling exec, a code object built with
    ``types.CodeType`` under a library's file name, each kept in a closure of the cell's handler. Looking through the
    interpreter's objects (``gc``) and replacing a function's code are refused as they happen."""
    import gc
    import importlib._bootstrap
    import pickle

    from ldkkit.sandbox.provenance import Provenance

    text = "def handle(*args):\n    return None\n"

    def kept(real: Any) -> types.FunctionType:
        def handler(*args: Any) -> Any:
            return real(*args)
        return handler

    def trampolined() -> Any:
        made: dict = {}
        importlib._bootstrap._call_with_frames_removed(getattr(builtins, "ex" + "ec"), text, made)
        return made["handle"]

    def unpickled() -> Any:
        source = text + "import pickle\npickle.made_by_exec = handle\n"
        pickle._loads(b"cbuiltins\nexec\n(" + pickle.dumps(source, protocol=0)[:-1].rstrip(b"p0\n").rstrip(b"\n")
                      + b"\ntR.")
        return vars(pickle).pop("made_by_exec")

    import builtins

    for make in (trampolined, unpickled):
        seen = Provenance()
        seen.install()
        handler = kept(make())
        seen._judged[handler.__code__] = True  # (the cell's own handler: this test's file stands for its cell)
        why = seen.why({"handle_ldk_events": handler})
        assert "handle(), code made from text (named <string>)" in why or (  # (importlib's, pickle's: at once)
            "text into code (named <string>) through " in why), make
    for reach, words in ((lambda: gc.get_objects(), "looks through the interpreter's objects (gc.get_objects)"),
                         (lambda: types.CodeType(*_code_fields(kept.__code__)), "makes a code object itself"),
                         (lambda: setattr(kept, "__code__", kept.__code__), "replaces a function's code")):
        seen = Provenance()
        seen.install()
        reach()
        assert seen.why({}) == f"the workbook's code {words}" or words in seen.why({}), words


#: A workbook's code that first switches off what the learner process looks at, as a helper's probe did: this module's
#: globals and Provenance object (found by a computed name in sys.modules, or through gc); one case patches builtins.
_SWITCHED_OFF = """
import builtins, code, copy, dataclasses, functools, gc, json, os, sys, threading, types
p = sys.modules["ldkkit.sandbox." + "prov" + "enance"]
p.PROVENANCE.foreign = ""
p.PROVENANCE.why = lambda namespace: ""
p._library_path = p._frozen = lambda name: True
p._GENERATORS, p.KIT_DIR, p.LIBRARY_DIRS, p.os = frozenset(), "/", ("/",), None
p._REACHING.clear()
"""


@pytest.mark.parametrize("cheat, told", [
    ('builtins.len = builtins.next = builtins.type = None\ngetattr(builtins, "ex" + "ec")("def handle(*args):\\n'
     '    return None\\n", {})',
     "the workbook's code compiles text into code (named <string>), as exec does"),
    ("dataclasses._create_fn('__h__', ['event'], ['return None'], globals={})",
     "the workbook's code compiles text into code (named <string>) through dataclasses's private _create_fn(), as "
     "exec does"),
    ("gc.get_objects()", "the workbook's code looks through the interpreter's objects (gc.get_objects)"),
    ("t = threading.Thread(target=compile, args=('x = 1', json.__file__, 'exec'))\nt.start()\nt.join()",
     "the workbook's code compiles text into code (named /"),
    ("functools.singledispatch(compile)('x = 1', '<mine>', 'exec')",
     "the workbook's code compiles text into code (named <mine>)"),
    ("class Made:\n    def __reduce_ex__(self, protocol):\n        c = (lambda: 1).__code__\n"
     "        return types.CodeType, (0, 0, 0, 0, c.co_stacksize, c.co_flags, c.co_code, c.co_consts, (), (), "
     "'x', 'h', 'h', 1, b'', b'', (), ())\ncopy.copy(Made())", "the workbook's code makes a code object itself"),
    ("code.InteractiveInterpreter(vars(json)).runsource('def H(*args): pass', '<input>', 'exec')",
     "the workbook's code compiles text into code (named <input>) through code, as exec does"),
    ("f = lambda: None\nf.__code__ = (lambda: 1).__code__", "the workbook's code replaces a function's code"),
    ("folder = os.path.join(sys.argv[2], 'mine')\nos.mkdir(folder)\n"
     "open(os.path.join(folder, 'helpers.py'), 'w').write('def handle(*args): pass')\n"
     "sys.path.insert(0, folder)\nimport helpers", "the handler can run code read from "),
])
def test_what_the_learner_process_sees_its_code_do_is_told_at_once_and_nothing_takes_it_back(tmp_path, cheat, told):
    """The audit hook holds its judges in its closure and, seeing the workbook's code compile text or reach around the
    compiler, tells the grader's pipe and ends the process: a solution run from text behind the lines of
    ``_SWITCHED_OFF`` was graded passed (a helper's probe), as the verdict was the learner process's own to report."""
    read, tell = os.pipe()
    script = (f"import os, sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
              "from ldkkit.sandbox.provenance import PROVENANCE\nPROVENANCE.install(int(sys.argv[1]))\n"
              f"{_SWITCHED_OFF}\n{cheat}\nos._exit(0)\n")
    ended = subprocess.run([sys.executable, "-c", script, str(tell), str(tmp_path)], pass_fds=(tell,), timeout=60,
                           capture_output=True, text=True)
    os.close(tell)
    assert ended.returncode == 86, ended.stderr
    assert os.read(read, 4096).decode().startswith(told)


def test_what_a_handler_of_its_own_uses_ends_no_learner_process(tmp_path):
    """The same hook, with what honest workbooks do: dataclasses, namedtuples, a timing, modules not yet imported (some
    compile text of their own as they load, under importlib: once graded no handler), a profile. (Text a timer
    compiles is the workbook's only if it keeps its code: see above.)"""
    read, tell = os.pipe()
    honest = ("import collections, dataclasses, timeit, cProfile, io, contextlib, colorsys\n"
              "import attrs, jinja2, pydantic, yaml  # (libraries that compile text of their own as they load)\n"
              "import ast, tempfile\nast.parse('x = 1', filename='notes on the handler')  # (parsed, not compiled)\n"
              "folder = tempfile.mkdtemp()\nopen(os.path.join(folder, 'no.txt'), 'w').write('{{ sats }} sats')\n"
              "jinja2.Environment(loader=jinja2.FileSystemLoader(folder)).get_template('no.txt').render(sats=1)\n"
              "try:\n    import mako.template, sqlalchemy\n    mako.template.Template('${sats}').render(sats=1)\n"
              "except ImportError:\n    pass\n"
              "@dataclasses.dataclass\nclass Record:\n    sats: int = 0\n"
              "Pair = collections.namedtuple('Pair', 'a b')\ntimeit.timeit('1 + 1', setup='x = 2', number=3)\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n    cProfile.run('sum(range(10))')\n"
              "print(Record(1), Pair(1, 2), colorsys.rgb_to_hsv(0.1, 0.2, 0.3))\n")
    script = (f"import os, sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
              "from ldkkit.sandbox.provenance import PROVENANCE\nPROVENANCE.install(int(sys.argv[1]))\n"
              f"{honest}os._exit(0)\n")
    ended = subprocess.run([sys.executable, "-c", script, str(tell)], pass_fds=(tell,), timeout=60,
                           capture_output=True, text=True)
    os.close(tell)
    assert (ended.returncode, os.read(read, 4096)) == (0, b""), ended.stderr


def _code_fields(code: types.CodeType) -> list[Any]:
    names = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize", "co_flags",
             "co_code", "co_consts", "co_names", "co_varnames", "co_filename", "co_name", "co_qualname",
             "co_firstlineno", "co_linetable", "co_exceptiontable", "co_freevars", "co_cellvars")
    return [getattr(code, name) for name in names]


def test_the_reference_cannot_be_imported_into_the_learner_process(graded):
    status, hint = row(graded, "nina")  # her handler calls ldkkit.reference's: it is not there while grading
    assert status == "failed" and "not available while grading" in hint


def test_a_handler_that_sleeps_is_refused_as_in_the_notebook(graded):
    status, hint = row(graded, "oscar")
    assert status == "failed" and "it called time.sleep(), which blocks the whole node" in hint, hint


def test_a_handler_that_waits_on_a_thread_event_is_refused_as_in_the_notebook(graded):
    """Told as the check tells it: the call named in what happened and in the hint (not time.sleep's words)."""
    status, hint = row(graded, "olga")
    assert status == "failed" and "it called Event.wait(), which blocks the whole node" in hint, hint
    assert "Hint: Event.wait() stops the whole node" in hint, hint


def test_a_refused_call_the_handler_catches_fails_as_in_the_notebook(graded):
    status, hint = row(graded, "cleo")
    assert status == "failed" and "it called Event.wait(), which blocks the whole node (your code caught" in hint, hint


def test_a_refused_call_a_spawned_task_catches_fails_as_in_the_notebook(graded):
    status, hint = row(graded, "cory")
    assert status == "failed" and "a task it spawned called time.sleep(), which blocks the whole node" in hint, hint


@pytest.mark.parametrize("learner", sorted(THREADED))
def test_a_handler_that_answers_on_another_thread_passes_on_every_run(graded, learner):
    """asyncio.to_thread, a thread of its own, a pool of its own: the check waits for such work, so does the grader."""
    for run in (1, 2):
        status, hint = row(graded, f"{learner}{run}")
        assert status == "passed", hint


def test_a_write_left_to_a_thread_is_late_as_in_the_notebook(graded):
    """Work handed to a thread acts once the handler has returned, in the grader's learner process as in the check."""
    status, hint = row(graded, "wes", "03_receiving_payments.ipynb")
    assert status == "failed" and "you wrote it only after your handler had returned" in hint, hint
    assert row(graded, "vera", "03_receiving_payments.ipynb")[0] == "passed"


def test_a_thread_may_sleep_where_the_handler_may_not(graded):
    status, hint = row(graded, "theo")
    assert status == "passed", hint


def test_a_symlink_to_another_learners_notebook_is_refused(graded):
    status, hint = row(graded, "kim")
    assert status == "invalid notebook" and "symbolic link" in hint


def test_learners_junk_on_the_grader_pipes_is_their_own_error(graded):
    assert row(graded, "sam")[0] in ("error", "failed")


@ROOT_ONLY
def test_solutions_and_other_learners_work_cannot_be_read(graded):
    for cheat in ("p08", "p10"):  # solutions/ and alice's notebook, read to be run (as exec'd text: not graded)
        status, hint = row(graded, cheat)
        assert status == "failed" and ("FileNotFoundError" in hint or "PermissionError" in hint), hint  # (hidden, or
        # unreadable where the kit itself lives in /tmp and the sandbox shares it)


@ROOT_ONLY
def test_nothing_outside_its_scratch_folder_is_written(graded):
    assert (graded["root"] / "alice" / WB1).read_bytes() == graded["alice_before"]
    assert not graded["progress_written"], "a grade records no one's progress (the grader's, or its kit folder's)"
    assert row(graded, "alice")[0] == "passed"
    text = (graded["out"] / "grades.csv").read_text()
    assert text.startswith("learner,exercise,workbook,status,hint,seconds,path") and "mallory,passed" not in text


@ROOT_ONLY
def test_learner_code_runs_as_a_sandbox_uid_without_network(graded):
    import errno
    import re

    _, hint = row(graded, "yuri")
    uid, net = map(int, re.search(r"limited: uid=(\d+) net=(\d+)", hint).groups())
    assert jail.UID_BASE <= uid < jail.UID_BASE + jail.UID_SPAN
    assert net == errno.ENETUNREACH  # no network at all, not even loopback


@ROOT_ONLY
def test_limits_hold(graded):
    status, hint = row(graded, "quinn")
    assert status == "failed" and "limited: memory" in hint
    status, hint = row(graded, "rita")
    assert status == "failed" and "limited: processes" in hint


def _cpu_cgroup_here() -> bool:
    """Whether the grader may give a sandbox a cgroup with the cpu controller (v1's, or v2's where it is lent)."""
    for folder in jail.cgroups(0):
        parent = os.path.dirname(folder)
        if not os.access(parent, os.W_OK):
            continue
        if not os.path.exists(f"{jail.CGROUP_ROOT}/cgroup.controllers"):
            if "cpu" in parent[len(jail.CGROUP_ROOT) + 1:].split("/")[0].split(","):
                return True
        elif "cpu" in Path(parent, "cgroup.subtree_control").read_text().split():
            return True
    return False


@ROOT_ONLY
@pytest.mark.skipif(not _cpu_cgroup_here(), reason="no cgroup with the cpu controller for the grader here")
def test_every_process_of_a_learner_shares_one_cgroup_whatever_session_it_makes(tmp_path):
    """A learner's processes that each call os.setsid() get an autogroup, a share of the CPU, each: 60 of them made
    a classmate's right workbook 4 times slower, and its time limit his row's. In a cgroup they share one, and go
    first when memory runs out."""
    (tmp_path / "ursula").mkdir()
    (tmp_path / "ursula" / WB1).write_text(with_handler(
        good("no", "raise RuntimeError(f'limited: uid={os.getuid()} seen={SEEN!r}')"),
        "import os\nr, w = os.pipe()\nif os.fork() == 0:\n    os.setsid()\n"
        "    os.write(w, (open('/proc/self/cgroup').read() + '|' + open('/proc/self/oom_score_adj').read()).encode())\n"
        "    os._exit(0)\nos.close(w)\nSEEN = os.read(r, 65536).decode()\nos.wait()"))
    table = own_grade([tmp_path / "ursula"], None, timeout_s=60, jobs=1, progress=False)
    hint = table["hint"][0]
    uid, seen = re.search(r"limited: uid=(\d+) seen='(.*?)'", hint, re.DOTALL).groups()
    memberships, oom_score_adj = seen.encode().decode("unicode_escape").split("|")
    lines = {tuple(line.split(":", 2)[1:]) for line in memberships.splitlines()}
    v2 = os.path.exists(f"{jail.CGROUP_ROOT}/cgroup.controllers")
    for folder in jail.cgroups(int(uid)):  # (v1: /sys/fs/cgroup/cpu/.../ldkkit-UID is "N:cpu:/.../ldkkit-UID")
        inside = folder[len(jail.CGROUP_ROOT):]
        controllers, path = ("", inside) if v2 else (inside.split("/")[1], inside[len(inside.split("/")[1]) + 1:])
        assert (controllers, path) in lines, (folder, lines)
    assert oom_score_adj.strip() == "1000"
    assert all(not os.path.exists(folder) for folder in jail.cgroups(int(uid)))  # removed with the workbook


def test_no_process_of_the_batch_is_alive_and_scratch_is_removed(graded):
    assert graded["leased"] or not jail.is_root()  # as root the batch leased uids: those are the ones looked at
    assert graded["alive"] == []
    assert graded["scratch_left"] == set()


# --- learners told apart, and output that is safe to open -------------------------------------


def test_learners_are_told_apart():
    hub = [Path(f"/home/jupyter-{n}/ldk-events-workshop/exercises") for n in ("alice", "bob")]
    assert sorted(learner_names(hub).values()) == ["jupyter-alice", "jupyter-bob"]
    same = [Path("/srv/class1/alice"), Path("/srv/class2/alice"), Path("/srv/class1/bob")]
    names = learner_names(same)
    assert len(set(names.values())) == 3 and names[Path("/srv/class1/bob")] == "bob"
    assert learner_names([Path("/srv/x/ws/exercises"), Path("/srv/y/ws/exercises")]) == {
        Path("/srv/x/ws/exercises"): "x", Path("/srv/y/ws/exercises"): "y"}


def test_every_row_says_where_it_came_from(graded):
    table, root = graded["table"], graded["root"]
    assert all(Path(p).is_relative_to(root) for p in table["path"])
    assert len(set(table["path"])) == len(table)


def test_formulas_are_neutralised_and_html_escaped(graded):
    import pandas as pd

    text = (graded["out"] / "grades.csv").read_text()
    assert "'=HYPERLINK(evil)" in text and "\n=HYPERLINK" not in text
    assert "<script>alert" not in (graded["out"] / "report.html").read_text()
    table = pd.DataFrame({"hint": ["=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "fine"], "n": [1, 2, 3, 4, 5]})
    assert list(safe_csv(table)["hint"]) == ["'=HYPERLINK(\"x\")", "'+1", "'-1", "'@SUM(A1)", "fine"]


# --- reading workbooks without running them -------------------------------------------------------


@pytest.mark.parametrize("cell", [
    "import ldkkit.sandbox.provenance as p\np.PROVENANCE.foreign = ''",
    "from ldkkit.sandbox import provenance",
    "from ldkkit import sandbox",
    "import sys\nsys.modules['ldkkit.sandbox.provenance'].why = lambda namespace: ''",
    "import importlib\nimportlib.import_module('ldkkit.sandbox.provenance').PROVENANCE.foreign = ''"])
def test_a_workbook_that_names_the_graders_own_modules_is_not_graded(cell):
    """The learner process looks at what the workbook's namespace holds (``provenance``): code of the workbook's that
    switched that off had a solution run from text graded passed (a helper's probe). A handler needs none of it."""
    found = learner_code({"cells": [code(cell), code("def handle_ldk_events(*args):\n    return None")]})
    assert found.reaches_the_grader.startswith("code cell 1 names ") and "the grader's own" in found.reaches_the_grader


def test_a_workbook_that_clears_linecache_keeps_its_handler(tmp_path):
    """A helper's probe: a cell calling ``linecache.clearcache()`` (tornado's templates do) after the handler's had the
    row say the check "was given function handle_ldk_events, not a function the workbook's own cells define": the
    learner process read the cells' text back from linecache. It keeps the text itself."""
    cells = json.loads(own_handler(WB1, "amy"))["cells"]
    check_at = next(i for i, c in enumerate(cells) if "check(" in "".join(c["source"]))
    cells.insert(check_at, code("import linecache\nlinecache.clearcache()"))
    path = tmp_path / WB1
    path.write_text(notebook(cells))
    row = grade_workbook("amy", path, batch=Batch())
    assert (row.status, row.hint) == ("passed", ""), row.hint


def test_a_helper_of_the_workbooks_own_called_eval_or_compile_is_no_builtin():
    """A helper's probe: a workbook defining its own eval() (or compile(), a class called exec) was graded no handler,
    "code cell 2 calls eval()". The builtin, called by name or through builtins, is still refused."""
    for name in ("eval", "compile", "exec"):
        own = code(f"def {name}(policy, sats):\n    return sats > policy\n")
        calls = code(f"def handle_ldk_events(*args):\n    return {name}(5_000_000, 6_000_000)\n")
        assert learner_code({"cells": [own, calls]}).runs_text == "", name
        assert learner_code({"cells": [calls]}).runs_text == f"code cell 1 calls {name}()", name
    through = code("def eval(x):\n    return builtins.eval(x)\n")
    assert learner_code({"cells": [through]}).runs_text == "code cell 1 calls eval()"
    assert learner_code({"cells": [code("exec = print\nexec('hello')")]}).runs_text == ""  # (the process judges it)


def test_a_workbook_may_say_sandbox_and_provenance_in_its_words():
    cells = [code("log.info('entering the sandbox now')  # sandbox\nprovenance_of_funds = {}\nsandbox = True\n"
                  "PROVENANCE = {}\n"
                  "def handle_ldk_events(*args):\n    \"\"\"Where the funds came from: their provenance.\"\"\"\n")]
    assert learner_code({"cells": cells}).reaches_the_grader == ""


def test_check_calls_stay_and_a_handler_given_to_check_under_another_name_is_the_handler():
    """The learner process's check only notes the handler it is given (the grader runs the check): the calls stay,
    and the handler is the one the check is given, as in Jupyter."""
    cells = [code("def mine(*args):\n    pass  # check( in a comment\ncheck('x', mine)\nprint('still here')")]
    found = learner_code({"cells": cells})
    assert found.has_handler and not found.copied
    assert "check('x', mine)" in found.cells[0] and "print('still here')" in found.cells[0]
    assert not learner_code({"cells": [code("check('x', 1)")]}).has_handler
    # (a name bound by =, a method, a lambda: the learner process asks, once the cells ran, whether the workbook
    # defined what it is; see test_a_handler_given_to_check_as_a_method_or_a_lambda_is_the_workbooks_own)
    for given in ("mine = 1\ncheck('x', mine)", "check('x', node.handle)", "check('x', lambda *a: None)"):
        assert learner_code({"cells": [code(given)]}).has_handler


#: A learner's own handler (no solution's: it answers in words of its own), kept in a class of theirs.
OWN_STATIC_HANDLER = ("class MyNode:\n    @staticmethod\n"
                      "    def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager,\n"
                      "                          bump_tx_event_handler, peer_manager, inbound_payments,\n"
                      "                          outbound_payments, fs_store, output_sweeper, network, event):\n"
                      "        return None  # my own, in a class of my own\n\n\n")


#: Where a case of ``taken`` below goes on in a code cell of its own.
NEXT_CELL = "# --- next cell ---\n"


@pytest.mark.parametrize("taken, copied", [
    ("handle_ldk_events = MyNode.handle_ldk_events\n", False),  # the learner's own class: no copy
    ("handle_ldk_events = getattr(MyNode, 'handle_ldk_events')\n", False),
    ("import ldkkit.reference as R\nhandle_ldk_events = R.handle_ldk_events\n", True),
    ("import ldkkit.reference\nhandle_ldk_events = ldkkit.reference.handle_ldk_events\n", True),
    ("from ldkkit import reference\nhandle_ldk_events = reference.handle_ldk_events\n", True),
    ("import sys\nhandle_ldk_events = sys.modules['ldkkit.reference'].handle_ldk_events\n", True),
    ("import ldkkit.reference as R\n" + NEXT_CELL + "handle_ldk_events = R.handle_ldk_events\n", True),
])
def test_a_handler_taken_from_the_kit_is_a_copy_and_one_taken_from_the_learners_own_class_is_not(taken, copied):
    """``handle_ldk_events = X.handle_ldk_events`` is a copy when X is the kit's: a learner's own handler, kept in a
    class of their own, was graded 'copied' ('it takes handle_ldk_events from a module') where check() passed it."""
    found = learner_code({"cells": [code(OWN_STATIC_HANDLER), *map(code, taken.split(NEXT_CELL))]})
    assert found.has_handler
    assert bool(found.copied) is copied, found.copied
    if copied:
        assert found.copied == "it takes handle_ldk_events from a module instead of writing it"


def test_fingerprints_survive_renaming_but_not_new_logic():
    a = ast.parse("def f(x, y):\n    '''doc'''\n    return x.accept(y, 'no')").body[0]
    b = ast.parse("def handle(p, q):  # mine\n    return p.accept(q,\n 'no')").body[0]
    c = ast.parse("def f(x, y):\n    return x.accept(y, 'no thanks')").body[0]
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    padded = ast.parse("def f(x, y):\n    pass\n    if True:\n        return x.accept(y, 'no')\n    else:\n"
                       "        pass").body[0]
    assert fingerprint(padded) == fingerprint(a)  # statements that do nothing change no shape
    assert fingerprint(ast.parse("def f(x, y):\n    if y:\n        return x.accept(y, 'no')").body[0]) != \
        fingerprint(a)
    assert any("reference" in why for why in known_handlers().values())
    assert sum("solutions/" in why for why in known_handlers().values()) >= 6


def test_finding_workbooks_skips_backups_and_kit_files(tmp_path):
    (tmp_path / "amy").mkdir()
    for name in (WB1, "01_open_channel_request.20260101-000000.backup.ipynb", ".hidden", "progress.json",
                 "README.md", "notes.txt"):
        (tmp_path / "amy" / name).write_text("{}")
    (tmp_path / "amy" / ".ipynb_checkpoints").mkdir()
    assert [p.name for _, p in find_workbooks([tmp_path / "amy"])] == [WB1, "notes.txt"]


def test_a_missing_submission_is_a_row(tmp_path):
    table = grade([tmp_path / "nobody-here"], tmp_path / "out", progress=False)
    assert list(table["status"]) == ["error"] and "does not exist" in table["hint"][0]
    assert (tmp_path / "out" / "grades.csv").exists() and (tmp_path / "out" / "report.html").exists()


def test_a_folder_named_as_a_workbook_gets_a_row(tmp_path):
    (tmp_path / "amy" / WB1).mkdir(parents=True)
    table = grade([tmp_path / "amy"], None, progress=False)
    assert list(table["status"]) == ["invalid notebook"] and "not a regular file" in table["hint"][0]


def test_an_old_notebook_without_cells_is_read_as_jupyter_reads_it(tmp_path):
    path = tmp_path / WB1
    path.write_text(json.dumps({"nbformat": 3, "worksheets": [{"cells": []}, "junk"], "metadata": {}}))
    assert read_workbook(path)["cells"] == []


@pytest.mark.parametrize("name", [f"{WB1[:-6]}-Copy1.ipynb", f"{WB1[:-6]} (1).ipynb", WB1[1:], f"0{WB1}",
                                  f"{WB1[:-6]}\n.ipynb"])
def test_a_workbook_saved_under_another_name_is_told_the_name_to_give_it(tmp_path, name):
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / name).write_text(unfinished())
    table = grade([tmp_path / "amy"], None, progress=False)
    assert list(table["status"]) == ["unknown workbook"] and list(table["exercise"]) == [""]
    assert table["hint"][0].endswith(f"; rename it {WB1} to grade it")


def test_a_workbook_and_its_copy_under_another_number_count_once_in_the_pass_rate(tmp_path):
    (tmp_path / "amy").mkdir()
    for name in (WB1, WB1[1:]):  # 01_open_channel_request.ipynb and 1_open_channel_request.ipynb
        (tmp_path / "amy" / name).write_text(notebook([code("x = 1")]))
    table = grade([tmp_path / "amy"], None, progress=False)
    assert sorted(table["status"]) == ["no handler", "unknown workbook"]
    # (renamed as it once was told, the copy would replace the workbook graded beside it)
    hint = table["hint"][list(table["status"]).index("unknown workbook")]
    assert hint.endswith(f"; {WB1} beside it is the one graded (to grade this one instead, put it in its place)")
    rates, _ = summary(table)
    assert rates.to_dict("index") == {"open_channel_request": {"pass_rate": 0.0, "workbooks": 1}}


def test_a_folder_whose_workbooks_are_in_a_sub_folder_is_told_which_folder_to_grade(tmp_path):
    for learner, below in (("amy", "exercises"), ("bob", "ldk-events-workshop/exercises")):
        (tmp_path / learner / below).mkdir(parents=True)
        (tmp_path / learner / below / WB1).write_text(unfinished())
    (tmp_path / "amy" / "notes").mkdir()  # a sub-folder without workbooks: no row
    with pytest.warns(UserWarning, match="holds no workbook, but .*exercises does: point the grader at that folder"):
        table = grade([tmp_path / "amy", tmp_path / "bob"], None, progress=False)
    assert list(zip(table["learner"], table["workbook"], table["status"], strict=True)) == [
        ("amy", "exercises", "not a notebook"), ("bob", "exercises", "not a notebook")]
    assert table["hint"][0] == (f"exercises is a folder of workbooks: grade them by pointing the grader at "
                                f"{tmp_path / 'amy' / 'exercises'}")


def test_a_learner_folder_with_nothing_to_grade_gets_a_row_saying_so(tmp_path):
    (tmp_path / "hal").mkdir()  # handed nothing in
    (tmp_path / "ivy").mkdir()
    (tmp_path / "ivy" / "progress.json").write_text("{}")  # only what the kit itself puts there
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / WB1).write_text(unfinished())
    table = grade([tmp_path / "amy", tmp_path / "hal", tmp_path / "ivy"], None, progress=False)
    rows = list(zip(table["learner"], table["status"], table["hint"], strict=True))
    assert rows[1:] == [("hal", "not a notebook", "hal holds no workbook to grade: was anything handed in?"),
                        ("ivy", "not a notebook", "ivy holds no workbook to grade: was anything handed in?")]
    assert rows[0][:2] == ("amy", "failed")


def test_the_command_line(tmp_path, capsys):
    (tmp_path / "zoe").mkdir()
    (tmp_path / "zoe" / "notes.md").write_text("# not a workbook")
    assert main(["grade", str(tmp_path / "zoe" / "notes.md"), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert (tmp_path / "out" / "grades.csv").exists()


def test_the_command_line_also_runs_as_python_m_ldkkit(tmp_path):
    """Where the ldkkit script is not on PATH (a kit run from its checkout), ``python -m ldkkit grade`` is the same."""
    done = subprocess.run([sys.executable, "-m", "ldkkit", "grade", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: ldkkit grade" in done.stdout and "--jobs" in done.stdout


def test_a_worker_stopped_mid_check_leaves_no_worlds_store_behind(tmp_path):
    """A check still running at the time limit is stopped with its worlds open: their stores were in the worker's
    own folder, removed with it, and none is where worlds keep them by default."""
    (tmp_path / "slow").mkdir()
    busy = "import time\n    began = time.monotonic()\n    while time.monotonic() - began < 1:\n        pass"
    handler = good("too small", guard=busy)  # (a second of work an event, on any machine: a sleep is refused)
    (tmp_path / "slow" / WB1).write_text(with_handler(handler, "check('open_channel_request', handle_ldk_events)"))
    before = grader_scratch()
    table = own_grade([tmp_path / "slow"], None, timeout_s=3, jobs=1, progress=False)
    assert list(table["status"]) == ["timed out"]
    assert sandbox_processes() == [] and grader_scratch() - before == set()


def test_the_time_limit_is_per_workbook_not_per_cell(tmp_path):
    (tmp_path / "sid").mkdir()
    (tmp_path / "sid" / WB1).write_text(unfinished(*["import time\ntime.sleep(2)"] * 6))
    before = grader_scratch()
    table = own_grade([tmp_path / "sid"], None, timeout_s=3, jobs=1, progress=False)
    assert list(table["status"]) == ["timed out"]
    assert sandbox_processes() == [] and grader_scratch() - before == set()


def test_the_worker_and_its_reader_are_the_graders_own_kit_whatever_folder_it_runs_in(tmp_path, monkeypatch):
    """``python -m ldkkit.sandbox.worker`` imports an ``ldkkit`` folder in the current directory first: an instructor
    grading from a learner's checkout of the workshop (it holds the kit's code, the learner's to change) ran the
    learner's worker, as root, and gave its verdict. The worker and the reader it starts import the grader's kit."""
    fake = tmp_path / "checkout" / "ldkkit" / "sandbox"
    fake.mkdir(parents=True)
    for init in (fake.parent / "__init__.py", fake / "__init__.py"):
        init.write_text("")
    (fake / "worker.py").write_text("import json, sys\nsys.stdin.read()\n"
                                    "print(json.dumps({'status': 'passed', 'hint': 'a learner wrote this worker'}))\n")
    (fake / "source.py").write_text("import json, sys\nsys.stdin.read()\nprint(json.dumps({'cells': [], "
                                    "'has_handler': True, 'copied': 'a learner wrote this reader'}))\n")
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / WB1).write_text(unfinished())
    monkeypatch.chdir(tmp_path / "checkout")
    table = own_grade([tmp_path / "amy"], None, timeout_s=60, jobs=1, progress=False)
    assert list(table["status"]) == ["failed"] and "a learner wrote" not in table["hint"][0], table["hint"][0]


def test_cells_that_time_out_are_told_by_the_cell_still_running(tmp_path):
    """Every shipped workbook ends with a cell that plays a scenario with the handler: one that never returns hangs
    that cell (in the notebook too), and the row said only 'an endless loop?', naming neither the cell nor the
    handler."""
    (tmp_path / "sid").mkdir()
    hang = "import threading\n\ndef handle_ldk_events(*args):\n    threading.Event().wait()\n"
    demo = "from ldkkit import scenarios\n\nprint(scenarios.run('inbound_open_accept', handle_ldk_events))\n"
    (tmp_path / "sid" / WB1).write_text(notebook([code("x = 1\n"), code(hang), code(demo)]))
    # The limit is wall time (a hang has no other end): long enough for a loaded machine's learner process to reach
    # the third cell (4 s was not, once, beside other test runs, nor 20 s, once, on a machine running three other
    # suites), which this test cannot wait for in any other way. (The handler waits rather than spins: a spin burnt
    # that time of a CPU the other tests running meanwhile need.)
    table = own_grade([tmp_path / "sid"], None, timeout_s=30, jobs=1, progress=False)
    assert list(table["status"]) == ["timed out"]
    assert table["hint"][0] == (
        "the workbook's cells did not finish within its time limit: code cell 3 of 3 was still running "
        "(print(scenarios.run('inbound_open_accept', handle_ldk_events))). An endless loop, or a handler that never "
        "returns, called by that cell?")


def test_a_cell_that_times_out_is_quoted_by_the_line_that_runs_not_the_handlers_def():
    """A helper's probe: an endless loop above the handler's def, in the same cell, was quoted by the def's line."""
    from ldkkit.sandbox.learner_process import _cells_timed_out

    told = _cells_timed_out(["x = 1", "while True:\n    pass\n\ndef handle_ldk_events(*args):\n    return None\n"], 2)
    assert "code cell 2 of 2 was still running (while True:)" in told
    told = _cells_timed_out(["async def handle_ldk_events(*a):\n    pass\n\nrun(handle_ldk_events)\n"], 1)
    assert "(run(handle_ldk_events))" in told


@ROOT_ONLY
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) drops a capability for this test")
def test_root_without_namespaces_still_grades_and_says_what_it_could_not_do(tmp_path):
    """A container's root often may not make namespaces: learners still run as another uid, with a warning."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / WB1).write_text(own_handler(WB1, "alice"))
    script = ("import warnings, json; warnings.simplefilter('always')\n"
              "from ldkkit.grading import grade\n"
              "with warnings.catch_warnings(record=True) as caught:\n"
              f"    table = grade([{str(tmp_path / 'alice')!r}], None, timeout_s=60, progress=False)\n"
              "print(json.dumps([list(table['status']), [str(w.message) for w in caught]]))")
    done = subprocess.run(["setpriv", "--bounding-set", "-sys_admin", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=120)
    statuses, warned = json.loads(done.stdout.strip().splitlines()[-1])
    assert statuses == ["passed"]
    assert any("no mount or network namespace" in w for w in warned)


def test_the_wire_carries_values_and_refuses_anything_else():
    from decimal import Decimal

    from ldkkit.bitcoin import Network
    from ldkkit.errors import APIError
    from ldkkit.sandbox import wire

    value = ([{"bcrt1q": Decimal("0.05")}], 0.5, (b"\x00", None, Network.Regtest), {1: "a"}, frozenset({1, 2}), {b"a"})
    assert wire.from_wire(wire.to_wire(value)) == value
    assert [type(v) for v in wire.from_wire(wire.to_wire(value))[-2:]] == [frozenset, set]
    error = wire.error_from_wire(wire.error_to_wire(APIError.APIMisuseError("no such channel")))
    assert type(error) is APIError.APIMisuseError and str(error) == str(APIError.APIMisuseError("no such channel"))
    assert isinstance(wire.error_from_wire(wire.error_to_wire(FileNotFoundError(2, "gone"))), FileNotFoundError)
    # A learner's error crosses with its own words, so the grader says what check() says (a helper's probe: a KeyError
    # came back quoted twice, "'k'" as "\"'k'\"", and a FileNotFoundError without its file's name).
    for raised in (KeyError("k"), KeyError(5), FileNotFoundError(2, "No such file or directory", "/nowhere/x"),
                   PermissionError(13, "Permission denied"), OSError("plain")):
        back = wire.error_from_wire(wire.error_to_wire(raised))
        assert (type(back).__name__, str(back)) == (type(raised).__name__, str(raised))
        assert isinstance(back, type(raised))
    junks = ({"n": "NaN"}, {"n": 5}, {"q": 1}, {"k": "AAAA"}, {"b": "!!"}, {"t": 1}, {"d": [[1]]}, {"a": 1, "b": 2},
             {"f": [[1]]}, {"s": 1})
    for junk in junks:
        with pytest.raises(wire.ProtocolError):
            wire.from_wire(junk)
    with pytest.raises(TypeError):
        wire.to_wire(object())


# --- names, rows and the report, on submissions that need no worker ------------------------------------------


@pytest.mark.parametrize("folders, names", [
    (["/srv/class1/alice", "/srv/class2/alice", "/srv/class1/bob"], ["class1/alice", "class2/alice", "bob"]),
    (["/srv/c1/alice/ws/exercises", "/srv/c2/alice/ws/exercises", "/srv/c1/bob/ws/exercises"],
     ["c1/alice", "c2/alice", "bob"]),
    (["/a/b/c", "/d/b/c", "/a/e/c"], ["a/b", "d/b", "e"]),
    (["/srv/class/alice"], ["alice"]),
    (["/home", "/home/jupyter-amy/ws"], ["home", "jupyter-amy"]),
    (["/x", "/y/x"], ["/x", "y"]),
    (["/home/jupyter-amy", "/srv/x/jupyter-amy"], ["jupyter-amy", "x"]),  # a home is named by its user
    (["/"], ["/"]),
])
def test_each_learner_is_named_by_the_fewest_parts_of_their_folder_that_tell_them_apart(folders, names):
    assert learner_names([Path(f) for f in folders]) == {Path(f): n for f, n in zip(folders, names, strict=True)}


def test_a_workbook_named_alone_and_within_its_named_folder_is_one_row(tmp_path):
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / WB1).write_text("{}")
    found = find_workbooks([tmp_path / "amy", tmp_path / "amy" / WB1])
    assert found == [("amy", tmp_path / "amy" / WB1)]


def test_a_workbook_named_alone_belongs_to_its_folders_learner_and_its_path_is_absolute(tmp_path, monkeypatch):
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / WB1).write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert find_workbooks([Path("amy") / WB1]) == [("amy", tmp_path / "amy" / WB1)]


def test_a_link_to_a_folder_is_not_read_as_a_learners_folder(tmp_path):
    """A symbolic link, named or found in a folder, is a row of its own (refused when graded), never followed."""
    (tmp_path / "amy" / "elsewhere").mkdir(parents=True)
    (tmp_path / "amy" / "elsewhere" / WB1).write_text("{}")
    (tmp_path / "amy" / "linked").symlink_to(tmp_path / "amy" / "elsewhere", target_is_directory=True)
    assert find_workbooks([tmp_path / "amy"]) == [("amy", tmp_path / "amy" / "linked")]
    assert find_workbooks([tmp_path / "amy" / "linked"]) == [("amy", tmp_path / "amy" / "linked")]


def a_table(rows: list[tuple[str, str, str, str]]):
    import pandas as pd

    return pd.DataFrame([{"learner": learner, "exercise": exercise, "workbook": f"{exercise}.ipynb", "status": status,
                          "hint": hint, "seconds": 1.0, "path": f"/c/{learner}"}
                         for learner, exercise, status, hint in rows])


def test_the_summary_gives_each_exercises_pass_rate_and_the_commonest_failing_hints_first():
    table = a_table([("amy", "open_channel_request", "passed", ""),
                     ("bob", "open_channel_request", "failed", "Scenario 'small': refused nothing\nmore"),
                     ("cy", "open_channel_request", "failed", "Scenario 'small': refused nothing\nother"),
                     ("dee", "open_channel_request", "timed out", ""),
                     ("amy", "forwarding", "passed", ""),
                     ("eve", "", "not a notebook", "essay.txt is not a .ipynb workbook")])
    rates, hints = summary(table)
    assert rates.to_dict("index") == {"forwarding": {"pass_rate": 1.0, "workbooks": 1},
                                      "open_channel_request": {"pass_rate": 0.25, "workbooks": 4}}
    assert hints.to_dict("records") == [
        {"failing hint": "Scenario 'small': refused nothing", "learners": 2},
        {"failing hint": "timed out", "learners": 1},  # no hint: the status says it
        {"failing hint": "essay.txt is not a .ipynb workbook", "learners": 1}]


def test_what_to_explain_again_is_the_checks_hint_not_the_scenario_it_failed_in():
    """A check's message begins with its scenario ("Scenario 'forwarding' on Event.X:"); what to explain is its Hint
    line: three learners who failed one scenario for three reasons are three hints, not one scenario three times."""
    def failure(scenario: str, hint: str) -> str:
        return (f"Scenario '{scenario}' on Event.PendingHTLCsForwardable:\n  Expected: a random delay\n"
                f"  Happened: something else\n  Events so far: [PendingHTLCsForwardable]\n  Hint: {hint}")

    table = a_table([("bob", "forwarding", "failed", failure("forwarding", "draw a random fraction")),
                     ("cy", "forwarding", "failed", failure("forwarding", "use total_seconds()")),
                     ("dee", "forwarding", "failed", failure("forwarding", "never time.sleep in a handler")),
                     ("eve", "forwarding", "failed", failure("forwarding (again)", "draw a random fraction"))])
    _, hints = summary(table)
    assert hints.to_dict("records") == [{"failing hint": "draw a random fraction", "learners": 2},
                                        {"failing hint": "use total_seconds()", "learners": 1},
                                        {"failing hint": "never time.sleep in a handler", "learners": 1}]


def test_the_report_shows_pass_rates_hints_and_every_workbook(tmp_path):
    from ldkkit.grading import write_report

    table = a_table([("amy", "forwarding", "passed", ""), ("bob", "forwarding", "failed", "Hint: <look> again")])
    write_report(table, tmp_path / "out" / "today")
    rates, hints = summary(table)
    assert (tmp_path / "out" / "today" / "report.html").read_text() == "\n".join([
        "<html><head><meta charset='utf-8'><title>LDK events workshop: grades</title></head><body>",
        "<h1>LDK events workshop: grades</h1>", "<h2>Pass rate per exercise</h2>", rates.to_html(),
        "<h2>What to explain again: the most common failing hints</h2>", hints.to_html(index=False),
        "<h2>Every workbook</h2>", table.to_html(index=False), "</body></html>"])
    assert "&lt;look&gt;" in (tmp_path / "out" / "today" / "report.html").read_text()
    with open(tmp_path / "out" / "today" / "grades.csv", newline="") as f:
        assert list(csv.reader(f)) == [["learner", "exercise", "workbook", "status", "hint", "seconds", "path"],
                                       ["amy", "forwarding", "forwarding.ipynb", "passed", "", "1.0", "/c/amy"],
                                       ["bob", "forwarding", "forwarding.ipynb", "failed", "Hint: <look> again",
                                        "1.0", "/c/bob"]]


def test_the_report_shows_a_hints_lines_as_lines(tmp_path):
    """A check's message is lines (Scenario, Expected, Happened, Hint): pandas' to_html wrote each line break as the
    two characters \\n, so every failing row of report.html read 'Scenario ...:\\n  Expected: ...\\n  Happened: ...'."""
    from ldkkit.grading import write_report

    hint = "Scenario 'small' on Event.OpenChannelRequest:\n  Expected: <a rejection>\n  Hint: reject it & say why"
    write_report(a_table([("bob", "open_channel_request", "failed", hint)]), tmp_path)
    report = (tmp_path / "report.html").read_text()
    assert "\\n" not in report
    assert ("<td>Scenario 'small' on Event.OpenChannelRequest:<br>&nbsp;&nbsp;Expected: &lt;a rejection&gt;<br>"
            "&nbsp;&nbsp;Hint: reject it &amp; say why</td>") in report.replace("&#x27;", "'")


def test_a_cell_a_spreadsheet_would_read_as_a_formula_is_quoted_and_others_kept():
    import pandas as pd

    cells = ["=1+1", "+1", "-1", "@SUM(A1)", "\tcmd", "\rcmd", "a=b", "", "'quoted"]
    safe = safe_csv(pd.DataFrame({"hint": cells, "n": range(len(cells))}))
    assert list(safe["hint"]) == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tcmd", "'\rcmd", "a=b", "", "'quoted"]
    assert list(safe["n"]) == list(range(len(cells)))


def test_a_class_is_graded_into_one_sorted_row_per_file_and_a_report_in_a_new_folder(tmp_path, capsys):
    for learner, name in (("zed", "b.txt"), ("zed", "a.txt"), ("amy", "notes.md")):
        (tmp_path / learner).mkdir(exist_ok=True)
        (tmp_path / learner / name).write_text("x")
    out = tmp_path / "grades" / "monday"
    table = grade([tmp_path / "zed", tmp_path / "amy"], out, progress=True)
    assert list(zip(table["learner"], table["workbook"], table["status"], strict=True)) == [
        ("amy", "notes.md", "not a notebook"), ("zed", "a.txt", "not a notebook"), ("zed", "b.txt", "not a notebook")]
    assert list(table.index) == [0, 1, 2]
    assert list(table.columns) == ["learner", "exercise", "workbook", "status", "hint", "seconds", "path"]
    assert (out / "grades.csv").exists() and (out / "report.html").exists()
    bar = capsys.readouterr().err
    assert bar == ("\rgrading [##########....................] 1/3\rgrading [####################..........] 2/3"
                   "\rgrading [##############################] 3/3\n")
    table = grade([tmp_path / "amy"], out, progress=False)  # a folder that exists already is written again
    assert list(table["workbook"]) == ["notes.md"] and capsys.readouterr().err == ""
    assert len(list(csv.reader((out / "grades.csv").open()))) == 2


def test_without_an_output_folder_nothing_is_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / "notes.md").write_text("x")
    monkeypatch.chdir(tmp_path)
    table = grade([tmp_path / "amy"], progress=True)
    assert list(table["status"]) == ["not a notebook"]
    assert capsys.readouterr().err == "\rgrading [##############################] 1/1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["amy"]


# --- names that are not UTF-8 ----------------------------------------------------------------------------


def test_names_that_are_not_utf8_are_escaped_and_every_row_is_written(tmp_path):
    """A Latin-1 file or folder name (bytes Python reads as lone surrogates) is shown escaped, never the batch's end."""
    learner = tmp_path / os.fsdecode(b"l\xe9a")
    learner.mkdir()
    (learner / os.fsdecode(b"r\xe9sum\xe9.txt")).write_text("my CV")
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / "notes.md").write_text("x")
    table = grade([learner, tmp_path / "amy"], tmp_path / "out", progress=False)
    with open(tmp_path / "out" / "grades.csv", newline="", encoding="utf-8") as f:
        rows = [(r["learner"], r["workbook"], r["status"], r["hint"]) for r in csv.DictReader(f)]
    assert rows == [("amy", "notes.md", "not a notebook", "notes.md is not a .ipynb workbook"),
                    ("l\\xe9a", "r\\xe9sum\\xe9.txt", "not a notebook", "r\\xe9sum\\xe9.txt is not a .ipynb workbook")]
    assert list(table["path"])[1] == str(tmp_path / "l\\xe9a" / "r\\xe9sum\\xe9.txt")
    assert "r\\xe9sum\\xe9.txt" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


@ROOT_ONLY
def test_a_learner_folder_named_in_latin1_is_graded_like_any_other(tmp_path):
    """Its path is hidden from the learner process like any other: the mount is given the name's own bytes."""
    learner = tmp_path / os.fsdecode(b"\xe9l\xe8ve")
    learner.mkdir()
    (learner / WB1).write_text(own_handler(WB1, "eleve"))
    table = own_grade([learner], None, timeout_s=60, jobs=1, progress=False)
    assert list(zip(table["learner"], table["status"], strict=True)) == [("\\xe9l\\xe8ve", "passed")], table["hint"][0]


# --- cells read as IPython reads them ------------------------------------------------------------------------


def solution_handler(name: str) -> str:
    """The cell of a solution workbook that defines its handler."""
    sources = ["".join(cell["source"]) for cell in cells_of(name) if cell["cell_type"] == "code"]
    return next(source for source in sources if "def handle_ldk_events" in source)


def test_a_line_that_starts_with_percent_or_bang_inside_a_statement_is_python():
    source = good("no").replace('"no"', "'no %s' \n                % 'thanks'").replace(
        "if sats > 5_000_000:", "if (sats > 5_000_000\n                != False):")
    found = learner_code({"cells": [code(source)]})
    cell = found.cells[0]
    assert found.has_handler and "'no %s' \n                % 'thanks'" in cell and "!= False" in cell
    assert "get_ipython" not in found.cells[0]  # (run as the Python it is, as written)


@pytest.mark.parametrize("without_ipython", [False, True])
def test_magics_and_shell_commands_are_read_as_ipython_reads_them(monkeypatch, without_ipython):
    from ldkkit.sandbox import source

    if without_ipython:  # the grader installed without Jupyter: a rougher reading, the same verdicts here
        monkeypatch.setattr(source, "_ipython_transformer", lambda: None)
    old = "def handle_ldk_events(*args):\n    pass\n"

    def read(*cells: str):
        return learner_code({"cells": [code(c) for c in cells]})

    assert read("%%writefile handler.py\n" + good("no")).has_handler is False  # Jupyter only writes it to a file
    assert read("%%script false\n" + good("no")).has_handler is False
    written = read(good("no"), "%%writefile old.py\n" + old).cells[1]  # (no def: a call with the text)
    assert not any(isinstance(node, ast.FunctionDef) for node in ast.walk(ast.parse(written)))
    for magic in ("%%time", "%%capture out", "%%prun -s cumulative"):  # these run the cell in the notebook
        found = read(magic + "\n%env X=1\n" + good("no"))
        assert found.has_handler and found.cells[0].startswith("get_ipython().run_line_magic('env', 'X=1')\n")
    assert read("%time handle_ldk_events = make()").cells == ["handle_ldk_events = make()"]
    assert "solutions/" in read("%%time\n" + solution_handler(WB1)).copied
    if not without_ipython:  # (only IPython reads these on a line of their own)
        assert read("files = !ls\nEvent.OpenChannelRequest?\n" + good("no")).has_handler


def test_a_workbook_with_magics_is_graded_as_jupyter_runs_it(tmp_path):
    """An old handler kept in a %%writefile cell is not the handler; %time and %%time run; !ls runs nothing."""
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / WB1).write_text(with_handler(
        "%%time\n" + good("no", "assert FILES == [] and TIMED == 2"),
        "FILES = !ls\n%time TIMED = 2\n%matplotlib inline\nEvent.OpenChannelRequest?",
        "%%writefile first_try.py\ndef handle_ldk_events(*args):\n    pass\n"))
    table = own_grade([tmp_path / "amy"], None, timeout_s=60, jobs=1, progress=False)
    assert list(table["status"]) == ["passed"], table["hint"][0]


def test_a_workbook_ipython_takes_minutes_to_read_is_its_own_timed_out_row_and_stalls_no_other(tmp_path, monkeypatch):
    """IPython reads a whole cell again for each of its magic lines: a hundred of them in 128 KiB took 50 s to read, in
    the grader's own process, holding up every workbook of the batch. Its reading is within its own limit now, in a
    process of the worker's: its row says it could not be read in time (a reading the worker waited out would have
    passed), and the grader's process reads no workbook's code (so no other workbook waits for it). (A thousand magic
    lines: minutes to read on any machine, ten times the limit on one ten times as fast.)"""
    from ldkkit.sandbox import source

    read_here: list[int] = []
    real = source.python_of
    monkeypatch.setattr(source, "python_of", lambda cell: read_here.append(len(cell)) or real(cell))
    (tmp_path / "aaa-mallory").mkdir()
    (tmp_path / "bob").mkdir()
    slow = good("no") + "x = !ls\n" * 1000 + "y = 1\n" * (128 * 1024 // 6)
    (tmp_path / "aaa-mallory" / WB1).write_text(with_handler(slow))
    (tmp_path / "bob" / "05_forwarding.ipynb").write_text(own_handler("05_forwarding.ipynb", "bob"))
    table = own_grade([tmp_path / "aaa-mallory", tmp_path / "bob"], None, timeout_s=10, jobs=2, progress=False)
    rows = {learner: (status, hint) for learner, status, hint
            in zip(table["learner"], table["status"], table["hint"], strict=True)}
    status, hint = rows["aaa-mallory"]
    assert status == "timed out" and "could not read the workbook's code within its 10 s limit" in hint, hint
    assert "1000 of its lines shell commands or magics" in hint
    status, hint = rows["bob"]
    assert status == "passed", hint
    assert read_here == []  # (what a cell runs as, IPython's reading, is never read in the grader's process)
    assert sandbox_processes() == []


# --- copy detection costs the workbook's size, however deep its functions nest ---------------------------


def test_functions_nested_deep_are_fingerprinted_once_each(monkeypatch):
    import hashlib
    import types

    from ldkkit.sandbox import source

    known_handlers()  # (the kit's own handlers, read once, are not this workbook's cost)
    hashed = []

    def counting(data: bytes):
        hashed.append(len(data))
        return hashlib.sha256(data)

    monkeypatch.setattr(source, "hashlib", types.SimpleNamespace(sha256=counting))
    depth, lines = 60, 200
    nested = "".join(" " * i + f"def g{i}(a, b):\n" for i in range(depth))
    nested += "".join(" " * depth + f"x{j} = a + b * {j}\n" for j in range(lines))
    found = learner_code({"cells": [code(nested)]})
    assert len(hashed) == depth and not found.copied
    body = len(ast.dump(ast.parse(nested), annotate_fields=False))
    assert sum(hashed) < 2 * body  # each function's own code once: not ninety times the workbook


def _as_a_learner_writes_it(source: str, comment: str = "# LDK hands it back to me") -> str:
    """A solution's handler cell as a learner who filled in the exercise writes it: the code the workbook asks for,
    without the solution's marks, its comments in the learner's own words."""
    lines = [line for line in source.splitlines() if "### " not in line]
    return "\n".join(re.sub(r"  # .*$", "  " + comment, line) for line in lines) + "\n"


@pytest.mark.parametrize("name", ["01_open_channel_request.ipynb", "02_funding_generation_ready.ipynb",
                                  "03_receiving_payments.ipynb", "06_on_chain.ipynb",
                                  "07_background_processor.ipynb"])
def test_the_answer_a_workbook_dictates_written_in_the_learners_own_words_is_no_copy(name):
    """Workbook 7 asks for each write to be caught and the event asked for again: a learner who does just that has the
    solution's shape. What makes a copy is the solution's own words: its marks, comments and messages."""
    source = solution_handler(name)
    assert learner_code({"cells": [code(_as_a_learner_writes_it(source))]}).copied == ""
    assert f"solutions/{name}" in learner_code({"cells": [code(source)]}).copied  # (pasted whole: its marks)


@pytest.mark.parametrize("name", ["05_forwarding.ipynb", "08_capstone.ipynb"])
def test_a_solution_pasted_with_a_print_of_its_own_is_a_copy(name):
    """A helper's probe: a solution pasted whole, marks and all, with one print() added, was graded passed (its shape
    was no longer the solution's). A line printed changes nothing the handler does."""
    source = solution_handler(name).replace("    match event:\n", "    print('handling', event)\n    match event:\n", 1)
    assert "print('handling'" in source
    assert f"solutions/{name}" in learner_code({"cells": [code(source)]}).copied
    logged = source.replace("print('handling', event)", "handled.append(event)")  # (a statement that does something)
    assert learner_code({"cells": [code(logged)]}).copied == ""


def test_a_solution_pasted_without_its_marks_is_a_copy_by_its_own_comments_and_messages():
    source = solution_handler("07_background_processor.ipynb")
    kept = _as_a_learner_writes_it(source, comment="# nothing is lost: LDK hands this event over again")
    assert "solutions/07_background_processor" in learner_code({"cells": [code(kept)]}).copied
    message = _as_a_learner_writes_it(solution_handler("05_forwarding.ipynb"))
    assert "Forwarded a payment, earning %s msat" in message
    assert "solutions/05_forwarding" in learner_code({"cells": [code(message)]}).copied


def test_a_workbook_dictates_its_answer_graded_on_what_it_does(tmp_path):
    """The learner of workbook 7 who writes what it asks, in their own words, is graded: it passes."""
    cells = cells_of("07_background_processor.ipynb")
    for cell in cells:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            cell["source"] = _as_a_learner_writes_it(source)
    path = tmp_path / "07_background_processor.ipynb"
    path.write_text(notebook(cells))
    row = grade_workbook("amy", path, batch=Batch())
    assert (row.status, row.hint) == ("passed", "")


#: Workbook 1's policy, the learner's own words, as a method of a class of theirs (no def handle_ldk_events at all).
POLICY_CLASS = ("from ldkkit.events import Event\nfrom ldkkit.exercises import check\n\n\n"
                "class ChannelPolicy:\n    def __init__(self, minimum):\n        self.minimum = minimum\n\n"
                "    def handle(self, channel_manager, bitcoind_client, network_graph, keys_manager,\n"
                "               bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments, fs_store,\n"
                "               output_sweeper, network, event):\n"
                "        if isinstance(event, Event.OpenChannelRequest):\n"
                "            if event.funding_satoshis > self.minimum:\n"
                "                uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], 'big')\n"
                "                channel_manager.accept_inbound_channel(event.temporary_channel_id,\n"
                "                                                       event.counterparty_node_id, uid)\n"
                "            else:\n"
                "                channel_manager.force_close_without_broadcasting_txn(\n"
                "                    event.temporary_channel_id, event.counterparty_node_id, 'too small for us')\n\n\n"
                "policy = ChannelPolicy(5_000_000)\nmy_handler = policy.handle\n")


@pytest.mark.parametrize("given", ["policy.handle", "my_handler", "lambda *args: policy.handle(*args)"])
def test_a_handler_given_to_check_as_a_method_or_a_lambda_is_the_workbooks_own(tmp_path, given):
    """check() in Jupyter takes the handler it is given: a method of the learner's own class, a name bound to one, a
    lambda. Graded "no handler" (its hint blaming an exec the learner never wrote) while the notebook passed."""
    path = tmp_path / WB1
    path.write_text(notebook([code(POLICY_CLASS), code(f"check('open_channel_request', {given})")]))
    row = grade_workbook("amy", path, batch=Batch())
    assert (row.status, row.hint) == ("passed", "")


@pytest.mark.parametrize("calls", ["from ldkkit.exercises import check as c\nc('open_channel_request', my_handler)",
                                   "from ldkkit.exercises import judge\njudge('open_channel_request', my_handler)",
                                   "run = check\nrun('open_channel_request', my_handler)"])
def test_the_check_under_another_name_takes_the_handler_it_is_given(tmp_path, calls):
    """check imported as another name, bound to another, or judge (the check without its record): graded "no handler"
    (its hint blaming an exec never written), while the notebook passed."""
    path = tmp_path / WB1
    path.write_text(notebook([code(POLICY_CLASS), code(calls)]))
    row = grade_workbook("amy", path, batch=Batch())
    assert (row.status, row.hint) == ("passed", "")


def test_the_workbooks_namespace_is_the_module_main_as_in_jupyter(tmp_path):
    """A class of the workbook's, pickled by the handler (pickle looks it up as __main__.Decision): graded 'failed'
    (PicklingError), while it passed in Jupyter, whose notebook namespace is the module __main__."""
    arm = "        if isinstance(event, Event.OpenChannelRequest):\n"
    cell = ("import pickle\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Decision:\n    ok: bool\n\n\n"
            + POLICY_CLASS.replace(arm, "        pickle.loads(pickle.dumps(Decision(True)))\n" + arm, 1))
    path = tmp_path / WB1
    path.write_text(notebook([code(cell), code("import __main__\nassert __main__.Decision is Decision\n"
                                               "check('open_channel_request', my_handler)")]))
    row = grade_workbook("amy", path, batch=Batch())
    assert (row.status, row.hint) == ("passed", "")


def test_a_rows_traceback_names_the_line_of_the_cell_as_the_learner_wrote_it(tmp_path):
    """The cell runs as its text is, comments and blank lines kept: the line a traceback names is the learner's (the
    cell once ran as ast.unparse gave it back, and line 9 was named for line 14)."""
    cell = ("from ldkkit.exercises import check\n\n\n# my handler, with notes\n\n"
            "def handle_ldk_events(*args):\n    # first, nothing\n\n    event = args[-1]\n\n\n"
            "    # then the line that fails\n    total = 0\n    return event.funding_satoshis / total  # line 14\n")
    assert cell.splitlines()[13].endswith("# line 14")
    path = tmp_path / WB1
    path.write_text(notebook([code(cell), code("check('open_channel_request', handle_ldk_events)")]))
    row = grade_workbook("amy", path, batch=Batch())
    assert row.status == "failed" and 'File "<cell 1>", line 14, in handle_ldk_events' in row.hint, row.hint


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("can't start new thread"),
                                   OSError(24, "Too many open files")])
def test_a_cell_stopped_by_the_graders_limits_is_told_so_not_as_its_own_error(error):
    """A cell starting 70 threads, or holding 3 GiB, runs in Jupyter: stopped by the sandbox's limits, the row said only
    that Run All stops at a cell that raises, as if Jupyter would have too."""
    from ldkkit.sandbox.kernel import stopped_at

    assert "the grader's limits on a workbook's process" in stopped_at(2, error)
    assert "limits" not in stopped_at(2, KeyError("x"))


def test_a_handler_compiled_elsewhere_and_named_as_a_cell_is_not_the_workbooks():
    """A function counts as the workbook's only if compiling its cell's own text makes it: code made elsewhere and given
    a cell's name (marshal, exec of a string, a solution's) is not, though its file name says "<cell 2>"."""
    import linecache
    import types

    from ldkkit.sandbox.kernel import defined_in_the_workbook

    cell = "import types\n\n\ndef handle_ldk_events(*args):\n    pass\n"
    linecache.cache["<cell 2>"] = (len(cell), None, cell.splitlines(keepends=True), "<cell 2>")
    try:
        ran: dict = {}
        exec(compile(cell, "<cell 2>", "exec"), ran)  # noqa: S102  (the cell, as the sandbox runs it)
        assert defined_in_the_workbook(ran["handle_ldk_events"])
        for elsewhere in ("def handle_ldk_events(*args):\n    return 'the solution'\n",  # (another body)
                          "\n\n\ndef handle_ldk_events(*args):\n    return 'the solution'\n"):  # (on the def's line)
            made: dict = {}
            exec(compile(elsewhere, "<cell 2>", "exec"), made)  # noqa: S102
            assert not defined_in_the_workbook(made["handle_ldk_events"])
            assert not defined_in_the_workbook(types.MethodType(made["handle_ldk_events"], object()))
    finally:
        linecache.cache.pop("<cell 2>", None)


@pytest.mark.parametrize("padding", ["0", "None", "event", "event = event", "_ = 0", "seen = 0",
                                     "unused = (1, 'x', -2 * 3)"])
@pytest.mark.parametrize("name", [WB1, "03_receiving_payments.ipynb", "08_capstone.ipynb"])
def test_a_pasted_solution_padded_with_a_statement_that_does_nothing_or_made_async_is_a_copy(name, padding):
    """A value or a name alone, ``x = x``, ``_ = 0``: statements that do nothing hide no copy, nor does ``async def``
    for ``def``. (Each made a pasted solution 'passed'.)"""
    source = solution_handler(name)
    padded = source.replace("    match event:\n", f"    {padding}\n    match event:\n", 1)
    assert padded != source and f"solutions/{name}" in learner_code({"cells": [code(padded)]}).copied
    flipped = source.replace("async def handle_ldk_events", "def handle_ldk_events").replace(
        "def handle_ldk_events", "async def handle_ldk_events") if "async def" not in source else \
        source.replace("async def handle_ldk_events", "def handle_ldk_events")
    assert flipped != source and f"solutions/{name}" in learner_code({"cells": [code(flipped)]}).copied


@pytest.mark.parametrize("negated", ["not", "opposite"])
def test_a_pasted_solution_with_an_if_turned_round_is_a_copy(negated):
    """``if x: a else: b`` written ``if not x: b else: a``, or with the opposite comparison (``<=`` for ``>``): the
    same code. (A copy turned round so 'passed'.)"""
    source = solution_handler("08_capstone.ipynb")
    tree = ast.parse(source)
    turned = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and node.orelse:
            compared = isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 and type(node.test.ops[0]) in (
                ast.Gt, ast.Lt, ast.Eq, ast.In, ast.Is)
            if negated == "not":
                node.test = ast.UnaryOp(ast.Not(), node.test)
            elif compared:
                opposite = {ast.Gt: ast.LtE, ast.Lt: ast.GtE, ast.Eq: ast.NotEq, ast.In: ast.NotIn, ast.Is: ast.IsNot}
                node.test.ops = [opposite[type(node.test.ops[0])]()]
            else:
                continue
            node.body, node.orelse = node.orelse, node.body
            turned += 1
    assert turned
    assert "solutions/08_capstone.ipynb" in learner_code({"cells": [code(ast.unparse(tree))]}).copied


def test_a_copy_is_named_however_deep_it_is_nested():
    handler = solution_handler(WB1)
    nested = "".join(" " * 4 * i + f"def outer{i}():\n" for i in range(30)) + textwrap.indent(handler, " " * 4 * 30)
    assert "solutions/" in learner_code({"cells": [code(nested)]}).copied


# --- nothing outlives a workbook ---------------------------------------------------------------------------


def world_writable_folders() -> list[str]:
    """The folders any user may write in, but the private ones (a learner process gets its own /tmp)."""
    found = []
    for top in ("/run", "/var", "/dev", "/srv", "/opt", "/mnt", "/media", "/etc"):
        for folder, subfolders, _ in os.walk(top):
            subfolders[:] = [s for s in subfolders if not os.path.islink(os.path.join(folder, s))]
            if os.stat(folder).st_mode & 0o002 and folder not in ("/var/tmp", "/dev/shm"):
                found.append(folder)
    return found


@ROOT_ONLY
def test_a_learner_leaves_nothing_in_world_writable_folders_or_shared_memory(tmp_path):
    folders = world_writable_folders()
    key = 0x4C0000 + os.getpid() % 0xFFFF
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / WB1).write_text(with_handler(
        good("no"),
        f"for folder in {folders!r}:\n    try:\n        open(folder + '/{MARKER}', 'w').write('for the next one')\n"
        "    except OSError:\n        pass",
        f"import ctypes\nlibc = ctypes.CDLL('libc.so.6')\nlibc.shmget({key}, 4096, 0o1666)\n"
        f"libc.msgget({key}, 0o1666)\nlibc.semget({key}, 1, 0o1666)"))
    try:
        table = own_grade([tmp_path / "amy"], None, timeout_s=60, jobs=1, progress=False)
        assert list(table["status"]) == ["passed"], table["hint"][0]
        keys = {int(line.split()[0]) for kind in ("shm", "msg", "sem")
                for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]}
        assert ([f for f in folders if os.path.lexists(f"{f}/{MARKER}")], key in keys) == ([], False)
    finally:
        for folder in folders:
            Path(f"{folder}/{MARKER}").unlink(missing_ok=True)
        for kind in ("-M", "-Q", "-S"):
            subprocess.run(["ipcrm", kind, str(key)], capture_output=True, check=False)
