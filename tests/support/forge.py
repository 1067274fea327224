"""A fake GitHub, GitLab or Gitea on a pytest-httpserver, with the documented API shapes.

Mocks are for forge APIs only (the project's rule), and this is the one mock: a small,
stateful forge that answers the requests gitfirm makes the way each forge's API documentation
says it does, and refuses what the real one refuses:

- auth: GitHub ``Authorization: Bearer`` plus ``Accept``, ``X-GitHub-Api-Version`` and a
  ``User-Agent`` (403 without one); GitLab ``PRIVATE-TOKEN``; Gitea ``Authorization: token``.
  Anything else is 401.
- statuses: the state names each forge accepts (422/400 otherwise), GitHub's 140-character
  description and its limit of statuses per SHA and context (422), GitLab's refusal to post
  the state a running or pending status already has (400 "Cannot transition status").
- comments: GitHub's and GitLab's pagination (``per_page``/``page``, ``Link``, GitLab's
  ``X-Next-Page``), Gitea's one-answer listing, GitLab system notes, body size limits, 404 for
  a pull request that does not exist.
- pull requests: one open per head branch (GitHub 422, GitLab 409, Gitea 409), the list
  filters each forge documents.
- rate limits on demand: GitHub ``X-RateLimit-*`` with 403, GitLab ``RateLimit-*`` and
  ``Retry-After`` with 429, Gitea 429 with ``Retry-After``.

Every request is recorded (method, raw path, query, headers, JSON body) for assertions.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

__all__ = ["FORGES", "FakeForge", "Recorded"]

Kind = Literal["github", "gitlab", "gitea"]
FORGES: tuple[Kind, ...] = ("github", "gitlab", "gitea")
_PREFIX = {"github": "", "gitlab": "/api/v4", "gitea": "/api/v1"}
_STATUS_STATES = {
    "github": {"pending", "success", "failure", "error"},
    "gitlab": {"pending", "running", "success", "failed", "canceled", "skipped"},
    "gitea": {"pending", "success", "error", "failure", "warning"},
}
# GitLab's state machine events, as its "Cannot transition status via :<event>" names them.
_GITLAB_EVENT = {
    "pending": "enqueue",
    "running": "run",
    "success": "success",
    "failed": "drop",
    "canceled": "cancel",
    "skipped": "skip",
}
_GITLAB_ALLOWED = {
    "pending": {"running", "success", "failed", "canceled", "skipped"},
    "running": {"success", "failed", "canceled"},
}
_MAX_BODY = {"github": 65536, "gitlab": 1_000_000, "gitea": 1_000_000}


@dataclass(frozen=True)
class Recorded:
    """One request as the forge saw it."""

    method: str
    path: str
    """The raw path, percent-encoding kept (``/api/v4/projects/acme%2Ffleet/...``)."""
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Fault:
    status: int
    headers: dict[str, str]
    body: Any
    match: Callable[[Recorded], bool]


@dataclass
class FakeForge:
    """One repository on a fake forge of ``kind``, served by ``server``."""

    server: HTTPServer
    kind: Kind
    repo: str = "acme/fleet"
    token: str = "forge-token-0123456789abcdef"
    user: str = "gitfirm-bot"
    status_limit: int = 1000
    """GitHub refuses more statuses than this per SHA and context (its documented 1000)."""
    pulls_page: int = 30
    """Page size of listings when the client does not ask for one (GitHub: 30)."""
    requests: list[Recorded] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """The status code of each answer, in the order of ``requests``."""
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    _faults: deque[_Fault] = field(default_factory=deque)
    _ids: int = 1000
    _numbers: int = 0
    _exhausted_next: float | None = None

    def __post_init__(self) -> None:
        prefix = _PREFIX[self.kind]
        self.server.expect_request(re.compile(f"^{re.escape(prefix)}/.*")).respond_with_handler(
            self._dispatch
        )

    # -- what tests set up ------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        """The URL a client takes as ``--forge-url``."""
        return self.server.url_for(_PREFIX[self.kind] or "/").rstrip("/")

    def open_pull(self, *, head: str = "feature", base: str = "main", title: str = "t") -> int:
        """An open pull (merge) request, as a person would open it; returns its number."""
        return int(
            self._new_pull(head, base, title, "")["iid" if self.kind == "gitlab" else "number"]
        )

    def seed_comment(self, number: int, body: str, *, system: bool = False) -> int:
        """A comment somebody else wrote (or, on GitLab, a system note); returns its id."""
        return int(self._add_comment(number, body, system=system)["id"])

    def rate_limit_next(
        self, *, times: int = 1, reset_at: float = 0.0, retry_after: int = 0
    ) -> None:
        """Refuse the next ``times`` requests as the forge does when its quota is spent.

        ``reset_at`` is the Unix time the quota comes back (GitHub, GitLab headers);
        ``retry_after`` the seconds of a ``Retry-After`` header (GitLab, Gitea, GitHub's
        secondary limits). Give at least one.
        """
        for _ in range(times):
            self._faults.append(self._rate_limit_fault(reset_at, retry_after))

    def exhaust_quota_on_next(self, reset_at: float) -> None:
        """The next answer succeeds but says it spent the last request until ``reset_at``."""
        self._exhausted_next = reset_at

    def fail_next(
        self, status: int, body: Any = None, *, when: Callable[[Recorded], bool] | None = None
    ) -> None:
        """Answer the next request (or the next one ``when`` accepts) with ``status``."""
        self._faults.append(_Fault(status, {}, body, when or (lambda _: True)))

    # -- what tests check --------------------------------------------------------------------

    def latest_status(self, sha: str, context: str) -> dict[str, Any] | None:
        """The newest status ``context`` on ``sha`` (GitLab: ``name``), or None."""
        key = "name" if self.kind == "gitlab" else "context"
        found = [s for s in self.statuses.get(sha, []) if s[key] == context]
        return found[-1] if found else None

    def bodies(self, number: int) -> list[str]:
        """The comment bodies on ``number`` (system notes left out), oldest first."""
        return [c["body"] for c in self.comments.get(number, []) if not c.get("system")]

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """The recorded requests of ``method`` whose raw path matches ``pattern``."""
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # -- the server side ---------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        response = self._answer(request)
        self.answers.append(response.status_code)
        return response

    def _answer(self, request: Request) -> Response:
        raw = str(request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI") or "")
        path = raw.split("?", 1)[0] or request.path
        body: Any = None
        if request.data:
            try:
                body = json.loads(request.data)
            except ValueError:
                return self._json(400, {"message": "Problems parsing JSON"})
        seen = Recorded(
            method=request.method,
            path=path,
            query=dict(parse_qsl(raw.split("?", 1)[1])) if "?" in raw else {},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(seen)
        refusal = self._authenticate(seen)
        if refusal is not None:
            return refusal
        for fault in list(self._faults):
            if fault.match(seen):
                self._faults.remove(fault)
                return self._json(fault.status, fault.body, fault.headers)
        response = self._route(seen)
        if self._exhausted_next is not None and response.status_code < 400:
            response.headers.update(self._quota_headers(0, self._exhausted_next))
            self._exhausted_next = None
        return response

    def _authenticate(self, r: Recorded) -> Response | None:
        h = r.headers
        if self.kind == "github":
            if not h.get("user-agent"):
                return self._json(
                    403, {"message": "Request forbidden by administrative rules. "
                          "Please make sure your request has a User-Agent header"},
                )  # fmt: skip
            if h.get("authorization") != f"Bearer {self.token}":
                return self._json(401, {"message": "Bad credentials"})
            if h.get("accept") != "application/vnd.github+json":
                return self._json(415, {"message": "Unsupported 'Accept' header"})
            if h.get("x-github-api-version") != "2022-11-28":
                return self._json(400, {"message": "Unsupported API version"})
        elif self.kind == "gitlab":
            if h.get("private-token") != self.token:
                return self._json(401, {"message": "401 Unauthorized"})
        elif h.get("authorization") != f"token {self.token}":
            return self._json(401, {"message": "user does not exist [uid: 0, name: ]"})
        return None

    def _route(self, r: Recorded) -> Response:
        repo = (
            f"/projects/{quote(self.repo, safe='')}"
            if self.kind == "gitlab"
            else f"/repos/{self.repo}"
        )
        base = re.escape(_PREFIX[self.kind] + repo)
        issue = "merge_requests" if self.kind == "gitlab" else "issues"
        note = "notes" if self.kind == "gitlab" else "comments"
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", rf"{base}/statuses/(?P<sha>[0-9a-f]{{7,64}})", self._post_status),
            ("GET", rf"{base}/{issue}/(?P<number>\d+)/{note}", self._list_comments),
            ("POST", rf"{base}/{issue}/(?P<number>\d+)/{note}", self._create_comment),
            ("GET", rf"{base}/{'merge_requests' if self.kind == 'gitlab' else 'pulls'}", self._list_pulls),
            ("POST", rf"{base}/{'merge_requests' if self.kind == 'gitlab' else 'pulls'}", self._create_pull),
        ]  # fmt: skip
        if self.kind == "gitlab":
            routes += [
                ("PUT", rf"{base}/merge_requests/(?P<number>\d+)/notes/(?P<id>\d+)", self._edit_comment),
                ("DELETE", rf"{base}/merge_requests/(?P<number>\d+)/notes/(?P<id>\d+)", self._delete_comment),
                ("PUT", rf"{base}/merge_requests/(?P<number>\d+)", self._edit_pull),
            ]  # fmt: skip
        else:
            routes += [
                ("PATCH", rf"{base}/issues/comments/(?P<id>\d+)", self._edit_comment),
                ("DELETE", rf"{base}/issues/comments/(?P<id>\d+)", self._delete_comment),
                ("PATCH", rf"{base}/pulls/(?P<number>\d+)", self._edit_pull),
            ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, r.path)
            if match and method == r.method:
                return handler(r, **match.groupdict())
        return self._json(
            404, {"message": "404 Not Found" if self.kind == "gitlab" else "Not Found"}
        )

    # statuses

    def _post_status(self, r: Recorded, sha: str) -> Response:
        body = r.body if isinstance(r.body, dict) else {}
        state = body.get("state")
        if state not in _STATUS_STATES[self.kind]:
            return self._invalid("state", "state is not included in the list")
        name_key = "name" if self.kind == "gitlab" else "context"
        context = body.get(name_key) or body.get("context") or "default"
        description = body.get("description") or ""
        if self.kind == "github" and len(description) > 140:
            return self._invalid(
                "description", "description is too long (maximum is 140 characters)"
            )
        existing = [s for s in self.statuses.get(sha, []) if s[name_key] == context]
        if self.kind == "github" and len(existing) >= self.status_limit:
            return self._json(422, {
                "message": "Validation Failed",
                "errors": [{"resource": "Status", "code": "custom",
                            "message": "This SHA and context has reached the maximum number of statuses."}],
            })  # fmt: skip
        if self.kind == "gitlab" and existing and existing[-1]["status"] in _GITLAB_ALLOWED:
            current = existing[-1]["status"]
            if state not in _GITLAB_ALLOWED[current]:
                event = _GITLAB_EVENT[state]
                return self._json(400, {
                    "message": f"Cannot transition status via :{event} from :{current} "
                               f'(Reason(s): Status cannot transition via "{event}")'
                })  # fmt: skip
            existing[-1].update(
                status=state, description=description, target_url=body.get("target_url")
            )
            return self._json(201, existing[-1])
        self._ids += 1
        status: dict[str, Any] = {
            "id": self._ids,
            name_key: context,
            "description": description,
            "target_url": body.get("target_url"),
            "sha": sha,
            ("status" if self.kind == "gitlab" else "state"): state,
        }
        self.statuses.setdefault(sha, []).append(status)
        return self._json(201, status)

    # comments

    def _list_comments(self, r: Recorded, number: str) -> Response:
        if not self._pull(int(number)):
            return self._not_found()
        items = self.comments.get(int(number), [])
        if self.kind == "gitea":  # one answer with every comment, no pagination
            return self._json(200, items)
        return self._page(r, items, default_size=30 if self.kind == "github" else 20)

    def _create_comment(self, r: Recorded, number: str) -> Response:
        if not self._pull(int(number)):
            return self._not_found()
        text = (r.body or {}).get("body") or ""
        problem = self._body_problem(text)
        if problem is not None:
            return problem
        return self._json(201, self._add_comment(int(number), text))

    def _edit_comment(self, r: Recorded, id: str, number: str | None = None) -> Response:
        comment = self._comment(int(id), number)
        if comment is None:
            return self._not_found()
        text = (r.body or {}).get("body") or ""
        problem = self._body_problem(text)
        if problem is not None:
            return problem
        comment["body"] = text
        return self._json(200, comment)

    def _delete_comment(self, r: Recorded, id: str, number: str | None = None) -> Response:
        comment = self._comment(int(id), number)
        if comment is None:
            return self._not_found()
        for items in self.comments.values():
            if comment in items:
                items.remove(comment)
        return Response(status=204)

    # pull requests

    def _list_pulls(self, r: Recorded) -> Response:
        q = r.query
        items = [
            p for p in self.pulls if p["state"] == ("opened" if self.kind == "gitlab" else "open")
        ]
        if self.kind == "github":
            if "head" in q:
                owner, _, branch = q["head"].partition(":")
                items = [
                    p
                    for p in items
                    if owner == self.repo.split("/")[0] and p["head"]["ref"] == branch
                ]
            if "base" in q:
                items = [p for p in items if p["base"]["ref"] == q["base"]]
        elif self.kind == "gitlab":
            for key in ("source_branch", "target_branch"):
                if key in q:
                    items = [p for p in items if p[key] == q[key]]
        return self._page(r, items, default_size=self.pulls_page)

    def _create_pull(self, r: Recorded) -> Response:
        body = r.body or {}
        if self.kind == "gitlab":
            head, base, text = (
                body.get("source_branch"),
                body.get("target_branch"),
                body.get("description", ""),
            )
        else:
            head, base, text = body.get("head"), body.get("base"), body.get("body", "")
        if not head or not base or not body.get("title"):
            return self._invalid("title", "missing_field")
        if any(self._head(p) == head for p in self.pulls if p["state"] in ("open", "opened")):
            if self.kind == "github":
                owner = self.repo.split("/")[0]
                return self._json(422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "code": "custom",
                                "message": f"A pull request already exists for {owner}:{head}."}],
                })  # fmt: skip
            if self.kind == "gitlab":
                return self._json(
                    409,
                    {
                        "message": [
                            "Another open merge request already exists for this source branch: !1"
                        ]
                    },
                )
            return self._json(409, {"message": "pull request already exists for these targets"})
        return self._json(201, self._new_pull(head, base, body["title"], text))

    def _edit_pull(self, r: Recorded, number: str) -> Response:
        pull = self._pull(int(number))
        if pull is None:
            return self._not_found()
        body = r.body or {}
        pull["title"] = body.get("title", pull["title"])
        pull["description" if self.kind == "gitlab" else "body"] = body.get(
            "description" if self.kind == "gitlab" else "body", ""
        )
        # Gitea answers an edit with 201, the others with 200.
        return self._json(201 if self.kind == "gitea" else 200, pull)

    # helpers

    def _new_pull(self, head: str, base: str, title: str, text: str) -> dict[str, Any]:
        self._numbers += 1
        number = self._numbers
        web = f"https://forge.example/{self.repo}"
        if self.kind == "gitlab":
            pull = {"iid": number, "id": 9000 + number, "title": title, "description": text,
                    "source_branch": head, "target_branch": base, "state": "opened",
                    "web_url": f"{web}/-/merge_requests/{number}"}  # fmt: skip
        else:
            pull = {"number": number, "id": 9000 + number, "title": title, "body": text,
                    "head": {"ref": head}, "base": {"ref": base}, "state": "open",
                    "html_url": f"{web}/pull{'s' if self.kind == 'gitea' else ''}/{number}"}  # fmt: skip
        self.pulls.append(pull)
        return pull

    def _head(self, pull: dict[str, Any]) -> str:
        return str(pull["source_branch"] if self.kind == "gitlab" else pull["head"]["ref"])

    def _pull(self, number: int) -> dict[str, Any] | None:
        key = "iid" if self.kind == "gitlab" else "number"
        return next((p for p in self.pulls if p[key] == number), None)

    def _add_comment(self, number: int, body: str, *, system: bool = False) -> dict[str, Any]:
        self._ids += 1
        comment: dict[str, Any] = {"id": self._ids, "body": body, "user": {"login": self.user}}
        if self.kind == "gitlab":
            comment = {"id": self._ids, "body": body, "system": system,
                       "noteable_iid": number, "author": {"username": self.user}}  # fmt: skip
        self.comments.setdefault(number, []).append(comment)
        return comment

    def _comment(self, comment_id: int, number: str | None) -> dict[str, Any] | None:
        scopes = [int(number)] if number is not None else list(self.comments)
        for n in scopes:
            for c in self.comments.get(n, []):
                if c["id"] == comment_id:
                    return c
        return None

    def _body_problem(self, text: str) -> Response | None:
        if not text:
            return self._invalid("body", "missing_field")
        limit = _MAX_BODY[self.kind]
        if len(text) <= limit:
            return None
        if self.kind == "gitlab":
            return self._json(
                400, {"message": {"note": [f"is too long (maximum is {limit} characters)"]}}
            )
        return self._invalid("body", f"Body is too long (maximum is {limit} characters)")

    def _page(self, r: Recorded, items: list[dict[str, Any]], *, default_size: int) -> Response:
        size_key = "limit" if self.kind == "gitea" else "per_page"
        size = min(int(r.query.get(size_key, default_size)), 100 if self.kind != "gitea" else 50)
        page = max(1, int(r.query.get("page", 1)))
        chunk = items[(page - 1) * size : page * size]
        last = max(1, -(-len(items) // size))
        headers: dict[str, str] = {}
        if self.kind == "gitea":
            headers["X-Total-Count"] = str(len(items))
        if self.kind == "gitlab":
            headers.update({"X-Page": str(page), "X-Per-Page": str(size), "X-Total": str(len(items)),
                            "X-Next-Page": str(page + 1) if page < last else ""})  # fmt: skip
        links = []
        if page < last:
            links.append(f'<{self._link(r, page + 1)}>; rel="next"')
            links.append(f'<{self._link(r, last)}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        return self._json(200, chunk, headers)

    def _link(self, r: Recorded, page: int) -> str:
        query = {**r.query, "page": str(page)}
        return self.server.url_for(r.path) + "?" + urlencode(query)

    def _rate_limit_fault(self, reset_at: float, retry_after: int) -> _Fault:
        headers: dict[str, str] = {}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        if self.kind == "github":
            if reset_at:
                headers.update(self._quota_headers(0, reset_at))
            body: Any = {"message": "API rate limit exceeded for user ID 1.",
                         "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}  # fmt: skip
            status = 403 if reset_at else 429
        elif self.kind == "gitlab":
            if reset_at:
                headers.update(self._quota_headers(0, reset_at))
            body, status = "Retry later\n", 429
        else:
            body, status = {"message": "rate limited"}, 429
        return _Fault(status, headers, body, lambda _: True)

    def _quota_headers(self, remaining: int, reset_at: float) -> dict[str, str]:
        if self.kind == "github":
            return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(remaining),
                    "X-RateLimit-Used": str(5000 - remaining), "X-RateLimit-Reset": str(int(reset_at)),
                    "X-RateLimit-Resource": "core"}  # fmt: skip
        return {"RateLimit-Limit": "600", "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(int(reset_at))}  # fmt: skip

    def _invalid(self, field_name: str, message: str) -> Response:
        if self.kind == "gitlab":
            return self._json(400, {"message": {field_name: [message]}})
        if self.kind == "gitea":
            return self._json(422, {"message": f"[{field_name}]: {message}"})
        return self._json(422, {"message": "Validation Failed",
                                "errors": [{"resource": "Issue", "field": field_name, "code": "custom",
                                            "message": message}]})  # fmt: skip

    def _not_found(self) -> Response:
        return self._json(
            404, {"message": "404 Not found" if self.kind == "gitlab" else "Not Found"}
        )

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        if isinstance(body, str):
            return Response(body, status=status, headers=headers, content_type="text/plain")
        return Response(
            json.dumps(body), status=status, headers=headers, content_type="application/json"
        )
