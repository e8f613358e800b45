"""The exceptions of django-redisstore."""

from __future__ import annotations


class RedisStoreError(Exception):
    """Base class: Redis did not do what the session engine asked of it."""


class ConnectionInterrupted(RedisStoreError):
    """Redis could not be reached, did not answer in time, or cannot take the command now (out
    of memory under ``noeviction``, a read-only replica, a cluster that is down).

    The message names the Redis address (never its password). The session is neither read as
    empty nor deleted: the request fails instead of silently signing its user out.
    """


class SessionTooLarge(RedisStoreError):
    """A save was refused because the serialized session is over ``REDISSTORE_MAX_SIZE``.

    Raised before anything is sent to Redis: the stored session keeps its previous data.
    """


class SaveConflict(RedisStoreError):
    """A save gave up: it kept meeting newer saves of the same session (each time merging and
    retrying) past its bounds, ``REDISSTORE_SAVE_DEADLINE`` seconds or
    ``REDISSTORE_SAVE_BUDGET`` bytes through Redis (or 64 conflicting writes in a row).

    Nothing of this save was written: the session keeps what the other requests saved. Logged
    to the ``django_redisstore`` logger before it is raised.
    """


class WrongType(RedisStoreError):
    """Redis refused a command because the key holds another type than the command works on
    (``WRONGTYPE``): something other than this engine wrote under one of its keys."""


class TooManySessions(RedisStoreError):
    """A sign-in was refused: its user has ``REDISSTORE_MAX_SESSIONS_PER_USER`` live sessions
    already and ``REDISSTORE_MAX_SESSIONS_POLICY`` is ``"refuse"``.

    Raised by ``login()`` (and ``alogin()``), or by the save that first files a session under its
    user. Decided atomically with the write to the user's index, so parallel sign-ins cannot
    exceed the limit. The session is left anonymous: the record written for the sign-in is
    deleted again, the user's keys are removed from the session data, and the next save stores
    what remains under a new key. ``RememberMeLoginView`` shows it as a form error.
    """
