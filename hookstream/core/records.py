"""Kafka record headers hookstream writes and reads, as plain data (pure)."""

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
REDRIVE = "hookstream-redrive"  # set on a record put back from the DLQ
REDRIVEN = "hookstream-redriven"  # a DLQ marker: the entry at this offset was redriven
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

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
    value = headers.get(name)
    return None if value is None else value.decode("utf-8", "replace")


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


def retry_headers(
    base: Iterable[tuple[str, bytes]],
    state: RetryState,
    *,
    dead_lettered_at: float | None = None,
    reason: str | None = None,
) -> HeaderList:
    """`base` without stale retry headers, plus the attempt count, not-before, history."""
    replaced = {ATTEMPTS, NOT_BEFORE, LAST_ERROR, HISTORY, DEAD_LETTERED_AT, DLQ_REASON, REDRIVE}
    headers = [(k, v) for k, v in base if k not in replaced]
    headers += [
        (ATTEMPTS, str(state.attempts).encode()),
        (NOT_BEFORE, str(int(state.not_before * 1000)).encode()),
        (HISTORY, json.dumps([a.to_json() for a in state.history], separators=(",", ":")).encode()),
    ]
    if state.last_error:
        headers.append((LAST_ERROR, state.last_error.encode()))
    if dead_lettered_at is not None:
        headers.append((DEAD_LETTERED_AT, str(int(dead_lettered_at * 1000)).encode()))
    if reason:
        headers.append((DLQ_REASON, reason.encode()))
    return headers
