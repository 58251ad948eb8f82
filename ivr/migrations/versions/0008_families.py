"""families: urgency, the reference by text message, later messages on the same request

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:00:00

`callback_requests` gains `urgent` (a hearing within 7 days, or a transfer soon) and the state of
the reference texted to the caller (`sms_status`, `sms_error`, `sms_sid`); `caller_number` is
indexed to find a caller's open request when they call again. `request_messages` holds the later
messages of a caller who called again while their request was open.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_requests") as batch:
        batch.add_column(
            sa.Column("urgent", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("sms_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("sms_error", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("sms_sid", sa.String(length=64), nullable=True))
    op.create_index(
        op.f("ix_callback_requests_caller_number"), "callback_requests", ["caller_number"]
    )
    op.create_table(
        "request_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("recording_sid", sa.String(length=64), nullable=True),
        sa.Column("recording_url", sa.String(length=512), nullable=True),
        sa.Column("recording_duration", sa.Integer(), nullable=True),
        sa.Column("audio", sa.LargeBinary(), nullable=True),
        sa.Column("audio_type", sa.String(length=64), nullable=True),
        sa.Column("is_new", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["callback_requests.id"],
            name=op.f("fk_request_messages_request_id_callback_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_messages")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_request_messages_call_sid")),
        sa.UniqueConstraint("recording_sid", name=op.f("uq_request_messages_recording_sid")),
    )
    op.create_index(op.f("ix_request_messages_request_id"), "request_messages", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_request_messages_request_id"), table_name="request_messages")
    op.drop_table("request_messages")
    op.drop_index(op.f("ix_callback_requests_caller_number"), table_name="callback_requests")
    with op.batch_alter_table("callback_requests") as batch:
        batch.drop_column("sms_sid")
        batch.drop_column("sms_error")
        batch.drop_column("sms_status")
        batch.drop_column("urgent")
