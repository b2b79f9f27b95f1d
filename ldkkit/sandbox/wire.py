"""The grading boundary's wire format: length-prefixed JSON envelopes, and strict value codecs.

Nothing that crosses from the learner's process is unpickled or evaluated. An envelope
is JSON; a kit value inside it (an event, a transaction, an ``APIError``) is the bytes of
:func:`ldkkit.ser.encode`, which decode only to registered kit types and raise only
``DecodeError`` on bad bytes. Anything unexpected raises :class:`ProtocolError`, which
the grader turns into that one submission's row.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import select
import struct
import time
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any

#: No honest message comes near this; a bigger one is a learner's attempt to exhaust memory.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


class WireTimeout(ProtocolError):
    """The other side sent nothing within its wall-clock limit."""


def send(fd: int, message: dict[str, Any]) -> None:
    """Write one envelope; a broken pipe surfaces as ``OSError`` to the caller."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def receive(fd: int, timeout_s: float | None) -> dict[str, Any]:
    """Read one envelope within ``timeout_s`` seconds (None: wait for ever); never trust its content."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {length} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    body = _read_exactly(fd, length, deadline)
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"a message is not JSON ({type(e).__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message is not a JSON object")
    return message


def _read_exactly(fd: int, count: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            raise WireTimeout("no answer in time")
        chunk = os.read(fd, min(count - len(chunks), 1 << 20))
        if not chunk:
            raise ProtocolError("the other side closed the channel")
        chunks += chunk
    return bytes(chunks)


# --- values ------------------------------------------------------------------------------------
#
# JSON carries None, bools, ints, floats, strings and lists as themselves; the rest is an
# object with exactly one key: {"b": base64} bytes, {"t": [...]} a tuple, {"f": [...]} a frozenset (the network
# graph's nodes()), {"s": [...]} a set, {"d": [[k, v], ...]} a dict, {"n": "0.01"} a Decimal, {"p": "/a/b"} a path,
# {"k": base64} a kit value in ldkkit.ser's encoding.

_MAX_DEPTH = 32
_TAGS: dict[type, str] = {tuple: "t", frozenset: "f", set: "s"}
_KINDS: dict[str, type] = {tag: kind for kind, tag in _TAGS.items()}


def to_wire(value: Any, depth: int = 0) -> Any:
    """A JSON-able form of ``value``; TypeError for what cannot cross (a function, a socket)."""
    if depth > _MAX_DEPTH:
        raise TypeError("a value nested too deeply to cross the grading boundary")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError("NaN and infinity cannot cross the grading boundary")
        return value
    if kind is Decimal:  # bitcoind's amounts, as JSON-RPC takes them
        if not value.is_finite():
            raise TypeError("NaN and infinity cannot cross the grading boundary")
        return {"n": str(value)}
    if kind is bytes or kind is bytearray:
        return {"b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, PurePath):  # (a node's folder, as the learner process sees it: RemoteHandler._view)
        return {"p": str(value)}
    if kind is list:
        return [to_wire(v, depth + 1) for v in value]
    if kind is tuple or kind is frozenset or kind is set:
        return {_TAGS[kind]: [to_wire(v, depth + 1) for v in value]}
    if issubclass(kind, dict):  # (a payment storage's map is one: it crosses as the plain dict it is)
        return {"d": [[to_wire(k, depth + 1), to_wire(v, depth + 1)] for k, v in value.items()]}
    from ..ser import encode

    try:
        return {"k": base64.b64encode(encode(value)).decode()}
    except TypeError:
        raise TypeError(f"a {kind.__qualname__} cannot cross the grading boundary") from None


def from_wire(data: Any, depth: int = 0) -> Any:
    """The value ``to_wire`` made; ProtocolError for anything else."""
    if depth > _MAX_DEPTH:
        raise ProtocolError("a value is nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [from_wire(v, depth + 1) for v in data]
    if type(data) is not dict or len(data) != 1:
        raise ProtocolError("a value is not in the wire format")
    ((tag, inner),) = data.items()
    if tag == "b":
        return _b64(inner)
    if tag == "n" and type(inner) is str and len(inner) <= 100:
        try:
            number = Decimal(inner)
        except ArithmeticError:
            raise ProtocolError("a decimal is not a number") from None
        if number.is_finite():
            return number
    if tag == "p" and type(inner) is str and len(inner) <= 4096 and "\0" not in inner:
        return Path(inner)
    if tag in _KINDS and type(inner) is list:
        try:
            return _KINDS[tag](from_wire(v, depth + 1) for v in inner)
        except TypeError:
            raise ProtocolError("a set's member cannot be a member") from None
    if tag == "d" and type(inner) is list:
        return _dict(inner, depth)
    if tag == "k":
        from ..ser import decode

        try:
            return decode(_b64(inner))
        except Exception as e:  # ser raises DecodeError; anything else is bad data all the same
            raise ProtocolError(f"a kit value does not decode: {e}") from None
    raise ProtocolError(f"unknown value tag {tag!r}")


def _b64(text: Any) -> bytes:
    if type(text) is not str:
        raise ProtocolError("bytes are not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ProtocolError("bytes are not valid base64") from None


def _dict(pairs: list[Any], depth: int) -> dict[Any, Any]:
    out = {}
    for pair in pairs:
        if type(pair) is not list or len(pair) != 2:
            raise ProtocolError("a dict entry is not a [key, value] pair")
        key = from_wire(pair[0], depth + 1)
        try:
            out[key] = from_wire(pair[1], depth + 1)
        except TypeError:
            raise ProtocolError("a dict key cannot be a key") from None
    return out


# --- exceptions ------------------------------------------------------------------------------

class _KeyError(KeyError):
    """A KeyError rebuilt from its words: ``str`` gives them as they came (a KeyError's own quotes its key, which would
    quote the words again)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_KeyError.__name__ = _KeyError.__qualname__ = "KeyError"  # (as the learner's own is told: "it raised KeyError: ...")

#: Builtin exceptions re-raised as themselves on the other side (with their message only).
_BUILTIN = {cls.__name__: cls for cls in (ValueError, TypeError, _KeyError, IndexError, LookupError, RuntimeError,
                                          AssertionError, NotImplementedError, ArithmeticError, ZeroDivisionError,
                                          AttributeError, PermissionError, TimeoutError)}


#: How deep an error's causes and groups are described, and how many errors of a group (``error_to_wire``).
_CHAIN_DEPTH, _GROUP_SIZE = 3, 8
#: ``asyncio.TaskGroup``'s errors come in one of these (Python 3.11 on; none before).
_GROUPS: Any = getattr(builtins, "BaseExceptionGroup", ())


def error_to_wire(error: BaseException, depth: int = 0) -> dict[str, Any]:
    """Describe an exception so the other side can raise one of the same class and message, with what it came from
    (its cause, or the error being handled when it was raised) and, for a group, its errors: a few levels deep."""
    from ..ser import _REGISTRY, encode

    if _REGISTRY.get(type(error).__qualname__) is type(error):
        try:
            return {"kit": base64.b64encode(encode(error)).decode(), "message": str(error)}
        except Exception:  # an exception the kit cannot encode after all: described by name below
            pass
    described: dict[str, Any] = {"name": type(error).__name__[:100], "message": str(error)[:4000 if not depth else 400]}
    if isinstance(error, OSError):
        described["errno"] = error.errno if isinstance(error.errno, int) else None
        described["strerror"] = str(error.strerror or error)[:4000]
        if isinstance(error.filename, str):  # (named in its words: "... No such file or directory: 'x'")
            described["filename"] = error.filename[:4000]
    if depth < _CHAIN_DEPTH:
        if isinstance(error, _GROUPS) and depth < 2:  # (two levels of groups at most: a few dozen errors in all)
            described["group"] = [error_to_wire(e, depth + 1) for e in error.exceptions[:_GROUP_SIZE]]
        came_from = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if came_from is not None:
            described["cause"] = error_to_wire(came_from, depth + 1)
    return described


def error_from_wire(data: Any, depth: int = 0) -> BaseException:
    """An exception like the one ``error_to_wire`` described, with what it came from (as its ``__cause__``) and a
    group's errors; only known classes are built."""
    error = _error_alone(data)
    if depth >= _CHAIN_DEPTH:
        return error
    group, came_from = data.get("group"), data.get("cause")
    if group is not None:
        if type(group) is not list or not group or len(group) > _GROUP_SIZE:
            raise ProtocolError("an error group is badly described")
        if _GROUPS:
            errors = [error_from_wire(e, depth + 1) for e in group]
            error = builtins.BaseExceptionGroup(str(data.get("message")), errors)
    if came_from is not None:
        error.__cause__ = error_from_wire(came_from, depth + 1)
    return error


def _error_alone(data: Any) -> BaseException:
    """The exception ``data`` describes, by itself."""
    if type(data) is not dict:
        raise ProtocolError("an error is not described as an object")
    if "kit" in data:
        value = from_wire({"k": data["kit"]})
        if not isinstance(value, BaseException):
            raise ProtocolError("a kit error decodes to something that is not an exception")
        return value
    name, message = data.get("name"), data.get("message")
    if type(name) is not str or type(message) is not str:
        raise ProtocolError("an error has no name or message")
    if "errno" in data:
        errno, strerror, filename = data.get("errno"), data.get("strerror"), data.get("filename")
        if (errno is not None and type(errno) is not int or type(strerror) is not str
                or filename is not None and type(filename) is not str):
            raise ProtocolError("an OSError is badly described")
        if errno is None:
            return OSError(strerror)
        return OSError(errno, strerror) if filename is None else OSError(errno, strerror, filename)
    cls = _BUILTIN.get(name)
    return cls(message) if cls is not None else RuntimeError(f"{name}: {message}")


def event_to_wire(event: Any) -> Any:
    """An event as its own bytes (``Event.encode()``), which the learner process decodes."""
    return to_wire(event.encode())
