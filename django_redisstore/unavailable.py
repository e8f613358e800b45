"""``RedisUnavailableMiddleware``: Django's session middleware, answering 503 while Redis is down.

Use it in ``MIDDLEWARE`` *in place of* ``django.contrib.sessions.middleware.SessionMiddleware``.
It has to be the session middleware itself, not a second entry: Django turns an exception raised
inside a middleware into a 500 response before the middleware around it sees it, and the session
is saved inside ``SessionMiddleware``. As the session middleware it sees both places where Redis
can fail: a view that reads the session (``process_exception``) and the save after the view
(``process_response``).

The answer is a plain ``503 Service Unavailable`` with ``Retry-After``: the user tries again in a
moment and is still signed in, because neither the cookie nor the stored session was touched.
"""

from __future__ import annotations

import logging

from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse

from .conf import conf
from .exceptions import ConnectionInterrupted

logger = logging.getLogger("django_redisstore")

PAGE = "Service temporarily unavailable. Please try again in a few seconds.\n"


def unavailable_response(error: ConnectionInterrupted) -> HttpResponse:
    """The 503 answer to a request that Redis failed."""
    logger.warning("Answering 503: %s", error)
    response = HttpResponse(PAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(conf.RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response


class RedisUnavailableMiddleware(SessionMiddleware):
    """``SessionMiddleware`` that turns ``ConnectionInterrupted`` into an HTTP 503."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ConnectionInterrupted):
            return unavailable_response(exception)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except ConnectionInterrupted as e:
            return unavailable_response(e)
