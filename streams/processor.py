"""process_one: decode, dedupe, deliver, then route the outcome. It never raises (PRODUCT.md §6).

Where does a record go when delivery fails? Here, in `_route`: retryable failures to the
next retry tier (or the DLQ after the last), permanent ones and poison to the DLQ at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from hookstream.config import Settings
from hookstream.core import records as h
from hookstream.core.dedupe import Arrival, Decision, DedupeRecord, DedupeState, decide, dedupe_key
from hookstream.core.protocols import DedupeStore, Publisher
from hookstream.core.records import (
    Attempt,
    HeaderError,
    RetryState,
    read_retry_state,
    retry_headers,
)
from hookstream.core.retry import DeadLetter, RetryPolicy
from hookstream.core.routing import AttemptResult, Verdict, matching_destinations, overall
from hookstream.kafka.topics import audit_topic, dlq_topic, retry_topic
from hookstream.metrics import EVENTS, PROCESSING_SECONDS
from schemas import Envelope, EnvelopeError, decode_envelope
from streams.delivery import Deliverer

log = structlog.get_logger("hookstream.worker")
_TRACE_HEADERS = (h.TRACEPARENT, h.TRACESTATE)
# The audit steps of the event this task is processing (each agent runs in its own task).
_AUDIT_STEPS: ContextVar[list[dict[str, Any]] | None] = ContextVar("audit_steps", default=None)
tracer = trace.get_tracer("hookstream.streams")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record as the agent got it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes]


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
    """Turns one record into its effects, exactly once per event id, and routes failures."""

    def __init__(
        self,
        settings: Settings,
        store: DedupeStore,
        deliverer: Deliverer,
        publisher: Publisher,
        *,
        reprocess: Callable[[str, int, int], bool] = lambda topic, partition, offset: False,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._store = store
        self._deliverer = deliverer
        self._publisher = publisher
        self._reprocess = reprocess
        self._clock = clock
        self._stopping = stopping
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._policy = RetryPolicy(tuple(settings.retry.schedule), settings.retry.jitter)
        self._dlq = dlq_topic(settings)
        self._audit = audit_topic(settings)

    async def process_one(self, record: Incoming) -> None:
        """Never raises: every failure is classified, routed, logged and counted."""
        started = time.perf_counter()
        # Only the trace headers: the retry history can be large and is not needed here.
        context = propagate.extract(
            {k: record.headers[k].decode("latin-1") for k in _TRACE_HEADERS if k in record.headers}
        )
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=context,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
            },
        ):
            try:
                await self._process(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug of ours, not the event's: the record goes to the DLQ rather than
                # stalling the partition or being skipped silently.
                log.exception(
                    "process_failed_unexpectedly", topic=record.topic, offset=record.offset
                )
                await self._dead_letter_raw(record, f"internal error: {type(exc).__name__}: {exc}")
        PROCESSING_SECONDS.observe(time.perf_counter() - started)

    async def _process(self, record: Incoming) -> None:
        try:
            envelope = decode_envelope(record.value or b"")
            state = read_retry_state(record.headers)
        except (EnvelopeError, HeaderError) as exc:
            await self._dead_letter_raw(record, f"poison: {exc}")
            return
        structlog.contextvars.bind_contextvars(event_id=envelope.event_id, source=envelope.source)
        # One audit record per processing round, not one per step: audit writes are the
        # worker's second-largest cost after the dedupe table's changelog.
        steps: list[dict[str, Any]] = []
        token = _AUDIT_STEPS.set(steps)
        try:
            span = trace.get_current_span()
            span.set_attribute("messaging.message.id", envelope.event_id)
            span.set_attribute("hookstream.source", envelope.source)
            if not await self._wait_until(state.not_before):
                await self._defer(record)
                return
            await self._handle(record, envelope, state)
        finally:
            _AUDIT_STEPS.reset(token)
            structlog.contextvars.unbind_contextvars("event_id", "source")
        if steps:
            await self._flush_audit(envelope, steps)

    async def _handle(self, record: Incoming, envelope: Envelope, state: RetryState) -> None:
        arrival = self._arrival(record, state)
        key = dedupe_key(envelope.source, envelope.event_id)
        now = self._clock()
        known = self._store.get(key)
        decision = decide(known, now, self._settings.dedupe.ttl, arrival)
        if decision is Decision.DUPLICATE:
            log.info(
                "duplicate_skipped",
                arrival=arrival.value,
                state=known.state.value if known else None,
            )
            EVENTS.labels(envelope.source, "duplicate").inc()
            await self._audit_step(envelope, "duplicate", arrival=arrival.value)
            return
        if arrival is Arrival.NEW or arrival is Arrival.REPROCESS:
            await self._audit_step(
                envelope,
                "received",
                received_at=envelope.received_at.timestamp(),
                event_type=envelope.event_type,
                entity_id=envelope.entity_id,
                arrival=arrival.value,
            )
        already = (
            set(known.delivered) if known is not None and decision is Decision.RESUME else set()
        )
        targets = [
            name
            for name in matching_destinations(
                self._settings.destinations, envelope.source, envelope.event_type
            )
            if name not in already
        ]
        attempt = state.attempts + 1
        results = [await self._deliverer.attempt(name, envelope) for name in targets]
        tried = self._clock()
        history = state.history + tuple(Attempt.of(attempt, tried, r) for r in results)
        for result in results:
            await self._audit_step(
                envelope, "attempt", **Attempt.of(attempt, tried, result).to_json()
            )
        delivered = tuple(
            sorted(already | {r.destination for r in results if r.verdict is Verdict.DELIVERED})
        )
        await self._route(
            record, envelope, key, RetryState(attempt, 0.0, history), results, delivered
        )

    async def _route(
        self,
        record: Incoming,
        envelope: Envelope,
        key: str,
        state: RetryState,
        results: list[AttemptResult],
        delivered: tuple[str, ...],
    ) -> None:
        verdict = overall(results)
        now = self._clock()
        if verdict is Verdict.DELIVERED:
            self._store.put(key, DedupeRecord(DedupeState.DONE, now, delivered))
            log.info("delivered", destinations=list(delivered), attempts=state.attempts)
            EVENTS.labels(envelope.source, "delivered").inc()
            await self._audit_step(envelope, "delivered", attempts=state.attempts)
            return
        step = (
            self._policy.next_step(state.attempts, self._rng, _longest_retry_after(results))
            if verdict is Verdict.RETRYABLE
            else DeadLetter("permanent failure")
        )
        if isinstance(step, DeadLetter):
            await self._publisher.publish(
                self._dlq,
                record.key,
                record.value,
                retry_headers(
                    _base_headers(record), state, dead_lettered_at=now, reason=step.reason
                ),
                partition=record.partition,
            )
            self._store.put(key, DedupeRecord(DedupeState.DEAD_LETTERED, now, delivered))
            log.warning(
                "dead_lettered",
                reason=step.reason,
                attempts=state.attempts,
                last_error=state.last_error,
            )
            EVENTS.labels(envelope.source, "dead_lettered").inc()
            await self._audit_step(
                envelope, "dead_lettered", reason=step.reason, attempts=state.attempts
            )
            return
        not_before = now + step.delay
        topic = retry_topic(self._settings, step.index)
        waiting = RetryState(state.attempts, not_before, state.history)
        # The same partition number as the record's: the dedupe shard stays with the event.
        await self._publisher.publish(
            topic,
            record.key,
            record.value,
            retry_headers(_base_headers(record), waiting),
            partition=record.partition,
        )
        self._store.put(key, DedupeRecord(DedupeState.RETRYING, now, delivered))
        log.info(
            "retry_scheduled", tier=step.index, delay=round(step.delay, 3), attempts=state.attempts
        )
        EVENTS.labels(envelope.source, "retry_scheduled").inc()
        await self._audit_step(
            envelope,
            "retry_scheduled",
            tier=step.index,
            not_before=not_before,
            attempts=state.attempts,
            last_error=waiting.last_error,
        )

    def _arrival(self, record: Incoming, state: RetryState) -> Arrival:
        if record.topic != self._settings.topics.events:
            return Arrival.RETRY
        if self._reprocess(record.topic, record.partition, record.offset):
            return Arrival.REPROCESS
        if h.REDRIVE in record.headers:
            return Arrival.REDRIVE
        return Arrival.NEW

    async def _wait_until(self, not_before: float) -> bool:
        """Hold this tier's stream until the record is due (tiers are FIFO by delay).

        False if the worker began to stop first: shutdown must not wait out a retry delay.
        """
        while (delay := not_before - self._clock()) > 0:
            if self._stopping():
                return False
            await asyncio.sleep(min(delay, 0.5))
        return True

    async def _defer(self, record: Incoming) -> None:
        """Put a record that is not due yet back at the end of its own partition, unchanged,
        so the worker can stop now and the record waits on in Kafka."""
        await self._publisher.publish(
            record.topic,
            record.key,
            record.value,
            list(record.headers.items()),
            partition=record.partition,
        )
        log.info("retry_deferred_for_shutdown", topic=record.topic, partition=record.partition)

    async def _dead_letter_raw(self, record: Incoming, reason: str) -> None:
        """Poison or an internal error: the raw bytes go to the DLQ, nothing is skipped silently."""
        now = self._clock()
        headers = [
            (k, v) for k, v in record.headers.items() if k not in (h.DLQ_REASON, h.DEAD_LETTERED_AT)
        ]
        headers += [
            (h.DLQ_REASON, reason.encode()),
            (h.DEAD_LETTERED_AT, str(int(now * 1000)).encode()),
            (h.ORIGIN, f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        source = h.text(record.headers, h.SOURCE) or "unknown"
        await self._publisher.publish(
            self._dlq, record.key, record.value, headers, partition=record.partition
        )
        log.error("dead_lettered_raw", reason=reason, topic=record.topic, offset=record.offset)
        EVENTS.labels(
            source if source in self._settings.sources else "unknown", "dead_lettered"
        ).inc()

    async def _audit_step(self, envelope: Envelope, kind: str, **details: Any) -> None:
        """Note one step of the event's history; `_flush_audit` writes them as one record."""
        steps = _AUDIT_STEPS.get()
        if steps is not None:
            steps.append({"kind": kind, "at": self._clock(), **details})

    async def _flush_audit(self, envelope: Envelope, steps: list[dict[str, Any]]) -> None:
        span = trace.get_current_span().get_span_context()
        entry = {
            "event_id": envelope.event_id,
            "source": envelope.source,
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
            "steps": steps,
        }
        key = dedupe_key(envelope.source, envelope.event_id).encode()
        await self._publisher.emit(
            self._audit, key, json.dumps(entry, separators=(",", ":")).encode(), []
        )


def _base_headers(record: Incoming) -> list[tuple[str, bytes]]:
    """The record's headers; the publisher moves its trace context on to the hop's span."""
    return list(record.headers.items())


def _longest_retry_after(results: list[AttemptResult]) -> float | None:
    waits = [r.retry_after for r in results if r.retry_after is not None]
    return max(waits) if waits else None
