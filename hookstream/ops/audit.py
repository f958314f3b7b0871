"""The audit trail of one event, read back from the audit topic."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from hookstream.config import Settings
from hookstream.core.dedupe import dedupe_key
from hookstream.errors import HookstreamError
from hookstream.kafka.clients import producer_config
from hookstream.kafka.reading import read_to_end
from hookstream.kafka.topics import audit_topic

# The state an event is in after each kind of audit step.
STATE_AFTER = {
    "received": "processing",
    "attempt": "processing",
    "retry_scheduled": "retrying",
    "delivered": "delivered",
    "dead_lettered": "dead_lettered",
}


def event_history(
    settings: Settings, event_id: str, source: str | None = None
) -> list[dict[str, Any]]:
    """Every audit step of `event_id` (of any source unless one is given), oldest first."""
    return histories(settings, {event_id}, source).get(event_id, [])


def histories(
    settings: Settings, event_ids: Collection[str], source: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The audit steps of each of `event_ids` (of any source unless one is given), in one
    read of the audit topic; oldest first per event, events never audited left out."""
    keys = None if source is None else {dedupe_key(source, e).encode() for e in event_ids}
    found: dict[str, list[dict[str, Any]]] = {}
    for record in read_to_end(settings, audit_topic(settings)):
        if (keys is not None and record.key not in keys) or record.value is None:
            continue
        try:
            entry = json.loads(record.value)
        except ValueError:
            continue
        event_id = entry.get("event_id")
        if not isinstance(event_id, str) or event_id not in event_ids:
            continue
        if source is not None and entry.get("source") != source:
            continue
        common = {k: entry.get(k) for k in ("event_id", "source", "trace_id")}
        found.setdefault(event_id, []).extend({**common, **s} for s in entry.get("steps", []))
    return {e: sorted(steps, key=lambda s: float(s.get("at", 0))) for e, steps in found.items()}


def summarize(event_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The `events show` object: state, attempts, trace id and the history."""
    state = "accepted"
    attempts = 0
    trace_id = None
    for step in steps:
        state = STATE_AFTER.get(step["kind"], state)
        attempts = max(attempts, int(step.get("attempt", step.get("attempts", 0)) or 0))
        trace_id = trace_id or step.get("trace_id")
    sources = sorted({s["source"] for s in steps})
    return {
        "lane": lane_of(steps),
        "event_id": event_id,
        "source": sources[0] if len(sources) == 1 else sources,
        "state": state,
        "attempts": attempts,
        "trace_id": trace_id,
        "history": [{**s, "at": _iso(s.get("at"))} for s in steps],
    }


def lane_of(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The event's place in its lane (`ordering: entity`): parked behind another event,
    blocking its lane, or None (its lane does not hold it, nor it its lane)."""
    lane: dict[str, Any] | None = None
    for step in steps:
        kind = step["kind"]
        if kind == "parked":
            lane = {"state": "parked", "behind": step.get("behind")}
        elif kind == "lane_blocked":
            lane = {"state": "blocking", "cause": step.get("cause"), "since": _iso(step.get("at"))}
        elif kind in ("delivered", "lane_released", "lane_skipped") or (
            kind in ("received", "attempt", "duplicate") and lane and lane["state"] == "parked"
        ):
            lane = None
    return lane


def _iso(at: Any) -> str | None:
    return None if at is None else datetime.fromtimestamp(float(at), UTC).isoformat()


class AuditWriteError(HookstreamError):
    """The audit topic did not take an operator's action."""


def record_operator_steps(
    settings: Settings,
    steps: Iterable[tuple[str, str, str | None, dict[str, Any]]],
) -> int:
    """Write (source, event id, trace id, step) into each event's audit trail: what an
    operator did to it, and who. Returns how many were written."""
    records = []
    for source, event_id, trace_id, step in steps:
        entry = {"event_id": event_id, "source": source, "trace_id": trace_id, "steps": [step]}
        records.append((dedupe_key(source, event_id).encode(), entry))
    return _write(settings, records)


def record_operator_action(
    settings: Settings, by: str, action: str, target: str, **details: Any
) -> None:
    """An operator's action on no single event (a pause, a release) in the audit trail."""
    entry = {
        "operator_action": action,
        "target": target,
        "by": by,
        "at": time.time(),
        **details,
    }
    _write(settings, [(f"operator/{action}/{target}".encode(), entry)])


def _write(settings: Settings, records: list[tuple[bytes, dict[str, Any]]]) -> int:
    if not records:
        return 0
    producer = Producer(producer_config(settings))
    errors: list[str] = []

    def report(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    for key, entry in records:
        producer.produce(
            audit_topic(settings),
            key=key,
            value=json.dumps(entry, separators=(",", ":")).encode(),
            on_delivery=report,
        )
    if producer.flush(30) or errors:
        raise AuditWriteError("the audit topic did not take the record: " + "; ".join(errors[:3]))
    return len(records)
