"""The worker (`ivr worker`, the Procfile's `worker:`): jobs, and a little housekeeping.

`Background` runs the job queue with JOB_CONCURRENCY threads (see `jobs.py`), runs the chores the
composition root registered (`jobs.init_app`: apply a fallback file left on this machine; once a
minute, queue copies of recordings that have none and the day's purge), and forgets finished jobs
older than 30 days. It knows no job kind or chore by name: they are handed to it. It runs in its
own process in production; a firm with a single dyno runs it inside each web process instead
(WORKER_IN_WEB, started by gunicorn.conf.py), which is safe because a job holds no database
connection while it waits on the network and the threads are bounded. SIGTERM lets running jobs
end within the platform's grace period; a job cut short by SIGKILL is taken again after its lease.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading

import sqlalchemy as sa
from flask import Flask

from ivr.background import jobs
from ivr.db import db, utcnow

log = logging.getLogger("ivr.background.worker")
HOUSEKEEPING_SECONDS = 60
KEEP_FINISHED = dt.timedelta(days=30)


def housekeeping(app: Flask) -> None:
    with app.app_context():
        try:
            for chore in jobs.registry(app).every_minute:
                chore()
            db.session.execute(
                sa.delete(jobs.Job).where(
                    jobs.Job.status.in_((jobs.JobStatus.done.value, jobs.JobStatus.failed.value)),
                    jobs.Job.finished_at < utcnow() - KEEP_FINISHED,
                )
            )
            db.session.commit()
        except sa.exc.SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("housekeeping skipped: %s", jobs.reason(exc))


class Background:
    """The job threads plus one housekeeping thread, all daemons, all stopped by `stop`."""

    def __init__(self, app: Flask, concurrency: int | None = None) -> None:
        self.app = app
        self.jobs = jobs.Worker(app, concurrency=concurrency)
        self.stop = self.jobs.stop
        self.thread = threading.Thread(
            target=self._housekeeping, name="ivr-housekeeping", daemon=True
        )

    def start(self) -> None:
        log.info("background work started: %d job threads", self.jobs.concurrency)
        for chore in jobs.registry(self.app).at_start:
            chore(self.app)
        self.jobs.start()
        self.thread.start()

    def join(self, timeout: float = 25) -> None:
        self.jobs.join(timeout)
        self.thread.join(timeout)

    def _housekeeping(self) -> None:
        while not self.stop.is_set():
            housekeeping(self.app)
            self.stop.wait(HOUSEKEEPING_SECONDS)


def run(app: Flask, *, once: bool = False, concurrency: int | None = None) -> None:
    """Run until SIGTERM or SIGINT (or, with `once`, until nothing is due)."""
    if once:
        housekeeping(app)
        log.info("ran %d job(s)", jobs.run_pending(app))
        return
    background = Background(app, concurrency)

    def on_signal(signum, _frame) -> None:
        log.info("signal %d: stopping after the running jobs", signum)
        background.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    background.start()
    background.stop.wait()
    background.join()
    log.info("worker stopped")
