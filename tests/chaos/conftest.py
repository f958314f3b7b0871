"""The fault suite's harness: its own broker, a recording destination, a signed load
generator and the ledger (`make chaos`; docs/reliability.md).

The suite runs a SEPARATE local broker (its own ports and data dir under pytest's temp
dir), because one scenario stops it: a broker anyone else uses is never touched.

Size: `HOOKSTREAM_CHAOS_SIZE=reduced` (the default, for CI: a few minutes) or `full`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from hookstream.broker import LocalKafka
from hookstream.config import Settings
from hookstream.kafka.admin import create_topics
from hookstream.kafka.clients import client_config
from hookstream.kafka.topics import retry_topic
from tests.conftest import HMAC_SECRET, ROOT, base_config, free_port, write_config

SIZE = os.environ.get("HOOKSTREAM_CHAOS_SIZE", "reduced")
GUARANTEE = os.environ.get("HOOKSTREAM_CHAOS_GUARANTEE", "at_least_once")
FULL = SIZE == "full"
REPORT_DIR = ROOT / ".hookstream" / "chaos"


@dataclass(frozen=True)
class Sizes:
    burst: int  # events in the SIGKILL burst
    kills: int
    outage: float  # seconds the broker is stopped
    group_events: int  # events in the three-worker scenario
    soak_minutes: float


SIZES = {
    "reduced": Sizes(burst=2000, kills=2, outage=15.0, group_events=1500, soak_minutes=0.0),
    "full": Sizes(burst=20000, kills=10, outage=30.0, group_events=6000, soak_minutes=15.0),
}[SIZE]


@pytest.fixture(scope="session")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of the suite's own, on free ports, that a scenario may stop and start."""
    broker = LocalKafka(
        tmp_path_factory.mktemp("chaos") / "kafka",
        port=free_port(),
        controller_port=free_port(),
        dist_dir=ROOT / ".hookstream" / "kafka" / "dist",
        heap="768m",
    )
    try:
        broker.start()
    except Exception as exc:
        broker.stop()
        pytest.fail(f"could not start the chaos suite's broker: {exc}")
    yield broker
    broker.stop()


@pytest.fixture
def chaos_settings(
    chaos_broker: LocalKafka, tmp_path: Path
) -> Callable[..., tuple[Settings, Path]]:
    """Settings on the suite's broker with a sink destination; topics created."""

    def build(sink_url: str, **sections: Any) -> tuple[Settings, Path]:
        data = tmp_path / f"data-{uuid.uuid4().hex[:6]}"
        data.mkdir()
        config = base_config(
            chaos_broker.bootstrap,
            data,
            destinations={"sink": {"url": sink_url, "timeout": "5s"}},
            processing_guarantee=GUARANTEE,
            **sections,
        )
        path = tmp_path / f"{data.name}.yaml"
        settings = write_config(config, path)
        create_topics(settings)
        return settings, path

    return build


@dataclass
class Ledger:
    """What the ingress acknowledged against what the destination received."""

    accepted: set[str] = field(default_factory=set)  # ids answered 2xx
    answers: Counter[int] = field(default_factory=Counter)  # status -> count
    retry_after_missing: int = 0  # 503s without Retry-After
    received: Counter[str] = field(default_factory=Counter)  # webhook-id -> deliveries

    @property
    def lost(self) -> set[str]:
        return self.accepted - set(self.received)

    @property
    def duplicate_effects(self) -> int:
        return sum(n - 1 for n in self.received.values() if n > 1)

    def summary(self, **extra: Any) -> dict[str, Any]:
        return {
            "size": SIZE,
            "processing_guarantee": GUARANTEE,
            "accepted": len(self.accepted),
            "delivered_ids": len(self.received),
            "lost": len(self.lost),
            "duplicate_effects": self.duplicate_effects,
            "duplicate_rate": round(self.duplicate_effects / max(1, len(self.accepted)), 5),
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "retry_after_missing": self.retry_after_missing,
            **extra,
        }


def report(name: str, summary: dict[str, Any]) -> None:
    """Print a scenario's figures and keep them under .hookstream/chaos/."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "" if GUARANTEE == "at_least_once" else f"-{GUARANTEE}"
    (REPORT_DIR / f"{name}-{SIZE}{suffix}.json").write_text(json.dumps(summary, indent=2))
    print(f"\nCHAOS {name}: {json.dumps(summary)}")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[str, Ledger]]:
    """A destination that records every delivery's webhook-id in a fresh ledger."""
    ledger = Ledger()

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.002)  # some latency, so deliveries are in flight at a kill
        ledger.received[request.headers.get("webhook-id", "")] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hooks", ledger
    await runner.cleanup()


def signed(event_id: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Signature": f"sha256={digest}",
        "X-Event-Id": event_id,
        "Content-Type": "application/json",
    }


async def send_events(
    url: str,
    ledger: Ledger,
    count: int,
    *,
    repeat: float = 0.1,
    rate: float | None = None,
    concurrency: int = 16,
    prefix: str = "evt",
    rng: random.Random | None = None,
) -> None:
    """Post `count` signed events (plus `repeat` of them sent again, as senders retry) to the
    partner source; a 503 is retried after its Retry-After, as a sender would."""
    rng = rng or random.Random(7)
    ids = [f"{prefix}-{n}" for n in range(count)]
    order = ids + [rng.choice(ids) for _ in range(int(count * repeat))]
    rng.shuffle(order)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for event_id in order:
        queue.put_nowait(event_id)
    started = time.monotonic()
    sent = 0

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal sent
        while not queue.empty():
            event_id = queue.get_nowait()
            if rate is not None:
                sent += 1
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            body = json.dumps({"id": event_id, "amount": 1}).encode()
            for _ in range(60):  # a sender's patience
                try:
                    async with http.post(
                        f"{url}/webhooks/partner", data=body, headers=signed(event_id, body)
                    ) as answer:
                        await answer.read()
                        ledger.answers[answer.status] += 1
                        if 200 <= answer.status < 300:
                            ledger.accepted.add(event_id)
                            break
                        if answer.status == 503:
                            wait = answer.headers.get("Retry-After")
                            if wait is None:
                                ledger.retry_after_missing += 1
                            await asyncio.sleep(min(float(wait or 1), 2.0))
                            continue
                        break
                except (aiohttp.ClientError, TimeoutError):
                    ledger.answers[0] += 1
                    await asyncio.sleep(1.0)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(one(http) for _ in range(concurrency)))


async def wait_until_delivered(ledger: Ledger, timeout: float) -> float:
    """Seconds until every accepted id was received (or the timeout passed)."""
    started = time.monotonic()
    while ledger.lost and time.monotonic() - started < timeout:
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def committed_lag(settings: Settings) -> int:
    """High watermark minus committed offset, summed over the topics the worker reads."""
    return sum(lag_by_partition(settings).values())


def lag_by_partition(settings: Settings) -> dict[str, int]:
    """High watermark minus committed offset of every partition the worker reads that
    trails ("topic/partition": lag)."""
    admin = AdminClient(client_config(settings))
    from confluent_kafka import Consumer

    consumer = Consumer(client_config(settings, **{"group.id": "chaos-probe"}))
    try:
        topics = [settings.topics.events] + [
            retry_topic(settings, i) for i in range(len(settings.retry.schedule))
        ]
        partitions = [
            TopicPartition(t, p) for t in topics for p in range(settings.topics.partitions)
        ]
        group = settings.worker.group_id
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        result = admin.list_consumer_group_offsets(request)[group].result()
        committed = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in result.topic_partitions}
        lags = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag = high - max(committed.get((tp.topic, tp.partition), 0), low)
            if lag:
                lags[f"{tp.topic}/{tp.partition}"] = lag
        return lags
    finally:
        consumer.close()


async def wait_for_commits(settings: Settings, timeout: float) -> int:
    """The group's lag once it reaches 0, or what is left at the timeout."""
    deadline = time.monotonic() + timeout
    lag = await asyncio.to_thread(committed_lag, settings)
    while lag and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        lag = await asyncio.to_thread(committed_lag, settings)
    return lag


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
