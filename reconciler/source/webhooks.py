"""Webhook receivers for GitHub, GitLab and Gitea: authenticated wake-ups for the poller.

``POST /webhooks/github``  ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``
``POST /webhooks/gitlab``  ``X-Gitlab-Token: <the shared secret>``
``POST /webhooks/gitea``   ``X-Gitea-Signature: <hex HMAC-SHA256 of the body>``

A request that authenticates only wakes the poller (202). The payload is never parsed, and
no ref, SHA or URL in it is believed: the poller fetches and decides for itself. Comparisons
are constant-time (:func:`hmac.compare_digest`); a mismatch is 401, a forge with no secret
configured is 404, a body over the cap is 413.

Only *failed* authentications are rate limited, each (forge, source address) pair with its
own token bucket on the injected clock (IPv6 sources by /64): a source past its budget gets
429 before its body is read or hashed, while every other source, and every correctly
signed delivery from anywhere else, is unaffected. A delivery that authenticates is never
refused for someone else's failures and costs nothing: it only sets the poller's wake flag,
which coalesces. The table of sources is bounded (least recently failed evicted first).
Responses and logs name the forge, the source and the outcome, never a secret or a header.

The daemon mounts :func:`webhook_routes` next to its other routes on its single port.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.clock import Clock

__all__ = [
    "FORGES",
    "FailureLimiter",
    "TokenBucket",
    "WebhookSecrets",
    "WebhookSettings",
    "source_of",
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
    rate: float = 1.0
    """Failed authentications per second one source may make, per forge, once its burst is
    spent. A real forge fails only while its secret is being rotated."""
    burst: int = 10
    """Failures one source may make at once before it is limited."""
    max_sources: int = 4096
    """Sources whose failures are remembered; beyond this the least recent is forgotten."""


class TokenBucket:
    """A token bucket on an injected clock's monotonic time."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = clock.monotonic()

    def wait(self) -> float:
        """0.0 when a token is available now, else the seconds until one is (takes nothing)."""
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate

    def take(self) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        wait = self.wait()
        if not wait:
            self._tokens -= 1.0
        return wait


class FailureLimiter:
    """Failed authentications per key (forge, source), each key with its own bucket."""

    def __init__(self, clock: Clock, settings: WebhookSettings) -> None:
        self._clock = clock
        self._settings = settings
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def wait(self, key: tuple[str, str]) -> float:
        """Seconds before ``key`` may try again (0.0: now). Keys that never failed pass."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait()

    def failed(self, key: tuple[str, str]) -> None:
        """Charge one failed authentication to ``key``, and to nobody else."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            limits = self._settings
            bucket = TokenBucket(self._clock, limits.rate, limits.burst)
            while len(self._buckets) >= limits.max_sources:
                self._buckets.popitem(last=False)
        self._buckets[key] = bucket  # most recently failed last
        bucket.take()


def source_of(request: Request) -> str:
    """Who sent ``request``: its peer address (an IPv6 peer by /64, which one host holds).
    Forwarding headers are not believed: anyone can write them."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


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
    on_result: Callable[[str, str], None] = lambda forge, result: None,
) -> list[Route]:
    """The three ``/webhooks/<forge>`` routes; each success calls ``wake()``; every
    delivery calls ``on_result(forge, result)`` (accepted, rejected, rate_limited,
    too_large, not_configured)."""
    limits = settings or WebhookSettings()
    failures = FailureLimiter(clock, limits)

    def endpoint(forge: str) -> Callable[[Request], object]:
        async def receive(request: Request) -> JSONResponse:
            secret: str | None = getattr(secrets, forge)
            if not secret:
                on_result(forge, "not_configured")
                return _error(404, f"{forge} webhook is not configured")
            source = source_of(request)
            key = (forge, source)
            wait = failures.wait(key)
            if wait:
                on_result(forge, "rate_limited")
                log.warning("webhook %s: %s rate limited after failed deliveries", forge, source)
                return _error(429, "rate limited", {"Retry-After": str(math.ceil(wait))})
            body = await _read_capped(request, limits.max_body)
            if body is None:
                failures.failed(key)
                on_result(forge, "too_large")
                log.warning(
                    "webhook %s: body over %d bytes from %s", forge, limits.max_body, source
                )
                return _error(413, "payload too large")
            if not verify_webhook(forge, secret, request.headers, body):
                failures.failed(key)
                on_result(forge, "rejected")
                log.warning("webhook %s: signature mismatch from %s", forge, source)
                return _error(401, "signature mismatch")
            on_result(forge, "accepted")
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
