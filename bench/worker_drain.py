"""Worker backlog drain rate: decode, RocksDB dedupe, a no-op effect, retry/audit writes.

Pre-produces N envelopes (a share of them duplicates) to fresh topics, then runs a real
`hookstream worker` process per mode and times how fast its group's committed offsets
reach the end of the topic. Modes run in the same script run, so compare the ratios.

    .venv/bin/python bench/worker_drain.py --events 20000
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookstream.broker import LocalKafka  # noqa: E402
from hookstream.config import load_settings  # noqa: E402
from hookstream.kafka.admin import create_topics  # noqa: E402
from hookstream.kafka.clients import producer_config  # noqa: E402
from schemas import Envelope, encode_envelope  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_for(bootstrap: str, data_dir: Path, guarantee: str) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    return {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"events": f"bench.{tag}.events", "partitions": 6},
        "worker": {
            "group_id": f"bench-{tag}",
            "port": free_port(),
            "host": "127.0.0.1",
            "standby_replicas": 0,
        },
        "processing_guarantee": guarantee,
        "sources": {"s": {"scheme": "hmac", "header": "X-Sig", "secrets": ["x"]}},
        "destinations": {"noop": {"handler": "hookstream.sinks:discard"}},
        "data_dir": str(data_dir),
    }


def produce_backlog(settings, events: int, duplicates: float) -> int:
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    body = b'{"id":"x","type":"bench","data":{"customer":"c"}}' + b" " * 400
    distinct = int(events * (1 - duplicates))
    for n in range(events):
        event_id = f"evt-{n % distinct}"
        envelope = Envelope(
            event_id, "s", f"cus-{n % 500}", body, datetime.now(UTC), "bench", "application/json"
        )
        producer.produce(
            settings.topics.events, key=envelope.entity_id.encode(), value=encode_envelope(envelope)
        )
        if n % 10000 == 0:
            producer.poll(0)
    producer.flush(60)
    return distinct


def committed_total(admin: AdminClient, group: str, topic: str, partitions: int) -> int:
    request = [
        ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    ]
    try:
        result = admin.list_consumer_group_offsets(request)[group].result()
    except Exception:
        return 0
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def drain(settings, config: Path, events: int) -> float:
    log = (config.parent / f"{config.stem}.log").open("wb")
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hookstream.cli",
            "worker",
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        started = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log.name}")
            done = committed_total(admin, settings.worker.group_id, settings.topics.events, 6)
            if started is None and done > 0:
                started = (time.monotonic(), done)
            if done >= events:
                break
            time.sleep(0.2)
        else:
            raise TimeoutError("the worker did not drain the backlog in 10 minutes")
        assert started is not None
        elapsed = time.monotonic() - started[0]
        return (events - started[1]) / elapsed
    finally:
        worker.terminate()
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--modes", default="at_least_once,exactly_once")
    args = parser.parse_args()
    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    results = {}
    tmp = tempfile.mkdtemp(prefix="hookstream-bench-")  # kept: the worker logs are there
    if True:
        for mode in args.modes.split(","):
            path = Path(tmp) / f"{mode}.yaml"
            path.write_text(yaml.safe_dump(config_for(broker.bootstrap, Path(tmp) / mode, mode)))
            settings = load_settings(path, environ={})
            create_topics(settings)
            distinct = produce_backlog(settings, args.events, args.duplicates)
            rate = drain(settings, path, args.events)
            results[mode] = rate
            print(
                f"{mode:15} {rate:9.0f} events/s  ({args.events} records, {distinct} distinct ids)"
            )
    base = results.get("at_least_once")
    if base:
        for mode, rate in results.items():
            print(f"{mode:15} {rate / base:5.2f}x at_least_once")


if __name__ == "__main__":
    main()
