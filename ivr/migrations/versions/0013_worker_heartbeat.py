"""worker heartbeats and delay incidents: a stalled worker is seen (issue 19 point 3)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 07:00:00

`worker_heartbeats`: one row per worker process, its last beat. `worker_incidents`: one row per
stretch of delayed background work; `open_slot` is 1 while it lasts and NULL after, and its unique
index lets only one process open an incident (and so write its log line). See
ivr/background/health.py.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker"),
    )
    op.create_table(
        "worker_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("open_slot", sa.Integer(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cause", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_slot"),
    )


def downgrade() -> None:
    op.drop_table("worker_incidents")
    op.drop_table("worker_heartbeats")
