"""The standalone overlay on a real one-node Kubernetes, as docs/deploy.md walks it.

`make e2e` starts the cluster (tests/e2e/tooling/cluster.sh) and loads the
images. This module adds what a real cluster already has or what the overlay
expects around it (DNS, a Jaeger in `observability`, the `billing` destination
of the config), then applies `k8s/overlays/standalone` exactly as a user would
and checks the pipeline: pods Ready under the manifests' securityContext and
probes, a signed webhook through the ingress Service delivered, a retried
event's whole trace in Jaeger, the DLQ, a rolling restart of the worker under a
stream of events with nothing lost, and a replay as the runbook does it.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    HOOKSTREAM,
    ROOT,
    eventually,
    http,
    jaeger_trace,
    run,
    span_services,
    stripe_headers,
)

OVERLAY = ROOT / "k8s" / "overlays" / "standalone"
AROUND = ROOT / "tests" / "e2e" / "k8s"
NS = "hookstream"
# The development secret the standalone overlay generates for the stripe source.
STRIPE_SECRET = "whsec_ZGV2LW9ubHktc3RyaXBlLXNlY3JldA=="


def kubectl(*args: str, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
    return run("kubectl", *args, timeout=timeout, check=check, input=stdin)


def exec_hookstream(pod: str, *args: str, timeout: float = 90) -> str:
    """`kubectl exec` of a hookstream command in a pod of the namespace."""
    return kubectl("exec", "-n", NS, pod, "--", "hookstream", *args, timeout=timeout)


def apply_around() -> None:
    versions = {
        "JAEGER_VERSION": os.environ["JAEGER_VERSION"],
        "COREDNS_VERSION": os.environ["COREDNS_VERSION"],
    }
    for path in sorted(AROUND.glob("*.yaml")):
        text = path.read_text()
        for key, value in versions.items():
            text = text.replace(key, value)
        kubectl("apply", "-f", "-", stdin=text)


def diagnostics() -> str:
    parts = []
    for args in (
        ("get", "pods", "-A", "-o", "wide"),
        ("get", "events", "-A", "--sort-by=.lastTimestamp"),
        ("get", "pvc", "-A"),
    ):
        parts.append(kubectl(*args, check=False)[-6000:])
    for namespace, workload in (
        (NS, "deployment/hookstream-ingress"),
        (NS, "statefulset/hookstream-worker"),
        (NS, "job/hookstream-topics"),
        ("kafka", "statefulset/kafka"),
    ):
        parts.append(
            f"--- logs {namespace}/{workload}\n"
            + kubectl("logs", "-n", namespace, workload, "--tail=40", check=False)[-6000:]
        )
    return "\n".join(parts)


def stripe_event(event_id: str, customer: str, mode: str | None = None) -> bytes:
    """An invoice event as Stripe sends it; `mode` tells the recorder how to answer."""
    obj: dict[str, Any] = {"id": f"in_{event_id}", "object": "invoice", "customer": customer}
    if mode:
        obj["e2e"] = mode
    event = {"id": event_id, "object": "event", "type": "invoice.paid", "data": {"object": obj}}
    return json.dumps(event).encode()


def recorded() -> list[dict[str, Any]]:
    """Every request the billing destination received, in order."""
    out = kubectl("logs", "-n", "billing", "deployment/billing", "--tail=-1")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def delivered_ids() -> Counter[str]:
    return Counter(r["webhook_id"] for r in recorded() if r["status"] == 200)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """The overlay applied and Ready; the ingress and Jaeger query Service addresses."""
    try:
        apply_around()
        kubectl(
            "rollout",
            "status",
            "-n",
            "kube-system",
            "deployment/coredns",
            "--timeout=180s",
            timeout=200,
        )
        kubectl("apply", "-k", str(OVERLAY))
        kubectl(
            "rollout", "status", "-n", "kafka", "statefulset/kafka", "--timeout=300s", timeout=320
        )
        kubectl(
            "wait",
            "-n",
            NS,
            "job/hookstream-topics",
            "--for=condition=Complete",
            "--timeout=300s",
            timeout=320,
        )
        kubectl(
            "rollout",
            "status",
            "-n",
            NS,
            "deployment/hookstream-ingress",
            "--timeout=300s",
            timeout=320,
        )
        kubectl(
            "rollout",
            "status",
            "-n",
            NS,
            "statefulset/hookstream-worker",
            "--timeout=300s",
            timeout=320,
        )
        for namespace, name in (("observability", "jaeger"), ("billing", "billing")):
            kubectl(
                "rollout",
                "status",
                "-n",
                namespace,
                f"deployment/{name}",
                "--timeout=180s",
                timeout=200,
            )
        ingress_ip = kubectl(
            "get", "service", "-n", NS, "hookstream-ingress", "-o", "jsonpath={.spec.clusterIP}"
        )
        query_ip = kubectl(
            "get",
            "service",
            "-n",
            "observability",
            "jaeger-query",
            "-o",
            "jsonpath={.spec.clusterIP}",
        )
        yield {"ingress": f"http://{ingress_ip}", "jaeger": f"http://{query_ip}:16686"}
    except BaseException:
        print(diagnostics())
        raise


@pytest.fixture(scope="module")
def sender_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hookstream.yaml for `hookstream send` on the host, with the overlay's stripe secret."""
    path = tmp_path_factory.mktemp("sender") / "hookstream.yaml"
    path.write_text(f"sources:\n  stripe:\n    scheme: stripe\n    secrets: [{STRIPE_SECRET}]\n")
    return path


def send(base_url: str, event_id: str, customer: str = "cus_e2e", mode: str | None = None) -> int:
    body = stripe_event(event_id, customer, mode)
    status, _ = http(
        "POST", f"{base_url}/webhooks/stripe", body, stripe_headers(STRIPE_SECRET, body)
    )
    return status


def test_pods_run_under_the_manifests_security_context(cluster: dict[str, str]) -> None:
    pods = json.loads(kubectl("get", "pods", "-n", NS, "-o", "json"))["items"]
    running = [p for p in pods if p["status"]["phase"] == "Running"]
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in running} == {
        "console",
        "ingress",
        "worker",
    }
    for pod in running:
        name = pod["metadata"]["name"]
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), name
        assert kubectl("exec", "-n", NS, name, "--", "id", "-u").strip() == "10001", name
        # The root filesystem is read-only; /tmp (and the worker's data dir) are not.
        probe = "touch /opt/x 2>/dev/null && echo rw || echo ro; touch /tmp/x && echo tmp-ok"
        assert kubectl("exec", "-n", NS, name, "--", "sh", "-c", probe).split() == [
            "ro",
            "tmp-ok",
        ], name
    worker_files = kubectl(
        "exec", "-n", NS, "hookstream-worker-0", "--", "ls", "-A", "/var/lib/hookstream"
    )
    assert worker_files.strip(), "the worker keeps its RocksDB state on the volume claim"
    namespace = json.loads(kubectl("get", "namespace", NS, "-o", "json"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def connects(namespace: str, workload: str, host: str, port: int) -> bool:
    """Whether a TCP connection from a pod of the workload to host:port succeeds."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=4).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    status = subprocess.run(
        ["kubectl", "exec", "-n", namespace, workload, "--", "python", "-c", probe],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return status.returncode == 0


def test_network_policies_are_enforced(cluster: dict[str, str]) -> None:
    """The manifests' NetworkPolicies let the pipeline work and keep everything else out."""
    worker_ip = kubectl(
        "get", "pod", "-n", NS, "hookstream-worker-0", "-o", "jsonpath={.status.podIP}"
    )
    kafka_ip = kubectl("get", "pod", "-n", "kafka", "kafka-0", "-o", "jsonpath={.status.podIP}")
    ingress = "deployment/hookstream-ingress"
    # What the ingress needs: DNS (through the kube-dns rule) and Kafka.
    assert connects(NS, ingress, "kafka.kafka.svc", 9092)
    # What it does not: any other destination (its egress is DNS, Kafka, traces).
    assert not connects(NS, ingress, "billing.billing.svc", 80)
    # From another namespace: not the worker's metrics (only `monitoring`), not Kafka.
    assert connects("billing", "deployment/billing", "billing.billing.svc", 80)
    assert not connects("billing", "deployment/billing", worker_ip, 6066)
    assert not connects("billing", "deployment/billing", kafka_ip, 9092)


def test_signed_webhook_through_the_ingress_service_is_delivered(
    cluster: dict[str, str], sender_config: Path
) -> None:
    event_id = f"evt_k8s_{uuid.uuid4().hex[:12]}"
    payload = sender_config.parent / "invoice.json"
    payload.write_bytes(stripe_event(event_id, "cus_first"))
    out = run(
        HOOKSTREAM,
        "send",
        "stripe",
        payload,
        "--config",
        sender_config,
        "--url",
        cluster["ingress"],
    )
    assert out.startswith("202"), out
    eventually(
        f"{event_id} at the billing destination", lambda: delivered_ids()[event_id], timeout=90
    )
    shown = json.loads(exec_hookstream("hookstream-worker-0", "events", "show", event_id, "--json"))
    assert shown["state"] == "delivered"
    print(exec_hookstream("hookstream-worker-0", "events", "show", event_id))


def test_port_forward_to_the_ingress_answers(cluster: dict[str, str]) -> None:
    """What docs/deploy.md tells a user to do to try the ingress from their machine."""
    forward = subprocess.Popen(
        ["kubectl", "port-forward", "-n", NS, "service/hookstream-ingress", "18082:80"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        status = eventually(
            "port-forward",
            lambda: http("GET", "http://127.0.0.1:18082/readyz")[0] == 200,
            timeout=30,
            every=1,
        )
        assert status
        unsigned = http(
            "POST",
            "http://127.0.0.1:18082/webhooks/stripe",
            b"{}",
            {"Content-Type": "application/json"},
        )
        assert unsigned[0] == 401
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_retried_event_is_one_trace_in_jaeger(cluster: dict[str, str]) -> None:
    event_id = f"evt_k8s_retry_{uuid.uuid4().hex[:12]}"
    assert send(cluster["ingress"], event_id, "cus_retry", mode="fail-once") == 202
    # retry.schedule starts at 30s (± 20 % jitter).
    eventually(
        f"{event_id} delivered after a retry",
        lambda: delivered_ids()[event_id],
        timeout=120,
        every=3,
    )
    attempts = [r for r in recorded() if r["webhook_id"] == event_id]
    assert [r["status"] for r in attempts] == [503, 200]
    shown = json.loads(exec_hookstream("hookstream-worker-0", "events", "show", event_id, "--json"))
    trace_id = shown["trace_id"]
    assert {r["traceparent"].split("-")[1] for r in attempts} == {trace_id}

    def whole_trace() -> dict[str, Any] | None:
        trace = jaeger_trace(cluster["jaeger"], trace_id)
        if not trace:
            return None
        names = [s["operationName"] for s in trace["spans"]]
        # Spans arrive in batches from two services; wait for the second attempt's.
        return (
            trace
            if names.count("deliver billing") >= 2 and any("retry" in n for n in names)
            else None
        )

    trace = eventually(f"trace {trace_id} with its retry hop in Jaeger", whole_trace, timeout=60)
    services = span_services(trace)
    processes = {key: p["serviceName"] for key, p in trace["processes"].items()}
    for span in sorted(trace["spans"], key=lambda span: span["startTime"]):
        print(f"{processes[span['processID']]:<20}{span['operationName']}")
    # Every hop, in one trace: the request, the publish, the first attempt, the
    # retry tier and the second attempt (each with its outgoing POST).
    assert services["POST /webhooks/{source}"] == "hookstream-ingress"
    assert services["webhooks.events publish"] == "hookstream-ingress"
    assert services["webhooks.events process"] == "hookstream-worker"
    assert services["webhooks.events.retry.0 publish"] == "hookstream-worker"
    assert services["webhooks.events.retry.0 process"] == "hookstream-worker"
    names = [span["operationName"] for span in trace["spans"]]
    assert names.count("deliver billing") == 2, names


def test_permanent_failure_is_listed_in_the_dlq(cluster: dict[str, str]) -> None:
    event_id = f"evt_k8s_dlq_{uuid.uuid4().hex[:12]}"
    assert send(cluster["ingress"], event_id, "cus_dlq", mode="reject") == 202

    def listed() -> dict[str, Any] | None:
        items = json.loads(exec_hookstream("hookstream-worker-0", "dlq", "list", "--json"))
        return next((i for i in items if i["event_id"] == event_id), None)

    item = eventually(f"{event_id} in `hookstream dlq list`", listed, timeout=90, every=3)
    print(exec_hookstream("hookstream-worker-0", "dlq", "list"))
    assert item["source"] == "stripe"
    assert item["last_error"]


def test_rolling_restart_of_workers_under_a_stream_loses_nothing(cluster: dict[str, str]) -> None:
    accepted: list[str] = []
    refused = Counter[int]()
    stop = threading.Event()

    def stream() -> None:
        # A sender: 4 events a second, each retried on 503 as a provider would.
        n = 0
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            event_id = f"evt_k8s_roll_{n:04d}_{uuid.uuid4().hex[:6]}"
            for _ in range(10):
                status = send(cluster["ingress"], event_id, f"cus_roll_{n % 7}")
                if status == 202:
                    accepted.append(event_id)
                    break
                refused[status] += 1
                time.sleep(0.5)
            n += 1
            time.sleep(0.25)

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    try:
        time.sleep(5)
        kubectl("rollout", "restart", "-n", NS, "statefulset/hookstream-worker")
        kubectl(
            "rollout",
            "status",
            "-n",
            NS,
            "statefulset/hookstream-worker",
            "--timeout=300s",
            timeout=320,
        )
        time.sleep(10)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert len(accepted) >= 40, (len(accepted), refused)
    missing = eventually(
        f"all {len(accepted)} accepted events at the destination",
        lambda: not (set(accepted) - set(delivered_ids())) or None,
        timeout=180,
        every=5,
    )
    assert missing
    counts = delivered_ids()
    duplicates = sum(counts[e] - 1 for e in accepted)
    print(
        f"rolling restart: {len(accepted)} accepted, {dict(refused)} refused then retried, {duplicates} duplicate deliveries"
    )
    assert duplicates <= len(accepted) // 4


def test_replay_as_the_runbook_does_it(cluster: dict[str, str]) -> None:
    """Stop the workers, move the group's offsets back, start them: already delivered events are skipped."""
    before = delivered_ids()
    kubectl("scale", "-n", NS, "statefulset/hookstream-worker", "--replicas=0")
    kubectl(
        "wait", "-n", NS, "pod/hookstream-worker-0", "--for=delete", "--timeout=180s", timeout=200
    )
    ingress_pod = "deployment/hookstream-ingress"
    dry = exec_hookstream(ingress_pod, "replay", "--group", "hookstream", "--to-earliest")
    executed = eventually(
        "replay --execute once the group has no live members",
        lambda: exec_hookstream(
            ingress_pod, "replay", "--group", "hookstream", "--to-earliest", "--execute"
        ),
        timeout=90,
        every=5,
    )
    print("replay dry run:\n", dry, "\nexecuted:\n", executed)
    kubectl("scale", "-n", NS, "statefulset/hookstream-worker", "--replicas=1")
    kubectl(
        "rollout",
        "status",
        "-n",
        NS,
        "statefulset/hookstream-worker",
        "--timeout=300s",
        timeout=320,
    )

    def caught_up() -> bool:
        plan = exec_hookstream(
            ingress_pod, "replay", "--group", "hookstream", "--to-latest", "--json"
        )
        return all(move["current"] == move["high"] for move in json.loads(plan))

    eventually("the worker to read the replayed range", caught_up, timeout=180, every=5)
    time.sleep(5)
    after = delivered_ids()
    assert after == before, "replayed events that were already delivered must be skipped"
    metrics = kubectl(
        "exec",
        "-n",
        NS,
        "hookstream-worker-0",
        "--",
        "python",
        "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:6066/metrics').read().decode())",
    )
    skipped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("hookstream_events_total{") and 'outcome="duplicate"' in line
    )
    print(f"replay: {skipped:.0f} replayed events skipped as duplicates")
    assert skipped >= len(before), "the restarted worker read the replayed range"
