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
