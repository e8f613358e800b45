"""The demo's pages: this session, and sign-in with "Remember me" (the package serves "Your
sessions": ``django_redisstore.urls``)."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_redisstore import locate_session
from django_redisstore.middleware import DEVICE_KEY, device_of
from django_redisstore.views import RememberMeLoginView

#: Session keys whose values the page never shows.
_SECRET = re.compile(r"hash|secret|token|password|csrf", re.IGNORECASE)


def _redacted(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (key, "•••••• (redacted)" if _SECRET.search(key) else value) for key, value in data.items()
    ]


class LoginView(RememberMeLoginView):
    """The ready view, plus the remembered lifetime for the template's hint."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["remember_me_days"] = self.get_remember_me_age() // 86400
        return context


def home(request: HttpRequest) -> HttpResponse:
    """The current session as the engine keeps it: hashed id, TTL, expiry, data."""
    session = request.session
    data = dict(session.items())  # reads the session (one round trip)
    key = session.session_key
    where = locate_session(key) if key else None
    context = {
        "session_id": where.id if where else None,
        "redis_key": where.redis_key if where else None,
        "ttl": where.ttl() if where else None,
        "expiry_date": session.get_expiry_date() if where else None,
        "browser_close": session.get_expire_at_browser_close(),
        "data": _redacted({k: v for k, v in data.items() if k != DEVICE_KEY}),
        "device": device_of(data),
    }
    return render(request, "testproject/home.html", context)
