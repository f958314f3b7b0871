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
