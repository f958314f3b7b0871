"""The dispatcher: records taken from the agents' streams run in lanes, acked in offset order.

The decisions (which lane, what may be acked, when to stop taking, where a partition
resumes) are `hookstream.core.lanes`; this module does the asyncio and Faust around them.
See docs/architecture.md, "Lanes".
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any

import structlog
from aiokafka.errors import IllegalStateError, KafkaError
from faust.streams import _current_event
from faust.types import TP

from hookstream.core.headers import not_before_of, source_of
from hookstream.core.lanes import Arrival, LaneBook, ResumeGuard
from hookstream.metrics import IN_FLIGHT
from streams.processor import Incoming

log = structlog.get_logger("hookstream.worker")

# A seek waits this long so that the fetcher has recorded the stale record it handed over
# as read before the seek moves its read offset back (see `_seek_back`).
_SEEK_SETTLE = 0.05


class LaneDispatcher:
    """One per worker, shared by every agent: one in-flight budget for the whole worker."""

    def __init__(
        self,
        app: Any,
        run: Callable[[Incoming], Awaitable[None]],
        max_in_flight: int,
        per_partition: int,
    ):
        self._app = app
        self._run = run  # runs one record of a lane (streams/parking.py), never raises
        self._book: LaneBook[Any, tuple[Any, Any]] = LaneBook(max_in_flight, per_partition)
        # A transactional topic has a marker after every transaction: a hole to pass over
        # often, and cheaply. A plain topic rarely has one (see `ResumeGuard`).
        self._guard: ResumeGuard[Any] = ResumeGuard(confirmations=2 if app.in_transaction else 3)
        self._tasks: dict[tuple[Any, Hashable], asyncio.Task[None]] = {}
        self._seeks: dict[Any, asyncio.Task[None]] = {}
        self._paused: set[Any] = set()  # partitions whose fetching this dispatcher paused
        # Retry partitions waiting for their head record's not-before time (`_hold`).
        self._held: dict[Any, tuple[Any, Any]] = {}  # partition -> (stream, event)
        # Records handed over for a partition that cannot take them yet (at its bound, or
        # behind a held record), in offset order: at most what one fetch brought.
        self._waiting: dict[Any, deque[tuple[Any, Any]]] = {}
        self._releases: dict[Any, asyncio.Task[None]] = {}
        self._room = asyncio.Event()
        self._room.set()
        IN_FLIGHT.set(0)

    @property
    def in_flight(self) -> int:
        return self._book.in_flight

    async def consume(self, stream: Any) -> None:
        """An agent's body: take records (manual acks) until the stream ends."""
        manual = stream.noack()
        try:
            async for event in manual.events():
                await self._take(manual, event)
        finally:
            await self.stop_all()

    async def _take(self, stream: Any, event: Any) -> None:
        message = event.message
        # Faust's own type: the aiokafka one is equal, but Faust asserts the type it keeps.
        tp = TP(message.topic, message.partition)
        if self._blocked(tp):
            self._wait(tp, stream, event)
            return
        while not self._book.has_room():
            self._room.clear()
            await self._room.wait()
        if self._blocked(tp):  # blocked while this waited for room
            self._wait(tp, stream, event)
            return
        self._offer(tp, stream, event)

    def _blocked(self, tp: Any) -> bool:
        """Whether a record of this partition must wait behind others or for room."""
        return tp in self._held or tp in self._waiting or self._book.partition_full(tp)

    def _wait(self, tp: Any, stream: Any, event: Any) -> None:
        """Keep a record its partition cannot take yet (the guard judges it on arrival, in
        the order the consumer handed it over), and stop fetching more of that partition."""
        if self._judge(tp, event):
            self._waiting.setdefault(tp, deque()).append((stream, event))
            self._stop_fetching(tp)

    def _offer(self, tp: Any, stream: Any, event: Any, *, judged: bool = False) -> None:
        """Start a record, or hold it if it is a retry that is not due yet."""
        if not judged and not self._judge(tp, event):
            return
        if not_before_of(_headers(event)) > time.time():
            self._hold(tp, stream, event)
            return
        self._start(tp, stream, event)

    def _drain(self) -> None:
        """Take waiting records while their partitions and the worker have room."""
        for tp in list(self._waiting):
            waiting = self._waiting[tp]
            while (
                waiting
                and tp not in self._held
                and self._book.has_room()
                and not self._book.partition_full(tp)
            ):
                stream, event = waiting.popleft()
                self._offer(tp, stream, event, judged=True)
            if not waiting:
                del self._waiting[tp]
            self._maybe_resume(tp)

    def _stop_fetching(self, tp: Any) -> None:
        """Fetch no more of a partition. What the consumer already fetched of it still
        comes (Faust would otherwise drop the rest of the batch, and the records in it would
        be passed over); `_take` keeps it waiting."""
        consumer = self._app.consumer
        consumer._buffered_partitions.add(tp)
        if tp not in self._paused:
            self._paused.add(tp)
            consumer.pause_partitions([tp])

    def _judge(self, tp: Any, event: Any) -> bool:
        """Whether to take a record at all (the resume guard: see "Resuming where the group
        committed" in docs/architecture.md)."""
        offset = event.message.offset
        committed = self._app.consumer._committed_offset.get(tp)
        if committed is None and offset > 0 and not self._guard.knows(tp):
            # Faust does not know where the group left this partition (a rebalance cleared
            # it, or a new group): ask Kafka, then read the partition again from there.
            # Taking this record as the start would pass over any before it; taking 0
            # would read the whole partition again.
            if tp not in self._seeks:
                self._seeks[tp] = asyncio.create_task(self._seek_back(tp, locate=True))
            return False
        expected = self._guard.resume_point(tp) if self._guard.knows(tp) else committed
        arrival = self._guard.arrive(tp, offset, committed)
        if arrival is Arrival.TAKE and expected is not None and offset > expected:
            # The record that came first after every seek back: the offsets between hold
            # no records (transaction markers, retention). Seen in the log, never silent:
            # expected with transactions, a sign of records gone with retention without.
            (log.debug if self._app.in_transaction else log.warning)(
                "resume_point_passed",
                topic=tp.topic,
                partition=tp.partition,
                resume_at=expected,
                offset=offset,
            )
        if arrival is Arrival.SEEK:
            if tp not in self._seeks:  # once per seek, not per record fetched before it
                log.warning(
                    "record_beyond_resume_point",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                    resume_at=self._guard.resume_point(tp),
                )
                self._seeks[tp] = asyncio.create_task(self._seek_back(tp))
            return False
        return arrival is not Arrival.DROP

    def _start(self, tp: Any, stream: Any, event: Any) -> None:
        """Take a record into its lane (the dispatcher has room for it)."""
        message = event.message
        lane = (source_of(_headers(event)), event.key)
        if self._book.take(tp, message.offset, lane, (stream, event)):
            task = asyncio.create_task(self._run_lane(tp, lane, message.offset))
            self._tasks[(tp, lane)] = task
        if self._book.partition_full(tp):
            self._stop_fetching(tp)  # the others keep flowing
        IN_FLIGHT.set(self._book.in_flight)

    def _hold(self, tp: Any, stream: Any, event: Any) -> None:
        """A retry record that is not due: its partition stops fetching and waits for it,
        while the agent goes on with the tier's other partitions (and the other topics).
        It holds no in-flight room; what was already fetched behind it waits behind it."""
        self._held[tp] = (stream, event)
        self._stop_fetching(tp)
        self._releases[tp] = asyncio.create_task(self._release_when_due(tp))

    async def _release_when_due(self, tp: Any) -> None:
        """Take the held record once it is due, then what waits behind it. A stop or a
        revoke leaves it untaken and uncommitted: the partition resumes at it."""
        stream, event = self._held[tp]
        try:
            if not await self._due(tp, not_before_of(_headers(event))):
                log.info(
                    "retry_deferred_for_shutdown",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=event.message.offset,
                    left_in_tier=True,
                )
                return
            while not self._book.has_room():
                self._room.clear()
                await self._room.wait()
            if self._held.get(tp) != (stream, event):
                return  # revoked meanwhile
            del self._held[tp]
            self._start(tp, stream, event)
            self._drain()
        finally:
            if self._releases.get(tp) is asyncio.current_task():
                del self._releases[tp]

    def _maybe_resume(self, tp: Any) -> None:
        """Fetch a paused partition again once nothing of it waits and it has room."""
        if tp in self._paused and not self._blocked(tp):
            self._paused.discard(tp)
            consumer = self._app.consumer
            consumer._buffered_partitions.discard(tp)
            if tp in consumer.assignment():
                consumer.resume_partitions([tp])

    async def _due(self, tp: Any, not_before: float) -> bool:
        """Wait until a held retry record is due.

        False if the partition went away or the worker began to stop first: the record is
        not taken, and its partition must resume at it (nothing after it is taken in its
        place).
        """
        while (delay := not_before - time.time()) > 0:
            if self._app.should_stop or tp not in self._app.consumer.assignment():
                return False
            await asyncio.sleep(min(delay, 0.5))
        return True

    async def _seek_back(self, tp: Any, *, locate: bool = False) -> None:
        """Refetch a partition from its resume point: records handed over from further on
        were fetched before a rebalance, and taking them would pass over the ones between.
        `locate`: the resume point is the group's committed offset, asked of Kafka first."""
        try:
            await asyncio.sleep(_SEEK_SETTLE)
            consumer = self._app.consumer
            if locate:
                thread = consumer._thread
                committed = await thread.call_thread(thread._ensure_consumer().committed, tp)
                self._guard.begin(tp, committed)
                log.info(
                    "resume_point_from_kafka",
                    topic=tp.topic,
                    partition=tp.partition,
                    resume_at=self._guard.resume_point(tp),
                )
            # Faust counts offsets it believes it skipped ("gaps") as done when it commits:
            # the jump to the stale record put the records between in that list.
            consumer._gap.pop(tp, None)
            # On the consumer's thread, between two fetches: a seek from this loop would
            # change the fetcher's state under a fetch in progress.
            await consumer._thread.seek_wait({tp: self._guard.resume_point(tp)})
            self._guard.sought(tp)
        except (KeyError, IllegalStateError):
            pass  # revoked meanwhile: the next assignment starts afresh
        except KafkaError as exc:  # the partition's next record asks again
            log.warning(
                "resume_point_unknown", topic=tp.topic, partition=tp.partition, error=str(exc)
            )
        finally:
            self._seeks.pop(tp, None)

    async def _run_lane(self, tp: Any, lane: Hashable, offset: int | None) -> None:
        key = (tp, lane)
        try:
            while offset is not None:
                _, event = self._book.item(tp, offset)
                # A table write picks its changelog partition from the current event.
                token = _current_event.set(weakref.ref(event))
                try:
                    await self._run(_incoming(event))
                finally:
                    _current_event.reset(token)
                finished = self._book.finish(tp, offset)
                for done_stream, done in finished.acknowledged:
                    await done_stream.ack(done)
                IN_FLIGHT.set(self._book.in_flight)
                self._room.set()
                self._drain()
                self._maybe_resume(tp)
                offset = finished.next_offset
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    async def revoke(self, partitions: Iterable[Any]) -> None:
        """Stop the lanes of partitions taken away: nothing of theirs runs after this, and
        nothing of theirs is acked (the new owner reads them again from the committed offset)."""
        gone = set(partitions)
        stopped = self._book.revoke(gone)
        tasks = [self._tasks.pop(key) for key in stopped if key in self._tasks]
        tasks += [self._seeks.pop(tp) for tp in list(self._seeks) if tp in gone]
        tasks += [self._releases.pop(tp) for tp in list(self._releases) if tp in gone]
        for tp in gone:
            # Not taken, not acked: the next owner reads them again.
            self._held.pop(tp, None)
            self._waiting.pop(tp, None)
            self._app.consumer._buffered_partitions.discard(tp)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        self._guard.forget(gone)
        self._paused -= gone  # a new assignment starts with its partitions fetched
        IN_FLIGHT.set(self._book.in_flight)
        self._room.set()
        if stopped:
            log.info("lanes_stopped_on_revoke", lanes=len(stopped), partitions=len(gone))

    def assigned(self, partitions: Iterable[Any]) -> None:
        """A new assignment: every partition resumes at its committed offset."""
        self._guard.forget(partitions)

    async def stop_all(self, grace: float = 10.0) -> None:
        """The worker is stopping: lanes get `grace` seconds to finish what they run (a retry
        delay is not waited out: the processor defers it), then the rest are stopped and
        read again later."""
        for task in [*self._seeks.values(), *self._releases.values()]:
            task.cancel()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=30)


def _incoming(event: Any) -> Incoming:
    message = event.message
    return Incoming(
        message.topic, message.partition, message.offset, event.key, event.value, _headers(event)
    )


def _headers(event: Any) -> Mapping[str, bytes]:
    raw = event.headers or {}
    items = raw.items() if hasattr(raw, "items") else raw
    return {str(k): (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}
