"""Events: ``session_ended``, sent once for each session the package ends.

Receivers get these keyword arguments (``sender`` is the string ``"django_redisstore"``):

``user_id``
    The session's user, as ``_auth_user_id`` stores it (a string), or None for an anonymous
    session.
``session_id``
    The session's hashed id (``SessionInfo.id``, the last part of its Redis key): never the
    cookie value, so it is safe to log.
``reason``
    Why it ended, one of ``REASONS``:

    * ``"logout"``: ``logout()`` or ``flush()`` deleted it (sent by the engine);
    * ``"user"``: its user ended it from the sessions pages (or ``end_user_sessions``);
    * ``"admin"``: staff signed the user out from the Django admin;
    * ``"purge"``: ``manage.py sessions purge`` ended it;
    * ``"limit"``: a newer sign-in pushed it past ``REDISSTORE_MAX_SESSIONS_PER_USER``;
    * ``"timeout"``: it was found past its absolute deadline (sent by the engine).

The signal is sent after the deletion succeeded, and only for sessions that were there: a
session that had already expired or been deleted by someone else sends nothing. Everything in
the package that ends sessions calls ``ended`` (or ``aended`` from async code) once Redis's reply
confirmed the deletion; nothing else sends the signal. The engine's own endings do the same
through its flows (a ``flows.Announce`` step, which ``run`` sends with ``ended`` and ``arun``
with ``aended``): "logout" for a signed-in session that ``flush()`` or ``delete()`` removed (an
anonymous one sends nothing), "timeout" for any session found past its absolute deadline (its
``user_id`` None when anonymous), "limit" for each session a sign-in ended.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable
from typing import Any, Final

import django
from asgiref.sync import async_to_sync, sync_to_async
from django.dispatch import Signal

#: The sender of every ``session_ended`` signal.
SENDER: Final = "django_redisstore"

LOGOUT: Final = "logout"
USER: Final = "user"
ADMIN: Final = "admin"
PURGE: Final = "purge"
LIMIT: Final = "limit"
TIMEOUT: Final = "timeout"
#: Every reason the signal may carry.
REASONS: Final = frozenset({LOGOUT, USER, ADMIN, PURGE, LIMIT, TIMEOUT})

#: Sent once per ended session with ``user_id``, ``session_id`` and ``reason`` (module doc).
session_ended = Signal()

#: (user id or None, hashed session id) of each session that ended.
Ended = Iterable[tuple[str | None, str]]


def check(reason: str) -> None:
    """Refuse an unknown reason (before anything is deleted, when the caller can)."""
    if reason not in REASONS:
        raise ValueError(f"unknown session_ended reason {reason!r}: one of {sorted(REASONS)}")


def ended(sessions: Ended, reason: str) -> None:
    """Send ``session_ended`` for each of ``sessions``, which were just deleted.

    Call it only with sessions whose deletion Redis confirmed (the ``DEL``/``UNLINK`` reply,
    or a script's). A receiver's exception propagates, as with any Django signal.
    """
    check(reason)
    for user_id, session_id in sessions:
        replies = session_ended.send(SENDER, user_id=user_id, session_id=session_id, reason=reason)
        for _, reply in replies:
            if inspect.isawaitable(reply):  # an async receiver, on Django 4.2
                async_to_sync(_wait)(reply)


async def aended(sessions: Ended, reason: str) -> None:
    """The async twin of ``ended``: async receivers are awaited, sync ones run in a thread."""
    check(reason)
    for user_id, session_id in sessions:
        kwargs: dict[str, Any] = {"user_id": user_id, "session_id": session_id, "reason": reason}
        if django.VERSION >= (5, 0):
            await session_ended.asend(SENDER, **kwargs)
            continue
        # Django 4.2 has no Signal.asend: send in a thread, then await what async receivers gave.
        for _, reply in await sync_to_async(session_ended.send)(SENDER, **kwargs):
            if inspect.isawaitable(reply):
                await reply


async def _wait(reply: Awaitable[Any]) -> None:
    await reply
