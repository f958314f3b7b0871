"""The event index: a read model of the events, audit and DLQ topics in SQLite.

Kafka stays the source of truth. The index remembers, per topic partition, the next offset
it has not read, and `catch_up` reads from there to the end as it is now; so an up-to-date
lookup costs what the topics gained since the last one plus an indexed query, not a read of
the whole audit topic. Delete the file and the next `catch_up` rebuilds it from the topics;
each console replica keeps its own. Rows leave the index when the records behind them leave
their topic (retention), and a topic that was deleted and created anew is read again.

What is indexed:

- an event (source, event id): its type, entity, state, attempts, trace id, the destinations
  attempted, its audit steps, and where its record sits in the events topic (the payload is
  read from there on demand, by offset);
- a dead letter (DLQ partition, offset): the `dlq list` fields, and whether it was redriven.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookstream.config import Settings
from hookstream.core.headers import (
    HeaderError,
    dead_lettered_at_ms,
    describe_undecoded,
    dlq_reason,
    parse_position,
    read_retry_state,
    redriven_position,
)
from hookstream.kafka.reading import Record, TopicNotFound, read_to_end, watermarks
from hookstream.kafka.topics import audit_topic, dlq_topic
from hookstream.ops.audit import STATE_AFTER, lane_of
from hookstream.ops.dlq import summary_of
from schemas import EnvelopeError, decode_envelope

SCHEMA_VERSION = 1
STATES = ("accepted", "processing", "retrying", "parked", "delivered", "dead_lettered")
# Steps the index reads besides the delivery steps (STATE_AFTER): an operator's redrive puts
# the event back to be taken again; a lane parks an event behind its entity's blocked one.
# The steps a lane writes on its blocking event leave that event where it is: blocking its
# lane from a retry tier (retrying) or from the DLQ (dead_lettered, `on_dead_letter: hold`);
# a lane that moved on from it (`skip`, or an operator's release) leaves it in the DLQ.
_STATE_AFTER = {
    **STATE_AFTER,
    "redriven": "accepted",
    "parked": "parked",
    "lane_skipped": "dead_lettered",
    "lane_released": "dead_lettered",
}
_BLOCKED_STATE = {"retrying": "retrying", "held": "dead_lettered"}  # lane_blocked, by cause
DEFAULT_PAGE = 50
MAX_PAGE = 500
INDEX_GROUP = "hookstream-index"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    log_start INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT,
    entity_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    trace_id TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT,
    steps TEXT NOT NULL DEFAULT '[]',
    record_partition INTEGER,
    record_offset INTEGER,
    audit_partition INTEGER,
    audit_offset INTEGER,
    UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, received_at);
CREATE INDEX IF NOT EXISTS events_by_source ON events (source, received_at);
CREATE INDEX IF NOT EXISTS events_by_type ON events (event_type, received_at);
CREATE INDEX IF NOT EXISTS events_by_entity ON events (entity_id, received_at);
CREATE TABLE IF NOT EXISTS event_destinations (
    destination TEXT NOT NULL,
    event INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (destination, event)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS destinations_by_event ON event_destinations (event);
CREATE TABLE IF NOT EXISTS dead_letters (
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    event_id TEXT,
    source TEXT,
    event_type TEXT,
    entity_id TEXT,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    reason TEXT,
    dead_lettered_at REAL NOT NULL,
    poison INTEGER NOT NULL,
    history TEXT NOT NULL,
    redriven_at REAL,
    PRIMARY KEY (partition, offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_live ON dead_letters (redriven_at, dead_lettered_at);
CREATE INDEX IF NOT EXISTS dead_letters_by_id ON dead_letters (event_id);
"""

_EVENT_COLUMNS = (
    "id, source, event_id, event_type, entity_id, state, attempts, trace_id, received_at,"
    " updated_at, last_error, steps, record_partition, record_offset, audit_partition,"
    " audit_offset"
)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What `events list` and the console's search ask for; None matches anything."""

    event_id: str | None = None
    source: str | None = None
    event_type: str | None = None  # a glob: invoice.*
    entity_id: str | None = None
    state: str | None = None
    destination: str | None = None
    since: float | None = None  # received at or after (epoch seconds)
    until: float | None = None  # received before


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """One event as the index knows it."""

    source: str
    event_id: str
    event_type: str | None
    entity_id: str | None
    state: str
    attempts: int
    trace_id: str | None
    received_at: float
    updated_at: float
    last_error: str | None
    steps: tuple[dict[str, Any], ...]
    destinations: tuple[str, ...] = ()
    record_position: tuple[int, int] | None = None
    cursor: str = ""

    def summary(self) -> dict[str, Any]:
        """The `events list --json` item."""
        return {
            "event_id": self.event_id,
            "source": self.source,
            "event_type": self.event_type,
            "entity_id": self.entity_id,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "destinations": list(self.destinations),
            "received_at": _iso(self.received_at),
            "updated_at": _iso(self.updated_at),
            "trace_id": self.trace_id,
        }

    def history(self) -> list[dict[str, Any]]:
        """The audit steps as the audit topic has them: each with event id, source, trace id."""
        common = {"event_id": self.event_id, "source": self.source}
        return [{**common, "trace_id": s.get("trace_id"), **s} for s in self.steps]

    def show(self) -> dict[str, Any]:
        """The `events show --json` object (the same shape a topic scan gives)."""
        return {
            "event_id": self.event_id,
            "source": self.source,
            "state": self.state,
            "lane": lane_of(list(self.steps)),
            "attempts": self.attempts,
            "trace_id": self.trace_id,
            "event_type": self.event_type,
            "entity_id": self.entity_id,
            "destinations": list(self.destinations),
            "history": [{**s, "at": _iso(s.get("at"))} for s in self.history()],
        }


@dataclass(frozen=True, slots=True)
class Page:
    items: list[IndexedEvent]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class IndexedDeadLetter:
    """One live (not redriven) DLQ entry."""

    partition: int
    offset: int
    event_id: str | None
    source: str | None
    event_type: str | None
    entity_id: str | None
    attempts: int
    last_error: str | None
    reason: str | None
    dead_lettered_at: float
    poison: bool
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def position(self) -> str:
        return f"{self.partition}/{self.offset}"

    def summary(self) -> dict[str, Any]:
        """The `dlq list --json` item (as ops.dlq.DeadLetter.summary)."""
        return summary_of(self, datetime.fromtimestamp(self.dead_lettered_at, UTC))


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What one `catch_up` read and how long it took."""

    records: int
    seconds: float
    rebuilt: bool = False


def default_path(settings: Settings) -> Path:
    """Where the index lives unless `console.index_path` says."""
    configured = settings.console.index_path
    return (
        configured
        if configured is not None
        else Path(settings.data_dir) / "index" / "events.sqlite"
    )


class EventIndex:
    """The SQLite store. One connection per instance; safe to share a file across processes
    (WAL, and every batch is applied only past the offsets stored in the same transaction)."""

    def __init__(self, path: Path | str, *, shared: bool = False) -> None:
        """`shared`: the connection may be used from several threads, one at a time (the
        caller serializes)."""
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=not shared
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- offsets ---

    def offsets(self, topic: str) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,)
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def _fresh(self, db: sqlite3.Connection, records: Sequence[Record]) -> list[Record]:
        """Records past what the index already holds (another process may have applied
        them meanwhile), and the offsets moved past them."""
        if not records:
            return []
        topic = records[0].topic
        stored = {
            int(r[0]): int(r[1])
            for r in db.execute(
                "SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,)
            )
        }
        fresh = [r for r in records if r.offset >= stored.get(r.partition, 0)]
        ends: dict[int, int] = {}
        for r in fresh:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        db.executemany(
            "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)"
            " ON CONFLICT (topic, partition)"
            " DO UPDATE SET next_offset = excluded.next_offset",
            [(topic, p, end) for p, end in ends.items()],
        )
        return fresh

    # --- applying records ---

    def apply_events(self, records: Sequence[Record]) -> None:
        """Records of the events topic: an event exists (accepted), and where its payload is."""
        with self._write() as db:
            for record in self._fresh(db, records):
                event_id, source, event_type = describe_undecoded(record.headers)
                if not event_id or not source:
                    continue
                entity = (record.key or b"").decode("utf-8", "replace")
                at = record.timestamp_ms / 1000
                db.execute(
                    "INSERT INTO events (source, event_id, event_type, entity_id, state,"
                    " received_at, updated_at, record_partition, record_offset)"
                    " VALUES (?, ?, ?, ?, 'accepted', ?, ?, ?, ?)"
                    " ON CONFLICT (source, event_id) DO UPDATE SET"
                    " record_partition = excluded.record_partition,"
                    " record_offset = excluded.record_offset,"
                    " event_type = coalesce(events.event_type, excluded.event_type),"
                    " entity_id = coalesce(events.entity_id, excluded.entity_id),"
                    " updated_at = max(events.updated_at, excluded.updated_at)",
                    (
                        source,
                        event_id,
                        event_type or None,
                        entity,
                        at,
                        at,
                        record.partition,
                        record.offset,
                    ),
                )

    def apply_audit(self, records: Sequence[Record]) -> None:
        """Records of the audit topic: each adds steps to one event."""
        with self._write() as db:
            fresh = self._fresh(db, records)
            batch: dict[tuple[str, str], dict[str, Any]] = {}
            for record in fresh:
                entry = _audit_entry(record)
                if entry is None:
                    continue
                key = (entry["source"], entry["event_id"])
                row = batch.get(key) or _load(db, *key)
                batch[key] = _merge(row, entry, record)
            for row in batch.values():
                _store(db, row)

    def apply_dlq(self, records: Sequence[Record]) -> None:
        """Records of the DLQ topic: a dead letter, or the marker that one was redriven."""
        with self._write() as db:
            for record in self._fresh(db, records):
                marker = redriven_position(record.headers)
                if marker is not None:
                    position = parse_position(marker)
                    if position is not None:
                        db.execute(
                            "UPDATE dead_letters SET redriven_at = ?"
                            " WHERE partition = ? AND offset = ?",
                            (record.timestamp_ms / 1000, *position),
                        )
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO dead_letters VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    _dead_letter_row(record),
                )

    # --- retention ---

    def log_starts(self, topic: str) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT partition, log_start FROM offsets WHERE topic = ?", (topic,)
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def forget_before(self, topic: str, kind: str, starts: dict[int, int]) -> int:
        """Drop what rests only on records that left `topic` (offsets below each partition's
        log start). `kind` is events, audit or dlq. Returns how many rows went."""
        column = {"events": "record", "audit": "audit"}.get(kind)
        gone = 0
        with self._write() as db:
            for partition, start in starts.items():
                db.execute(
                    "INSERT INTO offsets VALUES (?, ?, ?, ?) ON CONFLICT (topic, partition)"
                    " DO UPDATE SET log_start = excluded.log_start",
                    (topic, partition, start, start),
                )
                if kind == "dlq":
                    cursor = db.execute(
                        "DELETE FROM dead_letters WHERE partition = ? AND offset < ?",
                        (partition, start),
                    )
                    gone += cursor.rowcount
                    continue
                other = "audit" if column == "record" else "record"
                # An event goes once neither its record nor any of its audit steps is left.
                cursor = db.execute(
                    f"DELETE FROM events WHERE {column}_partition = ? AND {column}_offset < ?"  # noqa: S608 - column names from a fixed set
                    f" AND ({other}_offset IS NULL)",
                    (partition, start),
                )
                gone += cursor.rowcount
                db.execute(
                    f"UPDATE events SET {column}_partition = NULL, {column}_offset = NULL"  # noqa: S608
                    f" WHERE {column}_partition = ? AND {column}_offset < ?",
                    (partition, start),
                )
        return gone

    def reset(self) -> None:
        """Forget everything: the next catch-up reads the topics from their start."""
        with self._write() as db:
            for table in ("offsets", "event_destinations", "events", "dead_letters"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # --- queries ---

    def get(self, event_id: str, source: str | None = None) -> list[IndexedEvent]:
        """Every event with this id (one per source unless `source` narrows it)."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id = ?"  # noqa: S608
        args: list[Any] = [event_id]
        if source is not None:
            sql += " AND source = ?"
            args.append(source)
        return [self._event(row) for row in self._db.execute(sql + " ORDER BY source", args)]

    def search(
        self, wanted: EventFilter, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page:
        """A page of events, newest first; `cursor` continues where a page ended."""
        limit = max(1, min(limit, MAX_PAGE))
        where, args = _where(wanted)
        if cursor:
            at, _, rowid = cursor.partition(":")
            try:
                where.append("(e.received_at < ? OR (e.received_at = ? AND e.id < ?))")
                args += [float(at), float(at), int(rowid)]
            except ValueError:
                raise ValueError(f"not a cursor: {cursor!r}") from None
        sql = f"SELECT {_prefixed('e')} FROM events e"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.received_at DESC, e.id DESC LIMIT ?"
        rows = self._db.execute(sql, [*args, limit + 1]).fetchall()
        items = [self._event(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, items[-1].cursor if more and items else None)

    def counts(self, wanted: EventFilter) -> dict[str, int]:
        """How many events match, per state (the filter's own state ignored)."""
        where, args = _where(replace(wanted, state=None))
        sql = "SELECT e.state, count(*) FROM events e"
        if where:
            sql += " WHERE " + " AND ".join(where)
        found = dict.fromkeys(STATES, 0)
        for state, count in self._db.execute(sql + " GROUP BY e.state", args):
            found[str(state)] = int(count)
        return found

    def dead_letters(
        self,
        *,
        event_ids: Iterable[str] = (),
        source: str | None = None,
        event_type: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[IndexedDeadLetter]:
        """Live DLQ entries, oldest first (as `dlq list` shows them)."""
        where = ["redriven_at IS NULL"]
        args: list[Any] = []
        ids = list(event_ids)
        if ids:
            where.append(f"event_id IN ({','.join('?' * len(ids))})")
            args += ids
        if source is not None:
            where.append("source = ?")
            args.append(source)
        if event_type is not None:
            where.append("coalesce(event_type, '') GLOB ?")
            args.append(event_type)
        if since is not None:
            where.append("dead_lettered_at >= ?")
            args.append(since)
        sql = (
            "SELECT * FROM dead_letters WHERE "  # noqa: S608 - placeholders only
            + " AND ".join(where)
            + " ORDER BY dead_lettered_at, partition, offset"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_dead_letter(row) for row in self._db.execute(sql, args)]

    def dead_letter_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM dead_letters WHERE redriven_at IS NULL")
        return int(row.fetchone()[0])

    def size(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def _event(self, row: sqlite3.Row) -> IndexedEvent:
        destinations = tuple(
            r[0]
            for r in self._db.execute(
                "SELECT destination FROM event_destinations WHERE event = ? ORDER BY destination",
                (row["id"],),
            )
        )
        position = (
            (int(row["record_partition"]), int(row["record_offset"]))
            if row["record_offset"] is not None
            else None
        )
        return IndexedEvent(
            source=row["source"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            entity_id=row["entity_id"],
            state=row["state"],
            attempts=int(row["attempts"]),
            trace_id=row["trace_id"],
            received_at=float(row["received_at"]),
            updated_at=float(row["updated_at"]),
            last_error=row["last_error"],
            steps=tuple(json.loads(row["steps"])),
            destinations=destinations,
            record_position=position,
            cursor=f"{float(row['received_at'])!r}:{int(row['id'])}",
        )


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _EVENT_COLUMNS.split(","))


def _where(wanted: EventFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("event_id", wanted.event_id),
        ("source", wanted.source),
        ("entity_id", wanted.entity_id),
        ("state", wanted.state),
    ):
        if value is not None:
            where.append(f"e.{column} = ?")
            args.append(value)
    if wanted.event_type is not None:
        if any(c in wanted.event_type for c in "*?["):
            where.append("e.event_type GLOB ?")
        else:
            where.append("e.event_type = ?")
        args.append(wanted.event_type)
    if wanted.destination is not None:
        where.append("e.id IN (SELECT event FROM event_destinations WHERE destination = ?)")
        args.append(wanted.destination)
    if wanted.since is not None:
        where.append("e.received_at >= ?")
        args.append(wanted.since)
    if wanted.until is not None:
        where.append("e.received_at < ?")
        args.append(wanted.until)
    return where, args


# --- folding audit entries into an event row ---


def _audit_entry(record: Record) -> dict[str, Any] | None:
    if record.value is None:
        return None
    try:
        entry = json.loads(record.value)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    if not isinstance(entry.get("event_id"), str) or not isinstance(entry.get("source"), str):
        return None  # an operator action about no one event
    steps = entry.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        return None
    return entry


def _load(db: sqlite3.Connection, source: str, event_id: str) -> dict[str, Any]:
    row = db.execute(
        "SELECT id, event_type, entity_id, received_at, steps, record_partition, record_offset"
        " FROM events WHERE source = ? AND event_id = ?",
        (source, event_id),
    ).fetchone()
    if row is None:
        return {"id": None, "source": source, "event_id": event_id, "steps": []}
    return {
        "id": row["id"],
        "source": source,
        "event_id": event_id,
        "event_type": row["event_type"],
        "entity_id": row["entity_id"],
        "received_at": row["received_at"],
        "steps": json.loads(row["steps"]),
        "record_partition": row["record_partition"],
        "record_offset": row["record_offset"],
    }


def _merge(row: dict[str, Any], entry: dict[str, Any], record: Record) -> dict[str, Any]:
    # Steps are stored without the event's id, source and trace id (the row has them): the
    # history is most of an event's bytes. `IndexedEvent.history` puts them back.
    trace = {"trace_id": entry["trace_id"]} if entry.get("trace_id") else {}
    row["steps"] = row["steps"] + [{**s, **trace} for s in entry["steps"]]
    row["audit_partition"], row["audit_offset"] = record.partition, record.offset
    return row


def fold(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What an event's audit steps say of it: state, attempts, trace id, last error, the
    destinations attempted, its type, entity and when it was received."""
    state = "accepted"
    attempts = 0
    trace_id = None
    last_error = None
    event_type = entity_id = received_at = None
    destinations: set[str] = set()
    base = 0  # a redrive starts the attempt numbers again: count on from the earlier ones
    for step in steps:
        kind = step.get("kind")
        if kind == "lane_blocked":
            state = _BLOCKED_STATE.get(str(step.get("cause")), state)
        else:
            state = _STATE_AFTER.get(str(kind), state)
        if kind == "redriven":
            base = attempts
        attempts = max(attempts, base + int(step.get("attempt", step.get("attempts", 0)) or 0))
        trace_id = trace_id or step.get("trace_id")
        if kind == "attempt":
            destinations.add(str(step.get("destination")))
            if step.get("error"):
                last_error = f"{step.get('destination')}: {step['error']}"
        elif kind == "received":
            event_type = event_type or step.get("event_type")
            entity_id = entity_id or step.get("entity_id")
            received_at = received_at or step.get("received_at")
        elif kind == "dead_lettered" and not last_error:
            last_error = step.get("reason")
    return {
        "state": state,
        "attempts": attempts,
        "trace_id": trace_id,
        "last_error": None if state == "delivered" else last_error,
        "destinations": sorted(destinations),
        "event_type": event_type,
        "entity_id": entity_id,
        "received_at": received_at,
    }


def _store(db: sqlite3.Connection, row: dict[str, Any]) -> None:
    steps = sorted(row["steps"], key=lambda s: float(s.get("at", 0) or 0))
    folded = fold(steps)
    first = float(steps[0].get("at", 0) or 0) if steps else time.time()
    received_at = row.get("received_at") or folded["received_at"] or first
    updated_at = float(steps[-1].get("at", 0) or 0) if steps else received_at
    values = (
        folded["state"],
        folded["attempts"],
        folded["trace_id"],
        updated_at,
        folded["last_error"],
        json.dumps(steps, separators=(",", ":")),
        row["audit_partition"],
        row["audit_offset"],
    )
    if row["id"] is None:
        cursor = db.execute(
            "INSERT INTO events (state, attempts, trace_id, updated_at, last_error, steps,"
            " audit_partition, audit_offset, source, event_id, event_type, entity_id,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *values,
                row["source"],
                row["event_id"],
                folded["event_type"],
                folded["entity_id"],
                received_at,
            ),
        )
        row["id"] = cursor.lastrowid
    else:
        db.execute(
            "UPDATE events SET state = ?, attempts = ?, trace_id = ?, updated_at = ?,"
            " last_error = ?, steps = ?, audit_partition = ?, audit_offset = ?,"
            " event_type = coalesce(event_type, ?), entity_id = coalesce(entity_id, ?)"
            " WHERE id = ?",
            (*values, folded["event_type"], folded["entity_id"], row["id"]),
        )
    db.executemany(
        "INSERT OR IGNORE INTO event_destinations VALUES (?, ?)",
        [(d, row["id"]) for d in folded["destinations"]],
    )


# --- dead letters ---


def _dead_letter_row(record: Record) -> tuple[Any, ...]:
    headers = record.headers
    at_ms = dead_lettered_at_ms(headers) or record.timestamp_ms
    try:
        state = read_retry_state(headers)
        history = [a.to_json() for a in state.history]
        attempts = state.attempts
    except HeaderError:
        history, attempts = [], 0
    try:
        envelope = decode_envelope(record.value or b"")
    except EnvelopeError:
        envelope = None
    event_id, source, event_type = describe_undecoded(headers)
    if envelope is not None:
        event_id, source, event_type = envelope.event_id, envelope.source, envelope.event_type
        entity_id: str | None = envelope.entity_id
    else:
        entity_id = (record.key or b"").decode("utf-8", "replace")
    reason = dlq_reason(headers)
    last_error = reason
    for attempt in reversed(history):
        if attempt.get("error"):
            last_error = f"{attempt['destination']}: {attempt['error']}"
            break
    return (
        record.partition,
        record.offset,
        event_id,
        source,
        event_type,
        entity_id,
        attempts,
        last_error,
        reason,
        at_ms / 1000,
        envelope is None,
        json.dumps(history, separators=(",", ":")),
    )


def _dead_letter(row: sqlite3.Row) -> IndexedDeadLetter:
    return IndexedDeadLetter(
        partition=int(row["partition"]),
        offset=int(row["offset"]),
        event_id=row["event_id"],
        source=row["source"],
        event_type=row["event_type"],
        entity_id=row["entity_id"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        reason=row["reason"],
        dead_lettered_at=float(row["dead_lettered_at"]),
        poison=bool(row["poison"]),
        history=tuple(json.loads(row["history"])),
    )


def _iso(at: Any) -> str | None:
    return None if at is None else datetime.fromtimestamp(float(at), UTC).isoformat()


# --- keeping it current ---

BATCH = 5000


def catch_up(settings: Settings, index: EventIndex) -> CatchUp:
    """Read what the events, audit and DLQ topics gained since the index last read them;
    drop what left them; start over for a topic that was created anew."""
    started = time.perf_counter()
    count = 0
    rebuilt = False
    topics = (
        (settings.topics.events, "events", index.apply_events),
        (audit_topic(settings), "audit", index.apply_audit),
        (dlq_topic(settings), "dlq", index.apply_dlq),
    )
    marks = watermarks(settings, [topic for topic, _, _ in topics], group_id=INDEX_GROUP)
    if not any(marks.values()):
        raise TopicNotFound(
            f"topic {settings.topics.events} does not exist (run `hookstream topics create`)"
        )
    for topic, _kind, _apply in topics:
        stored = index.offsets(topic)
        if any(next_offset > marks[topic].get(p, (0, 0))[1] for p, next_offset in stored.items()):
            rebuilt = True  # the topic is younger than what the index read of it
    if rebuilt:
        index.reset()
    for topic, kind, apply in topics:
        if not marks[topic]:
            continue
        starts = {p: low for p, (low, _end) in marks[topic].items()}
        known = index.log_starts(topic)
        if any(low > known.get(p, 0) for p, low in starts.items()):
            index.forget_before(topic, kind, starts)
        stored = index.offsets(topic)
        if all(stored.get(p, low) >= end for p, (low, end) in marks[topic].items()):
            continue  # nothing new: no consumer to start
        batch: list[Record] = []
        for record in read_to_end(settings, topic, start=stored, group_id=INDEX_GROUP):
            batch.append(record)
            if len(batch) >= BATCH:
                apply(batch)
                count += len(batch)
                batch = []
        if batch:
            apply(batch)
            count += len(batch)
    return CatchUp(count, time.perf_counter() - started, rebuilt)


@contextmanager
def current_index(settings: Settings) -> Iterator[EventIndex]:
    """The index at its default path, caught up with the topics now."""
    with closing(EventIndex(default_path(settings))) as index:
        catch_up(settings, index)
        yield index
