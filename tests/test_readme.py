"""The README stays true: every setting is documented, and the quick start names real scripts."""

from __future__ import annotations

import re

from ivr import PROJECT_ROOT
from ivr.settings import SETTINGS

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in README]
    assert missing == []


def test_quick_start_commands_exist_and_ci_runs_the_same_test_command():
    commands = re.findall(r"^bash (scripts/\w+)", README, flags=re.M)
    assert commands == ["scripts/run", "scripts/test"]
    for script in commands:
        assert (PROJECT_ROOT / script).is_file()
    assert "bash scripts/test" in (PROJECT_ROOT / ".ci" / "run").read_text()
