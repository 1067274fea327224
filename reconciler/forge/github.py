"""GitHub REST API (api.github.com, or GitHub Enterprise Server's ``/api/v3``).

- statuses: ``POST /repos/{owner}/{repo}/statuses/{sha}`` with ``state``, ``target_url``,
  ``description`` (140 characters at most) and ``context``; 201.
- comments: ``GET /repos/{owner}/{repo}/issues/{number}/comments?per_page=100`` (paginated
  by ``Link``), ``POST`` there, ``PATCH``/``DELETE /repos/{owner}/{repo}/issues/comments/{id}``;
  a body holds at most 65,536 characters.
- pull requests: ``GET /repos/{owner}/{repo}/pulls?head=owner:branch&base=...&state=open``,
  ``POST /repos/{owner}/{repo}/pulls`` (422 when one is already open for the head),
  ``PATCH /repos/{owner}/{repo}/pulls/{number}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from reconciler.forge.http import pull_from
from reconciler.forge.protocol import PullRequest
from reconciler.forge.repoapi import RepoAPI

__all__ = ["API_VERSION", "GitHub", "github_headers"]

API_VERSION = "2022-11-28"


def github_headers(token: str, user_agent: str) -> dict[str, str]:
    """The headers GitHub documents for its REST API."""
    return {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": user_agent,
    }


class GitHub(RepoAPI):
    """One GitHub repository (``owner/name``)."""

    name = "github"
    description_limit = 140
    comment_page: ClassVar[dict[str, Any]] = {"per_page": 100}
    pull_exists = 422

    async def _find_pull(self, head: str, base: str) -> PullRequest | None:
        items = await self._http.paginate(
            f"{self._repo}/pulls",
            params={"head": f"{self._owner}:{head}", "base": base, "state": "open"},
        )
        return pull_from(items[0]) if items else None
