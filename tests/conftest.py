"""Shared fixtures. Integration tests use one real Kafka broker per session: the local
launcher's (started if nothing answers), or the one --kafka-bootstrap names."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookstream.broker import LocalKafka
from hookstream.broker.local import answers_metadata
from hookstream.config import Settings, load_settings
from hookstream.kafka.admin import create_topics
from hookstream.kafka.clients import client_config
from hookstream.kafka.topics import topic_specs

ROOT = Path(__file__).resolve().parent.parent

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HMAC_SECRET = "partner-test-secret"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kafka-bootstrap",
        default=os.environ.get("HOOKSTREAM_TEST_BOOTSTRAP"),
        help="Use this Kafka instead of starting the local broker.",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """A real broker for the session. Never skipped: without a broker the test fails."""
    given = request.config.getoption("--kafka-bootstrap")
    if given:
        if not answers_metadata(given, timeout=10):
            pytest.fail(f"no Kafka broker answers at {given}")
        yield given
        return
    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    try:
        started = broker.start()
    except Exception as exc:
        pytest.fail(f"could not start the local Kafka broker: {exc}")
    yield broker.bootstrap
    if started:
        broker.stop()


def base_config(bootstrap: str, data_dir: Path, /, **sections: Any) -> dict[str, Any]:
    """A config with unique topics and group, so tests never see each other's records."""
    tag = uuid.uuid4().hex[:10]
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"events": f"test.{tag}.events", "partitions": 3},
        "retry": {"schedule": ["1s", "2s", "3s"], "jitter": 0.0},
        "ingress": {"host": "127.0.0.1", "port": free_port(), "produce_timeout": "5s"},
        "worker": {"group_id": f"test-{tag}", "host": "127.0.0.1", "port": free_port()},
        "sources": {
            "std": {
                "scheme": "standard",
                "secrets": [STANDARD_SECRET],
                "entity_id": "/data/customer",
            },
            "partner": {
                "scheme": "hmac",
                "secrets": [HMAC_SECRET],
                "header": "X-Signature",
                "prefix": "sha256=",
                "event_id": "header:X-Event-Id",
            },
        },
        "destinations": {},
        "data_dir": str(data_dir),
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(config: dict[str, Any], path: Path) -> Settings:
    path.write_text(yaml.safe_dump(config))
    return load_settings(path, environ={})


def another_worker_config(path: Path, name: str, data_dir: Path | None) -> tuple[Path, Settings]:
    """A copy of a config for another worker of the same group on this host: its own metrics
    port and, given `data_dir`, its own state (as each pod has its own volume)."""
    config = yaml.safe_load(path.read_text())
    config["worker"]["port"] = free_port()
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        config["data_dir"] = str(data_dir)
    copy = path.with_name(f"{path.stem}-{name}.yaml")
    return copy, write_config(config, copy)


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[Settings, Path]]]:
    """Build settings (unique topics, created on the broker); returns them and the config file.
    The topics are deleted afterwards, so a long-lived local broker stays small."""
    counter = iter(range(1000))
    built: list[Settings] = []

    def build(**sections: Any) -> tuple[Settings, Path]:
        n = next(counter)
        data = tmp_path / f"data{n}"
        data.mkdir()
        path = tmp_path / f"hookstream{n}.yaml"
        settings = write_config(base_config(kafka_bootstrap, data, **sections), path)
        create_topics(settings)
        built.append(settings)
        return settings, path

    yield build
    for settings in built:
        delete_topics(settings)


def delete_topics(settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(settings))
    names = [spec.name for spec in topic_specs(settings)]
    for future in admin.delete_topics(names, operation_timeout=10).values():
        with contextlib.suppress(Exception):  # already gone, or the broker was stopped
            future.result()


class WorkerProcess:
    """`hookstream worker` as a real subprocess."""

    def __init__(
        self,
        config: Path,
        settings: Settings,
        log: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.settings = settings
        self.log = log
        self.env = env  # the whole environment of the process; None inherits the test's
        self.args = list(args)  # more options of `hookstream worker`, e.g. --log-level
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hookstream.cli",
                    "worker",
                    "--config",
                    str(self.config),
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.env,
            )
        wait_for_group(self.settings, timeout, self.process)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for_group(settings: Settings, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Wait until the worker's consumer group is stable with the events topic assigned."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(settings))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}")
        futures = admin.describe_consumer_groups([settings.worker.group_id], request_timeout=5)
        try:
            group = futures[settings.worker.group_id].result()
        except Exception:
            group = None
        if group is not None and group.state == ConsumerGroupState.STABLE:
            topics = {
                tp.topic
                for member in group.members
                for tp in (member.assignment.topic_partitions or [])
            }
            if settings.topics.events in topics:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the worker's group did not become stable within {timeout}s")


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(
        settings: Settings,
        config: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> WorkerProcess:
        worker = WorkerProcess(config, settings, tmp_path / f"worker{len(started)}.log", env, args)
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()
