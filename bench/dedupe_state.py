"""The worker's dedupe state: write and lookup cost, disk used, and the space given back
after expiry, at growing numbers of ids (real RocksDB through rocksdict).

    .venv/bin/python bench/dedupe_state.py [--ids 10000,100000,1000000] [--lookups 20000]
                                           [--expiry-ttl 2]

The database is opened the way the worker opens each of its dedupe shards: with the
options object `create_worker_app` builds for the `dedupe` table (its TTL the dedupe
window, `dedupe.ttl`), and its rows are encoded by the table's own serializers: the
(source, event id) key and the `DedupeRecord` of a delivered event. For each size:

- fill: one put per id, as the table writes a row; µs per id (encoding not included);
- flush and compact, then the disk used: every file in the database's directory;
- close and reopen (nothing left in the memtable, a cold block cache), then `--lookups`
  lookups of ids present (hit) and as many of ids never written (miss: a new event, the
  common case), interleaved in random order; µs per lookup, p50 / p99 / mean;
- expiry: the same options with a TTL of `--expiry-ttl` seconds (`dedupe.ttl`); fill,
  flush, disk; wait past the TTL, compact, disk again, and check that the first and last
  ids written are gone.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import load_average, save  # noqa: E402
from hookstream.config import Settings  # noqa: E402
from hookstream.core.dedupe import DedupeRecord, DedupeState, dedupe_key  # noqa: E402
from streams.app import create_worker_app  # noqa: E402

SOURCES = ("stripe", "github", "partner")
ALPHABET = string.ascii_letters + string.digits
CHUNK = 10_000


class DedupeTable:
    """The worker's dedupe table without a broker: its RocksDB options and row encoding."""

    def __init__(self, ttl_seconds: float, data_dir: Path) -> None:
        settings = Settings.model_validate(
            {"data_dir": str(data_dir), "dedupe": {"ttl": ttl_seconds}}
        )
        app = create_worker_app(settings, follow_control=False)
        table: Any = app.tables["dedupe"]
        self.options: Any = table.data.rocksdb_options
        self.ttl: int = self.options.ttl
        self._serializers = app.serializers
        self._table = table

    def key(self, source: str, event_id: str) -> bytes:
        return _encoded(
            self._serializers.dumps_key(
                self._table.key_type,
                dedupe_key(source, event_id),
                serializer=self._table.key_serializer,
            )
        )

    def value(self, record: DedupeRecord) -> bytes:
        return _encoded(
            self._serializers.dumps_value(
                self._table.value_type, record.to_json(), serializer=self._table.value_serializer
            )
        )

    def open(self, path: Path) -> Any:
        return self.options.open(path)


def _encoded(data: bytes | None) -> bytes:
    if data is None:
        raise TypeError("the table encoded a row as nothing")
    return data


def event_ids(seed: int, count: int) -> Iterator[tuple[str, str]]:
    """(source, event id) pairs: Stripe-like ids, `evt_` and 24 random base62 characters."""
    rng = random.Random(seed)
    for n in range(count):
        yield SOURCES[n % len(SOURCES)], "evt_" + "".join(rng.choices(ALPHABET, k=24))


def delivered(at: float) -> DedupeRecord:
    """The row of an event every destination has."""
    return DedupeRecord(DedupeState.DONE, at, ("billing",))


def disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sst_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.sst"))


def fill(table: DedupeTable, db: Any, ids: int, seed: int) -> tuple[float, list[bytes]]:
    """Put `ids` rows; the seconds spent in puts, and the keys written."""
    keys: list[bytes] = []
    spent = 0.0
    pairs = event_ids(seed, ids)
    put = db.put
    while len(keys) < ids:
        chunk = [
            (table.key(source, event_id), table.value(delivered(time.time())))
            for source, event_id in islice(pairs, min(CHUNK, ids - len(keys)))
        ]
        started = time.perf_counter()
        for key, value in chunk:
            put(key, value)
        spent += time.perf_counter() - started
        keys += [key for key, _ in chunk]
    return spent, keys


def lookups(
    table: DedupeTable, db: Any, present: list[bytes], count: int, seed: int
) -> dict[str, dict[str, float]]:
    """µs per `get`: `count` ids present and `count` never written, interleaved."""
    rng = random.Random(seed)
    hits = [(key, True) for key in rng.sample(present, min(count, len(present)))]
    misses = [(table.key(s, e), False) for s, e in event_ids(seed + 1, count)]
    probes = hits + misses
    rng.shuffle(probes)
    found: dict[bool, list[float]] = {True: [], False: []}
    get = db.get
    clock = time.perf_counter_ns
    for key, hit in probes:
        started = clock()
        value = get(key)
        elapsed = clock() - started
        if (value is not None) != hit:
            raise SystemExit(f"lookup of {key!r}: expected {'a row' if hit else 'nothing'}")
        found[hit].append(elapsed / 1000)
    return {"hit": _summary(found[True]), "miss": _summary(found[False])}


def _summary(micros: list[float]) -> dict[str, float]:
    micros.sort()
    return {
        "p50": statistics.median(micros),
        "p99": micros[int(len(micros) * 0.99) - 1],
        "mean": statistics.fmean(micros),
    }


def measure(table: DedupeTable, path: Path, ids: int, count: int) -> dict[str, Any]:
    db = table.open(path)
    seconds, keys = fill(table, db, ids, seed=ids)
    db.flush()
    db.compact_range(None, None)
    on_disk = disk(path)
    sst = sst_bytes(path)
    db.close()
    db = table.open(path)
    found = lookups(table, db, keys, count, seed=ids + 7)
    db.close()
    return {
        "ids": ids,
        "write_us": seconds / ids * 1e6,
        "lookup_hit_us": found["hit"],
        "lookup_miss_us": found["miss"],
        "lookups": count,
        "disk_bytes": on_disk,
        "sst_bytes": sst,
        "bytes_per_id": on_disk / ids,
        "load": load_average(),
    }


def expiry(table: DedupeTable, path: Path, ids: int) -> dict[str, Any]:
    db = table.open(path)
    started = time.monotonic()
    _, keys = fill(table, db, ids, seed=ids + 13)
    db.flush()
    filled = time.monotonic()
    before = disk(path)
    time.sleep(max(0.0, table.ttl + 1.0 - (time.monotonic() - filled)))
    readable = db.get(keys[0]) is not None
    db.compact_range(None, None)
    after = disk(path)
    after_sst = sst_bytes(path)
    gone = db.get(keys[0]) is None and db.get(keys[-1]) is None
    db.close()
    return {
        "ids": ids,
        "ttl_s": table.ttl,
        "fill_s": filled - started,
        "before_bytes": before,
        "after_bytes": after,
        "after_sst_bytes": after_sst,
        "given_back": 1 - after / before,
        "readable_past_ttl_before_compaction": readable,
        "expired_ids_gone": gone,
        "load": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", default="10000,100000,1000000", help="comma-separated sizes")
    parser.add_argument("--lookups", type=int, default=20_000, help="hits and misses, each")
    parser.add_argument("--expiry-ttl", type=float, default=2.0, help="seconds")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.ids.split(","))

    rows, expired = [], []
    with tempfile.TemporaryDirectory(prefix="hookstream-bench-dedupe-") as tmp:
        work = Path(tmp)
        window = DedupeTable(Settings().dedupe.ttl, work / "app-window")
        short = DedupeTable(args.expiry_ttl, work / "app-short")
        for ids in sizes:
            path = work / f"window-{ids}"
            row = measure(window, path, ids, args.lookups)
            shutil.rmtree(path)
            rows.append(row)
            hit, miss = row["lookup_hit_us"], row["lookup_miss_us"]
            print(
                f"{ids:>9,} ids: write {row['write_us']:.2f} µs/id | lookup hit p50 "
                f"{hit['p50']:.2f} p99 {hit['p99']:.2f} mean {hit['mean']:.2f} µs | miss p50 "
                f"{miss['p50']:.2f} p99 {miss['p99']:.2f} mean {miss['mean']:.2f} µs | disk "
                f"{row['disk_bytes']:,} bytes ({row['bytes_per_id']:.1f}/id, sst "
                f"{row['sst_bytes']:,})  load {row['load']}",
                flush=True,
            )
            path = work / f"short-{ids}"
            gone = expiry(short, path, ids)
            shutil.rmtree(path)
            expired.append(gone)
            print(
                f"{'':>9}  expiry (ttl {gone['ttl_s']} s, filled in {gone['fill_s']:.1f} s): "
                f"{gone['before_bytes']:,} -> {gone['after_bytes']:,} bytes, "
                f"{gone['given_back']:.0%} given back, readable past the ttl before "
                f"compaction: {'yes' if gone['readable_past_ttl_before_compaction'] else 'no'}, "
                f"gone after: {'yes' if gone['expired_ids_gone'] else 'no'}  load {gone['load']}",
                flush=True,
            )
    save(
        "dedupe_state",
        {
            "command": "python bench/dedupe_state.py " + " ".join(sys.argv[1:]),
            "window_ttl_s": window.ttl,
            "expiry_ttl_s": short.ttl,
            "results": rows,
            "expiry": expired,
        },
    )


if __name__ == "__main__":
    main()
