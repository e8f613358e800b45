"""django-redisstore: Django sessions in Redis.

Set ``SESSION_ENGINE = "django_redisstore.session"`` and ``REDISSTORE_URL``; see README.rst.

The per-user index API (``user_sessions``, ``end_user_sessions`` and their async twins
``auser_sessions``, ``aend_user_sessions``) is importable from here; it is loaded on first use,
so that importing the package (as ``INSTALLED_APPS`` does) touches neither settings nor Redis.
"""

from __future__ import annotations

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

__all__ = [
    "SessionInfo",
    "aend_user_sessions",
    "auser_sessions",
    "end_user_sessions",
    "user_sessions",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import index

        return getattr(index, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
