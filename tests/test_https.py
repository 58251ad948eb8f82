"""Outside debug and tests the app speaks https only: http is redirected, https gets HSTS."""

from __future__ import annotations

import pytest

from ivr.devtools.emulator import Call
from tests.conftest import TOKEN


@pytest.fixture
def production(make_app):
    """The app as gunicorn serves it: neither testing nor debug."""
    app = make_app(TESTING=False, PUBLIC_URL="https://hotline.example.org")
    assert not app.debug and not app.testing
    return app


def test_plain_http_pages_are_redirected_to_https(production):
    client = production.test_client()
    response = client.get("/staff/login?next=/staff/")
    assert response.status_code == 301
    # To PUBLIC_URL's host, not the request's (issue 22: Host is anyone's to send).
    assert response.headers["Location"] == "https://hotline.example.org/staff/login?next=/staff/"
    assert "Strict-Transport-Security" not in response.headers  # ignored on http anyway
    assert b"password" not in response.data.lower()  # the form is never served in clear


def test_https_answers_carry_hsts(production):
    client = production.test_client()
    response = client.get("/staff/login", base_url="https://localhost")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_an_http_webhook_is_redirected_the_way_twilio_follows_it(production):
    """Twilio follows 301, 302, 303 and 307 (not 308); a 307 repeats the signed POST."""
    client = production.test_client()
    call = Call(client, TOKEN, base="http://hotline.example.org")
    response = call.post("/voice", CallStatus="ringing")
    assert response.status_code == 307
    location = response.headers["Location"]
    assert location == "https://hotline.example.org/voice"
    call.post(location, CallStatus="ringing")  # Twilio signs the URL it now requests
    assert call.twiml.find("Gather") is not None
    assert call.twiml.find("Gather").get("action").startswith("/voice/language")


def test_https_webhooks_are_answered(production):
    call = Call(production.test_client(), TOKEN, base="https://hotline.example.org")
    call.answer()
    twiml = call.press("2")
    assert twiml.find("Gather").get("action").startswith("/voice/es/menu/choice")


def test_debug_and_tests_speak_plain_http(make_app):
    for config in ({"TESTING": False, "DEBUG": True}, {}):
        client = make_app(**config).test_client()
        response = client.get("/staff/login")
        assert response.status_code == 200, config
        assert "Strict-Transport-Security" not in response.headers


def test_the_call_simulator_works_where_the_app_is_https_only(production):
    """`ivr call` (e.g. `heroku run ivr call --yes`) talks to the app in-process: no network."""
    from tests.test_simulator import call

    output = call(production, "--lang", "en", keys=["1", "hangup"])
    assert "the app answered" not in output
    assert output.rstrip().endswith("call ended: you hung up")


def test_the_redirect_never_follows_the_host_header(production, make_app):
    client = production.test_client()
    response = client.get("/staff/login", headers={"Host": "evil.example"})
    assert response.status_code == 301
    assert response.headers["Location"] == "https://hotline.example.org/staff/login"
    # Without PUBLIC_URL there is nowhere safe to send it: a clear refusal instead.
    unset = make_app(TESTING=False, PUBLIC_URL="")
    response = unset.test_client().get("/staff/login", headers={"Host": "evil.example"})
    assert response.status_code == 400 and "Location" not in response.headers
