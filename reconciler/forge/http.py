"""One HTTP session with a forge API: auth headers, rate limits, retries, pagination, errors.

The three clients differ in paths and payloads, not in how they talk: each request goes
through :meth:`ForgeHTTP.request`, which waits out a rate limit the forge announced (the
``Retry-After`` header, or a reset time once ``X-RateLimit-Remaining``/``RateLimit-Remaining``
reaches 0), retries 502/503/504 and connection failures with a doubling delay, and turns every
other failure into a :class:`ForgeError` naming the forge, method, path and the forge's own
message, never the token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.clock import Clock
from reconciler.errors import ForgeAuthError, ForgeError
from reconciler.forge.protocol import Comment, PullRequest
from reconciler.sanitize import redact

__all__ = [
    "FORGE_RESULTS",
    "ForgeHTTP",
    "HttpSettings",
    "comment_from",
    "forge_message",
    "next_link",
    "pull_from",
]

FORGE_RESULTS = ("success", "failure", "rate_limited")
"""How one forge request ended (``gitfirm_forge_requests_total{result}``)."""

_RETRY_STATUSES = frozenset({502, 503, 504})
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How patient a forge client is."""

    attempts: int = 4
    """Tries per request: a rate limit or a 5xx is retried up to this many times in all."""
    backoff: float = 1.0
    """First delay after a 5xx or a connection failure; doubles on each retry."""
    max_wait: float = 120.0
    """The longest rate-limit wait honoured in place; a longer one fails the call (retry later)
    instead of blocking the loop that made it."""
    timeout: float = 30.0
    """Seconds per request; forges answer in well under a second when healthy."""
    max_pages: int = 100
    """Pages read at most when listing (100 pages of 100: far more comments than a PR has)."""


def next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` URL of a paginated answer (RFC 8288 ``Link``), if any."""
    header = response.headers.get("link", "")
    for part in header.split(","):
        match = _LINK_NEXT.search(part)
        if match:
            return match.group(1)
    return None


class ForgeHTTP:
    """Requests to one forge API root, as one token."""

    def __init__(
        self,
        *,
        forge: str,
        base_url: str,
        headers: Mapping[str, str],
        token: str,
        http: httpx.AsyncClient,
        clock: Clock,
        settings: HttpSettings | None = None,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.forge = forge
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._token = token
        self._http = http
        self._clock = clock
        self.settings = settings or HttpSettings()
        self._on_result = on_result
        self._not_before = 0.0  # monotonic time before which the quota is known to be spent

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``/repos/...``)."""
        return f"{self.base_url}{path}"

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        ok: Iterable[int] = (200, 201, 204),
    ) -> httpx.Response:
        """Send one request, waiting out rate limits and retrying 5xx; raise ForgeError.

        A status in ``ok`` is returned; so is any 4xx the caller lists there to handle itself.
        """
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        wanted = frozenset(ok)
        delay = self.settings.backoff
        for attempt in range(1, self.settings.attempts + 1):
            await self._respect_quota()
            last = attempt == self.settings.attempts
            try:
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=self._headers,
                    timeout=self.settings.timeout,
                )
            except httpx.HTTPError as e:
                self._count("failure")
                if last:
                    raise self._error(method, url, None, f"no answer: {type(e).__name__}") from None
                await self._clock.sleep(delay)
                delay *= 2
                continue
            self._note_quota(response)
            if response.status_code in wanted:
                self._count("success")
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None:
                self._count("rate_limited")
                if last or wait > self.settings.max_wait:
                    detail = f"rate limited for {wait:.0f} s"
                    raise self._error(method, url, response, detail, "forge-rate-limited")
                await self._clock.sleep(wait)
                continue
            self._count("failure")
            if response.status_code in _RETRY_STATUSES and not last:
                await self._clock.sleep(delay)
                delay *= 2
                continue
            raise self._error(method, url, response, forge_message(response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def paginate(
        self, path: str, *, params: Mapping[str, str | int] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a listing, following ``Link: rel="next"`` (and GitLab's X-Next-Page)."""
        items: list[dict[str, Any]] = []
        url: str | None = self.url(path)
        query: Mapping[str, str | int] | None = params
        for _ in range(self.settings.max_pages):
            assert url is not None
            response = await self.request("GET", url, params=query, ok=(200,))
            page = _json(response)
            if not isinstance(page, list):
                raise self._error("GET", url, response, "expected a JSON list")
            items.extend(item for item in page if isinstance(item, dict))
            url, query = _next_page(response, url, query)
            if url is None:
                return items
        raise ForgeError(
            f"{self.forge}: GET {path}: more than {self.settings.max_pages} pages",
            reason="forge-error",
        )

    async def _respect_quota(self) -> None:
        wait = self._not_before - self._clock.monotonic()
        if wait > 0:
            if wait > self.settings.max_wait:
                raise ForgeError(
                    f"{self.forge}: rate limit spent for {wait:.0f} s more",
                    reason="forge-rate-limited",
                )
            await self._clock.sleep(wait)

    def _note_quota(self, response: httpx.Response) -> None:
        """After an answer that spent the last request of the quota, hold the next one."""
        remaining = _header(response, "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining == "0":
            wait = self._until_reset(response)
            if wait is not None:
                self._not_before = self._clock.monotonic() + wait

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying, when ``response`` is a rate-limit refusal."""
        status = response.status_code
        if status not in (403, 429):
            return None
        retry_after = response.headers.get("retry-after", "")
        if retry_after.strip().isdigit():
            return float(retry_after.strip())
        remaining = _header(response, "x-ratelimit-remaining", "ratelimit-remaining")
        if status == 429 or remaining == "0":
            reset = self._until_reset(response)
            # GitHub's secondary limits say "wait at least a minute" without a header.
            return reset if reset is not None else 60.0
        return None

    def _until_reset(self, response: httpx.Response) -> float | None:
        reset = _header(response, "x-ratelimit-reset", "ratelimit-reset")
        if not reset or not reset.strip().isdigit():
            return None
        # The reset is a Unix time; +1 s because the forge rounds it down.
        return max(0.0, float(reset) - self._clock.now().timestamp()) + 1.0

    def _count(self, result: str) -> None:
        if self._on_result is not None:
            self._on_result(self.forge, result)

    def _error(
        self,
        method: str,
        url: str,
        response: httpx.Response | None,
        detail: str,
        reason: str | None = None,
    ) -> ForgeError:
        path = httpx.URL(url).raw_path.decode("ascii", "replace")
        status = response.status_code if response is not None else None
        shown = f"{status} " if status is not None else ""
        text = redact(f"{self.forge}: {method} {path}: {shown}{detail}", (self._token,))
        if status == 401 or (status == 403 and reason is None):
            return ForgeAuthError(
                f"{text} (check the token and its scopes)", status=status, reason="forge-auth"
            )
        return ForgeError(text, status=status, reason=reason)


def comment_from(item: Any, *, id_key: str = "id") -> Comment:
    """A comment (GitHub, Gitea) or note (GitLab) from its JSON object."""
    return Comment(id=int(item[id_key]), body=str(item.get("body") or ""))


def pull_from(item: Any, *, number: str = "number", url: str = "html_url") -> PullRequest:
    """A pull request (GitHub, Gitea: ``number``, ``html_url``) or merge request (GitLab:
    ``iid``, ``web_url``) from its JSON object."""
    return PullRequest(number=int(item[number]), url=str(item.get(url) or ""))


def _header(response: httpx.Response, *names: str) -> str | None:
    for name in names:
        value: str | None = response.headers.get(name)
        if value is not None:
            return value.strip()
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def forge_message(response: httpx.Response) -> str:
    """The forge's own words: ``message`` (all three), ``error`` (GitLab), ``errors`` (GitHub)."""
    body = _json(response)
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("message", "error") if body.get(k)]
        errors = body.get("errors")
        if isinstance(errors, list):
            parts += [
                str(e.get("message") or e.get("code")) if isinstance(e, dict) else str(e)
                for e in errors[:5]
            ]
        if parts:
            return "; ".join(parts)[:500]
    return response.reason_phrase or f"HTTP {response.status_code}"


def _next_page(
    response: httpx.Response, url: str, query: Mapping[str, str | int] | None
) -> tuple[str | None, Mapping[str, str | int] | None]:
    link = next_link(response)
    if link:
        # The token goes wherever the link points: only ever to the API root's own origin.
        if httpx.URL(link).copy_with(path="/", query=None) != httpx.URL(url).copy_with(
            path="/", query=None
        ):
            raise ForgeError(f"pagination link leaves the forge: {httpx.URL(link).host}")
        return link, None  # the link carries the whole query
    nxt = response.headers.get("x-next-page", "").strip()
    if nxt.isdigit():
        return url, {**(query or {}), "page": int(nxt)}
    return None, None
