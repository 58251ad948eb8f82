"""background jobs and reserved references

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 02:30:00

`jobs` is the durable queue of background work (recording copies and deletions, staff alerts);
it replaces the alert outbox `staff_alerts`, whose unsent alerts become jobs here.
`reserved_references` hands each process references it may give callers while the database is
down; every reference already given is reserved here so no new one repeats it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    jobs = op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "run_at"])
    op.create_table(
        "reserved_references",
        sa.Column("reference", sa.String(length=12), nullable=False),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_reserved_references")),
    )
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "INSERT INTO reserved_references (reference, reserved_at) "
            "SELECT reference, created_at FROM callback_requests"
        )
    )
    # Unsent alerts move to the queue, due at once; sent and failed ones were a log.
    alerts = connection.execute(
        sa.text(
            "SELECT request_id, channel, recipient FROM staff_alerts "
            "WHERE status IN ('pending', 'sending')"
        )
    ).all()
    if alerts:
        import datetime as dt
        import json

        now_value = dt.datetime.now(dt.UTC)
        op.bulk_insert(
            jobs,
            [
                {
                    "kind": f"alert-{channel}",
                    "key": f"alert:{request_id}:{channel}:{recipient}",
                    "payload": json.dumps(
                        {"recipient": recipient, "request_id": request_id}, sort_keys=True
                    ),
                    "status": "pending",
                    "attempts": 0,
                    "max_attempts": 5,
                    "run_at": now_value,
                    "created_at": now_value,
                }
                for request_id, channel, recipient in alerts
            ],
        )
    op.drop_index(op.f("ix_staff_alerts_request_id"), table_name="staff_alerts")
    op.drop_index("ix_staff_alerts_due", table_name="staff_alerts")
    op.drop_table("staff_alerts")


def downgrade() -> None:
    op.create_table(
        "staff_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["callback_requests.id"],
            name=op.f("fk_staff_alerts_request_id_callback_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_alerts")),
        sa.UniqueConstraint(
            "request_id", "channel", "recipient", name=op.f("uq_staff_alerts_request_id")
        ),
    )
    op.create_index("ix_staff_alerts_due", "staff_alerts", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_staff_alerts_request_id"), "staff_alerts", ["request_id"])
    op.drop_table("reserved_references")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
