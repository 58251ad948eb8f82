"""The staff pages in real headless Chromium: log in, play a recording, mark it handled."""

from __future__ import annotations

import datetime as dt
import io
import math
import struct
import threading
import wave
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from ivr.db import db
from ivr.models import CallbackRequest
from ivr.staff.models import StaffUser

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
PASSWORD = "a browser password"


def tone_wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    """A short 440 Hz tone: a real, playable recording."""
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
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
        db.session.add(CallbackRequest(call_sid="CA1", reference="700001", language="es",
                                       caller_number="+13125550123",
                                       callback_number="+13125550123", recording_duration=1,
                                       audio=tone_wav(), audio_type="audio/wav"))
        db.session.add(CallbackRequest(call_sid="CA2", reference="700002", language="en",
                                       caller_number="+13125550124", recording_duration=1,
                                       created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
        db.session.commit()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"],
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
    assert references(page) == ["700001", "700002"]

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
    assert "Request 700001: handled." in page.locator(".flash").inner_text()
    assert references(page) == ["700002", "700001"]  # the handled one moved below
    handled = page.locator("article[data-reference='700001']")
    assert "Handled" in handled.locator(".badge").inner_text()
    assert "ana" in handled.inner_text()
    assert handled.locator("textarea").input_value() == "Spoke with her sister; hearing on Friday"

    # The same page on a phone: nothing wider than the screen.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                is_mobile=True, has_touch=True,
                                storage_state=context.storage_state())
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
