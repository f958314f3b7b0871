"""A webhook end to end: signed POST -> Kafka -> worker -> HTTP destination, once, in order."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections import defaultdict

import aiohttp
import pytest
from confluent_kafka import Consumer, TopicPartition

from hookstream.config import Settings
from hookstream.sources import sign_request
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def event_body(event_id: str, entity: str, seq: int) -> bytes:
    # Irregular spacing and unicode: the destination must get these exact bytes.
    return (
        f'{{"id": "{event_id}",  "type":"invoice.paid","seq":{seq},'
        f'"data":{{"customer":"{entity}","note":"caf\\u00e9 ☕"}}}}'
    ).encode()


async def post_signed(
    session: aiohttp.ClientSession,
    base: str,
    settings: Settings,
    source: str,
    event_id: str,
    body: bytes,
) -> int:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    headers.update(sign_request(settings.sources[source], body, event_id, time.time()))
    # Large bodies go as a stream, as aiohttp asks.
    data = io.BytesIO(body) if len(body) > 256 * 1024 else body
    async with session.post(f"{base}/webhooks/{source}", data=data, headers=headers) as response:
        await response.read()
        return response.status


async def assert_enqueue_refused(
    session: aiohttp.ClientSession, base: str, settings: Settings, event_id: str, deadline: float
) -> str:
    """A signed event gets 503 broker_unavailable within `deadline` (+2 s slack) and /readyz
    is 503; returns the Retry-After the answer carried."""
    started = time.monotonic()
    body = event_body(event_id, "c", 1)
    headers = {"Content-Type": "application/json"}
    headers.update(sign_request(settings.sources["std"], body, event_id, time.time()))
    async with session.post(f"{base}/webhooks/std", data=body, headers=headers) as answer:
        elapsed = time.monotonic() - started
        assert answer.status == 503
        assert (await answer.json())["reason"] == "broker_unavailable"
        retry_after = answer.headers["Retry-After"]
        assert retry_after
    assert elapsed < deadline + 2.0, f"answered after {elapsed:.1f}s"
    async with session.get(f"{base}/readyz") as answer:
        assert answer.status == 503
    return retry_after


def topic_record_count(settings: Settings) -> int:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "probe"}
    )
    try:
        total = 0
        for partition in range(settings.topics.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(settings.topics.events, partition), timeout=10
            )
            total += high - low
        return total
    finally:
        consumer.close()


async def test_300_events_delivered_once_byte_identical_and_in_entity_order(
    make_settings, worker_process, sink, ingress_url
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "5s"}}
    )
    worker_process(settings, config)
    # Two ingress instances, as two pods would be: a re-sent event reaches the other one.
    first, second = await ingress_url(settings), await ingress_url(settings)
    rng = random.Random(7)
    entities = [f"cus_{n:02d}" for n in range(30)]
    sent: dict[str, list[str]] = defaultdict(list)
    bodies: dict[str, bytes] = {}
    plan: dict[str, list[tuple[str, bytes, bool]]] = {}
    for entity in entities:
        plan[entity] = []
        for seq in range(10):
            event_id = f"evt_{entity}_{seq}_{rng.randrange(10**9)}"
            body = event_body(event_id, entity, seq)
            bodies[event_id] = body
            plan[entity].append((event_id, body, rng.random() < 0.2))
    duplicates = sum(dup for events in plan.values() for _, _, dup in events)
    assert 30 <= duplicates <= 90  # about 20 % of 300

    statuses: dict[str, list[int]] = defaultdict(list)
    async with aiohttp.ClientSession() as session:

        async def send_entity(entity: str) -> None:
            # Within an entity, each event is sent after the previous one was accepted.
            for event_id, body, dup in plan[entity]:
                statuses[event_id].append(
                    await post_signed(session, first, settings, "std", event_id, body)
                )
                sent[entity].append(event_id)
                if dup:
                    statuses[event_id].append(
                        await post_signed(session, second, settings, "std", event_id, body)
                    )

        await asyncio.gather(*(send_entity(e) for e in entities))

    assert all(codes[0] == 202 for codes in statuses.values()), statuses
    assert all(code in (200, 202) for codes in statuses.values() for code in codes)
    await sink.wait_for(300, timeout=90)
    await asyncio.sleep(3)  # let any duplicate delivery show up before counting

    ids = sink.ids()
    assert len(ids) == 300, f"{len(ids) - len(set(ids))} duplicate deliveries"
    assert set(ids) == set(bodies)
    for delivery in sink.received:
        assert delivery.body == bodies[delivery.event_id]
        assert delivery.headers["webhook-id"] == delivery.event_id
        assert delivery.headers["Content-Type"] == "application/json; charset=utf-8"
        assert delivery.headers["traceparent"].startswith("00-")
    by_entity: dict[str, list[str]] = defaultdict(list)
    for delivery in sink.received:
        by_entity[json.loads(delivery.body)["data"]["customer"]].append(delivery.event_id)
    for entity in entities:
        assert by_entity[entity] == sent[entity], f"{entity} out of order"


async def test_wrong_signature_is_401_and_nothing_reaches_kafka(make_settings, ingress_url) -> None:
    settings, _ = make_settings()
    base = await ingress_url(settings)
    body = event_body("evt_forged", "cus_1", 0)
    headers = sign_request(settings.sources["std"], body, "evt_forged", time.time())
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/webhooks/std", data=body, headers=headers) as response:
            assert response.status == 401
            assert response.content_type == "application/problem+json"
            problem = await response.json()
            assert problem["reason"] == "bad_signature"
            assert "whsec" not in json.dumps(problem)
        tampered = body.replace(b"cus_1", b"cus_2")
        good = sign_request(settings.sources["std"], body, "evt_forged", time.time())
        async with session.post(f"{base}/webhooks/std", data=tampered, headers=good) as response:
            assert response.status == 401
        # The same event, signed correctly, is the only record that reaches the topic.
        assert await post_signed(session, base, settings, "std", "evt_forged", body) == 202
    assert topic_record_count(settings) == 1


async def test_stopping_the_broker_turns_202_into_503_within_the_deadline(
    tmp_path, make_settings, ingress_url
) -> None:
    from hookstream.broker import LocalKafka
    from hookstream.kafka.admin import create_topics
    from tests.conftest import ROOT, base_config, write_config

    broker = LocalKafka(
        tmp_path / "kafka",
        port=free_port(),
        controller_port=free_port(),
        dist_dir=ROOT / ".hookstream" / "kafka" / "dist",
        heap="512m",
    )
    broker.start()
    try:
        config = base_config(broker.bootstrap, tmp_path, ingress={"produce_timeout": "3s"})
        settings = write_config(config, tmp_path / "own-broker.yaml")
        create_topics(settings)
        base = await ingress_url(settings)
        async with aiohttp.ClientSession() as session:
            assert (
                await post_signed(
                    session, base, settings, "std", "evt_a", event_body("evt_a", "c", 0)
                )
                == 202
            )
            broker.stop()
            retry_after = await assert_enqueue_refused(session, base, settings, "evt_b", deadline=3)
            assert int(retry_after) >= 1
    finally:
        broker.stop()


async def test_a_body_at_the_size_limit_is_accepted_and_one_byte_over_is_413(
    make_settings, ingress_url
) -> None:
    settings, _ = make_settings(ingress={"max_body_bytes": 1_048_576})
    base = await ingress_url(settings)
    filler = b"x" * (1_048_576 - 200)
    body = b'{"id":"evt_big","data":{"customer":"c"},"pad":"' + filler + b'"}'
    body += b" " * (1_048_576 - len(body))
    assert len(body) == 1_048_576
    async with aiohttp.ClientSession() as session:
        assert await post_signed(session, base, settings, "std", "evt_big", body) == 202
        assert await post_signed(session, base, settings, "std", "evt_bigger", body + b" ") == 413
    assert topic_record_count(settings) == 1
