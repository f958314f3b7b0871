"""The ingress under hostile or unlucky senders: each test names a limit and fails without it.

The real ingress app and producer on the real broker (or, for the queue bound, on a port
where no broker answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookstream.config import Settings
from tests.conftest import HMAC_SECRET, free_port
from tests.integration.test_end_to_end import topic_record_count

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BODY_ID = {
    "byid": {
        "scheme": "hmac",
        "secrets": [HMAC_SECRET],
        "header": "X-Signature",
        "prefix": "sha256=",
        "event_id": "/id",
    }
}


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def raw_request(port: int, head: bytes, trickle: list[bytes], gap: float) -> bytes:
    """Send the head, then the body a piece per `gap` seconds, until an answer arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.read(4096))
    try:
        writer.write(head)
        for piece in trickle:
            done, _ = await asyncio.wait({answer}, timeout=gap)
            if done:
                break
            writer.write(piece)
        return await asyncio.wait_for(answer, 30)
    except OSError:
        return await asyncio.wait_for(answer, 30)
    finally:
        answer.cancel()
        writer.close()


async def test_an_event_id_with_cr_lf_is_refused_at_the_edge(
    make_settings: Callable[..., tuple[Settings, Path]],
    ingress_url: Callable[[Settings], Awaitable[str]],
) -> None:
    settings, _ = make_settings(sources=BODY_ID)
    url = await ingress_url(settings)
    body = json.dumps({"id": "evt_1\r\nX-Injected: 1"}).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/webhooks/byid", data=body, headers=signed(body)) as answer,
    ):
        status, problem = answer.status, await answer.json(content_type=None)
    assert status == 400
    assert problem["reason"] == "bad_event_id"
    assert topic_record_count(settings) == 0


async def test_a_body_that_trickles_in_is_cut_off_with_408(
    make_settings: Callable[..., tuple[Settings, Path]],
    ingress_url: Callable[[Settings], Awaitable[str]],
) -> None:
    settings, _ = make_settings(sources=BODY_ID, ingress={"body_timeout": "2s"})
    url = await ingress_url(settings)
    port = int(url.rsplit(":", 1)[1])
    head = (
        b"POST /webhooks/byid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Signature: sha256=00\r\nContent-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    answer = await raw_request(port, head, [b"{"] * 60, gap=0.5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < 10


async def test_requests_past_the_concurrency_cap_get_503_with_retry_after(
    make_settings: Callable[..., tuple[Settings, Path]],
    ingress_url: Callable[[Settings], Awaitable[str]],
) -> None:
    settings, _ = make_settings(
        sources=BODY_ID, ingress={"body_timeout": "20s", "max_concurrent_requests": 2}
    )
    url = await ingress_url(settings)
    port = int(url.rsplit(":", 1)[1])
    head = (
        b"POST /webhooks/byid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Signature: sha256=00\r\nContent-Length: 100\r\n\r\n"
    )
    holders = [asyncio.create_task(raw_request(port, head, [b"{"] * 6, gap=0.5)) for _ in range(2)]
    await asyncio.sleep(1.0)
    body = json.dumps({"id": "evt_cap"}).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/webhooks/byid", data=body, headers=signed(body)) as answer,
    ):
        status, retry_after = answer.status, answer.headers.get("Retry-After")
    for holder in holders:
        holder.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    assert status == 503
    assert retry_after == str(settings.ingress.retry_after)


async def test_a_stalled_broker_fills_a_bounded_queue_and_gets_503_not_memory(
    make_settings: Callable[..., tuple[Settings, Path]],
    ingress_url: Callable[[Settings], Awaitable[str]],
) -> None:
    settings, _ = make_settings(sources=BODY_ID)
    nowhere = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}
            ),
            "ingress": settings.ingress.model_copy(
                update={"producer_queue_bytes": 1024 * 1024, "produce_timeout": 5.0}
            ),
        }
    )
    url = await ingress_url(nowhere)
    payload = "x" * 300_000

    async def post(http: aiohttp.ClientSession, n: int) -> tuple[int, Any]:
        body = json.dumps({"id": f"evt_{n}", "pad": payload}).encode()
        async with http.post(f"{url}/webhooks/byid", data=body, headers=signed(body)) as answer:
            return answer.status, await answer.json(content_type=None)

    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.wait_for(
            asyncio.gather(*(post(http, n) for n in range(8)), return_exceptions=True), 40
        )
    full = [
        a
        for a in answers
        if isinstance(a, tuple) and a[0] == 503 and "queue is full" in a[1]["detail"]
    ]
    assert full, answers
    assert time.monotonic() - started < 40
