"""System checks for the Sentinel, Cluster, TLS and WAIT settings (E030-E036, W030)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from django_redisstore.checks import check_connection, check_topology


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
