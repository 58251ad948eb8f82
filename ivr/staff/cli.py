"""Staff commands (issue 4 fills this in)."""

import click


@click.group("staff")
def staff_group() -> None:
    """Staff accounts."""


@click.group("alerts")
def alerts_group() -> None:
    """Alerts to staff."""
