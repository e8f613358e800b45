"""Helpers shared by the tests: sessions made as an app makes them, and the ``sessions``
command run as a user runs it."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command

from django_redisstore import codec, keys
from django_redisstore.session import SessionStore

#: The command's tests run twice: without timeouts, and with both (the absolute timeout puts a
#: TTL cap in the header of every session, signed in or not; the idle one makes expiry slide).
#: Both are at least SESSION_COOKIE_AGE, so that TTLs and ages read the same in either run.
TIMEOUTS = {
    "none": {},
    "idle and absolute": {
        "REDISSTORE_IDLE_TIMEOUT": 14 * 86400,
        "REDISSTORE_ABSOLUTE_TIMEOUT": 30 * 86400,
    },
}


@pytest.fixture(autouse=True, params=list(TIMEOUTS), ids=list(TIMEOUTS))
def timeouts(request: pytest.FixtureRequest, settings: Any) -> dict[str, int]:
    """Import into a test module to run each of its tests with and without the timeouts."""
    chosen: dict[str, int] = TIMEOUTS[request.param]
    for name, value in chosen.items():
        setattr(settings, name, value)
    return chosen


class Terminal(io.StringIO):
    """A stream that says it is a terminal (for the progress bar and the confirmation)."""

    def isatty(self) -> bool:
        return True


def sessions(*args: str, **kwargs: Any) -> str:
    """Run ``manage.py sessions ARGS`` and return what it printed on stdout."""
    out = io.StringIO()
    call_command("sessions", *args, stdout=out, stderr=kwargs.pop("stderr", io.StringIO()))
    return out.getvalue()


def sessions_json(*args: str) -> Any:
    return json.loads(sessions(*args, "--format", "json"))


def make_session(user_id: Any = None, **data: Any) -> SessionStore:
    """A saved session: of ``user_id`` as ``login()`` leaves it, or anonymous without one."""
    session = SessionStore()
    if user_id is not None:
        session["_auth_user_id"] = str(user_id)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = "secret-hash-of-the-password"
    session.update(data)
    session.save()
    return session


def saved_key(**data: Any) -> str:
    """The key of a new anonymous session holding ``data``, saved."""
    key = make_session(**data).session_key
    assert key is not None
    return key


def name_of(session: SessionStore) -> str:
    assert session.session_key is not None
    return keys.session_name(keys.session_id(session.session_key))


def alive(session: SessionStore) -> bool:
    return SessionStore().exists(session.session_key)


def set_header_time(client: redis.Redis, name: str, offset: int, seconds_ago: int) -> None:
    """Rewrite a header time field (created: 2, saved: 6) as if written ``seconds_ago``, and
    sign the record again (the MAC covers the header), as only the key holder could."""
    blob = client.get(name)
    assert isinstance(blob, bytes)
    stamp = int(time.time() - seconds_ago).to_bytes(4, "big")
    head = blob[:offset] + stamp + blob[offset + 4 : codec.MAC_OFFSET]
    payload = blob[codec.HEADER_SIZE :]
    mac = codec._sign(django_settings.SECRET_KEY, name, head, payload)
    client.set(name, head + mac + payload, keepttl=True)


def signed_record(
    name: str, payload: bytes, flags: int = 0, secret: str | None = None, created: int = 1
) -> bytes:
    """A record for ``name`` with a valid MAC, whatever its payload: what only the key holder
    can make."""
    secret = django_settings.SECRET_KEY if secret is None else secret
    head = codec.HEADER.pack(codec.VERSION, flags, created, 1, 0, 0, bytes(codec.MAC_SIZE))
    head = head[: codec.MAC_OFFSET]
    return head + codec._sign(secret, name, head, payload) + payload
