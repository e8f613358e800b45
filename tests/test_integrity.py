"""What Redis holds is signed, bound to its key, never a usable cookie, and never unpickled.

Records are tampered with directly on the test server; the engine must read each as an empty
session, log it to ``django.security.SuspiciousSession`` and never fail the request.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
import types
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.sessions.serializers import JSONSerializer
from django.test import Client

from django_redisstore import codec, compression, keys, scripts, storage
from django_redisstore.session import SessionStore

from .command_helpers import signed_record as _signed

SECURITY_LOGGER = "django.security.SuspiciousSession"


def _saved(**data: Any) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.save()
    return session


def _name(session_key: str | None) -> str:
    assert session_key is not None
    return keys.session_name(keys.session_id(session_key))


def _flip(blob: bytes, offset: int) -> bytes:
    return blob[:offset] + bytes([blob[offset] ^ 0x01]) + blob[offset + 1 :]


# Each tampering turns a good record (and its Redis key) into the bytes to store instead.
TAMPERINGS: dict[str, Callable[[bytes, str], bytes]] = {
    "payload byte flipped": lambda blob, name: _flip(blob, len(blob) - 2),
    "first payload byte flipped": lambda blob, name: _flip(blob, codec.HEADER_SIZE),
    "MAC byte flipped": lambda blob, name: _flip(blob, codec.MAC_OFFSET + 5),
    "flags byte flipped": lambda blob, name: _flip(blob, 1),
    "version byte changed": lambda blob, name: bytes([9]) + blob[1:],
    "truncated payload": lambda blob, name: blob[:-3],
    "truncated header": lambda blob, name: blob[:20],
    "empty": lambda blob, name: b"",
    "foreign text": lambda blob, name: b"hello, this was written by somebody else",
    "foreign json": lambda blob, name: json.dumps({"user": "admin"}).encode(),
    "pickle": lambda blob, name: pickle.dumps({"user": "admin"}),
    "signed with another secret": lambda blob, name: _signed(
        name, blob[codec.HEADER_SIZE :], secret="another-secret-key"
    ),
    "signed pickle payload": lambda blob, name: _signed(name, pickle.dumps({"user": "admin"})),
    "signed non-dict payload": lambda blob, name: _signed(name, b"[1, 2, 3]"),
    "signed undecodable payload": lambda blob, name: _signed(name, b"\xff\xfe{"),
    "signed broken deflate": lambda blob, name: _signed(name, b"not deflate", codec.FLAG_ZLIB),
}


@pytest.fixture
def security_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger=SECURITY_LOGGER):
        yield caplog


def _security_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == SECURITY_LOGGER and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_a_tampered_record_reads_as_an_empty_session_and_is_logged(
    tampering: str, redis_client: redis.Redis, security_log: pytest.LogCaptureFixture
) -> None:
    session = _saved(user="alice", role="admin")
    name = _name(session.session_key)
    blob = redis_client.get(name)
    assert isinstance(blob, bytes)
    redis_client.set(name, TAMPERINGS[tampering](blob, name), keepttl=True)

    reader = SessionStore(session.session_key)
    assert reader.load() == {}
    assert reader.session_key is None  # a save makes a new session, never reuses this key
    (warning,) = _security_warnings(security_log)
    assert name in warning.getMessage()  # an operator can find the record
    assert session.session_key not in warning.getMessage()  # logs hand out no cookie either


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_a_tampered_record_through_the_middleware_is_no_500(
    tampering: str,
    settings: Any,
    redis_client: redis.Redis,
    security_log: pytest.LogCaptureFixture,
) -> None:
    session = _saved(user="alice")
    name = _name(session.session_key)
    blob = redis_client.get(name)
    assert isinstance(blob, bytes)
    redis_client.set(name, TAMPERINGS[tampering](blob, name), keepttl=True)

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    response = client.get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    response = client.get("/write/?fresh=1")
    assert response.status_code == 200
    assert response.json() == {"fresh": "1"}
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != session.session_key  # the tampered key is not adopted
    assert len(_security_warnings(security_log)) >= 1


def _every_bit_flipped(blob: bytes) -> Iterator[tuple[int, int, bytes]]:
    for offset in range(len(blob)):
        for bit in range(8):
            flipped = bytes([blob[offset] ^ 1 << bit])
            yield offset, bit, blob[:offset] + flipped + blob[offset + 1 :]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"user": "alice", "role": "admin"}, id="small"),
        pytest.param({"text": "the same words again and again " * 300}, id="compressed"),
    ],
)
def test_flipping_any_bit_of_a_stored_record_makes_it_rejected(
    data: dict[str, Any],
    settings: Any,
    redis_client: redis.Redis,
    security_log: pytest.LogCaptureFixture,
) -> None:
    # Header (version, flags, created, saved, idle, until), MAC and payload: every bit counts.
    settings.REDISSTORE_IDLE_TIMEOUT = 600  # idle and until are set, and reads slide
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 3600
    session = _saved(_auth_user_id="7", **data)
    name = _name(session.session_key)
    blob = redis_client.get(name)
    assert isinstance(blob, bytes)
    header = codec.header_of(blob)
    assert header.created and header.saved and header.idle and header.until
    compressed = bool(blob[1] & compression.FLAG_ZSTD)
    assert compressed == ("text" in data)
    flips = 0
    for offset, bit, tampered in _every_bit_flipped(blob):
        redis_client.set(name, tampered, keepttl=True)
        reader = SessionStore(session.session_key)
        assert reader.load() == {}, (offset, bit)
        assert reader.session_key is None
        flips += 1
        assert len(_security_warnings(security_log)) == flips, (offset, bit)
    assert flips == len(blob) * 8
    redis_client.set(name, blob, keepttl=True)  # the untouched record still reads
    assert SessionStore(session.session_key).load() == {"_auth_user_id": "7", **data}


def test_a_record_whose_creation_time_was_moved_ahead_is_rejected(
    settings: Any, redis_client: redis.Redis, security_log: pytest.LogCaptureFixture
) -> None:
    # The attack the MAC over the header stops: escape the absolute timeout by moving
    # ``created`` a year ahead and dropping the TTL.
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 3600
    session = _saved(_auth_user_id="7")
    name = _name(session.session_key)
    blob = redis_client.get(name)
    assert isinstance(blob, bytes)
    created = int.from_bytes(blob[2:6], "big") + 365 * 86400
    redis_client.set(name, blob[:2] + created.to_bytes(4, "big") + blob[6:])
    assert redis_client.ttl(name) == -1
    assert SessionStore(session.session_key).load() == {}
    assert len(_security_warnings(security_log)) == 1


def _read_later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Have the engine's flows see a clock ``seconds`` ahead (Redis's TTLs stay real)."""
    later = time.time() + seconds
    monkeypatch.setattr(storage, "time", types.SimpleNamespace(time=lambda: later))


def test_extending_until_on_a_sliding_read_keeps_the_record_valid(
    settings: Any,
    redis_client: redis.Redis,
    security_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The one in-place header write (TOUCH: a slide that passed the index entry's score) sends
    # the MAC of the new ``until`` with it: the record still verifies, and a save of the same
    # request is not taken for a conflict.
    settings.REDISSTORE_IDLE_TIMEOUT = 600
    session = _saved(_auth_user_id="7", n=1)
    name = _name(session.session_key)
    before = codec.header_of(redis_client.get(name) or b"")
    _read_later(monkeypatch, 700)  # the index entry's score is now less than idle away
    reader = SessionStore(session.session_key)
    assert reader.load() == {"_auth_user_id": "7", "n": 1}
    after = codec.header_of(redis_client.get(name) or b"")
    assert after.until > before.until and after.mac != before.mac
    reader["n"] = 2
    reader.save()
    assert codec.header_of(redis_client.get(name) or b"").mac == reader._version
    assert SessionStore(session.session_key).load() == {"_auth_user_id": "7", "n": 2}
    assert not _security_warnings(security_log)


def test_extending_until_leaves_a_record_written_meanwhile_alone(
    redis_client: redis.Redis, security_log: pytest.LogCaptureFixture
) -> None:
    # TOUCH is conditional on the version read: its MAC is valid for that version only.
    session = _saved(_auth_user_id="7", n=1)
    name = _name(session.session_key)
    blob = redis_client.get(name)
    assert isinstance(blob, bytes)
    writer = SessionStore(session.session_key)
    writer["n"] = 2
    writer.save()
    written = redis_client.get(name)
    tail, _ = codec.reseal(name, blob, django_settings.SECRET_KEY, time.time() + 9999)
    touch = scripts.TOUCH.call(name, 600_000, codec.version_of(blob), tail)
    assert redis_client.execute_command(*touch.as_eval()) == 0
    assert redis_client.get(name) == written
    assert SessionStore(session.session_key).load() == {"_auth_user_id": "7", "n": 2}
    assert not _security_warnings(security_log)


def test_a_valid_record_copied_under_another_sessions_key_does_not_verify(
    redis_client: redis.Redis, security_log: pytest.LogCaptureFixture
) -> None:
    admin = _saved(user="admin")
    guest = _saved(user="guest")
    admin_blob = redis_client.get(_name(admin.session_key))
    assert isinstance(admin_blob, bytes)
    redis_client.set(_name(guest.session_key), admin_blob, keepttl=True)

    assert SessionStore(guest.session_key).load() == {}
    assert len(_security_warnings(security_log)) == 1
    assert SessionStore(admin.session_key).load() == {"user": "admin"}


def test_a_save_over_a_tampered_record_replaces_it_rather_than_merging(
    redis_client: redis.Redis, security_log: pytest.LogCaptureFixture
) -> None:
    # A request that read a good record saves after somebody overwrote it with forged bytes:
    # nothing from the forgery may enter the session.
    session = _saved(user="alice")
    name = _name(session.session_key)
    late = SessionStore(session.session_key)
    assert late["user"] == "alice"
    redis_client.set(name, _signed(name, b"x", secret="forger"), keepttl=True)
    late["cart"] = 1
    late.save()
    assert SessionStore(session.session_key).load() == {"user": "alice", "cart": 1}
    assert len(_security_warnings(security_log)) == 1


# Redis never holds a usable cookie value ---------------------------------------------------------


def test_no_redis_key_contains_the_cookie_value(
    redis_client: redis.Redis, redisstore: str
) -> None:
    session = _saved(_auth_user_id="7", data="x")
    session.cycle_key()
    stored = [k.decode() for k in redis_client.scan_iter(f"{redisstore}:*")]
    assert _name(session.session_key) in stored  # the scan does see the session
    assert session.session_key is not None
    assert not any(session.session_key in key for key in stored)
    for key in stored:
        value = redis_client.dump(key)
        assert value is not None
        assert session.session_key.encode() not in value


class _Monitor:
    """Everything the test server is asked while it runs: ``MONITOR`` in a thread."""

    STOP = "django-redisstore-monitor-stop"

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for event in monitor.listen():
                command = str(event["command"])
                if self.STOP in command:
                    return
                self.commands.append(command)

    def __enter__(self) -> _Monitor:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.echo(self.STOP)
        self.thread.join(10)
        self.client.close()
        assert not self.thread.is_alive()


def test_monitor_output_of_a_full_request_cycle_never_shows_the_cookie(
    settings: Any, redis_server_url: str, django_user_model: Any
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True  # the sliding read script runs too
    user = django_user_model.objects.create_user("alice", password="pw")
    client = Client()
    with _Monitor(redis_server_url) as monitor:
        client.get("/write/?visits=1")  # create
        first_key = client.cookies[settings.SESSION_COOKIE_NAME].value
        client.get("/read/")  # read (and slide)
        client.get("/write/?visits=2")  # change
        client.force_login(user)  # log in: cycle_key plus the user index
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        client.get("/write/?visits=3")
        client.get("/logout/")  # flush: delete and index removal
    everything = "\n".join(monitor.commands)
    assert _name(cookie) in everything  # MONITOR saw this session's commands
    assert f":u:{user.pk}" in everything  # ... and its index upkeep
    for value in (first_key, cookie):
        assert value not in everything


# SECRET_KEY rotation -----------------------------------------------------------------------------


def test_a_session_under_a_fallback_secret_is_read_then_moved_under_the_new_name(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.SECRET_KEY = "the-old-secret-key-of-this-site"
    session = _saved(user="alice", _auth_user_id="5")
    session_key = session.session_key
    old_name = _name(session_key)
    assert redis_client.exists(old_name)

    settings.SECRET_KEY = "the-new-secret-key-of-this-site"
    settings.SECRET_KEY_FALLBACKS = ["the-old-secret-key-of-this-site"]
    new_name = _name(session_key)
    assert new_name != old_name
    reader = SessionStore(session_key)
    assert reader.load() == {"user": "alice", "_auth_user_id": "5"}
    assert reader.session_key == session_key  # the user keeps the same cookie
    assert redis_client.exists(old_name) == 0
    assert redis_client.exists(new_name) == 1
    assert redis_client.ttl(new_name) > 0
    index = [m.decode() for m in redis_client.zrange(keys.user_index_name("5"), 0, -1)]
    assert index == [new_name.rsplit(":", 1)[1]]  # the index follows the move

    # From now on the record verifies under the new secret alone.
    settings.SECRET_KEY_FALLBACKS = []
    reader = SessionStore(session_key)
    assert reader.load() == {"user": "alice", "_auth_user_id": "5"}
    reader["more"] = 1
    reader.save()
    assert SessionStore(session_key).load()["more"] == 1


def test_a_session_under_a_secret_no_longer_listed_is_not_read(settings: Any) -> None:
    settings.SECRET_KEY = "the-old-secret-key-of-this-site"
    session = _saved(user="alice")
    settings.SECRET_KEY = "the-new-secret-key-of-this-site"
    settings.SECRET_KEY_FALLBACKS = []
    reader = SessionStore(session.session_key)
    assert reader.load() == {}
    assert reader.session_key is None


# Serializers -------------------------------------------------------------------------------------


class MarkingSerializer:
    """JSON with a marker in front: proves that SESSION_SERIALIZER is what writes the payload."""

    MARK = b"MARKED:"

    def dumps(self, obj: Any) -> bytes:
        return self.MARK + json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        if not data.startswith(self.MARK):
            raise ValueError("not written by MarkingSerializer")
        return json.loads(data[len(self.MARK) :])


def _payload(blob: bytes) -> bytes:
    payload = blob[codec.HEADER_SIZE :]
    if blob[1] & compression.FLAG_ZSTD:
        return compression.decompress(payload)
    return codec.decompress(payload) if blob[1] & codec.FLAG_ZLIB else payload


def test_a_custom_session_serializer_writes_and_reads_the_payload(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.SESSION_SERIALIZER = f"{__name__}.MarkingSerializer"
    session = _saved(user="alice", items=[1, 2])
    blob = redis_client.get(_name(session.session_key))
    assert isinstance(blob, bytes)
    assert _payload(blob) == b'MARKED:{"user":"alice","items":[1,2]}'
    assert SessionStore(session.session_key).load() == {"user": "alice", "items": [1, 2]}


def test_the_default_serializer_is_json_never_pickle(
    settings: Any, redis_client: redis.Redis
) -> None:
    assert settings.SESSION_SERIALIZER == "django.contrib.sessions.serializers.JSONSerializer"
    session = _saved(user="alice", n=3)
    blob = redis_client.get(_name(session.session_key))
    assert isinstance(blob, bytes)
    assert json.loads(_payload(blob)) == {"user": "alice", "n": 3}
    assert JSONSerializer().loads(_payload(blob)) == {"user": "alice", "n": 3}
    # What JSON cannot hold is refused rather than pickled.
    with pytest.raises(TypeError):
        _saved(thing=object())


# Compression -------------------------------------------------------------------------------------


def test_a_large_compressible_session_is_stored_compressed_and_reads_back_equal(
    redis_client: redis.Redis,
) -> None:
    data = {"text": "the same words again and again " * 2000, "n": list(range(500))}
    session = _saved(**data)
    blob = redis_client.get(_name(session.session_key))
    assert isinstance(blob, bytes)
    serialized = JSONSerializer().dumps(data)
    assert blob[1] == compression.FLAG_ZSTD
    assert len(blob) - codec.HEADER_SIZE < len(serialized) / 2
    assert SessionStore(session.session_key).load() == data


def test_a_small_session_is_stored_as_it_is(redis_client: redis.Redis) -> None:
    session = _saved(n=1)
    blob = redis_client.get(_name(session.session_key))
    assert isinstance(blob, bytes)
    assert not blob[1] & (codec.FLAG_ZLIB | compression.FLAG_ZSTD)
    assert blob[codec.HEADER_SIZE :] == b'{"n":1}\n'


def test_compression_can_be_switched_off(settings: Any, redis_client: redis.Redis) -> None:
    settings.REDISSTORE_COMPRESS_MIN_SIZE = None
    session = _saved(text="aaaa" * 5000)
    blob = redis_client.get(_name(session.session_key))
    assert isinstance(blob, bytes)
    assert not blob[1] & (codec.FLAG_ZLIB | compression.FLAG_ZSTD)


def _deflate(data: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflate.compress(data) + deflate.flush()


def test_decompress_refuses_a_bomb_past_its_limit() -> None:
    bomb = _deflate(b"\0" * (codec.MAX_PAYLOAD + 1))
    assert len(bomb) < codec.MAX_PAYLOAD // 500
    with pytest.raises(codec.InvalidRecord):
        codec.decompress(bomb)


def test_decompress_accepts_exactly_its_limit() -> None:
    assert len(codec.decompress(_deflate(b"\0" * codec.MAX_PAYLOAD))) == codec.MAX_PAYLOAD


def test_decompress_refuses_garbage_and_truncation() -> None:
    good = _deflate(b"some session payload " * 50)
    with pytest.raises(codec.InvalidRecord):
        codec.decompress(good[: len(good) // 2])
    with pytest.raises(codec.InvalidRecord):
        codec.decompress(b"\xff\xff\xff\xff")
    with pytest.raises(codec.InvalidRecord):
        codec.decompress(good + b"trailing")


def test_a_signed_bomb_in_redis_reads_as_an_empty_session(
    redis_client: redis.Redis, security_log: pytest.LogCaptureFixture
) -> None:
    # Only a holder of SECRET_KEY can sign one; the limit still keeps it from eating memory.
    session = _saved(n=1)
    name = _name(session.session_key)
    bomb = _deflate(b"{" + b" " * (codec.MAX_PAYLOAD + 10) + b"}")
    redis_client.set(name, _signed(name, bomb, codec.FLAG_ZLIB), keepttl=True)
    assert SessionStore(session.session_key).load() == {}
    assert len(_security_warnings(security_log)) == 1


def test_unpack_takes_a_bare_header_and_refuses_one_byte_less() -> None:
    # The length check guards against a truncated header, not an empty payload: a signed record
    # of exactly HEADER_SIZE bytes is whole (the serializer decides what an empty payload means).
    blob, mac = codec.pack(
        "k", b"", secret="s", created=1, saved=2, idle=0, until=0, compress_min_size=None
    )
    assert len(blob) == codec.HEADER_SIZE
    record = codec.unpack("k", blob, "s")
    assert (record.payload, record.mac, record.size) == (b"", mac, codec.HEADER_SIZE)
    with pytest.raises(codec.InvalidRecord, match="shorter than its header"):
        codec.unpack("k", blob[:-1], "s")
