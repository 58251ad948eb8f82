"""Prompt edits are heard on the next request of a running app, without a restart."""

from __future__ import annotations

from ivr.calls.prompts import Prompts
from ivr.devtools.emulator import Call

from .conftest import TOKEN


def test_an_edit_is_heard_by_the_next_call(client, prompts_dir):
    # Issue 23: "press 0" comes first while the office is open, then the disclaimer.
    edited = f"{Prompts(prompts_dir).text('es', 'firm_first')} Información general, nada más."
    first = Call(client, TOKEN)
    first.answer()
    first.press("2")
    assert not first.heard().startswith(edited)
    (prompts_dir / "es" / "disclaimer.txt").write_text(
        "Información general, nada más.\n", encoding="utf-8"
    )
    second = Call(client, TOKEN)
    second.answer()
    second.press("2")
    assert second.heard().startswith(edited)


def test_an_edited_menu_option_is_heard_mid_call(call, prompts_dir):
    """The menu is built from the files on every request, also the one a caller repeats."""
    call.answer()
    call.press("1")
    (prompts_dir / "en" / "menu_intro.txt").write_text("Edited menu.\n", encoding="utf-8")
    (prompts_dir / "en" / "topics" / "6-visits.txt").write_text(
        "visiting hours\n\nVisits.\n", encoding="utf-8"
    )
    call.press("*")
    assert "Edited menu." in call.heard()
    assert "visiting hours" in call.heard()


def test_filled_lines_follow_their_template_and_fields(prompts_dir):
    prompts = Prompts(prompts_dir)
    first = prompts.line("en", "menu_option", label="bond hearings", key=2)
    assert "bond hearings" in first.text and "2" in first.text
    assert "appeals" in prompts.line("en", "menu_option", label="appeals", key=3).text
    (prompts_dir / "en" / "menu_option.txt").write_text("Key {key}: {label}.", encoding="utf-8")
    assert prompts.line("en", "menu_option", label="bond hearings", key=2).text == (
        "Key 2: bond hearings."
    )
