"""GitLab: no signature, a shared secret token sent as is in ``X-Gitlab-Token``.

Compared in constant time over fixed-size digests, so neither the content nor the
length of a configured token shows in the timing. The body is not covered: TLS is
what keeps it intact.
"""

from __future__ import annotations

import hashlib
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
from hookstream.core.signatures.parsing import header_text

GITLAB_HEADER = "X-Gitlab-Token"


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    """A shared token in one header, any active token matching."""

    keys: tuple[SigningKey, ...]
    header: str = GITLAB_HEADER

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw = header_text(headers, self.header)
        if raw is None:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {self.header} is required")
        offered = hashlib.sha256(raw.encode("utf-8")).digest()
        expected = [hashlib.sha256(k).digest() for k in active_keys(self.keys, now)]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(None)
