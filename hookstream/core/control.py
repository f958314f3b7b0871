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
