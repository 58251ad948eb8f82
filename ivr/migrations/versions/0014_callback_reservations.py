"""call-back reservations and their live progress (issue 21 points 1-3)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 08:40:00

`callbacks`: one row per press of Call back that took the reservation. `open_slot` is 1 while it
holds and NULL after; the unique index on (`target`, `open_slot`) lets only one person call a
request (or missed call) at a time. See ivr/requests/reservations.py.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("open_slot", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dial_status", sa.String(length=16), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["callback_requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("attempt_id"),
        sa.UniqueConstraint("target", "open_slot"),
    )
    op.create_index("ix_callbacks_request_id", "callbacks", ["request_id"])
    op.create_index("ix_callbacks_call_id", "callbacks", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_callbacks_call_id", table_name="callbacks")
    op.drop_index("ix_callbacks_request_id", table_name="callbacks")
    op.drop_table("callbacks")
