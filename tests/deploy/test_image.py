"""The Dockerfile builds a slim, non-root runtime image that the manifests can run."""

from __future__ import annotations

import json
import re

import yaml

from .conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> list[list[str]]:
    """The Dockerfile's instructions, continuation lines joined, grouped by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    grouped: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def runtime_stage() -> list[str]:
    return stages()[-1]


def build_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert match, f"no default for build argument {name}"
    return match[1]


def test_image_is_multi_stage_on_python_311_slim() -> None:
    assert len(stages()) >= 2
    assert build_arg("PYTHON_IMAGE").startswith("python:3.11-slim")
    assert all(stage[0].startswith("FROM ${PYTHON_IMAGE}") for stage in stages())


def test_runtime_stage_has_no_compilers_or_package_caches() -> None:
    runtime = " ".join(runtime_stage())
    assert "apt-get install" not in runtime
    assert "pip install" not in runtime
    assert "COPY --from=build /opt/hookstream /opt/hookstream" in runtime_stage()
    build = " ".join(stages()[0])
    assert "PIP_NO_CACHE_DIR=1" in build


def test_runtime_runs_hookstream_as_the_uid_the_manifests_expect() -> None:
    (user,) = [i.split()[1] for i in runtime_stage() if i.startswith("USER ")]
    uid = int(user.split(":")[0].replace("${UID}", build_arg("UID")))
    assert uid != 0
    (entrypoint,) = [
        i.removeprefix("ENTRYPOINT ") for i in runtime_stage() if i.startswith("ENTRYPOINT ")
    ]
    assert json.loads(entrypoint) == ["hookstream"]

    for path in (ROOT / "k8s" / "base").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            if spec:
                assert spec["securityContext"]["runAsUser"] == uid, path


def test_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".hookstream", "tests", "k8s"} <= ignored
    assert "README.md" not in ignored, "pyproject.toml reads it at build time"
