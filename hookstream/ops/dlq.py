"""The dead-letter topic: list, show, redrive."""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

from hookstream.config import Settings
from hookstream.core import records as h
from hookstream.core.records import Attempt, HeaderError, read_retry_state
from hookstream.errors import HookstreamError
from hookstream.kafka.clients import producer_config
from hookstream.kafka.reading import Record, read_to_end
from hookstream.kafka.topics import dlq_topic
from schemas import EnvelopeError, decode_envelope

tracer = trace.get_tracer("hookstream.ops")


@dataclass
class DeadLetter:
    """One entry of the DLQ that has not been redriven."""

    record: Record
    event_id: str | None
    source: str | None
    event_type: str | None
    entity_id: str | None
    reason: str | None
    dead_lettered_at: datetime
    attempts: int
    history: list[Attempt] = field(default_factory=list)
    poison: bool = False

    @property
    def last_error(self) -> str | None:
        for attempt in reversed(self.history):
            if attempt.error:
                return f"{attempt.destination}: {attempt.error}"
        return self.reason

    @property
    def position(self) -> str:
        return f"{self.record.partition}/{self.record.offset}"

    def summary(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "source": self.source,
            "event_type": self.event_type,
            "entity_id": self.entity_id,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "reason": self.reason,
            "dead_lettered_at": self.dead_lettered_at.isoformat(),
            "poison": self.poison,
            "position": self.position,
        }

    def detail(self) -> dict[str, Any]:
        payload = self.record.value or b""
        envelope_body: bytes | None = None
        content_type = None
        sender_headers: dict[str, str] = {}
        if not self.poison:
            envelope = decode_envelope(payload)
            envelope_body, content_type, sender_headers = (
                envelope.body,
                envelope.content_type,
                envelope.headers,
            )
        body = envelope_body if envelope_body is not None else payload
        return {
            **self.summary(),
            "payload": body.decode("utf-8", "replace"),
            "content_type": content_type,
            "sender_headers": sender_headers,
            "kafka_headers": {
                k: v.decode("utf-8", "replace") for k, v in self.record.headers.items()
            },
            "history": [a.to_json() for a in self.history],
        }


def _entry(record: Record) -> DeadLetter:
    headers = record.headers
    at_ms = int(headers.get(h.DEAD_LETTERED_AT, b"0") or 0) or record.timestamp_ms
    try:
        state = read_retry_state(headers)
    except HeaderError:
        state = None
    try:
        envelope = decode_envelope(record.value or b"")
    except EnvelopeError:
        envelope = None
    return DeadLetter(
        record=record,
        event_id=envelope.event_id if envelope else h.text(headers, h.EVENT_ID),
        source=envelope.source if envelope else h.text(headers, h.SOURCE),
        event_type=envelope.event_type if envelope else h.text(headers, h.EVENT_TYPE),
        entity_id=envelope.entity_id
        if envelope
        else (record.key or b"").decode("utf-8", "replace"),
        reason=h.text(headers, h.DLQ_REASON),
        dead_lettered_at=datetime.fromtimestamp(at_ms / 1000, UTC),
        attempts=state.attempts if state else 0,
        history=list(state.history) if state else [],
        poison=envelope is None,
    )


def dead_letters(settings: Settings) -> list[DeadLetter]:
    """DLQ entries not yet redriven, oldest first."""
    entries: dict[tuple[int, int], DeadLetter] = {}
    redriven: set[tuple[int, int]] = set()
    for record in read_to_end(settings, dlq_topic(settings)):
        marker = record.headers.get(h.REDRIVEN)
        if marker is not None:
            partition, _, offset = marker.decode().partition("/")
            redriven.add((int(partition), int(offset)))
            continue
        entries[(record.partition, record.offset)] = _entry(record)
    live = [e for pos, e in entries.items() if pos not in redriven]
    return sorted(live, key=lambda e: (e.dead_lettered_at, e.record.partition, e.record.offset))


def select(
    entries: Iterable[DeadLetter],
    *,
    event_ids: Iterable[str] = (),
    source: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
) -> list[DeadLetter]:
    wanted = set(event_ids)
    chosen = []
    for entry in entries:
        if wanted and entry.event_id not in wanted:
            continue
        if source is not None and entry.source != source:
            continue
        if event_type is not None and not fnmatch.fnmatchcase(entry.event_type or "", event_type):
            continue
        if since is not None and entry.dead_lettered_at < since:
            continue
        chosen.append(entry)
    return chosen


class RedriveError(HookstreamError):
    """Records could not be put back."""


def redrive(settings: Settings, entries: list[DeadLetter]) -> int:
    """Put each entry back on the events topic (same key, value and event id), then mark it."""
    producer = Producer(producer_config(settings))
    errors: list[str] = []

    def report(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    for entry in entries:
        origin = entry.record.headers.get(h.TRACEPARENT)
        links = []
        if origin:
            parent = trace.get_current_span(propagate.extract({"traceparent": origin.decode()}))
            links.append(Link(parent.get_span_context()))
        # A redrive continues the event's own trace, and links to it as well.
        context = propagate.extract({"traceparent": origin.decode()}) if origin else None
        with tracer.start_as_current_span(
            f"{settings.topics.events} redrive",
            context=context,
            kind=SpanKind.PRODUCER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "redrive",
                "messaging.destination.name": settings.topics.events,
                "messaging.destination.partition.id": str(entry.record.partition),
                "messaging.message.id": entry.event_id or "",
                "hookstream.dlq.position": entry.position,
            },
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            dropped = {
                h.TRACEPARENT,
                h.TRACESTATE,
                h.ATTEMPTS,
                h.NOT_BEFORE,
                h.LAST_ERROR,
                h.HISTORY,
                h.DEAD_LETTERED_AT,
                h.DLQ_REASON,
                h.ORIGIN,
                h.REDRIVE,
            }
            headers: list[tuple[str, str | bytes | None]] = [
                (k, v) for k, v in entry.record.headers.items() if k not in dropped
            ]
            headers += [(k, v.encode()) for k, v in carrier.items()]
            headers.append((h.REDRIVE, entry.position.encode()))
            producer.produce(
                settings.topics.events,
                key=entry.record.key,
                value=entry.record.value,
                headers=headers,
                partition=entry.record.partition,
                on_delivery=report,
            )
    if producer.flush(30):
        raise RedriveError("Kafka did not acknowledge every redriven record; nothing was marked")
    if errors:
        raise RedriveError("redrive failed: " + "; ".join(errors[:5]))
    for entry in entries:
        producer.produce(
            dlq_topic(settings),
            key=entry.record.key,
            value=None,
            headers=[
                (h.REDRIVEN, entry.position.encode()),
                ("hookstream-redriven-at", str(int(time.time() * 1000)).encode()),
            ],
            partition=entry.record.partition,
            on_delivery=report,
        )
    if producer.flush(30) or errors:
        raise RedriveError(
            "records were redriven but not all were marked in the DLQ: " + "; ".join(errors[:5])
        )
    return len(entries)


def dump(items: list[dict[str, Any]]) -> str:
    return json.dumps(items, indent=2, ensure_ascii=False)
