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

from reconciler.errors import ForgeError
from reconciler.forge.http import ForgeHTTP, comment_from, pull_from
from reconciler.forge.protocol import Comment, CommitState, PullRequest

__all__ = ["Gitea", "gitea_headers"]


def gitea_headers(token: str, user_agent: str) -> dict[str, str]:
    """The headers Gitea and Forgejo document for their API."""
    return {
        "Accept": "application/json",
        "Authorization": f"token {token}",
        "User-Agent": user_agent,
    }


class Gitea:
    """One Gitea or Forgejo repository (``owner/name``)."""

    name = "gitea"
    # Gitea keeps comments in a LONGTEXT column; stay at GitHub's size so one split fits all.
    max_comment = 65536

    def __init__(self, http: ForgeHTTP, repo: str) -> None:
        self._http = http
        self._repo = f"/repos/{repo}"

    async def set_status(
        self, sha: str, *, context: str, state: CommitState, description: str, target_url: str
    ) -> bool:
        body = {
            "state": state,
            "context": context,
            "description": description[:255],
            "target_url": target_url,
        }
        await self._http.request("POST", f"{self._repo}/statuses/{sha}", json=body, ok=(201,))
        return True

    async def list_comments(self, number: int) -> list[Comment]:
        items = await self._http.paginate(f"{self._repo}/issues/{number}/comments")
        return [comment_from(item) for item in items]

    async def create_comment(self, number: int, body: str) -> Comment:
        response = await self._http.request(
            "POST", f"{self._repo}/issues/{number}/comments", json={"body": body}, ok=(201,)
        )
        return comment_from(response.json())

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        response = await self._http.request(
            "PATCH", f"{self._repo}/issues/comments/{comment_id}", json={"body": body}, ok=(200,)
        )
        return comment_from(response.json())

    async def delete_comment(self, number: int, comment_id: int) -> None:
        await self._http.request("DELETE", f"{self._repo}/issues/comments/{comment_id}", ok=(204,))

    async def open_or_update_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        existing = await self._find_pull(head, base)
        if existing is None:
            response = await self._http.request(
                "POST",
                f"{self._repo}/pulls",
                json={"title": title, "head": head, "base": base, "body": body},
                ok=(201, 409),
            )
            if response.status_code == 201:
                return pull_from(response.json())
            existing = await self._find_pull(head, base)  # 409: opened since we looked
            if existing is None:
                raise ForgeError(
                    f"gitea: cannot open a pull request from {head} into {base}: 409", status=409
                )
        await self._http.request(
            "PATCH",
            f"{self._repo}/pulls/{existing.number}",
            json={"title": title, "body": body},
            ok=(201, 200),
        )
        return existing

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
