"""GitLab REST API v4 (``https://gitlab.example.com/api/v4``).

- statuses: ``POST /projects/{id}/statuses/{sha}`` with ``state`` (``running``,
  ``success``, ``failed``, ``canceled``), ``name``, ``target_url`` and ``description``;
  201. Posting the state a status already has is refused with 400 "Cannot transition
  status via :run from :running": the status is already what we want, so that answer counts
  as done (and the description cannot change until the state does).
- notes: ``GET /projects/{id}/merge_requests/{iid}/notes?per_page=100&sort=asc`` (paginated by
  ``Link`` and ``X-Next-Page``; system notes are skipped), ``POST`` there,
  ``PUT``/``DELETE .../notes/{note_id}``; a note holds at most 1,000,000 characters.
- merge requests: ``GET /projects/{id}/merge_requests?state=opened&source_branch=...``,
  ``POST /projects/{id}/merge_requests`` (409 when one is already open for the branch),
  ``PUT /projects/{id}/merge_requests/{iid}`` (``description`` is the body).
- ``{id}`` is the project path URL-encoded (``group%2Fproject``); auth is ``PRIVATE-TOKEN``.
"""

from __future__ import annotations

from urllib.parse import quote

from reconciler.errors import ForgeError
from reconciler.forge.http import ForgeHTTP, comment_from, forge_message, pull_from
from reconciler.forge.protocol import Comment, CommitState, PullRequest

__all__ = ["GitLab", "gitlab_headers"]

# GitLab's own words for "the status already has that state".
_DUPLICATE = "Cannot transition status"
_STATES: dict[str, str] = {
    "pending": "running",
    "success": "success",
    "failure": "failed",
    "error": "canceled",  # gitfirm says error only for a rollout a newer revision replaced
}


def gitlab_headers(token: str, user_agent: str) -> dict[str, str]:
    """The headers GitLab documents for personal, project and group access tokens."""
    return {"Accept": "application/json", "PRIVATE-TOKEN": token, "User-Agent": user_agent}


class GitLab:
    """One GitLab project (``group/project`` or a numeric id)."""

    name = "gitlab"
    max_comment = 1_000_000

    def __init__(self, http: ForgeHTTP, repo: str) -> None:
        self._http = http
        self._project = f"/projects/{quote(repo, safe='')}"

    async def set_status(
        self, sha: str, *, context: str, state: CommitState, description: str, target_url: str
    ) -> bool:
        body = {
            "state": _STATES[state],
            "name": context,
            "description": description[:255],
            "target_url": target_url,
        }
        response = await self._http.request(
            "POST", f"{self._project}/statuses/{sha}", json=body, ok=(201, 400)
        )
        if response.status_code == 201:
            return True
        message = forge_message(response)
        if _DUPLICATE in message:
            return False
        raise ForgeError(
            f"gitlab: POST {self._project}/statuses/{sha[:12]}: 400 {message[:300]}", status=400
        )

    async def list_comments(self, number: int) -> list[Comment]:
        items = await self._http.paginate(
            f"{self._project}/merge_requests/{number}/notes",
            params={"per_page": 100, "sort": "asc", "order_by": "created_at", "page": 1},
        )
        return [comment_from(item) for item in items if not item.get("system")]

    async def create_comment(self, number: int, body: str) -> Comment:
        response = await self._http.request(
            "POST",
            f"{self._project}/merge_requests/{number}/notes",
            json={"body": body},
            ok=(201,),
        )
        return comment_from(response.json())

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        response = await self._http.request(
            "PUT",
            f"{self._project}/merge_requests/{number}/notes/{comment_id}",
            json={"body": body},
            ok=(200,),
        )
        return comment_from(response.json())

    async def delete_comment(self, number: int, comment_id: int) -> None:
        await self._http.request(
            "DELETE", f"{self._project}/merge_requests/{number}/notes/{comment_id}", ok=(204,)
        )

    async def open_or_update_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        existing = await self._find_merge_request(head, base)
        if existing is None:
            response = await self._http.request(
                "POST",
                f"{self._project}/merge_requests",
                json={
                    "source_branch": head,
                    "target_branch": base,
                    "title": title,
                    "description": body,
                },
                ok=(201, 409),
            )
            if response.status_code == 201:
                return pull_from(response.json(), number="iid", url="web_url")
            existing = await self._find_merge_request(head, base)  # 409: opened since we looked
            if existing is None:
                raise ForgeError(
                    f"gitlab: cannot open a merge request from {head} into {base}: 409",
                    status=409,
                )
        await self._http.request(
            "PUT",
            f"{self._project}/merge_requests/{existing.number}",
            json={"title": title, "description": body},
            ok=(200,),
        )
        return existing

    async def _find_merge_request(self, head: str, base: str) -> PullRequest | None:
        items = await self._http.paginate(
            f"{self._project}/merge_requests",
            params={"state": "opened", "source_branch": head, "target_branch": base},
        )
        return pull_from(items[0], number="iid", url="web_url") if items else None
