"""`kafka.client` security settings reach every client: a broker of our own with a SASL SCRAM
listener, the ingress's producer (confluent-kafka) and a real worker process (Faust/aiokafka)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from hookstream.broker import LocalKafka
from hookstream.broker.local import ScramUser, answers_metadata
from hookstream.config import Settings
from hookstream.kafka.admin import create_topics
from hookstream.kafka.clients import client_config
from tests.conftest import ROOT, base_config, free_port, write_config
from tests.integration.test_end_to_end import assert_enqueue_refused, event_body, post_signed

pytestmark = pytest.mark.integration

USER = ScramUser("alice", "alice-s3cret")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A second broker, PLAINTEXT plus a SASL_PLAINTEXT listener with one SCRAM user."""
    broker = LocalKafka(
        tmp_path_factory.mktemp("sasl") / "kafka",
        port=free_port(),
        controller_port=free_port(),
        sasl_port=free_port(),
        scram_users=[USER],
        dist_dir=ROOT / ".hookstream" / "kafka" / "dist",
        heap="512m",
    )
    try:
        broker.start()
    except Exception as exc:
        broker.stop()
        pytest.fail(f"could not start the SASL broker: {exc}")
    yield broker
    broker.stop()


def scram_client(mechanism: str, password: str) -> dict[str, Any]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": USER.name,
        "sasl.password": password,
    }


class Worker:
    """`hookstream worker` as a subprocess; ready when its group is stable (asked over SASL)."""

    def __init__(self, settings: Settings, config: Path, log: Path) -> None:
        self.settings = settings
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.log = log

    def group_state(self, admin_settings: Settings) -> Any:
        admin = AdminClient(client_config(admin_settings))
        group_id = self.settings.worker.group_id
        try:
            return admin.describe_consumer_groups([group_id], request_timeout=5)[group_id].result()
        except Exception:  # not known yet
            return None

    def wait_stable(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.output()}")
            group = self.group_state(self.settings)
            if group is not None and group.state == ConsumerGroupState.STABLE:
                assigned = {
                    tp.topic for m in group.members for tp in m.assignment.topic_partitions or []
                }
                if self.settings.topics.events in assigned:
                    return
            time.sleep(0.5)
        raise AssertionError(f"the worker's group was not stable in {timeout}s:\n{self.output()}")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Settings, Path], Worker]]:
    started: list[Worker] = []

    def start(settings: Settings, config: Path) -> Worker:
        worker = Worker(settings, config, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def sasl_settings(
    broker: LocalKafka, tmp_path: Path, name: str, client: dict[str, Any], **sections: Any
) -> tuple[Settings, Path]:
    assert broker.sasl_bootstrap is not None
    data = tmp_path / name
    data.mkdir()
    config = base_config(
        broker.sasl_bootstrap,
        data,
        kafka={"bootstrap_servers": broker.sasl_bootstrap, "client": client},
        **sections,
    )
    path = tmp_path / f"{name}.yaml"
    return write_config(config, path), path


def same_pipeline(
    config: Path, tmp_path: Path, name: str, client: dict[str, Any]
) -> tuple[Settings, Path]:
    """A copy of a config (same topics, group, sink) with other client settings."""
    raw = yaml.safe_load(config.read_text())
    raw["kafka"]["client"] = client
    raw["data_dir"] = str(tmp_path / name)
    (tmp_path / name).mkdir()
    path = tmp_path / f"{name}.yaml"
    return write_config(raw, path), path


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_scram_credentials_carry_an_event_from_ingress_through_a_worker(
    mechanism: str,
    sasl_broker: LocalKafka,
    tmp_path: Path,
    sink: Any,
    ingress_url: Any,
    workers: Any,
) -> None:
    assert sasl_broker.sasl_bootstrap is not None
    # The listener really demands SASL: a PLAINTEXT client gets no metadata from it.
    assert not answers_metadata(sasl_broker.sasl_bootstrap, timeout=3)
    settings, config = sasl_settings(
        sasl_broker,
        tmp_path,
        "good",
        scram_client(mechanism, USER.password),
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "5s"}},
    )
    states = create_topics(settings)
    assert all(s.exists for s in states)
    worker = workers(settings, config)
    await asyncio.to_thread(worker.wait_stable, 60)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        for n in range(3):
            body = event_body(f"evt_sasl_{n}", "cus_1", n)
            assert await post_signed(session, base, settings, "std", f"evt_sasl_{n}", body) == 202
    await sink.wait_for(3, timeout=30)
    assert sink.ids() == ["evt_sasl_0", "evt_sasl_1", "evt_sasl_2"]
    assert worker.stop() == 0, worker.output()


async def test_a_wrong_password_gets_no_202_and_consumes_nothing(
    sasl_broker: LocalKafka, tmp_path: Path, sink: Any, ingress_url: Any, workers: Any
) -> None:
    good, good_config = sasl_settings(
        sasl_broker,
        tmp_path,
        "good",
        scram_client("SCRAM-SHA-256", USER.password),
        ingress={"produce_timeout": "3s"},
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "5s"}},
    )
    create_topics(good)
    wrong_client = scram_client("SCRAM-SHA-256", "not-the-password")
    bad, bad_config = same_pipeline(good_config, tmp_path, "bad", wrong_client)

    good_base, bad_base = await ingress_url(good), await ingress_url(bad)
    async with aiohttp.ClientSession() as session:
        await assert_enqueue_refused(session, bad_base, bad, "evt_refused", deadline=3)
        # The same event through the right credentials is accepted: it waits in the topic.
        body = event_body("evt_waiting", "cus_2", 1)
        assert await post_signed(session, good_base, good, "std", "evt_waiting", body) == 202

    wrong = workers(bad, bad_config)
    # aiokafka (Faust's client) itself is refused by the broker's SCRAM check, after the
    # start-up topic check (up to 10 s against a cluster that refuses it) lets it through.
    deadline = time.monotonic() + 60
    while "SaslAuthenticationFailed" not in wrong.output() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert "SaslAuthenticationFailed" in wrong.output(), wrong.output()
    await asyncio.sleep(3)
    assert sink.ids() == []
    group = wrong.group_state(good)
    assert group is None or not group.members, f"a member joined with a wrong password: {group}"
    # It gives up rather than running without its consumer.
    assert await asyncio.to_thread(wrong.process.wait, 30) == 1

    # Not consumed only for want of credentials: the right ones deliver it.
    right = workers(good, good_config)
    await asyncio.to_thread(right.wait_stable, 60)
    await sink.wait_for(1, timeout=30)
    assert sink.ids() == ["evt_waiting"]
