"""The backlog gauges: `hookstream_retry_queue_depth{tier}` and `hookstream_dlq_depth`.

Measured every DEPTH_INTERVAL seconds by a Faust timer, with cheap broker requests run in a
thread so the event loop never blocks:

- retry depth: for the retry-tier partitions assigned to this worker, end offset minus the
  group's committed offset (one ListOffsets and one OffsetFetch request per tick). Each worker
  reports its own partitions, so `sum by (tier)` over the workers is the tier's depth.
- DLQ depth: the DLQ is read once from its start and then only what is new (a consumer outside
  any group); entries count until a redrive marker names them (core.backlog.DeadLetterLedger).
  Every worker reports the whole DLQ; the alert and dashboard take `max`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as _OffsetSpec  # type: ignore[attr-defined]

from hookstream.config import Settings
from hookstream.core.backlog import DeadLetterLedger, waiting
from hookstream.core.headers import redriven_position
from hookstream.kafka.clients import client_config
from hookstream.kafka.reading import read_to_end
from hookstream.kafka.topics import dlq_topic, retry_topic
from hookstream.metrics import DLQ_DEPTH, RETRY_QUEUE_DEPTH

log = structlog.get_logger("hookstream.worker")

OffsetSpec: Any = _OffsetSpec  # re-exported by confluent_kafka.admin without types
DEPTH_INTERVAL = 10.0
REQUEST_TIMEOUT = 5.0


class BacklogGauges:
    """Measures the retry tiers and the DLQ and sets the gauges. Blocking: call in a thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._group = settings.worker.group_id
        self._tiers = {retry_topic(settings, i): i for i in range(len(settings.retry.schedule))}
        self._dlq = dlq_topic(settings)
        self._admin = AdminClient(client_config(settings))
        self._consumer: Any = None
        self._config = client_config(
            settings,
            **{
                "group.id": f"{settings.worker.group_id}-dlq-depth",  # never joins or commits
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            },
        )
        self._ledger = DeadLetterLedger()

    def refresh(self, assigned: Iterable[tuple[str, int]]) -> None:
        """Measure both and set the gauges; `assigned` is this worker's (topic, partition) set."""
        for tier, depth in self.retry_depths(assigned).items():
            RETRY_QUEUE_DEPTH.labels(str(tier)).set(depth)
        DLQ_DEPTH.set(self.dlq_depth())

    def retry_depths(self, assigned: Iterable[tuple[str, int]]) -> dict[int, int]:
        """Records waiting in each tier, over the partitions this worker is assigned."""
        depths = dict.fromkeys(self._tiers.values(), 0)
        tps = [TopicPartition(t, p) for t, p in assigned if t in self._tiers]
        if not tps:
            return depths
        starts = self._offsets(tps, OffsetSpec.earliest())
        ends = self._offsets(tps, OffsetSpec.latest())
        request = [ConsumerGroupTopicPartitions(self._group, tps)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT)
        committed: dict[tuple[str, int], int | None] = {}
        for result in futures[self._group].result().topic_partitions:
            key = (result.topic, result.partition)
            committed[key] = result.offset if result.offset >= 0 else None
        for key, end in ends.items():
            depths[self._tiers[key[0]]] += waiting(starts.get(key, 0), end, committed.get(key))
        return depths

    def dlq_depth(self) -> int:
        """Entries in the DLQ not yet redriven; reads only records new since the last call."""
        consumer = self._dlq_consumer()
        metadata = consumer.list_topics(self._dlq, timeout=REQUEST_TIMEOUT).topics.get(self._dlq)
        if metadata is None or metadata.error is not None:
            raise RuntimeError(f"cannot describe {self._dlq}")
        ranges = {
            p: consumer.get_watermark_offsets(TopicPartition(self._dlq, p), timeout=REQUEST_TIMEOUT)
            for p in metadata.partitions
        }
        self._ledger.trim((p, low) for p, (low, _) in ranges.items())
        behind = {p: high for p, (_, high) in ranges.items() if self._ledger.next_offset(p) < high}
        if behind:
            start = {p: self._ledger.next_offset(p) for p in behind}
            for record in read_to_end(
                self._settings,
                self._dlq,
                behind,
                start=start,
                timeout=REQUEST_TIMEOUT * 2,
                group_id=self._config["group.id"],
            ):
                self._ledger.observe(
                    record.partition, record.offset, redriven_position(record.headers)
                )
            # Read to its end: offsets below `high` that held no record were transaction markers.
            for partition, high in behind.items():
                self._ledger.advance(partition, high)
        return self._ledger.depth()

    def _offsets(self, tps: list[TopicPartition], spec: Any) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets(
            dict.fromkeys(tps, spec), request_timeout=REQUEST_TIMEOUT
        )
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    def _dlq_consumer(self) -> Any:
        if self._consumer is None:
            self._consumer = Consumer(self._config)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def start_depth_gauges(app: Any, settings: Settings, interval: float = DEPTH_INTERVAL) -> None:
    """Register the Faust timer that keeps the backlog gauges current on this worker."""
    gauges = BacklogGauges(settings)

    async def measure_backlog() -> None:
        assigned = [(tp.topic, tp.partition) for tp in app.consumer.assignment()]
        try:
            await asyncio.to_thread(gauges.refresh, assigned)
        except Exception as exc:  # a missed measurement keeps the last values; never crash
            log.warning("backlog_measure_failed", error=f"{type(exc).__name__}: {exc}")

    async def close_gauges(*_: Any, **__: Any) -> None:
        await asyncio.to_thread(gauges.close)

    app.timer(interval=interval, name="measure_backlog")(measure_backlog)
    app.on_before_shutdown.connect(close_gauges)
