"""Order across retries (`ordering: entity`): an entity's later events park behind one in a
retry tier or the DLQ and follow it in order; other entities flow; restarts and
rebalances while lanes are parked lose nothing and keep order."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from hookstream.config import Settings
from hookstream.core import headers as h
from hookstream.kafka.clients import client_config, producer_config
from hookstream.kafka.topics import PARKED_TABLE, changelog_topic
from schemas import Envelope, encode_envelope
from tests.conftest import ROOT, STANDARD_SECRET
from tests.integration.test_console_app import operator_records
from tests.integration.test_lanes import kill, wait_for_no_lag

pytestmark = pytest.mark.integration

Planned = tuple[str, str, str]  # (source, entity, event id)


@dataclass
class FlakySink:
    """A destination that fails chosen events (503) a number of times, and records order."""

    url: str
    delay: float = 0.01
    failures: dict[str, int] = field(default_factory=dict)  # event id -> failures left; -1: all
    received: list[tuple[str, str, float]] = field(default_factory=list)  # entity, id, when
    refused: list[str] = field(default_factory=list)
    active: int = 0

    def delivered(self) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = defaultdict(list)
        for entity, event_id, _ in self.received:
            if event_id not in seen[entity]:
                seen[entity].append(event_id)
        return seen

    def when(self, event_id: str) -> float:
        return min(at for _, e, at in self.received if e == event_id)

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= (seen := {e for _, e, _ in self.received}):
            if time.monotonic() > deadline:
                missing = sorted(ids - seen)
                raise AssertionError(f"{len(missing)} never delivered, e.g. {missing[:5]}")
            await asyncio.sleep(0.2)


@pytest.fixture
async def flaky_sink(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[FlakySink]:
    port = unused_tcp_port_factory()
    sink = FlakySink(f"http://127.0.0.1:{port}/hooks")

    async def receive(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        event_id = request.headers["webhook-id"]
        sink.active += 1
        try:
            await asyncio.sleep(sink.delay)
        finally:
            sink.active -= 1
        left = sink.failures.get(event_id, 0)
        if left != 0:
            sink.failures[event_id] = left - 1 if left > 0 else left
            sink.refused.append(event_id)
            return web.Response(status=503)
        sink.received.append((body["entity"], event_id, time.monotonic()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield sink
    await runner.cleanup()


def produce(settings: Settings, plan: list[Planned]) -> None:
    """Put the planned records on the events topic in this order, as the ingress would."""
    producer = Producer(producer_config(settings, **{"linger.ms": 5}))
    for n, (source, entity, event_id) in enumerate(plan):
        body = json.dumps({"id": event_id, "entity": entity, "n": n}).encode()
        envelope = Envelope(
            event_id, source, entity, body, datetime.now(UTC), "invoice.paid", "application/json"
        )
        producer.produce(
            settings.topics.events,
            key=entity.encode(),
            value=encode_envelope(envelope),
            headers=h.event_headers(event_id, source, "invoice.paid"),
        )
        if n % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def ordering_settings(
    make_settings, sink: FlakySink, schedule: list[str], **worker: object
) -> tuple[Settings, object]:
    """Two sources alike but for `on_dead_letter`: `std` holds, `lax` skips."""
    std = {"scheme": "standard", "secrets": [STANDARD_SECRET]}
    return make_settings(
        sources={
            "std": {**std, "entity_id": "/data/customer", "on_dead_letter": "hold"},
            "lax": {**std, "entity_id": "/data/customer", "on_dead_letter": "skip"},
        },
        destinations={"sink": {"url": sink.url, "sources": ["std", "lax"], "timeout": "10s"}},
        retry={"schedule": schedule, "jitter": 0.0},
        worker=worker,
    )


def plan_of(
    entities: int, per_entity: int, tag: str, source_of: Callable[[int], str]
) -> list[Planned]:
    """Interleaved: event 0 of every entity, then event 1 of every entity, and so on."""
    return [
        (source_of(e), f"cus_{e:03d}", f"evt_{tag}_{e:03d}_{seq:03d}")
        for seq in range(per_entity)
        for e in range(entities)
    ]


def arrival_order(plan: list[Planned]) -> dict[str, list[str]]:
    expected: dict[str, list[str]] = defaultdict(list)
    for _, entity, event_id in plan:
        expected[entity].append(event_id)
    return expected


async def gauge(settings: Settings, name: str, labels: str) -> float | None:
    url = f"http://127.0.0.1:{settings.worker.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        text = await answer.text()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[1])
    return None


async def wait_for_gauge(settings: Settings, name: str, labels: str, want: float) -> None:
    deadline = time.monotonic() + 30
    got = None
    while time.monotonic() < deadline:
        got = await gauge(settings, name, labels)
        if got == want:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name}{{{labels}}} is {got}, not {want}")


def hookstream(config: object, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookstream.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


async def held_lanes(config: object) -> dict[tuple[str, str], dict[str, object]]:
    """`lanes list --json` once some lane is held (its blocker left the retry tiers)."""
    deadline = time.monotonic() + 60
    while True:
        listed = await asyncio.to_thread(hookstream, config, "lanes", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        lanes = {(lane["source"], lane["entity"]): lane for lane in json.loads(listed.stdout)}
        if any(lane["cause"] == "held" for lane in lanes.values()):
            return lanes
        assert time.monotonic() < deadline, f"no lane held: {lanes}"
        await asyncio.sleep(0.5)


@pytest.mark.timeout(240)
async def test_entities_keep_arrival_order_across_retries_and_dead_letters(
    make_settings, worker_process, flaky_sink
) -> None:
    """20 entities x 10 events: a retry that succeeds (cus_000), one that ends in the DLQ
    under `hold` (cus_001, later redriven) and under `skip` (cus_002): every entity's
    deliveries follow its arrival order, and the others are not held up by the retries."""
    settings, config = ordering_settings(make_settings, flaky_sink, ["3s", "3s"])
    plan = plan_of(20, 10, "ord", lambda e: "lax" if e == 2 else "std")
    retried, held, skipped = "evt_ord_000_002", "evt_ord_001_003", "evt_ord_002_005"
    flaky_sink.failures = {retried: 1, held: -1, skipped: -1}
    worker_process(settings, config)
    started = time.monotonic()
    await asyncio.to_thread(produce, settings, plan)
    expected = arrival_order(plan)
    clean = {e for _, entity, e in plan if entity not in ("cus_000", "cus_001", "cus_002")}

    await flaky_sink.wait_for(clean | set(expected["cus_000"]), timeout=60)
    # The retried event waited out its 3 s; the clean entities did not wait for it.
    assert flaky_sink.when(retried) - started >= 3.0
    assert max(flaky_sink.when(e) for e in clean) < flaky_sink.when(retried)
    # Skip: the dead-lettered event is passed over, the lane moves on in order.
    await flaky_sink.wait_for(set(expected["cus_002"]) - {skipped}, timeout=60)
    # Hold: nothing after the dead-lettered event is delivered; the rest are parked.
    await flaky_sink.wait_for(set(expected["cus_001"][:3]), timeout=30)
    await wait_for_gauge(settings, "hookstream_parked", 'source="std"', 6.0)
    assert not set(expected["cus_001"][3:]) & {e for _, e, _ in flaky_sink.received}

    lanes = await held_lanes(config)
    assert lanes[("std", "cus_001")]["blocked_by"] == held
    assert lanes[("std", "cus_001")]["cause"] == "held"
    assert lanes[("std", "cus_001")]["parked"] == 6
    shown = json.loads(hookstream(config, "events", "show", "evt_ord_001_005", "--json").stdout)
    assert shown["lane"] == {"state": "parked", "behind": held}

    # A redrive of the held event lets the lane go on: the held event, then the parked six.
    flaky_sink.failures[held] = 0
    redriven = hookstream(config, "dlq", "redrive", held)
    assert redriven.returncode == 0, redriven.stderr
    await flaky_sink.wait_for(set(expected["cus_001"]), timeout=60)
    await wait_for_no_lag(settings, timeout=30)

    delivered = flaky_sink.delivered()
    for entity, order in expected.items():
        want = [e for e in order if e != skipped]
        assert delivered[entity] == want, f"{entity}: {delivered[entity]} != {want}"
    audit = json.loads(hookstream(config, "events", "show", skipped, "--json").stdout)
    assert "lane_skipped" in [step["kind"] for step in audit["history"]]
    await wait_for_gauge(settings, "hookstream_parked", 'source="std"', 0.0)


@pytest.mark.timeout(240)
async def test_release_lets_a_held_lane_move_on(make_settings, worker_process, flaky_sink) -> None:
    settings, config = ordering_settings(make_settings, flaky_sink, ["1s"])
    plan = plan_of(3, 5, "rel", lambda e: "std")
    held = "evt_rel_001_001"
    flaky_sink.failures = {held: -1}
    worker_process(settings, config)
    await asyncio.to_thread(produce, settings, plan)
    expected = arrival_order(plan)
    await flaky_sink.wait_for(set(expected["cus_000"]) | set(expected["cus_002"]), timeout=60)
    await wait_for_gauge(settings, "hookstream_parked", 'source="std"', 3.0)
    assert hookstream(config, "lanes", "release", "std", "cus_000").returncode == 1  # not held
    released = hookstream(config, "lanes", "release", "std", "cus_001")
    assert released.returncode == 0, released.stderr
    await flaky_sink.wait_for(set(expected["cus_001"]) - {held}, timeout=60)
    assert flaky_sink.delivered()["cus_001"] == [e for e in expected["cus_001"] if e != held]
    audit = json.loads(hookstream(config, "events", "show", held, "--json").stdout)
    assert "lane_released" in [step["kind"] for step in audit["history"]]
    releases = [e for e in operator_records(settings) if e["operator_action"] == "release"]
    assert [(e["target"], e["blocked_by"]) for e in releases] == [("std/cus_001", held)]
    assert releases[0]["by"].startswith("cli:")
    await wait_for_no_lag(settings, timeout=30)


@pytest.mark.timeout(420)
async def test_parked_lanes_survive_a_rebalance_and_a_sigkill(
    make_settings, worker_process, flaky_sink
) -> None:
    """Hundreds in flight and lanes parked when a second worker joins and the first is
    SIGKILLed: every event is delivered, each entity in arrival order, and the group's
    committed offsets reach the end of the topic."""
    flaky_sink.delay = 0.2
    settings, config = ordering_settings(make_settings, flaky_sink, ["4s", "4s"], max_in_flight=300)
    plan = plan_of(300, 4, "kill", lambda e: "std")
    # Every tenth entity's first event fails once: 30 lanes blocked, 90 records parked.
    flaky_sink.failures = {f"evt_kill_{e:03d}_000": 1 for e in range(0, 300, 10)}
    await asyncio.to_thread(produce, settings, plan)
    first = worker_process(settings, config)
    async with asyncio.timeout(60):
        while flaky_sink.active < 50 or len(flaky_sink.refused) < 10:
            await asyncio.sleep(0.05)
    in_flight = flaky_sink.active
    worker_process(settings, config)  # joins: the group rebalances with lanes parked
    await asyncio.sleep(1.0)
    assert first.process is not None
    kill(first.process)
    await flaky_sink.wait_for({e for _, _, e in plan}, timeout=240)
    await wait_for_no_lag(settings, timeout=60)
    expected = arrival_order(plan)
    delivered = flaky_sink.delivered()
    for entity, order in expected.items():
        assert delivered[entity] == order, f"{entity}: {delivered[entity]} != {order}"
    duplicates = len(flaky_sink.received) - len(plan)
    print(f"SIGKILL with {in_flight} requests in flight: {duplicates} duplicate deliveries")


@pytest.mark.timeout(120)
async def test_a_worker_without_the_lane_tables_topics_refuses_to_start(
    make_settings, flaky_sink
) -> None:
    """An upgrade that did not run `hookstream topics create`: the worker says what is
    missing and exits, rather than wait for Faust's tables forever."""
    settings, config = ordering_settings(make_settings, flaky_sink, ["1s"])
    missing = changelog_topic(settings, PARKED_TABLE)
    admin = AdminClient(client_config(settings))
    admin.delete_topics([missing], operation_timeout=10)[missing].result()
    deadline = time.monotonic() + 30
    while missing in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    started = await asyncio.to_thread(hookstream, config, "worker")
    assert started.returncode == 1, started.stdout + started.stderr
    assert missing in started.stderr
    assert "hookstream topics create" in started.stderr
