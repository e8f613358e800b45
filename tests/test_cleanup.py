"""Nothing left behind: a test run interrupted mid-test (Ctrl-C, SIGTERM) stops every Redis
server it started and removes every temporary directory it made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .processes import Lines, children, end_all, running

ROOT = Path(__file__).resolve().parent.parent
#: pytest, with Ctrl-C raising KeyboardInterrupt even where the parent shell ignores SIGINT.
PYTEST = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.exit(pytest.main(sys.argv[1:]))"
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_no_redis_process_and_no_directory(
    tmp_path: Path, signum: int
) -> None:
    private = tmp_path / "tmp"  # the run's own temporary directory: the check is exact
    private.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["TMPDIR"] = str(private)
    process = subprocess.Popen(
        [sys.executable, "-c", PYTEST, "-q", "-s", "tests/interrupted_sample.py"],
        cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    servers: list[int] = []
    try:
        lines = Lines(process)
        lines.until("READY")
        servers = children(process.pid, "redis-server")
        assert len(servers) == 2  # the session's server and the module's own
        assert len(list(private.glob("redisstore-*"))) == 2

        process.send_signal(signum)
        assert process.wait(60) == pytest.ExitCode.INTERRUPTED, lines.seen
        assert [pid for pid in servers if running(pid)] == []
        assert list(private.iterdir()) == []
    finally:
        end_all(process, servers)
