"""The image built from the project's Dockerfile, with a real engine (`make e2e` builds it)."""

from __future__ import annotations

import json

from .conftest import run

IMAGE = "hookstream:dev"


def docker_run(*args: str, entrypoint: str | None = None) -> str:
    options = ["--rm", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if entrypoint:
        options += ["--entrypoint", entrypoint]
    return run("docker", "run", *options, IMAGE, *args, timeout=60)


def test_entrypoint_is_hookstream_as_a_non_root_user() -> None:
    config = json.loads(run("docker", "image", "inspect", IMAGE))[0]["Config"]
    assert config["Entrypoint"] == ["hookstream"]
    assert config["User"] == "10001:10001"
    assert "Commands:" in docker_run("--help")
    assert docker_run("-u", entrypoint="id").strip() == "10001"


def test_every_command_starts_on_a_read_only_root_filesystem() -> None:
    for command in ("ingress", "worker", "topics", "dlq", "replay", "events"):
        assert "Usage:" in docker_run(command, "--help"), command


def test_runtime_stage_carries_no_compiler() -> None:
    found = docker_run("-c", "command -v gcc cc make || true", entrypoint="sh")
    assert found.strip() == ""
