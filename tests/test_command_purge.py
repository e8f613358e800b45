"""``manage.py sessions purge``: selectors, dry runs, confirmation, bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from django_redisstore import codec, keys
from django_redisstore.session import SessionStore

from .command_helpers import (
    Terminal,
    alive,
    make_session,
    name_of,
    sessions,
    sessions_json,
    set_header_time,
    timeouts,  # noqa: F401 (an autouse fixture: both timeouts)
)

ROOT = Path(__file__).resolve().parent.parent


def test_purge_all_ends_every_session_and_index_of_the_prefix_only(
    redis_client: redis.Redis, redisstore: str
) -> None:
    ours = [make_session(1), make_session(2), make_session()]
    foreign = {f"{redisstore}x:s:abc": b"1", "unrelated": b"2", f"{redisstore}:other": b"3"}
    for name, value in foreign.items():
        redis_client.set(name, value, ex=60)

    out = sessions("purge", "--all", "--yes")

    assert out.strip() == "Ended 3 sessions."
    assert not any(alive(s) for s in ours)
    assert not redis_client.exists(keys.user_index_name("1"))
    assert all(redis_client.get(name) == value for name, value in foreign.items())
    redis_client.delete(*foreign)


@pytest.mark.django_db
def test_dry_run_says_what_would_go_and_deletes_nothing() -> None:
    kept = [make_session(1), make_session()]

    assert sessions("purge", "--all", "--dry-run").strip() == "Would end 2 sessions."
    assert sessions("purge", "--anonymous", "--dry-run").strip() == "Would end 1 session."
    assert sessions("purge", "--user", "1", "--dry-run").splitlines() == [
        "Sessions of the user pk 1 (not in the database).",  # indexed, not in the database
        "Would end 1 session.",
    ]
    assert all(alive(s) for s in kept)


def test_dry_run_of_purge_key_keeps_the_session_and_its_index_entry(
    redis_client: redis.Redis,
) -> None:
    session = make_session(3)
    assert session.session_key is not None
    sid = name_of(session).rsplit(":", 1)[1]

    out = sessions("purge", "--key", session.session_key, "--dry-run")

    assert out.strip() == "Would end 1 session."
    assert redis_client.exists(name_of(session))
    assert redis_client.zscore(keys.user_index_name("3"), sid) is not None
    # The same command without --dry-run does end it: the dry run above was the only difference.
    assert sessions("purge", "--key", session.session_key, "--yes").strip() == "Ended 1 session."
    assert not redis_client.exists(name_of(session))
    assert redis_client.zscore(keys.user_index_name("3"), sid) is None


def test_purge_key_ends_an_anonymous_session_too() -> None:
    doomed, kept = make_session(cart=1), make_session(cart=2)
    assert doomed.session_key is not None

    assert sessions("purge", "--key", doomed.session_key, "--yes").strip() == "Ended 1 session."
    assert not alive(doomed) and alive(kept)


def test_purge_key_of_no_session_ends_none_and_says_zero() -> None:
    kept = make_session(3)
    unknown = "x" * 32  # well-formed, but no session has it

    assert sessions_json("purge", "--key", unknown, "--yes") == {
        "selector": "key",
        "dry_run": False,
        "sessions": 0,
        "skipped": 0,
    }
    assert sessions("purge", "--key", unknown, "--dry-run").strip() == "Would end 0 sessions."
    assert alive(kept)


@pytest.mark.django_db
def test_purge_user_ends_only_that_users_sessions(redis_client: redis.Redis) -> None:
    mine = [make_session(7), make_session(7)]
    theirs = make_session(8)

    assert sessions_json("purge", "--user", "7", "--yes") == {
        "selector": "user",
        "dry_run": False,
        "sessions": 2,
        "skipped": 0,
        "user": "7",
        "username": None,
    }
    assert not any(alive(s) for s in mine)
    assert alive(theirs)
    assert not redis_client.exists(keys.user_index_name("7"))


@pytest.mark.django_db
def test_purge_user_by_username() -> None:
    user = get_user_model().objects.create_user("linus", password="pw")
    session = make_session(user.pk)

    assert sessions("purge", "--user", "linus", "--yes").splitlines() == [
        f"Sessions of the user pk {user.pk} ('linus').",
        "Ended 1 session.",
    ]
    assert not alive(session)


def test_purge_key_ends_that_session_and_its_index_entry(redis_client: redis.Redis) -> None:
    doomed, kept = make_session(3), make_session(3)
    assert doomed.session_key is not None

    assert sessions("purge", "--key", doomed.session_key, "--yes").strip() == "Ended 1 session."
    assert not alive(doomed) and alive(kept)
    members = redis_client.zrange(keys.user_index_name("3"), 0, -1)
    assert members == [name_of(kept).rsplit(":", 1)[1].encode()]


def test_purge_anonymous_keeps_signed_in_sessions() -> None:
    anonymous = [make_session(), make_session(cart=1)]
    signed_in = make_session(4)

    assert sessions("purge", "--anonymous", "--yes").strip() == "Ended 2 sessions."
    assert not any(alive(s) for s in anonymous)
    assert alive(signed_in)


def test_purge_older_than_uses_creation_time_and_unindexes(redis_client: redis.Redis) -> None:
    old, new = make_session(9), make_session(9)
    set_header_time(redis_client, name_of(old), 2, 8 * 86400)

    assert sessions("purge", "--older-than", "7d", "--yes").strip() == "Ended 1 session."
    assert not alive(old) and alive(new)
    assert redis_client.zcard(keys.user_index_name("9")) == 1


def test_purge_idle_over_uses_last_write_and_sliding_ttl(redis_client: redis.Redis) -> None:
    idle, busy, slid = make_session(), make_session(), make_session()
    for session in (idle, slid):
        set_header_time(redis_client, name_of(session), 6, 3 * 3600)  # saved 3 h ago
    # slid was saved 3 h ago but its TTL was reset (a sliding read) a minute ago:
    redis_client.expire(name_of(slid), 1209600 - 60)
    redis_client.expire(name_of(idle), 1209600 - 3 * 3600)

    assert sessions("purge", "--idle-over", "2h", "--yes").strip() == "Ended 1 session."
    assert not alive(idle)
    assert alive(busy) and alive(slid)


def test_purge_by_predicate_leaves_a_session_written_after_it_was_read(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_redisstore import operations

    session = make_session()
    real_walk = operations._walk

    def walk_then_write(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for batch in real_walk(*args, **kwargs):  # type: ignore[arg-type]
            session["changed"] = True  # a request saves between the read and the delete
            session.save()
            yield batch

    monkeypatch.setattr(operations, "_walk", walk_then_write)

    assert sessions("purge", "--anonymous", "--yes").strip() == "Ended 0 sessions."
    assert alive(session)


def test_without_yes_and_without_a_terminal_it_refuses_and_ends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = make_session()
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))

    with pytest.raises(CommandError, match="Refusing to end EVERY session"):
        sessions("purge", "--all")
    assert alive(session)


def test_on_a_terminal_it_asks_and_obeys_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    session = make_session()
    monkeypatch.setattr(sys, "stdin", Terminal("no\n"))
    with pytest.raises(CommandError, match="not confirmed"):
        sessions("purge", "--all")
    assert alive(session)

    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    assert sessions("purge", "--all").strip() == "Ended 1 session."
    assert not alive(session)


def test_progress_bar_on_a_terminal_only_and_output_stays_parseable() -> None:
    make_session()
    make_session()
    tty = Terminal()

    out = sessions("purge", "--anonymous", "--yes", "--format", "json", stderr=tty)

    assert "Purging [" in tty.getvalue()
    assert out.startswith("{") and '"sessions": 2' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one selector"),
        (("--all", "--anonymous"), r"got --all, --anonymous"),
        (("--key", "Bad Key!"), "not a session key"),
        (("--idle-over", "5x"), "not a duration"),
        (("--older-than", "0s"), "not a positive duration"),
        (("--user", "999"), "No user has the username or primary key '999'"),
        (("--user-id", "abc"), "No user has the primary key 'abc'"),
        (("--username", "nobody"), "No user has the username 'nobody'"),
        (("--user-id", "1", "--username", "x"), r"got --user-id, --username"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_a_command_error_and_deletes_nothing(
    args: tuple[str, ...], message: str
) -> None:
    session = make_session(1)

    with pytest.raises(CommandError, match=message):
        sessions("purge", *args, "--yes")
    assert alive(session)


def test_bad_input_exits_non_zero_from_the_command_line() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "django", "sessions", "purge", "--idle-over", "12x", "--yes"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )

    assert result.returncode != 0
    assert "CommandError: --idle-over: '12x' is not a duration" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("45m", 2700),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    from django_redisstore.operations import parse_duration

    assert parse_duration(text) == seconds


def test_no_session_created_during_purge_all_is_left_out_of_its_index(
    redis_client: redis.Redis, redisstore: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_redisstore import operations

    monkeypatch.setattr(operations, "SCAN_COUNT", 10)  # a long walk: a wide window for races
    for _ in range(300):
        make_session(7)
    stop = threading.Event()

    def log_in_repeatedly() -> None:
        while not stop.is_set():
            make_session(7)

    thread = threading.Thread(target=log_in_repeatedly)
    thread.start()
    try:
        operations.purge_all(dry_run=False)
    finally:
        stop.set()
        thread.join()

    serializer = SessionStore().serializer
    live = set()
    for name in redis_client.scan_iter(f"{redisstore}:s:*", count=1000):
        blob = redis_client.get(name)
        if blob is not None:
            _, data = codec.decode(name.decode(), blob, keys.secrets(), serializer)
            assert data["_auth_user_id"] == "7"
            live.add(name.decode().rsplit(":", 1)[1])
    indexed = {m.decode() for m in redis_client.zrange(keys.user_index_name("7"), 0, -1)}
    assert live <= indexed


def plant_foreign_keys(client: redis.Redis, prefix: str) -> dict[str, bytes | list[bytes]]:
    """Keys under the engine's patterns that are not its records or indexes."""
    forged = bytes((codec.VERSION,)) + b"\x00" * 40  # a record's format, a bad MAC
    client.rpush(f"{prefix}:s:alist", b"a", b"b")
    client.set(f"{prefix}:s:short", b"not a record")
    client.set(f"{prefix}:s:forged", forged)
    client.set(f"{prefix}:u:7", b"a string where an index goes")
    return {
        f"{prefix}:s:alist": [b"a", b"b"],
        f"{prefix}:s:short": b"not a record",
        f"{prefix}:s:forged": forged,
        f"{prefix}:u:7": b"a string where an index goes",
    }


def left_alone(client: redis.Redis, planted: dict[str, bytes | list[bytes]]) -> bool:
    return all(
        (client.lrange(name, 0, -1) if isinstance(value, list) else client.get(name)) == value
        for name, value in planted.items()
    )


@pytest.mark.parametrize(
    ("selector", "ended"),
    [(("--anonymous",), 1), (("--idle-over", "1h"), 0), (("--older-than", "1h"), 0)],
)
def test_selectors_skip_and_count_keys_that_are_not_sessions(
    redis_client: redis.Redis, redisstore: str, selector: tuple[str, ...], ended: int
) -> None:
    planted = plant_foreign_keys(redis_client, redisstore)
    make_session()
    signed_in = make_session(8)

    result = sessions_json("purge", *selector, "--yes")

    assert result["sessions"] == ended
    # The list, the short string and the forged record (its MAC fails); these selectors walk
    # only <prefix>:s:*, so the string under :u: is not met.
    assert result["skipped"] == 3
    assert left_alone(redis_client, planted)
    assert alive(signed_in)


def test_purge_all_deletes_only_records_and_indexes_and_reports_the_rest(
    redis_client: redis.Redis, redisstore: str
) -> None:
    planted = plant_foreign_keys(redis_client, redisstore)
    del planted[f"{redisstore}:s:forged"]  # in a record's format: purge --all takes it
    ours = [make_session(1), make_session()]

    dry = sessions("purge", "--all", "--dry-run")
    out = sessions("purge", "--all", "--yes")

    assert dry.splitlines() == [
        "Would end 3 sessions.",
        "Skipped 2 keys that are not sessions (left as they are).",
    ]
    assert out.splitlines() == [
        "Ended 3 sessions.",
        "Skipped 3 keys that are not sessions (left as they are).",
    ]
    assert not any(alive(s) for s in ours)
    assert not redis_client.exists(keys.user_index_name("1"))
    assert left_alone(redis_client, planted)


def test_purge_all_of_a_listed_session_that_is_not_a_record_leaves_it(
    redis_client: redis.Redis, redisstore: str
) -> None:
    redis_client.zadd(keys.user_index_name("5"), {"notarecord": time.time() + 3600})
    redis_client.rpush(keys.session_name("notarecord"), b"x")

    assert sessions_json("purge", "--all", "--yes")["sessions"] == 0
    assert redis_client.lrange(keys.session_name("notarecord"), 0, -1) == [b"x"]
    assert not redis_client.exists(keys.user_index_name("5"))


@pytest.fixture
def lookalike() -> tuple[object, object]:
    """bob, and a user whose username is bob's primary key."""
    model = get_user_model()
    model.objects.create_user("alice", password="pw")
    bob = model.objects.create_user("bob", password="pw")
    return bob, model.objects.create_user(str(bob.pk), password="pw")


@pytest.mark.django_db
def test_user_that_is_one_users_username_and_anothers_pk_is_refused(
    lookalike: tuple[Any, Any],
) -> None:
    bob, mallory = lookalike
    bobs, mallorys = make_session(bob.pk), make_session(mallory.pk)

    for action in (("purge", "--yes"), ("inspect",)):
        with pytest.raises(CommandError) as refused:
            sessions(*action, "--user", str(bob.pk))
        message = str(refused.value)
        assert "ambiguous" in message
        assert f"pk {mallory.pk} ('{bob.pk}')" in message  # its username is bob's pk
        assert f"pk {bob.pk} ('bob')" in message
        assert f"--user-id {bob.pk}" in message and f"--username {bob.pk}" in message
    assert alive(bobs) and alive(mallorys)


@pytest.mark.django_db
def test_user_id_and_username_name_one_user_each(lookalike: tuple[Any, Any]) -> None:
    bob, mallory = lookalike
    bobs, mallorys = make_session(bob.pk), make_session(mallory.pk)

    by_id = sessions_json("inspect", "--user-id", str(bob.pk))
    by_name = sessions_json("inspect", "--username", str(bob.pk))
    assert (by_id["user"], by_id["username"]) == (str(bob.pk), "bob")
    assert (by_name["user"], by_name["username"]) == (str(mallory.pk), str(bob.pk))

    out = sessions("purge", "--user-id", str(bob.pk), "--yes")
    assert out.splitlines()[0] == f"Sessions of the user pk {bob.pk} ('bob')."
    assert not alive(bobs) and alive(mallorys)
    sessions("purge", "--username", str(bob.pk), "--yes")
    assert not alive(mallorys)
    assert sessions_json("purge", "--user", "alice", "--dry-run")["username"] == "alice"


@pytest.mark.django_db
def test_whose_sessions_is_printed_before_any_ends_even_with_yes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django_redisstore import operations

    user = get_user_model().objects.create_user("ada", password="pw")
    make_session(user.pk)
    out, err = io.StringIO(), io.StringIO()
    printed_before: list[str] = []
    real = operations.purge_user

    def record_then_purge(*args: Any, **kwargs: Any) -> operations.Purged:
        printed_before.append(out.getvalue() + err.getvalue())
        return real(*args, **kwargs)

    monkeypatch.setattr(operations, "purge_user", record_then_purge)
    call_command("sessions", "purge", "--username", "ada", "--yes", stdout=out, stderr=err)
    call_command(
        "sessions", "purge", "--username", "ada", "--yes", "--format", "json",
        stdout=(json_out := io.StringIO()), stderr=(json_err := io.StringIO()),
    )  # fmt: skip

    assert printed_before[0] == f"Sessions of the user pk {user.pk} ('ada').\n"
    assert f"pk {user.pk} ('ada')" in json_err.getvalue()  # JSON on stdout stays parseable
    assert json.loads(json_out.getvalue())["username"] == "ada"


@pytest.mark.django_db
def test_a_user_index_that_is_not_a_sorted_set_reads_as_empty_and_stays(
    redis_client: redis.Redis,
) -> None:
    from django_redisstore.index import prune_indexes

    name = keys.user_index_name("13")
    redis_client.set(name, b"not an index")

    assert sessions_json("purge", "--user-id", "13", "--yes")["sessions"] == 0
    assert sessions_json("inspect", "--user-id", "13")["sessions"] == []
    assert prune_indexes() == (1, 0)  # clearsessions' pruning walks past it
    assert redis_client.get(name) == b"not an index"
