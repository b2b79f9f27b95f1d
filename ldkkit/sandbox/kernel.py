"""What a Jupyter kernel gives a graded workbook's cells, and how Run All runs them (:mod:`.child` runs them).

Run All runs the cells top to bottom and stops at the first that raises; the check cell checks
the handler it is given, as it stands then, and what runs after it cannot change what it said.
So, in the learner process, ``check`` only notes the handler (:func:`check`) and stops the
workbook there: the grader runs the check itself. What a kernel adds to a plain process is here
too: ``display``, ``get_ipython()``, and an ``exit()`` or ``input()`` that does not stop a cell.
"""

from __future__ import annotations

import ast
import errno
import functools
import linecache
import reprlib
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Checks:
    """What the workbook's calls of ``check`` asked for: the grader runs the check itself, on the handler the first
    call for the graded workbook was given, as Run All shows that call's verdict."""

    exercise: str = ""  # the graded workbook's
    reached: bool = False
    handler: Any = None
    others: list[str] = field(default_factory=list)  # the other workbooks' checks it called (``check("forwarding")``)


CHECKS = Checks()
#: The errors the stub reference handlers raised (the kit's scenarios' peers run them: ``scenarios.run`` in a cell).
STUB_ERRORS: list[BaseException] = []


class Checked(BaseException):  # (not an Exception: a learner's ``except Exception`` around the check lets it by)
    """The workbook reached its check: what runs after it cannot change what the check said in Jupyter."""


def check(exercise: Any, handle_ldk_events: Any) -> None:
    """``ldkkit.exercises.check`` (and ``judge``, the same check recording nothing) in the learner process, under any
    name it is imported as: notes the handler it is given, for the graded workbook, and stops the workbook there;
    another workbook's check does nothing. Its name and parameters are the check's: a call the check refuses
    (``check(name, handler=h)``) raises the same TypeError, and Run All stops there."""
    from ..exercises import asked

    if CHECKS.reached:
        return None
    if asked(exercise, handle_ldk_events) == CHECKS.exercise:  # (an unknown workbook fails as the check does)
        CHECKS.reached, CHECKS.handler = True, handle_ldk_events
        raise Checked
    CHECKS.others.append(repr(exercise)[:60])
    return None



def quit_(*args: Any, **kwargs: Any) -> None:
    """``exit()``/``quit()`` in a Jupyter cell: the kernel asks its front end to close, and goes on running."""


def input_(prompt: Any = "") -> str:
    """``input()``: in Jupyter the learner types an answer and the workbook goes on; graded, it is an empty one."""
    return ""


def stopped_at(number: int, error: BaseException) -> str:
    """Why Run All stopped at code cell ``number``, before the workbook's check."""
    told = " ".join(traceback.format_exception_only(error)[-1].split())  # (one line: no "Hint:" line of its own)
    if isinstance(error, SyntaxError) and error.lineno:
        told += f" (line {error.lineno})"
    told = told if len(told) <= 300 else told[:299] + "…"
    if _beyond_the_limits(error):  # (it may have run in Jupyter: say what differs first)
        return (f"code cell {number} raised {told}: it went beyond one of the grader's limits on a workbook's process "
                "(its memory, its processes and threads, its open files: the README's 'Limits'), which Jupyter does "
                "not have. A cell that raises stops Run All, so the check cell never ran: keep the workbook within "
                "them")
    why = (f"code cell {number} raised {told}. In Jupyter, Run All stops at a cell that raises, so the check cell "
           "never ran: fix or remove that cell")
    if isinstance(error, (ImportError, FileNotFoundError)):  # (it may have worked in Jupyter: say what differs)
        why += (". The grader runs the workbook alone, without the files beside it: if it needs a file or module of "
                "the learner's own (myhandler.py), what the handler needs belongs in the workbook")
    return why


def _beyond_the_limits(error: BaseException) -> bool:
    """Whether ``error`` is what a process meets at one of the sandbox's limits (``jail.Limits``)."""
    return isinstance(error, MemoryError) or isinstance(error, RuntimeError) and "can't start new thread" in str(
        error) or isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.EAGAIN, errno.ENOMEM)


def stub_reference() -> types.ModuleType:
    """Make ``ldkkit.reference`` in this process a stub: the constants, never the handlers. Run before any kit module
    that imports it loads (``ldkkit.scenarios`` does: its ``reference`` was the real one, whose handler a cell could
    wrap and pass as its own); any kit module loaded already has its ``reference`` replaced."""
    stub = sys.modules.get("ldkkit.reference")
    if not getattr(stub, "STUB", False):
        stub = types.ModuleType("ldkkit.reference", "The reference handlers are not available while grading.")

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            STUB_ERRORS.append(error := RuntimeError("the kit's reference handlers are not available while grading: "
                                                      "write your own"))
            raise error

        stub.STUB = True  # type: ignore[attr-defined]
        stub.MIN_FUNDING_SATOSHIS_EXCLUSIVE = 5_000_000  # type: ignore[attr-defined]
        stub.TRUSTED_ZERO_CONF_PEERS = set()  # type: ignore[attr-defined]
        stub.handle_ldk_events = stub.ldk_sample_handle_ldk_events = unavailable  # type: ignore[attr-defined]
        sys.modules["ldkkit.reference"] = stub
    for name, module in list(sys.modules.items()):
        if (name == "ldkkit" or name.startswith("ldkkit.")) and isinstance(vars(module).get("reference"),
                                                                              types.ModuleType):
            module.reference = stub  # type: ignore[attr-defined]
    import ldkkit

    ldkkit.reference = stub  # type: ignore[attr-defined]
    return stub


def from_the_stub(error: BaseException, since: int) -> bool:
    """Whether a cell's ``error`` comes of an error a stub reference handler raised (a scenario's peer ran it) since
    ``since`` of them, and of nothing that ran a check here: only then did the cell run on in Jupyter. An error the
    learner's code raised after catching the stub's is its own, and stops Run All as it did there."""
    from ..exercises import ExerciseFailed

    if isinstance(error, ExerciseFailed):  # (a check's failure is never a scenario's)
        return False
    raised, seen = error, 0
    while raised is not None and seen < 50:
        if any(raised is stub for stub in STUB_ERRORS[since:]):
            return True
        raised, seen = raised.__cause__ or raised.__context__, seen + 1
    return False


def after_a_scenario(source: str, name: str, error: BaseException,
                     run: Callable[[ast.Module, str], None]) -> Optional[BaseException]:
    """Run the statements of cell ``name`` after the one a scenario stopped (``error``: its peers' handlers are not
    here), each on its own, as they ran in Jupyter (``handle_ldk_events = other`` there counts at the check). What
    that statement bound is not bound here: a statement that stops on one of those names is passed over too. The
    error that stops Run All, if one does."""
    line = next((tb.tb_lineno for tb in _tracebacks(error) if tb.tb_frame.f_code.co_filename == name), 0)
    unbound: set[str] = set()
    for statement in ast.parse(source).body:
        if statement.lineno <= line:  # (it, or what ran before it)
            unbound |= _bound(statement) if line <= (statement.end_lineno or 0) else set()
            continue
        since = len(STUB_ERRORS)
        try:
            run(ast.Module([statement], []), name)
        except BaseException as e:  # noqa: B036 - as the cell's own
            if not (isinstance(e, NameError) and e.name in unbound or from_the_stub(e, since)):
                return e
            unbound |= _bound(statement)
    return None


def _tracebacks(error: BaseException) -> list[types.TracebackType]:
    tb, found = error.__traceback__, []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found


def _bound(statement: ast.stmt) -> set[str]:
    """The names ``statement`` may bind."""
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def defined_in_the_workbook(handler: Any) -> bool:
    """Whether ``handler``'s code is a function a cell defined: itself, or what a ``functools.partial``, a bound
    method or an object's ``__call__`` runs. Its code must be what that cell's own text compiles to, where the cell
    says: code made elsewhere and given a cell's name (``marshal``, ``exec`` of a string) is not the workbook's."""
    for _ in range(8):
        if isinstance(handler, types.FunctionType):
            return handler.__code__.co_filename.startswith("<cell ") and compiled_from_its_cell(handler.__code__)
        if isinstance(handler, functools.partial):
            handler = handler.func
        elif isinstance(handler, types.MethodType):
            handler = handler.__func__
        else:
            handler = getattr(type(handler), "__call__", None)  # noqa: B004 - the class's, as a call runs it
    return False


#: The text each cell ran, by its name (``<cell 3>``), kept here as well as in ``linecache``: a library that clears
#: ``linecache`` (tornado's templates, ``linecache.clearcache()``) must not make the handler no longer the workbook's.
CELL_SOURCES: dict[str, str] = {}


def compiled_from_its_cell(code: types.CodeType) -> bool:
    """Whether compiling the text of the cell ``code`` names (as it ran) makes ``code``: the same instructions, named
    alike, starting on the same line."""
    text = CELL_SOURCES.get(code.co_filename)
    text = "".join(linecache.getlines(code.co_filename)) if text is None else text
    try:
        compiled = compile(text, code.co_filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (SyntaxError, ValueError):
        return False
    found = [compiled]
    while found:
        made = found.pop()
        if (made.co_name, made.co_firstlineno, made.co_code) == (code.co_name, code.co_firstlineno, code.co_code):
            return True
        found.extend(c for c in made.co_consts if isinstance(c, types.CodeType))
    return False


def display(*objs: Any, **_: Any) -> None:
    """Jupyter's ``display()``, which a workbook may call without importing it: here, each object's repr printed,
    as IPython's own display does outside a notebook."""
    for obj in objs:
        print(repr(obj))


class IPythonShell:
    """``get_ipython()`` as a graded workbook's cells call it (IPython turns ``%magic``, ``!command`` and ``name?``
    into calls on it). The grader already put the code that magics run in the workbook's namespace (``%%time``,
    ``%time x = f()``) in their place (:mod:`ldkkit.sandbox.source`); every other one does nothing here, and a
    shell command is not run (``files = !ls`` is an empty list)."""

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        return None

    def run_cell_magic(self, name: str, line: str, cell: str) -> None:
        return None

    def system(self, cmd: str) -> None:
        return None

    def getoutput(self, cmd: str, split: bool = True, depth: int = 0) -> list[str]:
        return []

    def show_usage(self) -> None:
        return None


def shown(value: Any) -> str:
    """A short repr of what the workbook's check was given, for the grader's row."""
    try:
        return reprlib.repr(value)
    except Exception:  # (a repr of the learner's that raises)
        return "(no repr)"
