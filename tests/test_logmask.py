"""No personal data in logs (issue 22): every line has phone numbers cut to their last two digits
and A-numbers removed, whoever logs it (a job's failure, a traceback, a library), while CallSids,
times and Fernet tokens stay readable."""

from __future__ import annotations

import logging

from ivr.commands.audit import audit_group
from ivr.edge import logmask


def test_numbers_are_masked_and_a_numbers_removed():
    line = (
        "job 3 reference-sms {'request_id': 1, 'to': '+13125557771'} failed: Twilio 21215: "
        "cannot call +1 773 555 7772 or (312) 555-0142; A-number 087-654-321 / 087654321; "
        "call CA0123456789abcdef0123456789abcd at 2026-12-02 06:10:00 took 1200 ms"
    )
    masked = logmask.mask(line)
    for number in ("3125557771", "555 7772", "555-0142", "654-321", "87654321"):
        assert number not in masked
    assert "…71" in masked and "…72" in masked and "…42" in masked
    assert "[A-number?]" in masked and "87" not in masked.split("A-number ")[1][:12]
    assert "CA0123456789abcdef0123456789abcd" in masked
    assert "2026-12-02 06:10:00" in masked and "1200 ms" in masked


def test_every_logger_and_traceback_goes_through_it(app, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("some.library").warning("sent to %s", "+13125557771")
    try:
        raise ValueError("refused +17735557772")
    except ValueError:
        logging.getLogger("ivr.background.jobs").exception("job failed for %s", "087654321")
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "5557771" not in text and "5557772" not in text and "87654321" not in text
    assert "sent to …71" in text and "refused …72" in text


def test_audit_grants_give_the_app_role_only_select_and_insert_on_the_log(app):
    result = app.test_cli_runner().invoke(audit_group, ["grants", "hotline_app"])
    assert result.exit_code == 0
    assert "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM hotline_app;" in result.output
    bad = app.test_cli_runner().invoke(audit_group, ["grants", "x; DROP TABLE audit_log"])
    assert bad.exit_code != 0
