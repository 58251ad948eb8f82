"""The `ivr` command, every subcommand in this package: Flask's CLI (run, routes, shell) plus the
hotline's own (`audio.py`: prompts, audio and the call simulator; `staff.py`: accounts and alerts).
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from ivr import create_app
from ivr import settings as settings_module
from ivr.settings import settings


def _create_app():
    try:
        return create_app()
    except settings_module.SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_create_app)
def main() -> None:
    """The J. Molina Law Firm hotline."""


@main.command("settings", with_appcontext=False)
@click.option(
    "--check", is_flag=True, help="Parse this environment's settings and say what is wrong."
)
@click.option("--markdown", is_flag=True, help="Print the table the README shows.")
def show_settings(check: bool, markdown: bool) -> None:
    """List every setting: its type, default and what it does (secrets' values never shown)."""
    if markdown:
        click.echo(settings_module.markdown_table(), nl=False)
        return
    if check:
        try:
            settings_module.load()
        except settings_module.SettingsError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        click.echo("settings are fine")
        return
    for row in settings_module.described():
        default = "(required)" if row.default is None else repr(row.default)
        secret = ", secret" if row.secret else ""
        click.echo(f"{row.name}: {row.type}{secret} = {default}\n    {row.doc}")


@main.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Bring the database schema up to date; run on every release."""
    from ivr.migrate import upgrade

    upgrade(current_app)
    click.echo("database is up to date")


@main.group("callbacks")
def callbacks_group() -> None:
    """Callback requests: recover what the fallback kept, copy recordings."""


@callbacks_group.command("replay")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@with_appcontext
def callbacks_replay(source) -> None:
    """Store what callers gave while the database was down, from a fallback file or a log dump
    (e.g. `heroku logs -n 1500 | ivr callbacks replay -`).

    The web processes apply their own fallback file automatically; this is for a machine that is
    gone. Replaying twice is harmless: requests are keyed by CallSid.
    """
    import sqlalchemy as sa

    from ivr.requests import fallback
    from ivr.requests.service import callers

    try:
        stored, failed, _refused = callers.replay(fallback.read(source))
    except sa.exc.SQLAlchemyError as exc:
        click.echo(
            f"the database cannot take them yet ({str(exc).splitlines()[0][:200]}); "
            "nothing was lost: run this again once it can",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"replayed {stored} entries" + (f", {failed} failed (see the log)" if failed else "")
    )
    if failed:
        sys.exit(1)


@callbacks_group.command("copy-recordings")
@with_appcontext
def callbacks_copy_recordings() -> None:
    """Queue a copy of every recording not copied yet (also those whose copy gave up)."""
    from ivr.requests import recordings

    count = recordings.queue_missing(retry_failed=True)
    click.echo(f"queued {count} recording copies for the worker")


@main.group("retention")
def retention_group() -> None:
    """Deleting personal data RETENTION_DAYS after a request is handled."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@with_appcontext
def retention_run(dry_run: bool) -> None:
    """Delete the recordings and personal data past RETENTION_DAYS now (the worker does this
    daily); with --dry-run, list them instead."""
    from ivr.requests import retention

    todo = retention.run(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    days = settings().retention_days
    click.echo(
        f"{verb} the recording and personal data of {len(todo.requests)} request(s) "
        f"handled over {days} days ago, and the calling number of {todo.calls} call(s)"
    )
    for _id, reference in todo.requests:
        click.echo(f"  #{reference}")


@main.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs that are due now, then stop.")
@click.option(
    "--concurrency", type=int, default=None, help="Jobs at once (default: JOB_CONCURRENCY)."
)
@with_appcontext
def worker_command(once: bool, concurrency: int | None) -> None:
    """Run background jobs: recording copies, staff alerts (the Procfile's `worker:`)."""
    from ivr.background.worker import run

    run(current_app._get_current_object(), once=once, concurrency=concurrency)  # type: ignore[attr-defined]


def _register_commands() -> None:
    from ivr.commands.audio import audio_group, call_command, prompts_group
    from ivr.commands.audit import audit_group, keys_group
    from ivr.commands.staff import alerts_group, staff_group
    from ivr.commands.twilio import twilio_group

    for command in (
        audio_group,
        prompts_group,
        call_command,
        staff_group,
        alerts_group,
        twilio_group,
        audit_group,
        keys_group,
    ):
        main.add_command(command)


_register_commands()
