"""Fixtures shared by integration tests of more than one module: real git remotes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gitrepo import seeded_remote
from tests.support.report import ConfigRemote, isolate_git, make_config_remote


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigRemote:
    """A bare config remote with one desired-state commit; git runs without user config."""
    isolate_git(monkeypatch, tmp_path)
    return make_config_remote(tmp_path)


@pytest.fixture
def source_remote(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote (``tmp_path/remote.git``) and its clone, with one fleet file and a README."""
    return seeded_remote(tmp_path, {"fleet/r1.yaml": "a: 1\n", "README.md": "hi\n"})
