"""Issue 21: one person calls a family at a time (an atomic reservation), the card shows the
call-back's live state, and the staff member, not Twilio, says how the call went.

Twilio's REST API is faked at its HTTP edge (`responses`); both legs are signed webhooks driven
by the emulator, as Twilio would drive them."""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
import requests
import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.db import db, utcnow
from ivr.requests import reservations
from ivr.requests.service import calling
from tests.conftest import StaffAuth, csrf_token
from tests.test_staffcall import (
    ANA_PHONE,
    CALLS,
    FAMILY,
    HOTLINE,
    PUBLIC,
    add_staff,
    kinds,
    place_queued_call,
    press_call_back,
    staff_leg,
    status,
)

LUIS_PHONE = "+13125550198"
HX = {"HX-Request": "true"}


@pytest.fixture
def app(make_app):
    return make_app(CALLBACK_FROM_NUMBER=HOTLINE, PUBLIC_URL=PUBLIC, STAFF_LANGUAGE="en")


@pytest.fixture
def ana(app, client):
    """ana, logged in on `client`."""
    add_staff(app, "ana", ANA_PHONE)
    StaffAuth(client).login()


@pytest.fixture
def luis(app, client, ana):
    """A second staff member, logged in on their own browser (ana is logged in on `client`)."""
    add_staff(app, "luis", LUIS_PHONE)
    other = app.test_client()
    StaffAuth(other).login("luis")
    return other


def staff_call_jobs(app) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count()).select_from(jobs.Job).where(jobs.Job.kind == "staff-call")
        )


def region(client, request_id: int) -> str:
    """The card's call-back region as htmx polls it."""
    response = client.get(f"/staff/requests/{request_id}/callstate?next=/staff/", headers=HX)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def phase(html: str) -> str:
    return re.search(r'data-phase="([a-z-]+)"', html)[1]


def polls(html: str) -> bool:
    return 'hx-trigger="every 2s"' in html


def answered_call(app, client, request_id: int, duration: str = "83"):
    """Press Call back, place it, answer the staff phone, press 1, the family answers and the
    family's leg ends: the staff member is now asked how it went. Returns (leg, sent)."""
    press_call_back(client, request_id)
    sent, attempt = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("1")
    dial = leg.twiml.find("Dial")
    number = dial.find("Number")
    assert number.get("statusCallbackEvent") == "answered"
    leg.post(number.get("statusCallback"), CallStatus="in-progress")
    assert phase(region(client, request_id)) == "connected"
    leg.follow(dial.get("action"), DialCallStatus="completed", DialCallDuration=duration)
    return leg, sent


# 1. The reservation ------------------------------------------------------------------------


@responses.activate
def test_a_second_press_is_told_who_is_calling_and_queues_nothing(
    app, client, ana, luis, make_request
):
    request_id = make_request(callback_number=FAMILY)
    stale = luis.get("/staff/").get_data(as_text=True)  # luis's page, loaded before ana pressed
    assert 'Call back<span class="visually-hidden"> #100001 through the hotline' in stale
    press_call_back(client, request_id)
    # luis presses on his stale page: with JavaScript (htmx) and without.
    token = csrf_token(luis, "/staff/")
    answer = luis.post(
        f"/staff/requests/{request_id}/call?next=/staff/", data={"csrf_token": token}, headers=HX
    ).get_data(as_text=True)
    assert "ana is calling this family now." in answer and polls(answer)
    plain = luis.post(
        f"/staff/requests/{request_id}/call?next=/staff/",
        data={"csrf_token": token},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Request 100001: ana is calling this family now." in plain
    assert staff_call_jobs(app) == 1
    assert [k[:2] for k in kinds(app, request_id)] == [("call", "ana"), ("claim", "ana")]
    # ana pressing twice is not a second call either.
    again = client.post(
        f"/staff/requests/{request_id}/call?next=/staff/",
        data={"csrf_token": csrf_token(client, "/staff/")},
        headers=HX,
    ).get_data(as_text=True)
    assert "You are already calling this family." in again
    sent, _ = place_queued_call(app)  # exactly one Calls request (asserted inside)
    assert sent["To"] != LUIS_PHONE


@responses.activate
def test_the_reservation_ends_with_the_outcome(app, client, ana, luis, make_request):
    request_id = make_request()
    press_call_back(client, request_id)
    sent, _ = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("1")
    leg.follow(leg.twiml.find("Dial").get("action"), DialCallStatus="no-answer")
    responses.reset()
    token = csrf_token(luis, "/staff/")
    answer = luis.post(
        f"/staff/requests/{request_id}/call?next=/staff/", data={"csrf_token": token}, headers=HX
    ).get_data(as_text=True)
    assert "Your phone will ring in a moment" in answer
    sent, _ = place_queued_call(app)
    assert sent["To"] == LUIS_PHONE


def test_the_reservation_ends_after_its_time(app, client, ana, luis, make_request):
    request_id = make_request()
    press_call_back(client, request_id)
    with app.app_context():
        held = db.session.scalar(sa.select(reservations.CallBack))
        assert held.open_slot == 1 and held.username == "ana"
        assert (held.expires_at - held.started_at) == dt.timedelta(minutes=15)  # the default
        held.state = "ringing"  # placed, then nothing more was heard
        held.expires_at = utcnow() - dt.timedelta(seconds=1)
        db.session.commit()
    assert "ana" not in region(luis, request_id).split("</form>", 1)[1]
    token = csrf_token(luis, "/staff/")
    luis.post(f"/staff/requests/{request_id}/call", data={"csrf_token": token})
    assert staff_call_jobs(app) == 2
    with app.app_context():
        rows = db.session.scalars(sa.select(reservations.CallBack).order_by("id")).all()
        assert [(r.username, r.open_slot, r.state) for r in rows] == [
            ("ana", None, "expired"),
            ("luis", 1, "queued"),
        ]


def test_a_reservation_is_taken_once_by_two_sessions_at_once(app):
    """Two web processes press at the same moment: each app context has its own session and
    connection, and the database lets one in. The first holds its transaction open (reserved,
    not committed) while the second tries; the second waits for it, then finds it taken."""
    results: dict[str, object] = {}

    def second() -> None:
        with app.app_context():
            results["luis"] = reservations.reserve(None, 4242, "luis")
            held = reservations.holder(None, 4242)
            results["holder"] = held.username if held else None
            db.session.commit()

    with app.app_context():
        assert reservations.reserve(None, 4242, "ana") is not None  # not committed yet
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)  # it waits on the first transaction's lock (both databases)
        db.session.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert results == {"luis": None, "holder": "ana"}
    with app.app_context():
        rows = db.session.execute(
            sa.select(reservations.CallBack.username, reservations.CallBack.open_slot)
        ).all()
        assert rows == [("ana", 1)]


# 2. The live state -------------------------------------------------------------------------


@responses.activate
def test_the_card_follows_the_call_without_a_reload(app, client, ana, luis, make_request):
    request_id = make_request(callback_number=FAMILY)
    assert not polls(region(client, request_id)) and phase(region(client, request_id)) == "idle"
    press_call_back(client, request_id)
    html = region(client, request_id)
    assert phase(html) == "queued" and polls(html) and "Calling…" in html
    assert 'id="waiting" hx-swap-oob="true"' in html and "1 waiting" in html
    assert "ana is calling" not in html
    theirs = region(luis, request_id)
    assert "Waiting for the hotline to place ana&#39;s call" in theirs and polls(theirs)
    sent, _ = place_queued_call(app)
    assert "Ringing your phone" in region(client, request_id)
    leg = staff_leg(client, sent)
    assert "You answered: press 1" in region(client, request_id)
    leg.press("1")
    assert "Calling the family…" in region(client, request_id)
    number = leg.twiml.find("Dial/Number")
    leg.post(number.get("statusCallback"), CallStatus="in-progress")
    html = region(client, request_id)
    # While on the line, nobody answers "how did it go" yet: that would end the hold mid-call.
    assert "Connected to the family." in html and "Spoke with the family" not in html
    assert "Spoke with the family" not in region(luis, request_id)  # ana's call: ana answers
    leg.follow(leg.twiml.find("Dial").get("action"), DialCallStatus="completed")
    html = region(client, request_id)
    # ana's answer buttons stay still (no polling swaps them from under her keyboard)...
    assert "The call has ended. How did it go?" in html and not polls(html)
    assert "Spoke with the family" in html
    assert polls(region(luis, request_id))  # ...while luis's card follows until she answers
    leg.press("1")
    html = region(client, request_id)
    assert phase(html) == "done" and not polls(html)  # final: the polling stops
    assert "Reached the family" in html and "0 waiting" in html  # the header's count follows


@responses.activate
def test_a_refused_call_is_said_in_plain_words(app, client, ana, make_request):
    request_id = make_request()
    press_call_back(client, request_id)
    responses.post(
        CALLS,
        status=400,
        json={
            "code": 21215,
            "message": "Account not authorized to call +13125550199. Perhaps you need to enable "
            "some international permissions: https://www.twilio.com/console/voice/calls/geo-perm",
            "status": 400,
        },
    )
    jobs.run_pending(app)
    html = region(client, request_id)
    assert not polls(html) and 'class="callstate tone-error"' in html
    assert "Twilio refused the call: the number is not allowed" in html
    assert "https://" not in html and "+13125550199" not in html
    assert ">Call back<span" in html  # free to try again


# 3. The outcome is the staff member's --------------------------------------------------------

CHOICES = [
    ("1", "reached", "reached"),
    ("2", "voicemail", "trying"),
    ("3", "wrong-number", "trying"),
    ("4", "try-later", "trying"),
]


@responses.activate
@pytest.mark.parametrize(("digit", "choice", "after"), CHOICES)
def test_each_answer_on_the_phone(app, client, ana, make_request, digit, choice, after):
    request_id = make_request(callback_number=FAMILY)
    leg, sent = answered_call(app, client, request_id)
    assert status(app, request_id) == "new"  # Twilio's "completed" decides nothing
    ask = leg.twiml.find("Gather")
    assert ask.get("numDigits") == "1"
    assert "3 for a wrong number, 4 to try again later" in leg.heard()
    leg.press(digit)
    assert "noted on the request" in leg.heard()
    # Twilio repeats the webhooks; the staff leg ends: nothing is recorded twice.
    leg.post(ask.get("action"), Digits=digit)
    leg.post(ask.get("action"), Digits="1")
    leg.post(sent["StatusCallback"], CallStatus="completed")
    outcomes = [k for k in kinds(app, request_id) if k[0] == "outcome"]
    assert outcomes == [("outcome", "ana", choice, 83)]
    assert status(app, request_id) == after
    page = client.get("/staff/").get_data(as_text=True)
    waiting = "0 waiting" if choice == "reached" else "1 waiting"
    assert waiting in page
    if choice == "wrong-number":
        assert "call-back: wrong number, 1:23 (whoever answered is not the family" in page
    if choice == "voicemail":
        assert "Trying · 1 attempt" in page and "Left a voicemail; the family still waits." in page


@responses.activate
@pytest.mark.parametrize(("digit", "choice", "after"), CHOICES)
def test_each_answer_on_the_card(app, client, ana, make_request, digit, choice, after):
    request_id = make_request(callback_number=FAMILY)
    leg, sent = answered_call(app, client, request_id, duration="61")
    # No key: the phone says to answer on the card, and the card asks.
    leg.follow(leg.twiml.find("Gather").get("action"), Digits="")
    assert "How did the call go?" in leg.heard()  # asked again after a wrong key
    assert leg.post(sent["StatusCallback"], CallStatus="completed").status_code == 204
    assert [k for k in kinds(app, request_id) if k[0] == "outcome"] == []  # not "not-connected"
    html = region(client, request_id)
    attempt = re.search(r'name="attempt" value="(\d+)"', html)[1]
    token = csrf_token(client, "/staff/")
    answer = client.post(
        f"/staff/requests/{request_id}/callstate?next=/staff/",
        data={"csrf_token": token, "attempt": attempt, "choice": choice},
        headers=HX,
    ).get_data(as_text=True)
    assert "Noted. Thank you." in answer and "Spoke with the family" not in answer
    # Pressed twice (or a key on the phone after all): recorded once.
    again = client.post(
        f"/staff/requests/{request_id}/callstate?next=/staff/",
        data={"csrf_token": token, "attempt": attempt, "choice": "reached"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "already noted" in again
    leg.post(leg.twiml.find("Gather").get("action"), Digits="1")
    assert [k for k in kinds(app, request_id) if k[0] == "outcome"] == [
        ("outcome", "ana", choice, 61)
    ]
    assert status(app, request_id) == after
    waiting = "0 waiting" if choice == "reached" else "1 waiting"
    assert waiting in answer  # the header's count, swapped in beside the card


@responses.activate
def test_only_the_caller_answers_while_the_call_holds(app, client, ana, luis, make_request):
    request_id = make_request()
    answered_call(app, client, request_id)
    attempt = re.search(r'name="attempt" value="(\d+)"', region(client, request_id))[1]
    answer = luis.post(
        f"/staff/requests/{request_id}/callstate",
        data={"csrf_token": csrf_token(luis, "/staff/"), "attempt": attempt, "choice": "reached"},
        headers=HX,
    ).get_data(as_text=True)
    assert "ana is on this call; they say how it went." in answer
    assert status(app, request_id) == "new"


@responses.activate
def test_a_voicemail_keeps_the_family_waiting(app, client, ana, make_request):
    request_id = make_request(callback_number=FAMILY)
    leg, _ = answered_call(app, client, request_id, duration="25")
    leg.press("2")
    assert status(app, request_id) == "trying"
    with app.app_context():
        from ivr.requests import listing

        assert listing.waiting_counts() == {"es": 1}
        row = db.session.get(calling.CallbackRequest, request_id)
        assert row.handled_at is None  # the retention clock has not started
    page = client.get("/staff/").get_data(as_text=True)
    assert "call-back: left a voicemail, 0:25" in page and "(1) " in page


# 4. Missed calls go through the same reservation -------------------------------------------


@responses.activate
def test_a_missed_call_is_reserved_and_asks_too(app, client, ana, luis):
    from ivr.requests.models import Call

    with app.app_context():
        call = Call(call_sid="CA" + "5" * 32, from_number="+13125550111", language="en")
        db.session.add(call)
        db.session.commit()
        call_id = call.id
    token = csrf_token(client, "/staff/")
    client.post(f"/staff/missed/{call_id}/call", data={"csrf_token": token})
    answer = luis.post(
        f"/staff/missed/{call_id}/call",
        data={"csrf_token": csrf_token(luis, "/staff/")},
        headers=HX,
    ).get_data(as_text=True)
    assert "ana is calling this caller now." in answer and polls(answer)
    sent, _ = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("1")
    leg.follow(leg.twiml.find("Dial").get("action"), DialCallStatus="completed")
    html = client.get(f"/staff/missed/{call_id}/callstate", headers=HX).get_data(as_text=True)
    assert "How did it go?" in html
    attempt = re.search(r'name="attempt" value="(\d+)"', html)[1]
    answer = client.post(
        f"/staff/missed/{call_id}/callstate",
        data={"csrf_token": token, "attempt": attempt, "choice": "voicemail"},
        headers=HX,
    ).get_data(as_text=True)
    assert "Left a voicemail; the caller still waits." in answer and not polls(answer)


def test_an_ended_session_never_puts_the_login_page_in_a_card(app, client, ana, make_request):
    request_id = make_request()
    token = csrf_token(client, "/staff/")
    StaffAuth(client).logout()
    poll = client.get(f"/staff/requests/{request_id}/callstate", headers=HX)
    assert poll.status_code == 286 and poll.get_data() == b""  # htmx stops polling
    press = client.post(
        f"/staff/requests/{request_id}/call", data={"csrf_token": token}, headers=HX
    )
    assert press.headers["HX-Refresh"] == "true"  # the whole page reloads and says why
    assert staff_call_jobs(app) == 0


def test_a_call_the_worker_never_started_frees_the_family(app, client, ana, luis, make_request):
    request_id = make_request()
    press_call_back(client, request_id)
    with app.app_context():
        held = db.session.scalar(sa.select(reservations.CallBack))
        held.started_at = utcnow() - dt.timedelta(minutes=4)  # the worker was down since
        db.session.commit()
    html = region(client, request_id)
    assert "The call was not placed: the hotline&#39;s background worker did not start it" in html
    assert not polls(html)
    token = csrf_token(luis, "/staff/")
    luis.post(f"/staff/requests/{request_id}/call", data={"csrf_token": token})
    assert staff_call_jobs(app) == 2


@responses.activate
def test_twilio_down_for_every_try_frees_the_family(app, client, ana, luis, make_request):
    """Twilio unreachable on each of the job's tries: the last one records it, so the card says
    so and the reservation does not hold the family for its full time."""
    request_id = make_request()
    press_call_back(client, request_id)
    down = responses.post(CALLS, status=503, json={"code": 20500, "message": "down"})
    for _ in range(3):
        with app.app_context():
            db.session.execute(sa.update(jobs.Job).values(run_at=utcnow()))
            db.session.commit()
        jobs.run_pending(app)
    assert down.call_count == 3
    assert [k[2] for k in kinds(app, request_id) if k[0] == "outcome"] == ["not-connected"]
    html = region(client, request_id)
    assert "Twilio could not be reached" in html and not polls(html)
    luis.post(
        f"/staff/requests/{request_id}/call", data={"csrf_token": csrf_token(luis, "/staff/")}
    )
    assert staff_call_jobs(app) == 2


# Review of the merged queue (findings 1-5) -----------------------------------------------------


@responses.activate
def test_a_long_call_keeps_the_family_held(app, client, ana, luis, make_request):
    """A call with the family past CALLBACK_RESERVATION_MINUTES still holds it: each step of
    the call holds it again, a connected call for hours; a colleague cannot ring the family."""
    request_id = make_request(callback_number=FAMILY)
    press_call_back(client, request_id)
    sent, _ = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("1")
    leg.post(leg.twiml.find("Dial/Number").get("statusCallback"), CallStatus="in-progress")
    with app.app_context():  # as if the press was 40 minutes ago
        held = db.session.scalar(sa.select(reservations.CallBack))
        held.started_at = utcnow() - dt.timedelta(minutes=40)
        assert held.expires_at.replace(tzinfo=dt.UTC) > utcnow() + dt.timedelta(hours=3)
        db.session.commit()
    assert "ana is talking with the family" in region(luis, request_id)
    token = csrf_token(luis, "/staff/")
    luis.post(f"/staff/requests/{request_id}/call", data={"csrf_token": token})
    assert staff_call_jobs(app) == 1  # no second call


@responses.activate
def test_an_answer_for_another_card_or_mid_call_is_refused(app, client, ana, make_request):
    request_id = make_request(callback_number=FAMILY)
    other = make_request(callback_number=FAMILY)
    press_call_back(client, request_id)
    sent, attempt = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("1")
    leg.post(leg.twiml.find("Dial/Number").get("statusCallback"), CallStatus="in-progress")
    token = csrf_token(client, "/staff/")

    def answer(card: int) -> str:
        return client.post(
            f"/staff/requests/{card}/callstate",
            data={"csrf_token": token, "attempt": str(attempt), "choice": "reached"},
            headers=HX,
        ).get_data(as_text=True)

    assert "no answer to give now" in answer(other)  # this attempt is not the other card's
    assert "still on" in answer(request_id)  # connected: said when the call has ended
    assert [k for k in kinds(app, request_id) if k[0] == "outcome"] == []
    assert status(app, request_id) == "new" and status(app, other) == "new"


@responses.activate
def test_a_call_twilio_may_have_placed_still_holds_and_claims_nothing(
    app, client, ana, luis, make_request
):
    """Twilio's answer lost (read timeout): the call may have been placed, so the family stays
    held a short while and no "the family was not called" is written."""
    request_id = make_request(callback_number=FAMILY)
    press_call_back(client, request_id)
    responses.post(CALLS, body=requests.exceptions.ReadTimeout("read timed out"))
    jobs.run_pending(app)
    assert [k for k in kinds(app, request_id) if k[0] == "outcome"] == []
    token = csrf_token(luis, "/staff/")
    luis.post(f"/staff/requests/{request_id}/call", data={"csrf_token": token})
    assert staff_call_jobs(app) == 1
    with app.app_context():
        held = db.session.scalar(sa.select(reservations.CallBack))
        assert held.expires_at.replace(tzinfo=dt.UTC) < utcnow() + dt.timedelta(minutes=3)


@responses.activate
def test_a_late_staff_leg_does_not_dial_a_family_held_by_someone_else(
    app, client, ana, luis, make_request
):
    request_id = make_request(callback_number=FAMILY)
    press_call_back(client, request_id)
    sent, _ = place_queued_call(app)
    with app.app_context():  # ana's hold ended (its time); luis presses Call back
        held = db.session.scalar(sa.select(reservations.CallBack))
        held.expires_at = utcnow() - dt.timedelta(seconds=1)
        db.session.commit()
    token = csrf_token(luis, "/staff/")
    luis.post(f"/staff/requests/{request_id}/call", data={"csrf_token": token})
    assert staff_call_jobs(app) == 2
    leg = staff_leg(client, sent)  # ana's phone rings only now, and she presses 1
    leg.press("1")
    assert leg.twiml.find("Dial") is None and leg.twiml.find("Hangup") is not None
    assert "a colleague may be calling them now" in leg.heard()


@responses.activate
def test_the_staff_phone_ending_while_dialling_leaves_the_outcome_to_the_dial(
    app, client, ana, make_request
):
    """The staff leg's end may be reported before Dial's action: while the family was being
    dialled, it records nothing, and Dial's action says how the family's leg ended."""
    request_id = make_request(callback_number=FAMILY)
    press_call_back(client, request_id)
    sent, _ = place_queued_call(app)
    leg = staff_leg(client, sent)
    leg.press("1")
    dial_action = leg.twiml.find("Dial").get("action")
    assert leg.post(sent["StatusCallback"], CallStatus="completed").status_code == 204
    assert [k for k in kinds(app, request_id) if k[0] == "outcome"] == []
    leg.follow(dial_action, DialCallStatus="completed", DialCallDuration="40")
    assert phase(region(client, request_id)) == "asking"  # the family answered after all


@responses.activate
def test_a_poll_that_saw_the_state_already_gets_nothing_to_swap(app, client, ana, make_request):
    """A colleague's card polls every 2 s through a whole call: while its state is unchanged the
    answer is 204 (htmx swaps nothing, so a screen reader hears nothing again); a change sends
    the new region."""
    request_id = make_request(callback_number=FAMILY)
    press_call_back(client, request_id)
    html = region(client, request_id)
    seen = re.search(r"hx-vals='\{\"seen\": \"([0-9a-f]+)\"\}'", html)[1]
    url = f"/staff/requests/{request_id}/callstate?next=/staff/&seen={seen}"
    assert client.get(url, headers=HX).status_code == 204
    place_queued_call(app)  # the phone rings: news
    changed = client.get(url, headers=HX)
    assert changed.status_code == 200 and "Ringing your phone" in changed.get_data(as_text=True)
