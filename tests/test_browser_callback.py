"""Issue 21 in real headless Chromium: two staff press Call back on one request within a second
and Twilio is asked for one call; the card follows the call-back live (htmx polling), a refused
call included, without a reload. Twilio's REST API is faked at its HTTP edge (`responses`), the
staff leg's webhooks are signed posts from the emulator, as in tests/test_browser.py."""

from __future__ import annotations

import re
import urllib.parse

import pytest
import responses
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.requests.models import CallbackRequest
from tests.conftest import TOKEN, serving
from tests.test_browser import CHROMIUM, PASSWORD, browser, log_in_as  # noqa: F401  (a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
HOTLINE = "+13125550177"
PUBLIC = "https://hotline.example.org"
CALLS = f"https://api.twilio.com/2010-04-01/Accounts/{'AC' + '0' * 32}/Calls.json"
PHONES = {"alice": "+13125550199", "bob": "+13125550198"}
CARD = "article[data-reference='995738']"
WAIT = 15000  # ms: the card polls every 2 s; a slow shared machine may take a while


@pytest.fixture
def hotline(make_app):
    app = make_app(CALLBACK_FROM_NUMBER=HOTLINE, PUBLIC_URL=PUBLIC, STAFF_LANGUAGE="en")
    with app.app_context():
        for name, phone in PHONES.items():
            db.session.add(
                StaffUser(
                    username=name, phone=phone, password_hash=generate_password_hash(PASSWORD)
                )
            )
        db.session.add(
            CallbackRequest(
                call_sid="CA1",
                reference="995738",
                language="es",
                caller_number="+525512345678",
                callback_number="+525512345678",
                recording_duration=1,
            )
        )
        db.session.commit()
    with serving(app) as port:
        yield app, f"http://127.0.0.1:{port}"


def not_reloaded(page) -> None:
    """Mark the page; `still_same_page` proves no reload or navigation happened since."""
    page.evaluate("window.notReloaded = true")


def still_same_page(page) -> bool:
    return page.evaluate("window.notReloaded === true")


def test_two_staff_press_call_back_at_once_and_one_call_is_placed(hotline, browser):  # noqa: F811
    from playwright.sync_api import expect

    app, base = hotline
    alice_context, alice = log_in_as(browser, base, "alice")
    bob_context, bob = log_in_as(browser, base, "bob")
    with responses.RequestsMock() as twilio:
        create = twilio.post(CALLS, status=201, json={"sid": "CA" + "7" * 32, "status": "queued"})
        for page in (alice, bob):
            not_reloaded(page)
        # Both press within a second (neither waits for its answer before the other clicks).
        alice.locator(f"{CARD} button.call").click(no_wait_after=True)
        bob.locator(f"{CARD} button.call").click(no_wait_after=True)
        states = {}
        for name, page in (("alice", alice), ("bob", bob)):
            region = page.locator(f"{CARD} .callback")
            expect(region.locator("[role=status]").first).to_be_visible(timeout=WAIT)
            states[name] = region.inner_text()
        winners = [n for n, text in states.items() if "Your phone will ring" in text]
        assert len(winners) == 1, states
        winner = winners[0]
        loser = "bob" if winner == "alice" else "alice"
        assert f"{winner} is calling this family now." in states[loser], states
        jobs.run_pending(app)
        jobs.run_pending(app)
        assert create.call_count == 1  # exactly one Calls request to Twilio
        sent = dict(urllib.parse.parse_qsl(create.calls[0].request.body))
        assert sent["To"] == PHONES[winner]
    loser_page = bob if loser == "bob" else alice
    # The loser's card follows the winner's call without a reload.
    expect(loser_page.locator(f"{CARD} .callstate")).to_contain_text(
        f"Ringing {winner}'s phone", timeout=WAIT
    )
    assert loser_page.locator(f"{CARD} button.call").is_disabled()
    assert still_same_page(alice) and still_same_page(bob)
    alice_context.close()
    bob_context.close()


def test_the_card_follows_the_call_live_to_its_outcome(hotline, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    app, base = hotline
    context, page = log_in_as(browser, base, "alice")
    assert "1 waiting" in page.inner_text(".top")
    not_reloaded(page)
    state = page.locator(f"{CARD} .callstate")
    with responses.RequestsMock() as twilio:
        create = twilio.post(CALLS, status=201, json={"sid": "CA" + "7" * 32, "status": "queued"})
        page.locator(f"{CARD} button.call").click()
        expect(state).to_contain_text("Waiting for the hotline to place the call", timeout=WAIT)
        jobs.run_pending(app)
        sent = dict(urllib.parse.parse_qsl(create.calls[0].request.body))
    expect(state).to_contain_text("Ringing your phone", timeout=WAIT)
    leg = Call(app.test_client(), TOKEN, from_number=HOTLINE, to_number=sent["To"], base=PUBLIC)
    leg.follow(sent["Url"])
    expect(state).to_contain_text("You answered: press 1", timeout=WAIT)
    leg.press("1")
    expect(state).to_contain_text("Calling the family", timeout=WAIT)
    number = leg.twiml.find("Dial/Number")
    leg.post(number.get("statusCallback"), CallStatus="in-progress")
    expect(state).to_contain_text("Connected to the family.", timeout=WAIT)
    leg.follow(leg.twiml.find("Dial").get("action"), DialCallStatus="completed")
    leg.post(sent["StatusCallback"], CallStatus="completed")  # hung up without a key
    expect(state).to_contain_text("How did it go?", timeout=WAIT)
    page.screenshot(path=tmp_path / "call-back-asking.png", full_page=True)
    page.locator(f"{CARD} button:has-text('Spoke with the family')").click()
    expect(state).to_contain_text("Reached the family", timeout=WAIT)
    expect(page.locator(".top .waiting")).to_contain_text("0 waiting", timeout=WAIT)
    expect(page).to_have_title(re.compile(r"^Callback requests"))  # the "(1) " went with it
    assert page.locator(f"{CARD} button.call").is_enabled()
    assert still_same_page(page)
    context.close()


def test_a_refused_call_shows_on_the_card_without_a_reload(hotline, browser):  # noqa: F811
    from playwright.sync_api import expect

    app, base = hotline
    context, page = log_in_as(browser, base, "alice")
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.reload()  # with the listener on from the start
    not_reloaded(page)
    with responses.RequestsMock() as twilio:
        twilio.post(
            CALLS,
            status=400,
            json={
                "code": 21215,
                "message": "Account not authorized to call +13125550199. Perhaps you need to "
                "enable some international permissions: "
                "https://www.twilio.com/console/voice/calls/geo-permissions/low-risk",
                "status": 400,
            },
        )
        page.locator(f"{CARD} button.call").click()
        expect(page.locator(f"{CARD} .callstate")).to_be_visible(timeout=WAIT)
        jobs.run_pending(app)
    state = page.locator(f"{CARD} .callstate")
    expect(state).to_contain_text(
        "Twilio refused the call: the number is not allowed", timeout=WAIT
    )
    assert "https://" not in state.inner_text() and "tone-error" in state.get_attribute("class")
    assert page.locator(f"{CARD} button.call").is_enabled()  # free to try again
    assert still_same_page(page)
    assert errors == []  # htmx runs under the CSP: no inline style or script refused
    context.close()
