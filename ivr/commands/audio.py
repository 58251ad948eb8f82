"""`ivr audio build`, `ivr prompts check` and `ivr call`: the tools of staff who edit prompts.

Staff edit text files, check them, hear them in the simulator, then build their audio; every
command here works offline except the build itself, which needs Google for gTTS.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import NoReturn

import click
import requests
from flask.cli import ScriptInfo, with_appcontext
from gtts import gTTS, gTTSError
from tqdm import tqdm

from ivr.calls import audio
from ivr.calls.prompts import LANGUAGES, PromptError, Prompts
from ivr.settings import settings


def render(text: str, lang: str, tld: str, slow: bool = False) -> bytes:
    """Speak `text` with gTTS (one request per ~100 characters); raise gTTSError offline."""
    buffer = io.BytesIO()
    gTTS(text, lang=lang, tld=tld, slow=slow, lang_check=False, timeout=30).write_to_fp(buffer)
    return buffer.getvalue()


def fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@click.group("audio")
def audio_group() -> None:
    """Rendered prompt audio."""


@audio_group.command("build")
@click.option("--check", is_flag=True, help="Only report missing or stale audio; exit 1 if any.")
@click.option("--prune", is_flag=True, help="Also delete audio that no prompt uses.")
@with_appcontext
def build_command(check: bool, prune: bool) -> None:
    """Render, with gTTS, every prompt whose audio is missing or stale."""
    config = settings()
    root = Path(config.audio_dir)
    prompts = Prompts(Path(config.prompts_dir))
    accents = audio.tlds(config)
    try:
        wanted = {lang: audio.spoken(prompts, lang) for lang in LANGUAGES}
        old = audio.read_manifest(root)
    except PromptError as exc:
        fail(f"audio build: {exc} (run `ivr prompts check`)")
    except ValueError as exc:
        fail(f"audio build: {root / audio.MANIFEST} is not valid JSON ({exc})")

    manifest: dict[str, dict[str, dict[str, str]]] = {lang: {} for lang in LANGUAGES}
    todo: list[tuple[str, audio.Spoken, str]] = []
    problems: list[str] = []
    for lang, items in wanted.items():
        for item in items:
            file = audio.audio_file(lang, accents[lang], item.line.text, item.line.slow)
            entry = {"hash": Path(file).stem, "file": file}
            known = old[lang].get(item.key)
            if (root / file).is_file():
                manifest[lang][item.key] = entry
                if known != entry:
                    problems.append(f"unlisted {lang}/{item.key}: audio exists, not in manifest")
                continue
            todo.append((lang, item, file))
            problems.append(f"{'stale' if known else 'missing'} {lang}/{item.key}")
    if check:
        for problem in problems:
            click.echo(problem)
        if problems:
            fail(f"{len(problems)} prompt(s) need `ivr audio build`")
        click.echo("all prompt audio is up to date")
        return

    rendered = 0
    try:
        for lang, item, file in tqdm(todo, desc="Rendering", unit="prompt", disable=None):
            audio.write_atomic(
                root / file, render(item.line.text, lang, accents[lang], item.line.slow)
            )
            manifest[lang][item.key] = {"hash": Path(file).stem, "file": file}
            rendered += 1
    except (gTTSError, requests.RequestException) as exc:
        # Keep what this run rendered; entries not yet rendered keep their old (stale) audio,
        # which is never played because its hash no longer matches the text.
        for lang, item, _file in todo:
            known = old[lang].get(item.key)
            if item.key not in manifest[lang] and known and (root / known["file"]).is_file():
                manifest[lang][item.key] = known
        if rendered:
            audio.write_manifest(root, manifest)
        message = " ".join(str(exc).split())
        fail(f"audio build failed after {rendered} of {len(todo)} file(s): {message}")
    audio.write_manifest(root, manifest)
    total = sum(map(len, manifest.values()))
    click.echo(f"rendered {rendered} file(s); {total} prompts have audio")
    if prune:
        used = {entry["file"] for entries in manifest.values() for entry in entries.values()}
        removed = 0
        for lang in LANGUAGES:
            for path in sorted((root / lang).glob("*.mp3")) if (root / lang).is_dir() else []:
                if f"{lang}/{path.name}" not in used:
                    path.unlink()
                    removed += 1
        click.echo(f"pruned {removed} unused file(s)")


@click.group("prompts")
def prompts_group() -> None:
    """Prompt files."""


@prompts_group.command("check")
@with_appcontext
def check_command() -> None:
    """Check every prompt in both languages; exit 1 on errors (warnings are only printed)."""
    from ivr.calls.hours import zone_prompt
    from ivr.devtools.promptcheck import Problem, approvals, check, late_person, sms_segments
    from ivr.devtools.timing import timings

    root = Path(settings().prompts_dir)
    for count in sms_segments(root):
        click.echo(str(count))
    problems = check(root)
    zone = zone_prompt(settings().office_timezone)
    problems += [
        Problem(
            True,
            f"{lang}/{zone}.txt",
            "missing: it names OFFICE_TIMEZONE when the office hours are said",
        )
        for lang in LANGUAGES
        if not (root / lang / f"{zone}.txt").is_file()
    ]
    # What an edit costs a caller (see ivr/devtools/timing.py); "press 0" too late is an error.
    figures: dict[str, dict[str, float] | str] = {}
    if not any(p.error for p in problems):
        for lang in LANGUAGES:
            try:
                found = timings(lang)
            except (PromptError, LookupError) as exc:
                figures[lang] = f"no timings ({exc})"
                continue
            figures[lang] = found
            problems += late_person(lang, found)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(1 for p in problems if p.error)
    marked = approvals(root)
    for approval in marked:
        click.echo(str(approval))
    click.echo(
        f"{errors} error(s), {len(problems) - errors} warning(s), "
        f"{len(marked)} line(s) awaiting the firm's approval"
    )
    for lang, measured in figures.items():
        if isinstance(measured, str):
            click.echo(f"{lang}: {measured}")
        else:
            click.echo(
                f"{lang}: " + ", ".join(f"{name} {value:.1f} s" for name, value in measured.items())
            )
    if errors:
        sys.exit(1)


@click.command("call")
@click.option(
    "--from",
    "from_number",
    default="+13125550123",
    show_default=True,
    help="The caller's number (Anonymous for a withheld number).",
)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Choose this language at the greeting without typing it.",
)
@click.option(
    "--yes",
    is_flag=True,
    help="Call even when DATABASE_URL is not SQLite (stores real callback requests).",
)
@click.pass_context
def call_command(ctx: click.Context, from_number: str, lang: str | None, yes: bool) -> None:
    """Simulate a call in the terminal: type keys, speech ("..."), or Enter for silence.

    Staff alerts are off during the call. The call stores what it leaves (callback requests) in
    the app's database, so a database other than SQLite needs --yes.
    """
    from ivr.db import db
    from ivr.devtools.simulator import Simulator

    # No app context around the call: each webhook gets its own, as in production (the prompt
    # trace lives in `g`, which would otherwise pile up across requests).
    app = ctx.ensure_object(ScriptInfo).load_app()
    with app.app_context():
        url = db.engine.url  # the engine the app really uses; building it does not connect
    if url.get_backend_name() != "sqlite":
        backend, host = url.get_backend_name(), url.host or "localhost"
        where = f"{backend} database {url.database or ''} on {host}"
        if not yes:
            fail(
                f"ivr call: DATABASE_URL is a {where}, not a local SQLite file. A simulated call "
                "creates real callback requests there, which staff will see and may call back. "
                "Run it against SQLite (e.g. DATABASE_URL=sqlite:///call-test.sqlite3 after "
                "`ivr db upgrade`), or pass --yes if that is what you want."
            )
        click.echo(f"Warning: this call stores real callback requests in the {where}.", err=True)
    # The simulated call never leaves this process: plain http, as with `ivr run`, even where the
    # app otherwise redirects to https (no debug, e.g. `heroku run ivr call --yes`).
    app.config["HTTPS_ONLY"] = False
    Simulator(app, from_number=from_number, lang=lang).run()
