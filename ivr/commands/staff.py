"""Staff commands: `ivr staff add|list|remove|password|role|reset-2fa|unlock|rotate-keys` and
`ivr alerts list`.

Account changes are audited with the actor `cli` (whoever has a shell on the server)."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from werkzeug.security import generate_password_hash

from ivr.accounts import audit
from ivr.accounts.models import ROLES, RecoveryCode, StaffUser, new_session_token
from ivr.background.jobs import Job
from ivr.db import db
from ivr.edge import keys
from ivr.staff.guard import normal_username
from ivr.staff.profile import staff_phone
from ivr.staff.twofactor import ENROL_HOURS, new_enrol_code, reset_two_factors

MIN_PASSWORD = 10


@click.group("staff")
def staff_group() -> None:
    """Staff accounts."""


def read_password() -> str:
    """Prompt twice on a terminal; otherwise read one line from standard input (for scripts)."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password must be at least {MIN_PASSWORD} characters")
    return password


CLI = "cli"  # the audit log's actor for changes made on the server


@staff_group.command("add")
@click.argument("username")
@click.option("--admin", is_flag=True, help="May also export, delete and read the audit log.")
@click.option("--phone", default="", help="Their phone, which a call-back rings first.")
@with_appcontext
def add(username: str, admin: bool, phone: str) -> None:
    """Create a staff account; the password is prompted (or read from stdin).

    The first account is an admin, so somebody can always manage the others."""
    name = normal_username(username)
    if not name or db.session.scalar(sa.select(StaffUser.id).filter_by(username=name)):
        raise click.ClickException(f"{name!r} is empty or already exists")
    number = staff_phone(phone) if phone.strip() else None
    if phone.strip() and number is None:
        raise click.ClickException(
            f"{phone!r} is not a phone number: give it with its country code, e.g. +13125550100"
        )
    first = db.session.scalar(sa.select(StaffUser.id).limit(1)) is None
    role = "admin" if admin or first else "staff"
    user = StaffUser(
        username=name,
        phone=number,
        role=role,
        password_hash=generate_password_hash(read_password()),
    )
    db.session.add(user)
    db.session.flush()  # its id: part of what the enrolment code sets up
    code = new_enrol_code(user)
    audit.record("account", CLI, detail=f"added {name} ({role})")
    db.session.commit()
    click.echo(f"{role} account {name} created")
    echo_enrol_code(user.username, code)


def echo_enrol_code(username: str, code: str) -> None:
    click.echo(
        f"enrolment code for {username}: {code}\n"
        f"  give it to them yourself (not by the same channel as the password); it sets up their "
        f"two factors once, within {ENROL_HOURS} hours"
    )


def existing_user(username: str) -> StaffUser:
    user = db.session.scalar(sa.select(StaffUser).filter_by(username=normal_username(username)))
    if user is None:
        raise click.ClickException(f"no staff account {username!r}")
    return user


@staff_group.command("password")
@click.argument("username")
@with_appcontext
def password(username: str) -> None:
    """Set a new password; every session of the account ends."""
    user = existing_user(username)
    user.password_hash = generate_password_hash(read_password())
    user.session_token = new_session_token()
    audit.record("account", CLI, detail=f"new password for {user.username}")
    db.session.commit()
    click.echo(f"password of {user.username} changed")


@staff_group.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@with_appcontext
def set_role(username: str, role: str) -> None:
    """Make an account staff or admin; its sessions end, so the new role applies at once."""
    user = existing_user(username)
    user.role = role
    user.session_token = new_session_token()
    audit.record("account", CLI, detail=f"{user.username} is now {role}")
    db.session.commit()
    click.echo(f"{user.username} is now {role}")


@staff_group.command("list")
@with_appcontext
def list_users() -> None:
    """List staff accounts."""
    for user in db.session.scalars(sa.select(StaffUser).order_by(StaffUser.username)):
        factors = "2fa" if user.totp_secret else "no 2fa"
        if user.locked_at:
            factors += " LOCKED"
        click.echo(
            f"{user.username}\t{user.role}\t{factors}\t"
            f"created {user.created_at:%Y-%m-%d}\tphone {user.phone or '-'}"
        )


@staff_group.command("remove")
@click.argument("username")
@with_appcontext
def remove(username: str) -> None:
    """Delete a staff account; its sessions end at once."""
    user = existing_user(username)
    # Explicitly: SQLite does not enforce the foreign key's cascade, and a later account may get
    # the same id.
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.delete(user)
    audit.record("account", CLI, detail=f"removed {user.username}")
    db.session.commit()
    click.echo(f"staff account {user.username} removed")


@staff_group.command("reset-2fa")
@click.argument("username")
@with_appcontext
def reset_2fa(username: str) -> None:
    """Forget the account's authenticator and recovery codes (a lost phone); its sessions end,
    and its next login sets up two factors again."""
    user = existing_user(username)
    code = reset_two_factors(user)
    audit.record("account", CLI, detail=f"reset two factors of {user.username}")
    db.session.commit()
    click.echo(f"two factors of {user.username} reset: the next login sets them up again")
    echo_enrol_code(user.username, code)


@staff_group.command("unlock")
@click.argument("username")
@with_appcontext
def unlock(username: str) -> None:
    """Unlock an account locked after too many wrong passwords or codes."""
    user = existing_user(username)
    user.locked_at, user.failures = None, 0
    audit.record("account", CLI, detail=f"unlocked {user.username}")
    db.session.commit()
    click.echo(f"{user.username} unlocked")


@staff_group.command("rotate-keys")
@with_appcontext
def rotate_keys() -> None:
    """Re-encrypt every TOTP secret with the first of DATA_KEYS (after adding a new key in
    front); then the old key can be removed."""
    users = db.session.scalars(sa.select(StaffUser).where(StaffUser.totp_secret.is_not(None)))
    count = 0
    for user in users:
        assert user.totp_secret is not None
        user.totp_secret = keys.rotate(user.totp_secret)
        count += 1
    db.session.commit()
    click.echo(f"re-encrypted {count} TOTP secrets with the newest key")


@click.group("alerts")
def alerts_group() -> None:
    """Alerts to staff."""


@alerts_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include sent alerts.")
@with_appcontext
def list_alerts(show_all: bool) -> None:
    """Show alerts not yet sent (or all), with their last error."""
    query = sa.select(Job).where(Job.kind.startswith("alert-")).order_by(Job.id)
    if not show_all:
        query = query.where(Job.status != "done")
    for job in db.session.scalars(query):
        data = job.data
        click.echo(
            f"{job.id}\trequest {data.get('request_id')}\t{job.kind[6:]}\t"
            f"{data.get('recipient')}\t{'sent' if job.status == 'done' else job.status}\t"
            f"attempts {job.attempts}\t{job.last_error or ''}"
        )
