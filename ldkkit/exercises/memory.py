"""What a crash takes from your handler: the memory of its process.

A node that crashes comes back as a new process: your code is loaded again, and what it kept in memory (a set of
payment hashes already counted, a dict, a counter) is what the code makes as it loads, nothing more. LDK hands the
events it had not seen handled over again then, so a handler that skips an event "seen before" from memory counts it
twice after a real crash ("Event handling must be idempotent", ``lightning::events``).

The check's node restarts inside the same Python process, so at each crash of your node the check puts your handler's
memory back as it was when the check began (``Memory.forget``): what your code reaches by name (its module's globals,
its closures, its functions' defaults and attributes, its classes' and objects' attributes (``__slots__`` too), a
module of yours it imports, what a dict or list of yours holds beside a lock), its caches (``functools.lru_cache``,
emptied) and its in-memory ``sqlite3`` databases. Containers are put back in place, plain values rebound. Anything
else (a lock, a thread, a queue, an event loop, the kit's own objects) is left as it is: a new process would have new
ones, not old ones emptied.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import dataclasses
import enum
import sqlite3
import sys
import threading
import types
from typing import Any

from .watch import KIT_DIR, LIBRARY_DIRS

#: What is put back in place: containers (with ``collections``' dicts), and values rebound where they are held.
_CONTAINERS = (set, dict, list, collections.deque, bytearray)
_VALUES = (int, float, str, bytes, bool, tuple, frozenset, type(None))


class Memory:
    """Your handler's memory as the check began, to put back at each crash of your node."""

    def __init__(self, handler: Any) -> None:
        shared = _kit_state()
        self._containers: list[tuple[Any, Any]] = []
        self._values: list[tuple[Any, Any, Any]] = []  # (where it is held, its key there, the value)
        self._caches: list[Any] = []
        self._holders: list[tuple[Any, Any]] = []  # (a dict, list or set of more than data, a copy): see _reached
        self._databases: list[tuple[sqlite3.Connection, bytes]] = []
        for holder, key, value in _reached(handler):
            if id(value) in shared:  # (the kit's own state, shared with the scenarios: TRUSTED_ZERO_CONF_PEERS)
                continue
            if isinstance(value, _CONTAINERS) and (_plain(value) or _working(value)):
                self._containers.append((value, _copied(value) if _plain(value) else type(value)()))
            elif isinstance(value, (dict, list, set)):
                self._holders.append((value, copy.copy(value)))
            elif isinstance(value, _VALUES) and holder is not None:
                self._values.append((holder, key, value))
            elif callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                self._caches.append(value)
            elif isinstance(value, sqlite3.Connection) and (database := _in_memory(value)) is not None:
                self._databases.append((value, database))

    def forget(self) -> bool:
        """Put the memory back as it was when the check began, as a restarted process would have it. True if any of it
        had changed since (the crash took something)."""
        changed = any(_held(holder, key) is not value for holder, key, value in self._values)
        for holder, kept in self._holders:  # (the same objects again: those that are data are put back below)
            changed = changed or _rebound(holder, kept)
            _put_back(holder, kept)
        for container, kept in self._containers:
            changed = changed or _differs(container, kept)
            _put_back(container, copy.deepcopy(kept))
        for holder, key, value in self._values:
            _hold(holder, key, value)
        for cache in self._caches:
            changed = changed or bool(cache.cache_info().currsize)
            cache.cache_clear()
        for connection, database in self._databases:
            try:
                changed = changed or connection.serialize() != database
                connection.deserialize(database)
            except sqlite3.Error:  # (one made in another thread, say: left as it is)
                pass
        return changed


def _in_memory(connection: sqlite3.Connection) -> bytes | None:
    """An in-memory database's contents (``Connection.serialize``, Python 3.11), to put back; None for a database on
    disk, which outlives a crash, or one that cannot be read here."""
    try:
        files = [row[2] for row in connection.execute("PRAGMA database_list")]
        return connection.serialize() if files == [""] and hasattr(connection, "deserialize") else None
    except sqlite3.Error:
        return None


_GONE = object()


def _held(holder: Any, key: Any) -> Any:
    if isinstance(holder, dict):
        return holder.get(key, _GONE)
    if isinstance(holder, types.CellType):
        try:
            return holder.cell_contents
        except ValueError:
            return _GONE
    return getattr(holder, key, _GONE)


def _hold(holder: Any, key: Any, value: Any) -> None:
    if isinstance(holder, dict):
        holder[key] = value
    elif isinstance(holder, types.CellType):
        holder.cell_contents = value
    else:
        try:
            setattr(holder, key, value)
        except (AttributeError, TypeError):  # (a frozen object: left as it is)
            pass


def _rebound(holder: Any, kept: Any) -> bool:
    """Whether a dict, list or set of more than data holds other objects than it did."""
    if isinstance(holder, set):
        return holder != kept
    if isinstance(holder, dict):
        return holder.keys() != kept.keys() or any(holder[k] is not v for k, v in kept.items())
    return len(holder) != len(kept) or any(a is not b for a, b in zip(holder, kept, strict=True))


def _differs(container: Any, kept: Any) -> bool:
    """Whether what ``container`` records changed (not the work it keeps: the tasks of ``background_tasks``)."""
    items = tuple(container.values()) if isinstance(container, dict) else _now(container)
    if any(isinstance(item, _WORK) for item in items):
        return False
    try:
        return bool(container != kept)
    except Exception:  # (values that cannot be compared: taken as changed)
        return True


#: Work in progress: no record of what was handled.
_WORK = (asyncio.Future, concurrent.futures.Future, threading.Thread)
#: Work a crash ends, and a restarted process has none of: tasks and futures. (Threads a cell started, as workers, a
#: restarted process starts again as its cells run: a list of them is put back as it was, the same threads.)
_DIES = (asyncio.Future, concurrent.futures.Future)


def _working(container: Any) -> bool:
    """A set or list of work a crash ends (the workbooks' ``background_tasks``): a restarted process has none."""
    return isinstance(container, (set, list)) and bool(container) and all(isinstance(i, _DIES) for i in _now(container))


def _now(container: Any) -> tuple[Any, ...]:
    """What ``container`` holds now (a dict: its items), read at once: ``tuple`` runs no Python code between items, so
    a thread of yours that adds to it meanwhile cannot break the reading ("Set changed size during iteration")."""
    return tuple(container.items()) if isinstance(container, dict) else tuple(container)


def _copied(value: Any) -> Any:
    """A deep copy of data, read again if a thread of yours changed it while it was copied; an empty one if what it
    holds is no longer data only (a task put in meanwhile, which cannot be copied: as a container at work)."""
    for _ in range(99):
        try:
            return copy.deepcopy(value)
        except RuntimeError as error:  # ("dictionary changed size during iteration")
            if "changed size" not in str(error) and "mutated" not in str(error):
                raise
        except TypeError:  # ("cannot pickle '_asyncio.Task' object")
            if not _plain(value):
                return type(value)()
    return copy.deepcopy(value)


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is data only, to copy and put back: values, containers of them, dataclass records (payment
    records, hashes). Not an event loop, a lock or a thread, whose copy would be a broken one."""
    if depth > 20:
        return False
    if isinstance(value, _VALUES):
        return all(_plain(item, depth + 1) for item in value) if isinstance(value, (tuple, frozenset)) else True
    if isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in _now(value))
    if isinstance(value, _CONTAINERS):
        return all(_plain(item, depth + 1) for item in _now(value))
    if isinstance(value, enum.Enum):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_plain(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    return False


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


def _of_yours(value: Any) -> bool:
    """Whether ``value`` is a class, an object or a module of your code's (not the kit's, nor a library's)."""
    if isinstance(value, types.ModuleType):
        return _module_of_yours(value)
    cls = value if isinstance(value, type) else type(value)
    return cls is types.SimpleNamespace or _module_of_yours(sys.modules.get(cls.__module__)) or any(
        _yours(getattr(f, "__code__", None)) for f in vars(cls).values() if isinstance(f, types.FunctionType))


def _module_of_yours(module: Any) -> bool:
    """A notebook's own namespace (``__main__``), a module of your files, or one your code made (no file, no spec)."""
    if not isinstance(module, types.ModuleType):
        return False
    file = getattr(module, "__file__", None)
    if file is None:
        return module.__name__ == "__main__" or getattr(module, "__spec__", None) is None
    return not str(file).startswith((KIT_DIR, *LIBRARY_DIRS))


def _reached(handler: Any) -> list[tuple[Any, Any, Any]]:
    """(where it is held, its key there, the value) for each value your code reaches: the globals its functions name,
    the cells they close over, their defaults and attributes, and the attributes of its classes, objects and modules.
    Functions, tables of functions, classes, objects and modules of yours found there are followed in turn."""
    found: list[tuple[Any, Any, Any]] = []
    seen: set[int] = set()
    todo = [handler]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        held: list[tuple[Any, Any, Any]] = []
        if isinstance(item, (dict, list, tuple)):  # (a table of functions, or data kept beside a lock: what it holds)
            if _plain(item):
                continue  # (put back whole)
            held += ([(item, key, value) for key, value in _now(item)] if isinstance(item, dict)
                     else [(None, None, value) for value in _now(item)])
        if isinstance(item, types.MethodType):
            todo += [item.__self__, item.__func__]
            continue
        if isinstance(item, types.FunctionType):
            if not _yours(item.__code__):
                continue
            held += [(item.__globals__, name, item.__globals__[name]) for name in _names_in(item.__code__)
                     if name in item.__globals__]
            held += [(cell, None, cell.cell_contents) for cell in item.__closure__ or () if _filled(cell)]
            held += [(None, None, default) for default in (*(item.__defaults__ or ()),
                                                           *(item.__kwdefaults__ or {}).values())]
            held += [(item.__dict__, name, value) for name, value in item.__dict__.items()]
        elif _of_yours(item) and not callable(getattr(item, "cache_clear", None)):
            if not isinstance(item, (type, types.ModuleType)):
                call = next((vars(k)["__call__"] for k in type(item).__mro__ if "__call__" in vars(k)), None)
                todo.append(call)
                todo.append(type(item))
            held += [(item, name, value) for name, value in list(getattr(item, "__dict__", {}).items())
                     if not name.startswith("__")]
            held += [(item, name, getattr(item, name)) for name in _slots(item) if hasattr(item, name)]
        found += held
        todo += [value for _, _, value in held]
    return found


def _slots(item: Any) -> list[str]:
    """The ``__slots__`` attributes of an object of yours (a class's own are in its ``__dict__``)."""
    if isinstance(item, (type, types.ModuleType)):
        return []
    names = []
    for cls in type(item).__mro__:
        slots = vars(cls).get("__slots__", ())
        names += [slots] if isinstance(slots, str) else [n for n in slots if n not in ("__dict__", "__weakref__")]
    return names


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # (a cell not yet filled)
        return False
    return True


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
