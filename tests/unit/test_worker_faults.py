"""Failure modes of the worker: each test names one, and fails if the worker has it.

Component tests with the in-memory fakes of test_processor; the publisher test drives the
real FaustPublisher over a stand-in topic that raises what aiokafka raises.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import errors as kafka_errors

from hookstream.config import Settings
from hookstream.core import headers as h
from hookstream.core.dedupe import DedupeRecord, DedupeState, dedupe_key
from hookstream.core.routing import AttemptResult, Verdict, parse_retry_after
from hookstream.errors import PublishRefused
from schemas import Envelope
from streams.app import FaustPublisher
from streams.delivery import Deliverer
from streams.destinations import DestinationGates
from streams.processor import EventProcessor
from tests.unit.test_processor import (
    NOW,
    MemoryPublisher,
    MemoryStore,
    ScriptedDeliverer,
    processor,
    record,
    settings,
)

KEY = dedupe_key("stripe", "evt_1")


def due_retry(tier: int = 0) -> dict[str, bytes]:
    return {h.ATTEMPTS: str(tier + 1).encode(), h.NOT_BEFORE: str(int((NOW - 1) * 1000)).encode()}


@dataclass
class RetryAfterDeliverer:
    """Every destination answers 503 with this Retry-After header."""

    header: str
    calls: list[str] = field(default_factory=list)

    async def attempt(self, name: str, envelope: Envelope) -> AttemptResult:
        self.calls.append(name)
        wait = parse_retry_after(self.header, NOW)
        return AttemptResult(name, Verdict.RETRYABLE, "HTTP 503", 503, wait)

    def settled(self, envelope: Envelope, results: list[AttemptResult], waits: bool) -> None:
        pass


async def test_a_retry_after_of_400_digits_moves_the_event_to_the_next_tier() -> None:
    store = MemoryStore({KEY: DedupeRecord(DedupeState.RETRYING, NOW - 30, ())})
    publisher = MemoryPublisher()
    worker = EventProcessor(
        settings(), store, RetryAfterDeliverer("9" * 400), publisher, clock=lambda: NOW
    )  # type: ignore[arg-type]
    await worker.process_one(record("webhooks.events.retry.0", due_retry(0)))
    assert publisher.to("webhooks.events.dlq") == []
    [hop] = publisher.to("webhooks.events.retry.1")
    assert int(hop.headers[h.NOT_BEFORE]) > int(NOW * 1000)
    assert store.rows[KEY].state is DedupeState.RETRYING


async def test_a_redrive_runs_an_event_that_a_failed_round_left_retrying() -> None:
    # A round that failed before writing its next tier dead-letters the raw record and
    # leaves the row "retrying"; the operator's redrive of that DLQ entry must run it.
    store = MemoryStore({KEY: DedupeRecord(DedupeState.RETRYING, NOW - 30, ("billing",))})
    worker, _, _, deliverer = processor(
        {"billing": Verdict.DELIVERED, "ledger": Verdict.DELIVERED}, store
    )
    await worker.process_one(record(headers={h.REDRIVE: b"0/7"}))
    assert deliverer.calls == ["ledger"]
    assert store.rows[KEY].state is DedupeState.DONE


class FailingAudit(MemoryPublisher):
    async def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        raise kafka_errors.KafkaTimeoutError("audit topic unreachable")


async def test_a_failed_audit_write_does_not_dead_letter_a_delivered_event() -> None:
    store, publisher = MemoryStore(), FailingAudit()
    deliverer = ScriptedDeliverer({"billing": Verdict.DELIVERED, "ledger": Verdict.DELIVERED})
    worker = EventProcessor(settings(), store, deliverer, publisher, clock=lambda: NOW)  # type: ignore[arg-type]
    await worker.process_one(record())
    assert publisher.to("webhooks.events.dlq") == []
    assert store.rows[KEY].state is DedupeState.DONE


class TooLargeForTiers(MemoryPublisher):
    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        if ".retry." in topic or len(dict(headers).get(h.HISTORY, b"")) > 400:
            raise PublishRefused("MessageSizeTooLargeError")
        await super().publish(topic, key, value, headers, partition)


async def test_a_record_its_history_made_too_large_is_dead_lettered_with_the_history_cut() -> None:
    history = [
        {"attempt": n, "at": NOW, "destination": "billing", "verdict": "retryable", "error": "x"}
        for n in range(1, 40)
    ]
    hop = {**due_retry(0), h.HISTORY: json.dumps(history).encode()}
    store = MemoryStore({KEY: DedupeRecord(DedupeState.RETRYING, NOW - 30, ())})
    publisher = TooLargeForTiers()
    deliverer = ScriptedDeliverer({"billing": Verdict.RETRYABLE, "ledger": Verdict.RETRYABLE})
    worker = EventProcessor(settings(), store, deliverer, publisher, clock=lambda: NOW)  # type: ignore[arg-type]
    await worker.process_one(record("webhooks.events.retry.0", hop))
    [entry] = publisher.to("webhooks.events.dlq")
    assert entry.headers[h.DLQ_REASON].startswith(b"record too large for webhooks.events.retry.1")
    assert len(json.loads(entry.headers[h.HISTORY])) == 1
    assert store.rows[KEY].state is DedupeState.DEAD_LETTERED


class StandInTopic:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.sends = 0

    async def send(self, **_: Any) -> Any:
        self.sends += 1
        raise self.error


class StandInApp:
    def __init__(self, topic: StandInTopic) -> None:
        self._topic = topic
        self.crashed: BaseException | None = None

    def topic(self, *_: Any, **__: Any) -> StandInTopic:
        return self._topic

    async def crash(self, reason: BaseException) -> None:
        self.crashed = reason


async def test_a_publish_kafka_will_never_take_is_refused_not_retried_forever() -> None:
    topic = StandInTopic(kafka_errors.MessageSizeTooLargeError("too large"))
    publisher = FaustPublisher(StandInApp(topic), 6)  # type: ignore[arg-type]
    with pytest.raises(PublishRefused):
        async with asyncio.timeout(5):
            await publisher.publish("webhooks.events.retry.0", b"k", b"v", [], partition=0)
    assert topic.sends == 1


async def test_an_authorization_error_stops_the_worker_loudly() -> None:
    topic = StandInTopic(kafka_errors.TopicAuthorizationFailedError())
    app = StandInApp(topic)
    publisher = FaustPublisher(app, 6)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="denied"):
        async with asyncio.timeout(5):
            await publisher.publish("webhooks.events.dlq", b"k", b"v", [], partition=0)
    assert isinstance(app.crashed, kafka_errors.TopicAuthorizationFailedError)


def transactional_processor(
    verdicts: dict[str, Verdict], store: MemoryStore
) -> tuple[EventProcessor, MemoryPublisher, ScriptedDeliverer]:
    publisher, deliverer = MemoryPublisher(), ScriptedDeliverer(verdicts)
    worker = EventProcessor(
        settings(), store, deliverer, publisher, clock=lambda: NOW, transactional=True
    )  # type: ignore[arg-type]
    return worker, publisher, deliverer


async def test_exactly_once_an_event_whose_round_was_aborted_runs_again() -> None:
    store = MemoryStore()
    first, _, _ = transactional_processor(
        {"billing": Verdict.RETRYABLE, "ledger": Verdict.RETRYABLE}, store
    )
    await first.process_one(record())
    assert store.rows[KEY].state is DedupeState.RETRYING
    # SIGKILL before the commit: the transaction (its retry-tier record) is aborted, the local
    # RocksDB row stays, and the restarted worker reads the same record again.
    again, _publisher, deliverer = transactional_processor(
        {"billing": Verdict.DELIVERED, "ledger": Verdict.DELIVERED}, store
    )
    await again.process_one(record())
    assert sorted(deliverer.calls) == ["billing", "ledger"]
    assert store.rows[KEY].state is DedupeState.DONE


async def test_exactly_once_a_copy_of_a_retrying_event_is_still_a_duplicate() -> None:
    store = MemoryStore()
    first, _, _ = transactional_processor({"billing": Verdict.RETRYABLE}, store)
    await first.process_one(record())
    again, _, deliverer = transactional_processor({"billing": Verdict.DELIVERED}, store)
    copy = record()
    await again.process_one(type(copy)(copy.topic, copy.partition, 99, copy.key, copy.value, {}))
    assert deliverer.calls == []


async def test_at_least_once_a_reread_retrying_event_is_a_duplicate() -> None:
    # Without transactions the tier record was written before the row: it is on its way.
    store = MemoryStore()
    first, _, _, _ = processor({"billing": Verdict.RETRYABLE, "ledger": Verdict.RETRYABLE}, store)
    await first.process_one(record())
    again, _, _, deliverer = processor(
        {"billing": Verdict.DELIVERED, "ledger": Verdict.DELIVERED}, store
    )
    await again.process_one(record())
    assert deliverer.calls == []


async def cancelling_handler(envelope: Envelope) -> None:
    """A handler whose own awaited work was cancelled."""
    raise asyncio.CancelledError("the handler's own task was cancelled")


async def test_a_handler_raising_cancelled_error_is_a_failed_attempt() -> None:
    config = Settings(
        sources={"stripe": {"scheme": "stripe", "secrets": ["whsec_x"]}},
        destinations={
            "local": {"handler": "tests.unit.test_worker_faults:cancelling_handler"},
        },
    )
    deliverer = Deliverer(
        config.destinations, DestinationGates(config.destinations, stale_after=600.0)
    )
    envelope = Envelope(
        event_id="evt_1", source="stripe", entity_id="cus_1", body=b"{}", received_at=record_time()
    )
    result = await deliverer.attempt("local", envelope)
    assert result.verdict is Verdict.RETRYABLE
    assert result.error is not None
    assert "CancelledError" in result.error


async def test_a_lane_cancelled_by_the_worker_is_still_cancelled() -> None:
    started = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        started.set()
        await asyncio.sleep(30)

    config = Settings(
        sources={"stripe": {"scheme": "stripe", "secrets": ["whsec_x"]}},
        destinations={"local": {"handler": "tests.unit.test_worker_faults:cancelling_handler"}},
    )
    deliverer = Deliverer(
        config.destinations, DestinationGates(config.destinations, stale_after=600.0)
    )
    deliverer._handlers["local"] = slow
    envelope = Envelope(
        event_id="evt_1", source="stripe", entity_id="cus_1", body=b"{}", received_at=record_time()
    )
    task = asyncio.create_task(deliverer.attempt("local", envelope))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def record_time() -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW, UTC)


def github_record(event_id: str, body: bytes, offset: int) -> Any:
    from schemas import encode_envelope
    from streams.processor import Incoming

    envelope = Envelope(
        event_id=event_id,
        source="gh",
        entity_id="repo_1",
        body=body,
        received_at=record_time(),
        event_type="push",
    )
    headers = dict(h.event_headers(event_id, "gh", "push"))
    return Incoming("webhooks.events", 0, offset, b"repo_1", encode_envelope(envelope), headers)


async def test_a_body_only_signed_request_resent_under_a_new_id_is_a_duplicate() -> None:
    config = Settings(
        sources={"gh": {"scheme": "github", "secrets": ["s"]}},
        destinations={"billing": {"url": "http://127.0.0.1:1/a", "sources": ["gh"]}},
    )
    worker, _, _, deliverer = processor({"billing": Verdict.DELIVERED}, config=config)
    await worker.process_one(github_record("delivery-1", b'{"after":"abc"}', 1))
    await worker.process_one(github_record("delivery-2", b'{"after":"abc"}', 2))
    await worker.process_one(github_record("delivery-3", b'{"after":"def"}', 3))
    assert deliverer.calls == ["billing", "billing"]


async def test_a_timestamped_source_is_not_deduped_on_its_body() -> None:
    config = Settings(
        sources={"gh": {"scheme": "stripe", "secrets": ["whsec_x"]}},
        destinations={"billing": {"url": "http://127.0.0.1:1/a", "sources": ["gh"]}},
    )
    worker, _, _, deliverer = processor({"billing": Verdict.DELIVERED}, config=config)
    await worker.process_one(github_record("evt_1", b'{"same":1}', 1))
    await worker.process_one(github_record("evt_2", b'{"same":1}', 2))
    assert deliverer.calls == ["billing", "billing"]
