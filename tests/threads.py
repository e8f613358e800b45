"""Running a test's work in real threads, with failures reported in the test's own thread."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_threads(
    count: int, work: Callable[[int], None], barrier: threading.Barrier | None = None
) -> None:
    """Run ``work(i)`` in ``count`` threads; re-raise the first failure in the caller.

    A failing thread breaks ``barrier``, so that the others stop instead of waiting for it; a
    thread still running after two minutes fails the test as hung.
    """
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # reported below, with the thread's traceback
            errors.append(e)
            if barrier is not None:
                barrier.abort()

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    if errors:
        raise errors[0]
