"""What a crash takes from your handler: the memory of its process.

A node that crashes comes back as a new process: your code is loaded again, and what it kept in memory (a set of
payment hashes already counted, a dict, a counter) is what the code makes as it loads, nothing more. LDK hands the
events it had not seen handled over again then, so a handler that skips an event "seen before" from memory counts it
twice after a real crash ("Event handling must be idempotent", ``lightning::events``).

The check's node restarts inside the same Python process, so at each crash of your node the check puts your handler's
memory back as it was when the check began (``Memory.forget``): the containers and plain values your handler's code
reaches by name (its module's globals, its closures, its object's attributes), in place. Anything else (a lock, a
thread, a queue, the kit's own objects) is left as it is: a new process would have new ones, not old ones emptied.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import sys
import threading
import types
from typing import Any

from .watch import KIT_DIR, LIBRARY_DIRS

#: What is put back in place: containers (with ``collections``' dicts), and values rebound by name.
_CONTAINERS = (set, dict, list, collections.deque, bytearray)
_VALUES = (int, float, str, bytes, bool, tuple, frozenset, type(None))


class Memory:
    """Your handler's memory as the check began, to put back at each crash of your node."""

    def __init__(self, handler: Any) -> None:
        shared = _kit_state()
        self._containers: list[tuple[Any, Any]] = []
        self._names: list[tuple[dict[str, Any], str, Any]] = []
        for namespace, name, value in _reached(handler):
            if id(value) in shared:  # (the kit's own state, shared with the scenarios: TRUSTED_ZERO_CONF_PEERS)
                continue
            if isinstance(value, _CONTAINERS):
                try:
                    self._containers.append((value, copy.deepcopy(value)))
                except Exception:  # (it holds what cannot be copied: a thread, a lock; left as it is)
                    continue
            elif isinstance(value, _VALUES) and namespace is not None:
                self._names.append((namespace, name, value))

    def forget(self) -> bool:
        """Put the memory back as it was when the check began, as a restarted process would have it. True if any of it
        had changed since (the crash took something)."""
        changed = any(namespace.get(name, _GONE) is not value for namespace, name, value in self._names)
        for container, kept in self._containers:
            changed = changed or _differs(container, kept)
            _put_back(container, copy.deepcopy(kept))
        for namespace, name, value in self._names:
            namespace[name] = value
        return changed


_GONE = object()


def _differs(container: Any, kept: Any) -> bool:
    """Whether what ``container`` records changed (not the work it keeps: the tasks of ``background_tasks``)."""
    items = container.values() if isinstance(container, dict) else container
    if any(isinstance(item, _WORK) for item in items):
        return False
    try:
        return bool(container != kept)
    except Exception:  # (values that cannot be compared: taken as changed)
        return True


#: Work in progress, which a crash ends (and a restarted process starts again): no record of what was handled.
_WORK = (asyncio.Future, concurrent.futures.Future, threading.Thread)


def _put_back(container: Any, kept: Any) -> None:
    """Fill ``container`` with ``kept``, in place: whatever else holds it sees it put back too."""
    if isinstance(container, (dict, set)):
        container.clear()
        container.update(kept)
    elif isinstance(container, collections.deque):
        container.clear()
        container.extend(kept)
    else:  # (a list, a bytearray)
        container[:] = kept


def _yours(code: Any) -> bool:
    return isinstance(code, types.CodeType) and not code.co_filename.startswith((KIT_DIR, *LIBRARY_DIRS, "<frozen"))


def _reached(handler: Any) -> list[tuple[dict[str, Any] | None, str, Any]]:
    """(namespace, name, value) for each value your code reaches by name: the globals its functions name, the cells
    they close over, and the attributes of the object the handler is a method of (or is, if it is callable). A
    function of yours found there is followed too. ``namespace`` is None where a value cannot be rebound (a cell, an
    attribute): only a container there is put back."""
    found: list[tuple[dict[str, Any] | None, str, Any]] = []
    seen: set[int] = set()
    functions = [handler]
    while functions:
        function = functions.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        if isinstance(function, (dict, list, tuple)):  # (a table of functions, as a dispatch by event kind)
            functions.extend(function.values() if isinstance(function, dict) else function)
            continue
        owner = None
        if isinstance(function, types.MethodType):  # (a method of an object of yours: its attributes too)
            owner, function = function.__self__, function.__func__
        elif not isinstance(function, types.FunctionType):  # (an object of yours called as a function)
            call = next((vars(k)["__call__"] for k in type(function).__mro__ if "__call__" in vars(k)), None)
            if isinstance(function, type) or not isinstance(call, types.FunctionType):
                continue
            owner, function = function, call
        code = function.__code__
        if not _yours(code):
            continue
        if owner is not None and not isinstance(owner, (type, types.ModuleType)):
            found.extend((None, name, value) for name, value in getattr(owner, "__dict__", {}).items())
        namespace = function.__globals__
        for name in _names_in(code):
            if name in namespace:
                value = namespace[name]
                found.append((namespace, name, value))
                functions.append(value)
        for cell in function.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # (a cell not yet filled)
                continue
            found.append((None, "", value))
            functions.append(value)
    return found


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _kit_state() -> set[int]:
    """The ids of the containers the kit's modules hold (shared state your code may import, as the trusted peers)."""
    return {id(value) for name, module in list(sys.modules.items()) if name.startswith("ldkkit")
            for value in list(vars(module).values()) if isinstance(value, _CONTAINERS)}
