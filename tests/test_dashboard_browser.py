"""The dashboard as a person sees it: a real headless Chromium (Debian's `chromium`, driven by
Playwright's Python package) logs in with the form against `sms-stats serve`, whose store holds
what timer runs collected from the SMS API stand-in. Every chart must have the points the data
gives, the console must stay quiet, and no request may leave 127.0.0.1. The screenshot is kept
under `artifacts/` (git-ignored) to look at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from index import main_handler

from sms_stats import serve

from .conftest import API_TOKEN, APP_A, APP_B
from .test_dashboard import TIMER

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed (pip: playwright)"
)
if not Path(CHROMIUM).exists():  # pragma: no cover - .ci/run installs it
    pytest.skip(
        "no chromium executable (Debian: apt-get install -y chromium)", allow_module_level=True
    )


def test_given_a_week_of_timer_runs_when_a_person_logs_in_then_every_chart_shows_its_points(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, pinned: None, context: Any
) -> None:
    monkeypatch.setenv("SMS_STATS_COLLECT", "send,callback,packages")
    monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "0")
    event = {**TIMER, "Message": json.dumps({"window": "hour", "lookback": 30})}
    assert main_handler(event, context)["ok"]

    server = serve.make_server("127.0.0.1", 0)
    serve.start_in_thread(server)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    errors: list[str] = []
    outside: list[str] = []
    try:
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone

            def watch(route: Any) -> None:
                if urlsplit(route.request.url).hostname != "127.0.0.1":
                    outside.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            page.route("**/*", watch)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(f"{origin}/dashboard?days=2")
            assert page.url == f"{origin}/login"  # 303 for a browser without a session
            page.fill("input[name=token]", "wrong")
            page.click("button[type=submit]")
            assert page.locator("[role=alert]").inner_text() == "that token is not valid"
            # the browser logs the refused login's 401 itself; nothing else may be logged
            assert errors == [
                "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
            ]
            errors.clear()
            page.fill("input[name=token]", API_TOKEN)
            page.click("button[type=submit]")
            page.wait_for_url(f"{origin}/dashboard")
            page.goto(f"{origin}/dashboard?days=2")

            for app in (APP_A, APP_B):
                section = page.locator(f'section[data-app="{app}"]')
                # 30 stored hours: requests and billed parts per hour
                assert _drawn(section, f"{app}-volume") == 60
                assert _drawn(section, f"{app}-balance") == 1
                rates = section.locator(f'[data-chart="{app}-rates"]')
                assert _drawn(section, f"{app}-rates") == int(rates.get_attribute("data-points"))
                assert section.locator(f'[data-chart="{app}-reasons"]').count() == 1
                box = section.locator(f'[data-chart="{app}-volume"]').bounding_box()
                assert box is not None
                assert box["width"] <= 390
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            page.click("text=Log out")
            page.wait_for_url(f"{origin}/login")
            page.goto(f"{origin}/dashboard")
            assert page.url == f"{origin}/login"  # the session is gone
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert errors == []
    assert outside == []


def _drawn(section: Any, chart: str) -> int:
    """Points actually in the SVG: polyline vertices and lone dots."""
    svg = section.locator(f'svg[data-chart="{chart}"]')
    count: int = svg.evaluate(
        "s => [...s.querySelectorAll('polyline')].reduce((n, p) => n + p.points.numberOfItems, 0)"
        " + s.querySelectorAll('circle').length"
    )
    return count


@pytest.fixture
def pinned(mocker: Any) -> None:
    from sms_stats import handler
    from sms_stats.dashboard import data

    from .test_dashboard import NOW

    mocker.patch.object(handler, "utcnow", return_value=NOW)
    data.clear_cache()
