"""Redrives started from the console, run in the background, with their progress."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from hookstream.config import Settings
from hookstream.errors import HookstreamError
from hookstream.kafka.reading import read_at
from hookstream.kafka.topics import dlq_topic
from hookstream.ops.dlq import entry_of, redrive

log = structlog.get_logger("hookstream.console")
CHUNK = 200  # DLQ entries per redrive call: progress moves at least every chunk
KEEP = 50  # finished jobs remembered


@dataclass
class RedriveJob:
    id: str
    by: str
    total: int
    done: int = 0
    missing: int = 0
    error: str | None = None
    finished: bool = False
    started_at: float = field(default_factory=time.time)
    event_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "by": self.by,
            "total": self.total,
            "done": self.done,
            "missing": self.missing,
            "error": self.error,
            "finished": self.finished,
            "event_ids": self.event_ids[:100],
        }


class RedriveJobs:
    """The console's redrives: each reads only the DLQ records it was given, by offset."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jobs: dict[str, RedriveJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, job_id: str) -> RedriveJob | None:
        return self._jobs.get(job_id)

    def start(self, positions: list[tuple[int, int]], event_ids: list[str], by: str) -> RedriveJob:
        job = RedriveJob(uuid.uuid4().hex[:12], by, len(positions), event_ids=event_ids)
        self._jobs[job.id] = job
        for old in list(self._jobs)[:-KEEP]:
            if self._jobs[old].finished:
                del self._jobs[old]
        task = asyncio.get_running_loop().create_task(self._run(job, positions))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: RedriveJob, positions: list[tuple[int, int]]) -> None:
        try:
            ordered = sorted(positions)
            for start in range(0, len(ordered), CHUNK):
                chunk = ordered[start : start + CHUNK]
                done, missing = await asyncio.to_thread(self._redrive_chunk, chunk, job.by)
                job.done += done
                job.missing += missing
        except HookstreamError as exc:
            job.error = str(exc)
            log.warning("console_redrive_failed", job=job.id, error=str(exc))
        except Exception as exc:  # a bug of ours: the job says so rather than running forever
            job.error = f"{type(exc).__name__}: {exc}"
            log.exception("console_redrive_failed", job=job.id)
        finally:
            job.finished = True
            log.info("console_redrive", job=job.id, by=job.by, done=job.done, total=job.total)

    def _redrive_chunk(self, positions: list[tuple[int, int]], by: str) -> tuple[int, int]:
        records = read_at(self._settings, dlq_topic(self._settings), positions)
        entries = [entry_of(records[p]) for p in positions if p in records]
        redriven = redrive(self._settings, entries, by=by) if entries else 0
        return redriven, len(positions) - len(entries)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
