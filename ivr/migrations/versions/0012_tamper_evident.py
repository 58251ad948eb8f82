"""tamper-evident audit log, two factors that hold, erase tombstones

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 06:10:00

- `audit_log.mac` and `audit_head`: the HMAC chain (accounts/audit.py). Entries already written
  are sealed here, in id order, with the key the app has now (AUDIT_KEY or one from SECRET_KEY).
- SQLite: a BEFORE INSERT trigger refuses an INSERT OR REPLACE over an existing entry (REPLACE
  fires no DELETE trigger), and the head row cannot be deleted. PostgreSQL: BEFORE TRUNCATE
  triggers on both tables, and the head row cannot be deleted. The roles that make the log
  append-only for the app's own database user are in the README ("Data protection").
- `staff_users`: a one-time enrolment code (its SHA-256 and when it expires), the count of wrong
  passwords and codes in a row, and when the account was locked; `totp_secret` is widened for
  its Fernet token, and secrets stored in clear are encrypted here.
- Erase means erase (requests/erasure.py): `callback_requests.erased_at`, and `erased_calls`,
  the tombstones of every call whose caller's data was erased. Requests erased before this get
  theirs here.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

REFUSE = "audit_log is append-only"


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_mac", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    with op.batch_alter_table("staff_users") as batch:
        batch.alter_column(
            "totp_secret", existing_type=sa.String(length=64), type_=sa.String(length=255)
        )
        batch.add_column(sa.Column("enrol_code_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("enrol_code_expires", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("callback_requests") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "erased_calls",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_sid", name=op.f("pk_erased_calls")),
    )
    # Requests erased before: no caller number, no recording, no copy left.
    op.execute(
        "UPDATE callback_requests SET erased_at = CURRENT_TIMESTAMP WHERE caller_number = '' "
        "AND callback_number IS NULL AND a_number IS NULL AND recording_url IS NULL "
        "AND audio_type IS NULL AND recording_sid IS NOT NULL"
    )
    op.execute(
        "INSERT INTO erased_calls (call_sid, erased_at) SELECT call_sid, erased_at "
        "FROM callback_requests WHERE erased_at IS NOT NULL"
    )
    _seal_and_encrypt()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION audit_head_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit_head cannot be deleted'; END $$""")
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()"
        )
        op.execute(
            "CREATE TRIGGER audit_head_no_delete BEFORE DELETE OR TRUNCATE ON audit_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_head_refuse()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
            "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSE}'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
            "BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END"
        )


def _seal_and_encrypt() -> None:
    """Seal existing entries and encrypt existing TOTP secrets with the app's keys (the app's
    context is there when `ivr db upgrade` runs; plain `alembic` has none: then nothing exists
    to seal, as on a new database, or `ivr audit verify` names the first unsealed entry)."""
    from flask import has_app_context

    if not has_app_context():
        return
    from ivr.accounts import audit
    from ivr.edge import keys

    bind = op.get_bind()
    key = keys.audit_key()
    log = sa.table(
        "audit_log",
        *(
            sa.column(name)
            for name in (
                "id",
                "created_at",
                "actor",
                "action",
                "request_id",
                "reference",
                "detail",
                "ip",
                "mac",
            )
        ),
    )
    previous, count, last_id = "", 0, 0
    # Sealed in memory, written after the triggers allow it: UPDATE is refused on audit_log.
    sealed = []
    for row in bind.execute(sa.select(log).order_by(log.c.id)).mappings():
        entry = audit.AuditEntry(**{k: v for k, v in row.items() if k != "mac"})
        if isinstance(entry.created_at, str):
            entry.created_at = dt.datetime.fromisoformat(entry.created_at)
        previous = audit.seal(key, previous, entry)
        sealed.append((row["id"], previous))
        count, last_id = count + 1, row["id"]
    if sealed:
        _write_seals(bind, sealed)
    bind.execute(
        sa.text(
            "INSERT INTO audit_head (id, count, last_id, last_mac, mac) "
            "VALUES (1, :count, :last_id, :last_mac, :mac)"
        ),
        {
            "count": count,
            "last_id": last_id,
            "last_mac": previous,
            "mac": audit.head_mac(key, count, last_id, previous) if count else "",
        },
    )
    users = sa.table("staff_users", sa.column("id"), sa.column("totp_secret"))
    for user_id, secret in bind.execute(
        sa.select(users.c.id, users.c.totp_secret).where(users.c.totp_secret.is_not(None))
    ):
        if not secret.startswith("gAAAA"):  # a Fernet token's version byte, base64
            bind.execute(
                users.update().where(users.c.id == user_id).values(totp_secret=keys.encrypt(secret))
            )


def _write_seals(bind, sealed: list[tuple[int, str]]) -> None:
    """The append-only triggers refuse UPDATE: lift them for this one write, inside the
    migration's transaction, and put them back."""
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        bind.execute(sa.text("DROP TRIGGER audit_log_no_update"))
    for entry_id, mac in sealed:
        bind.execute(
            sa.text("UPDATE audit_log SET mac = :mac WHERE id = :id"), {"mac": mac, "id": entry_id}
        )
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
    else:
        bind.execute(
            sa.text(
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSE}'); END"
            )
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_head_no_delete ON audit_head")
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION audit_head_refuse()")
    else:
        op.execute("DROP TRIGGER audit_head_no_delete")
        op.execute("DROP TRIGGER audit_log_no_replace")
    op.drop_table("erased_calls")
    with op.batch_alter_table("callback_requests") as batch:
        batch.drop_column("erased_at")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("locked_at")
        batch.drop_column("failures")
        batch.drop_column("enrol_code_expires")
        batch.drop_column("enrol_code_hash")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("mac")
