"""Two pipelines (different groups and topics) on one data dir keep their state apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookstream.config import Settings
from tests.integration.conftest import Sink
from tests.integration.test_end_to_end import event_body, post_signed

pytestmark = pytest.mark.integration


async def test_two_pipelines_share_a_data_dir_without_sharing_dedupe_state(
    make_settings: Callable[..., tuple[Settings, Path]],
    worker_process: Callable[..., Any],
    ingress_url: Callable[[Settings], Awaitable[str]],
    sink: Sink,
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared-data"
    shared.mkdir()
    destinations = {"sink": {"url": sink.url, "sources": ["std"]}}
    first, first_config = make_settings(data_dir=str(shared), destinations=destinations)
    second, second_config = make_settings(data_dir=str(shared), destinations=destinations)
    assert first.worker.group_id != second.worker.group_id

    async with aiohttp.ClientSession() as session:
        # The first pipeline writes dedupe state (and changelog offsets) into the data dir.
        worker = worker_process(first, first_config)
        base = await ingress_url(first)
        for n in range(12):
            body = event_body(f"evt_{n}", f"cus_{n % 3}", n)
            assert await post_signed(session, base, first, "std", f"evt_{n}", body) == 202
        await sink.wait_for(12, timeout=60)
        worker.stop()

        # The second starts on the same data dir: it must neither crash on the first's
        # offsets nor take the first's events as its own duplicates.
        worker_process(second, second_config)
        base = await ingress_url(second)
        for n in (0, 1, 2):
            body = event_body(f"evt_{n}", f"cus_{n % 3}", n)
            assert await post_signed(session, base, second, "std", f"evt_{n}", body) == 202
        await sink.wait_for_total(15, timeout=60)

    assert sorted(sink.ids()[12:]) == ["evt_0", "evt_1", "evt_2"]
    assert (shared / "worker" / first.worker.group_id).is_dir()
    assert (shared / "worker" / second.worker.group_id).is_dir()
