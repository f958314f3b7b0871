"""Read the control topic once at start: which replayed offsets must run again."""

from __future__ import annotations

import structlog

from hookstream.config import Settings
from hookstream.core.control import ReprocessRange, ReprocessRanges
from hookstream.kafka.reading import ReadError, TopicNotFound, read_to_end
from hookstream.kafka.topics import control_topic

log = structlog.get_logger("hookstream.worker")


def read_reprocess_ranges(settings: Settings, timeout: float = 10.0) -> ReprocessRanges:
    """Every reprocess instruction for this worker's group, latest per partition."""
    ranges = ReprocessRanges()
    group = settings.worker.group_id
    try:
        for record in read_to_end(
            settings, control_topic(settings), timeout=timeout, group_id=f"{group}-control-reader"
        ):
            if record.value:
                item = ReprocessRange.from_bytes(record.value)
                if item.group == group:
                    ranges.add(item)
    except TopicNotFound:
        return ranges
    except ReadError as exc:
        log.warning("control_topic_unreadable", error=str(exc))
    if ranges.ranges:
        log.info("reprocess_ranges", ranges=[r.to_bytes().decode() for r in ranges.ranges.values()])
    return ranges
