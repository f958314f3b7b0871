"""What happens to one record, decided once (pure): dedupe, then after the attempts, its fate.

The worker asks two questions and carries out the answers (docs/architecture.md, "One
record's fate"):

1. `admit`: given what the dedupe table knows and how the record arrived, is it a duplicate
   (an Outcome at once) or a Delivery to some destinations?
2. `settle`: given that Delivery and the attempt results, the Outcome: the new dedupe
   record, where the record goes (done, retry tier n with its not-before, the DLQ with a
   reason), the headers of the record to write, and the audit steps.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hookstream.core.dedupe import Arrival, Decision, DedupeRecord, DedupeState, decide
from hookstream.core.headers import (
    Attempt,
    HeaderList,
    Headers,
    RetryState,
    is_redrive,
    retry_headers,
)
from hookstream.core.retry import DeadLetter, RetryPolicy, RetryTier
from hookstream.core.routing import AttemptResult, Verdict, overall

AuditStep = dict[str, Any]


class Kind(StrEnum):
    """An outcome's kind; also the `outcome` label of hookstream_events_total."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Arrived:
    """One decoded record: the event's facts and what its headers carry."""

    source: str
    event_id: str
    event_type: str | None
    entity_id: str
    received_at: float
    arrival: Arrival
    state: RetryState = field(default_factory=RetryState)
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Done:
    """Every destination has the event."""


@dataclass(frozen=True, slots=True)
class ToRetry:
    """Wait in retry tier `tier` until `not_before` (epoch seconds)."""

    tier: int
    not_before: float
    delay: float


@dataclass(frozen=True, slots=True)
class ToDeadLetter:
    reason: str


Route = Done | ToRetry | ToDeadLetter


@dataclass(frozen=True, slots=True)
class Outcome:
    """The fate of one record, for the worker to carry out."""

    kind: Kind
    route: Route
    dedupe: DedupeRecord | None  # what to store; None: leave the table as it is
    state: RetryState  # the attempts so far, this round's included
    headers: HeaderList  # of the record to write to a retry tier or the DLQ; [] when none
    steps: tuple[AuditStep, ...]
    delivered: tuple[str, ...] = ()  # every destination that has the event


@dataclass(frozen=True, slots=True)
class Delivery:
    """Deliver to `targets`; `already` have the event from an earlier round."""

    event: Arrived
    targets: tuple[str, ...]
    already: tuple[str, ...]
    steps: tuple[AuditStep, ...]


def arrival_of(from_events_topic: bool, reprocess: bool, headers: Headers) -> Arrival:
    """How a record reached the worker: a retry tier, an operator's replay or redrive, or new."""
    if not from_events_topic:
        return Arrival.RETRY
    if reprocess:
        return Arrival.REPROCESS
    if is_redrive(headers):
        return Arrival.REDRIVE
    return Arrival.NEW


def step(kind: str, at: float, **details: Any) -> AuditStep:
    """One audit step: what happened, when, and its details."""
    return {"kind": kind, "at": at, **details}


def admit(
    event: Arrived,
    known: DedupeRecord | None,
    matching: Iterable[str],
    now: float,
    ttl: float,
    origin: str | None = None,
) -> Outcome | Delivery:
    """A duplicate's Outcome, or the Delivery to run: every matching destination that does
    not have the event yet. `origin`: see `core.dedupe.decide`."""
    decision = decide(known, now, ttl, event.arrival, origin)
    if decision is Decision.DUPLICATE:
        return Outcome(
            kind=Kind.DUPLICATE,
            route=Done(),
            dedupe=None,
            state=event.state,
            headers=[],
            steps=(step("duplicate", now, arrival=event.arrival.value),),
            delivered=known.delivered if known is not None else (),
        )
    already = known.delivered if known is not None and decision is Decision.RESUME else ()
    steps: tuple[AuditStep, ...] = ()
    if event.arrival in (Arrival.NEW, Arrival.REPROCESS):
        steps = (
            step(
                "received",
                now,
                received_at=event.received_at,
                event_type=event.event_type,
                entity_id=event.entity_id,
                arrival=event.arrival.value,
            ),
        )
    targets = tuple(name for name in matching if name not in already)
    return Delivery(event, targets, tuple(already), steps)


def settle(
    delivery: Delivery,
    results: Sequence[AttemptResult],
    now: float,
    policy: RetryPolicy,
    rng: random.Random,
) -> Outcome:
    """The Outcome of one round of attempts (one result per target)."""
    event = delivery.event
    verdict = overall(results)
    attempt = event.state.attempts + 1
    deferred = [r for r in results if r.verdict is Verdict.DEFERRED]
    tried = tuple(Attempt.of(attempt, now, r) for r in results if r.verdict is not Verdict.DEFERRED)
    # A round in which nothing failed, only some destinations were deferred, spends no attempt.
    spent = attempt if verdict is not Verdict.DEFERRED else event.state.attempts
    state = RetryState(spent, 0.0, event.state.history + tried)
    delivered = tuple(
        sorted(set(delivery.already) | {r.destination for r in results if r.is_delivered})
    )
    steps = delivery.steps + tuple({"kind": "attempt", **a.to_json()} for a in tried)
    steps += tuple(
        step("deferred", now, destination=r.destination, reason=r.error) for r in deferred
    )
    if verdict is Verdict.DELIVERED:
        return Outcome(
            kind=Kind.DELIVERED,
            route=Done(),
            dedupe=DedupeRecord(DedupeState.DONE, now, delivered),
            state=state,
            headers=[],
            steps=(*steps, step("delivered", now, attempts=attempt)),
            delivered=delivered,
        )
    next_step: RetryTier | DeadLetter
    if verdict is Verdict.RETRYABLE:
        next_step = policy.next_step(attempt, rng, _longest_retry_after(results))
    elif verdict is Verdict.DEFERRED:
        next_step = policy.defer_step(_longest_retry_after(results) or 0.0, rng)
    else:
        next_step = DeadLetter("permanent failure")
    if isinstance(next_step, DeadLetter):
        return dead_letter(event, state, delivered, next_step.reason, now, steps)
    not_before = now + next_step.delay
    waiting = RetryState(state.attempts, not_before, state.history)
    return Outcome(
        kind=Kind.RETRY_SCHEDULED,
        route=ToRetry(next_step.index, not_before, next_step.delay),
        dedupe=DedupeRecord(DedupeState.RETRYING, now, delivered),
        state=waiting,
        headers=retry_headers(event.headers, waiting),
        steps=(
            *steps,
            step(
                "retry_scheduled",
                now,
                tier=next_step.index,
                not_before=not_before,
                attempts=state.attempts,
                last_error=waiting.last_error,
            ),
        ),
        delivered=delivered,
    )


def dead_letter(
    event: Arrived,
    state: RetryState,
    delivered: tuple[str, ...],
    reason: str,
    now: float,
    steps: tuple[AuditStep, ...] = (),
) -> Outcome:
    """The event goes to the DLQ with its attempts so far."""
    return Outcome(
        kind=Kind.DEAD_LETTERED,
        route=ToDeadLetter(reason),
        dedupe=DedupeRecord(DedupeState.DEAD_LETTERED, now, delivered),
        state=state,
        headers=retry_headers(event.headers, state, dead_lettered_at=now, reason=reason),
        steps=(*steps, step("dead_lettered", now, reason=reason, attempts=state.attempts)),
        delivered=delivered,
    )


def _longest_retry_after(results: Sequence[AttemptResult]) -> float | None:
    waits = [r.retry_after for r in results if r.retry_after is not None]
    return max(waits) if waits else None
