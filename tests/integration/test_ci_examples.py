"""The CI examples work as copied: each example's own commands (not the forge's runner) run
in a real clone of a config repository with a status branch on its remote, against the fake
forge of its kind, with the variables that runner provides.

The commands are read from the example files themselves: every ``run:`` step of the Actions
workflows except checkout, Python setup and the install step, and every ``script:`` line of
the GitLab job. A ``${{ ... }}`` expression must be one the test knows how to fill, so an
example and its test cannot drift apart. The pre-commit hook's entry runs the same way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from reconciler.model.loader import load_repository
from tests.support.forge import FakeForge
from tests.support.gitrepo import clone, commit_files, git, git_env, make_remote, push
from tests.support.planning import facts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "ci"
EXAMPLE_REPO = ROOT / "example-repo"
BIN = Path(sys.executable).parent  # where the `gitfirm` console script of this venv lives
_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
# What each example's file is, and which forge it talks to.
CASES = {
    "github-actions.yml": "github",
    "gitea-actions.yml": "gitea",
    "gitlab-ci.yml": "gitlab",
}


@dataclass
class Step:
    name: str
    env: dict[str, str]
    script: str


def _steps(example: str, expressions: dict[str, str]) -> list[Step]:
    """The commands of ``example`` a test can run (no checkout, setup or install)."""
    doc: dict[Any, Any] = yaml.safe_load((EXAMPLES / example).read_text("utf-8"))
    steps: list[Step] = []
    if example == "gitlab-ci.yml":
        job = doc["gitfirm"]
        variables = {k: str(v) for k, v in (job.get("variables") or {}).items()}
        for i, line in enumerate(job["script"]):
            steps.append(Step(f"script[{i}]", variables, line))
        return steps
    for job in doc["jobs"].values():
        for i, step in enumerate(job["steps"]):
            if "uses" in step or step.get("name", "").startswith("Install"):
                continue
            env = {k: _resolve(str(v), expressions) for k, v in (step.get("env") or {}).items()}
            assert not _EXPR.search(step["run"]), f"{example}: an expression in run: {step}"
            steps.append(Step(step.get("name", f"step {i}"), env, step["run"]))
    return steps


def _resolve(value: str, expressions: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        assert expr in expressions, f"the test does not know ${{{{ {expr} }}}}"
        return expressions[expr]

    return _EXPR.sub(one, value)


def _status_docs() -> dict[str, str]:
    """A status branch: every example device observed, the lts ones on 1.4.2."""
    state = load_repository(EXAMPLE_REPO).state
    assert state is not None
    files = {}
    for name, device in sorted(state.devices.items()):
        lts = device.metadata.labels.get("train") == "lts"
        observed = facts(name, "1.4.2" if lts else "2025.11.03-0019-rolling").model_dump(
            mode="json"
        )
        doc = {"name": name, "observed": observed, "phase": "pending", "tls": {}}
        files[f"devices/{name}.yaml"] = yaml.safe_dump(doc)
    return files


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A pull request's checkout: the example config repository on a topic branch, whose
    remote also has a status branch written as gitfirm writes it."""
    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    files = {
        str(p.relative_to(EXAMPLE_REPO)): p.read_text("utf-8")
        for p in sorted(EXAMPLE_REPO.rglob("*"))
        if p.is_file()
    }
    commit_files(work, files, "fleet")
    push(work)
    status = clone(remote, tmp_path / "status-work")
    git(status, "checkout", "--quiet", "--orphan", "status")
    git(status, "rm", "-r", "--quiet", "-f", ".")
    commit_files(status, _status_docs(), "status")
    push(status, "status")
    git(work, "checkout", "--quiet", "-b", "raise-lts")
    commit_files(work, {"README.md": "Raise the lts fleet.\n"}, "raise lts")
    return work


def _runner_env(kind: str, fake: FakeForge, number: int, temp: Path) -> dict[str, str]:
    """The variables the forge's runner (and the repository's secrets) give each step."""
    env = git_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    temp.mkdir(exist_ok=True)
    if kind == "gitlab":
        env.update({
            "CI_API_V4_URL": fake.api_root, "CI_PROJECT_PATH": fake.repo,
            "CI_MERGE_REQUEST_IID": str(number), "CI_PIPELINE_SOURCE": "merge_request_event",
            "GITFIRM_GITLAB_TOKEN": fake.token, "TMPDIR": str(temp),
        })  # fmt: skip
    else:
        # Gitea's and Forgejo's runners set the same GITHUB_* variables as GitHub's.
        env.update({
            "GITHUB_API_URL": fake.api_root, "GITHUB_REPOSITORY": fake.repo,
            "RUNNER_TEMP": str(temp), "CI": "true",
        })  # fmt: skip
    return env


def _expressions(kind: str, fake: FakeForge, number: int) -> dict[str, str]:
    return {
        "secrets.GITHUB_TOKEN": fake.token,
        "secrets.GITEA_TOKEN": fake.token,
        "github.api_url": fake.api_root,
        "github.event.pull_request.number": str(number),
    }


def _run(step: Step, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step.script],
        cwd=cwd,
        env={**env, **step.env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("example", sorted(CASES))
def test_each_example_validates_plans_and_keeps_one_comment(
    example: str, checkout: Path, httpserver: HTTPServer, tmp_path: Path
) -> None:
    kind = CASES[example]
    fake = FakeForge(httpserver, kind)  # type: ignore[arg-type]
    number = fake.open_pull(head="raise-lts")
    fake.seed_comment(number, "Looks fine to me")
    env = _runner_env(kind, fake, number, tmp_path / "runner")
    steps = _steps(example, _expressions(kind, fake, number))
    assert any("gitfirm validate" in s.script for s in steps), example
    assert any("--comment-pr" in s.script for s in steps), example

    for attempt in (1, 2):  # a second push to the pull request runs the job again
        for step in steps:
            done = _run(step, checkout, env)
            assert done.returncode == 0, (example, step.name, done.stdout, done.stderr)
            if "validate" in step.script and "github" in step.script:
                assert "::error" not in done.stdout
        ours = [b for b in fake.bodies(number) if "<!-- gitfirm:plan " in b]
        assert len(ours) == 1, (attempt, fake.bodies(number))

    (body,) = ours
    assert "### gitfirm plan" in body
    state = load_repository(EXAMPLE_REPO).state
    assert state is not None and all(name in body for name in state.devices)
    # The plan read the status branch from the remote: devices are observed, not unknown.
    assert "no observations given" not in body
    assert "Looks fine to me" in fake.bodies(number)
    status_dir = tmp_path / "runner" / "gitfirm-status" / "devices"
    assert len(list(status_dir.glob("*.yaml"))) == len(state.devices)
    if kind == "gitlab":
        sarif = json.loads((checkout / "gitfirm.sarif").read_text("utf-8"))
        assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"] == []


def test_the_github_example_fails_an_invalid_change_with_an_annotation(
    checkout: Path, httpserver: HTTPServer, tmp_path: Path
) -> None:
    fake = FakeForge(httpserver, "github")
    number = fake.open_pull(head="raise-lts")
    env = _runner_env("github", fake, number, tmp_path / "runner")
    policies = sorted((checkout / "policies").glob("*.yaml"))
    policy = next(p for p in policies if "maxParallel:" in p.read_text("utf-8"))
    text = policy.read_text("utf-8")
    policy.write_text(re.sub(r"maxParallel: \d+", "maxParallel: 0", text, count=1), "utf-8")
    (validate,) = [s for s in _steps("github-actions.yml", _expressions("github", fake, number))
                   if "gitfirm validate" in s.script]  # fmt: skip
    done = _run(validate, checkout, env)
    assert done.returncode == 1
    line = next(x for x in done.stdout.splitlines() if x.startswith("::error"))
    assert line.startswith(f"::error file=policies/{policy.name},line=")
    assert "maxParallel" in line


def test_the_pre_commit_hook_runs_gitfirm_validate(checkout: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text("utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "gitfirm-validate"]
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    command = " ".join([hook["entry"], *hook.get("args", [])])
    env = git_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    ok = _run(Step("hook", {}, command), checkout, env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("valid: ")
    device = next(p for p in sorted((checkout / "fleet").glob("*.yaml")))
    device.write_text(
        device.read_text("utf-8").replace("apiVersion: gitfirm.io/v1", "apiVersion: v0", 1)
    )
    bad = _run(Step("hook", {}, command), checkout, env)
    assert bad.returncode == 1
    assert f"error: fleet/{device.name}:" in bad.stderr
    assert re.search(hook["files"], f"fleet/{device.name}")
