"""The Prometheus metrics move as they should across accept, duplicate, retry and DLQ, scraped
from the ingress /metrics and the worker's /metrics (real broker, real worker process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_end_to_end import event_body, post_signed
from tests.integration.test_retries import cli

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(
    session: aiohttp.ClientSession,
    url: str,
    expected: Mapping[tuple[str, frozenset[tuple[str, str]]], float],
    timeout: float,
) -> Samples:
    """Scrape until every expected sample has its value; fail naming the ones that lag."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(session, url)
        wrong = {k: (samples.get(k), v) for k, v in expected.items() if samples.get(k, 0.0) != v}
        if not wrong:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics not as expected after {timeout}s: {wrong}")
        await asyncio.sleep(0.5)


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


async def test_metrics_across_accept_duplicate_retry_and_dlq(
    make_settings, worker_process, sink, ingress_url
) -> None:
    # One tier of 15 s: longer than the worker's 10 s depth interval, so a tick sees it wait.
    settings, config = make_settings(
        retry={"schedule": ["15s"], "jitter": 0.0},
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}},
    )
    fixed = {"dead": False}

    def answer(delivery, attempt: int) -> int:
        if delivery.event_id.startswith("retry"):
            return 503 if attempt == 1 else 204
        if delivery.event_id.startswith("dead"):
            return 204 if fixed["dead"] else 400
        return 204

    sink.answer = answer
    worker_process(settings, config)
    base = await ingress_url(settings)
    other = await ingress_url(settings)  # a second replica: its own replay cache
    worker = f"http://127.0.0.1:{settings.worker.port}/metrics"

    async with aiohttp.ClientSession() as session:
        before = await scrape(session, f"{base}/metrics")

        async def post(url: str, event_id: str) -> int:
            # One entity per event: a retry would hold back its entity's later events.
            body = event_body(event_id, event_id, 0)
            return await post_signed(session, url, settings, "std", event_id, body)

        assert await post(base, "ok-1") == 202
        assert await post(base, "ok-1") == 200  # the ingress's replay cache answers
        assert await post(other, "ok-1") == 202  # accepted again: the worker dedupes it
        assert await post(base, "retry-1") == 202
        assert await post(base, "dead-1") == 202
        forged = {"X-Signature": "sha256=" + "00" * 32, "X-Event-Id": "x"}
        async with session.post(f"{base}/webhooks/partner", data=b"{}", headers=forged) as r:
            assert r.status == 401

        after = await scrape(session, f"{base}/metrics")

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        # Ingress: every answer counted by source and code, the forgery by reason, each
        # produce timed. (The registry is this process's, hence deltas.)
        assert delta("hookstream_ingress_requests_total", source="std", code="202") == 4
        assert delta("hookstream_ingress_requests_total", source="std", code="200") == 1
        assert delta("hookstream_ingress_requests_total", source="partner", code="401") == 1
        failures = {
            dict(labels)["reason"]: v - before.get((name, labels), 0.0)
            for (name, labels), v in after.items()
            if name == "hookstream_signature_failures_total" and dict(labels)["source"] == "partner"
        }
        assert sum(failures.values()) == 1
        assert delta("hookstream_produce_seconds_count") == 4

        # Worker (a process of its own: absolute values). ok-1 delivered once and deduped
        # once; retry-1 waits in tier 0; dead-1 (a 400) is dead-lettered at once.
        events = "hookstream_events_total"
        samples = await until(
            session,
            worker,
            {
                key(events, source="std", outcome="delivered"): 1,
                key(events, source="std", outcome="duplicate"): 1,
                key(events, source="std", outcome="retry_scheduled"): 1,
                key(events, source="std", outcome="dead_lettered"): 1,
                key("hookstream_retry_queue_depth", tier="0"): 1,
                key("hookstream_dlq_depth"): 1,
            },
            timeout=30,
        )
        assert value(samples, "hookstream_processing_seconds_count") == 4

        # retry-1 succeeds on its second attempt: the tier drains.
        await until(
            session,
            worker,
            {
                key(events, source="std", outcome="delivered"): 2,
                key("hookstream_retry_queue_depth", tier="0"): 0,
                key("hookstream_dlq_depth"): 1,
            },
            timeout=45,
        )

        # The destination is fixed and dead-1 redriven: the DLQ no longer counts it.
        fixed["dead"] = True
        await asyncio.to_thread(cli, config, "dlq", "redrive", "dead-1")
        await until(
            session,
            worker,
            {
                key(events, source="std", outcome="delivered"): 3,
                key(events, source="std", outcome="dead_lettered"): 1,
                key("hookstream_dlq_depth"): 0,
            },
            timeout=45,
        )
    assert sorted(sink.ids()) == ["dead-1", "ok-1", "retry-1"]
