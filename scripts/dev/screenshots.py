"""Take the dashboard's screenshots for docs/staff.md: the demo queue at laptop and phone width.

    .venv/bin/python scripts/dev/screenshots.py

Runs the browser test that measures the two layouts (tests/test_browser_queue.py, which builds
a made-up queue of 12 requests) with STAFF_SCREENSHOTS pointing at docs/img, so the pictures in
the docs are the pages the tests check, not a separate mock-up. Needs Chromium at
/usr/bin/chromium, as the browser tests do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/test_browser_queue.py::test_laptop_shows_eight_rows_and_a_phone_the_first_request"


def main() -> int:
    env = {**os.environ, "STAFF_SCREENSHOTS": str(ROOT / "docs" / "img")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode == 0:
        print("docs/img/staff-laptop.png and docs/img/staff-phone.png written")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
