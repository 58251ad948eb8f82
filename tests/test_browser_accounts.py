"""Accounts on the web in real headless Chromium (issue 21 item 6): an admin adds an account from
the header's Accounts link, logs in as it in a second browser with the password shown once,
makes it admin, removes it through the confirmation page, and finds each change in the audit
log, filtered to account changes."""

from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.db import db
from tests.conftest import serving
from tests.test_browser import CHROMIUM, browser  # noqa: F401  (browser: a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
PASSWORD = "a browser password"


@pytest.fixture
def server(app):
    with app.app_context():
        db.session.add(
            StaffUser(username="ana", role="admin", password_hash=generate_password_hash(PASSWORD))
        )
        db.session.commit()
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def log_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/staff/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/staff/")


def test_add_an_account_change_its_role_and_remove_it(server, browser):  # noqa: F811
    page = browser.new_context().new_page()
    log_in(page, server, "ana", PASSWORD)
    page.click("header nav >> text=Accounts")
    page.wait_for_url(server + "/staff/accounts")

    # Bad input: the message beside the form, what was typed kept.
    page.fill("#add input[name=username]", "marta")
    page.fill("#add input[name=phone]", "12")
    page.click("button:has-text('Add account')")
    assert "is not a phone number" in page.locator("#error-add").inner_text()
    assert page.locator("#add input[name=username]").input_value() == "marta"

    page.fill("#add input[name=phone]", "+1 312 555 0150")
    page.click("button:has-text('Add account')")
    password = page.locator("#initial-password").inner_text()
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
    row = page.locator("tr[data-username=marta]")
    assert row.get_attribute("data-role") == "staff"
    assert row.locator("input[name=phone]").input_value() == "+13125550150"

    # The new account logs in with the password shown once (two factors are optional in tests).
    marta = browser.new_context().new_page()
    log_in(marta, server, "marta", password)
    assert marta.locator("header nav >> text=Accounts").count() == 0  # staff: no link

    row.locator("select[name=role]").select_option("admin")
    row.locator("button:has-text('Set role')").click()
    page.wait_for_url(re.compile(r".*/staff/accounts#u\d+$"))
    assert "marta is now admin" in page.locator(".flash").inner_text()
    assert page.locator("tr[data-username=marta]").get_attribute("data-role") == "admin"

    page.click("text=Remove marta…")
    page.wait_for_url(re.compile(r".*/staff/accounts/\d+/remove$"))
    assert page.locator("h1").inner_text() == "Remove marta?"
    page.click("button:has-text('Yes, remove marta')")
    page.wait_for_url(server + "/staff/accounts")
    assert "Account marta removed" in page.locator(".flash").inner_text()
    assert page.locator("tr[data-username=marta]").count() == 0
    marta.reload()
    assert "/staff/login" in marta.url  # the removed account's session ended

    page.click("header nav >> text=Audit log")
    page.select_option("select[name=action]", "account")
    page.click("button:has-text('Show')")
    page.wait_for_url(re.compile(r".*/staff/audit\?action=account.*"))
    details = page.locator("table.audit tbody tr td.detail").all_inner_texts()
    assert details == [
        "removed marta (admin)",
        "marta is now admin",
        "added marta (staff), phone …50",
    ]
    actors = page.locator("table.audit tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.actor)"
    )
    assert actors == ["ana"] * 3
