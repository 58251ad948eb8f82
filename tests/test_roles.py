"""Roles: every staff route, walked as staff and as admin; the wrong role gets 403.

An admin may do everything staff do, so "the wrong role" is staff on an admin route. The walk
comes from the app's URL map, so a route added later is walked too, and one nobody gave a role
in roles.py is refused to everyone.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.commands import main
from ivr.db import db
from ivr.staff import roles
from tests.conftest import STAFF_PASSWORD, StaffAuth, csrf_token


@pytest.fixture
def accounts(app, staff_user):
    """`ana` (admin, the first account) and `bo` (staff)."""
    with app.app_context():
        db.session.add(
            StaffUser(
                username="bo", role="staff", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    return {"admin": "ana", "staff": "bo"}


def staff_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every staff route, ids filled with that of a real request."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("staff."):
            url = re.sub(r"<(?:int:)?[a-z_]+>", "1", rule.rule)
            found += [
                (rule.endpoint, method, url)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
            ]
    return found


def test_every_staff_route_has_a_role(app):
    endpoints = {endpoint for endpoint, _, _ in staff_routes(app)}
    assert endpoints - roles.REQUIRED.keys() == set()
    assert {"staff.requests.export", "staff.admin.audit", "staff.admin.delete"} <= {
        e for e, role in roles.REQUIRED.items() if role == roles.ADMIN
    }


def test_every_staff_route_as_each_role(app, accounts, make_request):
    make_request(note="walked", recording_sid="RE1")
    walked = []
    clients = {role: app.test_client() for role in accounts}
    for role, username in accounts.items():
        assert StaffAuth(clients[role]).login(username).status_code == 302
    for endpoint, method, url in staff_routes(app):
        for role, username in accounts.items():
            client = clients[role]
            data = {"csrf_token": csrf_token(client, "/staff/")}
            if endpoint == "staff.requests.update":
                data.update(status="handled", note="walked")
            response = client.open(url, method=method, data=data if method == "POST" else None)
            needed = roles.REQUIRED[endpoint]
            if needed == roles.ADMIN and role == "staff":
                assert response.status_code == 403, (role, method, url)
            else:
                assert response.status_code not in (401, 403), (role, method, url)
                assert "/staff/login?" not in response.headers.get("Location", ""), url
            walked.append((role, endpoint))
            # Logging out, and resetting two factors (of account 1, ana), end the session.
            if endpoint == "staff.auth.logout" or (
                endpoint == "staff.admin.reset_two_factors" and role == "admin"
            ):
                assert StaffAuth(client).login(username).status_code == 302
    assert ("staff", "staff.requests.export") in walked and ("admin", "staff.admin.audit") in walked


def test_staff_do_not_see_admin_links(client, accounts, make_request):
    request_id = make_request()
    StaffAuth(client).login("bo")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "Export CSV" not in page and "Audit log" not in page
    assert "Delete personal data now" not in page
    StaffAuth(client).logout()
    StaffAuth(client).login("ana")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "Audit log" in page and "Delete personal data now" in page


def test_cli_first_account_is_admin_then_staff_unless_asked(app, runner):
    for name in ("first", "second"):
        result = runner.invoke(main, ["staff", "add", name], input="a long password\n")
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["staff", "add", "third", "--admin"], input="a long password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        found = dict(db.session.execute(sa.select(StaffUser.username, StaffUser.role)).all())
    assert found == {"first": "admin", "second": "staff", "third": "admin"}
    result = runner.invoke(main, ["staff", "role", "second", "admin"])
    assert result.exit_code == 0 and "second is now admin" in result.output
    result = runner.invoke(main, ["staff", "role", "second", "owner"])
    assert result.exit_code == 2 and "owner" in result.output  # a clear answer, no traceback
    assert "second\tadmin" in runner.invoke(main, ["staff", "list"]).output


def test_migration_makes_the_existing_first_account_admin(make_app):
    from ivr.migrate import upgrade

    app = make_app()
    with app.app_context(), db.engine.begin() as connection:
        # Back to before roles, with two accounts made then.
        from alembic import command

        from ivr.migrate import alembic_config

        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
        for name in ("old-first", "old-second"):
            connection.execute(
                sa.text(
                    "INSERT INTO staff_users (username, password_hash, session_token, created_at) "
                    "VALUES (:name, 'x', :name, CURRENT_TIMESTAMP)"
                ),
                {"name": name},
            )
    upgrade(app)
    with app.app_context():
        found = dict(db.session.execute(sa.select(StaffUser.username, StaffUser.role)).all())
    assert found == {"old-first": "admin", "old-second": "staff"}
