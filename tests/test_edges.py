"""The edges (issue 22, low findings): security headers on every response, the https redirect
from PUBLIC_URL only (tests/test_https.py), settings errors that never repeat a secret, staff
alerts without the family's number (tests/test_alerts.py), and scripts/run's .env and debugger."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ivr import PROJECT_ROOT, settings
from ivr.devtools.emulator import Call
from tests.conftest import TOKEN


@pytest.mark.parametrize("path", ["/", "/healthz", "/staff/login", "/no-such-page"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_webhooks_carry_them_too_and_staff_pages_are_not_stored(client):
    call = Call(client, TOKEN)
    response = call.post("/voice", CallStatus="ringing")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/staff/login").headers["Cache-Control"] == "no-store"


def test_settings_errors_never_repeat_a_secret():
    with pytest.raises(settings.SettingsError) as error:
        settings.load(
            {
                "SECRET_KEY": "short-secret-value",
                "TWILIO_AUTH_TOKEN": "t",
                "FIRM_PHONE_NUMBER": "+13125550100",
                "DATA_KEYS": "not-a-fernet-key-secret",
                "AUDIT_KEY": "tiny-audit-secret",
            }
        )
    message = str(error.value)
    assert "SECRET_KEY" in message and "DATA_KEYS" in message and "AUDIT_KEY" in message
    for secret in ("short-secret-value", "not-a-fernet-key-secret", "tiny-audit-secret"):
        assert secret not in message


def test_scripts_run_writes_env_owner_only_and_without_the_debugger(tmp_path):
    """Run the part of scripts/run that writes .env and starts the app, with stand-ins for the
    virtualenv's programs (no install, no server)."""
    script = (PROJECT_ROOT / "scripts" / "run").read_text()
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    (work / "scripts" / "run").write_text(script)
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    for name in ("python", "ivr"):
        stand_in = bin_dir / name
        stand_in.write_text(
            "#!/usr/bin/env bash\n"
            f'echo "{name} $*" >> {calls}\n'
            'if [ "$1" = "-c" ]; then echo 0123456789abcdef; fi\n'
        )
        stand_in.chmod(0o755)
    env = {**os.environ, "PORT": "5999"}
    env.pop("IVR_DEBUGGER", None)
    # (its exit status is the EXIT trap's, stopping the stand-in worker: not checked)
    subprocess.run(["bash", str(work / "scripts" / "run")], cwd=work, env=env, check=False)
    mode = Path(work / ".env").stat().st_mode & 0o777
    assert mode == 0o600
    run_line = [line for line in calls.read_text().splitlines() if line.startswith("ivr run")]
    assert run_line == ["ivr run --host 127.0.0.1 --port 5999 --no-debugger"]
