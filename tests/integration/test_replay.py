"""Replay by moving consumer offsets: skipped as duplicates unless --reprocess; Kafka's own
consumer-groups tool behaves like `replay` without --reprocess."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from hookstream.broker import LocalKafka
from tests.conftest import ROOT
from tests.integration.test_destinations import metric
from tests.integration.test_end_to_end import event_body, post_signed
from tests.integration.test_retries import cli

pytestmark = pytest.mark.integration

CONSUMER_GROUPS_TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


async def test_replay_skips_done_events_unless_reprocess(
    make_settings, worker_process, sink, ingress_url
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}}
    )
    group = settings.worker.group_id
    worker = worker_process(settings, config)
    base = await ingress_url(settings)
    ids = [f"replay-{n}" for n in range(12)]
    async with aiohttp.ClientSession() as session:
        for n, event_id in enumerate(ids):
            assert (
                await post_signed(
                    session, base, settings, "std", event_id, event_body(event_id, f"c{n % 4}", n)
                )
                == 202
            )
    await sink.wait_for(12, timeout=60)
    await asyncio.sleep(2)  # let the worker commit its offsets

    refused = cli(config, "replay", "--group", group, "--to-earliest", "--execute", check=False)
    assert refused.returncode == 1
    assert "live member" in refused.stderr
    worker.stop()

    dry = cli(config, "replay", "--group", group, "--to-earliest")
    assert "total records to replay: 12" in dry.stdout
    assert "dry run" in dry.stderr

    # Without --reprocess: the events are read again, and skipped as duplicates.
    cli(config, "replay", "--group", group, "--to-earliest", "--execute")
    worker = worker_process(settings, config)
    await asyncio.sleep(8)
    assert sorted(sink.ids()) == sorted(ids)
    duplicates = await metric(
        settings, "hookstream_events_total", outcome="duplicate", source="std"
    )
    assert duplicates == len(ids)
    worker.stop()

    # Kafka's own tool, from the broker distribution, does the same.
    kafka = LocalKafka(ROOT / ".hookstream" / "kafka")
    reset = kafka.tool(
        CONSUMER_GROUPS_TOOL,
        "--bootstrap-server",
        settings.kafka.bootstrap_servers,
        "--group",
        group,
        "--topic",
        settings.topics.events,
        "--reset-offsets",
        "--to-earliest",
        "--execute",
    )
    assert reset.returncode == 0, reset.stderr
    worker = worker_process(settings, config)
    await asyncio.sleep(8)
    assert sorted(sink.ids()) == sorted(ids)
    worker.stop()

    # With --reprocess: every replayed event is delivered once more.
    cli(config, "replay", "--group", group, "--to-earliest", "--execute", "--reprocess")
    worker_process(settings, config)
    await sink.wait_for_total(24, timeout=60)
    await asyncio.sleep(2)
    assert sorted(sink.ids()) == sorted(ids + ids)
