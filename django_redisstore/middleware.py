"""The middlewares: ``DeviceMiddleware`` and ``RedisUnavailableMiddleware``.

``DeviceMiddleware`` (after ``SessionMiddleware`` and ``AuthenticationMiddleware``) keeps a
device record in every session a request reads: see ``devices`` (``device_of`` and
``DEVICE_KEY`` are importable from here too).

``RedisUnavailableMiddleware`` is Django's session middleware, answering 503 while Redis is down.
Use it in ``MIDDLEWARE`` *in place of* ``django.contrib.sessions.middleware.SessionMiddleware``.
It has to be the session middleware itself, not a second entry: Django turns an exception raised
inside a middleware into a 500 response before the middleware around it sees it, and the session
is saved inside ``SessionMiddleware``. As the session middleware it sees every place where Redis
can fail: a view that reads the session (``process_exception``), a middleware after it that
reads the session before the view (the 500 Django makes of that error, which it logs, is
replaced), and the save after the view (``process_response``). The answer is a plain
``503 Service Unavailable`` with ``Retry-After``: the user tries again in a moment and is
still signed in, because neither the cookie nor the stored session was touched.
(``django_redisstore.unavailable.RedisUnavailableMiddleware`` is the same class, under its
first name.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers

from .conf import conf
from .devices import (
    DEVICE_KEY,
    Device,
    client_ip,
    describe_user_agent,
    device_of,
    record_device,
)
from .exceptions import ConnectionInterrupted

__all__ = [
    "DEVICE_KEY",
    "Device",
    "DeviceMiddleware",
    "RedisUnavailableMiddleware",
    "client_ip",
    "describe_user_agent",
    "device_of",
    "record_device",
]

logger = logging.getLogger("django_redisstore")

PAGE = "Service temporarily unavailable. Please try again in a few seconds.\n"


def unavailable_response(error: ConnectionInterrupted) -> HttpResponse:
    """The 503 answer to a request that Redis failed."""
    logger.warning("Answering 503: %s", error)
    response = HttpResponse(PAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(conf.RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response


#: The request attribute where ``_note_outage`` leaves the error that became a 500.
_OUTAGE = "_redisstore_outage"


def _note_outage(sender: object, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Note on ``request`` a ``ConnectionInterrupted`` that Django is turning into a 500.

    A middleware that reads the session before the view (``CsrfViewMiddleware`` with
    ``CSRF_USE_SESSIONS``, ``LoginRequiredMiddleware``, anything touching ``request.user``)
    raises outside the view, where no ``process_exception`` sees it: Django makes the 500
    right there (and logs it), and ``RedisUnavailableMiddleware`` answers 503 in its place.
    """
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, ConnectionInterrupted):
        setattr(request, _OUTAGE, error)


got_request_exception.connect(_note_outage, dispatch_uid="django_redisstore.middleware.outage")


class RedisUnavailableMiddleware(SessionMiddleware):
    """``SessionMiddleware`` that turns ``ConnectionInterrupted`` into an HTTP 503."""

    def __call__(self, request: HttpRequest) -> Any:
        try:
            return super().__call__(request)  # a coroutine in async mode: see __acall__
        except ConnectionInterrupted as e:  # Django's 500 page read the session too, and failed
            return unavailable_response(e)

    async def __acall__(self, request: HttpRequest) -> Any:
        try:
            return await super().__acall__(request)
        except ConnectionInterrupted as e:
            return unavailable_response(e)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ConnectionInterrupted):
            return unavailable_response(exception)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        outage = getattr(request, _OUTAGE, None)
        if outage is not None:  # a middleware inside this one failed to read the session
            return unavailable_response(outage)
        session = getattr(request, "session", None)
        if getattr(session, "degraded", False):
            # Served without its session ("anonymous"): nothing to save, and the cookie stays as
            # the browser has it. SESSION_SAVE_EVERY_REQUEST would have SessionMiddleware re-send
            # it with the default age, which is not the stored session's.
            patch_vary_headers(response, ("Cookie",))
            return response
        try:
            return super().process_response(request, response)
        except ConnectionInterrupted as e:
            return unavailable_response(e)


class DeviceMiddleware:
    """Keep a device record in every session a request reads (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        record_device(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)  # type: ignore[misc]
        record_device(request)
        return response  # type: ignore[no-any-return]
