"""Topic layouts derived from the config (pure)."""

from __future__ import annotations

import pytest

from hookstream.config import Settings
from hookstream.kafka.topics import topic_specs


@pytest.mark.parametrize(("replication", "in_sync"), [(1, "1"), (2, "2"), (3, "2"), (5, "4")])
def test_every_topic_sets_min_insync_replicas_from_the_replication_factor(
    replication: int, in_sync: str
) -> None:
    settings = Settings(topics={"replication_factor": replication})
    specs = topic_specs(settings)
    assert {s.config.get("min.insync.replicas") for s in specs} == {in_sync}


def test_the_control_topic_rolls_hourly_so_compaction_keeps_it_small() -> None:
    from hookstream.kafka.topics import control_topic

    settings = Settings()
    (control,) = [t for t in topic_specs(settings) if t.name == control_topic(settings)]
    assert control.config["cleanup.policy"] == "compact"
    assert int(control.config["segment.ms"]) <= 3600 * 1000
