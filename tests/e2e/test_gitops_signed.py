"""End to end, strict mode: only commits signed by the right keys reach the fleet.

The seeded repository carries an AccessPolicy (mode ``strict``): ``admin`` holds the admin
role and ``netops-lead`` (the role ``policies/**`` needs), ``netops`` holds only ``netops``.
The daemon starts with the policy's fingerprint pinned. Each refused case is a commit on top
of the last good revision, force-pushed over the previous refused one (strict mode would
otherwise re-check the refused commit forever), and must leave every device untouched.
Every case commits the same tree, so the admin's final commit is also what re-signing a
refused commit and force-pushing it looks like: it must still be seen and applied.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.model.kinds import AccessPolicy
from reconciler.source.policy import policy_fingerprint
from tests.support.daemon import ALWAYS_OPEN, GitOps, policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import SshKey, access_policy, commit_files, git, push, ssh_key

# Only observation may reach a device while a commit is refused.
_ACTING_CALLS = ("/image", "/reboot", "/config-file")


def _refusal_reason(ops: GitOps, sha: str) -> str | None:
    for refusal in ops.daemon.book.refusals:
        if refusal.revision == sha:
            return refusal.reason
    return None


def _status_refusals(ops: GitOps) -> dict[str, str]:
    try:
        doc = yaml.safe_load(git(ops.remote, "show", "status:source.yaml"))
    except RuntimeError:  # no status branch, or no source.yaml on it yet
        return {}
    return {r["revision"]: r["reason"] for r in (doc or {}).get("refused") or []}


async def _refused(ops: GitOps, good: str, key: SshKey | None, reason: str, message: str) -> None:
    """Commit the rollout to 1.4.4 on top of ``good``, signed by ``key``; it must be refused
    for ``reason``, reported in status, and leave ``good`` in force."""
    git(ops.work, "reset", "--quiet", "--hard", good)
    files = {"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}
    sha = commit_files(ops.work, files, message, key=key)
    push(ops.work, force=True)
    await wait_for(lambda: _refusal_reason(ops, sha) is not None, 30, f"refusal of {message}")
    assert f"({reason})" in (_refusal_reason(ops, sha) or "")
    assert ops.daemon.state.verified == good
    await wait_for(lambda: sha in _status_refusals(ops), 30, f"{message} in status source.yaml")
    assert f"({reason})" in _status_refusals(ops)[sha]


def _untouched(ops: GitOps) -> None:
    assert set(ops.versions().values()) == {"1.4.3"}
    for name in ops.fleet.names:
        device = ops.fleet.device(name)
        assert device.log == [], f"{name} was acted on: {device.log}"
        acted = [p for p in device.calls if p.startswith(_ACTING_CALLS)]
        assert not acted, f"{name} got {acted}"


async def test_strict_mode_refuses_bad_commits_and_applies_the_admins(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    admin, netops, stranger = (ssh_key(keys, n) for n in ("admin", "netops", "stranger"))
    policy_text = access_policy(
        [(admin, ["admin", "netops-lead"]), (netops, ["netops"])],
        [(["policies/**"], ["netops-lead"])],
    )
    pin = policy_fingerprint(AccessPolicy.model_validate(yaml.safe_load(policy_text)))
    extra = {
        "trust/access.yaml": policy_text,
        "policies/fleet.yaml": policy_yaml("1.4.3", window=ALWAYS_OPEN),
    }
    async with running_gitops(tmp_path, extra_files=extra, access_pin=pin, key=admin) as ops:
        good = ops.daemon.state.verified
        assert good is not None and ops.daemon.book.refusals == []

        await _refused(ops, good, None, "unsigned", "unsigned rollout")
        await _refused(ops, good, stranger, "unknown-key", "rollout signed by a stranger")
        await _refused(ops, good, netops, "path-not-allowed", "rollout signed without the role")
        _untouched(ops)
        assert "path-not-allowed" in git(ops.remote, "show", "status:README.md")

        git(ops.work, "reset", "--quiet", "--hard", good)
        files = {"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}
        sha = commit_files(ops.work, files, "Roll the fleet to 1.4.4", key=admin)
        push(ops.work, force=True)
        await wait_for(lambda: ops.daemon.state.verified == sha, 30, "the admin's commit applied")
        await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 60, "rollout")
        # Applying a revision retires the refusals that came before it.
        await wait_for(lambda: not _status_refusals(ops), 30, "refusals cleared in status")
