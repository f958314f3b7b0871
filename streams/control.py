"""The control topic, from the worker's side.

Read once at start: which replayed offsets must run again, and which destinations an
operator paused. Then followed while the worker runs: pauses and resumes reach it within
about a second, and it publishes its destinations' status there every few seconds (what
`hookstream destinations list` shows).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from hookstream.config import Settings
from hookstream.core.control import (
    DestinationControl,
    ReprocessRange,
    ReprocessRanges,
    WorkerStatus,
    is_reprocess_key,
)
from hookstream.kafka.clients import client_config, producer_config
from hookstream.kafka.reading import ReadError, TopicNotFound, read_to_end
from hookstream.kafka.topics import control_topic
from streams.destinations import DestinationGates

log = structlog.get_logger("hookstream.worker")


def read_reprocess_ranges(settings: Settings, timeout: float = 10.0) -> ReprocessRanges:
    """Every reprocess instruction for this worker's group, latest per partition."""
    ranges = ReprocessRanges()
    group = settings.worker.group_id
    try:
        for record in read_to_end(
            settings, control_topic(settings), timeout=timeout, group_id=f"{group}-control-reader"
        ):
            if record.value and is_reprocess_key(record.key):
                item = ReprocessRange.from_bytes(record.value)
                if item.group == group:
                    ranges.add(item)
    except TopicNotFound:
        return ranges
    except ReadError as exc:
        log.warning("control_topic_unreadable", error=str(exc))
    if ranges.ranges:
        log.info("reprocess_ranges", ranges=[r.to_bytes().decode() for r in ranges.ranges.values()])
    return ranges


STATUS_INTERVAL = 5.0


class ControlFollower:
    """Applies the group's destination pauses to the gates and publishes their status.

    Blocking Kafka calls run in threads; `catch_up` runs before the agents take records, so
    a destination paused before a restart is paused from the first record on.
    """

    def __init__(self, settings: Settings, gates: DestinationGates) -> None:
        self._settings = settings
        self._gates = gates
        self._topic = control_topic(settings)
        self._group = settings.worker.group_id
        self._worker = f"{socket.gethostname()}-{os.getpid()}"
        self._control = DestinationControl(self._group)
        self._consumer: Any = None
        self._producer = Producer(producer_config(settings))

    def catch_up(self, timeout: float = 10.0) -> None:
        """Read the whole control topic now (blocking) and apply the pauses in it."""
        consumer = Consumer(
            client_config(
                self._settings,
                **{
                    "group.id": f"{self._group}-control-follower",  # never joins or commits
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                },
            )
        )
        consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:  # else: read to the end
                    log.warning("control_topic_unreadable", error=str(error))
                break
            self._apply(message.key(), message.value())
        self._consumer = consumer

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            pause = self._control.apply(key, value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("control_record_unreadable", error=str(exc))
            return
        if pause is not None:
            self._gates.set_paused(pause.destination, pause.paused)

    def _poll(self) -> None:
        for message in self._consumer.consume(100, timeout=1.0):
            if message.error() is None:
                self._apply(message.key(), message.value())

    def _publish_status(self, final: bool = False) -> None:
        status = WorkerStatus(self._group, self._worker, time.time(), self._gates.status())
        self._producer.produce(
            self._topic, key=status.key, value=None if final else status.to_bytes()
        )
        self._producer.poll(0)

    async def follow(self) -> None:
        """Until cancelled: apply new control records, publish the status now and then."""
        if self._consumer is None:
            await asyncio.to_thread(self.catch_up)
        published = 0.0
        polling: asyncio.Future[None] | None = None
        try:
            while True:
                polling = asyncio.ensure_future(asyncio.to_thread(self._poll))
                await asyncio.shield(polling)
                if time.monotonic() - published >= STATUS_INTERVAL:
                    published = time.monotonic()
                    self._publish_status()
        finally:
            if polling is not None and not polling.done():
                await asyncio.wait([polling], timeout=5)  # the consumer is in use in a thread
            self._publish_status(final=True)
            await asyncio.to_thread(self._producer.flush, 5)
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await asyncio.to_thread(consumer.close)
