"""STAND-IN: replaced by django_redisstore.user_sessions once merged.

A minimal private version of the per-user index API (issue 3), so that the demo's "Your
sessions" page works before that branch lands. It follows the settled layout (ZRANGE of
``<prefix>:u:<user id>``, GET of each ``<prefix>:s:<id>``, ``codec.unpack``) and the signatures
``user_sessions(user)`` and ``end_user_sessions(user, keep=None)``. testproject/views.py imports
the real functions when ``django_redisstore`` has them; delete this file once it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from django_redisstore import codec, keys
from django_redisstore.connection import execute, get_client
from django_redisstore.scripts import Call


@dataclass(frozen=True)
class SessionRecord:
    id: str
    created: datetime
    saved: datetime
    size: int
    expires_at: datetime
    ttl: int
    data: dict[str, Any] = field(repr=False)


def _user_id(user: Any) -> str:
    return str(getattr(user, "pk", user))


def user_sessions(user: Any) -> list[SessionRecord]:
    uid = _user_id(user)
    client = get_client()
    index = keys.user_index_name(uid)
    (members,) = execute(client, [Call.command("ZRANGE", index, 0, -1)])
    ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
    if not ids:
        return []
    calls = []
    for sid in ids:
        calls += [
            Call.command("GET", keys.session_name(sid)),
            Call.command("PTTL", keys.session_name(sid)),
        ]
    replies = execute(client, calls)
    serializer = SessionBase().serializer()
    now = datetime.now(timezone.utc)
    found, gone = [], []
    for i, sid in enumerate(ids):
        blob, pttl = replies[2 * i], replies[2 * i + 1]
        try:
            record = codec.unpack(keys.session_name(sid), blob, settings.SECRET_KEY)
            data = serializer.loads(record.payload)
        except Exception:
            record = None
        if blob is None or record is None or pttl < 0 or str(data.get("_auth_user_id")) != uid:
            gone.append(sid)
            continue
        found.append(
            SessionRecord(
                id=sid,
                created=datetime.fromtimestamp(record.created, timezone.utc),
                saved=datetime.fromtimestamp(record.saved, timezone.utc),
                size=record.size,
                expires_at=now + timedelta(milliseconds=pttl),
                ttl=pttl // 1000,
                data=data,
            )
        )
    if gone:
        execute(client, [Call.command("ZREM", index, *gone)])
    return sorted(found, key=lambda r: r.saved, reverse=True)


def end_user_sessions(user: Any, keep: str | None = None) -> int:
    uid = _user_id(user)
    kept = keys.session_id(keep) if keep else None
    ended = [r.id for r in user_sessions(uid) if r.id != kept]
    if not ended:
        return 0
    client = get_client()
    calls = [Call.command("DEL", keys.session_name(sid)) for sid in ended]
    replies = execute(client, [*calls, Call.command("ZREM", keys.user_index_name(uid), *ended)])
    return sum(1 for reply in replies[:-1] if reply)
