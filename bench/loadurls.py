"""The load test's own views: a visit counter, sync (``/``) and async (``/async/``).

Each view adds one to the session key ``visits_<tab>`` (``?tab=N``, default 0) and answers
``seen N visits``: one read and one write of the session per request. ``loadtest.py`` checks that
every visitor's counter equals the requests it made. A visitor with two tabs (two connections,
one session, requests in parallel) counts in one key per tab: two requests that change
*different* keys of one session must both be kept, which an engine that writes the whole
session back loses. ``/peek/`` shows every counter without changing anything.

The sync view runs in a thread under ASGI; the async one reads and writes through
``aget``/``aset`` on the event loop (Django's ``SessionMiddleware`` still saves with the sync
API: it has no async ``process_response``).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def _key(request: HttpRequest) -> str:
    return f"visits_{int(request.GET.get('tab', 0))}"


def _seen(visits: int) -> HttpResponse:
    return HttpResponse(f"seen {visits} visits", content_type="text/plain")


def count(request: HttpRequest) -> HttpResponse:
    key = _key(request)
    visits = request.session.get(key, 0) + 1
    request.session[key] = visits
    return _seen(visits)


async def acount(request: HttpRequest) -> HttpResponse:
    key = _key(request)
    visits = await request.session.aget(key, 0) + 1
    await request.session.aset(key, visits)
    return _seen(visits)


def peek(request: HttpRequest) -> HttpResponse:
    counters = {k: v for k, v in request.session.items() if k.startswith("visits_")}
    text = " ".join(f"{k}={v}" for k, v in sorted(counters.items()))
    return HttpResponse(text, content_type="text/plain")


urlpatterns = [
    path("", count),
    path("async/", acount),
    path("peek/", peek),
]
