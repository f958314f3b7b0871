"""Every Kafka record header hookstream writes or reads: names, writers and readers (pure).

This module is the one owner of the header protocol (docs/architecture.md, "Records and
headers"). Nothing else names a hookstream header; code elsewhere calls the functions below.

- the ingress writes `event_headers` on each new record;
- a retry hop or a DLQ write replaces the retry headers with `retry_headers`;
- a poison record goes to the DLQ with `poison_headers`;
- an operator's redrive strips the retry state with `redrive_headers` and marks the DLQ entry
  with `redriven_marker`.

`traceparent`/`tracestate` are written by the publisher of each hop (telemetry.publish_span),
never copied from the record being read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hookstream.core.routing import AttemptResult
from hookstream.errors import HookstreamError

EVENT_ID = "hookstream-event-id"
SOURCE = "hookstream-source"
EVENT_TYPE = "hookstream-event-type"
ATTEMPTS = "hookstream-attempts"  # how many attempts so far
NOT_BEFORE = "hookstream-not-before"  # epoch milliseconds
LAST_ERROR = "hookstream-last-error"
HISTORY = "hookstream-history"  # JSON list of every attempt
DEAD_LETTERED_AT = "hookstream-dead-lettered-at"  # epoch milliseconds
DLQ_REASON = "hookstream-dlq-reason"
ORIGIN = "hookstream-origin"  # topic/partition/offset the record was taken from
REDRIVE = "hookstream-redrive"  # set on a record put back from the DLQ: the DLQ position
REDRIVEN = "hookstream-redriven"  # a DLQ marker: the entry at this position was redriven
REDRIVEN_AT = "hookstream-redriven-at"  # epoch milliseconds, on the marker
LANE_RELEASE = "hookstream-lane-release"  # an operator's release of a held lane (no event)
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)

# The retry state a hop carries; a new hop or a redrive replaces all of it.
_RETRY_STATE = frozenset(
    {ATTEMPTS, NOT_BEFORE, LAST_ERROR, HISTORY, DEAD_LETTERED_AT, DLQ_REASON, ORIGIN, REDRIVE}
)

Headers = Mapping[str, bytes]
HeaderList = list[tuple[str, bytes]]


class HeaderError(HookstreamError):
    """hookstream headers that cannot be read: the record is poison."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at one destination, as the audit trail and DLQ keep it."""

    attempt: int
    at: float
    destination: str
    verdict: str
    status: int | None = None
    error: str | None = None
    duration_ms: float = 0.0

    @classmethod
    def of(cls, attempt: int, at: float, result: AttemptResult) -> Attempt:
        return cls(
            attempt=attempt,
            at=at,
            destination=result.destination,
            verdict=result.verdict.value,
            status=result.status,
            error=result.error,
            duration_ms=round(result.duration * 1000, 3),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "at": self.at,
            "destination": self.destination,
            "verdict": self.verdict,
            "status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(
            attempt=int(data["attempt"]),
            at=float(data["at"]),
            destination=str(data["destination"]),
            verdict=str(data["verdict"]),
            status=None if data.get("status") is None else int(data["status"]),
            error=data.get("error"),
            duration_ms=float(data.get("duration_ms", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class RetryState:
    """What a record carries about the attempts before it."""

    attempts: int = 0
    not_before: float = 0.0
    history: tuple[Attempt, ...] = field(default_factory=tuple)

    @property
    def last_error(self) -> str | None:
        for attempt in reversed(self.history):
            if attempt.error:
                return f"{attempt.destination}: {attempt.error}"
        return None


def text(headers: Headers, name: str) -> str | None:
    """A header as text, or None when absent."""
    value = headers.get(name)
    return None if value is None else value.decode("utf-8", "replace")


def _millis(seconds: float) -> bytes:
    return str(int(seconds * 1000)).encode()


# --- the ingress ---


def event_headers(event_id: str, source: str, event_type: str | None) -> HeaderList:
    """What the ingress writes beside the envelope, so tools can read a record undecoded."""
    return [
        (EVENT_ID, event_id.encode()),
        (SOURCE, source.encode()),
        (EVENT_TYPE, (event_type or "").encode()),
    ]


def source_of(headers: Headers) -> str | None:
    """The source a record names in its headers (readable even when the envelope is not)."""
    return text(headers, SOURCE)


def describe_undecoded(headers: Headers) -> tuple[str | None, str | None, str | None]:
    """(event id, source, event type) from the headers alone, for a poison record."""
    return text(headers, EVENT_ID), text(headers, SOURCE), text(headers, EVENT_TYPE)


# --- retry hops and the DLQ ---


def read_retry_state(headers: Headers) -> RetryState:
    """The retry state of a record; HeaderError if hookstream's headers are corrupt."""
    try:
        attempts = int(headers.get(ATTEMPTS, b"0"))
        not_before = int(headers.get(NOT_BEFORE, b"0")) / 1000
        raw = headers.get(HISTORY)
        history = tuple(Attempt.from_json(a) for a in json.loads(raw)) if raw else ()
    except (ValueError, KeyError, TypeError) as exc:
        raise HeaderError(f"unreadable retry headers: {exc}") from exc
    if attempts < 0:
        raise HeaderError("negative attempt count")
    return RetryState(attempts, not_before, history)


def not_before_of(headers: Headers) -> float:
    """When a retry record is due (epoch seconds); 0 when it names no time or an unreadable one
    (the processor then dead-letters it as poison)."""
    raw = headers.get(NOT_BEFORE)
    try:
        return int(raw) / 1000 if raw else 0.0
    except ValueError:
        return 0.0


def _kept(base: Iterable[tuple[str, bytes]], dropped: Iterable[str]) -> HeaderList:
    gone = set(dropped)
    return [(k, v) for k, v in base if k not in gone and k not in TRACE_HEADERS]


def retry_headers(
    base: Iterable[tuple[str, bytes]],
    state: RetryState,
    *,
    dead_lettered_at: float | None = None,
    reason: str | None = None,
) -> HeaderList:
    """`base` without its retry state or trace context, plus the new retry state."""
    headers = _kept(base, _RETRY_STATE)
    headers += [
        (ATTEMPTS, str(state.attempts).encode()),
        (NOT_BEFORE, _millis(state.not_before)),
        (HISTORY, json.dumps([a.to_json() for a in state.history], separators=(",", ":")).encode()),
    ]
    if state.last_error:
        headers.append((LAST_ERROR, state.last_error.encode()))
    if dead_lettered_at is not None:
        headers.append((DEAD_LETTERED_AT, _millis(dead_lettered_at)))
    if reason:
        headers.append((DLQ_REASON, reason.encode()))
    return headers


def trim_history(headers: Iterable[tuple[str, bytes]], keep: int = 1) -> HeaderList:
    """The headers with only the last `keep` attempts of the history, and the last error cut
    short: for a record that its history has made larger than Kafka accepts."""
    trimmed: HeaderList = []
    for name, value in headers:
        if name == HISTORY:
            try:
                attempts = json.loads(value)
            except ValueError:
                attempts = []
            kept = attempts[-keep:] if keep > 0 and isinstance(attempts, list) else []
            for attempt in kept:
                if isinstance(attempt, dict) and isinstance(attempt.get("error"), str):
                    attempt["error"] = attempt["error"][:1024]
            value = json.dumps(kept, separators=(",", ":")).encode()
        elif name == LAST_ERROR:
            value = value[:1024]
        trimmed.append((name, value))
    return trimmed


def poison_headers(
    base: Iterable[tuple[str, bytes]], reason: str, now: float, origin: str
) -> HeaderList:
    """A record that could not be processed at all goes to the DLQ with its raw headers."""
    headers = _kept(base, (DLQ_REASON, DEAD_LETTERED_AT, ORIGIN))
    headers += [
        (DLQ_REASON, reason.encode()),
        (DEAD_LETTERED_AT, _millis(now)),
        (ORIGIN, origin.encode()),
    ]
    return headers


def dead_lettered_at_ms(headers: Headers) -> int | None:
    """When the record was dead-lettered, in epoch milliseconds, if it says."""
    try:
        return int(headers.get(DEAD_LETTERED_AT, b"0") or 0) or None
    except ValueError:
        return None


def dlq_reason(headers: Headers) -> str | None:
    return text(headers, DLQ_REASON)


# --- redrive ---


def redrive_headers(base: Iterable[tuple[str, bytes]], position: str) -> HeaderList:
    """A DLQ entry put back on the events topic: a fresh start, marked as a redrive."""
    return [*_kept(base, _RETRY_STATE), (REDRIVE, position.encode())]


def is_redrive(headers: Headers) -> bool:
    return REDRIVE in headers


def redriven_marker(position: str, now: float) -> HeaderList:
    """The headers of the DLQ record that says the entry at `position` was redriven."""
    return [(REDRIVEN, position.encode()), (REDRIVEN_AT, _millis(now))]


def redriven_position(headers: Headers) -> bytes | None:
    """The position a redriven marker names, or None for an ordinary DLQ entry."""
    return headers.get(REDRIVEN)


def parse_position(raw: bytes) -> tuple[int, int] | None:
    """``partition/offset`` as a redrive writes it; None when it is not that."""
    partition, sep, offset = raw.decode("ascii", "replace").partition("/")
    if not sep or not partition.isdigit() or not offset.isdigit():
        return None
    return int(partition), int(offset)


# --- lanes ---


def lane_release_headers(source: str, now: float) -> HeaderList:
    """The headers of a release marker: sent down the events topic, keyed by the entity, so
    it reaches the worker that owns the lane, in order with the lane's records."""
    return [(SOURCE, source.encode()), (LANE_RELEASE, _millis(now))]


def is_lane_release(headers: Headers) -> bool:
    return LANE_RELEASE in headers


def event_id_of(headers: Headers) -> str | None:
    """The event id the ingress wrote beside the envelope, if any."""
    return text(headers, EVENT_ID)
