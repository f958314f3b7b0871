"""The `hookstream` command without a broker: `--config` reaches `run`'s children, `send --url`
takes a base or a full URL, `dlq show --json` prints one JSON value, the demo's accounting,
and nothing below the CLI imports it."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hookstream.cli import main
from hookstream.cli.supervisor import Child, Exit, Outcome
from hookstream.devtools import Trail, pick_sample, webhook_url, whereabouts
from tests.conftest import STANDARD_SECRET

ROOT = Path(__file__).resolve().parents[2]


def config(path: Path, port: int = 18080) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "ingress": {"port": port},
                "sources": {"std": {"scheme": "standard", "secrets": [STANDARD_SECRET]}},
            }
        )
    )
    return path


# --- send --url ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:8080", "http://localhost:8080/webhooks/std"),
        ("http://localhost:8080/", "http://localhost:8080/webhooks/std"),
        ("http://localhost:8080/webhooks/std", "http://localhost:8080/webhooks/std"),
        ("http://localhost:8080/webhooks/std/", "http://localhost:8080/webhooks/std"),
        ("http://localhost:8080/webhooks", "http://localhost:8080/webhooks/std"),
        ("https://hooks.example.com/edge", "https://hooks.example.com/edge/webhooks/std"),
        ("https://h.example.com/edge/webhooks/std", "https://h.example.com/edge/webhooks/std"),
        ("http://localhost:8080/webhooks/std?x=1", "http://localhost:8080/webhooks/std?x=1"),
    ],
)
def test_send_url_is_a_base_or_the_full_webhook_url(url: str, expected: str) -> None:
    assert webhook_url(url, "std") == expected


def test_send_refuses_the_url_of_another_source(tmp_path: Path) -> None:
    path = config(tmp_path / "c.yaml")
    url = "http://localhost:1/webhooks/stripe"
    result = CliRunner().invoke(main, ["send", "std", "--url", url, "--config", str(path)])
    assert result.exit_code == 2
    assert "URL of source 'stripe', not of 'std'" in result.output


# --- run: the children read the file the parent loaded ---


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Child]:
    """`run` with its broker check, topic creation and supervisor replaced; the children it
    would start are collected."""
    children: list[Child] = []

    class FakeSupervisor:
        def __init__(self, given: list[Child], **_: Any) -> None:
            children.extend(given)

        def run(self, on_stop: Any = None) -> Outcome:
            on_stop()
            return Outcome(2, tuple(Exit(c.name, 0, True, False) for c in children))

    monkeypatch.setattr("hookstream.broker.local.answers_metadata", lambda *a, **k: True)
    monkeypatch.setattr("hookstream.kafka.admin.create_topics", lambda settings: [])
    monkeypatch.setattr("hookstream.cli.supervisor.Supervisor", FakeSupervisor)
    monkeypatch.delenv("HOOKSTREAM_CONFIG", raising=False)
    return children


def config_args(child: Child) -> list[str]:
    argv = list(child.argv)
    return argv[argv.index(child.name) + 1 :]


def test_run_gives_its_children_the_config_file_it_was_given(
    started: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = config(tmp_path / "other.yaml", port=18181)
    monkeypatch.setenv("HOOKSTREAM_CONFIG", str(config(tmp_path / "decoy.yaml")))
    result = CliRunner().invoke(main, ["run", "--config", str(other)])
    assert result.exit_code == 0, result.output
    assert "ingress on :18181" in result.output
    assert [c.name for c in started] == ["worker", "ingress"]
    for child in started:
        assert config_args(child) == ["--config", str(other.resolve())]
    assert result.output.splitlines()[-2:] == ["stopping ...", "stopped"]


def test_run_gives_its_children_the_file_hookstream_config_names(
    started: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = config(tmp_path / "named.yaml")
    monkeypatch.setenv("HOOKSTREAM_CONFIG", str(named))
    assert CliRunner().invoke(main, ["run"]).exit_code == 0
    assert all(config_args(c) == ["--config", str(named.resolve())] for c in started)


def test_run_gives_its_children_the_default_file_from_its_own_directory(
    started: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config(tmp_path / "hookstream.yaml")
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["run"]).exit_code == 0
    expected = ["--config", str((tmp_path / "hookstream.yaml").resolve())]
    assert all(config_args(c) == expected for c in started)


def test_run_without_a_file_gives_no_config_option(
    started: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["run"]).exit_code == 0
    assert all(config_args(c) == [] for c in started)


def test_run_names_the_child_that_failed_and_exits_1(
    started: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = Outcome(None, (Exit("ingress", 3, False, False), Exit("worker", 0, True, False)))
    monkeypatch.setattr(
        "hookstream.cli.supervisor.Supervisor.run", lambda self, on_stop=None: failed
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1
    assert "error: ingress exited on its own with code 3" in result.output


# --- dlq show --json: one value, serialized once ---


@dataclass
class FakeDeadLetter:
    event_id: str
    position: str
    source: str = "std"
    event_type: str = "t"
    dead_lettered_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def detail(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "position": self.position, "payload": 'é "q"'}


@pytest.mark.parametrize("copies", [1, 2])
def test_dlq_show_json_is_an_object_or_an_array_of_them(
    copies: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [FakeDeadLetter("e-1", f"0/{n}") for n in range(copies)]
    entries.append(FakeDeadLetter("other", "1/0"))
    monkeypatch.setattr("hookstream.ops.dlq.dead_letters", lambda settings: entries)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dlq", "show", "e-1", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    details = [e.detail() for e in entries[:copies]]
    assert shown == (details[0] if copies == 1 else details)


# --- the demo's accounting ---


def trail(state: str, attempts: int = 1, tier: int | None = None) -> Trail:
    return Trail(state, attempts, tier, "ab" * 16)


def test_every_undelivered_event_has_a_place() -> None:
    events = ["d1", "d2", "r0", "r1", "dl", "seen", "gone", "proc", "else"]
    trails = {
        "d1": trail("delivered"),
        "d2": trail("delivered", 2),
        "r0": trail("retrying", 1, 0),
        "r1": trail("retrying", 2, 1),
        "dl": trail("dead_lettered", 3),
        "proc": trail("processing"),
        "else": trail("delivered"),
    }
    accepted = set(events) - {"gone"}
    places = whereabouts(events, accepted, {"d1", "d2"}, trails)
    assert places == {
        "not accepted by the ingress": ["gone"],
        "not yet seen by the worker": ["seen"],
        "being processed by the worker": ["proc"],
        "retrying in tier 0": ["r0"],
        "retrying in tier 1": ["r1"],
        "dead-lettered": ["dl"],
        "delivered, but not to the demo's sink": ["else"],
    }
    assert sum(len(ids) for ids in places.values()) + 2 == len(events)


def test_the_sample_is_an_event_delivered_after_a_retry_when_there_is_one() -> None:
    trails = {"a": trail("delivered"), "b": trail("delivered", 2), "c": trail("retrying", 1, 0)}
    assert pick_sample(["x", "a", "b", "c"], trails) == "b"
    assert pick_sample(["x", "a", "c"], trails) == "a"
    assert pick_sample(["x", "c"], trails) == "c"
    assert pick_sample(["x"], {}) == "x"
    assert pick_sample([], {}) is None


def test_a_trail_knows_the_tier_an_event_waits_in() -> None:
    steps = [
        {"kind": "received", "at": 1.0, "source": "demo", "trace_id": "t1"},
        {"kind": "attempt", "at": 2.0, "source": "demo", "attempt": 1},
        {"kind": "retry_scheduled", "at": 2.0, "source": "demo", "tier": 0, "attempts": 1},
        {"kind": "attempt", "at": 9.0, "source": "demo", "attempt": 2},
        {"kind": "retry_scheduled", "at": 9.0, "source": "demo", "tier": 1, "attempts": 2},
    ]
    assert Trail.of("e", steps) == Trail("retrying", 2, 1, "t1")
    delivered = [*steps, {"kind": "delivered", "at": 40.0, "source": "demo", "attempts": 3}]
    assert Trail.of("e", delivered) == Trail("delivered", 3, None, "t1")


# --- layering ---


def imported(node: ast.AST) -> list[str]:
    """The modules an import statement names (`from a import b` names `a` and `a.b`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return []


def test_nothing_below_the_cli_imports_it() -> None:
    offenders = []
    for package in ("hookstream", "ingress", "streams", "schemas"):
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "hookstream" / "cli"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if any(n.split(".")[:2] == ["hookstream", "cli"] for n in imported(node)):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
