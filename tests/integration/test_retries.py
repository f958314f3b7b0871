"""Retries through delay topics, the DLQ, redrive, poison records and the audit trail,
against the real broker and a real worker process (schedule 1s, 2s, 3s; no jitter)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest
from confluent_kafka import Producer

from hookstream.kafka.topics import retry_topic
from tests.conftest import ROOT
from tests.integration.test_end_to_end import event_body, post_signed

pytestmark = pytest.mark.integration


def cli(config, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "hookstream.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def cli_json(config, *args: str) -> Any:
    return json.loads(cli(config, *args, "--json").stdout)


async def eventually(check, timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(interval)


async def test_retry_tiers_retry_after_dlq_and_redrive(
    make_settings, worker_process, sink, ingress_url
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}}
    )
    down = {"fixed": False}
    first_attempt: dict[str, float] = {}

    def answer(delivery, attempt: int) -> int:
        first_attempt.setdefault(delivery.event_id, time.monotonic())
        kind = delivery.event_id.split("-")[0]
        if kind == "flaky":
            return 503 if attempt <= 2 else 200
        if kind == "slow":
            return 429 if attempt == 1 else 200
        if kind == "down":
            return 200 if down["fixed"] else 503
        if kind == "bad":
            return 200 if down["fixed"] else 400
        return 200

    sink.answer = answer
    sink.retry_after = {"slow-1": "2"}
    worker_process(settings, config)
    base = await ingress_url(settings)
    ids = ["flaky-1", "slow-1", "down-1", "bad-1", "ok-1"]
    async with aiohttp.ClientSession() as session:
        for event_id in ids:
            assert (
                # One entity per event: a held one would park its entity's later events.
                await post_signed(
                    session, base, settings, "std", event_id, event_body(event_id, event_id, 0)
                )
                == 202
            )

    await sink.wait_for(3, timeout=60)  # flaky, slow, ok
    assert sorted(sink.ids()) == ["flaky-1", "ok-1", "slow-1"]
    slow = next(d for d in sink.received if d.event_id == "slow-1")
    assert slow.received_at - first_attempt["slow-1"] >= 2.0  # Retry-After: 2 beat the 1s tier

    dead = await eventually(
        lambda: (
            {e["event_id"]: e for e in cli_json(config, "dlq", "list")}.keys()
            >= {"down-1", "bad-1"}
            and {e["event_id"]: e for e in cli_json(config, "dlq", "list")}
        )
    )
    assert dead["down-1"]["attempts"] == 4  # the first try and one per tier
    assert "HTTP 503" in dead["down-1"]["last_error"]
    assert dead["bad-1"]["attempts"] == 1  # a 400 is permanent: straight to the DLQ
    assert "HTTP 400" in dead["bad-1"]["last_error"]
    for entry in dead.values():
        assert entry["source"] == "std"
        assert entry["dead_lettered_at"].startswith("20")

    shown = json.loads(cli(config, "dlq", "show", "down-1", "--json").stdout)
    assert [a["status"] for a in shown["history"]] == [503, 503, 503, 503]
    assert json.loads(shown["payload"])["id"] == "down-1"

    flaky = cli_json(config, "events", "show", "flaky-1")
    kinds = [s["kind"] for s in flaky["history"]]
    assert kinds == [
        "received",
        "attempt",
        "retry_scheduled",
        "lane_blocked",  # ordering: entity: its entity's later events wait behind it
        "attempt",
        "retry_scheduled",
        "attempt",
        "delivered",
    ]
    assert flaky["state"] == "delivered"
    assert flaky["attempts"] == 3
    assert len(flaky["trace_id"]) == 32
    down_trail = cli_json(config, "events", "show", "down-1")
    assert down_trail["state"] == "dead_lettered"
    assert [s.get("status") for s in down_trail["history"] if s["kind"] == "attempt"] == [503] * 4

    # The operator fixes the destination and redrives: each is delivered once.
    down["fixed"] = True
    assert "would redrive" in cli(config, "dlq", "redrive", "--all", "--dry-run").stdout
    cli(config, "dlq", "redrive", "down-1", "bad-1")
    await sink.wait_for(5, timeout=60)
    await asyncio.sleep(2)
    assert sorted(sink.ids()) == sorted(ids)
    assert cli_json(config, "dlq", "list") == []
    assert cli_json(config, "events", "show", "down-1")["state"] == "delivered"


async def test_poison_records_go_to_the_dlq_while_others_flow(
    make_settings, worker_process, sink, ingress_url
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}}
    )
    worker_process(settings, config)
    base = await ingress_url(settings)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    producer.produce(settings.topics.events, key=b"c", value=b"\xc3\x01 not an envelope")
    producer.produce(
        retry_topic(settings, 0),
        key=b"c",
        value=b"{}",
        headers=[("hookstream-attempts", b"1"), ("hookstream-not-before", b"0")],
    )
    producer.produce(settings.topics.events, key=b"c", value=None)
    assert producer.flush(10) == 0
    async with aiohttp.ClientSession() as session:
        for n in range(5):
            event_id = f"after-poison-{n}"
            assert (
                await post_signed(
                    session, base, settings, "std", event_id, event_body(event_id, "c", n)
                )
                == 202
            )
    await sink.wait_for(5, timeout=60)
    poison = await eventually(
        lambda: (lambda e: len(e) >= 3 and e)(cli_json(config, "dlq", "list"))
    )
    assert all(e["poison"] for e in poison)
    assert len(poison) == 3
    assert any("poison" in (e["reason"] or "") for e in poison)


async def test_exactly_once_mode_retries_and_delivers_once(
    make_settings, worker_process, sink, ingress_url
) -> None:
    settings, config = make_settings(
        processing_guarantee="exactly_once",
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}},
    )
    sink.answer = lambda delivery, attempt: (
        503 if delivery.event_id.startswith("flaky") and attempt == 1 else 200
    )
    worker_process(settings, config)
    base = await ingress_url(settings)
    ids = ["flaky-eos", "ok-eos-1", "ok-eos-2"]
    async with aiohttp.ClientSession() as session:
        for event_id in ids:
            assert (
                # One entity per event: a held one would park its entity's later events.
                await post_signed(
                    session, base, settings, "std", event_id, event_body(event_id, event_id, 0)
                )
                == 202
            )
    await sink.wait_for(3, timeout=60)
    await asyncio.sleep(2)
    assert sorted(sink.ids()) == sorted(ids)
    trail = await eventually(
        lambda: (lambda t: t["state"] == "delivered" and t)(
            cli_json(config, "events", "show", "flaky-eos")
        )
    )
    assert [s["kind"] for s in trail["history"]].count("attempt") == 2


async def test_a_worker_stops_promptly_while_a_retry_waits_and_the_retry_survives(
    make_settings, worker_process, sink, ingress_url
) -> None:
    settings, config = make_settings(
        retry={"schedule": ["20s"], "jitter": 0.0},
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}},
    )
    sink.answer = lambda delivery, attempt: 503 if attempt == 1 else 200
    worker = worker_process(settings, config)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        assert (
            await post_signed(
                session, base, settings, "std", "patient-1", event_body("patient-1", "c", 0)
            )
            == 202
        )
    accepted = time.monotonic()
    await eventually(lambda: "retry_scheduled" in worker.output(), timeout=30)
    await asyncio.sleep(1)  # the tier's agent is now waiting for the record's not-before

    stopping = time.monotonic()
    assert await asyncio.to_thread(worker.stop) == 0
    assert time.monotonic() - stopping < 15, "shutdown waited out the retry delay"
    assert "retry_deferred_for_shutdown" in worker.output()
    assert sink.ids() == []

    worker_process(settings, config)
    await sink.wait_for(1, timeout=60)
    assert sink.ids() == ["patient-1"]
    assert sink.received[0].received_at - accepted >= 19  # the tier's delay still held
