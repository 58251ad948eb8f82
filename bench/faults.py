"""Faults fired mid-burst, once a given fraction of the burst's requests is done (`--at`).

- `pgrestart` / `pgstop`: the run's own PostgreSQL (tests/pg_server.py, the one throwaway server
  the fault tests use too) restarted, or stopped for `--down-s` seconds; never the shared one.
- `kill-web`: `kill -9` of one gunicorn worker (the master boots another).
- `kill-worker`: `kill -9` of the worker process, which the platform then restarts.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from typing import TYPE_CHECKING

from bench.callers import REQUESTS_PER_CALL
from bench.processes import children, signal_group
from tests.pg_server import PgServer

if TYPE_CHECKING:
    from bench.burst import Run

FAULTS = ["pgrestart", "pgstop", "kill-web", "kill-worker"]


class BenchPostgres:
    """The run's PostgreSQL, with fsync on as in production, and the lock a fault holds while it
    stops or restarts it: cleanup sets `abort` (ending a --down-s wait) and takes the lock, so it
    never finds the server halfway through a stop."""

    def __init__(self, port: int) -> None:
        self.server = PgServer.create(port=port, fsync=True)
        self.lock = threading.Lock()
        self.abort = threading.Event()

    def timed(self, action: str) -> float:
        started = time.monotonic()
        getattr(self.server, action)()
        return round(time.monotonic() - started, 2)

    def ensure_started(self) -> None:
        self.abort.set()
        with self.lock:
            if not self.server.online():
                self.server.start()

    def create_database(self, name: str) -> str:
        """A fresh database; its URL as Heroku gives DATABASE_URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.server.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/{name}"

    def remove(self) -> None:
        self.server.remove()


def fire(run: Run) -> None:
    """Wait for the burst to reach `--at`, then do the run's fault; note what happened."""
    args, burst = run.args, run.burst
    target = math.ceil(args.at * args.calls * REQUESTS_PER_CALL)
    with burst.progress:
        fired = burst.progress.wait_for(
            lambda: burst.done >= target or run.burst_over.is_set(), timeout=600
        )
        done = burst.done
    if not fired or run.burst_over.is_set():
        run.faults.append({"fault": args.fault, "fired": False})
        return
    event: dict = {
        "fault": args.fault,
        "fired": True,
        "at_s": round(time.monotonic() - burst.t0, 2),
        "requests_done": done,
        "fraction": round(done / (args.calls * REQUESTS_PER_CALL), 3),
    }
    pg = run.pg
    if args.fault == "pgrestart" and pg:
        with pg.lock:
            event["restart_s"] = pg.timed("restart")
    elif args.fault == "pgstop" and pg:
        with pg.lock:
            event["stop_s"] = pg.timed("stop")
        pg.abort.wait(args.down_s)
        with pg.lock:
            if not pg.server.online():  # cleanup may have started it already
                event["start_s"] = pg.timed("start")
    elif args.fault == "kill-web" and run.web:
        workers = children(run.web.pid)
        if workers:
            victim = random.choice(workers)
            os.kill(victim, signal.SIGKILL)
            event["killed_pid"] = victim
    elif args.fault == "kill-worker":
        if run.worker is None:
            event["note"] = "the Procfile has no worker: line"
        else:
            event["killed_pid"] = run.worker.pid
            event["worker_rc_before"] = run.worker.poll()
            signal_group(run.worker, signal.SIGKILL)
            run.worker.wait(10)
            time.sleep(1.0)  # the platform restarts a crashed process
            run.worker = run.procs.start(run.procfile["worker"], run.env, run.dir / "worker.log")
            event["restarted_pid"] = run.worker.pid
    event["done_s"] = round(time.monotonic() - burst.t0, 2)
    run.faults.append(event)
