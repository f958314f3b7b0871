"""Lanes: many entities in flight at once, each in order; offsets that never skip, through
SIGKILLs and rebalances; table writes land on the changelog partition of their record."""

from __future__ import annotations

import asyncio
import json
import random
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
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from hookstream.config import Settings
from hookstream.core import headers as h
from hookstream.kafka.clients import client_config, producer_config
from hookstream.kafka.topics import DEDUPE_TABLE
from schemas import Envelope, encode_envelope
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@dataclass
class SlowSink:
    """A destination that answers after `delay` and records order and concurrency."""

    url: str
    delay: float = 0.02
    received: list[tuple[str, str]] = field(default_factory=list)  # (entity, event id)
    active: int = 0
    most_at_once: int = 0

    def by_entity(self) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = defaultdict(list)
        for entity, event_id in self.received:
            seen[entity].append(event_id)
        return seen

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= (seen := {event_id for _, event_id in self.received}):
            if time.monotonic() > deadline:
                missing = sorted(ids - seen)
                raise AssertionError(f"{len(missing)} never delivered, e.g. {missing[:5]}")
            await asyncio.sleep(0.2)


@pytest.fixture
async def slow_sink(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[SlowSink]:
    port = unused_tcp_port_factory()
    sink = SlowSink(f"http://127.0.0.1:{port}/hooks")

    async def receive(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        sink.active += 1
        sink.most_at_once = max(sink.most_at_once, sink.active)
        try:
            await asyncio.sleep(sink.delay)
        finally:
            sink.active -= 1
        sink.received.append((body["entity"], request.headers["webhook-id"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield sink
    await runner.cleanup()


def produce(settings: Settings, plan: list[tuple[str, str]]) -> None:
    """Put (entity, event id) records on the events topic in this order, as the ingress would."""
    producer = Producer(producer_config(settings, **{"linger.ms": 5}))
    for n, (entity, event_id) in enumerate(plan):
        body = json.dumps({"id": event_id, "entity": entity, "n": n}).encode()
        envelope = Envelope(
            event_id, "std", entity, body, datetime.now(UTC), "invoice.paid", "application/json"
        )
        producer.produce(
            settings.topics.events,
            key=entity.encode(),
            value=encode_envelope(envelope),
            headers=h.event_headers(event_id, "std", "invoice.paid"),
        )
        if n % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def lag(settings: Settings, topic: str | None = None) -> int:
    """How far the group's committed offsets trail the end of a topic (the events topic)."""
    topic, group = topic or settings.topics.events, settings.worker.group_id
    partitions = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
    admin = AdminClient(client_config(settings))
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = admin.list_consumer_group_offsets(request)[group].result().topic_partitions
    probe = Consumer(client_config(settings, **{"group.id": f"{group}-probe"}))
    try:
        total = 0
        for tp in committed:
            _, high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            total += high - max(tp.offset, 0)
        return total
    finally:
        probe.close()


async def wait_for_no_lag(settings: Settings, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    behind = -1
    while time.monotonic() < deadline:
        behind = await asyncio.to_thread(lag, settings)
        if behind == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the committed offsets still trail the topic by {behind} records")


def interleaved(entities: int, per_entity: int, tag: str) -> list[tuple[str, str]]:
    return [
        (f"cus_{e:02d}", f"evt_{tag}_{e:02d}_{seq:03d}")
        for seq in range(per_entity)
        for e in range(entities)
    ]


def sink_settings(
    make_settings, sink: SlowSink, guarantee: str = "at_least_once", **worker: object
) -> tuple[Settings, object]:
    return make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "10s"}},
        worker=worker,
        processing_guarantee=guarantee,
    )


def assert_entity_order(sink: SlowSink, plan: list[tuple[str, str]]) -> None:
    """Every entity's first deliveries follow its arrival order (a redelivery after a crash
    may repeat an event; order is judged on first sight)."""
    expected: dict[str, list[str]] = defaultdict(list)
    for entity, event_id in plan:
        expected[entity].append(event_id)
    for entity, got in sink.by_entity().items():
        first = list(dict.fromkeys(got))
        assert first == expected[entity][: len(first)], f"{entity} out of order"


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_entities_run_at_once_and_each_in_arrival_order(
    make_settings, worker_process, slow_sink, guarantee: str
) -> None:
    settings, config = sink_settings(make_settings, slow_sink, guarantee)
    worker_process(settings, config)
    plan = interleaved(20, 10, "order")
    await asyncio.to_thread(produce, settings, plan)
    await slow_sink.wait_for({event_id for _, event_id in plan}, timeout=60)
    await wait_for_no_lag(settings, timeout=30)
    assert await in_flight_gauge(settings) == 0
    assert len(slow_sink.received) == 200
    assert_entity_order(slow_sink, plan)
    assert slow_sink.most_at_once > 1, "one request at a time: the lanes did not run at once"
    assert slow_sink.most_at_once <= 20  # never two of one entity at once


def read_all(settings: Settings, topic: str) -> list[tuple[int, bytes | None, dict[str, bytes]]]:
    consumer = Consumer(
        client_config(settings, **{"group.id": f"probe-{time.time()}", "enable.auto.commit": False})
    )
    try:
        ends = {}
        for p in range(settings.topics.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records = []
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None:
                    continue
                records.append((message.partition(), message.key(), dict(message.headers() or [])))
                if message.offset() + 1 >= ends.get(message.partition(), 0):
                    ends.pop(message.partition(), None)
        return records
    finally:
        consumer.close()


async def test_a_lane_writes_the_dedupe_table_on_its_records_partition(
    make_settings, worker_process, slow_sink
) -> None:
    settings, config = sink_settings(make_settings, slow_sink)
    worker_process(settings, config)
    plan = interleaved(12, 5, "cl")
    await asyncio.to_thread(produce, settings, plan)
    await slow_sink.wait_for({event_id for _, event_id in plan}, timeout=60)
    await wait_for_no_lag(settings, timeout=30)
    events = await asyncio.to_thread(read_all, settings, settings.topics.events)
    partition_of = {headers[h.EVENT_ID].decode(): p for p, _, headers in events}
    changelog = await asyncio.to_thread(
        read_all, settings, f"{settings.worker.group_id}-{DEDUPE_TABLE}-changelog"
    )
    assert changelog, "no changelog records"
    seen = 0
    for partition, key, _ in changelog:
        table_key = json.loads(key or b"null")
        event_id = table_key.split("\x1f", 1)[-1] if isinstance(table_key, str) else None
        if event_id in partition_of:
            seen += 1
            assert partition == partition_of[event_id], f"{event_id} on the wrong shard"
    assert seen >= len(plan)


async def in_flight_gauge(settings: Settings) -> float:
    """The worker's hookstream_in_flight, from its /metrics."""
    url = f"http://127.0.0.1:{settings.worker.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        text = await answer.text()
    for line in text.splitlines():
        if line.startswith("hookstream_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no hookstream_in_flight in /metrics")


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(30)


@pytest.mark.timeout(300)
async def test_sigkill_with_hundreds_in_flight_loses_nothing(
    make_settings, worker_process, slow_sink
) -> None:
    slow_sink.delay = 0.2
    settings, config = sink_settings(make_settings, slow_sink, max_in_flight=300)
    plan = interleaved(300, 3, "kill")
    await asyncio.to_thread(produce, settings, plan)
    first = worker_process(settings, config)
    async with asyncio.timeout(60):
        while slow_sink.active < 50:
            await asyncio.sleep(0.05)
    in_flight = slow_sink.active
    gauge = await in_flight_gauge(settings)
    assert gauge >= 50, f"hookstream_in_flight {gauge} with {in_flight} requests in flight"
    assert first.process is not None
    kill(first.process)
    worker_process(settings, config)
    await slow_sink.wait_for({event_id for _, event_id in plan}, timeout=120)
    await wait_for_no_lag(settings, timeout=60)
    duplicates = len(slow_sink.received) - len(plan)
    assert 0 <= duplicates <= 2 * settings.worker.max_in_flight, duplicates
    assert_entity_order(slow_sink, plan)
    print(
        f"killed with {in_flight} requests in flight (most at once {slow_sink.most_at_once}); {duplicates} duplicate deliveries"
    )


@pytest.mark.timeout(420)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_rebalances_with_records_in_flight_never_skip(
    make_settings, worker_process, slow_sink, tmp_path, guarantee: str
) -> None:
    """A worker with a backlog keeps delivering while others join and are SIGKILLed during
    their start-up, six times, as in issue 10: afterwards every record was delivered and the
    group's committed offsets reach the end of the topic, with no restart."""
    slow_sink.delay = 0.005
    settings, config = sink_settings(make_settings, slow_sink, guarantee)
    plan = interleaved(200, 30, "rb")
    await asyncio.to_thread(produce, settings, plan[:4000])
    worker_process(settings, config)
    rng = random.Random(10)
    producer = asyncio.create_task(asyncio.to_thread(produce, settings, plan[4000:]))
    with (tmp_path / "joiners.log").open("ab") as log:
        for _ in range(6):
            joiner = subprocess.Popen(  # noqa: ASYNC220 - killed below, waited in kill()
                [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            kill(joiner)
    await producer
    await slow_sink.wait_for({event_id for _, event_id in plan}, timeout=240)
    await wait_for_no_lag(settings, timeout=60)
    assert_entity_order(slow_sink, plan)


def produce_paced(settings: Settings, plan: list[tuple[str, str]], seconds: float) -> None:
    """`produce`, spread over about `seconds`: a burst the ingress accepts while workers
    come and go."""
    chunks = 20
    size = -(-len(plan) // chunks)
    for n in range(chunks):
        produce(settings, plan[n * size : (n + 1) * size])
        time.sleep(seconds / chunks)


@pytest.mark.timeout(420)
async def test_workers_killed_in_start_up_during_a_burst_skip_nothing(
    make_settings, slow_sink, tmp_path
) -> None:
    """Issue 10's skip: while a burst is accepted, a worker is started and SIGKILLed 2-5 s
    later, six times in a row (each in its start-up, the group rebalancing around members
    that died), then a seventh is left running. Every accepted event is delivered and the
    group's committed offsets reach the high watermarks, without a restart."""
    slow_sink.delay = 0.002
    settings, config = sink_settings(make_settings, slow_sink)
    plan = interleaved(300, 20, "burst")
    rng = random.Random(7)
    burst = asyncio.create_task(asyncio.to_thread(produce_paced, settings, plan, 25.0))
    with (tmp_path / "killed.log").open("ab") as log:
        for _ in range(6):
            doomed = subprocess.Popen(  # noqa: ASYNC220 - killed below, waited in kill()
                [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            kill(doomed)
    await burst
    # The group may take a session timeout to drop the dead members: no wait for it here,
    # the bounds below hold from now.
    with (tmp_path / "survivor.log").open("ab") as log:
        survivor = subprocess.Popen(  # noqa: ASYNC220 - stopped in finally
            [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        await slow_sink.wait_for({event_id for _, event_id in plan}, timeout=180)
        await wait_for_no_lag(settings, timeout=60)
    finally:
        survivor.terminate()
        survivor.wait(30)
    assert_entity_order(slow_sink, plan)


async def test_a_partition_paused_at_its_bound_mid_batch_passes_over_nothing(
    make_settings, worker_process, slow_sink
) -> None:
    """Records already fetched when a partition reaches its in-flight bound are kept and
    taken as room frees, not dropped with the rest of the batch."""
    settings, config = sink_settings(make_settings, slow_sink, max_in_flight_per_partition=4)
    plan = interleaved(40, 3, "bound")
    await asyncio.to_thread(produce, settings, plan)  # on the topic before the worker starts
    worker_process(settings, config)
    await slow_sink.wait_for({event_id for _, event_id in plan}, timeout=90)
    await wait_for_no_lag(settings, timeout=30)
    assert len(slow_sink.received) == len(plan)
    assert_entity_order(slow_sink, plan)
    assert slow_sink.most_at_once <= 4 * settings.topics.partitions
