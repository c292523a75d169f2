"""Document collections for the retrieve action, and a full-text index of their passages.

Collections, documents and their passages; the index is, on SQLite, an FTS5 table kept by
triggers, on Postgres a generated ``tsvector`` column with a GIN index. (Alembic logs the
first paragraph above as one line at start: it must stay one line.)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("collection_id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_collections_owner_name"),
    )
    op.create_table(
        "documents",
        sa.Column("document_id", sa.String(40), primary_key=True),
        sa.Column("collection_id", sa.String(40), nullable=False, index=True),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("pages", sa.Integer, nullable=True),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "chunks",
        sa.Column("chunk_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(40), nullable=False, index=True),
        sa.Column("collection_id", sa.String(40), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("heading", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        # External-content FTS5: the passages' text is stored once (in chunks); the triggers
        # keep the index in the same transaction as every insert and delete.
        # The collection is a column too, so a query is narrowed to its collections inside
        # the index, not after ranking every passage of every owner that matches.
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5(collection_id, heading, text, "
            "content='chunks', content_rowid='chunk_id', "
            "tokenize='porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN "
            "INSERT INTO chunks_fts(rowid, collection_id, heading, text) "
            "VALUES (new.chunk_id, new.collection_id, new.heading, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN "
            "INSERT INTO chunks_fts(chunks_fts, rowid, collection_id, heading, text) "
            "VALUES ('delete', old.chunk_id, old.collection_id, old.heading, old.text); END"
        )
    else:
        op.execute(
            "ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
            "(setweight(to_tsvector('english', coalesce(heading, '')), 'A') || "
            "setweight(to_tsvector('english', text), 'B')) STORED"
        )
        op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS chunks_ad")
        op.execute("DROP TRIGGER IF EXISTS chunks_ai")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.drop_table("chunks")
    op.drop_table("documents")
    op.drop_table("collections")
