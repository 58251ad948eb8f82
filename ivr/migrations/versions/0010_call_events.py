"""call events: anonymous steps of calls, for the Reports page (issue 24)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:00:00

`call_events` holds each step of a call without the caller (see ivr/reports/events.py): a
keyed hash of the call only until it settles, the office's day and hour, and whether the step was
the call's first of its kind and its latest. Indexed by day and kind and the columns the figures
group by, so a period is read from the index alone; `callback_requests` gains an index on
`created_at`, as the page reads a period's requests.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_key", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=True),
        sa.Column("is_first", sa.Boolean(), nullable=False),
        sa.Column("is_last", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_events")),
    )
    op.create_index(op.f("ix_call_events_call_key"), "call_events", ["call_key"])
    op.create_index(
        "ix_call_events_day_kind",
        "call_events",
        ["day", "kind", "language", "is_first", "is_last", "hour", "detail"],
    )
    op.create_index(op.f("ix_callback_requests_created_at"), "callback_requests", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_callback_requests_created_at"), table_name="callback_requests")
    op.drop_index("ix_call_events_day_kind", table_name="call_events")
    op.drop_index(op.f("ix_call_events_call_key"), table_name="call_events")
    op.drop_table("call_events")
