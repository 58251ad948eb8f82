"""Staff commands: `ivr staff add|list|remove|password|role|phone|reset-2fa|unlock|rotate-keys`
and `ivr alerts list`.

Each change goes through `ivr.accounts.manage`, the service the admin's Accounts page uses too,
and is audited with the actor `cli` (whoever has a shell on the server)."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from ivr.accounts import manage
from ivr.accounts.manage import CLI, AccountError
from ivr.accounts.models import ROLES, StaffUser
from ivr.background.jobs import Job
from ivr.db import db
from ivr.edge import keys


@click.group("staff")
def staff_group() -> None:
    """Staff accounts."""


def read_password() -> str:
    """Prompt twice on a terminal; otherwise read one line from standard input (for scripts)."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        return manage.check_password(password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


def refused(exc: AccountError) -> click.ClickException:
    return click.ClickException(str(exc))


@staff_group.command("add")
@click.argument("username")
@click.option("--admin", is_flag=True, help="May also export, delete and read the audit log.")
@click.option("--phone", default="", help="Their phone, which a call-back rings first.")
@with_appcontext
def add(username: str, admin: bool, phone: str) -> None:
    """Create a staff account; the password is prompted (or read from stdin).

    The first account is an admin, so somebody can always manage the others."""
    try:
        # Checked before the password is asked for, so a typo does not cost a prompt.
        if manage.find(username) is not None:
            raise AccountError(f"An account {manage.normal_username(username)} already exists.")
        added = manage.add(
            CLI, username, "admin" if admin else "staff", phone, password=read_password()
        )
    except AccountError as exc:
        raise refused(exc) from None
    db.session.commit()
    click.echo(f"{added.user.role} account {added.user.username} created")
    echo_enrol_code(added.user.username, added.enrol_code)


def echo_enrol_code(username: str, code: str) -> None:
    click.echo(
        f"enrolment code for {username}: {code}\n"
        f"  give it to them yourself (not by the same channel as the password); it sets up their "
        f"two factors once, within {manage.ENROL_HOURS} hours"
    )


def existing_user(username: str) -> StaffUser:
    user = manage.find(username)
    if user is None:
        raise click.ClickException(f"no staff account {username!r}")
    return user


@staff_group.command("password")
@click.argument("username")
@with_appcontext
def password(username: str) -> None:
    """Set a new password; every session of the account ends."""
    user = existing_user(username)
    manage.set_password(CLI, user, read_password())
    db.session.commit()
    click.echo(f"password of {user.username} changed")


@staff_group.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@with_appcontext
def set_role(username: str, role: str) -> None:
    """Make an account staff or admin; its sessions end, so the new role applies at once."""
    user = existing_user(username)
    try:
        manage.set_role(CLI, user, role)
    except AccountError as exc:
        raise refused(exc) from None
    db.session.commit()
    click.echo(f"{user.username} is now {role}")


@staff_group.command("phone")
@click.argument("username")
@click.argument("phone", default="")
@with_appcontext
def set_phone(username: str, phone: str) -> None:
    """Set the phone a call-back rings first (with its country code); none removes it."""
    user = existing_user(username)
    try:
        manage.set_phone(CLI, user, phone)
    except AccountError as exc:
        raise refused(exc) from None
    db.session.commit()
    click.echo(f"phone of {user.username}: {user.phone or 'none'}")


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
    try:
        manage.remove(CLI, user)
    except AccountError as exc:
        raise refused(exc) from None
    db.session.commit()
    click.echo(f"staff account {user.username} removed")


@staff_group.command("reset-2fa")
@click.argument("username")
@with_appcontext
def reset_2fa(username: str) -> None:
    """Forget the account's authenticator and recovery codes (a lost phone); its sessions end,
    and its next login sets up two factors again."""
    user = existing_user(username)
    code = manage.reset_2fa(CLI, user)
    db.session.commit()
    click.echo(f"two factors of {user.username} reset: the next login sets them up again")
    echo_enrol_code(user.username, code)


@staff_group.command("unlock")
@click.argument("username")
@with_appcontext
def unlock(username: str) -> None:
    """Unlock an account locked after too many wrong passwords or codes."""
    user = existing_user(username)
    manage.unlock(CLI, user)
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
