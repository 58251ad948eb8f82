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


def _register_commands() -> None:
    from .audio_cli import audio_group, call_command, prompts_group
    from .staff.cli import alerts_group, staff_group

    for command in (audio_group, prompts_group, call_command, staff_group, alerts_group):
        main.add_command(command)


_register_commands()
