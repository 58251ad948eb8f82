"""The `ivr` command: Flask's CLI (run, routes, shell) plus the hotline's own commands."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import create_app, settings


def _create_app():
    try:
        return create_app()
    except settings.SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_create_app)
def main() -> None:
    """The J. Molina Law Firm hotline."""


@main.command("settings", with_appcontext=False)
def show_settings() -> None:
    """List every setting, its default and what it does."""
    for setting in settings.SETTINGS:
        default = "(required)" if setting.default is None else repr(setting.default)
        click.echo(f"{setting.name} = {default}\n    {setting.doc}")


@main.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Bring the database schema up to date; run on every release."""
    from .migrate import upgrade

    upgrade(current_app)
    click.echo("database is up to date")


@main.group("callbacks")
def callbacks_group() -> None:
    """Callback requests: recover from the journal, copy recordings."""


@callbacks_group.command("replay")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@with_appcontext
def callbacks_replay(source) -> None:
    """Store requests journaled while the database was down (a journal file or a log dump).

    Replaying twice is harmless: requests are keyed by CallSid.
    """
    from . import callbacks, journal

    stored, failed = callbacks.replay(journal.read(source))
    click.echo(f"replayed {stored} journal entries" + (f", {failed} failed (see the log)"
                                                       if failed else ""))
    if failed:
        sys.exit(1)


@callbacks_group.command("copy-recordings")
@with_appcontext
def callbacks_copy_recordings() -> None:
    """Copy into the database every recording not copied yet (e.g. after a Twilio outage)."""
    import sqlalchemy as sa

    from . import callbacks
    from .db import db
    from .models import CallbackRequest

    pending = db.session.scalars(
        sa.select(CallbackRequest).where(
            CallbackRequest.audio_type.is_(None), CallbackRequest.recording_url.is_not(None)
        )
    ).all()
    copied = sum(callbacks.fetch_recording(row) for row in pending)
    click.echo(f"copied {copied} of {len(pending)} recordings")
    if copied < len(pending):
        sys.exit(1)


def _register_commands() -> None:
    from .audio_cli import audio_group, call_command, prompts_group
    from .staff.cli import alerts_group, staff_group
    from .twilio_setup import twilio_group

    for command in (audio_group, prompts_group, call_command, staff_group, alerts_group,
                    twilio_group):
        main.add_command(command)


_register_commands()
