"""The container image: installed from requirements.lock, with tini, labels, a volume and a
HEALTHCHECK that runs ``gitfirm health``. No docker here, so the Dockerfile is read, and
the lock is checked to satisfy pyproject.toml for the image's Python."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text("utf-8")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _lock_python() -> str:
    found = re.search(r"^LOCK_PYTHON := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found
    return found.group(1)


def _pins() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of requirements.lock."""
    text = (ROOT / "requirements.lock").read_text("utf-8")
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=\S)", text):
        head = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", block)
        if head:
            name = canonicalize_name(head.group(1).split("[")[0])
            assert name not in pins, f"{name} pinned twice"
            pins[name] = (head.group(2), block.count("--hash=sha256:"))
    return pins


def test_lock_satisfies_pyproject_for_the_image_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    pins = _pins()
    env = {k: str(v) for k, v in default_environment().items()}
    env["python_version"] = _lock_python()
    assert all(hashes > 0 for _, hashes in pins.values())
    for text in project["dependencies"]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), (name, version)


def test_image_installs_the_lock_with_hashes_then_the_package_alone() -> None:
    steps = _instructions()
    runs = [args for word, args in steps if word == "RUN"]
    lock_step = next(i for i, r in enumerate(runs) if "requirements.lock" in r)
    assert "--require-hashes" in runs[lock_step] and "--no-deps" in runs[lock_step]
    assert any("install --no-deps ." in r for r in runs[lock_step + 1 :])
    froms = [args for word, args in steps if word == "FROM"]
    assert all(f.startswith("python:${PYTHON_VERSION}-slim") for f in froms)
    assert f"ARG PYTHON_VERSION={_lock_python()}" in DOCKERFILE


def test_image_init_labels_volume_and_healthcheck() -> None:
    steps = dict(_instructions())
    assert json.loads(steps["ENTRYPOINT"])[:2] == ["tini", "--"]
    assert "tini" in next(a for w, a in _instructions() if w == "RUN" and "apt-get" in a)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG VERSION={version}" in DOCKERFILE
    for label in ("title", "version", "source", "licenses", "description"):
        assert f"org.opencontainers.image.{label}=" in steps["LABEL"]
    (volume,) = json.loads(steps["VOLUME"])
    health = steps["HEALTHCHECK"]
    command = json.loads(health[health.index("CMD ") + 4 :])  # exec form: a JSON list
    assert command[:2] == ["gitfirm", "health"]
    assert command[command.index("--state-dir") + 1] == volume
    assert steps["WORKDIR"] == volume


def test_image_carries_the_example_for_demo() -> None:
    # `gitfirm demo` looks in <sys.prefix>/share/gitfirm when not run from a checkout.
    venv = re.search(r"python -m venv (\S+)", DOCKERFILE)
    assert venv
    copy = next(a for w, a in _instructions() if w == "COPY" and a.startswith("example-repo"))
    assert copy.split()[1] == f"{venv.group(1)}/share/gitfirm/example-repo"
    assert (ROOT / "example-repo" / "fleet").is_dir()
