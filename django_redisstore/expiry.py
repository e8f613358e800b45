"""Expiry arithmetic without I/O: deadlines, capped ages, index scores, backoff.

Private: no stable API. Every function here is pure (the caller passes the clock's ``now``), so
the rules of ``REDISSTORE_IDLE_TIMEOUT``, ``REDISSTORE_ABSOLUTE_TIMEOUT`` and the per-user index
can be tested without Redis (``tests/test_expiry_rules.py``).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from django.utils import timezone as django_timezone

#: Conflicting saves merge and retry, after the first retry with a random pause (full jitter)
#: of up to ``unit * 2**n``: ``unit`` is how long the last attempt took (at least 0.5 ms), so
#: that a large session's writers, whose every attempt is slow, spread out as much as a small
#: one's. The pause is capped at 50 ms, or 16 attempts' time for slow attempts. Every refused
#: attempt means another request's save got through; this many in a row means something is
#: wrong. ``REDISSTORE_SAVE_DEADLINE`` and ``REDISSTORE_SAVE_BUDGET`` bound a save sooner.
SAVE_ATTEMPTS = 64
_BACKOFF_BASE = 0.0005
_BACKOFF_CAP = 0.05
_BACKOFF_CAP_ATTEMPTS = 16


def deadline(created: float, absolute_timeout: int | None) -> int | None:
    """The unix time a session created at ``created`` ends whatever its activity (None: never).

    Whole seconds, as the record's header stores ``created``: every request computes the same.
    """
    return None if absolute_timeout is None else math.floor(created) + absolute_timeout


def cap_age(age: int, now: float, end: int | None) -> int:
    """An expiry age in seconds, cut short so that it ends no later than ``end``."""
    return age if end is None else max(0, min(age, int(end - now)))


def cap_date(date: datetime, end: int | None) -> datetime:
    """An expiry date no later than ``end``, naive or aware as ``date`` is."""
    if end is None:
        return date
    if django_timezone.is_naive(date):  # USE_TZ = False: local time, as timezone.now()
        return min(date, datetime.fromtimestamp(end))
    return min(date, datetime.fromtimestamp(end, timezone.utc))


def cap_until(until: float, end: int | None) -> int:
    """``until`` (a TTL cap, 0 for none) no later than ``end``."""
    if end is None:
        return int(until)
    return end if not until else int(min(until, end))


def index_until(now: float, age: int, headroom: int) -> int:
    """The score of a per-user index entry: after it, the session is certainly gone."""
    return math.ceil(now + age + min(age, headroom))


def persistent(data: dict[str, Any], expire_at_browser_close: bool) -> bool:
    """Whether the session's cookie has an expiry (``get_expire_at_browser_close`` negated)."""
    expiry = data.get("_session_expiry")
    if expiry is None:
        return not expire_at_browser_close
    return bool(expiry != 0)


def slide_reaches_index(until: float, idle: int, now: float, end: int | None) -> bool:
    """Whether a read that slid the TTL to ``idle`` seconds passed the index entry's score
    (``until``), so both must be extended: once per headroom period, never past ``end``."""
    return until - now < idle and (end is None or until < end)


def backoff_limit(attempt: int, unit: float = _BACKOFF_BASE) -> float:
    """The longest pause (seconds) before conflicting save number ``attempt``, whose previous
    attempt took ``unit`` seconds (full jitter)."""
    unit = max(_BACKOFF_BASE, unit)
    return float(min(max(_BACKOFF_CAP, _BACKOFF_CAP_ATTEMPTS * unit), unit * 2**attempt))
