"""Fixtures: an app on a fresh database (SQLite, or PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from ivr import PROJECT_ROOT, create_app
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.migrate import upgrade
from tests.pg_server import PgServer, Unavailable

TOKEN = "test-auth-token-0123456789"
FIRM = "+13125550100"


def eventually(condition: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Wait until `condition()` holds, for work another thread or process does (a fallback
    thread, a worker, a restarted server). The timeout is a deadline against a hang, not a
    timing assertion; `what` says in the failure what was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout:g} s: {what or condition}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server for fault tests (only where TEST_POSTGRES_URL is set)."""
    if not os.environ.get("TEST_POSTGRES_URL"):
        pytest.skip("needs TEST_POSTGRES_URL and PostgreSQL's server binaries")
    try:
        server = PgServer.create()
    except Unavailable as missing:
        pytest.skip(f"needs {missing}")
    try:
        yield server
    finally:
        server.remove()


def base_config(tmp_path: Path, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-" + "0" * 32,  # settings refuse one under 32 bytes
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "FIRM_PHONE_NUMBER": FIRM,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}",
        "OFFICE_HOURS": "always",
        "DEFAULT_LANGUAGE": "es",
        "PROMPTS_DIR": str(tmp_path / "prompts"),
        "AUDIO_DIR": str(tmp_path / "audio"),
        "FALLBACK_PATH": str(tmp_path / "fallback.jsonl"),
    }
    config.update(overrides)
    return config


class Templates:
    """Databases migrated once per test session (per xdist worker), then copied for each test.

    Running every migration for each of ~1,000 tests cost about a third of a second each (more
    on PostgreSQL); a copy of a migrated SQLite file, or PostgreSQL's CREATE DATABASE … TEMPLATE,
    gives the same empty database at head in a few milliseconds. `make_app` still runs
    `upgrade()`, which finds the copy at head; a test that passes its own DATABASE_URL gets no
    copy. A new database's tables hold no key-dependent rows (the audit head of an empty log has
    no seal), so one template serves every test whatever its SECRET_KEY or AUDIT_KEY."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def _migrate(self, url: str) -> None:
        app = create_app(base_config(self.folder, DATABASE_URL=url))
        upgrade(app)
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()  # the last connection's close checkpoints SQLite's WAL

    def sqlite(self) -> Path:
        if self._sqlite is None:
            path = self.folder / "template.sqlite3"
            self._migrate(f"sqlite:///{path}")
            assert not path.with_name(path.name + "-wal").exists(), "WAL not checkpointed"
            self._sqlite = path
        return self._sqlite

    def postgres(self, admin: sa.Engine) -> str:
        if self._postgres is None:
            name = f"ivr_template_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            self._migrate(admin.url.set(database=name).render_as_string(hide_password=False))
            self._postgres = name
        return self._postgres

    def remove(self) -> None:
        if self._postgres is not None:
            admin = sa.create_engine(os.environ["TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
            drop_database(admin, self._postgres)
            admin.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    made = Templates(tmp_path_factory.mktemp("templates"))
    yield made
    made.remove()


@pytest.fixture(params=["sqlite"] + (["postgres"] if os.environ.get("TEST_POSTGRES_URL") else []))
def database_url(request, tmp_path):
    """Each test that uses the database runs on SQLite, and on PostgreSQL when one is given."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    admin = sa.create_engine(os.environ["TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    name = f"ivr_test_{uuid.uuid4().hex[:12]}"
    try:
        # Created by `make_app` (`create_database`): from the template, or empty when a test
        # brings its own DATABASE_URL. CREATE DATABASE is the slow part; done once per test.
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


def create_database(templates: Templates, url: str, *, migrated: bool) -> None:
    """Make the test's database: a copy of the migrated template, or (`migrated=False`) empty.
    Nothing when it exists already."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if migrated and not path.exists():
            shutil.copyfile(templates.sqlite(), path)
            os.chmod(path, 0o600)  # as the app makes its own files (ivr/process.py's umask)
        return
    admin = sa.create_engine(os.environ["TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": parsed.database},
            )
        if exists:
            return
        template = f' TEMPLATE "{templates.postgres(admin)}"' if migrated else ""
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"{template}'))
    finally:
        admin.dispose()


def drop_database(admin: sa.Engine, name: str) -> None:
    """Drop a test database; an autovacuum worker may hold it for a moment, so retry."""
    for attempt in range(10):
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except sa.exc.DBAPIError:
            if attempt == 9:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def real_prompts() -> list[tuple[Path, bytes]]:
    """The prompt files read once per session (written out for each test by `prompts_dir`)."""
    root = PROJECT_ROOT / "prompts"
    files = sorted(path for path in root.rglob("*") if path.is_file())
    return [(path.relative_to(root), path.read_bytes()) for path in files]


@pytest.fixture
def prompts_dir(tmp_path, real_prompts):
    """A copy of the real prompts, so a test may edit them (written from memory: three times
    quicker than copying ~280 files for each of ~1,000 tests)."""
    target = tmp_path / "prompts"
    for relative, data in real_prompts:
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target


@pytest.fixture
def make_app(tmp_path, prompts_dir, database_url, templates):
    apps = []

    def make(**overrides):
        if not apps:
            create_database(templates, database_url, migrated="DATABASE_URL" not in overrides)
        app = create_app(base_config(tmp_path, DATABASE_URL=database_url, **overrides))
        upgrade(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        # The fallback's thread must end before its database goes.
        drainer = app.extensions.get("ivr.requests.fallback")
        if drainer is not None:
            drainer.stop()
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def call(client):
    """A new phone call from a US mobile number, ready to `answer()`."""
    return Call(client, TOKEN)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# Staff side (issue 4) -------------------------------------------------------------------------
STAFF_PASSWORD = "correct horse battery"


def csrf_token(client, path: str = "/staff/login") -> str:
    """The CSRF token from a form, read the way a browser would: from the page."""
    import re

    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, page[:500]
    return match[1]


class StaffAuth:
    def __init__(self, client):
        self.client = client

    def login(self, username: str = "ana", password: str = STAFF_PASSWORD, **kwargs):
        token = csrf_token(self.client)
        return self.client.post(
            "/staff/login",
            data={"username": username, "password": password, "csrf_token": token},
            **kwargs,
        )

    def logout(self):
        return self.client.post(
            "/staff/logout", data={"csrf_token": csrf_token(self.client, "/staff/")}
        )


@pytest.fixture
def staff_user(app):
    """A staff account `ana` with STAFF_PASSWORD; an admin, as the first account always is."""
    from werkzeug.security import generate_password_hash

    from ivr.accounts.models import StaffUser

    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    return "ana"


@pytest.fixture
def auth(client, staff_user):
    return StaffAuth(client)


@pytest.fixture
def make_request(app):
    """Store a callback request directly (no call), returning its id."""
    import itertools

    from ivr.requests.models import CallbackRequest

    counter = itertools.count(1)

    def make(**fields) -> int:
        n = next(counter)
        values = {
            "call_sid": f"CA{n:032x}",
            "reference": f"{100000 + n}",
            "language": "es",
            "caller_number": "+13125550123",
            "callback_number": "+13125550123",
            "recording_duration": 42,
            **fields,
        }
        # A note lives in the request's history (migration 0007; 0009 dropped the columns).
        note, actor = values.pop("note", None), values.pop("handled_by", None) or "ana"
        with app.app_context():
            row = CallbackRequest(**values)
            db.session.add(row)
            db.session.flush()
            if note:
                from ivr.requests import history

                history.add(row.id, "note", actor, text=note)
            db.session.commit()
            return row.id

    return make


@contextlib.contextmanager
def serving(app) -> Iterator[int]:
    """The app on a real threaded HTTP server on loopback (a browser, or parallel clients),
    sharing the test's database; yields its port."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def enrol_code(app, username: str = "ana") -> str:
    """A one-time enrolment code for `username`, as `ivr staff reset-2fa` would hand out."""
    import sqlalchemy as sa

    from ivr.accounts.models import StaffUser
    from ivr.staff.twofactor import new_enrol_code

    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
        code = new_enrol_code(user)
        db.session.commit()
    return code
