"""Reading the AccessPolicy of one revision straight from git, and its pinned fingerprint.

The verifier needs the policy of many revisions (one per commit that may change it), without
exporting and loading each whole tree, so it reads just the files that declare
``kind: AccessPolicy``. A revision may hold at most one AccessPolicy document.

The fingerprint that pins the first trusted policy in the daemon's configuration is
``sha256:`` + the hex SHA-256 of the policy's ``spec`` as canonical JSON (keys sorted, no
spaces, defaults filled in). Only the spec counts: renaming the document or editing its
labels does not change who is trusted, while any change to mode, admin role, signers, keys
or rules does. ``gitfirm``'s operators get it from :func:`policy_fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.errors import CommitRefused
from reconciler.model.kinds import AccessPolicy
from reconciler.source.git import Repository

__all__ = ["PolicySnapshot", "policy_fingerprint", "read_policy"]

_PATTERN = r"""^[[:space:]]*"?kind"?[[:space:]]*:[[:space:]]*"?AccessPolicy"""
_GLOBS = ("*.yaml", "*.yml", "*.json")


def policy_fingerprint(policy: AccessPolicy | None) -> str | None:
    """``sha256:<hex>`` of the policy's canonical JSON spec; ``None`` for no policy."""
    if policy is None:
        return None
    canonical = json.dumps(
        policy.spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PolicySnapshot:
    """The AccessPolicy of one revision (or none) and the file that declares it."""

    policy: AccessPolicy | None = None
    path: str | None = None

    @property
    def fingerprint(self) -> str | None:
        """See :func:`policy_fingerprint`."""
        return policy_fingerprint(self.policy)


def _documents(path: str, data: bytes) -> list[Any]:
    text = data.decode("utf-8")
    if path.endswith(".json"):
        parsed = json.loads(text)
        return parsed if isinstance(parsed, list) else [parsed]
    return list(yaml.safe_load_all(text))


def read_policy(repo: Repository, rev: str) -> PolicySnapshot:
    """The AccessPolicy declared in revision ``rev``.

    Raises :class:`CommitRefused` (``policy-invalid``) when a declaring file does not parse,
    the document is invalid, or more than one AccessPolicy exists.
    """
    found: list[tuple[str, AccessPolicy]] = []
    for path in repo.grep_files(rev, _PATTERN, _GLOBS):
        try:
            docs = _documents(path, repo.read_file(rev, path))
            found.extend(
                (path, AccessPolicy.model_validate(doc))
                for doc in docs
                if isinstance(doc, dict) and doc.get("kind") == "AccessPolicy"
            )
        except (ValueError, yaml.YAMLError, ValidationError) as exc:
            # ValidationError is a ValueError; keep the message short and key-free.
            detail = str(exc).splitlines()[0]
            raise CommitRefused(
                f"invalid AccessPolicy in {path}: {detail}", commit=rev, reason="policy-invalid"
            ) from None
    if len(found) > 1:
        where = ", ".join(sorted({p for p, _ in found}))
        raise CommitRefused(
            f"more than one AccessPolicy ({where})", commit=rev, reason="policy-invalid"
        )
    if not found:
        return PolicySnapshot()
    path, policy = found[0]
    return PolicySnapshot(policy=policy, path=path)
