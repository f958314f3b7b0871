"""Topic names and layouts, all derived from the config (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hookstream.config import Settings

DEDUPE_TABLE = "dedupe"
LANES_TABLE = "lanes"  # blocked lanes (ordering: entity)
PARKED_TABLE = "parked"  # records parked behind them


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def max_record_bytes(settings: Settings) -> int:
    """Room for the largest accepted body plus its envelope and retry headers."""
    return max(1_048_588, settings.ingress.max_body_bytes + 256 * 1024)


def min_insync_replicas(replication_factor: int) -> int:
    """Replicas that must have a record before `acks=all` is answered: every replica up to
    two, then all but one, so a write is on two brokers before a 202 whenever there are two,
    and one broker may be down without stopping writes once there are three or more."""
    return replication_factor if replication_factor <= 2 else replication_factor - 1


def retry_topic(settings: Settings, tier: int) -> str:
    return f"{settings.topics.events}.retry.{tier}"


def dlq_topic(settings: Settings) -> str:
    return f"{settings.topics.events}.dlq"


def audit_topic(settings: Settings) -> str:
    return f"{settings.topics.events}.audit"


def control_topic(settings: Settings) -> str:
    return f"{settings.topics.events}.control"


def changelog_topic(settings: Settings, table: str = DEDUPE_TABLE) -> str:
    """The changelog of one of the worker's tables, named as Faust names it."""
    return f"{settings.worker.group_id}-{table}-changelog"


def parked_record_bytes(settings: Settings) -> int:
    """Room for a parked record: the largest record, base64 inside JSON."""
    return max_record_bytes(settings) * 4 // 3 + 64 * 1024


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic hookstream uses; all co-partitioned with the events topic."""
    topics = settings.topics

    def spec(name: str, purpose: str, **config: str) -> TopicSpec:
        config = {
            "max.message.bytes": str(max_record_bytes(settings)),
            "min.insync.replicas": str(min_insync_replicas(topics.replication_factor)),
            **config,
        }
        return TopicSpec(name, topics.partitions, topics.replication_factor, config, purpose)

    specs = [spec(topics.events, "received events")]
    for tier, delay in enumerate(settings.retry.schedule):
        specs.append(spec(retry_topic(settings, tier), f"retry tier {tier} ({delay:g}s delay)"))
    specs.append(spec(dlq_topic(settings), "dead letters", **{"retention.ms": "-1"}))
    window = str(int(settings.dedupe.ttl * 1000))
    specs.append(spec(audit_topic(settings), "audit trail per event", **{"retention.ms": window}))
    specs.append(
        TopicSpec(
            control_topic(settings),
            1,
            topics.replication_factor,
            {
                "cleanup.policy": "compact",
                # Workers publish their status every few seconds: hourly segments let
                # compaction keep the latest per worker, and a starting worker reads little.
                "segment.ms": str(3600 * 1000),
                "min.insync.replicas": str(min_insync_replicas(topics.replication_factor)),
            },
            "operator instructions to the worker (replay --reprocess)",
        )
    )
    specs.append(
        spec(changelog_topic(settings), "dedupe table changelog", **changelog_config(settings))
    )
    specs.append(
        spec(
            changelog_topic(settings, LANES_TABLE),
            "blocked lanes (ordering: entity) changelog",
            **lane_changelog_config(settings),
        )
    )
    specs.append(
        spec(
            changelog_topic(settings, PARKED_TABLE),
            "parked records changelog",
            **lane_changelog_config(settings),
            **{"max.message.bytes": str(parked_record_bytes(settings))},
        )
    )
    return specs


def changelog_config(settings: Settings) -> dict[str, str]:
    """Compacted, and also deleted past the dedupe window: the table's disk stays bounded."""
    return {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(settings.dedupe.ttl * 1000)),
    }


def lane_changelog_config(settings: Settings) -> dict[str, str]:
    """Compacted and never deleted by age: a lane held for weeks keeps what it parked."""
    return {"cleanup.policy": "compact", "retention.ms": "-1"}
