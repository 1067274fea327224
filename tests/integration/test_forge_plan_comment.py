"""`gitfirm plan --comment-pr N` upserts one comment, found again by its hidden marker, on
each forge (the fake forge with each one's documented shapes); a plan too long for one
comment is split into parts, and parts no longer needed are deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer

from reconciler.cli import main
from reconciler.clock import SystemClock
from reconciler.forge import ForgeConfig, make_forge
from reconciler.forge.comment import marker, split_comment, upsert_comment
from reconciler.model.loader import load_repository
from tests.support.forge import FORGES, FakeForge
from tests.support.planning import NOW, facts

EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
AT = "2025-06-07T01:00:00+00:00"  # inside the example lts-fleet window
TOKEN_ENV = "PLAN_COMMENT_TOKEN"


@pytest.fixture(params=FORGES)
def fake(request: pytest.FixtureRequest, httpserver: HTTPServer) -> FakeForge:
    return FakeForge(httpserver, request.param)


def _observed(tmp_path: Path, lts: str) -> Path:
    state = load_repository(EXAMPLE).state
    assert state is not None
    devices = [
        facts(n, lts if d.metadata.labels.get("train") == "lts" else "2025.11.03-0019-rolling")
        for n, d in sorted(state.devices.items())
    ]
    path = tmp_path / f"observed-{lts}.json"
    doc = {"observedAt": NOW.isoformat(), "devices": [f.model_dump(mode="json") for f in devices]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _plan(fake: FakeForge, observed: Path, number: int, *extra: str) -> int:
    return main([
        "plan", str(EXAMPLE), "--observed", str(observed), "--now", AT, "--format", "markdown",
        "--comment-pr", str(number), "--forge", fake.kind, "--forge-url", fake.api_root,
        "--forge-repo", fake.repo, *extra,
    ])  # fmt: skip


def test_the_plan_comment_is_created_once_then_updated_in_place(
    fake: FakeForge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    number = fake.open_pull(head="raise-lts")
    theirs = fake.seed_comment(number, "LGTM, but check the canary")
    old = _observed(tmp_path, "1.4.2")

    assert _plan(fake, old, number, "--forge-token-env", TOKEN_ENV) == 0
    out, err = capsys.readouterr()
    assert "plan comment on" in err and "1 created" in err
    (body,) = [b for b in fake.bodies(number) if "gitfirm:plan" in b]
    assert body.startswith(marker("plan", 1, 1) + "\n")
    assert "### gitfirm plan" in body and "ams-core-1" in body
    assert body.split("\n", 1)[1] == out  # the comment is the markdown plan, as printed
    ours = next(c for c in fake.comments[number] if "gitfirm:plan" in c["body"])

    # A new push changes the plan: the same comment is edited, nothing is added.
    new = _observed(tmp_path, "1.4.1")
    assert _plan(fake, new, number, "--forge-token-env", TOKEN_ENV) == 0
    assert "1 updated" in capsys.readouterr().err
    assert len(fake.bodies(number)) == 2
    assert next(c for c in fake.comments[number] if c["id"] == ours["id"])["body"] != body
    edits = "PUT" if fake.kind == "gitlab" else "PATCH"
    assert len(fake.calls(edits, rf"/{ours['id']}$")) == 1

    # The same plan again: no edit at all.
    assert _plan(fake, new, number, "--forge-token-env", TOKEN_ENV) == 0
    assert "unchanged" in capsys.readouterr().err
    assert len(fake.calls(edits, rf"/{ours['id']}$")) == 1
    # Somebody else's comment was never touched.
    assert next(c for c in fake.comments[number] if c["id"] == theirs)["body"].startswith("LGTM")
    assert not fake.calls(edits, rf"/{theirs}$")


def test_a_plan_too_long_for_one_comment_is_split_and_shrinks_back(
    fake: FakeForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = fake.open_pull()
    header = "| device | policy | current | target | action |\n|---|---|---|---|---|\n"
    rows = "".join(f"| r{i:04d} | edge | 1.4.2 | 1.4.4 | upgrade |\n" for i in range(400))
    long_plan = f"### gitfirm plan\n\n{header}{rows}\n```\nlog line\n" + "x\n" * 300 + "```\n"

    async def post(body: str) -> None:
        config = ForgeConfig(kind=fake.kind, repo=fake.repo, url=fake.api_root, token_env="T")
        async with httpx.AsyncClient() as http:
            forge = make_forge(config, fake.token, http=http, clock=SystemClock(), user_agent="t")
            await upsert_comment(forge, number, body, limit=4000)

    asyncio.run(post(long_plan))
    parts = fake.bodies(number)
    assert len(parts) >= 4
    for i, part in enumerate(parts, 1):
        assert len(part) <= 4000
        assert part.startswith(marker("plan", i, len(parts)))
        assert f"part {i} of {len(parts)}" in part
        assert part.count("```") % 2 == 0  # every code block is closed within its part
    table_parts = [p for p in parts if "| r0" in p]
    assert len(table_parts) >= 2
    for part in table_parts:  # a table cut in two keeps its header in each part
        assert header in part
    every_row = "".join(parts)
    assert all(f"| r{i:04d} |" in every_row for i in range(400))

    asyncio.run(post("### gitfirm plan\n\nnothing to do\n"))
    (only,) = fake.bodies(number)
    assert only == marker("plan", 1, 1) + "\n### gitfirm plan\n\nnothing to do\n"
    assert len(fake.calls("DELETE", r"/\d+$")) == len(parts) - 1


def test_split_parts_fit_the_limit_even_for_one_huge_line() -> None:
    parts = split_comment("a" * 10_000, 1000)
    assert all(len(p) <= 1000 for p in parts)
    assert "".join(p.split("\n", 2)[2].replace("\n", "") for p in parts) == "a" * 10_000


def test_comment_errors_are_one_line_without_the_token(
    fake: FakeForge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    obs = _observed(tmp_path, "1.4.2")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert _plan(fake, obs, 1, "--forge-token-env", TOKEN_ENV) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"error: forge token variable {TOKEN_ENV} is not set"

    # From a file, and a pull request that does not exist.
    secret = tmp_path / "token"
    secret.write_text(fake.token + "\n")
    assert _plan(fake, obs, 404, "--forge-token-file", str(secret)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {fake.kind}: GET ") and "404" in line
    assert fake.token not in line

    # A refused token: the line says so, and never shows it.
    secret.write_text("not-the-right-token-123456\n")
    number = fake.open_pull()
    assert _plan(fake, obs, number, "--forge-token-file", str(secret)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "401" in line and "token" in line and "not-the-right-token" not in line
    assert fake.bodies(number) == []

    assert main(["plan", str(EXAMPLE), "--comment-pr", "3"]) == 1
    assert "--comment-pr needs --forge" in capsys.readouterr().err
