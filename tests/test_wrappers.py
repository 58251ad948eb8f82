"""The quick form parse used for Twilio's webhooks agrees with the standard library's."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from ivr.wrappers import Fields, HotlineRequest, parse_form

ALPHABET = ["a", "Z", "0", "=", "&", "+", "%", "%2B", "%20", "%zz", "%e2%82%ac", "%E2", "%82",
            "%ff", "é", "ñ", " ", ";", "&&", "=="]


def werkzeug_form(body: str) -> list[tuple[str, list[str]]]:
    """What Werkzeug's own form parser makes of `body`."""
    data = body.encode()
    request = Request(EnvironBuilder(method="POST", data=data,
                                     content_type="application/x-www-form-urlencoded").get_environ())
    return list(request.form.lists())


def quick_form(body: str) -> list[tuple[str, list[str]]]:
    return list(Fields(parse_form(body)).lists())


def test_matches_werkzeug_on_random_bodies():
    rng = random.Random(20261128)
    for _ in range(3000):
        body = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 20)))
        assert quick_form(body) == werkzeug_form(body), body


def test_matches_parse_qsl_on_a_twilio_body():
    params = {"CallSid": "CA" + "1" * 32, "From": "+13125550123", "Caller": "+13125550123",
              "CallerCity": "CHICAGO", "SpeechResult": "Español, por favor.", "Digits": "",
              "Confidence": "0.93"}
    body = urlencode(params)
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)
    assert quick_form(body) == werkzeug_form(body)
    assert dict(parse_form(body)) == params


def sent_url(**environ: str) -> str | None:
    base = {"wsgi.url_scheme": "https", "HTTP_HOST": "hotline.example.org",
            "PATH_INFO": "/voice/es/menu/choice", "QUERY_STRING": "fails=0"}
    request = HotlineRequest(EnvironBuilder().get_environ() | base | environ)
    return request.sent_url()


def test_the_url_as_sent():
    assert sent_url() == "https://hotline.example.org/voice/es/menu/choice?fails=0"
    # Behind Heroku, ProxyFix makes the host name:443; Twilio signed it without the port.
    assert sent_url(HTTP_HOST="hotline.example.org:443") == sent_url()
    assert sent_url(**{"wsgi.url_scheme": "http", "HTTP_HOST": "h:80"}).startswith("http://h/")
    assert sent_url(HTTP_HOST="h:8443").startswith("https://h:8443/")
    assert sent_url(HTTP_HOST="[::1]:443").startswith("https://[::1]/voice")
    # WSGI carries raw bytes as latin-1: they are percent-encoded as they were on the wire.
    raw = "/voice/é".encode().decode("latin-1")
    assert sent_url(PATH_INFO=raw, QUERY_STRING="") == "https://hotline.example.org/voice/%C3%A9"
    # A Host that is not a plain host name is never used to build the URL.
    for host in ("evil/voice", "h?x", "h@i", "", "h h"):
        assert sent_url(HTTP_HOST=host) is None, host


def test_app_still_tells_async_functions_from_plain_ones(make_app):
    """HotlineFlask keeps Flask's answer per function: a plain view runs as is, an `async def`
    one is still wrapped (or refused, when Flask's async extra is not installed), every time."""
    app = make_app()

    def plain():
        return "plain"

    async def coroutine():
        return "async"

    for _ in range(2):  # the second time from the kept answer
        assert app.ensure_sync(plain) is plain
        try:
            assert app.ensure_sync(coroutine) is not coroutine
        except RuntimeError as error:  # Flask without asgiref: "Install Flask with the 'async'"
            assert "async" in str(error)
    assert app.test_client().post("/voice").status_code == 403  # hooks and views still run
