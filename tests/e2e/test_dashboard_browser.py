"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium), on a real daemon and the simulator.

It signs in through the login form, loads every page at 1280 and 390 CSS pixels wide and
checks that none scrolls sideways and the browser logged no error (a CSP violation is one),
then watches the rollouts page follow a rollout to its end without a reload. Screenshots go
to ``<tmp>/screenshots`` (and to ``$GITFIRM_ARTIFACTS`` when set). Skips with the reason when
Chromium, its driver or selenium is missing; ``.ci/run`` installs them when it can.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import ALWAYS_OPEN, policy_yaml, running_gitops

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "operator-token-browser-0123456789"
ENV = {"GITFIRM_OPERATOR_TOKEN": TOKEN}
WIDTHS = (1280, 390)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


async def _run(call: Callable[..., Any], *args: Any) -> Any:
    """A blocking selenium call off the event loop the daemon runs on."""
    return await asyncio.to_thread(call, *args)


def _width(driver: Any, width: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _shoot(driver: Any, folder: Path, name: str) -> None:
    # A screenshot of the whole page, not just the first screen.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(int(height), 6000), "deviceScaleFactor": 1,
         "mobile": width < 600},
    )  # fmt: skip
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    _width(driver, width)
    artifacts = os.environ.get("GITFIRM_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)


def _load(driver: Any, url: str, width: int) -> dict[str, Any]:
    """Open ``url`` at ``width``; what the page says about its size and the browser's log."""
    _width(driver, width)
    driver.get(url)
    overflow = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " document.querySelector('main') !== null, document.title]"
    )
    return {"scroll": overflow[0], "inner": overflow[1], "main": overflow[2], "title": overflow[3]}


def _login(driver: Any, base: str) -> None:
    driver.get(base + "/ui/rollouts")
    assert driver.current_url == base + "/ui/login", driver.current_url
    field = driver.find_element("id", "token")
    field.send_keys(TOKEN)
    field.submit()
    assert driver.current_url == base + "/ui/", driver.current_url
    cookies = {c["name"]: c for c in driver.get_cookies()}
    assert cookies["gitfirm_session"]["httpOnly"] is True
    assert driver.execute_script("return document.cookie") == ""  # no script can read it


async def test_pages_render_at_both_widths_and_follow_a_rollout_live(
    tmp_path: Path, browser: Any
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with running_gitops(tmp_path, devices=4, environ=ENV) as ops:
        base = f"http://127.0.0.1:{ops.port}"
        await _run(_login, browser, base)
        device = ops.fleet.names[0]
        pages = {
            "fleet": "/ui/",
            "rollouts": "/ui/rollouts",
            "images": "/ui/images",
            "history": "/ui/history",
            "alerts": "/ui/alerts",
            "source": "/ui/source",
            "device": f"/ui/devices/{device}",
        }
        for width in WIDTHS:
            for name, path in pages.items():
                seen = await _run(_load, browser, base + path, width)
                assert seen["main"], (name, width)
                assert seen["scroll"] <= seen["inner"], (name, width, seen)
                await _run(_shoot, browser, shots, f"{name}-{width}")
                errors = await _run(_errors, browser)
                assert not errors, (name, width, errors)

        # Live: the rollouts page, loaded once, follows the rollout to its end.
        await _run(_load, browser, base + "/ui/rollouts", 1280)
        await _run(browser.execute_script, "window.__notReloaded = true;")
        for _ in range(150):  # the stream opens (0.2 s apart, 30 s at most)
            if await _run(lambda: browser.find_element("id", "live").text) == "live":
                break
            await asyncio.sleep(0.2)
        assert await _run(lambda: browser.find_element("id", "live").text) == "live"
        ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}, "Roll")
        texts: list[str] = []

        def progress() -> str:
            # One script reads it: the element may be swapped out between two calls.
            return str(
                browser.execute_script(
                    "var e = document.querySelector(\".progress-text[data-policy='fleet']\");"
                    " return e ? e.textContent : '';"
                )
            )

        async def done() -> bool:
            text: str = await _run(progress)
            if text and (not texts or texts[-1] != text):
                texts.append(text)
            return text == "4 of 4 done"

        for _ in range(600):  # 0.2 s apart: two minutes at most
            if await done():
                break
            await asyncio.sleep(0.2)
        assert texts and texts[-1] == "4 of 4 done", texts
        assert await _run(browser.execute_script, "return window.__notReloaded === true")
        await _run(_shoot, browser, shots, "rollouts-live-1280")
        assert not await _run(_errors, browser)
    assert set(ops.versions().values()) == {"1.4.4"}
    assert len(list(shots.glob("*.png"))) == len(pages) * len(WIDTHS) + 1
