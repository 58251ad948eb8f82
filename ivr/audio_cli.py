"""Audio, prompt and simulator commands (issue 5 fills this in)."""

import click


@click.group("audio")
def audio_group() -> None:
    """Rendered prompt audio."""


@click.group("prompts")
def prompts_group() -> None:
    """Prompt files."""


@click.command("call")
def call_command() -> None:
    """Simulate a call."""
