"""Verification cost per scheme, in µs per request, against baselines measured in the same run.

    .venv/bin/python bench/verify_signatures.py [--body-bytes N] [--secrets K] [--repeat R]

Each scheme verifies a request signed as its provider signs it (a ~1 KB body by
default, in the provider's shape), through the same `build_verifier(...).verify(headers,
body, now, query)` call the ingress makes, with a case-insensitive header mapping like
aiohttp's. Public-key schemes (discord: Ed25519, sendgrid: ECDSA P-256) verify with keys
made for the run. Baselines: a bare `hmac.compare_digest` of two precomputed 32-byte
digests, one HMAC-SHA256 of the body, and one bare Ed25519 and ECDSA P-256 verification.
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

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from multidict import CIMultiDict

from hookstream.config import SourceSettings
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.sources import build_verifier, sign_payload

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
    "twilio": {
        "scheme": "twilio",
        "secrets": ["bench-twilio"],
        "public_url": "https://h.example/t",
    },
    "twilio-form": {
        "scheme": "twilio",
        "secrets": ["bench-twilio"],
        "public_url": "https://h.example/t",
    },
    "square": {
        "scheme": "square",
        "secrets": ["bench-square"],
        "public_url": "https://h.example/s",
    },
    "discord": {"scheme": "discord"},
    "sendgrid": {"scheme": "sendgrid"},
    "mailgun": {"scheme": "mailgun", "secrets": ["bench-mailgun"]},
    "zoom": {"scheme": "zoom", "secrets": ["bench-zoom"]},
    "twitch": {"scheme": "twitch", "secrets": ["bench-twitch"]},
    "paddle": {"scheme": "paddle", "secrets": ["bench-paddle"]},
    "linear": {"scheme": "linear", "secrets": ["bench-linear"]},
    "intercom": {"scheme": "intercom", "secrets": ["bench-intercom"]},
    "bitbucket": {"scheme": "bitbucket", "secrets": ["bench-bitbucket"]},
    "gitlab": {"scheme": "gitlab", "secrets": ["bench-gitlab"]},
    "adyen": {"scheme": "adyen", "secrets": ["00112233445566778899aabbccddeeff"]},
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


def provider_body(name: str, size: int) -> bytes:
    """A body of about `size` bytes in the shape the scheme's provider sends."""
    if name == "twilio-form":
        return b"MessageSid=SM1&MessageStatus=delivered&Body=" + b"x" * max(0, size - 45)
    if name == "adyen":
        item = {
            "pspReference": "7914073381342284",
            "merchantAccountCode": "Bench",
            "merchantReference": "x" * max(0, size - 250),
            "amount": {"value": 1130, "currency": "EUR"},
            "eventCode": "AUTHORISATION",
            "success": "true",
        }
        doc = {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        return json.dumps(doc).encode()
    return body_of(size)


def rotation_config(name: str, config: dict[str, Any], count: int) -> tuple[dict, dict]:
    """(verifying config with `count` secrets or keys, signing config with the last)."""
    if config["scheme"] in ("discord", "sendgrid"):
        pairs = [new_keypair(config["scheme"]) for _ in range(count)]
        verifying = {**config, "public_keys": [public for public, _ in pairs]}
        return verifying, {**config, "public_keys": [pairs[-1][0]], "signing_key": pairs[-1][1]}
    first = str(config["secrets"][0])
    if config["scheme"] == "standard":
        others = [f"whsec_{base64.b64encode(bytes([n]) * 24).decode()}" for n in range(count - 1)]
    elif config["scheme"] == "adyen":
        others = [bytes([n]).hex() * 16 for n in range(count - 1)]
    else:
        others = [f"{first}-{n}" for n in range(count - 1)]
    return {**config, "secrets": [*others, first]}, {**config, "secrets": [first]}


def primitive_costs(body: bytes, repeat: int) -> list[tuple[str, float]]:
    """One bare Ed25519 and one ECDSA P-256 verification of the body: the floor under
    the public-key schemes."""
    ed_key = Ed25519PrivateKey.generate()
    ed_signature = ed_key.sign(body)
    ed_public = ed_key.public_key()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_signature = ec_key.sign(body, ec.ECDSA(hashes.SHA256()))
    ec_public = ec_key.public_key()
    return [
        ("(ed25519)", per_call_us(lambda: ed_public.verify(ed_signature, body), repeat)),
        (
            "(p256)",
            per_call_us(
                lambda: ec_public.verify(ec_signature, body, ec.ECDSA(hashes.SHA256())), repeat
            ),
        ),
    ]


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
    primitives = primitive_costs(body, args.repeat)

    rows = []
    for name, config in SCHEMES.items():
        verifying, signing = rotation_config(name, config, args.secrets)
        signer = SourceSettings(**signing)
        source = SourceSettings(**verifying)
        signed = sign_payload(
            signer, provider_body(name, args.body_bytes), "evt_1", now, "invoice.paid"
        )
        headers = signed.headers
        if name == "svix":
            headers = {k.replace("webhook-", "svix-"): v for k, v in headers.items()}
        request_headers = CIMultiDict(headers)
        verifier = build_verifier(source)
        # it must verify before it is timed
        verifier.verify(request_headers, signed.body, now, signed.query)
        call = partial(verifier.verify, request_headers, signed.body, now, signed.query)
        rows.append((name, per_call_us(call, args.repeat)))

    print(f"body {len(body)} bytes, {args.secrets} secret(s) per source, best of {args.repeat}")
    print(f"{'scheme':<12} {'µs/verify':>10} {'vs compare_digest':>17} {'vs one HMAC':>11}")
    print(f"{'(baseline)':<12} {baseline:>10.3f} {1.0:>17.1f} {baseline / raw_hmac:>11.2f}")
    print(f"{'(hmac)':<12} {raw_hmac:>10.3f} {raw_hmac / baseline:>17.1f} {1.0:>11.2f}")
    for label, cost in primitives:
        print(f"{label:<12} {cost:>10.3f} {cost / baseline:>17.1f} {cost / raw_hmac:>11.2f}")
    for name, cost in rows:
        print(f"{name:<12} {cost:>10.3f} {cost / baseline:>17.1f} {cost / raw_hmac:>11.2f}")


if __name__ == "__main__":
    main()
