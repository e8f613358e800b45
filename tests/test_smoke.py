from __future__ import annotations

from django_redisstore.session import SessionStore


def test_save_and_load_round_trip() -> None:
    session = SessionStore()
    session["answer"] = 42
    session.save()
    assert SessionStore(session.session_key)["answer"] == 42
