"""Retention: RETENTION_DAYS after a request is handled its recording and personal data go (the
worker's daily job, `ivr retention run`, an admin's delete), and the counts stay."""

from __future__ import annotations

import datetime as dt

import responses
import sqlalchemy as sa
import time_machine

from ivr.accounts.audit import AuditEntry
from ivr.background import jobs, worker
from ivr.commands import main
from ivr.db import db
from ivr.requests import history, recordings, retention
from ivr.requests.models import Call, CallbackRequest
from tests.conftest import csrf_token

UTC = dt.UTC
SID = "AC" + "0" * 32
RECORDINGS = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings"
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # when the request is handled
NOTE = "Spoke to his sister; bond hearing at Broadview"
PERSONAL = (
    "caller_number",
    "callback_number",
    "a_number",
    "recording_url",
    "audio",
    "audio_type",
)


def snapshot(app, request_id: int) -> dict:
    with app.app_context():
        row = db.session.execute(
            sa.select(
                *(
                    getattr(CallbackRequest, name)
                    for name in PERSONAL
                    + (
                        "reference",
                        "language",
                        "status",
                        "created_at",
                        "handled_at",
                        "recording_duration",
                        "recording_sid",
                    )
                )
            ).where(CallbackRequest.id == request_id)
        ).one()
        return row._asdict()


def counts(app) -> dict:
    """What the statistics are made of: rows per language, calls per language."""
    with app.app_context():
        requests = dict(
            db.session.execute(
                sa.select(CallbackRequest.language, sa.func.count()).group_by(
                    CallbackRequest.language
                )
            ).all()
        )
        calls = dict(
            db.session.execute(
                sa.select(Call.language, sa.func.count()).group_by(Call.language)
            ).all()
        )
        return {"requests": requests, "calls": calls}


def handle(client, request_id: int, note: str = NOTE) -> None:
    token = csrf_token(client, f"/staff/requests/{request_id}")
    response = client.post(
        f"/staff/requests/{request_id}",
        data={"status": "handled", "seen_status": "new", "note": note, "csrf_token": token},
    )
    assert response.status_code == 302


@responses.activate
def test_purge_with_a_frozen_clock(app, client, auth, make_request, runner):
    delete = responses.delete(f"{RECORDINGS}/RE0001.json", status=204)
    with time_machine.travel(T0 - dt.timedelta(hours=2), tick=False):
        old = make_request(
            reference="100001",
            language="en",
            a_number="012345678",
            recording_sid="RE0001",
            recording_url=f"{RECORDINGS}/RE0001",
            audio=b"ID3family-message",
            audio_type="audio/mpeg",
        )
        waiting = make_request(reference="100002", a_number="087654321")  # never handled
        with app.app_context():
            db.session.add_all(
                [
                    Call(call_sid="CA-old", language="en", from_number="+13125550123"),
                    Call(call_sid="CA-old2", language="es", from_number="+13125550124"),
                ]
            )
            db.session.commit()
    with time_machine.travel(T0, tick=False):
        auth.login()
        handle(client, old)
        page = client.get("/staff/").get_data(as_text=True)
        # The dashboard says when it goes: 90 days after it was handled.
        assert 'data-purge="2026-05-31"' in page
    before = counts(app)

    # Day 89: nothing is due yet.
    with time_machine.travel(T0 + dt.timedelta(days=89), tick=False), app.app_context():
        assert retention.plan() == retention.Plan([], 0)

    # Day 91, a dry run: says what it would delete, deletes nothing.
    with time_machine.travel(T0 + dt.timedelta(days=91), tick=False):
        result = runner.invoke(main, ["retention", "run", "--dry-run"])
        assert result.exit_code == 0, result.output
        assert "would delete" in result.output and "#100001" in result.output
        assert "#100002" not in result.output and "2 call(s)" in result.output
        assert snapshot(app, old)["audio"] == b"ID3family-message"

        # The worker's housekeeping queues the day's purge once, and runs it as a job.
        worker.housekeeping(app)
        worker.housekeeping(app)
        with app.app_context():
            keys = db.session.scalars(sa.select(jobs.Job.key).where(jobs.Job.kind == "retention"))
            assert list(keys) == ["retention:2026-06-01"]
        jobs.run_pending(app)

    row = snapshot(app, old)
    assert {name: row[name] for name in PERSONAL} == {
        "caller_number": "",
        "callback_number": None,
        "a_number": None,
        "recording_url": None,
        "audio": None,
        "audio_type": None,
    }
    assert (row["reference"], row["language"], row["status"], row["recording_duration"]) == (
        "100001",
        "en",
        "handled",
        42,
    )
    assert row["created_at"] is not None and row["handled_at"] is not None
    with app.app_context():  # the note's words go with the rest (migration 0009 dropped `note`)
        texts = db.session.scalars(
            sa.select(history.RequestEvent.text).filter_by(request_id=old, kind="note")
        )
        assert list(texts) == [""]
    assert delete.call_count == 1  # Twilio's copy too, had it still been there
    # A request nobody handled yet keeps everything.
    assert snapshot(app, waiting)["a_number"] == "087654321"
    assert counts(app) == before
    with app.app_context():
        assert set(db.session.scalars(sa.select(Call.from_number))) == {""}
        entry = db.session.scalars(sa.select(AuditEntry).filter_by(action="purge")).one()
        assert (entry.actor, entry.reference, entry.request_id) == ("retention", "100001", old)
    auth.login()  # the session of 91 days ago has long expired
    page = client.get(f"/staff/requests/{old}").get_data(as_text=True)
    assert "personal data deleted" in page and NOTE not in page
    assert f"/staff/requests/{old}/audio" not in page
    assert client.get(f"/staff/requests/{old}/audio").status_code == 404

    # Running again finds nothing more to do.
    with time_machine.travel(T0 + dt.timedelta(days=92), tick=False):
        result = runner.invoke(main, ["retention", "run"])
        assert result.exit_code == 0, result.output
        assert "deleted the recording and personal data of 0 request(s)" in result.output


def test_retention_days_is_a_setting(make_app, make_request):
    app = make_app(RETENTION_DAYS="7")
    request_id = make_request(status="handled", handled_at=T0, note="left a message")
    with app.app_context():
        assert [rid for rid, _ in retention.plan(T0 + dt.timedelta(days=6)).requests] == []
        assert [rid for rid, _ in retention.plan(T0 + dt.timedelta(days=8)).requests] == [
            request_id
        ]


@responses.activate
def test_admin_deletes_a_request_now_even_before_the_copy(app, client, auth, make_request):
    """A family asks: the recording goes here and at Twilio, though the copy never ran."""
    request_id = make_request(
        reference="100003",
        a_number="012345678",
        recording_sid="RE0003",
        recording_url=f"{RECORDINGS}/RE0003",
    )
    delete = responses.delete(f"{RECORDINGS}/RE0003.json", status=204)
    with app.app_context():
        recordings.COPY_RECORDING.enqueue(request_id=request_id, recording_sid="RE0003")
        db.session.commit()
    auth.login()
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "Delete personal data now" in page
    token = csrf_token(client, f"/staff/requests/{request_id}")
    response = client.post(f"/staff/requests/{request_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert "personal data and recording deleted" in client.get(
        response.headers["Location"]
    ).get_data(as_text=True)
    jobs.run_pending(app)  # the copy finds nothing to copy; Twilio's copy is deleted
    assert delete.call_count == 1
    assert len(responses.calls) == 1  # no download of the erased recording
    row = snapshot(app, request_id)
    assert (row["a_number"], row["caller_number"], row["audio"], row["recording_url"]) == (
        None,
        "",
        None,
        None,
    )
    with app.app_context():
        entry = db.session.scalars(sa.select(AuditEntry).filter_by(action="delete")).one()
        assert (entry.actor, entry.reference) == ("ana", "100003")
    assert client.post("/staff/requests/999/delete", data={"csrf_token": token}).status_code == 404
