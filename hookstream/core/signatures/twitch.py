"""Twitch EventSub: ``Twitch-Eventsub-Message-Signature: sha256=<hex>``, HMAC-SHA256 over
``{Message-Id}{Message-Timestamp}{body}``. The timestamp is RFC 3339 (nanoseconds and
``Z``), and the message id is what a redelivery repeats.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
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
from hookstream.core.signatures.parsing import check_window, header_text, parse_prefixed

MESSAGE_ID = "Twitch-Eventsub-Message-Id"
MESSAGE_TIMESTAMP = "Twitch-Eventsub-Message-Timestamp"
MESSAGE_SIGNATURE = "Twitch-Eventsub-Message-Signature"
MESSAGE_TYPE = "Twitch-Eventsub-Message-Type"
SUBSCRIPTION_TYPE = "Twitch-Eventsub-Subscription-Type"
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_rfc3339(raw: str | None) -> float:
    """An RFC 3339 time into epoch seconds; MISSING/MALFORMED_TIMESTAMP otherwise."""
    if not raw:
        raise VerificationError(Reason.MISSING_TIMESTAMP, f"header {MESSAGE_TIMESTAMP} is required")
    match = _RFC3339.fullmatch(raw)
    if match is None:
        raise VerificationError(Reason.MALFORMED_TIMESTAMP, "timestamp is not RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise VerificationError(Reason.MALFORMED_TIMESTAMP, "timestamp is not a valid time")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction = float(match.group(7) or 0.0)
    zone = match.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds + fraction


def twitch_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The signature header value Twitch sends."""
    content = (message_id + timestamp).encode() + body
    return "sha256=" + hmac.new(key, content, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class TwitchVerifier:
    """EventSub's id + timestamp + body HMAC, with the timestamp inside the tolerance."""

    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, MESSAGE_SIGNATURE)
        message_id = header_text(headers, MESSAGE_ID)
        if raw is None or message_id is None:
            raise VerificationError(
                Reason.MISSING_SIGNATURE, f"{MESSAGE_ID} and {MESSAGE_SIGNATURE} are required"
            )
        offered = parse_prefixed(raw, "sha256=", "hex")
        stamp = header_text(headers, MESSAGE_TIMESTAMP)
        timestamp = parse_rfc3339(stamp)
        check_window(timestamp, now, self.tolerance)
        content = (message_id + (stamp or "")).encode("utf-8", "surrogatepass") + body
        expected = [
            hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)
        ]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)
