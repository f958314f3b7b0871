"""The broker's own ceiling on this machine: Kafka's producer and consumer perf tools (from
the distribution `hookstream kafka` resolves: kafka-tools) against the local broker.

    .venv/bin/python bench/broker_perf.py [--records 200000] [--record-size 600]

The producer writes with acks=all and idempotence, as the ingress does, lz4-compressed, to a
fresh 6-partition topic; the consumer then reads them all back. Records of 600 bytes are
about the size of a small webhook in its envelope.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import load_average, save  # noqa: E402


def java(libs: Path, main: str, *args: str) -> str:
    command = [shutil.which("java") or "java", "-Xmx512m", "-cp", str(libs / "*"), main, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{main} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200000)
    parser.add_argument("--record-size", type=int, default=600)
    args = parser.parse_args()

    from hookstream.broker import LocalKafka
    from hookstream.config import Settings
    from hookstream.kafka.admin import create_topics

    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    libs = broker.resolve()
    topic = f"bench.{uuid.uuid4().hex[:8]}.perf"
    settings = Settings.model_validate(
        {"kafka": {"bootstrap_servers": broker.bootstrap}, "topics": {"events": topic}}
    )
    create_topics(settings)
    produced = java(
        libs,
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", topic, "--num-records", str(args.records)),
        *("--record-size", str(args.record_size), "--throughput", "-1"),
        "--producer-props",
        f"bootstrap.servers={broker.bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        "compression.type=lz4",
        "linger.ms=5",
    )
    last = produced.strip().splitlines()[-1]
    found = re.search(
        r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max "
        r"latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th",
        last,
    )
    if found is None:
        raise SystemExit(f"cannot read the producer tool's summary: {last}")
    producer: dict[str, Any] = {
        "records_per_s": float(found.group(1)),
        "mb_per_s": float(found.group(2)),
        "p50_ms": int(found.group(5)),
        "p99_ms": int(found.group(7)),
    }
    consumed = java(
        libs,
        "org.apache.kafka.tools.ConsumerPerformance",
        *("--bootstrap-server", broker.bootstrap, "--topic", topic),
        *("--messages", str(args.records), "--group", f"bench-perf-{uuid.uuid4().hex[:6]}"),
        "--hide-header",
    )
    row = consumed.strip().splitlines()[-1].split(",")
    # start, end, MB, MB/sec, records, records/sec, rebalance ms, fetch ms, fetch MB/s, fetch/s
    consumer = {
        "records_per_s": float(row[5]),
        "mb_per_s": float(row[3]),
        "fetch_records_per_s": float(row[9]),
    }
    summary = {
        "command": "python bench/broker_perf.py " + " ".join(sys.argv[1:]),
        "records": args.records,
        "record_size": args.record_size,
        "producer": producer,
        "consumer": consumer,
        "load_average": load_average(),
    }
    save("broker_perf", summary)
    print(
        f"producer (acks=all, idempotent, lz4): {producer['records_per_s']:.0f} records/s "
        f"({producer['mb_per_s']:.1f} MB/s), p50 {producer['p50_ms']} ms, p99 {producer['p99_ms']} ms"
    )
    print(
        f"consumer: {consumer['records_per_s']:.0f} records/s ({consumer['mb_per_s']:.1f} MB/s, "
        f"{consumer['fetch_records_per_s']:.0f}/s excluding the group join); "
        f"load {summary['load_average']}"
    )


if __name__ == "__main__":
    main()
