"""``python manage.py sessions inspect|purge|import``: see and end the sessions of this engine.

The work happens in ``django_redisstore.operations`` (inspect, purge) and
``django_redisstore.importers`` (import); this module parses arguments, asks for confirmation,
and formats the results as text for people or as one JSON object for scripts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError

from django_redisstore import importers, index, keys, operations, redact
from django_redisstore.conf import conf
from django_redisstore.exceptions import RedisStoreError

SELECTORS = ("all", "user", "user_id", "username", "key", "anonymous", "idle_over", "older_than")
#: The options that name a user, and what they match: a username, a primary key, or either.
USER_OPTIONS = {"user": "either", "user_id": "pk", "username": "username"}


def plural(count: int, word: str = "session") -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class ProgressBar:
    """A one-line progress bar, redrawn at most ten times a second (terminals only)."""

    WIDTH = 30

    def __init__(self, stream: OutputWrapper, label: str) -> None:
        self.stream, self.label, self.drawn_at = stream, label, 0.0

    def __call__(self, fraction: float, count: int) -> None:
        now = time.monotonic()
        if now - self.drawn_at < 0.1 and fraction < 1:
            return
        self.drawn_at = now
        filled = int(self.WIDTH * min(fraction, 1.0))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {fraction:4.0%}  {plural(count)} seen", ending=""
        )
        self.stream.flush()

    def close(self) -> None:
        if self.drawn_at:
            self.stream.write("")


class Command(BaseCommand):
    help = (
        "See and end the sessions of the Redis session engine. "
        "'inspect' summarises them (or shows one session, or one user's); "
        "'purge' ends the sessions one selector picks; "
        "'import' copies the live sessions of another engine into this one. "
        "Run 'manage.py sessions SUBCOMMAND --help' for each one's options."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{inspect,purge,import}")
        self._add_inspect(sub)
        self._add_purge(sub)
        self._add_import(sub)

    def _add_inspect(self, sub: Any) -> None:
        inspect = sub.add_parser(
            "inspect",
            help="Summarise all sessions, or show one session (KEY) or one user's (--user).",
            description="Without arguments: totals, signed-in and anonymous sessions, distinct "
            "users, top users, TTL and age histograms, memory, oldest and newest. With KEY (a "
            "session cookie's value): that session and its data, the values of keys that look "
            "secret redacted. With --user-id, --username or --user: that user's sessions.",
        )
        inspect.add_argument("key", nargs="?", metavar="KEY", help="a session key (cookie value)")
        self._add_user_options(inspect, "that user's sessions")
        inspect.add_argument(
            "--show-secrets",
            action="store_true",
            help="show the values of the keys that look secret (hash, token, password, csrf, "
            f"key...) and of REDISSTORE_REDACT_KEYS instead of {redact.REDACTED}",
        )
        self._add_format(inspect)

    def _add_purge(self, sub: Any) -> None:
        purge = sub.add_parser(
            "purge",
            help="End the sessions that exactly one selector picks.",
            description="End sessions (their users are signed out). Give exactly one selector. "
            "Asks for confirmation on a terminal unless --yes is given, and refuses when there "
            "is no terminal to ask on. Only this engine's keys (REDISSTORE_KEY_PREFIX) are "
            "touched.",
        )
        chosen = purge.add_argument_group("selectors (give exactly one)")
        chosen.add_argument("--all", action="store_true", help="every session")
        self._add_user_options(chosen, "every session of that user")
        chosen.add_argument("--key", metavar="KEY", help="the session with this key")
        chosen.add_argument("--anonymous", action="store_true", help="sessions nobody signed in")
        chosen.add_argument(
            "--idle-over",
            metavar="DURATION",
            help="sessions unused for longer than DURATION (90s, 30m, 12h, 7d, 2w)",
        )
        chosen.add_argument(
            "--older-than", metavar="DURATION", help="sessions created longer ago than DURATION"
        )
        purge.add_argument(
            "--dry-run", action="store_true", help="say how many would end; end none"
        )
        purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        self._add_format(purge)

    def _add_import(self, sub: Any) -> None:
        imports = sub.add_parser(
            "import",
            help="Copy the live sessions of another engine into this one.",
            description="Copy every live session of another session engine, keeping its key, "
            "data and remaining lifetime, so that switching SESSION_ENGINE signs nobody out. "
            "Sessions already here are left as they are: running it twice changes nothing.",
        )
        imports.add_argument(
            "--from",
            dest="source",
            required=True,
            metavar="ENGINE",
            help="db, cached_db, cache (Django's cache engine on django-redis) or "
            "redis_sessions (django-redis-sessions), or that engine's SESSION_ENGINE path",
        )
        imports.add_argument(
            "--cache-alias",
            metavar="ALIAS",
            help="the cache of the 'cache' engine (default: SESSION_CACHE_ALIAS)",
        )
        imports.add_argument(
            "--dry-run", action="store_true", help="say how many would be copied; copy none"
        )
        self._add_format(imports)

    @staticmethod
    def _add_user_options(parser: Any, what: str) -> None:
        parser.add_argument(
            "--user",
            metavar="USER",
            help=f"{what}: a username or a primary key (refused when it is one user's username "
            "and another's primary key)",
        )
        parser.add_argument("--user-id", metavar="ID", help=f"{what}, by primary key")
        parser.add_argument("--username", metavar="NAME", help=f"{what}, by username")

    @staticmethod
    def _add_format(parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="text for people (default), or one JSON object with stable keys",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = {"inspect": self.inspect, "purge": self.purge, "import": self.import_}
        try:
            action[options["action"]](options)
        except (RedisStoreError, ImproperlyConfigured) as e:
            raise CommandError(str(e)) from e

    # Output helpers ------------------------------------------------------------------------

    def emit_json(self, value: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=str))

    def progress(self, options: dict[str, Any], label: str) -> ProgressBar | None:
        if options["verbosity"] < 1 or not self.stderr.isatty():
            return None
        return ProgressBar(self.stderr, label)

    # inspect -------------------------------------------------------------------------------

    def inspect(self, options: dict[str, Any]) -> None:
        given = [name for name in ("key", *USER_OPTIONS) if options[name]]
        if len(given) > 1:
            raise CommandError("Give a session KEY, --user, --user-id or --username: one of them.")
        if options["key"]:
            self.inspect_key(options["key"], options)
        elif given:
            self.inspect_user(resolve_user(options[given[0]], USER_OPTIONS[given[0]]), options)
        else:
            self.inspect_all(options)

    def inspect_all(self, options: dict[str, Any]) -> None:
        bar = self.progress(options, "Scanning")
        try:
            summary = operations.summarize(bar)
        finally:
            if bar:
                bar.close()
        names = usernames([user for user, _ in summary.top_users])
        if options["format"] == "json":
            return self.emit_json(summary_json(summary, names))
        self.write_summary(summary, names)

    def write_summary(self, summary: operations.Summary, names: dict[str, str]) -> None:
        labels = operations.HISTOGRAM_LABELS
        write = self.stdout.write
        write(self.style.MIGRATE_HEADING(f"Sessions under the prefix {conf.KEY_PREFIX!r}"))
        write(f"  total           {summary.total:>12,}")
        write(f"  authenticated   {summary.authenticated:>12,}")
        write(f"  anonymous       {summary.anonymous:>12,}")
        write(f"  distinct users  {summary.users:>12,}")
        if summary.memory_samples:
            per = summary.memory_bytes / max(summary.total, 1)
            write(
                f"  memory          {summary.memory_bytes / 2**20:>10,.1f} MiB  "
                f"(~{per:,.0f} bytes a session, MEMORY USAGE of {summary.memory_samples:,})"
            )
        if summary.oldest and summary.newest:
            write(f"  oldest          {summary.oldest:%Y-%m-%d %H:%M:%S} UTC")
            write(f"  newest          {summary.newest:%Y-%m-%d %H:%M:%S} UTC")
        if summary.top_users:
            write(self.style.MIGRATE_HEADING("Top users by sessions"))
            for user, count in summary.top_users:
                label = f"{user} ({names[user]})" if user in names else user
                write(f"  {label:<32} {count:>8,}")
        if summary.skipped:
            write(skipped_note(summary.skipped))
        for title, counts in (
            ("Time to live", summary.ttl_histogram),
            ("Age", summary.age_histogram),
        ):
            write(self.style.MIGRATE_HEADING(title))
            for line in histogram(labels, counts):
                write(line)

    def inspect_key(self, session_key: str, options: dict[str, Any]) -> None:
        session_key = check_key(session_key)
        found = operations.find_session(session_key)
        if found is None:
            raise CommandError("No session has this key (it expired, was ended, or never was).")
        info, data = found
        if not options["show_secrets"]:
            data = redact.redact(data, conf.REDACT_KEYS)
        record = describe(info) | {"data": data}
        if options["format"] == "json":
            return self.emit_json(record)
        for name in ("id", "user", "created", "saved", "expires_at", "ttl", "size"):
            self.stdout.write(f"{name:<11} {record[name] if record[name] is not None else '-'}")
        self.stdout.write("data")
        self.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=True))

    def inspect_user(self, user: ChosenUser, options: dict[str, Any]) -> None:
        sessions = [describe(info) for info in index.user_sessions(user.id)]
        if options["format"] == "json":
            return self.emit_json(
                {"user": user.id, "username": user.username, "sessions": sessions}
            )
        shown = f"{user.id} ({user.username})" if user.username is not None else user.id
        self.stdout.write(f"User {shown}: {plural(len(sessions))}")
        if sessions:
            self.stdout.write(
                f"  {'id':<22}  {'created':<25}  {'saved':<25}  {'ttl':>8}  {'size':>6}"
            )
        for s in sessions:
            self.stdout.write(
                f"  {s['id']:<22}  {s['created']:<25}  {s['saved']:<25}  "
                f"{s['ttl']:>8}  {s['size']:>6}"
            )

    # purge ---------------------------------------------------------------------------------

    def purge(self, options: dict[str, Any]) -> None:
        given = [name for name in SELECTORS if options[name]]
        flags = ", ".join("--" + name.replace("_", "-") for name in SELECTORS)
        if len(given) != 1:
            got = ", ".join("--" + g.replace("_", "-") for g in given) or "none"
            raise CommandError(f"Give exactly one selector of {flags} (got {got}).")
        selector = given[0]
        value = options[selector]
        dry_run = options["dry_run"]
        # Parse everything before anything is deleted.
        if selector == "all":
            what = "EVERY session"
        elif selector in USER_OPTIONS:
            value = resolve_user(value, USER_OPTIONS[selector])
            what = f"every session of the user {value}"
            # Whose sessions these are, before anything ends (with --yes too): on stderr when
            # stdout carries JSON.
            out = self.stderr if options["format"] == "json" else self.stdout
            out.write(f"Sessions of the user {value}.")
        elif selector == "key":
            value = check_key(value)
            what = "the session with this key"
        elif selector == "anonymous":
            what = "every anonymous session"
        else:
            try:
                operations.parse_duration(value)
            except ValueError as e:
                raise CommandError(f"--{selector.replace('_', '-')}: {e}.") from e
            verb = "unused for" if selector == "idle_over" else "created more than"
            what = f"every session {verb} {value}" + (" ago" if selector == "older_than" else "")
        if not dry_run and not options["yes"]:
            self.confirm(what)
        bar = self.progress(options, "Purging" if not dry_run else "Counting")
        try:
            purged = self.run_purge(selector, value, dry_run, bar)
        finally:
            if bar:
                bar.close()
        if options["format"] == "json":
            result = {
                "selector": selector.replace("_", "-"),
                "dry_run": dry_run,
                "sessions": purged.sessions,
                "skipped": purged.skipped,
            }
            if isinstance(value, ChosenUser):
                result |= {"user": value.id, "username": value.username}
            return self.emit_json(result)
        verb = "Would end" if dry_run else "Ended"
        self.stdout.write(f"{verb} {plural(purged.sessions)}.")
        if purged.skipped:
            self.stdout.write(skipped_note(purged.skipped))

    @staticmethod
    def run_purge(
        selector: str, value: Any, dry_run: bool, bar: ProgressBar | None
    ) -> operations.Purged:
        if selector == "all":
            return operations.purge_all(dry_run=dry_run, progress=bar)
        if isinstance(value, ChosenUser):
            return operations.purge_user(value.id, dry_run=dry_run)
        if selector == "key":
            return operations.purge_key(value, dry_run=dry_run)
        select: Callable[[operations.Seen, float], bool]
        if selector == "anonymous":
            select = operations.anonymous
        elif selector == "idle_over":
            select = operations.idle_over(operations.parse_duration(value))
        else:
            select = operations.older_than(operations.parse_duration(value))
        return operations.purge_matching(select, dry_run=dry_run, progress=bar)

    def confirm(self, what: str) -> None:
        if not sys.stdin.isatty():
            raise CommandError(
                f"Refusing to end {what} without confirmation, and there is no terminal to "
                "ask on. Pass --yes to go ahead, or --dry-run to see how many would end."
            )
        answer = input(
            f"This ends {what} under the prefix {conf.KEY_PREFIX!r}. Type 'yes' to go on: "
        )
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing ended: not confirmed.")

    # import --------------------------------------------------------------------------------

    def import_(self, options: dict[str, Any]) -> None:
        bar = self.progress(options, "Importing")
        try:
            result = importers.import_sessions(
                options["source"],
                dry_run=options["dry_run"],
                cache_alias=options["cache_alias"],
                progress=bar,
            )
        except importers.ImportSourceError as e:
            raise CommandError(str(e)) from e
        finally:
            if bar:
                bar.close()
        if options["format"] == "json":
            return self.emit_json(
                {
                    "from": importers.engine_path(options["source"]),
                    "dry_run": options["dry_run"],
                    "imported": result.imported,
                    "present": result.present,
                    "skipped": result.skipped,
                }
            )
        verb = "Would import" if options["dry_run"] else "Imported"
        self.stdout.write(
            f"{verb} {plural(result.imported)} ({result.present:,} already here, "
            f"{result.skipped:,} unreadable or expired skipped)."
        )


def summary_json(summary: operations.Summary, names: dict[str, str]) -> dict[str, Any]:
    """The stable JSON shape of ``sessions inspect``'s summary."""
    labels = operations.HISTOGRAM_LABELS
    return {
        "prefix": conf.KEY_PREFIX,
        "total": summary.total,
        "authenticated": summary.authenticated,
        "anonymous": summary.anonymous,
        "users": summary.users,
        "top_users": [
            {"user": u, "username": names.get(u), "sessions": n} for u, n in summary.top_users
        ],
        "ttl_histogram": [
            {"range": label, "sessions": n}
            for label, n in zip(labels, summary.ttl_histogram, strict=True)
        ],
        "age_histogram": [
            {"range": label, "sessions": n}
            for label, n in zip(labels, summary.age_histogram, strict=True)
        ],
        "memory_bytes": summary.memory_bytes,
        "memory_samples": summary.memory_samples,
        "oldest": iso(summary.oldest),
        "newest": iso(summary.newest),
        "skipped": summary.skipped,
    }


def skipped_note(count: int) -> str:
    keys_ = "key that is" if count == 1 else "keys that are"
    return f"Skipped {count:,} {keys_} not sessions (left as they are)."


def describe(info: index.SessionInfo) -> dict[str, Any]:
    """The stable JSON shape of one session (the text output shows the same fields)."""
    return {
        "id": info.id,
        "user": info.user_id,
        "created": iso(info.created),
        "saved": iso(info.saved),
        "expires_at": iso(info.expires_at),
        "ttl": info.ttl,
        "size": info.size,
    }


def histogram(labels: tuple[str, ...], counts: list[int], width: int = 40) -> list[str]:
    """Horizontal bars, the longest ``width`` characters."""
    top = max(counts) or 1
    block = (
        "█" if (getattr(sys.stdout, "encoding", "") or "").lower() in ("utf-8", "utf8") else "#"
    )
    return [
        f"  {label:<9} {block * round(width * n / top):<{width}} {n:>12,}"
        for label, n in zip(labels, counts, strict=True)
    ]


def usernames(user_ids: list[str]) -> dict[str, str]:
    """Usernames of the users with these ids, where the database has them (for display)."""
    if not user_ids:
        return {}
    model = get_user_model()
    try:
        found = model._default_manager.in_bulk(user_ids)
    except Exception:  # no database, no table, ids of another type: show the ids alone
        return {}
    return {str(pk): str(user.get_username()) for pk, user in found.items()}


def check_key(session_key: str) -> str:
    if not keys.is_valid_session_key(session_key):
        raise CommandError(
            f"{session_key!r} is not a session key: expected the value of the session cookie "
            "(8 to 64 characters of a-z and 0-9; Django makes 32)."
        )
    return session_key


class ChosenUser(NamedTuple):
    """The user whose sessions a command acts on: the id the index files them under, and the
    username when the database has the user."""

    id: str
    username: str | None

    def __str__(self) -> str:
        name = repr(self.username) if self.username is not None else "not in the database"
        return f"pk {self.id} ({name})"


def resolve_user(value: str, match: str = "either") -> ChosenUser:
    """The user that ``value`` names: by username, by primary key (``match`` "username" or
    "pk"), or by either ("either", ``--user``).

    ``--user`` is refused when ``value`` is one user's username and another user's primary key:
    guessing would let anyone who registers a victim's pk as a username steer an operator's
    purge away from the victim. A user deleted from the database but with sessions still
    indexed is accepted by primary key, so that their sessions can be ended too.
    """
    model = get_user_model()
    manager = model._default_manager
    by_name = by_pk = None
    try:
        if match != "pk":
            by_name = manager.filter(**{model.USERNAME_FIELD: value}).first()
        if match != "username":
            by_pk = manager.filter(pk=value).first()
    except (ValueError, TypeError, ValidationError, DatabaseError):
        pass  # a value that cannot be a pk (or no database): no such user
    if by_name is not None and by_pk is not None and by_name.pk != by_pk.pk:
        first, second = _chosen(by_name), _chosen(by_pk)
        raise CommandError(
            f"--user {value!r} is ambiguous: it is the username of the user {first} and the "
            f"primary key of the user {second}. Use --username {value} or --user-id {value}."
        )
    user = by_name or by_pk
    if user is not None:
        return _chosen(user)
    if match != "username" and operations.user_is_indexed(value):
        return ChosenUser(value, None)
    what = {"either": "username or primary key", "pk": "primary key", "username": "username"}
    raise CommandError(f"No user has the {what[match]} {value!r}.")


def _chosen(user: Any) -> ChosenUser:
    return ChosenUser(index.user_key(user), str(user.get_username()))
