"""The demo's pages: this session, sign-in with "Remember me", and "Your sessions"."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from django_redisstore import end_user_sessions, locate_session, user_sessions
from django_redisstore.middleware import DEVICE_KEY, device_of
from django_redisstore.views import RememberMeLoginView

#: Session keys whose values the page never shows.
_SECRET = re.compile(r"hash|secret|token|password|csrf", re.IGNORECASE)


def _redacted(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (key, "•••••• (redacted)" if _SECRET.search(key) else value) for key, value in data.items()
    ]


def _ago(moment: datetime) -> str:
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"


def _current_id(request: HttpRequest) -> str | None:
    key = request.session.session_key
    return locate_session(key).id if key else None


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


@login_required
def sessions(request: HttpRequest) -> HttpResponse:
    """The signed-in user's sessions, this one marked, each with its device record."""
    current = _current_id(request)
    rows = []
    for record in user_sessions(request.user):
        device = record.device
        rows.append(
            {
                "record": record,
                "device": device,
                "seen": _ago(device.last_seen) if device and device.last_seen else "—",
                "current": record.id == current,
            }
        )
    rows.sort(key=lambda row: not row["current"])
    return render(request, "testproject/sessions.html", {"rows": rows})


@login_required
@require_POST
def end_others(request: HttpRequest) -> HttpResponse:
    """ "Sign out other sessions": everything of this user but the session making the request."""
    ended = end_user_sessions(request.user, keep=request.session.session_key)
    messages.success(request, f"Signed out {ended} other session{'s' if ended != 1 else ''}.")
    return redirect("sessions")


@login_required
@require_POST
def end_one(request: HttpRequest, session_id: str) -> HttpResponse:
    """Sign out one of the user's sessions, named by its hashed id (never by its cookie)."""
    if session_id == _current_id(request):
        logout(request)
        return redirect("login")
    if not end_user_sessions(request.user, ids={session_id}):
        raise Http404("No such session of yours.")
    messages.success(request, "Signed out that session.")
    return redirect("sessions")
