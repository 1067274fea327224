"""`gitfirm demo` runs the whole loop on the embedded simulated fleet."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rich.console import Console

from reconciler.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


def _git(remote: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), *args], check=True, capture_output=True, text=True
    ).stdout


def test_demo_rolls_out_the_merged_change(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    assert run_demo(ROOT / "example-repo", tmp_path, console) == 0
    shown = console.export_text()
    assert "the webhook woke the daemon" in shown
    assert "lts-fleet wave 2" in shown
    assert "Where to look" in shown
    remote = tmp_path / "remote.git"
    readme = _git(remote, "show", "status:README.md")
    assert "| lts-fleet | 1.4.3 |" in readme
    assert "done=15" in readme
    assert _git(remote, "log", "status", "--grep", "Device: fra-core-1", "--format=%H").strip()
    notes = _git(remote, "notes", "--ref", "gitfirm", "list")
    assert notes.strip()
    # The merge is SSH-signed: the daemon applied it under the pinned strict AccessPolicy.
    assert "-----BEGIN SSH SIGNATURE-----" in _git(remote, "cat-file", "commit", "main")
