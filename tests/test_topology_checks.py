"""System checks for the Sentinel, Cluster, TLS and WAIT settings (E030-E036, W030), and
``check --deploy`` on a real Sentinel group and Cluster (W010, W011, I011 for each server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import CheckMessage

from django_redisstore.checks import check_connection, check_durability, check_topology

from .redis_servers import Cluster, RedisServer, SentinelGroup, free_port
from .test_sentinel import use_sentinels


def ids(settings: Any) -> list[str]:
    return sorted(message.id or "" for message in check_connection() + check_topology())


@pytest.fixture
def no_url(settings: Any) -> Any:
    settings.REDISSTORE_URL = None
    return settings


def test_sentinel_and_cluster_settings_pass_when_complete(no_url: Any) -> None:
    no_url.REDISSTORE_SENTINELS = ["10.0.0.1:26379", ("10.0.0.2", 26379), "[::1]:26379"]
    no_url.REDISSTORE_SENTINEL_SERVICE = "sessions"
    assert ids(no_url) == []
    del no_url.REDISSTORE_SENTINELS, no_url.REDISSTORE_SENTINEL_SERVICE
    no_url.REDISSTORE_CLUSTER_NODES = ["10.0.0.1:6379"]
    assert ids(no_url) == []


def test_two_topologies_at_once_are_an_error(settings: Any) -> None:
    settings.REDISSTORE_CLUSTER_NODES = ["10.0.0.1:6379"]
    assert ids(settings) == ["django_redisstore.E030"]


def test_sentinels_without_a_service_and_a_service_without_sentinels(no_url: Any) -> None:
    no_url.REDISSTORE_SENTINELS = ["10.0.0.1:26379"]
    assert ids(no_url) == ["django_redisstore.E031"]
    del no_url.REDISSTORE_SENTINELS
    no_url.REDISSTORE_URL = "redis://10.0.0.1:6379/0"
    no_url.REDISSTORE_SENTINEL_SERVICE = "sessions"
    assert ids(no_url) == ["django_redisstore.E031"]


@pytest.mark.parametrize(
    "addresses", ["10.0.0.1:6379", [], ["10.0.0.1"], ["10.0.0.1:port"], [("10.0.0.1",)]]
)
def test_unusable_addresses(no_url: Any, addresses: Any) -> None:
    no_url.REDISSTORE_CLUSTER_NODES = addresses
    assert "django_redisstore.E032" in ids(no_url)


def test_a_database_number_on_a_cluster(no_url: Any) -> None:
    no_url.REDISSTORE_CLUSTER_NODES = ["10.0.0.1:6379"]
    no_url.REDISSTORE_CONNECTION_OPTIONS = {"db": 2}
    assert ids(no_url) == ["django_redisstore.E033"]


def test_a_hash_tag_in_the_prefix_on_a_cluster(no_url: Any) -> None:
    no_url.REDISSTORE_CLUSTER_NODES = ["10.0.0.1:6379"]
    no_url.REDISSTORE_KEY_PREFIX = "{sessions}"
    assert ids(no_url) == ["django_redisstore.W030"]


def test_tls_settings(settings: Any, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here")
    settings.REDISSTORE_URL = "rediss://10.0.0.1:6380/0"
    settings.REDISSTORE_TLS = {"ca_file": str(ca)}
    assert ids(settings) == []
    settings.REDISSTORE_TLS = {"ca_file": str(tmp_path / "missing.crt")}
    assert ids(settings) == ["django_redisstore.E034"]
    settings.REDISSTORE_TLS = {"ca_certs": str(ca)}
    assert ids(settings) == ["django_redisstore.E034"]
    settings.REDISSTORE_TLS = {"cert_file": str(ca)}  # without its key
    assert ids(settings) == ["django_redisstore.E034"]
    settings.REDISSTORE_TLS = {}
    settings.REDISSTORE_URL = "redis://10.0.0.1:6380/0"
    assert ids(settings) == ["django_redisstore.E035"]


def test_wait_settings(settings: Any) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 1
    assert ids(settings) == []
    settings.REDISSTORE_WAIT_TIMEOUT = 1.5  # above the socket timeout of 1 s
    assert ids(settings) == ["django_redisstore.E036"]
    settings.REDISSTORE_WAIT_TIMEOUT = 0
    assert ids(settings) == ["django_redisstore.E036"]
    settings.REDISSTORE_WAIT_REPLICAS = -1
    assert ids(settings) == ["django_redisstore.E036"]
    settings.REDISSTORE_WAIT_REPLICAS = "two"
    assert ids(settings) == ["django_redisstore.E036"]


# check --deploy on Sentinel and Cluster: every server that holds sessions, each named ----------


@contextmanager
def configured(servers: list[RedisServer], **config: str) -> Iterator[None]:
    """Set ``config`` on ``servers`` (CONFIG SET), and put the old values back afterwards."""
    saved = []
    for server in servers:
        with server.client() as client:
            saved.append({name: client.config_get(name)[name] for name in config})
            for name, value in config.items():
                client.config_set(name.replace("_", "-"), value)
    try:
        yield
    finally:
        for server, values in zip(servers, saved, strict=True):
            with server.client() as client:
                for name, value in values.items():
                    client.config_set(name.replace("_", "-"), value)


def durability(ids: str) -> list[CheckMessage]:
    return [m for m in check_durability() if m.id == ids]


DURABLE = {"maxmemory-policy": "noeviction", "appendonly": "yes"}


def test_deploy_checks_ask_every_primary_of_a_cluster(on_cluster: None, cluster: Cluster) -> None:
    ports = sorted(server.port for server in cluster.primaries)
    with configured(cluster.primaries, **DURABLE):
        assert check_durability() == []
        evicting = cluster.primaries[1]
        with configured([evicting], **{"maxmemory-policy": "allkeys-lru"}):
            (message,) = check_durability()
    assert message.id == "django_redisstore.W010"
    assert f"cluster primary 127.0.0.1:{evicting.port} " in message.msg

    # Out of the box (no persistence) every primary is reported, each by its address.
    lost = durability("django_redisstore.W011")
    assert sorted(int(m.msg.split(":")[1].split(" ")[0]) for m in lost) == ports
    assert all("cluster primary" in m.msg for m in lost)


def test_deploy_checks_ask_the_primary_behind_sentinel(
    settings: Any, redisstore: str, sentinel_group: SentinelGroup
) -> None:
    use_sentinels(settings, sentinel_group)
    primary = sentinel_group.server_at(sentinel_group.primary_address()[1])
    replica = next(s for s in (sentinel_group.primary, sentinel_group.replica) if s is not primary)
    with configured([primary, replica], **DURABLE):
        assert check_durability() == []
        with configured([replica], **{"maxmemory-policy": "allkeys-lru", "appendonly": "no"}):
            assert check_durability() == []  # the replica holds no writes of its own
        with configured([primary], **{"maxmemory-policy": "volatile-lru"}):
            (message,) = check_durability()
    assert message.id == "django_redisstore.W010"
    where = f"127.0.0.1:{primary.port} (primary of Sentinel service '{sentinel_group.service}')"
    assert where in message.msg


def test_an_unreachable_cluster_is_a_note_naming_its_start_nodes(settings: Any) -> None:
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_CLUSTER_NODES = [f"127.0.0.1:{free_port()}"]
    settings.REDISSTORE_CONNECT_TIMEOUT = 0.2
    (message,) = check_durability()
    assert message.id == "django_redisstore.I011"
    assert "Redis Cluster (start nodes" in message.msg
