"""Webhook endpoints over real HTTP semantics in process (httpx + ASGITransport)."""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx
import pytest
from starlette.applications import Starlette

import reconciler.source.webhooks as webhooks
from reconciler.clock import FakeClock
from reconciler.source.webhooks import (
    FailureLimiter,
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
    wakes: Wakes,
    clock: FakeClock | None = None,
    settings: WebhookSettings | None = None,
    app: Starlette | None = None,
    source: str = "127.0.0.1",
) -> httpx.AsyncClient:
    app = app or webhook_app(SECRETS, wakes, clock or FakeClock(), settings)
    transport = httpx.ASGITransport(app=app, client=(source, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


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


async def test_failures_are_limited_per_forge_and_source_on_fake_clock() -> None:
    clock = FakeClock()
    wakes = Wakes()
    app = webhook_app(SECRETS, wakes, clock, WebhookSettings(rate=1.0, burst=3))
    good = {"X-Hub-Signature-256": GITHUB_SIG}
    bad = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    async with (
        _client(wakes, app=app, source="127.0.0.2") as attacker,
        _client(wakes, app=app, source="127.0.0.1") as forge,
        _client(wakes, app=app, source="2001:db8::1") as v6,
        _client(wakes, app=app, source="2001:db8::2") as v6_neighbour,
    ):
        codes = [
            (await attacker.post("/webhooks/github", content=GITHUB_BODY, headers=bad)).status_code
            for _ in range(5)
        ]
        limited = await attacker.post("/webhooks/github", content=GITHUB_BODY, headers=good)
        gitlab = await attacker.post(
            "/webhooks/gitlab", content=b"x", headers={"X-Gitlab-Token": "no"}
        )
        valid = [
            (await forge.post("/webhooks/github", content=GITHUB_BODY, headers=good)).status_code
            for _ in range(50)
        ]
        for _ in range(3):
            await v6.post("/webhooks/github", content=GITHUB_BODY, headers=bad)
        same_64 = await v6_neighbour.post("/webhooks/github", content=GITHUB_BODY, headers=bad)
        clock.advance(1.0)
        again = await attacker.post("/webhooks/github", content=GITHUB_BODY, headers=good)
    assert codes == [401, 401, 401, 429, 429]
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert gitlab.status_code == 401  # another forge's budget
    assert valid == [202] * 50  # never charged, never refused for the attacker's failures
    assert same_64.status_code == 429
    assert again.status_code == 202
    assert wakes.count == 51


def test_failure_table_is_bounded() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, WebhookSettings(burst=1, max_sources=2))
    for source in ("a", "b", "c"):
        limiter.failed(("github", source))
    assert limiter.wait(("github", "a")) == 0.0  # forgotten: least recently failed
    assert limiter.wait(("github", "c")) > 0.0


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
        "FORGES", "FailureLimiter", "TokenBucket", "WebhookSecrets", "WebhookSettings", "verify_webhook",
        "webhook_app", "webhook_routes", "source_of",
    }  # fmt: skip
