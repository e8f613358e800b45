"""The fast JSON path stores and refuses exactly what Django's ``JSONSerializer`` does, and zstd
records (and the zlib ones written before) read back.

Every property compares with ``JSONSerializer`` itself: whatever it stores must read back
identical (same types, same key order, NaN as NaN) through ``serializers.dumps`` and
``serializers.loads``; whatever it refuses must be refused with the same exception and message.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import random
import uuid
from typing import Any

import pytest
import redis
from django.core.signing import JSONSerializer
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_redisstore import codec, compression, keys, serializers
from django_redisstore.session import SessionStore

from .command_helpers import signed_record


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Mapping(dict):  # type: ignore[type-arg]
    pass


class Sequence(list):  # type: ignore[type-arg]
    pass


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class Mode(str, enum.Enum):  # a StrEnum, also on Python 3.10
    DARK = "dark"


@dataclasses.dataclass
class Point:
    x: int


# Every trap of the brief: non-ASCII and lone surrogates, integers past 64 bits, NaN and the
# infinities, str/int/float/dict/list subclasses, enums, tuples, datetimes, UUIDs, dataclasses,
# and what neither library writes (bytes, sets, Decimal, objects).
texts = st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
    | texts.map(Text)
    | st.integers().map(Number)
    | st.floats().map(Real)
    | st.sampled_from([Colour.RED, Level.HIGH, Mode.DARK, Point(1), b"bytes", {1}, object()])
    | st.sampled_from([decimal.Decimal("1.5"), uuid.UUID(int=7), datetime.date(2026, 1, 2)])
    | st.datetimes()
)
keys_ = (
    texts
    | texts.map(Text)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.booleans()
    | st.none()
    | st.sampled_from([Level.HIGH, Mode.DARK, Colour.RED, (1, 2)])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.lists(inner, max_size=4).map(Sequence)
        | st.dictionaries(keys_, inner, max_size=4)
        | st.dictionaries(texts, inner, max_size=4).map(Mapping)
    ),
    max_leaves=20,
)
# Mostly plain JSON (the fast path), sometimes anything.
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
sessions = st.dictionaries(texts, values, max_size=6) | st.dictionaries(
    st.text(), plain, max_size=8
)


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down and dict keys in the same order; NaN is NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _check(data: Any) -> bytes | None:
    """Assert that ``serializers`` stores ``data`` as ``JSONSerializer`` would; return the bytes
    written (None when both refused)."""
    reference = JSONSerializer()
    try:
        expected = reference.dumps(data)
    except Exception as e:  # refused: the same way, with the same words
        with pytest.raises(type(e)) as refused:
            serializers.dumps(data)
        assert str(refused.value) == str(e)
        return None
    payload = serializers.dumps(data)
    if not payload.endswith(serializers.MARK):  # the fallback: JSONSerializer's very bytes
        assert payload == expected
    assert _same(serializers.loads(payload), reference.loads(expected))
    # A record written before (by JSONSerializer) reads back as JSONSerializer reads it.
    assert _same(serializers.loads(expected), reference.loads(expected))
    return payload


@hypothesis_settings(max_examples=300, deadline=None)
@given(data=sessions)
def test_what_json_serializer_stores_reads_back_the_same_and_what_it_refuses_is_refused(
    data: dict[Any, Any],
) -> None:
    _check(data)


@hypothesis_settings(max_examples=100, deadline=None)
@given(data=st.dictionaries(st.text(), plain, max_size=8))
def test_plain_json_takes_the_orjson_path(data: dict[str, Any]) -> None:
    payload = _check(data)
    assert payload is not None and payload.endswith(serializers.MARK)


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        [1.5, None, -math.inf],
        2**64,
        -(2**63) - 1,
        "\ud800",
        "caf\xe9 \U0001f600",
        Level.HIGH,
        Mode.DARK,
        Text("x"),
        Number(3),
        Real(1.5),
        (1, (2, 3)),
        Mapping(a=1),
        Sequence([1]),
    ],
    ids=repr,
)
def test_each_trap_reads_back_as_json_serializer_reads_it(value: Any) -> None:
    _check({"v": value, "n": None, "neg": -1})


@pytest.mark.parametrize(
    "value",
    [Colour.RED, uuid.UUID(int=1), datetime.datetime(2026, 1, 1), Point(1), b"x", {1}, object()],
    ids=repr,
)
def test_what_json_serializer_refuses_is_refused_with_its_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        serializers.dumps({"v": value})
    _check({"v": value})


@pytest.mark.parametrize("key", [1, 1.5, True, None, Level.HIGH, Mode.DARK, 2**70])
def test_non_str_keys_are_written_as_json_serializer_writes_them(key: Any) -> None:
    payload = _check({key: 1, "1": 2})
    assert payload is not None and not payload.endswith(serializers.MARK)


def test_a_tuple_key_is_refused_as_json_serializer_refuses_it() -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        serializers.dumps({(1, 2): 1})


@pytest.mark.parametrize("depth", [1, 250, 252, 253, 254, 255, 256, 600])
def test_nesting_at_any_depth_json_serializer_stores_reads_back(depth: int) -> None:
    data: Any = "leaf"
    for _ in range(depth):
        data = [data]
    payload = serializers.dumps({"deep": data})  # orjson stops at 254 levels: json writes on
    assert payload.endswith(serializers.MARK) == (depth < 254)
    assert serializers.loads(payload) == JSONSerializer().loads(
        JSONSerializer().dumps({"deep": data})
    )


def test_nesting_too_deep_for_json_serializer_is_refused_the_same_way() -> None:
    data: Any = 0
    for _ in range(100_000):
        data = [data]
    _check({"deep": data})


def test_a_circular_session_is_refused_as_json_serializer_refuses_it() -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    with pytest.raises(ValueError, match="Circular reference"):
        serializers.dumps(data)


# Through the engine and Redis ---------------------------------------------------------------


def _blob(redis_client: redis.Redis, session_key: str | None) -> bytes:
    assert session_key is not None
    blob = redis_client.get(keys.session_name(keys.session_id(session_key)))
    assert isinstance(blob, bytes)
    return blob


@pytest.mark.parametrize(
    "data",
    [
        {"name": "Zoë", "emoji": "\U0001f600", "lone": "\udc80"},
        {"big": 2**100, "nan": math.nan, "inf": math.inf},
        {"level": Level.HIGH, "mode": Mode.DARK, "pair": (1, 2)},
        {"cart": [{"sku": i, "name": "wool socks " * 3} for i in range(300)]},
    ],
    ids=["unicode", "numbers", "subclasses", "large"],
)
def test_a_session_saved_reads_back_as_json_serializer_reads_it(
    redis_client: redis.Redis, data: dict[str, Any]
) -> None:
    session = SessionStore()
    session.update(data)
    session.save()
    loaded = SessionStore(session.session_key).load()
    reference = JSONSerializer()
    assert _same(loaded, reference.loads(reference.dumps(data)))


def test_a_large_session_is_stored_as_a_zstd_frame(redis_client: redis.Redis) -> None:
    session = SessionStore()
    session["items"] = [{"name": "alpine trail jacket", "id": i} for i in range(500)]
    session.save()
    blob = _blob(redis_client, session.session_key)
    assert blob[1] == compression.FLAG_ZSTD
    payload = compression.decompress(blob[codec.HEADER_SIZE :])
    assert serializers.loads(payload) == {"items": session["items"]}
    assert len(blob) < len(payload) / 4


def test_a_record_written_by_zlib_and_json_before_still_reads(
    redis_client: redis.Redis, settings: Any
) -> None:
    data = {"cart": ["boots"] * 200, "name": "Zoë", "big": 2**80, "nan": math.nan}
    session = SessionStore()
    session["x"] = 1
    session.save()
    assert session.session_key is not None
    name = keys.session_name(keys.session_id(session.session_key))
    # What the engine wrote before orjson and zstd: JSONSerializer's bytes, raw deflate.
    payload = codec.compress(JSONSerializer().dumps(data))
    redis_client.set(name, signed_record(name, payload, codec.FLAG_ZLIB), keepttl=True)
    assert _same(
        SessionStore(session.session_key).load(),
        JSONSerializer().loads(JSONSerializer().dumps(data)),
    )


def test_the_sessions_of_the_benchmark_take_the_fast_paths() -> None:
    from bench.peers import large_session, small_session

    rng = random.Random(6)
    for data in (small_session(rng), large_session(rng)):
        payload = _check(data)
        assert payload is not None and payload.endswith(serializers.MARK)
        assert compression.decompress(compression.compress(payload)) == payload


# zstd frames ---------------------------------------------------------------------------------


def test_decompress_refuses_a_frame_past_the_limit_before_inflating_it() -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor(level=3).compress(b"\0" * (compression.MAX_PAYLOAD + 1))
    assert len(bomb) < compression.MAX_PAYLOAD // 1000
    with pytest.raises(compression.CorruptPayload, match="size within bounds"):
        compression.decompress(bomb)


def test_decompress_refuses_a_frame_without_its_size() -> None:
    import zstandard

    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"session " * 100)
    with pytest.raises(compression.CorruptPayload, match="size within bounds"):
        compression.decompress(unsized)


def test_decompress_refuses_garbage_and_truncation() -> None:
    good = compression.compress(b"some session payload " * 50)
    for bad in (good[: len(good) // 2], good[:-1], b"\xff\xff\xff\xff", b""):
        with pytest.raises(compression.CorruptPayload):
            compression.decompress(bad)


def test_a_signed_broken_zstd_record_reads_as_an_empty_session(
    redis_client: redis.Redis, settings: Any
) -> None:
    session = SessionStore()
    session["n"] = 1
    session.save()
    assert session.session_key is not None
    name = keys.session_name(keys.session_id(session.session_key))
    payload = compression.compress(b'{"n":2}\n' * 40)[:-5]
    redis_client.set(name, signed_record(name, payload, compression.FLAG_ZSTD), keepttl=True)
    assert SessionStore(session.session_key).load() == {}
