"""Read a topic from its start (or given offsets) to its end as it is now, outside any group.

Where a partition ends is taken once, when the read begins: the last stable offset, which is
what a read_committed consumer (librdkafka's default) is told for the high watermark. The
read of a partition is over when the consumer's *position* reaches that end, not when a
record at `end - 1` arrives: under exactly-once the last offsets of a partition are often
transaction markers (and aborted records), which are never delivered, so a record-based
stop condition waits for a record that never comes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hookstream.config import Settings
from hookstream.errors import HookstreamError
from hookstream.kafka.clients import client_config

READER_GROUP = "hookstream-reader"
BATCH = 1000
POLL = 0.2


class ReadError(HookstreamError):
    """The topic could not be read to its end."""


class TopicNotFound(ReadError):
    """The topic to read does not exist."""


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def read_to_end(
    settings: Settings,
    topic: str,
    partitions: Iterable[int] | None = None,
    *,
    start: Mapping[int, int] | None = None,
    timeout: float = 10.0,
    group_id: str = READER_GROUP,
) -> Iterator[Record]:
    """Every committed record of `topic` (or of `partitions`) from the log start, or from
    `start[partition]`, up to the end each partition has now; partition by partition in
    offset order. Joins no group and commits nothing (`group_id` only names the client).
    Raises TopicNotFound, or ReadError when no progress is made for `timeout` seconds."""
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "isolation.level": "read_committed",
            },
        )
    )
    try:
        ends = _assign(consumer, topic, partitions, start or {}, timeout)
        yield from _consume(consumer, topic, ends, timeout)
    except KafkaException as exc:
        raise ReadError(f"reading {topic} failed: {exc}") from None
    finally:
        consumer.close()


def _assign(
    consumer: Any,
    topic: str,
    partitions: Iterable[int] | None,
    start: Mapping[int, int],
    timeout: float,
) -> dict[int, int]:
    """Assign every partition that has something to read; returns partition -> end offset."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise TopicNotFound(f"topic {topic} does not exist (run `hookstream topics create`)")
    wanted = sorted(metadata.partitions if partitions is None else set(partitions))
    unknown = [p for p in wanted if p not in metadata.partitions]
    if unknown:
        raise ReadError(f"topic {topic} has no partition {', '.join(map(str, unknown))}")
    ends: dict[int, int] = {}
    assignment = []
    for partition in wanted:
        # Under read_committed this "high watermark" is the last stable offset: records of
        # a transaction still open are not part of the topic as it is now.
        low, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        first = max(low, start.get(partition, low))
        if first < end:
            ends[partition] = end
            assignment.append(TopicPartition(topic, partition, first))
    if assignment:
        consumer.assign(assignment)
    return ends


def _consume(consumer: Any, topic: str, ends: dict[int, int], timeout: float) -> Iterator[Record]:
    deadline = time.monotonic() + timeout
    positions: dict[int, int] = {}
    while ends:
        # consume(n) waits for n records or the timeout, so ask often for what is there.
        batch = consumer.consume(BATCH, timeout=POLL)
        for message in batch:
            partition, offset = message.partition(), message.offset()
            if message.error() is not None or partition is None or offset is None:
                continue
            if offset < ends.get(partition, -1):
                yield _record(topic, partition, offset, message)
        progressed = bool(batch)
        for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
            if tp.offset > positions.get(tp.partition, -1):
                positions[tp.partition] = tp.offset
                progressed = True
            if tp.offset >= ends[tp.partition]:
                del ends[tp.partition]
        if progressed:
            deadline = time.monotonic() + timeout
        elif time.monotonic() > deadline:
            raise ReadError(f"reading {topic} timed out after {timeout:g}s without progress")


def _record(topic: str, partition: int, offset: int, message: Any) -> Record:
    return Record(
        topic,
        partition,
        offset,
        message.timestamp()[1],
        message.key(),
        message.value(),
        _headers(message.headers()),
    )


def _headers(raw: object) -> dict[str, bytes]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    out: dict[str, bytes] = {}
    for name, value in items:  # type: ignore[attr-defined]
        out[str(name)] = value.encode() if isinstance(value, str) else (value or b"")
    return out


def watermarks(
    settings: Settings,
    topics: Iterable[str],
    *,
    timeout: float = 10.0,
    group_id: str = READER_GROUP,
) -> dict[str, dict[int, tuple[int, int]]]:
    """topic -> partition -> (log start, end) as they are now, with one client (the end is
    the last stable offset, as `read_to_end` reads). A topic that does not exist maps to {}."""
    consumer = Consumer(
        client_config(settings, **{"group.id": group_id, "isolation.level": "read_committed"})
    )
    found: dict[str, dict[int, tuple[int, int]]] = {}
    try:
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if metadata is None or metadata.error is not None:
                found[topic] = {}
                continue
            found[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                for p in sorted(metadata.partitions)
            }
    except KafkaException as exc:
        raise ReadError(f"reading topic offsets failed: {exc}") from None
    finally:
        consumer.close()
    return found


def read_at(
    settings: Settings,
    topic: str,
    positions: Iterable[tuple[int, int]],
    *,
    timeout: float = 10.0,
    group_id: str = READER_GROUP,
) -> dict[tuple[int, int], Record]:
    """The records at (partition, offset) `positions`, one fetch per position: what a
    lookup in the event index costs instead of a read of the whole topic. A position no
    longer (or not yet) in the topic is left out."""
    wanted = sorted(set(positions))
    found: dict[tuple[int, int], Record] = {}
    if not wanted:
        return found
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            },
        )
    )
    try:
        for partition, offset in wanted:
            low, end = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if not low <= offset < end:
                continue
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = consumer.poll(POLL)
                if message is None:
                    continue
                if message.error() is not None:
                    break  # the partition's end: the record was a transaction marker
                if message.offset() == offset:
                    found[(partition, offset)] = _record(topic, partition, offset, message)
                break
            else:
                raise ReadError(f"reading {topic} {partition}/{offset} timed out")
    except KafkaException as exc:
        raise ReadError(f"reading {topic} failed: {exc}") from None
    finally:
        consumer.close()
    return found
