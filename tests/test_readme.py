"""The README stays true: every setting is documented, and the quick start names real scripts."""

from __future__ import annotations

import re

from ivr import PROJECT_ROOT
from ivr.settings import Settings, markdown_table

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in README]
    assert missing == []


def test_the_settings_table_is_the_one_the_code_prints():
    """Regenerate it with `ivr settings --markdown` after changing a setting."""
    table = README.split("checks it -->\n", 1)[1].split("<!-- end of settings table -->")[0]
    assert table == markdown_table()


def test_quick_start_commands_exist_and_ci_runs_the_same_test_command():
    commands = re.findall(r"^bash (scripts/\w+)", README, flags=re.M)
    assert commands == ["scripts/run", "scripts/test"]
    for script in commands:
        assert (PROJECT_ROOT / script).is_file()
    assert "bash scripts/test" in (PROJECT_ROOT / ".ci" / "run").read_text()
