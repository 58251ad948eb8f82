"""The app's address: `/` says where you are; `/healthz` follows the database down and back up."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr import create_app
from ivr.db import db
from ivr.migrate import upgrade
from tests.conftest import base_config, drop_database


def test_home_page_names_the_firm_and_links_to_the_staff_login(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "J. Molina Law Firm" in page
    assert 'href="/staff/login"' in page
    assert client.get("/staff/login").status_code == 200


def test_healthz_answers_without_login_or_personal_data(client, make_request):
    make_request(caller_number="+13125550123")
    response = client.get("/healthz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "ok", "database": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_is_503_when_the_sqlite_file_cannot_be_opened(tmp_path, prompts_dir):
    path = tmp_path / "gone.sqlite3"
    app = create_app(base_config(tmp_path, DATABASE_URL=f"sqlite:///{path}"))
    upgrade(app)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    path.unlink()
    path.mkdir()  # a folder where the database was: SQLite cannot open it
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "not answering"}
    close(app)


def close(app) -> None:
    """What `make_app` does after a test, for apps made on a database of the test's choosing."""
    drainer = app.extensions.get("ivr.requests.fallback")
    if drainer is not None:
        drainer.stop()
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def pg_app(pg_server, tmp_path, prompts_dir):
    """An app on its own database in the private PostgreSQL server, which the test may stop."""
    admin = sa.create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    name = f"ivr_health_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    app = create_app(base_config(tmp_path, DATABASE_URL=url))
    upgrade(app)
    yield app
    close(app)
    drop_database(admin, name)
    admin.dispose()


@pytest.mark.postgres
def test_healthz_follows_postgresql_stopped_and_started(pg_app, pg_server):
    client = pg_app.test_client()
    assert client.get("/healthz").status_code == 200
    pg_server.stop()
    try:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.get_json() == {"status": "unavailable", "database": "not answering"}
    finally:
        pg_server.start()
    assert client.get("/healthz").status_code == 200


@pytest.mark.postgres
def test_healthz_of_a_hung_postgresql_is_503_not_a_hang(pg_app, pg_server):
    """A server that takes connections but never answers (here: frozen with SIGSTOP) is a 503
    once the connect timeout passes, rather than a health check that never returns."""
    client = pg_app.test_client()
    assert client.get("/healthz").status_code == 200
    pid = int((Path(pg_server.data) / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        assert client.get("/healthz").status_code == 503
    finally:
        os.kill(pid, signal.SIGCONT)
    assert client.get("/healthz").status_code == 200
