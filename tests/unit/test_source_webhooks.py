"""Webhook endpoints over real HTTP semantics in process (httpx + ASGITransport)."""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx
import pytest

import reconciler.source.webhooks as webhooks
from reconciler.clock import FakeClock
from reconciler.source.webhooks import (
    TokenBucket,
    WebhookSecrets,
    WebhookSettings,
    verify_webhook,
    webhook_app,
)

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SECRETS = WebhookSecrets(github=GITHUB_SECRET, gitlab="gl-token-0451", gitea="gitea-key-0451")


class Wakes:
    """Counts wake-ups."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _client(
    wakes: Wakes, clock: FakeClock | None = None, settings: WebhookSettings | None = None
) -> httpx.AsyncClient:
    app = webhook_app(SECRETS, wakes, clock or FakeClock(), settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_github_published_vector() -> None:
    headers = {"x-hub-signature-256": GITHUB_SIG}
    assert verify_webhook("github", GITHUB_SECRET, headers, GITHUB_BODY)
    assert not verify_webhook("github", GITHUB_SECRET, headers, GITHUB_BODY + b"!")


async def test_github_endpoint_accepts_vector_and_refuses_wrong_signature() -> None:
    wakes = Wakes()
    async with _client(wakes) as client:
        ok = await client.post(
            "/webhooks/github", content=GITHUB_BODY, headers={"X-Hub-Signature-256": GITHUB_SIG}
        )
        assert ok.status_code == 202
        assert wakes.count == 1
        wrong = GITHUB_SIG[:-1] + ("0" if GITHUB_SIG[-1] != "0" else "1")
        bad = await client.post(
            "/webhooks/github", content=GITHUB_BODY, headers={"X-Hub-Signature-256": wrong}
        )
        missing = await client.post("/webhooks/github", content=GITHUB_BODY)
    assert bad.status_code == 401 and missing.status_code == 401
    assert wakes.count == 1


async def test_gitlab_token_and_gitea_signature() -> None:
    wakes = Wakes()
    body = b'{"ref": "refs/heads/evil"}'
    gitea_sig = hmac.new(b"gitea-key-0451", body, hashlib.sha256).hexdigest()
    async with _client(wakes) as client:
        gl_ok = await client.post(
            "/webhooks/gitlab", content=body, headers={"X-Gitlab-Token": "gl-token-0451"}
        )
        gl_bad = await client.post(
            "/webhooks/gitlab", content=body, headers={"X-Gitlab-Token": "gl-token-0452"}
        )
        gt_ok = await client.post(
            "/webhooks/gitea", content=body, headers={"X-Gitea-Signature": gitea_sig}
        )
        gt_bad = await client.post(
            "/webhooks/gitea", content=body, headers={"X-Gitea-Signature": "00" * 32}
        )
    assert [r.status_code for r in (gl_ok, gl_bad, gt_ok, gt_bad)] == [202, 401, 202, 401]
    assert wakes.count == 2


async def test_unconfigured_forge_is_404_and_get_is_405() -> None:
    app = webhook_app(WebhookSecrets(github=GITHUB_SECRET), Wakes(), FakeClock())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/webhooks/gitlab", content=b"x")).status_code == 404
        assert (await client.get("/webhooks/github")).status_code == 405


async def test_body_cap() -> None:
    wakes = Wakes()
    big = b"x" * 2048
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), big, hashlib.sha256).hexdigest()
    async with _client(wakes, settings=WebhookSettings(max_body=1024)) as client:
        resp = await client.post(
            "/webhooks/github", content=big, headers={"X-Hub-Signature-256": sig}
        )
    assert resp.status_code == 413
    assert wakes.count == 0


async def test_rate_limit_on_fake_clock() -> None:
    clock = FakeClock()
    wakes = Wakes()
    settings = WebhookSettings(rate=1.0, burst=3)
    headers = {"X-Hub-Signature-256": GITHUB_SIG}
    async with _client(wakes, clock, settings) as client:
        codes = [
            (
                await client.post("/webhooks/github", content=GITHUB_BODY, headers=headers)
            ).status_code
            for _ in range(5)
        ]
        limited = await client.post("/webhooks/github", content=GITHUB_BODY, headers=headers)
        clock.advance(1.0)
        again = await client.post("/webhooks/github", content=GITHUB_BODY, headers=headers)
    assert codes == [202, 202, 202, 429, 429]
    assert limited.headers["retry-after"] == "1"
    assert again.status_code == 202
    assert wakes.count == 4


def test_token_bucket_refills_up_to_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, rate=2.0, burst=2)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.5]
    clock.advance(100.0)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.5]


async def test_secret_never_in_responses_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wakes = Wakes()
    bodies: list[str] = []
    async with _client(wakes) as client:
        for path, headers in [
            ("/webhooks/github", {"X-Hub-Signature-256": "sha256=00"}),
            ("/webhooks/gitlab", {"X-Gitlab-Token": "nope"}),
            ("/webhooks/gitea", {"X-Gitea-Signature": "00"}),
            ("/webhooks/github", {"X-Hub-Signature-256": GITHUB_SIG}),
        ]:
            resp = await client.post(path, content=GITHUB_BODY, headers=headers)
            bodies.append(resp.text + str(resp.headers))
    seen = "\n".join([*bodies, caplog.text, repr(SECRETS)])
    assert "webhook github: signature mismatch" in caplog.text
    for secret in SECRETS.values():
        assert secret not in seen


def test_public_names() -> None:
    assert set(webhooks.__all__) == {
        "FORGES", "TokenBucket", "WebhookSecrets", "WebhookSettings", "verify_webhook",
        "webhook_app", "webhook_routes",
    }  # fmt: skip
