"""Call counts in the default mode: queued by the webhook, written in batches by a thread, written
at a normal stop, kept while the database is down. (Other tests write them in the request.)"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode

import sqlalchemy as sa

from ivr.calllog import CallLog
from ivr.db import db
from ivr.migrate import upgrade

from .conftest import FIRM, PROJECT_ROOT, TOKEN
from .twilio_sim import Call, sign


def rows(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        found = db.session.execute(
            sa.select(sa.text("call_sid, language, from_number")).select_from(sa.text("calls"))
            .order_by(sa.text("id"))
        ).all()
        db.session.rollback()
    return [tuple(row) for row in found]


def place(app, key: str = "2") -> Call:
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press(key)
    return call


def test_the_writer_thread_writes_queued_calls(make_app):
    app = make_app(CALL_COUNT_FLUSH_SECONDS="0.05")
    first, second = place(app, "1"), place(app, "2")
    deadline = time.monotonic() + 10
    while len(rows(app)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(app) == [(first.sid, "en", first.from_number), (second.sid, "es",
                                                                second.from_number)]


def test_nothing_is_written_during_the_call_and_close_writes_the_rest(make_app):
    app = make_app(CALL_COUNT_FLUSH_SECONDS="3600")
    calls = [place(app) for _ in range(3)]
    assert rows(app) == []  # queued: the caller never waited on the database
    app.extensions["ivr.calllog"].close()
    assert [sid for sid, _, _ in rows(app)] == [call.sid for call in calls]


def test_a_retried_request_is_counted_once(make_app):
    app = make_app(CALL_COUNT_FLUSH_SECONDS="3600")
    call = Call(app.test_client(), TOKEN)
    call.answer()
    action = call.gather().get("action")
    call.press("2")
    call.follow(action, Digits="2")  # Twilio retrying the language step: queued twice
    other = place(app)
    app.extensions["ivr.calllog"].close()
    assert rows(app) == [(call.sid, "es", call.from_number), (other.sid, "es", other.from_number)]
    # And a retry after the first row was written is skipped, not an error.
    log = app.extensions["ivr.calllog"]
    log.add(call.sid, "es", call.from_number)
    assert log.flush() == 0
    assert len(rows(app)) == 2


def test_counts_wait_for_a_database_that_is_down(make_app, caplog):
    app = make_app(CALL_COUNT_FLUSH_SECONDS="3600")
    log = app.extensions["ivr.calllog"]
    call = place(app)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE calls RENAME TO calls_away"))
    assert log.flush() == 0
    assert "could not count 1 calls; kept for the next try" in caplog.text
    later = place(app)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE calls_away RENAME TO calls"))
    assert log.flush() == 2
    assert [sid for sid, _, _ in rows(app)] == [call.sid, later.sid]


def test_the_queue_is_bounded_while_the_database_is_down(app, caplog):
    with app.app_context():
        log = CallLog(db.engine, flush_every=3600, limit=3)
    try:
        for i in range(5):
            log.add(f"CA{i}", "en", "+13125550123")
        assert log.flush() == 3
        assert caplog.text.count("dropped the 2 oldest call counts") == 1
    finally:
        log.close()
    assert [sid for sid, _, _ in rows(app)] == ["CA2", "CA3", "CA4"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_stopped_by_sigterm_writes_its_queued_counts(make_app, database_url, tmp_path):
    """The Procfile's web process, stopped as a deploy or a dyno restart stops it."""
    app = make_app()
    upgrade(app)
    port = free_port()
    env = {**os.environ, "SECRET_KEY": "x" * 32, "TWILIO_AUTH_TOKEN": TOKEN,
           "FIRM_PHONE_NUMBER": FIRM, "DATABASE_URL": database_url, "OFFICE_HOURS": "always",
           "CALL_COUNT_FLUSH_SECONDS": "3600"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--log-level", "warning", "ivr:create_app()"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        sids = [f"CA{i:032d}" for i in range(6)]
        for sid in sids:
            url = f"https://127.0.0.1:{port}/voice/language?fails=0"  # TLS ends at the router
            params = {"CallSid": sid, "From": "+13125550123", "Digits": "2"}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/voice/language?fails=0", body=urlencode(params), headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https",
                "X-Twilio-Signature": sign(TOKEN, url, params)})
            assert conn.getresponse().status == 200
            conn.close()
        assert rows(app) == []  # still queued in the workers
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    assert b"Traceback" not in errors, errors.decode()
    assert sorted(sid for sid, _, _ in rows(app)) == sids


SIP = "sip:+13125550123@hotline-firm.sip.us1.twilio.com"  # 49 characters


def test_a_refused_row_costs_only_itself(app, caplog):
    """A value the database will not take (PostgreSQL refuses a NUL in text) drops that one count,
    logged; the rest of the batch, and later batches, are written. Long SIP addresses fit."""
    with app.app_context():
        log = CallLog(db.engine, flush_every=3600)
    try:
        log.add("CAgood1", "en", SIP)
        log.add("CAbad", "en", "+1312\x00")
        log.add("CAgood2", "es", "+13125550123")
        written = log.flush()
        log.add("CAlater", "es", "+13125550123")
        assert log.flush() == 1
    finally:
        log.close()
    stored = [sid for sid, _, _ in rows(app)]
    if app.config["DATABASE_URL"].startswith("postgresql"):
        assert written == 2 and stored == ["CAgood1", "CAgood2", "CAlater"]
        assert "call count refused by the database" in caplog.text
    else:  # SQLite stores the NUL
        assert written == 3 and stored == ["CAgood1", "CAbad", "CAgood2", "CAlater"]
    assert (SIP in {number for _, _, number in rows(app)})
