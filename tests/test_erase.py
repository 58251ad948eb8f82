"""Erase means erase (issue 22, M6/M7): a call with a typed number, an A-number, a text, a call-back
and a database fault; its request erased once by retention and once by an admin; then Twilio's
late callbacks, the fallback file and a log dump replayed, and the jobs run again. None of the
numbers may be left in any table, in the database files, in the captured log, or in what the fake
Twilio API was asked to keep."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import urllib.parse
from pathlib import Path

import pytest
import responses
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.commands import main
from ivr.db import Model, db
from ivr.devtools.emulator import Call
from ivr.requests import fallback
from ivr.requests.models import CallbackRequest
from tests.conftest import STAFF_PASSWORD, TOKEN, StaffAuth, csrf_token
from tests.test_callback import break_table, recording_params, to_recording

SID = "AC" + "0" * 32
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}"
PUBLIC = "https://hotline.example.org"
HOTLINE = "+13125550177"
STAFF_PHONE = "+13125550199"
CALLER = "+13125557771"  # the family's phone, the caller ID
TYPED = "+17735557772"  # the number the caller typed to be called back on
A_NUMBER = "087654321"
# Any of these left anywhere is a number that was not erased (masked logs keep two digits).
TRACES = ("3125557771", "5557771", "7735557772", "5557772", "87654321", "654-321", "555-7771")


class FakeTwilio:
    """Twilio's REST API at its HTTP edge, keeping what it is asked to keep: messages (until
    redacted and deleted) and recordings (until deleted). The call-back's create is refused with
    an error that quotes the family's number, as Twilio's errors quote numbers."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.messages: dict[str, dict[str, str]] = {}
        self.recordings: dict[str, bytes] = {}
        self.count = 0
        mock.add_callback(responses.POST, f"{API}/Messages.json", self.create_message)
        mock.add_callback(
            responses.POST, re.compile(rf"{re.escape(API)}/Messages/\w+\.json"), self.update_message
        )
        mock.add_callback(
            responses.DELETE,
            re.compile(rf"{re.escape(API)}/Messages/\w+\.json"),
            self.delete_message,
        )
        mock.add_callback(
            responses.GET, re.compile(rf"{re.escape(API)}/Recordings/\w+\.mp3"), self.recording
        )
        mock.add_callback(
            responses.DELETE,
            re.compile(rf"{re.escape(API)}/Recordings/\w+\.json"),
            self.delete_recording,
        )
        mock.add(
            responses.POST,
            f"{API}/Calls.json",
            status=400,
            json={
                "code": 21215,
                "message": f"Account not authorized to call {TYPED}. Geo permissions.",
                "status": 400,
            },
        )

    @staticmethod
    def sid_of(request) -> str:
        return urllib.parse.urlsplit(request.url).path.rsplit("/", 1)[1].split(".")[0]

    def create_message(self, request):
        form = dict(urllib.parse.parse_qsl(request.body))
        self.count += 1
        sid = f"SM{self.count:032x}"
        self.messages[sid] = {"To": form["To"], "Body": form["Body"]}
        return 201, {}, json.dumps({"sid": sid, "status": "queued"})

    def update_message(self, request):
        form = dict(urllib.parse.parse_qsl(request.body, keep_blank_values=True))
        sid = self.sid_of(request)
        if sid not in self.messages:
            return 404, {}, json.dumps({"code": 20404, "message": "not found", "status": 404})
        self.messages[sid]["Body"] = form.get("Body", self.messages[sid]["Body"])
        return 200, {}, json.dumps({"sid": sid, "status": "delivered", "body": ""})

    def delete_message(self, request):
        self.messages.pop(self.sid_of(request), None)
        return 204, {}, ""

    def recording(self, request):
        sid = self.sid_of(request)
        if sid not in self.recordings:
            return 404, {}, ""
        return 200, {"Content-Type": "audio/mpeg"}, self.recordings[sid]

    def delete_recording(self, request):
        self.recordings.pop(self.sid_of(request), None)
        return 204, {}, ""

    def kept(self) -> str:
        """Everything Twilio still holds for the hotline (its call logs aside)."""
        return repr(self.messages) + repr(list(self.recordings))


def everything_in_the_database(app) -> str:
    with app.app_context():
        parts = []
        for table in Model.metadata.sorted_tables:
            rows = db.session.execute(sa.select(table)).all()
            parts.append(f"{table.name}: {rows!r}")
        return "\n".join(parts)


def database_files(app) -> bytes:
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() != "sqlite":
        return b""  # PostgreSQL's files are the server's (README: dead rows, WAL, backups)
    path = Path(url.database)
    return b"".join(
        Path(str(path) + suffix).read_bytes()
        for suffix in ("", "-wal", "-journal")
        if Path(str(path) + suffix).exists()
    )


def left_behind(text: str) -> list[str]:
    return [trace for trace in TRACES if trace in text]


@pytest.mark.parametrize("how", ["retention", "admin"])
def test_an_erased_request_stays_erased_everywhere(make_app, caplog, how):
    caplog.set_level(logging.DEBUG)
    app = make_app(
        SMS_FROM=HOTLINE,
        PUBLIC_URL=PUBLIC,
        CALLBACK_FROM_NUMBER=HOTLINE,
        ALERT_SMS_TO=STAFF_PHONE,
        ALERT_SMS_FROM=HOTLINE,
        ALERT_GRACE_SECONDS="0",
        FALLBACK_RETRY_SECONDS="3600",  # the kept entries wait in the file until the test says
        RETENTION_DAYS="30",
    )
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana",
                role="admin",
                phone=STAFF_PHONE,
                password_hash=generate_password_hash(STAFF_PASSWORD),
            )
        )
        db.session.commit()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        twilio = FakeTwilio(mock)
        params = recording_params()
        twilio.recordings[params["RecordingSid"]] = b"ID3 a mother names her son"

        # The call: a recording, a typed number, then the database fails for the A-number.
        call = Call(app.test_client(), TOKEN, from_number=CALLER)
        to_recording(call, "es")
        record_element = call.twiml.find("Record")
        record_action = record_element.get("action")
        status_callback = record_element.get("recordingStatusCallback")
        call.follow(record_action, Digits="#", **params)
        call.press("2")  # another number
        call.press(TYPED.removeprefix("+1") + "#")
        call.press("1")  # issue 23: the typed number read back, 1 confirms
        fallback.drainer(app).stop()  # so the kept entry waits in the file (no timing)
        break_table(app, broken=True)
        call.press(A_NUMBER.lstrip("0") + "#")  # kept by the fallback, in the file and the log
        break_table(app, broken=False)
        call.press("1")  # issue 23: the A-number read back, 1 confirms
        # The ending: a text with the reference, asked for with a key.
        for gather in call.twiml.iter("Gather"):
            if "/text" in (gather.get("action") or ""):
                call.follow(gather.get("action"), Digits="1")
        assert fallback.pending(app)
        with app.app_context():
            row = db.session.scalar(sa.select(CallbackRequest))
            request_id = row.id
        jobs.run_pending(app)  # the copy, the text, the staff alert
        assert any(m["To"] == CALLER for m in twilio.messages.values())  # the text went

        # A call-back, which Twilio refuses with the family's number in its error.
        client = app.test_client()
        StaffAuth(client).login()
        token = csrf_token(client, "/staff/")
        client.post(f"/staff/requests/{request_id}/call", data={"csrf_token": token})
        jobs.run_pending(app)
        assert left_behind(everything_in_the_database(app))  # the numbers are there, so far
        journal = [r.getMessage() for r in caplog.records if "IVR-JOURNAL" in r.getMessage()]
        assert journal

        # Erased: by retention (handled 40 days ago), or by an admin now.
        if how == "retention":
            with app.app_context():
                db.session.execute(
                    sa.update(CallbackRequest).values(
                        status="handled",
                        handled_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
                    )
                )
                db.session.commit()
            result = app.test_cli_runner().invoke(main, ["retention", "run"])
            assert result.exit_code == 0, result.output
        else:
            token = csrf_token(client, f"/staff/requests/{request_id}")
            response = client.post(
                f"/staff/requests/{request_id}/delete", data={"csrf_token": token}
            )
            assert response.status_code == 302

        # Late and replayed: Twilio's <Record> action and recording status callback, the text's
        # status, the fallback file and a log dump, the jobs.
        call.follow(record_action, Digits="#", **params)
        call.send(status_callback, call.params(RecordingStatus="completed", **params))
        sms_sid = next(iter(twilio.messages), "SM" + "0" * 32)
        call.send(
            f"{PUBLIC}/voice/es/closing/sms/{request_id}/status",
            call.params(MessageSid=sms_sid, MessageStatus="undelivered", ErrorCode="30003"),
        )
        runner = app.test_cli_runner()
        with runner.isolated_filesystem():
            Path("heroku.log").write_text("".join(f"app[web.1]: {line}\n" for line in journal))
            result = runner.invoke(main, ["callbacks", "replay", "heroku.log"])
            assert result.exit_code == 0, result.output
        fallback.apply(app)
        jobs.run_pending(app)

    with app.app_context():
        row = db.session.get(CallbackRequest, request_id)
        assert row.erased_at is not None and row.audio is None and row.caller_number == ""
    assert left_behind(everything_in_the_database(app)) == []
    assert left_behind(database_files(app).decode("latin-1")) == []
    log = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert left_behind(log) == []
    assert left_behind(twilio.kept()) == [], twilio.kept()
    assert not twilio.recordings
