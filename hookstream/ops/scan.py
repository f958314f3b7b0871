"""Read a topic from its start to its current end, outside any consumer group."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hookstream.admin import client_config
from hookstream.config import Settings
from hookstream.errors import HookstreamError


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


class ScanError(HookstreamError):
    """The topic could not be read."""


def scan(settings: Settings, topic: str, timeout: float = 10.0) -> Iterator[Record]:
    """Every record now in `topic`, partition by partition, oldest first."""
    consumer = Consumer(
        client_config(settings, **{"group.id": "hookstream-ops-scan", "enable.auto.commit": False})
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise ScanError(f"topic {topic} does not exist (run `hookstream topics create`)")
        ends: dict[int, int] = {}
        starts = []
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if not starts:
            return
        consumer.assign(starts)
        deadline = time.monotonic() + timeout
        while ends:
            # consume(n) waits for n records or the timeout, so ask often for what is there.
            batch = consumer.consume(1000, timeout=0.2)
            if batch:
                deadline = time.monotonic() + timeout
            elif time.monotonic() > deadline:
                raise ScanError(f"reading {topic} timed out")
            for message in batch:
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if partition in ends and offset < ends[partition]:
                    yield Record(
                        topic,
                        partition,
                        offset,
                        message.timestamp()[1],
                        message.key(),
                        message.value(),
                        _headers(message.headers()),
                    )
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
    except KafkaException as exc:
        raise ScanError(f"reading {topic} failed: {exc}") from None
    finally:
        consumer.close()


def _headers(raw: object) -> dict[str, bytes]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    out: dict[str, bytes] = {}
    for name, value in items:  # type: ignore[attr-defined]
        out[str(name)] = value.encode() if isinstance(value, str) else (value or b"")
    return out
