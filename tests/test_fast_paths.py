"""The hot path's shortcuts give exactly what the plain computation gives.

The shortcut for Django's default ``JSONSerializer`` (``serializers``) reads back what the
serializer itself would, and reads what it wrote (any other ``SESSION_SERIALIZER`` is still
called); the MACs made from a keyed HMAC's copy
equal a one-shot ``hmac.digest`` of the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections import Counter
from typing import Any

import pytest
import redis
from django.contrib.sessions.backends.base import SessionBase
from django.core.signing import JSONSerializer
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_redisstore import codec, keys, serializers
from django_redisstore.session import SessionStore

# Everything JSON can carry, and what Python's json accepts besides (non-finite floats, big
# ints, any Unicode), nested.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
sessions = st.dictionaries(st.text(), values, max_size=12)


def _same(a: Any, b: Any) -> bool:
    """Equality that counts NaN equal to itself (what a round trip of NaN gives)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@hypothesis_settings(max_examples=300, deadline=None)
@given(data=sessions)
def test_fast_path_reads_back_what_json_serializer_reads_back(data: dict[str, Any]) -> None:
    # The fast path writes orjson's bytes where they read back the same (tests/test_serializers.py
    # proves it against JSONSerializer for every trap), JSONSerializer's bytes elsewhere.
    store = SessionStore()
    assert store.serializer is JSONSerializer
    expected = JSONSerializer().dumps(data)
    encoded = codec.encode_payload(data, store.serializer)
    assert encoded == serializers.dumps(data)
    assert _same(codec.decode_payload(encoded, store.serializer), JSONSerializer().loads(expected))
    assert _same(
        codec.decode_payload(expected, store.serializer), JSONSerializer().loads(expected)
    )


def _json_bytes(value: Any, **options: Any) -> bytes:
    return json.dumps(value, **options).encode()


# Bytes to read: noise (mostly not JSON), any JSON value (mostly not a dict), sessions as Django
# writes them, and sessions written otherwise (indented, raw UTF-8 that latin-1 reads as other
# characters): the dict branch must be the common case, not a rare one.
payloads = (
    st.binary(max_size=200)
    | values.map(_json_bytes)
    | sessions.map(JSONSerializer().dumps)
    | sessions.map(lambda d: _json_bytes(d, ensure_ascii=False, indent=1))
)


def test_fast_path_reads_any_bytes_as_json_serializer_does() -> None:
    outcomes: Counter[str] = Counter()

    @hypothesis_settings(max_examples=300, deadline=None)
    @given(payload=payloads)
    def check(payload: bytes) -> None:
        # Payloads ending in a newline are orjson's (serializers.MARK): JSONSerializer never
        # writes one, and the MAC keeps anyone without SECRET_KEY from making one.
        assume(not payload.endswith(serializers.MARK))
        store = SessionStore()
        try:
            expected: Any = JSONSerializer().loads(payload)
        except Exception as e:  # the same kind of failure, or none
            outcomes["not JSON"] += 1
            with pytest.raises(type(e)):
                codec.decode_payload(payload, store.serializer)
            return
        if isinstance(expected, dict):
            nested = any(isinstance(v, dict) for v in expected.values())
            kind = "a dict, nested" if nested else "a dict"
            outcomes[kind] += 1
            assert _same(codec.decode_payload(payload, store.serializer), expected)
        else:
            outcomes["JSON, not a dict"] += 1
            with pytest.raises(ValueError, match="not a dict"):
                codec.decode_payload(payload, store.serializer)

    check()
    # Every branch ran, the dict ones often (hypothesis draws the four sources about equally).
    assert outcomes["a dict"] + outcomes["a dict, nested"] >= 60, outcomes
    assert outcomes["a dict, nested"] >= 10, outcomes
    assert outcomes["not JSON"] and outcomes["JSON, not a dict"], outcomes


def test_unserializable_data_fails_as_json_serializer_does() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        codec.encode_payload({"when": object()}, SessionStore().serializer)


class TaggedSerializer(JSONSerializer):
    """A subclass of the default: the engine must call it, not take the shortcut."""

    def dumps(self, obj: Any) -> bytes:
        return b"tagged:" + super().dumps(obj)

    def loads(self, data: bytes) -> Any:
        assert data.startswith(b"tagged:")
        return super().loads(data[len(b"tagged:") :])


def test_a_subclass_of_json_serializer_is_called(settings: Any, redis_client: redis.Redis) -> None:
    settings.SESSION_SERIALIZER = f"{__name__}.TaggedSerializer"
    settings.REDISSTORE_COMPRESS_MIN_SIZE = None
    session = SessionStore()
    session["cart"] = [1, 2, 3]
    session.save()
    name = keys.session_name(keys.session_id(str(session.session_key)))
    stored = redis_client.get(name)
    assert stored is not None
    assert stored[34:] == b'tagged:{"cart":[1,2,3]}'
    assert SessionStore(session.session_key)["cart"] == [1, 2, 3]


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    secret=st.text(min_size=1),
    name=st.text(),
    head=st.binary(min_size=2, max_size=2),
    payload=st.binary(max_size=5000),
)
def test_record_mac_is_hmac_sha256_of_the_signed_bytes(
    secret: str, name: str, head: bytes, payload: bytes
) -> None:
    key = hashlib.sha256(("django_redisstore.codec.mac" + secret).encode()).digest()
    message = head + name.encode() + b"\0" + payload
    expected = hmac.digest(key, message, "sha256")[:16]
    assert codec._sign(secret, name, head, payload) == expected
    assert codec._sign(secret, name, head, payload) == expected  # the template stays unfed


@hypothesis_settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=1), session_key=st.text(min_size=1))
def test_session_id_is_the_keyed_hash_of_the_cookie_value(secret: str, session_key: str) -> None:
    key = hashlib.sha256(("django_redisstore.keys.session-name" + secret).encode()).digest()
    digest = hmac.digest(key, session_key.encode(), "sha256")[:16]
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert keys.session_id(session_key, secret) == expected
    assert keys.session_id(session_key, secret) == expected


@pytest.mark.parametrize("session_key", [None, "a" * 32])
def test_the_store_starts_with_the_attributes_django_gives_it(
    settings: Any, session_key: str | None
) -> None:
    # SessionStore.__init__ repeats SessionBase.__init__ (without its per-call import): if a
    # Django version sets more, or other, attributes, this fails.
    settings.SESSION_SERIALIZER = f"{__name__}.TaggedSerializer"
    django_store = SessionBase(session_key)
    store = SessionStore(session_key)
    assert vars(django_store)
    for name, value in vars(django_store).items():
        assert getattr(store, name) == value, name
    assert store.serializer is TaggedSerializer
