"""Dedupe state expires on disk: the table's RocksDB is opened with the dedupe window as
its TTL, and compaction drops what is older (real RocksDB through rocksdict)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hookstream.config import Settings
from streams.app import create_worker_app

pytestmark = pytest.mark.timeout(60)


def disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_the_dedupe_table_expires_its_rows_on_disk(tmp_path: Path) -> None:
    app = create_worker_app(Settings(data_dir=str(tmp_path), dedupe={"ttl": "1s"}))
    store = app.tables["dedupe"].data
    assert store.rocksdb_options.ttl == 1
    db = store.rocksdb_options.open(tmp_path / "probe")
    for n in range(20_000):
        db[f"stripe\x1fevt_{n}".encode()] = b'{"state":"done","at":0,"delivered":[]}'
    db.flush()
    written = disk(tmp_path / "probe")
    time.sleep(2.5)
    db.compact_range(None, None)
    assert db.get(b"stripe\x1fevt_1") is None
    assert disk(tmp_path / "probe") < written / 4
    db.close()


def test_every_table_bounds_the_memory_of_its_rocksdb(tmp_path: Path) -> None:
    """RocksDB's defaults (64 MiB write buffers, three of them, a 2 GiB block cache) per
    table partition let a worker's memory grow for hours; the worker's settings bound it."""
    settings = Settings(
        data_dir=str(tmp_path),
        worker={"table_write_buffer_bytes": 1 << 20, "table_block_cache_bytes": 1 << 21},
    )
    app = create_worker_app(settings, follow_control=False)
    for name in ("dedupe", "lanes", "parked"):
        options = app.tables[name].data.rocksdb_options
        assert options.write_buffer_size == 1 << 20, name
        assert options.max_write_buffer_number == 2, name
        assert options.block_cache_size == 1 << 21, name
    assert app.tables["dedupe"].data.rocksdb_options.ttl == int(settings.dedupe.ttl)
