"""What the rest of gitfirm needs from a forge, whichever forge it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Comment", "CommitState", "Forge", "PullRequest", "PullRequests"]

CommitState = Literal["pending", "success", "failure", "error"]


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull (merge) request as the forge reports it."""

    number: int
    url: str


@dataclass(frozen=True, slots=True)
class Comment:
    """One comment on a pull (merge) request; ``id`` is what updating it needs."""

    id: int
    body: str


class PullRequests(Protocol):
    """Opening pull requests for proposals; the forge clients implement it."""

    async def open_or_update_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a pull request from ``head`` into ``base``, or update the open one for ``head``.

        Never opens a second pull request for the same head branch.
        """
        ...


class Forge(PullRequests, Protocol):
    """Everything gitfirm does on a forge: statuses, comments, pull requests."""

    name: str
    """``github``, ``gitlab`` or ``gitea`` (the metrics label)."""
    max_comment: int
    """The longest comment body the forge accepts, in characters."""

    async def set_status(
        self, sha: str, *, context: str, state: CommitState, description: str, target_url: str
    ) -> bool:
        """Set the commit status ``context`` on ``sha``; False when the forge already had it."""
        ...

    async def list_comments(self, number: int) -> list[Comment]:
        """Every comment on pull request ``number``, oldest first, across all pages."""
        ...

    async def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment to pull request ``number``."""
        ...

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        """Replace the body of one comment on pull request ``number``."""
        ...

    async def delete_comment(self, number: int, comment_id: int) -> None:
        """Remove one comment from pull request ``number``."""
        ...
