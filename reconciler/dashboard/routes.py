"""The dashboard's HTTP routes: pages under ``/ui/``, the login form, static files, and the
server-sent event stream that tells open pages to refresh.

Pages are plain HTML (readable without JavaScript); ``static/app.js`` listens to
``/ui/events`` and swaps in the page's new ``<main>`` when the state version moves. Every
response carries a strict Content-Security-Policy: no inline script or style, nothing from
another origin, no framing.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from reconciler.clock import Clock, SystemClock
from reconciler.dashboard.board import Backup, Board
from reconciler.dashboard.live import Changes
from reconciler.dashboard.render import PageCache, environment
from reconciler.dashboard.views import (
    Filters,
    alerts_view,
    device_view,
    fleet_view,
    history_view,
    images_view,
    live_summary,
    rollouts_view,
    source_view,
)
from reconciler.session import COOKIE, SessionSigner
from reconciler.source.webhooks import FailureLimiter, WebhookSettings, source_of

__all__ = ["CSP", "LOGIN", "Dashboard", "Feed"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LOGIN = "/ui/login"
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_STATIC = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
_MAX_FORM = 4096
_NAV = (
    ("/ui/", "Fleet"),
    ("/ui/rollouts", "Rollouts"),
    ("/ui/images", "Images"),
    ("/ui/history", "History"),
    ("/ui/alerts", "Alerts"),
    ("/ui/source", "Source"),
)


class Feed(Protocol):
    """What the daemon gives the dashboard."""

    def version(self) -> int:
        """The state version now (see :class:`~reconciler.dashboard.live.Changes`)."""
        ...

    def board(self) -> Board:
        """Everything the pages show, at the current version."""
        ...

    def backups(self, device: str) -> Sequence[Backup]:
        """The device's stored configuration backups, newest first."""
        ...


class Dashboard:
    """The pages, the login form and the live stream, over one :class:`Feed`."""

    def __init__(
        self,
        feed: Feed,
        changes: Changes,
        session: SessionSigner | None,
        *,
        clock: Clock | None = None,
        stream_seconds: float = 300.0,
        keepalive: float = 15.0,
    ) -> None:
        self.feed = feed
        self.changes = changes
        self.session = session
        self.cache = PageCache()
        self.stream_seconds = stream_seconds
        """A stream ends after this long; the browser reconnects on its own."""
        self.keepalive = keepalive
        clock = clock or SystemClock()
        self._monotonic = clock.monotonic
        # Wrong tokens: 10 at once per source address, then one a second (as for webhooks).
        self._failures = FailureLimiter(clock, WebhookSettings())
        self._env = environment()
        self._board: Board | None = None

    def board(self) -> Board:
        """The board at the current version, built once per version."""
        version = self.feed.version()
        if self._board is None or self._board.version != version:
            self._board = self.feed.board()
        return self._board

    # --- routes -------------------------------------------------------------------------

    def pages(self) -> list[Route]:
        """The routes that show fleet data (the operator surface guards them)."""
        return [
            Route("/ui/", self._fleet),
            Route("/ui/rollouts", self._simple("rollouts.html", "Rollouts", rollouts_view)),
            Route("/ui/images", self._simple("images.html", "Images", images_view)),
            Route("/ui/history", self._simple("history.html", "History", history_view)),
            Route("/ui/alerts", self._simple("alerts.html", "Alerts", alerts_view)),
            Route("/ui/source", self._simple("source.html", "Source", source_view)),
            Route("/ui/devices/{name}", self._device),
            Route("/ui/events", self._events),
        ]

    def public(self) -> list[Route]:
        """The routes that show no fleet data: login, logout and static files."""
        return [
            Route(LOGIN, self._login, methods=["GET", "POST"]),
            Route("/ui/logout", self._logout, methods=["POST"]),
            Route("/ui/static/{file}", self._static),
        ]

    # --- pages --------------------------------------------------------------------------

    def _html(self, template: str, **context: Any) -> str:
        return self._env.get_template(template).render(nav=_NAV, **context)

    async def _page(self, key: tuple[str, ...], template: str, title: str, make: Any) -> Response:
        board = self.board()
        page = self.cache.lookup(key, board.version)
        if page is None:

            def render() -> str:
                return self._html(
                    template, title=title, version=board.version, now=board.now, **make(board)
                )

            # The board is frozen: pages of a big fleet render off the event loop, which
            # keeps serving probes, webhooks and images meanwhile.
            page = await asyncio.to_thread(render)
            self.cache.store(key, board.version, page)
        return HTMLResponse(page, headers=_HEADERS)

    def _simple(
        self, template: str, title: str, view: Callable[[Board], dict[str, Any]]
    ) -> Callable[[Request], Any]:
        async def endpoint(_: Request) -> Response:
            return await self._page((template,), template, title, view)

        return endpoint

    async def _fleet(self, request: Request) -> Response:
        q = request.query_params
        site, policy, label = (q.get(k, "")[:200] for k in ("site", "policy", "label"))
        filters = Filters(site=site, policy=policy, label=label)
        key = ("fleet", filters.site, filters.policy, filters.label)
        return await self._page(key, "fleet.html", "Fleet", lambda b: fleet_view(b, filters))

    async def _device(self, request: Request) -> Response:
        name = request.path_params["name"]
        board = self.board()
        if board.desired is None or name not in board.desired.devices:
            body = self._html(
                "missing.html", title="Not found", version=board.version, now=board.now, name=name
            )
            return HTMLResponse(body, status_code=404, headers=_HEADERS)

        def make(b: Board) -> dict[str, Any]:
            view = device_view(b, name, self.feed.backups(name))
            return {"name": name, **(view or {})}

        return await self._page(("device", name), "device.html", name, make)

    # --- live ---------------------------------------------------------------------------

    async def _events(self, _: Request) -> Response:
        return StreamingResponse(
            self._stream(),
            media_type="text/event-stream",
            headers={**_HEADERS, "X-Accel-Buffering": "no"},
        )

    async def _stream(self) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        started = last = self._monotonic()
        seen: int | None = None
        while not self.changes.closed and self._monotonic() - started < self.stream_seconds:
            version = self.feed.version()
            if version != seen:
                seen = version
                data = json.dumps(live_summary(self.board()), separators=(",", ":"))
                yield f"event: update\nid: {version}\ndata: {data}\n\n"
                last = self._monotonic()
            elif self._monotonic() - last >= self.keepalive:
                yield ": keep-alive\n\n"
                last = self._monotonic()
            # Alerts may change without a bump; the timeout makes the stream look again.
            await self.changes.wait(seen, 1.0)

    # --- login --------------------------------------------------------------------------

    async def _login(self, request: Request) -> Response:
        if self.session is None:
            # No token: the operator listener is the boundary (or the surface is off).
            return RedirectResponse("/ui/", status_code=303)
        if request.method == "GET":
            page = self._html("login.html", title="Sign in", failed=False)
            return HTMLResponse(page, headers=_HEADERS)
        source = ("login", source_of(request))
        wait = self._failures.wait(source)
        if wait:
            # Even the right token waits: a guesser must not learn it was right.
            headers = {**_HEADERS, "Retry-After": str(math.ceil(wait))}
            return Response("too many wrong tokens; try later\n", 429, headers=headers)
        body = await request.body()
        fields = parse_qs(body[:_MAX_FORM].decode("utf-8", "replace"))
        given = (fields.get("token") or [""])[0].strip()
        if not given or not self.session.token_matches(given):
            self._failures.failed(source)
            page = self._html("login.html", title="Sign in", failed=True)
            return HTMLResponse(page, status_code=401, headers=_HEADERS)
        response = RedirectResponse("/ui/", status_code=303, headers=_HEADERS)
        response.set_cookie(
            COOKIE,
            self.session.issue(),
            max_age=int(self.session.lifetime),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def _logout(self, _: Request) -> Response:
        response = RedirectResponse(LOGIN, status_code=303, headers=_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def _static(self, request: Request) -> Response:
        name = request.path_params["file"]
        media = _STATIC.get(name)
        if media is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        body = resources.files("reconciler.dashboard").joinpath("static", name).read_bytes()
        return Response(body, media_type=media, headers=_HEADERS)
