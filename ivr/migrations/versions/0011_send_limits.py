"""send limits: marks of the texts and staff alerts sent, for the caps of issue 20

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:30:00

`send_limits` keeps one row per reference text queued and per staff alert sent or held back for
the hour's digest, keyed by a keyed hash of the number (never the number), so every process
counts the same: one text per number per 24 hours, TEXTS_PER_DAY in all, ALERTS_PER_HOUR per
recipient (`ivr/messaging/caps.py`). Rows older than two days are deleted as new ones come.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_limits")),
    )
    op.create_index(
        "ix_send_limits_kind_subject_at",
        "send_limits",
        ["kind", "subject", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_send_limits_created_at"), "send_limits", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_send_limits_created_at"), table_name="send_limits")
    op.drop_index("ix_send_limits_kind_subject_at", table_name="send_limits")
    op.drop_table("send_limits")
