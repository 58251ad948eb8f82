"""callback requests lose `note` and `handled_by`, which nothing writes since 0007

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:00:00

Migration 0007 made each request's one note the first note of its history (`request_events`),
by whoever saved it; since then notes are only written there, and the two columns were left
empty. Dropping them leaves one home for what staff wrote. Batch mode rebuilds the table on
SQLite (which drops a column only that way), and is a plain ALTER TABLE on PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A note saved into the column after 0007 ran (none should be) is kept in the history first.
    op.execute(
        sa.text(
            "INSERT INTO request_events (request_id, kind, actor, text, created_at) "
            "SELECT id, 'note', handled_by, note, COALESCE(handled_at, updated_at) "
            "FROM callback_requests r WHERE note <> '' AND NOT EXISTS ("
            "SELECT 1 FROM request_events e "
            "WHERE e.request_id = r.id AND e.kind = 'note' AND e.text = r.note)"
        )
    )
    with op.batch_alter_table("callback_requests") as batch:
        batch.drop_column("handled_by")
        batch.drop_column("note")


def downgrade() -> None:
    with op.batch_alter_table("callback_requests") as batch:
        batch.add_column(sa.Column("note", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("handled_by", sa.String(length=80), nullable=True))
