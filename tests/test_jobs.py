"""The job queue's rules: guarded status moves, time limits, work not done late, no endless
re-queue, and the gateway's one rule for "may this failed request have sent something"."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.background.jobs import IllegalTransition, JobKind, JobStatus
from ivr.background.worker import housekeeping
from ivr.db import db, utcnow
from ivr.messaging.gateway import nothing_sent
from tests.test_staffcall import ANA_PHONE, CALLS, add_staff, kinds, press_call_back

RECORDINGS = f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}/Recordings"


def wait_for(condition, timeout: float = 30) -> None:
    """Wait until `condition()` holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def job(app, key: str) -> jobs.Job:
    with app.app_context():
        row = db.session.scalars(
            sa.select(jobs.Job).where(sa.or_(jobs.Job.key == key, jobs.Job.kind == key))
        ).one()
        db.session.expunge(row)
        db.session.commit()
        return row


# Status moves ------------------------------------------------------------------------------------
NOOP = JobKind("noop", lambda payload: None, key=lambda n: f"noop:{n}", payload=("n",))


def test_status_moves_are_refused_when_illegal(app):
    jobs.init_app(app, [*jobs.registry(app).kinds.values(), NOOP])
    with app.app_context():
        NOOP.enqueue(n=1)
        db.session.commit()
        queued = db.session.scalars(sa.select(jobs.Job)).one()
        assert queued.status is JobStatus.pending and queued.status == "pending"
        # A job cannot be done or failed without having run, nor run again once done.
        with pytest.raises(IllegalTransition):
            jobs.move(queued.id, JobStatus.pending, JobStatus.done)
        with pytest.raises(IllegalTransition):
            jobs.move(queued.id, JobStatus.pending, JobStatus.failed)
        with pytest.raises(IllegalTransition):
            jobs.move(queued.id, JobStatus.done, JobStatus.pending)
        with pytest.raises(IllegalTransition):  # running is entered only by claim()
            jobs.move(queued.id, JobStatus.failed, JobStatus.running)
        claimed = jobs.claim(lease=60)
        assert claimed is not None and claimed.attempt == 1
        # A move from a status the job is not in, or at another attempt, changes nothing.
        assert not jobs.move(queued.id, JobStatus.failed, JobStatus.pending)
        assert not jobs.move(queued.id, JobStatus.running, JobStatus.done, attempt=2)
        assert jobs.move(queued.id, JobStatus.running, JobStatus.done, attempt=1)
        assert not jobs.move(queued.id, JobStatus.running, JobStatus.failed, attempt=1)
        db.session.expire_all()
        assert db.session.get(jobs.Job, queued.id).status == "done"


def test_a_kind_is_declared_once(app):
    with pytest.raises(ValueError, match="declared twice"):
        jobs.init_app(app, [NOOP, NOOP])


# Time limits -------------------------------------------------------------------------------------
class Hang:
    """A job whose call never returns until `release` (a hung library call, a deadlock)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0

    def __call__(self, payload: dict) -> None:
        self.started += 1
        self.release.wait()


@pytest.fixture
def hang() -> Iterator[Hang]:
    blocked = Hang()
    yield blocked
    blocked.release.set()  # let abandoned threads end


def test_a_job_that_never_returns_is_abandoned_and_the_worker_goes_on(make_app, hang, caplog):
    app = make_app(JOB_BACKOFF_SECONDS="0.1", JOB_BACKOFF_MAX_SECONDS="0.2")
    done: list[int] = []
    stuck = JobKind(
        "stuck", hang, key=lambda n: f"stuck:{n}", payload=("n",), time_limit=0.5, max_attempts=2
    )
    stuck_once = JobKind(
        "stuck-once", hang, key=lambda n: f"once:{n}", payload=("n",), time_limit=0.5, once=True
    )
    quick = JobKind(
        "quick", lambda p: done.append(p["n"]), key=lambda n: f"quick:{n}", payload=("n",)
    )
    jobs.init_app(app, [stuck, stuck_once, quick])
    with app.app_context():
        stuck.enqueue(n=1)
        stuck_once.enqueue(n=1)
        for n in range(5):
            quick.enqueue(n=n)
        db.session.commit()

    # One worker thread: a slot held for good would stop everything behind it.
    worker = jobs.Worker(app, concurrency=1, poll=0.05)
    worker.start()
    try:
        wait_for(
            lambda: (
                len(done) == 5
                and job(app, "stuck:1").status == "failed"
                and job(app, "once:1").status == "failed"
            )
        )
        # Given up at its limit, retried by its rules (2 attempts), then failed with the reason.
        given_up = job(app, "stuck:1")
        assert given_up.attempts == 2 and "time limit" in given_up.last_error
        # At most once: an attempt given up may have reached the person; not tried again.
        once = job(app, "once:1")
        assert once.attempts == 1 and "not retried" in once.last_error
        lines = [r.getMessage() for r in caplog.records if "stuck" in r.getMessage()]
        assert len(lines) == 3 and all(r.exc_info is None for r in caplog.records)

        # The fault ends: due work of the same kind completes, nothing restarted.
        hang.release.set()
        with app.app_context():
            stuck.enqueue(n=2)
            db.session.commit()
        wait_for(lambda: job(app, "stuck:2").status == "done")
        # The abandoned attempts ended late; their jobs stay as the worker left them.
        assert job(app, "stuck:1").status == "failed"
    finally:
        worker.stop.set()
        worker.join(timeout=10)


# Not done late -----------------------------------------------------------------------------------
@pytest.fixture
def staff_app(make_app):
    return make_app(
        CALLBACK_FROM_NUMBER="+13125550177",
        PUBLIC_URL="https://hotline.example.org",
        STAFF_LANGUAGE="en",
    )


@responses.activate
def test_a_stale_call_back_is_dropped_and_shown_as_not_placed(staff_app, make_request):
    from tests.conftest import StaffAuth

    add_staff(staff_app, "ana", ANA_PHONE)
    client = staff_app.test_client()
    StaffAuth(client).login()
    request_id = make_request()
    assert press_call_back(client, request_id).status_code == 302
    # The worker was down: the press was ten minutes ago when it finally takes the job.
    with staff_app.app_context():
        db.session.execute(
            sa.update(jobs.Job).values(
                created_at=utcnow() - dt.timedelta(minutes=10),
                run_at=utcnow() - dt.timedelta(minutes=10),
            )
        )
        db.session.commit()
    create = responses.post(CALLS, status=201, json={"sid": "CA" + "7" * 32, "status": "queued"})
    jobs.run_pending(staff_app)
    assert create.call_count == 0  # no phone rings ten minutes after the press
    stale = job(staff_app, "staff-call")
    assert stale.status == "failed" and "dropped" in stale.last_error
    assert [k for k in kinds(staff_app, request_id) if k[0] == "outcome"] == [
        ("outcome", "ana", "not-placed", None)
    ]
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "not placed" in page and "press Call back again" in page


# No endless re-queue -----------------------------------------------------------------------------
def test_a_failed_copy_is_not_queued_again_by_housekeeping(app, make_request, runner):
    from ivr.commands import main

    make_request(recording_sid="RE0001", recording_url=f"{RECORDINGS}/RE0001")
    housekeeping(app)
    key = "copy-recording:RE0001"
    with app.app_context():
        claimed = jobs.claim(lease=60)
        assert claimed is not None
        jobs.fail(claimed, "Twilio refused the credentials (401)")
    for _ in range(3):
        housekeeping(app)  # once a minute in the worker
    assert (job(app, key).status, job(app, key).attempts) == ("failed", 1)
    # Someone fixed the credentials and asks for the copies again: by hand only.
    result = runner.invoke(main, ["callbacks", "copy-recordings"])
    assert result.exit_code == 0, result.output
    assert (job(app, key).status, job(app, key).attempts) == ("pending", 0)


# The gateway's rule ------------------------------------------------------------------------------
@contextlib.contextmanager
def silent_server(read_first: bool) -> Iterator[int]:
    """A loopback server that accepts (and, with `read_first`, reads the request) but never
    answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                if read_first:
                    conn.recv(65536)
                held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_hung_connect_sent_nothing_but_a_hung_answer_may_have(monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with silent_server(read_first=False) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy}")
        with pytest.raises(requests.Timeout) as connecting:
            requests.post("https://api.twilio.com/2010-04-01/x", timeout=(0.5, 0.5))
    assert nothing_sent(connecting.value)
    monkeypatch.delenv("HTTPS_PROXY")
    with silent_server(read_first=True) as port:
        with pytest.raises(requests.Timeout) as answering:
            requests.post(f"http://127.0.0.1:{port}/x", data="Body=hi", timeout=(0.5, 0.5))
    assert not nothing_sent(answering.value)
