"""`.ci/run` is what CI executes: it must at least parse, and end by running `make test`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_ci_script_parses_and_runs_make_test() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    checked = subprocess.run([bash, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    lines = [line.strip() for line in SCRIPT.read_text().splitlines() if line.strip()]
    assert lines[-1] == "make test"
    assert "set -euo pipefail" in lines
