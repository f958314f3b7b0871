"""The interfaces the core and the processor depend on; I/O code implements them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hookstream.core.dedupe import DedupeRecord


class DedupeStore(Protocol):
    """(source, event id) -> what was done about it."""

    def get(self, key: str) -> DedupeRecord | None: ...

    def put(self, key: str, record: DedupeRecord) -> None: ...


class Publisher(Protocol):
    """Writes records to Kafka."""

    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        """Write and wait for the broker's acknowledgement."""

    async def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        """Write without waiting for the acknowledgement (flushed before offsets commit)."""
