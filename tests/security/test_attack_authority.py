"""Attacks on authority by document, through the real daemon (after the issue 9 work).

The world of :mod:`tests.security.test_authority`: strict mode pinned, ``netops`` may change
``fleet/**`` only, ``trust/**``, ``policies/**`` and ``images/**`` are the admin's, and the
AccessPolicy lives in ``trust/access.yaml``. Each attack is a signed commit on top of the
last good revision; it must be refused with a reason and leave every device untouched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from reconciler.simulator.iso import iso_file_name
from tests.security import test_authority
from tests.security.test_authority import POLICY, World, _policy
from tests.support.daemon import ALWAYS_OPEN, policy_yaml, wait_for
from tests.support.gitrepo import commit_files, git, push
from tests.support.security import assert_untouched, refuse, refused_push

world = test_authority.world  # the same running world (fixture)


def _device(ops_work: Any, name: str) -> dict[str, Any]:
    devices = list(yaml.safe_load_all((ops_work / "fleet" / "devices.yaml").read_text()))
    # The simulator speaks plain http; a copy that does not say so needs no admin.
    spec = {**devices[0]["spec"], "insecurePlaintext": False}
    return {**devices[0], "metadata": {"name": name}, "spec": spec}


async def test_a_document_added_to_the_access_policy_file_still_answers_to_path_rules(
    world: World,
) -> None:
    """The file declaring the AccessPolicy is exempt from path rules for the policy's sake
    only: a netops signer adding another document to ``trust/access.yaml`` (a path only the
    admin may change) is refused, though the AccessPolicy itself is unchanged."""
    ops = world.ops
    text = _policy(world.admin, world.netops)
    sneaky = yaml.safe_dump(_device(ops.work, "sneaky"), sort_keys=False)
    files = {POLICY: text + "---\n" + sneaky}
    await refuse(ops, world.good, files, world.netops, "path-not-allowed")
    assert "trust/access.yaml" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_allow_downgrade_needs_the_admin(world: World) -> None:
    """``strategy.allowDowngrade`` turns anti-rollback off for the devices a RolloutPolicy
    selects: a netops signer may not set it, wherever the file lives."""
    ops = world.ops
    doc = yaml.safe_load(policy_yaml("1.4.3", window=ALWAYS_OPEN, allowDowngrade=True))
    doc["metadata"]["name"] = "back"
    doc["spec"]["selector"]["matchLabels"] = {"gitfirm.io/name": "nowhere"}
    files = {"fleet/back.yaml": yaml.safe_dump(doc, sort_keys=False)}
    await refuse(ops, world.good, files, world.netops, "kind-not-allowed")
    assert "allowDowngrade: true needs adminRole" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_trust_policy_respelled_with_a_str_tag_in_flow_style_is_still_trust(
    world: World,
) -> None:
    """``kind: !!str "Trust\\x50olicy"`` in JSON flow style, beside a Device in one file
    under ``fleet/``: still a TrustPolicy, still the admin's."""
    ops = world.ops
    trust = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "TrustPolicy",
        "metadata": {"name": "flow"},
        "spec": {"channels": ["testing"], "minisign": []},
    }
    flow = json.dumps(trust).replace('"TrustPolicy"', '!!str "Trust\\x50olicy"')
    assert "TrustPolicy" not in flow
    device = yaml.safe_dump(_device(ops.work, "beside"), sort_keys=False)
    files = {"fleet/mixed.yaml": device + "---\n" + flow + "\n"}
    await refuse(ops, world.good, files, world.netops, "kind-not-allowed")
    assert "TrustPolicy 'flow'" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)


async def test_an_unsigned_merge_of_signed_parents_is_refused(world: World) -> None:
    """Both parents signed by the admin; the merge commit itself unsigned."""
    ops = world.ops
    work = ops.work
    git(work, "reset", "--quiet", "--hard", world.good)
    git(work, "checkout", "--quiet", "-b", "side")
    commit_files(work, {"fleet/side.yaml": "a: 1\n"}, "side", key=world.admin)
    git(work, "checkout", "--quiet", "main")
    commit_files(work, {"fleet/main.yaml": "b: 1\n"}, "main", key=world.admin)
    git(work, "merge", "--quiet", "--no-ff", "--no-edit", "--no-gpg-sign", "side")
    sha = git(work, "rev-parse", "HEAD").strip()
    push(work, force=True)
    await refused_push(ops, world.good, sha, "unsigned")
    assert_untouched(ops)


async def test_an_image_read_from_a_daemon_file_never_publishes_its_digest(world: World) -> None:
    """A netops signer may declare a ``testing`` Image; its source is a ``file:`` URL naming
    the daemon's own token key. The daemon reads it and refuses it, but neither the log, the
    book nor the status branch may carry that file's SHA-256 (an oracle for short secrets)."""
    ops = world.ops
    secret = world.tmp / "state" / "token.key"
    data = secret.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    upstream = (world.tmp / "upstream").as_uri()
    doc = yaml.safe_load((ops.work / "images" / "testing.yaml").read_text())
    doc["metadata"]["name"] = "probe"
    spec = doc["spec"]
    spec.update(version="1.4.9", size=len(data), sha256="0" * 64)
    spec["source"] = {"url": secret.as_uri(), "mirrors": []}
    spec["signature"]["minisign"]["url"] = f"{upstream}/{iso_file_name('1.4.3')}.minisig"
    git(ops.work, "reset", "--quiet", "--hard", world.good)
    sha = commit_files(
        ops.work, {"fleet/probe.yaml": yaml.safe_dump(doc)}, "probe", key=world.netops
    )
    push(ops.work, force=True)
    await wait_for(lambda: ops.daemon.state.verified == sha, 30, "the probe applied")
    await wait_for(lambda: "probe" in ops.daemon.state.refused_images, 60, "the probe refused")
    assert "one of gitfirm's own files" in ops.daemon.state.refused_images["probe"]
    await ops.daemon.writer.flush()
    history = git(ops.remote, "log", "-p", "status")
    assert digest not in ops.logs.getvalue()
    assert digest not in history
    assert_untouched(ops)


async def test_skipping_tls_verification_needs_the_admin(world: World) -> None:
    """``tls.insecureSkipVerify`` hands the API key to any man in the middle, as plain http
    would: a netops signer may not set it."""
    ops = world.ops
    device = _device(ops.work, "unverified")
    device["spec"]["address"] = "https://127.0.0.1:1"
    device["spec"]["tls"] = {"insecureSkipVerify": True}
    files = {"fleet/unverified.yaml": yaml.safe_dump(device)}
    await refuse(ops, world.good, files, world.netops, "kind-not-allowed")
    assert "tls.insecureSkipVerify: true needs adminRole" in ops.daemon.book.refusals[-1].reason
    assert_untouched(ops)
