"""Every header parser is total: any text gives a value or a VerificationError, never
another exception. Valid headers round-trip. Verifiers and event extraction, fed
arbitrary headers and bodies, fail one way only."""

from __future__ import annotations

import base64
import json
from typing import get_args

from hypothesis import example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from hookstream.config import Scheme, SourceSettings
from hookstream.core.events import (
    EventFacts,
    UnusableEvent,
    describe_event,
    handshake_challenge,
    signature_headers,
)
from hookstream.core.signatures import (
    Reason,
    VerificationError,
    b64decode_strict,
    check_timestamp,
    header_text,
    hexdecode_strict,
    parse_prefixed,
    parse_standard_signatures,
    parse_stripe_signature,
    parse_timestamp,
)
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.sources import acknowledgement, build_handshake, build_verifier

# Any text a client can put in a header: printable or not, non-ASCII, and the lone
# surrogates aiohttp uses for bytes that are not UTF-8.
anything = st.characters(exclude_categories=())
wild_text = st.one_of(
    st.text(),
    st.text(alphabet=anything, max_size=80),
    st.text(alphabet="0123456789abcdefABCDEF=,+/ tv_-", max_size=80),
    st.text(alphabet=st.sampled_from("\udc80\udcff\u0661\uff10 1-_+"), max_size=12),
)
digests = st.binary(min_size=1, max_size=64)


def reason_of(call: object) -> Reason | None:
    assert callable(call)
    try:
        call()
    except VerificationError as exc:
        return exc.reason
    return None


@given(wild_text)
@example("")
@example("1_700_000_000")
@example("+1700000000")
@example("\u0661\u0667")  # Arabic-Indic digits: int() accepts them, a signature would not
@example("9" * 5000)
def test_parse_timestamp_is_total(raw: str) -> None:
    reason = reason_of(lambda: parse_timestamp(raw))
    assert reason in (None, Reason.MISSING_TIMESTAMP, Reason.MALFORMED_TIMESTAMP)
    if reason is None:
        assert raw.isascii()
        assert raw.isdigit()
        assert parse_timestamp(raw) == int(raw)


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_parse_timestamp_round_trips(value: int) -> None:
    assert parse_timestamp(str(value)) == value


@given(
    st.one_of(wild_text, st.integers(0, 4 * 10**9).map(str)),
    st.floats(0, 4e9),
    st.floats(0, 1e6),
)
def test_check_timestamp_accepts_only_inside_the_window(raw: str, now: float, tol: float) -> None:
    reason = reason_of(lambda: check_timestamp(raw, now, tol))
    assert reason in (
        None,
        Reason.MISSING_TIMESTAMP,
        Reason.MALFORMED_TIMESTAMP,
        Reason.STALE_TIMESTAMP,
        Reason.FUTURE_TIMESTAMP,
    )
    if reason is Reason.STALE_TIMESTAMP:
        assert int(raw) < now - tol
    if reason is Reason.FUTURE_TIMESTAMP:
        assert int(raw) > now + tol
    if reason is None:
        assert now - tol <= check_timestamp(raw, now, tol) <= now + tol


@given(wild_text)
def test_base64_decoding_is_total(raw: str) -> None:
    assert reason_of(lambda: b64decode_strict(raw)) in (None, Reason.MALFORMED_SIGNATURE)


@given(wild_text)
def test_hex_decoding_is_total(raw: str) -> None:
    assert reason_of(lambda: hexdecode_strict(raw)) in (None, Reason.MALFORMED_SIGNATURE)


@given(digests)
def test_encodings_round_trip(digest: bytes) -> None:
    assert b64decode_strict(base64.b64encode(digest).decode()) == digest
    assert hexdecode_strict(digest.hex()) == digest
    assert hexdecode_strict(digest.hex().upper()) == digest


@given(wild_text, st.sampled_from(["", "sha256=", "v0=", "s="]), st.sampled_from(["hex", "base64"]))
def test_prefixed_parsing_is_total(raw: str, prefix: str, encoding: str) -> None:
    assert reason_of(lambda: parse_prefixed(raw, prefix, encoding)) in (
        None,
        Reason.MALFORMED_SIGNATURE,
    )


@given(digests, st.sampled_from(["sha256=", "v0="]))
def test_prefixed_round_trips(digest: bytes, prefix: str) -> None:
    assert parse_prefixed(prefix + digest.hex(), prefix, "hex") == digest
    assert parse_prefixed(base64.b64encode(digest).decode(), "", "base64") == digest


@given(wild_text)
@example("t=,v1=")
@example("t=1,v1=zz")
@example("v1=00")
@example("t=1")
@example("t=1=2,v1=00=")
def test_stripe_header_parsing_is_total(raw: str) -> None:
    reason = reason_of(lambda: parse_stripe_signature(raw))
    assert reason in (
        None,
        Reason.MISSING_TIMESTAMP,
        Reason.MALFORMED_TIMESTAMP,
        Reason.MALFORMED_SIGNATURE,
    )
    if reason is None:
        stamp, offered = parse_stripe_signature(raw)
        assert stamp >= 0
        assert offered


@given(
    st.integers(0, 10**10),
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4),
    st.lists(st.sampled_from(["v0=abc", "v2=zz", "x", "foo=bar"]), max_size=3),
)
def test_stripe_header_round_trips(stamp: int, sigs: list[bytes], noise: list[str]) -> None:
    items = [f"t={stamp}", *(f"v1={s.hex()}" for s in sigs), *noise]
    assert parse_stripe_signature(",".join(items)) == (stamp, sigs)


@given(wild_text)
@example("v1,")
@example("v1")
@example("v1,!!!! v1a,abc")
@example(",")
def test_standard_signature_list_parsing_is_total(raw: str) -> None:
    assert reason_of(lambda: parse_standard_signatures(raw)) in (None, Reason.MALFORMED_SIGNATURE)


@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4),
    st.lists(st.sampled_from(["v1a,AAAA", "v2,xyz", "garbage"]), max_size=3),
)
def test_standard_signature_list_round_trips(sigs: list[bytes], noise: list[str]) -> None:
    parts = [*noise, *(f"v1,{base64.b64encode(s).decode()}" for s in sigs)]
    assert parse_standard_signatures(" ".join(parts)) == sigs


@given(st.dictionaries(st.sampled_from(["a", "b"]), wild_text), st.sampled_from(["a", "b"]))
def test_header_text_is_total(headers: dict[str, str], name: str) -> None:
    reason = reason_of(lambda: header_text(headers, name))
    assert reason in (None, Reason.MALFORMED_SIGNATURE)
    if reason is None:
        value = header_text(headers, name)
        assert value is None or value.encode("utf-8")


# --- whole verifiers and event extraction, fed anything ---

SOURCES = {
    "stripe": SourceSettings(scheme="stripe", secrets=["whsec_x"]),
    "github": SourceSettings(scheme="github", secrets=["g"]),
    "shopify": SourceSettings(scheme="shopify", secrets=["s"]),
    "slack": SourceSettings(scheme="slack", secrets=["s"]),
    "standard": SourceSettings(
        scheme="standard", secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    ),
    "hmac": SourceSettings(
        scheme="hmac",
        secrets=["h"],
        header="X-Sig",
        prefix="sha1=",
        algorithm="sha1",
        timestamp_header="X-Ts",
        event_id="header:X-Id",
        entity_id="/a/0/b",
    ),
    "twilio": SourceSettings(scheme="twilio", secrets=["t"], public_url="https://h.example/x"),
    "square": SourceSettings(scheme="square", secrets=["q"], public_url="https://h.example:8443/y"),
    "discord": SourceSettings(scheme="discord", public_keys=[new_keypair("discord")[0]]),
    "sendgrid": SourceSettings(scheme="sendgrid", public_keys=[new_keypair("sendgrid")[0]]),
    "mailgun": SourceSettings(scheme="mailgun", secrets=["m"]),
    "zoom": SourceSettings(scheme="zoom", secrets=["z"]),
    "twitch": SourceSettings(scheme="twitch", secrets=["t"]),
    "paddle": SourceSettings(scheme="paddle", secrets=["p"]),
    "linear": SourceSettings(scheme="linear", secrets=["l"]),
    "intercom": SourceSettings(scheme="intercom", secrets=["i"]),
    "bitbucket": SourceSettings(scheme="bitbucket", secrets=["b"]),
    "gitlab": SourceSettings(scheme="gitlab", secrets=["g"]),
    "adyen": SourceSettings(scheme="adyen", secrets=["00ff"]),
}
HEADER_NAMES = [
    "Stripe-Signature",
    "X-Hub-Signature-256",
    "X-GitHub-Delivery",
    "X-GitHub-Event",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Event-Id",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Topic",
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "X-Sig",
    "X-Ts",
    "X-Id",
    "Content-Type",
    "X-Twilio-Signature",
    "X-Twilio-Webhooks-Signature-Settings",
    "I-Twilio-Idempotency-Token",
    "x-square-hmacsha256-signature",
    "X-Signature-Ed25519",
    "X-Signature-Timestamp",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "x-zm-signature",
    "x-zm-request-timestamp",
    "Twitch-Eventsub-Message-Id",
    "Twitch-Eventsub-Message-Timestamp",
    "Twitch-Eventsub-Message-Signature",
    "Twitch-Eventsub-Message-Type",
    "Paddle-Signature",
    "Linear-Signature",
    "Linear-Delivery",
    "X-Hub-Signature",
    "X-Request-UUID",
    "X-Event-Key",
    "X-Gitlab-Token",
    "X-Gitlab-Event-UUID",
]
headers_strategy = st.dictionaries(st.sampled_from(HEADER_NAMES), wild_text, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=anything),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "type",
                    "event_id",
                    "event",
                    "data",
                    "object",
                    "customer",
                    "team_id",
                    "challenge",
                    "repository",
                    "full_name",
                    "a",
                    "b",
                    "signature",
                    "token",
                    "timestamp",
                    "event-data",
                    "notificationItems",
                    "NotificationRequestItem",
                    "additionalData",
                    "hmacSignature",
                    "amount",
                    "value",
                    "pspReference",
                    "webhookTimestamp",
                    "payload",
                    "plainToken",
                    "version",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | wild_text
# Bodies in the shape of the schemes that sign inside the body, with anything in the fields.
mailgun_bodies = st.fixed_dictionaries(
    {
        "signature": st.fixed_dictionaries(
            {"timestamp": scalars, "token": scalars, "signature": scalars}
        )
    }
)
adyen_bodies = st.fixed_dictionaries(
    {
        "notificationItems": st.lists(
            st.one_of(
                scalars,
                st.fixed_dictionaries(
                    {
                        "NotificationRequestItem": st.dictionaries(
                            st.sampled_from(["pspReference", "eventCode", "success", "amount"]),
                            scalars
                            | st.dictionaries(st.sampled_from(["value", "currency"]), scalars),
                        ).map(lambda item: {**item, "additionalData": {"hmacSignature": "x"}})
                    }
                ),
            ),
            max_size=3,
        )
    }
)
handshake_bodies = st.fixed_dictionaries(
    {
        "type": st.sampled_from([0, 1, 2, 3, 5, "url_verification"]),
        "event": st.sampled_from(["endpoint.url_validation", {}, None]),
        "payload": st.fixed_dictionaries({"plainToken": scalars}),
        "challenge": scalars,
    },
    optional={"id": scalars, "token": scalars, "version": scalars},
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.one_of(mailgun_bodies, adyen_bodies, handshake_bodies).map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 50_000),
    st.just(b'{"id": "\\ud800", "type": "url_verification", "challenge": "\\udfff"}'),
)


def test_every_scheme_is_fed_garbage() -> None:
    assert {source.scheme for source in SOURCES.values()} == set(get_args(Scheme))


queries = st.one_of(
    st.just(""),
    wild_text,
    st.text(alphabet="bodySHA256=&%0123456789abcdef", max_size=90),
)


@settings(max_examples=1500)
@given(st.sampled_from(sorted(SOURCES)), headers_strategy, bodies, st.floats(0, 4e9), queries)
def test_verifiers_fail_only_one_way(
    scheme: str, headers: dict[str, str], body: bytes, now: float, query: str
) -> None:
    verifier = build_verifier(SOURCES[scheme])
    # Any other exception propagates and fails; a forged request that verifies fails too.
    reason = reason_of(lambda: verifier.verify(CIMultiDict(headers), body, now, query))
    assert isinstance(reason, Reason)


@settings(max_examples=600)
@given(st.sampled_from(sorted(SOURCES)), headers_strategy, bodies)
def test_handshakes_and_acknowledgements_are_total(
    scheme: str, headers: dict[str, str], body: bytes
) -> None:
    # A handshake is asked only after verification; fed anything it answers or says None.
    source = SOURCES[scheme]
    handshake = build_handshake(source)
    for answer in (
        handshake(CIMultiDict(headers), body, 0.0) if handshake else None,
        acknowledgement(source, body),
    ):
        assert answer is None or (200 <= answer.status < 300 and isinstance(answer.body, bytes))


@settings(max_examples=1000)
@given(st.sampled_from(sorted(SOURCES)), headers_strategy, bodies)
def test_event_extraction_fails_only_one_way(
    scheme: str, headers: dict[str, str], body: bytes
) -> None:
    source = SOURCES[scheme]
    request_headers = CIMultiDict(headers)
    facts: EventFacts | UnusableEvent
    try:
        facts = describe_event(source, request_headers, body)
    except UnusableEvent as exc:
        facts = exc
    if isinstance(facts, UnusableEvent):
        assert facts.reason in ("missing_event_id", "malformed_json", "bad_event_id")
    else:
        for text in (facts.event_id, facts.entity_id, facts.event_type or ""):
            text.encode("utf-8")  # what Kafka keys, headers and Avro strings need
    for name, value in signature_headers(source, request_headers).items():
        (name + value).encode("utf-8")
    challenge = handshake_challenge(source, body)
    assert challenge is None or challenge.encode("utf-8")
