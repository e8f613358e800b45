"""Names of the Redis keys this package writes, and the secrets they are derived from.

Private: no stable API.

Two kinds of key, each touched by single-key commands only, so no command ever spans two hash
slots on Redis Cluster, and no key name carries a hash tag (``{...}``):

``<prefix>:s:<id>``
    One session: a string (see ``codec``). ``<id>`` is a keyed hash of the session key (the cookie
    value), so a Redis dump, a replica or ``MONITOR`` output hands out no usable cookie. Each
    session hashes to its own slot: sessions spread evenly over the primaries of a cluster, and a
    resharding moves them one by one (a request meets at most a redirection, which redis-py
    follows). Nothing ever needs a session together with another key atomically: its whole state
    is this one string, changed by one script (``scripts.SAVE``) or one ``SET``.
``<prefix>:u:<user id>``
    The per-user index: a sorted set of session ids, scored by a time after which the session is
    certainly gone. It lives in its own slot, apart from the sessions it lists, on purpose: a hash
    tag putting a user's sessions and index in one slot would pile a busy user onto one primary,
    and would buy nothing, since the index may be stale anyway (readers validate each entry). The
    engine keeps it with separate single-key commands, sent in the same non-transactional
    pipeline as the session's own (redis-py's ``ClusterPipeline`` sends each primary its share).

Why not a hash tag in ``REDISSTORE_KEY_PREFIX``: ``{app}:s:...`` would hash every key of the site
by ``app``, one slot on one primary (check ``django_redisstore.W030`` says so). Scans (``sessions
inspect``/``purge``) visit every primary in turn: ``keyspace.scan_batches``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets as _random
from functools import lru_cache

from django.contrib.sessions.backends.base import VALID_KEY_CHARS

from .conf import conf
from .conf import get as get_settings

#: Django's session keys are 32 characters of ``[a-z0-9]``; allow some room for other generators.
_VALID_SESSION_KEY = re.compile(r"[a-z0-9]{8,64}")

_NAME_SALT = "django_redisstore.keys.session-name"
_MAC_SALT = "django_redisstore.codec.mac"


@lru_cache(maxsize=16)
def _derive(salt: str, secret: str) -> bytes:
    # Django's salted_hmac derivation (a SHA-256 of salt and secret), cached per secret: it is the
    # same for every request and would otherwise cost a hash on each.
    return hashlib.sha256((salt + secret).encode()).digest()


def secrets() -> tuple[str, ...]:
    """``SECRET_KEY`` first, then ``SECRET_KEY_FALLBACKS`` (rotation keeps sessions readable)."""
    return get_settings().secrets


def mac_key(secret: str) -> bytes:
    """The key that signs stored sessions for ``secret``."""
    return _derive(_MAC_SALT, secret)


#: HMAC's two pads (RFC 2104) as byte translations: ``key.translate(_IPAD)`` is ``key`` XOR 0x36.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_SHA256_BLOCK = 64


@lru_cache(maxsize=16)
def _pads(salt: str, secret: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    # SHA-256 states that have hashed the inner and the outer padded key, never fed again.
    block = _derive(salt, secret).ljust(_SHA256_BLOCK, b"\0")  # 32 bytes: used as it is
    return hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD))


def _hmac_sha256(salt: str, secret: str, message: bytes) -> bytes:
    """``hmac.digest(_derive(salt, secret), message, "sha256")``, from copies of the two states
    that ``_pads`` keyed once: the ``hmac`` module's object pays a Python wrapper around
    OpenSSL's HMAC context on every call (copy, update, digest), about half of the cost for the
    few hundred bytes of a session (tests/test_fast_paths.py checks the digests are the same)."""
    inner, outer = _pads(salt, secret)
    inner = inner.copy()
    inner.update(message)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()


def sign(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` keyed with ``mac_key(secret)``: what signs a stored session."""
    return _hmac_sha256(_MAC_SALT, secret, message)


_NEW_KEY_LENGTH = 32
_NEW_KEY_SPACE = len(VALID_KEY_CHARS) ** _NEW_KEY_LENGTH


def new_session_key() -> str:
    """A fresh session key: 32 characters of Django's ``[a-z0-9]``, uniformly random (165 bits).

    Django's ``get_random_string`` draws each character with a call of its own to the system's
    random source (32 system calls, about 35 us). One draw below 36**32, written in base 36,
    gives every key the same probability as before, in about 3 us.
    """
    value = _random.randbelow(_NEW_KEY_SPACE)
    chars = []
    for _ in range(_NEW_KEY_LENGTH):
        value, digit = divmod(value, len(VALID_KEY_CHARS))
        chars.append(VALID_KEY_CHARS[digit])
    return "".join(chars)


def is_valid_session_key(session_key: str | None) -> bool:
    """True when ``session_key`` can name a session: anything else is not looked up at all."""
    return session_key is not None and _VALID_SESSION_KEY.fullmatch(session_key) is not None


def session_id(session_key: str, secret: str | None = None) -> str:
    """The hashed id under which the session with the cookie value ``session_key`` is kept."""
    secret = get_settings().secret_key if secret is None else secret
    digest = _hmac_sha256(_NAME_SALT, secret, session_key.encode())[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_name(session_id: str) -> str:
    """The Redis key of a session, from its hashed id."""
    return get_settings().session_prefix + session_id


def session_pattern() -> str:
    """A ``SCAN MATCH`` pattern for every session of this prefix."""
    return f"{glob_escape(conf.KEY_PREFIX)}:s:*"


def user_index_name(user_id: str) -> str:
    """The Redis key of the per-user index of ``user_id``."""
    return f"{conf.KEY_PREFIX}:u:{user_id}"


def user_index_pattern() -> str:
    """A ``SCAN MATCH`` pattern for every per-user index of this prefix."""
    return f"{glob_escape(conf.KEY_PREFIX)}:u:*"


def glob_escape(text: str) -> str:
    """``text`` with the glob characters of a ``SCAN MATCH`` pattern escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def engine_pattern() -> str:
    """A ``SCAN MATCH`` pattern for every key of this prefix: sessions and user indexes."""
    return f"{glob_escape(conf.KEY_PREFIX)}:[su]:*"
