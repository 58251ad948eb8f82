"""call-backs through the hotline, request history, claims, missed calls

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:00:00

Staff get a phone number (a call-back rings it first). Each request gets an append-only history
(`request_events`) and at most one claim (`request_claims`); `call_marks` notes what a call did
(the firm did not answer, a topic heard) for the missed-calls list.
The status "called back" said only that someone had tried: such requests become "trying",
which stays in the to-do group, and the one note each request had becomes the first note of its
history, by whoever saved it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
    op.create_table(
        "request_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status_from", sa.String(length=16), nullable=True),
        sa.Column("status_to", sa.String(length=16), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["callback_requests.id"],
            name=op.f("fk_request_events_request_id_callback_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_events")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_request_events_attempt_id")),
    )
    op.create_index("ix_request_events_request", "request_events", ["request_id", "id"])
    op.create_index(op.f("ix_request_events_call_id"), "request_events", ["call_id"])
    op.create_table(
        "call_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_marks")),
    )
    op.create_index(op.f("ix_call_marks_call_sid"), "call_marks", ["call_sid"])
    op.create_table(
        "request_claims",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["callback_requests.id"],
            name=op.f("fk_request_claims_request_id_callback_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_claims")),
    )
    requests = sa.table(
        "callback_requests",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("note", sa.Text),
        sa.column("handled_by", sa.String),
        sa.column("handled_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        sa.text(
            "INSERT INTO request_events (request_id, kind, actor, text, created_at) "
            "SELECT id, 'note', handled_by, note, COALESCE(handled_at, updated_at) "
            "FROM callback_requests WHERE note <> ''"
        )
    )
    op.execute(requests.update().where(requests.c.status == "called_back").values(status="trying"))


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE callback_requests SET status = 'called_back' "
            "WHERE status IN ('trying', 'reached')"
        )
    )
    op.drop_index(op.f("ix_call_marks_call_sid"), table_name="call_marks")
    op.drop_table("call_marks")
    op.drop_table("request_claims")
    op.drop_index(op.f("ix_request_events_call_id"), table_name="request_events")
    op.drop_index("ix_request_events_request", table_name="request_events")
    op.drop_table("request_events")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("phone")
