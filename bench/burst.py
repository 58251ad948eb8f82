"""Burst benchmark: N simultaneous signed calls over the whole call path, with faults.

Reproduces the outside load test behind issue 9 (../shared/reviews/load.md) in a script we own.
The app starts as production starts it: the Procfile is read at run time and its `release:`,
`web:` (gunicorn; WEB_CONCURRENCY workers, an access log with each request's server time `%(D)s`)
and `worker:` lines run. N callers then walk the callback path at once, every request signed
with twilio-python's RequestValidator as Twilio signs it and every URL after /voice taken from
the TwiML: language, a topic, the next topic, the callback key, the <Record> action (and, 0-1.5 s
later from another thread, the recording status callback), the number step, the A-number, and
the confirmation that reads the reference back. A webhook slower than 15 s cuts the caller off,
as Twilio's webhook timeout does.

Twilio's REST API is faked on loopback (bench/fake_twilio.py: the app's `requests` honour
HTTPS_PROXY): refused, answering (`ok`, `slow` = 3 s) or black-holed (`hang`). Faults: PostgreSQL
restarted or stopped for a while (on this benchmark's own cluster, never the shared one),
`kill -9` of a gunicorn worker or of the worker process. After a settle period the database is
checked against what every caller gave and heard.

Not a test: timings on a shared machine are noisy. Run by hand, e.g.
`python bench/burst.py --db pg --calls 200 --twilio hang`; each run writes bench/runs/<tag>/
(result.json, calls.jsonl with every caller's requests, the processes' logs) and prints a markdown
line for the README's table. `bash bench/matrix.sh APP_DIR SUFFIX` runs the README's set. To
measure committed code while the tree is being edited, point --app-dir at a worktree
(`git worktree add --detach ../bench-main main`). Needs `trustme` (the fake API's CA), `aiosmtpd`,
PostgreSQL 15's `pg_createcluster`/`pg_ctlcluster` and root (or the postgres user) for --db pg.

Reading the figures: server time is gunicorn's %(D)s. With sync workers it excludes the wait in
the accept queue; with gthread workers it includes the wait for a thread and for the GIL, so the
two are not comparable. Client time is what Twilio would see (queue + app + this client's CPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

from twilio.request_validator import RequestValidator

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
ROOT = HERE.parent  # the app under test; --app-dir (e.g. a worktree of main) changes it
VENV_BIN = Path(sys.executable).parent
HOST = "hotline.example.org"  # the public host Twilio signs; the router's headers say so
TWILIO_TIMEOUT = 15.0  # seconds Twilio waits for a webhook before the caller hears an error
REQUESTS_PER_CALL = 13  # a complete call's webhooks, status callback included (for --at)
PG_VERSION, PG_CLUSTER, PG_PORT = "15", "bench", 5433
PG_ROLE = "bench"
ACCESS_FORMAT = "BENCH %({x-bench-id}i)s %(U)s %(s)s %(D)s %(p)s"
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


# Processes ----------------------------------------------------------------------------------
class Processes:
    """Everything this run starts, each in its own process group, so cleanup finds it all."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, command: str, env: dict[str, str], log: Path) -> subprocess.Popen:
        # `exec` so that the Popen's pid is the command itself (kill -9 hits the real process).
        shell = command if re.search(r"[;&|]", command) else "exec " + command
        out = log.open("ab")
        process = subprocess.Popen(
            ["bash", "-c", shell],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.started.append(process)
        return process

    def stop_all(self, grace: float = 10.0) -> None:
        for process in self.started:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.started:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # stragglers, and children left behind
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def proc_status(pid: int) -> dict[str, float] | None:
    """RSS (MB) and thread count of a process, from /proc/<pid>/status."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return {
            "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
            "threads": int(fields["Threads"]),
        }
    except (KeyError, ValueError):
        return None


def free_port() -> int:
    """A free port below Linux's ephemeral range, which outgoing connections (the app's to
    PostgreSQL, other sessions' on this box) draw from: a port from there may be taken before
    gunicorn binds it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port between 20000 and 32000")


def read_procfile() -> dict[str, str]:
    lines = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if re.match(r"^[a-z][a-z0-9_-]*:", line.strip()):
            name, command = line.split(":", 1)
            lines[name.strip()] = command.strip()
    return lines


# PostgreSQL: the benchmark's own cluster ----------------------------------------------------
class Postgres:
    """A cluster of our own on port 5433: faults stop and restart it, never the shared one."""

    def __init__(self) -> None:
        self.admin_url = f"postgresql+psycopg://{PG_ROLE}:{PG_ROLE}@127.0.0.1:{PG_PORT}/postgres"
        # A fault's stop or restart holds the lock; cleanup sets `abort` (ends a --down-s wait)
        # and takes the lock, so it never checks the cluster halfway through a stop.
        self.lock = threading.Lock()
        self.abort = threading.Event()

    def ctl(self, action: str) -> float:
        started = time.monotonic()
        subprocess.run(
            ["pg_ctlcluster", PG_VERSION, PG_CLUSTER, action], check=True, capture_output=True
        )
        return round(time.monotonic() - started, 2)

    def online(self) -> bool:
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
        return any(
            line.split()[:4] == [PG_VERSION, PG_CLUSTER, str(PG_PORT), "online"]
            for line in out.splitlines()
        )

    def ensure(self) -> None:
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
        if not any(line.split()[:2] == [PG_VERSION, PG_CLUSTER] for line in out.splitlines()):
            subprocess.run(
                ["pg_createcluster", PG_VERSION, PG_CLUSTER, "--port", str(PG_PORT)],
                check=True,
                capture_output=True,
            )
        if not self.online():
            self.ctl("start")
        role = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-p",
                str(PG_PORT),
                "-tAc",
                f"SELECT 1 FROM pg_roles WHERE rolname = '{PG_ROLE}'",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if role != "1":
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    "psql",
                    "-p",
                    str(PG_PORT),
                    "-c",
                    f"CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_ROLE}' CREATEDB",
                ],
                check=True,
                capture_output=True,
            )

    def ensure_started(self) -> None:
        self.abort.set()
        with self.lock:
            if not self.online():
                self.ctl("start")

    def _admin(self, sql: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(sql))
        finally:
            engine.dispose()

    def create_database(self, name: str) -> str:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"')
        return f"postgresql://{PG_ROLE}:{PG_ROLE}@127.0.0.1:{PG_PORT}/{name}"

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Prompts: what the caller hears -------------------------------------------------------------
class Ear:
    """Recognises, in the TwiML's <Say>s, the reference read back and the failure messages."""

    def __init__(self) -> None:
        folder = ROOT / "prompts"

        def text(lang: str, name: str) -> str:
            path = folder / lang / f"{name}.txt"
            return path.read_text().strip() if path.exists() else "\0"

        self.digits = {}
        self.marks = {}
        for lang in ("en", "es"):
            for d in "0123456789":
                self.digits[text(lang, f"digit_{d}").lower()] = d
            for name in ("reference_number", "save_failed", "error"):
                self.marks.setdefault(name, []).append(text(lang, name))

    def heard(self, twimls: list[ET.Element]) -> dict[str, object]:
        says = [el.text or "" for twiml in twimls for el in twiml.iter("Say")]
        whole = " ".join(says)
        reference = ""
        for say in says:
            for mark in self.marks["reference_number"]:
                if mark in say and not reference:
                    after = say.split(mark, 1)[1]
                    words = re.findall(r"[^\W\d_]+|\d", after.lower())
                    reference = "".join(self.digits.get(w, "") for w in words)
        return {
            "reference": reference,
            "save_failed": any(m in whole for m in self.marks["save_failed"]),
            "error": any(m in whole for m in self.marks["error"]),
        }


# The callers ---------------------------------------------------------------------------------
TWILIO_FIELDS = {
    "ApiVersion": "2010-04-01",
    "CallStatus": "in-progress",
    "Direction": "inbound",
    "FromCity": "CHICAGO",
    "FromState": "IL",
    "FromZip": "60601",
    "FromCountry": "US",
    "CallerCity": "CHICAGO",
    "CallerState": "IL",
    "CallerZip": "60601",
    "CallerCountry": "US",
    "To": "+18005550100",
    "Called": "+18005550100",
    "ToCity": "",
    "ToState": "",
    "ToZip": "",
    "ToCountry": "US",
    "CalledCity": "",
    "CalledState": "",
    "CalledZip": "",
    "CalledCountry": "US",
    "StirVerstat": "TN-Validation-Passed-A",
}
AREAS = ["312", "773", "872", "630", "847", "708", "331", "224"]


def normalise(path: str) -> str:
    """A webhook's name: its path with the language and numbers as placeholders."""
    path = re.sub(r"^/voice/(en|es)(/|$)", r"/voice/{lang}\2", path)
    return re.sub(r"/\d+(/|$)", r"/{n}\1", path)


class Burst:
    """Shared state of the callers: the requests made and the progress (for --at)."""

    def __init__(self, port: int, token: str, account: str, ear: Ear) -> None:
        self.port, self.account, self.ear = port, account, ear
        self.validator = RequestValidator(token)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.done = 0
        self.progress = threading.Condition(self.lock)
        self.t0 = time.monotonic()
        self.status_threads: list[threading.Thread] = []

    def send(
        self, caller: Caller, url: str, extra: dict[str, str], step: str, status_cb: bool = False
    ) -> tuple[int | None, bytes, float, str]:
        url = urljoin(f"https://{HOST}/voice", url)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if status_cb:
            params = {"AccountSid": self.account, "CallSid": caller.sid, **extra}
        else:
            params = {
                "CallSid": caller.sid,
                "AccountSid": self.account,
                **TWILIO_FIELDS,
                "From": caller.from_number,
                "Caller": caller.from_number,
                **extra,
            }
        caller.n += 1
        bid = f"{caller.i}.{caller.n}"
        headers = {
            "Host": HOST,
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": "443",
            "X-Forwarded-For": "54.172.60.1",
            "Via": "1.1 vegur",
            "X-Bench-Id": bid,
            "X-Twilio-Signature": self.validator.compute_signature(url, params),
        }
        started = time.monotonic()
        status, body, outcome = None, b"", "ok"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TWILIO_TIMEOUT)
        try:
            conn.request("POST", path, body=urlencode(params), headers=headers)
            reply = conn.getresponse()
            body = reply.read()
            status = reply.status
        except TimeoutError:
            outcome = "timeout"
        except OSError as exc:
            outcome = f"conn-error:{type(exc).__name__}"
        except http.client.HTTPException as exc:
            outcome = f"http-error:{type(exc).__name__}"
        finally:
            conn.close()
        ms = (time.monotonic() - started) * 1000
        if outcome == "ok" and ms > TWILIO_TIMEOUT * 1000:
            outcome = "timeout"
        if outcome == "ok" and status not in (200, 204):
            outcome = f"http-{status}"
        record = {
            "call": caller.i,
            "bid": bid,
            "step": step,
            "path": normalise(parts.path),
            "status": status,
            "ms": round(ms, 2),
            "outcome": outcome,
            "t": round(started - self.t0, 3),
        }
        with self.lock:
            self.requests.append(record)
            self.done += 1
            self.progress.notify_all()
        return status, body, ms, outcome


class Caller:
    """One caller walking the callback path, as Twilio would post it."""

    def __init__(self, burst: Burst, i: int, run_salt: int) -> None:
        self.burst, self.i = burst, i
        self.sid = "CA" + secrets.token_hex(16)
        self.from_number = f"+1{AREAS[i // 10000 % len(AREAS)]}555{i % 10000:04d}"
        self.a_number = f"{(run_salt + i * 7919) % 90000000 + 10000000:08d}"
        self.lang = "1" if i % 2 == 0 else "2"
        self.topic = str(1 + i % 4)
        self.recording_sid = "RE" + secrets.token_hex(16)
        self.n = 0
        self.url = "/voice"
        self.sent: set[str] = set()  # steps the caller got as far as sending
        self.outcome = "incomplete"
        self.heard: dict[str, object] = {"reference": ""}
        self.last_step = ""
        self.status_cb: dict | None = None

    def request(self, url: str, step: str, **extra: str) -> ET.Element | None:
        self.sent.add(step)
        self.last_step = step
        status, body, _ms, outcome = self.burst.send(self, url, extra, step)
        if outcome != "ok":
            self.outcome = "cut-off" if outcome == "timeout" else outcome
            return None
        try:
            twiml = ET.fromstring(body)
        except ET.ParseError:
            self.outcome = "not-xml"
            return None
        self.url = urljoin(self.url, url)
        return twiml

    def run(self) -> None:
        try:
            self.walk()
        except Exception as exc:  # a bug in the walk must not hide the others' results
            self.outcome = f"client-bug:{exc!r}"

    def walk(self) -> None:
        twiml = self.request("/voice", "voice", CallStatus="ringing")
        topics = 0
        heard: list[ET.Element] = []
        for _ in range(40):
            if twiml is None:
                return
            heard.append(twiml)
            tags = [child.tag for child in twiml]
            if "Gather" in tags:
                gather = twiml.find("Gather")
                action = gather.get("action") or self.url
                path = urlsplit(urljoin(self.url, action)).path
                if path.endswith("/voice/language"):
                    step, digits = "language", self.lang
                elif path.endswith("/menu/choice"):
                    step, digits = "topic", self.topic
                elif re.search(r"/topics/\d+/choice$", path):
                    step, digits = ("next-topic", "#") if topics == 0 else ("callback-key", "8")
                    topics += 1
                elif path.endswith("/callback/number/choice"):
                    step, digits = "number", "1"
                elif path.endswith("/a-number/choice"):
                    step, digits = "a-number", self.a_number
                else:
                    self.outcome = f"unexpected-menu:{normalise(path)}"
                    break
                heard = []
                twiml = self.request(action, step, Digits=digits)
            elif "Record" in tags:
                record = twiml.find("Record")
                fields = {
                    "RecordingSid": self.recording_sid,
                    "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/"
                    f"{self.burst.account}/Recordings/{self.recording_sid}",
                    "RecordingDuration": "12",
                }
                callback = record.get("recordingStatusCallback")
                if callback:
                    thread = threading.Thread(
                        target=self.recording_status,
                        args=(urljoin(self.url, callback), fields),
                        daemon=True,
                    )
                    with self.burst.lock:
                        self.burst.status_threads.append(thread)
                    thread.start()
                heard = []
                twiml = self.request(
                    record.get("action") or self.url, "recorded", Digits="#", **fields
                )
            elif "Dial" in tags:
                dial = twiml.find("Dial")
                if not dial.get("action"):
                    break
                twiml = self.request(
                    dial.get("action"),
                    "dial",
                    DialCallStatus="no-answer",
                    DialCallSid="CA" + secrets.token_hex(16),
                    DialCallDuration="0",
                    DialBridged="false",
                )
            elif "Redirect" in tags and "Hangup" not in tags:
                redirect = twiml.find("Redirect")
                path = urlsplit(urljoin(self.url, redirect.text or self.url)).path
                twiml = self.request(redirect.text or self.url, "redirect:" + normalise(path))
            else:
                break
        self.heard = self.burst.ear.heard(heard)
        if self.outcome == "incomplete":
            self.outcome = "reference" if self.heard["reference"] else "ended-without-reference"

    def recording_status(self, url: str, fields: dict[str, str]) -> None:
        time.sleep(random.uniform(0, 1.5))
        params = {
            **fields,
            "RecordingStatus": "completed",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
            "RecordingStartTime": dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
        }
        status, _body, ms, outcome = self.burst.send(
            self, url, params, "recording-status", status_cb=True
        )
        self.status_cb = {"status": status, "ms": round(ms, 1), "outcome": outcome}


# Sampling memory and threads ----------------------------------------------------------------
class Monitor:
    """Samples RSS and threads of the master, its workers and the worker process."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.peak: dict[str, dict[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def snapshot(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {"master": [], "web": [], "worker": []}
        web = self.run.web
        if web and web.poll() is None:
            status = proc_status(web.pid)
            if status:
                out["master"].append({"pid": web.pid, **status})
            for pid in children(web.pid):
                status = proc_status(pid)
                if status:
                    out["web"].append({"pid": pid, **status})
        worker = self.run.worker
        if worker and worker.poll() is None:
            for pid in [worker.pid, *children(worker.pid)]:
                status = proc_status(pid)
                if status:
                    out["worker"].append({"pid": pid, **status})
        return out

    def loop(self) -> None:
        while not self.stop.wait(0.5):
            for role, items in self.snapshot().items():
                for item in items:
                    peak = self.peak.setdefault(role, {"rss_mb": 0, "threads": 0})
                    peak["rss_mb"] = max(peak["rss_mb"], item["rss_mb"])
                    peak["threads"] = max(peak["threads"], item["threads"])


# One run -------------------------------------------------------------------------------------
class Run:
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
        self.procs = Processes()
        self.pg = Postgres() if args.db == "pg" else None
        self.db_name = ""
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.procfile = read_procfile()
        self.result: dict = {
            "tag": self.tag,
            "args": vars(args),
            "procfile": self.procfile,
            "commit": git_head(),
            "started": utc_now(),
        }
        self.faults: list[dict] = []

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
                "PYTHONPATH": str(ROOT),  # this tree's `ivr`, before the venv's editable install
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
        if self.pg:
            self.pg.ensure()
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
        ear = Ear()
        self.burst = Burst(self.port, self.token, self.account, ear)
        probe = Caller(self.burst, -1, 0)
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
            status, *_ = self.burst.send(probe, "/voice", {"CallStatus": "ringing"}, "probe")
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

    # Faults --------------------------------------------------------------------------------
    def fault(self) -> None:
        args = self.args
        target = math.ceil(args.at * args.calls * REQUESTS_PER_CALL)
        with self.burst.progress:
            fired = self.burst.progress.wait_for(
                lambda: self.burst.done >= target or self.burst_over.is_set(), timeout=600
            )
            done = self.burst.done
        if not fired or self.burst_over.is_set():
            self.faults.append({"fault": args.fault, "fired": False})
            return
        event = {
            "fault": args.fault,
            "fired": True,
            "at_s": round(time.monotonic() - self.burst.t0, 2),
            "requests_done": done,
            "fraction": round(done / (args.calls * REQUESTS_PER_CALL), 3),
        }
        if args.fault == "pgrestart":
            with self.pg.lock:
                event["restart_s"] = self.pg.ctl("restart")
        elif args.fault == "pgstop":
            with self.pg.lock:
                event["stop_s"] = self.pg.ctl("stop")
            self.pg.abort.wait(args.down_s)
            with self.pg.lock:
                if not self.pg.online():  # cleanup may have started it already
                    event["start_s"] = self.pg.ctl("start")
        elif args.fault == "kill-web":
            workers = children(self.web.pid)
            if workers:
                victim = random.choice(workers)
                os.kill(victim, signal.SIGKILL)
                event["killed_pid"] = victim
        elif args.fault == "kill-worker":
            if self.worker is None:
                event["note"] = "the Procfile has no worker: line"
            else:
                event["killed_pid"] = self.worker.pid
                event["worker_rc_before"] = self.worker.poll()
                _signal_group(self.worker, signal.SIGKILL)
                self.worker.wait(10)
                time.sleep(1.0)  # the platform restarts a crashed process
                self.worker = self.procs.start(
                    self.procfile["worker"], self.env, self.dir / "worker.log"
                )
                event["restarted_pid"] = self.worker.pid
        event["done_s"] = round(time.monotonic() - self.burst.t0, 2)
        self.faults.append(event)

    # The burst -------------------------------------------------------------------------------
    def go(self) -> None:
        args = self.args
        monitor = Monitor(self)
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
        self.burst_over = threading.Event()
        fault = threading.Thread(target=self.fault, daemon=True) if args.fault else None
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

    # After -----------------------------------------------------------------------------------
    def check_database(self) -> dict:
        import sqlalchemy as sa

        url = self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = sa.create_engine(url)
        out: dict = {}
        try:
            with engine.connect() as conn:
                rows = (
                    conn.execute(
                        sa.text(
                            "SELECT call_sid, reference, caller_number, callback_number, a_number,"
                            " step, recording_sid, recording_duration, audio_type"
                            " FROM callback_requests"
                        )
                    )
                    .mappings()
                    .all()
                )
                calls = Counter(conn.execute(sa.text("SELECT call_sid FROM calls")).scalars())
                tables = sa.inspect(conn).get_table_names()
                if "jobs" in tables:
                    columns = [c["name"] for c in sa.inspect(conn).get_columns("jobs")]
                    out["jobs_columns"] = columns
                    for column in ("state", "status"):
                        if column in columns:
                            out["jobs"] = dict(
                                conn.execute(
                                    sa.text(
                                        f"SELECT {column}, count(*) FROM jobs GROUP BY {column}"
                                    )
                                ).all()
                            )
                            break
                    for column in ("kind", "name", "task"):
                        if column in columns:
                            out["jobs_by_kind"] = {
                                f"{k}": n
                                for k, n in conn.execute(
                                    sa.text(
                                        f"SELECT {column}, count(*) FROM jobs GROUP BY {column}"
                                    )
                                ).all()
                            }
                            break
        finally:
            engine.dispose()
        by_sid = defaultdict(list)
        for row in rows:
            by_sid[row["call_sid"]].append(row)
        sids = {c.sid for c in self.callers}
        exact = lost = duplicated = mismatched = recorded = copied = 0
        problems = Counter()
        for caller in self.callers:
            found = by_sid.get(caller.sid, [])
            gave_recording = "recorded" in caller.sent or caller.status_cb is not None
            recorded += gave_recording
            if len(found) > 1:
                duplicated += len(found) - 1
            if not found:
                if gave_recording:
                    lost += 1
                    problems["no row"] += 1
                continue
            row = found[0]
            copied += row["audio_type"] is not None
            missing = []
            if row["recording_sid"] != caller.recording_sid:
                missing.append("recording")
            if "number" in caller.sent and row["callback_number"] != caller.from_number:
                missing.append("callback number")
            if "a-number" in caller.sent and not (row["a_number"] or "").endswith(caller.a_number):
                missing.append("A-number")
            if missing:
                lost += 1
                problems["row without " + " and ".join(missing)] += 1
            heard = caller.heard.get("reference") or ""
            if heard and heard != row["reference"]:
                mismatched += 1
            complete = (
                row["step"] == "complete"
                and heard == row["reference"]
                and row["caller_number"] == caller.from_number
                and row["callback_number"] == caller.from_number
                and (row["a_number"] or "").endswith(caller.a_number)
                and row["recording_sid"] == caller.recording_sid
                and row["recording_duration"] == 12
            )
            exact += complete and len(found) == 1
        strangers = sum(len(v) for sid, v in by_sid.items() if sid not in sids)
        references = Counter(row["reference"] for row in rows)
        chose = [c for c in self.callers if "language" in c.sent]
        out.update(
            {
                "rows": len(rows),
                "exact": exact,
                "recorded": recorded,
                "lost": lost,
                "duplicated": duplicated + strangers,
                "reference_mismatch": mismatched,
                "problems": dict(problems),
                "duplicate_references": sum(n - 1 for n in references.values() if n > 1),
                "copied": copied,
                "calls_counted": sum(1 for c in chose if calls.get(c.sid)),
                "calls_chose_language": len(chose),
                "calls_duplicated": sum(n - 1 for sid, n in calls.items() if sid in sids and n > 1),
            }
        )
        return out

    def access_log(self) -> dict[str, dict]:
        server = {}
        for line in (self.dir / "web.log").read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[0] == "BENCH" and parts[1] != "-":
                server[parts[1]] = {
                    "path": normalise(parts[2]),
                    "status": parts[3],
                    "us": int(parts[4]),
                    "pid": parts[5],
                }
        return server

    def twilio_events(self) -> dict:
        path = self.dir / "twilio_events.jsonl"
        events = (
            [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        )
        kinds = Counter()
        sms = Counter()
        for event in events:
            if event["method"] == "GET" and "/Recordings/" in event["path"]:
                kinds["recording GET"] += 1
            elif event["method"] == "DELETE":
                kinds["recording DELETE"] += 1
            elif event["method"] == "POST" and event["path"].endswith("/Messages.json"):
                kinds["SMS"] += 1
                sms[event.get("form", "")] += 1
            else:
                kinds[event["method"]] += 1
        kinds["SMS sent twice"] = sum(n - 1 for n in sms.values() if n > 1)
        return dict(kinds)

    def logs(self) -> dict:
        fallback = self.dir / "fallback.jsonl"
        out = {
            "fallback_lines_left": len(fallback.read_text().splitlines())
            if fallback.exists()
            else 0
        }
        for name in ("web", "worker"):
            path = self.dir / f"{name}.log"
            if not path.exists():
                continue
            lines = [
                ln
                for ln in path.read_text(errors="replace").splitlines()
                if not ln.startswith("BENCH ")
            ]
            out[name] = {
                "lines": len(lines),
                "tracebacks": sum(ln.startswith("Traceback") for ln in lines),
                "fallback_kept": sum("IVR-JOURNAL" in ln for ln in lines),
                "errors": sum(" ERROR" in ln or ln.startswith("ERROR") for ln in lines),
                "worker_timeouts": sum("WORKER TIMEOUT" in ln for ln in lines),
            }
        return out

    def analyse(self) -> None:
        server = self.access_log()
        requests = self.burst.requests
        groups: dict[str, dict[str, list]] = defaultdict(
            lambda: {"client": [], "server": [], "bad": []}
        )
        for req in requests:
            group = groups[req["path"]]
            group["client"].append(req["ms"])
            group["bad"].append(req["outcome"] != "ok")
            seen = server.get(req["bid"])
            if seen:
                group["server"].append(seen["us"] / 1000)
        webhooks = {}
        for path, group in groups.items():
            webhooks[path] = {
                "n": len(group["client"]),
                "non_ok": sum(group["bad"]),
                "client": pcts(group["client"]),
                "server": pcts(group["server"]),
                "server_n": len(group["server"]),
            }
        callers = self.callers
        outcomes = Counter(c.outcome for c in callers)
        cut_off = sum(1 for c in callers if c.outcome == "cut-off")
        self.result.update(
            {
                "requests": len(requests),
                "non_ok": sum(1 for r in requests if r["outcome"] != "ok"),
                "no_server_line": sum(1 for r in requests if r["bid"] not in server),
                "webhooks": webhooks,
                "client_all": pcts([r["ms"] for r in requests]),
                "server_all": pcts(
                    [server[r["bid"]]["us"] / 1000 for r in requests if r["bid"] in server]
                ),
                "callers": {
                    "n": len(callers),
                    "outcomes": dict(outcomes),
                    "cut_off": cut_off,
                    "reached_reference": sum(1 for c in callers if c.heard.get("reference")),
                    "no_reference": sum(1 for c in callers if not c.heard.get("reference")),
                    "heard_save_failed": sum(1 for c in callers if c.heard.get("save_failed")),
                    "heard_error": sum(1 for c in callers if c.heard.get("error")),
                    "last_step_without_reference": dict(
                        Counter(c.last_step for c in callers if not c.heard.get("reference"))
                    ),
                    "status_callbacks": dict(
                        Counter((c.status_cb or {}).get("outcome", "none") for c in callers)
                    ),
                },
            }
        )
        with (self.dir / "calls.jsonl").open("w") as out:
            for caller in callers:
                out.write(
                    json.dumps(
                        {
                            "i": caller.i,
                            "sid": caller.sid,
                            "from": caller.from_number,
                            "a_number": caller.a_number,
                            "recording_sid": caller.recording_sid,
                            "outcome": caller.outcome,
                            "heard": caller.heard,
                            "status_cb": caller.status_cb,
                            "requests": [r for r in requests if r["call"] == caller.i],
                        }
                    )
                    + "\n"
                )

    # Reporting -------------------------------------------------------------------------------
    def report(self) -> None:
        r = self.result
        print(f"\n## {self.tag}  (commit {r['commit']}, {r['started']})")
        print(f"Procfile: {json.dumps(r['procfile'])}")
        print(
            f"release {r.get('release_s')} s, first 200 after {r.get('first_200_s')} s, "
            f"burst {r.get('wall_s')} s, {r.get('requests')} requests, "
            f"non-OK {r.get('non_ok')}; faults: {json.dumps(r.get('faults'))}"
        )
        print("\n| webhook | n | non-OK | server p50/p99/max ms | client p50/p99/max ms |")
        print("|---|---|---|---|---|")
        order = {
            p: min(req["t"] for req in self.burst.requests if req["path"] == p)
            for p in r["webhooks"]
        }
        for path in sorted(r["webhooks"], key=order.get):
            w = r["webhooks"][path]
            print(
                f"| {path} | {w['n']} | {w['non_ok']} | {fmt(w['server'])} | {fmt(w['client'])} |"
            )
        c = r["callers"]
        print(f"\ncallers: {json.dumps(c)}")
        print(f"database: {json.dumps(r.get('database'))}")
        print(f"twilio API: {json.dumps(r.get('twilio_events'))}")
        print(f"logs: {json.dumps(r.get('logs'))}")
        print("\n| process | idle before (RSS MB / threads) | peak | idle after |")
        print("|---|---|---|---|")
        for role in ("master", "web", "worker"):
            print(
                f"| {role} | {mem(r['idle_before'].get(role))} | "
                f"{mem([r['peak'][role]] if role in r['peak'] else [])} | "
                f"{mem(r['idle_after'].get(role))} |"
            )
        print("\n" + SUMMARY_HEADER)
        print(self.summary_line())

    def summary_line(self) -> str:
        r = self.result
        c, d = r["callers"], r.get("database") or {}
        worst = max(
            r["webhooks"].items(),
            key=lambda kv: kv[1]["server"].get("max", 0),
            default=("-", {"server": {}}),
        )
        faults = r.get("faults") or []
        fault = self.args.fault or "-"
        if faults and not faults[0].get("fired"):
            fault += " (not fired)"
        peak = r.get("peak", {})
        return (
            "| "
            + " | ".join(
                [
                    self.tag,
                    f"{self.args.db} w{self.args.workers} n{self.args.calls}",
                    self.args.twilio
                    + (
                        f" {r['twilio']['delay_s']:g}s"
                        if self.args.twilio in ("ok", "slow")
                        else ""
                    ),
                    fault,
                    f"{r['wall_s']:.1f}",
                    str(r["non_ok"]),
                    str(c["cut_off"]),
                    str(c["no_reference"]),
                    f"{d.get('exact', '?')}/{self.args.calls}",
                    str(d.get("lost", "?")),
                    str(d.get("duplicated", "?")),
                    f"{d.get('calls_counted', '?')}/{d.get('calls_chose_language', '?')}",
                    str(d.get("copied", "?")),
                    f"{fmt(r['server_all'], 'p99', 'max')} ({worst[0]})",
                    fmt(r["client_all"], "p99", "max"),
                    f"{mem(r['idle_before'].get('web'), 'rss_mb')} → "
                    f"{mem(r['idle_after'].get('web'), 'rss_mb')} "
                    f"(peak {peak.get('web', {}).get('rss_mb', '?')})",
                    f"{peak.get('web', {}).get('threads', '?')}/"
                    f"{peak.get('worker', {}).get('threads', '-')}",
                    f"{mem(r['idle_after'].get('worker'), 'rss_mb') or '-'}",
                ]
            )
            + " |"
        )


SUMMARY_HEADER = (
    "| run | setup | Twilio API | fault | burst s | non-OK | cut off | no reference | DB exact/N "
    "| lost | dup | calls counted | copied | server p99/max ms (worst webhook) "
    "| client p99/max ms | web RSS MB idle → after | peak threads web/worker | worker RSS MB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)

    return {"p50": rank(0.5), "p99": rank(0.99), "max": round(ordered[-1], 1)}


def fmt(p: dict, *keys: str) -> str:
    keys = keys or ("p50", "p99", "max")
    return (
        "/".join(f"{p[k]:.0f}" if p.get(k, 0) >= 10 else f"{p.get(k, 0):.1f}" for k in keys)
        if p
        else "-"
    )


def mem(items: list[dict] | None, key: str | None = None) -> str:
    if not items:
        return ""
    if key:
        return "/".join(f"{item[key]:.0f}" for item in items)
    return ", ".join(f"{item['rss_mb']:.0f}/{item['threads']}" for item in items)


def wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {seconds:g} s")
        time.sleep(0.1)


def git_head() -> str:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip()[:80]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def main() -> None:
    global ROOT
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
    parser.add_argument("--fault", choices=["pgrestart", "pgstop", "kill-web", "kill-worker"])
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
    parser.add_argument("--keep-db", action="store_true", help="pg: keep the run's database")
    parser.add_argument("--tag", default="", help="run folder name under bench/runs/")
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=ROOT,
        help="the checkout to run (its Procfile, prompts and code); default: "
        "this one. A worktree of main keeps a half-edited tree out of it",
    )
    args = parser.parse_args()
    ROOT = args.app_dir.resolve()
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
        run.result["database"] = run.check_database()
    finally:
        # Cleanup runs to the end: a second Ctrl-C must not leave processes or a stopped cluster.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if run.pg:
            try:
                run.pg.ensure_started()  # never leave the bench cluster stopped
            except subprocess.CalledProcessError as exc:
                print(f"could not start the bench cluster: {exc}", file=sys.stderr)
        run.procs.stop_all()
        if run.pg and run.db_name and not args.keep_db:
            try:
                run.pg.drop_database(run.db_name)
            except Exception as exc:  # cleanup must not hide the run's own error
                print(f"could not drop {run.db_name}: {exc}", file=sys.stderr)
    run.result["twilio_events"] = run.twilio_events()
    run.result["logs"] = run.logs()
    run.analyse()
    (run.dir / "result.json").write_text(json.dumps(run.result, indent=1, default=str))
    run.report()


if __name__ == "__main__":
    main()
