"""At most N sessions per user: where a sign-in meets ``REDISSTORE_MAX_SESSIONS_PER_USER``.

Private: no stable API (the settings and ``exceptions.TooManySessions`` are the public part).

The limit itself is kept by the engine: the save that first files a session under its user
counts it in the index script, atomically (``scripts.INDEX_ADD``). Django's ``login()`` leaves
that save to ``SessionMiddleware``, after the view; so that ``login()`` itself fails when the
``refuse`` policy turns the sign-in down, this module saves the session from ``user_logged_in``
(the last thing ``login()`` and ``alogin()`` do; ``session`` connects the receiver), only
while a limit is set. The middleware's save after the view then writes nothing unless the view
changed the session again.
``RememberMeMixin`` defers that save until it has set the session's expiry (one write for both)
and turns the refusal into a form error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest

from .conf import get as snapshot
from .exceptions import TooManySessions

#: Set on a request whose sign-in saves its session itself (``deferred``).
_DEFERRED = "_redisstore_deferred_sign_in"


def save_sign_in(request: HttpRequest) -> None:
    """Save a session just signed in to, so that the limit decides now.

    Raises ``TooManySessions`` (the request is then anonymous again); does nothing without a
    limit, or when the session is not this engine's.
    """
    from .session import SessionStore

    session = getattr(request, "session", None)
    if snapshot().MAX_SESSIONS_PER_USER is None or not isinstance(session, SessionStore):
        return
    try:
        session.save()
    except TooManySessions:
        from django.contrib.auth.models import AnonymousUser  # models: only once apps are ready

        if hasattr(request, "user"):
            request.user = AnonymousUser()
        raise
    # The record is as the request holds it: the middleware's save has nothing to send unless
    # the view changes the session again.
    session._fresh = True


def on_sign_in(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: see the module docstring."""
    if request is not None and not getattr(request, _DEFERRED, False):
        save_sign_in(request)


@contextmanager
def deferred(request: HttpRequest) -> Iterator[None]:
    """Within the block, ``login()`` leaves the save (and the limit's verdict) to the caller,
    who calls ``save_sign_in(request)`` afterwards."""
    setattr(request, _DEFERRED, True)
    try:
        yield
    finally:
        delattr(request, _DEFERRED)
