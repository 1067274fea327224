"""The daemon's HTTP surfaces: what routers and forges reach, and what operators reach.

Routers need only ``/images/...``, forges only ``/webhooks/...``, and probes ``/healthz``
and ``/readyz``; those stay open on the device port. The operator endpoints (``/`` and
``/metrics``, and any dashboard) list every device, its version and halt reasons, so they
are served only to an operator:

- with a bearer token (``Authorization: Bearer <token>``, the token read from the variable
  ``--operator-token-env`` names; compared in constant time), and/or
- on their own listener (``--operator-listen``), which then is the only place they exist:
  the device port answers 404 for them.

A browser proves the token once, on the dashboard's login form, and then sends the signed
session cookie of :mod:`reconciler.session` instead of the header; an unauthenticated page
request of the dashboard (``/ui/...``) is sent to that form. With neither, every operator
request is 401 and says what to configure. See ``docs/operator-surfaces.md``. This module
only assembles routes handed to it; it knows no stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from reconciler.session import COOKIE, SessionSigner

__all__ = ["HttpServers", "OperatorAccess", "Surfaces", "build_surfaces"]


@dataclass(frozen=True)
class OperatorAccess:
    """How operators prove who they are: a bearer token, an own listener, or both."""

    token_env: str
    """Where the token comes from; named in the 401 hint, unlike the token."""
    token: str | None = field(default=None, repr=False)
    listen: str | None = None
    """``host:port`` of the operator listener; ``None`` shares the device port."""
    session: SessionSigner | None = field(default=None, repr=False)
    """Checks the dashboard's session cookie (made from the token); ``None``: header only."""
    login: str | None = None
    """Path of the login form that unauthenticated dashboard pages are sent to."""


@dataclass(frozen=True)
class Surfaces:
    """The ASGI app of the device port and, with ``--operator-listen``, the operator's."""

    device: Starlette
    operator: Starlette | None = None


def _authorized(request: Request, access: OperatorAccess) -> bool:
    token = access.token
    if token is None:
        return False
    if access.session is not None and access.session.valid(request.cookies.get(COOKIE)):
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def _to_login(request: Request, access: OperatorAccess) -> bool:
    """A browser asking for a dashboard page is sent to the form, not shown a bare 401."""
    return (
        access.login is not None
        and access.token is not None
        and request.method == "GET"
        and request.url.path.startswith("/ui/")
        and "text/html" in request.headers.get("accept", "")
    )


def _guarded(route: Route, access: OperatorAccess) -> Route:
    """``route`` behind the operator token; unchanged on an operator listener without one
    (the listener is then the boundary the operator chose)."""
    token = access.token
    if token is None and access.listen is not None:
        return route
    inner = route.endpoint
    if token is None:
        hint = f"operator endpoints are off: set ${access.token_env} or --operator-listen"
    else:
        hint = f"operator endpoint: send 'Authorization: Bearer <${access.token_env}>'"

    async def endpoint(request: Request) -> Response:
        if not _authorized(request, access):
            if _to_login(request, access):
                assert access.login is not None
                return RedirectResponse(access.login, status_code=303)
            challenge = {"WWW-Authenticate": 'Bearer realm="gitfirm"'}
            return PlainTextResponse(hint + "\n", status_code=401, headers=challenge)
        response: Response = await inner(request)
        return response

    return Route(route.path, endpoint, methods=route.methods, name=route.name)


def build_surfaces(
    *,
    probes: Sequence[BaseRoute],
    operator: Sequence[Route],
    devices: Sequence[BaseRoute],
    access: OperatorAccess,
    public: Sequence[BaseRoute] = (),
) -> Surfaces:
    """Assemble the apps: probes everywhere, device routes on the device port only, operator
    routes guarded and, with an operator listener, there only. ``public`` routes live where
    the operator routes do but need no token (the login form and its stylesheet). ``devices``
    may end with a catch-all mount, so it goes last."""
    guarded = [*public, *(_guarded(route, access) for route in operator)]
    if access.listen is None:
        return Surfaces(Starlette(routes=[*probes, *guarded, *devices]))
    return Surfaces(
        device=Starlette(routes=[*probes, *devices]),
        operator=Starlette(routes=[*probes, *guarded]),
    )


class _Server(uvicorn.Server):
    # The daemon owns SIGTERM (graceful rollout parking); uvicorn must not take it.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServers:
    """One uvicorn server per listener, served and stopped together."""

    def __init__(self, surfaces: Surfaces, listen: str, operator_listen: str | None) -> None:
        apps: list[tuple[str, ASGIApp]] = [(listen, surfaces.device)]
        if surfaces.operator is not None and operator_listen is not None:
            apps.append((operator_listen, surfaces.operator))
        self._servers = [_server(app, where) for where, app in apps]

    async def serve(self) -> None:
        """Serve every listener until :attr:`should_exit` is set."""
        await asyncio.gather(*(server.serve() for server in self._servers))

    @property
    def should_exit(self) -> bool:
        """Whether the servers were asked to stop."""
        return all(server.should_exit for server in self._servers)

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        for server in self._servers:
            server.should_exit = value


def _server(app: ASGIApp, listen: str) -> _Server:
    host, _, port = listen.rpartition(":")
    return _Server(
        uvicorn.Config(
            app,
            host=host.strip("[]") or "127.0.0.1",
            port=int(port),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
