"""Two factors in real headless Chromium: enrol from the QR page, log in with codes computed here,
then what the audit log shows an admin of a listen and an export made in the browser."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.requests.models import CallbackRequest
from tests.conftest import enrol_code, serving
from tests.test_browser import CHROMIUM, browser, tone_wav  # noqa: F401  (browser: a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
PASSWORD = "a browser password"
ENROL_CODES: dict[str, str] = {}


@pytest.fixture
def server(make_app):
    app = make_app(STAFF_2FA="required")
    with app.app_context():
        db.session.add(
            StaffUser(username="ana", role="admin", password_hash=generate_password_hash(PASSWORD))
        )
        db.session.add(
            CallbackRequest(
                call_sid="CA1",
                reference="700001",
                language="es",
                caller_number="+13125550123",
                recording_duration=1,
                audio=tone_wav(),
                audio_type="audio/wav",
            )
        )
        db.session.commit()
    code = enrol_code(app)  # what an admin hands over
    with serving(app) as port:
        ENROL_CODES[f"http://127.0.0.1:{port}"] = code
        yield f"http://127.0.0.1:{port}"


def password_step(page, base: str) -> None:
    page.goto(base + "/staff/")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")


def test_enrol_and_log_in_with_totp_codes(server, browser):  # noqa: F811
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()

    password_step(page, server)
    page.wait_for_url(server + "/staff/login/setup")
    page.fill("input[name=enrol_code]", ENROL_CODES[server])
    page.click("button:has-text('Continue')")
    qr = page.locator(".qr svg")
    qr.wait_for(state="visible")  # the form posts to the same URL: wait for the new page
    assert qr.is_visible() and qr.bounding_box()["width"] >= 100
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.fill("input[name=code]", totp.now())
    page.click("button:has-text('Turn on')")
    page.locator(".recovery-codes code").first.wait_for()
    codes = page.locator(".recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    page.click("text=Continue to the requests")
    page.wait_for_url(server + "/staff/")

    # Listen, and export (an admin), so the audit log has both.
    audio = page.locator("article[data-reference='700001'] audio")
    audio.evaluate("(audio) => audio.play()")
    page.wait_for_function(
        "() => document.querySelector(\"article[data-reference='700001'] audio\").currentTime > 0",
        timeout=10000,
    )
    with page.expect_download() as download:
        page.click("text=Export CSV")
    assert "700001" in Path(download.value.path()).read_text(encoding="utf-8")
    page.click("text=Audit log")
    page.wait_for_url(server + "/staff/audit")
    rows = page.locator("table.audit tbody tr")
    actions = rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.action, r.dataset.actor, r.dataset.reference || ''])"
    )
    assert ["listen", "ana", "700001"] in actions and ["export", "ana", ""] in actions
    assert actions[-2:] == [["login", "ana", ""], ["account", "ana", ""]]  # enrolled, logged in
    assert "700001" in rows.filter(has_text="Exported CSV").inner_text()

    # Out, and in again: the password, then a code (the next step's: each code works once).
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/staff/login")
    password_step(page, server)
    page.wait_for_url(server + "/staff/login/code")
    page.goto(server + "/staff/")
    assert "/staff/login" in page.url  # the password alone opens nothing
    page.goto(server + "/staff/login/code")
    page.fill("input[name=code]", "000000" if totp.at(time.time() + 30) != "000000" else "111111")
    page.click("button:has-text('Continue')")
    assert "Wrong code" in page.locator(".error").inner_text()
    page.fill("input[name=code]", totp.at(time.time() + 30))
    page.click("button:has-text('Continue')")
    page.wait_for_url(server + "/staff/")

    # A lost phone: a recovery code, once.
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/staff/login")
    password_step(page, server)
    page.wait_for_url(server + "/staff/login/code")
    page.fill("input[name=code]", codes[0])
    page.click("button:has-text('Continue')")
    page.wait_for_url(server + "/staff/")
    assert "recovery code" in page.locator(".flash").inner_text()
    context.close()
