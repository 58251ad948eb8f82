"""The staff pages in real headless Chromium: log in, play a recording, mark it handled."""

from __future__ import annotations

import datetime as dt
import io
import math
import struct
import wave
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.requests.models import CallbackRequest
from tests.conftest import serving

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
PASSWORD = "a browser password"


def tone_wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    """A short 440 Hz tone: a real, playable recording."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


@pytest.fixture
def server(app):
    with app.app_context():
        db.session.add(StaffUser(username="ana", password_hash=generate_password_hash(PASSWORD)))
        db.session.add(
            CallbackRequest(
                call_sid="CA1",
                reference="700001",
                language="es",
                caller_number="+13125550123",
                callback_number="+13125550123",
                recording_duration=1,
                audio=tone_wav(),
                audio_type="audio/wav",
            )
        )
        db.session.add(
            CallbackRequest(
                call_sid="CA2",
                reference="700002",
                language="en",
                caller_number="+13125550124",
                recording_duration=1,
                created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )
        db.session.commit()
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


def log_in(page, base: str) -> None:
    page.goto(base + "/staff/")
    assert "/staff/login" in page.url  # anonymous: sent to the login page
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/staff/")


def references(page) -> list[str]:
    return page.eval_on_selector_all("article.request", "els => els.map(e => e.dataset.reference)")


def test_log_in_play_and_mark_handled(server, browser, tmp_path):
    context = browser.new_context()
    page = context.new_page()
    audio_responses = []
    page.on("response", lambda r: "/audio" in r.url and audio_responses.append(r))
    log_in(page, server)
    assert references(page) == ["700002", "700001"]  # waiting: the oldest first

    card = page.locator("article[data-reference='700001']")
    card.locator("audio").evaluate("(audio) => audio.play()")
    # Playing means the clock moves: wait for that (up to 10 s), not a fixed time.
    page.wait_for_function(
        "() => document.querySelector(\"article[data-reference='700001'] audio\").currentTime > 0",
        timeout=10000,
    )
    played = card.locator("audio").evaluate(
        "(audio) => ({time: audio.currentTime, ready: audio.readyState, src: audio.currentSrc})"
    )
    assert played["time"] > 0 and played["ready"] >= 2, played
    assert played["src"].startswith(server + "/staff/requests/")
    assert audio_responses and all(r.status in (200, 206) for r in audio_responses)
    assert audio_responses[0].headers["content-type"] == "audio/wav"

    card.locator("select[name=status]").select_option("handled")
    card.locator("textarea[name=note]").fill("Spoke with her sister; hearing on Friday")
    card.locator("button:has-text('Save')").click()
    page.wait_for_load_state()
    assert "Request 700001: note added, status handled." in page.locator(".flash").inner_text()
    assert references(page) == ["700002", "700001"]  # the handled one is below the waiting
    handled = page.locator("article[data-reference='700001']")
    assert "Handled" in handled.locator(".badge").inner_text()
    assert "ana" in handled.inner_text()
    assert "Spoke with her sister; hearing on Friday" in handled.locator(".history").inner_text()
    assert handled.locator("textarea").input_value() == ""  # the next note starts empty

    # The same page on a phone: nothing wider than the screen.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=context.storage_state(),
    )
    mobile = phone.new_page()
    mobile.goto(server + "/staff/")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
    mobile.screenshot(path=tmp_path / "staff-phone.png", full_page=True)  # to look at after a run
    phone.close()

    page.click("button:has-text('Log out')")
    page.wait_for_url("**/staff/login")
    page.goto(server + "/staff/")
    assert "/staff/login" in page.url and "700001" not in page.content()
    context.close()


# Issue 12: call-backs through the hotline and a history that keeps everyone's words -------------
HOTLINE = "+13125550177"
PUBLIC = "https://hotline.example.org"


@pytest.fixture
def loop_server(make_app):
    """A hotline with call-backs on, two staff (alice has a phone) and one Spanish request."""
    app = make_app(CALLBACK_FROM_NUMBER=HOTLINE, PUBLIC_URL=PUBLIC)
    with app.app_context():
        for name, phone in (("alice", "+13125550199"), ("bob", None)):
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


def log_in_as(browser, base: str, name: str, **context_options):
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.goto(base + "/staff/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/staff/")
    return context, page


def test_two_staff_saving_the_same_request_keep_both(loop_server, browser):
    app, base = loop_server
    alice_context, alice = log_in_as(browser, base, "alice")
    bob_context, bob = log_in_as(
        browser, base, "bob", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    assert bob.evaluate("document.documentElement.scrollWidth") <= 390
    assert alice.title().startswith("(1) ") and "1 waiting" in alice.inner_text(".top")
    bob_card = bob.locator("article[data-reference='995738']")
    bob_card.locator("textarea[name=note]").fill("Reached Sra. López; hearing Fri 9am")
    bob_card.locator("select[name=status]").select_option("handled")
    bob_card.locator("button:has-text('Save')").click()
    bob.wait_for_load_state()
    assert bob.url.endswith("#r1")  # back at the card, not the top of the list
    # alice's page is stale: it still shows New; she writes her note and saves.
    card = alice.locator("article[data-reference='995738']")
    assert "New" in card.locator(".badge").inner_text()
    card.locator("textarea[name=note]").fill("Called, no answer.")
    card.locator("button:has-text('Save')").click()
    alice.wait_for_load_state()
    flashes = alice.locator(".flash").all_inner_texts()
    assert any("changed while you had it open" in f and "bob" in f for f in flashes), flashes
    card = alice.locator("article[data-reference='995738']")
    assert "Handled" in card.locator(".badge").inner_text()  # bob's status was not undone
    notes = card.locator(".history .note").all_inner_texts()
    assert [n.split(": ", 1)[1] for n in notes] == [
        "Reached Sra. López; hearing Fri 9am",
        "Called, no answer.",
    ]
    alice_context.close()
    bob_context.close()


def test_call_back_end_to_end(loop_server, browser, tmp_path):
    import urllib.parse

    import responses

    from ivr.background import jobs
    from ivr.devtools.emulator import Call
    from tests.conftest import TOKEN

    app, base = loop_server
    context, page = log_in_as(
        browser,
        base,
        "alice",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    card = page.locator("article[data-reference='995738']")
    assert "ES · Spanish" in card.locator(".chip").inner_text()
    with responses.RequestsMock() as twilio:
        create = twilio.post(
            f"https://api.twilio.com/2010-04-01/Accounts/{'AC' + '0' * 32}/Calls.json",
            status=201,
            json={"sid": "CA" + "7" * 32, "status": "queued"},
        )
        card.locator("button:has-text('Call back')").click()
        page.wait_for_load_state()
        # Issue 21: the answer shows in the card's call-back region (htmx), not at the page top.
        assert "your phone will ring" in card.locator(".callnote").inner_text().lower()
        assert create.call_count == 0  # queued, not placed by the page
        assert page.locator("article[data-reference='995738'] button.call").is_disabled()
        jobs.run_pending(app)
        assert create.call_count == 1
        sent = dict(urllib.parse.parse_qsl(create.calls[0].request.body))
    assert sent["To"] == "+13125550199" and sent["From"] == HOTLINE
    leg = Call(app.test_client(), TOKEN, from_number=HOTLINE, to_number=sent["To"], base=PUBLIC)
    leg.follow(sent["Url"])
    assert "in Spanish. Press 1 to connect." in leg.heard()
    leg.press("1")
    dial = leg.twiml.find("Dial")
    assert dial.get("callerId") == HOTLINE and dial.find("Number").text == "+525512345678"
    leg.follow(dial.get("action"), DialCallStatus="completed", DialCallDuration="125")
    leg.press("1")  # issue 21: the staff member says they spoke with the family
    leg.post(sent["StatusCallback"], CallStatus="completed")
    page.reload()
    card = page.locator("article[data-reference='995738']")
    assert "Reached" in card.locator(".badge").inner_text()
    assert "call-back: reached, 2:05" in card.locator(".history").inner_text()
    assert "alice" in card.locator(".owner").inner_text()  # calling took it
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=tmp_path / "call-back-phone.png", full_page=True)
    context.close()


def test_missed_call_appears_after_an_unanswered_call_now(loop_server, browser, monkeypatch):
    from ivr.devtools.emulator import Call
    from ivr.requests import missed
    from tests.conftest import TOKEN

    monkeypatch.setattr(missed, "SETTLE", dt.timedelta(0))
    app, base = loop_server
    caller = Call(app.test_client(), TOKEN, from_number="+13125550111")
    caller.answer()
    caller.press("2")  # español
    dial = caller.press("0").find("Dial")  # Call Now; nobody at the firm accepts
    caller.follow(dial.get("action"), DialCallStatus="no-answer")
    context, page = log_in_as(
        browser,
        base,
        "alice",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    page.click("a:has-text('Missed calls')")
    page.wait_for_url(base + "/staff/missed")
    card = page.locator(f"article[data-call='{caller.sid}']")
    assert "Asked for the firm; nobody answered." in card.inner_text()
    assert "(312) 555-0111" in card.inner_text() and "ES · Spanish" in card.inner_text()
    assert card.locator("button:has-text('Call back')").is_enabled()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
