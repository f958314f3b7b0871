"""Operator instructions the worker reads at start: offset ranges to reprocess (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ReprocessRange:
    """Records of `topic`/`partition` in [start, end) run again even if already done."""

    group: str
    topic: str
    partition: int
    start: int
    end: int
    at: float

    @property
    def key(self) -> bytes:
        return f"{self.group}/{self.topic}/{self.partition}".encode()

    def to_bytes(self) -> bytes:
        data = {
            "group": self.group,
            "topic": self.topic,
            "partition": self.partition,
            "start": self.start,
            "end": self.end,
            "at": self.at,
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ReprocessRange:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            str(data["group"]),
            str(data["topic"]),
            int(data["partition"]),
            int(data["start"]),
            int(data["end"]),
            float(data["at"]),
        )


@dataclass
class ReprocessRanges:
    """The latest range per (topic, partition) for one consumer group."""

    ranges: dict[tuple[str, int], ReprocessRange] = field(default_factory=dict)

    def add(self, item: ReprocessRange) -> None:
        self.ranges[(item.topic, item.partition)] = item

    def contains(self, topic: str, partition: int, offset: int) -> bool:
        item = self.ranges.get((topic, partition))
        return item is not None and item.start <= offset < item.end


# --- destinations: operator pauses and the workers' live status -------------------------
#
# The control topic is compacted: the latest record per key is what holds. A pause is keyed
# by group and destination, so it survives restarts and every worker of the group reads it;
# each worker publishes its view of every destination under its own key every few seconds
# (and a tombstone when it stops), which is what `hookstream destinations list` reads.

PAUSE_PREFIX = "destination-pause/"
STATUS_PREFIX = "worker-status/"
STATUS_FRESH = 30.0  # a worker status older than this is a worker that is gone


def is_reprocess_key(key: bytes | None) -> bool:
    """Whether a control record is a reprocess range (the oldest kind, keyed group/topic/p)."""
    text = (key or b"").decode("utf-8", "replace")
    return not text.startswith((PAUSE_PREFIX, STATUS_PREFIX))


@dataclass(frozen=True, slots=True)
class DestinationPause:
    """An operator paused (or resumed) a destination for one consumer group."""

    group: str
    destination: str
    paused: bool
    at: float

    @property
    def key(self) -> bytes:
        return f"{PAUSE_PREFIX}{self.group}/{self.destination}".encode()

    def to_bytes(self) -> bytes:
        data = {"group": self.group, "destination": self.destination, "paused": self.paused}
        return json.dumps({**data, "at": self.at}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> DestinationPause:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            str(data["group"]), str(data["destination"]), bool(data["paused"]), float(data["at"])
        )


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker's view of its destinations (streams.destinations.Gate.status each)."""

    group: str
    worker: str
    at: float
    destinations: dict[str, dict[str, Any]]

    @property
    def key(self) -> bytes:
        return f"{STATUS_PREFIX}{self.group}/{self.worker}".encode()

    def to_bytes(self) -> bytes:
        data = {"group": self.group, "worker": self.worker, "at": self.at}
        return json.dumps({**data, "destinations": self.destinations}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> WorkerStatus:
        data: dict[str, Any] = json.loads(raw)
        return cls(str(data["group"]), str(data["worker"]), float(data["at"]), data["destinations"])


@dataclass
class DestinationControl:
    """What the control topic says about one group's destinations: pauses, live statuses."""

    group: str
    pauses: dict[str, DestinationPause] = field(default_factory=dict)
    statuses: dict[str, WorkerStatus] = field(default_factory=dict)

    def apply(self, key: bytes | None, value: bytes | None) -> DestinationPause | None:
        """Take in one control record; the pause it sets, if it is one for this group."""
        text = (key or b"").decode("utf-8", "replace")
        if text.startswith(f"{STATUS_PREFIX}{self.group}/"):
            worker = text.removeprefix(f"{STATUS_PREFIX}{self.group}/")
            if value is None:
                self.statuses.pop(worker, None)
            else:
                self.statuses[worker] = WorkerStatus.from_bytes(value)
        elif text.startswith(f"{PAUSE_PREFIX}{self.group}/") and value is not None:
            pause = DestinationPause.from_bytes(value)
            self.pauses[pause.destination] = pause
            return pause
        return None

    def paused(self, destination: str) -> bool:
        pause = self.pauses.get(destination)
        return pause is not None and pause.paused

    def summary(self, names: list[str], now: float) -> list[dict[str, Any]]:
        """One row per destination, the live workers' views merged: the worst state, in
        flight and rate summed, the latest error."""
        live = [s for s in self.statuses.values() if now - s.at <= STATUS_FRESH]
        rows = []
        for name in names:
            views = [(s.worker, s.destinations[name]) for s in live if name in s.destinations]
            errors = [v for _, v in views if v.get("last_error")]
            latest = max(errors, key=lambda v: v.get("last_error_at") or 0, default=None)
            state = "paused" if self.paused(name) else _worst(v["state"] for _, v in views)
            rows.append(
                {
                    "destination": name,
                    "state": state,
                    "paused": self.paused(name),
                    "workers": len(views),
                    "in_flight": sum(int(v.get("in_flight", 0)) for _, v in views),
                    "rate": round(sum(float(v.get("rate", 0.0)) for _, v in views), 2),
                    "rate_limit": next((v.get("rate_limit") for _, v in views), None),
                    "breaker": {w: v.get("breaker") for w, v in views},
                    "last_error": latest.get("last_error") if latest else None,
                    "last_error_at": latest.get("last_error_at") if latest else None,
                }
            )
        return rows


_SEVERITY = {"open": 3, "half_open": 2, "paused": 1, "closed": 0}


def _worst(states: Any) -> str:
    seen = [str(s) for s in states]
    if not seen:
        return "unknown"  # no live worker reports it
    return max(seen, key=lambda s: _SEVERITY.get(s, 0))
