"""What the rest of gitfirm needs from a forge, whichever forge it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["CommitState", "PullRequest", "PullRequests"]

CommitState = Literal["pending", "success", "failure", "error"]


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull (merge) request as the forge reports it."""

    number: int
    url: str


class PullRequests(Protocol):
    """Opening pull requests for proposals; the forge clients implement it."""

    async def open_or_update_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a pull request from ``head`` into ``base``, or update the open one for ``head``.

        Never opens a second pull request for the same head branch.
        """
        ...
