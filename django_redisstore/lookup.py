"""Where a session lives in Redis, from its cookie value: ``django_redisstore.locate_session``.

Public (through ``django_redisstore``). Redis never holds the cookie value, only a keyed hash of
it: this names the hashed id and the Redis key, for tools, admin pages and demos, without
importing the private ``keys`` and ``clients`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import keys
from .clients import get_client
from .flows import Call, execute


@dataclass(frozen=True)
class SessionLocation:
    """A session's hashed id (``SessionInfo.id``) and the Redis key it is stored under."""

    id: str
    redis_key: str

    def ttl(self) -> int | None:
        """Whole seconds Redis keeps the session for (one ``PTTL``); None when it is gone or
        has no expiry."""
        (pttl,) = execute(get_client(), [Call.command("PTTL", self.redis_key)])
        return int(pttl) // 1000 if pttl >= 0 else None


def locate_session(session_key: str) -> SessionLocation:
    """The hashed id and Redis key of the session whose cookie value is ``session_key`` (under
    the current ``SECRET_KEY``). Touches Redis only when ``ttl()`` is asked."""
    sid = keys.session_id(session_key)
    return SessionLocation(sid, keys.session_name(sid))
