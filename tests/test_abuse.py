"""Issue 20: nobody can spend the firm's money or learn a family's business through the line.

Tried as the security review tried it (security.md H1, M1, M2): signed calls through the
emulator from the caller IDs it used (+960 Maldives, +882 international network, +1 900
premium, an ordinary U.S. mobile three times), Twilio's Messages and Calls APIs faked at their
HTTP edge with `responses`, the worker's jobs run as it runs them, and the stored rows read.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest
import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.requests.service import callers

from .conftest import TOKEN
from .test_callback import heard_digits, record, rows, to_recording
from .test_families import (
    ATTESTED,
    HOTLINE,
    MESSAGES,
    PUBLIC,
    REAL,
    THURSDAY,
    first_request,
    gathers,
    press_at,
    requests_and_messages,
    to_ending,
)
from .test_staffcall import (
    ANA_PHONE,
    CALLS,
    add_staff,
    press_call_back,
    staff_leg,
)
from .test_staffcall import HOTLINE as CALLBACK_FROM

STAFF = "+13125550199"
ALERTS_FROM = "+13125550100"
MALDIVES = "+9607781234"
SATELLITE = "+8821600001234"
PREMIUM = "+19002223333"
MOBILE = "+13125550123"  # an ordinary U.S. number (the emulator's default caller)


def messages_to(number: str | None = None) -> list[dict[str, str]]:
    """What the Messages API was asked to send (to `number` only, if given)."""
    sent = [
        {k: v[0] for k, v in urllib.parse.parse_qs(c.request.body).items()}
        for c in responses.calls
        if c.request.url.startswith(MESSAGES)
    ]
    return [m for m in sent if number is None or m["To"] == number]


def job_kinds(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(jobs.Job.kind).order_by(jobs.Job.id)))


def make_due(app) -> None:
    """Pretend the time a job waits for (the end of the hour) has passed."""
    with app.app_context():
        db.session.execute(
            sa.update(jobs.Job).values(run_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        )
        db.session.commit()


def to_number_step(call: Call, lang: str = "es") -> None:
    to_recording(call, lang)
    record(call)


# Texts: only to numbers the policy allows ------------------------------------------------------
@pytest.fixture
def sms_app(make_app):
    return make_app(SMS_FROM=HOTLINE, PUBLIC_URL=PUBLIC)


@pytest.mark.parametrize("caller", [MALDIVES, SATELLITE, PREMIUM])
@responses.activate
def test_a_refused_caller_id_is_never_offered_a_text_nor_sent_one(sms_app, caller):
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "1" * 32, "status": "queued"})
    call = Call(sms_app.test_client(), TOKEN, from_number=caller)
    to_number_step(call)
    # Its own number is not offered as the one to call back: the caller is asked to type one.
    assert REAL.text("es", "number_readback") not in call.heard()
    assert REAL.text("es", "number_ask") in call.heard()
    call.press("01113125550188#")  # a U.S. number, typed from abroad
    call.press("1")  # issue 23: read back, 1 confirms
    call.press("12345678#")
    call.press("1")  # issue 23: read back, 1 confirms
    [row] = rows(sms_app)
    assert row.callback_number == "+13125550188" and row.caller_number == caller
    # The ending reads the reference, but the text is simply not offered.
    assert heard_digits(call, "es").split().count(row.reference) == 2
    assert REAL.text("es", "sms_offer") not in call.heard() and "text" not in gathers(call)
    # Even a key press posted to the offer's address queues nothing.
    call.follow(f"/voice/es/closing/text?ref={row.reference}", Digits="1")
    assert REAL.text("es", "sms_sent") not in call.heard()
    jobs.run_pending(sms_app)
    assert "reference-sms" not in job_kinds(sms_app)
    assert messages_to() == []


@responses.activate
def test_an_ordinary_mobile_calling_three_times_gets_one_text_a_day(make_app):
    clock = [dt.datetime(2026, 3, 5, 15, 0, tzinfo=dt.UTC)]
    app = make_app(SMS_FROM=HOTLINE, PUBLIC_URL=PUBLIC, CLOCK=lambda: clock[0])
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "1" * 32, "status": "queued"})

    def call_and_ask(lang: str, **verified: str) -> tuple[Call, str]:
        call = Call(app.test_client(), TOKEN, from_number=MOBILE, **verified)
        to_ending(call, lang)
        reference = rows(app)[-1].reference
        press_at(call, "text", "1")
        return call, reference

    first, _ = call_and_ask("en")
    assert REAL.text("en", "sms_sent") in first.heard()
    for _ in range(2):  # twice more within minutes, pressing 1 each time
        clock[0] += dt.timedelta(minutes=3)
        call, reference = call_and_ask("en")
        # No second text. The caller ID proves nothing, so nothing says this number called
        # today: the words of any text not sent, and this call's reference once more.
        assert REAL.text("en", "sms_sent") not in call.heard()
        assert REAL.text("en", "sms_already_sent") not in call.heard()
        assert REAL.text("en", "sms_unavailable") in call.heard()
        assert heard_digits(call, "en").split() == [reference]
    # From a fully attested caller ID the caller hears it was sent today, in either language
    # (the earlier requests called back, so this is a first message again, not an added one).
    for lang in ("en", "es"):
        with app.app_context():
            db.session.execute(sa.update(CallbackRequest).values(status="called_back"))
            db.session.commit()
        call, reference = call_and_ask(lang, stir_verstat=ATTESTED)
        assert REAL.text(lang, "sms_already_sent") in call.heard()
        assert REAL.text(lang, "sms_write_down") in call.heard()
        assert heard_digits(call, lang).split() == [reference]
    jobs.run_pending(app)
    assert len(messages_to(MOBILE)) == 1
    assert [r.sms_status for r in rows(app)] == ["queued", None, None, None, None]
    # A day later the number may have a text again.
    clock[0] += dt.timedelta(hours=24, minutes=1)
    call, _ = call_and_ask("en")
    assert REAL.text("en", "sms_sent") in call.heard()
    jobs.run_pending(app)
    assert len(messages_to(MOBILE)) == 2


@responses.activate
def test_past_the_daily_cap_the_text_is_not_offered_and_staff_are_told_once(make_app):
    app = make_app(
        SMS_FROM=HOTLINE,
        PUBLIC_URL=PUBLIC,
        TEXTS_PER_DAY="2",
        ALERT_SMS_TO=STAFF,
        ALERT_SMS_FROM=ALERTS_FROM,
    )
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued"})
    numbers = ["+13125550141", "+13125550142", "+13125550143", "+13125550144"]
    for caller in numbers:
        call = Call(app.test_client(), TOKEN, from_number=caller)
        to_ending(call)
        if caller in numbers[:2]:
            press_at(call, "text", "1")
            assert REAL.text("es", "sms_sent") in call.heard()
        else:  # the day's texts are used up: no offer at all
            assert REAL.text("es", "sms_offer") not in call.heard()
            assert "text" not in gathers(call)
            assert call.twiml.find("Hangup") is not None
    assert job_kinds(app).count("text-cap-sms") == 1  # told once, however many calls follow
    jobs.run_pending(app)
    assert [m["To"] for m in messages_to() if m["From"] == HOTLINE] == numbers[:2]
    [notice] = [m for m in messages_to(STAFF) if "TEXTS_PER_DAY" in m["Body"]]
    assert notice["Body"].startswith("Reference texts stopped for ")
    assert "SMS pumping" in notice["Body"]


@responses.activate
def test_staff_alerts_past_the_hourly_cap_come_as_one_digest(make_app):
    moment = dt.datetime(2026, 3, 5, 15, 20, tzinfo=dt.UTC)  # 9:20 in Chicago
    app = make_app(
        ALERT_SMS_TO=STAFF,
        ALERT_SMS_FROM=ALERTS_FROM,
        ALERT_GRACE_SECONDS="0",
        PUBLIC_URL=PUBLIC,
        ALERTS_PER_HOUR="3",
        CLOCK=lambda: moment,
    )
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "3" * 32, "status": "queued"})
    with app.app_context():
        for n in range(10):
            callers.save(
                f"CA{n:032x}",
                reference=f"{200000 + n}",
                language="es",
                step="complete",
                caller_number=MOBILE,
                recording_duration=20,
            )
    jobs.run_pending(app)
    sent = messages_to(STAFF)
    assert len(sent) == 3 and all(m["Body"].startswith("New callback request #") for m in sent)
    assert job_kinds(app).count("digest-sms") == 1  # one digest for the hour, not seven
    jobs.run_pending(app)
    assert len(messages_to(STAFF)) == 3  # the digest waits for the end of the hour
    make_due(app)
    jobs.run_pending(app)
    digest = messages_to(STAFF)[3:]
    assert len(digest) == 1
    assert digest[0]["Body"].startswith("7 new requests since 9:00 CST")
    assert f"{PUBLIC}/staff/" in digest[0]["Body"]


# Call-backs: only to numbers the policy allows --------------------------------------------------
@pytest.mark.parametrize(
    ("lang", "typed", "prompt"),
    [
        ("en", "19002223333", "number_refused_special"),
        ("es", "19002223333", "number_refused_special"),
        ("en", "0118821600001234", "number_refused_far"),
        ("es", "0118821600001234", "number_refused_far"),
        ("es", "0119607781234", "number_refused_country"),
    ],
)
def test_a_typed_premium_or_satellite_number_is_refused_with_the_reason(app, lang, typed, prompt):
    call = Call(app.test_client(), TOKEN, from_number=MOBILE)
    to_number_step(call, lang)
    call.press(typed + "#")
    heard = call.heard()
    # Why, in plain words, then asked again (here: their own number, or another).
    assert REAL.text(lang, prompt) in heard
    assert heard.index(REAL.text(lang, prompt)) < heard.index(REAL.text(lang, "number_confirm"))
    assert REAL.text(lang, "anumber_ask") not in heard
    assert rows(app)[0].callback_number is None
    call.press("3125550188#")
    call.press("1")  # issue 23: read back, 1 confirms
    assert REAL.text(lang, "anumber_ask") in call.heard()
    assert rows(app)[0].callback_number == "+13125550188"


def test_the_refusals_are_said_in_plain_words_in_both_languages():
    assert REAL.text("en", "number_refused_far") == (
        "We cannot call satellite phones or international network numbers."
    )
    assert REAL.text("es", "number_refused_far") == (
        "No podemos llamar a teléfonos satelitales ni a números de redes internacionales."
    )
    assert REAL.text("es", "number_refused_special").startswith("No podemos llamar a ese número.")


@pytest.fixture
def callback_app(make_app):
    return make_app(CALLBACK_FROM_NUMBER=CALLBACK_FROM, PUBLIC_URL=PUBLIC, STAFF_LANGUAGE="en")


@responses.activate
def test_staff_cannot_call_back_a_refused_number_and_see_why(callback_app, make_request):
    from tests.conftest import StaffAuth

    app = callback_app
    client = app.test_client()
    add_staff(app, "ana", ANA_PHONE)
    StaffAuth(client).login()
    satellite = make_request(callback_number=SATELLITE, caller_number="Anonymous")
    premium = make_request(callback_number=None, caller_number=PREMIUM)
    mexico = make_request(callback_number="+525512345678")
    page = client.get("/staff/").get_data(as_text=True)
    assert f"The hotline will not call it: {SATELLITE} is a satellite phone" in page
    assert "no country (international network)" in page
    assert f"The hotline will not call it: {PREMIUM} is a premium-rate" in page
    assert '<span class="country">Mexico</span>' in page
    for request_id in (satellite, premium):
        response = press_call_back(client, request_id)
        assert response.status_code == 302
    assert "staff-call" not in job_kinds(app)
    jobs.run_pending(app)
    assert len(responses.calls) == 0  # Twilio was never asked to call anyone
    # Mexico is in CALLBACK_COUNTRIES: that call-back is placed.
    press_call_back(client, mexico)
    assert job_kinds(app).count("staff-call") == 1


@responses.activate
def test_a_number_refused_after_the_button_is_not_dialled(callback_app, make_request):
    from tests.conftest import StaffAuth

    app = callback_app
    client = app.test_client()
    add_staff(app, "ana", ANA_PHONE)
    StaffAuth(client).login()
    request_id = make_request(callback_number="+525512345678")
    press_call_back(client, request_id)
    create = responses.post(CALLS, status=201, json={"sid": "CA" + "7" * 32, "status": "queued"})
    jobs.run_pending(app)
    sent = dict(urllib.parse.parse_qsl(create.calls[0].request.body))
    leg = staff_leg(client, sent)  # the whisper: "press 1 to connect"
    # Before the staff member's 1, the number became one the policy refuses (written into the
    # row here, as an old request or a later edit could have it).
    with app.app_context():
        db.session.execute(
            sa.update(CallbackRequest).values(callback_number=SATELLITE, caller_number=SATELLITE)
        )
        db.session.commit()
    leg.press("1")
    assert leg.twiml.find("Dial") is None
    assert SATELLITE not in " ".join(el.text or "" for el in leg.twiml.iter())


# Caller ID is not identity ----------------------------------------------------------------------
@pytest.fixture
def again_app(make_app):
    return make_app(CLOCK=lambda: THURSDAY)


@pytest.mark.parametrize(
    "verstat",
    [
        "",
        "TN-Validation-Passed-B",
        "TN-Validation-Passed-C",
        "TN-Validation-Failed",
        "No-TN-Validation",
    ],
)
def test_without_full_attestation_nothing_of_the_earlier_request_is_said(again_app, verstat):
    first = first_request(again_app, "es", days_ago=0.1)
    call = Call(
        again_app.test_client(), TOKEN, from_number=first.caller_number, stir_verstat=verstat
    )
    call.answer()
    call.press("2")
    heard = call.heard()
    for prompt in ("again_from_today", "reference_number", "again_call_back", "option_add"):
        assert REAL.text("es", prompt) not in heard
    assert first.reference not in heard_digits(call, "es")
    assert REAL.text("es", "option_callback") in heard
    # 8 leaves a new request: no reference asked for, nothing joined to the first.
    call.press("8")
    assert REAL.text("es", "record_intro") in call.heard()
    assert REAL.text("es", "reference_ask") not in call.heard()
    record(call)
    requests, messages = requests_and_messages(again_app)
    assert len(requests) == 2 and messages == []
    assert requests[1].call_sid == call.sid


def attested_call_to_reference(app) -> tuple[CallbackRequest, Call]:
    first = first_request(app, "es")
    call = Call(app.test_client(), TOKEN, from_number=first.caller_number, stir_verstat=ATTESTED)
    call.answer()
    call.press("2")
    assert REAL.text("es", "again_call_back") in call.heard()  # recognised: fully attested
    call.press("8")
    heard = call.heard()
    assert REAL.text("es", "reference_ask") in heard
    assert REAL.text("es", "add_intro") not in heard and call.twiml.find("Record") is None
    return first, call


def test_a_recognised_caller_types_the_reference_before_adding(again_app):
    first, call = attested_call_to_reference(again_app)
    call.press(first.reference + "#")
    assert REAL.text("es", "add_intro") in call.heard()
    record(call)
    assert REAL.text("es", "added") in call.heard()
    requests, [message] = requests_and_messages(again_app)
    assert len(requests) == 1 and message.request_id == first.id


def test_a_wrong_reference_gets_one_retry(again_app):
    first, call = attested_call_to_reference(again_app)
    call.press("999999#")
    assert REAL.text("es", "reference_wrong") in call.heard()
    assert REAL.text("es", "reference_ask") in call.heard()
    assert first.reference not in heard_digits(call, "es")
    call.press(first.reference + "#")
    assert REAL.text("es", "add_intro") in call.heard()
    record(call)
    requests, messages = requests_and_messages(again_app)
    assert len(requests) == 1 and [m.request_id for m in messages] == [first.id]


def test_a_reference_wrong_twice_becomes_a_new_request(again_app):
    first, call = attested_call_to_reference(again_app)
    call.press("999999#")
    call.press("#")  # nothing typed counts as a try too
    heard = call.heard()
    assert REAL.text("es", "reference_new") in heard
    assert REAL.text("es", "record_intro") in heard and REAL.text("es", "add_intro") not in heard
    assert first.reference not in heard_digits(call, "es")
    record(call)
    # The ending reads this call's own new reference, not the first one.
    requests, messages = requests_and_messages(again_app)
    assert messages == [] and len(requests) == 2
    new = requests[1]
    assert new.call_sid == call.sid and new.reference != first.reference
    call.press("1")
    call.press("12345678#")
    call.press("1")  # issue 23: read back, 1 confirms
    assert heard_digits(call, "es").split().count(new.reference) == 2
    assert first.reference not in heard_digits(call, "es")
    with again_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RequestMessage)) == 0
