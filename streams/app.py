"""The Faust app: topics, the dedupe table, one agent per topic read, the worker's pages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import structlog
from aiokafka import errors as kafka_errors
from faust.web import Request, Response, View
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookstream.config import Settings
from hookstream.core.control import ReprocessRanges
from hookstream.errors import BrokerDenied, PublishRefused
from hookstream.kafka.faust_auth import broker_credentials
from hookstream.kafka.topics import (
    DEDUPE_TABLE,
    LANES_TABLE,
    PARKED_TABLE,
    audit_topic,
    changelog_config,
    dlq_topic,
    lane_changelog_config,
    parked_record_bytes,
    retry_topic,
)
from hookstream.telemetry import publish_span
from streams.control import ControlFollower, read_reprocess_ranges
from streams.delivery import Deliverer
from streams.depth import start_depth_gauges
from streams.destinations import DestinationGates
from streams.lanes import LaneDispatcher
from streams.parking import ParkingLot, lane_gauges
from streams.processor import EventProcessor, FaustDedupeStore

log = structlog.get_logger("hookstream.worker")
tracer = trace.get_tracer("hookstream.streams")


def worker_data_dir(settings: Settings) -> Path:
    """The worker's state (RocksDB), namespaced by the group: two pipelines may share a
    data dir without sharing, or tripping over, each other's dedupe state."""
    return Path(settings.data_dir) / "worker" / settings.worker.group_id


def faust_app(settings: Settings) -> faust.App:
    """A Faust app configured from hookstream settings (app id = worker.group_id)."""
    longest_wait = max(settings.retry.schedule, default=0.0)
    return faust.App(
        settings.worker.group_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        broker_credentials=broker_credentials(settings.kafka.client),
        store="rocksdb://",
        datadir=str(worker_data_dir(settings)),
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=False,
        # Faust's leader-election topic is not needed: every topic is created up front.
        topic_disable_leader=True,
        table_standby_replicas=settings.worker.standby_replicas,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.worker.session_timeout,
        broker_heartbeat_interval=settings.worker.session_timeout / 5,
        producer_acks=-1,
        # Changelog, audit and retry records are batched for a few milliseconds instead of
        # leaving one produce request (one socket write) each.
        producer_linger_ms=5,
        processing_guarantee=settings.processing_guarantee,
        producer_max_request_size=parked_record_bytes(settings),
        # A retry tier's agent waits for its head record's not-before time; that is not a livelock.
        broker_commit_livelock_soft_timeout=max(300.0, longest_wait * 1.5),
        # Lanes are stopped at a revoke instead (streams/lanes.py): waiting for every record in
        # flight would hold the rebalance up, a retry delay included.
        stream_wait_empty=False,
        web_enabled=True,
        web_host=settings.worker.host,
        web_port=settings.worker.port,
        web_in_thread=False,
        autodiscover=False,
    )


def table_memory(settings: Settings) -> dict[str, int]:
    """RocksDB options bounding the memory of each table partition's database."""
    return {
        "write_buffer_size": settings.worker.table_write_buffer_bytes,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.worker.table_block_cache_bytes,
    }


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


# Kafka will never take the record as it is.
_TOO_LARGE = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)
# Kafka refuses this client: a configuration or ACL problem an operator must fix.
_DENIED = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
)


class FaustPublisher:
    """Publishes through Faust's producer, so exactly-once mode covers these writes too."""

    def __init__(self, app: faust.App, partitions: int) -> None:
        self._app = app
        self._partitions = partitions
        self._topics: dict[str, Any] = {}

    def _topic(self, name: str) -> Any:
        if name not in self._topics:
            self._topics[name] = _raw_topic(self._app, name, self._partitions)
        return self._topics[name]

    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        """Send and wait for the ack; keep trying while Kafka refuses, never drop the record.

        A retry or DLQ write is a hop of the event's trace: its PRODUCER span's context
        travels in the record's trace headers (`headers` carries none).
        """
        with publish_span(tracer, topic, partition=partition) as trace_headers:
            await self._send_until_acked(topic, key, value, [*headers, *trace_headers], partition)

    async def _send_until_acked(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None,
    ) -> None:
        delay = 0.5
        while True:
            try:
                future = await self._topic(topic).send(
                    key=key, value=value, headers=headers, partition=partition
                )
                await future
                return
            except asyncio.CancelledError:
                raise
            except _TOO_LARGE as exc:
                raise PublishRefused(f"{type(exc).__name__}: {exc}") from None
            except _DENIED as exc:
                # No retry can help and no record of this worker can be written: stop loudly.
                log.critical("publish_denied", topic=topic, error=f"{type(exc).__name__}: {exc}")
                await self._app.crash(exc)
                raise BrokerDenied(f"Kafka denied writing to {topic}: {exc}") from None
            except Exception as exc:
                log.warning("publish_retrying", topic=topic, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        await self._topic(topic).send(key=key, value=value, headers=list(headers))


def create_worker_app(
    settings: Settings, reprocess: ReprocessRanges | None = None, *, follow_control: bool = True
) -> faust.App:
    """The worker: agents over the events topic and each retry tier, deduping through RocksDB;
    with `follow_control`, destination pauses and status through the control topic."""
    app = faust_app(settings)
    partitions = settings.topics.partitions
    memory = table_memory(settings)
    table = app.Table(
        DEDUPE_TABLE,
        partitions=partitions,
        options={"ttl": int(settings.dedupe.ttl), **memory},
        extra_topic_configs=changelog_config(settings),
        help="(source, event id) -> dedupe record",
    )
    ranges = reprocess or ReprocessRanges()
    publisher = FaustPublisher(app, partitions)
    # An entity's deferred event holds its place at a destination until it is back from its
    # tier; past this it is taken as lost (gone to another worker) and the place freed.
    longest = max(settings.retry.schedule, default=0.0) * (1 + settings.retry.jitter)
    gates = DestinationGates(settings.destinations, stale_after=2 * longest + 60)
    follower = ControlFollower(settings, gates)
    if follow_control:
        follower.catch_up()  # paused destinations stay paused from the first record on
    processor = EventProcessor(
        settings,
        FaustDedupeStore(table),
        Deliverer(settings.destinations, gates),
        publisher,
        reprocess=ranges.contains,
        stopping=lambda: bool(app.should_stop),
        transactional=settings.processing_guarantee == "exactly_once",
    )
    # Topics the worker writes to; declared so Faust knows them (all pre-created).
    for name in (dlq_topic(settings), audit_topic(settings)):
        publisher._topic(name)

    lanes = app.Table(
        LANES_TABLE,
        partitions=partitions,
        options=memory,
        extra_topic_configs=lane_changelog_config(settings),
        help="(source, entity) -> blocked lane state (ordering: entity)",
    )
    parked = app.Table(
        PARKED_TABLE,
        partitions=partitions,
        options=memory,
        extra_topic_configs=lane_changelog_config(settings),
        help="(source, entity, position) -> a record parked behind its lane's blocker",
    )
    lot = ParkingLot(settings, processor, lanes, parked)
    dispatcher = LaneDispatcher(
        app,
        lot.run,
        settings.worker.max_in_flight,
        settings.worker.max_in_flight_per_partition,
    )
    read = [settings.topics.events] + [
        retry_topic(settings, i) for i in range(len(settings.retry.schedule))
    ]
    for name in read:
        app.agent(_raw_topic(app, name, partitions), name=f"deliver-{name}")(dispatcher.consume)

    # Faust sends (app, partitions, signal=...).
    async def stop_revoked_lanes(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        await dispatcher.revoke(args[0])

    def resume_assigned(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        dispatcher.assigned(args[0])
        lot.assigned()

    if follow_control:
        app.task(follower.follow)

    async def close_sessions(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        await gates.close()

    app.on_before_shutdown.connect(close_sessions)
    app.on_partitions_revoked.connect(stop_revoked_lanes)
    app.on_partitions_assigned.connect(resume_assigned)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; Prometheus reads text/plain as UTF-8.
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    del Metrics, Health

    async def measure_lanes() -> None:
        lane_gauges(lanes, list(settings.sources), time.time())

    app.timer(interval=5.0, name="measure_lanes")(measure_lanes)
    start_depth_gauges(app, settings)
    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    from faust.worker import Worker

    from hookstream.kafka.admin import check_worker_topics

    broker_credentials(settings.kafka.client)  # CA and certificate files load before any I/O
    check_worker_topics(settings)
    worker_data_dir(settings).mkdir(parents=True, exist_ok=True)
    app = create_worker_app(settings, read_reprocess_ranges(settings))
    # Logging is set up already (hookstream.telemetry): Faust keeps our JSON handler, and its
    # libraries log at `loglevel`.
    for library in ("faust", "mode", "aiokafka"):
        logging.getLogger(library).setLevel(loglevel.upper())
    worker = Worker(
        app, loglevel=loglevel, quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.spinner = None  # a terminal progress spinner, written to stdout even when not a tty
    worker.execute_from_commandline()
