"""One HMAC over the raw body (optionally with a signed timestamp): the generic ``hmac``
scheme, and the providers that are fixed instances of it.

- GitHub:    ``X-Hub-Signature-256: sha256=<hex>`` over the body.
- Shopify:   ``X-Shopify-Hmac-Sha256: <base64>`` over the body.
- Slack:     ``X-Slack-Signature: v0=<hex>`` over ``v0:{X-Slack-Request-Timestamp}:{body}``.
- Zoom:      ``x-zm-signature: v0=<hex>`` over ``v0:{x-zm-request-timestamp}:{body}``.
- Intercom:  ``X-Hub-Signature: sha1=<hex>`` over the body (HMAC-SHA1, the client secret).
- Bitbucket: ``X-Hub-Signature: sha256=<hex>`` over the body (Cloud and Data Center).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from hookstream.core.signatures.base import (
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.parsing import check_timestamp, header_text, parse_prefixed

Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]

DIGESTS: dict[str, Callable[[], hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True, slots=True)
class HmacScheme:
    """Where the signature travels and what it covers; no secrets here."""

    header: str
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_content: str = "{body}"  # {timestamp} and {body} are filled in

    def signed_bytes(self, body: bytes, timestamp: str) -> bytes:
        """The signed content: the template with the timestamp and the raw body filled in."""
        head, _, tail = self.signed_content.partition("{body}")
        return (
            head.replace("{timestamp}", timestamp).encode()
            + body
            + tail.replace("{timestamp}", timestamp).encode()
        )

    def signature(self, key: bytes, body: bytes, timestamp: str = "") -> str:
        """The header value a sender holding `key` puts on `body`."""
        digest = hmac.new(key, self.signed_bytes(body, timestamp), DIGESTS[self.algorithm]).digest()
        encoded = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        return self.prefix + encoded


GITHUB = HmacScheme(header="X-Hub-Signature-256", prefix="sha256=")
SHOPIFY = HmacScheme(header="X-Shopify-Hmac-Sha256", encoding="base64")
SLACK = HmacScheme(
    header="X-Slack-Signature",
    prefix="v0=",
    timestamp_header="X-Slack-Request-Timestamp",
    signed_content="v0:{timestamp}:{body}",
)
ZOOM = HmacScheme(
    header="x-zm-signature",
    prefix="v0=",
    timestamp_header="x-zm-request-timestamp",
    signed_content="v0:{timestamp}:{body}",
)
INTERCOM = HmacScheme(header="X-Hub-Signature", algorithm="sha1", prefix="sha1=")
BITBUCKET = HmacScheme(header="X-Hub-Signature", prefix="sha256=")


@dataclass(frozen=True, slots=True)
class HmacVerifier:
    """Verifies one HmacScheme with a set of keys."""

    scheme: HmacScheme
    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        scheme = self.scheme
        raw = header_text(headers, scheme.header)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {scheme.header} is required")
        offered = parse_prefixed(raw, scheme.prefix, scheme.encoding)
        timestamp = None
        stamp_text = ""
        if scheme.timestamp_header:
            stamp_text = header_text(headers, scheme.timestamp_header) or ""
            timestamp = check_timestamp(stamp_text, now, self.tolerance)
        content = scheme.signed_bytes(body, stamp_text)
        digest = DIGESTS[scheme.algorithm]
        expected = [hmac.new(k, content, digest).digest() for k in active_keys(self.keys, now)]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)
