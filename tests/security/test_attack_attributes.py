"""A pushed ``.gitattributes`` must not hide the AccessPolicy from the verifier.

``*.yaml binary`` makes git treat every YAML file as binary wherever git reads attributes
from the tree: a non-bare clone's work tree here, and bare repositories on git versions that
read them from ``HEAD``. If the verifier's file search skipped binary files, the policy in
force would vanish and an unsigned commit would pass as ``not-required``."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.model.kinds import AccessPolicy
from reconciler.source.git import Repository
from reconciler.source.policy import policy_fingerprint
from reconciler.source.verify import Verifier
from tests.support.gitrepo import access_policy, clone, commit_files, make_remote, ssh_key


def test_an_unsigned_gitattributes_marking_yaml_binary_is_refused(tmp_path: Path) -> None:
    admin = ssh_key(tmp_path / "keys", "admin")
    text = access_policy([(admin, ["admin"])])
    pin = policy_fingerprint(AccessPolicy.model_validate(yaml.safe_load(text)))
    work = clone(make_remote(tmp_path / "remote.git"), tmp_path / "work")
    good = commit_files(work, {"trust/access.yaml": text}, "policy", key=admin)
    verifier = Verifier(Repository(work), pinned=pin)
    assert verifier.verify(good).ok
    attack = commit_files(
        work,
        {".gitattributes": "*.yaml binary\n", "fleet/evil.yaml": "kind: Device\n"},
        "attributes",
    )
    verdict = verifier.verify(attack, good)
    assert not verdict.ok and verdict.reason == "unsigned", verdict
