"""What a proposal is, and what publishing one did (plain data)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["BRANCH_PREFIX", "Proposal", "ProposalOutcome", "ProposalResult", "proposal_id"]

BRANCH_PREFIX = "gitfirm/proposals/"
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9._-]+$")


def proposal_id(kind: str, subject: str) -> str:
    """16 hex digits of SHA-256 over the kind and the subject."""
    return hashlib.sha256(f"{kind}\0{subject}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Proposal:
    """Files to add to the config repository, with a title and body for the pull request.

    ``subject`` says what the proposal is about (a router's address and certificate pin,
    an image's SHA-256): the id is derived from it, so two scans that find the same thing
    make the same proposal even when incidental details (a running version) differ.
    """

    kind: str
    subject: str
    title: str
    body: str
    files: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _KIND.match(self.kind):
            raise ValueError(f"proposal kind {self.kind!r} is not a short lower-case word")
        if not self.files:
            raise ValueError("a proposal adds at least one file")
        for path in self.files:
            parts = path.split("/")
            if not all(_PATH_PART.match(p) and p not in (".", "..") for p in parts):
                raise ValueError(f"proposal path {path!r} is not a plain relative path")

    @property
    def id(self) -> str:
        """See :func:`proposal_id`."""
        return proposal_id(self.kind, self.subject)

    @property
    def branch(self) -> str:
        """``gitfirm/proposals/<kind>/<id>``."""
        return f"{BRANCH_PREFIX}{self.kind}/{self.id}"


class ProposalOutcome(Enum):
    """What publishing a proposal did."""

    OPENED = "opened"
    """A new branch was pushed (and a pull request opened when a forge is configured)."""
    EXISTS = "exists"
    """Its branch is already on the remote: the pull request was only updated."""
    KNOWN = "known"
    """Proposed before (the ledger remembers it): nothing was done."""
    APPLIED = "applied"
    """The desired branch already holds these files: nothing to propose."""


@dataclass(frozen=True, slots=True)
class ProposalResult:
    """The outcome for one proposal, with its branch, commit and pull request URL."""

    proposal_id: str
    branch: str
    outcome: ProposalOutcome
    commit: str | None = None
    pull_request: str | None = None
