"""longer calling numbers: room for SIP addresses

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:45:00

Twilio's From is a SIP address (sip:+1312…@domain) when the number is reached over SIP. At 32
characters PostgreSQL refused such a row: a call count was dropped, and a callback request fell
back to the journal. Widening a varchar is a catalog change in PostgreSQL (no table rewrite);
SQLite does not enforce lengths (the batch rebuild is Alembic's own way to alter it).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.alter_column(
            "from_number",
            existing_type=sa.String(length=32),
            type_=sa.String(length=255),
            existing_nullable=False,
        )
    with op.batch_alter_table("callback_requests") as batch:
        batch.alter_column(
            "caller_number",
            existing_type=sa.String(length=32),
            type_=sa.String(length=255),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("callback_requests") as batch:
        batch.alter_column(
            "caller_number",
            existing_type=sa.String(length=255),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
    with op.batch_alter_table("calls") as batch:
        batch.alter_column(
            "from_number",
            existing_type=sa.String(length=255),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
