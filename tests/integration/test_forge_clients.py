"""The three forge clients against the fake forge: paths, headers, pagination, refusals,
rate limits with backoff, and the token kept out of every error.

The rate-limit waits run on a FakeClock (autojump), so a 30 s reset costs no wall time and
the test can check how long the client waited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer

from reconciler.clock import FakeClock
from reconciler.errors import ConfigError, ForgeAuthError, ForgeError
from reconciler.forge import Forge, ForgeConfig, HttpSettings, make_forge, read_token
from tests.support.forge import FORGES, FakeForge

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(params=FORGES)
def fake(request: pytest.FixtureRequest, httpserver: HTTPServer) -> FakeForge:
    return FakeForge(httpserver, request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def _client(
    fake: FakeForge,
    http: httpx.AsyncClient,
    clock: FakeClock,
    *,
    token: str | None = None,
    results: list[tuple[str, str]] | None = None,
) -> Forge:
    config = ForgeConfig(kind=fake.kind, repo=fake.repo, url=fake.api_root, token_env="T")
    return make_forge(
        config,
        token or fake.token,
        http=http,
        clock=clock,
        user_agent="gitfirm/test",
        settings=HttpSettings(max_wait=120.0),
        on_result=None if results is None else lambda f, r: results.append((f, r)),
    )


async def test_status_goes_to_the_documented_path_with_the_documented_headers(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    forge = _client(fake, http, clock)
    url = "https://gitfirm.example/ui/rollouts/edge"
    assert await forge.set_status(
        SHA, context="gitfirm/edge", state="pending", description="wave 1/3", target_url=url
    )
    (call,) = fake.calls("POST", "/statuses/")
    if fake.kind == "github":
        assert call.path == f"/repos/acme/fleet/statuses/{SHA}"
        assert call.headers["authorization"] == f"Bearer {fake.token}"
        assert call.headers["accept"] == "application/vnd.github+json"
        assert call.headers["x-github-api-version"] == "2022-11-28"
        assert call.body == {"state": "pending", "context": "gitfirm/edge",
                             "description": "wave 1/3", "target_url": url}  # fmt: skip
    elif fake.kind == "gitlab":
        # The project path is one URL-encoded segment, as GitLab documents.
        assert call.path == f"/api/v4/projects/acme%2Ffleet/statuses/{SHA}"
        assert call.headers["private-token"] == fake.token
        assert call.body == {"state": "running", "name": "gitfirm/edge",
                             "description": "wave 1/3", "target_url": url}  # fmt: skip
    else:
        assert call.path == f"/api/v1/repos/acme/fleet/statuses/{SHA}"
        assert call.headers["authorization"] == f"token {fake.token}"
        assert call.body["state"] == "pending" and call.body["context"] == "gitfirm/edge"
    assert call.headers["user-agent"] == "gitfirm/test"
    latest = fake.latest_status(SHA, "gitfirm/edge")
    assert latest is not None and latest["description"] == "wave 1/3"


async def test_success_and_failure_map_to_each_forges_states(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    forge = _client(fake, http, clock)
    await forge.set_status(
        SHA, context="gitfirm/a", state="pending", description="d", target_url=""
    )
    await forge.set_status(
        SHA, context="gitfirm/a", state="success", description="d", target_url=""
    )
    await forge.set_status(
        SHA, context="gitfirm/b", state="failure", description="d", target_url=""
    )
    key = "status" if fake.kind == "gitlab" else "state"
    a, b = fake.latest_status(SHA, "gitfirm/a"), fake.latest_status(SHA, "gitfirm/b")
    assert a is not None and a[key] == "success"
    assert b is not None and b[key] == ("failed" if fake.kind == "gitlab" else "failure")


async def test_a_long_description_is_cut_to_what_the_forge_takes(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    forge = _client(fake, http, clock)
    await forge.set_status(SHA, context="c", state="pending", description="x" * 400, target_url="")
    (call,) = fake.calls("POST", "/statuses/")
    assert len(call.body["description"]) == (140 if fake.kind == "github" else 255)


async def test_gitlab_refusing_the_same_state_again_counts_as_done(
    httpserver: HTTPServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake = FakeForge(httpserver, "gitlab")
    forge = _client(fake, http, clock)
    assert await forge.set_status(
        SHA, context="c", state="pending", description="w1", target_url=""
    )
    # GitLab: 400 "Cannot transition status via :run from :running"; nothing to do.
    assert not await forge.set_status(
        SHA, context="c", state="pending", description="w2", target_url=""
    )
    assert fake.calls("POST", "/statuses/")[-1].body["description"] == "w2"
    assert await forge.set_status(
        SHA, context="c", state="success", description="ok", target_url=""
    )
    # After a finished status, GitLab starts a new one for the same name.
    assert await forge.set_status(
        SHA, context="c", state="pending", description="again", target_url=""
    )
    assert [s["status"] for s in fake.statuses[SHA]] == ["success", "running"]


async def test_gitlab_other_400s_are_errors_not_duplicates(
    httpserver: HTTPServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake = FakeForge(httpserver, "gitlab")
    fake.fail_next(400, {"message": {"state": ["is invalid"]}})
    forge = _client(fake, http, clock)
    with pytest.raises(ForgeError) as e:
        await forge.set_status(SHA, context="c", state="pending", description="d", target_url="")
    assert "400" in str(e.value) and "is invalid" in str(e.value)


async def test_github_status_limit_422_is_a_clear_error(
    httpserver: HTTPServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake = FakeForge(httpserver, "github", status_limit=2)
    forge = _client(fake, http, clock)
    for state in ("pending", "success"):
        await forge.set_status(SHA, context="c", state=state, description="d", target_url="")
    with pytest.raises(ForgeError) as e:
        await forge.set_status(SHA, context="c", state="failure", description="d", target_url="")
    assert e.value.status == 422
    assert "maximum number of statuses" in str(e.value)
    assert f"POST /repos/acme/fleet/statuses/{SHA}: 422" in str(e.value)


async def test_comments_are_listed_across_every_page(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    number = fake.open_pull()
    for i in range(250):
        fake.seed_comment(number, f"comment {i}")
    if fake.kind == "gitlab":
        fake.seed_comment(number, "added 1 commit", system=True)
    forge = _client(fake, http, clock)
    comments = await forge.list_comments(number)
    assert [c.body for c in comments] == [f"comment {i}" for i in range(250)]
    lists = fake.calls("GET", r"/(comments|notes)$")
    if fake.kind == "gitea":
        assert len(lists) == 1  # Gitea answers with every comment at once
    else:
        assert len(lists) == 3  # 100 per page, asked for explicitly
        assert lists[0].query["per_page"] == "100"
        assert [r.query.get("page", "1") for r in lists] == ["1", "2", "3"]


async def test_comments_are_created_updated_and_deleted(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    number = fake.open_pull()
    forge = _client(fake, http, clock)
    made = await forge.create_comment(number, "first")
    edited = await forge.update_comment(number, made.id, "second")
    assert edited.id == made.id and fake.bodies(number) == ["second"]
    await forge.delete_comment(number, made.id)
    assert fake.bodies(number) == []
    if fake.kind == "gitlab":
        assert fake.calls("PUT", rf"/merge_requests/{number}/notes/{made.id}$")
    else:
        assert fake.calls("PATCH", rf"/issues/comments/{made.id}$")


async def test_a_missing_pull_request_is_a_clear_error_without_the_token(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    forge = _client(fake, http, clock)
    with pytest.raises(ForgeError) as e:
        await forge.create_comment(404, "hello")
    assert e.value.status == 404
    text = str(e.value)
    assert text.startswith(f"{fake.kind}: POST ") and "/404/" in text
    assert fake.token not in text


async def test_a_refused_token_is_an_auth_error_that_never_shows_the_token(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    wrong = "wrong-token-abcdef0123456789"
    forge = _client(fake, http, clock, token=wrong)
    with pytest.raises(ForgeAuthError) as e:
        await forge.set_status(SHA, context="c", state="pending", description="d", target_url="")
    assert e.value.status == 401 and e.value.action == "halt"
    assert wrong not in str(e.value) and fake.token not in str(e.value)
    assert "token" in str(e.value)


async def test_pull_requests_are_opened_once_and_then_updated(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    forge = _client(fake, http, clock)
    first = await forge.open_or_update_pull_request(
        head="gitfirm/proposals/image/1.4.5", base="main", title="Add 1.4.5", body="one"
    )
    again = await forge.open_or_update_pull_request(
        head="gitfirm/proposals/image/1.4.5", base="main", title="Add 1.4.5", body="two"
    )
    assert first == again and first.url.startswith("https://")
    assert len(fake.pulls) == 1
    assert fake.pulls[0]["description" if fake.kind == "gitlab" else "body"] == "two"
    creates = fake.calls("POST", r"/(pulls|merge_requests)$")
    assert len(creates) == 1
    if fake.kind == "gitlab":
        assert creates[0].body == {"source_branch": "gitfirm/proposals/image/1.4.5",
                                   "target_branch": "main", "title": "Add 1.4.5",
                                   "description": "one"}  # fmt: skip
    if fake.kind == "github":
        (lookup, *_) = fake.calls("GET", r"/pulls$")
        assert lookup.query["head"] == "acme:gitfirm/proposals/image/1.4.5"


async def test_a_pull_request_opened_meanwhile_is_updated_not_duplicated(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    # The lookup misses it (a race with another instance); the forge refuses the create
    # (GitHub 422, GitLab and Gitea 409) and the client finds and updates the open one.
    number = fake.open_pull(head="gitfirm/proposals/discovery/x")
    fake.fail_next(200, [], when=lambda r: r.method == "GET")
    forge = _client(fake, http, clock)
    pull = await forge.open_or_update_pull_request(
        head="gitfirm/proposals/discovery/x", base="main", title="t", body="b"
    )
    assert pull.number == number and len(fake.pulls) == 1
    (create,) = fake.calls("POST", r"/(pulls|merge_requests)$")
    refused = fake.answers[fake.requests.index(create)]
    assert refused == {"github": 422, "gitlab": 409, "gitea": 409}[fake.kind]
    assert fake.calls("PUT" if fake.kind == "gitlab" else "PATCH", rf"/{number}$")


async def test_gitea_finds_the_open_pull_request_on_a_later_page(
    httpserver: HTTPServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake = FakeForge(httpserver, "gitea")
    for i in range(120):
        fake.open_pull(head=f"topic-{i}")
    forge = _client(fake, http, clock)
    pull = await forge.open_or_update_pull_request(
        head="topic-119", base="main", title="t", body="b"
    )
    assert pull.number == 120 and len(fake.pulls) == 120
    assert [r.query["page"] for r in fake.calls("GET", r"/pulls$")] == ["1", "2", "3"]


async def test_rate_limit_waits_until_the_announced_reset(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    results: list[tuple[str, str]] = []
    forge = _client(fake, http, clock, results=results)
    start = clock.monotonic()
    if fake.kind == "gitea":
        fake.rate_limit_next(times=2, retry_after=20)
    else:
        fake.rate_limit_next(times=2, reset_at=clock.now().timestamp() + 30)
    assert await forge.set_status(SHA, context="c", state="pending", description="d", target_url="")
    waited = clock.monotonic() - start
    if fake.kind == "gitea":
        assert waited >= 40  # Retry-After: 20, twice
    else:
        assert 30 <= waited < 60  # to the reset, which the second refusal repeats
    assert len(fake.calls("POST", "/statuses/")) == 3
    assert results == [(fake.kind, "rate_limited")] * 2 + [(fake.kind, "success")]


async def test_a_spent_quota_holds_the_next_request_until_the_reset(
    httpserver: HTTPServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake = FakeForge(httpserver, "github")
    forge = _client(fake, http, clock)
    number = fake.open_pull()
    fake.exhaust_quota_on_next(clock.now().timestamp() + 45)
    await forge.create_comment(number, "a")
    start = clock.monotonic()
    await forge.create_comment(number, "b")
    assert clock.monotonic() - start >= 45
    # Nothing was refused: the client waited instead of spending a request on a 403.
    assert [r.method for r in fake.requests] == ["POST", "POST"]


async def test_a_rate_limit_longer_than_allowed_fails_for_a_retry_later(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake.rate_limit_next(reset_at=clock.now().timestamp() + 3600, retry_after=3600)
    forge = _client(fake, http, clock)
    start = clock.monotonic()
    with pytest.raises(ForgeError) as e:
        await forge.set_status(SHA, context="c", state="pending", description="d", target_url="")
    assert e.value.reason == "forge-rate-limited" and e.value.action == "retry"
    assert clock.monotonic() - start < 1  # it did not sit out the hour
    assert "rate limited" in str(e.value)


async def test_server_errors_are_retried_with_backoff_then_reported(
    fake: FakeForge, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    forge = _client(fake, http, clock)
    fake.fail_next(502, {"message": "Bad Gateway"})
    assert await forge.set_status(SHA, context="c", state="pending", description="d", target_url="")
    for _ in range(4):
        fake.fail_next(503, {"message": "Service Unavailable"})
    with pytest.raises(ForgeError) as e:
        await forge.set_status(SHA, context="c", state="success", description="d", target_url="")
    assert e.value.status == 503 and e.value.action == "retry"
    assert len(fake.calls("POST", "/statuses/")) == 1 + 1 + 4


async def test_a_pagination_link_to_another_host_is_not_followed(
    httpserver: HTTPServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake = FakeForge(httpserver, "github")
    number = fake.open_pull()
    fake.fail_next(200, [], when=lambda r: r.method == "GET")
    forge = _client(fake, http, clock)
    # A forged Link would send the token elsewhere: refuse it.
    httpserver.clear()
    httpserver.expect_request(f"/repos/acme/fleet/issues/{number}/comments").respond_with_json(
        [], headers={"Link": '<https://attacker.example/steal?page=2>; rel="next"'}
    )
    with pytest.raises(ForgeError) as e:
        await forge.list_comments(number)
    assert "attacker.example" in str(e.value)


def test_the_token_is_read_by_reference(tmp_path: Path) -> None:
    config = ForgeConfig(kind="github", repo="acme/fleet", token_env="FORGE_TOKEN")
    assert read_token(config, {"FORGE_TOKEN": " tok \n"}) == "tok"
    with pytest.raises(ConfigError, match="FORGE_TOKEN is not set"):
        read_token(config, {})
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    from_file = ForgeConfig(kind="gitea", repo="a/b", token_file=secret, url="http://x/api/v1")
    assert read_token(from_file, {}) == "from-file"
    secret.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(from_file, {})


def test_bad_forge_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="needs --forge-url"):
        ForgeConfig(kind="gitea", repo="a/b", token_env="T").check()
    with pytest.raises(ConfigError, match="owner/name"):
        ForgeConfig(kind="github", repo="fleet", token_env="T").check()
    with pytest.raises(ConfigError, match="--forge-token-env"):
        ForgeConfig(kind="github", repo="a/b").check()
    ForgeConfig(kind="gitlab", repo="group/sub/project", token_env="T").check()
