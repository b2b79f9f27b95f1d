"""Where the code a graded handler can run comes from: the workbook's cells, or Python and its libraries.

A handler is the workbook's when its cells define it (``kernel.defined_in_the_workbook``), and so must be the code it
reaches: a handler that hands its events to code made from text (``exec`` however it is reached, ``getattr(builtins,
...)`` say) or read from a file the workbook wrote or found (``importlib``) runs code the grader cannot read or
compare with the solutions, a solution's included. Its row is ``no handler``, as a cell calling ``exec`` is
(``source._runs_text``).

What the workbook's namespace holds is looked at as the events come (:meth:`Provenance.why`, at each hand-over's end):
its functions, those its classes define, and those kept in its dicts, lists and objects, a level deep; and the modules
it imported. No trace of every call: that would slow the learner's threads, whose timing the check must not feel.
Libraries make code from text too (a dataclass's methods, attrs', a jinja2 template's): text is the learner's only
when the workbook's own code compiled it (an audit hook notes the names it compiled under, and any ``marshal`` load).
"""

from __future__ import annotations

import _imp
import functools
import os
import sys
import types
from typing import Any

from ..exercises.watch import KIT_DIR, LIBRARY_DIRS
from ..ser import MADE_FROM_TEXT
from .kernel import compiled_from_its_cell

#: What the standard library makes from text under Python's own name for it: a dataclass's methods and a namedtuple's.
_GENERATED_QUALNAME = "__create_fn__.<locals>."
_GENERATED_MODULE = "namedtuple_"


class Provenance:
    """The first code from elsewhere the workbook's namespace holds, and what its own code compiled from text."""

    def __init__(self) -> None:
        self.foreign = ""
        self.compiled_by_you: set[str] = set()  # the names of the text the workbook's own code compiled
        self.modules_before: set[str] = set()
        self._judged: dict[types.CodeType, bool] = {}
        self._seen: tuple[Any, ...] = ()

    def install(self) -> None:
        """Before the cells run: note the modules there are, and listen for what the cells compile or load."""
        self.modules_before = set(sys.modules)
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event in _REACHING:
            self._reaching(event, args)
        if event not in ("compile", "marshal.loads", "marshal.load"):
            return
        try:  # (an audit hook must never raise: the compile or load itself would fail)
            name = os.fsdecode(args[1]) if event == "compile" and isinstance(args[1], (str, bytes)) else "<string>"
            if event == "compile" and not name.startswith("<") and not _library_path(name) and not self.foreign:
                self.foreign = f"the handler can run code read from {name}, not the workbook's"  # (imported, run)
            caller = sys._getframe(1)
            if _library(caller.f_code) or _frozen(caller.f_code.co_filename):
                if event == "compile" and _handed_by_the_workbook(caller):  # (a console's, a timer's text, say)
                    self.compiled_by_you.add(name)
                return
            self.compiled_by_you.add(name)
            if not self.foreign:  # (exec, eval or compile, however reached: a cell calling them is refused as read)
                self.foreign = ("the workbook loads code with marshal" if event != "compile" else
                                f"the workbook's code compiles text into code (named {name}), as exec does")
        except Exception:  # noqa: S110
            pass

    def _reaching(self, event: str, args: tuple[Any, ...]) -> None:
        """The workbook's own code looking through the interpreter's objects (``gc``), making code objects itself, or
        replacing a function's code: none of it writes a handler, and each is a way around what is looked at here."""
        try:
            if event == "object.__setattr__" and args[1] != "__code__" or self.foreign:
                return
            caller = sys._getframe(2)  # (1 is _audit's)
            if not (_library(caller.f_code) or _frozen(caller.f_code.co_filename)):
                self.foreign = f"the workbook's code {_REACHING[event]}"
        except Exception:  # noqa: S110
            pass

    def why(self, namespace: dict[str, Any]) -> str:
        """Why the handler is not the workbook's, if it is not: "" while what the namespace holds is its own. (Looked
        at again only once the namespace or the modules changed: at every hand-over's end, most often they did not.)"""
        seen = (len(sys.modules), *((id(v), len(v) if isinstance(v, (dict, list, set)) else -1)
                                    for v in list(namespace.values())))
        if self.foreign or seen == self._seen:
            return self.foreign
        self._seen = seen
        if not self.foreign:
            for name in [m for m in list(sys.modules) if m not in self.modules_before]:
                path = getattr(sys.modules.get(name), "__file__", None)
                if isinstance(path, str) and not _library_path(path):
                    self.foreign = f"the handler can run code read from {path} (module {name}), not the workbook's"
                    break
        if not self.foreign:
            for value in list(namespace.values()):
                self._look_at(value, 2)
                if self.foreign:
                    break
        return self.foreign

    def _look_at(self, value: Any, depth: int) -> None:
        match value:
            case types.FunctionType():
                self._judge(value.__code__, value.__globals__)
                if depth:  # (what it keeps: a closure's cells, its defaults)
                    kept = [c.cell_contents for c in value.__closure__ or () if _filled(c)]
                    for member in [*kept, *(value.__defaults__ or ()), *(value.__kwdefaults__ or {}).values()]:
                        self._look_at(member, depth - 1)
            case types.MethodType() | staticmethod() | classmethod():
                self._look_at(value.__func__, depth)
            case type() if value.__module__ == "__main__" and depth:
                for member in list(vars(value).values()):
                    self._look_at(member, depth - 1)
            case dict() if depth:
                for member in list(value.values())[:1000]:
                    self._look_at(member, depth - 1)
            case list() | tuple() | set() | frozenset() if depth:
                for member in list(value)[:1000]:
                    self._look_at(member, depth - 1)
            case _ if depth and type(value).__module__ == "__main__":
                self._look_at(type(value), depth - 1)
                self._look_at(getattr(value, "__dict__", {}), depth - 1)

    def _judge(self, code: types.CodeType, globals_: dict[str, Any]) -> None:
        ours = self._judged.get(code)
        if ours is None:
            ours = self._judged[code] = self._ours(code, globals_)
        if not ours and not self.foreign:
            self.foreign = _described(code)

    def _ours(self, code: types.CodeType, globals_: dict[str, Any]) -> bool:
        name = code.co_filename
        if code in MADE_FROM_TEXT or _frozen(name):  # (the kit's own checks of a record class; Python's own modules)
            return True
        if name.startswith("<cell "):
            return compiled_from_its_cell(code)
        if name == "<string>":  # Python's own name for text: a dataclass's methods and a namedtuple's are made so
            qualname, dunder = getattr(code, "co_qualname", ""), _dunder(code.co_name)
            return (dunder and (qualname.startswith(_GENERATED_QUALNAME) or not qualname)
                    or str(globals_.get("__name__", "")).startswith(_GENERATED_MODULE))  # (3.10: no co_qualname)
        if name.startswith("<"):  # a library's name for its text (attrs, jinja2), unless your own code compiled it
            return name not in self.compiled_by_you
        return _library_path(name)


def _frozen(name: str) -> bool:
    """Whether ``name`` is the file name of one of Python's frozen modules (``<frozen importlib._bootstrap>``), not a
    name given to text to pass for one."""
    module = name[len("<frozen "):-1] if name.startswith("<frozen ") and name.endswith(">") else ""
    return module in _FROZEN_AS or bool(module) and _imp.is_frozen(module)


#: Frozen modules whose code names another module (``_frozen_importlib`` is ``<frozen importlib._bootstrap>``).
_FROZEN_AS = ("importlib._bootstrap", "importlib._bootstrap_external")


#: What the workbook's own code may not do (see ``Provenance._reaching``), and how a row says it.
_REACHING = {
    "gc.get_objects": "looks through the interpreter's objects (gc.get_objects)",
    "gc.get_referrers": "looks through the interpreter's objects (gc.get_referrers)",
    "gc.get_referents": "looks through the interpreter's objects (gc.get_referents)",
    "code.__new__": "makes a code object itself (types.CodeType)",
    "object.__setattr__": "replaces a function's code (__code__)",
}


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # (a cell not yet filled)
        return False
    return True


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


#: The libraries that write code of their own from what they are given (a dataclass's methods, a namedtuple's, attrs'
#: and pydantic's, a jinja2 template's), reached through their public functions (``dataclass``, ``namedtuple``, not
#: ``dataclasses._create_fn``). Text any other library compiles for the workbook's code (codeop, code's interpreter,
#: timeit's setup, importlib's or pickle's exec) is the workbook's text.
_GENERATORS = frozenset({"dataclasses", "collections", "typing", "enum", "attr", "attrs", "jinja2", "pydantic",
                         "pydantic_core"})


def _handed_by_the_workbook(frame: Any) -> bool:
    """Whether a library compiles text on behalf of the workbook's code (see ``_GENERATORS``): the calls from the
    compile up to the first code of the workbook's own, the outermost a public function of no code-writing library."""
    outermost = None
    while frame is not None:
        code = frame.f_code
        if not (_library(code) or _frozen(code.co_filename)):
            if outermost is None:
                return False
            package = str(outermost.f_globals.get("__name__", "")).split(".")[0]
            private = outermost.f_code.co_name.startswith("_") and not _dunder(outermost.f_code.co_name)
            return package not in _GENERATORS or private
        outermost = frame
        frame = frame.f_back
    return False


def _library(code: types.CodeType) -> bool:
    return _library_path(code.co_filename)


@functools.lru_cache(maxsize=4096)
def _library_path(path: str) -> bool:
    """Whether ``path`` is Python's, a library's or the kit's (asked of every frame a compile or load walks: kept)."""
    return os.path.realpath(path).startswith((KIT_DIR, *LIBRARY_DIRS))


def _described(code: types.CodeType) -> str:
    where = code.co_filename
    made = f"code made from text (named {where})" if where.startswith("<") else f"code read from {where}"
    name = getattr(code, "co_qualname", code.co_name)
    return f"the handler can run {name}(), {made}, not a function of the workbook's cells"


PROVENANCE = Provenance()
