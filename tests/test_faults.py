"""Real faults, not mocks: PostgreSQL stopped or its connections killed in the middle of a call,
and a worker process killed with SIGKILL in the middle of a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from ivr import create_app
from ivr.background import jobs
from ivr.calls.prompts import Prompts
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.migrate import upgrade
from ivr.requests import fallback
from ivr.requests.models import CallbackRequest
from ivr.settings import settings as settings_of

from .conftest import PROJECT_ROOT, TOKEN, base_config, eventually
from .test_alerts import free_port
from .test_callback import heard_digits, recording_params, to_recording

REAL = Prompts(PROJECT_ROOT / "prompts")


class Inbox:
    """An SMTP server's handler that keeps messages; `hold` makes the next DATA wait."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if self.hold.is_set():
            self.hold.clear()
            self.holding.set()
            while not self.release.is_set():  # the client is killed meanwhile
                import asyncio

                await asyncio.sleep(0.05)
            return "421 4.3.0 Closing"  # its message is never stored
        self.messages.append(envelope.content.decode())
        return "250 OK"


@pytest.fixture
def inbox():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.url = f"smtp://127.0.0.1:{controller.port}"
    yield handler
    handler.release.set()
    controller.stop()


@pytest.fixture
def pg_app(pg_server, tmp_path, prompts_dir, inbox):
    """An app on a fresh database of the private PostgreSQL server, alerting by e-mail."""
    admin = sa.create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    name = f"ivr_fault_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.make_url(pg_server.url).set(database=name).render_as_string(hide_password=False)
    app = create_app(
        base_config(
            tmp_path,
            DATABASE_URL=url,
            ALERT_EMAIL_TO="desk@example.org",
            SMTP_URL=inbox.url,
            FALLBACK_RETRY_SECONDS="0.2",
            DB_TIMEOUT_SECONDS="2",
        )
    )
    upgrade(app)
    yield app
    fallback.drainer(app).stop()
    with app.app_context():
        db.engine.dispose()


def rows(app) -> list[CallbackRequest]:
    with app.app_context():
        found = db.session.scalars(sa.select(CallbackRequest)).all()
        db.session.expunge_all()
        return found


def test_postgres_stopped_mid_call_the_caller_still_hears_their_reference(pg_app, pg_server, inbox):
    call = Call(pg_app.test_client(), TOKEN)
    to_recording(call, "en")  # the database is healthy up to here
    pg_server.stop()
    try:
        params = recording_params()
        call.follow(call.twiml.find("Record").get("action"), Digits="#", **params)
        assert REAL.text("en", "number_confirm") in call.heard()  # the call goes on
        call.press("1")
        call.press("12345678#")
        call.press("1")  # issue 23: the A-number read back, 1 confirms
        assert REAL.text("en", "confirmation") in call.heard()
        reference = heard_digits(call, "en").split()[0]
        assert len(reference) == 6  # from the reserved stash, not made up
        # Staff hear of it now, from what the caller gave, before the database is back.
        eventually(lambda: len(inbox.messages) == 1)
        # The reference, not the family's number (issue 22).
        assert f"#{reference}" in inbox.messages[0] and "555-0123" not in inbox.messages[0]
    finally:
        pg_server.start()
    eventually(lambda: not fallback.pending(pg_app))  # applied by the process, no manual step
    [row] = rows(pg_app)
    assert (row.reference, row.step, row.a_number) == (reference, "complete", "012345678")
    assert row.recording_sid == params["RecordingSid"]
    assert row.callback_number == call.from_number
    # Not alerted twice: the replay queued no alert job.
    with pg_app.app_context():
        kinds = db.session.scalars(sa.select(jobs.Job.kind)).all()
    assert "alert-email" not in kinds and "copy-recording" in kinds
    jobs.run_pending(pg_app)
    assert len(inbox.messages) == 1


def test_postgres_connections_killed_mid_call_change_nothing(pg_app, pg_server):
    call = Call(pg_app.test_client(), TOKEN)
    to_recording(call, "es")
    admin = sa.create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    with pg_app.app_context():
        name = db.engine.url.database
    with admin.connect() as conn:  # the server ends every connection of the app's database
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        ).scalar()
    admin.dispose()
    assert killed >= 1
    call.follow(call.twiml.find("Record").get("action"), Digits="#", **recording_params())
    call.press("1")
    call.press("12345678#")
    call.press("1")  # issue 23: the A-number read back, 1 confirms
    reference = heard_digits(call, "es").split()[0]
    [row] = rows(pg_app)
    assert (row.reference, row.step) == (reference, "complete")
    assert not fallback.pending(pg_app)  # the pool reconnected: nothing needed the fallback


def test_worker_killed_mid_job_the_job_is_done_once_afterwards(make_app, tmp_path, inbox):
    """`ivr worker` is killed with SIGKILL while it sends an e-mail alert; a new worker takes
    the job again once its lease has run out, and the message arrives exactly once."""
    settings = {
        "ALERT_EMAIL_TO": "desk@example.org",
        "SMTP_URL": inbox.url,
        "ALERT_GRACE_SECONDS": "0",
        "JOB_LEASE_SECONDS": "2",
    }
    app = make_app(**settings)
    settings["DATABASE_URL"] = settings_of(app).database_url
    call = Call(app.test_client(), TOKEN)
    to_recording(call, "es")
    call.follow(call.twiml.find("Record").get("action"), Digits="hangup", **recording_params())
    env = {
        **os.environ,
        **{k: str(v) for k, v in base_config(tmp_path, **settings).items() if isinstance(v, str)},
        "TWILIO_ACCOUNT_SID": "",
    }
    env.pop("TESTING", None)
    command = [str(Path(sys.executable).parent / "ivr"), "worker", "--concurrency", "1"]

    inbox.hold.set()
    first = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        inbox.holding.wait(30)
        assert inbox.holding.is_set(), "the worker never reached the SMTP server"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    inbox.release.set()
    with app.app_context():
        job = db.session.scalars(sa.select(jobs.Job).where(jobs.Job.kind == "alert-email")).one()
        assert (job.status, job.attempts) == ("running", 1)  # claimed by the dead process

    second = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        eventually(lambda: len(inbox.messages) >= 1)
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        second.kill()
    assert len(inbox.messages) == 1
    with app.app_context():
        job = db.session.scalars(sa.select(jobs.Job).where(jobs.Job.kind == "alert-email")).one()
        assert (job.status, job.attempts) == ("done", 2)
