"""Verification cost per scheme, in µs per request, against baselines measured in the same run.

    .venv/bin/python bench/verify_signatures.py [--body-bytes N] [--secrets K] [--repeat R]

Each scheme verifies a request signed as its provider signs it (a ~1 KB JSON body by
default), through the same `build_verifier(...).verify(headers, body, now)` call the
ingress makes, with a case-insensitive header mapping like aiohttp's. Baselines: a bare
`hmac.compare_digest` of two precomputed 32-byte digests, and one HMAC-SHA256 of the body.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from multidict import CIMultiDict

from hookstream.config import SourceSettings
from hookstream.sources import build_verifier, sign_request

SCHEMES: dict[str, dict[str, Any]] = {
    "stripe": {"scheme": "stripe", "secrets": ["whsec_bench_stripe"]},
    "github": {"scheme": "github", "secrets": ["bench-github"]},
    "shopify": {"scheme": "shopify", "secrets": ["bench-shopify"]},
    "slack": {"scheme": "slack", "secrets": ["bench-slack"]},
    "standard": {"scheme": "standard", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "svix": {"scheme": "standard", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "hmac": {
        "scheme": "hmac",
        "secrets": ["bench-partner"],
        "header": "X-Signature",
        "prefix": "sha256=",
    },
}


def body_of(size: int) -> bytes:
    """A JSON event of about `size` bytes."""
    doc: dict[str, Any] = {"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}
    doc["data"]["object"]["customer"] = "cus_1"
    pad = max(0, size - len(json.dumps(doc)) - 12)
    doc["data"]["note"] = "x" * pad
    return json.dumps(doc).encode()


def per_call_us(call: Callable[[], object], repeat: int) -> float:
    """Best of `repeat` timeit runs, in µs per call (auto-ranged to ~0.2 s per run)."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def rotation_secrets(config: dict[str, Any], count: int) -> list[str]:
    """`count` secrets of the scheme's form; the request is signed with the last one."""
    first = str(config["secrets"][0])
    if config["scheme"] == "standard":
        others = [f"whsec_{base64.b64encode(bytes([n]) * 24).decode()}" for n in range(count - 1)]
    else:
        others = [f"{first}-{n}" for n in range(count - 1)]
    return [*others, first]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--secrets", type=int, default=1, help="secrets per source (rotation)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    body = body_of(args.body_bytes)
    now = time.time()
    a = hashlib.sha256(b"a").digest()
    b = bytes(a)
    baseline = per_call_us(lambda: hmac.compare_digest(a, b), args.repeat)
    raw_hmac = per_call_us(lambda: hmac.new(b"k", body, hashlib.sha256).digest(), args.repeat)

    rows = []
    for name, config in SCHEMES.items():
        secrets = rotation_secrets(config, args.secrets)
        signer = SourceSettings(**{**config, "secrets": secrets[-1:]})
        source = SourceSettings(**{**config, "secrets": secrets})
        headers = sign_request(signer, body, "evt_1", now, "invoice.paid")
        if name == "svix":
            headers = {k.replace("webhook-", "svix-"): v for k, v in headers.items()}
        request_headers = CIMultiDict(headers)
        verifier = build_verifier(source)
        verifier.verify(request_headers, body, now)  # it must verify before it is timed
        cost = per_call_us(partial(verifier.verify, request_headers, body, now), args.repeat)
        rows.append((name, cost))

    print(f"body {len(body)} bytes, {args.secrets} secret(s) per source, best of {args.repeat}")
    print(f"{'scheme':<10} {'µs/verify':>10} {'vs compare_digest':>17} {'vs one HMAC':>11}")
    print(f"{'(baseline)':<10} {baseline:>10.3f} {1.0:>17.1f} {baseline / raw_hmac:>11.2f}")
    print(f"{'(hmac)':<10} {raw_hmac:>10.3f} {raw_hmac / baseline:>17.1f} {1.0:>11.2f}")
    for name, cost in rows:
        print(f"{name:<10} {cost:>10.3f} {cost / baseline:>17.1f} {cost / raw_hmac:>11.2f}")


if __name__ == "__main__":
    main()
