"""The audit log is tamper-evident: `ivr audit verify` names the first entry that was rewritten,
deleted or inserted, and sees an emptied table, on SQLite and PostgreSQL; the triggers refuse what
the review got through (INSERT OR REPLACE on SQLite, TRUNCATE on PostgreSQL); each entry is also
in the log, without the address."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from ivr.accounts import audit
from ivr.commands.audit import audit_group
from ivr.db import db


@pytest.fixture
def entries(app):
    """Five entries, as the app writes them (ids 1..5)."""
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.9.8.7"}):
        for n in range(5):
            audit.record("listen", "ana", request_id=n + 1, reference=f"10000{n + 1}")
            db.session.commit()
    return app


def verify(app):
    result = app.test_cli_runner().invoke(audit_group, ["verify"])
    return result.exit_code, result.output


def as_owner(app, *statements: str) -> None:
    """What someone who owns the tables (or the SQLite file) can do: lift the triggers, change
    the rows. The HMACs cannot be recomputed without AUDIT_KEY."""
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_replace"):
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
        for statement in statements:
            conn.execute(sa.text(statement))
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


def test_an_untouched_log_verifies(entries):
    assert verify(entries) == (0, "audit log intact: 5 entries, every HMAC matches\n")


def test_an_empty_new_log_verifies(app):
    assert verify(app)[0] == 0


def test_a_rewritten_entry_is_named(entries):
    as_owner(entries, "UPDATE audit_log SET actor = 'cli', action = 'account' WHERE id = 3")
    code, output = verify(entries)
    assert code == 1 and "entry 3:" in output and "changed" in output


def test_a_rewritten_mac_is_named_too(entries):
    """Copying another entry's mac does not help: each seals its own content and place."""
    as_owner(
        entries,
        "UPDATE audit_log SET detail = 'x', mac = (SELECT mac FROM audit_log WHERE id = 4) "
        "WHERE id = 2",
    )
    code, output = verify(entries)
    assert code == 1 and "entry 2:" in output


def test_a_deleted_entry_is_named_by_the_next(entries):
    as_owner(entries, "DELETE FROM audit_log WHERE id = 3")
    code, output = verify(entries)
    assert code == 1 and "entry 4:" in output and "deleted" in output


def test_a_deleted_last_entry_shows_at_the_head(entries):
    as_owner(entries, "DELETE FROM audit_log WHERE id = 5")
    code, output = verify(entries)
    assert code == 1 and "entry 5:" in output and "ends at entry 4" in output


def test_an_inserted_entry_is_named(entries):
    with entries.app_context():
        mac = db.session.scalar(sa.select(audit.AuditEntry.mac).where(audit.AuditEntry.id == 5))
    as_owner(
        entries,
        "INSERT INTO audit_log (id, created_at, actor, action, detail, ip, mac) "
        f"VALUES (6, '2026-12-01 10:00:00', 'ana', 'login', '', '', '{mac}')",
    )
    code, output = verify(entries)
    assert code == 1 and "entry 6:" in output


def test_an_emptied_table_shows(entries):
    as_owner(entries, "DELETE FROM audit_log")
    code, output = verify(entries)
    assert code == 1 and "emptied" in output


def test_the_triggers_refuse_what_got_through_before(entries):
    with entries.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            statement = "TRUNCATE audit_log"
        else:  # REPLACE deletes the old row without firing a DELETE trigger
            statement = (
                "INSERT OR REPLACE INTO audit_log (id, created_at, actor, action, detail, ip) "
                "SELECT id, created_at, 'cli', 'account', 'nothing happened', '' "
                "FROM audit_log WHERE id = 2"
            )
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            conn.execute(sa.text(statement))
        conn.rollback()
        with pytest.raises(sa.exc.DBAPIError, match="cannot be deleted"):
            conn.execute(sa.text("DELETE FROM audit_head"))
    assert verify(entries)[0] == 0


def test_each_entry_goes_to_the_log_without_the_address(app, caplog):
    caplog.set_level(logging.INFO, logger="ivr.audit")
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.9.8.7"}):
        entry = audit.record("login", "ana")
        db.session.commit()
        mac = entry.mac
    (line,) = [r.getMessage() for r in caplog.records if r.name == "ivr.audit"]
    assert line.startswith("AUDIT ")
    copy = json.loads(line[len("AUDIT ") :])
    assert copy["actor"] == "ana" and copy["action"] == "login" and copy["mac"] == mac
    assert "10.9.8.7" not in line
