"""Issue 13, families: the reference by text message only when asked, and urgency heard.

Signed calls through `ivr.devtools.emulator`, Twilio's Messages API faked at its HTTP edge with
`responses`,
the texts run as the worker runs them (`jobs.run_pending`), and the stored rows asserted.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.calls.prompts import Prompts
from ivr.commands.audio import prompts_group
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.requests import alerts
from ivr.requests.models import CallbackRequest, RequestMessage

from .conftest import PROJECT_ROOT, TOKEN
from .test_callback import heard_digits, record, to_recording

REAL = Prompts(PROJECT_ROOT / "prompts")
SID = "AC" + "0" * 32
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
HOTLINE = "+13125550177"
PUBLIC = "https://hotline.example.org"


@pytest.fixture
def sms_app(make_app):
    return make_app(SMS_FROM=HOTLINE, PUBLIC_URL=PUBLIC)


def sent_ok(sid: str = "SM" + "1" * 32) -> responses.BaseResponse:
    return responses.post(MESSAGES, status=201, json={"sid": sid, "status": "queued"})


def twilio_error(status: int, code: int, message: str) -> responses.BaseResponse:
    return responses.post(
        MESSAGES, status=status, json={"code": code, "message": message, "status": status}
    )


def the_request(app) -> CallbackRequest:
    with app.app_context():
        row = db.session.scalar(sa.select(CallbackRequest))
        db.session.expunge_all()
        return row


def sms_jobs(app) -> list[jobs.Job]:
    with app.app_context():
        found = db.session.scalars(
            sa.select(jobs.Job).where(jobs.Job.kind == "reference-sms")
        ).all()
        db.session.expunge_all()
        return found


def to_ending(call: Call, lang: str = "es") -> ET.Element:
    """A whole callback request, up to the ending: recorded, own number kept, an A-number."""
    to_recording(call, lang)
    record(call)
    call.press("1")
    call.press("12345678#")
    return call.press("1")  # issue 23: the A-number is read back; 1 confirms it


def gathers(call: Call) -> dict[str, ET.Element]:
    """The ending's questions by what they ask: "urgent" and "text"."""
    found = {}
    for gather in call.twiml.iter("Gather"):
        action = gather.get("action")
        found["urgent" if "/urgent" in action else "text" if "/text" in action else action] = gather
    return found


def press_at(call: Call, question: str, keys: str) -> ET.Element:
    """Press a key during one of the ending's questions (Twilio posts to that Gather)."""
    return call.follow(gathers(call)[question].get("action"), Digits=keys)


def texts() -> list:
    """Requests to Twilio's Messages API (the recording copies go to Twilio too)."""
    return [c for c in responses.calls if c.request.url.startswith(MESSAGES)]


def form(index: int = 0) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(texts()[index].request.body).items()}


# The reference by text message ------------------------------------------------------------------
@responses.activate
def test_text_is_offered_after_the_reference_and_sent_only_after_the_key(sms_app):
    sent_ok()
    call = Call(sms_app.test_client(), TOKEN)
    to_ending(call, "es")
    reference = the_request(sms_app).reference
    # The offer comes after the reference, inside a question of its own; the call goes on to
    # goodbye and hangs up when nobody presses anything.
    assert REAL.text("es", "sms_offer") in call.heard()
    assert call.heard().index(REAL.text("es", "sms_offer")) > call.heard().index(
        REAL.text("es", "reference_number")
    )
    assert heard_digits(call, "es").split().count(reference) == 2
    assert [say.text for say in gathers(call)["text"].iter("Say")] == [
        REAL.text("es", "reference_repeat") + " " + REAL.text("es", "sms_offer")
    ]  # only the offer (issue 23: and star to hear the reference again) listens for the key
    assert call.twiml.find("Hangup") is not None
    # Nothing pressed: nothing queued, nothing sent.
    jobs.run_pending(sms_app)
    assert sms_jobs(sms_app) == [] and len(texts()) == 0
    assert the_request(sms_app).sms_status is None

    press_at(call, "text", "1")
    assert REAL.text("es", "sms_sent") in call.heard()
    assert REAL.text("es", "expect_call") in call.heard() and call.twiml.find("Hangup") is not None
    assert the_request(sms_app).sms_status == "queued"
    jobs.run_pending(sms_app)
    assert len(texts()) == 1
    sent = form()
    assert (sent["To"], sent["From"]) == (call.from_number, HOTLINE)
    # In the caller's language: the reference, the firm's number, the office hours; no names.
    assert (
        sent["Body"]
        == REAL.line(
            "es",
            "sms/reference",
            reference=f"{reference[:3]} {reference[3:]}",  # issue 23: grouped as spoken
            from_number="(312) 555-0100",
            hours="lo antes posible",
        ).text
    )
    assert sent["StatusCallback"] == (
        f"{PUBLIC}/voice/es/closing/sms/{the_request(sms_app).id}/status"
    )
    row = the_request(sms_app)
    assert (row.sms_status, row.sms_sid, row.sms_error) == ("queued", "SM" + "1" * 32, None)


@responses.activate
def test_text_in_english_names_the_office_hours(make_app):
    app = make_app(SMS_FROM=HOTLINE, OFFICE_HOURS="mon-fri 09:00-17:00")
    sent_ok()
    call = Call(app.test_client(), TOKEN)
    to_ending(call, "en")
    press_at(call, "text", "1")
    jobs.run_pending(app)
    body = form()["Body"]
    reference = the_request(app).reference
    # Issue 23: the firm's name, the reference grouped, a 12-hour clock and the zone in words.
    assert body.startswith(f"J. Molina: your reference is {reference[:3]} {reference[3:]}.")
    assert "Monday to Friday, 9 am to 5 pm Central time." in body
    assert "(312) 555-0100" in body and "StatusCallback" not in form()  # no PUBLIC_URL


@responses.activate
def test_text_sent_once_after_duplicate_webhooks(sms_app):
    sent_ok()
    call = Call(sms_app.test_client(), TOKEN)
    to_ending(call)
    action = gathers(call)["text"].get("action")
    for _ in range(3):  # Twilio retried the webhook
        call.follow(action, Digits="1")
    assert len(sms_jobs(sms_app)) == 1
    jobs.run_pending(sms_app)
    assert len(texts()) == 1
    call.follow(action, Digits="1")  # and once more after it was sent
    jobs.run_pending(sms_app)
    assert len(texts()) == 1


@responses.activate
def test_opted_out_number_is_not_retried_and_recorded(sms_app):
    twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
    call = Call(sms_app.test_client(), TOKEN)
    to_ending(call)
    press_at(call, "text", "1")
    jobs.run_pending(sms_app)
    with sms_app.app_context():  # pretend any back-off has passed: still nothing more
        db.session.execute(sa.update(jobs.Job).values(run_at=sa.func.now()))
        db.session.commit()
    jobs.run_pending(sms_app)
    assert len(texts()) == 1
    [job] = sms_jobs(sms_app)
    assert job.status == "failed" and "21610" in job.last_error
    row = the_request(sms_app)
    assert row.sms_status == "failed" and "21610" in row.sms_error


@responses.activate
def test_twilio_5xx_is_retried_then_sent(sms_app):
    twilio_error(503, 20503, "Service Unavailable")
    call = Call(sms_app.test_client(), TOKEN)
    to_ending(call)
    press_at(call, "text", "1")
    jobs.run_pending(sms_app)
    [job] = sms_jobs(sms_app)
    assert job.status == "pending" and job.attempts == 1
    assert "503" in the_request(sms_app).sms_error
    responses.replace(
        responses.POST, MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued"}
    )
    with sms_app.app_context():
        db.session.execute(sa.update(jobs.Job).values(run_at=sa.func.now()))
        db.session.commit()
    jobs.run_pending(sms_app)
    assert len(texts()) == 2
    row = the_request(sms_app)
    assert (row.sms_status, row.sms_sid, row.sms_error) == ("queued", "SM" + "2" * 32, None)


@responses.activate
def test_never_offered_or_sent_to_a_withheld_number(sms_app):
    call = Call(sms_app.test_client(), TOKEN, from_number="Anonymous")
    to_recording(call, "en")
    record(call)
    call.press("3125550123#")  # no caller ID: the number is typed
    call.press("1")  # issue 23: read back, 1 confirms
    call.press("12345678#")
    call.press("1")
    assert REAL.text("en", "confirmation") in call.heard()
    assert REAL.text("en", "sms_offer") not in call.heard()
    assert "text" not in gathers(call)
    # Even a forged key press on the text action sends nothing.
    ref = the_request(sms_app).reference
    call.follow(f"/voice/en/closing/text?ref={ref}", Digits="1")
    assert REAL.text("en", "sms_sent") not in call.heard()
    jobs.run_pending(sms_app)
    assert sms_jobs(sms_app) == [] and len(texts()) == 0


def test_not_offered_when_texts_cannot_be_sent(app, call):
    to_ending(call)
    assert REAL.text("es", "sms_offer") not in call.heard()
    assert heard_digits(call, "es").split().count(the_request(app).reference) == 2


@responses.activate
def test_delivery_status_callback_is_signed_and_recorded(sms_app):
    sent_ok()
    call = Call(sms_app.test_client(), TOKEN)
    to_ending(call)
    press_at(call, "text", "1")
    jobs.run_pending(sms_app)
    row = the_request(sms_app)
    path = f"/voice/es/closing/sms/{row.id}/status"
    client = sms_app.test_client()
    unsigned = client.post(path, data={"MessageSid": row.sms_sid, "MessageStatus": "delivered"})
    assert unsigned.status_code == 403
    assert the_request(sms_app).sms_status == "queued"
    status = Call(client, TOKEN)
    for value in ("delivered", "sent"):  # out of order: "sent" comes late
        reply = status.post(path, MessageSid=row.sms_sid, MessageStatus=value)
        assert reply.status_code == 204
    assert the_request(sms_app).sms_status == "delivered"
    status.post(path, MessageSid="SM" + "9" * 32, MessageStatus="failed")  # another message
    assert the_request(sms_app).sms_status == "delivered"


@responses.activate
def test_undelivered_status_records_the_error(sms_app):
    sent_ok()
    call = Call(sms_app.test_client(), TOKEN)
    to_ending(call)
    press_at(call, "text", "1")
    jobs.run_pending(sms_app)
    row = the_request(sms_app)
    Call(sms_app.test_client(), TOKEN).post(
        f"/voice/es/closing/sms/{row.id}/status",
        MessageSid=row.sms_sid,
        MessageStatus="undelivered",
        ErrorCode="30005",
    )
    row = the_request(sms_app)
    assert (row.sms_status, row.sms_error) == ("undelivered", "Twilio 30005")


def test_prompts_check_reports_sms_segments(app, runner, prompts_dir):
    result = runner.invoke(prompts_group, ["check"])
    assert result.exit_code == 0, result.output
    assert re.search(r"en/sms/reference.txt: 1 SMS segment \(GSM-7", result.output)
    # Issue 23: the Spanish text is written without letters outside GSM-7 (sms.plain): 1 segment.
    assert re.search(r"es/sms/reference.txt: 1 SMS segment \(GSM-7", result.output)
    assert "warning:" not in result.output
    longer = "Su número de referencia es {reference}. " * 8 + "{hours} {firm_number}"
    (prompts_dir / "es" / "sms" / "reference.txt").write_text(longer + "\n", encoding="utf-8")
    result = runner.invoke(prompts_group, ["check"])
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: es/sms/reference.txt: [3-9] SMS segments \(over 2", result.output)


def test_sms_texts_are_not_rendered_as_audio(app):
    from ivr.calls.audio import spoken

    with app.app_context():
        keys = {item.key for item in spoken(app.extensions["ivr.calls.prompts"], "es")}
    assert "sms_offer" in keys and not any(key.startswith("sms/") for key in keys)


# Urgency --------------------------------------------------------------------------------------
def test_urgency_question_at_the_end_and_marked_on_the_request(app, call):
    to_ending(call, "en")
    assert REAL.text("en", "urgent_ask") in call.heard()
    assert the_request(app).urgent is False
    press_at(call, "urgent", "1")
    assert REAL.text("en", "urgent_noted") in call.heard()
    # The rest of the ending follows: the reference twice, when to expect a call, goodbye.
    row = the_request(app)
    assert row.urgent is True
    assert heard_digits(call, "en").split().count(row.reference) == 2
    assert call.twiml.find("Hangup") is not None


def test_another_key_is_not_urgent(app, call):
    to_ending(call)
    press_at(call, "urgent", "2")
    assert the_request(app).urgent is False
    assert REAL.text("es", "urgent_noted") not in call.heard()


def test_urgent_request_sorts_first_on_the_dashboard(client, auth, make_request):
    t = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    make_request(reference="111111", created_at=t, status="new", urgent=True)
    make_request(reference="222222", created_at=t + dt.timedelta(hours=2), status="new")
    make_request(
        reference="333333", created_at=t + dt.timedelta(hours=3), status="handled", urgent=True
    )
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    assert re.findall(r'data-reference="(\d+)"', page) == ["111111", "222222", "333333"]
    assert page.count('class="badge urgent"') == 2


@responses.activate
def test_urgent_alert_says_so_first_even_when_the_alert_already_went(make_app):
    app = make_app(
        ALERT_SMS_TO="+13125550199",
        ALERT_SMS_FROM="+13125550100",
        ALERT_GRACE_SECONDS="0",
        PUBLIC_URL=PUBLIC,
    )
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "3" * 32, "status": "queued"})
    call = Call(app.test_client(), TOKEN)
    to_ending(call)
    jobs.run_pending(app)  # the worker was quick: the first alert went before the key press
    assert form(0)["Body"].startswith("New callback request #")
    action = gathers(call)["urgent"].get("action")
    call.follow(action, Digits="1")
    call.follow(action, Digits="1")  # a repeated webhook alerts no one twice
    jobs.run_pending(app)
    assert len(texts()) == 2
    assert form(1)["Body"].split()[0] == "URGENT:"
    with app.app_context():
        row = db.session.scalar(sa.select(CallbackRequest))
        assert alerts.message(row)[0].startswith("URGENT: New callback request #")


# Calling again --------------------------------------------------------------------------------
# Thursday 2026-03-05, 15:00 in Chicago (the office's time zone in the tests).
THURSDAY = dt.datetime(2026, 3, 5, 21, 0, tzinfo=dt.UTC)
# The carrier fully attested the caller ID (STIR/SHAKEN): only then is a number recognised.
ATTESTED = "TN-Validation-Passed-A"


@pytest.fixture
def again_app(make_app):
    return make_app(CLOCK=lambda: THURSDAY)


def first_request(app, lang: str = "es", days_ago: float = 2, **fields) -> CallbackRequest:
    """A whole first call from the usual number, its request then dated `days_ago`."""
    call = Call(app.test_client(), TOKEN)
    to_ending(call, lang)
    with app.app_context():
        db.session.execute(
            sa.update(CallbackRequest).values(
                **{"created_at": THURSDAY - dt.timedelta(days=days_ago), **fields}
            )
        )
        db.session.commit()
    return the_request(app)


def requests_and_messages(app) -> tuple[list[CallbackRequest], list[RequestMessage]]:
    with app.app_context():
        found = (
            db.session.scalars(sa.select(CallbackRequest)).all(),
            db.session.scalars(sa.select(RequestMessage)).all(),
        )
        db.session.expunge_all()
        return found


def test_a_second_call_hears_the_first_requests_day_and_reference(again_app):
    first = first_request(again_app, "es", days_ago=2)  # Tuesday
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("1")  # this time in English: heard in the language chosen now
    heard = call.heard()
    assert f"{REAL.text('en', 'again_from_day')} {REAL.text('en', 'words/day_tue')}" in heard
    assert heard_digits(call, "en").split() == [first.reference]
    assert REAL.text("en", "again_call_back") in heard
    # Then the menu, where 8 adds to the message.
    assert heard.index(REAL.text("en", "again_call_back")) < heard.index(
        REAL.text("en", "menu_intro")
    )
    assert REAL.text("en", "option_add") in heard
    assert REAL.text("en", "option_callback") not in heard


@pytest.mark.parametrize(
    ("days_ago", "prompt"),
    [
        (0.1, "again_from_today"),
        (1, "again_from_yesterday"),
        (10, "again_from_older"),
    ],
)
def test_the_day_is_said_plainly(again_app, days_ago, prompt):
    first_request(again_app, "es", days_ago=days_ago)
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    assert REAL.text("es", prompt) in call.heard()


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "called_back"},
        {"status": "handled"},
        {"created_at": THURSDAY - dt.timedelta(days=15)},  # older than 14 days
    ],
)
def test_closed_or_old_requests_are_not_announced(again_app, fields):
    first_request(again_app, "es", **fields)
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    assert REAL.text("es", "again_call_back") not in call.heard()
    assert REAL.text("es", "option_callback") in call.heard()
    call.press("8")
    assert REAL.text("es", "record_intro") in call.heard()


def test_another_number_or_a_withheld_one_hears_nothing_of_it(again_app):
    first_request(again_app, "es")
    for number in ("+13125550124", "Anonymous"):
        call = Call(again_app.test_client(), TOKEN, from_number=number, stir_verstat=ATTESTED)
        call.answer()
        call.press("2")
        assert REAL.text("es", "again_call_back") not in call.heard()


@responses.activate
def test_a_second_message_joins_the_open_request_flagged_new(again_app):
    first = first_request(again_app, "es")
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    call.press("8")
    call.press(first.reference + "#")  # the reference, typed before adding
    assert REAL.text("es", "add_intro") in call.heard()
    params = {
        "RecordingSid": "RE" + "a" * 32,
        "RecordingDuration": "9",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/RE{'a' * 32}",
    }
    status_url = call.twiml.find("Record").get("recordingStatusCallback")
    record(call, **params)
    # The ending: added, the first request's reference twice, the same questions, goodbye.
    assert REAL.text("es", "added") in call.heard()
    assert heard_digits(call, "es").split().count(first.reference) == 2
    assert REAL.text("es", "urgent_ask") in call.heard()
    assert call.twiml.find("Hangup") is not None
    # The status callback, late and twice, changes nothing.
    for _ in range(2):
        call.post(status_url, RecordingStatus="completed", **params)
    requests, messages = requests_and_messages(again_app)
    assert [r.reference for r in requests] == [first.reference]
    [message] = messages
    assert (message.request_id, message.call_sid, message.recording_sid, message.is_new) == (
        first.id,
        call.sid,
        params["RecordingSid"],
        True,
    )
    # One call, one recording: pressing 8 again is told the message is in.
    call.follow("/voice/es/callback")
    assert REAL.text("es", "already_recorded") in call.heard()
    assert REAL.text("es", "added") in call.heard()
    assert len(requests_and_messages(again_app)[1]) == 1
    # The urgency question, answered on the added message, marks the request it joined.
    call.follow(f"/voice/es/closing/urgent?ref={first.reference}", Digits="1")
    assert the_request(again_app).urgent is True
    # The worker copies the audio from Twilio, as for a first message.
    responses.get(params["RecordingUrl"] + ".mp3", body=b"ID3added", content_type="audio/mpeg")
    responses.delete(params["RecordingUrl"] + ".json", status=204)
    jobs.run_pending(again_app)
    with again_app.app_context():
        assert db.session.get(RequestMessage, message.id).audio == b"ID3added"


@responses.activate
def test_staff_see_the_added_message_as_new_until_they_save(again_app):
    from .conftest import StaffAuth, csrf_token

    first = first_request(again_app, "es")
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    call.press("8")
    call.press(first.reference + "#")  # the reference, typed before adding
    record(call)
    requests, [message] = requests_and_messages(again_app)
    with again_app.app_context():
        db.session.execute(sa.update(RequestMessage).values(audio=b"ID3x", audio_type="audio/mpeg"))
        from werkzeug.security import generate_password_hash

        from ivr.accounts.models import StaffUser

        db.session.add(StaffUser(username="ana", password_hash=generate_password_hash("pw-pw-pw")))
        db.session.commit()
    client = again_app.test_client()
    audio = f"/staff/requests/{first.id}/messages/{message.id}/audio"
    assert client.get(audio).status_code in (302, 401)  # staff only
    StaffAuth(client).login(password="pw-pw-pw")
    page = client.get("/staff/").get_data(as_text=True)
    assert f'data-message="{message.id}"' in page and 'class="added new"' in page
    assert f'src="{audio}"' in page
    assert client.get(audio).data == b"ID3x"
    token = csrf_token(client, "/staff/")
    saved = client.post(
        f"/staff/requests/{first.id}",
        data={"csrf_token": token, "status": "new", "seen_status": "new", "note": "heard both"},
    )
    assert saved.status_code == 302
    page = client.get(f"/staff/requests/{first.id}").get_data(as_text=True)
    assert f'data-message="{message.id}"' in page and 'class="added new"' not in page


# Slower ---------------------------------------------------------------------------------------
GOOGLE = re.compile(r"https://translate\.google\.[a-z.]+/_/TranslateWebserverUi/data/batchexecute")


def gtts_answer(request) -> tuple[int, dict, str]:
    """Google's answer to gTTS, as in test_audio, with audio that says whether it was slow."""
    import base64
    import json

    rpc = json.loads(urllib.parse.parse_qs(request.body)["f.req"][0])
    text, lang, speed = json.loads(rpc[0][0][1])[:3]
    fake_mp3 = f"ID3|{lang}|{'slow' if speed else 'normal'}|{text}".encode()
    inner = json.dumps([base64.b64encode(fake_mp3).decode()])
    payload = json.dumps(
        [["wrb.fr", "jQ1olc", inner, None, None, None, "generic"]], separators=(",", ":")
    )
    return 200, {}, f")]}}'\n\n{len(payload)}\n{payload}\n"


def to_topic(app, lang: str = "es") -> tuple[Call, object]:
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press("1" if lang == "en" else "2")
    call.press("1")
    return call, REAL.topic(lang, 1)


def test_slower_says_the_topic_at_a_slower_rate_without_audio(app):
    call, topic = to_topic(app)
    assert REAL.text("es", "option_slower") in call.heard()
    call.press("7")
    [slow] = [say for say in call.twiml.iter("Say") if say.find("prosody") is not None]
    prosody = slow.find("prosody")
    assert prosody.text == topic.body and prosody.get("rate") == "80%"
    assert slow.get("voice") == "Polly.Lupe-Neural"
    # Then the same options as after the topic.
    assert REAL.text("es", "option_repeat") in call.heard()
    assert REAL.text("es", "option_slower") in call.heard()


def test_slower_is_not_offered_when_the_voice_cannot_and_no_audio_is_built(make_app):
    app = make_app(VOICE_ES="alice")  # a basic voice: no SSML
    call, topic = to_topic(app)
    assert REAL.text("es", "option_slower") not in call.heard()
    call.press("7")
    assert REAL.text("es", "invalid") in call.heard()
    assert topic.body not in call.heard()
    assert not list(call.twiml.iter("prosody"))


def test_slower_plays_slow_audio_built_with_the_normal_build(make_app, tmp_path):
    import json

    from ivr.commands.audio import audio_group

    app = make_app(VOICE_ES="alice")  # slow audio is offered even where <Say> cannot slow down
    with responses.RequestsMock(assert_all_requests_are_fired=False) as google:
        google.add_callback(responses.POST, GOOGLE, callback=gtts_answer)
        result = app.test_cli_runner().invoke(audio_group, ["build"])
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / "audio" / "manifest.json").read_text())
        topic = REAL.topic("es", 1)
        slow_file = manifest["es"][f"slow:{topic.name}"]["file"]
        normal_file = manifest["es"][topic.name]["file"]
        assert slow_file != normal_file
        audio_dir = tmp_path / "audio"
        # gTTS asks for a long text in pieces: every piece of the slow file was asked slowly.
        slow_audio = (audio_dir / slow_file).read_bytes()
        assert slow_audio.startswith(b"ID3|es|slow|") and b"|normal|" not in slow_audio
        normal_audio = (audio_dir / normal_file).read_bytes()
        assert normal_audio.startswith(b"ID3|es|normal|") and b"|slow|" not in normal_audio
        # Incremental like the rest: nothing changed, nothing rendered.
        before = len(google.calls)
        result = app.test_cli_runner().invoke(audio_group, ["build"])
        assert result.exit_code == 0 and len(google.calls) == before
        assert "rendered 0 file(s)" in result.output
    call, _ = to_topic(app)
    plays = [p.text for p in call.twiml.iter("Play")]
    assert plays[0] == f"/audio/{normal_file}"
    call.press("7")
    plays = [p.text for p in call.twiml.iter("Play")]
    assert plays[0] == f"/audio/{slow_file}"
    assert call.client.get(plays[0], buffered=True).data == slow_audio


@responses.activate
def test_staff_are_alerted_once_to_an_added_message(make_app):
    app = make_app(
        CLOCK=lambda: THURSDAY,
        ALERT_SMS_TO="+13125550199",
        ALERT_SMS_FROM="+13125550100",
        ALERT_GRACE_SECONDS="0",
        PUBLIC_URL=PUBLIC,
    )
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "4" * 32, "status": "queued"})
    first = first_request(app, "es")
    jobs.run_pending(app)
    assert len(texts()) == 1  # the first request's alert
    call = Call(app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    call.press("8")
    call.press(first.reference + "#")  # the reference, typed before adding
    params = {
        "RecordingSid": "RE" + "b" * 32,
        "RecordingDuration": "7",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/RE{'b' * 32}",
    }
    status_url = call.twiml.find("Record").get("recordingStatusCallback")
    record(call, **params)
    call.post(status_url, RecordingStatus="completed", **params)
    jobs.run_pending(app)
    assert len(texts()) == 2
    body = form(1)["Body"]
    assert body.startswith(f"New message on callback request #{first.reference} (Spanish)")
    assert f"{PUBLIC}/staff/requests/{first.id}" in body


def rename_table(app, source: str, target: str) -> None:
    """Make the database fail for real, as test_callback does: a table disappears."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {source} RENAME TO {target}"))


def test_a_failing_database_is_not_asked_again_for_the_open_request(again_app):
    first_request(again_app, "es")
    rename_table(again_app, "calls", "calls_away")  # counting the call fails
    statements: list[str] = []
    with again_app.app_context():
        engine = db.engine

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
        call.answer()
        call.press("2")
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
        rename_table(again_app, "calls_away", "calls")
    # The call goes on as a first call, without a second wait on the database.
    assert REAL.text("es", "disclaimer") in call.heard()
    assert REAL.text("es", "again_call_back") not in call.heard()
    assert not [s for s in statements if "callback_requests" in s]


def test_an_added_message_the_database_refuses_is_kept_as_a_request(again_app):
    first = first_request(again_app, "es")
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    call.press("8")
    call.press(first.reference + "#")  # the reference, typed before adding
    rename_table(again_app, "request_messages", "request_messages_away")
    try:
        record(call)
    finally:
        rename_table(again_app, "request_messages_away", "request_messages")
    assert REAL.text("es", "added") in call.heard()
    requests, messages = requests_and_messages(again_app)
    assert messages == []
    assert len(requests) == 2 and requests[1].call_sid == call.sid  # not lost: staff see it
    assert requests[1].caller_number == first.caller_number and requests[1].recording_sid


def test_erasing_a_request_deletes_its_added_messages_too(again_app):
    from ivr.requests.service import handling

    first = first_request(again_app, "es")
    call = Call(again_app.test_client(), TOKEN, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    call.press("8")
    call.press(first.reference + "#")  # the reference, typed before adding
    record(call)
    [message] = requests_and_messages(again_app)[1]
    with again_app.app_context():
        assert handling.erase([first.id], "ana") == 1
        assert db.session.scalars(sa.select(RequestMessage)).all() == []
        keys = set(db.session.scalars(sa.select(jobs.Job.key)))
    # Twilio's copy of the added recording is deleted as well.
    assert f"delete-recording:{message.recording_sid}" in keys


# Issue 23: the reference, announced, read twice, and a key to hear it again ------------------


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("from_number", ["+13125550123", "Anonymous"])
def test_the_reference_is_announced_read_twice_and_star_repeats_it(app, lang, from_number):
    call = Call(app.test_client(), TOKEN, from_number=from_number)
    if from_number == "Anonymous":
        to_recording(call, lang)
        record(call)
        call.press("3125550123#")
        call.press("1")
        call.press("12345678#")
        call.press("1")
    else:
        to_ending(call, lang)
    reference = the_request(app).reference
    heard = call.heard()
    ready = heard.index(REAL.text(lang, "write_ready"))
    assert ready < heard.index(REAL.text(lang, "reference_number"))
    assert REAL.text(lang, "reference_again") in heard
    assert heard_digits(call, lang).split().count(reference) == 2
    # The offer to hear it again listens, before goodbye; the call hangs up only after it.
    [question] = [g for g in call.twiml.iter("Gather") if "/closing/" in g.get("action")][-1:]
    assert REAL.text(lang, "reference_repeat") in " ".join(s.text for s in question.iter("Say"))
    call.follow(question.get("action"), Digits="*")
    heard = call.heard()
    assert heard_digits(call, lang).split().count(reference) == 2
    assert REAL.text(lang, "reference_repeat") in heard  # and it can be heard once more
    assert call.twiml.find("Hangup") is not None


@responses.activate
@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            (
                "J. Molina: your reference is",
                "We will call you from (312) 555-0177,",
                "Monday to Friday, 9 am to 5 pm Central time.",
            ),
        ),
        (
            "es",
            (
                "J. Molina: su referencia es",
                "Le llamaremos del (312) 555-0177,",
                "de lunes a viernes, de 9 a. m. a 5 p. m., hora del centro.",
            ),
        ),
    ],
)
def test_the_text_names_the_firm_the_grouped_reference_the_number_and_the_hours(
    make_app, lang, words
):
    from ivr.devtools.promptcheck import segments

    app = make_app(
        SMS_FROM=HOTLINE, OFFICE_HOURS="mon-fri 09:00-17:00", CALLBACK_FROM_NUMBER="+13125550177"
    )
    sent_ok()
    call = Call(app.test_client(), TOKEN)
    to_ending(call, lang)
    press_at(call, "text", "1")
    jobs.run_pending(app)
    body = form()["Body"]
    reference = the_request(app).reference
    assert f"{reference[:3]} {reference[3:]}." in body
    for part in words:
        assert part in body, body
    count, encoding, _ = segments(body)
    assert (count, encoding) == (1, "GSM-7"), body
