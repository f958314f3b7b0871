"""The dedupe decision: is this (source, event id) new, done, or already in hand?"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DedupeState(StrEnum):
    DONE = "done"  # every destination has it
    RETRYING = "retrying"  # waiting in a retry tier: a duplicate must not run in parallel
    DEAD_LETTERED = "dead_lettered"  # in the DLQ until an operator redrives it


class Arrival(StrEnum):
    """How a record reached the worker."""

    NEW = "new"  # from the events topic, as the ingress produced it
    RETRY = "retry"  # from a retry tier
    REDRIVE = "redrive"  # put back from the DLQ by an operator
    REPROCESS = "reprocess"  # inside an offset range an operator replayed with --reprocess


class Decision(StrEnum):
    NEW = "new"  # deliver to every matching destination
    RESUME = "resume"  # deliver to the destinations that do not have it yet
    DUPLICATE = "duplicate"  # skip


@dataclass(frozen=True, slots=True)
class DedupeRecord:
    """What the dedupe table keeps per (source, event id)."""

    state: DedupeState
    at: float
    delivered: tuple[str, ...] = field(default_factory=tuple)
    # `topic/partition/offset` of the record whose round wrote this row (exactly_once only).
    origin: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.state.value,
            "at": self.at,
            "delivered": list(self.delivered),
        }
        if self.origin is not None:
            data["origin"] = self.origin
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DedupeRecord:
        return cls(
            DedupeState(data["state"]),
            float(data["at"]),
            tuple(data.get("delivered", ())),
            data.get("origin"),
        )


def dedupe_key(source: str, event_id: str) -> str:
    return f"{source}\x1f{event_id}"


def decide(
    record: DedupeRecord | None,
    now: float,
    ttl: float,
    arrival: Arrival = Arrival.NEW,
    origin: str | None = None,
) -> Decision:
    """Whether to run the effect for this arrival, given what the table remembers.

    `origin` (exactly_once only) is the position of the record being read: a row written by
    this very record means its round's transaction was aborted (the worker died before the
    commit), so the retry or DLQ record the row speaks of was never written.
    """
    if arrival is Arrival.REPROCESS:
        return Decision.NEW
    if record is None or now - record.at > ttl:
        return Decision.RESUME if arrival is Arrival.RETRY else Decision.NEW
    if record.state is DedupeState.DONE:
        return Decision.DUPLICATE
    if origin is not None and record.origin == origin:
        return Decision.RESUME
    if record.state is DedupeState.RETRYING:
        # A redrive comes from the DLQ: a round that failed before writing its next tier
        # left the row "retrying" and dead-lettered the raw record.
        retried = arrival in (Arrival.RETRY, Arrival.REDRIVE)
        return Decision.RESUME if retried else Decision.DUPLICATE
    # dead-lettered: only an operator's redrive brings it back
    return Decision.RESUME if arrival is Arrival.REDRIVE else Decision.DUPLICATE
