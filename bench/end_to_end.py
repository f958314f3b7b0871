"""End-to-end latency, accept -> effect, at 25, 50 and 75 % of the pipeline's maximum rate.

    .venv/bin/python bench/end_to_end.py [--seconds 15] [--max-requests 3000]

A real `hookstream ingress` and `hookstream worker` (one process each, 6 partitions) and an
HTTP destination run by this script that answers at once. First the maximum: signed
requests as fast as 64 connections send them, the rate being deliveries over the time from
the first delivery to the last. Then, at each share of that rate, an open-loop sender posts
distinct signed events on a fixed schedule; an event's latency is from its scheduled send
time (so a slow answer cannot hide later latency) to its arrival at the destination.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession, TCPConnector, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import free_port, load_average, save, serve_in_thread, wait_for_port  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SHARES = (0.25, 0.5, 0.75)


class Destination:
    """Answers 204 at once and keeps each event id's arrival time (time.time())."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, float] = {}
        serve_in_thread(self.port, self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrivals.setdefault(request.headers.get("webhook-id", ""), time.time())
        return web.Response(status=204)


def signed(source: Any, event_id: str) -> tuple[bytes, dict[str, str]]:
    from hookstream.sources import sign_request

    body = json.dumps(
        {"id": event_id, "type": "invoice.paid", "data": {"customer": f"cus_{event_id}"}},
        separators=(",", ":"),
    ).encode()
    headers = sign_request(source, body, event_id, time.time())
    headers["Content-Type"] = "application/json"
    return body, headers


async def blast(url: str, source: Any, prefix: str, count: int) -> None:
    """`count` requests from 64 connections, as fast as they are answered."""
    requests = [signed(source, f"{prefix}-{n}") for n in range(count)]
    queue = iter(requests)
    async with ClientSession(connector=TCPConnector(limit=64)) as session:

        async def client() -> None:
            for body, headers in queue:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()

        await asyncio.gather(*(client() for _ in range(64)))


async def open_loop(
    url: str, source: Any, prefix: str, rate: float, seconds: float
) -> dict[str, float]:
    """Post `rate` events/s for `seconds` on a fixed schedule; scheduled times by event id."""
    count = int(rate * seconds)
    requests = [signed(source, f"{prefix}-{n}") for n in range(count)]
    scheduled: dict[str, float] = {}
    failed = 0
    async with ClientSession(connector=TCPConnector(limit=0)) as session:
        start = time.time() + 0.5

        async def post(n: int, body: bytes, headers: dict[str, str]) -> None:
            nonlocal failed
            at = start + n / rate
            await asyncio.sleep(max(0.0, at - time.time()))
            scheduled[f"{prefix}-{n}"] = at
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    failed += 1

        await asyncio.gather(*(post(n, b, h) for n, (b, h) in enumerate(requests)))
    if failed:
        print(f"  {failed} requests were not accepted", flush=True)
    return scheduled


def wait_for(destination: Destination, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(i in destination.arrivals for i in ids):
            return
        time.sleep(0.2)
    missing = sum(1 for i in ids if i not in destination.arrivals)
    raise TimeoutError(f"{missing} events were not delivered in {timeout:.0f} s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-requests", type=int, default=3000)
    args = parser.parse_args()

    from hookstream.broker import LocalKafka
    from hookstream.config import load_settings
    from hookstream.kafka.admin import create_topics

    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    destination = Destination()
    tmp = Path(tempfile.mkdtemp(prefix="hookstream-bench-e2e-"))
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    config = tmp / "hookstream.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap},
                "topics": {"events": f"bench.{tag}.events", "partitions": 6},
                "ingress": {"host": "127.0.0.1", "port": port},
                "worker": {
                    "group_id": f"bench-{tag}",
                    "port": free_port(),
                    "host": "127.0.0.1",
                    "standby_replicas": 0,
                },
                "sources": {"std": {"scheme": "standard", "secrets": [SECRET]}},
                "destinations": {
                    "sink": {"url": f"http://127.0.0.1:{destination.port}/hooks", "timeout": "10s"}
                },
                "data_dir": str(tmp / "data"),
            }
        )
    )
    settings = load_settings(config, environ={})
    source = settings.sources["std"]
    create_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base = [sys.executable, "-m", "hookstream.cli"]
    log = (tmp / "pipeline.log").open("wb")
    processes = [
        subprocess.Popen(
            [*base, name, "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for name in ("worker", "ingress")
    ]
    url = f"http://127.0.0.1:{port}/webhooks/std"
    try:
        wait_for_port(port)
        # Warm up until the worker delivers (its start-up and partition assignment).
        asyncio.run(blast(url, source, "warm", 50))
        wait_for(destination, [f"warm-{n}" for n in range(50)], 120)
        before = len(destination.arrivals)
        asyncio.run(blast(url, source, "max", args.max_requests))
        ids = [f"max-{n}" for n in range(args.max_requests)]
        wait_for(destination, ids, 600)
        times = sorted(destination.arrivals[i] for i in ids)
        maximum = (len(times) - 1) / (times[-1] - times[0])
        print(
            f"maximum: {maximum:.0f} events/s accepted and delivered; load {load_average()}",
            flush=True,
        )
        assert len(destination.arrivals) - before == args.max_requests
        levels: list[dict[str, Any]] = []
        for share in SHARES:
            rate = share * maximum
            prefix = f"at{int(share * 100)}"
            scheduled = asyncio.run(open_loop(url, source, prefix, rate, args.seconds))
            wait_for(destination, list(scheduled), 300)
            latencies = [1000 * (destination.arrivals[i] - at) for i, at in scheduled.items()]
            found = {
                "share": share,
                "rate": rate,
                "events": len(latencies),
                "p50_ms": statistics.median(latencies),
                "p95_ms": percentile(latencies, 0.95),
                "p99_ms": percentile(latencies, 0.99),
                "load": load_average(),
            }
            levels.append(found)
            print(
                f"{share:4.0%} ({rate:6.0f} events/s): p50 {found['p50_ms']:7.1f} ms  "
                f"p95 {found['p95_ms']:7.1f} ms  p99 {found['p99_ms']:7.1f} ms  load {found['load']}",
                flush=True,
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
        log.close()
    save(
        "end_to_end",
        {
            "command": "python bench/end_to_end.py " + " ".join(sys.argv[1:]),
            "maximum_rate": maximum,
            "levels": levels,
        },
    )


if __name__ == "__main__":
    main()
