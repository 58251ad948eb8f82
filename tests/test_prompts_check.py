"""`ivr prompts check` on the real prompts, and on broken copies of them."""

from __future__ import annotations

import pytest

from ivr import PROJECT_ROOT
from ivr.commands.audio import prompts_group
from ivr.devtools.promptcheck import check


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


ONE_TO_SEVEN = "topics are numbered 1 to 6"  # 7 hears a topic again more slowly (issue 13)


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("7-more-help.txt", f"7 is the key for hearing a topic again more slowly: {ONE_TO_SEVEN}"),
        ("8-more-help.txt", f"8 is the key for leaving a callback request: {ONE_TO_SEVEN}"),
        ("9-more-help.txt", f"9 is the key for the main menu: {ONE_TO_SEVEN}"),
        ("0-more-help.txt", f"0 is the key for the firm: {ONE_TO_SEVEN}"),
        ("10-more-help.txt", f"10 cannot be pressed as one key: {ONE_TO_SEVEN}"),
        ("01-more-help.txt", f"01 cannot be pressed as one key: {ONE_TO_SEVEN}"),
        ("more-help.txt", "topic files are named <number>-<slug>.txt"),
    ],
)
def test_topic_numbers_must_be_free_single_keys(run_check, prompts_dir, file, message):
    """Menus take one key; 8, 9 and 0 are callback, main menu and the firm (and * and #)."""
    for lang in ("en", "es"):
        (prompts_dir / lang / "topics" / file).write_text("more help\n\nSome words.\n")
    result = run_check()
    assert result.exit_code == 1
    for lang in ("en", "es"):
        assert f"error: {lang}/topics/{file}: {message}" in result.output, result.output
    assert "2 error(s), 0 warning(s)" in result.output


def test_six_is_the_last_topic_key(run_check, prompts_dir):
    for lang in ("en", "es"):
        (prompts_dir / lang / "topics" / "6-more-help.txt").write_text("more\n\nSome words.\n")
    result = run_check()
    assert result.exit_code == 0, result.output


def test_two_topics_on_one_key(run_check, prompts_dir):
    for lang in ("en", "es"):
        (prompts_dir / lang / "topics" / "1-also-one.txt").write_text("also\n\nSome words.\n")
    result = run_check()
    assert result.exit_code == 1
    assert "error: es/topics/1-also-one.txt: key 1 is also used by es/topics/1-why-denied.txt" in (
        result.output
    )
    assert "error: en/topics/1-why-denied.txt: key 1 is also used by en/topics/1-also-one.txt" in (
        result.output
    )
