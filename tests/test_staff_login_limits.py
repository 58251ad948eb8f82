"""Login limits: per account and address, per account, against parallel tries and forged headers."""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from ivr.accounts.models import LoginAttempt
from ivr.db import db
from ivr.settings import Settings
from ivr.staff.guard import ACCOUNT_MAX_FAILURES, MAX_FAILURES
from tests.conftest import STAFF_PASSWORD, serving

WRONG = "wrong password"


class From:
    """A browser at client address `ip` (the test client sets REMOTE_ADDR)."""

    def __init__(self, app, ip: str, headers: dict[str, str] | None = None):
        self.client, self.env, self.headers = app.test_client(), {"REMOTE_ADDR": ip}, headers or {}

    def login(self, password: str = STAFF_PASSWORD) -> int:
        page = self.client.get("/staff/login", environ_base=self.env, headers=self.headers)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)[1]
        return self.client.post(
            "/staff/login",
            environ_base=self.env,
            headers=self.headers,
            data={"username": "ana", "password": password, "csrf_token": token},
        ).status_code


@pytest.fixture
def app(make_app):
    """Thirty logins at once are twice the connection pool (5 + 10), and each holds the account's
    row while its password is checked: the later ones wait for a connection longer than
    DB_TIMEOUT_SECONDS (3 s, which keeps webhooks from queueing). Here they may wait."""
    return make_app(DB_TIMEOUT_SECONDS="60")


def attempts(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt))


def test_an_account_takes_only_so_many_failures_from_all_addresses(app, staff_user):
    addresses = [f"198.51.100.{n}" for n in range(ACCOUNT_MAX_FAILURES // MAX_FAILURES)]
    for ip in addresses:
        browser = From(app, ip)
        assert [browser.login(WRONG) for _ in range(MAX_FAILURES)] == [401] * MAX_FAILURES
    # A new address has had no failure, but the account has had enough: even the password fails.
    assert From(app, "203.0.113.7").login() == 429
    assert attempts(app) == ACCOUNT_MAX_FAILURES  # refused tries are not counted


@pytest.mark.skipif(
    "forwarded_proxies" not in Settings.model_fields,
    reason="X-Forwarded-For is trusted only from configured proxies once the "
    "FORWARDED_PROXIES setting exists (the edge branch of issue 10)",
)
def test_a_forged_x_forwarded_for_buys_no_more_tries(app, staff_user):
    """Without a proxy (the default) anyone can send X-Forwarded-For: it must not count as an
    address, or each forged value would get its own five guesses."""
    codes = [
        From(app, "127.0.0.1", {"X-Forwarded-For": f"192.0.2.{n}"}).login(WRONG)
        for n in range(MAX_FAILURES + 3)
    ]
    assert codes == [401] * MAX_FAILURES + [429] * 3
    assert From(app, "127.0.0.1", {"X-Forwarded-For": "192.0.2.99"}).login() == 429


@pytest.fixture
def server(app, staff_user):
    """The app on a real threaded HTTP server on loopback, sharing the test's database."""
    with serving(app) as port:
        yield port


def parallel_wrong_logins(port: int, sources: list[str]) -> Counter:
    """One wrong login per source address, all sent at the same moment; count the answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/staff/login")
    page = conn.getresponse()
    cookie = page.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.read().decode())[1]
    conn.close()
    body = urlencode({"username": "ana", "password": WRONG, "csrf_token": token})
    start = threading.Barrier(len(sources))
    codes: Counter = Counter()
    lock = threading.Lock()

    def attempt(source: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
        conn.connect()
        start.wait(timeout=60)
        conn.request(
            "POST",
            "/staff/login",
            body=body,
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        status = conn.getresponse().status
        conn.close()
        with lock:
            codes[status] += 1

    threads = [threading.Thread(target=attempt, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return codes


def test_thirty_parallel_tries_from_one_address_get_five_password_checks(app, server):
    codes = parallel_wrong_logins(server, ["127.0.0.1"] * 30)
    assert codes == {401: MAX_FAILURES, 429: 30 - MAX_FAILURES}
    assert attempts(app) == MAX_FAILURES


def test_thirty_parallel_tries_from_six_addresses_get_the_accounts_twenty(app, server):
    sources = [f"127.0.0.{2 + n % 6}" for n in range(30)]  # five tries from each address
    codes = parallel_wrong_logins(server, sources)
    assert codes == {401: ACCOUNT_MAX_FAILURES, 429: 30 - ACCOUNT_MAX_FAILURES}
    assert attempts(app) == ACCOUNT_MAX_FAILURES
