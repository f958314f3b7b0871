"""One idempotent confluent-kafka producer per process, awaited per request without a
cross-thread wake-up per record.

A poll thread serves librdkafka's delivery reports and hands them to the event loop in
one call per poll. Records produced within one loop tick share one `_Batch`: a single
future that resolves when all of them are reported, or at the batch deadline.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ingress.errors import CannotEnqueue, RecordTooLarge


@dataclass(eq=False)
class _Batch:
    future: asyncio.Future[None]
    size: int = 0
    reported: int = 0
    sealed: bool = False
    errors: dict[int, KafkaError] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)

    def settle_if_complete(self) -> None:
        if self.sealed and self.reported >= self.size and not self.future.done():
            self.future.set_result(None)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A produced record's place in its batch."""

    batch: _Batch
    index: int


class EventProducer:
    """Produces records and lets callers await the ack. `config` comes from
    `hookstream.kafka.clients.producer_config`, which makes the producer durable (acks=all,
    idempotent) and partitions as every other hookstream writer does."""

    def __init__(self, config: dict[str, Any], deadline: float) -> None:
        self.deadline = deadline
        timeout_ms = max(1000, int(deadline * 1000))
        self._producer = Producer(
            {
                "linger.ms": 2,
                "compression.type": "lz4",
                # A record not acknowledged by our deadline is reported as failed rather
                # than lingering: the sender got a 503 and will send it again.
                "message.timeout.ms": timeout_ms,
                "socket.connection.setup.timeout.ms": min(timeout_ms, 10000),
                **config,
            }
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: _Batch | None = None
        self._reports: list[tuple[_Batch, int, KafkaError | None]] = []
        self._running = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._thread = threading.Thread(
            target=self._poll_forever, name="kafka-producer-poll", daemon=True
        )
        self._thread.start()

    async def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued, stop the poll thread; return the records left undelivered."""
        assert self._loop is not None
        left: int = await self._loop.run_in_executor(None, self._producer.flush, timeout)
        self._running = False
        if self._thread is not None:
            await self._loop.run_in_executor(None, self._thread.join, 5.0)
        return left

    # --- producing ---

    def send(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> Ticket:
        """Queue one record; CannotEnqueue if the local queue is full."""
        batch = self._current_batch()
        index = batch.size
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=list(headers),
                on_delivery=functools.partial(self._on_delivery, batch, index),
            )
        except BufferError:
            raise CannotEnqueue("the producer queue is full") from None
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                raise RecordTooLarge("the event is larger than Kafka accepts") from None
            raise CannotEnqueue(f"Kafka refused the event: {error.name()}") from None
        batch.size += 1
        return Ticket(batch, index)

    async def acked(self, ticket: Ticket) -> None:
        """Wait for the broker's acknowledgement; CannotEnqueue on failure or deadline."""
        # Many requests share the batch future: shield it so one cancelled request
        # does not cancel the others' wait.
        await asyncio.shield(ticket.batch.future)
        if ticket.index in ticket.batch.acked:
            return
        error = ticket.batch.errors.get(ticket.index)
        if error is None or error.code() == KafkaError._MSG_TIMED_OUT:
            raise CannotEnqueue("Kafka did not acknowledge the event in time")
        raise CannotEnqueue(f"Kafka refused the event: {error.name()}")

    def ready(self, timeout: float) -> bool:
        """True if the cluster answers a metadata request (blocking; run in an executor)."""
        try:
            self._producer.list_topics(timeout=timeout)
        except Exception:  # any KafkaException means not reachable
            return False
        return True

    def queued(self) -> int:
        return len(self._producer)

    # --- internals (loop thread) ---

    def _current_batch(self) -> _Batch:
        if self._open is None:
            assert self._loop is not None, "start() the producer first"
            batch = _Batch(self._loop.create_future())
            self._open = batch
            self._loop.call_soon(self._seal, batch)
            self._loop.call_later(self.deadline, self._expire, batch)
        return self._open

    def _seal(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        batch.sealed = True
        batch.settle_if_complete()

    def _expire(self, batch: _Batch) -> None:
        if not batch.future.done():
            batch.future.set_result(None)

    def _settle(self, reports: list[tuple[_Batch, int, KafkaError | None]]) -> None:
        touched: set[_Batch] = set()
        for batch, index, error in reports:
            batch.reported += 1
            if error is None:
                batch.acked.add(index)
            else:
                batch.errors[index] = error
            touched.add(batch)
        for batch in touched:
            batch.settle_if_complete()

    # --- internals (poll thread) ---

    def _on_delivery(self, batch: _Batch, index: int, error: KafkaError | None, _msg: Any) -> None:
        self._reports.append((batch, index, error))

    def _poll_forever(self) -> None:
        assert self._loop is not None
        while self._running:
            self._producer.poll(0.05)
            if self._reports:
                reports, self._reports = self._reports, []
                try:
                    self._loop.call_soon_threadsafe(self._settle, reports)
                except RuntimeError:  # loop closed during shutdown
                    return
