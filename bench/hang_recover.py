"""How long after Twilio's API and the mail server answer again until all due work is done.

Not a test (no timing assertions in tests): `python bench/hang_recover.py [HANG_SECONDS]`.
Eight requests with recordings are stored (each: an alert SMS, an alert e-mail, a copy and then a
deletion at Twilio); the worker runs with the default settings (JOB_CONCURRENCY, timeouts,
back-off) while Twilio (through HTTPS_PROXY) and SMTP hang on loopback sockets that accept and
never answer; after HANG_SECONDS, Twilio answers (faked with `responses`) and the mail socket relays
to a real SMTP server. Prints the seconds from then until every job is done.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import responses
import sqlalchemy as sa
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr import PROJECT_ROOT, create_app  # noqa: E402
from ivr.background import jobs  # noqa: E402
from ivr.db import db  # noqa: E402
from ivr.migrate import upgrade  # noqa: E402
from ivr.requests import store  # noqa: E402
from tests.conftest import base_config  # noqa: E402
from tests.test_alerts import Inbox, free_port  # noqa: E402
from tests.test_hanging_api import API, Endpoint  # noqa: E402

REQUESTS = 8


def main() -> None:
    hang = float(sys.argv[1]) if len(sys.argv) > 1 else 45
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(PROJECT_ROOT / "prompts", tmp / "prompts")
    for name in ("NO_PROXY", "no_proxy"):
        os.environ.pop(name, None)
    proxy, mail = Endpoint(), Endpoint()
    os.environ["HTTPS_PROXY"] = f"http://127.0.0.1:{proxy.port}"
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    app = create_app(
        base_config(
            tmp,
            ALERT_SMS_TO="+13125550199",
            ALERT_SMS_FROM="+13125550177",
            ALERT_EMAIL_TO="desk@example.org",
            SMTP_URL=f"smtp://127.0.0.1:{mail.port}",
            PUBLIC_URL="https://hotline.example.org",
            ALERT_GRACE_SECONDS="0",
        )
    )
    upgrade(app)
    with app.app_context():
        for n in range(REQUESTS):
            store.save(
                f"CA{n:032x}",
                language="es",
                step="complete",
                caller_number="+13125550123",
                callback_number="+13125550123",
                recording_sid=f"RE{n:032x}",
                recording_url=f"{API}/Recordings/RE{n:032x}",
                recording_duration=20,
            )
    worker = jobs.Worker(app)
    worker.start()
    time.sleep(hang)
    twilio = responses.RequestsMock(assert_all_requests_are_fired=False)
    twilio.start()
    twilio.post(f"{API}/Messages.json", status=201, json={"sid": "SM" + "1" * 32})
    twilio.get(re.compile(rf"{re.escape(API)}/Recordings/RE\w+\.mp3"), body=b"ID3")
    twilio.delete(re.compile(rf"{re.escape(API)}/Recordings/RE\w+\.json"), status=204)
    mail.answer(("127.0.0.1", smtp.port))
    answered = time.monotonic()
    while True:
        with app.app_context():
            rows = db.session.execute(sa.select(jobs.Job.kind, jobs.Job.status)).all()
            db.session.commit()
        done = len(rows) == 4 * REQUESTS and all(status == "done" for _, status in rows)
        if done or time.monotonic() - answered > 900:
            break
        time.sleep(0.5)
    took = time.monotonic() - answered
    texts = sum("Messages" in call.request.url for call in twilio.calls)
    print(
        f"hang {hang:.0f} s: {'all' if done else 'NOT all'} {len(rows)} jobs done {took:.0f} s "
        f"after the API answered again; {texts} texts, {len(inbox.messages)} e-mails; "
        f"{dict(Counter(f'{kind} {status}' for kind, status in rows))}"
    )
    worker.stop.set()
    os._exit(0 if done else 1)  # abandoned sockets and threads: no orderly shutdown needed


if __name__ == "__main__":
    main()
