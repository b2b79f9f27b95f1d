"""What a workbook's code is, read without running it: cells, the handler, check calls, copies.

The grader never trusts a notebook's structure. :func:`read_workbook` refuses symbolic
links and oversized files and says why a notebook is invalid (a cell whose ``source`` is
a number, say) instead of raising something else. :func:`learner_code` reads each code
cell as IPython does (:func:`python_of`: magics, ``!command``, ``name?``); its calls to
``check`` stay (in the learner process, ``check`` only notes the handler it is given: the
grader runs the check itself). The handler is found by name in the parsed code, wherever
it is, or by the name ``check`` is given. :func:`fingerprint` hashes a function's shape,
so a copy of the kit's reference handler or of a solution's is named whatever it was
renamed, reformatted or commented into.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
import os
import re
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

HANDLER_NAME = "handle_ldk_events"
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
#: The code a workbook may hold, all its code cells together (its outputs are never graded, and may be large): over
#: a hundred times the kit's largest workbook (solutions/08_capstone.ipynb: 7 KiB). Reading it is the worker's, within
#: the workbook's time limit, but Python parses a cell without letting another thread run: 1 MiB takes 2.4 s and
#: 280 MB, where 8 MiB took 19 s and 2 GB, past the limit's grace, in a worker no memory limit holds.
MAX_CODE_BYTES = 1024 * 1024
#: The JSON objects and arrays a notebook may hold, counted by their opening brackets (strings' own too, so over):
#: each takes a hundred bytes or more once read, and the grader reads every notebook in its own process, which no
#: memory limit holds (a 63 MB notebook of empty cells took 1.8 GB). The kit's workbooks hold under a thousand.
MAX_JSON_CONTAINERS = 1_000_000
#: The JSON strings a notebook may hold, counted by their quotes: each takes some fifty bytes or more once read (a
#: 61 MiB notebook of 12.9 million short strings in its metadata took the grader to 1.1 GB). A notebook's lines are
#: strings each, so this is over a million lines of code and outputs.
MAX_JSON_STRINGS = 2_000_000
_ROOT = Path(__file__).resolve().parent.parent.parent
#: IPython's cell magics that run the cell's code in the workbook's namespace. The others (``%%writefile``,
#: ``%%script``, ``%%bash``, ``%%html``, ``%%timeit``...) write it to a file, give it to another program, show it
#: or time it apart: in Jupyter the cell defines nothing, and graded it runs nothing.
CELL_MAGICS_THAT_RUN = frozenset({"time", "capture", "prun"})
#: IPython's line magics that run the rest of their line in the workbook's namespace (``%time x = f()``).
LINE_MAGICS_THAT_RUN = frozenset({"time"})
#: How many magics that run code, one inside another (``%%capture`` on a ``%%time`` cell), are read.
_MAGICS_DEPTH = 4
#: Without IPython: a cell magic (its first line), and lines that start with ``%`` or ``!``.
_CELL_MAGIC = re.compile(r"\s*%%(\S+)[ \t]*([^\n]*)\n?(.*)", re.DOTALL)
_LINE_MAGIC = re.compile(r"^([ \t]*)([%!])(%?)(\S*)[ \t]*(.*)$", re.MULTILINE)
#: A line that is, or assigns, a shell command or a magic (to count them: :func:`magic_lines`).
_MAGIC_LINE = re.compile(r"^[ \t]*(?:[\w.,\[\] \t]+=[ \t]*)?[%!]", re.MULTILINE)


class InvalidWorkbook(Exception):
    """The file is not a notebook the grader can read; the message says why."""


@dataclass
class LearnerCode:
    """A workbook's code, ready for the sandbox: one source per code cell."""

    cells: list[str]
    has_handler: bool
    #: Why the handler is a copy (the kit's reference, a solution, an import of either), or "".
    copied: str
    #: Where the workbook runs text as code (``exec``, ``eval``, ``compile``), or "": such code is not graded.
    runs_text: str = ""
    #: Whether a cell calls ``check(...)``: without one, Run All shows no verdict (its handler is graded all the same).
    has_check: bool = True
    #: The number of the first code cell that is no Python (a SyntaxError), or 0: Run All stops there.
    unreadable: int = 0
    #: Where the workbook's code names the grader's own modules (``ldkkit.sandbox``), or "": it could switch off what
    #: they look at in the learner process, so such a workbook is not graded.
    reaches_the_grader: str = ""


def read_workbook(path: Path) -> dict[str, Any]:
    """The notebook's JSON, or InvalidWorkbook: never a symlink, never more than 64 MiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        if path.is_symlink():
            raise InvalidWorkbook(f"{path.name} is a symbolic link; only a learner's own files are graded") from None
        raise InvalidWorkbook(f"{path.name} cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # (before fdopen, which refuses a folder with its own error)
        os.close(fd)
        raise InvalidWorkbook(f"{path.name} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise InvalidWorkbook(f"{path.name} is over {MAX_NOTEBOOK_BYTES // 2**20} MiB, its saved outputs most likely: "
                              "clear them in Jupyter (Edit > Clear Outputs of All Cells), save, and grade it again")
    if not data.strip():
        raise InvalidWorkbook(f"{path.name} is empty: Jupyter cannot open it either (the learner's work is not in it)")
    if data.count(b"{") + data.count(b"[") > MAX_JSON_CONTAINERS:
        raise InvalidWorkbook(f"{path.name} holds over {MAX_JSON_CONTAINERS:,} JSON objects and lists, where a "
                              "workbook holds a few hundred: not a workbook Jupyter saved from the learner's work")
    if (data.count(b'"') - data.count(b'\\"')) // 2 > MAX_JSON_STRINGS:  # (a quote escaped in a string is none)
        raise InvalidWorkbook(f"{path.name} holds over {MAX_JSON_STRINGS:,} JSON strings, where a workbook holds a "
                              "few thousand: not a workbook Jupyter saved from the learner's work (if its saved "
                              "outputs are that long, clear them in Jupyter, save, and grade it again)")
    # Jupyter reads a notebook as UTF-8 text, with no byte-order mark: what it cannot open, the learner never ran.
    if data.startswith(b"\xef\xbb\xbf"):
        raise InvalidWorkbook(f"{path.name} starts with a byte-order mark (an editor other than Jupyter saved it): "
                              "Jupyter cannot open it (\"Unreadable Notebook\"). Save it again without the mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        what = "a zip archive" if data.startswith(b"PK\x03\x04") else "not UTF-8 text"
        raise InvalidWorkbook(f"{path.name} is {what} (byte {data[e.start]:#04x} at offset {e.start}), not a "
                              "notebook: Jupyter cannot open it either") from None
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidWorkbook(f"{path.name} is not valid JSON: {str(e)[:200]}") from None
    if isinstance(notebook, dict) and "worksheets" in notebook and "cells" not in notebook:
        notebook = _from_nbformat_3(notebook)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidWorkbook(f"{path.name} is JSON but not a notebook (it has no list of cells)")
    return notebook


def _from_nbformat_3(notebook: dict[str, Any]) -> dict[str, Any]:
    """An nbformat 3 notebook's cells as nbformat 4 has them, as Jupyter converts it when it opens it: the cells of
    every worksheet, a code cell's ``input`` its source."""
    sheets = notebook["worksheets"] if isinstance(notebook["worksheets"], list) else []
    cells = [cell for sheet in sheets if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list)
             for cell in sheet["cells"]]
    return {**notebook, "cells": [{**cell, "source": cell.get("input", "")}
                                  if isinstance(cell, dict) and cell.get("cell_type") == "code" else cell
                                  for cell in cells]}


def code_cells(notebook: dict[str, Any]) -> list[str]:
    """The source of each code cell; InvalidWorkbook naming the first cell that is malformed."""
    sources = []
    for number, cell in enumerate(notebook["cells"], 1):
        if not isinstance(cell, dict):
            raise InvalidWorkbook(f"cell {number} is not an object")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise InvalidWorkbook(f"code cell {number}'s source is a {type(source).__name__}, not text")
        sources.append(source)
    if sum(len(source) for source in sources) > MAX_CODE_BYTES:
        raise InvalidWorkbook(f"its code cells hold over {MAX_CODE_BYTES // 2**20} MiB of code: keep in it the handler "
                              "and what the handler needs (the kit's own workbooks hold under 10 KiB of code)")
    return sources


#: CPython 3.11 shares its AST converter's recursion count between threads: parsing in two grader
#: threads at once can raise "SystemError: AST constructor recursion depth mismatch". One at a time.
_AST_LOCK = threading.RLock()


def learner_code(notebook: dict[str, Any]) -> LearnerCode:
    """The code the sandbox runs: every code cell, as IPython reads it; and what the grader sees in it."""
    return code_of(code_cells(notebook))


def code_of(sources: list[str]) -> LearnerCode:
    """:func:`learner_code` of the code cells ``sources``. Its time is not bounded by their size alone (IPython reads
    a whole cell again for each of its magic lines: 256 KiB with a hundred ``x = !ls`` took 74 s), so the grader
    reads a workbook in its worker, within the workbook's time limit, never in its own process."""
    with _AST_LOCK:
        return _code_of(sources)


def magic_lines(sources: list[str]) -> int:
    """How many lines of ``sources`` IPython reads as a shell command or a magic (``!ls``, ``x = !ls``, ``%time``)."""
    return sum(len(_MAGIC_LINE.findall(source)) for source in sources)


def _code_of(sources: list[str]) -> LearnerCode:
    cells, handler, copied, kit_names, runs_text = [], None, "", set(), ""
    checked, defined = set(), set()  # the names the check calls are given, and those a def binds
    check_names = set(_CHECKS)  # the names the check goes by (check as c, run = check)
    imported: set[str] = set()  # names imported from a module or defined, not the builtins (from re import compile)
    has_check = given = False  # (given: a check call is given a handler other than by name, a method say)
    unreadable, grader = 0, ""
    for number, source in enumerate(sources, 1):
        source = python_of(source)
        magics = _MagicsThatRun()
        try:
            tree = magics.visit(ast.parse(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            cells.append(source)  # it fails in the sandbox as it failed in Jupyter, and Run All stops there
            unreadable = unreadable or number
            continue
        handler = _last_handler(tree) or handler
        check_names |= _names_of_the_check(tree, check_names)
        checked |= _checked_names(tree, check_names)
        given = given or _given_an_expression(tree, check_names)
        has_check = has_check or any(_is_check_call(node, check_names) for node in ast.walk(tree))
        defined |= {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        defined |= {target.id for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))  # (a name
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])  # bound by =)
                    if isinstance(target, ast.Name)}
        # Any function in the workbook counts, not only the last handler: a copy kept under
        # another name, or behind a decoy, is still a copy.
        copied = copied or _imports_reference_handler(tree, kit_names) or _copied_function(tree, source)
        imported |= {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     and node.module not in ("builtins", None) for alias in node.names}
        own = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                          ast.ClassDef))}
        own |= {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}  # (exec = print: what it names is the learner's process's to judge)
        imported |= own & _RUN_TEXT  # (a helper of the workbook's own called eval or compile is no builtin)
        runs_text = runs_text or _runs_text(tree, number, imported)
        grader = grader or _reaches_the_grader(tree, number)
        try:  # (as it is, unless a magic's code was put in its place: a traceback's lines are the cell's own)
            cells.append(ast.unparse(tree) if magics.replaced else source)
        except (RecursionError, ValueError):
            cells.append(source)
    return LearnerCode(cells, handler is not None or bool(checked & defined) or given, copied, runs_text, has_check,
                       unreadable, grader)


#: The builtins that run text as code: what they run is no code the grader can read (or compare with the solutions).
_RUN_TEXT = frozenset({"exec", "eval", "compile"})


def _runs_text(tree: ast.AST, number: int, imported: set[str]) -> str:
    """Where the cell calls ``exec``, ``eval`` or ``compile`` (or ``builtins.exec``...), as "code cell N calls exec"; ""
    if it does not. (``re.compile`` and other methods of that name are no builtin, nor is ``compile`` imported from
    ``re``.)"""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) and func.id not in imported else func.attr if (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id in ("builtins", "__builtins__")) else None
        if name in _RUN_TEXT:
            return f"code cell {number} calls {name}()"
    return ""


#: The grader's own modules (``ldkkit.sandbox``), as a workbook would name them.
_GRADER_NAMES = re.compile(r"\bldkkit\.sandbox\b")


def _reaches_the_grader(tree: ast.AST, number: int) -> str:
    """Where the cell names the grader's modules (``import ldkkit.sandbox.provenance``, ``from ldkkit import
    sandbox``, the module's name as text), as "code cell N names ...", or "". A handler needs none of them, and a
    variable of the workbook's own called ``sandbox`` or ``PROVENANCE`` is no name of the grader's."""
    for node in ast.walk(tree):
        match node:
            case ast.Import(names=aliases):
                names = [alias.name for alias in aliases]
            case ast.ImportFrom(module=module, names=aliases):
                names = [f"{module}.{alias.name}" for alias in aliases]
            case ast.Attribute() | ast.Name():
                names = [_dotted(node)]
            case ast.Constant(value=str() as text) if len(text) < 200:
                names = [text]
            case _:
                continue
        found = next((name for name in names if _GRADER_NAMES.search(name)), None)
        if found is not None:
            return f"code cell {number} names {found}, the grader's own"
    return ""


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of attributes of a name (the part it can read)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


# --- IPython's syntax ----------------------------------------------------------------------------


def python_of(cell: str) -> str:
    """The Python that IPython runs for a cell: a magic, ``!command`` or ``name?`` is a call on ``get_ipython()``
    (``get_ipython().run_cell_magic('writefile', 'x.py', '...')``), where the rest of the cell is left alone (a
    continuation line that starts with ``%`` is Python's)."""
    transformer = _ipython_transformer()
    if transformer is None:
        return _without_ipython(cell)
    try:
        return transformer().transform_cell(cell)
    except Exception:  # IPython could not read it: Jupyter would fail the cell, and Python fails it here
        return cell


@functools.cache
def _ipython_transformer() -> Any:
    """IPython's own reader of cells (it comes with Jupyter), or None where the grader runs without it."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return None
    return TransformerManager


def _without_ipython(cell: str) -> str:
    """A rougher reading where IPython is not installed: a cell magic, then, in a cell that is not Python as it
    is, each line that starts with ``%`` or ``!``."""
    magic = _CELL_MAGIC.fullmatch(cell)
    if magic is not None:
        name, line, body = magic.groups()
        return f"get_ipython().run_cell_magic({name!r}, {line.strip()!r}, {body!r})\n"
    try:
        ast.parse(cell)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _LINE_MAGIC.sub(_as_ipython_call, cell)
    return cell


def _as_ipython_call(line: re.Match[str]) -> str:
    indent, escape, _, name, rest = line.groups()
    if escape == "!":
        return f"{indent}get_ipython().system({(name + ' ' + rest).strip()!r})"
    return f"{indent}get_ipython().run_line_magic({name!r}, {rest!r})"


class _MagicsThatRun(ast.NodeTransformer):
    """Puts the code that IPython's magics run in the workbook's namespace (``%%time``, ``%time x = f()``) in their
    place, read as IPython reads it, so the sandbox runs it and copies are looked for in it. The calls of other
    magics stay, and do nothing in the sandbox (``ldkkit.sandbox.child``'s ``get_ipython()``)."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.replaced = False  # (whether a magic's code was put in its place)

    def visit_Expr(self, node: ast.Expr) -> Any:
        code = _code_run_by(node.value)
        if code is None:
            return self.generic_visit(node)
        if self.depth >= _MAGICS_DEPTH:  # each level reads its whole cell again: "%%time" a thousand times over
            return node  # would cost a thousand readings of it (in Jupyter too); past a few, nothing runs
        try:
            run = _MagicsThatRun(self.depth + 1).visit(ast.parse(python_of(code))).body
            self.replaced = True
            return run or ast.copy_location(ast.Pass(), node)
        except SyntaxError:  # IPython fails the cell, so nothing of it runs: the call, which does nothing, stays
            return node


def _code_run_by(call: ast.AST) -> Optional[str]:
    """The code ``get_ipython().run_cell_magic('time', '', code)`` (or a line magic that runs its line) runs."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and not call.keywords
            and isinstance(call.func.value, ast.Call) and isinstance(call.func.value.func, ast.Name)
            and call.func.value.func.id == "get_ipython"
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args)):
        return None
    args = [a.value for a in call.args]  # type: ignore[attr-defined]
    if call.func.attr == "run_cell_magic" and len(args) == 3 and args[0] in CELL_MAGICS_THAT_RUN:
        return args[2]
    if call.func.attr == "run_line_magic" and len(args) == 2 and args[0] in LINE_MAGICS_THAT_RUN:
        return args[1]
    return None


#: What the exercises module calls its check: ``check``, and ``judge`` (the check without its record).
_CHECKS = frozenset({"check", "judge"})


def _names_of_the_check(tree: ast.AST, known: set[str]) -> set[str]:
    """The names the cell binds to the check: ``from ldkkit.exercises import check as c``, ``run = check``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ldkkit"):
            names |= {alias.asname or alias.name for alias in node.names if alias.name in _CHECKS}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in known | names:
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


def _checked_names(tree: ast.AST, check_names: set[str]) -> set[str]:
    """The names ``check`` is given as the handler (``check("forwarding", my_handler)``): the check in Jupyter takes
    the handler it is given, whatever its name (and whatever the check's)."""
    names = set()
    for node in ast.walk(tree):
        if _is_check_call(node, check_names):
            given = [*node.args[1:2], *(k.value for k in node.keywords if k.arg == HANDLER_NAME)]  # type: ignore
            names |= {value.id for value in given if isinstance(value, ast.Name)}
    return names


def _given_an_expression(tree: ast.AST, check_names: set[str]) -> bool:
    """Whether a ``check`` call is given its handler as an expression other than a name (``policy.handle``, a
    ``lambda``): the sandbox asks, once the cells ran, whether what it is was defined in the workbook."""
    return any(isinstance(value, (ast.Attribute, ast.Lambda, ast.Call, ast.Subscript)) for node in ast.walk(tree)
               if _is_check_call(node, check_names)
               for value in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == HANDLER_NAME)])  # type: ignore


def _is_check_call(node: ast.AST, check_names: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id in check_names) or (
        isinstance(func, ast.Attribute) and func.attr in _CHECKS)


def _last_handler(tree: ast.Module) -> Optional[ast.AST]:
    """The last ``def handle_ldk_events`` anywhere in the cell (as running it would leave it), or assignment to
    that name (``handle_ldk_events = make_handler()``: the sandbox then asks whether it is the workbook's own)."""
    found = None
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign) else [node.target]
                   if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        named = any(isinstance(t, ast.Name) and t.id == HANDLER_NAME for t in targets)
        if named or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == HANDLER_NAME:
            if found is None or node.lineno >= found.lineno:
                found = node
    return found


def _imports_reference_handler(tree: ast.Module, kit_names: set[str]) -> str:
    """Why the cell makes a kit handler its own ``handle_ldk_events``, or "". ``kit_names``: the names the workbook's
    cells so far bind to the kit (``R`` of ``import ldkkit.reference as R``), this cell's added."""
    kit_names |= _kit_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ldkkit"):
            for alias in node.names:
                if (alias.asname or alias.name) == HANDLER_NAME or alias.name == "*":
                    return f"it imports {HANDLER_NAME} from {node.module} instead of writing it"
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == HANDLER_NAME for t in targets) and any(
                    isinstance(n, ast.Attribute) and n.attr.endswith(HANDLER_NAME) for n in ast.walk(node.value)) \
                    and _from_the_kit(node.value, kit_names):  # (not a class of the learner's own)
                return f"it takes {HANDLER_NAME} from a module instead of writing it"
    return ""


def _kit_names(tree: ast.Module) -> set[str]:
    """The names ``tree`` binds to the kit's modules and objects (``import ldkkit.reference`` binds ``ldkkit``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names
                      if alias.name.split(".")[0] == "ldkkit"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ldkkit":
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _from_the_kit(value: ast.AST, kit_names: set[str]) -> bool:
    """Whether ``value`` reaches into the kit: a name bound to it, or a module named by its text."""
    return any(isinstance(n, ast.Name) and n.id in kit_names
               or isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("ldkkit")
               for n in ast.walk(value))


# --- fingerprints --------------------------------------------------------------------------------


#: A comparison and its opposite: ``if a <= b: x else: y`` is ``if a > b: y else: x``.
_OPPOSITE = {ast.LtE: ast.Gt, ast.GtE: ast.Lt, ast.NotEq: ast.Eq, ast.NotIn: ast.In, ast.IsNot: ast.Is}


class _Normalise(ast.NodeTransformer):
    """Names become their order of first appearance; docstrings, annotations and statements that do nothing
    (``pass``, ``if True:`` around code that would run anyway, a value or a name alone, ``x = x``, ``_ = 0``, a value
    given a name nothing reads, a ``print()``) go, ``async def`` is ``def``, and an ``if`` whose test is negated has
    its branches the other way round (``if not x: a else: b`` is ``if x: b else: a``)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.read: set[str] = set()  # the names the functions read (or declare global: a write there is seen)

    def _rename(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> Any:
        return ast.Name(self._rename(node.id), ast.Load())

    def visit_arg(self, node: ast.arg) -> Any:
        return ast.arg(self._rename(node.arg))

    def visit_FunctionDef(self, node: Any) -> Any:
        self.read |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
        self.read |= {name for n in ast.walk(node) if isinstance(n, (ast.Global, ast.Nonlocal)) for name in n.names}
        node.name = self._rename(node.name)
        node.returns = None
        node.decorator_list = []
        node.body = [s for s in node.body if not _is_docstring(s)] or [ast.Pass()]
        if isinstance(node, ast.AsyncFunctionDef):  # (async def or def: the same code, as a copy goes)
            node = ast.FunctionDef(name=node.name, args=node.args, body=node.body, decorator_list=[], returns=None)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Expr(self, node: ast.Expr) -> Any:
        printed = (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                   and node.value.func.id == "print")  # (output only: a line printed changes no outcome)
        return None if printed or isinstance(node.value, (ast.Constant, ast.Name)) else self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> Any:
        target = node.targets[0] if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) else None
        if target is not None and (isinstance(node.value, ast.Name) and node.value.id == target.id
                                   or target.id == "_" and isinstance(node.value, ast.Constant)
                                   or target.id not in self.read and _plain_value(node.value)):
            return None
        return self.generic_visit(node)

    def visit_Pass(self, node: ast.Pass) -> Any:
        return None

    def visit_If(self, node: ast.If) -> Any:
        if isinstance(node.test, ast.Constant):  # (its branch runs always, the other never: the branch alone)
            kept = []
            for statement in node.body if node.test.value else node.orelse:
                done = self.visit(statement)
                kept += [] if done is None else done if isinstance(done, list) else [done]
            return kept
        test = node.test
        if node.orelse and isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            node = ast.If(test.operand, node.orelse, node.body)
        elif node.orelse and isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPPOSITE:
            node = ast.If(ast.Compare(test.left, [_OPPOSITE[type(test.ops[0])]()], test.comparators), node.orelse,
                          node.body)
        return self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> Any:
        if node.name:
            node.name = self._rename(node.name)
        return self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> Any:
        if node.name:
            node.name = self._rename(node.name)
        return node

    def visit_MatchMapping(self, node: ast.MatchMapping) -> Any:
        if node.rest:
            node.rest = self._rename(node.rest)
        return self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        if node.name:
            node.name = self._rename(node.name)
        return self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> Any:
        if node.asname:
            node.asname = self._rename(node.asname)
        return node

    def visit_keyword(self, node: ast.keyword) -> Any:
        return self.generic_visit(node)  # keyword names are the API's, not the learner's: kept


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _plain_value(node: ast.AST) -> bool:
    """Whether working ``node`` out does nothing but make a value: constants and names, and tuples, lists, signs and
    sums of them (no call, no attribute, nothing that may run code)."""
    return all(isinstance(n, (ast.Constant, ast.Name, ast.Load, ast.Tuple, ast.List, ast.UnaryOp, ast.BinOp,
                              ast.unaryop, ast.operator)) for n in ast.walk(node))


def fingerprint(function: ast.AST) -> str:
    """A hash of a function's shape that renaming, comments, docstrings and layout do not change."""
    return fingerprints(function)[function]


def fingerprints(tree: ast.AST) -> dict[ast.AST, str]:
    """The fingerprint of every function in ``tree`` ("" for one too deep to read), innermost first.

    A function nested in another counts in the outer one's fingerprint by its own fingerprint,
    computed once: hashing each function with all it contains would cost a workbook of
    functions nested ninety deep ninety times its size.
    """
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    found: dict[ast.AST, str] = {}
    for function in reversed(functions):  # (ast.walk goes breadth first: a nested function comes after its own)
        try:
            clone = _own_code(function, found)
            clone.name = "handler"  # type: ignore[attr-defined]
            normal = _Normalise().visit(clone)
            found[function] = hashlib.sha256(ast.dump(normal, annotate_fields=False).encode()).hexdigest()
        except (RecursionError, ValueError):
            found[function] = ""
    return found


def _own_code(node: ast.AST, nested: dict[ast.AST, str]) -> ast.AST:
    """A copy of ``node`` in which each function ``nested`` has a fingerprint for is that fingerprint alone."""
    clone = copy.copy(node)
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            setattr(clone, name, [_nested_or_own(item, nested) for item in value])
        elif isinstance(value, ast.AST):
            setattr(clone, name, _nested_or_own(value, nested))
    return clone


def _nested_or_own(node: Any, nested: dict[ast.AST, str]) -> Any:
    if not isinstance(node, ast.AST):
        return node
    if node not in nested:
        return _own_code(node, nested)
    stub = copy.copy(node)  # its name, as the outer function binds it; its code, as its fingerprint
    stub.args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                              defaults=[])
    stub.body = [ast.Expr(ast.Constant(bytes.fromhex(nested[node])))]
    stub.decorator_list = []
    return stub


def _copied_function(tree: ast.AST, source: str) -> str:
    """Why one of the functions in ``tree`` (the code of ``source``) is a copy of a handler the kit ships, or "".

    The reference handler's shape is a copy wherever it is met. A solution's shape is one only with the solution's own
    words (``own_words``): where a workbook's text dictates its answer (workbook 7's writes, each caught and asked for
    again), a learner who writes that answer has the solution's shape, and did not copy it."""
    known, words = known_handlers(), own_words()
    return next((known[digest] for digest in fingerprints(tree).values() if digest in known
                 and (digest not in words or any(word in source for word in words[digest]))), "")


@functools.cache
def known_handlers() -> dict[str, str]:
    """Fingerprints of the kit's reference handler and of every solution workbook's handler."""
    known: dict[str, str] = {}
    reference = _ROOT / "ldkkit" / "reference.py"
    spec_origin = _reference_origin()
    for path in {reference, spec_origin} - {None}:
        if path is not None and path.exists():
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == HANDLER_NAME:
                    known[fingerprint(node)] = "its handler is the kit's reference handler (ldkkit/reference.py)"
    for path in sorted((_ROOT / "solutions").glob("*.ipynb")):
        try:
            cells = code_cells(json.loads(path.read_text()))
        except (OSError, ValueError, InvalidWorkbook):
            continue
        for source in cells:
            try:
                node = _last_handler(ast.parse(source))
            except SyntaxError:
                continue
            if node is not None:
                known.setdefault(fingerprint(node), f"its handler is the one in solutions/{path.name}")
    return known


@functools.cache
def own_words() -> dict[str, frozenset[str]]:
    """For each solution workbook's handler (by fingerprint), the words of its own that a copy carries: its comments
    (the ``### BEGIN SOLUTION`` marks among them) and its messages (strings with a space), less what the exercise
    workbook shows its learner (its hints, and the code it gives)."""
    import io
    import tokenize

    words: dict[str, frozenset[str]] = {}
    for path in sorted((_ROOT / "solutions").glob("*.ipynb")):
        try:
            cells = code_cells(json.loads(path.read_text()))
            shown = (_ROOT / "exercises" / path.name).read_text() if (_ROOT / "exercises" / path.name).exists() else ""
        except (OSError, ValueError, InvalidWorkbook):
            continue
        for source in cells:
            try:
                node = _last_handler(ast.parse(source))
                tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
            except (SyntaxError, tokenize.TokenError):
                continue
            if node is None:
                continue
            found = {t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}
            found |= {ast.literal_eval(t.string) for t in tokens if t.type == tokenize.STRING and " " in t.string}
            own = {w for w in found if isinstance(w, str) and w and json.dumps(w)[1:-1] not in shown}
            digest = fingerprint(node)
            words[digest] = words.get(digest, frozenset()) | own
    return words


def _reference_origin() -> Optional[Path]:
    import importlib.util

    try:
        spec = importlib.util.find_spec("ldkkit.reference")
    except (ImportError, ValueError):  # not installed, or a stand-in module without a spec
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def main() -> int:
    """``python -m ldkkit.sandbox.source``: the code cells (JSON, on stdin) read as :func:`code_of` reads them, on
    stdout (JSON). The grader's worker runs it, and stops it at the workbook's time limit."""
    sources = json.loads(sys.stdin.buffer.read())
    code = code_of([str(source) for source in sources])
    sys.stdout.write(json.dumps(vars(code)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
