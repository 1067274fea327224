"""Property: any change to a governed document, signed without the role that governs it,
is refused by the verifier; the same change signed with that role is verified.

Real git and real SSH-signed commits against the :class:`Verifier`, on one small repository
per module; each example resets it to the base revision. The expected roles come from this
file's own table (``_NEEDS``), not from the code under test.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model.kinds import AccessPolicy
from reconciler.source.git import Mirror
from reconciler.source.policy import policy_fingerprint
from reconciler.source.verify import Verifier
from tests.support.gitrepo import SshKey, clone, commit_files, git, make_remote, push, ssh_key

CHANNELS = ("production", "testing", "development")
ROLES = {"admin": "admin", "release": "release", "netops": "netops", "lead": "netops-lead"}
KINDS_RULES = [
    {"kind": "Image", "channels": ["testing"], "roles": ["release"]},
    {"kind": "Device", "roles": ["netops"]},
    {"kind": "RolloutPolicy", "roles": ["netops-lead"]},
]
FILES = ("fleet/a.yaml", "policies/b.yaml", "trust/c.yaml", "misc/d.yaml")


def _needs(kind: str, channel: str | None, rules: bool) -> str | None:
    """The one role a change to such a document needs here (``None``: any known signer);
    without ``rules`` only the defaults hold."""
    if kind in ("AccessPolicy", "TrustPolicy") or (kind, channel) == ("Image", "production"):
        return "admin"
    if not rules:
        return None
    if kind == "Image":
        return {"testing": "release"}.get(channel or "")
    return {"Device": "netops", "RolloutPolicy": "netops-lead"}.get(kind)


def _doc(kind: str, name: str, channel: str | None, note: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"note": note} if note else {}
    if kind == "Image":
        spec["channel"] = channel
    if kind == "TrustPolicy":
        spec["channels"] = [channel]
    return {"apiVersion": "gitfirm.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@dataclass
class Repo:
    work: Path
    mirror: Mirror
    keys: dict[str, SshKey]
    base: str
    pin: str
    layout: dict[str, list[dict[str, Any]]]
    rules: bool


def _base_layout(policy: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    layout: dict[str, list[dict[str, Any]]] = {f: [] for f in FILES}
    layout["trust/access.yaml"] = [policy]
    for i, channel in enumerate(CHANNELS):
        layout[FILES[i % 4]].append(_doc("TrustPolicy", f"trust-{channel}", channel))
        layout[FILES[(i + 1) % 4]].append(_doc("Image", f"image-{channel}", channel))
    layout["fleet/a.yaml"].append(_doc("Device", "router", None))
    layout["policies/b.yaml"].append(_doc("RolloutPolicy", "roll", None))
    return layout


def _texts(layout: dict[str, list[dict[str, Any]]]) -> dict[str, str | None]:
    return {f: yaml.safe_dump_all(docs) if docs else "# empty\n" for f, docs in layout.items()}


@pytest.fixture(scope="module", params=[True, False], ids=["kind-rules", "defaults-only"])
def repo(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Repo:
    rules: bool = request.param
    base = tmp_path_factory.mktemp("authority")
    keys = {name: ssh_key(base / "keys", name) for name in ROLES}
    policy = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": "access"},
        "spec": {
            "adminRole": "admin",
            "signers": [
                {"name": n, "sshKey": keys[n].public, "roles": [r]} for n, r in ROLES.items()
            ],
            **({"kinds": KINDS_RULES} if rules else {}),
        },
    }
    remote = make_remote(base / "remote.git")
    work = clone(remote, base / "work")
    layout = _base_layout(policy)
    sha = commit_files(work, _texts(layout), "base", key=keys["admin"])
    push(work)
    pin = policy_fingerprint(AccessPolicy.model_validate(policy)) or ""
    return Repo(work, Mirror(str(remote), base / "state"), keys, sha, pin, layout, rules)


@st.composite
def changes(draw: st.DrawFn) -> tuple[str, str | None, str, str]:
    """(kind, channel, action, file): one change to a governed document."""
    kind = draw(
        st.sampled_from(["AccessPolicy", "TrustPolicy", "Image", "Device", "RolloutPolicy"])
    )
    channel = draw(st.sampled_from(CHANNELS)) if kind in ("Image", "TrustPolicy") else None
    actions = ["change", "remove"] if kind == "AccessPolicy" else ["add", "change", "remove"]
    action = draw(st.sampled_from(actions))
    return kind, channel, action, draw(st.sampled_from(FILES))


def _apply(repo: Repo, kind: str, channel: str | None, action: str, target: str) -> dict[str, Any]:
    layout = copy.deepcopy(repo.layout)
    if action == "add":
        layout[target].append(_doc(kind, "added", channel))
        return layout
    wanted = {
        "AccessPolicy": "access",
        "TrustPolicy": f"trust-{channel}",
        "Image": f"image-{channel}",
        "Device": "router",
        "RolloutPolicy": "roll",
    }[kind]
    for docs in layout.values():
        for doc in list(docs):
            if doc["kind"] == kind and doc["metadata"]["name"] == wanted:
                docs.remove(doc)
                if action == "change":
                    # Changed and moved to another file in the same commit.
                    if kind == "AccessPolicy":  # a valid policy, one rule more
                        doc["spec"]["rules"] = [{"paths": ["docs/**"], "roles": ["admin"]}]
                    else:
                        doc["spec"]["note"] = "changed"
                    layout[target].append(doc)
    return layout


def _verify(repo: Repo, layout: dict[str, Any], signer: str) -> tuple[bool, str]:
    git(repo.work, "reset", "--quiet", "--hard", repo.base)
    head = commit_files(repo.work, _texts(layout), f"by {signer}", key=repo.keys[signer])
    push(repo.work, force=True)
    repo.mirror.sync()
    verdict = Verifier(repo.mirror.repo, pinned=repo.pin).verify(head, repo.base)
    return verdict.ok, f"{verdict.reason}: {verdict.message}"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(change=changes(), data=st.data())
def test_governed_change_needs_the_governing_role(
    repo: Repo, change: tuple[str, str | None, str, str], data: st.DataObject
) -> None:
    kind, channel, action, target = change
    layout = _apply(repo, kind, channel, action, target)
    role = _needs(kind, channel, repo.rules)
    holder = next((n for n, r in ROLES.items() if r == role), None)
    if role is not None:
        outsider = data.draw(st.sampled_from([n for n, r in ROLES.items() if r != role]))
        ok, why = _verify(repo, layout, outsider)
        assert not ok, f"{outsider} could {action} {kind} {channel or ''}"
        assert why.startswith(("kind-not-allowed", "policy-change-not-admin")), why
        assert f"[{role}]" in why
    signer = holder or data.draw(st.sampled_from(sorted(ROLES)))
    ok, why = _verify(repo, layout, signer)
    assert ok, why
