"""Reading signature fields out of a request body: JSON or form, total like the parsers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from hookstream.core.signatures.base import Reason, VerificationError


def json_document(body: bytes, what: str) -> Any:
    """The body as JSON; MALFORMED_SIGNATURE (naming `what`) if it cannot be read."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise VerificationError(
            Reason.MALFORMED_SIGNATURE, f"the body must be JSON to read {what}"
        ) from None


def form_fields(body: bytes) -> dict[str, str]:
    """A form-encoded body's fields, first value of each; empty if it is not a form."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    fields: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def text_field(value: Any) -> str | None:
    """A signed field as the sender wrote it: strings as-is, integers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
