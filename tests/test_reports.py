"""Reports (issue 24): emulated calls along known paths give known figures; no event names anyone.

Calls are placed with the emulator, signed as Twilio signs them; the figures are read from what
those calls stored, through the same `figures.build` the Reports page and the weekly e-mail use.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from ivr.background import jobs
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.reports import events, figures, tasks
from ivr.reports.charts import NO_LANGUAGE, Period
from ivr.reports.events import CallEvent
from ivr.reports.waits import OfficeClock
from ivr.requests import history
from ivr.requests.models import CallbackRequest
from ivr.staff import roles
from tests.conftest import TOKEN
from tests.test_alerts import smtp  # noqa: F401  (a fixture: a real SMTP server on loopback)
from tests.test_callback import record, recording_params, to_recording

START = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # a Wednesday, 9:00 in Chicago
WEEK = Period.around("week", dt.date(2026, 11, 25))


class Clock:
    """A CLOCK setting the test moves: events are stamped with it."""

    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def app(make_app, clock):
    return make_app(CLOCK=clock)


def place(client, number: str = "+13125550123") -> Call:
    call = Call(client, TOKEN, from_number=number)
    call.answer()
    return call


def dial_ends(call: Call, status: str) -> None:
    """The firm's leg ends: Twilio posts the <Dial> action with its status."""
    dial = call.document().find("Dial")
    assert dial is not None
    bridged = "true" if status == "completed" else "false"
    call.follow(dial.get("action"), DialCallStatus=status, DialBridged=bridged)


def known_calls(client) -> dict[str, Call]:
    """Six calls, each stopping (hanging up) at a known step."""
    calls = {}
    calls["topic"] = place(client)  # English, hangs up while topic 1 is read
    calls["topic"].press("1")
    calls["topic"].press("1")
    calls["menu"] = place(client)  # Spanish, hangs up at the main menu
    calls["menu"].press("2")
    calls["greeting"] = place(client)  # hangs up before choosing a language
    calls["request"] = Call(client, TOKEN)  # Spanish, leaves a whole request
    to_recording(calls["request"], "es")
    record(calls["request"], **recording_params())
    calls["request"].press("1")  # the number read back
    calls["request"].press("12345678")  # the A-number
    calls["no-answer"] = place(client)  # English, the firm does not answer, hangs up
    calls["no-answer"].press("1")
    calls["no-answer"].press("0")
    dial_ends(calls["no-answer"], "no-answer")
    calls["answered"] = place(client)  # English, talks with the firm
    calls["answered"].press("1")
    calls["answered"].press("0")
    dial_ends(calls["answered"], "completed")
    return calls


def chart(report: figures.Report, chart_id: str) -> dict[str, dict[str, float]]:
    """A chart's numbers as {label: {series: value}}."""
    found = next(c for c in report.charts if c.id == chart_id)
    return {
        label: {s.name: v for s, v in zip(found.series, values, strict=True)}
        for label, values in found.rows()
    }


def test_known_paths_give_the_funnel(app, client):
    known_calls(client)
    with app.app_context():
        report = figures.build(WEEK, now=START)
    headline = dict(report.headline)
    assert headline["Calls"] == "6"
    assert headline["Left a request"] == "1"
    assert headline["Missed calls"] == "3"  # topic, menu (no request), no-answer (the firm)

    reached = chart(report, "reached")
    assert reached["Chose a language"] == {"English": 3, "Spanish": 2}
    assert reached["Heard a topic"] == {"English": 1, "Spanish": 0}
    assert reached["Asked for the firm"] == {"English": 2, "Spanish": 0}
    assert reached["Talked with the firm"] == {"English": 1, "Spanish": 0}
    assert reached["Started a message"] == {"English": 0, "Spanish": 1}
    assert reached["Gave every detail"] == {"English": 0, "Spanish": 1}

    ended = {
        label: {k: v for k, v in row.items() if v}
        for label, row in chart(report, "hang-ups").items()
        if any(row.values())
    }
    assert ended == {
        "Choosing a language": {NO_LANGUAGE: 1},
        "Main menu": {"Spanish": 1},
        "During a topic": {"English": 1},
        "Talked with the firm": {"English": 1},
        "Offered a message (closed, no answer)": {"English": 1},
        "Reference and goodbye": {"Spanish": 1},
    }
    call_now = chart(report, "call-now")
    assert call_now["Tried"]["English"] == 2
    assert (call_now["Answered"]["English"], call_now["Not answered"]["English"]) == (1, 1)
    assert chart(report, "missed") == {
        "Asked for the firm": {"English": 1, "Spanish": 0},
        "Left no request": {"English": 1, "Spanish": 1},
    }
    hours = chart(report, "calls-hour")["09:00"]  # the clock's 9:00 in the office
    assert hours == {"English": 3, "Spanish": 2, NO_LANGUAGE: 1}


def test_no_event_holds_a_number_an_a_number_or_the_call(app, client, clock):
    calls = known_calls(client)
    with app.app_context():
        stored = db.session.scalars(sa.select(CallEvent)).all()
        keys = {e.call_key for e in stored}
        assert len(keys) == 6 and None not in keys  # the steps of each call, tied together
        secrets = [c.sid for c in calls.values()] + ["3125550123", "12345678", "012345678"]
        for event in stored:
            text = " ".join(str(getattr(event, column.key)) for column in CallEvent.__table__.c)
            assert not any(secret in text for secret in secrets), text
        # Once settled: nothing ties an event to its call, and only calls keep their hour.
        assert events.settle(START + dt.timedelta(hours=1)) == 0  # calls may still go on
        assert events.settle(START + events.SETTLE_AFTER + dt.timedelta(minutes=1)) == len(stored)
        settled = db.session.scalars(sa.select(CallEvent)).all()
        assert {(e.call_key, e.at) for e in settled} == {(None, None)}
        assert {e.kind for e in settled if e.hour is not None} == {"call", "language"}
        # ...and the figures stay as they were.
        report = figures.build(WEEK, now=START)
        assert dict(report.headline)["Calls"] == "6"
        assert chart(report, "reached")["Gave every detail"] == {"English": 0, "Spanish": 1}


def test_topics_heard_to_the_end_or_cut_short(app, client, clock):
    cut = place(client)
    cut.press("1")
    cut.press("1")
    cut.press("#")  # at once: topic 1 cut short, topic 2 begins
    clock.moment += dt.timedelta(minutes=5)  # topic 2 heard whole
    cut.press("9")
    listened = place(client)
    listened.press("2")
    listened.press("3")
    listened.silence()  # silence after the options: heard to the end
    with app.app_context():
        topics = chart(figures.build(WEEK, now=START), "topics")
    one, two, three = (next(v for k, v in topics.items() if k.startswith(f"{n} ·")) for n in "123")
    assert one == {"Heard": 1, "To the end": 0, "Cut short": 1, "Again more slowly": 0}
    assert two == {"Heard": 1, "To the end": 1, "Cut short": 0, "Again more slowly": 0}
    assert three == {"Heard": 1, "To the end": 1, "Cut short": 0, "Again more slowly": 0}


def test_callback_waits_median_and_90th_percentile(app, make_request):
    waits = [1, 2, 3, 10]  # hours to the first attempt (OFFICE_HOURS=always: every hour counts)
    with app.app_context():
        ids = [make_request(created_at=START, urgent=(n == 0)) for n in range(5)]
        for request_id, hours in zip(ids, waits, strict=False):
            history.add(request_id, "call", "ana", created_at=START + dt.timedelta(hours=hours))
        history.add(
            ids[0],
            "status",
            "ana",
            status_from="new",
            status_to="reached",
            created_at=START + dt.timedelta(hours=4),
        )
        db.session.execute(
            sa.update(CallbackRequest).where(CallbackRequest.id == ids[0]).values(status="reached")
        )
        db.session.commit()
        report = figures.build(WEEK, now=START + dt.timedelta(hours=20))
    wait = chart(report, "callback-wait")
    assert wait["To the first attempt"] == {"Median": 2, "90th percentile": 10}
    assert wait["To reaching the family"] == {"Median": 4, "90th percentile": 4}
    headline = dict(report.headline)
    assert headline["Median wait for a first call-back"] == "2.0 office hours (target 8)"
    assert headline["Overdue now"] == "1"  # the fifth: no attempt in 20 hours
    assert headline["Urgent"] == "1 of 5 (20%)"
    status = chart(report, "callback-status")
    assert status["Reached"] == {"Urgent": 1, "Not urgent": 0}
    assert status["New"] == {"Urgent": 0, "Not urgent": 4}


def test_a_failing_events_table_never_changes_a_call(app, client):
    with app.app_context():
        CallEvent.__table__.drop(db.engine)
    call = place(client)
    menu = call.press("1")
    assert menu.find("Gather") is not None
    topic = call.press("1")
    assert topic.find("Gather") is not None  # the topic is read as on a good day


def test_reports_page_is_for_admins_with_csv(app, client, auth, clock):
    known_calls(client)
    assert roles.REQUIRED["staff.reports.index"] == roles.ADMIN
    auth.login()
    assert 'href="/staff/reports"' in client.get("/staff/").get_data(as_text=True)
    page = client.get("/staff/reports?period=week&start=2026-11-25").get_data(as_text=True)
    assert "Where callers hang up" in page and 'id="chart-hang-ups"' in page
    assert '<th scope="row">Gave every detail</th><td>0</td><td>1</td>' in page
    assert "vendor/chartjs/chart.umd.min.js" in page
    response = client.get("/staff/reports.csv?period=week&start=2026-11-25")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert ["week 2026-11-23", "headline", "Calls", "", "6"] in rows
    assert ["week 2026-11-23", "reached", "Gave every detail", "Spanish", "1"] in rows
    # Unknown periods and dates fall back to this week, never an error.
    assert client.get("/staff/reports?period=year&start=yesterday").status_code == 200


def test_weekly_summary_email(make_app, smtp, clock):  # noqa: F811
    app = make_app(CLOCK=clock, SMTP_URL=smtp.url, REPORT_EMAIL_TO="boss@example.org")
    known_calls(app.test_client())
    monday = dt.datetime(2026, 11, 30, 14, 0, tzinfo=dt.UTC)  # 8:00 in Chicago
    with app.app_context():
        tasks.queue(monday)
        tasks.queue(monday)  # every minute: queued once
        # The recording's copy is another test's matter (it would reach for Twilio).
        db.session.execute(sa.delete(jobs.Job).where(jobs.Job.kind == "copy-recording"))
        db.session.commit()
        kinds = db.session.scalars(sa.select(jobs.Job.key).order_by(jobs.Job.key)).all()
    assert kinds == ["report-settle:2026-11-30T14", "report-summary:2026-11-23:boss@example.org"]
    jobs.run_pending(app)
    [(to, raw)] = smtp.messages
    assert to == ["boss@example.org"]
    assert "Hotline week of 23 Nov: 6 calls" in raw
    assert "Missed calls: 3" in raw
    assert "/staff/reports?period=week&start=2026-11-23" in raw


@pytest.mark.parametrize(
    "hours, closed",
    [
        ("mon-fri 09:00-17:00", ""),
        ("mon-fri 09:00-17:00", "2026-11-26,2026-11-27,2026-12-24,2026-12-25"),
        ("always", "2026-11-26"),  # across the clock change of 1 November
    ],
)
def test_office_clock_counts_as_the_dashboard(make_app, hours, closed):
    """The page's fast count of office hours agrees with the dashboard's walk over the days of
    the office calendar, closed days included."""
    import random

    from ivr.calls import calendar

    app = make_app(OFFICE_HOURS=hours, OFFICE_CLOSED_DATES=closed)
    rng = random.Random(7)
    with app.app_context():
        clock = OfficeClock()
        for _ in range(300):
            start = START + dt.timedelta(minutes=rng.randrange(-60 * 24 * 30, 60 * 24 * 30))
            end = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
            expected = calendar.office().hours_between(start, end)
            assert clock.between(start, end) == pytest.approx(expected, abs=1e-6), (start, end)
            assert clock.between(start, end) == pytest.approx(expected, abs=1e-6), (start, end)


def test_overdue_now_uses_the_shorter_target_for_urgent_requests(app, make_request):
    """Reports count "Overdue now" as the dashboard flags it: 2 office hours for an urgent
    request (URGENT_TARGET_HOURS), 8 for the others (CALLBACK_TARGET_HOURS)."""
    with app.app_context():
        make_request(created_at=START, urgent=True)
        make_request(created_at=START)
        early = dict(figures.build(WEEK, now=START + dt.timedelta(hours=1)).headline)
        late = dict(figures.build(WEEK, now=START + dt.timedelta(hours=3)).headline)
    assert early["Overdue now"] == "0"
    assert late["Overdue now"] == "1"  # the urgent one only: 3 h > 2 h, but < 8 h
