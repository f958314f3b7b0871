"""process_one: decode, dedupe, deliver, then carry out the outcome. It never raises.

What happens to a record is decided in `hookstream.core.outcome` (admit, then settle);
this module does the I/O around those decisions: the dedupe table, the attempts, the
writes to a retry tier or the DLQ, the audit record, logs and metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from hookstream.config import Settings
from hookstream.core.dedupe import Arrival, DedupeRecord, DedupeState, dedupe_key
from hookstream.core.events import body_dedupe_id, signs_body_only
from hookstream.core.headers import (
    TRACE_HEADERS,
    HeaderError,
    poison_headers,
    read_retry_state,
    source_of,
    trim_history,
)
from hookstream.core.outcome import (
    Arrived,
    AuditStep,
    Delivery,
    Kind,
    Outcome,
    ToDeadLetter,
    ToRetry,
    admit,
    arrival_of,
    dead_letter,
    settle,
)
from hookstream.core.protocols import DedupeStore, Publisher
from hookstream.core.retry import RetryPolicy
from hookstream.core.routing import AttemptResult, Verdict, matching_destinations
from hookstream.errors import BrokerDenied, PublishRefused
from hookstream.kafka.topics import audit_topic, dlq_topic, retry_topic
from hookstream.metrics import EVENTS, PROCESSING_SECONDS
from schemas import Envelope, EnvelopeError, decode_envelope
from streams.delivery import Deliverer

log = structlog.get_logger("hookstream.worker")
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
        transactional: bool = False,
    ) -> None:
        self._settings = settings
        self._store = store
        self._deliverer = deliverer
        self._publisher = publisher
        self._reprocess = reprocess
        self._clock = clock
        self._stopping = stopping
        # exactly_once: a round's Kafka writes are in a transaction that a crash aborts,
        # while its dedupe row is already in local RocksDB (see `core.dedupe.decide`).
        self._transactional = transactional
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._policy = RetryPolicy(tuple(settings.retry.schedule), settings.retry.jitter)
        self._dlq = dlq_topic(settings)
        self._audit = audit_topic(settings)

    async def process_one(self, record: Incoming) -> Outcome | None:
        """Never raises: every failure is classified, routed, logged and counted.

        The record's Outcome; None when it could not be judged (poison, an internal error,
        deferred for shutdown): those were dead-lettered raw or left in Kafka.
        """
        outcome: Outcome | None = None
        started = time.perf_counter()
        # Only the trace headers: the retry history can be large and is not needed here.
        context = propagate.extract(
            {k: record.headers[k].decode("latin-1") for k in TRACE_HEADERS if k in record.headers}
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
                outcome = await self._process(record)
            except (asyncio.CancelledError, BrokerDenied):
                raise
            except Exception as exc:
                # A bug of ours, not the event's: the record goes to the DLQ rather than
                # stalling the partition or being skipped silently.
                log.exception(
                    "process_failed_unexpectedly", topic=record.topic, offset=record.offset
                )
                await self._dead_letter_raw(record, f"internal error: {type(exc).__name__}: {exc}")
        PROCESSING_SECONDS.observe(time.perf_counter() - started)
        return outcome

    async def _process(self, record: Incoming) -> Outcome | None:
        try:
            envelope = decode_envelope(record.value or b"")
            state = read_retry_state(record.headers)
        except (EnvelopeError, HeaderError) as exc:
            await self._dead_letter_raw(record, f"poison: {exc}")
            return None
        event = Arrived(
            source=envelope.source,
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            entity_id=envelope.entity_id,
            received_at=envelope.received_at.timestamp(),
            arrival=arrival_of(
                record.topic == self._settings.topics.events,
                self._reprocess(record.topic, record.partition, record.offset),
                record.headers,
            ),
            state=state,
            headers=tuple(record.headers.items()),
        )
        structlog.contextvars.bind_contextvars(event_id=event.event_id, source=event.source)
        try:
            span = trace.get_current_span()
            span.set_attribute("messaging.message.id", event.event_id)
            span.set_attribute("hookstream.source", event.source)
            if not await self._wait_until(state.not_before):
                await self._defer(record)
                return None
            origin = (
                f"{record.topic}/{record.partition}/{record.offset}"
                if self._transactional
                else None
            )
            outcome = await self._decide(event, envelope, origin)
            outcome = await self._carry_out(record, event, outcome, origin)
            if outcome.dedupe is not None and self._body_only(event.source):
                remembered = dataclasses.replace(outcome.dedupe, origin=origin)
                self._store.put(dedupe_key(event.source, body_dedupe_id(envelope.body)), remembered)
            return outcome
        finally:
            structlog.contextvars.unbind_contextvars("event_id", "source")

    async def _decide(self, event: Arrived, envelope: Envelope, origin: str | None) -> Outcome:
        """Ask the core what to do, run the attempts it asks for, ask it again."""
        admitted = admit(
            event,
            self._known(event, envelope),
            matching_destinations(self._settings.destinations, event.source, event.event_type),
            self._clock(),
            self._settings.dedupe.ttl,
            origin,
        )
        if isinstance(admitted, Outcome):
            return admitted
        results = await self._attempt_all(admitted, envelope)
        outcome = settle(admitted, results, self._clock(), self._policy, self._rng)
        self._deliverer.settled(envelope, results, isinstance(outcome.route, ToRetry))
        return outcome

    def _known(self, event: Arrived, envelope: Envelope) -> DedupeRecord | None:
        """What the table remembers of the event: by its id, or, for a new arrival of a
        source that signs only the body, by that body (the same request under a new id)."""
        known = self._store.get(dedupe_key(event.source, event.event_id))
        if known is None and event.arrival is Arrival.NEW and self._body_only(event.source):
            known = self._store.get(dedupe_key(event.source, body_dedupe_id(envelope.body)))
        return known

    def _body_only(self, source: str) -> bool:
        settings = self._settings.sources.get(source)
        return settings is not None and signs_body_only(settings)

    async def _attempt_all(self, delivery: Delivery, envelope: Envelope) -> list[AttemptResult]:
        """One attempt at each target, all at once."""

        async def attempt(name: str) -> AttemptResult:
            try:
                return await self._deliverer.attempt(name, envelope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in an effect fails the attempt, not the record
                log.exception("attempt_failed_unexpectedly", destination=name)
                return AttemptResult(name, Verdict.RETRYABLE, f"{type(exc).__name__}: {exc}")

        return list(await asyncio.gather(*(attempt(name) for name in delivery.targets)))

    async def _carry_out(
        self, record: Incoming, event: Arrived, outcome: Outcome, origin: str | None = None
    ) -> Outcome:
        """Write where the outcome sends the record, then remember it, then tell. The outcome
        carried out: a record too large for its retry tier ends in the DLQ instead."""
        route = outcome.route
        if isinstance(route, ToRetry | ToDeadLetter):
            topic = (
                retry_topic(self._settings, route.tier) if isinstance(route, ToRetry) else self._dlq
            )
            try:
                # Same partition number as the record's: the dedupe shard stays with the event.
                await self._publisher.publish(
                    topic, record.key, record.value, outcome.headers, partition=record.partition
                )
            except PublishRefused as exc:
                # Its retry history made the record larger than Kafka takes: retrying the
                # write cannot help, so it goes to the DLQ with the history cut short.
                outcome = dead_letter(
                    event,
                    outcome.state,
                    outcome.delivered,
                    f"record too large for {topic}: {exc}",
                    self._clock(),
                    outcome.steps,
                )
                await self._publisher.publish(
                    self._dlq,
                    record.key,
                    record.value,
                    trim_history(outcome.headers),
                    partition=record.partition,
                )
        if outcome.dedupe is not None:
            remembered = dataclasses.replace(outcome.dedupe, origin=origin)
            self._store.put(dedupe_key(event.source, event.event_id), remembered)
        _log_outcome(outcome, event)
        EVENTS.labels(event.source, outcome.kind.value).inc()
        await self._write_audit(event, outcome.steps)
        return outcome

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
            [(k, v) for k, v in record.headers.items() if k not in TRACE_HEADERS],
            partition=record.partition,
        )
        log.info("retry_deferred_for_shutdown", topic=record.topic, partition=record.partition)

    async def dead_letter(self, record: Incoming, reason: str) -> None:
        """Send a record to the DLQ as it is, with `reason` (a lane at its parked bound)."""
        await self._dead_letter_raw(record, reason)

    def is_done(self, source: str, event_id: str) -> bool:
        """Whether every destination has the event (its dedupe record says done)."""
        known = self._store.get(dedupe_key(source, event_id))
        return known is not None and known.state is DedupeState.DONE

    async def audit(self, source: str, event_id: str, steps: tuple[AuditStep, ...]) -> None:
        """Add steps to an event's audit trail that no attempt made (parked, lane moves)."""
        await self._write_audit(_Audited(source, event_id), steps)

    async def _dead_letter_raw(self, record: Incoming, reason: str) -> None:
        """Poison or an internal error: the raw bytes go to the DLQ, nothing is skipped silently."""
        headers = poison_headers(
            record.headers.items(),
            reason,
            self._clock(),
            f"{record.topic}/{record.partition}/{record.offset}",
        )
        try:
            await self._publisher.publish(
                self._dlq, record.key, record.value, headers, partition=record.partition
            )
        except PublishRefused:
            await self._publisher.publish(
                self._dlq,
                record.key,
                record.value,
                trim_history(headers),
                partition=record.partition,
            )
        log.error("dead_lettered_raw", reason=reason, topic=record.topic, offset=record.offset)
        source = source_of(record.headers)
        known = source if source in self._settings.sources else "unknown"
        EVENTS.labels(known, Kind.DEAD_LETTERED.value).inc()

    async def _write_audit(self, event: Arrived | _Audited, steps: tuple[AuditStep, ...]) -> None:
        """One audit record per processing round: audit writes are the worker's second-largest
        cost after the dedupe table's changelog. Best effort: the event's fate is settled and
        remembered by now, so a failed audit write is logged, never a reason to redo it."""
        try:
            await self._emit_audit(event, steps)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("audit_write_failed", error=f"{type(exc).__name__}: {exc}")

    async def _emit_audit(self, event: Arrived | _Audited, steps: tuple[AuditStep, ...]) -> None:
        if not steps:
            return
        span = trace.get_current_span().get_span_context()
        entry = {
            "event_id": event.event_id,
            "source": event.source,
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
            "steps": list(steps),
        }
        key = dedupe_key(event.source, event.event_id).encode()
        await self._publisher.emit(
            self._audit, key, json.dumps(entry, separators=(",", ":")).encode(), []
        )


@dataclass(frozen=True, slots=True)
class _Audited:
    source: str
    event_id: str


def _log_outcome(outcome: Outcome, event: Arrived) -> None:
    state = outcome.state
    route = outcome.route
    # The happy path's lines are at debug: hookstream_events_total, the audit trail and the
    # event's trace tell the same, and a line per event is a large share of a worker's CPU.
    if outcome.kind is Kind.DUPLICATE:
        log.debug("duplicate_skipped", arrival=event.arrival.value)
    elif outcome.kind is Kind.DELIVERED:
        log.debug("delivered", destinations=list(outcome.delivered), attempts=state.attempts)
    elif isinstance(route, ToRetry):
        log.info(
            "retry_scheduled", tier=route.tier, delay=round(route.delay, 3), attempts=state.attempts
        )
    elif isinstance(route, ToDeadLetter):
        log.warning(
            "dead_lettered",
            reason=route.reason,
            attempts=state.attempts,
            last_error=state.last_error,
        )
