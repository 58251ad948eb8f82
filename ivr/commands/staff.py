"""Staff commands: `ivr staff add|list|remove|password` and `ivr alerts list`."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from werkzeug.security import generate_password_hash

from ..db import db
from ..jobs import Job
from ..staff.auth import normal_username
from ..staff.models import StaffUser, new_session_token

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


@staff_group.command("add")
@click.argument("username")
@with_appcontext
def add(username: str) -> None:
    """Create a staff account; the password is prompted (or read from stdin)."""
    name = normal_username(username)
    if not name or db.session.scalar(sa.select(StaffUser.id).filter_by(username=name)):
        raise click.ClickException(f"{name!r} is empty or already exists")
    db.session.add(StaffUser(username=name, password_hash=generate_password_hash(read_password())))
    db.session.commit()
    click.echo(f"staff account {name} created")


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
    db.session.commit()
    click.echo(f"password of {user.username} changed")


@staff_group.command("list")
@with_appcontext
def list_users() -> None:
    """List staff accounts."""
    for user in db.session.scalars(sa.select(StaffUser).order_by(StaffUser.username)):
        click.echo(f"{user.username}\tcreated {user.created_at:%Y-%m-%d}")


@staff_group.command("remove")
@click.argument("username")
@with_appcontext
def remove(username: str) -> None:
    """Delete a staff account; its sessions end at once."""
    user = existing_user(username)
    db.session.delete(user)
    db.session.commit()
    click.echo(f"staff account {user.username} removed")


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
        click.echo(f"{job.id}\trequest {data.get('request_id')}\t{job.kind[6:]}\t"
                   f"{data.get('recipient')}\t{'sent' if job.status == 'done' else job.status}\t"
                   f"attempts {job.attempts}\t{job.last_error or ''}")
