"""django-redisstore: Django sessions in Redis.

Set ``SESSION_ENGINE = "django_redisstore.session"`` and ``REDISSTORE_URL``; see
docs/installation.rst.

The public API (anything else is private: its module docstring says so, and it may change):

* the engine: ``django_redisstore.session.SessionStore``;
* the middlewares: ``django_redisstore.middleware.DeviceMiddleware`` and
  ``django_redisstore.middleware.RedisUnavailableMiddleware`` (also importable as
  ``django_redisstore.unavailable.RedisUnavailableMiddleware``), with ``device_of`` and ``Device``
  for reading a session's device record;
* the views and forms: ``django_redisstore.views.RememberMeLoginView`` and ``RememberMeMixin``,
  ``django_redisstore.forms.RememberMeAuthenticationForm``;
* the per-user index, importable from here: ``user_sessions``, ``end_user_sessions`` and their
  async twins ``auser_sessions``, ``aend_user_sessions``, returning ``SessionInfo`` records;
* ``locate_session(cookie_value)``: a session's hashed id, Redis key and TTL;
* the exceptions: ``django_redisstore.exceptions`` (``RedisStoreError`` and its subclasses);
* the settings (``REDISSTORE_*``), the system check ids and ``manage.py sessions``.

Everything importable from here is loaded on first use, so that importing the package (as
``INSTALLED_APPS`` does) touches neither settings nor Redis. docs/architecture.rst maps the
modules.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .index import (
        SessionInfo,
        aend_user_sessions,
        auser_sessions,
        end_user_sessions,
        user_sessions,
    )
    from .lookup import SessionLocation, locate_session

#: Where each name of ``__all__`` lives.
_HOMES = {
    "SessionInfo": "index",
    "aend_user_sessions": "index",
    "auser_sessions": "index",
    "end_user_sessions": "index",
    "user_sessions": "index",
    "SessionLocation": "lookup",
    "locate_session": "lookup",
}

__all__ = [
    "SessionInfo",
    "SessionLocation",
    "aend_user_sessions",
    "auser_sessions",
    "end_user_sessions",
    "locate_session",
    "user_sessions",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
