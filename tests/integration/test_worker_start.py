"""The worker refuses to start without the topics it needs, naming the command to run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hookstream.config import Settings
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_a_new_group_without_its_changelog_topic_refuses_to_start(
    make_settings: Callable[..., tuple[Settings, Path]], tmp_path: Path
) -> None:
    settings, path = make_settings()
    config = yaml.safe_load(path.read_text())
    config["worker"]["group_id"] = settings.worker.group_id + "-renamed"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(config))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hookstream.cli", "worker", "--config", str(renamed)],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the worker started (and ran) without its dedupe changelog topic")
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert f"{settings.worker.group_id}-renamed-dedupe-changelog" in err
    assert "hookstream topics create" in err
