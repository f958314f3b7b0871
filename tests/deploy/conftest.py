"""Shared fixtures of the deployment checks: the tools they run and what those render.

Every check needs a real tool (kustomize, docker compose, promtool) or the
offline Kubernetes schemas. `make deploy-tools` installs them. A missing one
skips the check on a workstation and fails it under CI=true, so CI never goes
green without having run a check.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOL_DIR = ROOT / ".hookstream" / "bin"
OVERLAYS = ("dev", "prod", "standalone")
# Overlays for clusters with Strimzi (topics as KafkaTopics) and the Prometheus
# Operator (ServiceMonitor, PrometheusRule). `standalone` brings its own Kafka
# and creates the topics with a Job running `hookstream topics create`.
WITH_OPERATORS = {"dev": True, "prod": True, "standalone": False}

Obj = dict[str, Any]


def missing(what: str) -> NoReturn:
    """Skip for a missing prerequisite, or fail when running in CI."""
    message = f"{what} is not installed: run `make deploy-tools`"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def find_tool(name: str) -> str:
    """Path of a command: the pinned one under .hookstream/bin first, then PATH."""
    pinned = TOOL_DIR / name
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which(name)
    if found is None:
        missing(name)
    return found


def require_module(name: str) -> ModuleType:
    """Import a Python package the checks need, or report it missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python package {name}")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


@dataclass(frozen=True)
class Manifests:
    """The objects `kustomize build` rendered for one overlay."""

    overlay: str
    objects: list[Obj]

    @property
    def with_operators(self) -> bool:
        """Whether the overlay expects Strimzi and the Prometheus Operator in the cluster."""
        return WITH_OPERATORS[self.overlay]

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, (
            f"{self.overlay}: expected one {kind} {name}, found {len(matches)}"
        )
        return matches[0]

    def workloads(self) -> Iterator[tuple[Obj, Obj]]:
        """Each object that runs pods, with its pod template."""
        for obj in self.objects:
            if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
                yield obj, obj["spec"]["template"]
            elif obj["kind"] == "CronJob":
                yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]

    def config_map_data(self, name_prefix: str, key: str) -> str:
        """The data item of the one generated ConfigMap whose name starts with the prefix."""
        maps = [
            m for m in self.of_kind("ConfigMap") if m["metadata"]["name"].startswith(name_prefix)
        ]
        assert len(maps) == 1, f"{self.overlay}: expected one ConfigMap {name_prefix}*"
        return str(maps[0]["data"][key])

    def hookstream_config(self) -> Obj:
        """The hookstream.yaml the workloads mount."""
        config: Obj = yaml.safe_load(self.config_map_data("hookstream-config", "hookstream.yaml"))
        return config


@pytest.fixture(scope="session")
def kustomize() -> str:
    return find_tool("kustomize")


def render(overlay: str, kustomize: str) -> Manifests:
    """`kustomize build` of one overlay; a failed build fails the test."""
    result = run(kustomize, "build", str(ROOT / "k8s" / "overlays" / overlay))
    if result.returncode != 0:
        pytest.fail(
            f"kustomize build k8s/overlays/{overlay} failed:\n{result.stderr}", pytrace=False
        )
    objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj]
    return Manifests(overlay=overlay, objects=objects)


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest, kustomize: str) -> Manifests:
    """The rendered objects of each overlay in turn."""
    return render(str(request.param), kustomize)


@pytest.fixture(scope="session", params=[o for o in OVERLAYS if WITH_OPERATORS[o]])
def operator_manifests(request: pytest.FixtureRequest, kustomize: str) -> Manifests:
    """The overlays for clusters with Strimzi and the Prometheus Operator."""
    return render(str(request.param), kustomize)


@pytest.fixture(scope="session", params=[o for o in OVERLAYS if not WITH_OPERATORS[o]])
def standalone_manifests(request: pytest.FixtureRequest, kustomize: str) -> Manifests:
    """The overlays that bring their own Kafka and create the topics with a Job."""
    return render(str(request.param), kustomize)
