"""`read_to_end` on a real broker: exactly the committed records of a transactional topic,
promptly, though its partitions end in transaction markers; empty topics and partitions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from hookstream.config import Settings
from hookstream.kafka.clients import client_config
from hookstream.kafka.reading import ReadError, TopicNotFound, read_to_end

pytestmark = pytest.mark.integration

# Far longer than a read takes: a read that ends by running out of time shows in `elapsed`.
TIMEOUT = 10.0
PROMPT = 3.0


@pytest.fixture
def settings(make_settings: Callable[..., tuple[Settings, Any]]) -> Settings:
    """A fresh, empty events topic with 3 partitions."""
    return make_settings()[0]


@pytest.fixture
def transactional(settings: Settings) -> Iterator[Any]:
    producer = Producer(
        client_config(settings, **{"transactional.id": f"test-{uuid.uuid4().hex[:10]}"})
    )
    producer.init_transactions(30)
    yield producer
    producer.flush(10)


def transaction(
    producer: Any, topic: str, records: list[tuple[int, bytes]], *, commit: bool
) -> None:
    """One transaction writing `records` ((partition, value)), committed or aborted."""
    producer.begin_transaction()
    for partition, value in records:
        producer.produce(topic, value=value, key=b"k", partition=partition)
    # Aborted records must reach the log (abort alone would only purge the local queue).
    assert producer.flush(10) == 0
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def timed_read(settings: Settings, *args: Any, **kwargs: Any) -> tuple[list[Any], float]:
    started = time.monotonic()
    records = list(read_to_end(settings, *args, timeout=TIMEOUT, **kwargs))
    return records, time.monotonic() - started


def watermarks(settings: Settings, topic: str, partition: int) -> tuple[int, int]:
    consumer = Consumer(client_config(settings, **{"group.id": "test-watermarks"}))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)
    finally:
        consumer.close()


def test_a_transactional_topic_reads_to_its_committed_end_promptly(
    settings: Settings, transactional: Any
) -> None:
    topic = settings.topics.events
    transaction(transactional, topic, [(0, b"a0"), (0, b"a1"), (1, b"b0")], commit=True)
    transaction(transactional, topic, [(0, b"x0"), (0, b"x1"), (1, b"x2")], commit=False)
    transaction(transactional, topic, [(1, b"b1")], commit=True)
    # Partition 0 now ends in an abort marker, partition 1 in a commit marker; 2 is empty.

    records, elapsed = timed_read(settings, topic)

    assert [(r.partition, r.value) for r in records] == [
        (0, b"a0"),
        (0, b"a1"),
        (1, b"b0"),
        (1, b"b1"),
    ]
    assert elapsed < PROMPT, f"took {elapsed:.1f}s: it waited for a record that never came"
    # The trap itself: no delivered record sits at `end - 1` of either partition.
    for partition in (0, 1):
        last = max(r.offset for r in records if r.partition == partition)
        assert last + 1 < watermarks(settings, topic, partition)[1]


def test_an_open_transaction_is_not_waited_for(settings: Settings, transactional: Any) -> None:
    topic = settings.topics.events
    transaction(transactional, topic, [(2, b"c0")], commit=True)
    transactional.begin_transaction()
    transactional.produce(topic, value=b"pending", partition=2)
    assert transactional.flush(10) == 0
    try:
        records, elapsed = timed_read(settings, topic)
    finally:
        transactional.abort_transaction(30)
    assert [r.value for r in records] == [b"c0"]
    assert elapsed < PROMPT


def test_given_partitions_and_start_offsets(settings: Settings, transactional: Any) -> None:
    topic = settings.topics.events
    transaction(transactional, topic, [(0, b"a0"), (0, b"a1"), (0, b"a2"), (1, b"b0")], commit=True)
    records, _ = timed_read(settings, topic, [0], start={0: 1})
    assert [(r.partition, r.offset, r.value) for r in records] == [(0, 1, b"a1"), (0, 2, b"a2")]
    # A start past the end reads nothing from that partition, at once.
    records, elapsed = timed_read(settings, topic, [0, 1], start={0: 99})
    assert [r.value for r in records] == [b"b0"]
    assert elapsed < PROMPT


def test_plain_records_with_headers_and_keys(settings: Settings) -> None:
    topic = settings.topics.events
    producer = Producer(client_config(settings))
    producer.produce(topic, key=b"cus_1", value=b"v", partition=1, headers=[("h", b"1")])
    assert producer.flush(10) == 0
    [record] = read_to_end(settings, topic, timeout=TIMEOUT)
    assert (record.topic, record.partition, record.offset) == (topic, 1, 0)
    assert (record.key, record.value, record.headers) == (b"cus_1", b"v", {"h": b"1"})
    assert record.timestamp_ms > 0


def test_an_empty_topic_reads_nothing_at_once(settings: Settings) -> None:
    records, elapsed = timed_read(settings, settings.topics.events)
    assert records == []
    assert elapsed < PROMPT


def test_a_missing_topic_or_partition_is_an_error(settings: Settings) -> None:
    with pytest.raises(TopicNotFound):
        list(read_to_end(settings, f"test.{uuid.uuid4().hex}.missing", timeout=TIMEOUT))
    with pytest.raises(ReadError, match="no partition 7"):
        list(read_to_end(settings, settings.topics.events, [7], timeout=TIMEOUT))
