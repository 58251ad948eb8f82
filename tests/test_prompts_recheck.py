"""Prompt edits are heard without a restart, while a web process checks each file at most once a
`PROMPT_RECHECK_SECONDS` window instead of on every line of every webhook."""

from __future__ import annotations

import os
import time

import pytest

from ivr.emulator import Call
from ivr.prompts import Prompts
from ivr.settings import SettingsError

from .conftest import TOKEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def edit(path, text: str) -> None:
    """Write `text` with a modification time certainly different from the file's last one."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_a_file_is_checked_once_a_window(prompts_dir):
    clock = Clock()
    prompts = Prompts(prompts_dir, recheck=1.0, clock=clock)
    original = prompts.text("en", "welcome")
    edit(prompts_dir / "en" / "welcome.txt", "Edited welcome.")
    clock.now += 0.5
    assert prompts.text("en", "welcome") == original  # not checked again yet
    clock.now += 0.6
    assert prompts.text("en", "welcome") == "Edited welcome."
    # Within the window the file is not even looked at: a removed file still reads from cache.
    (prompts_dir / "en" / "welcome.txt").unlink()
    clock.now += 0.5
    assert prompts.text("en", "welcome") == "Edited welcome."


def test_topics_are_checked_once_a_window(prompts_dir):
    clock = Clock()
    prompts = Prompts(prompts_dir, recheck=1.0, clock=clock)
    numbers = [t.number for t in prompts.topics("en")]
    (prompts_dir / "en" / "topics" / "6-visits.txt").write_text("Visits\n\nVisiting hours.\n")
    edit(prompts_dir / "en" / "topics" / "1-why-denied.txt", "Why\n\nEdited body.\n")
    clock.now += 0.9
    assert [t.number for t in prompts.topics("en")] == numbers
    clock.now += 0.2
    topics = prompts.topics("en")
    assert [t.number for t in topics] == [*numbers, 6]
    assert topics[0].body == "Edited body."


def test_recheck_zero_checks_every_read(prompts_dir):
    prompts = Prompts(prompts_dir, clock=Clock())  # the clock never moves
    prompts.text("es", "welcome")
    edit(prompts_dir / "es" / "welcome.txt", "Bienvenida editada.")
    assert prompts.text("es", "welcome") == "Bienvenida editada."


def test_the_running_app_hears_an_edit_after_the_window(make_app, prompts_dir):
    app = make_app(PROMPT_RECHECK_SECONDS="0.3")
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press("2")
    edit(prompts_dir / "es" / "disclaimer.txt", "Información general, nada más.\n")
    time.sleep(0.7)  # two windows: a menu kept from lines checked just before (Prompts.kept)
    second = Call(app.test_client(), TOKEN)
    second.answer()
    second.press("2")
    assert second.heard().startswith("Información general, nada más.")


def test_the_running_app_keeps_a_prompt_within_the_window(make_app, prompts_dir):
    """The setting reaches the app: with a long window an edit is not looked for yet."""
    app = make_app(PROMPT_RECHECK_SECONDS="3600")
    first = Call(app.test_client(), TOKEN)
    first.answer()
    first.press("2")
    before = first.heard()
    edit(prompts_dir / "es" / "disclaimer.txt", "Información general, nada más.\n")
    second = Call(app.test_client(), TOKEN)
    second.answer()
    second.press("2")
    assert second.heard() == before


def test_recheck_setting_is_checked_at_start_up(make_app):
    for bad in ("-1", "soon", "nan", "86400"):
        with pytest.raises(SettingsError, match="PROMPT_RECHECK_SECONDS"):
            make_app(PROMPT_RECHECK_SECONDS=bad)


def test_filled_lines_follow_their_template_and_fields(prompts_dir):
    prompts = Prompts(prompts_dir)
    first = prompts.line("en", "menu_option", label="bond hearings", key=2)
    assert "bond hearings" in first.text and "2" in first.text
    assert prompts.line("en", "menu_option", label="bond hearings", key=2) is first  # kept
    assert "appeals" in prompts.line("en", "menu_option", label="appeals", key=3).text
    edit(prompts_dir / "en" / "menu_option.txt", "Key {key}: {label}.")
    assert prompts.line("en", "menu_option", label="bond hearings", key=2).text == (
        "Key 2: bond hearings."
    )


def test_kept_lines_are_rebuilt_after_the_window(prompts_dir):
    clock = Clock()
    prompts = Prompts(prompts_dir, recheck=1.0, clock=clock)
    builds = []

    def build():
        builds.append(clock.now)
        return [prompts.line("en", "menu_intro")]

    first = prompts.kept(("menu", "en"), build)
    first.append("a caller's list may be changed")  # a copy: the kept lines are not
    edit(prompts_dir / "en" / "menu_intro.txt", "Edited menu.")
    clock.now += 0.5
    assert prompts.kept(("menu", "en"), build) == first[:1] and len(builds) == 1
    assert prompts.kept(("menu", "es"), build) and len(builds) == 2  # another key: built
    clock.now += 0.6
    assert prompts.kept(("menu", "en"), build)[0].text == "Edited menu."
    assert len(builds) == 3
