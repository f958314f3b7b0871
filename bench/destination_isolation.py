"""A sick destination beside a healthy one: the healthy one's accept->delivery latency.

One `hookstream worker` process (worker.max_in_flight 64), two loopback destinations:
`sick` answers after 4 s with a 2 s timeout (max_in_flight 8, max_wait 1s), `healthy`
answers at once. 200 events to each, interleaved, about 20 a second each. Prints the
healthy destination's p50/p95/p99 accept->delivery per round, and the same figures for a
baseline round without the sick destination's traffic.

    .venv/bin/python bench/destination_isolation.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookstream.broker import LocalKafka  # noqa: E402
from hookstream.kafka.admin import create_topics  # noqa: E402
from tests.conftest import WorkerProcess, base_config, delete_topics, write_config  # noqa: E402
from tests.integration.test_destinations import Destination, body  # noqa: E402
from tests.integration.test_end_to_end import post_signed  # noqa: E402


async def serve(destination: Destination) -> object:
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/hooks", destination.receive)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    destination.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    return runner


async def one_round(bootstrap: str, with_sick: bool, events: int) -> list[float]:
    from aiohttp import web

    from ingress.app import create_app

    sick, healthy = Destination(), Destination()
    sick.answer = lambda e, a: (4.0, 204, {})
    runners = [await serve(sick), await serve(healthy)]
    with tempfile.TemporaryDirectory() as tmp:
        config = base_config(
            bootstrap,
            Path(tmp),
            worker={"max_in_flight": 64},
            destinations={
                "sick": {
                    "url": sick.url,
                    "event_types": ["sick.*"],
                    "timeout": "2s",
                    "max_in_flight": 8,
                    "max_wait": "1s",
                },
                "healthy": {"url": healthy.url, "event_types": ["healthy.*"], "timeout": "2s"},
            },
        )
        path = Path(tmp) / "hookstream.yaml"
        settings = write_config(config, path)
        create_topics(settings)
        worker = WorkerProcess(path, settings, Path(tmp) / "worker.log")
        worker.start()
        ingress = web.AppRunner(create_app(settings), access_log=None)
        await ingress.setup()
        await web.TCPSite(ingress, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{ingress.addresses[0][1]}"
        accepted: dict[str, float] = {}
        kinds = ("sick", "healthy") if with_sick else ("healthy",)
        try:
            async with aiohttp.ClientSession() as session:
                for n in range(events):
                    for kind in kinds:
                        event_id = f"{kind}-{n}"
                        await post_signed(
                            session,
                            base,
                            settings,
                            "std",
                            event_id,
                            body(event_id, kind, f"{kind}-{n % 20}", n),
                        )
                        accepted[event_id] = time.time()
                    await asyncio.sleep(0.05)
            deadline = time.monotonic() + 120
            while len(healthy.delivered) < events and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            await ingress.cleanup()
            worker.stop()
            for runner in runners:
                await runner.cleanup()  # type: ignore[attr-defined]
            delete_topics(settings)
        return sorted(healthy.delivered[e] - accepted[e] for e in healthy.delivered)


def describe(latencies: list[float], events: int) -> str:
    q = statistics.quantiles(latencies, n=100)
    return (
        f"delivered {len(latencies)}/{events}  p50 {q[49] * 1000:.0f} ms  "
        f"p95 {q[94] * 1000:.0f} ms  p99 {q[98] * 1000:.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    for number in range(args.rounds):
        alone = await one_round(broker.bootstrap, False, args.events)
        beside = await one_round(broker.bootstrap, True, args.events)
        print(f"round {number + 1}: healthy alone:      {describe(alone, args.events)}")
        print(f"round {number + 1}: healthy beside sick: {describe(beside, args.events)}")


if __name__ == "__main__":
    asyncio.run(main())
