"""The three-way merge that keeps parallel requests of one session from losing each other's work.

Private: no stable API.

A save is conditional on the record being the version the request read. When another request
wrote in between, the engine gets the newer record back, applies *its own* changes (what differs
between what it read and what it now holds) on top of it, and tries again. Keys changed by only
one side keep that side's value; a key changed by both takes the later save's value.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

#: Written together by ``login()``: a merge takes all three from one side, never a mix.
AUTH_KEYS = frozenset((SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY))

_MISSING = object()


def changed_keys(base: dict[str, Any], ours: dict[str, Any]) -> set[str]:
    """The keys whose presence or value differs between ``base`` and ``ours``."""
    changed = {
        key
        for key in base.keys() | ours.keys()
        if base.get(key, _MISSING) != ours.get(key, _MISSING)
    }
    if changed & AUTH_KEYS:
        changed |= AUTH_KEYS
    return changed


def merge(base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """``theirs`` with the changes that turned ``base`` into ``ours`` applied on top.

    ``base`` and ``ours`` must be compared in the same form: the engine passes both through the
    session serializer first, so that a tuple and the list it is stored as compare equal.
    """
    merged = dict(theirs)
    for key in changed_keys(base, ours):
        if key in ours:
            merged[key] = ours[key]
        else:
            merged.pop(key, None)
    return merged
