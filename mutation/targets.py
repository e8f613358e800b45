"""What ``python -m nox -s mutants`` (``mutation/mutate.py``) mutates; the tests that must notice.

One entry per module: ``module`` is a path from the repository root; ``functions`` (optional)
limits the mutants to those functions and methods (``"Class.method"``, or ``"name"`` for a
function, nested functions included); without it the whole module is mutated. A module or a name
that no longer exists is reported and skipped, so a refactoring needs only this list updated,
never the tool. ``tests`` are the test files run against each mutant, stopping at the first
failure: keep them to the files that exercise the module (the whole suite per mutant is too slow).
"""

from __future__ import annotations

TARGETS: list[dict[str, list[str] | str]] = [
    {
        "module": "django_redisstore/codec.py",
        "tests": ["tests/test_integrity.py", "tests/test_contract.py", "tests/test_expiry.py"],
    },
    {
        "module": "django_redisstore/merge.py",
        "tests": ["tests/test_concurrency.py", "tests/test_contract.py"],
    },
    {
        # Python only: the Lua text of the scripts is out of scope (strings are never mutated).
        "module": "django_redisstore/scripts.py",
        "tests": ["tests/test_contract.py", "tests/test_round_trips.py"],
    },
    {
        # The write path of the engine (``storage``): a save, a create, a delete, and the index
        # they keep.
        "module": "django_redisstore/storage.py",
        "functions": [
            "save_flow",
            "_plan",
            "_pack",
            "write_flow",
            "_accepted",
            "_merge_into",
            "create_flow",
            "delete_calls",
            "delete_flow",
            "_user_in",
        ],
        "tests": [
            "tests/test_index.py",
            "tests/test_contract.py",
            "tests/test_expiry.py",
            "tests/test_concurrency.py",
        ],
    },
    {
        # The expiry and timeout arithmetic the write path uses.
        "module": "django_redisstore/expiry.py",
        "tests": ["tests/test_expiry_rules.py", "tests/test_expiry.py", "tests/test_timeouts.py"],
    },
    {
        "module": "django_redisstore/session.py",
        "functions": ["SessionStore.save", "SessionStore.asave"],
        "tests": ["tests/test_contract.py", "tests/test_index.py"],
    },
    {
        # What ``sessions purge`` selects and ends.
        "module": "django_redisstore/operations.py",
        "functions": [
            "parse_duration",
            "last_used",
            "purge_all",
            "purge_matching",
            "anonymous",
            "idle_over",
            "older_than",
            "purge_user",
            "purge_key",
        ],
        "tests": ["tests/test_command_purge.py", "tests/test_command_inspect.py"],
    },
]
