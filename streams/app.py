"""The Faust app: topics, the dedupe table, the agent and the worker's HTTP pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookstream.config import Settings
from hookstream.topics import DEDUPE_TABLE, changelog_config
from streams.delivery import Deliverer
from streams.processor import EventProcessor, FaustDedupeStore


def faust_app(settings: Settings) -> faust.App:
    """A Faust app configured from hookstream settings (app id = worker.group_id)."""
    return faust.App(
        settings.worker.group_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="rocksdb://",
        datadir=str(Path(settings.data_dir) / "worker"),
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=True,
        web_host=settings.worker.host,
        web_port=settings.worker.port,
        web_in_thread=False,
        autodiscover=False,
    )


def create_worker_app(settings: Settings) -> faust.App:
    """The worker: one agent over the events topic, deduping through RocksDB."""
    app = faust_app(settings)
    events = app.topic(
        settings.topics.events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topics.partitions,
    )
    table = app.Table(
        DEDUPE_TABLE,
        partitions=settings.topics.partitions,
        options={"ttl": int(settings.dedupe.ttl)},
        extra_topic_configs=changelog_config(settings),
        help="(source, event id) -> dedupe record",
    )
    deliverer = Deliverer(settings.destinations, lambda: app.http_client)
    processor = EventProcessor(settings, FaustDedupeStore(table), deliverer)

    @app.agent(events, name="deliver")
    async def deliver(stream: Any) -> None:
        async for event in stream.events():
            await processor.process_one(event.key, event.value, _headers(event))

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; Prometheus reads text/plain as UTF-8.
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    del deliver, Metrics, Health
    return app


def _headers(event: Any) -> dict[str, bytes]:
    raw = event.headers or {}
    items = raw.items() if hasattr(raw, "items") else raw
    return {str(k): (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    from faust.worker import Worker

    app = create_worker_app(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
