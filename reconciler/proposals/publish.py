"""Publishing a proposal: its branch on the config repository, then its pull request.

The ledger (``proposals.json`` in the work directory) lists every proposal id that was
published. It is written only after the pull request is open (or, with no forge, after
the push), so a crash in between is finished by the next attempt: the branch is found on
the remote and only the pull request is opened or updated.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.clock import Clock, SystemClock
from reconciler.errors import GitfirmError, ProposalError
from reconciler.forge.protocol import PullRequests
from reconciler.gitbot import GitIdentity
from reconciler.proposals.gitwork import ProposalGit
from reconciler.proposals.model import Proposal, ProposalOutcome, ProposalResult, proposal_id
from reconciler.sanitize import redact

__all__ = ["Proposer", "ProposerSettings"]

_OUTCOMES = {"pushed": ProposalOutcome.OPENED, "exists": ProposalOutcome.EXISTS}


@dataclass(frozen=True, slots=True)
class ProposerSettings:
    """Where proposals go: the config repository, its desired branch and a work directory."""

    remote: str
    """URL or path of the config repository."""
    base: str
    """The desired branch pull requests target; proposals never push to it."""
    workdir: Path
    """Local repository and ledger; keep it between runs, or proposals are re-checked."""
    identity: GitIdentity = field(default_factory=GitIdentity)
    """Author of proposal commits; with a signing key, each commit is signed."""


class Proposer:
    """Publishes proposals one at a time (one local repository, one ledger)."""

    def __init__(
        self,
        settings: ProposerSettings,
        *,
        forge: PullRequests | None = None,
        clock: Clock | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self._forge = forge
        self._clock: Clock = clock or SystemClock()
        self._secrets = secrets
        self._git = ProposalGit(
            settings.workdir / "repo",
            settings.remote,
            settings.base,
            settings.identity,
            secrets=secrets,
        )
        self._ledger_path = settings.workdir / "proposals.json"
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Proposer(base={self.settings.base!r}, forge={self._forge is not None})"

    def known(self) -> dict[str, dict[str, str]]:
        """The ledger: proposal id -> branch, outcome and pull request URL."""
        try:
            data = json.loads(self._ledger_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ProposalError(f"{self._ledger_path} is not valid JSON: {exc}") from None
        return {str(k): dict(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def was_proposed(self, kind: str, subject: str) -> bool:
        """Whether the ledger has the proposal for ``subject`` (no git, no network)."""
        return proposal_id(kind, subject) in self.known()

    def _record(self, result: ProposalResult) -> None:
        ledger = self.known()
        ledger[result.proposal_id] = {
            "branch": result.branch,
            "outcome": result.outcome.value,
            **({"pullRequest": result.pull_request} if result.pull_request else {}),
        }
        tmp = self._ledger_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ledger, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self._ledger_path)

    async def propose(self, proposal: Proposal) -> ProposalResult:
        """Publish ``proposal`` unless it was published before; never raises anything but
        :class:`ProposalError` (git or forge failures, retried by calling again)."""
        async with self._lock:
            if proposal.id in self.known():
                return ProposalResult(proposal.id, proposal.branch, ProposalOutcome.KNOWN)
            self.settings.workdir.mkdir(parents=True, exist_ok=True)
            message = _message(proposal)
            when = self._clock.now()

            def publish() -> tuple[str, str | None]:
                self._git.open()
                built = self._git.publish(proposal.branch, proposal.files, message, when)
                return built.state, built.commit

            state, commit = await asyncio.to_thread(publish)
            if state == "applied":
                result = ProposalResult(proposal.id, proposal.branch, ProposalOutcome.APPLIED)
                self._record(result)
                return result
            url = await self._pull_request(proposal)
            result = ProposalResult(proposal.id, proposal.branch, _OUTCOMES[state], commit, url)
            self._record(result)
            return result

    async def _pull_request(self, proposal: Proposal) -> str | None:
        if self._forge is None:
            return None
        try:
            pr = await self._forge.open_or_update_pull_request(
                head=proposal.branch,
                base=self.settings.base,
                title=proposal.title,
                body=proposal.body,
            )
        except Exception as exc:  # whichever forge client: its failure is this proposal's
            text = exc.message if isinstance(exc, GitfirmError) else f"{type(exc).__name__}: {exc}"
            raise ProposalError(redact(f"pull request: {text}", self._secrets)) from None
        return pr.url


def _message(proposal: Proposal) -> str:
    return (
        f"{proposal.title}\n\n{proposal.body.strip()}\n\nProposal: {proposal.kind}/{proposal.id}\n"
    )
