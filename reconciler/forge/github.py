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

from reconciler.errors import ForgeError
from reconciler.forge.http import ForgeHTTP, comment_from, forge_message, pull_from
from reconciler.forge.protocol import Comment, CommitState, PullRequest

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


class GitHub:
    """One GitHub repository (``owner/name``)."""

    name = "github"
    max_comment = 65536

    def __init__(self, http: ForgeHTTP, repo: str) -> None:
        self._http = http
        self._owner = repo.split("/", 1)[0]
        self._repo = f"/repos/{repo}"

    async def set_status(
        self, sha: str, *, context: str, state: CommitState, description: str, target_url: str
    ) -> bool:
        body = {
            "state": state,
            "context": context,
            "description": description[:140],
            "target_url": target_url,
        }
        await self._http.request("POST", f"{self._repo}/statuses/{sha}", json=body, ok=(201,))
        return True

    async def list_comments(self, number: int) -> list[Comment]:
        items = await self._http.paginate(
            f"{self._repo}/issues/{number}/comments", params={"per_page": 100}
        )
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
                ok=(201, 422),
            )
            if response.status_code == 201:
                return pull_from(response.json())
            # 422: one was opened since we looked (or the branch is missing: then say so).
            existing = await self._find_pull(head, base)
            if existing is None:
                raise ForgeError(
                    f"github: cannot open a pull request from {head} into {base}: "
                    f"{forge_message(response)}",
                    status=422,
                )
        await self._http.request(
            "PATCH",
            f"{self._repo}/pulls/{existing.number}",
            json={"title": title, "body": body},
            ok=(200,),
        )
        return existing

    async def _find_pull(self, head: str, base: str) -> PullRequest | None:
        items = await self._http.paginate(
            f"{self._repo}/pulls",
            params={"head": f"{self._owner}:{head}", "base": base, "state": "open"},
        )
        return pull_from(items[0]) if items else None
