"""process_one: decode, dedupe, deliver, record. It never raises (PRODUCT.md §6)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from hookstream.config import Settings
from hookstream.core.dedupe import Decision, DedupeRecord, DedupeState, decide, dedupe_key
from hookstream.core.routing import AttemptResult, Verdict, matching_destinations, overall
from hookstream.metrics import EVENTS, PROCESSING_SECONDS
from schemas import Envelope, EnvelopeError, decode_envelope
from streams.delivery import Deliverer

log = structlog.get_logger("hookstream.worker")
tracer = trace.get_tracer("hookstream.streams")


class FaustDedupeStore:
    """The dedupe store over a Faust table (RocksDB locally, changelog in Kafka)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str) -> DedupeRecord | None:
        value = self._table.get(key)
        return None if value is None else DedupeRecord.from_json(value)

    def put(self, key: str, record: DedupeRecord) -> None:
        self._table[key] = record.to_json()


class EventProcessor:
    """Turns one record of the events topic into its effects, exactly once per event id."""

    def __init__(self, settings: Settings, store: FaustDedupeStore, deliverer: Deliverer) -> None:
        self._settings = settings
        self._store = store
        self._deliverer = deliverer

    async def process_one(
        self, key: bytes | None, value: bytes | None, headers: Mapping[str, bytes]
    ) -> None:
        """Never raises: every failure is classified, logged and counted."""
        started = time.perf_counter()
        context = propagate.extract({k: v.decode("latin-1") for k, v in headers.items()})
        with tracer.start_as_current_span(
            f"{self._settings.topics.events} process",
            context=context,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": self._settings.topics.events,
            },
        ):
            try:
                await self._process(value)
            except Exception:
                # A bug of ours, not the event's: log it loudly, keep the partition moving.
                log.exception("process_failed_unexpectedly")
                EVENTS.labels("unknown", "failed").inc()
        PROCESSING_SECONDS.observe(time.perf_counter() - started)

    async def _process(self, value: bytes | None) -> None:
        try:
            envelope = decode_envelope(value or b"")
        except EnvelopeError as exc:
            log.error("poison_record", error=str(exc))
            EVENTS.labels("unknown", "dead_lettered").inc()
            return
        bound = log.bind(event_id=envelope.event_id, source=envelope.source)
        span = trace.get_current_span()
        span.set_attribute("hookstream.event_id", envelope.event_id)
        span.set_attribute("messaging.message.id", envelope.event_id)
        key = dedupe_key(envelope.source, envelope.event_id)
        now = time.time()
        record = self._store.get(key)
        decision = decide(record, now, self._settings.dedupe.ttl)
        if decision is Decision.DUPLICATE:
            bound.info("duplicate_skipped")
            EVENTS.labels(envelope.source, "duplicate").inc()
            return
        already = (
            set(record.delivered) if record is not None and decision is Decision.RESUME else set()
        )
        targets = [
            name
            for name in matching_destinations(
                self._settings.destinations, envelope.source, envelope.event_type
            )
            if name not in already
        ]
        results = [await self._deliverer.attempt(name, envelope) for name in targets]
        delivered = tuple(
            sorted(already | {r.destination for r in results if r.verdict is Verdict.DELIVERED})
        )
        verdict = overall(results)
        state = DedupeState.DONE if verdict is Verdict.DELIVERED else DedupeState.FAILED
        self._store.put(key, DedupeRecord(state, now, delivered))
        self._report(bound, envelope, verdict, results)

    def _report(
        self, bound: Any, envelope: Envelope, verdict: Verdict, results: list[AttemptResult]
    ) -> None:
        if verdict is Verdict.DELIVERED:
            bound.info("delivered", destinations=[r.destination for r in results])
            EVENTS.labels(envelope.source, "delivered").inc()
            return
        failures = [
            {
                "destination": r.destination,
                "verdict": r.verdict.value,
                "error": r.error,
                "status": r.status,
            }
            for r in results
            if r.verdict is not Verdict.DELIVERED
        ]
        bound.warning("delivery_failed", failures=failures)
        EVENTS.labels(envelope.source, "failed").inc()
