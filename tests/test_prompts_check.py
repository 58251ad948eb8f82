"""`ivr prompts check` on the real prompts, and on broken copies of them."""

from __future__ import annotations

import pytest

from ivr import PROJECT_ROOT
from ivr.audio_cli import prompts_group
from ivr.promptcheck import check


def test_the_real_prompts_pass():
    """A missing translation, an empty prompt or a bad character in prompts/ fails here."""
    problems = check(PROJECT_ROOT / "prompts")
    assert [str(p) for p in problems] == []


@pytest.fixture
def run_check(app):
    runner = app.test_cli_runner()
    return lambda: runner.invoke(prompts_group, ["check"])


def test_clean_copy_exits_zero(run_check):
    result = run_check()
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output


def test_missing_translation(run_check, prompts_dir):
    (prompts_dir / "es/goodbye.txt").unlink()
    (prompts_dir / "en/topics/6-new-topic.txt").write_text("a new topic\n\nSome words.\n")
    result = run_check()
    assert result.exit_code == 1
    assert "error: es/goodbye.txt: missing (exists in en/: translate it)" in result.output
    assert "error: es/topics/6-new-topic.txt: missing" in result.output


def test_empty_prompt_and_topic_without_body(run_check, prompts_dir):
    (prompts_dir / "en/welcome.txt").write_text("  \n")
    (prompts_dir / "es/topics/3-appeal.txt").write_text("apelación\n")
    result = run_check()
    assert result.exit_code == 1
    assert "error: en/welcome.txt: empty" in result.output
    assert "error: es/topics/3-appeal.txt: needs a label line" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Press 1 <now>.", "'<' or '>'"),
        ("Bond & hearing.", "'&'"),
        ("Visit https://example.org for more.", "a web address"),
        ("Hello\x07 there.", "control characters U+0007"),
        ("Press {key} now.", "placeholder {key} is never filled (no placeholders here)"),
        ("Press { now.", "unbalanced braces"),
    ],
)
def test_text_that_breaks_twiml_or_speech(run_check, prompts_dir, text, message):
    (prompts_dir / "es/goodbye.txt").write_text(text, encoding="utf-8")
    result = run_check()
    assert result.exit_code == 1
    assert f"error: es/goodbye.txt: contains {message}" in result.output or (
        f"error: es/goodbye.txt: {message}" in result.output
    ), result.output


def test_menu_option_placeholders(run_check, prompts_dir):
    (prompts_dir / "en/menu_option.txt").write_text("To hear {topic}, press {key}.")
    (prompts_dir / "es/menu_option.txt").write_text("Para escuchar {label}.")
    result = run_check()
    assert result.exit_code == 1
    assert "en/menu_option.txt: placeholder {topic} is never filled ({label}, {key} here)" in (
        result.output
    )
    assert "error: es/menu_option.txt: must contain {key}" in result.output


def test_long_prompt_is_a_warning(run_check, prompts_dir):
    (prompts_dir / "en/topics/2-bond-hearing.txt").write_text(
        "bond hearings\n\n" + "word " * 200, encoding="utf-8"
    )
    result = run_check()
    assert result.exit_code == 0, result.output
    assert "warning: en/topics/2-bond-hearing.txt: about 80 s to listen to" in result.output
    assert "0 error(s), 1 warning(s)" in result.output
