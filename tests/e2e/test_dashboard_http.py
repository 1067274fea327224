"""The dashboard through a real daemon over loopback HTTP.

A daemon (real git remote, simulator, HTTP port, operator token) rolls a small fleet whose
canary comes back on its old image, so the rollout halts; a revision with a broken document
is refused, then fixed. The daemon's alert centre raises and resolves alerts for both. Every
page must answer 200 with what happened, only to an operator (token or signed session
cookie), under a strict CSP with no inline script or style; a forged or foreign cookie gets
nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx

from reconciler.dashboard.routes import CSP
from reconciler.session import COOKIE, SessionSigner
from tests.support.daemon import ALWAYS_OPEN, GitOps, policy_yaml, running_gitops, wait_for

TOKEN = "operator-token-dashboard-0123456789"
ENV = {"GITFIRM_OPERATOR_TOKEN": TOKEN}
PAGES = ("/ui/", "/ui/rollouts", "/ui/images", "/ui/history", "/ui/alerts", "/ui/source")
HTML = {"Accept": "text/html"}


def _no_inline(page: str, html: str) -> None:
    """Nothing the CSP would block: no inline script, handler or style attribute."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
    assert not re.search(r"\son[a-z]+\s*=", html), page
    assert not re.search(r"\sstyle\s*=", html), page
    assert "<style" not in html, page


async def login(base: str) -> str:
    """The session cookie the login form hands out for the right token."""
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post("/ui/login", data={"token": TOKEN})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/ui/"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
        assert TOKEN not in cookie
        return response.cookies[COOKIE]


async def _page(http: httpx.AsyncClient, path: str) -> str:
    response = await http.get(path, headers=HTML)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    _no_inline(path, response.text)
    return response.text


async def _assert_locked(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as anon:
        for path in (*PAGES, "/ui/devices/r0"):
            browser = await anon.get(path, headers=HTML)
            assert browser.status_code == 303 and browser.headers["location"] == "/ui/login"
            bare = await anon.get(path)
            assert bare.status_code == 401 and "www-authenticate" in bare.headers
        assert (await anon.get("/ui/events")).status_code == 401
        forged = {COOKIE: "99999999999.00ff00ff00ff00ff00ff00ff00ff00ff"}
        foreign = {COOKIE: SessionSigner("another-daemons-token").issue()}
        for jar in (forged, foreign):
            anon.cookies.clear()
            anon.cookies.update(jar)
            assert (await anon.get("/ui/")).status_code == 401
            assert (await anon.get("/ui/events")).status_code == 401
        anon.cookies.clear()
        form = await anon.get("/ui/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        assert form.headers["content-security-policy"] == CSP
        wrong = await anon.post("/ui/login", data={"token": TOKEN + "x"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        # Static files hold no fleet data and style the login form.
        assert (await anon.get("/ui/static/style.css")).status_code == 200
        assert (await anon.get("/ui/static/../daemon.py")).status_code == 404


async def test_every_page_shows_the_fleet_to_an_operator_only(tmp_path: Path) -> None:
    async with running_gitops(tmp_path, devices=3, environ=ENV) as ops:
        base = f"http://127.0.0.1:{ops.port}"
        await _assert_locked(base)
        cookie = await login(base)
        for name in ops.fleet.names:
            ops.fleet.device(name).faults.boot_failure = "revert"
        ops.merge(
            {"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN, maxParallel=1)},
            "Roll the fleet to 1.4.4",
        )
        await wait_for(
            lambda: bool((r := ops.daemon.journal.rollout("fleet")) and r.halted), 90, "the halt"
        )
        await wait_for(lambda: "fleet" in ops.daemon.book.halts, 30, "the halt in status")
        async with httpx.AsyncClient(base_url=base, cookies={COOKIE: cookie}) as http:
            await _assert_pages(ops, http)
            # The same state renders once however often it is asked for.
            version = ops.daemon.changes.version
            before = ops.daemon.dashboard.cache.renders
            for _ in range(5):
                await _page(http, "/ui/history")
            if ops.daemon.changes.version == version:
                assert ops.daemon.dashboard.cache.renders - before <= 1

            bad = ops.merge({"policies/broken.yaml": "kind: RolloutPolicy\nspec: [\n"}, "Broken")
            await wait_for(lambda: bool(ops.daemon.book.refusals), 60, "the refusal")
            source = await _page(http, "/ui/source")
            assert bad[:12] in source and "invalid desired state" in source
            alerts = _section(await _page(http, "/ui/alerts"), "Active")
            assert f"revision {bad[:12]} refused" in alerts and "revision-refused" in alerts

            # The fix applies: the centre resolves the refusal, and the page says so.
            # (A desired-state change: a tree equal to the applied one is skipped.)
            policy = policy_yaml("1.4.4", window=ALWAYS_OPEN, maxParallel=1)
            fix = {"policies/broken.yaml": None, "policies/fleet.yaml": policy + "# fixed\n"}
            fixed = ops.merge(fix, "Remove the broken file")
            await wait_for(lambda: ops.daemon.state.verified == fixed, 60, "the fix applied")
            await wait_for(
                lambda: (
                    ops.daemon.alert_center.get("revision-refused", bad) is not None
                    and not _active(ops, "revision-refused", bad)
                ),
                60,
                "the refusal resolved",
            )
            alerts = await _page(http, "/ui/alerts")
            assert f"revision {bad[:12]} refused" in _section(alerts, "Resolved")
            assert f"revision {bad[:12]} refused" not in _section(alerts, "Active")

            # A bearer token works too (curl, scripts); logging out drops the cookie.
            async with httpx.AsyncClient(base_url=base) as bearer:
                ok = await bearer.get("/ui/", headers={"Authorization": f"Bearer {TOKEN}"})
                assert ok.status_code == 200
            out = await http.post("/ui/logout")
            assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
        await _assert_guessing_is_limited(base)


async def _assert_guessing_is_limited(base: str) -> None:
    """Wrong tokens from one address: 10 at once, then 429 even for the right one; another
    address is not charged for them."""
    async with httpx.AsyncClient(base_url=base) as guesser:
        codes = [
            (await guesser.post("/ui/login", data={"token": f"guess-{i}"})).status_code
            for i in range(12)
        ]
        assert codes[:9] == [401] * 9 and codes[-1] == 429, codes
        right = await guesser.post("/ui/login", data={"token": TOKEN})
        assert right.status_code == 429 and "set-cookie" not in right.headers
        assert int(right.headers["retry-after"]) >= 1
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=base, transport=other) as operator:
        assert (await operator.post("/ui/login", data={"token": TOKEN})).status_code == 303


def _active(ops: GitOps, event: str, subject: str) -> bool:
    alert = ops.daemon.alert_center.get(event, subject)
    return alert is not None and alert.active


def _section(html: str, heading: str) -> str:
    """The alerts page's section under ``<h2>heading (...)``."""
    start = html.index(f"<h2>{heading} (")
    end = html.find("</section>", start)
    return html[start:end]


async def _assert_pages(ops: GitOps, http: httpx.AsyncClient) -> None:
    desired = ops.daemon.state.desired
    assert desired is not None
    names = ops.fleet.names
    fleet = await _page(http, "/ui/")
    for name in names:
        assert f'href="/ui/devices/{name}"' in fleet
    assert "<svg" in fleet and "Running versions" in fleet and "Reachability" in fleet
    assert "1.4.3" in fleet
    site = desired.devices[names[0]].spec.site
    filtered = await _page(http, f"/ui/?site={site}")
    same_site = [n for n in names if desired.devices[n].spec.site == site]
    assert f"{len(same_site)} of {len(names)} devices match the filters" in filtered
    nobody = await _page(http, "/ui/?site=no-such-site")
    assert f"0 of {len(names)} devices match" in nobody

    rollouts = await _page(http, "/ui/rollouts")
    assert "halted" in rollouts and "Halted:" in rollouts
    assert "spec.retryToken" in rollouts and "policies/fleet.yaml" in rollouts
    assert "git push origin HEAD:main" in rollouts and "<progress" in rollouts
    assert "Window:" in rollouts and "canary" in rollouts

    images = await _page(http, "/ui/images")
    assert ops.target_image in images and "Channel" in images and "Store capacity" in images
    # The target was verified and stored today: the store grows, and the page says how fast.
    assert "Growth" in images and "the free space lasts about" in images
    # Every device runs 1.4.3 still (the canary rolled back): the 1.4.3 row names them.
    for name in names:
        assert f'href="/ui/devices/{name}"' in images

    history = await _page(http, "/ui/history")
    failed = [t for t in ops.daemon.journal.history() if t.to_phase in ("rollback", "failed")]
    assert failed, "the canary should have failed"
    assert "Time per phase" in history and "Success per image" in history
    canary = failed[0].device
    assert f'href="/ui/devices/{canary}"' in history or "failed" in history

    device = await _page(http, f"/ui/devices/{canary}")
    assert canary in device and "Timeline" in device and "rollback" in device
    assert "Configuration backups" in device
    backups = ops.daemon.backups.entries(canary)
    assert backups and backups[-1].revision[:12] in device
    missing = await http.get("/ui/devices/no-such-router", headers=HTML)
    assert missing.status_code == 404

    source = await _page(http, "/ui/source")
    applied = ops.daemon.state.verified
    assert applied is not None and applied in source and "Roll the fleet to 1.4.4" in source

    # Raised by the daemon's own alert centre, as the status branch's alerts.yaml has them.
    active = _section(await _page(http, "/ui/alerts"), "Active")
    halted = ops.daemon.alert_center.get("rollout-halted", "fleet")
    assert halted is not None and halted.active
    assert "rollout-halted" in active and "rollout fleet halted" in active
    rolled = ops.daemon.alert_center.get("device-rolled-back", canary)
    assert rolled is not None and f"{canary} is rolled back" in active
    assert f'<td class="num">{rolled.count}</td>' in active


async def _updates(http: httpx.AsyncClient) -> AsyncGenerator[dict[str, Any]]:
    """The ``update`` events of one ``/ui/events`` stream, as JSON."""
    async with http.stream("GET", "/ui/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "update":
                yield json.loads(line[6:])


async def test_live_events_follow_a_rollout(tmp_path: Path) -> None:
    async with running_gitops(tmp_path, devices=3, environ=ENV) as ops:
        base = f"http://127.0.0.1:{ops.port}"
        cookie = await login(base)
        # A tab left open: its stream must not hold up the daemon's shutdown.
        tab = httpx.AsyncClient(base_url=base, cookies={COOKIE: cookie}, timeout=30)
        lingering = _updates(tab)
        await asyncio.wait_for(anext(lingering), 30)
        seen: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=base, cookies={COOKIE: cookie}, timeout=30) as http:
            stream = _updates(http)
            first = await asyncio.wait_for(anext(stream), 30)
            assert 0 <= first["version"] <= ops.daemon.changes.version
            ops.merge(
                {"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}, "Roll to 1.4.4"
            )

            async def until_done() -> None:
                async for update in stream:
                    seen.append(update)
                    fleet = update["rollouts"].get("fleet")
                    if fleet and fleet["total"] and fleet["done"] == fleet["total"]:
                        return

            await asyncio.wait_for(until_done(), 120)
            await stream.aclose()
        versions = [u["version"] for u in seen]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        # The stream showed the rollout moving, not only its end.
        steps = ("precheck", "backup", "stage", "activate", "await-boot", "verify", "health")
        phases = [u["rollouts"]["fleet"]["phases"] for u in seen if "fleet" in u["rollouts"]]
        assert any(sum(p.get(step, 0) for step in steps) for p in phases), seen
        assert set(ops.versions().values()) == {"1.4.4"}
    # running_gitops gave the daemon 60 s to stop; the open stream ended with it.
    rest = await asyncio.wait_for(_drain(lingering), 30)
    assert all("version" in u for u in rest)
    await tab.aclose()


async def _drain(stream: AsyncGenerator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [update async for update in stream]
