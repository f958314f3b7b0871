"""Resolve, format, start, probe and stop a local Kafka broker.

The jars come from Maven Central through the small pom next to this module and are
cached under ``<home>/dist/<version>/libs``; a second start needs no network. The broker
runs detached from the caller (its own session), so `hookstream kafka start` can return
while the broker keeps running; `stop` ends it and waits until its ports are free.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hookstream.errors import BrokerError

KAFKA_VERSION = "4.3.1"
_POM = "pom.xml"
_LOG4J = "log4j2.properties"
SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
# Names and passwords go into server.properties and the format tool's arguments unquoted.
_SAFE_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ScramUser:
    """A user of the SASL listener: SCRAM-SHA-256/512 credentials, and PLAIN with the same password."""

    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("password", self.password)):
            if not _SAFE_CREDENTIAL.fullmatch(value):
                raise BrokerError(
                    f"a SASL user's {what} may only use letters, digits, '.', '_', '-'"
                )

    @classmethod
    def parse(cls, text: str) -> ScramUser:
        """`NAME:PASSWORD`, as the command line takes it."""
        name, sep, password = text.partition(":")
        if not sep:
            raise BrokerError("a SASL user is NAME:PASSWORD")
        return cls(name, password)


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS material, PEM files: the CA it trusts for client certificates, its
    certificate (chain) and its unencrypted PKCS#8 private key. No keytool, no JKS."""

    ca: Path
    certificate: Path
    key: Path

    def keystore_pem(self) -> str:
        """Key and chain in one PEM text, the file keystore Kafka reads with type PEM."""
        try:
            key = self.key.read_text()
            chain = self.certificate.read_text()
            self.ca.read_text()
        except OSError as exc:
            raise BrokerError(f"the broker's TLS files cannot be read: {exc}") from None
        # Kafka parses only PKCS#8 keys ("BEGIN PRIVATE KEY"); say so instead of a Java trace.
        if "-----BEGIN PRIVATE KEY-----" not in key:
            raise BrokerError(f"{self.key} is not an unencrypted PKCS#8 PEM key")
        return key.rstrip("\n") + "\n" + chain


@dataclass(frozen=True)
class BrokerStatus:
    running: bool  # our process is alive
    answering: bool  # something answers Kafka metadata requests on the port
    pid: int | None
    bootstrap: str
    home: Path


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_metadata(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a Kafka broker at `bootstrap` answers a metadata request."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not _port_open(host or "localhost", int(port)):
        return False
    from confluent_kafka.admin import AdminClient

    quiet: dict[str, Any] = {"log_level": 0, "logger": _quiet}
    admin = AdminClient({"bootstrap.servers": bootstrap, **quiet})
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # KafkaException of any kind means: not answering yet
        return False
    return True


class _Quiet:
    def log(self, *args: object, **kwargs: object) -> None:
        """Drop librdkafka's connection chatter while probing."""


_quiet = _Quiet()


class LocalKafka:
    """One KRaft node (broker + controller) with its data under `home`."""

    def __init__(
        self,
        home: Path,
        *,
        port: int = 9092,
        controller_port: int = 9093,
        host: str = "localhost",
        dist_dir: Path | None = None,
        heap: str = "1g",
        sasl_port: int | None = None,
        scram_users: Sequence[ScramUser] = (),
        ssl_port: int | None = None,
        sasl_ssl_port: int | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.home = home.resolve()
        self.port = port
        self.controller_port = controller_port
        self.host = host
        self.dist_dir = (dist_dir or self.home / "dist").resolve()
        self.heap = heap
        # An extra SASL_PLAINTEXT listener (SCRAM-SHA-256/512 and PLAIN) for these users.
        self.sasl_port = sasl_port
        self.scram_users = tuple(scram_users)
        # An extra SSL listener that requires a client certificate (mTLS), and an extra
        # SASL_SSL listener (the same SASL mechanisms, over TLS, no client certificate).
        self.ssl_port = ssl_port
        self.sasl_ssl_port = sasl_ssl_port
        self.tls = tls
        if self.scram_users and sasl_port is None and sasl_ssl_port is None:
            raise BrokerError("SASL users need a SASL listener port")
        if (ssl_port is not None or sasl_ssl_port is not None) and tls is None:
            raise BrokerError("a TLS listener needs the broker's TLS files")
        # The broker we started from this process, kept so it is reaped when stopped.
        self._process: subprocess.Popen[bytes] | None = None

    # --- paths ---

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        """The SASL_PLAINTEXT listener's address, when there is one."""
        return None if self.sasl_port is None else f"{self.host}:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str | None:
        """The SSL (mTLS) listener's address, when there is one."""
        return None if self.ssl_port is None else f"{self.host}:{self.ssl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        """The SASL_SSL listener's address, when there is one."""
        return None if self.sasl_ssl_port is None else f"{self.host}:{self.sasl_ssl_port}"

    @property
    def libs(self) -> Path:
        return self.dist_dir / KAFKA_VERSION / "libs"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    # --- lifecycle ---

    def resolve(self) -> Path:
        """Download the broker's jars with Maven unless they are cached; return the libs dir."""
        if (self.libs / ".complete").exists():
            return self.libs
        if shutil.which("mvn") is None:
            raise BrokerError("Maven (mvn) is needed once to resolve Kafka; install it and retry")
        if shutil.which("java") is None:
            raise BrokerError("Java 17+ is needed to run Kafka; install it and retry")
        work = self.libs.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = work / _POM
        pom.write_bytes(resources.files("hookstream.broker").joinpath(_POM).read_bytes())
        staging = work / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                f"-Dkafka.version={KAFKA_VERSION}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise BrokerError("resolving Kafka with Maven failed:\n" + "\n".join(tail))
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        (self.libs / ".complete").write_text(KAFKA_VERSION)
        return self.libs

    def status(self) -> BrokerStatus:
        pid = self._pid()
        return BrokerStatus(
            running=pid is not None,
            answering=answers_metadata(self.bootstrap, timeout=2.0),
            pid=pid,
            bootstrap=self.bootstrap,
            home=self.home,
        )

    def start(self, timeout: float = 90.0) -> bool:
        """Start unless a broker already answers; True if this call started one."""
        if answers_metadata(self.bootstrap, timeout=2.0):
            self._check_sasl_listener()
            return False
        if self._pid() is not None:
            # Ours, but not answering yet (still starting): wait for it.
            self._wait_ready(timeout)
            return False
        ports = [self.port, self.controller_port, *self._extra_ports()]
        if any(_port_open(self.host, port) for port in ports):
            raise BrokerError(
                f"one of the ports {', '.join(map(str, ports))} is taken by something that is "
                "not a Kafka broker answering metadata requests"
            )
        self.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        formatted_now = not (self.data / "meta.properties").exists()
        if formatted_now:
            self._format(config)
        out = (self.logs / "broker.out").open("ab")
        process = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.home,
        )
        out.close()
        self._process = process
        self.pid_file.write_text(str(process.pid))
        try:
            self._wait_ready(timeout, process)
            if self.scram_users and not formatted_now:
                # Storage formatted before these users were asked for: add them now.
                self._upsert_scram_users()
        except BrokerError:
            self.stop()
            raise
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our broker and wait until it is gone; True if one was running."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        if self._process is not None:
            self._process.wait()
            self._process = None
        return True

    def tool(self, main_class: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's own command-line tools (e.g. the consumer-groups command)."""
        self.resolve()
        return subprocess.run(
            [*self._java(heap="256m", logs=False), main_class, *args],
            capture_output=True,
            text=True,
            check=False,
        )

    # --- internals ---

    def _java(self, heap: str | None = None, logs: bool = True) -> list[str]:
        log4j = self.home / _LOG4J
        if logs and not log4j.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            log4j.write_bytes(resources.files("hookstream.broker").joinpath(_LOG4J).read_bytes())
        command = [
            "java",
            f"-Xmx{heap or self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
        ]
        if logs:
            command += [f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.logs}"]
        else:
            command += ["-Dlog4j2.level=warn", "-Dlog4j2.rootLevel=warn"]
        return [*command, "-cp", str(self.libs / "*")]

    def _write_config(self) -> Path:
        config = self.home / "server.properties"
        if self._uses_tls:
            self._write_keystore()
        config.write_text(
            "\n".join(
                [
                    "# written by `hookstream kafka start`; edits are overwritten",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                    *self._listener_lines(),
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        return config

    def _extra_listeners(self) -> list[tuple[str, int]]:
        """The listeners asked for beside PLAINTEXT, each named after its security protocol."""
        ports = {
            "SASL_PLAINTEXT": self.sasl_port,
            "SSL": self.ssl_port,
            "SASL_SSL": self.sasl_ssl_port,
        }
        return [(name, port) for name, port in ports.items() if port is not None]

    def _extra_ports(self) -> list[int]:
        return [port for _, port in self._extra_listeners()]

    def _listener_lines(self) -> list[str]:
        """Listeners: PLAINTEXT (also between broker and controller), plus SASL and TLS ones
        when asked."""
        plain = f"PLAINTEXT://{self.host}:{self.port}"
        controller = f"CONTROLLER://{self.host}:{self.controller_port}"
        protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        extra = self._extra_listeners()
        if not extra:
            return [
                f"listeners={plain},{controller}",
                f"advertised.listeners={plain}",
                f"listener.security.protocol.map={protocols}",
            ]
        advertised = ",".join([plain, *(f"{name}://{self.host}:{port}" for name, port in extra)])
        lines = [
            f"listeners={advertised},{controller}",
            f"advertised.listeners={advertised}",
            f"listener.security.protocol.map={protocols},"
            + ",".join(f"{name}:{name}" for name, _ in extra),
        ]
        sasl_listeners = [name for name, _ in extra if name.startswith("SASL_")]
        if sasl_listeners:
            lines.append(f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}")
        for name in sasl_listeners:
            lines += self._sasl_lines(f"listener.name.{name.lower()}")
        if self._uses_tls:
            lines += self._tls_lines()
        return lines

    @property
    def _uses_tls(self) -> bool:
        return self.tls is not None and (
            self.ssl_port is not None or self.sasl_ssl_port is not None
        )

    @property
    def _keystore(self) -> Path:
        return self.home / "tls" / "broker-keystore.pem"

    def _write_keystore(self) -> None:
        assert self.tls is not None
        pem = self.tls.keystore_pem()
        self._keystore.parent.mkdir(parents=True, exist_ok=True)
        self._keystore.touch(mode=0o600)
        self._keystore.write_text(pem)

    def _sasl_lines(self, prefix: str) -> list[str]:
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain_users = " ".join(f'user_{u.name}="{u.password}"' for u in self.scram_users)
        return [
            f"{prefix}.scram-sha-256.sasl.jaas.config={scram}",
            f"{prefix}.scram-sha-512.sasl.jaas.config={scram}",
            f"{prefix}.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
        ]

    def _tls_lines(self) -> list[str]:
        """PEM stores for every TLS listener; only the SSL one demands a client certificate."""
        assert self.tls is not None
        lines = [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self._keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.tls.ca.resolve()}",
        ]
        if self.ssl_port is not None:
            lines.append("listener.name.ssl.ssl.client.auth=required")
        return lines

    def _scram_arguments(self) -> list[str]:
        return [
            argument
            for user in self.scram_users
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for argument in (
                "--add-scram",
                f"{mechanism}=[name={user.name},password={user.password}]",
            )
        ]

    def _upsert_scram_users(self) -> None:
        from confluent_kafka.admin import AdminClient

        # The package re-exports these without declaring them; mypy wants the defining module.
        from confluent_kafka.admin._scram import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialAlteration,
            UserScramCredentialUpsertion,
        )

        quiet: dict[str, Any] = {"log_level": 0, "logger": _quiet}
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **quiet})
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(
                user.name, ScramCredentialInfo(mechanism, 8192), user.password.encode()
            )
            for user in self.scram_users
            for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)
        ]
        for name, future in admin.alter_user_scram_credentials(upserts).items():
            try:
                future.result()
            except Exception as exc:  # KafkaException: report which user failed
                raise BrokerError(f"creating the SASL user {name} failed: {exc}") from None

    def _check_sasl_listener(self) -> None:
        for name, port in self._extra_listeners():
            if not _port_open(self.host, port):
                listener = "a SASL" if name == "SASL_PLAINTEXT" else f"an {name}"
                raise BrokerError(
                    f"a broker already answers on {self.bootstrap} without {listener} listener "
                    f"on port {port}; stop it and start again"
                )

    def _format(self, config: Path) -> None:
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the format tool would read it as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            [
                *self._java(heap="256m"),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(config),
                "--ignore-formatted",
                *self._scram_arguments(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError("formatting Kafka storage failed:\n" + result.stdout + result.stderr)

    def _wait_ready(self, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with status {process.returncode}; see {self.logs}/server.log"
                )
            if answers_metadata(self.bootstrap, timeout=2.0):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"the broker did not answer within {timeout:.0f}s; see {self.logs}/server.log"
        )

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and _is_kafka(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, not yet reaped) is not alive for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _is_kafka(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    return b"kafka.Kafka" in cmdline


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
