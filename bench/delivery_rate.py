"""Delivery rate against an HTTP destination answering after 50 ms vs one answering at once.

One `hookstream worker` process, 3 partitions, N events already on the topic over many
entities. Each round runs a fresh worker (fresh topics and group) against the slow
destination and then against the instant one, so both see the same machine load; the
rate is the number of events over the time from the first delivery to the last. Prints
each round and the min/median/max of the ratio slow/instant. The source runs with
`ordering: entity` (the default); each round also runs the slow destination with
`ordering: none`, and prints what keeping order across retries costs when nothing fails
(the ratio entity/none).

    .venv/bin/python bench/delivery_rate.py --events 4000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from aiohttp import web
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import (  # noqa: E402
    event_body,
    free_port,
    load_average,
    save,
    serve_in_thread,
    spread,
)
from hookstream.broker import LocalKafka  # noqa: E402
from hookstream.config import load_settings  # noqa: E402
from hookstream.kafka.admin import create_topics  # noqa: E402
from hookstream.kafka.clients import producer_config  # noqa: E402
from schemas import Envelope, encode_envelope  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Destination:
    """An HTTP destination in a thread of its own, answering 204 after `delay` seconds."""

    def __init__(self) -> None:
        self.port = free_port()
        self.delay = 0.0
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.most_at_once = 0
        self._active = 0
        serve_in_thread(self.port, self._receive)

    def reset(self, delay: float) -> None:
        self.delay, self.count, self.first, self.last, self.most_at_once = delay, 0, 0.0, 0.0, 0

    async def _receive(self, request: web.Request) -> web.Response:
        await request.read()
        self._active += 1
        self.most_at_once = max(self.most_at_once, self._active)
        if self.delay:
            await asyncio.sleep(self.delay)
        self._active -= 1
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        self.count += 1
        return web.Response(status=204)


def config_for(
    bootstrap: str, data_dir: Path, url: str, args, ordering: str = "entity"
) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    source: dict[str, object] = {
        "scheme": "standard",
        "secrets": [SECRET],
        "ordering": ordering,
    }
    return {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"events": f"bench.{tag}.events", "partitions": 3},
        "worker": {
            "group_id": f"bench-{tag}",
            "port": free_port(),
            "host": "127.0.0.1",
            "standby_replicas": 0,
            "max_in_flight": args.max_in_flight,
            "max_in_flight_per_partition": args.per_partition,
        },
        "sources": {"s": source},
        "destinations": {"http": {"url": url, "sources": ["s"], "timeout": "10s"}},
        "data_dir": str(data_dir),
    }


def produce_backlog(settings, events: int, entities: int) -> None:
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    for n in range(events):
        envelope = Envelope(
            f"evt-{n}",
            "s",
            f"cus-{n % entities}",
            event_body(f"evt-{n}"),
            datetime.now(UTC),
            "bench",
            "application/json",
        )
        producer.produce(
            settings.topics.events,
            key=envelope.entity_id.encode(),
            value=encode_envelope(envelope),
            headers=[
                ("hookstream-source", b"s"),
                ("hookstream-event-id", envelope.event_id.encode()),
            ],
        )
        if n % 5000 == 0:
            producer.poll(0)
    producer.flush(60)


def run_once(
    broker: LocalKafka,
    tmp: Path,
    destination: Destination,
    delay: float,
    args,
    ordering: str = "entity",
) -> float:
    """Events per second from the first delivery to the last, for one fresh worker."""
    name = f"{uuid.uuid4().hex[:6]}-{int(delay * 1000)}ms-{ordering}"
    path = tmp / f"{name}.yaml"
    url = f"http://127.0.0.1:{destination.port}/hooks"
    config = config_for(broker.bootstrap, tmp / name, url, args, ordering)
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path, environ={})
    create_topics(settings)
    produce_backlog(settings, args.events, args.entities)
    destination.reset(delay)
    log = (tmp / f"{name}.log").open("wb")
    command = [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(path)]
    worker = subprocess.Popen(
        [*command, "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 600
        while destination.count < args.events:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not deliver the backlog in 10 minutes")
            time.sleep(0.1)
        return (destination.count - 1) / max(destination.last - destination.first, 1e-6)
    finally:
        worker.terminate()
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.05, help="the slow destination's delay")
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--per-partition", type=int, default=128)
    args = parser.parse_args()
    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="hookstream-bench-"))  # kept: the worker logs are there
    destination = Destination()
    ratios, costs = [], []
    rates: dict[str, list[float]] = {"slow": [], "instant": []}
    for round_ in range(args.rounds):
        slow = run_once(broker, tmp, destination, args.delay, args)
        slow_peak = destination.most_at_once
        instant = run_once(broker, tmp, destination, 0.0, args)
        unordered = run_once(broker, tmp, destination, args.delay, args, "none")
        ratios.append(slow / instant)
        costs.append(slow / unordered)
        rates["slow"].append(slow)
        rates["instant"].append(instant)
        print(
            f"round {round_ + 1}: {args.delay * 1000:.0f} ms {slow:7.0f} events/s "
            f"(up to {slow_peak} requests at once)   instant {instant:7.0f} events/s   "
            f"ratio {slow / instant:.2f}   ordering none {unordered:7.0f} events/s   "
            f"entity/none {slow / unordered:.2f}"
        )
    print(
        f"ratio {args.delay * 1000:.0f} ms / instant over {args.rounds} rounds: "
        f"min {min(ratios):.2f}  median {statistics.median(ratios):.2f}  max {max(ratios):.2f}"
        f"   ({args.events} events over {args.entities} entities, one worker, 3 partitions)"
    )
    print(
        f"ordering entity / none at {args.delay * 1000:.0f} ms over {args.rounds} rounds: "
        f"min {min(costs):.2f}  median {statistics.median(costs):.2f}  max {max(costs):.2f}"
    )
    save(
        "delivery_rate",
        {
            "command": "python bench/delivery_rate.py " + " ".join(sys.argv[1:]),
            "events": args.events,
            "entities": args.entities,
            "delay_ms": args.delay * 1000,
            "slow_rate": spread(rates["slow"]),
            "instant_rate": spread(rates["instant"]),
            "ratio": spread(ratios),
            "entity_over_none": spread(costs),
            "load_average": load_average(),
        },
    )


if __name__ == "__main__":
    main()
