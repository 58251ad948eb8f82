"""The Reports page in real headless Chromium: every chart drawn, nothing refused, fits a phone.

Calls are placed with the emulator first (tests/test_reports.py's known paths), so the charts
draw real figures. `UPDATE_SCREENSHOTS=1` also saves the screenshots shown in docs/reports.md.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest
from werkzeug.security import generate_password_hash

from ivr import PROJECT_ROOT
from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.requests import history
from tests.conftest import serving
from tests.test_browser import CHROMIUM, browser  # noqa: F401  (a fixture)
from tests.test_reports import START, Clock, known_calls

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
PASSWORD = "a browser password"
PAGE = "/staff/reports?period=week&start=2026-11-25"


@pytest.fixture
def server(make_app, make_request):
    app = make_app(CLOCK=Clock(START))
    known_calls(app.test_client())
    with app.app_context():
        db.session.add(
            StaffUser(username="ana", role="admin", password_hash=generate_password_hash(PASSWORD))
        )
        db.session.commit()
    for hours in (1, 3, 5, 12):  # call-backs, so their charts have bars too
        request_id = make_request(created_at=START, urgent=hours == 1)
        with app.app_context():
            history.add(request_id, "call", "ana", created_at=START + dt.timedelta(hours=hours))
            db.session.commit()
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def log_in(page, base: str) -> None:
    page.goto(base + "/staff/login")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/staff/")


def drawn(page, chart_id: str) -> int:
    """How many pixels of the chart's canvas are painted (0: a blank canvas)."""
    return page.eval_on_selector(
        f"#chart-{chart_id}",
        """canvas => {
            const context = canvas.getContext('2d');
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
            return painted;
        }""",
    )


def watch(page) -> list[str]:
    """What goes wrong on the page: script errors, refusals (CSP), failed requests."""
    problems: list[str] = []

    def console(message) -> None:
        # "Failed to load resource" names no URL; the response below does.
        if message.type in ("error", "warning") and "Failed to load resource" not in message.text:
            problems.append(message.text)

    def response(answer) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):
            problems.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("response", response)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_charts_render_and_fit_a_phone(server, browser, tmp_path):  # noqa: F811
    shots = {}
    for name, viewport in (("desktop", (1280, 900)), ("phone", (390, 844))):
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1
        )
        page = context.new_page()
        problems = watch(page)
        log_in(page, server)
        page.click("text=Reports")  # linked from the dashboard
        page.goto(server + PAGE)
        ids = page.eval_on_selector_all("canvas", "els => els.map(e => e.id.slice(6))")
        assert {"calls-hour", "hang-ups", "topics", "call-now", "callback-wait"} <= set(ids)
        page.wait_for_function(
            "() => [...document.querySelectorAll('canvas')].every(c => c.dataset.rendered)"
        )
        for chart_id in ids:
            assert drawn(page, chart_id) > 500, chart_id  # axes, labels and bars were painted
            assert page.evaluate(f"() => !!Chart.getChart('chart-{chart_id}')"), chart_id
        # The funnel holds what the calls did: the Spanish caller who gave every detail.
        spanish = page.evaluate(
            """() => { const c = Chart.getChart('chart-reached');
                return c.data.datasets.find(d => d.label === 'Spanish').data; }"""
        )
        assert spanish == [2, 0, 0, 0, 1, 1, 1]
        assert problems == []  # no CSP refusal, no script error
        # Nothing wider than the screen: no sideways scrolling on a phone.
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= viewport[0], (name, width)
        shots[name] = tmp_path / f"reports-{name}.png"
        if name == "desktop":
            page.screenshot(path=str(shots[name]), full_page=True)
        else:  # one chart with its table, as a phone shows it
            page.locator("#hang-ups").screenshot(path=str(shots[name]))
        context.close()
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for name, path in shots.items():
            shutil.copy(path, PROJECT_ROOT / "docs" / f"reports-{name}.png")
