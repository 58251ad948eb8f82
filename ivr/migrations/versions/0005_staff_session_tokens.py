"""staff session tokens: a random token per account names it in the session cookie

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:50:00

The cookie used to name the account by row id and a version number. SQLite reuses the row id of a
removed account, and a new account started at version 1, so a removed account's cookie logged in
as the next account created. A random token per account (replaced on logout or password change,
as the version was bumped) cannot name another account. Every staff member logs in once more.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

users = sa.table(
    "staff_users", sa.column("id", sa.Integer()), sa.column("session_token", sa.String(64))
)


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("session_token", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(session_token=secrets.token_urlsafe(32))
        )
    with op.batch_alter_table("staff_users") as batch:
        batch.alter_column("session_token", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(op.f("uq_staff_users_session_token"), ["session_token"])
        batch.drop_column("session_version")


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("staff_users") as batch:
        batch.alter_column("session_version", existing_type=sa.Integer(), server_default=None)
        batch.drop_constraint(op.f("uq_staff_users_session_token"), type_="unique")
        batch.drop_column("session_token")
