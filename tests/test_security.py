"""Webhooks answer only Twilio, also behind Heroku's TLS proxy, and never fail a caller."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr.calls.prompts import Prompts
from ivr.devtools.emulator import Call, sign
from ivr.settings import SettingsError, settings
from ivr.voice import topics

from .conftest import FIRM, PROJECT_ROOT, TOKEN

REAL = Prompts(PROJECT_ROOT / "prompts")


def test_unsigned_request_is_forbidden(client):
    response = client.post("/voice", data={"CallSid": "CA1", "From": "+13125550123"})
    assert response.status_code == 403
    assert b"<Response" not in response.data


def test_forged_signature_is_forbidden(client):
    params = {"CallSid": "CA1", "From": "+13125550123"}
    forged = sign("not-the-token", "http://localhost/voice", params)
    response = client.post("/voice", data=params, headers={"X-Twilio-Signature": forged})
    assert response.status_code == 403


def test_a_signature_header_of_any_characters_is_forbidden_not_an_error(client):
    for header in ("é" * 28, "\u00ff", " ", "x" * 10_000):
        response = client.post(
            "/voice", data={"CallSid": "CA1"}, headers={"X-Twilio-Signature": header}
        )
        assert response.status_code == 403
        assert b"<Response" not in response.data


def test_tampered_parameters_are_forbidden(client):
    params = {"CallSid": "CA1", "Digits": "1"}
    signature = sign(TOKEN, "http://localhost/voice/language", params)
    response = client.post(
        "/voice/language", data={**params, "Digits": "2"}, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


def test_every_voice_route_checks_the_signature(app, client):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/voice")]
    assert len(rules) >= 15
    for rule in rules:
        path = (
            rule.rule.replace("<any(en, es):lang>", "es")
            .replace("<any(en, es):caller>", "en")
            .replace("<int:number>", "1")
            .replace("<int:attempt>", "1")
            .replace("<int:request_id>", "1")
        )
        response = client.post(path, data={"CallSid": "CA1"})
        assert response.status_code == 403, path


HEROKU = {"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443", "X-Forwarded-For": "54.172.60.1"}


def test_signed_https_url_behind_herokus_router_is_accepted(make_app):
    """Heroku terminates TLS: Twilio signed https://name/voice, the app sees http plus the
    router's X-Forwarded-Proto and X-Forwarded-Port, trusted with FORWARDED_PROXIES=1."""
    client = make_app(FORWARDED_PROXIES="1").test_client()
    params = {"CallSid": "CA1", "From": "+13125550123"}
    headers = {
        "X-Twilio-Signature": sign(TOKEN, "https://hotline.example.org/voice", params),
        **HEROKU,
    }
    response = client.post(
        "/voice", data=params, headers=headers, base_url="http://hotline.example.org"
    )
    assert response.status_code == 200
    assert "<Gather" in response.get_data(as_text=True)
    # Without the forwarded scheme the same signature does not match the URL the app sees.
    del headers["X-Forwarded-Proto"]
    response = client.post(
        "/voice", data=params, headers=headers, base_url="http://hotline.example.org"
    )
    assert response.status_code == 403


def test_without_a_proxy_forwarded_headers_change_nothing(client):
    """FORWARDED_PROXIES=0 (the default): a client's X-Forwarded-* does not make the app believe
    it was reached over https or at another host."""
    params = {"CallSid": "CA1", "From": "+13125550123"}
    for url, headers in (
        ("https://localhost/voice", {"X-Forwarded-Proto": "https"}),
        (
            "https://hotline.example.org/voice",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hotline.example.org"},
        ),
        ("http://localhost:8443/voice", {"X-Forwarded-Port": "8443"}),
    ):
        headers["X-Twilio-Signature"] = sign(TOKEN, url, params)
        assert client.post("/voice", data=params, headers=headers).status_code == 403, url
    signature = sign(TOKEN, "http://localhost/voice", params)
    response = client.post(
        "/voice",
        data=params,
        headers={
            "X-Twilio-Signature": signature,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "elsewhere.example",
            "X-Forwarded-For": "192.0.2.99",
        },
    )
    assert response.status_code == 200


def test_forwarded_proxies_is_checked_at_start_up(make_app):
    for bad in ("-1", "one", "9"):
        with pytest.raises(SettingsError, match="FORWARDED_PROXIES"):
            make_app(FORWARDED_PROXIES=bad)


def test_signature_over_the_url_with_its_port_is_accepted(make_app):
    """Twilio may sign https://host:443/… for https://host/…: `validate` tries both."""
    client = make_app(FORWARDED_PROXIES="1").test_client()
    params = {"CallSid": "CA1", "From": "+13125550123"}
    signature = sign(TOKEN, "https://hotline.example.org:443/voice", params)
    response = client.post(
        "/voice",
        data=params,
        headers={"X-Twilio-Signature": signature, **HEROKU},
        base_url="http://hotline.example.org",
    )
    assert response.status_code == 200
    assert "<Gather" in response.get_data(as_text=True)


PUBLIC = "https://hotline.example.org"
STAGING = "https://hotline-staging.example.org"


def test_public_url_pins_the_host_signatures_are_checked_against(make_app):
    """A signature Twilio made for a staging copy of the app is refused by production, whatever
    Host or X-Forwarded-Host the request carries; the public URL's own passes from any Host."""
    client = make_app(PUBLIC_URL=PUBLIC, FORWARDED_PROXIES="1").test_client()
    params = {"CallSid": "CA1", "From": "+13125550123", "Digits": "1"}
    path = "/voice/language?fails=0"
    staging = {"X-Twilio-Signature": sign(TOKEN, STAGING + path, params), **HEROKU}
    for base, extra in (
        ("http://hotline-staging.example.org", {}),
        ("http://10.1.2.3:31000", {"X-Forwarded-Host": "hotline-staging.example.org"}),
    ):
        response = client.post(path, data=params, headers={**staging, **extra}, base_url=base)
        assert response.status_code == 403, base
    public = {"X-Twilio-Signature": sign(TOKEN, PUBLIC + path, params)}
    for base in (
        "http://hotline.example.org",
        "http://10.1.2.3:31000",
        "http://hotline-staging.example.org",
    ):
        response = client.post(path, data=params, headers=public, base_url=base)
        assert response.status_code == 200, base
        assert "<Gather" in response.get_data(as_text=True)


def test_public_url_is_checked_at_start_up(make_app):
    for bad in ("hotline.example.org", "ftp://x", "https://x/?a=1", "https://user@x"):
        with pytest.raises(SettingsError, match="PUBLIC_URL"):
            make_app(PUBLIC_URL=bad)
    app = make_app(PUBLIC_URL=PUBLIC + "/")
    assert settings(app).public_url == PUBLIC


def test_repeated_and_blank_fields_are_signed_like_twilio(client):
    """Every value of a repeated field and blank values count, as Twilio signs them: dropping
    either would turn a real request into a 403."""
    body = "CallSid=CA1&From=%2B13125550123&Digits=&StirVerstat=a&StirVerstat=b"
    signed = {
        "CallSid": ["CA1"],
        "From": ["+13125550123"],
        "Digits": [""],
        "StirVerstat": ["a", "b"],
    }
    signature = sign(
        TOKEN, "http://localhost/voice", MultiDict([(k, v) for k, vs in signed.items() for v in vs])
    )
    response = client.post(
        "/voice",
        data=body,
        headers={"X-Twilio-Signature": signature},
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    # Drop one of the repeated values: the signature no longer matches.
    response = client.post(
        "/voice",
        data=body.rsplit("&", 1)[0],
        headers={"X-Twilio-Signature": signature},
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 403


def test_garbled_or_unusual_bodies_get_a_clear_answer(client):
    """Bytes that are not UTF-8 fail the signature (403), never a 500; a body over
    MAX_CONTENT_LENGTH is refused with 413 (tests/test_body_limit.py: before it is read), signed
    or not."""
    response = client.post(
        "/voice",
        data=b"CallSid=CA1&From=\xff\xfe",
        headers={"X-Twilio-Signature": "x"},
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 403
    params = {"CallSid": "CA1", "From": "+13125550123", "Note": "x" * 70_000}
    response = client.post(
        "/voice",
        data=params,
        headers={"X-Twilio-Signature": sign(TOKEN, "http://localhost/voice", params)},
    )
    assert response.status_code == 413
    assert b"<Response" not in response.data


def test_webhooks_answer_only_post(client):
    """Twilio POSTs every webhook (its default, and all our TwiML's). A GET is signed over the URL
    only, so a view reading form fields would read unsigned ones: no webhook takes a GET."""
    params = {"CallSid": "CA1"}
    for path in (
        "/voice/es/menu",
        "/voice/es/topics/1",
        "/voice/es/help",
        "/voice/es/connect",
        "/voice/es/callback",
        "/voice/es/callback/number",
        "/voice/es/callback/a-number",
        "/voice/es/callback/confirmation",
    ):
        url = "http://localhost" + path
        response = client.get(path, headers={"X-Twilio-Signature": sign(TOKEN, url, {})})
        assert response.status_code == 405, path
        # The attack a GET allowed: a URL-only signature with a body the signature does not cover.
        response = client.open(
            path, method="GET", data=params, headers={"X-Twilio-Signature": sign(TOKEN, url, {})}
        )
        assert response.status_code == 405, path
        assert (
            client.post(
                path, data=params, headers={"X-Twilio-Signature": sign(TOKEN, url, params)}
            ).status_code
            == 200
        ), path


SHARED = "shared-key-secret-0123456789abcdef"
SETTINGS = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"


def shared_post(client, secret: str, settings: str | None, algorithm: str = "HMAC_SHA256"):
    params = {"CallSid": "CA1", "From": "+13125550123"}
    signature = RequestValidator(secret).compute_signature(
        "http://localhost/voice", params, algorithm
    )
    headers = {"X-Twilio-Signature": signature}
    if settings is not None:
        headers["X-Twilio-Webhooks-Signature-Settings"] = settings
    return client.post("/voice", data=params, headers=headers)


def test_a_sharedkey_signature_is_accepted_when_its_secret_is_set(make_app):
    client = make_app(TWILIO_WEBHOOK_SHARED_KEYS=f"old-secret, {SHARED}").test_client()
    response = shared_post(client, SHARED, SETTINGS)  # the second secret: mid-rotation
    assert response.status_code == 200
    assert "<Gather" in response.get_data(as_text=True)
    assert (
        shared_post(
            client, SHARED, "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA1", algorithm="HMAC_SHA1"
        ).status_code
        == 200
    )
    # The header names the key and hash: the Auth Token, or another hash, no longer passes.
    assert shared_post(client, TOKEN, SETTINGS).status_code == 403
    assert (
        shared_post(client, SHARED, "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA1").status_code
        == 403
    )
    assert shared_post(client, SHARED, "key=x,algorithm=HMAC_MD5").status_code == 403
    assert shared_post(client, "another-secret", SETTINGS).status_code == 403
    # Without the header, the Auth Token as always; a SharedKey signature is then forged.
    assert shared_post(client, TOKEN, None, algorithm="HMAC_SHA1").status_code == 200
    assert shared_post(client, SHARED, None).status_code == 403


def test_a_sharedkey_signature_without_its_secret_is_refused_and_logged(client, caplog):
    assert shared_post(client, SHARED, SETTINGS).status_code == 403
    assert "TWILIO_WEBHOOK_SHARED_KEYS is not set" in caplog.text
    assert shared_post(client, SHARED, SETTINGS).status_code == 403
    assert caplog.text.count("TWILIO_WEBHOOK_SHARED_KEYS is not set") == 1  # not a flood


def test_a_sharedkey_algorithm_twilio_python_does_not_know_is_refused_quietly(make_app, caplog):
    client = make_app(TWILIO_WEBHOOK_SHARED_KEYS=SHARED).test_client()
    for _ in range(3):
        assert shared_post(client, SHARED, "key=x,algorithm=HMAC_MD5").status_code == 403
    assert caplog.text.count("HMAC_MD5") == 1


def test_unexpected_error_still_answers_with_twiml(call, monkeypatch):
    call.answer()
    call.press("2")

    def broken(lang):
        raise OperationalError("SELECT 1", {}, Exception("database is gone"))

    monkeypatch.setattr(topics, "menu_lines", broken)
    twiml = call.press("*")  # the menu again: its lines now fail
    assert call.heard() == REAL.text("es", "error")
    assert twiml.find("Dial/Number").text == FIRM
    assert twiml.find("Dial/Number").get("url") == "/voice/whisper/es"
    assert twiml.find("Dial").get("callerId") == call.from_number
    # Nobody answering after an error ends in a callback offer, not another round of the menus.
    assert twiml.find("Dial").get("action") == "/voice/es/connect/done?final=1"


def test_missing_prompt_still_connects_the_caller(call, prompts_dir):
    call.answer()
    (prompts_dir / "en" / "menu_intro.txt").unlink()
    (prompts_dir / "en" / "error.txt").unlink()
    twiml = call.press("1")
    assert twiml.find("Dial/Number").text == FIRM


def test_unknown_language_in_url_is_not_found(client):
    params = {"CallSid": "CA1"}
    url = "http://localhost/voice/fr/menu"
    response = client.post(
        "/voice/fr/menu", data=params, headers={"X-Twilio-Signature": sign(TOKEN, url, params)}
    )
    assert response.status_code == 404


def test_webhooks_set_no_cookie_and_a_stale_one_changes_nothing(client, call):
    # (Flask-Login's hook looks at the session on every response, so webhooks answer
    # `Vary: Cookie`: true, and harmless, since Twilio caches no webhook answer.)
    client.set_cookie("session", "forged-or-stale", domain="localhost")
    response = call.post("/voice", CallStatus="ringing")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def closed_clock():
    import datetime as dt

    return dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC)  # a Sunday


def test_error_after_hours_offers_a_callback_instead_of_ringing(make_app, monkeypatch):
    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CLOCK=closed_clock)
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press("1")

    def broken(lang):
        raise RuntimeError("broken topic files")

    monkeypatch.setattr(topics, "menu_lines", broken)
    twiml = call.press("*")
    assert call.heard().startswith(REAL.text("en", "error"))
    assert REAL.text("en", "office_closed") in call.heard()
    assert twiml.find("Dial") is None
    assert call.silence().find("Record") is not None  # the callback request, final round


def test_error_on_the_firms_leg_hangs_up_that_leg(client, prompts_dir):
    (prompts_dir / "en" / "whisper_caller_es.txt").unlink()
    staff = Call(client, TOKEN, to_number=FIRM)
    twiml = staff.follow("/voice/whisper/es", Direction="outbound-api")
    assert [child.tag for child in twiml] == ["Hangup"]


def test_huge_digits_are_an_invalid_key_not_an_error(call):
    call.answer()
    call.press("1")
    call.follow(call.gather().get("action"), Digits="7" * 5000)
    assert call.heard().startswith(REAL.text("en", "invalid"))


def test_without_a_proxy_a_spoofed_address_buys_no_more_login_attempts(client, auth):
    """FORWARDED_PROXIES=0: each try claims another X-Forwarded-For, the limit still holds."""
    for n in range(5):
        response = auth.login(
            "ana", "wrong password", headers={"X-Forwarded-For": f"192.0.2.{n + 1}"}
        )
        assert response.status_code == 401
    response = auth.login(headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 429
