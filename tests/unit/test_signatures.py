"""Each scheme verifies what its provider signs, and refuses any alteration.

Where a provider publishes example values they are used as-is; where it ships a
signing library on PyPI, that library signs (stripe, standardwebhooks, svix, slack_sdk).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
import standardwebhooks
import stripe
import svix
from multidict import CIMultiDict
from slack_sdk.signature import SignatureVerifier

from hookstream.config import Scheme, SourceSettings
from hookstream.core.signatures import Reason, VerificationError
from hookstream.sources import SCHEMES, build_verifier, sign_request

NOW = 1_700_000_000.0
BODY = b'{"id":"evt_1","type":"invoice.paid","data":{"object":{"customer":"cus_1"}}}'


def verify(source: SourceSettings, headers: dict[str, str], body: bytes, now: float) -> None:
    build_verifier(source).verify(CIMultiDict(headers), body, now)


def refused(source: SourceSettings, headers: dict[str, str], body: bytes, now: float) -> Reason:
    with pytest.raises(VerificationError) as caught:
        verify(source, headers, body, now)
    return caught.value.reason


# --- the providers' published examples ---


def test_github_documented_example() -> None:
    # docs.github.com, "Validating webhook deliveries": secret, payload and expected signature.
    source = SourceSettings(scheme="github", secrets=["It's a Secret to Everybody"])
    headers = {
        "X-Hub-Signature-256": (
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        )
    }
    verify(source, headers, b"Hello, World!", NOW)
    assert refused(source, headers, b"Hello, World?", NOW) is Reason.BAD_SIGNATURE


def test_slack_documented_example() -> None:
    # api.slack.com, "Verifying requests from Slack": the slash-command example.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
        b"%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    source = SourceSettings(scheme="slack", secrets=["8f742231b10e8888abcd99yyyzzz85a5"])
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": (
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        ),
    }
    verify(source, headers, body, 1531420618.0 + 10)
    assert refused(source, headers, body, 1531420618.0 + 301) is Reason.STALE_TIMESTAMP


def test_standard_webhooks_documented_example() -> None:
    # The Standard Webhooks / Svix documentation example (secret, id, timestamp, payload).
    source = SourceSettings(scheme="standard", secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    verify(source, headers, b'{"test": 2432232314}', 1614265330.0)
    svix_headers = {k.replace("webhook-", "svix-"): v for k, v in headers.items()}
    verify(source, svix_headers, b'{"test": 2432232314}', 1614265330.0)


# --- every scheme, signed by the provider's own code ---

STRIPE_SECRET = "whsec_test_secret_abc123"
STANDARD_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_B = "whsec_" + base64.b64encode(b"another key, 32 bytes long!!!!!").decode()


def stripe_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(now)
    )
    return {"Stripe-Signature": header}


def github_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    # GitHub ships no Python library; this is its documented Python example.
    digest = hmac.new(secret.encode("utf-8"), msg=body, digestmod=hashlib.sha256)
    return {"X-Hub-Signature-256": "sha256=" + digest.hexdigest()}


def shopify_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    # Shopify's documented verification snippet, run the other way round.
    digest = hmac.new(secret.encode("utf-8"), body, digestmod=hashlib.sha256).digest()
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}


def slack_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    stamp = str(int(now))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def standard_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    when = datetime.fromtimestamp(now, UTC)
    signature = standardwebhooks.Webhook(secret).sign("msg_1", when, body.decode())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signature,
    }


def svix_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    when = datetime.fromtimestamp(now, UTC)
    signature = svix.Webhook(secret).sign("msg_1", when, body.decode())
    return {"svix-id": "msg_1", "svix-timestamp": str(int(now)), "svix-signature": signature}


def hmac_signs(secret: str, body: bytes, now: float) -> dict[str, str]:
    stamp = str(int(now))
    digest = hmac.new(secret.encode(), f"{stamp}:".encode() + body, hashlib.sha512).digest()
    return {"X-Partner-Timestamp": stamp, "X-Partner-Sig": "s=" + base64.b64encode(digest).decode()}


@dataclass(frozen=True)
class Case:
    name: str
    config: dict[str, Any]
    secrets: tuple[str, str]
    sign: Callable[[str, bytes, float], dict[str, str]]
    signature_header: str
    timestamp_header: str | None  # None: the scheme signs no timestamp (or inside the header)

    def source(self, *secrets: Any) -> SourceSettings:
        return SourceSettings(secrets=list(secrets), **self.config)


CASES = [
    Case(
        "stripe",
        {"scheme": "stripe"},
        (STRIPE_SECRET, "whsec_rolled_secret_def456"),
        stripe_signs,
        "Stripe-Signature",
        None,
    ),
    Case(
        "github",
        {"scheme": "github"},
        ("gh-secret-one", "gh-secret-two"),
        github_signs,
        "X-Hub-Signature-256",
        None,
    ),
    Case(
        "shopify",
        {"scheme": "shopify"},
        ("shpss_one", "shpss_two"),
        shopify_signs,
        "X-Shopify-Hmac-Sha256",
        None,
    ),
    Case(
        "slack",
        {"scheme": "slack"},
        ("slack-secret-one", "slack-secret-two"),
        slack_signs,
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
    ),
    Case(
        "standard",
        {"scheme": "standard"},
        (STANDARD_A, STANDARD_B),
        standard_signs,
        "webhook-signature",
        "webhook-timestamp",
    ),
    Case(
        "svix",
        {"scheme": "standard"},
        (STANDARD_A, STANDARD_B),
        svix_signs,
        "svix-signature",
        "svix-timestamp",
    ),
    Case(
        "hmac",
        {
            "scheme": "hmac",
            "header": "X-Partner-Sig",
            "algorithm": "sha512",
            "encoding": "base64",
            "prefix": "s=",
            "timestamp_header": "X-Partner-Timestamp",
            "signed_content": "{timestamp}:{body}",
        },
        ("partner-one", "partner-two"),
        hmac_signs,
        "X-Partner-Sig",
        "X-Partner-Timestamp",
    ),
]
TIMESTAMPED = [c for c in CASES if c.name not in ("github", "shopify")]


def by_name(case: Case) -> str:
    return case.name


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_accepted_as_the_provider_signs(case: Case) -> None:
    verify(case.source(case.secrets[0]), case.sign(case.secrets[0], BODY, NOW), BODY, NOW)


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_altered_body_is_refused(case: Case) -> None:
    headers = case.sign(case.secrets[0], BODY, NOW)
    altered = BODY.replace(b"cus_1", b"cus_2")
    assert refused(case.source(case.secrets[0]), headers, altered, NOW) is Reason.BAD_SIGNATURE
    assert refused(case.source(case.secrets[0]), headers, BODY + b" ", NOW) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_other_secret_is_refused(case: Case) -> None:
    headers = case.sign(case.secrets[1], BODY, NOW)
    assert refused(case.source(case.secrets[0]), headers, BODY, NOW) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_altered_signature_header_is_refused(case: Case) -> None:
    headers = case.sign(case.secrets[0], BODY, NOW)
    value = headers[case.signature_header]
    # Flip one character of the digest (the last one that is not base64 padding).
    index = len(value.rstrip("=")) - 1
    flipped = "0" if value[index].lower() != "0" else "1"  # a digit: same in hex and base64
    headers[case.signature_header] = value[:index] + flipped + value[index + 1 :]
    assert refused(case.source(case.secrets[0]), headers, BODY, NOW) in (
        Reason.BAD_SIGNATURE,
        Reason.MALFORMED_SIGNATURE,
    )
    del headers[case.signature_header]
    assert refused(case.source(case.secrets[0]), headers, BODY, NOW) is Reason.MISSING_SIGNATURE


@pytest.mark.parametrize("case", TIMESTAMPED, ids=by_name)
def test_altered_timestamp_is_refused(case: Case) -> None:
    source = case.source(case.secrets[0])
    headers = case.sign(case.secrets[0], BODY, NOW)
    if case.timestamp_header is None:  # stripe: the timestamp is inside the header
        headers["Stripe-Signature"] = headers["Stripe-Signature"].replace(
            f"t={int(NOW)}", f"t={int(NOW) + 1}"
        )
    else:
        headers[case.timestamp_header] = str(int(NOW) + 1)
    assert refused(source, headers, BODY, NOW) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("case", TIMESTAMPED, ids=by_name)
def test_stale_and_future_timestamps_are_refused(case: Case) -> None:
    source = case.source(case.secrets[0])
    tolerance = source.tolerance
    stale = case.sign(case.secrets[0], BODY, NOW - tolerance - 1)
    future = case.sign(case.secrets[0], BODY, NOW + tolerance + 1)
    assert refused(source, stale, BODY, NOW) is Reason.STALE_TIMESTAMP
    assert refused(source, future, BODY, NOW) is Reason.FUTURE_TIMESTAMP
    # At the edges of the window both are still accepted.
    verify(source, case.sign(case.secrets[0], BODY, NOW - tolerance), BODY, NOW)
    verify(source, case.sign(case.secrets[0], BODY, NOW + tolerance), BODY, NOW)


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_any_secret_of_the_set_verifies(case: Case) -> None:
    source = case.source(*case.secrets)
    for secret in case.secrets:
        verify(source, case.sign(secret, BODY, NOW), BODY, NOW)


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_a_retired_secret_no_longer_verifies(case: Case) -> None:
    old, new = case.secrets
    source = case.source({"value": old, "not_after": NOW - 1}, new)
    verify(source, case.sign(new, BODY, NOW), BODY, NOW)
    assert refused(source, case.sign(old, BODY, NOW), BODY, NOW) is Reason.BAD_SIGNATURE
    # Before its not_after it was still good: rotation without downtime.
    verify(source, case.sign(old, BODY, NOW - 10), BODY, NOW - 10)
    only_old = case.source({"value": old, "not_after": NOW - 1})
    assert refused(only_old, case.sign(old, BODY, NOW), BODY, NOW) is Reason.NO_ACTIVE_SECRET


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_sign_request_verifies_and_matches_the_provider(case: Case) -> None:
    source = case.source(case.secrets[0])
    headers = sign_request(source, BODY, "msg_1", NOW, "invoice.paid")
    verify(source, headers, BODY, NOW)
    if case.name != "svix":  # our signer speaks Standard Webhooks; svix is a receive-side alias
        provider = case.sign(case.secrets[0], BODY, NOW)
        assert headers[case.signature_header] == provider[case.signature_header]


def test_every_scheme_of_the_config_has_a_verifier() -> None:
    assert set(SCHEMES) == set(get_args(Scheme))


# --- the providers' libraries accept what sign_request makes ---


def test_stripe_library_accepts_our_signature() -> None:
    source = SourceSettings(scheme="stripe", secrets=[STRIPE_SECRET])
    now = time.time()
    header = sign_request(source, BODY, "evt_1", now)["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(BODY, header, STRIPE_SECRET, tolerance=300)


def test_stripe_rolling_secret_header_with_two_v1_signatures() -> None:
    # While a secret rolls, Stripe sends one v1 per active secret (and may add v0).
    old = stripe_signs("whsec_old", BODY, NOW)["Stripe-Signature"]
    new = stripe_signs("whsec_new", BODY, NOW)["Stripe-Signature"]
    header = f"{old},{new.split(',')[1]},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    verify(
        SourceSettings(scheme="stripe", secrets=["whsec_new"]),
        {"Stripe-Signature": header},
        BODY,
        NOW,
    )
    verify(
        SourceSettings(scheme="stripe", secrets=["whsec_old"]),
        {"Stripe-Signature": header},
        BODY,
        NOW,
    )


def test_standard_and_svix_libraries_accept_our_signature() -> None:
    source = SourceSettings(scheme="standard", secrets=[STANDARD_A])
    headers = sign_request(source, BODY, "msg_42", time.time())
    standardwebhooks.Webhook(STANDARD_A).verify(BODY, headers)
    svix.Webhook(STANDARD_A).verify(BODY, headers)


def test_slack_library_accepts_our_signature() -> None:
    source = SourceSettings(scheme="slack", secrets=["slack-secret-one"])
    headers = sign_request(source, BODY, "Ev1", time.time())
    assert SignatureVerifier("slack-secret-one").is_valid(
        body=BODY,
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )


def test_unpadded_whsec_secrets_are_accepted_like_the_libraries_do() -> None:
    key = b"sixteen byte key"  # base64 of 16 bytes ends in "=="
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    signed = standard_signs(unpadded, BODY, NOW)
    verify(SourceSettings(scheme="standard", secrets=[unpadded]), signed, BODY, NOW)


def test_errors_carry_no_secret_material() -> None:
    secret = "gh-very-secret-value"
    source = SourceSettings(scheme="github", secrets=[secret])
    for headers in ({}, {"X-Hub-Signature-256": "sha256=zz"}, github_signs("other", BODY, NOW)):
        with pytest.raises(VerificationError) as caught:
            verify(source, headers, BODY, NOW)
        assert secret not in str(caught.value)
        assert secret not in caught.value.detail
    assert secret not in repr(build_verifier(source))


def test_undecodable_header_bytes_are_malformed_not_a_crash() -> None:
    # aiohttp hands over bytes that are not UTF-8 as lone surrogates.
    source = SourceSettings(scheme="standard", secrets=[STANDARD_A])
    headers = standard_signs(STANDARD_A, BODY, NOW)
    headers["webhook-id"] = "msg_\udcff"
    assert refused(source, headers, BODY, NOW) is Reason.MALFORMED_SIGNATURE
