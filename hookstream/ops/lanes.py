"""Blocked lanes (`ordering: entity`), read back from the lane table's changelog; releases."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from hookstream.config import Settings
from hookstream.core.headers import lane_release_headers
from hookstream.core.parking import Cause, LaneState, split_lane_key
from hookstream.errors import HookstreamError
from hookstream.kafka.clients import producer_config
from hookstream.kafka.reading import read_to_end
from hookstream.kafka.topics import LANES_TABLE, changelog_topic


class ReleaseError(HookstreamError):
    """A lane could not be released."""


class NotHeld(ReleaseError):
    """The lane is not blocked, or not held behind a dead-lettered event: nothing to do."""


@dataclass(frozen=True, slots=True)
class Lane:
    """One lane that is not clear: who blocks it, how many wait behind."""

    source: str
    entity: str
    state: LaneState
    partition: int

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "source": self.source,
            "entity": self.entity,
            "cause": self.state.cause.value,
            "blocked_by": self.state.blocked_by,
            "parked": self.state.parked,
            "since": datetime.fromtimestamp(self.state.since, UTC).isoformat(),
            "blocked_seconds": round(now - self.state.since, 3),
            "partition": self.partition,
        }


@dataclass
class LaneReader:
    """The lane table's changelog as read so far: the latest value of each key (what the
    workers' tables hold). `refresh` reads on from where the last read stopped, so a
    long-lived reader (the console) pays only for what the changelog gained."""

    settings: Settings
    _latest: dict[str, tuple[int, bytes | None]] = field(default_factory=dict, init=False)
    _next: dict[int, int] = field(default_factory=dict, init=False)

    def refresh(self) -> list[Lane]:
        """Every lane with a blocker or parked records, longest-blocked first."""
        topic = changelog_topic(self.settings, LANES_TABLE)
        for record in read_to_end(self.settings, topic, start=self._next):
            self._next[record.partition] = record.offset + 1
            if record.key is None:
                continue
            self._latest[json.loads(record.key)] = (record.partition, record.value)
        lanes = []
        for key, (partition, value) in self._latest.items():
            if value is None:
                continue  # cleared
            source, entity = split_lane_key(key)
            state = LaneState.from_json(json.loads(value))
            lanes.append(Lane(source, entity, state, partition))
        return sorted(lanes, key=lambda lane: lane.state.since)


def blocked_lanes(settings: Settings, reader: LaneReader | None = None) -> list[Lane]:
    """Every lane with a blocker or parked records, longest-blocked first (`reader`: one
    kept between calls, which reads only what is new)."""
    return (reader or LaneReader(settings)).refresh()


def release(settings: Settings, source: str, entity: str, reader: LaneReader | None = None) -> Lane:
    """Tell the worker that owns a held lane to move on: a release marker down the events
    topic, keyed by the entity, on the lane's partition (in order with its records)."""
    found = [
        lane
        for lane in blocked_lanes(settings, reader)
        if (lane.source, lane.entity) == (source, entity)
    ]
    if not found:
        raise NotHeld(f"lane {source}/{entity} is not blocked")
    lane = found[0]
    if lane.state.cause is not Cause.HELD:
        raise NotHeld(
            f"lane {source}/{entity} is {lane.state.cause.value}, not held: only a lane held "
            "behind a dead-lettered event is released"
        )
    producer = Producer(producer_config(settings))
    errors: list[str] = []

    def report(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    producer.produce(
        settings.topics.events,
        key=entity.encode(),
        value=b"",
        headers=list(lane_release_headers(source, time.time())),
        partition=lane.partition,
        on_delivery=report,
    )
    if producer.flush(30) or errors:
        raise ReleaseError("Kafka did not acknowledge the release: " + "; ".join(errors[:3]))
    return lane
