"""Runs as resources: owners, threads, an event log per run, feedback.

Existing runs keep everything; they get the single owner of a server without keys ("") and
no thread, and their ``updated_at`` is their ``created_at``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("owner", sa.String(64), nullable=False, server_default=""))
        runs.add_column(sa.Column("thread_id", sa.String(40), nullable=True))
        runs.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        runs.create_index("ix_runs_owner_created", ["owner", "created_at"])
        runs.create_index("ix_runs_thread", ["thread_id", "created_at"])
    op.execute("UPDATE runs SET updated_at = created_at")
    op.create_table(
        "threads",
        sa.Column("thread_id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("summarized", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_threads_owner_created", "threads", ["owner", "created_at"])
    op.create_table(
        "run_events",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("correction", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_owner_updated", "feedback", ["owner", "updated_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("run_events")
    op.drop_table("threads")
    with op.batch_alter_table("runs") as runs:
        runs.drop_index("ix_runs_thread")
        runs.drop_index("ix_runs_owner_created")
        runs.drop_column("updated_at")
        runs.drop_column("thread_id")
        runs.drop_column("owner")
