"""Commit verification against the AccessPolicy: signatures, document authority, path rules.

Signatures are checked by git itself (``git log --format=%G?...``), with
``gpg.ssh.allowedSignersFile`` set by ``-c`` on that one command to a temporary file written
from the policy's SSH signers (principal = signer name); the user's git config is never
touched. An SSH signer's roles are those of the entry whose key made the signature (signer
names and keys are unique in a valid policy). OpenPGP signers are matched by the signing
key's or its primary key's fingerprint; their public keys must be in the keyring of
``gnupg_home`` (or the daemon's ``GNUPGHOME``).

Which commits, against which policy:

- The policy in force is the one at the last verified revision (``since``). A commit is
  checked against the policy in force *before* it, never against the policy it brings.
- ``strict``: every commit reachable from the new head and not from ``since`` (all of them,
  merged side branches included). Commits are taken along the first-parent chain; a merge's
  side-branch commits are checked, just before the merge, against the same policy as the
  merge. Files changed by a commit are its diff to its first parent, so a merge's signer
  answers for everything the merge brings in.
- ``head``: only the head commit's signature; its signer answers for every file changed
  since ``since`` (the whole range), including any policy change.
- ``none``: nothing is checked; the policy may still be changed, and its successor applies.
- The head must descend from ``since``; rewritten history is refused (``not-descendant``).

Each commit, once its signature is known good: every document it adds, changes or removes
(compared by kind and name, see :mod:`~reconciler.source.changes`) needs one role of each
rule governing its kind and channel (:mod:`~reconciler.source.authority`; the AccessPolicy
itself always needs ``adminRole``), refused as ``kind-not-allowed`` or
``policy-change-not-admin``. Then path rules: a changed file matching one or more rules needs
a signer holding one of the roles of *each* matching rule (``path-not-allowed``); a file
matching no rule may be changed by any known signer, and the file declaring the AccessPolicy
(before or after the commit) answers to the document rule alone when an admin signs (any
other signer meets the path rules there too). A head whose tree holds an
unsafe path (``..`` and the like) is refused first (``unsafe-path``).

Bootstrap: with no verified revision yet, the *pinned* fingerprint (see
:func:`~reconciler.source.policy.policy_fingerprint`) names the first trusted policy. The
verifier walks the head's first-parent history (up to ``anchor_limit`` commits) for the
oldest commit of the newest stretch that carries that policy (the commit introducing it),
and checks from there on, that commit included, against the pinned policy itself, so the
introducing commit must be signed by one of its own admins. With no pin, a repository
without an AccessPolicy needs no verification, and one with an AccessPolicy is refused
(``policy-not-pinned``).
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.errors import CommitRefused
from reconciler.model.kinds import AccessPolicy, CommitSigner
from reconciler.source.authority import requirements
from reconciler.source.changes import DocumentChange, DocumentReader
from reconciler.source.git import Repository, unsafe_path
from reconciler.source.paths import glob_match
from reconciler.source.policy import PolicySnapshot, read_policy

__all__ = ["CommitInfo", "PolicyReader", "Verdict", "Verifier"]

PolicyReader = Callable[[Repository, str], PolicySnapshot]

_FORMAT = "%x1e%H%x1f%P%x1f%G?%x1f%GS%x1f%GF%x1f%GP"


@dataclass(frozen=True)
class Verdict:
    """The outcome for one head: ``ok``, or refused with a stable ``reason`` and ``commit``.

    ``policy`` is the AccessPolicy in force at ``revision`` when ``ok`` (pass it as the
    trusted policy next time); ``checked`` counts the commits whose signature was checked.
    """

    ok: bool
    revision: str
    reason: str
    commit: str = ""
    message: str = ""
    policy: PolicySnapshot = field(default_factory=PolicySnapshot)
    checked: int = 0
    signer: str = ""
    """Who signed the head (the SSH principal or OpenPGP user id) when its signature was
    checked; empty when the AccessPolicy in force required none."""

    def raise_if_refused(self) -> None:
        """Raise :class:`~reconciler.errors.CommitRefused` for a refused verdict."""
        if not self.ok:
            raise CommitRefused(
                f"{self.reason}: {self.message}", commit=self.commit, reason=self.reason
            )


@dataclass(frozen=True)
class CommitInfo:
    """One commit as git reports it: parents, signature status and changed files."""

    sha: str
    parents: tuple[str, ...]
    status: str  # git's %G?: G good, U good/unknown validity, B bad, N none, E cannot check...
    signer: str  # %GS: the SSH principal, or the OpenPGP user id
    key: str  # %GF: fingerprint of the signing key
    primary: str  # %GP: OpenPGP primary key fingerprint
    files: tuple[str, ...]


def _refuse(reason: str, commit: str, message: str) -> CommitRefused:
    return CommitRefused(message, commit=commit, reason=reason)


class Verifier:
    """Verifies new revisions of one repository (see the module docstring for the rules)."""

    def __init__(
        self,
        repo: Repository,
        *,
        pinned: str | None = None,
        gnupg_home: Path | None = None,
        anchor_limit: int = 1000,
        read: PolicyReader = read_policy,
    ) -> None:
        self.repo = repo
        self.pinned = pinned
        self.gnupg_home = gnupg_home
        self.anchor_limit = anchor_limit
        self._reader = read
        self._policies: dict[str, PolicySnapshot] = {}
        self._documents = DocumentReader(repo)

    # --- entry points ---------------------------------------------------------------------

    def verify(self, head: str, since: str | None = None) -> Verdict:
        """Verify ``head`` given the last verified revision ``since`` (``None`` at first)."""
        head = self.repo.resolve(head)
        self._policies.clear()
        try:
            unsafe = [p for p in self.repo.changed_files(None, head) if unsafe_path(p)]
            if unsafe:
                raise _refuse("unsafe-path", head, f"the tree holds an unsafe path {unsafe[0]!r}")
            if since is None:
                return self._bootstrap(head)
            since = self.repo.resolve(since)
            if not self.repo.is_ancestor(since, head):
                raise _refuse(
                    "not-descendant", head, f"{head} does not descend from verified {since}"
                )
            trusted = self._read(since)
            if trusted.policy is None:
                # No policy in force: fine unless one appears, which the pin must cover.
                if self._read(head).policy is None:
                    return Verdict(True, head, "not-required")
                return self._bootstrap(head)
            return self.verify_range(trusted, since, head)
        except CommitRefused as exc:
            return Verdict(False, head, exc.reason, exc.commit, exc.message)

    def verify_range(self, trusted: PolicySnapshot, since: str | None, head: str) -> Verdict:
        """Verify the commits of ``since..head`` with ``trusted`` in force at ``since``.

        Raises :class:`CommitRefused`; :meth:`verify` turns that into a verdict.
        """
        if trusted.policy is not None and trusted.policy.spec.mode == "head":
            return self._verify_head(trusted, since, head)
        mainline = self._rev_list("--first-parent", head, since)
        current = trusted
        logs: dict[str | None, dict[str, CommitInfo]] = {}
        checked = 0
        signer = ""
        for commit in mainline:
            # A merge's side commits are checked against the policy in force at the merge.
            log = self._commits(current, since, head, logs)
            merge = len(log[commit].parents) > 1
            group = self._rev_list("--topo-order", commit, since, first=True) if merge else [commit]
            for sha in group:
                info = log[sha]
                base = info.parents[0] if info.parents else None
                enforced = current.policy is not None and current.policy.spec.mode != "none"
                after = self._judge(info, current, base)
                checked += enforced
                if sha == head and enforced:
                    signer = info.signer
                if sha == commit:
                    current = after
        final = self._read(head)
        if final.fingerprint != current.fingerprint:
            raise _refuse(
                "policy-change-not-admin",
                head,
                "the AccessPolicy at the head is not one an admin signed in",
            )
        return Verdict(True, head, "verified", policy=current, checked=checked, signer=signer)

    def _read(self, sha: str) -> PolicySnapshot:
        # A commit's tree never changes, so its policy is read once.
        if sha not in self._policies:
            self._policies[sha] = self._reader(self.repo, sha)
        return self._policies[sha]

    # --- modes ----------------------------------------------------------------------------

    def _verify_head(self, trusted: PolicySnapshot, since: str | None, head: str) -> Verdict:
        files = tuple(self.repo.changed_files(since, head))
        # The head's signer answers for the whole range, as if it were one commit.
        info = replace(self._commits(trusted, None, head, {}, single=True)[head], files=files)
        after = self._judge(info, trusted, since)
        return Verdict(True, head, "verified", policy=after, checked=1, signer=info.signer)

    def _bootstrap(self, head: str) -> Verdict:
        at_head = self._read(head)
        if self.pinned is None:
            if at_head.policy is None:
                return Verdict(True, head, "not-required")
            raise _refuse(
                "policy-not-pinned",
                head,
                "the repository has an AccessPolicy but no fingerprint is pinned",
            )
        anchor = self._find_anchor(head, at_head)
        if anchor is None:
            raise _refuse(
                "policy-not-pinned",
                head,
                f"no commit in the last {self.anchor_limit} carries the pinned AccessPolicy",
            )
        sha, parent = anchor
        return self.verify_range(self._read(sha), parent, head)

    def _find_anchor(self, head: str, at_head: PolicySnapshot) -> tuple[str, str | None] | None:
        out = self.repo.text(
            "log", "--first-parent", f"-n{self.anchor_limit}", "-z", "--name-only",
            "--no-renames", "--diff-merges=first-parent", "--format=%x1e%H", head, "--",
        )  # fmt: skip
        chain = [_split_entry(chunk) for chunk in out.split("\x1e") if chunk.strip("\0\n")]
        declaring = self._declaring("--first-parent", f"-n{self.anchor_limit}", head)
        fingerprint, path = at_head.fingerprint, at_head.path
        anchor: str | None = None
        for index, (sha, _) in enumerate(chain):
            child, files = chain[index - 1] if index else ("", [])
            if child in declaring or (path is not None and path in files):
                try:
                    snapshot = self._read(sha)
                    fingerprint, path = snapshot.fingerprint, snapshot.path
                except CommitRefused:
                    fingerprint = None  # an old invalid policy is simply not the pinned one
            if fingerprint == self.pinned:
                anchor = sha
            elif anchor is not None:
                return anchor, sha
        if anchor is None:
            return None
        parents = self.repo.text("rev-list", "--parents", "-n1", anchor).split()[1:2]
        return anchor, (parents[0] if parents else None)

    # --- one commit -----------------------------------------------------------------------

    def _judge(self, info: CommitInfo, current: PolicySnapshot, base: str | None) -> PolicySnapshot:
        """Check one commit (its diff to ``base``) under ``current``; return the policy after it.

        The signature is checked before anything the commit brings is read. Every document
        the commit adds, changes or removes needs the roles its kind and channel require
        (:mod:`reconciler.source.authority`), then every changed file the path rules.
        """
        enforce = current.policy is not None and current.policy.spec.mode != "none"
        signer = self._signer(info, current.policy) if enforce and current.policy else None
        changes = self._documents.changes(base, info.sha, info.files)
        if signer is not None and current.policy is not None:
            self._check_documents(info.sha, signer, current.policy, changes)
        after = current
        if any(c.kind == "AccessPolicy" for c in changes):
            after = self._read(info.sha)
        if signer is not None and current.policy is not None:
            # The policy's file answers to adminRole alone, for its admins only: anyone else
            # adding a document beside the policy still meets the path rules.
            admin = current.policy.spec.adminRole in signer.roles
            exempt = frozenset(p for p in (current.path, after.path) if p and admin)
            self._check_paths(info, signer, current.policy, exempt)
        return after

    def _check_documents(
        self,
        sha: str,
        signer: CommitSigner,
        policy: AccessPolicy,
        changes: list[DocumentChange],
    ) -> None:
        roles = set(signer.roles)
        for change in changes:
            needed = {
                req
                for data in (*change.before, *change.after)
                for req in requirements(policy.spec, change.kind, data)
            }
            for rule, allowed in sorted(needed):
                if roles & set(allowed):
                    continue
                reason = (
                    "policy-change-not-admin"
                    if change.kind == "AccessPolicy"
                    else "kind-not-allowed"
                )
                raise _refuse(
                    reason,
                    sha,
                    f"{signer.name} may not {change.action} {change.kind} {change.name!r} "
                    f"({change.where}): {rule} needs one of [{', '.join(allowed)}]",
                )

    def _check_paths(
        self, info: CommitInfo, signer: CommitSigner, policy: AccessPolicy, exempt: frozenset[str]
    ) -> None:
        # The file declaring the AccessPolicy answers to adminRole alone (checked above).
        roles = set(signer.roles)
        for path in info.files:
            if path in exempt:
                continue
            for index, rule in enumerate(policy.spec.rules):
                if any(glob_match(p, path) for p in rule.paths) and not roles & set(rule.roles):
                    raise _refuse(
                        "path-not-allowed",
                        info.sha,
                        f"{signer.name} may not change {path}: rules[{index}] "
                        f"({', '.join(rule.paths)}) needs one of [{', '.join(rule.roles)}]",
                    )

    def _signer(self, info: CommitInfo, policy: AccessPolicy) -> CommitSigner:
        status = info.status
        if status == "N":
            raise _refuse("unsigned", info.sha, "the commit is not signed")
        if status in ("B", "X", "Y", "R"):
            what = {"B": "bad", "X": "expired", "Y": "made by an expired key", "R": "revoked"}
            raise _refuse("bad-signature", info.sha, f"the signature is {what[status]}")
        if info.key.startswith("SHA256:"):
            # SSH: git found the key in the allowed-signers file only when it reports G; the
            # roles are those of the entry holding that very key, whatever its name says.
            for signer in policy.spec.signers:
                if status == "G" and signer.sshKey and _ssh_fingerprint(signer) == info.key:
                    return signer
        elif status in ("G", "U"):
            keys = {info.key.upper(), info.primary.upper()} - {""}
            for signer in policy.spec.signers:
                if signer.pgpFingerprint and signer.pgpFingerprint.upper() in keys:
                    return signer
        raise _refuse(
            "unknown-key", info.sha, f"signed by a key the AccessPolicy does not list ({info.key})"
        )

    def _declaring(self, *args: str) -> frozenset[str]:
        """Commits whose diff to their first parent adds or removes an AccessPolicy line."""
        out = self.repo.text(
            "log", "--no-patch", "--format=%H", "-G", "AccessPolicy",
            "--diff-merges=first-parent", *args, "--",
        )  # fmt: skip
        return frozenset(out.split())

    # --- git ------------------------------------------------------------------------------

    def _rev_list(self, order: str, head: str, since: str | None, first: bool = False) -> list[str]:
        args = ["rev-list", "--reverse", order, head]
        if first:
            # The commits a mainline commit brings in: itself and its merged side commits.
            parents = self.repo.text("rev-list", "--parents", "-n1", head).split()[1:2]
            args += [f"^{p}" for p in parents]
        if since is not None:
            args.append(f"^{since}")
        return self.repo.text(*args, "--").split()

    def _commits(
        self,
        policy: PolicySnapshot,
        since: str | None,
        head: str,
        cache: dict[str | None, dict[str, CommitInfo]],
        *,
        single: bool = False,
    ) -> dict[str, CommitInfo]:
        """Signature status and files of ``since..head``, as git sees them under ``policy``."""
        key = policy.fingerprint
        if key in cache:
            return cache[key]
        with tempfile.TemporaryDirectory(prefix="gitfirm-signers-") as tmp:
            signers = Path(tmp) / "allowed_signers"
            signers.write_text(_allowed_signers(policy.policy), encoding="utf-8")
            env = {"GNUPGHOME": str(self.gnupg_home)} if self.gnupg_home else {}
            rng = [head, "-n1"] if single else [head, *([f"^{since}"] if since else [])]
            out = self.repo.text(
                "log", "-z", "--name-only", "--no-renames", "--diff-merges=first-parent",
                "--no-show-signature", f"--format={_FORMAT}", *rng, "--",
                config={"gpg.ssh.allowedSignersFile": str(signers)},
                env=env,
            )  # fmt: skip
        infos = [_parse(chunk) for chunk in out.split("\x1e") if chunk.strip("\0\n")]
        cache[key] = {i.sha: i for i in infos}
        return cache[key]


def _ssh_fingerprint(signer: CommitSigner) -> str:
    """``SHA256:<base64>`` of the signer's SSH key, as git's ``%GF`` prints it."""
    try:
        blob = base64.b64decode(signer.key_id, validate=True)
    except ValueError:
        return ""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _allowed_signers(policy: AccessPolicy | None) -> str:
    lines = [
        f'{s.name} namespaces="git" {s.sshKey}\n'
        for s in (policy.spec.signers if policy else [])
        if s.sshKey
    ]
    return "".join(lines)


def _split_entry(chunk: str) -> tuple[str, list[str]]:
    head, _, rest = chunk.partition("\0")
    return head.strip(), [f for f in rest.lstrip("\n").split("\0") if f]


def _parse(chunk: str) -> CommitInfo:
    header, files = _split_entry(chunk)
    sha, parents, status, signer, key, primary = (header.split("\x1f") + [""] * 6)[:6]
    return CommitInfo(
        sha=sha,
        parents=tuple(parents.split()),
        status=status,
        signer=signer,
        key=key,
        primary=primary,
        files=tuple(files),
    )
