"""The grader's verdicts when something goes wrong: never "passed" unless the check passed.

Fast and without a class to grade (tests/test_grading.py grades one whole): each test puts
one kind of trouble where it happens (a worker that hangs, a check that meets the
unforeseen, a worker that prints nonsense) and reads the row.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ldkkit import grading
from ldkkit.exercises import ExerciseFailed
from ldkkit.sandbox import bridge, node_folders, worker

HANDLER = ("from ldkkit.events import Event\n\n"
           "def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, "
           "bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, "
           "network, event):\n"
           "    written_by = 'the test of the grader'\n"
           "    return None\n")


def workbook(folder: Path, name: str = "01_open_channel_request.ipynb") -> Path:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": HANDLER}
    path = folder / name
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def started(argv: list[str]):
    """A stand-in for the grader's worker: ``argv`` run in a session of its own, as the real one is."""
    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    return start


def test_a_workbook_whose_worker_never_answers_is_graded_timed_out(tmp_path, monkeypatch):
    """The grader's own limit: a worker still silent at the workbook's limit is stopped and the row says so."""
    launched: list[subprocess.Popen[bytes]] = []
    hang = started([sys.executable, "-c", "import time\ntime.sleep(20)"])

    def start() -> subprocess.Popen[bytes]:
        launched.append(hang())
        return launched[-1]

    monkeypatch.setattr(grading, "_start_worker", start)
    monkeypatch.setattr(grading, "_GRACE_S", 0.0)
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=0.2, batch=grading.Batch())
    assert (row.status, row.exercise) == ("timed out", "open_channel_request")
    assert row.hint == "the workbook did not finish within 0.2 s (an endless loop?)"
    assert launched and launched[0].poll() is not None  # stopped, not left running


def test_an_unexpected_exception_in_the_check_is_graded_error_never_passed(tmp_path, monkeypatch):
    """The real worker, with a check that raises what no check should: the row is 'error', naming it."""
    script = ("import ldkkit.exercises as exercises\n"
              "def unforeseen(exercise, handler):\n"
              "    raise RuntimeError('the check met the unforeseen')\n"
              "exercises.judge = unforeseen\n"
              "from ldkkit.sandbox import worker\n"
              "raise SystemExit(worker.main())\n")
    monkeypatch.setattr(grading, "_start_worker", started([sys.executable, "-c", script]))
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=60, batch=grading.Batch())
    assert row.status == "error"
    assert "RuntimeError: the check met the unforeseen" in row.hint


def test_the_grader_failing_on_a_workbook_is_that_workbooks_error_row(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError("no space left for the worker")

    monkeypatch.setattr(grading, "_run_worker", broken)
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=5, batch=grading.Batch())
    assert row.status == "error" and "OSError: no space left for the worker" in row.hint


@pytest.mark.parametrize("out", [b"", b"not json", b"[]", b'{"status": "passed"}', b'{"status": "great", "hint": ""}',
                                 b'{"status": "passed", "hint": 1}'])
def test_a_worker_that_answers_nonsense_is_an_error_not_a_pass(out):
    assert grading._verdict(out) == {"status": "error", "hint": "the grader's worker crashed on this workbook"}


def test_a_worker_verdict_is_taken_as_it_is():
    out = json.dumps({"status": "failed", "hint": "Scenario 'x': ...", "missing": []}).encode()
    assert grading._verdict(out) == {"status": "failed", "hint": "Scenario 'x': ..."}


def test_a_row_is_kept_even_if_grading_raised():
    import concurrent.futures

    future: concurrent.futures.Future[grading.Grade] = concurrent.futures.Future()
    future.set_exception(ValueError("lost"))
    row = grading._result(future, "amy", Path("/class/amy/05_forwarding.ipynb"))
    assert (row.status, row.exercise, row.hint) == ("error", "forwarding", "ValueError: lost")


class _Learner:
    """What ``worker._check`` reads of the learner process: how it died, if it did."""

    def __init__(self, dead: BaseException | None) -> None:
        self.dead = dead


def _check_with(monkeypatch, outcome: BaseException | None, dead: BaseException | None) -> dict[str, str]:
    import ldkkit.exercises

    def check(exercise, handler):
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(ldkkit.exercises, "judge", check)  # (the check the grader runs: it records no progress)
    return worker._check("open_channel_request", None, _Learner(dead))  # type: ignore[arg-type]


def test_a_check_failed_because_the_learner_timed_out_is_graded_timed_out(monkeypatch):
    verdict = _check_with(monkeypatch, ExerciseFailed("handler stopped"), bridge.HandlerTimeout("no answer in 8 s"))
    assert verdict == {"status": "timed out", "hint": "no answer in 8 s\nhandler stopped"}


def test_a_failed_check_is_failed_and_a_passed_one_passed(monkeypatch):
    assert _check_with(monkeypatch, ExerciseFailed("Scenario ..."), None) == {"status": "failed",
                                                                              "hint": "Scenario ..."}
    assert _check_with(monkeypatch, None, None) == {"status": "passed", "hint": ""}
    assert _check_with(monkeypatch, None, bridge.LearnerGone("exited")) == {"status": "passed", "hint": ""}


def test_a_check_that_passed_while_the_learner_process_broke_is_an_error(monkeypatch):
    verdict = _check_with(monkeypatch, None, bridge.HandlerTimeout("the learner process stayed busy"))
    assert verdict == {"status": "error", "hint": "the learner process stayed busy"}


# --- every kind of row grade_workbook gives, without running a check -----------------------------------


def answering(verdict: dict, job_to: Path | None = None, then: str = "") -> list[str]:
    """A stand-in worker that reads its job (saving it to ``job_to``), runs ``then``, and gives ``verdict``."""
    script = ("import json, sys\njob = json.loads(sys.stdin.read())\n"
              + (f"open({str(job_to)!r}, 'w').write(json.dumps(job))\n" if job_to else "") + then
              + f"print(json.dumps({verdict!r}))\n")
    return [sys.executable, "-c", script]


def test_a_file_that_does_not_exist_is_an_error_row_naming_it(tmp_path):
    path = tmp_path / "01_open_channel_request.ipynb"
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert (row.learner, row.exercise, row.workbook, row.status, row.hint, row.path) == (
        "amy", "open_channel_request", "01_open_channel_request.ipynb", "error", f"{path} does not exist", str(path))


def test_a_file_that_is_not_a_notebook_is_graded_not_a_notebook(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    row = grading.grade_workbook("amy", tmp_path / "notes.txt", batch=grading.Batch())
    assert (row.exercise, row.status, row.hint) == ("", "not a notebook", "notes.txt is not a .ipynb workbook")


@pytest.mark.parametrize("name", ["09_mystery.ipynb", "open_channel_request.ipynb", "01_Open_Channel.ipynb"])
def test_a_notebook_named_after_no_exercise_is_graded_unknown_workbook(tmp_path, name):
    row = grading.grade_workbook("amy", workbook(tmp_path, name), batch=grading.Batch())
    stem = name.removesuffix(".ipynb")
    assert (row.exercise, row.status, row.hint) == ("", "unknown workbook", f"no exercise is called {stem!r}")


@pytest.mark.parametrize("name, exercise", [("01_open_channel_request.ipynb", "open_channel_request"),
                                            ("03_receiving_payments.ipynb", "receiving_payments"),
                                            ("07_background_processor.ipynb", "background_processor")])
def test_the_exercise_is_read_from_the_workbooks_name(tmp_path, monkeypatch, name, exercise):
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "passed", "hint": ""})))
    row = grading.grade_workbook("amy", workbook(tmp_path, name), batch=grading.Batch())
    assert (row.exercise, row.status) == (exercise, "passed")


@pytest.mark.parametrize("name, workbook_name", [("12_receiving_payments.ipynb", "03_receiving_payments"),
                                                 ("7_background_processor.ipynb", "07_background_processor"),
                                                 ("06_on_chain\n.ipynb", "06_on_chain")])
def test_a_workbook_under_another_number_is_not_graded_as_that_workbook(tmp_path, monkeypatch, name, workbook_name):
    """Only the name the kit gives a workbook is graded as it: a second copy would count its learner twice."""
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "passed", "hint": ""})))
    row = grading.grade_workbook("amy", workbook(tmp_path, name), batch=grading.Batch())
    assert (row.exercise, row.status) == ("", "unknown workbook")
    assert row.hint.endswith(f"; rename it {workbook_name}.ipynb to grade it")


def test_a_workbook_that_is_no_json_is_graded_invalid_notebook(tmp_path):
    path = tmp_path / "03_receiving_payments.ipynb"
    path.write_text("{not json")
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert (row.exercise, row.status) == ("receiving_payments", "invalid notebook")
    assert row.hint.startswith("03_receiving_payments.ipynb is not valid JSON: ")


def test_a_copied_solution_is_graded_copied_and_says_whose(tmp_path):
    path = tmp_path / "01_open_channel_request.ipynb"
    path.write_text((Path(__file__).resolve().parent.parent / "solutions" / path.name).read_text())
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert (row.exercise, row.status) == ("open_channel_request", "copied")
    assert row.hint.endswith(": a copy is not graded") and "solutions/01_open_channel_request" in row.hint


def test_a_workbook_of_more_code_than_the_grader_reads_is_told_so_at_once(tmp_path, monkeypatch):
    """A megabyte of code is a hundred times the kit's largest workbook; reading 8 MiB took minutes and gigabytes. It
    is told at once: no cell of it is read as IPython reads it, and no worker starts for it."""
    from ldkkit.sandbox import source
    from ldkkit.sandbox.source import MAX_CODE_BYTES

    done: list[str] = []
    monkeypatch.setattr(source, "python_of", lambda cell: done.append("read"))
    monkeypatch.setattr(grading, "_start_worker", lambda: done.append("worker"))
    path = tmp_path / "01_open_channel_request.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                           "source": HANDLER + "x = 1\n" * (MAX_CODE_BYTES // 6)}]}))
    row = grading.grade_workbook("amy", path, timeout_s=60, batch=grading.Batch())
    assert MAX_CODE_BYTES == 2**20 and (row.status, row.hint) == (
        "invalid notebook", "its code cells hold over 1 MiB of code: keep in it the handler and what the handler "
                            "needs (the kit's own workbooks hold under 10 KiB of code)")
    assert done == []


def test_the_code_cap_counts_every_code_cell_together_up_to_exactly_max_code_bytes():
    """MAX_CODE_BYTES bounds all the code cells together (many small cells are as long to read as one large one), and
    a workbook of exactly that much code is read."""
    from ldkkit.sandbox.source import MAX_CODE_BYTES, InvalidWorkbook, code_cells

    def cells(*sizes: int) -> dict:
        return {"cells": [{"cell_type": "code", "source": "#" * size} for size in sizes]}

    assert [len(c) for c in code_cells(cells(MAX_CODE_BYTES - 10, 10))] == [MAX_CODE_BYTES - 10, 10]
    for over in (cells(MAX_CODE_BYTES - 10, 11), cells(MAX_CODE_BYTES + 1, 0), cells(10, MAX_CODE_BYTES - 9)):
        with pytest.raises(InvalidWorkbook, match="its code cells hold over 1 MiB of code"):
            code_cells(over)


def test_a_workbook_without_a_handler_is_graded_no_handler(tmp_path):
    path = tmp_path / "01_open_channel_request.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                           "source": "x = 1"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert (row.exercise, row.status, row.hint) == (
        "open_channel_request", "no handler",
        "the workbook's code has no def handle_ldk_events(...): the grader grades the handler a workbook defines with "
        "def (one built at run time, with exec, is not graded)")


@pytest.mark.parametrize("typo, words", [
    ("    return None", "raised SyntaxError: expected ':' (line 3)"),
    ("      return None", "raised IndentationError: unexpected indent (line 5)")])
def test_a_handler_cell_that_is_no_python_fails_where_run_all_stops(tmp_path, typo, words):
    """The commonest slip, a handler cell Python cannot read: Run All stops at it, so the row is failed, naming the
    cell and the error (it was "no handler", which sends the learner looking for a missing def)."""
    handler = HANDLER.replace("network, event):", "network, event)" if "Syntax" in words else "network, event):")
    handler = handler.replace("    return None", typo)
    path = tmp_path / "01_open_channel_request.ipynb"
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "source": text}
             for text in ("x = 1", handler, "from ldkkit.exercises import check\ncheck('open_channel_request', "
                                                "handle_ldk_events)")]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert row.status == "failed" and row.hint.startswith(f"code cell 2 {words}. In Jupyter, Run All stops"), row.hint


def test_a_workbook_that_switches_off_what_the_learner_process_looks_at_is_graded_no_handler(tmp_path):
    """A helper's probe: these lines, and a solution run from text, were graded passed."""
    path = tmp_path / "01_open_channel_request.ipynb"
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "source": text} for text in (
        "import ldkkit.sandbox.provenance as _p\n_p.PROVENANCE.foreign = ''\n_p.PROVENANCE.why = lambda namespace: ''",
        HANDLER)]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert (row.status, row.hint) == ("no handler", "code cell 1 names ldkkit.sandbox.provenance, the grader's own: a "
                                      "workbook that reaches into the grader is not graded, as it could change what "
                                      "the grader looks at. A handler needs none of it: take that code out")


def test_the_row_says_how_long_the_workbook_took_to_the_hundredth(tmp_path, monkeypatch):
    clock = iter([100.0, 102.3456])
    monkeypatch.setattr(grading.time, "perf_counter", lambda: next(clock))
    row = grading.grade_workbook("amy", tmp_path / "notes.txt", batch=grading.Batch())
    assert row.seconds == 2.35


def test_a_workbook_graded_on_its_own_gets_a_batch_of_its_own_and_leaves_nothing(tmp_path, monkeypatch):
    """No batch given: the grader makes one for this workbook (its folder hidden) and removes it afterwards."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(grading.tempfile, "tempdir", str(scratch))
    job = tmp_path / "job.json"
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "passed", "hint": ""}, job)))
    folder = tmp_path / "amy"
    folder.mkdir()
    row = grading.grade_workbook("amy", workbook(folder))
    assert (row.status, row.hint) == ("passed", "")
    assert str(folder) in json.loads(job.read_text())["jail"]["hide"]
    assert list(scratch.iterdir()) == []


# --- what the worker is given, and what is left once it has answered ---------------------------------------


@pytest.mark.parametrize("timeout_s, cpu_s", [(30, 31), (2.5, 3), (0.2, 1)])
def test_the_worker_gets_the_workbook_its_limits_and_a_scratch_folder_removed_afterwards(tmp_path, monkeypatch,
                                                                                         timeout_s, cpu_s):
    job_file = tmp_path / "job.json"
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "failed", "hint": "Hint: x"}, job_file)))
    batch = grading.Batch(hide=["/srv/class"], limits=grading.jail_module.Limits(memory_mb=512))
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=timeout_s, batch=batch)
    assert (row.status, row.hint) == ("failed", "Hint: x")
    job = json.loads(job_file.read_text())
    assert (job["exercise"], job["timeout_s"]) == ("open_channel_request", timeout_s)
    assert job["hang_limit_s"] == 10.0  # the check's limit, the kit's own unless the grader's code set another
    assert len(job["cells"]) == 1 and "written_by = 'the test of the grader'" in job["cells"][0]
    # the learner process may use the workbook's limit in CPU seconds, rounded up past it; the rest is the batch's
    assert job["jail"]["limits"] == {**vars(grading.jail_module.Limits(memory_mb=512)), "cpu_s": cpu_s}
    assert (job["jail"]["uid"], job["jail"]["hide"]) == (None, ["/srv/class"])
    assert Path(job["temp"]).name.startswith("ldkkit-worker-")  # the grader's scratch folder, by its name
    assert not Path(job["temp"]).exists()  # and gone


def test_the_worker_has_a_seconds_grace_past_the_workbooks_limit(tmp_path, monkeypatch):
    """The workbook's limit is the learner's; the worker gets one more second to start and to report."""
    waited: list[float] = []

    class Worker:
        pid = 2**22 + 1  # no such process: killing its group finds nothing

        def communicate(self, data, timeout):
            waited.append(timeout)
            return json.dumps({"status": "passed", "hint": ""}).encode(), None

        def wait(self):
            return 0

    monkeypatch.setattr(grading, "_start_worker", Worker)
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=7, batch=grading.Batch())
    assert row.status == "passed" and waited == [8.0]


def test_whatever_the_worker_started_in_its_group_is_killed_once_it_answers(tmp_path, monkeypatch):
    pid_file = tmp_path / "pid"
    then = ("import subprocess\n"
            "child = subprocess.Popen(['sleep', '60'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n")
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "passed", "hint": ""}, then=then)))
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=30, batch=grading.Batch())
    assert row.status == "passed"
    assert not _alive(int(pid_file.read_text()))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not grading.jail_module.is_root(), reason="sandbox uids need root")
def test_as_root_every_process_of_the_learners_uid_is_killed_and_the_uid_serves_the_next_workbook(tmp_path,
                                                                                                    monkeypatch):
    then = ("import subprocess\nsubprocess.Popen(['sleep', '60'], user=job['jail']['uid'], start_new_session=True, "
            "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)\n")
    job = tmp_path / "job.json"
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "passed", "hint": ""}, job, then)))
    batch = grading.Batch.make([tmp_path], None, 1)
    try:
        (uid,) = batch.lease.uids
        row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=30, batch=batch)
        assert row.status == "passed"
        given = json.loads(job.read_text())["jail"]
        assert (given["uid"], given["stubs"]) == (uid, batch.stubs())  # the learner runs as the batch's uid
        assert grading.jail_module.pids_of(uid) == []  # the process it left behind, in a session of its own
        assert batch.uids.qsize() == 1 and batch.uids.get_nowait() == uid  # back, for the next workbook
    finally:
        batch.close()


def test_the_real_worker_runs_in_a_session_of_its_own_and_answers_in_json():
    worker_process = grading._start_worker()
    try:
        assert os.getsid(worker_process.pid) == worker_process.pid
        out, _ = worker_process.communicate(b"{}", timeout=120)  # a job missing everything: the grader's failure
    finally:
        grading._kill_group(worker_process)
    verdict = json.loads(out)
    assert verdict["status"] == "error" and verdict["hint"].startswith("the grader failed: KeyError")


@pytest.mark.parametrize("status", ["passed", "failed", "copied", "no handler", "timed out", "invalid notebook",
                                    "not a notebook", "unknown workbook", "error"])
def test_every_status_a_worker_may_give_is_taken_as_it_is(status):
    out = json.dumps({"status": status, "hint": "why"}).encode()
    assert grading._verdict(out) == {"status": status, "hint": "why"}


def test_what_the_sandbox_could_not_do_is_warned_once_per_run(monkeypatch):
    monkeypatch.setattr(grading, "_WARNED", set())
    out = json.dumps({"status": "passed", "hint": "", "missing": ["no mount namespace", "no network namespace"]})
    with pytest.warns(RuntimeWarning) as caught:
        for _ in range(3):
            assert grading._verdict(out.encode()) == {"status": "passed", "hint": ""}
    assert [str(w.message) for w in caught] == ["ldkkit grade: the sandbox is weaker here: no mount namespace",
                                                "ldkkit grade: the sandbox is weaker here: no network namespace"]


@pytest.mark.skipif(not grading.jail_module.is_root(), reason="sandbox uids need root")
def test_as_root_a_batch_leases_a_uid_per_job_and_covers_the_reference_with_a_readable_stub(tmp_path):
    batch = grading.Batch.make([tmp_path / "amy"], tmp_path / "out", 2)
    try:
        assert batch.uids.qsize() == 2 and len(set(batch.lease.uids)) == 2
        reference = Path(grading.__file__).with_name("reference.py")
        py_compile.compile(str(reference), cfile=importlib.util.cache_from_source(str(reference)))
        stubs = batch.stubs()
        assert stubs == dict.fromkeys([str(reference), importlib.util.cache_from_source(str(reference))],
                                      str(batch.stub_dir / "reference.py"))  # its source and its bytecode
        assert batch.stub_dir.name.startswith("ldkkit-grader-")
        stub = Path(stubs[str(reference)])
        assert stub.read_text() == '"""Not available while grading."""\n'
        assert (stub.stat().st_mode & 0o777, batch.stub_dir.stat().st_mode & 0o777) == (0o644, 0o755)
    finally:
        batch.close()
    assert not batch.stub_dir.exists() and batch.lease._locks == []  # its folder removed, its uids released


def test_without_root_a_batch_has_no_uids_and_covers_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(grading.jail_module, "is_root", lambda: False)
    batch = grading.Batch.make([tmp_path / "amy"], None, 2)
    assert (batch.uids, batch.lease, batch.stub_dir, batch.stubs()) == (None, None, None, {})
    batch.close()


def test_a_batch_hides_every_submission_its_learners_homes_the_grades_and_the_kits_other_folders(tmp_path):
    home = Path("/home/jupyter-amy/ldk-events-workshop/exercises")
    link = tmp_path / "bob-link"
    link.symlink_to(tmp_path / "bob", target_is_directory=True)
    hide = grading._hidden_folders([home, link], tmp_path / "grades")
    root = Path(grading.__file__).resolve().parent.parent
    assert {str(home), "/home/jupyter-amy", str(link), str(tmp_path / "bob"), str(tmp_path / "grades")} <= set(hide)
    assert hide == sorted(set(hide))
    kit_folders = {str(p) for p in root.iterdir() if p.is_dir()}
    assert kit_folders & set(hide) == kit_folders - {str(root / "ldkkit"), str(root / ".venv")}
    assert str(root / "solutions") in hide and str(root / "tests") in hide


def test_a_row_lost_to_an_exception_still_names_its_learner_and_file():
    import concurrent.futures

    future: concurrent.futures.Future[grading.Grade] = concurrent.futures.Future()
    future.set_exception(KeyError("lost"))
    row = grading._result(future, "amy", Path("/class/amy/05_forwarding.ipynb"))
    assert row == grading.Grade("amy", "forwarding", "05_forwarding.ipynb", "error", "KeyError: 'lost'", 0.0,
                                "/class/amy/05_forwarding.ipynb")


@pytest.mark.parametrize("debug", ["", "1"])
def test_the_workers_stderr_is_shown_only_to_debug_the_kit(monkeypatch, capfd, debug):
    monkeypatch.setenv("LDKKIT_SANDBOX_DEBUG", debug)
    worker_process = grading._start_worker()
    try:
        worker_process.communicate(b"not json", timeout=120)  # the worker fails before it can answer
    finally:
        grading._kill_group(worker_process)
    assert ("JSONDecodeError" in capfd.readouterr().err) is bool(debug)


def _jobs_of(tmp_path: Path, monkeypatch) -> Path:
    """Stand-in workers that save each job they get in a folder of their own: returns the folder."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    script = ("import json, os, sys\njob = json.loads(sys.stdin.read())\n"
              f"open(os.path.join({str(jobs)!r}, str(os.getpid())), 'w').write(json.dumps(job))\n"
              "print(json.dumps({'status': 'passed', 'hint': ''}))\n")
    monkeypatch.setattr(grading, "_start_worker", started([sys.executable, "-c", script]))
    return jobs


def test_grading_a_class_hands_every_worker_its_limits_and_hides_the_submissions_and_the_grades(tmp_path,
                                                                                                monkeypatch):
    jobs = _jobs_of(tmp_path, monkeypatch)
    for learner in ("amy", "bob"):
        (tmp_path / "class" / learner).mkdir(parents=True)
        workbook(tmp_path / "class" / learner)
    limits = grading.jail_module.Limits(memory_mb=700, processes=9)
    table = grading.grade([tmp_path / "class" / "amy", tmp_path / "class" / "bob"], tmp_path / "out", timeout_s=45,
                          jobs=1, progress=False, limits=limits)
    assert list(table["status"]) == ["passed", "passed"]
    given = [json.loads(p.read_text()) for p in jobs.iterdir()]
    assert len(given) == 2 and {job["timeout_s"] for job in given} == {45}
    assert {json.dumps(job["jail"]["limits"]) for job in given} == {json.dumps({**vars(limits), "cpu_s": 46})}
    hidden = set(given[0]["jail"]["hide"])
    assert {str(tmp_path / "class" / "amy"), str(tmp_path / "class" / "bob"), str(tmp_path / "out")} <= hidden
    if grading.jail_module.is_root():  # one job: one uid, which every workbook of the batch runs as, in turn
        assert len({job["jail"]["uid"] for job in given}) == 1


def test_a_workbook_is_given_two_minutes_unless_the_grader_says_otherwise(tmp_path, monkeypatch):
    jobs = _jobs_of(tmp_path, monkeypatch)
    (tmp_path / "amy").mkdir()
    workbook(tmp_path / "amy")
    assert list(grading.grade([tmp_path / "amy"], progress=False)["status"]) == ["passed"]
    assert grading.grade_workbook("amy", workbook(tmp_path / "amy"), batch=grading.Batch()).status == "passed"
    assert [json.loads(p.read_text())["timeout_s"] for p in jobs.iterdir()] == [120.0, 120.0]


def test_grading_nothing_gives_an_empty_table_with_every_column():
    table = grading.grade([], progress=False)
    assert table.empty and list(table.columns) == ["learner", "exercise", "workbook", "status", "hint", "seconds",
                                                   "path"]


def test_a_grader_failure_is_named_in_the_row_in_at_most_300_characters(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError("x" * 1000)

    monkeypatch.setattr(grading, "_run_worker", broken)
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=5, batch=grading.Batch())
    assert row.hint == "the grader failed on this workbook: OSError: " + "x" * 300


def test_a_worker_that_removed_its_scratch_folder_itself_keeps_its_verdict(tmp_path, monkeypatch):
    then = "import shutil\nshutil.rmtree(job['temp'])\n"
    monkeypatch.setattr(grading, "_start_worker", started(answering({"status": "failed", "hint": "no"}, then=then)))
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=30, batch=grading.Batch())
    assert (row.status, row.hint) == ("failed", "no")


def test_a_workbook_named_on_its_own_has_its_folder_hidden_from_the_learner(tmp_path, monkeypatch):
    jobs = _jobs_of(tmp_path, monkeypatch)
    (tmp_path / "amy").mkdir()
    table = grading.grade([workbook(tmp_path / "amy")], progress=False)
    assert list(table["status"]) == ["passed"]
    (job,) = [json.loads(p.read_text()) for p in jobs.iterdir()]
    assert str(tmp_path / "amy") in job["jail"]["hide"]


def test_a_row_lost_for_a_file_of_no_exercise_has_no_exercise():
    import concurrent.futures

    future: concurrent.futures.Future[grading.Grade] = concurrent.futures.Future()
    future.set_exception(KeyError("lost"))
    assert grading._result(future, "amy", Path("/class/amy/notes.txt")).exercise == ""


def test_grading_shows_its_progress_unless_told_not_to(tmp_path, capsys):
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / "notes.md").write_text("x")
    grading.grade([tmp_path / "amy"])
    assert capsys.readouterr().err == "\rgrading [##############################] 1/1\n"


def test_every_library_the_kit_imports_late_is_loaded_before_the_sandbox_closes():
    """The learner process may not read the virtual environment once confined (a kit cloned under a private
    folder, as root without namespaces): whatever the kit imports inside a function must already be loaded,
    or decoding the first PublicKey in the learner fails with ModuleNotFoundError."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import ldkkit
    from ldkkit.sandbox.child import PRELOAD

    late: set[str] = set()
    for source in Path(ldkkit.__file__).parent.rglob("*.py"):
        for function in ast.walk(ast.parse(source.read_text())):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        late.add(node.module)
                    elif isinstance(node, ast.Import):
                        late.update(alias.name for alias in node.names)
    libraries = {name for name in late if name.split(".")[0] in {"coincurve", "embit", "bolt11", "bech32"}}
    assert libraries, "the scan found no late imports of the kit's libraries: it no longer looks in the right place"
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys\nfor m in {list(PRELOAD)!r}: __import__(m)\nprint(sorted(sys.modules))"],
        capture_output=True, text=True, check=True).stdout
    assert not [name for name in sorted(libraries) if repr(name) not in loaded]


def test_a_handler_the_check_cannot_stop_is_told_to_an_instructor_without_jupyters_advice(monkeypatch):
    from ldkkit.exercises import common

    monkeypatch.setattr(common, "CANNOT_STOP", common.CANNOT_STOP)  # (put back after)
    assert "restart the kernel" in common.CANNOT_STOP
    worker._tell_instructors()  # (what the worker's main does first)
    assert "kernel" not in common.CANNOT_STOP and "grader ended its process" in common.CANNOT_STOP


def test_the_graders_wait_on_the_learner_is_eight_tenths_of_the_checks_hang_limit(monkeypatch):
    """Silent that long, the learner is asked where it is: a spawned task's step found spinning is the check's to stop
    at its limit, before the learner's time (as long again) runs out and the row would say 'timed out'."""
    from ldkkit.exercises import common

    assert (common.HANDLER_TIMEOUT_S, bridge.exchange_limit_s()) == (10.0, 8.0)
    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", 3.0)
    assert bridge.exchange_limit_s() == pytest.approx(2.4)


def test_a_learner_that_cannot_say_where_it_is_times_out(tmp_path, monkeypatch):
    """A handler stuck in C holding the GIL (a regular expression that backtracks for ever): the learner process cannot
    answer "where" (a notebook's kernel would hang, its check with it), so the grader cannot hand the handler to the
    check's watch. Its row says it timed out: the grader stopped it, not the check."""
    from ldkkit.exercises import common

    monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", SPIN_LIMIT_S)
    path = workbook(tmp_path)
    cell = HANDLER.replace("    return None\n", "    import re\n    re.match(r'(a+)+$', 'a' * 64 + 'b')\n")
    notebook = json.loads(path.read_text())
    notebook["cells"][0]["source"] = cell
    path.write_text(json.dumps(notebook))
    row = grading.grade_workbook("amy", path, timeout_s=60)
    assert row.status == "timed out", row.hint
    assert row.hint.startswith(f"the learner's code did not answer within {bridge.exchange_limit_s():.0f} s"), row.hint


# --- the grader's verdict is the check's, on handlers whose work is in a thread or a task, or that exit -----------

def _solution_handler(workbook_name: str) -> str:
    """A solution's handler cell as a learner who wrote it hands it in (a line of their own: no copy)."""
    cells = json.loads((Path(__file__).resolve().parent.parent / "solutions" / workbook_name).read_text())["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            source = "\n".join(line for line in source.splitlines() if "### " not in line) + "\n"
            return source.replace("network, event):\n", "network, event):\n    written_by = 'a learner'\n"
                                  "    assert written_by\n", 1)  # (a name nothing read would be code doing nothing)
    raise LookupError(workbook_name)


_SETUP = ("import asyncio, concurrent.futures, logging, os, threading, time\n"
          "log = logging.getLogger('mine')\n"
          "from ldkkit.bitcoin import Address, Transaction\n"
          "from ldkkit.errors import APIError\n"
          "from ldkkit.events import Event, ReplayEvent\n"
          "from ldkkit.payment_storage import HTLCStatus, PaymentInfo\n"
          "POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2)\n"
          "background_tasks = set()\n")
_WRITE_IN = '                fs_store.write("", "", "inbound_payments", inbound_payments.encode())\n'
_PAYMENT_CLAIMED = ('            secret = getattr(purpose, "payment_secret", None)  # keysend payments have none\n'
                    '            with inbound_payments.lock() as payments:\n')


def _arm_as(how: str, source: str) -> str:
    """Workbook 3's PaymentClaimed arm made a function ``work`` of its own, then ``how``."""
    start = source.index(_PAYMENT_CLAIMED)
    end = source.index(_WRITE_IN, start) + len(_WRITE_IN)
    arm = textwrap.indent(source[start:end], "    ")
    return source[:start] + f"            {how.split(':')[0]}def work():\n" + arm + \
        textwrap.indent(how.split(":", 1)[1] + "\n", "            ") + source[end:]


#: (exercise, workbook, the handler's source): each graded as check() judges it in the learner's own process.
#: Solution 07's write of inbound_payments, as the PaymentClaimed arm has it.
_INBOUND_WRITE = ("                try:\n"
                  "                    fs_store.write(\"\", \"\", \"inbound_payments\", inbound_payments.encode())\n"
                  "                except OSError:\n"
                  "                    return ReplayEvent()  # nothing is lost: LDK hands this event over again")

#: Solution 08's answer to PaymentClaimable, and what the workers below put in its place.
_CLAIM_ARM = ("            with inbound_payments.lock() as payments:\n                paid_before",
              "                channel_manager.fail_htlc_backwards(payment_hash)\n")
_WORKERS = {
    # one task, spawned with the first PaymentClaimable of the check, claims from an asyncio.Queue: it runs on the loop
    # of that play's node only (the learner process cancels it as the next play begins)
    "task": ("if not WORK:\n"
             "    WORK.append(asyncio.Queue())\n"
             "    async def worker():\n"
             "        while True:\n"
             "            payments, event = await WORK[0].get()\n"
             "            CLAIM(channel_manager, payments, event)\n"
             "    background_tasks.add(asyncio.get_running_loop().create_task(worker()))\n"
             "WORK[0].put_nowait((inbound_payments, event))\n"),
    # one thread, started with the first PaymentClaimable of the check, keeps that play's channel_manager
    "thread": ("if not WORK:\n"
               "    import queue\n"
               "    WORK.append(queue.Queue())\n"
               "    def worker():\n"
               "        while True:\n"
               "            payments, event = WORK[0].get()\n"
               "            CLAIM(channel_manager, payments, event)\n"
               "    threading.Thread(target=worker, daemon=True).start()\n"
               "WORK[0].put((inbound_payments, event))\n"),
    # the same thread sleeping 3 s before each claim: in the capstone, workbook 1's story (which has a payment) ended
    # while it slept, and it met that play's gone node and died ("never claimed" in later plays); the world plays on now
    "thread_3_s_later": ("if not WORK:\n"
                         "    import queue\n"
                         "    WORK.append(queue.Queue())\n"
                         "    def worker():\n"
                         "        while True:\n"
                         "            payments, event = WORK[0].get()\n"
                         "            time.sleep(3)\n"
                         "            CLAIM(channel_manager, payments, event)\n"
                         "    threading.Thread(target=worker, daemon=True).start()\n"
                         "WORK[0].put((inbound_payments, event))\n"),
    # one task per loop, kept by the loop it runs on: the check gives each play's node a loop of its own, and so does
    # the learner process (it had one loop for every play: the task of the first, cancelled, was never started again)
    "per_loop": ("loop = asyncio.get_running_loop()\n"
                 "if loop not in LOOPS:\n"
                 "    LOOPS[loop] = asyncio.Queue()\n"
                 "    async def worker(work):\n"
                 "        while True:\n"
                 "            payments, event = await work.get()\n"
                 "            CLAIM(channel_manager, payments, event)\n"
                 "    background_tasks.add(loop.create_task(worker(LOOPS[loop])))\n"
                 "LOOPS[loop].put_nowait((inbound_payments, event))\n"),
}
_THREAD_POOL = """import atexit
from multiprocessing.pool import ThreadPool
POOL = ThreadPool(2)
atexit.register(POOL.terminate)  # (at the process's end, before its pipes close)


def ANSWER(channel_manager, keys_manager, event):
    time.sleep({pause})
    if event.funding_satoshis > 5_000_000:
        user_channel_id = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, user_channel_id)
    else:
        channel_manager.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id,
                                                             "too small")


"""
_CLAIM = ("from ldkkit.policy import TRUSTED_ZERO_CONF_PEERS\nWORK, LOOPS = [], {}\n\n\n"
          "def CLAIM(channel_manager, inbound_payments, event):\n"
          "    with inbound_payments.lock() as payments:\n"
          "        paid = payments.get(event.payment_hash)\n"
          "    paid = paid is not None and paid.status is HTLCStatus.Succeeded\n"
          "    if event.purpose.preimage() is not None and not paid:\n"
          "        channel_manager.claim_funds(event.purpose.preimage())\n"
          "    else:\n"
          "        channel_manager.fail_htlc_backwards(event.payment_hash)\n\n\n")


def _claimed_by_one_worker(how: str, source: str) -> str:
    start = source.index(_CLAIM_ARM[0])
    end = source.index(_CLAIM_ARM[1], start) + len(_CLAIM_ARM[1])
    return _CLAIM + source[:start] + textwrap.indent(_WORKERS[how], " " * 12) + source[end:]


#: Solution 03's answer to PaymentClaimable, made as the handler handles it.
def _put_off(work: str) -> list[tuple[str, str]]:
    """``work`` (statements) put off a second by the handler's PaymentClaimable arm: in a callback it schedules on the
    loop itself, in a task it builds directly, and in a task it spawns and keeps (``background_tasks``)."""
    body = textwrap.indent(work, " " * 16)
    tasks = (("built_directly", "asyncio.Task"), ("kept", "asyncio.get_running_loop().create_task"))
    return [("a_callback", f"            def work():\n{body}"
                           "            asyncio.get_running_loop().call_later(1, work)\n"),
            *((f"a_task_{kind}", f"            async def work():\n                await asyncio.sleep(1)\n{body}"
                                 f"            background_tasks.add({build}(work()))\n") for kind, build in tasks)]


_CLAIMED_AT_ONCE = ("            preimage = purpose.preimage()\n            if preimage is not None:\n"
                    "                channel_manager.claim_funds(preimage)\n            else:\n"
                    "                channel_manager.fail_htlc_backwards(payment_hash)\n")

#: _CLAIMED_AT_ONCE, from a task 3 s later (workbook 3 allows it).
_CLAIM_LATER = ("            async def claim_later():\n                await asyncio.sleep(3)\n"
                + textwrap.indent(_CLAIMED_AT_ONCE, "    ")
                + "            background_tasks.add(asyncio.get_running_loop().create_task(claim_later()))\n")

_AS_THE_CHECK = {
    # the storage's lock held while another thread of the learner's calls the node: the grader's storage mirror waited
    # for that lock for ever (a timeout) where the check passes (the handler holds it, awaiting its write's thread)
    "lock_held_awaiting_a_write": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        'fs_store.write("", "", "inbound_payments", inbound_payments.encode())',
        'await asyncio.to_thread(fs_store.write, "", "", "inbound_payments", inbound_payments.encode())')),
    # (the thread holds it, its write held until the handler returned: the check fails it as late)
    "lock_held_by_a_late_write": ("receiving_payments", "03_receiving_payments.ipynb",
                                  lambda s: _arm_as(":POOL.submit(work)", s)),
    # a task's write after the handler returned: the learner process ran it before the grader heard the handler return
    "a_task_writes_late": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: "async " + _arm_as(
        "async :background_tasks.add(asyncio.get_running_loop().create_task(work()))", s)),
    # a thread that sleeps, or a Timer, before forwarding: it sleeps on the world's clock in the check; in the learner
    # process it slept in real time, the clock still, so the forward came "0 ms" after the event (failed)
    **{f"forwards_after_a_{kind}": ("forwarding", "05_forwarding.ipynb", lambda s, start=start: s.replace(
        "            background_tasks.add(asyncio.get_running_loop().create_task(forward_later()))",
        f"            {start}.start()")) for kind, start in (
        ("thread_sleeps", "threading.Thread(target=lambda: (time.sleep(delay), "
                          "channel_manager.process_pending_htlc_forwards()))"),
        ("timer", "threading.Timer(delay, channel_manager.process_pending_htlc_forwards)"),
        # a timed Event.wait in a thread: it waited in real time, and the check told it "never called"
        ("thread_waits_on_an_event", "threading.Thread(target=lambda: (threading.Event().wait(delay), "
                                     "channel_manager.process_pending_htlc_forwards()))"))},
    # an async handler's write returned unawaited (return persist(...)): the check waited for ever under
    # BackgroundProcessor.start (it now fails it, naming the forgotten await), and so must the grader
    "returns_its_write_unawaited": ("background_processor", "07_background_processor.ipynb", lambda s: (
        "async def persist(fs_store, storage):\n    fs_store.write('', '', 'inbound_payments', storage.encode())\n\n\n"
        + s.replace(_INBOUND_WRITE, "                return persist(fs_store, inbound_payments)", 1))),
    # records keyed by payment_hash.hex(): the check fails what its encode() wrote to disk; the grader's mirror of
    # the learner's map could not read that map, and stopped the learner process ('LearnerGone', another event)
    "keys_records_by_hex": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: s.replace(
        "payments[payment_hash] = PaymentInfo(", "payments[payment_hash.hex()] = PaymentInfo(")),
    # a keysend's purpose has no payment_secret: the hint names it in both (an AttributeError crosses as words)
    "reads_a_keysends_secret": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: s.replace(
        'secret = getattr(purpose, "payment_secret", None)', "secret = purpose.payment_secret")),
    # the storage used as the dict it holds: the hint names it in both (read from the error's words)
    "looks_its_entry_up_in_the_storage": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: s.replace(
        "info = payments.get(payment_hash)", "info = inbound_payments.get(payment_hash)")),
    # a task that raises (asyncio.sleep given the timedelta): told 'never called' by both, the error lost; now the
    # check tells the task's error with its event, and so must the grader
    "a_task_raises": ("forwarding", "05_forwarding.ipynb", lambda s: s.replace(
        "await asyncio.sleep(delay)", "await asyncio.sleep(time_forwardable)")),
    # a thread of the learner's own that raises after its work: the check fails the play with it; the learner process
    # lost it (the thread's error went to no one), so the grader passed the workbook
    "a_thread_raises": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "            if funding_satoshis > 5_000_000:", "            threading.Thread(target=lambda: 1 / 0).start()\n"
        "            if funding_satoshis > 5_000_000:")),
    # a callback the handler scheduled on the loop itself that raises: told as the callback's, with its event, by both
    # (asyncio only logs it: the check's world stopped the story with it, the learner process lost it)
    "a_callback_raises": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "            if funding_satoshis > 5_000_000:",
        "            asyncio.get_running_loop().call_later(1, lambda: 1 / 0)\n"
        "            if funding_satoshis > 5_000_000:")),
    # a KeyError and a FileNotFoundError of the handler's: the grader's words were another's (the key quoted twice,
    # the file's name lost), as the error crossed from the learner process by its words
    **{f"raises_{kind}": ("open_channel_request", "01_open_channel_request.ipynb", lambda s, line=line: s.replace(
        "            if funding_satoshis > 5_000_000:",
        f"            {line}\n            if funding_satoshis > 5_000_000:"))
       for kind, line in (("a_key_error", "{}['missing']"), ("a_missing_file", "open('/nowhere-at-all/x')"),
                          # (next() on an empty iterator: the grader told 'RuntimeError: coroutine raised
                          # StopIteration', its coroutine calling the plain handler making it one, PEP 479)
                          ("stop_iteration", "next(iter(()))"))},
    # SystemExit raised by the handler: an error like any (asyncio would end the learner process with it, and the
    # grader, waiting for that process to end, was refused its own time.sleep as the learner's)
    # a worker started once, in the capstone's first play with a payment: a task was told "the preimage is in the
    # event's purpose" (its play's loop runs no more); a thread kept that play's channel_manager, and claimed there in
    # the check ("never claimed") but on the node playing in the grader (one stand-in for every play's)
    **{f"claimed_by_one_worker_{how}": ("capstone", "08_capstone.ipynb",
                                        lambda s, how=how: _claimed_by_one_worker(how, s)) for how in _WORKERS},
    # a claim put off a minute in a thread that sleeps first: the check waited for a task's claim only ("it was never
    # claimed"), and the learner process told the grader of its tasks only
    # (or waits a minute with Event.wait(60): the check, and the learner process, took a thread in a timed wait for one
    # idle, and ended the story before it woke)
    **{f"claimed_from_a_thread_a_minute_later{name}": ("receiving_payments", "03_receiving_payments.ipynb",
                                                        lambda s, wait=wait: s.replace(
        _CLAIMED_AT_ONCE,
        "            def later(preimage=purpose.preimage(), payment_hash=payment_hash):\n"
        f"                {wait}\n"
        "                if preimage is not None:\n                    channel_manager.claim_funds(preimage)\n"
        "                else:\n                    channel_manager.fail_htlc_backwards(payment_hash)\n"
        "            threading.Thread(target=later).start()\n"))
       for name, wait in (("", "time.sleep(60)"), ("_by_a_timed_wait", "threading.Event().wait(60)"),
                          # (or sleeps until time.monotonic() says a minute passed: it read wall time, and its
                          # verdict went with the machine's speed)
                          ("_by_the_clock", "end = time.monotonic() + 60\n"
                                            "                while time.monotonic() < end:\n"
                                            "                    time.sleep(1)"))},
    # a claim put off a minute with the loop's own call_later, or by a task built directly (asyncio.Task(coro)): LDK
    # allows it until the claim deadline, but neither the check nor the learner process counted a timer handle (or a
    # task no factory made) as work still to do for the event ("it was never claimed")
    **{f"claimed_a_minute_later_by_{how}": ("receiving_payments", "03_receiving_payments.ipynb", lambda s, later=later:
                                            s.replace(_CLAIMED_AT_ONCE, later)) for how, later in (
        ("call_later", "            loop, preimage = asyncio.get_running_loop(), purpose.preimage()\n"
                       "            if preimage is not None:\n"
                       "                loop.call_later(60, channel_manager.claim_funds, preimage)\n"
                       "            else:\n"
                       "                loop.call_later(60, channel_manager.fail_htlc_backwards, payment_hash)\n"),
        ("a_task_built_directly",
         "            async def later(preimage=purpose.preimage(), payment_hash=payment_hash):\n"
         "                await asyncio.sleep(60)\n"
         "                if preimage is not None:\n"
         "                    channel_manager.claim_funds(preimage)\n"
         "                else:\n"
         "                    channel_manager.fail_htlc_backwards(payment_hash)\n"
         "            task = asyncio.Task(later())\n"
         "            background_tasks.add(task)\n"
         "            task.add_done_callback(background_tasks.discard)\n"))},
    # time.sleep in a callback the handler scheduled on the loop itself, in a task it built directly, or in a task it
    # spawned and kept (background_tasks): refused with the task's hint by both. The learner process let the first two
    # sleep (only a spawned task's steps were watched), and told the third's refusal only if the task was collected
    # unretrieved, never while the learner kept it: the grader passed all three
    **{f"sleeps_in_{how}": ("receiving_payments", "03_receiving_payments.ipynb", lambda s, put_off=put_off:
                            s.replace(_CLAIMED_AT_ONCE, put_off + _CLAIMED_AT_ONCE))
       for how, put_off in _put_off("time.sleep(1)\n")},
    # the same put-off work spinning for ever (while True: pass): the check stops it, 'a task your handler spawned ran
    # 10 seconds without pausing' (failed); the grader's wait on the learner process (8 s) ran out first, and it knew
    # of no step running: 'timed out', 'it never returned'. (Played under a hang limit of SPIN_LIMIT_S: the grader's
    # check and wait scale with it.)
    **{f"spins_in_{how}": ("receiving_payments", "03_receiving_payments.ipynb", lambda s, put_off=put_off:
                           s.replace(_CLAIMED_AT_ONCE, put_off + _CLAIMED_AT_ONCE)) for how, put_off in (
        *_put_off("while True:\n    pass\n"),
        # (from its first step, held until the grader heard the handler return: it ran in the next event's exchange,
        # and the grader told that handler's overrun, 'did not return within ... seconds of being given PaymentClaimed')
        ("a_task_at_once", "            async def spin():\n                while True:\n                    pass\n"
                           "            background_tasks.add(asyncio.get_running_loop().create_task(spin()))\n"))},
    # the handler itself never returning: spinning (plain, or async before or after an await), or asking time.sleep
    # over and over, catching each refusal. The check stops it, 'your handler did not return within 10 seconds of
    # being given' (failed); the grader's wait on the learner process ran out first, and it knew of no step running:
    # 'timed out', 'did not answer within 8 s'
    **{f"spins_in_the_handler_{how}": ("receiving_payments", "03_receiving_payments.ipynb",
                                       lambda s, spin=spin, kind=kind: s.replace(
                                           _CLAIMED_AT_ONCE, spin + _CLAIMED_AT_ONCE).replace(
                                           "def handle_ldk_events(", kind + "def handle_ldk_events(", 1))
       for how, kind, spin in (
           ("plain", "", "            while True:\n                pass\n"),
           ("plain_caught_sleeping", "", "            while True:\n                try:\n"
                                         "                    time.sleep(1)\n                except Exception:\n"
                                         "                    pass\n"),
           ("async_at_once", "async ", "            while True:\n                pass\n"),
           ("async_after_an_await", "async ", "            await asyncio.sleep(1)\n"
                                              "            while True:\n                pass\n"))},
    # work handed to a thread of the learner's own (started, or submitted to a pool) spinning: the check stops it,
    # 'work your handler handed to a thread ran 10 seconds without ending' (failed); the grader knew of no step running:
    # 'timed out'
    **{f"spins_in_a_thread_{how}": ("receiving_payments", "03_receiving_payments.ipynb",
                                    lambda s, start=start: s.replace(_CLAIMED_AT_ONCE, "            def spin():\n"
                                                                     "                while True:\n"
                                                                     "                    pass\n"
                                                                     + start + _CLAIMED_AT_ONCE))
       for how, start in (
        ("started", "            threading.Thread(target=spin, daemon=True).start()\n"),
        ("of_a_pool", "            POOL.submit(spin)\n"))},
    # the first payment storages kept, and used in every play: the check failed it ('Succeeded on disk ... never
    # claimed', an earlier play's record), the grader passed it (one storage of each kind for every play)
    "keeps_the_first_storages": ("capstone", "08_capstone.ipynb", lambda s: (
        "from ldkkit.policy import TRUSTED_ZERO_CONF_PEERS\nKEPT = {}\n") + s.replace(
        "    match event:\n", "    inbound_payments = KEPT.setdefault('in', inbound_payments)\n"
        "    outbound_payments = KEPT.setdefault('out', outbound_payments)\n    match event:\n", 1)),
    # the worker per loop claiming a repeat too: its hint said the payment was handed to a task of an earlier play
    "per_loop_worker_claims_a_repeat": ("capstone", "08_capstone.ipynb", lambda s: _claimed_by_one_worker(
        "per_loop", s).replace(" and not paid:", ":")),
    # one worker thread of the learner's handing every fee bump over: the check counted its hand-overs for the event
    # whose handling started it ('not handed over'); the grader's calls cross as copies of the request
    "bumps_from_one_worker_thread": ("on_chain", "06_on_chain.ipynb", lambda s: (
        "import queue\nBUMPS = queue.Queue()\nWORKER = []\n") + s.replace(
        "            bump_tx_event_handler.handle_event(bump_event)\n",
        "            if not WORKER:\n"
        "                def worker():\n"
        "                    while True:\n"
        "                        bump_tx_event_handler.handle_event(BUMPS.get())\n"
        "                WORKER.append(threading.Thread(target=worker, daemon=True))\n"
        "                WORKER[0].start()\n"
        "            BUMPS.put(bump_event)\n", 1)),
    # the outer event handed to the BumpTxEventHandler, and a sweep built but never broadcast: the hint names each
    "hands_over_the_outer_bump_event": ("on_chain", "06_on_chain.ipynb", lambda s: s.replace(
        "            bump_tx_event_handler.handle_event(bump_event)\n",
        "            try:\n                bump_tx_event_handler.handle_event(event)\n"
        "            except Exception:\n                pass\n", 1)),
    "builds_a_sweep_never_broadcast": ("on_chain", "06_on_chain.ipynb", lambda s: s.replace(
        "            output_sweeper.track_spendable_outputs(list(outputs), channel_id, False, None)\n",
        "            keys_manager.spend_spendable_outputs(\n"
        "                list(outputs), [], bitcoind_client.get_change_script(), 253)\n", 1)),
    # an HTLC failed back at once from the HTLCHandlingFailed arm: the hint names the arm in both
    "fails_back_at_once": ("forwarding", "05_forwarding.ipynb", lambda s: s.replace(
        "        case Event.PaymentForwarded(",
        "        case Event.HTLCHandlingFailed():\n            channel_manager.process_pending_htlc_forwards()\n"
        "        case Event.PaymentForwarded(", 1)),
    # the next hop disconnected from the PaymentForwarded arm: the hint names the call and the arm in both
    "disconnects_the_next_hop": ("forwarding", "05_forwarding.ipynb", lambda s: s.replace(
        '            log.info("Forwarded a payment, earning %s msat", fee)\n',
        '            log.info("Forwarded a payment, earning %s msat", fee)\n'
        '            FORWARDS.append(event)\n'
        '            if len(FORWARDS) == 2:\n'
        '                peer_manager.disconnect_by_node_id(event.next_node_id)\n', 1).replace(
        "async def handle_ldk_events(", "FORWARDS = []\n\n\nasync def handle_ldk_events(", 1)),
    # LDK 0.1's batch_funding_transaction_generated with one channel (what funding_transaction_generated calls): right
    "funds_as_a_batch_of_one": ("funding_generation_ready", "02_funding_generation_ready.ipynb", lambda s: s.replace(
        "channel_manager.funding_transaction_generated(temporary_channel_id, counterparty_node_id, funding_tx)",
        "channel_manager.batch_funding_transaction_generated([(temporary_channel_id, counterparty_node_id)], "
        "funding_tx)", 1)),
    # each payment claimed 3 s later from a task, and a replayed PaymentClaimed adding its amount again (memory put
    # back after a failed write): the crash story crashed only once a PaymentClaimed came, and ended first (passed)
    "counts_a_claim_put_off_twice_after_a_crash": ("background_processor", "07_background_processor.ipynb",
                                                   lambda s: s.replace(_CLAIMED_AT_ONCE, _CLAIM_LATER, 1).replace(
        "                else:\n                    info.status, info.preimage, info.secret",
        "                else:\n                    before = (info.status, info.amt_msat)\n"
        "                    if info.status is HTLCStatus.Succeeded:\n"
        "                        info.amt_msat += amount_msat\n"
        "                    info.status, info.preimage, info.secret", 1).replace(
        _INBOUND_WRITE, _INBOUND_WRITE.replace("                    return ReplayEvent()",
                                               "                    if info is not None:\n"
                                               "                        info.status, info.amt_msat = before\n"
                                               "                    return ReplayEvent()"), 1)),
    # False returned for a failed write (LDK takes it as handled): the cause named in both, not the record's key
    "returns_false_when_the_write_fails": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        _INBOUND_WRITE, _INBOUND_WRITE.replace("return ReplayEvent()", "return False"), 1)),
    # an answer LDK's handler has not ("ok"), for an event handled well: check() names it; the grader took it as None
    "returns_ok_when_done": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        '            log.info("%r", event)\n', '            log.info("%r", event)\n            return "ok"\n', 1)),
    # a protected write at PaymentClaimable too, the PaymentClaimed arm swallowing its failure: the failing disk is
    # refused in the PaymentClaimed's hand-over (it spent its failures on the PaymentClaimable's writes: passed)
    "persists_at_claimable_swallows_at_claimed": ("background_processor", "07_background_processor.ipynb",
                                                  lambda s: s.replace(_CLAIMED_AT_ONCE, _CLAIMED_AT_ONCE + (
        "            try:\n                fs_store.write('', '', 'inbound_payments', inbound_payments.encode())\n"
        "            except OSError:\n                return ReplayEvent()\n"), 1).replace(
        _INBOUND_WRITE, _INBOUND_WRITE.replace("return ReplayEvent()", "pass"), 1)),
    # one writer thread, started with the first event, writes inbound_payments for the handler, which awaits it with
    # no try/except: the failing disk refuses the worker's write while a PaymentClaimed is handled (it was the first
    # event's thread, and passed)
    "writes_by_one_worker_unprotected": ("background_processor", "07_background_processor.ipynb", lambda s: (
        "import queue\nJOBS, WORKER = queue.Queue(), []\n\n\ndef write_by_worker(fs_store, key, data):\n"
        "    if not WORKER:\n        def work():\n            while True:\n"
        "                done, store, name, buf = JOBS.get()\n                try:\n"
        "                    store.write('', '', name, buf)\n                    done.set_result(None)\n"
        "                except OSError as e:\n                    done.set_exception(e)\n"
        "        WORKER.append(threading.Thread(target=work, daemon=True))\n        WORKER[0].start()\n"
        "    done = concurrent.futures.Future()\n    JOBS.put((done, fs_store, key, data))\n    return done\n\n\n"
        + s.replace("    match event:\n", "    write_by_worker(fs_store, 'started', b'')\n    match event:\n",
                    1).replace(_INBOUND_WRITE, "                await asyncio.wrap_future(write_by_worker("
                                               "fs_store, 'inbound_payments', inbound_payments.encode()))", 1))),
    # a writer thread started as the cell runs (before the check), each write awaited, ReplayEvent if it failed: the
    # thread counts from the moment the handler wakes it, and meets the failing disk (it passed or failed by run)
    **{name: ("background_processor", "07_background_processor.ipynb", lambda s, on_error=on_error: (
        "import queue\nJOBS = queue.Queue()\n\n\ndef work():\n    while True:\n"
        "        done, store, name, buf = JOBS.get()\n        try:\n            store.write('', '', name, buf)\n"
        "        except OSError as e:\n" + on_error + "        done.set_result(None)\n\n\n"
        "threading.Thread(target=work, daemon=True).start()\n\n\n"
        "def write_by_worker(fs_store, key, data):\n    done = concurrent.futures.Future()\n"
        "    JOBS.put((done, fs_store, key, data))\n    return done\n\n\n"
        + s.replace(_INBOUND_WRITE, _INBOUND_WRITE.replace(
            'fs_store.write("", "", "inbound_payments", inbound_payments.encode())',
            "await asyncio.wrap_future(write_by_worker(fs_store, 'inbound_payments', inbound_payments.encode()))"),
            1)))
       for name, on_error in (
           ("writes_by_a_worker_started_first", "            done.set_exception(e)\n            continue\n"),
           # (the same thread prints the error and reports the write done: it passed, the disk never refusing it)
           ("swallowed_by_a_worker_started_first", "            print('could not save', name, e)\n"))},
    # each payment counted once, a set in memory saying which: after the crash, the check and the learner process both
    # put the set back as the workbook's cells made it, and the PaymentClaimed handed over again is counted twice
    "counts_once_by_a_set_in_memory": ("background_processor", "07_background_processor.ipynb", lambda s: (
        "COUNTED = set()\n\n\n" + s.replace(
            "                if info is None:\n                    payments[payment_hash] = "
            "PaymentInfo(purpose.preimage(), secret, HTLCStatus.Succeeded, amount_msat)\n                else:\n"
            "                    info.status, "
            "info.preimage, info.secret = HTLCStatus.Succeeded, purpose.preimage(), secret\n",
            "                if payment_hash not in COUNTED:\n                    if info is None:\n"
            "                        info = payments[payment_hash] = PaymentInfo(purpose.preimage(), secret, "
            "HTLCStatus.Succeeded, 0)\n                    elif info.status is not HTLCStatus.Succeeded:\n"
            "                        info.amt_msat = 0\n                    info.status, info.preimage, info.secret = "
            "HTLCStatus.Succeeded, purpose.preimage(), secret\n                    info.amt_msat += amount_msat\n"
            "                    COUNTED.add(payment_hash)\n", 1))),
    # the same set kept in a dict beside the lock that guards it: the check and the learner process both kept it across
    # the crash (neither put back what a dict holding more than data holds), and both passed the workbook
    "counts_once_by_a_set_in_memory_beside_its_lock": ("background_processor", "07_background_processor.ipynb",
                                                       lambda s: _AS_THE_CHECK["counts_once_by_a_set_in_memory"][2](s)
                                                       .replace("COUNTED = set()", "STATE = {'lock': threading.Lock(), "
                                                                "'counted': set()}", 1)
                                                       .replace("COUNTED", "STATE['counted']")),
    # the write handed to a pool in a with block, whose end joins the pool's thread: refused as Thread.join is (it hung
    # for the hang limit, told it was polling, and the next check in the kernel failed too)
    "writes_in_a_pool_of_a_with_block": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: s.replace(
        _WRITE_IN, "                with concurrent.futures.ThreadPoolExecutor(1) as pool:\n                    "
        "pool.submit(fs_store.write, '', '', 'inbound_payments', inbound_payments.encode())\n", 1)),
    # a plain attribute of a component read (its network): the check's stand-in gives the value itself, and the
    # grader's gave a stand-in of it, which Address.from_script refused ("must be a Network")
    "reads_a_components_network": ("funding_generation_ready", "02_funding_generation_ready.ipynb", lambda s: s.replace(
        "Address.from_script(output_script, network)", "Address.from_script(output_script, bitcoind_client.network)")),
    # ldk-sample's PaymentForwarded arm names the nodes from the graph (network_graph.read_only().nodes(), LDK's map of
    # NodeId to NodeInfo: it was a frozenset of scids, and the arm raised AttributeError),
    # and a receipt is kept in the node's folder read as fs_store.data_dir (a path): neither crossed to the grader
    "reads_the_graphs_nodes_and_its_folder": ("forwarding", "05_forwarding.ipynb", lambda s: s.replace(
        '            log.info("Forwarded a payment, earning %s msat", fee)\n',
        '            from ldkkit.routing.gossip import NodeId\n'
        '            nodes = network_graph.read_only().nodes()\n'
        '            channel = next((c for c in channel_manager.list_channels()\n'
        '                            if c.channel_id == event.prev_channel_id), None)\n'
        '            node = channel and nodes.get(NodeId.from_pubkey(channel.counterparty.node_id))\n'
        '            name = ("" if channel is None else "private node" if node is None else "unnamed node"\n'
        '                    if node.announcement_info is None else f"node {node.announcement_info.alias()}")\n'
        '            with open(os.path.join(fs_store.data_dir, "receipts"), "a") as receipts:\n'
        '                receipts.write(f"{fee} msat from {name}, {len(nodes)} nodes known\\n")\n', 1)),
    # the write awaited in anyio's worker thread (anyio.to_thread.run_sync, anyio imported in a cell): its verdict
    # varied from run to run, in the check and the grader (anyio's thread was not counted on the world's clock)
    "awaits_its_write_through_anyio": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: (
        "import anyio.to_thread\n\n" + s.replace("def handle_ldk_events(", "async def handle_ldk_events(", 1).replace(
            _WRITE_IN, '                await anyio.to_thread.run_sync(fs_store.write, "", "", "inbound_payments", '
            'inbound_payments.encode())\n', 1))),
    # the write's OSError returned, not raised: the check judges it as raised (the queue does), and so must the grader
    # (it took it as None, handled, and passed)
    "returns_the_write_error": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        _INBOUND_WRITE, _INBOUND_WRITE.replace("except OSError:", "except OSError as error:").replace(
            "return ReplayEvent()", "return error"), 1)),
    # an async helper called without await, its coroutine dropped: the hint names the await, in the learner process too
    "claims_unawaited": ("receiving_payments", "03_receiving_payments.ipynb", lambda s: (
        "async def claim(channel_manager, preimage):\n    channel_manager.claim_funds(preimage)\n\n\n" + s.replace(
            "                channel_manager.claim_funds(preimage)", "                claim(channel_manager, preimage)",
            1))),
    # each request answered by multiprocessing's ThreadPool.apply_async, the work pausing for a minute or not: its
    # verdict varied from run to run (the pool's work not counted on the world's clock), in the check and the grader
    **{name: ("open_channel_request", "01_open_channel_request.ipynb", lambda s, pause=pause: _THREAD_POOL.format(
        pause=pause) + s.replace("            if funding_satoshis > 5_000_000:", "            POOL.apply_async(ANSWER, "
                                 "(channel_manager, keys_manager, event))\n            return None\n"
                                 "            if funding_satoshis > 5_000_000:", 1))
       for name, pause in (("answered_in_a_thread_pool", 0), ("thread_pool_answers_a_minute_later", 60))},
    # answers each request, then asks for it again: the replay's answer raises, its hint read from the recorded calls
    "answers_then_asks_again": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "        case _:\n", "            return ReplayEvent()\n        case _:\n", 1)),
    # awaits in the handler, then rejects: 'awaiting in your handler first', told from the call's own hand-over
    "rejects_after_awaiting": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "def handle_ldk_events(", "async def handle_ldk_events(", 1).replace(
        "            else:\n", "            else:\n                await asyncio.sleep(5)\n", 1)),
    # workbook 2's peer gone before the hand-over: LDK's error raised again in the except, and let out of a TaskGroup;
    # what the error came from (its cause, a group's errors) crosses from the learner process
    "raises_while_handling_the_hand_over_error": ("funding_generation_ready", "02_funding_generation_ready.ipynb",
                                                  lambda s: s.replace(
        'log.info("Channel went away before we could fund it")',
        'raise RuntimeError("Channel went away before we could fund it")', 1)),
    "hands_over_in_a_task_group_catching_nothing": ("funding_generation_ready", "02_funding_generation_ready.ipynb",
                                                    lambda s: s.replace(
        "def handle_ldk_events(", "async def handle_ldk_events(", 1).replace(
        "            try:\n                channel_manager.funding_transaction_generated(",
        "            async def hand_over():\n"
        "                channel_manager.funding_transaction_generated(", 1).replace(
        "            except APIError:  # the peer went away before we could hand it over: nothing was broadcast\n"
        '                log.info("Channel went away before we could fund it")\n',
        "            async with asyncio.TaskGroup() as group:\n                group.create_task(hand_over())\n", 1)),
    # the same under a second: the learner process tells the grader the handler's own code made the call
    "rejects_after_awaiting_under_a_second": ("open_channel_request", "01_open_channel_request.ipynb",
                                              lambda s: s.replace("def handle_ldk_events(",
                                                                  "async def handle_ldk_events(", 1).replace(
        "            else:\n", "            else:\n                await asyncio.sleep(0.9)\n", 1)),
    # a task rejects 50 ms later while the handler awaits 0.5 s: the task's call is no call of the handler's own
    "rejects_from_a_task_while_awaiting": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "def handle_ldk_events(", "async def handle_ldk_events(", 1).replace(
        "            else:\n                channel_manager.force_close_without_broadcasting_txn(\n",
        "            else:\n                async def later():\n                    await asyncio.sleep(0.05)\n"
        "                    channel_manager.force_close_without_broadcasting_txn(\n", 1).replace(
        '                    temporary_channel_id, counterparty_node_id, "We only accept channels over '
        '5,000,000 sats"\n                )\n',
        '                        temporary_channel_id, counterparty_node_id, "We only accept channels over 5,000,000 '
        'sats"\n                    )\n                task = asyncio.get_running_loop().create_task(later())\n'
        "                background_tasks.add(task)\n                await asyncio.sleep(0.5)\n", 1)),
    # the record written with open() in the node's folder (fs_store.get_data_dir()): the check's full disk refuses it
    # as it refuses fs_store.write; the learner process was told "a PosixPath cannot cross the grading boundary"
    **{f"writes_with_open_{how}": ("background_processor", "07_background_processor.ipynb",
                                   lambda s, arm=arm: s.replace(_INBOUND_WRITE,
        "                import os\n                try:\n"
        "                    with open(os.path.join(fs_store.get_data_dir(), 'inbound_payments'), 'wb') as file:\n"
        "                        file.write(inbound_payments.encode())\n"
        f"                except OSError as error:\n                    {arm}", 1))
       for how, arm in (("catching", "return ReplayEvent()"), ("raising", "raise"),
                        ("swallowing", "print('could not save:', error)"))},
    # ... and with a FilesystemStore of the learner's own on that folder (its temporary file, then a rename)
    **{f"writes_with_a_store_of_its_own_{how}": ("background_processor", "07_background_processor.ipynb",
                                                 lambda s, arm=arm: s.replace(_INBOUND_WRITE,
        "                from ldkkit.fs_store import FilesystemStore\n                try:\n"
        "                    FilesystemStore(fs_store.get_data_dir()).write('', '', 'inbound_payments', "
        "inbound_payments.encode())\n"
        f"                except OSError as error:\n                    {arm}", 1))
       for how, arm in (("catching", "return ReplayEvent()"), ("raising", "raise"))},
    # the record written with fs_store.write, then read back with open() to make sure: the learner process's view of
    # the node's folder holds what the node wrote there (it held only the learner's own files: FileNotFoundError)
    "reads_its_write_back_with_open": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        _INBOUND_WRITE, _INBOUND_WRITE + "\n                import os\n"
        "                with open(os.path.join(fs_store.get_data_dir(), 'inbound_payments'), 'rb') as file:\n"
        "                    if file.read() != inbound_payments.encode():\n"
        "                        return ReplayEvent()", 1)),
    # the write retried in the handler after 2 s, then 4 s (asyncio.sleep): LDK's processor waits for the handler, and
    # so does the check, on the world's clock; the grader must too (the check once failed it, "still waiting")
    "retries_after_pauses": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        _INBOUND_WRITE, "                for pause in (0, 2, 4):\n                    await asyncio.sleep(pause)\n"
        + textwrap.indent(_INBOUND_WRITE.split("  #")[0].replace("return ReplayEvent()", "continue"), "    ")
        + "\n                    break\n                else:\n                    return ReplayEvent()", 1)),
    # tries the write in place ten times and gives up, or keeps trying until it works: the disk stays full for the
    # hand-over that met it whichever process the writes come from (ten tries passed when it refused six writes)
    **{name: ("background_processor", "07_background_processor.ipynb", lambda s, tries=tries: s.replace(
        _INBOUND_WRITE, f"                for _ in {tries}:\n"
        + textwrap.indent(_INBOUND_WRITE.split("  #")[0].replace("return ReplayEvent()", "continue"), "    ")
        + "\n                    break", 1))
       for name, tries in (("retries_ten_times_in_place_then_gives_up", "range(10)"),
                           ("retries_in_place_until_it_works", "iter(int, 1)"))},
    # the write in a task the handler awaits, through asyncio.wait_for or gather (each wraps it in a task), the OSError
    # caught: it reached the handler, which asked for the event again. The check once failed it: "the task your handler
    # spawned [...] raised OSError", as if no one had taken it
    **{f"awaits_its_write_through_{how}": ("background_processor", "07_background_processor.ipynb",
                                           lambda s, wrap=wrap: s.replace(_INBOUND_WRITE, _INBOUND_WRITE.replace(
        'fs_store.write("", "", "inbound_payments", inbound_payments.encode())',
        wrap % 'asyncio.to_thread(fs_store.write, "", "", "inbound_payments", inbound_payments.encode())'), 1))
       for how, wrap in (("wait_for", "await asyncio.wait_for(%s, 5)"), ("gather", "await asyncio.gather(%s)"))},
    # ... and in a task it awaits a simulated second later: the error is the handler's to take until it returns
    "awaits_its_write_task_after_a_pause": ("background_processor", "07_background_processor.ipynb",
                                            lambda s: s.replace(_INBOUND_WRITE,
        "                writing = asyncio.get_running_loop().create_task(asyncio.to_thread(\n"
        '                    fs_store.write, "", "", "inbound_payments", inbound_payments.encode()))\n'
        "                await asyncio.sleep(1)\n" + _INBOUND_WRITE.replace(
            'fs_store.write("", "", "inbound_payments", inbound_payments.encode())', "await writing"), 1)),
    # ... and a task the handler spawns and never awaits, whose write fails: that error reaches no one
    "spawns_its_write_and_forgets_it": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        _INBOUND_WRITE, _INBOUND_WRITE.replace(
            'fs_store.write("", "", "inbound_payments", inbound_payments.encode())',
            'background_tasks.add(asyncio.get_running_loop().create_task(asyncio.to_thread(fs_store.write, "", "", '
            '"inbound_payments", inbound_payments.encode())))'), 1)),
    # ... and of workbook 6 from ChannelClosed, its story hours long on the world's clock: nothing in the learner
    # process can wake it, so the grader waits as the check does (asked again each simulated second, it took 37 s)
    "never_returns_from_channel_closed": ("on_chain", "06_on_chain.ipynb", lambda s: s.replace(
        "        case Event.ChannelPending() | Event.ChannelReady() | Event.ChannelClosed() "
        "| Event.DiscardFunding():\n",
        "        case Event.ChannelClosed():\n            await asyncio.Event().wait()\n"
        "        case Event.ChannelPending() | Event.ChannelReady() | Event.DiscardFunding():\n", 1)),
    # the write, then an await that never ends: the processor waits PLAY_ON_S for it, and the check fails it (the hint
    # says how long it waited); the grader must say the same
    "waits_for_ever_after_its_write": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        _INBOUND_WRITE, _INBOUND_WRITE + "\n                await asyncio.Event().wait()", 1)),
    # (an async handler of workbook 4 that never returns from PaymentSent: the grader's worker told 'it raised
    # HandlerTimeout: the handler awaits something that never happens', where the check tells it 'still waiting')
    "never_returns_from_payment_sent": ("sending_payments", "04_sending_payments.ipynb", lambda s: s.replace(
        "def handle_ldk_events(", "async def handle_ldk_events(", 1).replace(
        '                fs_store.write("", "", "outbound_payments", outbound_payments.encode())\n'
        '        case Event.PaymentFailed(',
        '                fs_store.write("", "", "outbound_payments", outbound_payments.encode())\n'
        '            await asyncio.Event().wait()\n        case Event.PaymentFailed(', 1)),
    # the user_channel_id drawn once per keys_manager (functools.cache): a node's components are the same at every
    # event, so every channel gets the same id, in the check as in the grader (the check gave a new keys_manager to
    # each event, and passed it)
    "draws_one_id_per_keys_manager": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        'int.from_bytes(keys_manager.get_secure_random_bytes()[:16], "big")', "uid_of(keys_manager)", 1)
        .replace("def handle_ldk_events(", "import functools\n\n\n@functools.cache\ndef uid_of(keys_manager):\n"
                 "    return int.from_bytes(keys_manager.get_secure_random_bytes()[:16], 'big')\n\n\n"
                 "def handle_ldk_events(", 1)),
    # a node's components are the same for its life and new for the next node's (the grader's stand-ins were the
    # learner process's for good): a handler that accepts one channel per node, telling nodes apart by their
    # channel_manager, accepts each play's channel, in the check as in the grader
    "accepts_one_channel_per_node": ("background_processor", "07_background_processor.ipynb", lambda s: s.replace(
        "            if funding_satoshis > 5_000_000:",
        "            if funding_satoshis > 5_000_000 and channel_manager not in ACCEPTED_FOR:\n"
        "                ACCEPTED_FOR.add(channel_manager)", 1).replace(
        "async def handle_ldk_events(", "ACCEPTED_FOR = set()\n\n\nasync def handle_ldk_events(", 1)),
    # the components asked what they are: a node's are what they say, and so are the check's and the grader's stand-ins
    # (the check once failed it: "AssertionError: <class 'ldkkit.exercises.recorder._Recorded'>")
    "asks_what_its_components_are": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "    match event:\n", "    from ldkkit.ln.channelmanager import ChannelManager\n"
        "    from ldkkit.sign import KeysManager\n"
        "    assert isinstance(channel_manager, ChannelManager) and isinstance(keys_manager, KeysManager)\n"
        "    match event:\n", 1)),
    "exits": ("open_channel_request", "01_open_channel_request.ipynb", lambda s: s.replace(
        "            if funding_satoshis > 5_000_000:", "            raise SystemExit(0)\n"
        "            if funding_satoshis > 5_000_000:")),
}


def test_the_learners_stand_ins_are_the_same_at_every_event_and_new_once_its_node_restarts():
    """As a real node's components, and as the check's (``Recorder._proxy``): a handler that keeps what it knows of a
    node by its components (a dict keyed by channel_manager) forgets it when the node's process dies."""
    from ldkkit.sandbox import child

    learner = child.Learner.__new__(child.Learner)  # (no process of its own: only its stand-ins are looked at)
    learner.channel, learner.spawned = None, []
    learner.loop = type("Loop", (), {"run_forever": lambda self: None})()
    learner._new_node()
    before = dict(learner.components)
    assert learner.components == before and sorted(before) == sorted(child.COMPONENTS)
    learner.crashed()
    assert all(learner.components[name] is not before[name] for name in before)


#: The hang limit the spinning cases are played under, by the check here and by the grader's (its job hands the
#: worker this process's): each waits for it twice (the kit's 10 s made each case 20 s).
SPIN_LIMIT_S = 2.0


@pytest.mark.parametrize("case", sorted(_AS_THE_CHECK))
def test_the_grader_gives_the_checks_own_verdict_and_words(tmp_path, monkeypatch, case):
    from ldkkit.exercises import check, common

    if case.startswith("spins_in_"):
        monkeypatch.setattr(common, "HANDLER_TIMEOUT_S", SPIN_LIMIT_S)
    exercise, name, change = _AS_THE_CHECK[case]
    source = _SETUP + "\n\n" + change(_solution_handler(name))
    module = tmp_path / f"learner_{case}.py"  # (a learner's file: the check sees its code as the learner's)
    module.write_text(source)
    spec = importlib.util.spec_from_file_location(module.stem, module)
    learner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(learner)
    try:
        check(exercise, learner.handle_ldk_events)
        expected = ("passed", "")
    except ExerciseFailed as e:
        expected = ("failed", str(e))
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": text}
             for text in (source, f"from ldkkit.exercises import check\ncheck({exercise!r}, handle_ldk_events)")]
    (tmp_path / "class").mkdir()
    path = tmp_path / "class" / name
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    row = grading.grade_workbook("amy", path, timeout_s=60)
    # (where the check sends the learner to the traceback a notebook shows above, a grade shows the learner's below)
    hint, _, trace = row.hint.partition("\nIn the learner's process:\n")
    assert (row.status, hint) == (expected[0], expected[1].replace("read the traceback above", "read the traceback "
                                                                   "below") if trace else expected[1])
    passes = ("lock_held_awaiting", "forwards_after", "claimed_by_one_worker_thread", "claimed_by_one_worker_per_loop",
              "claimed_from_a_thread", "keeps_the_first_storages", "claimed_a_minute_later",
              "bumps_from_one_worker", "funds_as_a_batch_of_one", "writes_with_open_catching",
              "reads_its_write_back", "retries_after_pauses",
              "writes_with_a_store_of_its_own_catching", "accepts_one_channel_per_node",
              "asks_what_its_components_are", "awaits_its_write", "writes_by_a_worker_started_first",
              "reads_a_components_network", "answered_in_a_thread_pool", "reads_the_graphs_nodes_and_its_folder",
              "awaits_its_write_through_anyio", "rejects_from_a_task_while_awaiting",
              "raises_while_handling_the_hand_over_error", "hands_over_in_a_task_group_catching_nothing",
              "retries_in_place_until_it_works")
    assert expected[0] == ("passed" if case.startswith(passes) else "failed")
    if case == "claimed_by_one_worker_task":  # the cause named: the task of an earlier play no longer runs
        assert "a task spawned in an earlier play" in hint and "event loop of its own" in hint, hint
    if case == "per_loop_worker_claims_a_repeat":  # the cause named: the repeat claimed, by this play's worker
        assert "you claimed it a second time" in row.hint and "earlier play" not in hint, hint
    if case == "hands_over_the_outer_bump_event":  # the cause named, the call crossing with the outer event
        assert "you handed over the Event.BumpTransaction itself" in row.hint, row.hint
    if case == "builds_a_sweep_never_broadcast":  # the cause named, the descriptors crossing as copies
        assert "you built a transaction spending it" in row.hint, row.hint
    if case.startswith("spins_in_the_handler_"):  # the handler's own words, the check's stop, at the grader's limit
        assert f"your handler did not return within {SPIN_LIMIT_S:g} seconds of being given " \
               "Event.PaymentClaimable. The check stopped it." in hint, hint
    elif case.startswith("spins_in_a_thread_"):  # the thread's own words, the check's stop, at the grader's limit
        assert f"work your handler handed to a thread ran {SPIN_LIMIT_S:g} seconds without ending, after " \
               "Event.PaymentClaimable. The check stopped it." in hint, hint
    elif case.startswith("spins_in_"):  # the task's own words, the check's stop, at the limit the grader was given
        assert f"a task your handler spawned ran {SPIN_LIMIT_S:g} seconds without pausing, after " \
               "Event.PaymentClaimable. The check stopped it." in hint, hint
    if case == "thread_pool_answers_a_minute_later":  # (the pool's sleep on the world's clock, in both)
        assert "you rejected it only 60 s later" in hint, hint
    if case == "waits_for_ever_after_its_write":  # the check's words: the processor waited for it, as LDK's does
        assert "the processor waited 300 simulated seconds after the story ended" in hint, hint
    if case == "retries_ten_times_in_place_then_gives_up":
        assert "returned as if all was well after 10 tries" in hint and "never give up" in hint, hint
    if case == "returns_ok_when_done":
        assert "your handler returned 'ok'" in hint, hint
    if case == "returns_false_when_the_write_fails":
        assert "(False, which LDK takes as handled)" in hint, hint
    if case == "fails_back_at_once":
        assert "while it handled HTLCHandlingFailed" in row.hint, row.hint
    if case == "disconnects_the_next_hop":
        assert "disconnect_by_node_id, while it handled PaymentForwarded" in row.hint, row.hint
    if case == "a_callback_raises":
        assert "the callback your handler scheduled to end normally" in hint and "ZeroDivisionError" in hint, hint
    if case == "answers_then_asks_again":
        assert "answered this request when it was handed over before" in hint, hint
    if case.startswith("rejects_after_awaiting"):
        assert "awaiting in your handler first" in hint, hint
    if case == "claims_unawaited":
        assert "your handler called claim(...) without await" in hint, hint
    if case == "exits":  # the learner's own line, and none of the kit's
        assert trace.startswith("Traceback") and "raise SystemExit(0)" in trace and "ldkkit" not in trace


#: Workbook 5's forward, its random wait slept with time.sleep off the node's loop (the solution's arm, replaced).
SLEPT_FORWARDS = {
    "thread": "threading.Thread(target=work).start()",
    "to_thread": "background_tasks.add(asyncio.get_running_loop().create_task(asyncio.to_thread(work)))",
    "one_worker_pool": "POOL.submit(work)",
    "too_long": "POOL.submit(work)",
}


def slept_forward(how: str) -> str:
    notebook = json.loads((Path(__file__).resolve().parent.parent / "solutions" / "05_forwarding.ipynb").read_text())
    arm = ("            def work():\n"
           f"                time.sleep(delay{' * 1.2 + 0.01' if how == 'too_long' else ''})\n"
           "                channel_manager.process_pending_htlc_forwards()\n\n"
           f"            {SLEPT_FORWARDS[how]}\n")
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            start = source.index("            async def forward_later")
            source = source[:start] + arm + source[source.index("            ### END SOLUTION", start):]
            cell["source"] = ("import concurrent.futures, threading, time\n"
                              "POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1)\n" + source)
    return json.dumps(notebook)


@pytest.mark.parametrize("how", sorted(SLEPT_FORWARDS))
def test_a_wait_slept_off_the_loop_is_graded_on_the_worlds_clock_as_in_the_check(tmp_path, how):
    """time.sleep in a thread of the learner's, in asyncio.to_thread's work, or in a pool of theirs (of one worker: a
    forward may queue behind another's wait) waits on the world's clock in the learner process, as in the check: the
    delay is measured as slept (a thread's was graded 'Happened: 0 ms' where check() passed it)."""
    path = tmp_path / "05_forwarding.ipynb"
    path.write_text(slept_forward(how))
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    if how == "too_long":
        assert row.status == "failed" and "Expected: a delay between 100 and 500 ms" in row.hint, row.hint
        assert "Happened: 610 ms" in row.hint, row.hint
    else:
        assert row.status == "passed", row.hint


#: Workbook 1 right but for its accept: zero-conf, for an unknown peer, reached through another component.
ZERO_CONF_THROUGH_PEER_MANAGER = (
    "from ldkkit.events import Event\n\n"
    "def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,\n"
    "                      peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network,\n"
    "                      event):\n"
    "    if isinstance(event, Event.OpenChannelRequest):\n"
    "        tcid, peer = event.temporary_channel_id, event.counterparty_node_id\n"
    "        if event.funding_satoshis > 5_000_000:\n"
    "            uid = int.from_bytes(keys_manager.get_secure_random_bytes()[:16], 'big')\n"
    "            peer_manager.channel_manager.accept_inbound_channel_from_trusted_peer_0conf(tcid, peer, uid)\n"
    "        else:\n"
    "            channel_manager.force_close_without_broadcasting_txn(tcid, peer, 'too small')\n")


def test_a_forbidden_call_made_through_another_component_is_judged_as_made(tmp_path):
    """peer_manager.channel_manager is the node's channel_manager: a call through it was not recorded, so the zero-conf
    accept the workbook forbids went unseen, and the check and the grader passed the workbook."""
    from ldkkit.exercises import check

    namespace: dict = {}
    exec(compile(ZERO_CONF_THROUGH_PEER_MANAGER, str(tmp_path / "learner.py"), "exec"), namespace)  # noqa: S102
    with pytest.raises(ExerciseFailed, match="trusted_peer_0conf"):
        check("open_channel_request", namespace["handle_ldk_events"])
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ZERO_CONF_THROUGH_PEER_MANAGER}
    path = tmp_path / "01_open_channel_request.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    row = grading.grade_workbook("amy", path, batch=grading.Batch())
    assert row.status == "failed" and "Happened: accept_inbound_channel_from_trusted_peer_0conf(...)" in row.hint, \
        row.hint


# --- a cgroup of its own for each learner process, where the machine has one to give ----------------------------


def _cgroup_notes(tmp_path: Path, monkeypatch) -> list[str]:
    monkeypatch.setattr(grading.jail_module, "CGROUP_ROOT", str(tmp_path))
    missing: list[str] = []
    grading.jail_module._own_cgroup(grading.jail_module.Jail(64_321, grading.jail_module.Limits(processes=9)), missing)
    return missing


def test_without_a_cpu_controller_the_sandbox_says_it_has_no_cgroup(tmp_path, monkeypatch):
    assert _cgroup_notes(tmp_path, monkeypatch) == [
        "no cgroup of its own (no cpu controller here): a learner's processes, each in a session of its own, take "
        "CPU time from the other workbooks graded at once (grade where root may make cgroups with the cpu controller: "
        "cgroup v1's cpu hierarchy, or a cgroup v2 that lends it to its children)"]


def test_with_cgroup_v2_the_learner_joins_a_cgroup_of_its_own_with_its_limit_on_tasks(tmp_path, monkeypatch):
    """(Files stand in for cgroupfs here: what is written where.)"""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    own = next(line.split(":", 2)[2].strip() for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.startswith("0::"))
    parent = tmp_path / own.strip("/")
    parent.mkdir(parents=True, exist_ok=True)
    for name, text in (("cgroup.controllers", "cpu pids memory\n"), ("cgroup.subtree_control", "memory\n")):
        (parent / name).write_text(text)
    assert _cgroup_notes(tmp_path, monkeypatch) == []
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +pids"  # lent to its children
    folder = parent / "ldkkit-64321"
    assert ((folder / "pids.max").read_text(), (folder / "cgroup.procs").read_text()) == ("9", str(os.getpid()))
    assert grading.jail_module.cgroups(64_321) == [str(folder)]


def test_where_cgroup_v2_lends_no_cpu_controller_the_sandbox_says_why(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpu pids\n")
    own = next(line.split(":", 2)[2].strip() for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.startswith("0::"))
    parent = tmp_path / own.strip("/")
    parent.mkdir(parents=True, exist_ok=True)
    (parent / "cgroup.controllers").write_text("cpu pids\n")
    (parent / "cgroup.subtree_control").mkdir()  # (as the kernel refuses it where the grader's cgroup has processes)
    [note] = _cgroup_notes(tmp_path, monkeypatch)
    assert note.startswith("no cgroup of its own (") and "take CPU time from the other workbooks" in note


def test_where_there_is_no_proc_cgroup_there_is_no_cgroup_to_make_or_remove(monkeypatch):
    """(A machine without /proc/self/cgroup: the sandbox says it has none, and killing a uid's processes goes on.)"""
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/self/cgroup":
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert grading.jail_module.cgroups(64_321) == []
    grading.jail_module.remove_cgroups(64_321)  # (nothing to remove, and no error)


#: Cells before workbook 3's handler, and what replaces its answers to PaymentClaimable: each from a task, a minute
#: later (LDK allows it until the claim deadline; the check waits for it).
LATER = ("import asyncio\nTASKS = set()\n\n"
         "def later(seconds, call, *args):\n"
         "    async def answer():\n"
         "        await asyncio.sleep(seconds)\n"
         "        call(*args)\n"
         "    task = asyncio.get_running_loop().create_task(answer())\n"
         "    TASKS.add(task)\n"
         "    task.add_done_callback(TASKS.discard)\n")


def put_off(name: str, seconds: int) -> dict:
    """The solution workbook ``name``, its handler's answers to PaymentClaimable made ``seconds`` later, by a task."""
    nb = json.loads((Path(__file__).resolve().parent.parent / "solutions" / name).read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        for answer in ("channel_manager.claim_funds(", "channel_manager.fail_htlc_backwards("):
            source = source.replace(answer, f"later({seconds}, {answer[:-1]}, ")
        cell["source"] = source
    at = next(i for i, c in enumerate(nb["cells"]) if "def handle_ldk_events" in c["source"])
    nb["cells"].insert(at, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                            "source": LATER})
    return nb


@pytest.mark.skipif(not grading.jail_module.is_root(), reason="sandbox uids need root")
@pytest.mark.parametrize("name, exercise, seconds", [("03_receiving_payments.ipynb", "receiving_payments", 60),
                                                     ("08_capstone.ipynb", "capstone", 5)])
def test_an_answer_put_off_in_a_task_is_waited_for_by_the_grader_as_by_the_check(tmp_path, name, exercise, seconds):
    """The grader waits for the learner process's tasks as the check waits for a task in the notebook (they
    are in another process: it says which events they still work for); workbook 3 failed 'it was never claimed'. The
    capstone plays every scenario under a processor, its crash and restart too (restart_replay), as the check does."""
    from ldkkit.exercises import check

    nb = put_off(name, seconds)
    code = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "code" and "check(" not in c["source"])
    namespace: dict = {"__name__": "learner"}
    exec(compile(code, str(tmp_path / "learner.py"), "exec"), namespace)  # noqa: S102
    check(exercise, namespace["handle_ldk_events"])  # (passes in Jupyter)
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    row = grading.grade_workbook("amy", path, timeout_s=120, batch=grading.Batch())
    assert (row.status, row.hint) == ("passed", ""), row.hint


#: The first line of workbook 8's handler, there: every event is answered with the first ChannelManager it was given for
#: its node (by node id), kept in a registry of its own.
FIRST_MANAGER = "    channel_manager = MANAGERS.setdefault(channel_manager.get_our_node_id(), channel_manager)\n"


@pytest.mark.skipif(not grading.jail_module.is_root(), reason="sandbox uids need root")
def test_a_manager_kept_from_before_a_restart_is_the_restarted_nodes_for_the_grader_as_for_the_check(tmp_path):
    """restart_replay restarts the node in the same process: a manager kept from before it is the crashed node's. The
    grader's stand-ins are the node's whatever was kept (and a real restart starts with empty memory): the check's kept
    component stands for the restarted node too. It failed the check ('PaymentClaimable was expected'), and passed the
    grader."""
    from ldkkit.exercises import check

    nb = json.loads((Path(__file__).resolve().parent.parent / "solutions" / "08_capstone.ipynb").read_text())
    at = next(i for i, c in enumerate(nb["cells"]) if "def handle_ldk_events" in "".join(c["source"]))
    source = "".join(nb["cells"][at]["source"])
    body = source.index("):\n", source.index("def handle_ldk_events")) + 3
    nb["cells"][at]["source"] = "MANAGERS = {}\n\n" + source[:body] + FIRST_MANAGER + source[body:]
    code = "\n".join("".join(c["source"]) for c in nb["cells"][:at + 1] if c["cell_type"] == "code")
    namespace: dict = {"__name__": "learner"}
    exec(compile(code, str(tmp_path / "learner.py"), "exec"), namespace)  # noqa: S102
    check("capstone", namespace["handle_ldk_events"])  # (raises if it fails)
    path = tmp_path / "08_capstone.ipynb"
    path.write_text(json.dumps(nb))
    row = grading.grade_workbook("amy", path, timeout_s=120, batch=grading.Batch())
    assert (row.status, row.hint) == ("passed", ""), row.hint


class _GivenNothing:
    """A learner process that only ever says what a test makes it say: killed, it is gone."""

    scratch = "/nowhere"
    dead: Exception | None = None

    def kill(self, why: Exception) -> None:
        self.dead = why


@pytest.mark.parametrize("message", [
    {"op": "open", "view": 0, "name": "../escape", "mode": "wb", "flags": os.O_WRONLY},
    {"op": "open", "view": 1, "name": "inbound_payments", "mode": "wb", "flags": os.O_WRONLY},
    {"files": {"0": {"../escape": {"b": ""}}}},
    {"files": {"0": {"sub/inbound_payments": {"b": ""}}}},
    {"files": {"1": {"inbound_payments": {"b": ""}}}},
    {"files": {"0": {"inbound_payments": "not bytes"}}}])
def test_the_learner_writes_in_a_nodes_folder_only_plain_files_of_a_folder_it_was_given(tmp_path, message):
    """A node's folder reaches the learner process as a view of its own (``get_data_dir``); what it says it wrote
    there is written in that folder only, by a plain name: anything else stops the learner process, writing nothing."""
    handler = bridge.RemoteHandler(_GivenNothing(), "async")  # type: ignore[arg-type]
    node = tmp_path / "node"
    node.mkdir()
    assert handler._folders.view(str(node)) == Path("/nowhere", node_folders.VIEWS, "0")
    with pytest.raises(bridge.LearnerGone):
        if message.get("op") == "open":
            handler._serve_open(message)
        else:
            handler._apply_files(message)
    assert list(tmp_path.rglob("*")) == [node]
    handler.learner.dead = None
    handler._apply_files({"files": {"0": {"inbound_payments": {"b": "AAE="}}}})
    assert (node / "inbound_payments").read_bytes() == b"\0\1"


def test_the_files_a_learner_writes_in_its_nodes_folders_are_bounded_in_all(tmp_path, monkeypatch):
    """A helper's probe: a handler writing new 1 MiB files in its node's folder filled the grader's scratch disk, and
    other learners' workbooks failed (no space left). Past ``MAX_FOLDER_BYTES`` in all the learner process is stopped,
    saying why; a file written again counts once, at its size now."""
    monkeypatch.setattr(node_folders, "MAX_FOLDER_BYTES", 3 << 10)
    handler = bridge.RemoteHandler(_GivenNothing(), "async")  # type: ignore[arg-type]
    node = tmp_path / "node"
    node.mkdir()
    handler._folders.view(str(node))
    kib = {"b": base64.b64encode(b"\0" * 1024).decode()}
    for _ in range(5):  # (the same file again and again: 1 KiB on disk)
        handler._apply_files({"files": {"0": {"inbound_payments": kib}}})
    handler._apply_files({"files": {"0": {"a": kib, "b": kib}}})
    with pytest.raises(bridge.LearnerGone, match="wrote over 0 MiB of files in its node's folder"):
        handler._apply_files({"files": {"0": {"c": kib}}})
    assert sorted(p.name for p in node.iterdir()) == ["a", "b", "inbound_payments"]
