"""How one session is laid out in its Redis string.

Private: no stable API.

A fixed 34-byte header, then the payload (the output of ``SESSION_SERIALIZER``, compressed when
large)::

    offset size field
    0      1    format version (2)
    1      1    flags: bit 0 set when the payload is zlib-compressed (written before zstd; still
                read), bit 1 when it is a zstd frame (``compression``)
    2      4    created: unix time, seconds, big-endian unsigned
    6      4    saved: unix time of the last write
    10     4    idle: seconds a read may extend the TTL to when expiry slides (0: it does not)
    14     4    until: unix time the TTL must never pass (0: no cap)
    18     16   MAC: HMAC-SHA256 of the 18 bytes before it, the Redis key, a NUL and the
                payload, truncated to 128 bits
    34     ...  payload

The MAC covers every other byte of the record: changing any bit of the header, the MAC or the
payload makes the record fail verification (``created`` cannot be moved to escape the absolute
timeout, nor ``idle``/``until`` to stretch a TTL). It also binds the data to the key it is stored
under, so a record copied to another key does not verify. Format 1 (0.1.0, which signed neither
times nor TTL fields) is refused as an unknown format.

The Lua scripts in ``scripts`` read ``idle`` and ``until`` and compare the MAC (as the version of
the record) without decoding anything else; ``scripts.TOUCH`` rewrites ``until`` together with
the MAC the client computed for it (``reseal``), and only over the record the client read.

One string per session is the most compact layout Redis offers (a hash with a field per session
key turns into a hash table once one value passes 64 bytes), and it keeps every read at one
command.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.contrib.auth import SESSION_KEY
from django.core.signing import JSONSerializer

from . import compression, keys, serializers

VERSION = 2
HEADER = struct.Struct(">BBIIII16s")
#: The signed part of the header: everything before the MAC.
_SIGNED_HEADER = struct.Struct(">BBIIII")
HEADER_SIZE = HEADER.size  # 34
MAC_OFFSET = 18
MAC_SIZE = 16
UNTIL_OFFSET = 14
FLAG_ZLIB = 0x01
_U32_MAX = 2**32 - 1

#: Payloads below this size compress with a small window: zlib's set-up cost, not the data,
#: dominates there (6 us instead of 45 us for a 0.5 KB session, for the same output size).
_SMALL_PAYLOAD = 4096
#: A compressed payload never inflates past this many bytes (a guard against zip bombs).
MAX_PAYLOAD = 64 * 1024 * 1024


class InvalidRecord(ValueError):
    """The bytes under a session's key are not a record this package wrote with a known secret."""


class Record(NamedTuple):
    """A session record as read from Redis, verified and decompressed.

    A named tuple (immutable like the frozen dataclass it was, made in a third of the time):
    every read makes one.
    """

    created: int
    saved: int
    idle: int
    until: int
    mac: bytes
    payload: bytes
    size: int


def _sign(secret: str, name: str, head: bytes, payload: bytes) -> bytes:
    # HMAC-SHA256 over the header's first 18 bytes (fixed size), key name, NUL, payload.
    message = b"".join((head, name.encode(), b"\0", payload))
    return keys.sign(secret, message)[:MAC_SIZE]


def _clamp(value: float) -> int:
    # Comparisons, not max(0, min(...)): the builtins' calls cost twice the rest (four per save).
    value = int(value)
    if 0 <= value <= _U32_MAX:
        return value
    return 0 if value < 0 else _U32_MAX


def compress(payload: bytes) -> bytes:
    """Raw deflate of ``payload``; small payloads use a small window for speed."""
    if len(payload) < _SMALL_PAYLOAD:
        deflate = zlib.compressobj(1, zlib.DEFLATED, -11, 4)
    else:
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 8)
    return deflate.compress(payload) + deflate.flush()


def decompress(data: bytes) -> bytes:
    inflate = zlib.decompressobj(-15)
    try:
        payload = inflate.decompress(data, MAX_PAYLOAD)
    except zlib.error as e:
        raise InvalidRecord(f"the payload does not decompress: {e}") from e
    if inflate.unconsumed_tail or not inflate.eof:
        raise InvalidRecord("the compressed payload is truncated or too large")
    if inflate.unused_data:  # pack() never writes anything after the deflate stream
        raise InvalidRecord("the compressed payload has bytes after its end")
    return payload


def _unzstd(data: bytes) -> bytes:
    try:
        return compression.decompress(data)
    except compression.CorruptPayload as e:
        raise InvalidRecord(str(e)) from e


def pack(
    name: str,
    payload: bytes,
    *,
    secret: str,
    created: float,
    saved: float,
    idle: int,
    until: float,
    compress_min_size: int | None,
) -> tuple[bytes, bytes]:
    """The bytes to store under ``name``, and their MAC (the record's version)."""
    flags = 0
    if compress_min_size is not None and len(payload) >= compress_min_size:
        packed = compression.compress(payload)
        if len(packed) < len(payload):
            payload, flags = packed, compression.FLAG_ZSTD
    head = _SIGNED_HEADER.pack(
        VERSION, flags, _clamp(created), _clamp(saved), _clamp(idle), _clamp(until)
    )
    mac = _sign(secret, name, head, payload)
    return b"".join((head, mac, payload)), mac


def unpack(name: str, blob: bytes, secret: str) -> Record:
    """Verify and decode the bytes stored under ``name``; raise ``InvalidRecord`` if they fail."""
    if len(blob) < HEADER_SIZE:
        raise InvalidRecord("the record is shorter than its header")
    version, flags, created, saved, idle, until, mac = HEADER.unpack_from(blob)
    if version != VERSION:
        raise InvalidRecord(f"unknown record format {version}")
    payload = blob[HEADER_SIZE:]
    if not hmac.compare_digest(mac, _sign(secret, name, blob[:MAC_OFFSET], payload)):
        raise InvalidRecord("the record's signature does not match")
    if flags & compression.FLAG_ZSTD:
        payload = _unzstd(payload)
    elif flags & FLAG_ZLIB:
        payload = decompress(payload)
    return Record(created, saved, idle, until, mac, payload, len(blob))


class Header(NamedTuple):
    """The header of a stored record, unverified: what bulk tools read with ``GETRANGE 0 33``.

    A named tuple, not a dataclass: a walk over a million sessions makes a million of them.
    """

    created: int
    saved: int
    idle: int
    until: int
    mac: bytes


def reseal(name: str, blob: bytes, secret: str, until: float) -> tuple[bytes, bytes]:
    """The verified record ``blob`` with ``until`` replaced: the 20 bytes from ``UNTIL_OFFSET``
    (``until`` and the new MAC, what ``scripts.TOUCH`` writes over the old ones) and the MAC."""
    head = blob[:UNTIL_OFFSET] + _clamp(until).to_bytes(4, "big")
    mac = _sign(secret, name, head, blob[HEADER_SIZE:])
    return head[UNTIL_OFFSET:] + mac, mac


def header_of(blob: bytes) -> Header:
    """The header fields of the first ``HEADER_SIZE`` bytes of a record, without verifying the
    MAC (a bulk scan reads only the header; deleting by it is conditional on ``mac``)."""
    if len(blob) < HEADER_SIZE:
        raise InvalidRecord("the record is shorter than its header")
    fields = HEADER.unpack_from(blob)
    if fields[0] != VERSION:
        raise InvalidRecord(f"unknown record format {fields[0]}")
    return Header._make(fields[2:])


def version_of(blob: bytes) -> bytes:
    """The MAC of stored bytes, without verifying them: what a conditional save compares."""
    return blob[MAC_OFFSET : MAC_OFFSET + MAC_SIZE]


# The payload: the session's data through SESSION_SERIALIZER ----------------------------------


def encode_payload(data: dict[str, Any], serializer: Any) -> bytes:
    """``data`` serialized with the ``SESSION_SERIALIZER`` class ``serializer``."""
    if serializer is JSONSerializer:  # Django's default, exactly (not a subclass)
        # orjson where it stores what JSONSerializer would (``serializers`` says when).
        return serializers.dumps(data)
    payload = serializer().dumps(data)
    return payload.encode() if isinstance(payload, str) else payload


def user_of(data: dict[str, Any]) -> str | None:
    """The id of the user signed in to a session's data (Django's ``SESSION_KEY``), or None."""
    user = data.get(SESSION_KEY)
    return None if user is None else str(user)


def decode_payload(payload: bytes, serializer: Any) -> dict[str, Any]:
    """The session data in ``payload``; raises whatever the serializer raises, or ValueError."""
    if serializer is JSONSerializer:
        data = serializers.loads(payload)  # reads what either of its encoders wrote
    else:
        data = serializer().loads(payload)
    if not isinstance(data, dict):
        raise ValueError(f"the session data is a {type(data).__name__}, not a dict")
    return data


def read(name: str, blob: bytes, secret: str, serializer: Any) -> tuple[Record, dict[str, Any]]:
    """Verify the record stored under ``name`` with ``secret`` and decode its data; raise
    ``InvalidRecord`` if either fails."""
    record = unpack(name, blob, secret)
    try:
        return record, decode_payload(record.payload, serializer)
    except Exception as e:  # whatever the serializer raises on bytes it did not write
        raise InvalidRecord(f"the payload does not decode: {e}") from e


def decode(
    name: str, blob: bytes, secrets: Sequence[str], serializer: Any
) -> tuple[Record, dict[str, Any]]:
    """``read`` with the first of ``secrets`` that verifies (``keys.secrets()``: ``SECRET_KEY``,
    then its fallbacks), as a request's read does. For the tools that read many sessions."""
    error = InvalidRecord("no secret to verify the record with")
    for secret in secrets:
        try:
            return read(name, blob, secret, serializer)
        except InvalidRecord as e:
            error = e
    raise error
