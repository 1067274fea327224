"""Reading the AccessPolicy of one revision straight from git, and its pinned fingerprint.

The verifier needs the policy of some revisions (the verified one, the head, each commit
that changes it) without exporting and loading each whole tree, so it reads just the files
that could declare it: those whose text holds ``AccessPolicy`` or a backslash (a YAML or
JSON escape could spell the kind otherwise). They are read with the loader's own bounded
reader, so the verifier and the daemon agree on which documents exist: a file that does not
parse declares nothing (the loader refuses it), unless it names ``AccessPolicy``, which is
then ``policy-invalid``. A revision may hold at most one AccessPolicy document.

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

from pydantic import ValidationError

from reconciler.errors import CommitRefused, ConfigError
from reconciler.model.documents import DOCUMENT_SUFFIXES, file_documents, is_document_file
from reconciler.model.kinds import AccessPolicy
from reconciler.model.yamlsource import MAX_FILE_BYTES
from reconciler.source.git import Repository

__all__ = ["PolicySnapshot", "policy_fingerprint", "read_policy"]

_PATTERN = r"AccessPolicy|\\"
_GLOBS = tuple(f"*{suffix}" for suffix in DOCUMENT_SUFFIXES)


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


def _refuse(rev: str, message: str) -> CommitRefused:
    return CommitRefused(message, commit=rev, reason="policy-invalid")


def read_policy(repo: Repository, rev: str) -> PolicySnapshot:
    """The AccessPolicy declared in revision ``rev``.

    Raises :class:`CommitRefused` (``policy-invalid``) when a file naming it does not parse,
    the document is invalid, or more than one AccessPolicy exists.
    """
    found: list[tuple[str, AccessPolicy]] = []
    candidates = [p for p in repo.grep_files(rev, _PATTERN, _GLOBS) if is_document_file(p)]
    for entry in repo.entries(rev, candidates) if candidates else []:
        if not entry.regular:
            continue  # never exported, so never loaded
        if entry.size > MAX_FILE_BYTES:
            # Unread, it might declare a policy; the loader would refuse the file anyway.
            raise _refuse(rev, f"{entry.path} is larger than {MAX_FILE_BYTES // 1024} KiB")
        data = repo.read_blob(entry.sha)
        try:
            docs, _ = file_documents(entry.path, data)
        except ConfigError as exc:
            if b"AccessPolicy" not in data:
                continue  # declares nothing; the loader reports it
            raise _refuse(rev, f"cannot read the AccessPolicy: {exc}") from None
        for doc in docs:
            if not isinstance(doc.data, dict) or doc.data.get("kind") != "AccessPolicy":
                continue
            try:
                found.append((entry.path, AccessPolicy.model_validate(doc.data)))
            except ValidationError as exc:
                # Field and message only: short, and never the input (keys) itself.
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(part) for part in first["loc"])
                detail = f"{where}: {first['msg']}"
                raise _refuse(rev, f"invalid AccessPolicy in {entry.path}: {detail}") from None
    if len(found) > 1:
        where = ", ".join(sorted({p for p, _ in found}))
        raise _refuse(rev, f"more than one AccessPolicy ({where})")
    if not found:
        return PolicySnapshot()
    path, policy = found[0]
    return PolicySnapshot(policy=policy, path=path)
