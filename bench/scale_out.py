"""1, 2 and 3 worker processes in one consumer group on one topic: the work spreads and no
event takes effect twice. A check of the mechanism, not a speed claim on a small machine.

    .venv/bin/python bench/scale_out.py [--events 6000]

For each count K, N events (distinct ids, many entities) go to a fresh 6-partition topic;
K `hookstream worker` processes start together in one group and deliver to an HTTP
destination run by this script, which counts deliveries per event id. Reported: the drain
time, each process's share (its own `hookstream_events_total{outcome="delivered"}`), and
the events delivered more than once (start-up rebalances are the only at-least-once window).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import free_port, load_average, save, serve_in_thread  # noqa: E402
from bench.delivery_rate import SECRET, produce_backlog  # noqa: E402


class Destination:
    """Answers 204 at once; counts deliveries per `webhook-id`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.counts: Counter[str] = Counter()
        self.first = 0.0
        self.last = 0.0
        serve_in_thread(self.port, self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        await request.read()
        self.counts[request.headers.get("webhook-id", "")] += 1
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        return web.Response(status=204)


def delivered(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        int(float(m.group(1)))
        for m in re.finditer(
            r'^hookstream_events_total\{[^}]*outcome="delivered"[^}]*\} (\S+)', text, re.M
        )
    )


def run(
    bootstrap: str, tmp: Path, destination: Destination, workers: int, events: int
) -> dict[str, Any]:
    from hookstream.config import load_settings
    from hookstream.kafka.admin import create_topics

    tag = uuid.uuid4().hex[:8]
    destination.counts.clear()
    destination.first = destination.last = 0.0
    ports = [free_port() for _ in range(workers)]
    configs = []
    for n, port in enumerate(ports):
        path = tmp / f"{tag}-{n}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "kafka": {"bootstrap_servers": bootstrap},
                    "topics": {"events": f"bench.{tag}.events", "partitions": 6},
                    "worker": {
                        "group_id": f"bench-{tag}",
                        "port": port,
                        "host": "127.0.0.1",
                        "standby_replicas": 0,
                    },
                    "sources": {"s": {"scheme": "standard", "secrets": [SECRET]}},
                    "destinations": {"http": {"url": f"http://127.0.0.1:{destination.port}/hooks"}},
                    "data_dir": str(tmp / f"{tag}-{n}"),
                }
            )
        )
        configs.append(path)
    settings = load_settings(configs[0], environ={})
    create_topics(settings)
    produce_backlog(settings, events, 1000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = (tmp / f"{tag}.log").open("wb")
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(c)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for c in configs
    ]
    try:
        deadline = started + 600
        while len(destination.counts) < events:
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited with {process.returncode}: {log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(destination.counts)} of {events} delivered in 10 min")
            time.sleep(0.2)
        time.sleep(2)  # let any late duplicate arrive
        shares = [delivered(port) for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
        log.close()
    twice = sum(1 for count in destination.counts.values() if count > 1)
    return {
        "workers": workers,
        "seconds_from_start": destination.last - started,
        "delivery_rate": (events - 1) / max(1e-6, destination.last - destination.first),
        "per_process": shares,
        "delivered_twice": twice,
        "load": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--max-workers", type=int, default=3)
    args = parser.parse_args()

    from hookstream.broker import LocalKafka

    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    destination = Destination()
    tmp = Path(tempfile.mkdtemp(prefix="hookstream-bench-scale-"))
    results = []
    for workers in range(1, args.max_workers + 1):
        found = run(broker.bootstrap, tmp, destination, workers, args.events)
        results.append(found)
        print(
            f"{workers} worker(s): {found['seconds_from_start']:6.1f} s from start, "
            f"{found['delivery_rate']:6.0f} events/s, per process {found['per_process']}, "
            f"delivered twice {found['delivered_twice']}  load {found['load']}",
            flush=True,
        )
    save(
        "scale_out",
        {
            "command": "python bench/scale_out.py " + " ".join(sys.argv[1:]),
            "events": args.events,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
