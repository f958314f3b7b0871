"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`` over ``{t}.{body}``.

The key is the endpoint secret as written (``whsec_...``), UTF-8, not decoded. While
a secret is being rolled Stripe sends one v1 per active secret; any may match.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from hookstream.core.signatures.base import (
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.parsing import check_window, header_text, parse_stripe_signature

STRIPE_HEADER = "Stripe-Signature"


def sign_stripe(key: bytes, timestamp: int, body: bytes) -> str:
    """The ``Stripe-Signature`` value Stripe would send for one secret."""
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True, slots=True)
class StripeVerifier:
    """Stripe's scheme, with a past and a future tolerance on ``t``."""

    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, STRIPE_HEADER)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {STRIPE_HEADER} is required")
        timestamp, offered = parse_stripe_signature(raw)
        check_window(timestamp, now, self.tolerance)
        content = f"{timestamp}.".encode() + body
        expected = [
            hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)
        ]
        if not any_matches(expected, offered):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(float(timestamp))
