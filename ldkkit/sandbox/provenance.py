"""Where the code a graded handler runs comes from: the workbook's cells, or Python and its libraries.

A handler is the workbook's when its cells define it (``kernel.defined_in_the_workbook``), and so must be the code it
runs: a handler that hands its events to code made from text (``exec`` however it is reached, ``getattr(builtins,
...)`` say) or read from a file the workbook wrote or found (``importlib``) runs code the grader cannot read or
compare with the solutions, a solution's included. Its row is ``no handler``, as a cell calling ``exec`` is
(``source._runs_text``). Python's ``sys.settrace`` sees each function as it starts, in every thread the learner
process runs from before the cells; only what runs once the events come is judged (``armed``), each code object once.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from typing import Any

from ..exercises.watch import KIT_DIR, LIBRARY_DIRS
from ..ser import MADE_FROM_TEXT
from .kernel import compiled_from_its_cell

#: What the standard library makes from text: a dataclass's methods (``dataclasses._create_fn``) and a namedtuple's.
_GENERATED_QUALNAME = "__create_fn__.<locals>."
_GENERATED_MODULE = "namedtuple_"


class Provenance:
    """The trace, and the first code it met that is neither the cells' nor a library's."""

    def __init__(self) -> None:
        self.armed = False
        self.foreign = ""
        self._judged: dict[types.CodeType, bool] = {}

    def install(self) -> None:
        sys.settrace(self.trace)
        threading.settrace(self.trace)

    def trace(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if self.armed and event == "call":
            code = frame.f_code
            ours = self._judged.get(code)
            if ours is None or not ours and code.co_name == "<module>":  # (judged by who runs it: see _ours)
                try:
                    ours = _ours(code, frame)
                except Exception:  # (an error here would end the trace: Python takes a failing trace away)
                    ours = False
                self._judged[code] = ours
                if not ours and not self.foreign:
                    self.foreign = _described(code)
        return None  # (no line events: only calls are judged)

    def why(self) -> str:
        """Why the handler is not the workbook's, if it is not: "" while all it ran came from the cells or libraries
        (and the trace is still in place, in this thread and for the threads to come)."""
        if not self.foreign and (sys.gettrace() != self.trace or threading.gettrace() != self.trace):
            self.foreign = "the workbook took away the grader's sys.settrace, which sees what code the handler runs"
        return self.foreign


def _ours(code: types.CodeType, frame: types.FrameType) -> bool:
    name = code.co_filename
    if code in MADE_FROM_TEXT:  # (the kit's: each record class's checks)
        return True
    if name.startswith("<cell "):
        return compiled_from_its_cell(code)
    if name.startswith("<frozen "):
        return True
    if name == "<string>":  # what the standard library makes from text, or a library evaluates (typing, annotations)
        qualname = getattr(code, "co_qualname", "")
        return (qualname.startswith(_GENERATED_QUALNAME) or not qualname and code.co_name.startswith("__")  # (3.10)
                or str(frame.f_globals.get("__name__", "")).startswith(_GENERATED_MODULE)
                or code.co_name == "<module>" and frame.f_back is not None and _library(frame.f_back.f_code))
    return not name.startswith("<") and _library(code)


def _library(code: types.CodeType) -> bool:
    """Whether ``code`` is Python's, a library's or the kit's, read from its file."""
    return os.path.realpath(code.co_filename).startswith((KIT_DIR, *LIBRARY_DIRS))


def _described(code: types.CodeType) -> str:
    where = code.co_filename
    made = f"code made from text (named {where})" if where.startswith("<") else f"code read from {where}"
    name = getattr(code, "co_qualname", code.co_name)
    return f"the handler runs {name}(), {made}, not a function of the workbook's cells"


PROVENANCE = Provenance()
