"""Reports benchmark: the Reports page with a busy year in the database, on SQLite and PostgreSQL.

Issue 24 asks the page to answer in under half a second with 100,000 calls stored. This script
fills a fresh database with a year of calls (their anonymous events, as the voice views record
them: about five a call) and the callback requests a quarter of them leave, with call-back
history; then an admin asks for the page of the busiest month, a week and a day, in-process
through Flask's test client (query, figures, template; no network), and the CSV.

Not a test: timings on a shared machine are noisy. Run by hand, e.g.
`python bench/reports.py --db sqlite` or
`python bench/reports.py --db pg --pg-url postgresql+psycopg://ivr_test:ivr_test@127.0.0.1:5432/postgres`
(a database is created for the run and dropped after). Prints a markdown line for the README.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr import create_app  # noqa: E402
from ivr.accounts.models import StaffUser  # noqa: E402
from ivr.db import db  # noqa: E402
from ivr.migrate import upgrade  # noqa: E402
from ivr.reports.events import CallEvent  # noqa: E402
from ivr.requests.history import RequestEvent  # noqa: E402
from ivr.requests.models import CallbackRequest  # noqa: E402

PASSWORD = "a bench password"
HTTPS = "https://localhost"  # as behind the platform's TLS: plain http is redirected
# Journeys (the kinds of events in order) and how often callers take them.
JOURNEYS = [
    (["call"], 6),
    (["call", "language"], 10),
    (["call", "language", "topic"], 8),
    (["call", "language", "topic", "topic-end", "topic", "topic-cut", "menu"], 12),
    (["call", "language", "topic", "topic-cut", "topic-slow", "topic-end"], 4),
    (["call", "language", "firm-tried", "firm-answered"], 14),
    (["call", "language", "firm-tried", "firm-missed", "callback-started", "recorded"], 6),
    (["call", "language", "firm-closed", "callback-started"], 5),
    (["call", "language", "help", "callback-started", "recorded", "number", "complete"], 5),
    (
        ["call", "language", "topic", "topic-end", "callback-started", "recorded", "number"]
        + ["complete", "urgent", "text-sent"],
        15,
    ),
    (["call", "language", "callback-started", "recorded", "number", "complete"], 15),
]
HOURS = [1] * 7 + [4, 8, 10, 10, 9, 8, 9, 9, 8, 7, 5, 4, 3, 2, 2, 1, 1]  # calls by hour of day


def fill(app, calls: int, seed: int = 24) -> tuple[int, int]:
    """A year of `calls` calls ending today; returns (events, requests) stored."""
    rng = random.Random(seed)
    today = dt.date.today()
    journeys, weights = zip(*JOURNEYS, strict=True)
    events: list[dict] = []
    requests: list[dict] = []
    for n in range(calls):
        day = today - dt.timedelta(days=rng.randrange(365))
        hour = rng.choices(range(24), HOURS)[0]
        lang = "es" if rng.random() < 0.7 else "en"
        path = rng.choices(journeys, weights)[0]
        seen: set[str] = set()
        for i, kind in enumerate(path):
            events.append(
                dict(
                    call_key=None,
                    kind=kind,
                    detail=str(rng.randint(1, 5)) if kind.startswith("topic") else "",
                    language="" if kind == "call" else lang,
                    day=day,
                    hour=hour if kind in ("call", "language") else None,
                    is_first=kind not in seen,
                    is_last=i == len(path) - 1,
                    at=None,
                )
            )
            seen.add(kind)
        if "recorded" in path:
            created = dt.datetime.combine(day, dt.time(hour, rng.randrange(60)), dt.UTC)
            requests.append(
                dict(
                    call_sid=f"CA{n:032x}",
                    reference=f"{100000 + n}",
                    language=lang,
                    caller_number="",
                    status=rng.choice(["new", "trying", "reached", "reached", "handled"]),
                    urgent=rng.random() < 0.2,
                    created_at=created,
                    updated_at=created,
                )
            )
    with app.app_context():
        for start in range(0, len(events), 20000):
            db.session.execute(sa.insert(CallEvent), events[start : start + 20000])
        for start in range(0, len(requests), 5000):
            db.session.execute(sa.insert(CallbackRequest), requests[start : start + 5000])
        rows = db.session.execute(
            sa.select(CallbackRequest.id, CallbackRequest.created_at, CallbackRequest.status)
        ).all()
        history = []
        for request_id, created, status in rows:
            if status == "new":
                continue
            first = created + dt.timedelta(hours=rng.uniform(0.2, 30))
            history.append(
                dict(request_id=request_id, kind="call", actor="ana", text="", created_at=first)
            )
            history.append(
                dict(
                    request_id=request_id,
                    kind="outcome",
                    actor=None,
                    text="",
                    outcome="reached" if status != "trying" else "no-answer",
                    created_at=first + dt.timedelta(minutes=1),
                )
            )
            if status in ("reached", "handled"):
                history.append(
                    dict(
                        request_id=request_id,
                        kind="status",
                        actor=None,
                        text="",
                        status_from="new",
                        status_to="reached",
                        created_at=first + dt.timedelta(minutes=1),
                    )
                )
        for start in range(0, len(history), 20000):
            db.session.execute(sa.insert(RequestEvent), history[start : start + 20000])
        db.session.add(
            StaffUser(username="ana", role="admin", password_hash=generate_password_hash(PASSWORD))
        )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
        else:
            with db.engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
    return len(events), len(requests)


def log_in(client) -> None:
    page = client.get("/staff/login", base_url=HTTPS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token, page[:300]
    data = {"username": "ana", "password": PASSWORD, "csrf_token": token[1]}
    assert (
        client.post(
            "/staff/login", data=data, base_url=HTTPS, headers={"Referer": HTTPS + "/staff/login"}
        ).status_code
        == 302
    )


def timed(client, url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url, base_url=HTTPS)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, (url, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_POSTGRES_URL", ""))
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ivr-bench-reports-"))
    admin = None
    name = f"ivr_bench_{uuid.uuid4().hex[:10]}"
    if args.db == "pg":
        admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    try:
        app = create_app(
            {
                "SECRET_KEY": "bench-" + "0" * 32,
                "DATABASE_URL": url,
                "TWILIO_AUTH_TOKEN": "bench",
                "FIRM_PHONE_NUMBER": "+13125550100",
                "STAFF_2FA": "optional",
                "FALLBACK_PATH": str(work / "fallback.jsonl"),
                "AUDIO_DIR": str(work / "audio"),
            }
        )
        upgrade(app)
        began = time.perf_counter()
        stored, requests = fill(app, args.calls)
        print(
            f"filled {args.calls} calls ({stored} events, {requests} requests) "
            f"in {time.perf_counter() - began:.0f} s",
            file=sys.stderr,
        )
        client = app.test_client()
        log_in(client)
        today = dt.date.today()
        last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        urls = {
            "month": f"/staff/reports?period=month&start={last_month}",
            "week": f"/staff/reports?period=week&start={today - dt.timedelta(days=7)}",
            "day": f"/staff/reports?period=day&start={today - dt.timedelta(days=1)}",
            "csv (month)": f"/staff/reports.csv?period=month&start={last_month}",
        }
        client.get(urls["month"], base_url=HTTPS)  # warm: templates compiled, connections open
        results = {}
        for label, url in urls.items():
            times = timed(client, url, args.repeat)
            results[label] = (statistics.median(times), max(times))
            print(
                f"{label:12} median {results[label][0] * 1000:6.0f} ms, "
                f"max {results[label][1] * 1000:6.0f} ms",
                file=sys.stderr,
            )
        cells = " | ".join(f"{m * 1000:.0f} ms (max {x * 1000:.0f})" for m, x in results.values())
        print(
            f"| {args.db} | {args.calls:,} calls, {stored:,} events, {requests:,} requests "
            f"| {cells} |"
        )
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
