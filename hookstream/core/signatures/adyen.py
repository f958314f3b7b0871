"""Adyen: every notification item carries its own ``additionalData.hmacSignature``,
base64 HMAC-SHA256 keyed with the hex HMAC key over the item's fields
``pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
eventCode:success`` (a missing field is empty). A request verifies when every item does.
Adyen signs no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookstream.core.signatures.base import (
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.body_fields import json_document, text_field
from hookstream.core.signatures.parsing import b64decode_strict

FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


def adyen_key(hex_key: str) -> bytes:
    """The HMAC key as Adyen shows it (hex) into bytes; ValueError otherwise."""
    try:
        key = bytes.fromhex(hex_key.strip())
    except ValueError:
        raise ValueError("an Adyen HMAC key must be hex") from None
    if not key:
        raise ValueError("an Adyen HMAC key must not be empty")
    return key


def signed_text(item: Mapping[str, Any]) -> str | None:
    """The colon-joined fields of one NotificationRequestItem; None if one is not text."""
    amount = item.get("amount")
    amount = amount if isinstance(amount, dict) else {}
    values = {**item, "value": amount.get("value"), "currency": amount.get("currency")}
    parts = []
    for name in FIELDS:
        value = values.get(name)
        text = "" if value is None else text_field(value)
        if text is None:
            return None
        parts.append(text)
    return ":".join(parts)


def adyen_signature(key: bytes, item: Mapping[str, Any]) -> str:
    """The ``hmacSignature`` Adyen puts on one item."""
    text = signed_text(item)
    if text is None:
        raise ValueError("a signed field of the item is not text or a number")
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_adyen(key: bytes, body: bytes) -> bytes:
    """`body` (a notification) with every item signed as Adyen signs it."""
    doc = json.loads(body)
    for entry in doc.get("notificationItems", []):
        item = entry["NotificationRequestItem"]
        item.setdefault("additionalData", {})["hmacSignature"] = adyen_signature(key, item)
    return json.dumps(doc, separators=(",", ":")).encode()


def _items(doc: Any) -> list[Mapping[str, Any]]:
    entries = doc.get("notificationItems") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise VerificationError(Reason.MISSING_SIGNATURE, "the body has no notificationItems")
    items: list[Mapping[str, Any]] = []
    for entry in entries:
        item = entry.get("NotificationRequestItem") if isinstance(entry, dict) else None
        if not isinstance(item, dict):
            raise VerificationError(Reason.MALFORMED_SIGNATURE, "not a NotificationRequestItem")
        items.append(item)
    return items


@dataclass(frozen=True, slots=True)
class AdyenVerifier:
    """Every item's HMAC, with any active key."""

    keys: tuple[SigningKey, ...]

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        items = _items(json_document(body, "Adyen's notification items"))
        keys = active_keys(self.keys, now)
        for item in items:
            extra = item.get("additionalData")
            raw = text_field(extra.get("hmacSignature")) if isinstance(extra, dict) else None
            if not raw:
                raise VerificationError(Reason.MISSING_SIGNATURE, "an item has no hmacSignature")
            offered = b64decode_strict(raw)
            text = signed_text(item)
            if text is None:
                raise VerificationError(Reason.BAD_SIGNATURE, "a signed field is not text")
            content = text.encode("utf-8", "surrogatepass")
            expected = [hmac.new(k, content, hashlib.sha256).digest() for k in keys]
            if not any_matches(expected, [offered]):
                raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(None)
