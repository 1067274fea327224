"""Webhook receivers for GitHub, GitLab and Gitea: authenticated wake-ups for the poller.

``POST /webhooks/github``  ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``
``POST /webhooks/gitlab``  ``X-Gitlab-Token: <the shared secret>``
``POST /webhooks/gitea``   ``X-Gitea-Signature: <hex HMAC-SHA256 of the body>``

A request that authenticates only wakes the poller (202). The payload is never parsed, and
no ref, SHA or URL in it is believed: the poller fetches and decides for itself. Comparisons
are constant-time (:func:`hmac.compare_digest`); a mismatch is 401, a forge with no secret
configured is 404, a body over the cap is 413, and past the rate limit (one token bucket for
all endpoints, on the injected clock) requests get 429 before any HMAC work. Responses and
logs name the forge and the outcome only, never a secret or a header value.

The daemon mounts :func:`webhook_routes` next to its other routes on its single port.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.clock import Clock

__all__ = [
    "FORGES",
    "TokenBucket",
    "WebhookSecrets",
    "WebhookSettings",
    "verify_webhook",
    "webhook_app",
    "webhook_routes",
]

log = logging.getLogger("gitfirm.source.webhooks")

FORGES = ("github", "gitlab", "gitea")


@dataclass(frozen=True)
class WebhookSecrets:
    """The shared secret per forge (resolved by the caller); ``None`` turns a forge off."""

    github: str | None = field(default=None, repr=False)
    gitlab: str | None = field(default=None, repr=False)
    gitea: str | None = field(default=None, repr=False)

    def values(self) -> tuple[str, ...]:
        """Every configured secret, for :func:`reconciler.sanitize.redact`."""
        return tuple(s for s in (self.github, self.gitlab, self.gitea) if s)


@dataclass(frozen=True)
class WebhookSettings:
    """Limits of the webhook endpoints."""

    max_body: int = 1 << 20
    """Bytes. The body is only hashed, and push payloads are far below 1 MiB; the cap stops
    a client from making us hash (or buffer) an unbounded stream."""
    rate: float = 2.0
    """Requests per second refilled into the bucket. Wake-ups coalesce, so more is useless."""
    burst: int = 20
    """Bucket size: a forge redelivering a batch of events still gets through."""


class TokenBucket:
    """A token bucket on an injected clock's monotonic time."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = clock.monotonic()

    def take(self) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_webhook(forge: str, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a request to ``forge``'s endpoint carries proof of ``secret``."""
    if forge == "github":
        given = headers.get("x-hub-signature-256", "")
        expected = "sha256=" + _hmac_hex(secret, body)
    elif forge == "gitea":
        given = headers.get("x-gitea-signature", "").strip().lower()
        expected = _hmac_hex(secret, body)
    elif forge == "gitlab":
        given = headers.get("x-gitlab-token", "")
        expected = secret
    else:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


async def _read_capped(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, text: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status, headers=headers)


def webhook_routes(
    secrets: WebhookSecrets,
    wake: Callable[[], None],
    clock: Clock,
    settings: WebhookSettings | None = None,
) -> list[Route]:
    """The three ``/webhooks/<forge>`` routes; each success calls ``wake()``."""
    limits = settings or WebhookSettings()
    bucket = TokenBucket(clock, limits.rate, limits.burst)

    def endpoint(forge: str) -> Callable[[Request], object]:
        async def receive(request: Request) -> JSONResponse:
            secret: str | None = getattr(secrets, forge)
            if not secret:
                return _error(404, f"{forge} webhook is not configured")
            wait = bucket.take()
            if wait:
                log.warning("webhook %s: rate limited", forge)
                return _error(429, "rate limited", {"Retry-After": str(math.ceil(wait))})
            body = await _read_capped(request, limits.max_body)
            if body is None:
                log.warning("webhook %s: body over %d bytes", forge, limits.max_body)
                return _error(413, "payload too large")
            if not verify_webhook(forge, secret, request.headers, body):
                log.warning("webhook %s: signature mismatch", forge)
                return _error(401, "signature mismatch")
            log.info("webhook %s: accepted, waking the poller", forge)
            wake()
            return JSONResponse({"status": "accepted"}, status_code=202)

        return receive

    return [Route(f"/webhooks/{forge}", endpoint(forge), methods=["POST"]) for forge in FORGES]


def webhook_app(
    secrets: WebhookSecrets,
    wake: Callable[[], None],
    clock: Clock,
    settings: WebhookSettings | None = None,
) -> Starlette:
    """A stand-alone ASGI app serving only :func:`webhook_routes` (tests, single-purpose use)."""
    return Starlette(routes=webhook_routes(secrets, wake, clock, settings))
