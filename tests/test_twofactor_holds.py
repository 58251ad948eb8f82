"""Two factors that hold (issue 22, M8): enrolment needs the one-time code an admin hands out
(valid 24 hours), the account locks after STAFF_LOCK_AFTER wrong passwords or codes in a row and
the alert recipients hear of it, and the TOTP secret is neither readable in the database nor ever
in the session cookie."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
import pytest
import sqlalchemy as sa
import time_machine

from ivr.accounts.audit import AuditEntry
from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.background.jobs import Job
from ivr.commands import main
from ivr.db import db
from ivr.settings import settings
from tests.conftest import StaffAuth, csrf_token, enrol_code
from tests.test_alerts import smtp  # noqa: F401  (a fixture: a loopback SMTP server)


@pytest.fixture
def app(make_app):
    return make_app(
        STAFF_2FA="required",
        STAFF_LOCK_AFTER="4",
        ALERT_EMAIL_TO="office@firm.example",
        SMTP_URL="smtp://127.0.0.1:2525",
    )


def post_enrol_code(client, code: str):
    return client.post(
        "/staff/login/setup",
        data={"enrol_code": code, "csrf_token": csrf_token(client, "/staff/login/setup")},
    )


def cookie_contents(app, client) -> str:
    """Everything the session cookie says, decoded as anyone holding it could."""
    cookie = client.get_cookie("session")
    if cookie is None:
        return ""
    serializer = app.session_interface.get_signing_serializer(app)
    return repr(serializer.loads(cookie.value)) + cookie.value


def test_the_password_alone_cannot_enrol(app, client, auth):
    assert auth.login().headers["Location"] == "/staff/login/setup"
    page = client.get("/staff/login/setup").get_data(as_text=True)
    assert "<svg" not in page and "totp-secret" not in page
    # No code was handed out yet: nothing works, and posting a code straight away is refused.
    assert post_enrol_code(client, "0000-0000-0000").status_code == 401
    response = client.post(
        "/staff/login/setup",
        data={"code": "123456", "csrf_token": csrf_token(client, "/staff/login/setup")},
    )
    assert response.status_code == 400  # the enrolment code's form, without one
    code = enrol_code(app)
    wrong = "ffff-ffff-ffff" if code != "ffff-ffff-ffff" else "0000-0000-0000"
    assert post_enrol_code(client, wrong).status_code == 401
    assert post_enrol_code(client, code.upper()).headers["Location"] == "/staff/login/setup"
    assert "totp-secret" in client.get("/staff/login/setup").get_data(as_text=True)


def test_an_enrolment_code_lasts_24_hours(app, client, auth):
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False):
        code = enrol_code(app)
    with time_machine.travel(start + dt.timedelta(hours=24, minutes=1), tick=True):
        assert auth.login().headers["Location"] == "/staff/login/setup"
        response = post_enrol_code(client, code)
        assert response.status_code == 401 and "expired" in response.get_data(as_text=True)


def test_the_secret_is_encrypted_and_never_in_the_cookie(app, client, auth):
    code = enrol_code(app)
    auth.login()
    post_enrol_code(client, code)
    page = client.get("/staff/login/setup").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page)[1].replace(" ", "")
    assert secret not in cookie_contents(app, client)
    response = client.post(
        "/staff/login/setup",
        data={
            "code": pyotp.TOTP(secret).now(),
            "csrf_token": csrf_token(client, "/staff/login/setup"),
        },
    )
    assert response.status_code == 200 and "recovery" in response.get_data(as_text=True).lower()
    assert secret not in cookie_contents(app, client)
    with app.app_context():
        stored = db.session.scalar(sa.select(StaffUser.totp_secret))
        raw = db.session.execute(sa.text("SELECT * FROM staff_users")).all()
    assert stored.startswith("gAAAA") and secret not in repr(raw)
    # A used enrolment code does not enrol again.
    with app.app_context():
        assert db.session.scalar(sa.select(StaffUser.enrol_code_hash)) is None


def test_staff_add_and_reset_hand_out_a_code(app, runner, staff_user):
    result = runner.invoke(main, ["staff", "add", "bo"], input="a long password 1\n")
    assert result.exit_code == 0, result.output
    assert re.search(r"enrolment code for bo: [0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", result.output)
    result = runner.invoke(main, ["staff", "reset-2fa", "bo"])
    code = re.search(r"enrolment code for bo: ([0-9a-f-]{14})", result.output)[1]
    client = app.test_client()
    StaffAuth(client).login("bo", "a long password 1")
    assert post_enrol_code(client, code).headers["Location"] == "/staff/login/setup"


def test_the_admin_page_hands_out_a_code(app, client, auth, runner):
    runner.invoke(main, ["staff", "add", "bo"], input="a long password 1\n")
    with app.app_context():
        ana = db.session.scalar(sa.select(StaffUser).filter_by(username="ana"))
        ana.totp_secret = None
        bo_id = db.session.scalar(sa.select(StaffUser.id).filter_by(username="bo"))
        db.session.commit()
    settings(app).staff_2fa = "optional"  # ana logs in with her password only, here
    auth.login()
    page = client.post(
        f"/staff/accounts/{bo_id}/reset-2fa",
        data={"csrf_token": csrf_token(client, "/staff/accounts")},
    ).get_data(as_text=True)
    code = re.search(r"Enrolment code for <strong>bo</strong>: <code>([0-9a-f-]{14})</code>", page)[
        1
    ]
    settings(app).staff_2fa = "required"
    other = app.test_client()
    StaffAuth(other).login("bo", "a long password 1")
    assert post_enrol_code(other, code).headers["Location"] == "/staff/login/setup"


def test_wrong_passwords_and_codes_lock_the_account_and_alert(app, client, auth, runner):
    code = enrol_code(app)
    # Two wrong passwords (from two addresses), one wrong enrolment code, one wrong password:
    # four in a row, wherever they came from, lock it.
    assert auth.login(password="wrong password 1").status_code == 401
    other = app.test_client()
    StaffAuth(other).login(password="wrong password 2", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    auth.login()
    assert post_enrol_code(client, "0000-0000-0001").status_code == 401
    response = auth.login(password="wrong password 3")
    assert response.status_code == 403 and "locked" in response.get_data(as_text=True)
    # Locked: even the right password and the right enrolment code do not open it.
    response = auth.login()
    assert response.status_code == 403 and "locked" in response.get_data(as_text=True)
    with app.app_context():
        [entry] = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.detail.like("locked%"))
        ).all()
        alerts = db.session.scalars(sa.select(Job).where(Job.kind == "alert-locked-email")).all()
    assert "4 wrong" in entry.detail
    assert [job.data["recipient"] for job in alerts] == ["office@firm.example"]
    # An admin unlocks it; the count starts again.
    result = runner.invoke(main, ["staff", "unlock", "ana"])
    assert result.exit_code == 0, result.output
    assert auth.login().headers["Location"] == "/staff/login/setup"
    assert post_enrol_code(client, code).headers["Location"] == "/staff/login/setup"


def test_the_lock_alert_is_sent_by_the_worker(make_app, smtp, staff_user):  # noqa: F811
    app = make_app(
        STAFF_2FA="required",
        STAFF_LOCK_AFTER="2",
        ALERT_EMAIL_TO="desk@example.org",
        SMTP_URL=smtp.url,
    )
    client = app.test_client()
    for _ in range(2):
        StaffAuth(client).login(password="wrong password")
    jobs.run_pending(app)
    [(to, message)] = smtp.messages
    assert to == ["desk@example.org"] and "staff account ana was locked after 2" in message
