"""`docker compose up` of Kafka, the topics job, ingress, worker and Jaeger, for real.

The stack runs from the project's docker-compose.yml with tests/e2e/compose.e2e.yml
merged over it (loopback ports, the locally built Jaeger). A signed webhook sent
to the published ingress port is delivered, its trace is in Jaeger, the host CLI
reads the stack's Kafka, and `down -v` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest

from .conftest import HOOKSTREAM, ROOT, eventually, jaeger_trace, run, span_services, tool

CONFIG = ROOT / "deploy" / "compose" / "hookstream.yaml"
INGRESS = "http://127.0.0.1:18080"
JAEGER = "http://127.0.0.1:16687"
KAFKA_FROM_HOST = "localhost:19094"
SERVICES = ("kafka", "topics", "ingress", "worker", "jaeger")


def compose(*args: str, timeout: float = 300, check: bool = True) -> str:
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "tests/e2e/compose.e2e.yml")]
    return run(tool("docker-compose"), *files, *args, timeout=timeout, check=check)


def states() -> dict[str, dict[str, str]]:
    """Each container of the project: its state and health."""
    out = compose("ps", "--all", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {
        row["Service"]: {"state": row["State"], "health": row.get("Health", "")} for row in rows
    }


def engine_objects() -> set[str]:
    """Every container, volume (anonymous ones too) and network of the engine."""
    found = set()
    for kind in ("ps -a", "volume ls", "network ls"):
        out = run("docker", *kind.split(), "--quiet")
        found |= {f"{kind.split()[0]}:{name}" for name in out.split()}
    return found


BEFORE: set[str] = set()


@pytest.fixture(scope="module")
def stack() -> Iterator[None]:
    compose("down", "-v", "--remove-orphans", check=False)
    BEFORE.update(engine_objects())
    compose("up", "-d", "--build", *SERVICES, timeout=900)
    try:
        eventually(
            "ingress and worker to be healthy",
            lambda: all(
                states().get(s, {}).get("health") == "healthy" for s in ("ingress", "worker")
            ),
            timeout=240,
            every=3,
        )
        yield
    finally:
        print(compose("logs", "--no-color", "--tail", "60", check=False)[-20000:])
        compose("down", "-v", "--remove-orphans", timeout=180)


def test_topics_job_completed_and_services_run_read_only_as_non_root(stack: None) -> None:
    current = states()
    assert current["topics"]["state"] == "exited"
    assert (
        "exited (0)"
        in run(
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=com.docker.compose.service=topics",
            "--format",
            "{{.Status}}",
        ).lower()
    )
    for service in ("ingress", "worker"):
        container = compose("ps", "-q", service).strip()
        inspect = json.loads(run("docker", "inspect", container))[0]
        assert inspect["Config"]["User"] == "10001:10001", service
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True, service
        assert inspect["HostConfig"]["CapDrop"] == ["ALL"], service


def test_signed_webhook_on_the_published_port_is_delivered_and_traced(stack: None) -> None:
    event_id = f"evt_compose_{uuid.uuid4().hex[:12]}"
    sent = run(
        HOOKSTREAM, "send", "example", "--config", CONFIG, "--url", INGRESS, "--event-id", event_id
    )
    assert sent.startswith("202"), sent

    def delivered() -> dict[str, object] | None:
        out = compose(
            "exec", "-T", "worker", "hookstream", "events", "show", event_id, "--json", check=False
        )
        shown = json.loads(out) if out.strip().startswith("{") else None
        return shown if shown and shown["state"] == "delivered" else None

    shown = eventually(f"{event_id} to be delivered", delivered, timeout=90, every=3)
    trace = eventually(
        f"trace {shown['trace_id']} in Jaeger",
        lambda: (
            (t := jaeger_trace(JAEGER, str(shown["trace_id"])))
            and len(set(span_services(t).values())) >= 2
            and t
        ),
        timeout=60,
    )
    services = set(span_services(trace).values())
    assert any("ingress" in s for s in services), services
    assert any("worker" in s for s in services), services


def test_host_cli_reads_the_stacks_kafka(stack: None) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": KAFKA_FROM_HOST}
    out = run(HOOKSTREAM, "dlq", "list", "--config", CONFIG, "--json", env=env, timeout=60)
    assert json.loads(out) == []


def test_down_leaves_nothing_behind(stack: None) -> None:
    compose("down", "-v", "--remove-orphans", timeout=180)
    assert engine_objects() - BEFORE == set()
