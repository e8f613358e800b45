"""Django's ``JSONSerializer``, faster: ``orjson`` wherever it gives the same session back.

The engine calls ``dumps`` and ``loads`` when ``SESSION_SERIALIZER`` is Django's
``JSONSerializer`` exactly (a subclass, or any other serializer, is called as it is). What
Django's serializer stores is stored here too and reads back equal; what it refuses is refused
with the same exception, because in every case where ``orjson`` would act differently the
standard library does the work, as ``JSONSerializer`` would:

* **Types.** ``orjson`` writes datetimes, UUIDs, enums, dataclasses and subclasses of ``str``,
  ``int``, ``dict`` and ``list`` (``IntEnum``, ``StrEnum``) that ``json`` refuses or writes
  differently. ``marshal.dumps`` accepts only the exact built-in types (it refuses a subclass of
  any of them, at C speed) and serves as the type check: what it refuses goes to ``json``.
  (``marshal`` also takes bytes, sets and complex numbers: ``orjson`` refuses those itself.)
* **Integers beyond 64 bits**, **lone surrogates**, **non-str keys** and **nesting deeper than
  254**: ``orjson`` raises, and ``json`` writes the payload.
* **NaN and infinities**: ``orjson`` writes ``null`` without a word. When its output holds a
  ``null``, the ``marshal`` bytes are searched for what could be a float whose exponent is all
  ones (``g`` or ``\\xe7`` then 8 little-endian bytes there); only if something is found are
  the session's floats looked at one by one, and ``json`` writes if one is not finite.

A payload written by ``orjson`` ends with a newline (``OPT_APPEND_NEWLINE``: JSON allows the
whitespace, any JSON reader still reads it, and ``json.dumps`` never ends with one). ``loads``
reads such a payload with ``orjson.loads`` and any other one as ``JSONSerializer.loads`` does:
``orjson.loads`` would read a big integer written by ``json`` back as a float, silently, and
refuses ``NaN``. A payload ``orjson`` wrote holds none of those, and its non-ASCII text is
UTF-8, which ``JSONSerializer.loads`` (Latin-1) would misread.
"""

from __future__ import annotations

import json
import marshal
import math
import re
from typing import Any

import orjson

#: What ``JSONSerializer.dumps`` builds on every call, made once: its ``encode`` gives the same
#: bytes (``json.dumps`` with non-default separators makes a new encoder per call).
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))

_OPTIONS = (
    orjson.OPT_APPEND_NEWLINE
    # Not needed after marshal's check, but keep orjson from writing these if ever reached.
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)

#: A marshalled float (``TYPE_BINARY_FLOAT``, with or without ``FLAG_REF``) whose exponent bits
#: are all ones: NaN or an infinity. Text cannot match (0xf5-0xff never occur in UTF-8, and a
#: lead byte 0xf0-0xf4 is followed by 0x80-0xbf); other bytes can (a negative integer after a
#: float), hence the exact walk after a match.
_NON_FINITE = re.compile(rb"[\x67\xe7][\x00-\xff]{6}[\xf0-\xff][\x7f\xff]")

#: The last byte of every payload ``orjson`` writes here, and of none that ``json`` writes.
MARK = b"\n"


def _refuse(obj: Any) -> Any:
    raise TypeError  # anything orjson cannot write natively goes to the standard library


def dumps_stdlib(data: Any) -> bytes:
    """Byte for byte ``JSONSerializer().dumps(data)``."""
    return _JSON_ENCODER.encode(data).encode("latin-1")


def dumps(data: Any) -> bytes:
    """``data`` as JSON: ``orjson``'s bytes plus ``MARK``, or ``JSONSerializer``'s bytes where
    ``orjson`` would write something else; raises what ``JSONSerializer`` raises."""
    try:
        exact = marshal.dumps(data)  # ValueError for any type but the exact built-ins
        payload = orjson.dumps(data, default=_refuse, option=_OPTIONS)
    except (ValueError, TypeError):  # orjson.JSONEncodeError is a TypeError
        return dumps_stdlib(data)
    if b"null" in payload and _NON_FINITE.search(exact) and _has_non_finite(data):
        return dumps_stdlib(data)
    return payload


def _has_non_finite(value: Any) -> bool:
    # Only exact dicts, lists, tuples and scalars get here (marshal checked), at most 254 deep.
    if type(value) is float:
        return not math.isfinite(value)
    if type(value) is dict:
        value = value.values()
    elif type(value) is not list and type(value) is not tuple:
        return False
    return any(_has_non_finite(item) for item in value)


def loads(payload: bytes) -> Any:
    """What ``dumps`` wrote, or what ``JSONSerializer`` wrote, read back."""
    if payload.endswith(MARK):
        return orjson.loads(payload)
    return json.loads(payload.decode("latin-1"))  # what JSONSerializer.loads does
