"""Imports run one way: core <- config/kafka <- ingress, worker, ops <- cli.

The layers are described in docs/architecture.md. Every import in the project's own
packages, lazy ones inside functions included, is checked against them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hookstream", "ingress", "streams", "schemas")

# The lowest layer a module belongs to, by the longest matching name prefix.
LAYERS: dict[str, int] = {
    "hookstream.errors": 0,
    "hookstream.core": 0,
    "schemas": 0,
    "hookstream": 1,  # config, kafka, telemetry, metrics, the local broker, sources
    "ingress": 2,
    "streams": 2,
    "hookstream.ops": 2,
    "hookstream.devtools": 2,
    "hookstream.sinks": 2,
    "hookstream.cli": 3,
}
# Layer-2 components stand side by side: none imports another. The operator and developer
# tools (ops, devtools) are one component.
COMPONENTS = {
    "ingress": "ingress",
    "streams": "streams",
    "hookstream.ops": "tools",
    "hookstream.devtools": "tools",
    "hookstream.sinks": "sinks",
}
# Pure code: no I/O frameworks.
IMPURE = ("aiohttp", "faust", "confluent_kafka", "aiokafka", "pydantic", "pydantic_settings", "os")


def _prefix(module: str, names: tuple[str, ...] | list[str]) -> str | None:
    matches = [n for n in names if module == n or module.startswith(n + ".")]
    return max(matches, key=len) if matches else None


def component(module: str) -> str | None:
    prefix = _prefix(module, list(COMPONENTS))
    return None if prefix is None else COMPONENTS[prefix]


def layer(module: str) -> int | None:
    prefix = _prefix(module, list(LAYERS))
    return None if prefix is None else LAYERS[prefix]


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found.append((name, path))
    return sorted(found)


def imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")[: -node.level or None]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


MODULES = modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_module_imports_a_higher_layer(module: str, path: Path) -> None:
    own = layer(module)
    assert own is not None
    upward = [n for n in imports(path, module) if (other := layer(n)) is not None and other > own]
    assert not upward, f"{module} (layer {own}) imports {upward}"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_components_do_not_import_each_other(module: str, path: Path) -> None:
    mine = component(module)
    if mine is None:
        return
    across = [
        n for n in imports(path, module) if (theirs := component(n)) is not None and theirs != mine
    ]
    assert not across, f"{module} imports {across}"


@pytest.mark.parametrize(
    ("module", "path"), [(m, p) for m, p in MODULES if layer(m) == 0], ids=lambda v: str(v)
)
def test_the_core_is_pure(module: str, path: Path) -> None:
    impure = [n for n in imports(path, module) if n.split(".")[0] in IMPURE]
    assert not impure, f"{module} imports {impure}"
