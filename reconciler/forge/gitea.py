"""Gitea and Forgejo API v1 (``https://host/api/v1``).

- statuses: ``POST /repos/{owner}/{repo}/statuses/{sha}`` with ``state``, ``target_url``,
  ``description`` and ``context``; 201.
- comments: ``GET /repos/{owner}/{repo}/issues/{index}/comments`` (all of them, in one
  answer; a ``Link`` is followed if a release sends one), ``POST`` there,
  ``PATCH``/``DELETE /repos/{owner}/{repo}/issues/comments/{id}``.
- pull requests: ``GET /repos/{owner}/{repo}/pulls?state=open&limit=50&page=N`` (``Link``
  and ``X-Total-Count``), ``POST /repos/{owner}/{repo}/pulls`` (409 when one is already open
  for the branches), ``PATCH /repos/{owner}/{repo}/pulls/{index}``.
- auth: ``Authorization: token <token>``.
"""

from __future__ import annotations

from typing import Any

from reconciler.forge.http import pull_from
from reconciler.forge.protocol import PullRequest
from reconciler.forge.repoapi import RepoAPI

__all__ = ["Gitea", "gitea_headers"]


def gitea_headers(token: str, user_agent: str) -> dict[str, str]:
    """The headers Gitea and Forgejo document for their API."""
    return {
        "Accept": "application/json",
        "Authorization": f"token {token}",
        "User-Agent": user_agent,
    }


class Gitea(RepoAPI):
    """One Gitea or Forgejo repository (``owner/name``)."""

    name = "gitea"
    # Gitea keeps comments in a LONGTEXT column; stay at GitHub's size so one split fits all.
    max_comment = 65536
    description_limit = 255
    pull_exists = 409
    pull_updated = (201, 200)

    async def _find_pull(self, head: str, base: str) -> PullRequest | None:
        items = await self._http.paginate(
            f"{self._repo}/pulls", params={"state": "open", "limit": 50, "page": 1}
        )
        for item in items:
            if _ref(item, "head") == head and _ref(item, "base") == base:
                return pull_from(item)
        return None


def _ref(item: dict[str, Any], side: str) -> str:
    branch = item.get(side)
    return str(branch.get("ref", "")) if isinstance(branch, dict) else ""
