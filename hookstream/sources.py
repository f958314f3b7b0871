"""From a source's config to its verifier, and signing the way each provider signs.

The config layer's side of signatures: `hookstream.core.signatures` verifies with plain
keys and rules; this module reads them out of a source's settings.
"""

from __future__ import annotations

from collections.abc import Callable

from hookstream.config import SourceSettings
from hookstream.core.signatures.base import SigningKey, Verifier
from hookstream.core.signatures.hmac_schemes import (
    GITHUB,
    SHOPIFY,
    SLACK,
    HmacScheme,
    HmacVerifier,
)
from hookstream.core.signatures.standard import StandardVerifier, sign_standard, standard_secret
from hookstream.core.signatures.stripe import STRIPE_HEADER, StripeVerifier, sign_stripe

# Headers a provider sends beside the signature, naming the event id and type.
_ID_HEADERS: dict[str, tuple[tuple[str, ...], str]] = {
    "github": (("X-GitHub-Delivery",), "X-GitHub-Event"),
    "shopify": (("X-Shopify-Event-Id", "X-Shopify-Webhook-Id"), "X-Shopify-Topic"),
}
_PRESETS: dict[str, HmacScheme] = {"github": GITHUB, "shopify": SHOPIFY, "slack": SLACK}


def _keys(source: SourceSettings, decode: Callable[[str], bytes]) -> tuple[SigningKey, ...]:
    return tuple(
        SigningKey(decode(entry.value.get_secret_value()), entry.not_after)
        for entry in source.secrets
    )


def _utf8(secret: str) -> bytes:
    return secret.encode()


def hmac_scheme(source: SourceSettings) -> HmacScheme:
    """The HmacScheme a github/shopify/slack/hmac source uses."""
    if source.scheme in _PRESETS:
        return _PRESETS[source.scheme]
    if source.header is None:  # enforced by SourceSettings; kept for the type checker
        raise ValueError("scheme hmac needs `header`")
    default = "{timestamp}.{body}" if source.timestamp_header else "{body}"
    return HmacScheme(
        header=source.header,
        algorithm=source.algorithm,
        encoding=source.encoding,
        prefix=source.prefix,
        timestamp_header=source.timestamp_header,
        signed_content=source.signed_content or default,
    )


def build_standard(source: SourceSettings) -> Verifier:
    """Standard Webhooks and Svix."""
    return StandardVerifier(_keys(source, standard_secret), source.tolerance)


def build_stripe(source: SourceSettings) -> Verifier:
    """Stripe's ``Stripe-Signature``."""
    return StripeVerifier(_keys(source, _utf8), source.tolerance)


def build_hmac(source: SourceSettings) -> Verifier:
    """GitHub, Shopify, Slack and the configurable generic HMAC."""
    return HmacVerifier(hmac_scheme(source), _keys(source, _utf8), source.tolerance)


SCHEMES: dict[str, Callable[[SourceSettings], Verifier]] = {
    "standard": build_standard,
    "stripe": build_stripe,
    "github": build_hmac,
    "shopify": build_hmac,
    "slack": build_hmac,
    "hmac": build_hmac,
}


def build_verifier(source: SourceSettings) -> Verifier:
    """The verifier a source's config describes; ValueError if its secrets are unusable."""
    try:
        builder = SCHEMES[source.scheme]
    except KeyError:
        raise ValueError(f"scheme {source.scheme!r} is not supported") from None
    return builder(source)


def sign_request(
    source: SourceSettings,
    body: bytes,
    event_id: str,
    now: float,
    event_type: str | None = None,
) -> dict[str, str]:
    """The headers `source`'s provider would send with `body`, signed with its first
    active secret: the signature, its timestamp, and the id/type headers it names."""
    secrets = [s for s in source.secrets if s.not_after is None or now <= s.not_after]
    if not secrets:
        raise ValueError("the source has no active secret to sign with")
    secret = secrets[0].value.get_secret_value()
    timestamp = int(now)
    if source.scheme == "standard":
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_standard(standard_secret(secret), event_id, timestamp, body),
        }
    if source.scheme == "stripe":
        return {STRIPE_HEADER: sign_stripe(secret.encode(), timestamp, body)}
    scheme = hmac_scheme(source)
    stamp = str(timestamp) if scheme.timestamp_header else ""
    headers = {scheme.header: scheme.signature(secret.encode(), body, stamp)}
    if scheme.timestamp_header:
        headers[scheme.timestamp_header] = stamp
    if source.scheme in _ID_HEADERS:
        id_headers, type_header = _ID_HEADERS[source.scheme]
        headers.update(dict.fromkeys(id_headers, event_id))
        if event_type:
            headers[type_header] = event_type
    return headers
