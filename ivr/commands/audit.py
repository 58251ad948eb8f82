"""`ivr audit verify`: check the audit log's HMAC chain (accounts/audit.py)."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
@with_appcontext
def verify() -> None:
    """Check every entry's HMAC and the head: exit 1 naming the first entry that does not match
    (rewritten, deleted or inserted), or saying the table was emptied."""
    import sqlalchemy as sa

    from ivr.accounts.audit import AuditEntry
    from ivr.accounts.audit import verify as check
    from ivr.db import db

    problem = check()
    if problem is not None:
        click.echo(f"audit log tampered with: {problem}", err=True)
        sys.exit(1)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    click.echo(f"audit log intact: {count} entries, every HMAC matches")


GRANTS = """\
-- Run as the role that owns the tables (the one `ivr db upgrade` runs as), after each upgrade.
-- The app then connects as {app}: it may read and write the hotline's tables, but only read
-- and append to the audit log; it owns nothing, so it can neither drop nor disable a trigger,
-- and TRUNCATE is neither granted nor let through (the BEFORE TRUNCATE triggers, 0012).
GRANT USAGE ON SCHEMA public TO {app};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {app};
REVOKE DELETE, TRUNCATE ON audit_head FROM {app};
REVOKE ALL ON alembic_version FROM {app};
GRANT SELECT ON alembic_version TO {app};
"""


@audit_group.command("grants")
@click.argument("app_role")
def grants(app_role: str) -> None:
    """Print the SQL that gives APP_ROLE (the app's PostgreSQL user, not the tables' owner) only
    SELECT and INSERT on the audit log (README, "Data protection")."""
    import re

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", app_role):
        raise click.ClickException("a role name: lower-case letters, digits and _")
    click.echo(GRANTS.format(app=app_role), nl=False)


@click.group("keys")
def keys_group() -> None:
    """Keys kept outside the database (AUDIT_KEY, DATA_KEYS)."""


@keys_group.command("new")
def new_key() -> None:
    """Print a new random key, good for AUDIT_KEY or as a DATA_KEYS entry."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())
