"""Memory of the worker's table databases: RSS of one process writing dedupe rows into
6 RocksDB databases (one per partition), opened with Faust's RocksDB defaults or with
the worker's table memory settings (`worker.table_write_buffer_bytes`,
`worker.table_block_cache_bytes`). Each side runs in a fresh process; prints the RSS
growth after each fifth of the rows.

    .venv/bin/python bench/table_memory.py --rows 1200000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import load_average, save  # noqa: E402

PARTITIONS = 6
VALUE = b'{"state":"done","at":1795568447.9610152,"delivered":["noop"],"origin":null}'


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fill(variant: str, rows: int) -> list[int]:
    """RSS growth (MiB) after each fifth of `rows` written, in this process."""
    from faust.stores.rocksdb import RocksDBOptions

    from hookstream.config import Settings
    from streams.app import table_memory

    settings = Settings()
    options: dict[str, int] = {"ttl": int(settings.dedupe.ttl)}
    if variant == "worker":
        options.update(table_memory(settings))
    rocksdb = RocksDBOptions(**options, use_rocksdict=True)
    with tempfile.TemporaryDirectory(prefix="hookstream-table-memory-") as tmp:
        dbs = [rocksdb.open(Path(tmp) / f"p{n}.db") for n in range(PARTITIONS)]
        base = rss_mib()
        marks = []
        for n in range(rows):
            dbs[n % PARTITIONS][f'"s\\u001fevt-{n:09d}"'.encode()] = VALUE
            if (n + 1) % max(1, rows // 5) == 0:
                marks.append(round(rss_mib() - base))
        for db in dbs:
            db.close()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--side", choices=["faust", "worker"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(" ".join(str(m) for m in fill(args.side, args.rows)))
        return
    found: dict[str, list[int]] = {}
    for side in ("faust", "worker"):
        done = subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--side", side],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        found[side] = [int(m) for m in done.stdout.split()]
        print(f"{side:>6}: RSS growth MiB after each fifth of {args.rows:,} rows: {found[side]}")
    save(
        "table_memory",
        {
            "command": "python bench/table_memory.py " + " ".join(sys.argv[1:]),
            "rows": args.rows,
            "partitions": PARTITIONS,
            "rss_growth_mib": found,
            "load_average": load_average(),
        },
    )


if __name__ == "__main__":
    main()
