"""Twilio: ``X-Twilio-Signature: <base64>``, an HMAC of the full URL Twilio requested.

Form bodies: the URL followed by every POST parameter, sorted by name, as
``name + value`` (Twilio's RequestValidator sorts distinct values per name, too). JSON
bodies: the URL alone, which then carries ``bodySHA256=<hex sha256 of the body>`` in its
query. HMAC-SHA1 keyed with the account Auth Token, unless
``X-Twilio-Webhooks-Signature-Settings`` names ``algorithm=HMAC_SHA256`` (SharedKey).
Twilio signs the URL sometimes with and sometimes without the default port; both verify.
Twilio signs no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from hookstream.core.signatures.base import (
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.parsing import b64decode_strict, header_text, request_url

TWILIO_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
_DIGESTS: dict[str, Callable[[], hashlib._Hash]] = {
    "HMAC_SHA1": hashlib.sha1,
    "HMAC_SHA256": hashlib.sha256,
}


def signed_algorithm(settings: str | None) -> Callable[[], hashlib._Hash]:
    """The digest the settings header names; none (the Auth Token signature) is SHA-1."""
    for part in (settings or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            digest = _DIGESTS.get(value.strip().upper())
            if digest is None:
                raise VerificationError(
                    Reason.MALFORMED_SIGNATURE, f"{SETTINGS_HEADER} names an unknown algorithm"
                )
            return digest
    return hashlib.sha1


def port_variants(url: str) -> list[str]:
    """The URL as given, and with its port removed or the scheme's default port added."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is not None:
        return [url, urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]))]
    default = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))]


def form_params(body: bytes) -> str:
    """The form parameters sorted and concatenated as Twilio appends them to the URL."""
    params: dict[str, set[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(params) for value in sorted(params[name]))


def form_content(url: str, body: bytes) -> bytes:
    """The URL and the sorted form parameters, as Twilio concatenates them."""
    return (url + form_params(body)).encode("utf-8", "surrogatepass")


def sign_twilio(
    key: bytes, public_url: str, body: bytes, json_body: bool, query: str = ""
) -> tuple[str, str]:
    """The ``X-Twilio-Signature`` value and the query string to send `body` with."""
    if json_body:
        pairs = [*parse_qsl(query, keep_blank_values=True)]
        pairs.append(("bodySHA256", hashlib.sha256(body).hexdigest()))
        query = urlencode(pairs)
        content = request_url(public_url, query).encode()
    else:
        content = form_content(request_url(public_url, query), body)
    digest = hmac.new(key, content, hashlib.sha1).digest()
    return base64.b64encode(digest).decode(), query


@dataclass(frozen=True, slots=True)
class TwilioVerifier:
    """Twilio's URL-and-parameters signature, against the URL Twilio was given."""

    keys: tuple[SigningKey, ...]
    public_url: str
    # the public URL with and without its port, worked out once
    bases: tuple[str, ...] = ()

    @classmethod
    def for_url(cls, keys: tuple[SigningKey, ...], public_url: str) -> TwilioVerifier:
        """A verifier for requests Twilio was told to send to `public_url`."""
        return cls(keys, public_url, tuple(port_variants(request_url(public_url, ""))))

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, TWILIO_HEADER)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {TWILIO_HEADER} is required")
        offered = b64decode_strict(raw.strip())
        digest = signed_algorithm(header_text(headers, SETTINGS_HEADER))
        bases = self.bases or tuple(port_variants(request_url(self.public_url, "")))
        urls = [request_url(base, query) for base in bases]
        body_hashes = parse_qs(query, keep_blank_values=True).get("bodySHA256") if query else None
        body_ok = True
        if body_hashes:  # a JSON body: the URL is signed, the body by its hash in the URL
            actual = hashlib.sha256(body).hexdigest().encode()
            body_ok = hmac.compare_digest(actual, body_hashes[0].encode("utf-8", "replace"))
            contents = [u.encode("utf-8", "surrogatepass") for u in urls]
        else:
            params = form_params(body)
            contents = [(u + params).encode("utf-8", "surrogatepass") for u in urls]
        expected = [
            hmac.new(k, content, digest).digest()
            for k in active_keys(self.keys, now)
            for content in contents
        ]
        if not (any_matches(expected, [offered]) and body_ok):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(None)
