"""A grade is what the learner saw in Jupyter's Run All: the check as its cell ran it, and no check after an error.

Run All runs the cells top to bottom and stops at the first that raises; the check cell checks
the handler it is given as it stands then, and nothing after it changes what it said. Each
workbook below was run for real with nbclient (Run All's semantics) to learn what the learner
sees; the grader must give the same verdict, and a row that says why where no check ran. One
class is graded once (the ``graded`` fixture).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from test_grading import good

from ldkkit.grading import grade
from ldkkit.sandbox import jail, source
from ldkkit.sandbox.source import InvalidWorkbook, code_cells, read_workbook

WB1 = "01_open_channel_request.ipynb"
HEAD = "from ldkkit.events import Event\nfrom ldkkit.exercises import check\n"
RIGHT = good("run all says no")  # (test_grading's right handler for workbook 1)
#: Accepts every request, the small ones too: check() fails it.
WRONG = """def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
                      peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
    if isinstance(event, Event.OpenChannelRequest):
        uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)
"""
CHECK = 'check("open_channel_request", handle_ldk_events)'
SCENARIO = ("from ldkkit import scenarios\n"
            "print(scenarios.run('inbound_open_accept', handle_ldk_events).event_names())\n")
STOPS = "In Jupyter, Run All stops at a cell that raises, so the check cell never ran"


def code(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}


def notebook(*cells: str | dict) -> str:
    return json.dumps({"cells": [code(c) if isinstance(c, str) else c for c in cells], "metadata": {},
                       "nbformat": 4, "nbformat_minor": 5})


#: learner -> (workbook 1, Run All's verdict as nbclient gave it, words the row must hold)
CLASS = {
    # a cell that raises before the check: Run All stops there; the learner never sees a verdict
    "raises": (notebook(HEAD, RIGHT, "1/0", CHECK), "failed", ["code cell 3 raised ZeroDivisionError", STOPS]),
    "typo": (notebook(HEAD, RIGHT, "print('unclosed'", CHECK), "failed",
             ["code cell 3 raised SyntaxError: '(' was never closed (line 1)", STOPS]),
    "exits": (notebook(HEAD, RIGHT, "import sys\nsys.exit(0)", CHECK), "failed", ["raised SystemExit", STOPS]),
    "awaits": (notebook(HEAD, RIGHT, "import asyncio\nawait asyncio.sleep(0)\n{}['x']", CHECK), "failed",
               ["code cell 3 raised KeyError: 'x'", STOPS]),
    "deletes": (notebook(HEAD, RIGHT, "del handle_ldk_events", CHECK), "failed",
                ["code cell 4 raised NameError: name 'handle_ldk_events' is not defined", STOPS]),
    # the check checks the handler as it stands at the check cell; what comes after changes nothing
    "fixes_too_late": (notebook(HEAD, WRONG, CHECK, RIGHT), "failed", ["Hint:"]),
    "breaks_after": (notebook(HEAD, RIGHT, CHECK, WRONG), "passed", []),
    "checks_twice": (notebook(HEAD, WRONG, CHECK, RIGHT, CHECK), "failed", ["Hint:"]),
    "ends_after": (notebook(HEAD, RIGHT, CHECK, "import os\nos._exit(0)"), "passed", []),
    "goes_on": (notebook(HEAD, RIGHT, CHECK, "def handle_ldk_events(*args):\n    pass\n",
                         'check("forwarding", handle_ldk_events)'), "passed", []),
    # a cell the grader cannot run as Jupyter does (the scenarios' peers run the kit's reference handlers, which a
    # learner process has not got) does not stop it: another workbook's check, then "See it work"
    "sees_it_work": (notebook(HEAD, RIGHT, "from ldkkit import scenarios\n"
                              "print(scenarios.run('inbound_open_accept', handle_ldk_events).event_names())", CHECK),
                     "passed", []),
    # a scenario cell runs on in Jupyter, but an error of the learner's own after it (or one that swallowed the stub's)
    # stops Run All, and what the rest of that cell binds counts at the check
    "scenario_then_rebinds": (notebook(HEAD, RIGHT, WRONG.replace("def handle_ldk_events", "def wrong"),
                                       SCENARIO + "handle_ldk_events = wrong", CHECK), "failed", ["Hint:"]),
    "scenario_then_raises": (notebook(HEAD, RIGHT, SCENARIO + "1/0", CHECK), "failed",
                             ["code cell 3 raised ZeroDivisionError", STOPS]),
    "scenario_result": (notebook(HEAD, RIGHT, "from ldkkit import scenarios\nresult = scenarios.run("
                                 "'inbound_open_accept', handle_ldk_events)\nprint(result.event_names())", CHECK),
                        "passed", []),
    "swallows_the_stub": (notebook(HEAD, RIGHT, "import ldkkit.reference as r\ntry:\n    r.handle_ldk_events()\n"
                                   "except Exception:\n    pass\n1/0", CHECK), "failed",
                          ["code cell 3 raised ZeroDivisionError", STOPS]),
    # the kit's reference handler, wrapped in a def of the workbook's own (ldkkit.scenarios had the real one in the
    # learner process): Run All passes it, but it is never graded as the learner's own
    "wraps_the_reference": (notebook(HEAD, "from ldkkit import scenarios\nR = scenarios.reference\n"
                                     "def handle_ldk_events(*args):\n    return R.handle_ldk_events(*args)\n", CHECK),
                            "failed", ["the kit's reference handlers are not available while grading"]),
    # a check the learner process cannot run (judge: the check recording nothing) is noted as check is
    "judges_first": (notebook(HEAD, WRONG, "from ldkkit.exercises import judge\n"
                              "judge('open_channel_request', handle_ldk_events)", RIGHT, CHECK), "failed", ["Hint:"]),
    # what the check is given: any callable of the workbook's own, under any name; the workbook under any name
    # a call the check refuses: Run All stops at it
    "misnamed_argument": (notebook(HEAD, RIGHT, 'check("open_channel_request", handler=handle_ldk_events)'), "failed",
                          ["TypeError: check() got an unexpected keyword argument 'handler'", STOPS]),
    "no_handler_given": (notebook(HEAD, RIGHT, 'check("open_channel_request")'), "failed",
                         ["TypeError: check() missing 1 required positional argument: 'handle_ldk_events'", STOPS]),
    "misspelt_workbook": (notebook(HEAD, RIGHT, 'check("Open_Channel_Request", handle_ldk_events)'), "failed",
                          ["raised ldkkit.exercises.common.ExerciseFailed: no workbook called 'Open_Channel_Request'",
                           STOPS]),
    "given_none": (notebook(HEAD, RIGHT, 'check("open_channel_request", None)'), "failed",
                   ["check() needs your handle_ldk_events function, got None", STOPS]),
    "path_name": (notebook(HEAD, RIGHT, "from pathlib import Path\ncheck(Path('01_open_channel_request.ipynb'), "
                           "handle_ldk_events)", WRONG), "passed", []),
    "partial": (notebook(HEAD, "import functools\n" + RIGHT.replace("(channel_manager,", "(tag, channel_manager,"),
                         "handle_ldk_events = functools.partial(handle_ldk_events, 'mine')", CHECK), "passed", []),
    "callable": (notebook(HEAD, RIGHT.replace("def handle_ldk_events", "def _answer"),
                          "class Handler:\n    def __call__(self, *args):\n        return _answer(*args)\n",
                          "handle_ldk_events = Handler()", CHECK), "passed", []),
    "own_name": (notebook(HEAD, RIGHT.replace("def handle_ldk_events", "def mine"),
                          'check("open_channel_request", mine)'), "passed", []),
    # what a Jupyter kernel does that a plain process does not: exit() asks the front end, input() gets an answer
    "asks": (notebook(HEAD, RIGHT, "exit()\nquit()\nname = input('who are you? ')", CHECK), "passed", []),
    "shell": (notebook(HEAD, RIGHT, "ip = get_ipython()\nip.user_ns['seen'] = 1\nassert seen == 1", CHECK),
              "passed", []),
    # another workbook's check: the learner saw that one's verdict; the row says which check it is
    "wrong_check": (notebook(HEAD, WRONG, 'check("forwarding", handle_ldk_events)'), "failed",
                    ["Hint:", "check('forwarding', ...) before its own, another workbook's check",
                     "this row is the check of 'open_channel_request'"]),
    # and before its own, passed: Run All stopped at the other check if that one failed, so the row says it was there
    "other_check_first": (notebook(HEAD, RIGHT, 'check("forwarding", handle_ldk_events)', CHECK), "passed",
                          ["check('forwarding', ...) before its own", "Run All stops at that other check"]),
    # a handler Jupyter never runs, or one the grader cannot see: told where it is
    "raw_cell": (notebook(HEAD, {"cell_type": "raw", "metadata": {}, "source": RIGHT}, CHECK), "no handler",
                 ["Cell 2 holds def handle_ldk_events, but it is a raw cell, which Jupyter does not run"]),
    "own_module": (notebook(HEAD, "from myhandler import handle_ldk_events", CHECK), "no handler",
                   ["imports handle_ldk_events from myhandler, a module beside it",
                    "the handler belongs in the workbook"]),
    # text run as code: a solution kept as text (here base64) passes in Jupyter, and no reading of the cells sees it
    "runs_text": (notebook(HEAD, "import base64\ndef handle_ldk_events(*args):\n    pass\n\n"
                                 f"exec(compile(base64.b64decode({base64.b64encode(RIGHT.encode())!r}), '<cell 2>', "
                                 "'exec'))", CHECK), "no handler",
                  ["code cell 2 calls exec(): a workbook that runs text as code is not graded"]),
    # no check cell: Run All shows no verdict, and the handler is graded all the same, the row saying so
    "no_check_cell": (notebook(HEAD, RIGHT), "passed", ["The workbook has no check(...) cell"]),
    "no_check_cell_wrong": (notebook(HEAD, WRONG), "failed", ["Hint:", "The workbook has no check(...) cell"]),
    "compiles_a_pattern": (notebook(HEAD, "import re\nPEER = re.compile('^02')\n" + RIGHT, CHECK), "passed", []),
    # (re's compile, imported by name: no builtin either; it was graded 'no handler', running text as code)
    "imports_compile": (notebook(HEAD, "from re import compile\nPEER = compile('^02')\n" + RIGHT, CHECK), "passed", []),
    "compile_from_builtins": (notebook(HEAD, "from builtins import compile\n" + RIGHT + "\nexec(compile('x = 1', "
                                       "'<cell 2>', 'exec'))", CHECK), "no handler", ["calls exec()"]),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("run-all")
    for learner, (content, _, _) in CLASS.items():
        (root / learner).mkdir()
        (root / learner / WB1).write_text(content)
    (root / "own_module" / "myhandler.py").write_text("from ldkkit.events import Event\n\n" + RIGHT)
    table = grade(sorted(root.iterdir()), timeout_s=60, jobs=2, progress=False)
    return {row.learner: (row.status, row.hint) for row in table.itertuples() if row.workbook == WB1}


@pytest.mark.parametrize("learner", sorted(CLASS))
def test_each_row_is_what_run_all_showed(graded, learner):
    status, hint = graded[learner]
    _, expected, words = CLASS[learner]
    assert status == expected, hint
    for word in words:
        assert word in hint, hint


# --- files Jupyter cannot open, or opens as another format -----------------------------------------


def test_a_version_3_notebook_is_read_as_jupyter_converts_it(tmp_path):
    path = tmp_path / WB1
    path.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": HEAD, "language": "python", "outputs": [], "metadata": {}},
        {"cell_type": "heading", "level": 1, "source": "Mine", "metadata": {}},
        {"cell_type": "code", "input": RIGHT, "language": "python", "outputs": [], "metadata": {}}]}]}))
    assert code_cells(read_workbook(path)) == [HEAD, RIGHT]


@pytest.mark.parametrize("data, words", [
    (b"", "is empty"),
    (b"\xef\xbb\xbf" + notebook(HEAD).encode(), "starts with a byte-order mark"),
    (notebook("# cafe").replace("cafe", "caf\u00e9").encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    (None, "is a zip archive"),
])
def test_a_file_jupyter_cannot_open_says_why(tmp_path, data, words):
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(WB1, notebook(HEAD))
        data = buffer.getvalue()
    path = tmp_path / WB1
    path.write_bytes(data)
    with pytest.raises(InvalidWorkbook, match="Jupyter cannot open it") as raised:
        read_workbook(path)
    assert words in str(raised.value)



def test_a_notebook_too_large_to_read_says_what_to_clear(tmp_path, monkeypatch):
    """Its outputs make it large (Jupyter opens it): the row says how to make it gradable."""
    monkeypatch.setattr(source, "MAX_NOTEBOOK_BYTES", 1000)
    path = tmp_path / WB1
    path.write_text(notebook(HEAD, {**code(RIGHT), "outputs": [{"output_type": "stream", "name": "stdout",
                                                               "text": "x" * 2000}]}))
    with pytest.raises(InvalidWorkbook, match="its saved outputs most likely: clear them in Jupyter"):
        read_workbook(path)


def test_a_notebook_of_millions_of_empty_cells_is_refused_before_it_is_read(tmp_path):
    """Under the size limit, but each of its cells an object the grader's own process would hold (a 63 MB notebook of
    {} cells took 1.8 GB there): refused before it is parsed, and a workbook of the kit is far from the limit."""
    path = tmp_path / WB1
    path.write_text('{"cells": [' + ", ".join(["{}"] * (source.MAX_JSON_CONTAINERS + 1)) + '], "metadata": {}}')
    with pytest.raises(InvalidWorkbook, match="JSON objects and lists, where a workbook holds a few hundred"):
        read_workbook(path)
    text = (Path(__file__).resolve().parent.parent / "solutions" / "08_capstone.ipynb").read_bytes()
    assert text.count(b"{") + text.count(b"[") < source.MAX_JSON_CONTAINERS // 100


def test_a_notebook_of_millions_of_short_strings_is_refused_before_it_is_read(tmp_path):
    """A helper's probe: a 61 MiB notebook whose metadata held 12.9 million short strings took the grader to 1.1 GB
    as it parsed. Refused before it is parsed; quotes escaped inside a string are none, and a workbook of the kit,
    its outputs included, is far from the limit."""
    path = tmp_path / WB1
    strings = ", ".join(['"a"'] * (source.MAX_JSON_STRINGS + 1))
    path.write_text('{"cells": [], "metadata": {"x": [' + strings + ']}}')
    with pytest.raises(InvalidWorkbook, match="JSON strings, where a workbook holds a few thousand"):
        read_workbook(path)
    quoted = json.dumps({"cells": [], "metadata": {"x": '\"' * (source.MAX_JSON_STRINGS * 2 + 10)}})
    path.write_text(quoted)
    assert read_workbook(path)["cells"] == []
    for name in ("08_capstone.ipynb", "03_receiving_payments.ipynb"):
        text = (Path(__file__).resolve().parent.parent / "solutions" / name).read_bytes()
        assert text.count(b'"') // 2 < source.MAX_JSON_STRINGS // 100


@pytest.mark.skipif(not jail.is_root(), reason="the sandbox's user and namespaces need root")
def test_another_checkout_of_the_kit_in_home_cannot_be_read(tmp_path):
    """An instructor's checkout holds the solutions: a cell that reads one there and runs it as its own passed."""
    teacher = Path("/home") / f"ldkkit-teacher-{os.getpid()}"
    solution = teacher / "ldk-events-workshop" / "solutions" / "handler.py"
    try:
        solution.parent.mkdir(parents=True)
        solution.write_text(RIGHT)
        for folder in (teacher, *teacher.rglob("*")):
            folder.chmod(0o755 if folder.is_dir() else 0o644)
        (tmp_path / "eve").mkdir()
        (tmp_path / "eve" / WB1).write_text(notebook(
            HEAD, "def handle_ldk_events(*args):\n    pass\n",
            f"solution = open({str(solution)!r}).read()  # (to run as the cell's own: see runs_text)", CHECK))
        row = grade([tmp_path / "eve"], timeout_s=60, progress=False).iloc[0]
    finally:
        shutil.rmtree(teacher, ignore_errors=True)
    assert row.status == "failed" and "FileNotFoundError" in row.hint, row.hint
