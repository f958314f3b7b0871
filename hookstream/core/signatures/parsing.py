"""Header parsers: text in, typed values out, or VerificationError; nothing else escapes.

Header values arrive as text that may hold anything a client put on the wire
(aiohttp keeps undecodable bytes as surrogates), so every parser here is total.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from hookstream.core.signatures.base import Reason, VerificationError

# Unix seconds, ASCII digits only: int() would also take "1_000", "+5", " 5" and
# non-ASCII digits, and a sender's timestamp is signed as the exact text it sent.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]*")


def header_text(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value if present and non-empty; MALFORMED if it is not valid UTF-8."""
    value = headers.get(name)
    if not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError(
            Reason.MALFORMED_SIGNATURE, f"header {name} is not valid UTF-8"
        ) from None
    return value


def parse_timestamp(raw: str | None) -> int:
    """A signed Unix timestamp in seconds, exactly as the sender wrote it."""
    if raw is None or raw == "":
        raise VerificationError(Reason.MISSING_TIMESTAMP)
    if _TIMESTAMP.fullmatch(raw) is None:
        raise VerificationError(Reason.MALFORMED_TIMESTAMP, "timestamp is not Unix seconds")
    return int(raw)


def check_window(timestamp: float, now: float, tolerance: float) -> float:
    """Refuse a signed time outside `now ± tolerance`; return it otherwise."""
    if timestamp < now - tolerance:
        raise VerificationError(Reason.STALE_TIMESTAMP, "timestamp is older than the tolerance")
    if timestamp > now + tolerance:
        raise VerificationError(Reason.FUTURE_TIMESTAMP, "timestamp is too far in the future")
    return timestamp


def check_timestamp(raw: str | None, now: float, tolerance: float) -> float:
    """Parse a signed Unix timestamp and refuse it outside `now ± tolerance`."""
    return check_window(float(parse_timestamp(raw)), now, tolerance)


def b64decode_strict(text: str) -> bytes:
    """Standard base64 with padding; MALFORMED_SIGNATURE otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(
            Reason.MALFORMED_SIGNATURE, "signature is not valid base64"
        ) from None


def hexdecode_strict(text: str) -> bytes:
    """Hex digits only (either case), an even number of them; MALFORMED_SIGNATURE otherwise."""
    if len(text) % 2 or _HEX.fullmatch(text) is None:
        raise VerificationError(Reason.MALFORMED_SIGNATURE, "signature is not valid hex")
    return bytes.fromhex(text)


def parse_prefixed(raw: str, prefix: str, encoding: str) -> bytes:
    """``prefix`` + encoded digest (GitHub's ``sha256=``, Slack's ``v0=``, or none)."""
    value = raw.strip()
    if not value.startswith(prefix):
        raise VerificationError(Reason.MALFORMED_SIGNATURE, f"signature must start with {prefix!r}")
    value = value[len(prefix) :]
    return hexdecode_strict(value) if encoding == "hex" else b64decode_strict(value)


def parse_stripe_signature(raw: str) -> tuple[int, list[bytes]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`` into the timestamp and the v1 digests.

    Unknown schemes (v0, future ones) are ignored; a v1 entry that is not hex cannot
    match, so it is skipped, and only an offer with no usable v1 at all is malformed.
    """
    timestamp: str | None = None
    offered: list[bytes] = []
    for item in raw.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == "v1":
            try:
                offered.append(hexdecode_strict(value))
            except VerificationError:
                continue
    if timestamp is None:
        raise VerificationError(Reason.MISSING_TIMESTAMP, "Stripe-Signature has no t=")
    stamp = parse_timestamp(timestamp)
    if not offered:
        raise VerificationError(Reason.MALFORMED_SIGNATURE, "Stripe-Signature has no v1 signature")
    return stamp, offered


def parse_standard_signatures(raw: str) -> list[bytes]:
    """A space-separated list of ``version,base64`` into the v1 digests.

    Other versions (``v1a`` asymmetric ones) are skipped, as the Standard Webhooks
    spec asks; an offer with no usable v1 entry is malformed.
    """
    offered: list[bytes] = []
    for part in raw.split(" "):
        version, sep, value = part.partition(",")
        if not sep or version != "v1":
            continue
        try:
            offered.append(b64decode_strict(value))
        except VerificationError:
            continue
    if not offered:
        raise VerificationError(Reason.MALFORMED_SIGNATURE, "no v1 signature offered")
    return offered


def request_url(public_url: str, query: str) -> str:
    """The URL a sender signed: the configured public URL (scheme, host, path) with the
    query string the request arrived with (proxies rewrite hosts and paths, not queries)."""
    base = public_url.split("?", 1)[0]
    return f"{base}?{query}" if query else base
