"""The worker carries out the core's outcome: component tests with in-memory fakes."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hookstream.config import Settings
from hookstream.core import headers as h
from hookstream.core.dedupe import DedupeRecord, DedupeState, dedupe_key
from hookstream.core.routing import AttemptResult, Verdict
from schemas import Envelope, encode_envelope
from streams.processor import EventProcessor, Incoming

NOW = 1_700_000_000.0


@dataclass
class MemoryStore:
    rows: dict[str, DedupeRecord] = field(default_factory=dict)

    def get(self, key: str) -> DedupeRecord | None:
        return self.rows.get(key)

    def put(self, key: str, record: DedupeRecord) -> None:
        self.rows[key] = record


@dataclass
class Written:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int | None


@dataclass
class MemoryPublisher:
    written: list[Written] = field(default_factory=list)

    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        self.written.append(Written(topic, key, value, dict(headers), partition))

    async def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        self.written.append(Written(topic, key, value, dict(headers), None))

    def to(self, topic: str) -> list[Written]:
        return [w for w in self.written if w.topic == topic]


@dataclass
class ScriptedDeliverer:
    """Answers each destination with the verdict it is given; records the calls."""

    verdicts: dict[str, Verdict]
    calls: list[str] = field(default_factory=list)

    async def attempt(self, name: str, envelope: Envelope) -> AttemptResult:
        self.calls.append(name)
        verdict = self.verdicts[name]
        if verdict is Verdict.DELIVERED:
            return AttemptResult(name, verdict, status=204)
        raise_it = name.startswith("buggy")
        if raise_it:
            raise RuntimeError("a bug in the effect")
        return AttemptResult(name, verdict, f"HTTP {503 if verdict is Verdict.RETRYABLE else 410}")

    def settled(self, envelope: Envelope, results: list[AttemptResult], waits: bool) -> None:
        pass


def settings() -> Settings:
    return Settings(
        sources={"stripe": {"scheme": "stripe", "secrets": ["whsec_x"]}},
        destinations={
            "billing": {"url": "http://127.0.0.1:1/a", "sources": ["stripe"]},
            "ledger": {"url": "http://127.0.0.1:1/b", "sources": ["stripe"]},
        },
        retry={"schedule": ["30s", "2m"], "jitter": 0.0},
    )


def record(topic: str = "webhooks.events", headers: dict[str, bytes] | None = None) -> Incoming:
    envelope = Envelope(
        event_id="evt_1",
        source="stripe",
        entity_id="cus_1",
        body=b'{"id": "evt_1"}',
        received_at=datetime.fromtimestamp(NOW - 1, UTC),
        event_type="invoice.paid",
    )
    base = dict(h.event_headers("evt_1", "stripe", "invoice.paid"))
    return Incoming(topic, 2, 41, b"cus_1", encode_envelope(envelope), {**base, **(headers or {})})


def processor(
    verdicts: dict[str, Verdict], store: MemoryStore | None = None, config: Settings | None = None
) -> tuple[EventProcessor, MemoryStore, MemoryPublisher, ScriptedDeliverer]:
    store = store or MemoryStore()
    publisher = MemoryPublisher()
    deliverer = ScriptedDeliverer(verdicts)
    worker = EventProcessor(
        config or settings(),
        store,
        deliverer,  # type: ignore[arg-type]
        publisher,
        clock=lambda: NOW,
        rng=random.Random(1),
    )
    return worker, store, publisher, deliverer


def audit_steps(publisher: MemoryPublisher) -> list[str]:
    [entry] = publisher.to("webhooks.events.audit")
    return [s["kind"] for s in json.loads(entry.value or b"")["steps"]]


async def test_delivered_everywhere_is_remembered_as_done_with_one_audit_record() -> None:
    worker, store, publisher, deliverer = processor(
        {"billing": Verdict.DELIVERED, "ledger": Verdict.DELIVERED}
    )
    await worker.process_one(record())
    assert sorted(deliverer.calls) == ["billing", "ledger"]
    assert store.rows[dedupe_key("stripe", "evt_1")].state is DedupeState.DONE
    assert audit_steps(publisher) == ["received", "attempt", "attempt", "delivered"]
    assert [w.topic for w in publisher.written] == ["webhooks.events.audit"]


async def test_a_retryable_failure_is_written_to_the_tier_on_the_same_partition() -> None:
    worker, store, publisher, _ = processor(
        {"billing": Verdict.DELIVERED, "ledger": Verdict.RETRYABLE}
    )
    await worker.process_one(record())
    [hop] = publisher.to("webhooks.events.retry.0")
    assert hop.partition == 2
    assert hop.key == b"cus_1"
    assert hop.headers[h.ATTEMPTS] == b"1"
    assert int(hop.headers[h.NOT_BEFORE]) == int((NOW + 30) * 1000)
    remembered = store.rows[dedupe_key("stripe", "evt_1")]
    assert remembered == DedupeRecord(DedupeState.RETRYING, NOW, ("billing",))
    assert audit_steps(publisher)[-1] == "retry_scheduled"


async def test_the_retry_hop_goes_only_to_the_destination_still_owed() -> None:
    store = MemoryStore(
        {dedupe_key("stripe", "evt_1"): DedupeRecord(DedupeState.RETRYING, NOW, ("billing",))}
    )
    worker, _, _publisher, deliverer = processor(
        {"billing": Verdict.DELIVERED, "ledger": Verdict.DELIVERED}, store
    )
    hop = {h.ATTEMPTS: b"1", h.NOT_BEFORE: str(int((NOW - 1) * 1000)).encode()}
    await worker.process_one(record("webhooks.events.retry.0", hop))
    assert deliverer.calls == ["ledger"]
    assert store.rows[dedupe_key("stripe", "evt_1")].delivered == ("billing", "ledger")


async def test_a_permanent_failure_goes_to_the_dlq_at_once() -> None:
    worker, store, publisher, _ = processor(
        {"billing": Verdict.PERMANENT, "ledger": Verdict.DELIVERED}
    )
    await worker.process_one(record())
    [entry] = publisher.to("webhooks.events.dlq")
    assert entry.headers[h.DLQ_REASON] == b"permanent failure"
    assert store.rows[dedupe_key("stripe", "evt_1")].state is DedupeState.DEAD_LETTERED


async def test_a_duplicate_is_skipped_without_an_attempt() -> None:
    store = MemoryStore({dedupe_key("stripe", "evt_1"): DedupeRecord(DedupeState.DONE, NOW, ())})
    worker, _, publisher, deliverer = processor({"billing": Verdict.DELIVERED}, store)
    await worker.process_one(record())
    assert deliverer.calls == []
    assert audit_steps(publisher) == ["duplicate"]


async def test_poison_goes_to_the_dlq_raw_and_nothing_escapes() -> None:
    worker, store, publisher, _ = processor({})
    garbage = Incoming("webhooks.events", 0, 7, b"k", b"not avro", {h.SOURCE: b"stripe"})
    await worker.process_one(garbage)
    [entry] = publisher.to("webhooks.events.dlq")
    assert entry.value == b"not avro"
    assert entry.headers[h.DLQ_REASON].startswith(b"poison: ")
    assert entry.headers[h.ORIGIN] == b"webhooks.events/0/7"
    assert store.rows == {}


async def test_an_effect_that_raises_is_a_failed_attempt_not_a_lost_record() -> None:
    one_buggy_destination = Settings(
        sources={"stripe": {"scheme": "stripe", "secrets": ["whsec_x"]}},
        destinations={"buggy": {"url": "http://127.0.0.1:1/a"}},
        retry={"schedule": ["30s"], "jitter": 0.0},
    )
    worker, _, publisher, _ = processor({"buggy": Verdict.RETRYABLE}, config=one_buggy_destination)
    await worker.process_one(record())
    [hop] = publisher.to("webhooks.events.retry.0")
    assert b"RuntimeError" in hop.headers[h.LAST_ERROR]
