"""The dedupe decision: is this (source, event id) new, done, or already in hand?"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DedupeState(StrEnum):
    DONE = "done"  # every destination has it (or it was dead-lettered)
    FAILED = "failed"  # some destination still lacks it


class Decision(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    RESUME = "resume"  # seen before, some destinations still owed


@dataclass(frozen=True, slots=True)
class DedupeRecord:
    """What the dedupe table keeps per (source, event id)."""

    state: DedupeState
    at: float
    delivered: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "at": self.at, "delivered": list(self.delivered)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DedupeRecord:
        return cls(DedupeState(data["state"]), float(data["at"]), tuple(data.get("delivered", ())))


def dedupe_key(source: str, event_id: str) -> str:
    return f"{source}\x1f{event_id}"


def decide(record: DedupeRecord | None, now: float, ttl: float) -> Decision:
    """NEW if unseen or expired, DUPLICATE if done within the window, else RESUME."""
    if record is None or now - record.at > ttl:
        return Decision.NEW
    if record.state is DedupeState.DONE:
        return Decision.DUPLICATE
    return Decision.RESUME
