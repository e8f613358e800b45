"""The Django side of the benchmarks: one view, its URLconf, and the floor as a session engine.

``peers.py`` points ``ROOT_URLCONF`` here. The view is the smallest realistic session user: it
reads a counter and writes it back, so every engine does a read and a write per request.

``SessionStore`` below is the *floor* for the request workload: it does what no engine can beat,
one ``GET`` and one ``SET ... EX`` of bytes stored beforehand, with no decoding, no signing and no
serialization (``load`` hands back a copy of a dict prepared in advance). Comparing an engine's
request rate with this one's shows what the engine adds on top of Django's request handling and
two Redis round trips.
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.urls import path

#: Set by ``peers.py`` before the floor engine is used: a client, and per session key the
#: bytes to write back and the dict that ``load`` returns.
FLOOR: dict[str, Any] = {"client": None, "blobs": {}, "data": {}}


def visit(request: HttpRequest) -> HttpResponse:
    """Count a visit in the session: one read and one write of the session per request."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("", visit)]


class SessionStore(SessionBase):
    """The floor: a raw ``GET`` on load and a raw ``SET EX`` of the same bytes on save."""

    def _name(self) -> str:
        return f"floor:{self.session_key}"

    def load(self) -> dict[str, Any]:
        client: redis.Redis = FLOOR["client"]
        client.get(self._name())
        return dict(FLOOR["data"][self.session_key])

    def save(self, must_create: bool = False) -> None:
        client: redis.Redis = FLOOR["client"]
        client.set(self._name(), FLOOR["blobs"][self.session_key], ex=settings.SESSION_COOKIE_AGE)

    def exists(self, session_key: str | None) -> bool:
        return session_key in FLOOR["blobs"]

    def create(self) -> None:
        raise NotImplementedError("the floor only serves sessions prepared by peers.py")

    def delete(self, session_key: str | None = None) -> None:
        FLOOR["client"].delete(f"floor:{session_key or self.session_key}")

    @classmethod
    def clear_expired(cls) -> None:
        pass
