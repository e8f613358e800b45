"""System checks: misconfiguration is reported by ``manage.py check`` before the first request.

Private: no stable API.

Ids are stable: ``django_redisstore.E001``... for errors, ``...W001``... for warnings.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url
from redis.exceptions import ResponseError

from .clients import (
    REDIS_ERRORS,
    TLS_OPTIONS,
    describe,
    get_client,
    parse_address,
    topology,
)
from .conf import raw, read
from .exceptions import RedisStoreError

ENGINE = "django_redisstore.session"
_REDIS_CACHE_BACKENDS = (
    "django_redis.cache.RedisCache",
    "django.core.cache.backends.redis.RedisCache",
)

_DB_PATH = re.compile(r"(/[0-9]*/?)?")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def _engine_in_use() -> bool:
    return getattr(settings, "SESSION_ENGINE", "") == ENGINE


def _database(url: str) -> tuple[Any, ...] | None:
    """(host, port, db) or (path, db) of a Redis URL; None when it does not parse."""
    try:
        kwargs = parse_url(url)
    except ValueError:
        return None
    db = int(kwargs.get("db", 0) or 0)
    if "path" in kwargs:
        return (kwargs["path"], db)
    # redis-py ignores a database that is not a number ("/sessions") and connects to db 0.
    if not _DB_PATH.fullmatch(urlsplit(url).path):
        return None
    return (kwargs.get("host", "localhost"), int(kwargs.get("port", 6379) or 6379), db)


def _locations(cache: dict[str, Any]) -> list[str]:
    location = cache.get("LOCATION", [])
    if isinstance(location, str):
        location = location.split(",")
    if not isinstance(location, (list, tuple)):
        return []  # nothing this check understands: Django's own checks cover the cache
    return [loc.strip() for loc in location if loc.strip()]


def check_connection(**kwargs: Any) -> list[CheckMessage]:
    if not _engine_in_use():
        return []
    url, alias = read("URL"), read("CACHE_ALIAS")
    caches: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {})
    if raw("SENTINELS") or raw("CLUSTER_NODES"):
        return []  # check_topology's business
    if not url and not alias:
        return [
            Error(
                "The Redis session engine has no connection configured.",
                hint="Set REDISSTORE_URL (for example 'redis://127.0.0.1:6379/1'), "
                "REDISSTORE_CACHE_ALIAS (the alias of a django-redis cache), "
                "REDISSTORE_SENTINELS or REDISSTORE_CLUSTER_NODES.",
                id="django_redisstore.E001",
            )
        ]
    if url and alias:
        return [
            Error(
                "REDISSTORE_URL and REDISSTORE_CACHE_ALIAS are both set.",
                hint="Set only one of them: the engine would not know which Redis to use.",
                id="django_redisstore.E004",
            )
        ]
    error = _alias_error(alias, caches) if alias else _url_error(url)
    if error is not None:
        return [error]
    return _shared_databases(_locations(caches[alias]) if alias else [url], caches, alias)


def _alias_error(alias: Any, caches: dict[str, dict[str, Any]]) -> CheckMessage | None:
    """E002 when ``REDISSTORE_CACHE_ALIAS`` names no django-redis cache."""
    backend = caches.get(alias, {}).get("BACKEND") if isinstance(alias, str) else None
    if backend == "django_redis.cache.RedisCache":
        return None
    known = isinstance(alias, str) and alias in caches
    found = f"its BACKEND is {backend!r}" if known else "no such cache"
    return Error(
        f"REDISSTORE_CACHE_ALIAS {alias!r} is not a django-redis cache ({found}).",
        hint="Name a cache in CACHES whose BACKEND is "
        "'django_redis.cache.RedisCache', or set REDISSTORE_URL instead.",
        id="django_redisstore.E002",
    )


def _url_error(url: Any) -> CheckMessage | None:
    """E003 when ``REDISSTORE_URL`` is not a Redis URL (named without its password)."""
    if isinstance(url, str) and _database(url) is not None:
        return None
    # Not even a string: its repr could hold a password, so only its type is named.
    shown = repr(_without_password(url)) if isinstance(url, str) else type(url).__name__
    return Error(
        f"REDISSTORE_URL {shown} is not a valid Redis URL.",
        hint="Use redis://[[user]:password@]host[:port][/db], rediss://... for TLS, "
        "or unix:///path/to/redis.sock[?db=N].",
        id="django_redisstore.E003",
    )


def _shared_databases(
    urls: list[str], caches: dict[str, dict[str, Any]], alias: str | None
) -> list[CheckMessage]:
    """W001 for each Redis cache that shares a database with the sessions; W003 for the cache
    that ``REDISSTORE_CACHE_ALIAS`` names (shared on purpose)."""
    ours = {_database(u) for u in urls} - {None}
    messages: list[CheckMessage] = []
    if alias:
        # Chosen, not accidental: its own id, so that silencing it keeps W001 for the others.
        messages.append(
            Warning(
                f"Sessions live in the database of the cache {alias!r} (REDISSTORE_CACHE_ALIAS): "
                "that cache's clear() empties the database and signs every user out.",
                hint="Make sure nothing clears that cache (deploy scripts often do), or give "
                "the sessions a database of their own with REDISSTORE_URL. Silence "
                "django_redisstore.W003 once you have.",
                id="django_redisstore.W003",
            )
        )
    return messages + [
        Warning(
            f"Sessions share a Redis database with the cache {name!r}: "
            "cache.clear() there would sign every user out.",
            hint="Give the sessions a Redis database of their own (REDISSTORE_URL ending in "
            "another /db number), or silence django_redisstore.W001 if nothing ever clears "
            "that cache.",
            id="django_redisstore.W001",
        )
        for name, cache in caches.items()
        if name != alias
        and cache.get("BACKEND") in _REDIS_CACHE_BACKENDS
        and ours & {_database(u) for u in _locations(cache)}
    ]


def check_url_password(**kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: a password in ``REDISSTORE_URL`` shows in Django's error reports."""
    url = raw("URL")
    if not _engine_in_use() or not isinstance(url, str):
        return []
    try:
        password = parse_url(url).get("password")
    except ValueError:
        return []  # check_connection reports a URL that does not parse
    if not password:
        return []
    return [
        Warning(
            "REDISSTORE_URL holds the Redis password: Django's error reports (the debug page, "
            "the error mails to ADMINS) show that setting as it is, since they hide only "
            "settings whose names look secret.",
            hint="Move it to REDISSTORE_CONNECTION_OPTIONS = {'password': ...} (with "
            "'username' for an ACL user), which the reports mask, and drop it from the URL: "
            "redis://host:port/db.",
            id="django_redisstore.W002",
        )
    ]


def _without_password(url: str) -> str:
    # redis-py also takes the password as a query argument (``?password=...``).
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


def _addresses(setting: str, value: Any) -> list[CheckMessage]:
    """E032 for a topology list that is empty, not a list, or holds an unusable address."""
    problem = None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        problem = "is not a non-empty list of addresses"
    else:
        for address in value:
            try:
                parse_address(address)
            except (TypeError, ValueError):
                problem = f"holds {address!r}, which is neither 'host:port' nor (host, port)"
                break
    if problem is None:
        return []
    return [
        Error(
            f"REDISSTORE_{setting} {problem}.",
            hint=f"For example REDISSTORE_{setting} = ['10.0.0.1:{_EXAMPLE_PORT[setting]}', "
            f"'10.0.0.2:{_EXAMPLE_PORT[setting]}'].",
            id="django_redisstore.E032",
        )
    ]


_EXAMPLE_PORT = {"SENTINELS": 26379, "CLUSTER_NODES": 6379}


def check_topology(**kwargs: Any) -> list[CheckMessage]:
    """Sentinel, Cluster, TLS and WAIT settings, alone and in combination (E030-E036, W030)."""
    if not _engine_in_use():
        return []
    sentinels = raw("SENTINELS")
    nodes = raw("CLUSTER_NODES")
    errors = _mixed_topologies(sentinels, nodes)
    errors += _sentinel_errors(sentinels)
    errors += _cluster_errors(nodes)
    errors += _check_tls(bool(sentinels or nodes))
    errors += _check_wait()
    return errors


def _mixed_topologies(sentinels: Any, nodes: Any) -> list[CheckMessage]:
    """E030 when Sentinel or Cluster is set together with another kind of Redis."""
    chosen = [
        name
        for name, value in (
            ("REDISSTORE_URL", read("URL")),
            ("REDISSTORE_CACHE_ALIAS", read("CACHE_ALIAS")),
            ("REDISSTORE_SENTINELS", sentinels),
            ("REDISSTORE_CLUSTER_NODES", nodes),
        )
        if value
    ]
    if len(chosen) < 2 or not (sentinels or nodes):
        return []
    return [
        Error(
            f"{' and '.join(chosen)} are all set: they name different kinds of Redis.",
            hint="Set exactly one: REDISSTORE_URL for one server, REDISSTORE_SENTINELS (with "
            "REDISSTORE_SENTINEL_SERVICE) for Sentinel, REDISSTORE_CLUSTER_NODES for a "
            "Redis Cluster.",
            id="django_redisstore.E030",
        )
    ]


def _sentinel_errors(sentinels: Any) -> list[CheckMessage]:
    """E032 for unusable Sentinel addresses, E031 for Sentinels without a service (or back)."""
    errors = [] if sentinels is None else _addresses("SENTINELS", sentinels)
    if bool(sentinels) != bool(raw("SENTINEL_SERVICE")):
        errors.append(
            Error(
                "REDISSTORE_SENTINELS and REDISSTORE_SENTINEL_SERVICE go together; "
                f"only {'REDISSTORE_SENTINELS' if sentinels else 'REDISSTORE_SENTINEL_SERVICE'} "
                "is set.",
                hint="REDISSTORE_SENTINEL_SERVICE is the name in the Sentinels' "
                "'sentinel monitor <name> ...' line.",
                id="django_redisstore.E031",
            )
        )
    return errors


def _cluster_errors(nodes: Any) -> list[CheckMessage]:
    """E032 for unusable start nodes, E033 for a database on a cluster, W030 for a hash tag."""
    errors = [] if nodes is None else _addresses("CLUSTER_NODES", nodes)
    options = read("CONNECTION_OPTIONS")
    if nodes and options.get("db"):
        errors.append(
            Error(
                f"REDISSTORE_CONNECTION_OPTIONS asks for database {options['db']!r} on a "
                "Redis Cluster, which only has database 0.",
                hint="Remove 'db'; use REDISSTORE_KEY_PREFIX to keep sites apart.",
                id="django_redisstore.E033",
            )
        )
    if nodes and "{" in read("KEY_PREFIX"):
        errors.append(
            Warning(
                f"REDISSTORE_KEY_PREFIX {read('KEY_PREFIX')!r} has a '{{': on a Redis Cluster a "
                "hash tag in it would put every session in one slot, on one primary.",
                hint="Use a prefix without braces: the engine needs no hash tags.",
                id="django_redisstore.W030",
            )
        )
    return errors


def _check_tls(topology: bool) -> list[CheckMessage]:
    tls = raw("TLS")
    if tls is None:
        return []
    if not isinstance(tls, dict):
        problem = f"is a {type(tls).__name__}, not a dict"
    elif unknown := sorted(set(tls) - set(TLS_OPTIONS)):
        problem = f"has unknown keys {', '.join(map(repr, unknown))}"
    elif missing := [
        f"{key} {tls[key]!r}"
        for key in ("ca_file", "cert_file", "key_file")
        if key in tls and not os.path.isfile(tls[key])
    ]:
        problem = f"names files that do not exist: {', '.join(missing)}"
    elif ("cert_file" in tls) != ("key_file" in tls):
        problem = "has one of cert_file and key_file without the other"
    else:
        problem = None
    errors: list[CheckMessage] = []
    if problem:
        errors.append(
            Error(
                f"REDISSTORE_TLS {problem}.",
                hint="A dict with any of 'ca_file', 'cert_file', 'key_file' (paths to PEM "
                "files) and 'check_hostname' (bool); {} for TLS with the system's CAs.",
                id="django_redisstore.E034",
            )
        )
    url = read("URL")
    if not topology and url and not url.startswith("rediss://"):
        errors.append(
            Error(
                "REDISSTORE_TLS is set but REDISSTORE_URL does not start with rediss://.",
                hint="Use rediss://host:port/db for TLS, or remove REDISSTORE_TLS.",
                id="django_redisstore.E035",
            )
        )
    return errors


_DURATIONS = (
    ("REMEMBER_ME_AGE", "django_redisstore.E020"),
    ("IDLE_TIMEOUT", "django_redisstore.E021"),
    ("ABSOLUTE_TIMEOUT", "django_redisstore.E022"),
    ("DEVICE_UPDATE_INTERVAL", "django_redisstore.E023"),
)


def check_timeouts(**kwargs: Any) -> list[CheckMessage]:
    """Remember-me, idle and absolute timeouts and device-record settings that cannot work."""
    errors: list[CheckMessage] = []
    for name, check_id in _DURATIONS:
        try:
            read(name)
        except ImproperlyConfigured as e:
            errors.append(
                Error(str(e), hint="For example 3600 or timedelta(hours=1).", id=check_id)
            )
    try:
        from .devices import _networks

        _networks(tuple(read("TRUSTED_PROXIES")))
    except (ImproperlyConfigured, TypeError) as e:
        errors.append(
            Error(
                f"REDISSTORE_TRUSTED_PROXIES is not a list of addresses or networks: {e}",
                hint="For example ['10.0.0.0/8', '127.0.0.1'].",
                id="django_redisstore.E024",
            )
        )
    if errors:
        return errors
    absolute = read("ABSOLUTE_TIMEOUT")
    if absolute is not None and absolute < read("REMEMBER_ME_AGE"):
        errors.append(
            Warning(
                "REDISSTORE_REMEMBER_ME_AGE is longer than REDISSTORE_ABSOLUTE_TIMEOUT: "
                "remembered sign-ins end at the absolute timeout.",
                hint="Lower REDISSTORE_REMEMBER_ME_AGE, or raise REDISSTORE_ABSOLUTE_TIMEOUT.",
                id="django_redisstore.W020",
            )
        )
    return errors


def _check_wait() -> list[CheckMessage]:
    try:
        replicas, timeout = read("WAIT_REPLICAS"), read("WAIT_TIMEOUT")
    except (TypeError, ValueError) as e:
        problem = f"do not read as numbers ({e})"
    else:
        if replicas < 0:
            problem = f"ask for {replicas} replicas"
        elif replicas and not 0 < timeout < read("SOCKET_TIMEOUT"):
            problem = (
                f"wait {timeout} s, which is not between 0 and REDISSTORE_SOCKET_TIMEOUT "
                f"({read('SOCKET_TIMEOUT')} s): the socket would time out first, or WAIT would "
                "block forever"
            )
        else:
            return []
    return [
        Error(
            f"REDISSTORE_WAIT_REPLICAS / REDISSTORE_WAIT_TIMEOUT {problem}.",
            hint="REDISSTORE_WAIT_REPLICAS is a count (0 = off), REDISSTORE_WAIT_TIMEOUT a "
            "number of seconds below REDISSTORE_SOCKET_TIMEOUT.",
            id="django_redisstore.E036",
        )
    ]


def check_failure_policy(**kwargs: Any) -> list[CheckMessage]:
    """The reliability settings: a typo there would silently change what an outage does."""
    if not _engine_in_use():
        return []
    errors: list[CheckMessage] = []
    policy = raw("ON_REDIS_ERROR")
    if policy not in ("raise", "anonymous"):
        errors.append(
            Error(
                f"REDISSTORE_ON_REDIS_ERROR is {policy!r}.",
                hint="Set it to 'raise' (the default: the request fails, with a 503 through "
                "RedisUnavailableMiddleware) or 'anonymous' (served without its session).",
                id="django_redisstore.E010",
            )
        )
    errors.extend(_degraded_cookie(policy))
    for name, minimum in (("RETRIES", 0), ("RETRY_AFTER", 0), ("MAX_SIZE", 1)):
        value = raw(name)
        if name == "MAX_SIZE" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            errors.append(
                Error(
                    f"REDISSTORE_{name} is {value!r}.",
                    hint=f"Set it to a whole number of at least {minimum}"
                    + (", or None for no limit." if name == "MAX_SIZE" else "."),
                    id="django_redisstore.E011",
                )
            )
    for name, unit in (("SAVE_DEADLINE", "seconds"), ("SAVE_BUDGET", "bytes")):
        value = raw(name)
        whole = int if unit == "bytes" else (int, float)
        if not isinstance(value, whole) or isinstance(value, bool) or value <= 0:
            errors.append(
                Error(
                    f"REDISSTORE_{name} is {value!r}.",
                    hint=f"Set it to a positive number of {unit}.",
                    id="django_redisstore.E012",
                )
            )
    return errors


def check_sessions_limit(**kwargs: Any) -> list[CheckMessage]:
    """E040 for a per-user limit that is not a count, E041 for an unknown policy."""
    errors: list[CheckMessage] = []
    for name, hint, check_id in (
        (
            "MAX_SESSIONS_PER_USER",
            "For example 5, or None for no limit.",
            "django_redisstore.E040",
        ),
        (
            "MAX_SESSIONS_POLICY",
            "Set it to 'end_oldest' (the default) or 'refuse'.",
            "django_redisstore.E041",
        ),
    ):
        try:
            read(name)
        except ImproperlyConfigured as e:
            errors.append(Error(str(e), hint=hint, id=check_id))
    return errors


def _degraded_cookie(policy: Any) -> list[CheckMessage]:
    """W012: a request served without its session would get its cookie re-sent, with the
    default age, by Django's ``SessionMiddleware`` under ``SESSION_SAVE_EVERY_REQUEST``."""
    plain = "django.contrib.sessions.middleware.SessionMiddleware"
    if policy != "anonymous" or not getattr(settings, "SESSION_SAVE_EVERY_REQUEST", False):
        return []
    if plain not in getattr(settings, "MIDDLEWARE", ()):
        return []
    return [
        Warning(
            "REDISSTORE_ON_REDIS_ERROR is 'anonymous' and SESSION_SAVE_EVERY_REQUEST is True: "
            "while Redis is down, Django's SessionMiddleware re-sends the session cookie with "
            "the default age, not the session's own.",
            hint=f"Use 'django_redisstore.middleware.RedisUnavailableMiddleware' in place of "
            f"{plain!r}: it leaves the cookie as it is.",
            id="django_redisstore.W012",
        )
    ]


def check_durability(**kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: would Redis evict sessions, or lose them all on a restart?

    Asks each server that holds sessions: the one of ``REDISSTORE_URL`` or of the cache
    ``REDISSTORE_CACHE_ALIAS`` names, the primary behind Sentinel, every primary of a Cluster;
    each message names its server. Reads the settings with ``CONFIG GET``; where a managed Redis
    forbids ``CONFIG``, falls back to ``INFO`` for what it tells, and says what it could not
    check.
    """
    if not _engine_in_use():
        return []
    kind = topology()
    if kind == "single" and bool(read("URL")) == bool(read("CACHE_ALIAS")):
        return []  # check_connection reports the configuration error
    client = None
    try:
        client = get_client()
        servers = _servers(kind, client)
    except ImproperlyConfigured:
        return []  # check_topology reports it
    except (*REDIS_ERRORS, RedisStoreError) as e:  # a cluster client connects as it is made
        return [_unreachable(describe(client), e)]
    messages: list[CheckMessage] = []
    for where, server in servers:
        try:
            config = _durability_config(server)
        except REDIS_ERRORS as e:
            messages.append(_unreachable(where, e))
        else:
            messages += _durability_messages(where, config)
    return messages


def _servers(kind: str, client: Any) -> list[tuple[str, Any]]:
    """The servers that hold sessions, each with a client of its own and its description."""
    if kind == "cluster":
        return [
            (f"cluster primary {node.host}:{node.port}", client.get_redis_connection(node))
            for node in client.get_primaries()
        ]
    if kind == "sentinel":
        pool = client.connection_pool
        host, port = pool.get_master_address()  # asks the Sentinels
        return [(f"{host}:{port} (primary of Sentinel service {pool.service_name!r})", client)]
    return [(describe(client), client)]


def _durability_config(client: Any) -> dict[str, str | None]:
    try:
        return {
            name: _text(client.config_get(name).get(name))
            for name in ("maxmemory-policy", "save", "appendonly")
        }
    except ResponseError:  # CONFIG renamed or not allowed (NOPERM): ask INFO instead
        return {
            "maxmemory-policy": _text(client.info("memory").get("maxmemory_policy")),
            "appendonly": "yes" if client.info("persistence").get("aof_enabled") else None,
            "save": None,
        }


def _unreachable(where: str, error: Exception) -> CheckMessage:
    return Info(
        f"Could not ask Redis at {where} how it keeps sessions: {error}",
        hint="Run check --deploy where Redis is reachable to learn whether it can evict "
        "or lose sessions.",
        id="django_redisstore.I011",
    )


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _durability_messages(where: str, config: dict[str, str | None]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    policy = config["maxmemory-policy"]
    if policy is not None and policy != "noeviction":
        messages.append(
            Warning(
                f"Redis at {where} may evict sessions when it runs out of memory "
                f"(maxmemory-policy is {policy}): their users would be signed out.",
                hint="Set 'maxmemory-policy noeviction' in redis.conf (or CONFIG SET "
                "maxmemory-policy noeviction) on the Redis that keeps sessions, and give it "
                "enough memory. volatile-* policies evict sessions too: every session has a TTL.",
                id="django_redisstore.W010",
            )
        )
    if config["appendonly"] == "yes":
        return messages
    if config["save"] == "" and config["appendonly"] == "no":
        messages.append(
            Warning(
                f"Redis at {where} keeps nothing on disk (no RDB save points and appendonly "
                "no): a restart signs every user out.",
                hint="Turn on the append-only file in redis.conf ('appendonly yes', with "
                "'appendfsync everysec', or 'always' to lose no acknowledged save), or at least "
                "RDB snapshots ('save 3600 1 300 100 60 10000').",
                id="django_redisstore.W011",
            )
        )
    elif config["save"] is None:
        messages.append(
            Info(
                f"Redis at {where} does not allow CONFIG: could not check whether it keeps "
                "sessions on disk across a restart (its append-only file is off).",
                hint="Check your Redis provider's persistence settings (append-only file or "
                "snapshots) for the database that keeps sessions.",
                id="django_redisstore.I010",
            )
        )
    return messages


def register_checks() -> None:
    register(check_connection, "sessions")
    register(check_timeouts, "sessions")
    register(check_topology, "sessions")
    register(check_failure_policy, "sessions")
    register(check_sessions_limit, "sessions")
    register(check_durability, "sessions", Tags.security, deploy=True)
    register(check_url_password, "sessions", Tags.security, deploy=True)
