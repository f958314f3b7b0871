"""Live checks of the deployment artifacts: the image, docker compose and Kubernetes.

They run against a Docker engine and a one-node cluster that `make e2e` starts
(tests/e2e/tooling), never against anything else on the machine. They need
root and minutes, so the default test run leaves them out; `make e2e` runs
them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLING = ROOT / "tests" / "e2e" / "tooling"
HOOKSTREAM = ROOT / ".venv" / "bin" / "hookstream"

T = TypeVar("T")


@pytest.fixture(autouse=True, scope="session")
def _engine_is_ours() -> None:
    host = os.environ.get("DOCKER_HOST", "")
    if "hookstream-e2e" not in host:
        pytest.fail("DOCKER_HOST is not the checks' own engine: run `make e2e`", pytrace=False)


def run(*args: str | Path, timeout: float = 120, check: bool = True, **kwargs: Any) -> str:
    """Run a command to completion; its stdout, or a failure that shows stderr."""
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=kwargs.pop("cwd", ROOT),
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(str(a) for a in args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result.stdout


def eventually(what: str, probe: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    """Poll until probe returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (AssertionError, OSError, ValueError, subprocess.SubprocessError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f": {last_error}" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(every)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One HTTP request; (status, body) for any status."""
    # Only http:// URLs the checks build themselves, to their own containers and pods.
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stripe_headers(secret: str, body: bytes, now: int | None = None) -> dict[str, str]:
    """Stripe's signature: HMAC-SHA256 of `t.body` keyed by the whole endpoint secret."""
    timestamp = int(time.time()) if now is None else now
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={mac}"}


def standard_headers(secret: str, event_id: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks: HMAC-SHA256 of `id.timestamp.body`, key = base64 after `whsec_`."""
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def jaeger_trace(query_url: str, trace_id: str) -> dict[str, Any] | None:
    """A trace from Jaeger's query API (`/api/traces/<id>`), or None while it is not there."""
    status, body = http("GET", f"{query_url}/api/traces/{trace_id}")
    if status != 200:
        return None
    data = json.loads(body).get("data") or []
    return data[0] if data else None


def span_services(trace: dict[str, Any]) -> dict[str, str]:
    """Each span's operation name -> the service that recorded it."""
    processes = {key: p["serviceName"] for key, p in trace["processes"].items()}
    return {span["operationName"]: processes[span["processID"]] for span in trace["spans"]}


def tool(name: str) -> str:
    """A command the checks need: the pinned one under .hookstream/bin first, then PATH."""
    pinned = ROOT / ".hookstream" / "bin" / name
    if pinned.is_file():
        return str(pinned)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make e2e`", pytrace=False)
    return found
