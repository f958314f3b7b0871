"""Replay by moving a consumer group's committed offsets (dry run unless executed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from hookstream.config import Settings
from hookstream.core.control import ReprocessRange
from hookstream.errors import HookstreamError
from hookstream.kafka.clients import client_config, producer_config
from hookstream.kafka.topics import control_topic


class ReplayError(HookstreamError):
    """The offsets could not be moved."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to move: exactly one of these is set."""

    earliest: bool = False
    latest: bool = False
    datetime: datetime | None = None
    offset: int | None = None
    shift_by: int | None = None


@dataclass(frozen=True, slots=True)
class Move:
    topic: str
    partition: int
    current: int | None  # committed offset, None if the group never committed here
    new: int
    low: int
    high: int

    @property
    def replays(self) -> int:
        """How many already-consumed records will be read again."""
        current = self.high if self.current is None else self.current
        return max(0, current - self.new)


def live_members(admin: AdminClient, group: str) -> int:
    """How many members the group has; ReplayError when Kafka cannot say: moving offsets
    under running workers is what the check is there to prevent."""
    try:
        future = admin.describe_consumer_groups([group], request_timeout=10)[group]
        description = future.result()
    except KafkaException as exc:
        raise ReplayError(
            f"cannot tell whether group {group} has live members ({exc}); nothing was moved"
        ) from None
    return len(description.members)


def plan(settings: Settings, group: str, topics: list[str], target: Target) -> list[Move]:
    """The offset of each partition after the move, clamped to what the topic still holds."""
    admin = AdminClient(client_config(settings))
    consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                raise ReplayError(f"topic {topic} does not exist")
            partitions += [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        committed = {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in admin.list_consumer_group_offsets(request)[group].result().topic_partitions
        }
        times: dict[tuple[str, int], int] = {}
        if target.datetime is not None:
            stamp = int(target.datetime.timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(tp.topic, tp.partition, stamp) for tp in partitions], 10
            )
            times = {(tp.topic, tp.partition): tp.offset for tp in found}
        moves = []
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            current = committed.get((tp.topic, tp.partition))
            if target.earliest:
                new = low
            elif target.latest:
                new = high
            elif target.datetime is not None:
                found_offset = times.get((tp.topic, tp.partition), -1)
                new = high if found_offset is None or found_offset < 0 else found_offset
            elif target.offset is not None:
                new = target.offset
            else:
                new = (high if current is None else current) + (target.shift_by or 0)
            moves.append(Move(tp.topic, tp.partition, current, min(max(new, low), high), low, high))
        return moves
    except KafkaException as exc:
        raise ReplayError(f"Kafka refused: {exc}") from None
    finally:
        consumer.close()


def execute(
    settings: Settings,
    group: str,
    moves: list[Move],
    *,
    reprocess: bool,
    progress: Callable[[Move], None] = lambda move: None,
) -> None:
    """Commit the new offsets for the group; record which ranges must run again."""
    admin = AdminClient(client_config(settings))
    members = live_members(admin, group)
    if members:
        raise ReplayError(
            f"group {group} has {members} live member(s); stop its workers first, then replay"
        )
    producer = Producer(producer_config(settings))
    now = time.time()
    for move in moves:
        # Every executed replay states its range, empty without --reprocess, so an older
        # --reprocess instruction for this partition is not applied to this replay.
        end = (move.high if move.current is None else move.current) if reprocess else move.new
        item = ReprocessRange(group, move.topic, move.partition, move.new, end, now)
        producer.produce(control_topic(settings), key=item.key, value=item.to_bytes())
    if producer.flush(30):
        raise ReplayError("could not record the replay in the control topic; offsets unchanged")
    by_topic: dict[str, list[Move]] = {}
    for move in moves:
        by_topic.setdefault(move.topic, []).append(move)
    for topic, topic_moves in by_topic.items():
        request = [
            ConsumerGroupTopicPartitions(
                group, [TopicPartition(topic, m.partition, m.new) for m in topic_moves]
            )
        ]
        try:
            admin.alter_consumer_group_offsets(request)[group].result()
        except KafkaException as exc:
            raise ReplayError(f"moving offsets of {topic} failed: {exc}") from None
        for move in topic_moves:
            progress(move)


def describe(move: Move) -> dict[str, Any]:
    return {
        "topic": move.topic,
        "partition": move.partition,
        "current": move.current,
        "new": move.new,
        "low": move.low,
        "high": move.high,
        "replays": move.replays,
    }
