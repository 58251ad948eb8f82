"""Burst benchmark: N simultaneous signed calls over the whole call path, with faults.

Reproduces the outside load test behind issue 9 (../shared/reviews/load.md) in code we own. The
app starts as production starts it (`processes.py`: the Procfile's `release:`, `web:` with an
access log of each request's server time, and `worker:` lines). N callers (`callers.py`, each the
emulator's `Call` that the tests and `ivr call` use) then walk the callback path at once. Twilio's
REST API is faked on loopback (`fake_twilio.py`; the app's `requests` honour HTTPS_PROXY):
refused, answering (`ok`, `slow` = 3 s) or black-holed (`hang`). A fault (`faults.py`) may fire
mid-burst. After a settle period the database is checked against what every caller gave and
heard, and the figures are printed (`report.py`).

Not a test: timings on a shared machine are noisy. Run by hand from the repository's root, e.g.
`python -m bench.burst --db pg --calls 200 --twilio hang`; each run writes bench/runs/<tag>/
(result.json, calls.jsonl with every caller's requests, the processes' logs) and prints a markdown
line for the README's table. `bash bench/matrix.sh APP_DIR SUFFIX` runs the README's set. To
measure committed code while the tree is being edited, point --app-dir at a worktree
(`git worktree add --detach ../bench-main main`). Needs `trustme` (the fake API's CA), `aiosmtpd`,
`honcho`, and PostgreSQL's server binaries (plus the postgres account when run as root) for --db pg.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import faults, report
from bench.callers import HOST, Burst, Caller, Dropped
from bench.faults import FAULTS, BenchPostgres
from bench.processes import Monitor, Processes, children, free_port, read_procfile, wait_for
from ivr.calls.prompts import Prompts
from ivr.devtools.emulator import Ear

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
VENV_BIN = Path(sys.executable).parent
ACCESS_FORMAT = "BENCH %({x-bench-id}i)s %(U)s %(s)s %(D)s %(p)s"
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Run:
    """One benchmark run: the app's processes, the burst, the fault, and what was found."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tag = args.tag or "-".join(
            [
                args.db,
                f"w{args.workers}",
                f"n{args.calls}",
                args.twilio,
                *([args.fault] if args.fault else []),
                *(["alerts"] if args.alerts else []),
                *(["open"] if args.open else []),
            ]
        )
        self.dir = RUNS / self.tag
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in (
            "web.log",
            "worker.log",
            "release.log",
            "fake_twilio.log",
            "twilio_events.jsonl",
            "ca.pem",
            "fallback.jsonl",
        ):
            (self.dir / old).unlink(missing_ok=True)
        self.root: Path = args.app_dir.resolve()
        self.procs = Processes(self.root)
        self.pg: BenchPostgres | None = None
        self.db_name = ""
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.procfile = read_procfile(self.root)
        self.result: dict = {
            "tag": self.tag,
            "args": vars(args),
            "procfile": self.procfile,
            "commit": git_head(self.root),
            "started": utc_now(),
        }
        self.faults: list[dict] = []
        self.burst_over = threading.Event()

    # Setting up --------------------------------------------------------------------------------
    def office_hours(self) -> str:
        if self.args.open:
            return "always"
        if self.args.office_hours:
            return self.args.office_hours
        # Open one minute, on a day three days from now: closed throughout the run.
        return f"{DAYS[(dt.datetime.now().weekday() + 3) % 7]} 00:00-00:01"

    def environment(self) -> dict[str, str]:
        args = self.args
        drop = (
            "DATABASE_URL",
            "JOURNAL_PATH",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "SSL_CERT_FILE",
            "PORT",
            "WEB_CONCURRENCY",
            "GUNICORN_CMD_ARGS",
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if k.upper() not in drop and not k.startswith(("TWILIO_", "ALERT_", "SMTP_"))
        }
        self.token = "bench-" + secrets.token_hex(12)
        self.account = "AC" + secrets.token_hex(16)
        self.port = free_port()
        env.update(
            {
                "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(
                    self.root
                ),  # this tree's `ivr`, before the venv's editable install
                "PORT": str(self.port),
                "WEB_CONCURRENCY": str(args.workers),
                "GUNICORN_CMD_ARGS": shlex.join(
                    ["--access-logfile", "-", "--access-logformat", ACCESS_FORMAT]
                ),
                "TWILIO_AUTH_TOKEN": self.token,
                "TWILIO_ACCOUNT_SID": self.account,
                "SECRET_KEY": secrets.token_hex(32),
                "FIRM_PHONE_NUMBER": "+13125550100",
                "OFFICE_HOURS": self.office_hours(),
                "NO_PROXY": "127.0.0.1,localhost",
                # As on Heroku: one proxy (the router) and the public URL Twilio signs.
                "FORWARDED_PROXIES": "1",
                "PUBLIC_URL": f"https://{HOST}",
                # The database-fault fallback file: this run's own, never an earlier run's.
                "FALLBACK_PATH": str(self.dir / "fallback.jsonl"),
            }
        )
        if args.db == "pg":
            self.pg = BenchPostgres(free_port())
            self.db_name = "bench_" + re.sub(r"\W", "_", self.tag.lower())[:40]
            env["DATABASE_URL"] = self.pg.create_database(self.db_name)
        else:
            db = self.dir / "hotline.db"
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            env["DATABASE_URL"] = f"sqlite:///{db}"
        self.database_url = env["DATABASE_URL"]
        # Twilio's API on loopback (and SMTP when alerts are on).
        proxy_port, smtp_port = free_port(), free_port() if args.alerts else 0
        mode = {"refuse": "ok", "ok": "ok", "slow": "ok", "hang": "hang"}[args.twilio]
        delay = (
            args.twilio_delay
            if args.twilio_delay is not None
            else (3.0 if args.twilio == "slow" else 0.3)
        )
        self.fake = self.procs.start(
            f"{sys.executable} {HERE / 'fake_twilio.py'} --port {proxy_port} --mode {mode} "
            f"--delay {delay} --ca {self.dir / 'ca.pem'} "
            f"--events {self.dir / 'twilio_events.jsonl'} --smtp-port {smtp_port}",
            env,
            self.dir / "fake_twilio.log",
        )
        wait_for(lambda: (self.dir / "ca.pem").exists(), 20, "the fake Twilio API")
        proxy = f"http://127.0.0.1:{free_port() if args.twilio == 'refuse' else proxy_port}"
        env.update(
            {
                "HTTPS_PROXY": proxy,
                "https_proxy": proxy,
                "REQUESTS_CA_BUNDLE": str(self.dir / "ca.pem"),
            }
        )
        if args.alerts:
            env.update(
                {
                    "ALERT_EMAIL_TO": "staff@example.org",
                    "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                    "ALERT_SMS_TO": "+13125550199",
                    "ALERT_SMS_FROM": "+13125550198",
                }
            )
        for item in args.env:
            name, _, value = item.partition("=")
            env[name] = value
        self.result["twilio"] = {"mode": args.twilio, "delay_s": delay, "proxy": proxy}
        self.result["office_hours"] = env["OFFICE_HOURS"]
        return env

    def start(self, env: dict[str, str]) -> None:
        self.env = env
        release = self.procfile.get("release")
        if release:
            started = time.monotonic()
            process = self.procs.start(release, env, self.dir / "release.log")
            rc = process.wait(120)
            self.result["release_s"] = round(time.monotonic() - started, 2)
            if rc:
                raise SystemExit(f"release failed (rc {rc}): see {self.dir / 'release.log'}")
        started = time.monotonic()
        self.web = self.procs.start(self.procfile["web"], env, self.dir / "web.log")
        if "worker" in self.procfile:
            self.worker = self.procs.start(self.procfile["worker"], env, self.dir / "worker.log")
        ear = Ear(Prompts(self.root / "prompts"))
        self.burst = Burst(self.port, self.token, self.account, ear)
        probe = Caller(self.burst, -1, 0).call
        deadline = time.monotonic() + 60
        retries = 0
        while True:
            if self.web.poll() is not None:
                log = (self.dir / "web.log").read_text(errors="replace")
                if retries < 3 and "Address already in use" in log:
                    retries += 1  # the port was taken meanwhile (gunicorn gave up): another
                    self.port = self.burst.port = free_port()
                    env["PORT"] = str(self.port)
                    (self.dir / "web.log").unlink()
                    self.web = self.procs.start(self.procfile["web"], env, self.dir / "web.log")
                    deadline = time.monotonic() + 60
                    continue
                raise SystemExit(f"web exited (rc {self.web.returncode}): see web.log")
            try:
                status = probe.post("/voice", CallStatus="ringing").status_code
            except Dropped:
                status = None
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise SystemExit("web did not answer a signed /voice within 60 s")
            time.sleep(0.2)
        self.result["first_200_s"] = round(time.monotonic() - started, 2)
        with self.burst.lock:
            self.burst.requests.clear()
            self.burst.done = 0
        # Every web worker booted (the probe reached only one), then a moment of idleness.
        wait_for(lambda: len(children(self.web.pid)) >= self.args.workers, 30, "web workers")
        time.sleep(2)

    # The burst -------------------------------------------------------------------------------
    def go(self) -> None:
        args = self.args
        monitor = Monitor(lambda: (self.web, self.worker))
        self.result["idle_before"] = monitor.snapshot()
        self.result["loadavg_before"] = os.getloadavg()
        cpu_before = time.process_time()
        salt = random.randrange(90000000)
        callers = [Caller(self.burst, i, salt) for i in range(args.calls)]
        threading.stack_size(512 * 1024)
        gate = threading.Barrier(args.calls + 1)

        def ring(caller: Caller) -> None:
            gate.wait()
            caller.run()

        threads = [threading.Thread(target=ring, args=(c,), daemon=True) for c in callers]
        for thread in threads:
            thread.start()
        fault = (
            threading.Thread(target=faults.fire, args=(self,), daemon=True) if args.fault else None
        )
        monitor.thread.start()
        self.burst.t0 = time.monotonic()
        gate.wait()
        if fault:
            fault.start()
        for thread in threads:
            thread.join()
        with self.burst.lock:
            status_threads = list(self.burst.status_threads)
        for thread in status_threads:
            thread.join()
        wall = time.monotonic() - self.burst.t0
        with self.burst.progress:
            self.burst_over.set()
            self.burst.progress.notify_all()
        if fault:
            fault.join()
        if self.pg:
            self.pg.ensure_started()
        self.result["wall_s"] = round(wall, 2)
        self.result["client_cpu_s"] = round(time.process_time() - cpu_before, 2)
        self.result["faults"] = self.faults
        time.sleep(args.settle)
        monitor.stop.set()
        monitor.thread.join()
        self.result["idle_after"] = monitor.snapshot()
        self.result["peak"] = monitor.peak
        self.callers = callers


def git_head(root: Path) -> str:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=root, capture_output=True, text=True
    )
    return out.stdout.strip()[:80]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "pg"], default="sqlite")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY")
    parser.add_argument("--twilio", choices=["refuse", "ok", "slow", "hang"], default="refuse")
    parser.add_argument(
        "--twilio-delay",
        type=float,
        default=None,
        help="seconds the fake API takes per answer (ok: 0.3, slow: 3)",
    )
    parser.add_argument("--fault", choices=FAULTS)
    parser.add_argument(
        "--at",
        type=float,
        default=0.3,
        help="when the fault happens, as a fraction of the burst's requests",
    )
    parser.add_argument("--down-s", type=float, default=10.0, help="pgstop: seconds stopped")
    parser.add_argument(
        "--alerts",
        action="store_true",
        help="SMS (to the fake API) and e-mail (to a loopback SMTP) alerts",
    )
    parser.add_argument("--open", action="store_true", help="OFFICE_HOURS=always")
    parser.add_argument("--office-hours", default="", help="OFFICE_HOURS (default: closed)")
    parser.add_argument(
        "--settle",
        type=float,
        default=20.0,
        help="seconds after the burst before the database is checked",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="more settings for the app's processes",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="pg: keep the run's PostgreSQL folder"
    )
    parser.add_argument("--tag", default="", help="run folder name under bench/runs/")
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=HERE.parent,
        help="the checkout to run (its Procfile, prompts and code); default: "
        "this one. A worktree of main keeps a half-edited tree out of it",
    )
    args = parser.parse_args()
    if args.fault in ("pgrestart", "pgstop") and args.db != "pg":
        parser.error(f"--fault {args.fault} needs --db pg")

    run = Run(args)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also when started in the background (ignored)
    print(f"run {run.tag}: folder {run.dir}", flush=True)
    try:
        env = run.environment()
        run.start(env)
        print(
            f"app up (first 200 after {run.result['first_200_s']} s); {args.calls} callers go",
            flush=True,
        )
        run.go()
        run.result["database"] = report.check_database(run)
    finally:
        # Cleanup runs to the end: a second Ctrl-C must not leave processes or a stopped cluster.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if run.pg:
            try:
                run.pg.ensure_started()  # a fault must not leave it stopped mid-check
            except subprocess.CalledProcessError as exc:
                print(f"could not start the bench cluster: {exc}", file=sys.stderr)
        run.procs.stop_all()
        if run.pg:
            try:
                if args.keep_db:
                    run.pg.server.stop()
                    print(f"kept the run's PostgreSQL (stopped): {run.pg.server.folder}")
                else:
                    run.pg.remove()
            except Exception as exc:  # cleanup must not hide the run's own error
                print(f"could not remove the run's PostgreSQL: {exc}", file=sys.stderr)
    run.result["twilio_events"] = report.twilio_events(run)
    run.result["logs"] = report.logs(run)
    report.analyse(run)
    (run.dir / "result.json").write_text(json.dumps(run.result, indent=1, default=str))
    report.report(run)


if __name__ == "__main__":
    main()
