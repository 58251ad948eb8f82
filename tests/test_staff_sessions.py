"""Staff sessions: new at login, over 12 hours after login however busy, never another account's."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from ivr.accounts.models import StaffUser
from ivr.commands import main
from ivr.db import db
from ivr.requests.models import CallbackRequest
from tests.conftest import StaffAuth, csrf_token

HOUR = 3600


def test_a_login_starts_a_new_session(app, client, auth, make_request):
    """Session fixation: a cookie planted before the login (with a CSRF token the attacker knows)
    must give the attacker nothing once the victim logs in with it."""
    request_id = make_request()
    attacker = app.test_client()
    planted_token = csrf_token(attacker)
    client.set_cookie("session", attacker.get_cookie("session").value)
    assert auth.login().status_code == 302
    assert client.get("/staff/").status_code == 200
    # A forged form on another site posts the attacker's token from the victim's browser.
    response = client.post(
        f"/staff/requests/{request_id}",
        data={"csrf_token": planted_token, "status": "handled", "note": "x"},
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(CallbackRequest, request_id).status == "new"


@pytest.fixture
def clock(monkeypatch):
    """Wall-clock time that the test moves on (cookie signatures and login times both read it)."""
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


def test_a_login_ends_12_hours_after_it_was_made_however_busy(client, auth, clock):
    assert auth.login().status_code == 302
    for hours in (1, 5, 5):  # in use all day: 1 h, 6 h, 11 h after the login
        clock(hours * HOUR)
        assert client.get("/staff/").status_code == 200
    clock(HOUR + 10 * 60)  # 12 h 10 min after the login, 1 h 10 min after the last page
    response = client.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")
    assert auth.login().status_code == 302  # a new login, a new 12 hours
    assert client.get("/staff/").status_code == 200


def test_a_session_with_a_login_time_from_the_future_is_refused(client, auth, clock):
    assert auth.login().status_code == 302
    clock(-HOUR)  # the server's clock stepped back: the login time is no longer believable
    assert client.get("/staff/").status_code == 302


def test_a_removed_accounts_cookie_never_logs_in_another_account(app, client, runner, database_url):
    """SQLite reuses the row id of a removed account: its cookie must not name the next one."""
    password = "a long enough secret"
    assert runner.invoke(main, ["staff", "add", "temp"], input=password + "\n").exit_code == 0
    assert StaffAuth(client).login("temp", password).status_code == 302
    stolen = client.get_cookie("session").value
    with app.app_context():
        temp_id = db.session.scalar(sa.select(StaffUser.id).filter_by(username="temp"))
    assert runner.invoke(main, ["staff", "remove", "temp"]).exit_code == 0
    assert runner.invoke(main, ["staff", "add", "carol"], input=password + "\n").exit_code == 0
    with app.app_context():
        carol_id = db.session.scalar(sa.select(StaffUser.id).filter_by(username="carol"))
    if database_url.startswith("sqlite"):
        assert carol_id == temp_id  # the case that matters: the same row id
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    response = thief.get("/staff/")
    assert response.status_code == 302
    assert "carol" not in response.get_data(as_text=True)


def test_a_password_change_ends_the_accounts_sessions(app, client, auth, runner):
    assert auth.login().status_code == 302
    result = runner.invoke(main, ["staff", "password", "ana"], input="another good secret\n")
    assert result.exit_code == 0, result.output
    assert client.get("/staff/").status_code == 302


def test_every_account_gets_its_own_random_session_token(app, staff_user, runner):
    result = runner.invoke(main, ["staff", "add", "bea"], input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        tokens = db.session.scalars(sa.select(StaffUser.session_token)).all()
    assert len(tokens) == 2 and len(set(tokens)) == 2
    assert all(len(token) >= 40 for token in tokens)
