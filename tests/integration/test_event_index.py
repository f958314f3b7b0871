"""The event index against the real broker: built from the events, audit and DLQ topics,
kept current incrementally, shared safely by two processes' connections, following the
topics' retention, and rebuilt when a topic is created anew."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from hookstream.config import Settings
from hookstream.core.dedupe import dedupe_key
from hookstream.core.headers import (
    Attempt,
    RetryState,
    event_headers,
    redriven_marker,
    retry_headers,
)
from hookstream.kafka.admin import create_topics
from hookstream.kafka.clients import client_config
from hookstream.kafka.topics import audit_topic, dlq_topic
from hookstream.ops.index import EventFilter, EventIndex, catch_up
from schemas import Envelope, encode_envelope
from tests.conftest import delete_topics

pytestmark = pytest.mark.integration

T0 = 1_790_000_000.0  # a fixed "now" for received times, so time filters are exact


def envelope(event_id: str, entity: str, event_type: str, at: float) -> bytes:
    return encode_envelope(
        Envelope(
            event_id=event_id,
            source="std",
            entity_id=entity,
            body=json.dumps({"id": event_id}).encode(),
            received_at=datetime.fromtimestamp(at, UTC),
            event_type=event_type,
            content_type="application/json",
            headers={"webhook-signature": "v1,secret-looking"},
        )
    )


class Topics:
    """Writes what the ingress, the worker and an operator would write."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(client_config(settings))

    def received(self, event_id: str, entity: str, event_type: str, at: float) -> None:
        self.producer.produce(
            self.settings.topics.events,
            key=entity.encode(),
            value=envelope(event_id, entity, event_type, at),
            headers=event_headers(event_id, "std", event_type),
            timestamp=int(at * 1000),
            partition=0,
        )

    def audit(self, event_id: str, *steps: dict[str, object]) -> None:
        entry = {"event_id": event_id, "source": "std", "trace_id": "ab" * 16, "steps": steps}
        self.producer.produce(
            audit_topic(self.settings),
            key=dedupe_key("std", event_id).encode(),
            value=json.dumps(entry).encode(),
            partition=0,
        )

    def dead_letter(self, event_id: str, entity: str, at: float) -> None:
        attempt = Attempt(1, at, "sink", "permanent", 400, "HTTP 400", 3.0)
        self.producer.produce(
            dlq_topic(self.settings),
            key=entity.encode(),
            value=envelope(event_id, entity, "invoice.failed", at),
            headers=retry_headers(
                event_headers(event_id, "std", "invoice.failed"),
                RetryState(1, 0.0, (attempt,)),
                dead_lettered_at=at,
                reason="permanent failure",
            ),
            partition=0,
        )

    def redriven(self, position: str) -> None:
        self.producer.produce(
            dlq_topic(self.settings), key=b"x", value=None, headers=redriven_marker(position, T0)
        )

    def flush(self) -> None:
        assert self.producer.flush(10) == 0


def attempt(at: float, status: int, verdict: str, error: str | None = None) -> dict[str, object]:
    return {
        "kind": "attempt",
        "at": at,
        "attempt": 1,
        "destination": "sink",
        "verdict": verdict,
        "status": status,
        "error": error,
        "duration_ms": 4.5,
    }


def write_history(topics: Topics) -> None:
    """Five events: delivered, retrying, dead-lettered, accepted only, and delivered late."""
    for n, (event_id, entity, kind) in enumerate(
        [
            ("evt-ok", "cus_1", "invoice.paid"),
            ("evt-retry", "cus_2", "invoice.paid"),
            ("evt-dead", "cus_1", "invoice.failed"),
            ("evt-new", "cus_3", "customer.created"),
            ("evt-late", "cus_2", "invoice.paid"),
        ]
    ):
        topics.received(event_id, entity, kind, T0 + n)
    received = {"kind": "received", "event_type": "invoice.paid"}
    topics.audit(
        "evt-ok",
        {**received, "at": T0 + 10, "entity_id": "cus_1"},
        attempt(T0 + 10, 200, "delivered"),
    )
    topics.audit("evt-ok", {"kind": "delivered", "at": T0 + 10.1, "attempts": 1})
    topics.audit(
        "evt-retry",
        {**received, "at": T0 + 11, "entity_id": "cus_2"},
        attempt(T0 + 11, 503, "retryable", "HTTP 503"),
        {"kind": "retry_scheduled", "at": T0 + 11.1, "tier": 0, "attempts": 1},
    )
    topics.audit(
        "evt-dead",
        {"kind": "received", "at": T0 + 12, "event_type": "invoice.failed", "entity_id": "cus_1"},
        attempt(T0 + 12, 400, "permanent", "HTTP 400"),
        {"kind": "dead_lettered", "at": T0 + 12.1, "reason": "permanent failure", "attempts": 1},
    )
    topics.dead_letter("evt-dead", "cus_1", T0 + 12.1)
    topics.audit("evt-late", {**received, "at": T0 + 14, "entity_id": "cus_2"})
    topics.audit(
        "evt-late", attempt(T0 + 14, 200, "delivered"), {"kind": "delivered", "at": T0 + 14.2}
    )
    topics.flush()


def ids(index: EventIndex, **wanted: object) -> list[str]:
    return [e.event_id for e in index.search(EventFilter(**wanted), limit=100).items]  # type: ignore[arg-type]


def test_the_index_answers_every_question_from_the_topics(make_settings, tmp_path: Path) -> None:
    settings, _config = make_settings()
    topics = Topics(settings)
    write_history(topics)
    index = EventIndex(tmp_path / "index.sqlite")
    done = catch_up(settings, index)
    assert done.records == 5 + 6 + 1  # events, audit, DLQ records

    [ok] = index.get("evt-ok")
    assert (ok.state, ok.attempts, ok.entity_id, ok.event_type) == (
        "delivered",
        1,
        "cus_1",
        "invoice.paid",
    )
    assert ok.trace_id == "ab" * 16
    assert ok.record_position == (0, 0)
    assert [s["kind"] for s in ok.steps] == ["received", "attempt", "delivered"]
    assert ok.show()["history"][0]["at"].startswith("2026-")

    # Newest first by received time; every filter narrows.
    assert ids(index) == ["evt-late", "evt-new", "evt-dead", "evt-retry", "evt-ok"]
    assert ids(index, state="retrying") == ["evt-retry"]
    assert ids(index, state="dead_lettered") == ["evt-dead"]
    assert ids(index, state="accepted") == ["evt-new"]
    assert ids(index, entity_id="cus_2") == ["evt-late", "evt-retry"]
    assert ids(index, event_type="invoice.*") == ["evt-late", "evt-dead", "evt-retry", "evt-ok"]
    assert ids(index, event_type="customer.created") == ["evt-new"]
    assert ids(index, destination="sink", state="delivered") == ["evt-late", "evt-ok"]
    assert ids(index, since=T0 + 1, until=T0 + 3) == ["evt-dead", "evt-retry"]
    assert ids(index, source="other") == []
    assert index.counts(EventFilter(entity_id="cus_1")) == {
        "accepted": 0,
        "processing": 0,
        "retrying": 0,
        "parked": 0,
        "delivered": 1,
        "dead_lettered": 1,
    }

    # Pages of two cover everything once, in order.
    seen, cursor = [], None
    while True:
        page = index.search(EventFilter(), limit=2, cursor=cursor)
        seen += [e.event_id for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids(index)

    [dead] = index.dead_letters()
    summary = dead.summary()
    assert summary["event_id"] == "evt-dead"
    assert summary["attempts"] == 1
    assert summary["last_error"] == "sink: HTTP 400"
    assert summary["dead_lettered_at"].startswith("2026-")
    assert index.dead_letters(event_type="invoice.*")
    assert not index.dead_letters(source="x")

    # Incremental: nothing new, nothing read; a redrive marker and new steps arrive.
    assert catch_up(settings, index).records == 0
    topics.redriven(dead.position)
    topics.audit("evt-dead", {"kind": "redriven", "at": T0 + 20, "by": "console:alice"})
    topics.audit(
        "evt-dead", attempt(T0 + 21, 200, "delivered"), {"kind": "delivered", "at": T0 + 21}
    )
    topics.flush()
    assert catch_up(settings, index).records == 3
    assert index.dead_letters() == []
    [redriven] = index.get("evt-dead")
    assert redriven.state == "delivered"
    assert redriven.attempts == 2  # the redrive's attempt 1 counts after the first one
    assert redriven.last_error is None  # delivered: nothing is wrong any more
    assert any(s.get("by") == "console:alice" for s in redriven.steps)


def test_two_connections_on_one_file_never_apply_a_record_twice(
    make_settings, tmp_path: Path
) -> None:
    settings, _config = make_settings()
    topics = Topics(settings)
    write_history(topics)
    first, second = EventIndex(tmp_path / "i.sqlite"), EventIndex(tmp_path / "i.sqlite")
    catch_up(settings, first)
    catch_up(settings, second)
    # The second read its offsets back from the file: it applied nothing again.
    assert [s["kind"] for s in second.get("evt-ok")[0].steps] == [
        "received",
        "attempt",
        "delivered",
    ]
    # Applying the same batch twice (a race between two processes) changes nothing either.
    from hookstream.kafka.reading import read_to_end

    records = list(read_to_end(settings, audit_topic(settings)))
    second.apply_audit(records)
    assert len(first.get("evt-ok")[0].steps) == 3


def test_rows_leave_with_their_records_and_a_recreated_topic_is_read_anew(
    make_settings, tmp_path: Path
) -> None:
    settings, _config = make_settings()
    topics = Topics(settings)
    write_history(topics)
    index = EventIndex(tmp_path / "index.sqlite")
    catch_up(settings, index)
    assert index.size() == 5
    assert len(index.dead_letters()) == 1

    # Retention: the first three events' records and all their audit records go.
    admin = AdminClient(client_config(settings))
    cut = [
        TopicPartition(settings.topics.events, 0, 3),
        TopicPartition(audit_topic(settings), 0, 4),  # evt-ok (2), evt-retry, evt-dead
        TopicPartition(dlq_topic(settings), 0, 1),
    ]
    for future in admin.delete_records(cut, operation_timeout=10).values():
        future.result()
    catch_up(settings, index)
    assert sorted(e.event_id for e in index.search(EventFilter()).items) == ["evt-late", "evt-new"]
    assert index.dead_letters() == []

    # The topics are deleted and created anew: the index starts over with what is there.
    delete_topics(settings)
    deadline = time.monotonic() + 30
    while True:
        try:
            create_topics(settings)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    fresh = Topics(settings)
    fresh.received("evt-after", "cus_9", "invoice.paid", T0 + 50)
    fresh.flush()
    done = catch_up(settings, index)
    assert done.rebuilt
    assert [e.event_id for e in index.search(EventFilter()).items] == ["evt-after"]


def test_events_list_show_and_dlq_list_answer_from_the_index(make_settings) -> None:
    from tests.integration.test_retries import cli, cli_json

    settings, config = make_settings()
    write_history(Topics(settings))
    listed = cli_json(config, "events", "list", "--entity", "cus_2")
    assert [e["event_id"] for e in listed] == ["evt-late", "evt-retry"]
    assert listed[1]["state"] == "retrying"
    assert listed[1]["last_error"] == "sink: HTTP 503"
    assert listed[1]["received_at"].startswith("2026-")
    page = cli(config, "events", "list", "--limit", "2", "--json")
    assert len(json.loads(page.stdout)) == 2
    cursor = page.stderr.split("--cursor ")[1].strip()
    rest = cli_json(config, "events", "list", "--limit", "10", "--cursor", cursor)
    assert [e["event_id"] for e in rest] == ["evt-dead", "evt-retry", "evt-ok"]
    assert cli_json(config, "events", "list", "--state", "accepted") == [
        {**cli_json(config, "events", "list", "--entity", "cus_3")[0]}
    ]
    assert "no events match" in cli(config, "events", "list", "--source", "nope").stdout
    assert cli(config, "events", "list", "--cursor", "junk", check=False).returncode == 2

    shown = cli_json(config, "events", "show", "evt-retry")
    assert (shown["state"], shown["attempts"], shown["trace_id"]) == ("retrying", 1, "ab" * 16)
    assert [s["kind"] for s in shown["history"]] == ["received", "attempt", "retry_scheduled"]
    assert shown["history"][0]["event_id"] == "evt-retry"
    scanned = cli_json(config, "events", "show", "evt-retry", "--no-index")
    assert [s["kind"] for s in scanned["history"]] == [s["kind"] for s in shown["history"]]

    [dead] = cli_json(config, "dlq", "list")
    assert dead == cli_json(config, "dlq", "list", "--no-index")[0]
    assert cli_json(config, "dlq", "list", "--type", "customer.*") == []
