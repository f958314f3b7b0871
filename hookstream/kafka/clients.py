"""confluent-kafka client configs built from the settings: one place for every client's
connection and for the producer's durability."""

from __future__ import annotations

from typing import Any

from hookstream.config import Settings


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: bootstrap servers plus `kafka.client` (security, SASL, SSL)."""
    return settings.kafka.to_librdkafka(**extra)


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A durable producer that partitions keys as Java clients and Faust do (murmur2), so
    every topic hookstream writes stays co-partitioned whoever writes it."""
    return client_config(
        settings,
        **{"enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random", **extra},
    )
