"""staff accounts, login attempts, alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:10:04.875487
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_users_username")),
    )
    op.create_table(
        "staff_login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_login_attempts")),
    )
    op.create_index(
        "ix_staff_login_attempts_lookup", "staff_login_attempts", ["username", "ip", "created_at"]
    )
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
        # One alert per request, channel and recipient: the database refuses a second.
        sa.UniqueConstraint(
            "request_id", "channel", "recipient", name=op.f("uq_staff_alerts_request_id")
        ),
    )
    op.create_index("ix_staff_alerts_due", "staff_alerts", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_staff_alerts_request_id"), "staff_alerts", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_alerts_request_id"), table_name="staff_alerts")
    op.drop_index("ix_staff_alerts_due", table_name="staff_alerts")
    op.drop_table("staff_alerts")
    op.drop_index("ix_staff_login_attempts_lookup", table_name="staff_login_attempts")
    op.drop_table("staff_login_attempts")
    op.drop_table("staff_users")
