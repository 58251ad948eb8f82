"""Twilio's API and the mail server stop answering, then answer again (issues 18 and 19).

The fault is real, not a stub of our code: a loopback socket that accepts connections and never
says a word. Twilio is reached through it as through a proxy (HTTPS_PROXY: requests sends a
CONNECT that never gets an answer), and SMTP_URL points at it. The worker runs for real, in its
threads. Every kind of job that talks to the outside gives up its attempt within its time limit
and waits to try again; once the endpoints answer (Twilio faked at its HTTP edge with `responses`,
the socket now relaying to a real SMTP server), staff alerts, the family's text, the recording's
copy and deletion and the staff call-back all complete, with nothing restarted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import responses
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.db import db
from ivr.requests import alerts, history, recordings
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.requests.service import callers, calling
from tests.conftest import STAFF_PASSWORD
from tests.test_alerts import Inbox, free_port

SID = "AC" + "0" * 32
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}"
STAFF_PHONE = "+13125550199"
HOTLINE = "+13125550177"
CALLER = "+13125550123"

# The kinds that reach Twilio or the mail server; `retention` only touches the database.
NETWORK_KINDS = {
    "alert-sms",
    "alert-email",
    "added-sms",
    "added-email",
    "copy-message",
    "reference-sms",
    "staff-call",
    "copy-recording",
    "delete-recording",
}


class Endpoint:
    """A loopback TCP server that, while `hanging`, accepts and never answers; afterwards it
    relays each new connection to `target` (a real server)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hanging = True
        self.target: tuple[str, int] | None = None
        self.held: list[socket.socket] = []  # every connection, closed at the end
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.hanging or self.target is None:
                self.held.append(conn)  # never read, never answered, never closed
                continue
            upstream = socket.create_connection(self.target)
            self.held += [conn, upstream]  # closed with the endpoint
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def answer(self, target: tuple[str, int]) -> None:
        self.target, self.hanging = target, False

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    hung = Endpoint()
    yield hung
    hung.close()


@pytest.fixture
def mail_endpoint() -> Iterator[Endpoint]:
    hung = Endpoint()
    yield hung
    hung.close()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def wait_for(condition, timeout: float = 60) -> None:
    """Wait until `condition()` holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def job_rows(app) -> list[jobs.Job]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(jobs.Job).order_by(jobs.Job.id)))
        db.session.expunge_all()
        db.session.commit()
        return found


def queue_work(app) -> int:
    """A request with a recording (its alerts and its copy), the family's text, a staff call-back,
    the deletion of another recording at Twilio, and a message added by calling again (its copy
    and its alerts), all queued as the app queues them."""
    with app.app_context():
        row = callers.save(
            "CA" + "1" * 32,
            language="es",
            step="complete",
            caller_number=CALLER,
            callback_number=CALLER,
            recording_sid="RE" + "1" * 32,
            recording_url=f"{API}/Recordings/RE{'1' * 32}",
            recording_duration=20,
        )
        request_id, reference = row.id, row.reference
        assert callers.text_reference(reference, CALLER, "CA" + "1" * 32)
        db.session.add(
            StaffUser(
                username="ana",
                phone=STAFF_PHONE,
                password_hash=generate_password_hash(STAFF_PASSWORD),
            )
        )
        db.session.flush()
        user = db.session.scalar(sa.select(StaffUser).filter_by(username="ana"))
        calling.start_call(db.session.get(CallbackRequest, request_id), user)
        recordings.DELETE_RECORDING.enqueue(recording_sid="RE" + "2" * 32)
        # The family called again and left a message: its copy and its alerts.
        message = RequestMessage(
            request_id=request_id,
            call_sid="CA" + "3" * 32,
            recording_sid="RE" + "3" * 32,
            recording_url=f"{API}/Recordings/RE{'3' * 32}",
            recording_duration=9,
        )
        db.session.add(message)
        db.session.flush()
        recordings.COPY_MESSAGE.enqueue(message_id=message.id, recording_sid=message.recording_sid)
        alerts.queue_added(request_id, message.id)
        # Generous attempts: this test is about giving up and resuming, not about running out.
        db.session.execute(sa.update(jobs.Job).values(max_attempts=100))
        db.session.commit()
        return request_id


def test_hung_twilio_and_smtp_cost_retries_then_everything_completes(
    make_app, endpoint, mail_endpoint, smtp_server, monkeypatch
):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{endpoint.port}")
    inbox, smtp_port = smtp_server
    app = make_app(
        ALERT_SMS_TO=STAFF_PHONE,
        ALERT_SMS_FROM=HOTLINE,
        ALERT_EMAIL_TO="desk@example.org",
        SMTP_URL=f"smtp://127.0.0.1:{mail_endpoint.port}",
        SMS_FROM=HOTLINE,
        CALLBACK_FROM_NUMBER=HOTLINE,
        PUBLIC_URL="https://hotline.example.org",
        ALERT_GRACE_SECONDS="0",
        TWILIO_CONNECT_TIMEOUT="0.5",
        TWILIO_READ_TIMEOUT="0.5",
        SMTP_TIMEOUT="0.5",
        JOB_BACKOFF_SECONDS="0.5",
        JOB_BACKOFF_MAX_SECONDS="1",
    )
    request_id = queue_work(app)
    assert {job.kind for job in job_rows(app)} == NETWORK_KINDS

    worker = jobs.Worker(app, concurrency=4, poll=0.05)
    worker.start()
    try:
        # The API hangs: every kind's attempt gives up (the gateway's timeouts, well inside each
        # kind's time limit), records why, and waits for its retry; none is lost or stuck.
        def all_gave_up() -> bool:
            return all(job.attempts >= 1 and job.last_error for job in job_rows(app))

        wait_for(all_gave_up)
        # Each really reached a hung socket.
        assert endpoint.accepted >= len(NETWORK_KINDS) - 2 and mail_endpoint.accepted >= 2
        for job in job_rows(app):
            assert "time limit" not in job.last_error  # given up by a timeout, not abandoned
        with app.app_context():
            assert db.session.get(CallbackRequest, request_id).sms_status == "queued"

        # The endpoints answer again: Twilio (faked at its HTTP edge) and the mail server.
        with responses.RequestsMock(assert_all_requests_are_fired=False) as twilio:
            texts = twilio.post(
                f"{API}/Messages.json",
                status=201,
                json={"sid": "SM" + "1" * 32, "status": "queued"},
            )
            calls = twilio.post(
                f"{API}/Calls.json", status=201, json={"sid": "CA" + "7" * 32, "status": "queued"}
            )
            media = [
                twilio.get(f"{API}/Recordings/RE{n * 32}.mp3", body=b"ID3" + n.encode() * 3)
                for n in "13"
            ]
            deleted = [
                twilio.delete(f"{API}/Recordings/RE{n * 32}.json", status=204) for n in "123"
            ]
            mail_endpoint.answer(("127.0.0.1", smtp_port))

            wait_for(
                lambda: (
                    (rows := job_rows(app))
                    and all(job.status == "done" for job in rows)
                    and len(rows) == len(NETWORK_KINDS) + 2  # each copy queued a deletion
                )
            )
            # Two staff alerts (the request, the added message) and the family's reference.
            assert texts.call_count == 3
            assert calls.call_count == 1
            assert [m.call_count for m in media] == [1, 1]
            assert [d.call_count for d in deleted] == [1, 1, 1]
        assert [to for to, _ in inbox.messages] == [["desk@example.org"]] * 2
        with app.app_context():
            row = db.session.get(CallbackRequest, request_id)
            assert row.audio == b"ID3111" and row.sms_status == "queued"
            assert db.session.scalars(sa.select(RequestMessage.audio)).one() == b"ID3333"
            outcomes = [e for e in history.events(request_id) if e.kind == "outcome"]
            assert outcomes == []  # the call-back was placed, not given up
    finally:
        worker.stop.set()
        worker.join(timeout=10)
