"""Where the code a graded handler can run comes from: the workbook's cells, or Python and its libraries.

A handler is the workbook's when its cells define it (``kernel.defined_in_the_workbook``), and so must be the code it
reaches: a handler that hands its events to code made from text (``exec`` however it is reached, ``getattr(builtins,
...)`` say) or read from a file the workbook wrote or found (``importlib``) runs code the grader cannot read or
compare with the solutions, a solution's included. Its row is ``no handler``, as a cell calling ``exec`` is
(``source._runs_text``).

An audit hook (:func:`_listener`) sees the workbook's own code compile or load text, or reach around the compiler
(``gc``, ``types.CodeType``, a function's ``__code__``), and ends the learner process at once, telling the grader why
on a pipe of its own: nothing the workbook's code does next can take it back. Libraries make code from text too (a
dataclass's methods, attrs', an ORM's, a template's): that is theirs, unless the workbook handed the text to one that
runs text (a timer, a profile, a doctest). What the workbook keeps of such code is looked for in its namespace as the
events come (:meth:`Provenance.why`, at each hand-over's end): its functions, those its classes define, and those kept
in its dicts, lists and objects, a level deep; and the modules it imported. No trace of every call: that would slow
the learner's threads, whose timing the check must not feel.
"""

from __future__ import annotations

import _imp
import os
import sys
import types
from collections.abc import Callable
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

    def install(self, tell: int | None = None) -> None:
        """Before the cells run: note the modules there are, and listen for what the cells compile or load.

        With ``tell`` (a pipe to the grader), what the workbook's own code is seen doing that writes no handler of its
        own (compiling text, looking through the interpreter's objects) is written there at once, and the process
        ends: nothing the workbook's code does next can take it back."""
        self.modules_before = set(sys.modules)
        sys.addaudithook(_listener(self, tell))

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


#: Frozen modules whose code names another module (``_frozen_importlib`` is ``<frozen importlib._bootstrap>``).
_FROZEN_AS = ("importlib._bootstrap", "importlib._bootstrap_external")


#: What the workbook's own code may not do (see ``_listener``), and how a row says it.
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
#: and pydantic's, a jinja2 template's), reached through their public functions (``dataclass``, ``namedtuple``). Text
#: any other library compiles for the workbook's code (codeop, code's interpreter, timeit's setup, importlib's or
#: pickle's exec) is the workbook's text; so is text a private function of theirs compiles (``_create_fn``).
_GENERATORS = frozenset({"dataclasses", "collections", "typing", "enum", "attr", "attrs", "jinja2", "pydantic",
                         "pydantic_core"})
#: Libraries that compile the text they are handed, which no workbook's handler needs: an interactive console's
#: (``code``, ``codeop``), pickle's ``exec`` and importlib's ``source_to_code`` (text, not a module's file).
_CONSOLES = frozenset({"code", "codeop", "pickle", "importlib"})
#: Libraries that run the text they are handed (a timer's statement, a profile's, a doctest's): what the workbook keeps
#: of the code they make is not its cells' (``Provenance._ours``). Any other library compiling text (an ORM's
#: ``__init__``, a template's render function, what a module compiles as it loads) makes code of its own.
_RUNNERS = frozenset({"timeit", "cProfile", "profile", "doctest", "pdb", "bdb", "trace", "runpy", "IPython"})
#: Python's machinery for loading a module from its file: a file it compiles outside the libraries' folders is one the
#: workbook wrote or found (a parser's or a template's file name is no module's).
_IMPORTERS = frozenset({"importlib", "runpy", "pkgutil", "zipimport"})
#: Libraries that call what they are handed (a pool, a thread, a dispatcher, copy's reconstruction), and never
#: ``compile`` or ``types.CodeType`` of their own accord: called by one of them, those were handed over as callables.
_INVOKERS = frozenset({"concurrent", "threading", "functools", "copy", "copyreg", "asyncio", "multiprocessing",
                       "operator", "contextvars", "queue", "sched", "atexit", "weakref"})
#: The exit code of a learner process whose code was seen doing what ``_REACHING`` names, or compiling text itself.
FOREIGN_EXIT = 86
#: At most this much of why is told (one write to a pipe: whole, never mixed with another).
_TELL_BYTES = 512


def _spellings(folder: str) -> set[str]:
    return {os.path.join(folder, ""), os.path.join(os.path.realpath(folder), "")}


#: The folders of Python, its libraries and the kit, as Python imports from them and as they really are, read as this
#: module loads (before the learner process drops its privileges: it may not look up some of them after), and where
#: the package of a file below them begins (``site-packages`` inside Python's own folder is a root of its own).
_LIBRARY_FOLDERS = tuple(sorted({s for f in (KIT_DIR, *LIBRARY_DIRS) for s in _spellings(f)} | {
    os.path.join(p, "") for p in sys.path if p and any(os.path.realpath(p).startswith(f.rstrip("/"))
                                                       for f in (KIT_DIR, *LIBRARY_DIRS))}))
_LIBRARY_ROOTS = tuple(sorted({*_LIBRARY_FOLDERS, *(s for f in LIBRARY_DIRS for s in _spellings(os.path.join(
    f, "site-packages"))), *_spellings(os.path.dirname(KIT_DIR))}, key=len, reverse=True))


def _judges() -> tuple[Callable[[str], bool], Callable[[str], bool], Callable[[Any], bool], Callable[[Any], Any],
                       Callable[[Any], str]]:
    """(library_path, frozen, library, library_caller, package): where code comes from, judged with Python's own
    functions held here, not looked up where the workbook's code could replace them (its module's globals, builtins).

    ``library_path(name)``: whether a file is Python's, a library's or the kit's (under one of their folders as
    Python imports from them, or as the folder really is). ``frozen(name)``: whether ``name`` is one of Python's
    frozen modules (``<frozen importlib._bootstrap>``), not a name given to text to pass for one. ``library(code)``:
    whether code is either's. ``library_caller(frame)``: the outermost of the library calls from ``frame`` up to the
    workbook's own code, as (package, function name, every package on the way); None if no library made them.
    ``package(code)``: the package a library's code is of (``dataclasses``, ``attr``, ``importlib``)."""
    is_frozen, len_, next_, realpath = _imp.is_frozen, len, next, os.path.realpath
    startswith, endswith, rpartition, split = str.startswith, str.endswith, str.rpartition, str.split
    folders, roots = _LIBRARY_FOLDERS, _LIBRARY_ROOTS
    frozen_as, known = _FROZEN_AS, dict[str, bool]()

    def library_path(name: str) -> bool:
        if name in known:
            return known[name]
        found = startswith(name, folders) or startswith(realpath(name), folders)  # (a folder spelt otherwise)
        if len_(known) < 65536:
            known[name] = found
        return found

    def frozen(name: str) -> bool:
        module = name[8:-1] if startswith(name, "<frozen ") and endswith(name, ">") else ""
        return module in frozen_as or module != "" and is_frozen(module)

    def library(code: types.CodeType) -> bool:
        name = code.co_filename
        return frozen(name) if startswith(name, "<") else library_path(name)

    def package(code: types.CodeType) -> str:
        name = code.co_filename
        if startswith(name, "<"):
            return rpartition(name[8:-1], ".")[0] or name[8:-1]
        below = split(next_((name[len_(root):] for root in roots if startswith(name, root)), name), "/")
        first = next_((part for part in below if part not in ("", "dist-packages")), "")
        return rpartition(first, ".py")[0] or first

    def library_caller(frame: Any) -> Any:
        outermost, packages = None, set()
        while frame is not None:
            if not library(frame.f_code):
                return None if outermost is None else (package(outermost.f_code), outermost.f_code.co_name, packages)
            packages.add(package(frame.f_code))
            outermost, frame = frame, frame.f_back
        return None if outermost is None else ("", "", packages)  # (a thread's: no workbook code under it)

    return library_path, frozen, library, library_caller, package


def _listener(provenance: Provenance, tell: int | None) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook: what the workbook's own code compiles or loads, and whether it reaches around the compiler.
    What it uses it holds in its closure, reachable from no module: the workbook's code cannot swap a judge of it for
    one of its own, and ``gc``, the one way to find it, is refused here."""
    library_path, _, library, library_caller, package_of = _judges()
    getframe, write, end, decode, add, type_ = sys._getframe, os.write, os._exit, bytes.decode, set.add, type
    startswith, same, str_, bytes_, error = str.startswith, str.__eq__, str, bytes, Exception
    exhausted = (RecursionError, MemoryError)
    compiled, reaching, generators, consoles = provenance.compiled_by_you, dict(_REACHING), _GENERATORS, _CONSOLES
    runners, importers, invokers = _RUNNERS, _IMPORTERS, _INVOKERS
    watched = frozenset({"compile", "marshal.loads", "marshal.load", *reaching})

    def found(why: str) -> None:
        if tell is not None:
            try:
                write(tell, why.encode("utf-8", "replace")[:_TELL_BYTES])
            finally:
                end(FOREIGN_EXIT)
        if not provenance.foreign:
            provenance.foreign = why

    def private(function: str) -> bool:
        return startswith(function, "_") and not (startswith(function, "__") and function[-2:] == "__")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in watched:
            return
        try:  # (an audit hook must never raise: the compile or load itself would fail)
            caller = getframe(1)
            handed = library(caller.f_code) and package_of(caller.f_code) in invokers  # (compile handed as a callable)
            if event in reaching:
                if (event != "object.__setattr__" or same(args[1], "__code__")) and (
                        handed or not library(caller.f_code)):
                    found(f"the workbook's code {reaching[event]}")
                return
            name = args[1] if event == "compile" else "<string>"
            name = name if type_(name) is str_ else decode(name, "utf-8", "replace") if type_(name) is bytes_ else "<?>"
            if handed or not library(caller.f_code):  # (exec, eval or compile, however reached: a cell calling
                add(compiled, name)                         # them is refused as read; a pool handed compile is too)
                found("the workbook loads code with marshal" if event != "compile" else
                      f"the workbook's code compiles text into code (named {name}), as exec does")
            elif event == "compile" and (made := library_caller(caller)) is not None:
                package, function, packages = made
                packages = packages - invokers  # (a pool or a thread of the workbook's own makes the text no other's)
                if not startswith(name, "<") and packages <= importers and not library_path(name):
                    found(f"the handler can run code read from {name}, not the workbook's")  # (imported, run)
                elif packages <= consoles and startswith(name, "<"):  # (text the workbook handed them: no other use)
                    found(f"the workbook's code compiles text into code (named {name}) through {package}, as exec "
                          "does")
                elif package in runners:
                    add(compiled, name)  # (a timer's or a profile's text, say: the workbook's if it keeps its code)
                elif package in generators and private(function):
                    found(f"the workbook's code compiles text into code (named {name}) through {package}'s private "
                          f"{function}(), as exec does")
        except exhausted:  # (the hook could not look: the compile or load it was asked about fails too, rather than
            raise          # go through unseen, as one made at the recursion limit would)
        except error:  # noqa: S110
            pass

    return hook


_library_path, _frozen, _, _, _ = _judges()  # (the namespace's look, at each hand-over's end: its own, as the hook has)


def _described(code: types.CodeType) -> str:
    where = code.co_filename
    made = f"code made from text (named {where})" if where.startswith("<") else f"code read from {where}"
    name = getattr(code, "co_qualname", code.co_name)
    return f"the handler can run {name}(), {made}, not a function of the workbook's cells"


PROVENANCE = Provenance()
