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
from opentelemetry.trace import Link

from hookstream.config import Settings
from hookstream.core.headers import (
    TRACE_HEADERS,
    Attempt,
    HeaderError,
    dead_lettered_at_ms,
    describe_undecoded,
    dlq_reason,
    parse_position,
    read_retry_state,
    redrive_headers,
    redriven_marker,
    redriven_position,
)
from hookstream.errors import HookstreamError
from hookstream.kafka.clients import producer_config
from hookstream.kafka.reading import Record, read_to_end
from hookstream.kafka.topics import dlq_topic
from hookstream.ops.audit import record_operator_steps
from hookstream.telemetry import publish_span
from schemas import EnvelopeError, decode_envelope

tracer = trace.get_tracer("hookstream.ops")


_SUMMARY_FIELDS = (
    "event_id",
    "source",
    "event_type",
    "entity_id",
    "attempts",
    "last_error",
    "reason",
    "poison",
    "position",
)


def summary_of(entry: Any, dead_lettered_at: datetime) -> dict[str, Any]:
    """The `dlq list --json` item: the same from a scan of the topic and from the index."""
    item = {name: getattr(entry, name) for name in _SUMMARY_FIELDS}
    item["dead_lettered_at"] = dead_lettered_at.isoformat()
    return item


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
        return summary_of(self, self.dead_lettered_at)

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


def entry_of(record: Record) -> DeadLetter:
    """A DLQ record as a DeadLetter (poison when its envelope does not decode)."""
    headers = record.headers
    at_ms = dead_lettered_at_ms(headers) or record.timestamp_ms
    try:
        state = read_retry_state(headers)
    except HeaderError:
        state = None
    try:
        envelope = decode_envelope(record.value or b"")
    except EnvelopeError:
        envelope = None
    event_id, source, event_type = describe_undecoded(headers)
    return DeadLetter(
        record=record,
        event_id=envelope.event_id if envelope else event_id,
        source=envelope.source if envelope else source,
        event_type=envelope.event_type if envelope else event_type,
        entity_id=envelope.entity_id
        if envelope
        else (record.key or b"").decode("utf-8", "replace"),
        reason=dlq_reason(headers),
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
        marker = redriven_position(record.headers)
        if marker is not None:
            position = parse_position(marker)
            if position is not None:
                redriven.add(position)
            continue
        entries[(record.partition, record.offset)] = entry_of(record)
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


def redrive(settings: Settings, entries: list[DeadLetter], by: str | None = None) -> int:
    """Put each entry back on the events topic (same key, value and event id), then mark it;
    the event's audit trail says who redrove it (`by`) when it is named."""
    started = time.time()
    producer = Producer(producer_config(settings))
    errors: list[str] = []

    def report(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    for entry in entries:
        # A redrive continues the event's own trace, and links to it as well.
        origin = propagate.extract(
            {k: v.decode("latin-1") for k, v in entry.record.headers.items() if k in TRACE_HEADERS}
        )
        origin_span = trace.get_current_span(origin).get_span_context()
        with publish_span(
            tracer,
            settings.topics.events,
            partition=entry.record.partition,
            name=f"{settings.topics.events} redrive",
            context=origin if origin_span.is_valid else None,
            links=[Link(origin_span)] if origin_span.is_valid else [],
            attributes={
                "messaging.operation.name": "redrive",
                "messaging.message.id": entry.event_id or "",
                "hookstream.dlq.position": entry.position,
            },
        ) as trace_headers:
            producer.produce(
                settings.topics.events,
                key=entry.record.key,
                value=entry.record.value,
                headers=_kafka_headers(
                    trace_headers + redrive_headers(entry.record.headers.items(), entry.position)
                ),
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
            headers=_kafka_headers(redriven_marker(entry.position, time.time())),
            partition=entry.record.partition,
            on_delivery=report,
        )
    if producer.flush(30) or errors:
        raise RedriveError(
            "records were redriven but not all were marked in the DLQ: " + "; ".join(errors[:5])
        )
    if by is not None:
        record_operator_steps(
            settings,
            (
                (e.source, e.event_id, None, _redriven_step(e, by, started))
                for e in entries
                if e.source and e.event_id
            ),
        )
    return len(entries)


def _redriven_step(entry: DeadLetter, by: str, at: float) -> dict[str, Any]:
    return {"kind": "redriven", "at": at, "by": by, "position": entry.position}


def _kafka_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, str | bytes | None]]:
    """The same list, typed as confluent-kafka takes it."""
    return list(headers)


def dump(items: list[dict[str, Any]]) -> str:
    return json.dumps(items, indent=2, ensure_ascii=False)
