"""Views that exercise the session through Django's real middleware stack."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path


def read(request: HttpRequest) -> HttpResponse:
    return JsonResponse(dict(request.session.items()))


def write(request: HttpRequest) -> HttpResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    return JsonResponse(dict(request.session.items()))


def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("bye")


urlpatterns = [
    path("read/", read),
    path("write/", write),
    path("untouched/", untouched),
    path("logout/", logout),
]
