"""Order across retries, carried out: park a blocked lane's records, drain them in order.

The decisions are `hookstream.core.parking`; this module keeps the lane states and the
parked records in two Faust tables (RocksDB, changelogs in Kafka, co-partitioned with the
events topic: a lane's state lives with its entity's partition, survives restarts and
moves with the partition on a rebalance). Each call runs inside a lane of the dispatcher,
whose current event is the record being run, so table writes land on its partition.

Crash safety: a parked record is taken out of the table only after it has run, and a
drain runs inside the processing of the record that started it (a delivered retry, a
redrive, a release marker, an arrival at a draining lane), which is acknowledged only
when the drain is over. A worker that dies mid-drain leaves that record uncommitted: the
next owner reads it again, finds the lane draining, and drains on (a record that had run
already is a duplicate to the dedupe table).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import structlog

from hookstream.config import Settings
from hookstream.core.headers import event_id_of, is_lane_release, source_of
from hookstream.core.outcome import Kind, Outcome
from hookstream.core.parking import (
    Arrive,
    Cause,
    LaneState,
    OnDeadLetter,
    after_outcome,
    blocked_step,
    lane_key,
    on_arrival,
    overflow_reason,
    park,
    parked_key,
    parked_step,
    released_step,
    skipped_step,
    split_lane_key,
    unblocked,
    unpark,
)
from hookstream.metrics import LANE_BLOCKED_SECONDS, PARKED, PARKED_OVERFLOW
from streams.processor import EventProcessor, Incoming

log = structlog.get_logger("hookstream.worker")


class ParkingLot:
    """Runs one record of a lane: at once, parked behind its blocker, or as a release."""

    def __init__(
        self,
        settings: Settings,
        processor: EventProcessor,
        lanes: Any,
        parked: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._processor = processor
        self._lanes = lanes  # lane key -> LaneState JSON
        self._parked = parked  # parked key -> record JSON
        self._clock = clock
        self._max = settings.worker.max_parked_per_lane
        self._draining: set[str] = set()
        # Keys of the lanes table held here, so that a clear lane (nearly every record) costs
        # no table read; None: to be read again (after an assignment, once the tables are
        # recovered, which happens before any record of the assignment runs).
        self._known: set[str] | None = None

    def assigned(self) -> None:
        """A new assignment: the lane keys held here are read again at the next record."""
        self._known = None

    async def run(self, record: Incoming) -> None:
        """Process `record` in its lane; never raises (the processor routes failures)."""
        source = source_of(record.headers)
        config = self._settings.sources.get(source) if source else None
        if is_lane_release(record.headers):
            if source is not None and record.key is not None:
                await self._release(source, record.key.decode("utf-8", "replace"), record)
            return
        if source is None or config is None or config.ordering == "none" or record.key is None:
            await self._processor.process_one(record)
            return
        entity = record.key.decode("utf-8", "replace")
        key = lane_key(source, entity)
        event_id = event_id_of(record.headers)
        state = self._state(key)
        verdict = on_arrival(state, event_id, self._max)
        if state is not None and verdict is Arrive.PARK:
            await self._park(key, source, event_id, state, record)
            if state.cause is Cause.DRAINING:
                await self._drain(key, source)
            return
        if state is not None and verdict is Arrive.OVERFLOW:
            PARKED_OVERFLOW.labels(source).inc()
            log.warning("lane_full", entity=entity, parked=state.parked, event_id=event_id)
            await self._processor.dead_letter(record, overflow_reason(self._max, state.blocked_by))
            return
        outcome = await self._processor.process_one(record)
        if outcome is not None and event_id is not None:
            new = await self._settle(key, source, event_id, outcome, record.partition, False)
            if new is not None and new.cause is Cause.DRAINING:
                await self._drain(key, source)

    async def _settle(
        self,
        key: str,
        source: str,
        event_id: str,
        outcome: Outcome,
        partition: int,
        from_park: bool,
    ) -> LaneState | None:
        """Update the lane after one of its records ran (`from_park`: the parked record at
        its head, taken out now that it has run); the lane's new state."""
        state = self._state(key)
        seq = None
        if from_park and state is not None:
            state, seq = unpark(state)
        policy = OnDeadLetter(self._settings.sources[source].on_dead_letter)
        now = self._clock()
        settled = (
            outcome.kind is not Kind.DUPLICATE
            or state is None
            or self._processor.is_done(source, event_id)
        )
        new = after_outcome(state, event_id, outcome.kind, policy, now, partition, settled=settled)
        if state is not None or new is not None:
            self._save(key, new)
        if seq is not None:
            del self._parked[parked_key(*split_lane_key(key), seq)]
        was = None if state is None else (state.blocked_by, state.cause)
        if new is not None and new.blocked_by == event_id and was != (event_id, new.cause):
            log.info("lane_blocked", cause=new.cause.value, parked=new.parked)
            step = blocked_step(new.cause, new.parked, now)
            await self._processor.audit(source, event_id, (step,))
        if outcome.kind is Kind.DEAD_LETTERED and policy is OnDeadLetter.SKIP:
            parked = 0 if state is None else state.parked
            await self._processor.audit(source, event_id, (skipped_step(parked, now),))
        return new

    async def _park(
        self, key: str, source: str, event_id: str | None, state: LaneState, record: Incoming
    ) -> None:
        new, seq = park(state)
        self._parked[parked_key(*split_lane_key(key), seq)] = _record_json(record)
        self._save(key, new)
        log.info("parked", behind=state.blocked_by, position=new.parked, event_id=event_id)
        if event_id is not None:
            step = parked_step(state.blocked_by, new.parked, self._clock())
            await self._processor.audit(source, event_id, (step,))

    async def _drain(self, key: str, source: str) -> None:
        """Run the lane's parked records in order until it is clear or blocked again."""
        if key in self._draining:
            return  # a drain of this lane is under way in this worker; it takes the rest
        self._draining.add(key)
        try:
            while (state := self._state(key)) is not None and state.cause is Cause.DRAINING:
                if state.parked == 0:
                    self._save(key, None)
                    log.info("lane_clear")
                    break
                raw = self._parked.get(parked_key(*split_lane_key(key), state.head))
                if raw is None:
                    # Nothing kept at that place (lost outside hookstream): say so, go on.
                    log.error("parked_record_missing", position=state.head)
                    self._save(key, unpark(state)[0])
                    continue
                record = _record_of(raw)
                outcome = await self._processor.process_one(record)
                event_id = event_id_of(record.headers)
                if outcome is None or event_id is None:
                    state, seq = unpark(self._state(key) or state)
                    self._save(key, unblocked(state) if state.cause is Cause.DRAINING else state)
                    del self._parked[parked_key(*split_lane_key(key), seq)]
                    continue
                await self._settle(key, source, event_id, outcome, record.partition, True)
        finally:
            self._draining.discard(key)

    async def _release(self, source: str, entity: str, marker: Incoming) -> None:
        """An operator's release of a held lane: it moves on, as under `skip`."""
        key = lane_key(source, entity)
        state = self._state(key)
        if state is None or state.cause is not Cause.HELD or state.blocked_by is None:
            log.warning(
                "lane_release_ignored",
                entity=entity,
                cause=None if state is None else state.cause.value,
            )
            return
        log.info("lane_released", entity=entity, blocked_by=state.blocked_by, parked=state.parked)
        step = released_step(state.parked, self._clock())
        await self._processor.audit(source, state.blocked_by, (step,))
        new = unblocked(state)
        self._save(key, new)
        if new is not None:
            await self._drain(key, source)

    def _state(self, key: str) -> LaneState | None:
        if self._known is None:
            self._known = {str(k) for k, _ in self._lanes.items()}
        if key not in self._known:
            return None
        raw = self._lanes.get(key)
        return None if raw is None else LaneState.from_json(raw)

    def _save(self, key: str, state: LaneState | None) -> None:
        if state is None:
            held = self._known is None or key in self._known
            if held and self._lanes.get(key) is not None:
                del self._lanes[key]
            if self._known is not None:
                self._known.discard(key)
        else:
            self._lanes[key] = state.to_json()
            if self._known is not None:
                self._known.add(key)


def lane_gauges(lanes: Any, sources: list[str], now: float) -> None:
    """Set hookstream_parked and hookstream_lane_blocked_seconds from the lanes held here."""
    parked = dict.fromkeys(sources, 0)
    oldest = dict.fromkeys(sources, 0.0)
    for key, raw in list(lanes.items()):
        source, _ = split_lane_key(key)
        state = LaneState.from_json(raw)
        parked[source] = parked.get(source, 0) + state.parked
        if state.cause is not Cause.DRAINING:
            oldest[source] = max(oldest.get(source, 0.0), now - state.since)
    for source, count in parked.items():
        PARKED.labels(source).set(count)
        LANE_BLOCKED_SECONDS.labels(source).set(oldest[source])


def _record_json(record: Incoming) -> str:
    def b64(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode("ascii")

    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": b64(record.key),
            "value": b64(record.value),
            "headers": [[k, b64(v)] for k, v in record.headers.items()],
        },
        separators=(",", ":"),
    )


def _record_of(raw: str | bytes) -> Incoming:
    data: dict[str, Any] = json.loads(raw)

    def unb64(text: str | None) -> bytes | None:
        return None if text is None else base64.b64decode(text)

    return Incoming(
        str(data["topic"]),
        int(data["partition"]),
        int(data["offset"]),
        unb64(data["key"]),
        unb64(data["value"]),
        {str(k): unb64(v) or b"" for k, v in data["headers"]},
    )
