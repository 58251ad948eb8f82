"""`ivr twilio`: the fallback TwiML read back as XML, and Twilio's REST API faked at its HTTP edge
(`responses`), checking the exact requests `setup` sends and what `check` reports."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import requests
import responses
from responses import matchers

from ivr import create_app
from ivr.commands import main
from tests.conftest import FIRM, base_config
from tests.test_site import close

SID = "AC" + "0" * 32
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}"
NUMBERS = f"{API}/IncomingPhoneNumbers.json"
NUMBER = "+13125550142"
PN = "PN" + "a" * 32
PUBLIC = "https://hotline.example.org"
VOICE = f"{PUBLIC}/voice"
BIN = "https://handler.twilio.com/twiml/EH" + "b" * 32


@pytest.fixture
def make_twilio_app(tmp_path, prompts_dir):
    """An app for commands that talk to Twilio, not to the database: SQLite only."""
    apps = []

    def make(**overrides):
        app = create_app(base_config(tmp_path, **{"PUBLIC_URL": PUBLIC, **overrides}))
        apps.append(app)
        return app

    yield make
    for app in apps:
        close(app)


@pytest.fixture
def run(make_twilio_app):
    def invoke(*args, **overrides):
        return make_twilio_app(**overrides).test_cli_runner().invoke(main, ["twilio", *args])

    return invoke


def number_json(**fields) -> dict:
    """An IncomingPhoneNumber as Twilio returns it, set up correctly unless `fields` say not."""
    return {
        "sid": PN,
        "account_sid": SID,
        "phone_number": NUMBER,
        "friendly_name": "hotline",
        "voice_url": VOICE,
        "voice_method": "POST",
        "voice_fallback_url": BIN,
        "voice_fallback_method": "GET",
        "voice_application_sid": None,
        "trunk_sid": None,
        "voice_receive_mode": "voice",
        "status_callback": "",
        "sms_url": "",
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        **fields,
    }


def listed(*numbers: dict, **query: str) -> responses.BaseResponse:
    match = [matchers.query_param_matcher(query)] if query else []
    return responses.get(
        NUMBERS, match=match, json={"incoming_phone_numbers": list(numbers), "next_page_uri": None}
    )


def account(**fields) -> responses.BaseResponse:
    return responses.get(
        f"{API}.json", json={"sid": SID, "status": "active", "type": "Full", **fields}
    )


def form(call) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(call.request.body, keep_blank_values=True)


# fallback -----------------------------------------------------------------------------------------
def test_fallback_apologises_in_both_languages_and_rings_the_firm(run, prompts_dir):
    result = run("fallback")
    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.output.strip().encode())
    assert [child.tag for child in root] == ["Say", "Say", "Dial", "Say", "Say", "Hangup"]
    says = [(s.get("language"), s.get("voice"), s.text) for s in root.iter("Say")]
    text = {
        (lang, name): (prompts_dir / lang / f"{name}.txt").read_text().strip()
        for lang in ("en", "es")
        for name in ("app_down", "app_down_goodbye")
    }
    assert says == [  # DEFAULT_LANGUAGE (es) first
        ("es-US", "Polly.Lupe-Neural", text["es", "app_down"]),
        ("en-US", "Polly.Joanna-Neural", text["en", "app_down"]),
        ("es-US", "Polly.Lupe-Neural", text["es", "app_down_goodbye"]),
        ("en-US", "Polly.Joanna-Neural", text["en", "app_down_goodbye"]),
    ]
    dial = root.find("Dial")
    assert dial.text == FIRM and dial.get("timeout") == "20"
    # Nothing may point back at the app, which is down when this document is used.
    assert dial.get("action") is None and not any(
        "http" in value for element in root.iter() for value in element.attrib.values()
    )


def test_fallback_follows_the_prompt_files_and_voices(run, prompts_dir, tmp_path):
    (prompts_dir / "en" / "app_down.txt").write_text("Sorry, we are down.\n")
    out = tmp_path / "fallback.xml"
    result = run("fallback", "--output", str(out), DEFAULT_LANGUAGE="en", VOICE_EN="Polly.Matthew")
    assert result.exit_code == 0, result.output
    first = ET.fromstring(out.read_bytes()).find("Say")
    assert (first.text, first.get("voice"), first.get("language")) == (
        "Sorry, we are down.",
        "Polly.Matthew",
        "en-US",
    )


def test_fallback_with_a_missing_prompt_is_a_clear_error(run, prompts_dir):
    (prompts_dir / "es" / "app_down_goodbye.txt").unlink()
    result = run("fallback")
    assert result.exit_code == 1
    assert "missing prompt es/app_down_goodbye.txt" in result.output
    assert "Traceback" not in result.output


# setup --------------------------------------------------------------------------------------------
@responses.activate
def test_setup_sets_voice_url_method_and_fallback_and_removes_a_twiml_app(run):
    listed(
        number_json(
            voice_url="http://old.example.org/ivr",
            voice_method="GET",
            voice_fallback_url="",
            voice_fallback_method="POST",
            voice_application_sid="AP" + "c" * 32,
        ),
        PhoneNumber=NUMBER,
        PageSize="1",
    )
    update = responses.post(f"{API}/IncomingPhoneNumbers/{PN}.json", json=number_json())
    result = run("setup", "--number", NUMBER, "--fallback-url", BIN)
    assert result.exit_code == 0, result.output
    assert [(c.request.method, c.request.url.split("?")[0]) for c in responses.calls] == [
        ("GET", NUMBERS),
        ("POST", f"{API}/IncomingPhoneNumbers/{PN}.json"),
    ]
    assert form(update.calls[0]) == {
        "VoiceUrl": [VOICE],
        "VoiceMethod": ["POST"],
        "VoiceFallbackUrl": [BIN],
        "VoiceFallbackMethod": ["GET"],
        "VoiceApplicationSid": [""],
    }
    assert "Voice URL (A call comes in): http://old.example.org/ivr -> " + VOICE in result.output
    assert "changed 5 settings" in result.output


@responses.activate
def test_setup_by_sid_sends_only_what_differs(run):
    responses.get(
        f"{API}/IncomingPhoneNumbers/{PN}.json", json=number_json(voice_url=f"{PUBLIC}/old")
    )
    update = responses.post(f"{API}/IncomingPhoneNumbers/{PN}.json", json=number_json())
    result = run("setup", "--number", PN)
    assert result.exit_code == 0, result.output
    assert form(update.calls[0]) == {"VoiceUrl": [VOICE]}  # the Fallback URL is left alone
    assert "changed 1 setting\n" in result.output


@responses.activate
def test_setup_keeps_a_path_prefix_of_public_url(run):
    responses.get(f"{API}/IncomingPhoneNumbers/{PN}.json", json=number_json(voice_url=""))
    update = responses.post(f"{API}/IncomingPhoneNumbers/{PN}.json", json=number_json())
    result = run("setup", "--number", PN, PUBLIC_URL="https://firm.example.org/hotline/")
    assert result.exit_code == 0, result.output
    assert form(update.calls[0])["VoiceUrl"] == ["https://firm.example.org/hotline/voice"]


@responses.activate
def test_dry_run_changes_nothing(run):
    listed(number_json(voice_url="http://old.example.org/ivr", voice_fallback_url=""))
    result = run("setup", "--number", NUMBER, "--fallback-url", BIN, "--dry-run")
    assert result.exit_code == 0, result.output
    assert [c.request.method for c in responses.calls] == ["GET"]
    assert f"http://old.example.org/ivr -> {VOICE}" in result.output
    assert "dry run: nothing changed" in result.output


@responses.activate
def test_setup_of_a_number_already_set_up_sends_no_update(run):
    listed(number_json())
    result = run("setup", "--number", NUMBER)
    assert result.exit_code == 0, result.output
    assert [c.request.method for c in responses.calls] == ["GET"]
    assert "already set up: nothing changed" in result.output


@pytest.mark.parametrize(
    ("args", "overrides", "message"),
    [
        (["--number", NUMBER], {"PUBLIC_URL": ""}, "PUBLIC_URL must be the app's public https"),
        (["--number", NUMBER], {"PUBLIC_URL": "http://hotline.example.org"}, "PUBLIC_URL must be"),
        (["--number", NUMBER], {"TWILIO_ACCOUNT_SID": ""}, "TWILIO_ACCOUNT_SID is not set"),
        (["--number", "312 555 0142"], {}, "an E.164 number such as +13125550100"),
        (
            ["--number", NUMBER, "--fallback-url", "http://bin.example.org/f.xml"],
            {},
            "must be an https address",
        ),
    ],
)
@responses.activate
def test_setup_refuses_bad_input_before_calling_twilio(run, args, overrides, message):
    result = run("setup", *args, **overrides)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(responses.calls) == 0


@responses.activate
def test_setup_names_twilio_refusals_and_unknown_numbers(run):
    listed()
    result = run("setup", "--number", NUMBER)
    assert result.exit_code == 1
    assert f"{NUMBER} is not a number of this account" in result.output
    responses.get(
        f"{API}/IncomingPhoneNumbers/{PN}.json",
        status=401,
        json={"code": 20003, "message": "Authenticate", "status": 401},
    )
    result = run("setup", "--number", PN)
    assert result.exit_code == 1
    assert "Twilio answered 401" in result.output and "Authenticate" in result.output
    assert "(check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)" in result.output


@responses.activate
def test_setup_when_twilio_cannot_be_reached(run):
    responses.get(
        f"{API}/IncomingPhoneNumbers/{PN}.json", body=requests.ConnectionError("connection refused")
    )
    result = run("setup", "--number", PN)
    assert result.exit_code == 1
    assert "could not reach Twilio's API" in result.output and "Traceback" not in result.output


# check --------------------------------------------------------------------------------------------
@responses.activate
def test_check_of_a_good_set_up_exits_zero(run):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    account()
    result = run("check", "--number", NUMBER)
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output and "PROBLEM" not in result.output
    assert "does not show the account's 'Enforce HTTP Auth on Media URLs'" in result.output


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"voice_url": "http://hotline.example.org/voice"},
            "Voice URL http://hotline.example.org/voice is not https",
        ),
        ({"voice_method": "GET"}, "Voice URL is requested with GET, not POST"),
        (
            {"voice_url": "https://old-app.herokuapp.com/voice"},
            "Voice URL goes to old-app.herokuapp.com, but the hotline is at hotline.example.org",
        ),
        ({"voice_url": f"{PUBLIC}/voice/en/menu"}, f"Voice URL is {PUBLIC}/voice/en/menu, not"),
        ({"voice_url": ""}, "has no Voice URL"),
        ({"voice_fallback_url": ""}, "has no Fallback URL"),
        ({"voice_fallback_url": "http://bin.example.org/f.xml"}, "Fallback URL http://bin"),
        ({"voice_fallback_url": f"{PUBLIC}/fallback.xml"}, "Fallback URL is on the app's own host"),
        ({"voice_application_sid": "AP" + "c" * 32}, "uses TwiML App AP"),
        ({"trunk_sid": "TK" + "d" * 32}, "is on SIP trunk TK"),
        ({"voice_receive_mode": "fax"}, "receives faxes"),
    ],
)
@responses.activate
def test_check_catches_each_problem_of_the_number(run, fields, message):
    listed(number_json(**fields))
    account()
    result = run("check", "--number", NUMBER)
    assert result.exit_code == 1, result.output
    assert f"PROBLEM: {NUMBER}" in result.output and message in result.output, result.output
    assert "1 problem found" in result.output


SENDER = "+13125550177"


@pytest.mark.parametrize(
    ("sender", "overrides", "message"),
    [
        ([], {"ALERT_SMS_FROM": ""}, "ALERT_SMS_TO is set but ALERT_SMS_FROM is not"),
        ([], {}, f"ALERT_SMS_FROM {SENDER} is not a number of this account"),
        (
            [
                number_json(
                    sid="PN" + "e" * 32,
                    phone_number=SENDER,
                    capabilities={"voice": True, "sms": False},
                )
            ],
            {},
            f"ALERT_SMS_FROM {SENDER} cannot send SMS",
        ),
    ],
)
@responses.activate
def test_check_catches_sms_alerts_that_cannot_be_sent(run, sender, overrides, message):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    listed(*sender, PhoneNumber=SENDER, PageSize="1")
    account()
    result = run(
        "check",
        "--number",
        NUMBER,
        **{"ALERT_SMS_TO": "+13125550199", "ALERT_SMS_FROM": SENDER, **overrides},
    )
    assert result.exit_code == 1, result.output
    assert f"PROBLEM: {message}" in result.output


@responses.activate
def test_check_passes_a_sender_that_can_send_sms(run):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    listed(number_json(phone_number=SENDER), PhoneNumber=SENDER, PageSize="1")
    account()
    result = run("check", "--number", NUMBER, ALERT_SMS_TO="+13125550199", ALERT_SMS_FROM=SENDER)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "Trial"}, "the Twilio account is a trial"),
        ({"status": "suspended"}, "the Twilio account is suspended, not active"),
    ],
)
@responses.activate
def test_check_catches_account_problems(run, fields, message):
    listed(number_json())
    account(**fields)
    result = run("check", "--number", NUMBER)
    assert result.exit_code == 1 and f"PROBLEM: {message}" in result.output, result.output


@responses.activate
def test_check_without_number_finds_the_numbers_sent_to_public_url(run):
    other = number_json(
        sid="PN" + "f" * 32,
        phone_number="+13125550999",
        voice_url="https://demo.twilio.com/welcome/voice/",
    )
    listed(other, number_json(voice_method="GET"))
    account()
    result = run("check")
    assert result.exit_code == 1, result.output
    assert f"checked {NUMBER} ({PN})" in result.output and "+13125550999" not in result.output
    assert "not POST" in result.output
    responses.calls.reset()
    listed(other)
    result = run("check")
    assert result.exit_code == 1
    assert "no number of this account sends its calls to PUBLIC_URL" in result.output


@responses.activate
def test_check_reports_a_missing_public_url_and_still_checks_the_rest(run):
    listed(number_json(voice_method="GET"))
    account()
    result = run("check", "--number", NUMBER, PUBLIC_URL="")
    assert result.exit_code == 1
    assert "PROBLEM: PUBLIC_URL must be" in result.output and "not POST" in result.output


# Toll fraud and SMS pumping (issue 20) ------------------------------------------------------------
DIALING = "https://voice.twilio.com/v1/DialingPermissions/Countries"


def country_json(iso: str, **risky: bool) -> dict:
    return {
        "iso_code": iso,
        "name": iso,
        "continent": "",
        "country_codes": [],
        "low_risk_numbers_enabled": True,
        "high_risk_special_numbers_enabled": risky.get("special", False),
        "high_risk_tollfraud_numbers_enabled": risky.get("tollfraud", False),
        "url": f"{DIALING}/{iso}",
        "links": {},
    }


def dialing(enabled: list[str], special: list[str] = (), tollfraud: list[str] = ()) -> None:
    """The account's voice dialing geo permissions, as the Dialing Permissions API lists them
    for each filter the check asks with."""
    for field, isos in (
        ("LowRiskNumbersEnabled", enabled),
        ("HighRiskSpecialNumbersEnabled", special),
        ("HighRiskTollfraudNumbersEnabled", tollfraud),
    ):
        responses.get(
            DIALING,
            match=[matchers.query_param_matcher({field: "true"})],
            json={
                "content": [country_json(iso) for iso in isos],
                "meta": {"key": "content", "page": 0, "page_size": 50, "next_page_url": None},
            },
        )


@responses.activate
def test_check_passes_dialing_limited_to_the_callback_countries_and_advises_on_sms(run):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    account()
    dialing(["US", "MX", "GT"])
    result = run("check", "--number", NUMBER)
    assert result.exit_code == 0, result.output
    assert "turn on SMS Pumping Protection" in result.output
    assert "allow only the countries in TEXT_COUNTRIES (US)" in result.output


@responses.activate
def test_check_names_the_countries_dialing_allows_beyond_the_callback_countries(run):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    account()
    dialing(["US", "MX", "CU", "SO", "MV"], special=["US"], tollfraud=["SO"])
    result = run("check", "--number", NUMBER)
    assert result.exit_code == 1, result.output
    assert (
        "PROBLEM: voice dialing geo permissions allow 3 countries beyond CALLBACK_COUNTRIES "
        "(GT, HN, MX, SV, US): CU, MV, SO." in result.output
    )
    assert "Console > Voice > Settings > Geo permissions" in result.output
    assert "PROBLEM: voice dialing to high-risk special services" in result.output
    assert "high-risk toll fraud number ranges is enabled for SO" in result.output
    assert "3 problems found" in result.output


@responses.activate
def test_check_follows_callback_countries(run):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    account()
    dialing(["US", "MX"])
    result = run("check", "--number", NUMBER, CALLBACK_COUNTRIES="US")
    assert result.exit_code == 1
    assert "allow 1 country beyond CALLBACK_COUNTRIES (US): MX." in result.output


@responses.activate
def test_check_says_when_dialing_permissions_cannot_be_read(run):
    listed(number_json(), PhoneNumber=NUMBER, PageSize="1")
    account()
    responses.get(DIALING, status=403, json={"code": 20403, "message": "Forbidden", "status": 403})
    result = run("check", "--number", NUMBER)
    assert result.exit_code == 0, result.output
    assert "could not read the voice dialing geo permissions (Twilio answered 403)" in result.output
