"""Blocked lanes (`ordering: entity`), read back from the lane table's changelog; releases."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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


def blocked_lanes(settings: Settings) -> list[Lane]:
    """Every lane with a blocker or parked records, longest-blocked first: the latest value
    of each key of the lane table's changelog (what the workers' tables hold)."""
    latest: dict[str, tuple[int, bytes | None]] = {}
    for record in read_to_end(settings, changelog_topic(settings, LANES_TABLE)):
        if record.key is None:
            continue
        latest[json.loads(record.key)] = (record.partition, record.value)
    lanes = []
    for key, (partition, value) in latest.items():
        if value is None:
            continue  # cleared
        source, entity = split_lane_key(key)
        lanes.append(Lane(source, entity, LaneState.from_json(json.loads(value)), partition))
    return sorted(lanes, key=lambda lane: lane.state.since)


def release(settings: Settings, source: str, entity: str) -> Lane:
    """Tell the worker that owns a held lane to move on: a release marker down the events
    topic, keyed by the entity, on the lane's partition (in order with its records)."""
    found = [
        lane for lane in blocked_lanes(settings) if (lane.source, lane.entity) == (source, entity)
    ]
    if not found:
        raise ReleaseError(f"lane {source}/{entity} is not blocked")
    lane = found[0]
    if lane.state.cause is not Cause.HELD:
        raise ReleaseError(
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
