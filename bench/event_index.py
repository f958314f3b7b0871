"""Event index vs topic scan: lookup by id and a filtered page at growing sizes.

Fills fresh topics with N events the way the pipeline leaves them (one events-topic
record and one audit record per event; 1 % also dead-lettered, 4 % never audited), grows
them 10k -> 100k -> 1M, and at each size measures, in the same run:

- index: the catch-up that takes it to the size (records/s), one catch-up with nothing new
  (what each CLI command pays before answering), `get(event_id)`, a filtered first page
  (state + source + type glob, 50 rows), its state counts, and the file size;
- scan: what `events show` did before the index: read the whole audit topic to find one
  event (`ops.audit.event_history`), and `dlq list` (read the whole DLQ topic).

The scan at the largest size is run once (`--scan-repeats` for the smaller ones); pass
`--scan-limit N` to skip scans above N events and extrapolate linearly from the last
measured size instead (said so in the output).

    .venv/bin/python bench/event_index.py                       # 10k, 100k, 1M
    .venv/bin/python bench/event_index.py --sizes 10000 100000  # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookstream.broker import LocalKafka  # noqa: E402
from hookstream.config import Settings, load_settings  # noqa: E402
from hookstream.core.dedupe import dedupe_key  # noqa: E402
from hookstream.core.headers import Attempt, RetryState, event_headers, retry_headers  # noqa: E402
from hookstream.kafka.admin import create_topics  # noqa: E402
from hookstream.kafka.clients import client_config, producer_config  # noqa: E402
from hookstream.kafka.topics import audit_topic, dlq_topic, topic_specs  # noqa: E402
from hookstream.ops.audit import event_history  # noqa: E402
from hookstream.ops.dlq import dead_letters  # noqa: E402
from hookstream.ops.index import EventFilter, EventIndex, catch_up  # noqa: E402
from schemas import Envelope, encode_envelope  # noqa: E402

SOURCES = ("stripe", "github", "partner")
TYPES = ("invoice.paid", "invoice.failed", "customer.created", "push", "order.created")


def event_id(n: int) -> str:
    return f"evt-{n:08d}"


def produce(settings: Settings, start: int, end: int, t0: float) -> None:
    """Events [start, end): the ingress's record, the worker's audit record, and for some
    a dead letter."""
    producer = Producer(
        producer_config(
            settings,
            **{
                "linger.ms": 50,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
            },
        )
    )
    send = producer.produce

    def produce_one(*args: object, **kwargs: object) -> None:
        while True:
            try:
                send(*args, **kwargs)
                return
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.2)

    body = json.dumps({"data": {"object": {"customer": "cus_x"}}, "pad": "x" * 200}).encode()
    audit = audit_topic(settings)
    for n in range(start, end):
        eid, source, kind = event_id(n), SOURCES[n % 3], TYPES[n % 5]
        entity = f"cus_{n % 10_000}"
        at = t0 + n * 0.01
        envelope = encode_envelope(
            Envelope(
                eid, source, entity, body, datetime.fromtimestamp(at, UTC), kind, "application/json"
            )
        )
        headers = event_headers(eid, source, kind)
        produce_one(settings.topics.events, key=entity.encode(), value=envelope, headers=headers)
        fate = n % 100
        if fate >= 96:
            pass  # accepted, never audited yet
        else:
            status, verdict = (
                (400, "permanent")
                if fate == 0
                else ((503, "retryable") if fate < 6 else (200, "delivered"))
            )
            attempt = {
                "kind": "attempt",
                "at": at + 0.005,
                "attempt": 1,
                "destination": "sink",
                "verdict": verdict,
                "status": status,
                "error": None if status == 200 else f"HTTP {status}",
                "duration_ms": 4.2,
            }
            last = (
                {
                    "kind": "dead_lettered",
                    "at": at + 0.006,
                    "reason": "permanent failure",
                    "attempts": 1,
                }
                if fate == 0
                else {"kind": "retry_scheduled", "at": at + 0.006, "tier": 0, "attempts": 1}
                if fate < 6
                else {"kind": "delivered", "at": at + 0.006, "attempts": 1}
            )
            received = {
                "kind": "received",
                "at": at + 0.001,
                "received_at": at,
                "event_type": kind,
                "entity_id": entity,
                "arrival": "new",
            }
            entry = {
                "event_id": eid,
                "source": source,
                "trace_id": f"{n:032x}",
                "steps": [received, attempt, last],
            }
            produce_one(
                audit,
                key=dedupe_key(source, eid).encode(),
                value=json.dumps(entry, separators=(",", ":")).encode(),
            )
            if fate == 0:
                state = RetryState(
                    1, 0.0, (Attempt(1, at, "sink", "permanent", 400, "HTTP 400", 4.2),)
                )
                produce_one(
                    dlq_topic(settings),
                    key=entity.encode(),
                    value=envelope,
                    headers=retry_headers(
                        headers, state, dead_lettered_at=at, reason="permanent failure"
                    ),
                )
        if n % 50_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise SystemExit("the broker did not take every record")


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median milliseconds of `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def measure_index(
    index: EventIndex, size: int, rng: random.Random, lookups: int
) -> dict[str, float]:
    """Milliseconds: get by id (median, p99), a filtered first page and tenth page, counts
    per state for one source, the DLQ list."""
    times = []
    for eid in [event_id(rng.randrange(size)) for _ in range(lookups)]:
        started = time.perf_counter()
        found = index.get(eid)
        times.append((time.perf_counter() - started) * 1000)
        assert found, eid
    times.sort()
    wanted = EventFilter(state="retrying", source="stripe", event_type="invoice.*")
    page_ms, page = timed(lambda: index.search(wanted, limit=50), 20)
    assert len(page.items) == 50, len(page.items)
    cursor = page.next_cursor
    for _ in range(8):
        cursor = index.search(wanted, limit=50, cursor=cursor).next_cursor
    page10_ms, _ = timed(lambda: index.search(wanted, limit=50, cursor=cursor), 20)
    counts_ms, _ = timed(lambda: index.counts(EventFilter(source="stripe")), 5)
    dlq_ms, dead = timed(index.dead_letters, 5)
    assert len(dead) == size // 100, len(dead)
    return {
        "lookup_ms": statistics.median(times),
        "lookup_p99": times[int(len(times) * 0.99) - 1],
        "page_ms": page_ms,
        "page10_ms": page10_ms,
        "counts_ms": counts_ms,
        "dlq_ms": dlq_ms,
    }


def measure_scan(settings: Settings, probe: str, repeats: int) -> tuple[float, float]:
    """Milliseconds of the topic scans the index replaces: `events show` and `dlq list`."""
    scan_ms, history = timed(lambda: event_history(settings, probe), repeats)
    assert history, "the scan found nothing"
    scan_dlq_ms, _ = timed(lambda: dead_letters(settings), repeats)
    return scan_ms, scan_dlq_ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--lookups", type=int, default=200, help="index lookups per size")
    parser.add_argument("--scan-repeats", type=int, default=3)
    parser.add_argument("--scan-limit", type=int, default=None, help="skip scans above this size")
    parser.add_argument("--bootstrap", default="localhost:9092")
    args = parser.parse_args()

    if args.bootstrap == "localhost:9092":
        LocalKafka(ROOT / ".hookstream" / "kafka").start()  # returns at once if one answers
    tag = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="hookstream-index-bench-"))
    config = workdir / "hookstream.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": args.bootstrap},
                "topics": {"events": f"bench.{tag}.events", "partitions": 6},
                "worker": {"group_id": f"bench-{tag}"},
                "data_dir": str(workdir),
            }
        )
    )
    settings = load_settings(config, environ={})
    create_topics(settings)
    index = EventIndex(workdir / "index.sqlite")
    rng = random.Random(7)
    t0 = time.time() - 30 * 86400
    rows = []
    produced = 0
    last_scan: tuple[int, float, float] | None = None
    try:
        for size in sorted(args.sizes):
            started = time.perf_counter()
            produce(settings, produced, size, t0)
            produce_s = time.perf_counter() - started
            added = size - produced
            produced = size
            done = catch_up(settings, index)
            idle_ms, _ = timed(lambda: catch_up(settings, index), 5)

            measured = measure_index(index, size, rng, args.lookups)
            scanned = args.scan_limit is None or size <= args.scan_limit
            if scanned:
                repeats = 1 if size == max(args.sizes) else args.scan_repeats
                scan_ms, scan_dlq_ms = measure_scan(settings, event_id(size // 2 + 7), repeats)
                last_scan = (size, scan_ms, scan_dlq_ms)
                note = ""
            else:
                assert last_scan is not None, "measure at least one scan"
                factor = size / last_scan[0]
                scan_ms, scan_dlq_ms = last_scan[1] * factor, last_scan[2] * factor
                note = f" (extrapolated linearly from {last_scan[0]:,})"
            lookup_ms, lookup_p99 = measured["lookup_ms"], measured["lookup_p99"]
            page_ms, page10_ms = measured["page_ms"], measured["page10_ms"]
            counts_ms, dlq_ms = measured["counts_ms"], measured["dlq_ms"]
            size_mb = sum(p.stat().st_size for p in workdir.glob("index.sqlite*")) / 1e6
            row = {
                "events": size,
                "produce_s": round(produce_s, 1),
                "catch_up_records": done.records,
                "catch_up_s": round(done.seconds, 1),
                "catch_up_records_per_s": round(done.records / done.seconds),
                "catch_up_idle_ms": round(idle_ms, 1),
                "index_lookup_ms_median": round(lookup_ms, 3),
                "index_lookup_ms_p99": round(lookup_p99, 3),
                "index_page_ms": round(page_ms, 3),
                "index_page10_ms": round(page10_ms, 3),
                "index_counts_ms": round(counts_ms, 1),
                "index_dlq_list_ms": round(dlq_ms, 1),
                "scan_lookup_ms": round(scan_ms, 1),
                "scan_dlq_list_ms": round(scan_dlq_ms, 1),
                "scan_note": note.strip(),
                "lookup_speedup": round(scan_ms / lookup_ms),
                "index_mb": round(size_mb, 1),
            }
            rows.append(row)
            print(
                f"{size:>9,} events (+{added:,}, produced in {produce_s:.1f}s): "
                f"catch-up {done.records:,} records in {done.seconds:.1f}s "
                f"({done.records / done.seconds:,.0f}/s), idle catch-up {idle_ms:.1f} ms | "
                f"index: get {lookup_ms:.3f} ms (p99 {lookup_p99:.3f}), page {page_ms:.2f} ms, "
                f"page 10 {page10_ms:.2f} ms, counts {counts_ms:.1f} ms, dlq list {dlq_ms:.1f} ms, "
                f"{size_mb:.0f} MB | scan: events show {scan_ms:,.0f} ms, dlq list "
                f"{scan_dlq_ms:,.0f} ms{note} | lookup {scan_ms / lookup_ms:,.0f}x faster",
                flush=True,
            )
    finally:
        index.close()
        admin = AdminClient(client_config(settings))
        for future in admin.delete_topics([s.name for s in topic_specs(settings)]).values():
            with contextlib.suppress(Exception):  # cleanup of our own bench topics
                future.result()
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
