"""Kafka administration: create and describe hookstream's topics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from hookstream.config import Settings
from hookstream.errors import TopicError
from hookstream.kafka.clients import client_config
from hookstream.kafka.topics import TopicSpec, topic_specs


@dataclass(frozen=True)
class TopicState:
    spec: TopicSpec
    exists: bool
    partitions: int | None
    created: bool = False


def create_topics(settings: Settings, timeout: float = 30.0) -> list[TopicState]:
    """Create every missing topic; existing ones are left alone but checked for co-partitioning."""
    admin = AdminClient(client_config(settings))
    specs = topic_specs(settings)
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                config=s.config,
            )
            for s in specs
        ],
        request_timeout=timeout,
        operation_timeout=timeout,
    )
    created: set[str] = set()
    for name, future in futures.items():
        try:
            future.result()
            created.add(name)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicError(f"creating {name} failed: {error.str()}") from None
    # A topic just created may not be in the metadata yet: wait for it.
    deadline = time.monotonic() + timeout
    states = describe_topics(settings, admin=admin, timeout=timeout)
    while any(not s.exists or s.partitions is None for s in states) and time.monotonic() < deadline:
        time.sleep(0.2)
        states = describe_topics(settings, admin=admin, timeout=timeout)
    _wait_for_leaders(settings, [s.spec for s in states if s.spec.name in created], deadline)
    mismatched = [s for s in states if s.partitions != s.spec.partitions]
    if mismatched:
        names = ", ".join(f"{s.spec.name} has {s.partitions}" for s in mismatched)
        raise TopicError(
            f"topics must be co-partitioned with {settings.topics.partitions} partitions: {names}"
        )
    return [TopicState(s.spec, s.exists, s.partitions, s.spec.name in created) for s in states]


def describe_topics(
    settings: Settings, admin: AdminClient | None = None, timeout: float = 10.0
) -> list[TopicState]:
    """What exists of hookstream's topics."""
    admin = admin or AdminClient(client_config(settings))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(
            f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc}"
        ) from None
    states = []
    for spec in topic_specs(settings):
        topic = metadata.topics.get(spec.name)
        exists = topic is not None and topic.error is None
        states.append(TopicState(spec, exists, len(topic.partitions) if exists and topic else None))
    return states


def _wait_for_leaders(settings: Settings, topics: list[TopicSpec], deadline: float) -> None:
    """Return once every partition of the new topics answers offset requests: a topic is
    in the metadata before its partition leaders serve, and clients need them to."""
    if not topics:
        return
    consumer = Consumer(
        client_config(settings, **{"group.id": "hookstream-admin", "enable.auto.commit": False})
    )
    try:
        pending = [TopicPartition(spec.name, p) for spec in topics for p in range(spec.partitions)]
        while pending and time.monotonic() < deadline:
            waiting = []
            for tp in pending:
                try:
                    consumer.get_watermark_offsets(tp, timeout=2)
                except KafkaException:
                    waiting.append(tp)
            pending = waiting
            if pending:
                time.sleep(0.2)
    finally:
        consumer.close()


def check_worker_topics(settings: Settings) -> None:
    """TopicError, naming what to run, unless every topic the worker reads or writes exists
    co-partitioned: a missing dedupe changelog (a new `worker.group_id`) would otherwise
    dead-letter every record as an internal error. A cluster that does not answer yet is
    not judged: the worker's own clients keep trying and say why (an authentication
    failure, say)."""
    try:
        states = describe_topics(settings)
    except TopicError:
        return
    missing = [s.spec.name for s in states if not s.exists]
    if missing:
        raise TopicError(
            f"missing topic(s) {', '.join(missing)}: run `hookstream topics create` with this "
            "config first"
        )
    mismatched = [
        f"{s.spec.name} has {s.partitions}" for s in states if s.partitions != s.spec.partitions
    ]
    if mismatched:
        raise TopicError(
            f"topics must have {settings.topics.partitions} partitions: {', '.join(mismatched)}"
        )
