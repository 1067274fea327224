"""A config repository for the benches that run the whole daemon: real git, real signatures.

:func:`config_repo` makes a bare remote and a working clone holding the fleet's Device
documents (split into files, as operators split big fleets), signed images of the given
versions (simulated ISOs signed with a fresh minisign key), the TrustPolicy pinning that key
and a RolloutPolicy. Git runs without the user's or the system's configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from reconciler.images import minisign
from reconciler.simulator.iso import build_iso, iso_file_name

__all__ = ["commit_push", "config_repo", "policy_yaml", "wait_until"]

_META = {"apiVersion": "gitfirm.io/v1"}
DEVICES_PER_FILE = 1000
"""Device documents per file: well under the loader's per-file size cap."""


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.test",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.test",
        "GIT_TERMINAL_PROMPT": "0",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_push(work: Path, files: Mapping[str, str], message: str) -> str:
    """Write ``files`` in ``work``, commit, push to ``origin main``; returns the commit."""
    for rel, text in files.items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _git(work, "add", "-A")
    _git(work, "commit", "--quiet", "--no-gpg-sign", "-m", message)
    _git(work, "push", "--quiet", "origin", "main")
    return _git(work, "rev-parse", "HEAD")


def policy_yaml(target: str, selector: Mapping[str, str], **strategy: Any) -> str:
    """A RolloutPolicy ``fleet`` for ``selector``, always inside its window, no pause."""
    spec = {
        "selector": {"matchLabels": dict(selector)},
        "target": {"version": target},
        "strategy": {"canary": 0, "waves": [100], "pause": "0s", **strategy},
        "windows": [{"schedule": "0 0 * * *", "duration": "24h"}],
    }
    doc = {**_META, "kind": "RolloutPolicy", "metadata": {"name": "fleet"}, "spec": spec}
    return yaml.safe_dump(doc, sort_keys=False)


def _signed_images(upstream: Path, versions: Sequence[str]) -> tuple[str, str]:
    """Image documents (one YAML stream) and the TrustPolicy pinning their key."""
    key = minisign.generate_keypair()
    upstream.mkdir(parents=True, exist_ok=True)
    docs = []
    for version in versions:
        name = iso_file_name(version)
        data = build_iso(version, size=300_000)
        path = upstream / name
        path.write_bytes(data)
        sig = minisign.sign_file(path, key, timestamp=1_700_000_000)
        (upstream / f"{name}.minisig").write_text(minisign.format_signature(sig))
        spec = {
            "version": version,
            "channel": "production",
            "platforms": [{"arch": "amd64", "flavor": "generic"}],
            "source": {"url": path.as_uri()},
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "signature": {"minisign": {"key": "release"}},
        }
        meta = {"name": f"vyos-{version}".replace(".", "-")}
        docs.append({**_META, "kind": "Image", "metadata": meta, "spec": spec})
    trust = {
        **_META,
        "kind": "TrustPolicy",
        "metadata": {"name": "trust"},
        "spec": {
            "channels": ["production"],
            "minisign": [{"name": "release", "publicKey": key.public.to_base64()}],
        },
    }
    return yaml.safe_dump_all(docs, sort_keys=False), yaml.safe_dump(trust, sort_keys=False)


def config_repo(
    root: Path, devices: Sequence[Mapping[str, Any]], versions: Sequence[str], policy: str
) -> tuple[Path, Path]:
    """A bare remote ``root/remote.git`` and its clone ``root/work`` with one commit of the
    fleet, signed images of ``versions``, their trust and ``policy``; (remote, clone)."""
    images, trust = _signed_images(root / "upstream", versions)
    files = {"images/images.yaml": images, "trust/trust.yaml": trust, "policies/fleet.yaml": policy}
    for start in range(0, len(devices), DEVICES_PER_FILE):
        chunk = [dict(d) for d in devices[start : start + DEVICES_PER_FILE]]
        files[f"fleet/devices-{start // DEVICES_PER_FILE:03d}.yaml"] = yaml.safe_dump_all(
            chunk, sort_keys=False
        )
    remote = root / "remote.git"
    remote.mkdir(parents=True)
    _git(remote, "init", "--quiet", "--bare", "--initial-branch=main")
    _git(root, "clone", "--quiet", str(remote), "work")
    work = root / "work"
    _git(work, "checkout", "--quiet", "-B", "main")
    commit_push(work, files, "initial")
    return remote, work


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms; raise after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)
