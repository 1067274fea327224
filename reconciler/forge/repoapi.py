"""The repository API that GitHub and Gitea/Forgejo share (Gitea copied GitHub's shapes).

Statuses, issue comments and pull requests have the same paths, bodies and answers on both;
they differ only in the limits and codes the subclasses set, and in how an open pull request
is found (:meth:`RepoAPI._find_pull`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from reconciler.errors import ForgeError
from reconciler.forge.http import ForgeHTTP, comment_from, forge_message, pull_from
from reconciler.forge.protocol import Comment, CommitState, PullRequest

__all__ = ["RepoAPI"]


class RepoAPI:
    """One repository (``owner/name``) under ``/repos/{owner}/{repo}``."""

    name: str
    max_comment: int = 65536
    description_limit: ClassVar[int]
    comment_page: ClassVar[dict[str, Any]] = {}
    """Query parameters of the first page of an issue's comments."""
    pull_exists: ClassVar[int]
    """The answer to opening a pull request that is already open for the branches."""
    pull_updated: ClassVar[tuple[int, ...]] = (200,)

    def __init__(self, http: ForgeHTTP, repo: str) -> None:
        self._http = http
        self._owner = repo.split("/", 1)[0]
        self._repo = f"/repos/{repo}"

    async def set_status(
        self, sha: str, *, context: str, state: CommitState, description: str, target_url: str
    ) -> bool:
        """Post the commit status ``context`` on ``sha``."""
        body = {
            "state": state,
            "context": context,
            "description": description[: self.description_limit],
            "target_url": target_url,
        }
        await self._http.request("POST", f"{self._repo}/statuses/{sha}", json=body, ok=(201,))
        return True

    async def list_comments(self, number: int) -> list[Comment]:
        """Every comment on issue or pull request ``number``, all pages."""
        path = f"{self._repo}/issues/{number}/comments"
        items = await self._http.paginate(path, params=self.comment_page or None)
        return [comment_from(item) for item in items]

    async def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment to issue or pull request ``number``."""
        response = await self._http.request(
            "POST", f"{self._repo}/issues/{number}/comments", json={"body": body}, ok=(201,)
        )
        return comment_from(response.json())

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        """Replace the body of comment ``comment_id``."""
        response = await self._http.request(
            "PATCH", f"{self._repo}/issues/comments/{comment_id}", json={"body": body}, ok=(200,)
        )
        return comment_from(response.json())

    async def delete_comment(self, number: int, comment_id: int) -> None:
        """Delete comment ``comment_id``."""
        await self._http.request("DELETE", f"{self._repo}/issues/comments/{comment_id}", ok=(204,))

    async def open_or_update_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a pull request from ``head`` into ``base``, or retitle the open one."""
        existing = await self._find_pull(head, base)
        if existing is None:
            response = await self._http.request(
                "POST",
                f"{self._repo}/pulls",
                json={"title": title, "head": head, "base": base, "body": body},
                ok=(201, self.pull_exists),
            )
            if response.status_code == 201:
                return pull_from(response.json())
            # One was opened since we looked (or the branch is missing: then say so).
            existing = await self._find_pull(head, base)
            if existing is None:
                raise ForgeError(
                    f"{self.name}: cannot open a pull request from {head} into {base}: "
                    f"{forge_message(response)}",
                    status=response.status_code,
                )
        await self._http.request(
            "PATCH",
            f"{self._repo}/pulls/{existing.number}",
            json={"title": title, "body": body},
            ok=self.pull_updated,
        )
        return existing

    async def _find_pull(self, head: str, base: str) -> PullRequest | None:
        raise NotImplementedError
