"""Commit verification with real git, real ssh-keygen keys and real signed commits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.errors import CommitRefused
from reconciler.source.git import Mirror, Repository
from reconciler.source.policy import policy_fingerprint, read_policy
from reconciler.source.verify import Verifier
from tests.support.gitrepo import (
    SshKey,
    access_policy,
    clone,
    commit_files,
    git,
    gpg_key,
    have_gpg,
    make_remote,
    push,
    ssh_key,
)

POLICY = "trust/access.yaml"
PROD = "policies/production/upgrade.yaml"


@dataclass
class World:
    """A remote, a working clone, a mirror of the remote, and three keys."""

    work: Path
    mirror: Mirror
    admin: SshKey
    ops: SshKey
    dev: SshKey
    stranger: SshKey
    policy_text: str

    def verifier(self, **kwargs: object) -> Verifier:
        pinned = policy_fingerprint(read_policy(self.repo, self.mirror.sync()).policy)
        return Verifier(self.repo, pinned=pinned, **kwargs)  # type: ignore[arg-type]

    @property
    def repo(self) -> Repository:
        return self.mirror.repo

    def commit(self, files: dict[str, str | None], key: SshKey | None, msg: str = "c") -> str:
        sha = commit_files(self.work, files, msg, key=key)
        push(self.work)
        self.mirror.sync()
        return sha


def _policy(admin: SshKey, ops: SshKey, dev: SshKey, mode: str = "strict") -> str:
    return access_policy(
        [(admin, ["admin"]), (ops, ["ops"]), (dev, ["dev"])],
        [(["policies/production/**"], ["ops"]), (["fleet/"], ["ops", "dev"])],
        mode=mode,
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SshKey]:
    base = tmp_path_factory.mktemp("keys")
    return {name: ssh_key(base, name) for name in ("admin", "ops", "dev", "stranger")}


def _world(tmp_path: Path, keys: dict[str, SshKey], mode: str = "strict") -> World:
    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    text = _policy(keys["admin"], keys["ops"], keys["dev"], mode)
    world = World(
        work=work,
        mirror=Mirror(str(remote), tmp_path / "state"),
        admin=keys["admin"],
        ops=keys["ops"],
        dev=keys["dev"],
        stranger=keys["stranger"],
        policy_text=text,
    )
    world.commit({POLICY: text, "README.md": "hello\n"}, keys["admin"], "access policy")
    return world


@pytest.fixture
def world(tmp_path: Path, keys: dict[str, SshKey]) -> World:
    return _world(tmp_path, keys)


def test_bootstrap_from_pin_then_good_chain_passes(world: World) -> None:
    verifier = world.verifier()
    first = verifier.verify(world.mirror.head())
    assert first.ok, first
    assert first.reason == "verified" and first.checked == 1
    a = world.commit({PROD: "kind: x\n"}, world.ops, "prod change by ops")
    b = world.commit({"fleet/r1.yaml": "kind: y\n"}, world.dev, "device by dev")
    c = world.commit({"docs/notes.md": "n\n"}, world.dev, "docs by dev")
    verdict = verifier.verify(c, since=first.revision)
    assert verdict.ok, verdict
    assert verdict.checked == 3
    # The head's signer, as the dashboard's Source page names it.
    assert verdict.signer == world.dev.name and first.signer == world.admin.name
    assert {a, b} <= set(world.repo.text("rev-list", c).split())


def test_unsigned_commit_is_refused(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    bad = world.commit({"fleet/r1.yaml": "kind: y\n"}, None, "unsigned")
    good = world.commit({"fleet/r2.yaml": "kind: y\n"}, world.ops, "signed on top")
    verdict = verifier.verify(good, since=base.revision)
    assert not verdict.ok
    assert (verdict.reason, verdict.commit) == ("unsigned", bad)
    with pytest.raises(CommitRefused) as info:
        verdict.raise_if_refused()
    assert info.value.reason == "unsigned" and info.value.commit == bad


def test_unknown_key_is_refused(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    bad = world.commit({"fleet/r1.yaml": "kind: y\n"}, world.stranger, "stranger")
    verdict = verifier.verify(bad, since=base.revision)
    assert (verdict.ok, verdict.reason, verdict.commit) == (False, "unknown-key", bad)


def test_production_change_without_role_is_refused(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    bad = world.commit({PROD: "kind: x\n"}, world.dev, "dev touches production")
    verdict = verifier.verify(bad, since=base.revision)
    assert (verdict.ok, verdict.reason, verdict.commit) == (False, "path-not-allowed", bad)
    assert "policies/production/upgrade.yaml" in verdict.message


def test_policy_change_by_non_admin_is_refused(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    grab = _policy(world.admin, world.ops, world.stranger)
    bad = world.commit({POLICY: grab}, world.ops, "ops adds a key")
    verdict = verifier.verify(bad, since=base.revision)
    assert (verdict.ok, verdict.reason, verdict.commit) == (False, "policy-change-not-admin", bad)


def test_policy_change_by_admin_applies_to_later_commits_only(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    # The admin swaps dev for stranger; the commit itself is judged by the old policy.
    change = world.commit({POLICY: _policy(world.admin, world.ops, world.stranger)}, world.admin)
    by_stranger = world.commit({"fleet/r3.yaml": "kind: y\n"}, world.stranger, "new signer")
    verdict = verifier.verify(by_stranger, since=base.revision)
    assert verdict.ok, verdict
    assert verdict.policy.fingerprint != base.policy.fingerprint
    # dev was removed by ``change``: a later commit by dev is an unknown key.
    by_dev = world.commit({"fleet/r4.yaml": "kind: y\n"}, world.dev, "old signer")
    late = verifier.verify(by_dev, since=verdict.revision)
    assert (late.reason, late.commit) == ("unknown-key", by_dev)
    assert change in world.repo.text("rev-list", by_dev)


def test_policy_introducing_commit_must_be_signed_by_its_admin(
    tmp_path: Path, keys: dict[str, SshKey]
) -> None:
    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    mirror = Mirror(str(remote), tmp_path / "state")
    text = _policy(keys["admin"], keys["ops"], keys["dev"])
    commit_files(work, {"README.md": "x\n"}, "unsigned history before the policy")
    intro = commit_files(work, {POLICY: text}, "policy by ops", key=keys["ops"])
    push(work)
    head = mirror.sync()
    pinned = policy_fingerprint(read_policy(mirror.repo, head).policy)
    verdict = Verifier(mirror.repo, pinned=pinned).verify(head)
    assert (verdict.reason, verdict.commit) == ("policy-change-not-admin", intro)


def test_unpinned_policy_and_wrong_pin_are_refused(world: World) -> None:
    head = world.mirror.head()
    assert Verifier(world.repo).verify(head).reason == "policy-not-pinned"
    assert Verifier(world.repo, pinned="sha256:" + "0" * 64).verify(head).reason == (
        "policy-not-pinned"
    )


def test_no_policy_and_no_pin_needs_nothing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    commit_files(work, {"fleet/r1.yaml": "kind: y\n"}, "unsigned")
    push(work)
    mirror = Mirror(str(remote), tmp_path / "state")
    verdict = Verifier(mirror.repo).verify(mirror.sync())
    assert (verdict.ok, verdict.reason, verdict.signer) == (True, "not-required", "")


def test_head_mode_checks_only_the_head_but_all_its_paths(
    tmp_path: Path, keys: dict[str, SshKey]
) -> None:
    world = _world(tmp_path, keys, mode="head")
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    world.commit({"fleet/r1.yaml": "kind: y\n"}, None, "unsigned in the middle")
    head = world.commit({"fleet/r2.yaml": "kind: y\n"}, world.dev, "signed head")
    assert verifier.verify(head, since=base.revision).ok
    world.commit({PROD: "kind: x\n"}, None, "unsigned production change")
    head2 = world.commit({"fleet/r5.yaml": "kind: y\n"}, world.dev, "dev head")
    verdict = verifier.verify(head2, since=head)
    assert (verdict.reason, verdict.commit) == ("path-not-allowed", head2)


def test_rewritten_history_is_refused(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    ahead = world.commit({"fleet/r1.yaml": "kind: y\n"}, world.ops)
    git(world.work, "reset", "--quiet", "--hard", "HEAD~1")
    other = commit_files(world.work, {"fleet/r9.yaml": "kind: z\n"}, "x", key=world.ops)
    push(world.work, force=True)
    world.mirror.sync()
    assert verifier.verify(other, since=ahead).reason == "not-descendant"
    assert verifier.verify(other, since=base.revision).ok


def test_merged_side_branch_commits_are_checked(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    git(world.work, "checkout", "--quiet", "-b", "feature")
    side = commit_files(world.work, {"fleet/r7.yaml": "kind: y\n"}, "unsigned side")
    git(world.work, "checkout", "--quiet", "main")
    commit_files(world.work, {"fleet/r8.yaml": "kind: y\n"}, "main", key=world.ops)
    _merge_signed(world, "feature", world.ops)
    push(world.work)
    verdict = verifier.verify(world.mirror.sync(), since=base.revision)
    assert (verdict.reason, verdict.commit) == ("unsigned", side)


@pytest.mark.skipif(not have_gpg(), reason="gpg is not installed")
def test_openpgp_signer_by_fingerprint(tmp_path: Path, keys: dict[str, SshKey]) -> None:
    pgp = gpg_key(tmp_path / "gnupg", "carol")
    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    text = access_policy([(keys["admin"], ["admin"]), (pgp, ["ops"])])
    commit_files(work, {POLICY: text}, "policy", key=keys["admin"])
    signed = commit_files(work, {"fleet/r1.yaml": "kind: y\n"}, "pgp", key=pgp)
    push(work)
    mirror = Mirror(str(remote), tmp_path / "state")
    pinned = policy_fingerprint(read_policy(mirror.repo, mirror.sync()).policy)
    verifier = Verifier(mirror.repo, pinned=pinned, gnupg_home=pgp.home)
    verdict = verifier.verify(signed)
    assert verdict.ok, verdict
    assert verdict.checked == 2


def _merge_signed(world: World, branch: str, key: SshKey) -> None:
    git(
        world.work,
        "-c", "gpg.format=ssh", "-c", f"user.signingkey={key.private}",
        "merge", "--quiet", "--no-ff", "-S", "-m", f"merge {branch}", branch,
    )  # fmt: skip


def _merge_from_old_base(world: World, path: str, message: str, key: SshKey) -> str:
    """Commit ``path`` on branch old-base signed by ``key``, merge it into main signed by ops
    and push; the side commit's sha."""
    git(world.work, "checkout", "--quiet", "old-base")
    side = commit_files(world.work, {path: "a: 1\n"}, message, key=key)
    git(world.work, "checkout", "--quiet", "main")
    _merge_signed(world, "old-base", world.ops)
    push(world.work)
    return side


def test_side_branch_from_before_a_policy_change_meets_the_new_policy(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    git(world.work, "branch", "old-base")
    # The admin removes dev on main; branches forked earlier still carry the old policy.
    commit_files(world.work, {POLICY: _policy(world.admin, world.ops, world.stranger)}, "x",
                 key=world.admin)  # fmt: skip
    by_ops = _merge_from_old_base(world, "fleet/r7.yaml", "ops work", world.ops)
    merged = verifier.verify(world.mirror.sync(), since=base.revision)
    assert merged.ok, merged  # not mistaken for a policy change
    by_dev = _merge_from_old_base(world, "fleet/r8.yaml", "dev work", world.dev)
    verdict = verifier.verify(world.mirror.sync(), since=merged.revision)
    assert (verdict.reason, verdict.commit) == ("unknown-key", by_dev)
    assert by_ops != by_dev


def test_second_access_policy_file_is_refused(world: World) -> None:
    verifier = world.verifier()
    base = verifier.verify(world.mirror.head())
    rogue = access_policy([(world.stranger, ["admin"])], name="rogue")
    bad = world.commit({"fleet/extra.yaml": rogue}, world.ops, "sneak a policy in")
    verdict = verifier.verify(bad, since=base.revision)
    # Adding an AccessPolicy is a policy change, whatever the file: admins only.
    assert (verdict.ok, verdict.reason, verdict.commit) == (False, "policy-change-not-admin", bad)
    git(world.work, "reset", "--quiet", "--hard", base.revision)
    second = commit_files(world.work, {"fleet/extra.yaml": rogue}, "second", key=world.admin)
    push(world.work, force=True)
    world.mirror.sync()
    verdict = verifier.verify(second, since=base.revision)
    assert (verdict.ok, verdict.reason, verdict.commit) == (False, "policy-invalid", second)
