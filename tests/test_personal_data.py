"""Callers' numbers stay out of URLs, access logs and error messages; files are the owner's only."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr import PROJECT_ROOT
from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.requests import fallback
from ivr.requests.models import CallbackRequest
from tests.conftest import FIRM, STAFF_PASSWORD, TOKEN, csrf_token

NUMBER = "+17735550142"  # a family's callback number
A_NUMBER = "087654321"


def test_a_search_puts_no_number_in_any_url(client, auth, make_request):
    make_request(reference="100001", callback_number=NUMBER, a_number=A_NUMBER)
    make_request(reference="100002", callback_number="+13125550111")
    auth.login()
    token = csrf_token(client, "/staff/")
    for words in ("(773) 555-0142", "87654321"):
        response = client.post("/staff/", data={"q": words, "csrf_token": token, "language": "es"})
        page = response.get_data(as_text=True)
        assert re.findall(r'data-reference="(\d+)"', page) == ["100001"]
        # Every address the page may request (tel: links dial the family, they fetch nothing).
        urls = re.findall(r'(?:href|action|formaction|src)="(?!tel:)([^"]*)"', page)
        assert urls and not [url for url in urls if re.search(r"0142|7654321", url)]
        assert f'value="{words}"' in page  # the search stays in the form, for the next one
    export = client.post("/staff/requests.csv", data={"q": "5550142", "csrf_token": token})
    assert export.mimetype == "text/csv" and "100001" in export.text and "100002" not in export.text
    # A number in a URL (an old bookmark) is not searched: nothing invites putting it there.
    assert "100002" in client.get("/staff/?q=7735550142").get_data(as_text=True)


def test_database_errors_carry_no_bound_parameters(app, make_request):
    make_request(call_sid="CA" + "1" * 32, callback_number=NUMBER)
    with app.app_context():
        db.session.add(
            CallbackRequest(
                call_sid="CA" + "1" * 32,
                reference="100009",
                language="es",
                caller_number=NUMBER,
                callback_number=NUMBER,
                a_number=A_NUMBER,
            )
        )
        with pytest.raises(sa.exc.IntegrityError) as error:
            db.session.commit()
        db.session.rollback()
    message = str(error.value)
    assert "hidden due to hide_parameters" in message
    assert "5550142" not in message and "7654321" not in message


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_the_app_writes_are_readable_by_its_owner_only(make_app, database_url, tmp_path):
    app = make_app(FALLBACK_PATH=str(tmp_path / "journal.jsonl"))
    Call(app.test_client(), TOKEN).answer()  # writes the database (SQLite: and its WAL)
    with app.app_context():
        db.session.add(StaffUser(username="ana", password_hash=generate_password_hash("x" * 10)))
        db.session.commit()
        fallback.keep({"call_sid": "CA1", "callback_number": NUMBER})
    names = ["journal.jsonl"]
    if database_url.startswith("sqlite"):
        assert database_url.endswith(str(tmp_path / "test.sqlite3"))
        names += ["test.sqlite3", "test.sqlite3-wal", "test.sqlite3-shm"]
    assert {name: oct(mode(tmp_path / name)) for name in names} == dict.fromkeys(names, "0o600")


# The access log of the Procfile's web process ------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """A staff member's browser behind Heroku's router: https to the router, http to the app."""

    def __init__(self, port: int):
        self.port, self.cookie = port, ""

    def send(self, method: str, path: str, form: dict[str, str] | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "198.51.100.20",
            "Referer": f"https://127.0.0.1:{self.port}/staff/",
            "Cookie": self.cookie,
        }
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        if response.getheader("Set-Cookie"):
            self.cookie = response.getheader("Set-Cookie").split(";")[0]
        conn.close()
        return response.status, text

    def token(self, path: str) -> str:
        status, page = self.send("GET", path)
        assert status == 200, (status, page[:300])
        return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)[1]


def procfile_web(port: int) -> list[str]:
    """The Procfile's web command (with gunicorn.conf.py, which logs every request), on one
    loopback port."""
    line = next(
        line
        for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    args = shlex.split(line.removeprefix("web:"))
    assert args[0] == "gunicorn", line
    assert 'accesslog = "-"' in (PROJECT_ROOT / "gunicorn.conf.py").read_text()
    return [sys.executable, "-m", *args, "--bind", f"127.0.0.1:{port}", "--workers", "1"]


def test_the_access_log_holds_no_searched_numbers(make_app, database_url, tmp_path):
    app = make_app()
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana",
                role="admin",  # admins export
                password_hash=generate_password_hash(STAFF_PASSWORD),
            )
        )
        db.session.add(
            CallbackRequest(
                call_sid="CA1",
                reference="100001",
                language="es",
                caller_number=NUMBER,
                callback_number=NUMBER,
                a_number=A_NUMBER,
            )
        )
        db.session.commit()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"}
    env.update(
        {
            "SECRET_KEY": "s" * 32,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "FIRM_PHONE_NUMBER": FIRM,
            "DATABASE_URL": database_url,
            "FORWARDED_PROXIES": "1",
            "STAFF_2FA": "optional",
        }
    )  # the password alone here; test_twofactor.py does codes
    server = subprocess.Popen(
        procfile_web(port),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.1)
        browser = Browser(port)
        token = browser.token("/staff/login")
        status, _ = browser.send(
            "POST",
            "/staff/login",
            {"username": "ana", "password": STAFF_PASSWORD, "csrf_token": token},
        )
        assert status == 302
        token = browser.token("/staff/")
        for words in ("(773) 555-0142", "87654321"):
            status, page = browser.send("POST", "/staff/", {"q": words, "csrf_token": token})
            assert status == 200 and 'data-reference="100001"' in page
        status, csv_text = browser.send(
            "POST", "/staff/requests.csv", {"q": "7735550142", "csrf_token": token}
        )
        assert status == 200 and "100001" in csv_text
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)
    assert '"POST /staff/ HTTP/1.1" 200' in log  # the access log was written
    assert '"POST /staff/requests.csv HTTP/1.1" 200' in log
    # Digits alone could be a process id in the log: look for the numbers as searched.
    for searched in ("5550142", "555-0142", "(773)", "87654321", "7654321"):
        assert searched not in log, (searched, log)
