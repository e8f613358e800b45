"""Copy the live sessions of another session engine into this one (``sessions import``).

Private: no stable API.

Switching ``SESSION_ENGINE`` then signs nobody out: each session keeps its key (the cookie
value browsers hold), its data and the lifetime it had left, and signed-in ones are filed in
their user's index. Sources read as they stream (a database cursor in chunks, or ``SCAN``),
and sessions are written a few hundred per round trip with the engine's own create flow
(``SET NX``), so that a session already here is never overwritten: a second run changes
nothing.

Sources: Django's ``db`` and ``cached_db`` engines (read from the database, which ``cached_db``
writes through), Django's ``cache`` engine on a django-redis cache, and django-redis-sessions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.module_loading import import_string

from . import keys
from .clients import get_client
from .flows import Call, execute, run_all
from .keyspace import Progress, get_with_ttl, scan_batches, with_ttl

#: Sessions written per round trip.
BATCH = 500

#: A session read from another engine: its key, data, and seconds left (None: unknown, the
#: session's own expiry age then applies).
Source = Iterator[tuple[str, dict[str, Any], int | None]]

#: The engines ``--from`` accepts, by short name and by ``SESSION_ENGINE`` path.
ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cached_db": "django.contrib.sessions.backends.cached_db",
    "cache": "django.contrib.sessions.backends.cache",
    "redis_sessions": "redis_sessions.session",
}


class ImportSourceError(ValueError):
    """The source engine cannot be read (unknown, not installed, or configured unsupportedly)."""


@dataclass
class ImportResult:
    """How an import went: sessions copied (or that would be), already here, unreadable."""

    imported: int = 0
    present: int = 0
    skipped: int = 0


def engine_path(name: str) -> str:
    """The ``SESSION_ENGINE`` path for ``--from`` (a short name or the path itself)."""
    path = ENGINES.get(name, name)
    if path not in ENGINES.values():
        choices = ", ".join(ENGINES)
        raise ImportSourceError(
            f"cannot import from {name!r}: choose one of {choices} (or their engine paths)"
        )
    return path


def _signed_decoder(engine: str) -> Callable[[str], dict[str, Any]]:
    """Decode the signed strings that ``engine``'s ``SessionBase.encode`` wrote; raise
    ``signing.BadSignature`` (or a serializer error) for anything else."""
    try:
        store_class = import_module(engine).SessionStore
    except ImportError as e:
        raise ImportSourceError(f"cannot import the engine {engine!r}: {e}") from e
    salt = "django.contrib.sessions." + store_class.__qualname__  # SessionBase.key_salt
    serializer = import_string(settings.SESSION_SERIALIZER)

    def decode(text: str) -> dict[str, Any]:
        data = signing.loads(text, salt=salt, serializer=serializer)
        if not isinstance(data, dict):
            raise ValueError("not a session")
        return data

    return decode


def _from_database(engine: str, progress: Progress | None, result: ImportResult) -> Source:
    store_class = import_module(engine).SessionStore
    decode = _signed_decoder(engine)
    try:
        model = store_class.get_model_class()
    except Exception as e:  # django.contrib.sessions not installed, or a custom model missing
        raise ImportSourceError(f"cannot read the sessions table of {engine!r}: {e}") from e
    now = timezone.now()
    rows = model.objects.filter(expire_date__gt=now)
    total = rows.count()
    for done, row in enumerate(rows.iterator(chunk_size=2000), 1):
        try:
            data = decode(row.session_data)
        except Exception:
            result.skipped += 1
            continue
        yield row.session_key, data, math.ceil((row.expire_date - now).total_seconds())
        if progress is not None and done % BATCH == 0:
            progress(done / max(total, 1), done)


def _from_redis(
    client: Any,
    pattern: str,
    key_of: Callable[[str], str | None],
    decode: Callable[[bytes], dict[str, Any]],
    progress: Progress | None,
    result: ImportResult,
) -> Source:
    """Sessions in the Redis of another engine: ``SCAN`` then ``GET`` + ``PTTL`` per step."""
    seen = 0
    for _, names, done in scan_batches(client, pattern):
        seen += len(names)
        wanted = [(name, key_of(name.decode())) for name in names]
        wanted = [(name, key) for name, key in wanted if key is not None]
        if wanted:
            replies = execute(client, get_with_ttl([name for name, _ in wanted]))
            for (_, key), found in zip(wanted, with_ttl(replies), strict=True):
                if found is None:
                    continue
                value, pttl = found
                try:
                    data = decode(value)
                except Exception:
                    result.skipped += 1
                    continue
                assert key is not None
                yield key, data, (math.ceil(pttl / 1000) if pttl > 0 else None)
        if progress is not None:
            progress(done, seen)


def _from_cache(alias: str, progress: Progress | None, result: ImportResult) -> Source:
    from django.contrib.sessions.backends.cache import KEY_PREFIX
    from django.core.cache import caches

    try:
        cache = caches[alias]
    except Exception as e:
        raise ImportSourceError(f"there is no cache {alias!r}: {e}") from e
    backend: Any = getattr(cache, "client", None)  # django-redis's client, which builds keys
    client_of = getattr(backend, "get_client", None)
    if client_of is None:
        raise ImportSourceError(
            f"the cache {alias!r} is not a django-redis cache "
            "(BACKEND django_redis.cache.RedisCache): only that one can be scanned"
        )
    made = str(backend.make_key(KEY_PREFIX))  # the default key function ends with the key
    pattern = str(backend.make_pattern(KEY_PREFIX + "*"))

    def key_of(name: str) -> str | None:
        return name[len(made) :] if name.startswith(made) else None

    def decode(value: bytes) -> dict[str, Any]:
        data = backend.decode(value)
        if not isinstance(data, dict):
            raise ValueError("not a session")
        return data

    return _from_redis(client_of(write=False), pattern, key_of, decode, progress, result)


def _from_redis_sessions(progress: Progress | None, result: ImportResult) -> Source:
    decode_signed = _signed_decoder(ENGINES["redis_sessions"])
    from redis_sessions import settings as rs_settings
    from redis_sessions.session import RedisServer

    if rs_settings.SESSION_REDIS_POOL is not None:
        raise ImportSourceError(
            "django-redis-sessions with SESSION_REDIS['POOL'] (sessions sharded over several "
            "servers) is not supported: import from each server with a single-server setting"
        )
    client = RedisServer("").get()
    prefix = rs_settings.SESSION_REDIS_PREFIX
    start = len(prefix) + 1 if prefix else 0
    pattern = f"{keys.glob_escape(prefix)}:*" if prefix else "*"

    def key_of(name: str) -> str | None:
        key = name[start:]
        return key if keys.is_valid_session_key(key) else None

    def decode(value: bytes) -> dict[str, Any]:
        return decode_signed(value.decode())

    return _from_redis(client, pattern, key_of, decode, progress, result)


def _source(
    engine: str, cache_alias: str | None, progress: Progress | None, result: ImportResult
) -> Source:
    if engine in (ENGINES["db"], ENGINES["cached_db"]):
        return _from_database(engine, progress, result)
    if engine == ENGINES["cache"]:
        alias = cache_alias or settings.SESSION_CACHE_ALIAS
        return _from_cache(alias, progress, result)
    return _from_redis_sessions(progress, result)


def import_sessions(
    name: str,
    *,
    dry_run: bool,
    cache_alias: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Copy every live session of the engine ``name`` into this one (see the module docstring).

    Idempotent: a session whose key already lives here is counted as ``present`` and left as it
    is. With ``dry_run``, nothing is written and ``imported`` counts what would be.
    """
    engine = engine_path(name)
    result = ImportResult()
    batch: list[tuple[str, dict[str, Any], int | None]] = []
    for key, data, lifetime in _source(engine, cache_alias, progress, result):
        if not keys.is_valid_session_key(key) or (lifetime is not None and lifetime <= 0):
            result.skipped += 1
            continue
        batch.append((key, data, lifetime))
        if len(batch) >= BATCH:
            _write(batch, dry_run, result)
            batch = []
    if batch:
        _write(batch, dry_run, result)
    return result


def _write(
    batch: list[tuple[str, dict[str, Any], int | None]], dry_run: bool, result: ImportResult
) -> None:
    if dry_run:
        names = [keys.session_name(keys.session_id(key)) for key, _, _ in batch]
        found = execute(get_client(), [Call.command("EXISTS", name) for name in names])
        result.present += sum(found)
        result.imported += len(batch) - sum(found)
        return
    from .session import SessionStore

    flows = [SessionStore(key)._import_flow(data, lifetime) for key, data, lifetime in batch]
    written = run_all(flows)
    result.imported += sum(written)
    result.present += len(written) - sum(written)
