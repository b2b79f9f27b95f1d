"""What a workbook's code is, read without running it: cells, the handler, check calls, copies.

The grader never trusts a notebook's structure. :func:`read_workbook` refuses symbolic
links and oversized files and says why a notebook is invalid (a cell whose ``source`` is
a number, say) instead of raising something else. :func:`learner_code` keeps every code
cell but takes out calls to ``check`` (the grader runs the check itself), so a handler in
the same cell as its check, or a comment mentioning ``check(``, is kept. The handler is
found by name in the parsed code, wherever it is. :func:`fingerprint` hashes a
function's shape, so a copy of the kit's reference handler or of a solution's is named
whatever it was renamed, reformatted or commented into.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

HANDLER_NAME = "handle_ldk_events"
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
#: The code a workbook may hold, all its code cells together (its outputs are never graded, and may be large).
MAX_CODE_BYTES = 8 * 1024 * 1024
_ROOT = Path(__file__).resolve().parent.parent.parent
#: Lines IPython reads as magics or shell commands: there is no IPython in the sandbox.
_MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


class InvalidWorkbook(Exception):
    """The file is not a notebook the grader can read; the message says why."""


@dataclass
class LearnerCode:
    """A workbook's code, ready for the sandbox: one source per code cell, check calls removed."""

    cells: list[str]
    has_handler: bool
    #: Why the handler is a copy (the kit's reference, a solution, an import of either), or "".
    copied: str


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
        raise InvalidWorkbook(f"{path.name} is over {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    try:
        notebook = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise InvalidWorkbook(f"{path.name} is not valid JSON: {str(e)[:200]}") from None
    if isinstance(notebook, dict) and "worksheets" in notebook and "cells" not in notebook:
        raise InvalidWorkbook(f"{path.name} is an nbformat {notebook.get('nbformat', 3)} notebook: open it in Jupyter "
                              "and save it (Jupyter writes nbformat 4), then grade it again")
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidWorkbook(f"{path.name} is JSON but not a notebook (it has no list of cells)")
    return notebook


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
        raise InvalidWorkbook(f"its code cells hold over {MAX_CODE_BYTES // 2**20} MiB of code")
    return sources


#: CPython 3.11 shares its AST converter's recursion count between threads: parsing in two grader
#: threads at once can raise "SystemError: AST constructor recursion depth mismatch". One at a time.
_AST_LOCK = threading.RLock()


def learner_code(notebook: dict[str, Any]) -> LearnerCode:
    """The code the sandbox runs: every code cell, minus calls to ``check``; and what the grader sees in it."""
    with _AST_LOCK:
        return _learner_code(notebook)


def _learner_code(notebook: dict[str, Any]) -> LearnerCode:
    cells, handler, copied = [], None, ""
    for source in code_cells(notebook):
        source = _MAGIC.sub(r"\1pass", source)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            cells.append(source)  # it fails in the sandbox as it failed in Jupyter; the others still run
            continue
        handler = _last_handler(tree) or handler
        # Any function in the workbook counts, not only the last handler: a copy kept under
        # another name, or behind a decoy, is still a copy.
        copied = copied or _imports_reference_handler(tree) or next(
            (why for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             for why in [copy_of(node)] if why), "")
        try:
            cells.append(ast.unparse(_WithoutChecks().visit(tree)))
        except (RecursionError, ValueError):
            cells.append(source)
    return LearnerCode(cells, handler is not None, copied)


class _WithoutChecks(ast.NodeTransformer):
    """Drops ``check(...)`` statements and turns other calls to ``check`` into ``None``."""

    def visit_Expr(self, node: ast.Expr) -> Any:
        if _is_check_call(node.value):
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> Any:
        if _is_check_call(node):
            return ast.copy_location(ast.Constant(None), node)
        return self.generic_visit(node)


def _is_check_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "check") or (
        isinstance(func, ast.Attribute) and func.attr == "check")


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


def _imports_reference_handler(tree: ast.Module) -> str:
    """Why the cell makes a kit handler its own ``handle_ldk_events``, or ""."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ldkkit"):
            for alias in node.names:
                if (alias.asname or alias.name) == HANDLER_NAME or alias.name == "*":
                    return f"it imports {HANDLER_NAME} from {node.module} instead of writing it"
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == HANDLER_NAME for t in targets) and any(
                    isinstance(n, ast.Attribute) and n.attr.endswith(HANDLER_NAME) for n in ast.walk(node)):
                return f"it takes {HANDLER_NAME} from a module instead of writing it"
    return ""


# --- fingerprints --------------------------------------------------------------------------------


class _Normalise(ast.NodeTransformer):
    """Names become their order of first appearance; docstrings, annotations and statements that do nothing
    (``pass``, ``if True:`` around code that would run anyway) go."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> Any:
        return ast.Name(self._rename(node.id), ast.Load())

    def visit_arg(self, node: ast.arg) -> Any:
        return ast.arg(self._rename(node.arg))

    def visit_FunctionDef(self, node: Any) -> Any:
        node.name = self._rename(node.name)
        node.returns = None
        node.decorator_list = []
        node.body = [s for s in node.body if not _is_docstring(s)] or [ast.Pass()]
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Expr(self, node: ast.Expr) -> Any:
        return None if _is_docstring(node) else self.generic_visit(node)

    def visit_Pass(self, node: ast.Pass) -> Any:
        return None

    def visit_If(self, node: ast.If) -> Any:
        if isinstance(node.test, ast.Constant):  # (its branch runs always, the other never: the branch alone)
            kept = []
            for statement in node.body if node.test.value else node.orelse:
                done = self.visit(statement)
                kept += [] if done is None else done if isinstance(done, list) else [done]
            return kept
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


def fingerprint(function: ast.AST) -> str:
    """A hash of a function's shape that renaming, comments, docstrings and layout do not change."""
    clone = ast.parse(ast.unparse(function)).body[0]
    clone.name = "handler"  # type: ignore[attr-defined]
    normal = _Normalise().visit(clone)
    return hashlib.sha256(ast.dump(normal, annotate_fields=False).encode()).hexdigest()


def copy_of(function: ast.AST) -> str:
    """Why ``function`` is a copy of a handler the kit ships, or ""."""
    try:
        mine = fingerprint(function)
    except (RecursionError, ValueError, SyntaxError):
        return ""
    return known_handlers().get(mine, "")


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


def _reference_origin() -> Optional[Path]:
    import importlib.util

    try:
        spec = importlib.util.find_spec("ldkkit.reference")
    except (ImportError, ValueError):  # not installed, or a stand-in module without a spec
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None
