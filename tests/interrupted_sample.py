"""A test that waits, with Redis servers running, until its run is interrupted: the subject of
tests/test_cleanup.py. Its file name keeps it out of the suite (pytest runs it only when named)."""

from __future__ import annotations

import sys

import redis

from .redis_servers import RedisServer


def test_waits_for_the_signal_with_servers_running(
    own_server: RedisServer, redis_client: redis.Redis, redisstore: str
) -> None:
    redis_client.set(f"{redisstore}:written", 1)
    with own_server.client() as client:
        client.set("written", 1)
    print("READY", flush=True)
    sys.stdin.readline()  # a pipe that nobody writes to: this waits for the signal
