"""What the benchmarks share: ports, load average, ratio statistics, results on disk."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".hookstream" / "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> str:
    """The 1/5/15-minute load average, to quote beside every figure (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def event_body(event_id: str, size: int = 450) -> bytes:
    """A JSON webhook body of about `size` bytes, distinct per event id: sources that sign
    only the body are also deduped on its digest, so equal bodies would be duplicates."""
    head = f'{{"id":"{event_id}","type":"bench","data":{{"customer":"c"}}}}'.encode()
    return head + b" " * max(0, size - len(head))


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of a list of per-round figures."""
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


def ratios(ours: Sequence[float], theirs: Sequence[float]) -> dict[str, float]:
    """Per-round ratios ours/theirs (rounds paired as run), as min / median / max."""
    return spread([a / b for a, b in zip(ours, theirs, strict=True) if b])


def save(name: str, data: dict[str, Any]) -> Path:
    """Keep one benchmark's results for `bench/report.py`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    path.write_text(json.dumps(data, indent=2))
    return path


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def serve_in_thread(
    port: int, receive: Callable[[Any], Awaitable[Any]], timeout: float = 10.0
) -> None:
    """A destination: `POST /hooks` on 127.0.0.1:port answered by `receive`, on an event
    loop in a daemon thread of its own. Returns once it listens."""
    from aiohttp import web

    ready = threading.Event()

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/hooks", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(run()), daemon=True).start()
    ready.wait(timeout)
