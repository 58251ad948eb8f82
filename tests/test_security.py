"""Webhooks answer only Twilio, also behind Heroku's TLS proxy, and never fail a caller."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr.emulator import Call, sign
from ivr.prompts import Prompts
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
        response = client.post("/voice", data={"CallSid": "CA1"},
                               headers={"X-Twilio-Signature": header})
        assert response.status_code == 403
        assert b"<Response" not in response.data


def test_tampered_parameters_are_forbidden(client):
    params = {"CallSid": "CA1", "Digits": "1"}
    signature = sign(TOKEN, "http://localhost/voice/language", params)
    response = client.post("/voice/language", data={**params, "Digits": "2"},
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_every_voice_route_checks_the_signature(app, client):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/voice")]
    assert len(rules) >= 15
    for rule in rules:
        path = rule.rule.replace("<any(en, es):lang>", "es").replace(
            "<any(en, es):caller>", "en").replace("<int:number>", "1").replace(
            "<int:request_id>", "1")
        response = client.post(path, data={"CallSid": "CA1"})
        assert response.status_code == 403, path


def test_signed_https_url_behind_a_proxy_is_accepted(client):
    """Heroku terminates TLS: Twilio signed https://…, the app sees http plus X-Forwarded-*."""
    call = Call(client, TOKEN, base="https://hotline.example.org")
    params = call.params(CallStatus="ringing")
    signature = sign(TOKEN, "https://hotline.example.org/voice", params)
    headers = {
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "hotline.example.org",
    }
    response = client.post("/voice", data=params, headers=headers,
                           base_url="http://10.1.2.3:31000")
    assert response.status_code == 200
    # Without the forwarded scheme the same signature does not match the URL the app sees.
    del headers["X-Forwarded-Proto"]
    response = client.post("/voice", data=params, headers=headers,
                           base_url="http://10.1.2.3:31000")
    assert response.status_code == 403


def test_behind_herokus_router_one_hmac_checks_a_request(client, monkeypatch):
    """Heroku's router sends X-Forwarded-Proto and X-Forwarded-Port: 443, and ProxyFix makes the
    host name:443; Twilio signed https://name/voice. The quick check must still match, so a
    request costs one HMAC, not the three of a failed quick check plus validate()."""
    computed = []
    original = RequestValidator.compute_signature

    def counting(self, uri, params, algorithm=None):
        computed.append(uri)
        return original(self, uri, params, algorithm)

    monkeypatch.setattr(RequestValidator, "compute_signature", counting)
    params = {"CallSid": "CA1", "From": "+13125550123"}
    headers = {"X-Twilio-Signature": sign(TOKEN, "https://hotline.example.org/voice", params),
               "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
               "X-Forwarded-For": "54.172.60.1"}
    computed.clear()
    response = client.post("/voice", data=params, headers=headers,
                           base_url="http://hotline.example.org")
    assert response.status_code == 200
    [signed] = computed  # one HMAC, over the URL as Twilio signed it, then the fields
    assert signed == "https://hotline.example.org/voiceCallSidCA1From+13125550123"


def test_signature_over_the_url_with_its_port_is_accepted(client):
    """Twilio may sign https://host:443/… for https://host/…: the quick check fails, the full one
    (with and without the port) accepts it."""
    params = {"CallSid": "CA1", "From": "+13125550123"}
    signature = sign(TOKEN, "https://hotline.example.org:443/voice", params)
    headers = {"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "hotline.example.org"}
    response = client.post("/voice", data=params, headers=headers)
    assert response.status_code == 200
    assert "<Gather" in response.get_data(as_text=True)


def test_repeated_and_blank_fields_are_signed_like_twilio(client):
    """The quick form parse keeps every value of a repeated field and blank values, as Twilio
    signs them: dropping either would turn a real request into a 403."""
    body = "CallSid=CA1&From=%2B13125550123&Digits=&StirVerstat=a&StirVerstat=b"
    signed = {"CallSid": ["CA1"], "From": ["+13125550123"], "Digits": [""],
              "StirVerstat": ["a", "b"]}
    signature = sign(TOKEN, "http://localhost/voice", MultiDict(
        [(k, v) for k, vs in signed.items() for v in vs]))
    response = client.post("/voice", data=body, headers={"X-Twilio-Signature": signature},
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    # Drop one of the repeated values: the signature no longer matches.
    response = client.post("/voice", data=body.rsplit("&", 1)[0],
                           headers={"X-Twilio-Signature": signature},
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 403


def test_garbled_or_unusual_bodies_get_a_clear_answer(client):
    """Bytes that are not UTF-8 fail the signature (403), never a 500; a body too big for the
    quick parse still goes through Werkzeug's parser and the same check."""
    response = client.post("/voice", data=b"CallSid=CA1&From=\xff\xfe",
                           headers={"X-Twilio-Signature": "x"},
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 403
    params = {"CallSid": "CA1", "From": "+13125550123", "Note": "x" * 70_000}
    response = client.post("/voice", data=params,
                           headers={"X-Twilio-Signature": sign(TOKEN, "http://localhost/voice",
                                                               params)})
    assert response.status_code == 200
    response = client.post("/voice", data=params, headers={"X-Twilio-Signature": sign(
        TOKEN, "http://localhost/voice", {**params, "Note": "y"})})
    assert response.status_code == 403


SHARED = "shared-key-secret-0123456789abcdef"
SETTINGS = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"


def shared_post(client, secret: str, settings: str | None, algorithm: str = "HMAC_SHA256"):
    params = {"CallSid": "CA1", "From": "+13125550123"}
    signature = RequestValidator(secret).compute_signature("http://localhost/voice", params,
                                                           algorithm)
    headers = {"X-Twilio-Signature": signature}
    if settings is not None:
        headers["X-Twilio-Webhooks-Signature-Settings"] = settings
    return client.post("/voice", data=params, headers=headers)


def test_a_sharedkey_signature_is_accepted_when_its_secret_is_set(make_app):
    client = make_app(TWILIO_WEBHOOK_SHARED_KEYS=f"old-secret, {SHARED}").test_client()
    response = shared_post(client, SHARED, SETTINGS)  # the second secret: mid-rotation
    assert response.status_code == 200
    assert "<Gather" in response.get_data(as_text=True)
    assert shared_post(client, SHARED, "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA1",
                       algorithm="HMAC_SHA1").status_code == 200
    # The header names the key and hash: the Auth Token, or another hash, no longer passes.
    assert shared_post(client, TOKEN, SETTINGS).status_code == 403
    assert shared_post(client, SHARED, "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA1"
                       ).status_code == 403
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
    response = client.post("/voice/fr/menu", data=params,
                           headers={"X-Twilio-Signature": sign(TOKEN, url, params)})
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
