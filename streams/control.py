"""Read the control topic once at start: which replayed offsets must run again."""

from __future__ import annotations

import time

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from hookstream.admin import client_config
from hookstream.config import Settings
from hookstream.core.control import ReprocessRange, ReprocessRanges
from hookstream.topics import control_topic

log = structlog.get_logger("hookstream.worker")


def read_reprocess_ranges(settings: Settings, timeout: float = 10.0) -> ReprocessRanges:
    """Every reprocess instruction for this worker's group, latest per partition."""
    ranges = ReprocessRanges()
    topic = control_topic(settings)
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"{settings.worker.group_id}-control-reader",
                "enable.auto.commit": False,
            },
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return ranges
        partitions = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                partitions.append((TopicPartition(topic, partition, low), high))
        consumer.assign([tp for tp, _ in partitions])
        remaining = {tp.partition: high for tp, high in partitions}
        deadline = time.monotonic() + timeout
        while remaining:
            batch = consumer.consume(500, timeout=0.2)
            if not batch and time.monotonic() > deadline:
                break
            for message in batch or []:
                if message.error() is not None:
                    continue
                value, partition, offset = message.value(), message.partition(), message.offset()
                if value:
                    item = ReprocessRange.from_bytes(value)
                    if item.group == settings.worker.group_id:
                        ranges.add(item)
                if (
                    partition is not None
                    and offset is not None
                    and offset + 1 >= remaining.get(partition, 0)
                ):
                    remaining.pop(partition, None)
    except KafkaException as exc:
        log.warning("control_topic_unreadable", error=str(exc))
    finally:
        consumer.close()
    if ranges.ranges:
        log.info("reprocess_ranges", ranges=[r.to_bytes().decode() for r in ranges.ranges.values()])
    return ranges
