"""A stalled worker is seen (issue 19 point 3): `/healthz/worker` and the staff banner while the
worker is stopped with jobs due, back to normal once it runs, and one log line per incident."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import sqlalchemy as sa

from ivr.background import health, jobs, worker
from ivr.db import db

START = dt.datetime(2026, 12, 2, 15, 42, tzinfo=dt.UTC)  # 10:42 in the office (America/New_York)
NOOP = jobs.JobKind("noop", lambda payload: None, key=lambda n: f"noop:{n}", payload=("n",))


class Clock:
    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def app(make_app, clock):
    app = make_app(CLOCK=clock, OFFICE_TIMEZONE="America/New_York")
    jobs.registry(app).kinds[NOOP.name] = NOOP
    return app


def queue(app) -> None:
    with app.app_context():
        NOOP.enqueue(n=1)
        db.session.commit()


def delayed_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ivr.background.health"]


def test_healthz_worker_is_503_and_staff_see_a_banner_while_the_worker_is_stopped(
    app, client, auth, clock, caplog
):
    caplog.set_level(logging.INFO)
    auth.login()
    answer = client.get("/healthz/worker")
    assert answer.status_code == 200 and answer.json["status"] == "ok"
    assert "delayed since" not in client.get("/staff/").get_data(as_text=True)

    queue(app)  # a job due now, and no worker running
    clock.advance(60)
    assert client.get("/healthz/worker").status_code == 200  # not yet past WORKER_STALL_SECONDS
    clock.advance(90)
    answer = client.get("/healthz/worker")
    assert answer.status_code == 503
    assert answer.json["status"] == "delayed"
    assert answer.json["delayed_since"] == START.isoformat()
    assert answer.headers["Cache-Control"] == "no-store"
    page = client.get("/staff/").get_data(as_text=True)
    assert "Alerts and call-backs are delayed since 10:42." in page
    # Every later check, from any page or the monitor, is the same incident: logged once.
    for _ in range(3):
        clock.advance(30)
        assert client.get("/healthz/worker").status_code == 503
        assert "delayed since 10:42" in client.get("/staff/").get_data(as_text=True)
    assert len([m for m in delayed_lines(caplog) if "delayed since" in m]) == 1

    worker.run(app, once=True)  # the worker runs: the job is done and it beats its heartbeat
    answer = client.get("/healthz/worker")
    assert answer.status_code == 200 and answer.json["status"] == "ok"
    assert answer.json["last_heartbeat"] == clock.moment.isoformat()
    assert "delayed since" not in client.get("/staff/").get_data(as_text=True)
    client.get("/healthz/worker")
    lines = delayed_lines(caplog)
    assert len(lines) == 2 and "caught up" in lines[1], lines


def test_an_old_heartbeat_is_a_stall_even_with_nothing_due(app, client, clock, caplog):
    caplog.set_level(logging.INFO)
    worker.run(app, once=True)
    assert client.get("/healthz/worker").status_code == 200
    clock.advance(121)
    answer = client.get("/healthz/worker")
    assert answer.status_code == 503 and answer.json["delayed_since"] == START.isoformat()
    assert "no worker heartbeat" in delayed_lines(caplog)[0]


def test_no_personal_data_and_no_login(app, client, clock, make_request):
    make_request(caller_number="+13125550123")
    clock.advance(600)
    body = client.get("/healthz/worker").get_data(as_text=True)
    assert "3125550123" not in body and "payload" not in body


def test_two_processes_seeing_one_stall_open_one_incident(app, clock, caplog):
    """Several web processes check at once: the incident row's unique slot lets one log it."""
    caplog.set_level(logging.INFO)
    queue(app)
    clock.advance(200)
    with app.app_context():
        first = health.check()
        second = health.check()
        incidents = db.session.scalars(sa.select(health.WorkerIncident)).all()
    assert first.delayed_since == second.delayed_since == START
    assert len(incidents) == 1 and incidents[0].open_slot == 1
    with app.app_context(), pytest.raises(sa.exc.IntegrityError):
        db.session.add(health.WorkerIncident(open_slot=1, since=START, started_at=START, cause=""))
        db.session.commit()
    assert len(delayed_lines(caplog)) == 1
