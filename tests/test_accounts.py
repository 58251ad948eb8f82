"""Accounts on the web for admins, the security events in the audit log, the otpauth:// link on
enrolment, and missed calls as small tickets (issue 21, items 5 and 6; review findings 13, 14, 16).

Everything through the real app: the Flask test client posts the forms a browser would, and the
tests read the stored rows and the rendered pages.
"""

from __future__ import annotations

import re
import urllib.parse

import pyotp
import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr.accounts import manage
from ivr.accounts.audit import AuditEntry
from ivr.accounts.models import StaffUser
from ivr.commands import main
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.requests import history, missed
from ivr.staff import admin, guard, twofactor
from tests.conftest import STAFF_PASSWORD, TOKEN, StaffAuth, csrf_token, enrol_code
from tests.test_audit import audit_rows


def entries(app, action: str | None = None) -> list[tuple[str, str, str]]:
    """(action, actor, detail) of the stored audit entries, oldest first."""
    with app.app_context():
        query = sa.select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return [(e.action, e.actor, e.detail) for e in db.session.scalars(query)]


def account(app, username: str) -> StaffUser | None:
    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
        if user is not None:
            db.session.expunge(user)
        return user


def user_id(app, username: str) -> int:
    found = account(app, username)
    assert found is not None
    return found.id


def post(client, url: str, page: str = "/staff/accounts", **data):
    return client.post(url, data={"csrf_token": csrf_token(client, page), **data})


@pytest.fixture
def admin_client(app, client, staff_user):
    assert StaffAuth(client).login("ana").status_code == 302
    return client


# Accounts -------------------------------------------------------------------------------------


def test_admin_adds_an_account_changes_its_role_and_phone_then_removes_it(app, admin_client):
    client = admin_client
    page = client.get("/staff/").get_data(as_text=True)
    assert 'href="/staff/accounts">Accounts</a>' in page  # in the header, for admins

    response = post(client, "/staff/accounts", username="  Luis ", role="staff", phone="")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    password = re.search(r'<code id="initial-password">([^<]+)</code>', page)[1]
    code = re.search(r"Enrolment code for <strong>luis</strong>: <code>([^<]+)</code>", page)[1]
    luis = account(app, "luis")
    assert luis is not None and luis.role == "staff" and luis.phone is None
    assert twofactor.enrol_code_ok(luis, code)
    # The shown password is theirs; nothing of it is kept but its hash.
    assert password not in luis.password_hash
    other = app.test_client()
    assert StaffAuth(other).login("luis", password).status_code == 302
    # Shown once: the page afterwards has neither.
    again = client.get("/staff/accounts").get_data(as_text=True)
    assert password not in again and code not in again

    luis_id = luis.id
    response = post(client, f"/staff/accounts/{luis_id}/role", role="admin")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"#u{luis_id}")
    assert account(app, "luis").role == "admin"
    assert other.get("/staff/").status_code == 302  # their session ended: the role applies now

    response = post(client, f"/staff/accounts/{luis_id}/phone", phone="(312) 555-0144")
    assert response.status_code == 302
    assert account(app, "luis").phone == "+13125550144"

    # Removing takes a confirmation page (no JavaScript needed); a bare post only leads there.
    response = post(client, f"/staff/accounts/{luis_id}/remove")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/accounts/{luis_id}/remove")
    assert account(app, "luis") is not None
    confirm = client.get(f"/staff/accounts/{luis_id}/remove").get_data(as_text=True)
    assert "Remove luis?" in confirm and "Yes, remove luis" in confirm
    response = post(
        client,
        f"/staff/accounts/{luis_id}/remove",
        page=f"/staff/accounts/{luis_id}/remove",
        confirm="luis",
    )
    assert response.status_code == 302
    assert account(app, "luis") is None
    assert "Account luis removed" in client.get("/staff/accounts").get_data(as_text=True)

    # Each change in the audit log: who, what, to whom; the phone masked.
    assert entries(app, "account") == [
        ("account", "ana", "added luis (staff)"),
        ("account", "ana", "luis is now admin"),
        ("account", "ana", "removed luis (admin)"),
    ]
    assert entries(app, "phone") == [("phone", "ana", "changed luis's phone: none → …44")]
    rows = audit_rows(client.get("/staff/audit").get_data(as_text=True))
    shown = [(r["action"], r["actor"]) for r in rows]
    assert shown[:4] == [
        ("account", "ana"),
        ("phone", "ana"),
        ("account", "ana"),
        ("login", "luis"),
    ]
    assert "removed luis (admin)" in rows[0]["text"] and "Changed a phone" in rows[1]["text"]
    assert "5550144" not in client.get("/staff/audit").get_data(as_text=True)


def test_bad_input_gets_a_message_beside_the_form(app, admin_client):
    client = admin_client
    cases = [
        (dict(username="ana", role="staff"), "An account ana already exists."),
        (dict(username="", role="staff"), "A username is letters"),
        (dict(username="bo", role="owner"), "The role is one of: staff, admin."),
        (dict(username="bo", role="staff", phone="12"), "is not a phone number"),
    ]
    for data, said in cases:
        response = post(client, "/staff/accounts", **data)
        assert response.status_code == 400, data
        page = response.get_data(as_text=True)
        error = re.search(r'<p class="error" role="alert" id="error-add">([^<]*)</p>', page)
        assert error and said in error[1].replace("&#39;", "'"), (data, page[-2000:])
        assert f'value="{data["username"]}"' in page  # what was typed stays in the form
    assert account(app, "bo") is None and entries(app, "account") == []
    ana = user_id(app, "ana")
    response = post(client, f"/staff/accounts/{ana}/phone", phone="not a phone")
    assert response.status_code == 400
    assert "not a phone number Twilio can call" in response.get_data(as_text=True)
    assert post(client, "/staff/accounts/999/role", role="staff").status_code == 404


def test_an_admin_cannot_remove_or_demote_themselves_nor_the_last_admin(app, admin_client):
    client = admin_client
    ana = user_id(app, "ana")
    response = post(client, f"/staff/accounts/{ana}/role", role="staff")
    assert response.status_code == 400
    assert "You cannot demote your own account" in response.get_data(as_text=True)
    confirm = client.get(f"/staff/accounts/{ana}/remove").get_data(as_text=True)
    assert "You cannot remove your own account" in confirm and "Yes, remove" not in confirm
    response = post(client, f"/staff/accounts/{ana}/remove", confirm="ana")
    assert response.status_code == 400 and account(app, "ana").role == "admin"
    # The last admin, as another admin's (ana's) account would see it from the service.
    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser).filter_by(username="ana"))
        with pytest.raises(manage.AccountError, match="only admin"):
            manage.set_role("someone", user, "staff")
        with pytest.raises(manage.AccountError, match="only admin"):
            manage.remove("someone", user)
        db.session.rollback()
    assert entries(app, "account") == []


def test_the_command_line_uses_the_same_service(app, runner, staff_user):
    result = runner.invoke(main, ["staff", "add", "cy", "--phone", "+13125550166"], input="x" * 12)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["staff", "phone", "cy", "+13125550167"])
    assert result.exit_code == 0 and "phone of cy: +13125550167" in result.output
    result = runner.invoke(main, ["staff", "phone", "cy", "12"])
    assert result.exit_code != 0 and "is not a phone number" in result.output
    assert entries(app)[-2:] == [
        ("account", "cli", "added cy (staff), phone …66"),
        ("phone", "cli", "changed cy's phone: …66 → …67"),
    ]


# Security events in the audit log --------------------------------------------------------------


def test_failed_logins_and_the_rate_limit_are_audited(app, client, staff_user):
    auth = StaffAuth(client)
    assert auth.login("  ANA ", "wrong password!").status_code == 401
    assert auth.login("nobody", "wrong password!").status_code == 401
    assert entries(app) == [
        ("failed_login", "ana", "wrong password"),
        ("failed_login", "nobody", "no such account"),
    ]
    for _ in range(guard.MAX_FAILURES - 1):
        auth.login("ana", "wrong password!")
    # Refused by the rate limit: one lockout entry, however many tries are refused.
    for _ in range(3):
        assert auth.login("ana", "wrong password!").status_code == 429
    assert entries(app, "lockout") == [("lockout", "ana", guard.RATE_LIMITED)]
    stored = " ".join(detail for _, _, detail in entries(app))
    assert "wrong password!" not in stored.replace("wrong password", "")  # never the password

    other = app.test_client()
    StaffAuth(other).login("ana", environ_base={"REMOTE_ADDR": "10.9.9.9"})
    page = other.get("/staff/audit?action=failed_login").get_data(as_text=True)
    rows = audit_rows(page)
    assert {r["action"] for r in rows} == {"failed_login"} and len(rows) == guard.MAX_FAILURES + 1
    assert [r["actor"] for r in rows][-2:] == ["nobody", "ana"]
    assert "Failed login" in rows[0]["text"] and "wrong password" in rows[0]["text"]
    page = other.get("/staff/audit?action=lockout").get_data(as_text=True)
    assert [(r["action"], r["actor"]) for r in audit_rows(page)] == [("lockout", "ana")]
    assert "too many failed logins" in page


def test_the_account_lock_and_the_code_lock_are_audited(make_app):
    app = make_app(STAFF_2FA="required", STAFF_LOCK_AFTER="3")
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    code = enrol_code(app)
    client = app.test_client()
    StaffAuth(client).login()
    setup = "/staff/login/setup"
    client.post(setup, data={"enrol_code": code, "csrf_token": csrf_token(client, setup)})
    page = client.get(setup).get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page)[1].replace(" ", "")
    totp = pyotp.TOTP(secret)
    client.post(setup, data={"code": totp.now(), "csrf_token": csrf_token(client, setup)})
    StaffAuth(client).logout()
    # Wrong codes after the right password: each a failed login; the third locks the account.
    for _ in range(3):
        StaffAuth(client).login()
        wrong = "000000" if totp.now() != "000000" else "111111"
        client.post(
            "/staff/login/code",
            data={"code": wrong, "csrf_token": csrf_token(client, "/staff/login/code")},
        )
    failed = entries(app, "failed_login")
    assert failed == [("failed_login", "ana", "wrong code")] * 3
    [locked] = entries(app, "lockout")
    assert locked[1] == "ana" and locked[2].startswith("locked after 3 wrong")
    # …and the right password now says it is locked, which is audited too.
    assert StaffAuth(client).login().status_code == 403
    assert entries(app, "failed_login")[-1] == (
        "failed_login",
        "ana",
        "right password, but the account is locked",
    )


def test_the_code_rate_limit_is_audited_once(make_app, monkeypatch):
    app = make_app(STAFF_2FA="required")
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    client = app.test_client()
    StaffAuth(client).login()
    setup = "/staff/login/setup"
    for _ in range(guard.MAX_FAILURES + 3):
        response = client.post(
            setup, data={"enrol_code": "0000-0000-0000", "csrf_token": csrf_token(client, setup)}
        )
    assert response.status_code == 429
    assert (
        entries(app, "failed_login")
        == [("failed_login", "ana", "wrong enrolment code")] * guard.MAX_FAILURES
    )
    assert entries(app, "lockout") == [("lockout", "ana", guard.CODES_LIMITED)]


def test_a_phone_change_on_the_profile_is_audited_masked(app, admin_client):
    client = admin_client
    for typed in ("+1 312 555 0199", "+1 312 555 0199", ""):
        response = post(client, "/staff/profile", page="/staff/profile", phone=typed)
        assert response.status_code == 302
    assert entries(app, "phone") == [
        ("phone", "ana", "changed their own phone: none → …99"),
        ("phone", "ana", "changed their own phone: …99 → none"),
    ]  # saving the same number again is no change
    page = client.get("/staff/audit?action=phone&actor=ANA").get_data(as_text=True)
    assert [(r["action"], r["actor"]) for r in audit_rows(page)] == [("phone", "ana")] * 2
    assert "5550199" not in page and "…99" in page


def test_audit_pages_and_filters(app, admin_client, monkeypatch):
    monkeypatch.setattr(admin, "AUDIT_PAGE", 2)
    client = admin_client
    with app.app_context():
        from ivr.accounts import audit

        for n in range(5):
            audit.record("export", "bo" if n % 2 else "ana", detail=f"export {n}")
        db.session.commit()
    page = client.get("/staff/audit").get_data(as_text=True)
    assert [r["text"].count("export 4") for r in audit_rows(page)] == [1, 0]
    seen = []
    url = "/staff/audit?action=export"
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += [re.search(r"export \d", r["text"])[0] for r in audit_rows(page)]
        more = re.search(r'<a href="([^"]+)" rel="next">Older entries', page)
        url = more[1].replace("&amp;", "&") if more else None
    assert seen == [f"export {n}" for n in (4, 3, 2, 1, 0)]  # every one, newest first, once
    page = client.get("/staff/audit?actor=bo").get_data(as_text=True)
    assert [r["actor"] for r in audit_rows(page)] == ["bo", "bo"]
    # A filter that is not a kind is ignored, not an error.
    assert client.get("/staff/audit?action=nonsense&before=abc").status_code == 200


def test_staff_opening_an_admin_page_get_the_styled_403(app, client, staff_user):
    with app.app_context():
        db.session.add(
            StaffUser(
                username="bo", role="staff", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    StaffAuth(client).login("bo")
    for url in ("/staff/audit", "/staff/accounts"):
        response = client.get(url)
        page = response.get_data(as_text=True)
        assert response.status_code == 403 and response.mimetype == "text/html"
        assert "<h1>Not for your account</h1>" in page and "Log out" in page
        assert 'href="/staff/accounts"' not in page  # no admin links for staff


# The otpauth:// link ---------------------------------------------------------------------------


def test_enrolment_offers_an_otpauth_link_with_the_accounts_secret(make_app):
    app = make_app(STAFF_2FA="required")
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    code = enrol_code(app)
    client = app.test_client()
    StaffAuth(client).login()
    setup = "/staff/login/setup"
    client.post(setup, data={"enrol_code": code, "csrf_token": csrf_token(client, setup)})
    page = client.get(setup).get_data(as_text=True)
    href = re.search(r'<a class="otpauth" id="otpauth-link" href="([^"]+)"', page)[1]
    uri = urllib.parse.urlsplit(href.replace("&amp;", "&"))
    query = dict(urllib.parse.parse_qsl(uri.query))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(uri.path) == f"/{twofactor.ISSUER}:ana"
    assert query["issuer"] == twofactor.ISSUER
    typed = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page)[1].replace(" ", "")
    assert query["secret"] == typed
    response = client.post(
        setup,
        data={"code": pyotp.TOTP(query["secret"]).now(), "csrf_token": csrf_token(client, setup)},
    )
    assert response.status_code == 200  # the link's secret turned two factors on…
    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser).filter_by(username="ana"))
        assert twofactor.secret_of(user) == query["secret"]  # …and it is the account's


# Missed calls as small tickets -------------------------------------------------------------------


@pytest.fixture
def missed_app(make_app, monkeypatch):
    monkeypatch.setattr(missed, "SETTLE", missed.dt.timedelta(0))
    app = make_app()
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    return app


def listed(client) -> tuple[str, dict[str, str]]:
    page = client.get("/staff/missed").get_data(as_text=True)
    return page, dict(re.findall(r'data-call="(CA\w+)"(.*?)</article>', page, re.S))


def test_missed_calls_take_notes_and_are_marked_done(missed_app):
    app = missed_app
    client = app.test_client()
    calls = []
    for number in ("+13125550111", "+13125550122"):
        call = Call(client, TOKEN, from_number=number)
        call.answer()
        call.press("2")
        calls.append(call)
    StaffAuth(client).login()
    page, found = listed(client)
    assert "(last 14 days: 2 open)" in page
    first = int(re.search(r'id="c(\d+)" data-call="' + calls[0].sid, page)[1])

    response = post(
        client,
        f"/staff/missed/{first}/note",
        page="/staff/missed",
        note="  Left a message with her son.  ",
    )
    assert response.status_code == 302 and response.headers["Location"].endswith(f"#c{first}")
    post(client, f"/staff/missed/{first}/note", page="/staff/missed", note="   ")  # nothing saved
    response = post(client, f"/staff/missed/{first}/done", page="/staff/missed")
    assert response.status_code == 302
    post(
        client, f"/staff/missed/{first}/done", page="/staff/missed"
    )  # a stale page: no second line
    with app.app_context():
        rows = db.session.scalars(
            sa.select(history.RequestEvent).where(history.RequestEvent.call_id == first)
        ).all()
        assert [(e.request_id, e.kind, e.actor, e.text) for e in rows] == [
            (None, "note", "ana", "Left a message with her son."),
            (None, "done", "ana", ""),
        ]
    page, found = listed(client)
    assert "(last 14 days: 1 open, 1 done)" in page
    folded = page[page.index('<details class="done-calls">') :]
    assert calls[0].sid in folded and calls[1].sid not in folded
    assert "<summary>Done (1)</summary>" in folded
    assert "Left a message with her son." in found[calls[0].sid]
    assert "marked it done" in found[calls[0].sid] and "Undo done" in found[calls[0].sid]
    assert "Undo done" not in found[calls[1].sid]

    post(client, f"/staff/missed/{first}/done", page="/staff/missed", undo="1")
    page, found = listed(client)
    assert "(last 14 days: 2 open)" in page and '<details class="done-calls">' not in page
    assert "opened it again" in found[calls[0].sid]
    assert (
        post(client, "/staff/missed/9999/note", page="/staff/missed", note="x").status_code == 302
    )


def test_recovery_codes_are_renewed_from_the_profile_with_a_current_code(make_app):
    import time

    app = make_app(STAFF_2FA="required")
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    code = enrol_code(app)
    client = app.test_client()
    StaffAuth(client).login()
    setup = "/staff/login/setup"
    client.post(setup, data={"enrol_code": code, "csrf_token": csrf_token(client, setup)})
    page = client.get(setup).get_data(as_text=True)
    totp = pyotp.TOTP(re.search(r"secret=([A-Z2-7]+)", page)[1])
    page = client.post(
        setup, data={"code": totp.now(), "csrf_token": csrf_token(client, setup)}
    ).get_data(as_text=True)
    old = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", page)
    assert len(old) == 10
    StaffAuth(client).logout()
    StaffAuth(client).login()
    client.post(
        "/staff/login/code",
        data={"code": old[0], "csrf_token": csrf_token(client, "/staff/login/code")},
    )
    profile = client.get("/staff/profile").get_data(as_text=True)
    assert "<strong>9 of 10</strong> left." in profile
    assert "You used a recovery code; each works once, and 9 are left" in profile  # flashed

    renew = "/staff/profile/recovery-codes"
    wrong = "000000" if totp.now() != "000000" else "111111"
    response = post(client, renew, page="/staff/profile", code=wrong)
    assert response.status_code == 401 and "Wrong code" in response.get_data(as_text=True)
    assert entries(app, "failed_login")[-1] == (
        "failed_login",
        "ana",
        "wrong code to renew recovery codes",
    )
    response = post(client, renew, page="/staff/profile", code=totp.at(time.time() + 30))
    assert response.status_code == 200
    new = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert "<strong>10 of 10</strong> left." in client.get("/staff/profile").get_data(as_text=True)
    assert entries(app, "account")[-1] == ("account", "ana", "renewed their recovery codes")
    # The old codes no longer log in; a new one does.
    StaffAuth(client).logout()
    StaffAuth(client).login()
    response = client.post(
        "/staff/login/code",
        data={"code": old[1], "csrf_token": csrf_token(client, "/staff/login/code")},
    )
    assert response.status_code == 401
    response = client.post(
        "/staff/login/code",
        data={"code": new[0], "csrf_token": csrf_token(client, "/staff/login/code")},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"
