"""Alerts: SMS faked at Twilio's HTTP edge, e-mail through a real SMTP server on loopback,
retries after failures, and exactly one alert per request and recipient."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import socket
import urllib.parse
from email import message_from_string, policy

import pytest
import responses
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from ivr import callbacks
from ivr.cli import main
from ivr.db import db
from ivr.staff import alerts, display, transports
from ivr.staff.models import Alert
from tests.conftest import TOKEN
from tests.twilio_sim import Call

SID = "AC" + "0" * 32
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
RECORDINGS = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings"
STAFF_PHONE = "+13125550199"
SENDER = "+13125550100"
PUBLIC = "https://hotline.example.org"


class Inbox:
    """An aiosmtpd handler that keeps messages, and can refuse the first few."""

    def __init__(self):
        self.messages: list[tuple[list[str], str]] = []
        self.refuse = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 Try again later"
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{controller.port}"
    yield inbox
    controller.stop()


@pytest.fixture
def alert_app(make_app, smtp):
    return make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER,
                    ALERT_EMAIL_TO="desk@example.org", SMTP_URL=smtp.url, PUBLIC_URL=PUBLIC,
                    ALERTS_DELIVERY="worker")


def sms_ok() -> responses.BaseResponse:
    return responses.post(MESSAGES, status=201, json={"sid": "SM" + "1" * 32, "status": "queued"})


def create_request(app, **fields) -> int:
    with app.app_context():
        row = callbacks.save("CA" + secrets.token_hex(16), language="es", step="complete",
                             caller_number="+13125550123", callback_number="+13125550123",
                             a_number="012345678", recording_duration=20, **fields)
        return row.id


def all_alerts(app) -> list[Alert]:
    with app.app_context():
        found = db.session.scalars(sa.select(Alert).order_by(Alert.channel)).all()
        db.session.expunge_all()
        return found


def make_due(app) -> None:
    """Pretend the back-off has passed."""
    with app.app_context():
        db.session.execute(sa.update(Alert).values(next_attempt_at=dt.datetime(2000, 1, 1,
                                                                               tzinfo=dt.UTC)))
        db.session.commit()


def deliver(app) -> int:
    with app.app_context():
        return alerts.deliver_due()


@responses.activate
def test_sms_and_email_sent_once(alert_app, smtp):
    sms = sms_ok()
    request_id = create_request(alert_app)
    assert [(a.channel, a.status) for a in all_alerts(alert_app)] == [
        ("email", "pending"), ("sms", "pending")]
    assert sms.call_count == 0 and smtp.messages == []  # nothing sent on the request's path
    assert deliver(alert_app) == 2
    assert deliver(alert_app) == 0  # and never again

    assert sms.call_count == 1
    body = urllib.parse.parse_qs(sms.calls[0].request.body)
    assert body["To"] == [STAFF_PHONE] and body["From"] == [SENDER]
    text = body["Body"][0]
    reference = text.split("#")[1].split(" ")[0]
    assert "Spanish" in text and "(312) 555-0123" in text
    assert f"{PUBLIC}/staff/requests/{request_id}" in text
    assert "012345678" not in text and "012-345-678" not in text  # no A-number in an SMS
    assert sms.calls[0].request.headers["Authorization"].startswith("Basic ")

    [(to, raw)] = smtp.messages
    email = message_from_string(raw, policy=policy.default)
    assert to == ["desk@example.org"] and email["From"] == "hotline@localhost"
    assert email["Subject"] == f"New callback request #{reference}"
    text = email.get_content().replace("\r\n", "\n")
    assert f"Listen: {PUBLIC}/staff/requests/{request_id}\n" in text
    assert "Call back: (312) 555-0123." in text and "012345678" not in text
    assert all(a.status == "sent" and a.attempts == 1 for a in all_alerts(alert_app))


@responses.activate
def test_failing_sms_is_retried_then_sent(alert_app, smtp):
    failing = responses.post(MESSAGES, status=500, json={"code": 20500, "message": "boom"})
    create_request(alert_app)
    deliver(alert_app)
    sms = next(a for a in all_alerts(alert_app) if a.channel == "sms")
    assert (sms.status, sms.attempts) == ("pending", 1)
    assert "500" in sms.last_error
    assert seconds_until(sms.next_attempt_at) > 0
    assert deliver(alert_app) == 0  # not due yet: backing off
    assert failing.call_count == 1

    responses.replace(responses.POST, MESSAGES, status=201, json={"sid": "SM1"})
    make_due(alert_app)
    assert deliver(alert_app) == 1
    sms = next(a for a in all_alerts(alert_app) if a.channel == "sms")
    assert (sms.status, sms.attempts, sms.last_error) == ("sent", 2, None)
    assert len(smtp.messages) == 1


@responses.activate
def test_failing_smtp_is_retried_then_sent(alert_app, smtp):
    sms_ok()
    smtp.refuse = 1
    create_request(alert_app)
    assert deliver(alert_app) == 1  # the SMS
    email = next(a for a in all_alerts(alert_app) if a.channel == "email")
    assert (email.status, email.attempts) == ("pending", 1) and "451" in email.last_error
    assert smtp.messages == []
    make_due(alert_app)
    assert deliver(alert_app) == 1
    assert len(smtp.messages) == 1
    assert all(a.status == "sent" for a in all_alerts(alert_app))


@responses.activate
def test_alert_given_up_after_max_attempts(make_app):
    responses.post(MESSAGES, status=500)
    app = make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER, ALERTS_DELIVERY="worker",
                   ALERT_MAX_ATTEMPTS=2)
    create_request(app)
    deliver(app)
    make_due(app)
    deliver(app)
    make_due(app)
    assert deliver(app) == 0
    [alert] = all_alerts(app)
    assert (alert.status, alert.attempts) == ("failed", 2)


def test_claim_is_exclusive_and_a_lost_claim_is_taken_over(make_app):
    app = make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER, ALERTS_DELIVERY="worker")
    create_request(app)
    [alert] = all_alerts(app)
    with app.app_context():
        assert alerts.claim(alert.id) is True
        assert alerts.claim(alert.id) is False  # a second process gets nothing
    make_due(app)  # the claiming process died: its lease ran out
    with app.app_context():
        assert alerts.claim(alert.id) is True


@responses.activate
def test_one_alert_per_request_from_a_real_call(alert_app, smtp):
    """Record action and recording status callback both arrive, twice: still one alert each."""
    sms = sms_ok()
    recording = {"RecordingSid": "RE" + secrets.token_hex(16), "RecordingDuration": "14"}
    recording["RecordingUrl"] = f"{RECORDINGS}/{recording['RecordingSid']}"
    responses.get(recording["RecordingUrl"] + ".mp3", body=b"ID3abc", content_type="audio/mpeg")
    responses.delete(recording["RecordingUrl"] + ".json", status=204)
    call = Call(alert_app.test_client(), TOKEN)
    call.answer()
    call.press("2")
    record = call.press("8").find("Record")
    status_url = record.get("recordingStatusCallback")
    assert call.post(status_url, RecordingStatus="completed", **recording).status_code == 204
    call.follow(record.get("action"), Digits="#", **recording)
    assert call.post(status_url, RecordingStatus="completed", **recording).status_code == 204
    call.follow(record.get("action"), Digits="#", **recording)
    assert deliver(alert_app) == 0  # not due while the caller is still choosing a number
    call.press("1")  # the calling number
    call.press("")  # no A-number ...
    call.press("")  # ... pound again: the request is complete

    assert [(a.channel, a.recipient) for a in all_alerts(alert_app)] == [
        ("email", "desk@example.org"), ("sms", STAFF_PHONE)]
    assert deliver(alert_app) == 2
    assert sms.call_count == 1 and len(smtp.messages) == 1


def test_database_refuses_a_second_alert(alert_app):
    request_id = create_request(alert_app)
    with alert_app.app_context():
        db.session.add(Alert(request_id=request_id, channel="sms", recipient=STAFF_PHONE))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()


@responses.activate
def test_default_delivery_is_a_thread_after_commit(make_app):
    sms = sms_ok()
    app = make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER, PUBLIC_URL=PUBLIC)
    assert app.config["ALERTS_DELIVERY"] == "thread"
    create_request(app)
    threads = app.extensions["ivr.alert_threads"]
    assert len(threads) == 1
    threads[0].join(timeout=10)
    assert not threads[0].is_alive()
    assert sms.call_count == 1
    assert [a.status for a in all_alerts(app)] == ["sent"]


def test_alerts_off_says_so_and_queues_nothing(make_app, caplog):
    with caplog.at_level(logging.INFO):
        app = make_app()
    assert "alerts are off" in caplog.text
    create_request(app)
    assert all_alerts(app) == []
    assert "ivr.alert_threads" not in app.extensions


def test_half_configured_sms_is_reported(make_app, caplog):
    with caplog.at_level(logging.INFO):
        make_app(ALERT_SMS_TO=STAFF_PHONE)
    assert "ALERT_SMS_FROM" in caplog.text and "alerts are off" in caplog.text


@responses.activate
def test_alerts_send_command(alert_app, smtp):
    sms = sms_ok()
    create_request(alert_app)
    runner = alert_app.test_cli_runner()
    result = runner.invoke(main, ["alerts", "list"])
    assert result.exit_code == 0 and result.output.count("pending") == 2
    result = runner.invoke(main, ["alerts", "send"])
    assert result.exit_code == 0, result.output
    assert "2 alert(s) sent" in result.output
    assert sms.call_count == 1 and len(smtp.messages) == 1
    assert runner.invoke(main, ["alerts", "list"]).output == ""


def test_smtp_password_never_sent_without_tls(make_app, smtp, monkeypatch):
    """A server that offers no STARTTLS gets no password (loopback excepted, for relays)."""
    monkeypatch.setattr(transports, "LOOPBACK", ())
    app = make_app(ALERT_EMAIL_TO="desk@example.org", ALERTS_DELIVERY="worker",
                   SMTP_URL=smtp.url.replace("smtp://", "smtp://user:pw@"))
    with app.app_context(), pytest.raises(RuntimeError, match="refusing to send"):
        alerts.send_email("desk@example.org", "s", "b")
    assert smtp.messages == []


def test_alerts_delivery_setting_is_checked(tmp_path):
    from ivr import create_app
    from ivr.settings import SettingsError
    from tests.conftest import base_config

    with pytest.raises(SettingsError, match="ALERTS_DELIVERY"):
        create_app(base_config(tmp_path, ALERTS_DELIVERY="carrier-pigeon"))


@responses.activate
def test_each_commit_of_new_requests_starts_delivery(make_app):
    """Several requests in one session (a journal replay): none waits for the worker."""
    sms = sms_ok()
    app = make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER, ALERT_GRACE_SECONDS=0)
    with app.app_context():
        for _ in range(2):
            callbacks.save("CA" + secrets.token_hex(16), language="en", step="recorded")
    for thread in app.extensions["ivr.alert_threads"]:
        thread.join(timeout=10)
    assert sms.call_count == 2
    assert [a.status for a in all_alerts(app)] == ["sent", "sent"]


# The callback number: alerts wait for the caller to finish (or for the grace) --------------------
@pytest.fixture
def thread_app(make_app):
    """Apps that alert by SMS through delivery threads (the default); their sleeping threads are
    woken and ended after the test."""
    made = []

    def make(**config):
        app = make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER, PUBLIC_URL=PUBLIC,
                       **config)
        made.append(app)
        return app

    yield make
    for app in made:
        alerts.stop_threads(app)


def recorded_call(app, digits: str = "#") -> Call:
    """A real signed call from (312) 555-0123 in Spanish, up to its recording: the request is
    stored, and the caller is now asked for the callback number (or hung up: digits="hangup")."""
    sid = "RE" + secrets.token_hex(16)
    recording = {"RecordingSid": sid, "RecordingUrl": f"{RECORDINGS}/{sid}",
                 "RecordingDuration": "14"}
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press("2")
    record = call.press("8").find("Record")
    call.follow(record.get("action"), Digits=digits, **recording)
    assert call.from_number == "+13125550123"
    return call


def sms_text(sms: responses.BaseResponse, index: int = -1) -> str:
    return urllib.parse.parse_qs(sms.calls[index].request.body)["Body"][0]


def seconds_until(moment: dt.datetime) -> float:
    return (display.as_utc(moment) - dt.datetime.now(dt.UTC)).total_seconds()


@responses.activate
def test_alert_gives_the_number_the_caller_typed(thread_app):
    sms = sms_ok()
    app = thread_app()  # the default grace, 3 minutes
    call = recorded_call(app)
    [alert] = all_alerts(app)
    assert 170 < seconds_until(alert.next_attempt_at) <= 180
    assert sms.call_count == 0  # not while the caller is still choosing the number
    call.press("7735550142")  # another number than the one calling
    call.press("")  # no A-number ...
    call.press("")  # ... pound again: the last step
    app.extensions["ivr.alert_threads"][-1].join(timeout=10)  # started by the completion

    assert sms.call_count == 1
    text = sms_text(sms)
    assert "Call back: (773) 555-0142." in text
    assert "555-0123" not in text and "Called from" not in text
    [alert] = all_alerts(app)
    assert (alert.status, alert.attempts) == ("sent", 1)


@responses.activate
def test_caller_who_hangs_up_after_recording_is_alerted_after_the_grace(make_app):
    sms = sms_ok()
    app = make_app(ALERT_SMS_TO=STAFF_PHONE, ALERT_SMS_FROM=SENDER, ALERTS_DELIVERY="worker",
                   ALERT_GRACE_SECONDS=600)
    recorded_call(app, digits="hangup")
    [alert] = all_alerts(app)
    assert 590 < seconds_until(alert.next_attempt_at) <= 600
    assert deliver(app) == 0  # the grace has not passed
    make_due(app)
    assert deliver(app) == 1
    text = sms_text(sms)
    assert "Called from: (312) 555-0123 (no callback number given)." in text
    assert "Call back" not in text


@responses.activate
def test_hung_up_call_alerted_by_the_thread_once_the_grace_passes(thread_app):
    sms = sms_ok()
    app = thread_app(ALERT_GRACE_SECONDS=2)
    recorded_call(app, digits="hangup")
    [thread] = app.extensions["ivr.alert_threads"]
    assert sms.call_count == 0 and thread.is_alive()  # waiting out the grace
    thread.join(timeout=10)
    assert not thread.is_alive() and sms.call_count == 1
    assert "Called from: (312) 555-0123" in sms_text(sms)


@responses.activate
def test_finishing_after_the_alert_went_sends_no_second_one(thread_app):
    sms = sms_ok()
    app = thread_app(ALERT_GRACE_SECONDS=1)
    call = recorded_call(app)
    [thread] = app.extensions["ivr.alert_threads"]
    thread.join(timeout=10)
    assert sms.call_count == 1  # the caller took longer than the grace
    call.press("7735550142")
    call.press("")
    call.press("")
    assert app.extensions["ivr.alert_threads"] == [thread]  # nothing pending: no new thread
    assert sms.call_count == 1


@responses.activate
def test_threads_delivering_together_send_each_alert_once(thread_app):
    sms = sms_ok()
    app = thread_app(ALERTS_DELIVERY="worker")  # the requests start no thread themselves
    for _ in range(3):
        create_request(app)
    threads = [alerts.start_thread(app) for _ in range(4)]
    for thread in threads:
        thread.join(timeout=10)
    assert sms.call_count == 3
    assert [(a.status, a.attempts) for a in all_alerts(app)] == [("sent", 1)] * 3


def test_sleeping_thread_holds_no_connection(thread_app):
    """While it waits out the grace the thread has closed its session: no pooled connection is
    checked out, so no transaction, snapshot or lock is held for minutes."""
    app = thread_app()
    with app.app_context():
        callbacks.save("CA" + secrets.token_hex(16), language="en", step="recorded")
        engine = db.engine
    [thread] = app.extensions["ivr.alert_threads"]
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    while engine.pool.checkedout() and dt.datetime.now(dt.UTC) < deadline:
        thread.join(timeout=0.05)
    assert thread.is_alive()  # asleep until the grace ends
    assert engine.pool.checkedout() == 0
