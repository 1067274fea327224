"""Proposals against a real bare config remote: one signed commit on a proposal branch,
never a push to the desired branch, never the same proposal twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer

from reconciler.clock import FakeClock
from reconciler.errors import ProposalError
from reconciler.forge import ForgeConfig, make_forge
from reconciler.gitbot import GitIdentity
from reconciler.proposals import Proposal, ProposalOutcome, Proposer, ProposerSettings
from reconciler.proposals.gitwork import ProposalGit
from tests.support.forge import FakeForge
from tests.support.gitrepo import git, rev_parse, ssh_key
from tests.support.report import ConfigRemote

DEVICE = "apiVersion: gitfirm.io/v1\nkind: Device\nmetadata:\n  name: r9\n"


def _proposal(subject: str = "https://127.0.0.2:443", text: str = DEVICE) -> Proposal:
    return Proposal(
        kind="discovery",
        subject=subject,
        title="Add discovered router r9",
        body="Found by gitfirm discover.",
        files={"fleet/discovered/r9.yaml": text},
    )


def _proposer(remote: ConfigRemote, workdir: Path, key: Path | None = None) -> Proposer:
    settings = ProposerSettings(
        remote=str(remote.path),
        base="main",
        workdir=workdir,
        identity=GitIdentity("gitfirm", "gitfirm@example.test", key),
    )
    return Proposer(settings, clock=FakeClock())


def _heads(remote: ConfigRemote) -> list[str]:
    out = git(remote.path, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    return sorted(out.split())


def test_a_proposal_is_one_signed_commit_on_its_own_branch(
    remote: ConfigRemote, tmp_path: Path
) -> None:
    key = ssh_key(tmp_path / "keys", "daemon")
    proposal = _proposal()
    result = asyncio.run(_proposer(remote, tmp_path / "w", key.private).propose(proposal))

    assert result.outcome is ProposalOutcome.OPENED
    assert result.branch == f"gitfirm/proposals/discovery/{proposal.id}"
    assert _heads(remote) == sorted(["main", result.branch])
    assert rev_parse(remote.path, "main") == remote.revision  # the desired branch is untouched
    assert rev_parse(remote.path, result.branch) == result.commit
    assert git(remote.path, "rev-list", "--count", f"main..{result.branch}").strip() == "1"
    assert git(remote.path, "rev-parse", f"{result.branch}^").strip() == remote.revision
    changed = git(remote.path, "diff", "--name-only", "main", result.branch).split()
    assert changed == ["fleet/discovered/r9.yaml"]
    assert git(remote.path, "show", f"{result.branch}:fleet/discovered/r9.yaml") == DEVICE
    message = git(remote.path, "log", "-1", "--format=%B", result.branch)
    assert f"Proposal: discovery/{proposal.id}" in message
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"gitfirm@example.test {key.public}\n")
    verdict = git(
        remote.path,
        "-c",
        f"gpg.ssh.allowedSignersFile={signers}",
        "log",
        "-1",
        "--format=%G?",
        result.branch,
    ).strip()
    assert verdict == "G"


def test_an_unsigned_proposal_when_no_key_is_set(remote: ConfigRemote, tmp_path: Path) -> None:
    result = asyncio.run(_proposer(remote, tmp_path / "w").propose(_proposal()))
    assert result.outcome is ProposalOutcome.OPENED
    assert git(remote.path, "log", "-1", "--format=%G?", result.branch).strip() == "N"


def test_the_same_proposal_is_never_opened_twice(remote: ConfigRemote, tmp_path: Path) -> None:
    proposer = _proposer(remote, tmp_path / "w")
    first = asyncio.run(proposer.propose(_proposal()))
    # Same subject, different details (a newer running version): the same proposal.
    again = asyncio.run(proposer.propose(_proposal(text=DEVICE + "# seen again\n")))
    assert again.outcome is ProposalOutcome.KNOWN
    assert rev_parse(remote.path, first.branch) == first.commit

    # Another instance (no ledger) finds the branch on the remote and pushes nothing.
    other = asyncio.run(_proposer(remote, tmp_path / "w2").propose(_proposal()))
    assert other.outcome is ProposalOutcome.EXISTS
    assert other.commit == first.commit
    assert _heads(remote) == sorted(["main", first.branch])

    # A person closed it and deleted the branch: the ledger keeps it from coming back.
    git(remote.path, "branch", "-D", first.branch)
    closed = asyncio.run(proposer.propose(_proposal()))
    assert closed.outcome is ProposalOutcome.KNOWN
    assert _heads(remote) == ["main"]


def test_a_proposal_already_merged_is_not_opened(remote: ConfigRemote, tmp_path: Path) -> None:
    work = tmp_path / "person"
    git(tmp_path, "clone", "-q", str(remote.path), str(work))
    (work / "fleet/discovered").mkdir(parents=True)
    (work / "fleet/discovered/r9.yaml").write_text(DEVICE)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--no-gpg-sign", "-m", "add r9 by hand")
    git(work, "push", "-q", "origin", "main")

    result = asyncio.run(_proposer(remote, tmp_path / "w").propose(_proposal()))
    assert result.outcome is ProposalOutcome.APPLIED
    assert _heads(remote) == ["main"]


def test_distinct_subjects_are_distinct_proposals(remote: ConfigRemote, tmp_path: Path) -> None:
    proposer = _proposer(remote, tmp_path / "w")
    a = asyncio.run(proposer.propose(_proposal("https://127.0.0.2:443")))
    b = asyncio.run(proposer.propose(_proposal("https://127.0.0.3:443")))
    assert a.branch != b.branch
    assert _heads(remote) == sorted(["main", a.branch, b.branch])


@pytest.mark.parametrize("path", ["../evil.yaml", "/etc/passwd", "fleet/../x.yaml", "a//b", ""])
def test_a_proposal_only_adds_plain_relative_paths(path: str) -> None:
    with pytest.raises(ValueError, match="plain relative path"):
        Proposal(kind="discovery", subject="s", title="t", body="b", files={path: "x"})


def test_a_proposal_branch_is_the_only_thing_pushed(remote: ConfigRemote, tmp_path: Path) -> None:
    repo = ProposalGit(tmp_path / "g", str(remote.path), "main", GitIdentity())
    repo.open()
    with pytest.raises(ProposalError, match="not a proposal branch"):
        repo.publish("main", {"x.yaml": "x"}, "m", FakeClock().now())
    assert rev_parse(remote.path, "main") == remote.revision


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
async def test_a_pull_request_that_failed_is_opened_by_the_next_attempt(
    remote: ConfigRemote, tmp_path: Path, httpserver: HTTPServer, kind: str
) -> None:
    """The branch is pushed, the forge refuses the pull request: nothing is recorded, so the
    next attempt finds the branch and opens the pull request, once."""
    fake = FakeForge(httpserver, kind)  # type: ignore[arg-type]
    config = ForgeConfig(kind, fake.repo, url=fake.api_root, token_env="T")  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        forge = make_forge(
            config, fake.token, http=http, clock=FakeClock(autojump=True), user_agent="t"
        )
        settings = ProposerSettings(remote=str(remote.path), base="main", workdir=tmp_path / "w")
        proposer = Proposer(settings, forge=forge, clock=FakeClock(), secrets=(fake.token,))
        fake.fail_next(401, {"message": "Bad credentials"}, when=lambda r: r.method == "POST")
        with pytest.raises(ProposalError) as failed:
            await proposer.propose(_proposal())
        assert fake.token not in str(failed.value)
        assert proposer.known() == {} and fake.pulls == []
        branch = _proposal().branch
        assert branch in _heads(remote)

        result = await proposer.propose(_proposal())
        assert result.outcome is ProposalOutcome.EXISTS and result.pull_request
        assert len(fake.pulls) == 1
        assert (await proposer.propose(_proposal())).outcome is ProposalOutcome.KNOWN
        assert len(fake.pulls) == 1
