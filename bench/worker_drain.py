"""Draining a backlog: the hookstream worker against a Quix Streams application and a plain
confluent-kafka loop doing the same dedupe, over the same records, alternated in one run.

    .venv/bin/python bench/worker_drain.py [--events 20000] [--rounds 2] [--profile PATH]

N envelopes (a share of them duplicates) are produced once to a fresh 6-partition topic.
Each round, every side reads the whole topic with a consumer group of its own:

- `hookstream`: a real `hookstream worker` process (decode, lanes, RocksDB dedupe table with
  its changelog, a no-op destination, the audit trail), default log level;
- `quix`: a Quix Streams application (its own virtualenv, `.hookstream/quix-venv`, made by
  `make bench`): decode the envelope, look the event id up in its RocksDB state and set it
  when new (state changelog on, as Quix Streams does by default), a no-op effect;
- `plain`: one confluent-kafka consumer, decode, rocksdict get/put, commit per batch.

The time is from the process start until the group's committed offsets reach the end of
the topic (start-up included, as a user waiting for a backlog sees it); the rate is N over
that time. Also reported: the rate from the first commit on (start-up excluded).
`--profile PATH` samples the hookstream worker with py-spy during one extra drain.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import event_body, free_port, load_average, ratios, save, spread  # noqa: E402

PARTITIONS = 6
QUIX_PYTHON = ROOT / ".hookstream" / "quix-venv" / "bin" / "python"

QUIX_APP = """
import sys
sys.path.insert(0, sys.argv[1])
from quixstreams import Application
from schemas import decode_envelope

bootstrap, topic_name, group, state_dir = sys.argv[2:6]
app = Application(
    broker_address=bootstrap,
    consumer_group=group,
    auto_offset_reset="earliest",
    state_dir=state_dir,
    commit_interval=1.0,
    loglevel="WARNING",
)
topic = app.topic(topic_name, value_deserializer="bytes", key_deserializer="bytes")

def effect(envelope):
    pass

def dedupe(value, state):
    envelope = decode_envelope(value)
    key = envelope.source + "/" + envelope.event_id
    if state.get(key) is None:
        state.set(key, 1)
        effect(envelope)
    return value

app.dataframe(topic).apply(dedupe, stateful=True)
app.run()
"""


def plain_loop(bootstrap: str, topic: str, group: str, state_dir: str, events: int) -> None:
    """The floor: one consumer, decode, rocksdict get/put, commit each batch."""
    from confluent_kafka import Consumer, KafkaError, KafkaException
    from rocksdict import Rdict

    from schemas import decode_envelope

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    db = Rdict(state_dir)
    seen = 0
    while seen < events:
        batch = consumer.consume(500, 1.0)
        for message in batch:
            if message.error():
                continue
            envelope = decode_envelope(message.value())
            key = f"{envelope.source}/{envelope.event_id}"
            if db.get(key) is None:
                db[key] = b"1"
            seen += 1
        if batch:
            consumer.commit(asynchronous=True)
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:  # the last batch's commit already carried everything
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            raise
    consumer.close()
    db.close()
    time.sleep(3600)  # the parent ends it once the commits are seen


def worker_config(bootstrap: str, data_dir: Path, topic: str, group: str) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"events": topic, "partitions": PARTITIONS},
        "worker": {
            "group_id": group,
            "port": free_port(),
            "host": "127.0.0.1",
            "standby_replicas": 0,
        },
        "sources": {
            "s": {"scheme": "standard", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
        },
        "destinations": {"noop": {"handler": "hookstream.sinks:discard"}},
        "data_dir": str(data_dir),
    }


def produce_backlog(settings: Any, events: int, duplicates: float) -> int:
    from hookstream.kafka.clients import producer_config
    from schemas import Envelope, encode_envelope

    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    distinct = max(1, int(events * (1 - duplicates)))
    for n in range(events):
        event = n % distinct  # a duplicate has its original's entity too
        envelope = Envelope(
            f"evt-{event}",
            "s",
            f"cus-{event % 500}",
            event_body(f"evt-{event}"),
            datetime.now(UTC),
            "bench",
            "application/json",
        )
        producer.produce(
            settings.topics.events, key=envelope.entity_id.encode(), value=encode_envelope(envelope)
        )
        if n % 10000 == 0:
            producer.poll(0)
    producer.flush(120)
    return distinct


def committed_total(admin: AdminClient, group: str, topic: str) -> int:
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    try:
        result = admin.list_consumer_group_offsets(request)[group].result()
    except Exception:
        return 0
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


class Side:
    """One drain: a process reading the topic with a fresh group until it is all committed."""

    def __init__(
        self, kind: str, tmp: Path, bootstrap: str, topic: str, other: Path | None = None
    ) -> None:
        self.kind = kind
        self.other = other  # the checkout the "other" side's worker runs from
        self.group = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        self.dir = tmp / self.group
        self.dir.mkdir()
        self.bootstrap = bootstrap
        self.topic = topic

    def command(self, events: int) -> list[str]:
        if self.kind in ("hookstream", "other"):
            config = self.dir / "hookstream.yaml"
            data = worker_config(self.bootstrap, self.dir / "data", self.topic, self.group)
            config.write_text(yaml.safe_dump(data))
            return [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(config)]
        if self.kind == "quix":
            script = self.dir / "quix_app.py"
            script.write_text(QUIX_APP)
            state = str(self.dir / "state")
            return [
                str(QUIX_PYTHON),
                str(script),
                str(ROOT),
                self.bootstrap,
                self.topic,
                self.group,
                state,
            ]
        state = str(self.dir / "rocksdb")
        args = [self.bootstrap, self.topic, self.group, state, str(events)]
        return [sys.executable, __file__, "--plain", *args]

    def drain(self, events: int, on_start: Any = None) -> dict[str, Any]:
        command = self.command(events)
        cwd = ROOT
        if self.other is not None and self.kind in ("hookstream", "other"):
            # The control topic is named after the events topic, which both sides share:
            # each starts with none, so neither reads the other's status records.
            control = AdminClient({"bootstrap.servers": self.bootstrap})
            for future in control.delete_topics([f"{self.topic}.control"]).values():
                with contextlib.suppress(Exception):
                    future.result()
            time.sleep(2)
        if self.kind == "hookstream":
            from hookstream.config import load_settings
            from hookstream.kafka.admin import create_topics

            create_topics(load_settings(Path(command[-1]), environ={}))
        elif self.kind == "other":  # the same worker from another checkout, its own topics
            assert self.other is not None
            cwd = self.other
            topics = [sys.executable, "-m", "hookstream.cli", "topics", "create"]
            subprocess.run([*topics, "--config", command[-1]], cwd=cwd, check=True)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        log = (self.dir / "out.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if on_start is not None:
            on_start(process.pid)
        first: tuple[float, int] | None = None
        try:
            deadline = started + 1800
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited with {process.returncode}: {log.name}")
                done = committed_total(admin, self.group, self.topic)
                now = time.monotonic()
                if first is None and done > 0:
                    first = (now, done)
                if done >= events:
                    break
                time.sleep(0.1)
            else:
                raise TimeoutError(f"{self.kind} did not drain the backlog in 30 minutes")
        finally:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        assert first is not None
        elapsed = now - started
        steady = (events - first[1]) / max(1e-6, now - first[0]) if now > first[0] else 0.0
        return {
            "seconds": elapsed,
            "rate": events / elapsed,
            "rate_after_first_commit": steady,
            "startup_s": first[0] - started,
            "load": load_average(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sides", default="hookstream,quix,plain")
    parser.add_argument("--profile", type=Path)
    parser.add_argument(
        "--other",
        type=Path,
        help="also drain with the worker of another checkout (e.g. an older commit)",
    )
    parser.add_argument("--plain", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        bootstrap, topic, group, state, events = args.plain
        plain_loop(bootstrap, topic, group, state, int(events))
        return

    from hookstream.broker import LocalKafka
    from hookstream.config import load_settings
    from hookstream.kafka.admin import create_topics

    sides = args.sides.split(",")
    if args.other:
        sides.append("other")
    if "quix" in sides and not QUIX_PYTHON.exists():
        raise SystemExit(f"no Quix Streams virtualenv at {QUIX_PYTHON}: run `make bench-deps`")
    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="hookstream-bench-drain-"))  # kept: the logs are there
    topic = f"bench.{uuid.uuid4().hex[:8]}.events"
    config = tmp / "backlog.yaml"
    group = "bench-backlog"
    config.write_text(yaml.safe_dump(worker_config(broker.bootstrap, tmp / "d", topic, group)))
    settings = load_settings(config, environ={})
    create_topics(settings)
    distinct = produce_backlog(settings, args.events, args.duplicates)
    print(
        f"{args.events} records ({distinct} distinct ids) on {topic}; load {load_average()}; "
        f"logs in {tmp}",
        flush=True,
    )
    rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = sides if round_ % 2 == 0 else list(reversed(sides))
        for kind in order:
            result = Side(kind, tmp, broker.bootstrap, topic, args.other).drain(args.events)
            rounds[kind].append(result)
            print(
                f"round {round_ + 1} {kind:>10}: {result['seconds']:7.1f} s  "
                f"{result['rate']:8.0f} events/s  (after first commit {result['rate_after_first_commit']:8.0f}/s, "
                f"start-up {result['startup_s']:.1f} s)  load {result['load']}",
                flush=True,
            )
    if args.profile:
        from bench.ingress_http import summarise_profile

        raw = args.profile.with_suffix(".folded")
        spies: list[subprocess.Popen[bytes]] = []

        def spy(pid: int) -> None:
            py_spy = str(Path(sys.executable).parent / "py-spy")
            command = [py_spy, "record", "--pid", str(pid), "--duration", "20", "--rate", "100"]
            command += ["--format", "raw", "--output", str(raw), "--nonblocking"]
            # past start-up: sample the drain itself
            timer = threading.Timer(
                8, lambda: spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            )
            timer.start()
            timers.append(timer)

        timers: list[threading.Timer] = []

        result = Side("hookstream", tmp, broker.bootstrap, topic).drain(args.events, spy)
        for timer in timers:
            timer.join()
        for process in spies:
            process.wait(60)
        args.profile.write_text(summarise_profile(raw, top=40))
        print(f"profiled drain: {result['rate']:.0f} events/s; profile in {args.profile}")

    summary: dict[str, Any] = {
        "command": "python bench/worker_drain.py " + " ".join(sys.argv[1:]),
        "events": args.events,
        "distinct": distinct,
        "partitions": PARTITIONS,
        "rounds": rounds,
    }
    for kind in sides:
        summary[f"{kind}_rate"] = spread([r["rate"] for r in rounds[kind]])
        summary[f"{kind}_steady_rate"] = spread(
            [r["rate_after_first_commit"] for r in rounds[kind]]
        )
    ours = [r["rate"] for r in rounds.get("hookstream", [])]
    print()
    for peer, target in (("quix", 1.0), ("plain", 0.5)):
        if ours and peer in rounds:
            found = ratios(ours, [r["rate"] for r in rounds[peer]])
            summary[f"ratio_{peer}"] = found
            print(
                f"hookstream/{peer}: min {found['min']:.2f}x  median {found['median']:.2f}x  "
                f"max {found['max']:.2f}x  (target >= {target}x)"
            )
    if ours and "other" in rounds:
        found = ratios(ours, [r["rate"] for r in rounds["other"]])
        summary["ratio_other"] = found
        revision = subprocess.run(
            ["git", "-C", str(args.other), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=False,
        )
        summary["other"] = revision.stdout.strip()[:72] or "another checkout"
        summary["command"] = summary["command"].replace(str(args.other), "<checkout>")
        print(
            f"hookstream/{summary['other']}: min {found['min']:.2f}x  "
            f"median {found['median']:.2f}x  max {found['max']:.2f}x"
        )
    # A comparison with another checkout is kept beside the peers' figures, not over them.
    save("worker_drain_vs_other" if args.other else "worker_drain", summary)


if __name__ == "__main__":
    main()
