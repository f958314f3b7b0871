"""Event id, type and entity id where each provider documents them; Slack's handshake."""

from __future__ import annotations

import hashlib
import json

import pytest
from multidict import CIMultiDict

from hookstream.config import SourceSettings
from hookstream.core.events import (
    UnusableEvent,
    describe_event,
    handshake_challenge,
    signature_headers,
)


def source(scheme: str, **extra: str) -> SourceSettings:
    config: dict[str, str] = {"header": "X-Sig"} if scheme == "hmac" else {}
    return SourceSettings(
        scheme=scheme, secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], **{**config, **extra}
    )


def facts(
    scheme: str, headers: dict[str, str], body: object, **extra: str
) -> tuple[str, str | None, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    found = describe_event(source(scheme, **extra), CIMultiDict(headers), raw)
    return found.event_id, found.event_type, found.entity_id


def test_stripe_event_object() -> None:
    invoice = {
        "id": "evt_1",
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "customer": "cus_9"}},
    }
    assert facts("stripe", {}, invoice) == ("evt_1", "invoice.paid", "cus_9")
    created = {
        "id": "evt_2",
        "type": "customer.created",
        "data": {"object": {"id": "cus_9", "customer": None}},
    }
    assert facts("stripe", {}, created) == ("evt_2", "customer.created", "cus_9")


def test_github_delivery_headers_and_repository() -> None:
    headers = {
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Event": "issues",
    }
    body = {"action": "opened", "repository": {"full_name": "octo/hello"}}
    assert facts("github", headers, body) == (
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "issues",
        "octo/hello",
    )
    org_only = {"organization": {"login": "octo"}}
    assert facts("github", headers, org_only)[2] == "octo"


def test_shopify_headers_and_resource() -> None:
    headers = {
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "shop.myshopify.com",
    }
    order = {
        "id": 820982911946154508,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    }
    assert facts("shopify", headers, order) == (
        "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "orders/create",
        "gid://shopify/Order/820982911946154508",
    )
    older = {k: v for k, v in headers.items() if k != "X-Shopify-Event-Id"}
    assert facts("shopify", older, {})[0] == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert facts("shopify", older, {})[2] == "shop.myshopify.com"


def test_slack_event_callback() -> None:
    body = {
        "type": "event_callback",
        "event_id": "Ev08MFMKH6",
        "team_id": "T0001",
        "event": {"type": "app_mention", "channel": "C1"},
    }
    assert facts("slack", {}, body) == ("Ev08MFMKH6", "app_mention", "T0001")
    assert (
        facts("slack", {}, {"event_id": "Ev1", "type": "app_rate_limited"})[1] == "app_rate_limited"
    )


def test_standard_and_svix_ids() -> None:
    body = {"type": "user.created", "data": {}}
    assert facts("standard", {"webhook-id": "msg_1", "webhook-signature": "v1,x"}, body)[:2] == (
        "msg_1",
        "user.created",
    )
    assert facts("standard", {"svix-id": "msg_2", "svix-signature": "v1,x"}, body)[0] == "msg_2"
    # The id is read from the header family that was verified, not from a stray one.
    mixed = {"svix-id": "msg_2", "svix-signature": "v1,x", "webhook-id": "unsigned"}
    assert facts("standard", mixed, body)[0] == "msg_2"


def test_hmac_default_id_is_the_body_hash() -> None:
    event_id, event_type, entity = facts("hmac", {}, b"anything")
    assert len(event_id) == 64
    assert event_type is None
    assert entity == event_id


def test_configured_locators_override_defaults() -> None:
    body = {"id": "evt_1", "type": "t", "data": {"object": {"customer": "cus_1"}}, "acct": "a_1"}
    assert facts("stripe", {}, body, entity_id="/acct") == ("evt_1", "t", "a_1")


def test_missing_id_and_malformed_json_are_unusable() -> None:
    with pytest.raises(UnusableEvent) as caught:
        facts("stripe", {}, {"type": "x"})
    assert caught.value.reason == "missing_event_id"
    with pytest.raises(UnusableEvent) as caught:
        facts("stripe", {}, b"not json")
    assert caught.value.reason == "malformed_json"
    with pytest.raises(UnusableEvent) as caught:
        facts("stripe", {}, b"[" * 100_000)  # deeper than the JSON parser recurses
    assert caught.value.reason == "malformed_json"
    with pytest.raises(UnusableEvent) as caught:
        facts("github", {}, {})
    assert caught.value.reason == "missing_event_id"


def test_ids_that_cannot_be_utf8_are_not_ids() -> None:
    with pytest.raises(UnusableEvent):
        facts("stripe", {}, b'{"id": "\\ud800"}')
    with pytest.raises(UnusableEvent):
        facts("github", {"X-GitHub-Delivery": "\udcff"}, {})


def test_slack_url_verification_challenge() -> None:
    slack = source("slack")
    body = json.dumps(
        {
            "token": "t",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    ).encode()
    assert (
        handshake_challenge(slack, body) == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    )
    assert handshake_challenge(source("standard"), body) is None
    assert handshake_challenge(slack, b'{"type": "event_callback", "event_id": "Ev1"}') is None
    assert handshake_challenge(slack, b'{"type": "url_verification"}') is None


def test_signature_headers_keep_what_reverification_needs() -> None:
    headers = CIMultiDict(
        {
            "X-Hub-Signature-256": "sha256=00",
            "X-GitHub-Delivery": "d",
            "X-GitHub-Event": "push",
            "Cookie": "nope",
            "Authorization": "nope",
        }
    )
    kept = signature_headers(source("github"), headers)
    assert kept == {
        "x-hub-signature-256": "sha256=00",
        "x-github-delivery": "d",
        "x-github-event": "push",
    }
    partner = source("hmac", timestamp_header="X-Ts", event_id="header:X-Id")
    kept = signature_headers(
        partner, CIMultiDict({"X-Sig": "s", "X-Ts": "1", "X-Id": "i", "X-Other": "o"})
    )
    assert kept == {"x-sig": "s", "x-ts": "1", "x-id": "i"}


# --- the provider schemes beyond the first six ---


def provider(scheme: str, headers: dict[str, str], body: object) -> tuple[str, str | None, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    config = {"public_url": "https://h.example/x"} if scheme in ("twilio", "square") else {}
    keys = {"public_keys": ["00" * 32]} if scheme in ("discord", "sendgrid") else {}
    settings = SourceSettings(scheme=scheme, secrets=["s"], **config, **keys)
    found = describe_event(settings, CIMultiDict(headers), raw)
    return found.event_id, found.event_type, found.entity_id


def test_twilio_form_fields_and_idempotency_token() -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"AccountSid=AC1&MessageSid=SM1&MessageStatus=delivered"
    token = {**form, "I-Twilio-Idempotency-Token": "idem-1"}
    assert provider("twilio", token, body) == ("idem-1", "delivered", "SM1")
    derived = provider("twilio", form, body)[0]
    assert derived == hashlib.sha256(body).hexdigest()


def test_provider_documented_locations() -> None:
    square = {"event_id": "e1", "type": "payment.updated", "data": {"id": "pay_1"}}
    assert provider("square", {}, square) == ("e1", "payment.updated", "pay_1")
    interaction = {"id": "i1", "type": 2, "guild_id": "g1", "data": {"name": "ping"}}
    assert provider("discord", {}, interaction) == ("i1", "ping", "g1")
    mailgun = {"event-data": {"id": "m1", "event": "delivered", "recipient": "a@b.c"}}
    assert provider("mailgun", {}, mailgun) == ("m1", "delivered", "a@b.c")
    twitch_headers = {
        "Twitch-Eventsub-Message-Id": "t1",
        "Twitch-Eventsub-Subscription-Type": "channel.follow",
    }
    twitch = {"event": {"broadcaster_user_id": "1337"}}
    assert provider("twitch", twitch_headers, twitch) == ("t1", "channel.follow", "1337")
    paddle = {
        "event_id": "evt_01",
        "event_type": "transaction.paid",
        "data": {"customer_id": "ctm_1"},
    }
    assert provider("paddle", {}, paddle) == ("evt_01", "transaction.paid", "ctm_1")
    linear = {"type": "Issue", "action": "create", "data": {"id": "iss_1"}}
    assert provider("linear", {"Linear-Delivery": "d1"}, linear) == ("d1", "Issue", "iss_1")
    intercom = {
        "id": "notif_1",
        "topic": "conversation.user.created",
        "data": {"item": {"id": "c1"}},
    }
    assert provider("intercom", {}, intercom) == ("notif_1", "conversation.user.created", "c1")
    bitbucket = {"repository": {"full_name": "team/repo"}}
    headers = {"X-Request-UUID": "r1", "X-Event-Key": "repo:push"}
    assert provider("bitbucket", headers, bitbucket) == ("r1", "repo:push", "team/repo")
    gitlab = {"object_kind": "push", "project": {"path_with_namespace": "g/p"}}
    headers = {"X-Gitlab-Event-UUID": "u1", "X-Gitlab-Event": "Push Hook"}
    assert provider("gitlab", headers, gitlab) == ("u1", "Push Hook", "g/p")
    zoom = {"event": "meeting.started", "payload": {"object": {"uuid": "z1"}}}
    raw = json.dumps(zoom).encode()
    assert provider("zoom", {}, zoom) == (hashlib.sha256(raw).hexdigest(), "meeting.started", "z1")
    batch = [{"event": "delivered", "sg_event_id": "s1"}, {"event": "open"}]
    assert provider("sendgrid", {}, batch)[1] == "delivered"


def test_adyen_id_is_event_code_and_psp_reference_keyed_by_the_payment() -> None:
    capture = {
        "pspReference": "C1",
        "originalReference": "P1",
        "eventCode": "CAPTURE",
        "success": "true",
    }
    body = {"live": "false", "notificationItems": [{"NotificationRequestItem": capture}]}
    assert provider("adyen", {}, body) == ("CAPTURE:C1", "CAPTURE", "P1")
    with pytest.raises(UnusableEvent) as caught:
        provider("adyen", {}, {"notificationItems": []})
    assert caught.value.reason == "missing_event_id"
