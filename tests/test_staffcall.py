"""Call back through the hotline: the button queues a job, the worker asks Twilio (faked at its
HTTP edge) to ring the staff phone, both legs are signed webhooks, and the outcome lands on the
request's history and status."""

from __future__ import annotations

import urllib.parse

import pytest
import responses
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.requests import history
from ivr.requests.models import CallbackRequest
from tests.conftest import STAFF_PASSWORD, TOKEN, StaffAuth, csrf_token

SID = "AC" + "0" * 32
CALLS = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"
PUBLIC = "https://hotline.example.org"
HOTLINE = "+13125550177"
ANA_PHONE = "+13125550199"
FAMILY = "+525512345678"


@pytest.fixture
def app(make_app):
    return make_app(CALLBACK_FROM_NUMBER=HOTLINE, PUBLIC_URL=PUBLIC, STAFF_LANGUAGE="en")


def add_staff(app, name: str, phone: str | None) -> None:
    with app.app_context():
        db.session.add(
            StaffUser(
                username=name, phone=phone, password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()


@pytest.fixture
def ana(app, client):
    add_staff(app, "ana", ANA_PHONE)
    auth = StaffAuth(client)
    auth.login()
    return auth


def press_call_back(client, request_id: int):
    token = csrf_token(client, "/staff/")
    return client.post(
        f"/staff/requests/{request_id}/call?next=/staff/", data={"csrf_token": token}
    )


def kinds(app, request_id: int) -> list[tuple]:
    with app.app_context():
        return [(e.kind, e.actor, e.outcome, e.duration) for e in history.events(request_id)]


def status(app, request_id: int) -> str:
    with app.app_context():
        return db.session.get(CallbackRequest, request_id).status


def place_queued_call(app) -> tuple[dict, int]:
    """Run the worker's due jobs against a faked Twilio; return what was asked of Twilio."""
    create = responses.post(CALLS, status=201, json={"sid": "CA" + "7" * 32, "status": "queued"})
    jobs.run_pending(app)
    assert create.call_count == 1
    sent = dict(urllib.parse.parse_qsl(create.calls[0].request.body))
    attempt = int(urllib.parse.urlsplit(sent["Url"]).path.rsplit("/", 1)[1])
    return sent, attempt


def staff_leg(client, sent: dict) -> Call:
    """The staff phone's leg, as Twilio would drive it: signed posts to the URL it was given."""
    leg = Call(client, TOKEN, from_number=sent["From"], to_number=sent["To"], base=PUBLIC)
    leg.follow(sent["Url"])
    return leg


@responses.activate
def test_call_back_reaches_the_family_from_the_hotline_number(app, client, ana, make_request):
    request_id = make_request(reference="123456", language="es", callback_number=FAMILY)
    response = press_call_back(client, request_id)
    assert response.status_code == 302 and response.headers["Location"] == f"/staff/#r{request_id}"
    assert len(responses.calls) == 0  # the page itself never talks to Twilio
    assert kinds(app, request_id) == [("call", "ana", None, None), ("claim", "ana", None, None)]
    page = client.get("/staff/").get_data(as_text=True)
    assert "your phone will ring" in page and "Calling…" in page

    sent, attempt = place_queued_call(app)
    assert sent["To"] == ANA_PHONE and sent["From"] == HOTLINE
    assert sent["Url"] == f"{PUBLIC}/voice/staffcall/{attempt}"
    assert sent["StatusCallback"] == f"{PUBLIC}/voice/staffcall/{attempt}/status"
    assert sent["Record"] == "false"

    leg = staff_leg(client, sent)
    heard = " ".join(say.text for say in leg.gather().iter("Say"))
    assert heard.startswith("Call-back for reference one, two, three. four, five, six")
    assert heard.endswith(" in Spanish. Press 1 to connect.")
    leg.press("1")
    dial = leg.twiml.find("Dial")
    assert dial.get("callerId") == HOTLINE and dial.find("Number").text == FAMILY
    assert dial.get("record") == "do-not-record" and leg.twiml.find("Record") is None
    assert status(app, request_id) == "new"  # nothing happened yet

    leg.follow(
        dial.get("action"),
        DialCallStatus="completed",
        DialCallDuration="83",
        DialCallSid="CA" + "8" * 32,
    )
    # Issue 21: "completed" is not "reached" (a voicemail picks up too): the staff member says.
    assert "Press 1 if you spoke with the family, 2 if you left a voicemail" in leg.heard()
    assert status(app, request_id) == "new"
    ask = leg.twiml.find("Gather").get("action")
    leg.press("1")
    assert "noted on the request" in leg.heard() and leg.twiml.find("Hangup") is not None
    # Twilio retries a webhook it did not hear back from; the status callback comes at the end.
    leg.post(dial.get("action"), DialCallStatus="completed", DialCallDuration="83")
    leg.post(ask, Digits="1")
    assert leg.post(sent["StatusCallback"], CallStatus="completed").status_code == 204
    assert kinds(app, request_id)[2:] == [
        ("outcome", "ana", "reached", 83),
        ("status", None, None, None),
    ]
    assert status(app, request_id) == "reached"
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "call-back: reached, 1:23" in page and "status Trying" not in page


@responses.activate
def test_unanswered_call_back_means_trying_with_the_attempts_counted(
    app, client, ana, make_request
):
    request_id = make_request(
        reference="222333", language="en", callback_number=None, caller_number="+13125550123"
    )
    for result, expected in (("no-answer", 1), ("busy", 2)):
        press_call_back(client, request_id)
        sent, attempt = place_queued_call(app)
        assert sent["To"] == ANA_PHONE
        leg = staff_leg(client, sent)
        assert "in English" in leg.heard()
        leg.press("1")
        assert leg.twiml.find("Dial/Number").text == "+13125550123"  # the calling number
        leg.follow(leg.twiml.find("Dial").get("action"), DialCallStatus=result)
        assert "did not answer" in leg.heard()
        assert status(app, request_id) == "trying"
        page = client.get("/staff/").get_data(as_text=True)
        assert f"Trying · {expected} attempt" in page
        responses.reset()
    outcomes = [k[2] for k in kinds(app, request_id) if k[0] == "outcome"]
    assert outcomes == ["no-answer", "busy"]


@responses.activate
def test_staff_who_does_not_press_1_never_rings_the_family(app, client, ana, make_request):
    request_id = make_request()
    press_call_back(client, request_id)
    sent, attempt = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("5")
    assert leg.twiml.find("Dial") is None and leg.twiml.find("Hangup") is not None
    leg.post(sent["StatusCallback"], CallStatus="completed")
    assert [k[2] for k in kinds(app, request_id) if k[0] == "outcome"] == ["not-connected"]
    assert status(app, request_id) == "new"  # the family's phone never rang
    # Voicemail picking up the staff phone hears the whisper, presses nothing: no Dial either.
    press_call_back(client, request_id)
    responses.reset()
    sent, attempt = place_queued_call(app)
    leg = staff_leg(client, sent)
    # Silence: Twilio goes on past the Gather, to a goodbye and a hang-up; nothing dials.
    assert [child.tag for child in leg.twiml] == ["Gather", "Say", "Hangup"]
    assert leg.twiml.find(".//Dial") is None


@responses.activate
def test_twilio_refusing_the_call_is_recorded_and_not_retried(app, client, ana, make_request):
    request_id = make_request()
    press_call_back(client, request_id)
    refused = responses.post(
        CALLS,
        status=400,
        json={"code": 21215, "message": "Geo permission not enabled", "status": 400},
    )
    jobs.run_pending(app)
    jobs.run_pending(app)
    assert refused.call_count == 1
    with app.app_context():
        job = db.session.scalar(sa.select(jobs.Job).where(jobs.Job.kind == "staff-call"))
        assert job.status == "failed" and "21215" in job.last_error
    outcome = [k for k in kinds(app, request_id) if k[0] == "outcome"]
    assert outcome == [("outcome", "ana", "refused", None)]
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    # Issue 21: plain words on the card and in the history, never Twilio's raw text cut short.
    assert "Twilio refused the call: the number is not allowed: " in page
    assert "Twilio refused the call (the number is not allowed: " in page
    assert "(Twilio error 21215)" in page and "Geo permission" not in page
    assert status(app, request_id) == "new"


def test_call_back_needs_a_staff_phone_and_a_number(app, client, make_request):
    add_staff(app, "bo", None)
    StaffAuth(client).login("bo")
    request_id = make_request()
    page = client.get("/staff/").get_data(as_text=True)
    assert "Add your phone number on your profile" in page
    press_call_back(client, request_id)
    no_number = make_request(callback_number=None, caller_number="Anonymous")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(jobs.Job)) == 0
        db.session.get(StaffUser, 1).phone = ANA_PHONE
        db.session.commit()
    page = client.get("/staff/").get_data(as_text=True)
    assert page.count("No number to call.") == 1
    press_call_back(client, no_number)
    assert kinds(app, no_number) == []


def test_staff_leg_webhooks_are_signed(app, client, make_request):
    request_id = make_request()
    for path in ("", "/connect", "/done", "/status"):
        assert (
            client.post(f"/voice/staffcall/{request_id}{path}", data={"Digits": "1"}).status_code
            == 403
        )


def test_unknown_attempt_hangs_up(app, client):
    leg = Call(client, TOKEN, base=PUBLIC)
    leg.follow(f"{PUBLIC}/voice/staffcall/999")
    assert leg.twiml.find("Hangup") is not None and leg.twiml.find("Dial") is None
    response = leg.post(f"{PUBLIC}/voice/staffcall/999/connect", Digits="1")
    assert response.status_code == 200 and leg.twiml.find("Dial") is None
