"""Logging in and out, the rate limit, CSRF, and that every staff URL needs a login."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr import create_app
from ivr.accounts.models import LoginAttempt, StaffUser
from ivr.commands import main
from ivr.db import db
from tests.conftest import STAFF_PASSWORD, base_config, csrf_token

SECRET = "Alvarez"  # a note that only a logged-in page could show


def staff_rules() -> list[tuple[str, str]]:
    """Every (method, URL) under /staff, from a real app's URL map, ids filled with 1."""
    app = create_app(base_config(Path("/tmp"), DATABASE_URL="sqlite://"))
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/staff") or rule.endpoint.startswith("staff.auth.login"):
            continue
        url = re.sub(r"<(?:int:)?[a-z_]+>", "1", rule.rule)
        found += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


RULES = staff_rules()


def test_rules_cover_the_staff_side():
    urls = {url for _, url in RULES}
    assert {
        "/staff/",
        "/staff/requests/1",
        "/staff/requests/1/audio",
        "/staff/requests.csv",
        "/staff/logout",
    } <= urls


def test_login_and_logout(client, auth, make_request):
    make_request(note=SECRET)
    assert client.get("/staff/").status_code == 302
    response = auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"
    page = client.get("/staff/")
    assert page.status_code == 200 and SECRET in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/staff/").status_code == 302


def test_login_follows_next_only_within_staff(client, auth):
    token = csrf_token(client)
    data = {"username": "ana", "password": STAFF_PASSWORD, "csrf_token": token}
    response = client.post("/staff/login?next=/staff/requests.csv", data=data)
    assert response.headers["Location"] == "/staff/requests.csv"
    auth.logout()
    data["csrf_token"] = csrf_token(client)  # a login starts a new session, with a new token
    response = client.post("/staff/login?next=https://evil.example/", data=data)
    assert response.headers["Location"] == "/staff/"


def test_logout_ends_a_copied_session_cookie(app, client, auth, make_request):
    make_request(note=SECRET)
    auth.login()
    stolen = client.get_cookie("session").value
    auth.logout()
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    response = thief.get("/staff/")
    assert response.status_code == 302
    assert SECRET not in response.get_data(as_text=True)


def test_wrong_password_and_unknown_user(client, auth):
    for username, password in (("ana", "wrong password"), ("nobody", STAFF_PASSWORD)):
        response = auth.login(username, password)
        assert response.status_code == 401
        assert "Wrong username or password" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_rate_limit_after_five_failures(app, client, auth):
    for _ in range(5):
        assert auth.login("ana", "wrong password").status_code == 401
    response = auth.login()  # even the right password is refused now
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302
    # Another address is not locked out, and the count lives in the database (every process).
    other = app.test_client()
    response = StaffAuthFrom(other, "10.0.0.9").login()
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 5


def test_failures_expire_after_the_window(app, client, auth):
    for _ in range(5):
        auth.login("ana", "wrong password")
    with app.app_context():
        for attempt in db.session.scalars(sa.select(LoginAttempt)):
            attempt.created_at = attempt.created_at.replace(year=2000)
        db.session.commit()
    assert auth.login().status_code == 302


def test_success_clears_failures(app, client, auth):
    for _ in range(4):
        auth.login("ana", "wrong password")
    assert auth.login().status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 0


class StaffAuthFrom:
    """Log in from another client address."""

    def __init__(self, client, ip: str):
        self.client, self.ip = client, ip

    def login(self):
        env = {"REMOTE_ADDR": self.ip}
        page = self.client.get("/staff/login", environ_base=env).get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
        return self.client.post(
            "/staff/login",
            environ_base=env,
            data={"username": "ana", "password": STAFF_PASSWORD, "csrf_token": token},
        )


def test_login_without_csrf_token_is_rejected(client, staff_user):
    client.get("/staff/login")
    response = client.post("/staff/login", data={"username": "ana", "password": STAFF_PASSWORD})
    assert response.status_code == 400
    assert client.get("/staff/").status_code == 302


def test_posts_without_csrf_token_are_rejected(app, client, auth, make_request):
    request_id = make_request()
    auth.login()
    response = client.post(f"/staff/requests/{request_id}", data={"status": "handled", "note": "x"})
    assert response.status_code == 400
    response = client.post("/staff/logout")
    assert response.status_code == 400
    assert client.get("/staff/").status_code == 200  # still logged in: logout needs the token
    response = client.post(
        f"/staff/requests/{request_id}",
        data={"status": "handled", "note": "x", "csrf_token": "forged"},
    )
    assert response.status_code == 400
    with app.app_context():
        from ivr.requests.models import CallbackRequest

        assert db.session.get(CallbackRequest, request_id).status == "new"


@pytest.mark.parametrize(("method", "url"), [r for r in RULES if r[0] == "POST"])
def test_every_staff_post_needs_the_csrf_token(client, auth, make_request, method, url):
    """The check is the staff blueprint's own hook, so a view added later is covered too."""
    make_request()
    auth.login()
    response = client.post(url, data={"status": "handled", "note": "x"})
    assert response.status_code == 400, url


@pytest.mark.parametrize(("method", "url"), RULES)
@pytest.mark.parametrize("who", ["anonymous", "logged_out"])
def test_every_staff_url_needs_login(app, client, auth, make_request, method, url, who):
    request_id = make_request(note=SECRET, audio=b"ID3-secret-audio", audio_type="audio/mpeg")
    assert request_id == 1
    if who == "logged_out":
        auth.login()
        auth.logout()
    token = csrf_token(client)  # a valid token: only the login should be missing
    response = client.open(
        url, method=method, data={"csrf_token": token, "status": "handled", "note": "pwned"}
    )
    body = response.get_data()
    assert response.status_code in (302, 401), (method, url, response.status_code)
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/staff/login")
    assert SECRET.encode() not in body and b"secret-audio" not in body and b"100001" not in body
    with app.app_context():
        from ivr.requests.models import CallbackRequest

        assert db.session.get(CallbackRequest, request_id).status == "new"


def test_audio_answers_401_not_a_redirect(client, make_request):
    request_id = make_request(audio=b"ID3", audio_type="audio/mpeg")
    assert client.get(f"/staff/requests/{request_id}/audio").status_code == 401


def test_staff_add_cli(app, runner):
    result = runner.invoke(main, args=["staff", "add", "Bea"], input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser).filter_by(username="bea"))
        assert user and user.password_hash != "a long enough secret"
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/staff/login",
        data={"username": "bea", "csrf_token": token, "password": "a long enough secret"},
    )
    assert response.status_code == 302
    result = runner.invoke(main, args=["staff", "add", "bea"], input="a long enough secret\n")
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(main, args=["staff", "add", "cy"], input="short\n")
    assert result.exit_code != 0 and "at least" in result.output
    assert "bea" in runner.invoke(main, args=["staff", "list"]).output
    result = runner.invoke(main, args=["staff", "remove", "bea"])
    assert result.exit_code == 0, result.output
    assert client.get("/staff/").status_code == 302  # the removed account's session ended


def test_twilio_webhooks_need_no_csrf_token(call):
    """CSRF protection covers staff forms only: Twilio's signed posts, which carry no token,
    still get the caller's menus."""
    welcome = call.answer()
    assert welcome.find("Gather").get("action").startswith("/voice/language")
    menu = call.press("2").find("Gather")
    assert menu is not None and menu.get("action").startswith("/voice/es/menu/choice")
    assert menu.find("Say").get("language") == "es-US"


def login_cookie(make_app, **config):
    """Log in on an app made with `config`; return the Set-Cookie header and the app."""
    from werkzeug.security import generate_password_hash

    from tests.conftest import StaffAuth

    app = make_app(**config)
    with app.app_context():
        db.session.add(
            StaffUser(username="ana", password_hash=generate_password_hash(STAFF_PASSWORD))
        )
        db.session.commit()
    client = app.test_client()
    # On https Flask-WTF also wants a same-site Referer, as a browser sends it.
    response = StaffAuth(client).login(headers={"Referer": "https://localhost/staff/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"
    return response.headers["Set-Cookie"], client


def test_session_cookie_is_secure_outside_tests_and_ends_after_12_hours(make_app):
    # Outside tests the app speaks https only: this client does (Flask's test client takes its
    # scheme from PREFERRED_URL_SCHEME).
    header, client = login_cookie(
        make_app, TESTING=False, PREFERRED_URL_SCHEME="https", STAFF_2FA="optional"
    )  # two factors: test_twofactor.py
    assert client.application.debug is False and client.application.testing is False
    attributes = [part.strip().lower() for part in header.split(";")]
    assert header.startswith("session=")
    assert {"secure", "httponly", "samesite=lax"} <= set(attributes), header
    cookie = client.get_cookie("session")
    lifetime = cookie.expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=11, minutes=59) < lifetime <= dt.timedelta(hours=12), header
    config = client.application.config
    assert config["REMEMBER_COOKIE_SECURE"] is True and config["REMEMBER_COOKIE_HTTPONLY"] is True


def test_tests_get_a_plain_http_cookie_unless_they_ask(make_app):
    header, _ = login_cookie(make_app)  # TESTING: the test client speaks plain http
    assert "secure" not in header.lower()
    app = make_app(SESSION_COOKIE_SECURE=True, PERMANENT_SESSION_LIFETIME=60)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.permanent_session_lifetime == dt.timedelta(seconds=60)
