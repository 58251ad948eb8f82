"""The request service: each write and what it sets off, queued in the same transaction, with one
home per behaviour (`ivr/requests/service/`). SMS are faked at Twilio's HTTP edge; e-mail goes
to a real SMTP server on loopback (the `smtp` fixture of test_alerts.py)."""

from __future__ import annotations

import secrets
import urllib.parse

import pytest
import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.db import db
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.requests.service import callers
from tests.test_alerts import MESSAGES, PUBLIC, SENDER, STAFF_PHONE, sms_ok, smtp  # noqa: F401

RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC" + "0" * 32 + "/Recordings/"


@pytest.fixture
def service_app(make_app, smtp):  # noqa: F811
    return make_app(
        ALERT_SMS_TO=STAFF_PHONE,
        ALERT_SMS_FROM=SENDER,
        ALERT_EMAIL_TO="desk@example.org",
        SMTP_URL=smtp.url,
        PUBLIC_URL=PUBLIC,
        ALERT_GRACE_SECONDS="600",  # the grace holds the alerts: only the service makes them due
    )


def job_rows(app, prefix: str = "") -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(jobs.Job.kind, jobs.Job.key, jobs.Job.status)
            .where(jobs.Job.key.startswith(prefix))
            .order_by(jobs.Job.key)
        ).all()
        return [tuple(r) for r in rows]


class Saved:
    """What a test needs of a request once its app context is gone."""

    def __init__(self, row: CallbackRequest) -> None:
        self.id, self.call_sid, self.reference = row.id, row.call_sid, row.reference


def recorded(app, call_sid: str, sid: str) -> Saved:
    with app.app_context():
        row = callers.save(
            call_sid,
            language="es",
            caller_number="+13125550123",
            step="recorded",
            recording_sid=sid,
            recording_url=RECORDING + sid,
            recording_duration=12,
        )
        return Saved(row)


def test_a_new_request_queues_its_alerts_and_its_copy_in_its_own_transaction(service_app):
    row = recorded(service_app, "CA" + secrets.token_hex(16), "RE1")
    assert job_rows(service_app) == [
        ("alert-email", f"alert:{row.id}:email:desk@example.org", "pending"),
        ("alert-sms", f"alert:{row.id}:sms:{STAFF_PHONE}", "pending"),
        ("copy-recording", "copy-recording:RE1", "pending"),
    ]
    # The same step again (Twilio's status callback after the action) sets off nothing more.
    recorded(service_app, row.call_sid, "RE1")
    assert len(job_rows(service_app)) == 3


def test_a_replayed_request_already_alerted_directly_queues_no_alert(service_app):
    with service_app.app_context():
        row = callers.save(
            "CA" + secrets.token_hex(16), alerted=True, recording_sid="RE2", step="complete"
        )
        assert row.step == "complete"
    assert job_rows(service_app, "alert:") == []


@responses.activate
def test_finishing_the_last_step_makes_the_alerts_due_at_once(service_app):
    row = recorded(service_app, "CA" + secrets.token_hex(16), "RE3")
    responses.get(RECORDING + "RE3.mp3", status=404)  # the copy waits too: not ready yet
    jobs.run_pending(service_app)  # the alerts wait for the grace
    assert all(s == "pending" for _k, _key, s in job_rows(service_app, "alert:"))
    with service_app.app_context():
        callers.save(row.call_sid, a_number="012345678", step="complete")
    sms = sms_ok()
    jobs.run_pending(service_app)
    assert [s for _k, _key, s in job_rows(service_app, "alert:")] == ["done", "done"]
    assert sms.call_count == 1


@responses.activate
def test_urgent_after_the_alert_was_queued_changes_that_alert(service_app, smtp):  # noqa: F811
    """The caller says it is urgent while the request's alert still waits: that one alert says
    URGENT when it goes, and no second alert is queued."""
    row = recorded(service_app, "CA" + secrets.token_hex(16), "RE4")
    with service_app.app_context():
        callers.save(row.call_sid, step="complete")
        assert callers.mark_urgent(row.reference, row.call_sid)
    assert [key for _k, key, _s in job_rows(service_app, "alert:")] == [
        f"alert:{row.id}:email:desk@example.org",
        f"alert:{row.id}:sms:{STAFF_PHONE}",
    ]
    sms = sms_ok()
    jobs.run_pending(service_app)
    body = urllib.parse.parse_qs(sms.calls[0].request.body)["Body"][0]
    assert sms.call_count == 1 and body.startswith("URGENT: New callback request #")
    assert [m for m in smtp.messages if "Subject: URGENT: New callback request" in m[1]]


@responses.activate
def test_urgent_after_the_alert_went_alerts_once_more_and_only_once(service_app, smtp):  # noqa: F811
    row = recorded(service_app, "CA" + secrets.token_hex(16), "RE5")
    sms = sms_ok()
    with service_app.app_context():
        callers.save(row.call_sid, step="complete")
    jobs.run_pending(service_app)
    assert sms.call_count == 1
    with service_app.app_context():
        assert callers.mark_urgent(row.reference, row.call_sid)
        assert callers.mark_urgent(row.reference, row.call_sid)  # the key pressed again
    urgent = job_rows(service_app, f"alert:{row.id}:urgent:")
    assert [kind for kind, _key, _s in urgent] == ["alert-email", "alert-sms"]
    jobs.run_pending(service_app)
    assert sms.call_count == 2
    body = urllib.parse.parse_qs(sms.calls[1].request.body)["Body"][0]
    assert body.startswith("URGENT: New callback request #")
    with service_app.app_context():
        assert db.session.get(CallbackRequest, row.id).urgent


def test_urgent_for_an_unknown_reference_is_refused_and_logged(service_app, caplog):
    with service_app.app_context():
        assert not callers.mark_urgent("999999", "CA-nobody")
    assert "urgent request 999999 not found" in caplog.text


@responses.activate
def test_an_added_message_alerts_once_and_queues_its_copy(service_app):
    first = recorded(service_app, "CA" + secrets.token_hex(16), "RE6")
    again = "CA" + secrets.token_hex(16)
    fields = dict(recording_sid="RE7", recording_url=RECORDING + "RE7", recording_duration=9)
    with service_app.app_context():
        # The <Record> action and the status callback both bring it, in any order.
        callers.add_message(again, first.id, "+13125550123", "es", **fields)
        callers.add_message(again, first.id, None, "es", **fields)
        message = db.session.scalars(sa.select(RequestMessage)).one()
        assert (message.request_id, message.recording_sid, message.is_new) == (
            first.id,
            "RE7",
            True,
        )
    assert job_rows(service_app, "added:") == [
        ("added-email", f"added:{message.id}:email:desk@example.org", "pending"),
        ("added-sms", f"added:{message.id}:sms:{STAFF_PHONE}", "pending"),
    ]
    assert job_rows(service_app, "copy-message:") == [
        ("copy-message", "copy-message:RE7", "pending")
    ]
    sms = sms_ok()
    responses.get(RECORDING + "RE7.mp3", status=404)  # not ready yet: retried later
    jobs.run_pending(service_app)
    assert sms.call_count == 1
    body = urllib.parse.parse_qs(sms.calls[0].request.body)["Body"][0]
    assert body.startswith(f"New message on callback request #{first.reference}")


def test_the_reference_text_is_queued_once_per_call(service_app):
    row = recorded(service_app, "CA" + secrets.token_hex(16), "RE8")
    with service_app.app_context():
        assert callers.text_reference(row.reference, "+13125550123", row.call_sid)
        assert callers.text_reference(row.reference, "+13125550123", row.call_sid)
        assert not callers.text_reference("999999", "+13125550123", row.call_sid)
        assert db.session.get(CallbackRequest, row.id).sms_status == "queued"
    assert job_rows(service_app, "reference-sms:") == [
        ("reference-sms", f"reference-sms:{row.id}:{row.call_sid}", "pending")
    ]
