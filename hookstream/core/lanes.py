"""Lanes: which records run now, which wait behind their entity, which may be acknowledged.

Pure bookkeeping for the worker's dispatcher (`streams/lanes.py`); nothing here awaits.

- A *lane* is one entity of one source on one partition: its records run one at a time,
  in offset order. Different lanes run at once.
- A partition's records are *acknowledged* only in offset order: a record is released to
  Faust (which commits what it was given) once it and every record taken before it on its
  partition are finished, whatever order the lanes finished in. So the committed offset
  never passes an unfinished record.
- What is taken is bounded per worker and per partition, rather than growing memory: the
  dispatcher stops taking records when `has_room` says no, and stops fetching a partition
  while `partition_full` says so (what was fetched already is still taken: one fetch more).
- `ResumeGuard` checks that a partition resumes where its group committed after every
  assignment and goes on record after record, and asks for a seek when a record comes
  from further on (records fetched before a rebalance and handed over after it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)  # a partition (topic, partition)
T = TypeVar("T")  # what the caller keeps with a record (its event)


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """What finishing a record released."""

    next_offset: int | None  # the lane's next record to run now, if any
    acknowledged: tuple[T, ...]  # records now finished with all before them, in offset order


@dataclass(slots=True)
class _Partition(Generic[T]):
    taken: deque[int] = field(default_factory=deque)  # offsets taken, in offset order
    items: dict[int, T] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)


class LaneBook(Generic[P, T]):
    """Records taken and not yet acknowledged, by partition and by lane."""

    def __init__(self, max_in_flight: int, max_per_partition: int) -> None:
        if max_in_flight < 1 or max_per_partition < 1:
            raise ValueError("the in-flight bounds must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_per_partition = max_per_partition
        self._partitions: dict[P, _Partition[T]] = {}
        self._lanes: dict[tuple[P, Hashable], deque[int]] = {}  # head is the running record
        self._lane_of: dict[tuple[P, int], Hashable] = {}
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Records taken and not yet acknowledged (finished ones held back included)."""
        return self._in_flight

    def lanes(self) -> int:
        """Lanes with a record running or waiting."""
        return len(self._lanes)

    def has_room(self) -> bool:
        """Whether one more record may be taken now (the worker's bound)."""
        return self._in_flight < self.max_in_flight

    def partition_full(self, partition: P) -> bool:
        """Whether `partition` holds its bound of records (fetch no more of it)."""
        held = self._partitions.get(partition)
        return held is not None and len(held.taken) >= self.max_per_partition

    def held(self, partition: P) -> int:
        """Records of `partition` taken and not yet acknowledged."""
        held = self._partitions.get(partition)
        return 0 if held is None else len(held.taken)

    def take(self, partition: P, offset: int, lane: Hashable, item: T) -> bool:
        """Register a record; True when its lane was idle and the caller must run it now."""
        held = self._partitions.setdefault(partition, _Partition())
        if held.taken and offset <= held.taken[-1]:
            raise ValueError(f"offset {offset} taken after {held.taken[-1]} on {partition!r}")
        held.taken.append(offset)
        held.items[offset] = item
        self._in_flight += 1
        queue = self._lanes.setdefault((partition, lane), deque())
        queue.append(offset)
        self._lane_of[(partition, offset)] = lane
        return len(queue) == 1

    def item(self, partition: P, offset: int) -> T:
        """The item kept with a taken record."""
        return self._partitions[partition].items[offset]

    def finish(self, partition: P, offset: int) -> Finished[T]:
        """Mark the running record of its lane finished."""
        held = self._partitions[partition]
        lane = self._lane_of.pop((partition, offset))
        queue = self._lanes[(partition, lane)]
        if queue[0] != offset:
            raise ValueError(f"offset {offset} is not running in its lane")
        queue.popleft()
        if not queue:
            del self._lanes[(partition, lane)]
        held.finished.add(offset)
        released = []
        while held.taken and held.taken[0] in held.finished:
            done = held.taken.popleft()
            held.finished.discard(done)
            released.append(held.items.pop(done))
        self._in_flight -= len(released)
        if not held.taken:
            del self._partitions[partition]
        return Finished(queue[0] if queue else None, tuple(released))

    def revoke(self, partitions: Iterable[P]) -> list[tuple[P, Hashable]]:
        """Forget every record of these partitions (none acknowledged); their lanes to stop."""
        gone = set(partitions)
        for partition in gone:
            held = self._partitions.pop(partition, None)
            if held is not None:
                self._in_flight -= len(held.taken)
        stopped = [key for key in self._lanes if key[0] in gone]
        for key in stopped:
            for offset in self._lanes.pop(key):
                self._lane_of.pop((key[0], offset), None)
        return stopped


class Arrival(Enum):
    """What to do with a record the consumer handed over."""

    TAKE = "take"
    DROP = "drop"  # already committed, or a repeat of one taken
    SEEK = "seek"  # from beyond the resume point: refetch from there, do not take it


@dataclass(slots=True)
class _Cursor:
    expected: int  # the next offset this partition must deliver
    head: int | None = None  # the record that came first after the last seek, if beyond
    repeats: int = 0  # how many seeks in a row that same record came first after
    sought: bool = False  # a seek back completed and no record was judged since


class ResumeGuard(Generic[P]):
    """A partition is taken record after record from its committed offset, never passing one.

    After an assignment the first record must be the one at the committed offset, and every
    record after it the next one. A record from further on is not taken: the caller seeks
    back to the expected offset (records fetched before a rebalance and handed over after
    it, or a read position moved past records that were never handed over) and says so
    with `sought`. Only when the same record comes first after `confirmations` seeks in a
    row are the offsets between taken to hold no records (transaction markers, records
    gone with retention) and is that record taken.

    One seek is not proof: Faust drops a refetched record below the read offset it last
    handed over, and a record fetched before the seek but handed over after it moves that
    offset up, so the refetch can start at that very record although the ones before it
    exist. `confirmations` is where that risk is weighed: a transactional topic has a marker
    after every transaction (each costs that many seeks), a plain one has holes only where
    retention removed records.
    """

    def __init__(self, confirmations: int = 3) -> None:
        self._cursors: dict[P, _Cursor] = {}
        self._confirmations = max(1, confirmations)

    def arrive(self, partition: P, offset: int, committed: int | None) -> Arrival:
        """Judge one record; `committed` is the group's offset for the partition (None: none)."""
        cursor = self._cursor(partition, committed)
        if offset < cursor.expected:
            return Arrival.DROP
        first_after_seek, cursor.sought = cursor.sought, False
        if offset == cursor.expected:
            return self._take(cursor, offset)
        if first_after_seek:
            if offset == cursor.head:
                cursor.repeats += 1
            else:
                cursor.head, cursor.repeats = offset, 1
            if cursor.repeats >= self._confirmations:
                return self._take(cursor, offset)
        return Arrival.SEEK

    def sought(self, partition: P) -> None:
        """A seek back to the resume point completed: the next record judged is the first
        the partition gives from there."""
        if partition in self._cursors:
            self._cursors[partition].sought = True

    @staticmethod
    def _take(cursor: _Cursor, offset: int) -> Arrival:
        cursor.expected = offset + 1
        cursor.head, cursor.repeats = None, 0
        return Arrival.TAKE

    def knows(self, partition: P) -> bool:
        """Whether the partition has a resume point (a record judged since its assignment)."""
        return partition in self._cursors

    def begin(self, partition: P, committed: int | None) -> None:
        """Set where a partition resumes, before its next record: the group's committed
        offset, found out some other way than at a record's arrival (None: none)."""
        self._cursor(partition, committed)

    def _cursor(self, partition: P, committed: int | None) -> _Cursor:
        """The partition's cursor, made at the committed offset if it has none yet."""
        cursor = self._cursors.get(partition)
        if cursor is None:
            cursor = self._cursors[partition] = _Cursor(committed or 0)
        return cursor

    def resume_point(self, partition: P) -> int:
        """Where a partition must be read from next."""
        return self._cursors[partition].expected

    def rewind(self, partition: P, offset: int) -> None:
        """A record judged TAKE was not taken after all: the partition must resume at it."""
        self._cursors[partition] = _Cursor(offset)

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions revoked or (re)assigned: judge their next records afresh."""
        for partition in partitions:
            self._cursors.pop(partition, None)
