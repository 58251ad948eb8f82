"""The limits on what the hotline sends (`ivr/messaging/caps.py`), counted in the database: the
windows, the office day, one recipient's cap not touching another's, and no number kept."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ivr.db import db
from ivr.messaging import caps

NUMBER = "+13125550123"
# 23:30 on Wednesday 4 March 2026 in Chicago (CST, UTC-6).
LATE = dt.datetime(2026, 3, 5, 5, 30, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    return [LATE]


@pytest.fixture
def limits_app(make_app, clock):
    return make_app(CLOCK=lambda: clock[0], TEXTS_PER_DAY="3", ALERTS_PER_HOUR="2")


def add_text(app, number: str = NUMBER) -> None:
    with app.app_context():
        caps.mark(caps.TEXT, number)
        db.session.commit()


def test_one_text_per_number_per_24_hours(limits_app, clock):
    add_text(limits_app)
    with limits_app.app_context():
        assert caps.texted_recently(NUMBER)
        assert not caps.texted_recently("+13125550124")
        clock[0] = LATE + dt.timedelta(hours=23, minutes=59)
        assert caps.texted_recently(NUMBER)
        clock[0] = LATE + dt.timedelta(hours=24, seconds=1)
        assert not caps.texted_recently(NUMBER)


def test_the_daily_cap_counts_the_office_day(limits_app, clock):
    add_text(limits_app, "+13125550101")
    add_text(limits_app, "+13125550102")
    with limits_app.app_context():
        assert caps.texts_left_today() == 1
        assert caps.office_date() == dt.date(2026, 3, 4)
    clock[0] = LATE + dt.timedelta(minutes=31)  # 00:01 in Chicago: a new office day
    with limits_app.app_context():
        assert caps.office_date() == dt.date(2026, 3, 5)
        assert caps.texts_left_today() == 3
    for n in range(4):
        add_text(limits_app, f"+1312555020{n}")
    with limits_app.app_context():
        assert caps.texts_left_today() == 0  # never below zero


def test_alerts_are_capped_per_recipient_and_clock_hour(limits_app, clock):
    clock[0] = dt.datetime(2026, 3, 5, 15, 10, tzinfo=dt.UTC)
    with limits_app.app_context():
        taken = [caps.take_alert("sms:+13125550199") for _ in range(4)]
        other = caps.take_alert("email:desk@example.org")
        db.session.commit()
        assert taken == [True, True, False, False] and other is True
        start = caps.hour_start()
        assert start == dt.datetime(2026, 3, 5, 15, 0, tzinfo=dt.UTC)
        assert caps.held("sms:+13125550199", start) == 2
        assert caps.held("email:desk@example.org", start) == 0
    clock[0] = dt.datetime(2026, 3, 5, 16, 0, 1, tzinfo=dt.UTC)  # the next hour
    with limits_app.app_context():
        assert caps.take_alert("sms:+13125550199") is True
        db.session.commit()
        assert caps.held("sms:+13125550199", caps.hour_start()) == 0


def test_no_number_is_kept_and_old_marks_go(limits_app, clock):
    add_text(limits_app)
    with limits_app.app_context():
        subjects = db.session.scalars(sa.select(caps.SendMark.subject)).all()
        assert len(subjects) == 1
        assert "3125550123" not in subjects[0] and subjects[0] == caps.subject(NUMBER)
    clock[0] = LATE + dt.timedelta(days=2, minutes=1)
    add_text(limits_app, "+13125550124")  # adding a mark drops those past two days
    with limits_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(caps.SendMark)) == 1


def test_the_keyed_hash_depends_on_the_secret_key(make_app):
    one = make_app()
    two = make_app(SECRET_KEY="another-secret-" + "1" * 32)
    with one.app_context():
        first = caps.subject(NUMBER)
    with two.app_context():
        assert caps.subject(NUMBER) != first
