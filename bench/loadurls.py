"""testproject's pages, plus ``/async/``: the same visit counter as an async view.

``/`` is testproject's page (a sync view: under ASGI Django runs it in a thread). ``/async/``
reads and writes the session through the async API (``aget``/``aset``), so under uvicorn the
session is loaded on the event loop; Django's ``SessionMiddleware`` still saves it with the sync
API (it has no async ``process_response``).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


async def visit(request: HttpRequest) -> HttpResponse:
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)
    return HttpResponse(f"This session has seen {visits} visits", content_type="text/plain")


urlpatterns = [
    path("async/", visit),
    path("", include("testproject.urls")),
]
