"""Order across retries: when an entity's later events wait (are *parked*) behind one that
failed, and when they follow it (pure; `streams/parking.py` carries it out).

Under `ordering: entity` a lane (source, entity) is *blocked* while one of its events waits
in a retry tier, or lies in the DLQ under `on_dead_letter: hold`. Records of a blocked lane
are parked in arrival order instead of run; other lanes flow. When the blocking event is
delivered (or dead-lettered under `skip`, or the held lane is released by an operator),
the lane *drains*: its parked records run one at a time, in order, and any of them may
block the lane again. Arrivals while a lane drains are parked behind the rest, so order
holds.

A lane's state is small (who blocks it, since when, the range of its parked records); the
parked records are kept one per key beside it, so parking and draining one is O(1).

At the bound (`max_parked` records parked in one lane) an arrival is not parked: it is
dead-lettered with a reason that says so (visible in `dlq list`, counted, audited), and
can be redriven once the lane is clear. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from hookstream.core.outcome import Kind


class Ordering(StrEnum):
    """A source's `ordering`: keep each entity's order across retries, or not."""

    ENTITY = "entity"
    NONE = "none"


class OnDeadLetter(StrEnum):
    """A source's `on_dead_letter`: what a lane does when its blocking event is dead-lettered."""

    HOLD = "hold"  # the lane waits for a redrive of the event or an operator's release
    SKIP = "skip"  # the lane moves on; the skip is in the event's audit trail


class Cause(StrEnum):
    """Why a lane's records are parked."""

    RETRYING = "retrying"  # the blocking event waits in a retry tier
    HELD = "held"  # the blocking event is in the DLQ (`on_dead_letter: hold`)
    DRAINING = "draining"  # nothing blocks any more; the parked records are running


@dataclass(frozen=True, slots=True)
class LaneState:
    """A lane with parked records or a blocking event: absent when the lane is clear."""

    cause: Cause
    blocked_by: str | None  # the blocking event's id; None while draining
    since: float  # when the lane was blocked (epoch seconds)
    head: int = 0  # sequence number of the oldest parked record
    tail: int = 0  # sequence number the next parked record gets
    partition: int | None = None  # the events partition the lane lives on

    @property
    def parked(self) -> int:
        """How many records are parked."""
        return self.tail - self.head

    def to_json(self) -> str:
        return json.dumps(
            {
                "cause": self.cause.value,
                "blocked_by": self.blocked_by,
                "since": self.since,
                "head": self.head,
                "tail": self.tail,
                "partition": self.partition,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> LaneState:
        data: dict[str, Any] = json.loads(raw)
        partition = data.get("partition")
        return cls(
            Cause(data["cause"]),
            data.get("blocked_by"),
            float(data["since"]),
            int(data["head"]),
            int(data["tail"]),
            None if partition is None else int(partition),
        )


class Arrive(StrEnum):
    """What to do with a record of a lane, before running it."""

    RUN = "run"
    PARK = "park"
    OVERFLOW = "overflow"  # the lane holds `max_parked` already: dead-letter it, say why


def on_arrival(state: LaneState | None, event_id: str | None, max_parked: int) -> Arrive:
    """Run the record, park it behind the lane's blocker, or refuse it at the bound.

    The blocking event itself (its retry record, or its redrive) runs: it is what the lane
    waits for.
    """
    if state is None:
        return Arrive.RUN
    if state.blocked_by is not None and event_id == state.blocked_by:
        return Arrive.RUN
    if state.parked >= max_parked:
        return Arrive.OVERFLOW
    return Arrive.PARK


def park(state: LaneState) -> tuple[LaneState, int]:
    """The state with one more record parked, and that record's sequence number."""
    return replace(state, tail=state.tail + 1), state.tail


def unpark(state: LaneState) -> tuple[LaneState, int]:
    """The state with its oldest parked record taken out to run, and its sequence number."""
    if state.parked == 0:
        raise ValueError("no parked record to take")
    return replace(state, head=state.head + 1), state.head


def after_outcome(
    state: LaneState | None,
    event_id: str,
    kind: Kind,
    on_dead_letter: OnDeadLetter,
    now: float,
    partition: int | None = None,
    *,
    settled: bool = True,
) -> LaneState | None:
    """The lane's state once a record of it has run with an outcome of `kind`.

    A retry blocks the lane, and so does a dead letter under `hold`; a delivery (or a
    duplicate of a delivered event, or a dead letter under `skip`) of the blocking event
    lets the lane drain. A duplicate of an event still in a retry tier or the DLQ
    (`settled` False: a sender's re-send, a record read again after a crash) changes
    nothing. Returns None when the lane is clear (nothing blocks it, nothing parked).
    """
    if kind is Kind.DUPLICATE and not settled:
        return state
    blocks = kind is Kind.RETRY_SCHEDULED or (
        kind is Kind.DEAD_LETTERED and on_dead_letter is OnDeadLetter.HOLD
    )
    if blocks:
        cause = Cause.RETRYING if kind is Kind.RETRY_SCHEDULED else Cause.HELD
        if state is None:
            return LaneState(cause, event_id, now, partition=partition)
        since = state.since if state.blocked_by == event_id else now
        return replace(state, cause=cause, blocked_by=event_id, since=since)
    if state is None:
        return None
    if state.blocked_by is not None and state.blocked_by != event_id:
        return state  # another event blocks the lane: this one changes nothing
    return unblocked(state)


def unblocked(state: LaneState) -> LaneState | None:
    """Nothing blocks the lane any more: it drains what is parked, or is clear."""
    if state.parked == 0:
        return None
    return replace(state, cause=Cause.DRAINING, blocked_by=None)


def blocked_step(cause: Cause, parked: int, now: float) -> dict[str, Any]:
    """The audit step of an event that blocks its lane (retrying, or held in the DLQ)."""
    return {"kind": "lane_blocked", "at": now, "cause": cause.value, "parked": parked}


def skipped_step(parked: int, now: float) -> dict[str, Any]:
    """The audit step of a dead-lettered event its lane moved on from (`skip`)."""
    return {"kind": "lane_skipped", "at": now, "parked": parked}


def released_step(parked: int, now: float) -> dict[str, Any]:
    """The audit step of a held event whose lane an operator released."""
    return {"kind": "lane_released", "at": now, "parked": parked}


def parked_step(behind: str | None, position: int, now: float) -> dict[str, Any]:
    """The audit step of a record parked behind its lane's blocking event."""
    return {"kind": "parked", "at": now, "behind": behind, "position": position}


def overflow_reason(max_parked: int, behind: str | None) -> str:
    """The DLQ reason of an arrival refused at the bound."""
    return f"lane full: {max_parked} events already parked behind {behind or 'a draining lane'}"


def lane_key(source: str, entity: str) -> str:
    """The lane table's key of a lane."""
    return f"{source}\x1f{entity}"


def parked_key(source: str, entity: str, seq: int) -> str:
    """The parked table's key of one parked record of a lane."""
    return f"{source}\x1f{entity}\x1f{seq:012d}"


def split_lane_key(key: str) -> tuple[str, str]:
    """(source, entity) of a lane table key."""
    source, _, entity = key.partition("\x1f")
    return source, entity
